-- The wxauto middle platform's customer hub (chenxuanhao520-wq/wxauto,
-- backend/sql/upgrade_customer_hub.sql and upgrade_erp_integration.sql), translated to Postgres,
-- wired to erp_sync with payload views and change sources — no column of it renamed, no code in
-- the platform. Run after CREATE EXTENSION erp_sync:
--     psql -d <db> -f sql/customer_hub.sql
--
-- Its shape: contacts keyed by UUID text; the white/grey/black list on the conversation thread
-- (bucket WHITE/GRAY/BLACK); the score on scoring rows linked through thread_id
-- (signals.total_score); messages in a table of their own; the identity fields (phone, real_name,
-- company_name, a FLOAT intent_score, the customer type as 1/2) in another table with integer
-- ids, joined on the WeChat id.

CREATE SCHEMA IF NOT EXISTS hub;

CREATE TABLE IF NOT EXISTS hub.contacts (
    id         text PRIMARY KEY,                      -- UUID
    wx_id      text UNIQUE NOT NULL,
    remark     text,
    type       text NOT NULL DEFAULT 'unknown',       -- customer/lead/vendor/personal/unknown
    owner      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS hub.threads (
    id           text PRIMARY KEY,                    -- UUID
    contact_id   text NOT NULL REFERENCES hub.contacts,
    last_speaker text NOT NULL DEFAULT 'them',
    last_msg_at  timestamptz NOT NULL DEFAULT now(),
    status       text NOT NULL DEFAULT 'UNSEEN',
    bucket       text NOT NULL CHECK (bucket IN ('WHITE', 'GRAY', 'BLACK')),
    topic        text,                                -- the LLM's summary
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS threads_contact_idx ON hub.threads (contact_id);

CREATE TABLE IF NOT EXISTS hub.signals (
    id          text PRIMARY KEY,                     -- UUID
    thread_id   text NOT NULL REFERENCES hub.threads,
    total_score int NOT NULL DEFAULT 0,               -- 0-100
    bucket      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS signals_thread_idx ON hub.signals (thread_id, created_at);

CREATE TABLE IF NOT EXISTS hub.messages (
    id         bigserial PRIMARY KEY,
    thread_id  text NOT NULL REFERENCES hub.threads,
    sender     text NOT NULL DEFAULT 'them',
    content    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS hub.customers_unified (
    id                     serial PRIMARY KEY,
    wechat_id              varchar(100) UNIQUE,
    company_name           varchar(200),
    real_name              varchar(100),
    phone                  varchar(20),
    phone_verified         boolean DEFAULT false,
    email                  varchar(100),
    address                text,
    erp_customer_type      int DEFAULT 1,             -- 1 = 单位客户, 2 = 个人客户
    intent_score           float DEFAULT 0.0          -- 0-100
);

-- What is sent, in the spec's field names (erp_sync.check_source() validates each view).
-- A contact: its identity row, the bucket of its newest thread, the newest score of that thread
-- (else the identity row's intent score).
CREATE OR REPLACE VIEW hub.contact_source AS
SELECT c.id,
       CASE u.erp_customer_type WHEN 1 THEN 'company' WHEN 2 THEN 'personal' END AS type,
       u.real_name::text AS name,
       u.company_name::text AS company,
       u.phone::text AS phone,
       coalesce(u.phone_verified, false) AS phone_verified,
       coalesce(s.total_score::float8, u.intent_score) AS score,
       CASE t.bucket WHEN 'WHITE' THEN 'white' WHEN 'GRAY' THEN 'grey' WHEN 'BLACK' THEN 'black' END AS list_status,
       c.wx_id AS wechat_id,
       u.address,
       u.email::text AS email,
       c.remark AS notes
FROM hub.contacts c
LEFT JOIN hub.customers_unified u ON u.wechat_id = c.wx_id
LEFT JOIN LATERAL (SELECT t.id, t.bucket FROM hub.threads t WHERE t.contact_id = c.id
                   ORDER BY t.last_msg_at DESC, t.id DESC LIMIT 1) t ON true
LEFT JOIN LATERAL (SELECT s.total_score FROM hub.signals s WHERE s.thread_id = t.id
                   ORDER BY s.created_at DESC, s.id DESC LIMIT 1) s ON true;

-- A thread: its newest score and the LLM's topic as the summary (jz and product).
CREATE OR REPLACE VIEW hub.thread_source AS
SELECT t.id, t.contact_id, s.total_score AS score, t.topic AS summary
FROM hub.threads t
LEFT JOIN LATERAL (SELECT s.total_score FROM hub.signals s WHERE s.thread_id = t.id
                   ORDER BY s.created_at DESC, s.id DESC LIMIT 1) s ON true;

-- A message as a signal: a follow-up of the thread's contact.
CREATE OR REPLACE VIEW hub.signal_source AS
SELECT m.id, t.contact_id, m.content, m.created_at AS ts
FROM hub.messages m JOIN hub.threads t ON t.id = m.thread_id;

SELECT erp_sync.track('hub.contact_source', 'contact');
SELECT erp_sync.track('hub.thread_source', 'thread');
SELECT erp_sync.track('hub.signal_source', 'signal');

-- What changed: each table with the way from its row to the contact.
SELECT erp_sync.track_source('hub.contacts', '{"key": "id", "watch": ["remark", "wx_id"]}');
SELECT erp_sync.track_source('hub.customers_unified',
    '{"via": [{"table": "hub.contacts", "from": "wechat_id", "to": "wx_id"}], "key": "id"}');
SELECT erp_sync.track_source('hub.threads', '{"key": "contact_id", "watch": ["bucket", "topic"]}');
SELECT erp_sync.track_source('hub.signals',
    '{"via": [{"table": "hub.threads", "from": "thread_id", "to": "id"}], "key": "contact_id"}');
SELECT erp_sync.track_source('hub.messages',
    '{"via": [{"table": "hub.threads", "from": "thread_id", "to": "id"}], "key": "contact_id",
      "followup": {"id": "id", "content": "content"}}');
