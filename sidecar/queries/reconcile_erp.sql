-- ERP side of a reconciliation: the pulled customers still listed.
SELECT erp_ord, name, khid, mobile, weixin_acc, jz
FROM erp_sync.erp_customers
WHERE gone_at IS NULL
ORDER BY erp_ord
