-- Reference schema of the WeChat middle platform (the tables erp_sync captures from).
-- Run with psql after CREATE EXTENSION erp_sync:
--     psql -d <db> -c 'CREATE EXTENSION IF NOT EXISTS erp_sync' -f sql/middle_platform.sql
-- A platform with its own tables and column names calls erp_sync.track() with a column map
-- instead, e.g. SELECT erp_sync.track('crm.people', 'contact', '{"id": "pid", "phone": "mobile"}');

CREATE SCHEMA IF NOT EXISTS mp;

-- A WeChat contact (spec: contact.*). list_status: grey until vetted, white = allowed to sync.
CREATE TABLE IF NOT EXISTS mp.contacts (
    id             bigserial PRIMARY KEY,
    type           text DEFAULT 'personal' CHECK (type IN ('company', 'personal')),
    name           text,
    company        text,
    phone          text,
    phone_verified boolean DEFAULT false,
    score          int,
    list_status    text DEFAULT 'grey' CHECK (list_status IN ('grey', 'white')),
    wechat_id      text,
    address        text,
    contact_person text,
    contact_phone  text,
    email          text,
    notes          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A conversation thread with its AI score and summary (spec: thread.score, thread.summary).
CREATE TABLE IF NOT EXISTS mp.threads (
    id         bigserial PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES mp.contacts (id) ON DELETE CASCADE,
    score      int,
    summary    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS threads_contact_idx ON mp.threads (contact_id, id);

-- A message / signal from the contact (spec: signal.content, signal.timestamp).
CREATE TABLE IF NOT EXISTS mp.signals (
    id         bigserial PRIMARY KEY,
    contact_id bigint NOT NULL REFERENCES mp.contacts (id) ON DELETE CASCADE,
    content    text,
    ts         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS signals_contact_idx ON mp.signals (contact_id);

-- Attach the capture trigger (column names match the spec, so no column map is needed).
SELECT erp_sync.track('mp.contacts', 'contact');
SELECT erp_sync.track('mp.threads', 'thread');
SELECT erp_sync.track('mp.signals', 'signal');
