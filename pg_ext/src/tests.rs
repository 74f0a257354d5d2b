//! #[pg_test]s: every function and trigger path, run inside Postgres by `cargo pgrx test`.
use pgrx::prelude::*;
