-- erp_sync outbox protocol: every state transition of an outbox row after the capture trigger
-- wrote it, in one place. The sidecar calls these functions and holds no state-transition SQL of
-- its own (sidecar/src/db/mod.rs); operators' transitions (retry_failed, resolve_in_doubt) are in
-- ops.sql, retention in monitoring.sql. The row rules every transition keeps are
-- outbox_row_check (ops.sql).
--
--   pending ──claim──▶ running ──ack──▶ done | skipped | dead | in_doubt
--      ▲                  │  └─retry─▶ pending (attempt counted unless not the row's fault) | dead
--      └──────release─────┘     (a lease that expires: the next claim takes the row again)
--
-- Functions run as the caller (erp_sync_worker has the table privileges); EXECUTE is granted
-- to erp_sync_worker only. Parameters are referenced as $n: their names are documentation.

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
--
-- Returns the claimed rows, with status 'dead' / 'in_doubt' for heads the claim ended (the caller
-- logs them and does not process them); heads carry their row context (as row_context.sql).
-- The planner settings make the walk of outbox_claim_idx in id order the only plan (statistics
-- of a queue table are nearly always stale: with them the planner reads every unfinished row
-- through a bitmap scan and sorts it, 45 ms per claim at 16,000 pending rows instead of 1-4 ms).
CREATE FUNCTION erp_sync.claim(worker text, lease_ms bigint, heads bigint, chain_max bigint,
                               in_hand bigint[], max_attempts int, hold_in_doubt boolean)
RETURNS TABLE (id bigint, contact_id text, kind text, ref_id bigint, template_id int,
               attempts int, head boolean, payload jsonb, signal jsonb, linked boolean,
               khid text, erp_ord bigint, customer_type text, person_synced boolean,
               assigned_tier text, assigned_to text, last_payload_hash text, status text,
               last_error text)
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET enable_bitmapscan = off
    SET enable_seqscan = off
AS $claim$
#variable_conflict use_column
BEGIN
    -- capture.mode = log: first the committed capture log rows become outbox rows (a no-op when
    -- the log is empty or another sidecar is expanding right now)
    PERFORM erp_sync.expand(1000);
    RETURN QUERY
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
        SELECT id, NULL::text, false, 'running' FROM chain
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
    SELECT * FROM claimed;
END
$claim$;
COMMENT ON FUNCTION erp_sync.claim(text, bigint, bigint, bigint, bigint[], int, boolean) IS
    'erp_sync outbox: claim up to heads contacts (their due chains) for worker, leased for lease_ms';

-- The acknowledgement of one processed row, with its effects, in the caller's transaction.
--   $1 outbox id, $2 worker,
--   $3 final status ('done' | 'skipped' | 'dead' | 'in_doubt'), or NULL to keep the row running (a
--      retry: the caller then calls erp_sync.retry in the same transaction), $4 reason / last error,
--   $5 link change: 'upsert' | 'assign' | 'unlink' | NULL,
--   upsert: $6 khid, $7 erp_ord, $8 customer_type, $9 person_synced, $10 payload hash;
--   assign: $11 tier, $12 assigned_to; unlink: $13 contact key, $7 erp_ord,
--   $14 sync_log id now rolled back (or NULL), $15 jsonb array of sync_log entries
--      ({action, erp_ord, request, response, outcome, error, duration_ms, old_data}), in order.
-- Nothing is written unless the row is still leased to $2 and running: then NULL (lease lost).
-- Returns the row's status. Only the statements a call needs run (each has its cached plan).
CREATE FUNCTION erp_sync.ack(outbox_id bigint, worker text, status text, reason text,
                             link_change text, khid text, erp_ord bigint, customer_type text,
                             person_synced boolean, payload_hash text, assigned_tier text,
                             assigned_to text, unlink_contact text, rolled_back_log bigint,
                             logs jsonb)
RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $ack$
#variable_conflict use_column
DECLARE
    c text;
    st text;
BEGIN
    UPDATE erp_sync.outbox o
    SET status = coalesce($3, o.status),
        last_error = CASE WHEN $3 IS NULL THEN o.last_error ELSE $4 END,
        lease_owner = CASE WHEN $3 IS NULL THEN o.lease_owner END,
        lease_expires_at = CASE WHEN $3 IS NULL THEN o.lease_expires_at END,
        finished_at = CASE WHEN $3 IS NULL OR $3 = 'in_doubt' THEN NULL ELSE now() END,
        updated_at = now()
    WHERE o.id = $1 AND o.lease_owner = $2 AND o.status = 'running'
    RETURNING o.contact_id, o.status INTO c, st;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF $5 = 'upsert' THEN
        INSERT INTO erp_sync.customer_link AS cl
            (contact_id, khid, erp_ord, customer_type, person_synced, last_payload_hash, synced_at)
        VALUES (c, $6, $7, $8, $9, $10, now())
        ON CONFLICT (contact_id) DO UPDATE
        SET khid = EXCLUDED.khid,
            erp_ord = EXCLUDED.erp_ord,
            customer_type = EXCLUDED.customer_type,
            person_synced = EXCLUDED.person_synced,
            last_payload_hash = coalesce(EXCLUDED.last_payload_hash, cl.last_payload_hash),
            synced_at = now();
        -- A customer with no assignment yet gets an `assign` row (its thread may have arrived
        -- while the contact was still rejected, so the trigger queued none).
        INSERT INTO erp_sync.outbox (contact_id, kind)
        SELECT c, 'assign'
        WHERE NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l
                          WHERE l.contact_id = c AND l.assigned_tier IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM erp_sync.outbox p  -- by contact id: see claim on lower()
                          WHERE p.contact_id = c AND p.kind = 'assign'
                            AND pg_catalog.lower(p.status) IN ('pending', 'running'))
        ON CONFLICT DO NOTHING;
    ELSIF $5 = 'assign' THEN
        UPDATE erp_sync.customer_link l
        SET assigned_tier = $11, assigned_to = $12, synced_at = now()
        WHERE l.contact_id = c;
    ELSIF $5 = 'unlink' THEN
        -- After a create was rolled back (the ERP customer deleted): the contact has no ERP
        -- customer any more. The row stays (the sidecar role may not delete); a later customer
        -- row recreates the link.
        UPDATE erp_sync.customer_link l
        SET erp_ord = NULL, person_synced = false, assigned_tier = NULL, assigned_to = NULL,
            last_payload_hash = NULL, synced_at = now()
        WHERE l.contact_id = $13 AND l.erp_ord = $7;
    END IF;
    IF $14 IS NOT NULL THEN
        UPDATE erp_sync.sync_log s
        SET rolled_back_at = now(), outcome = 'rolled_back'
        WHERE s.id = $14;
    END IF;
    IF $15 IS NOT NULL AND jsonb_array_length($15) > 0 THEN
        INSERT INTO erp_sync.sync_log
            (outbox_id, contact_id, action, erp_ord, request, response, outcome, error,
             duration_ms, old_data, worker)
        SELECT $1, c, x.e->>'action', (x.e->>'erp_ord')::bigint,
               nullif(x.e->'request', 'null'), nullif(x.e->'response', 'null'), x.e->>'outcome',
               x.e->>'error', (x.e->>'duration_ms')::int, nullif(x.e->'old_data', 'null'), $2
        FROM jsonb_array_elements($15) WITH ORDINALITY AS x(e, n)
        ORDER BY x.n;
    END IF;
    RETURN st;
