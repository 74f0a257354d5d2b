-- One page of pulled ERP customers ($1: jsonb array of records). A row is written only when new,
-- changed (raw row differs) or back after being gone; counts what happened, compared with the
-- table as it was before this statement.
WITH input AS (
    SELECT *
    FROM jsonb_to_recordset($1::jsonb) AS x(erp_ord bigint, name text, khid text, ly text, mobile text,
        weixin_acc text, address text, add_date timestamptz, sales_person text, jz text, raw jsonb)
), prev AS (
    SELECT e.erp_ord, e.raw_hash, e.gone_at
    FROM erp_sync.erp_customers e
    JOIN input i ON i.erp_ord = e.erp_ord
), up AS (
    INSERT INTO erp_sync.erp_customers AS e
        (erp_ord, name, khid, ly, mobile, weixin_acc, address, add_date, sales_person, jz, raw, pulled_at)
    SELECT i.erp_ord, i.name, i.khid, i.ly, i.mobile, i.weixin_acc, i.address, i.add_date, i.sales_person,
           i.jz, i.raw, now()
    FROM input i
    ON CONFLICT (erp_ord) DO UPDATE
    SET name = EXCLUDED.name, khid = EXCLUDED.khid, ly = EXCLUDED.ly, mobile = EXCLUDED.mobile,
        weixin_acc = EXCLUDED.weixin_acc, address = EXCLUDED.address, add_date = EXCLUDED.add_date,
        sales_person = EXCLUDED.sales_person, jz = EXCLUDED.jz, raw = EXCLUDED.raw, pulled_at = now(),
        changed_at = CASE WHEN e.raw IS DISTINCT FROM EXCLUDED.raw THEN now() ELSE e.changed_at END,
        gone_at = NULL
    WHERE e.raw IS DISTINCT FROM EXCLUDED.raw OR e.gone_at IS NOT NULL
    RETURNING e.erp_ord
)
SELECT count(*) FILTER (WHERE p.erp_ord IS NULL) AS new,
       count(*) FILTER (WHERE p.erp_ord IS NOT NULL AND p.raw_hash IS DISTINCT FROM md5(i.raw::text)) AS changed,
       count(*) FILTER (WHERE p.erp_ord IS NOT NULL AND p.raw_hash = md5(i.raw::text)) AS unchanged,
       count(*) FILTER (WHERE p.gone_at IS NOT NULL) AS returned,
       (SELECT count(*) FROM up) AS written
FROM input i
LEFT JOIN prev p ON p.erp_ord = i.erp_ord
