-- ops: database reachability for /healthz.
SELECT 1::int4
