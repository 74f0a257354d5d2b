-- The ERP session shared by every sidecar of this database (since 0.2.0).
--
-- A Zhibang server keeps one online session per user (its UniqueLogin table): a second login ends
-- the first. Sidecars with one ERP account therefore share one session: each takes the session
-- stored here, and logs in only under a transaction-scoped advisory lock of the account, after
-- reading this table again (sidecar/src/db/erp_session.rs). The token is a credential: only
-- erp_sync_worker (and superusers) may read it; it is not dumped as configuration (a restored
-- session would be stale anyway).
CREATE TABLE erp_sync.erp_session (
    account     text PRIMARY KEY,                  -- "<erp user>@<erp base url>"
    token       text NOT NULL,
    generation  bigint NOT NULL DEFAULT 1,         -- +1 at every stored login
    obtained_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_sync.erp_session IS
    'erp_sync: the ERP session shared by the sidecars (one login at a time across the fleet); erp_sync_worker only';
REVOKE ALL ON erp_sync.erp_session FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON erp_sync.erp_session TO erp_sync_worker;
