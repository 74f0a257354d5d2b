-- Claim work for one worker: up to $3 contact "heads" plus, per head, the contiguous run of due
-- rows of the same contact behind it (at most $4 rows per contact), all leased to $1 for $2 ms.
-- Each head comes with its row context (the columns of row_context.sql).
--
-- A row is a head when it is due (pending and next_attempt_at reached, or running with an expired
-- lease, except the rows this worker still has in hand ($5: e.g. a write-back waiting for the
-- database to come back, whose lease the heartbeat could not extend meanwhile) and no lower-id row
-- of the same contact is pending, running or in_doubt (a follow-up in doubt holds its contact's
-- later rows until a person resolves it: per-contact order). Heads are locked with
-- SKIP LOCKED, so concurrent workers never wait on each other and never take the same row; rows of
-- a chain are never heads for anyone else (their head is lower and pending/running); they are
-- locked SKIP LOCKED too, for the platform's edits (below). The chain stops at the first row of
-- the contact that is not due (e.g. waiting for a retry) or not free, which keeps per-contact order.
--
-- Plans must not depend on statistics: a queue table's are nearly always stale (a burst of
-- inserts after an ANALYZE that saw none pending, or 1,000,000 finished rows and a few thousand
-- new ones). So (with the planner settings of `db::claim`) the only scan over many rows is the
-- walk of `outbox_claim_idx` in id order that stops after $3 heads; every per-contact probe is a
-- LATERAL or correlated lookup by contact id. In those probes the status test is written
-- `lower(status) IN (...)` on purpose: it cannot use the partial indexes on
-- `status IN ('pending', 'running')`, which stale statistics make look empty (so the planner would
-- scan all of them once per head), and goes through `outbox_contact_history_idx` (contact_id, id)
-- instead, reading only the contact's own rows.
WITH heads AS (
    -- What the claim makes of a head (see the UPDATE below), computed on the row version it locks.
    SELECT o.id, o.contact_id,
           CASE WHEN $7 AND o.kind = 'followup' AND o.send_started_at IS NOT NULL THEN 'in_doubt'
                WHEN o.attempts >= $6 THEN 'dead'
                ELSE 'running' END AS status
    FROM erp_sync.outbox o
    WHERE o.status IN ('pending', 'running')
      AND ((o.status = 'pending' AND o.next_attempt_at <= now())
        OR (o.status = 'running' AND coalesce(o.lease_expires_at, '-infinity') < now()
            AND NOT (o.id = ANY($5::bigint[]))))
      AND NOT EXISTS (
          SELECT 1
          FROM erp_sync.outbox p
          WHERE p.contact_id = o.contact_id
            AND p.id < o.id
            AND pg_catalog.lower(p.status) IN ('pending', 'running', 'in_doubt'))
    ORDER BY o.id
    LIMIT $3
    FOR UPDATE OF o SKIP LOCKED
),
behind AS (
    SELECT b.id, h.contact_id, b.all_due, b.rn
    FROM heads h
    CROSS JOIN LATERAL (
        SELECT c.id,
               bool_and((c.status = 'pending' AND c.next_attempt_at <= now())
                     OR (c.status = 'running' AND coalesce(c.lease_expires_at, '-infinity') < now()
                         AND NOT (c.id = ANY($5::bigint[]))))
                   OVER (ORDER BY c.id) AS all_due,
               row_number() OVER (ORDER BY c.id) AS rn
        FROM erp_sync.outbox c
        WHERE c.contact_id = h.contact_id
          AND c.id > h.id
          AND pg_catalog.lower(c.status) IN ('pending', 'running')
        ORDER BY c.id
        LIMIT $4
    ) b
),
-- Rows of a chain are locked like heads, SKIP LOCKED. A row that an uncommitted platform edit
-- holds (it coalesced onto it and locked it, see pg_ext/src/capture/direct.rs) ends its chain
-- there: it is claimed, and the contact read, only after that edit commits — and the claim never
-- waits for a platform transaction.
chain_free AS (
    SELECT c.id
    FROM erp_sync.outbox c
    WHERE c.id IN (SELECT id FROM behind WHERE all_due AND rn < $4)
    FOR UPDATE OF c SKIP LOCKED
),
chain AS (
    SELECT b.id
    FROM behind b
    WHERE b.all_due AND b.rn < $4
      AND NOT EXISTS (
          SELECT 1
          FROM behind x
          WHERE x.contact_id = b.contact_id
            AND x.rn <= b.rn
            AND NOT EXISTS (SELECT 1 FROM chain_free f WHERE f.id = x.id))
),
picked AS (
    SELECT id, contact_id, true AS head, status FROM heads
    UNION ALL
    SELECT id, NULL::bigint, false, 'running' FROM chain
),
-- A claim as the contact's head is an attempt: counted here, not when the row fails, because a
-- row whose processing kills or hangs the worker never reports a failure. (A chain row is
-- counted when it fails, or when it is claimed as a head after a crash.) A head claimed $6
-- (engine.max_attempts) times without a result ends dead here instead: the last of those
-- attempts ended by an expired lease. With $7 (engine.in_doubt_followups = "hold"), a follow-up
-- head whose send had begun (send_started_at, set just before the ERP call) and has no result is
-- in_doubt: perhaps in the ERP already, it waits for a person (erp_sync.resolve_in_doubt).
claimed AS (
UPDATE erp_sync.outbox o
SET status = picked.status,
    attempts = CASE WHEN picked.head AND picked.status = 'running' THEN o.attempts + 1 ELSE o.attempts END,
    lease_owner = CASE WHEN picked.status = 'running' THEN $1 END,
    lease_expires_at = CASE WHEN picked.status = 'running'
                            THEN now() + $2::bigint * interval '1 millisecond' END,
    last_error = CASE picked.status
                     WHEN 'in_doubt' THEN
                         'in doubt: its send to the ERP began at ' || o.send_started_at
                         || ' and no result was recorded (the worker died or hung while sending it), so it may be in '
                         || 'the ERP already; check the ERP, then SELECT erp_sync.resolve_in_doubt(' || o.id || ', sent)'
                         || coalesce('; last error: ' || o.last_error, '')
                     WHEN 'dead' THEN
                         'no attempts left: ' || o.attempts || ' of ' || $6::int || ' attempts ended without a result '
                         || '(the last by an expired lease: the worker died or hung while processing this row)'
                         || coalesce('; last error: ' || o.last_error, '')
                     ELSE o.last_error END,
    finished_at = CASE WHEN picked.status = 'dead' THEN now() ELSE o.finished_at END,
    send_started_at = CASE WHEN picked.status = 'in_doubt' THEN o.send_started_at END,
    updated_at = now()
FROM picked
LEFT JOIN erp_sync.customer_link l ON l.contact_id = picked.contact_id
WHERE o.id = picked.id
  -- Re-checked on the current row version if a concurrent transaction changed it meanwhile.
  AND ((pg_catalog.lower(o.status) = 'pending' AND o.next_attempt_at <= now())
    OR (pg_catalog.lower(o.status) = 'running' AND coalesce(o.lease_expires_at, '-infinity') < now()
        AND NOT (o.id = ANY($5::bigint[]))))
RETURNING o.id, o.contact_id, o.kind, o.ref_id, o.template_id, o.attempts,
          -- the head's row context (see row_context.sql), saving its handler a round trip: a head
          -- has no lower unfinished row of its contact (not blocked), and nothing but this
          -- worker's handling of the chain changes its link until the chain is done
          picked.head,
          CASE WHEN picked.head AND o.kind IN ('customer', 'assign')
               THEN erp_sync.contact_payload(o.contact_id) END,
          CASE WHEN picked.head AND o.kind = 'followup' AND o.ref_id IS NOT NULL
               THEN erp_sync.signal_payload(o.ref_id) END,
          l.contact_id IS NOT NULL,
          l.khid, l.erp_ord, l.customer_type, coalesce(l.person_synced, false), l.assigned_tier,
          l.assigned_to, l.last_payload_hash,
          o.status, o.last_error
),
-- A row that dies here failed as a sync: audited like any other failure (the success-rate
-- alerts count it), in the same statement. The action is the one `worker::action_of_kind` gives
-- a row that fails before any ERP call.
died AS (
    INSERT INTO erp_sync.sync_log (outbox_id, contact_id, action, outcome, error, worker)
    SELECT c.id, c.contact_id,
           CASE c.kind WHEN 'followup' THEN 'followup' WHEN 'assign' THEN 'assign'
                       WHEN 'rollback' THEN 'restore' ELSE 'create' END,
           'failed', c.last_error, $1
    FROM claimed c
    WHERE c.status = 'dead'
)
SELECT * FROM claimed
