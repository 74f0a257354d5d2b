-- erp_sync bootstrap: tables, indexes and seed rows. Runs first in the extension script
-- (schema erp_sync is created by CREATE EXTENSION from the control file).
-- Contract: docs/architecture.md. Extra objects beyond it are marked "(extra)".

-- Operator settings; erp_sync.setting(key) falls back to the documented defaults
-- (erp_sync.settings_effective lists every key, its default and its current value).
CREATE TABLE erp_sync.settings (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()  -- (extra)
);

-- Which platform table plays which entity, and its column map (spec field -> column).
-- Written by erp_sync.track() / untrack(); do not edit by hand.
CREATE TABLE erp_sync.tracked_tables (
    entity     text PRIMARY KEY CHECK (entity IN ('contact', 'thread', 'signal')),
    relid      regclass NOT NULL UNIQUE,
    columns    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(columns) = 'object'),
    tracked_at timestamptz NOT NULL DEFAULT now()  -- (extra)
);

-- The transactional outbox. Rows are small on purpose: the sidecar reads the contact's CURRENT
-- state (erp_sync.contact_payload) when it sends, which also coalesces bursts of updates.
CREATE TABLE erp_sync.outbox (
    id               bigserial PRIMARY KEY,
    -- the platform's key of the contact as text (a bigint 42 as '42', a uuid, a text id; since
    -- 0.2.0, bigint before): per-contact order is by id, never by this key
    contact_id       text COLLATE "C" NOT NULL,
    kind             text NOT NULL,
    ref_id           bigint,
    template_id      int,
    status           text NOT NULL DEFAULT 'pending',
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    -- (since 0.2.0) set by the sidecar, durably, just before it sends a follow-up: a follow-up
    -- found with it set and without a result was perhaps sent (status in_doubt, see ops.sql).
    send_started_at  timestamptz
    -- Row rules (kind, status, attempts >= 0, lease while running, reason when skipped, ref_id for
    -- followup/rollback) are one CHECK calling erp_sync.outbox_row_check(), added in ops.sql once
    -- that function exists: plain CHECKs are re-parsed from text for every INSERT the capture
    -- trigger runs (~25% of its cost), one function call is not.
);
-- Claiming scans only unfinished rows, however many finished rows exist.
CREATE INDEX outbox_claim_idx ON erp_sync.outbox (id) WHERE status IN ('pending', 'running');
-- Coalescing: at most one pending customer / assign row per contact (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX outbox_coalesce_key ON erp_sync.outbox (contact_id, kind)
    WHERE status = 'pending' AND kind IN ('customer', 'assign');
-- A contact's rows in id order: the claim's per-contact head check and chain (see outbox.sql:
-- by status through the heap, never a partial index), contact_status (newest row, active row),
-- retry_failed(contact_id). (0.1.0 also had outbox_contact_active_idx, the same key over
-- unfinished rows only: a sixth index insertion per captured row that no plan needed; dropped
-- in 0.2.0.) Key columns are COLLATE "C" (bytewise: ids need no locale order, and strcoll per
-- comparison cost the write path ~10 % under C.UTF-8).
CREATE INDEX outbox_contact_history_idx ON erp_sync.outbox (contact_id, id);

-- Contacts that failed admission, with the reasons; removed when the contact later passes.
CREATE TABLE erp_sync.rejections (
    contact_id  text COLLATE "C" PRIMARY KEY,
    reasons     jsonb NOT NULL DEFAULT '[]',
    checks      jsonb NOT NULL DEFAULT '{}',
    rejected_at timestamptz NOT NULL DEFAULT now()
);

-- Follow-up templates (spec select_template): first keyword match by priority wins.
-- Editable with ordinary SQL. Seeded with erp_sync.followup_template_defaults() by dump.sql,
-- which also keeps edits and deletions across pg_dump / pg_restore.
CREATE TABLE erp_sync.followup_templates (
    template_id int PRIMARY KEY,
    keywords    text[] NOT NULL DEFAULT '{}',
    priority    int NOT NULL,
    label       text
);

-- Sales reps the assignment picks from (erp_sync.pick_rep).
CREATE TABLE erp_sync.sales_reps (
    erp_user_id      text PRIMARY KEY,
    name             text,
    tier             text NOT NULL CHECK (tier IN ('top', 'regular')),
    active           bool NOT NULL DEFAULT true,
    last_assigned_at timestamptz,
    assigned_count   bigint NOT NULL DEFAULT 0
);
CREATE INDEX sales_reps_pick_idx ON erp_sync.sales_reps (tier, last_assigned_at NULLS FIRST) WHERE active;

-- Written by the sidecar: platform contact <-> ERP customer.
CREATE TABLE erp_sync.customer_link (
    contact_id        text COLLATE "C" PRIMARY KEY,
    khid              text UNIQUE,
    erp_ord           bigint,
    customer_type     text,
    person_synced     bool DEFAULT false,
    assigned_tier     text,
    assigned_to       text,
    last_payload_hash text,
    synced_at         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Every ERP operation (mobiles masked, never sessions). outcome: success | failed (the sync
-- failed: its row ended dead) | retry (a failed attempt that is retried: since 0.2.0) | skipped |
-- dry_run | rolled_back.
CREATE TABLE erp_sync.sync_log (
    id             bigserial PRIMARY KEY,
    outbox_id      bigint,
    contact_id     text COLLATE "C",
    action         text NOT NULL CHECK (action IN ('create', 'update', 'supplement', 'skip', 'person',
                                                   'followup', 'assign', 'delete', 'restore')),
    erp_ord        bigint,
    request        jsonb,
    response       jsonb,
    outcome        text NOT NULL CHECK (outcome IN ('success', 'failed', 'skipped', 'dry_run', 'rolled_back', 'retry')),
    error          text,
    duration_ms    int,
    old_data       jsonb,
    operator       text DEFAULT current_user,
    client_addr    inet DEFAULT inet_client_addr(),
    worker         text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    rolled_back_at timestamptz
);
CREATE INDEX sync_log_contact_idx ON erp_sync.sync_log (contact_id, id);
CREATE INDEX sync_log_outbox_idx ON erp_sync.sync_log (outbox_id);

-- ERP customers pulled by the scheduled list.asp pull (reconciliation).
CREATE TABLE erp_sync.erp_customers (
    erp_ord      bigint PRIMARY KEY,
    name         text,
    khid         text,
    mobile       text,
    weixin_acc   text,
    address      text,
    add_date     timestamptz,
    sales_person text,
    raw          jsonb,
    pulled_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erp_customers_khid_idx ON erp_sync.erp_customers (khid);

-- Sidecar workers; the capture trigger NOTIFYs only when a fresh one is idle, and each backend
-- at most once per idle period: idle_since is when the worker last went from busy to idle (NULL
-- while busy; a writer that leaves it NULL counts as idle since its last heartbeat).
CREATE TABLE erp_sync.workers (
    worker_id    text PRIMARY KEY,
    idle         bool NOT NULL DEFAULT false,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz NOT NULL DEFAULT now(),
    idle_since   timestamptz,  -- (extra)
    -- (since 0.2.0) the ERP's refusal of this worker's last login while no login has worked since,
    -- and since when: alert erp_login_failed, contact_status of the rows waiting for it.
    erp_login_error        text,
    erp_login_failed_since timestamptz
);

-- Operator data survives pg_dump (extension tables are otherwise not dumped).
SELECT pg_catalog.pg_extension_config_dump('erp_sync.settings', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.tracked_tables', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.sales_reps', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.rejections', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.customer_link', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.sync_log', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.sync_log_id_seq', '');

-- Roles are cluster-wide: create them only if they do not exist yet (a second database, or a
-- re-install, finds them). Every later file grants on its own objects; roles.sql runs last.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'erp_sync_worker') THEN
        CREATE ROLE erp_sync_worker NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'erp_sync_reader') THEN
        CREATE ROLE erp_sync_reader NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL; -- created concurrently by another database's CREATE EXTENSION
END
$$;
