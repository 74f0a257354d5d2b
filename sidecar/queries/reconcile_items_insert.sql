-- A batch of items of run $1 ($2: jsonb array of records).
INSERT INTO erp_sync.reconcile_items (run_id, kind, contact_id, erp_ord, field, platform_value, erp_value)
SELECT $1, x.kind, x.contact_id, x.erp_ord, x.field, x.platform_value, x.erp_value
FROM jsonb_to_recordset($2::jsonb) AS x(kind text, contact_id text, erp_ord bigint, field text,
                                        platform_value text, erp_value text)
