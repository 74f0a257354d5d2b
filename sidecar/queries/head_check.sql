-- Before working on a non-first row of a claimed chain: is a lower-id row of the same contact
-- pending or running again (a rare race with a worker whose lease expired)? Then stop the chain.
SELECT EXISTS (
    SELECT 1 FROM erp_sync.outbox
    WHERE contact_id = $1 AND id < $2 AND status IN ('pending', 'running')
)
