-- Everything a handler reads before its ERP calls, in one round trip:
--   blocked: a lower-id row of the same contact is pending or running (a rare race, e.g. a dead
--            row put back by retry_failed() or a worker whose lease expired): the chain stops;
--   payload: the contact's CURRENT state (customer / assign rows);
--   signal:  the follow-up's signal (followup rows);
--   the contact's customer_link (NULLs and linked = false when none).
-- $1 contact id, $2 outbox id, $3 kind, $4 ref_id.
-- (`lower(status)`: a lookup by contact id whatever the statistics say; see erp_sync.claim in pg_ext/sql/outbox.sql.)
SELECT EXISTS (SELECT 1 FROM erp_sync.outbox p
               WHERE p.contact_id = $1 AND p.id < $2
                 AND pg_catalog.lower(p.status) IN ('pending', 'running', 'in_doubt')) AS blocked,
       CASE WHEN $3::text IN ('customer', 'assign') THEN erp_sync.contact_payload($1) END AS payload,
       CASE WHEN $3::text = 'followup' AND $4::bigint IS NOT NULL
            THEN erp_sync.signal_payload($4) END AS signal,
       l.contact_id IS NOT NULL AS linked,
       l.khid, l.erp_ord, l.customer_type, coalesce(l.person_synced, false), l.assigned_tier,
       l.assigned_to, l.last_payload_hash
FROM (SELECT 1) AS one
LEFT JOIN erp_sync.customer_link l ON l.contact_id = $1