END
$ack$;
COMMENT ON FUNCTION erp_sync.ack(bigint, text, text, text, text, text, bigint, text, boolean, text, text, text, text, bigint, jsonb) IS
    'erp_sync outbox: acknowledge a processed row (final status or NULL before a retry) with its link change and sync_log entries';

-- A retryable failure of row $1 (leased to $2; call after erp_sync.ack with status NULL, in the
-- same transaction): back to pending after $3 ms, or dead once its attempts reach $5.
-- $6 = whether it counts as an attempt (a session expiry, a refused login or a database outage
-- does not); $7 = whether the claim already counted it (the row was its contact's head): then a
-- failure that does not count gives that attempt back. A pending twin of a customer/assign row
-- (outbox_coalesce_key allows one) takes over instead: it gets the attempt count and backoff and
-- this row ends skipped as coalesced. The sync_log entries of this attempt (written by ack in
-- this transaction) become outcome 'retry' unless the row died: a sync counts as failed once,
-- when it ends. Returns 'pending' or 'dead', NULL when the lease was lost.
CREATE FUNCTION erp_sync.retry(outbox_id bigint, worker text, delay_ms bigint, error text,
                               max_attempts int, counts boolean, counted boolean)
RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $retry$
#variable_conflict use_column
DECLARE
    r record;
    twin bigint;
    after int;
    dies boolean;
BEGIN
    SELECT o.contact_id, o.kind, o.attempts INTO r
    FROM erp_sync.outbox o
    WHERE o.id = $1 AND o.lease_owner = $2 AND o.status = 'running'
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    after := greatest(r.attempts + CASE WHEN $6 AND NOT $7 THEN 1
                                        WHEN NOT $6 AND $7 THEN -1 ELSE 0 END, 0);
    dies := $6 AND after >= $5;
    IF NOT dies THEN
        UPDATE erp_sync.sync_log s SET outcome = 'retry'
        WHERE s.outbox_id = $1 AND s.outcome = 'failed' AND s.created_at = now();
    END IF;
    IF NOT dies AND r.kind IN ('customer', 'assign') THEN
        SELECT p.id INTO twin
        FROM erp_sync.outbox p
        WHERE p.contact_id = r.contact_id AND p.kind = r.kind AND p.status = 'pending' AND p.id <> $1
        LIMIT 1
        FOR UPDATE;
        IF twin IS NOT NULL THEN
            -- the newer row does this work with fresh data: it takes our attempts and backoff
            UPDATE erp_sync.outbox p
            SET attempts = greatest(p.attempts, after),
                next_attempt_at = greatest(p.next_attempt_at, now() + $3 * interval '1 millisecond'),
                last_error = $4,
                updated_at = now()
            WHERE p.id = twin;
            UPDATE erp_sync.outbox o
            SET status = 'skipped',
                last_error = 'coalesced into outbox row #' || twin || ' after: ' || $4,
                lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
            WHERE o.id = $1;
            RETURN 'pending';
        END IF;
    END IF;
    UPDATE erp_sync.outbox o
    SET attempts = after,
        status = CASE WHEN dies THEN 'dead' ELSE 'pending' END,
        next_attempt_at = now() + $3 * interval '1 millisecond',
        last_error = $4,
        -- a failure that is retried was certainly not processed (or the operator chose resend)
        send_started_at = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        finished_at = CASE WHEN dies THEN now() END,
        updated_at = now()
    WHERE o.id = $1;
    RETURN CASE WHEN dies THEN 'dead' ELSE 'pending' END;
END
$retry$;
COMMENT ON FUNCTION erp_sync.retry(bigint, text, bigint, text, int, boolean, boolean) IS
    'erp_sync outbox: a retryable failure: pending again after delay_ms, or dead at max_attempts';

-- Give rows back without counting an attempt (shutdown, or the rest of a chain whose earlier row
-- must wait). $2 NULL = every row this worker holds. $3: rows whose attempt the claim counted
-- (heads) and that were never processed: the attempt is given back. (Rows released at start-up or
-- abandoned at the shutdown deadline keep theirs: they may have been mid-processing.)
--
-- The capture trigger keeps at most one PENDING customer/assign row per contact (unique index
-- outbox_coalesce_key). While ours ran, a newer one may have been enqueued, or we may hold two of
-- them: then only one goes back to pending (an existing pending row wins, else our lowest) and the
-- others end 'skipped' as coalesced into it — it reads the contact's current state anyway.
-- Returns how many rows were given back.
CREATE FUNCTION erp_sync.release(worker text, ids bigint[], unprocessed_counted bigint[])
RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $release$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    WITH mine AS (
        SELECT id, contact_id, kind
        FROM erp_sync.outbox
        WHERE lease_owner = $1 AND status = 'running' AND ($2::bigint[] IS NULL OR id = ANY($2))
        FOR UPDATE
    ),
    target AS (
        SELECT m.id,
               CASE WHEN m.kind IN ('customer', 'assign') THEN
                   coalesce(
                       (SELECT p.id FROM erp_sync.outbox p
                        WHERE p.contact_id = m.contact_id AND p.kind = m.kind AND p.status = 'pending'
                        LIMIT 1),
                       (SELECT min(m2.id) FROM mine m2
                        WHERE m2.contact_id = m.contact_id AND m2.kind = m.kind))
               ELSE m.id END AS into_id
        FROM mine m
    )
    UPDATE erp_sync.outbox o
    SET status = CASE WHEN t.into_id = o.id THEN 'pending' ELSE 'skipped' END,
        last_error = CASE WHEN t.into_id = o.id THEN o.last_error
                          ELSE 'coalesced into outbox row #' || t.into_id END,
        finished_at = CASE WHEN t.into_id = o.id THEN NULL ELSE now() END,
        attempts = CASE WHEN o.id = ANY($3::bigint[]) THEN greatest(o.attempts - 1, 0) ELSE o.attempts END,
        lease_owner = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM target t
    WHERE o.id = t.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$release$;
COMMENT ON FUNCTION erp_sync.release(text, bigint[], bigint[]) IS
    'erp_sync outbox: give rows of worker back (ids NULL: all), without counting an attempt';

-- Heartbeat: extend the lease of the rows worker has in hand ($3) by $2 ms. Rows it still owns
-- but no longer handles (a release that failed while the database was down) are left to expire
-- and be claimed again. Returns how many leases were extended.
CREATE FUNCTION erp_sync.extend_leases(worker text, lease_ms bigint, ids bigint[])
RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $extend$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    UPDATE erp_sync.outbox o
    SET lease_expires_at = now() + $2 * interval '1 millisecond'
    WHERE o.lease_owner = $1 AND o.status = 'running' AND o.id = ANY($3);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$extend$;

-- A follow-up's send begins now (call in its own transaction, just before the ERP call): a row
-- found so by a later claim, with no result, was perhaps sent (claim: in_doubt). False when the
-- row is no longer leased to worker.
CREATE FUNCTION erp_sync.mark_send_started(outbox_id bigint, worker text)
RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $mark$
#variable_conflict use_column
BEGIN
    UPDATE erp_sync.outbox o
    SET send_started_at = now(), updated_at = now()
    WHERE o.id = $1 AND o.lease_owner = $2 AND o.status = 'running';
    RETURN FOUND;
END
$mark$;

-- Only the sidecar (erp_sync_worker) moves rows through the protocol.
REVOKE EXECUTE ON FUNCTION erp_sync.claim(text, bigint, bigint, bigint, bigint[], int, boolean),
    erp_sync.ack(bigint, text, text, text, text, text, bigint, text, boolean, text, text, text, text, bigint, jsonb),
    erp_sync.retry(bigint, text, bigint, text, int, boolean, boolean),
    erp_sync.release(text, bigint[], bigint[]),
    erp_sync.extend_leases(text, bigint, bigint[]),
    erp_sync.mark_send_started(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erp_sync.claim(text, bigint, bigint, bigint, bigint[], int, boolean),
    erp_sync.ack(bigint, text, text, text, text, text, bigint, text, boolean, text, text, text, text, bigint, jsonb),
    erp_sync.retry(bigint, text, bigint, text, int, boolean, boolean),
    erp_sync.release(text, bigint[], bigint[]),
    erp_sync.extend_leases(text, bigint, bigint[]),
    erp_sync.mark_send_started(bigint, text) TO erp_sync_worker;
