-- Run once when cargo pgrx regress creates the test database: the extension and the reference
-- middle-platform schema (its tables tracked).
SET client_min_messages = warning;
CREATE EXTENSION erp_sync;
\ir ../../../../sql/middle_platform.sql
