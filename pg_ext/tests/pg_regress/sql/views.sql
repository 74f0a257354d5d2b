-- pg_regress test of the user-visible views (erp_sync.contact_status, erp_sync.queue) and the
-- manual sync button, over a small fixed data set (pg_ext/tests/pg_regress/run.sh, `make test-sql`;
-- setup.sql created the extension and the reference schema).
SET client_min_messages = warning;
SET timezone = 'UTC';

INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status, wechat_id) VALUES
    (1, 'company',  '王小明', '上海某某有限公司', '+86 138-0013-8001', true,  80, 'white', 'wx_1'),
    (2, 'personal', '李四五', NULL,              '13900139002',       true,  65, 'white', NULL),
    (3, 'personal', '张三',   NULL,              '1380013',           false, 50, 'grey',  NULL),
    (4, 'company',  '赵六六', NULL,              '13700137004',       true,  90, 'white', NULL),
    (5, 'personal', '钱七七', NULL,              '13600136005',       true,  70, 'white', NULL);
INSERT INTO mp.threads (contact_id, score, summary) VALUES (1, 85, '想要报价'), (3, 40, '随便看看');
INSERT INTO mp.signals (contact_id, content) VALUES (1, '客户说很好，发合同'), (3, '无人接听');
-- what the sidecar would write: contact 2 synced, contact 5 failed
UPDATE erp_sync.outbox SET status = 'done', finished_at = now() WHERE contact_id = '2';
INSERT INTO erp_sync.customer_link (contact_id, khid, erp_ord, synced_at)
    VALUES (2, 'WX2', 5002, '2025-10-19 12:00:00+08');
UPDATE erp_sync.outbox SET status = 'dead', last_error = 'ERP: 手机号 +86 136-0013-6005 已存在', finished_at = now()
    WHERE contact_id = '5';

-- as the owner (superuser): full mobiles; mobiles inside texts are masked for everyone
SELECT contact_id, khid, mobile, admission_passed, sync_state, erp_ord, last_error, last_synced_at
FROM erp_sync.contact_status ORDER BY contact_id;
SELECT contact_id, jsonb_pretty(admission_reasons) AS reasons
FROM erp_sync.contact_status WHERE NOT admission_passed ORDER BY contact_id;

SELECT kind, status, rows, oldest_pending_age IS NOT NULL AS has_pending_age
FROM erp_sync.queue ORDER BY kind, status;

SELECT contact_id, kind, ref_id IS NOT NULL AS has_ref, template_id, status, last_error
FROM erp_sync.outbox ORDER BY id;

-- the monitoring role: masked mobiles; the views but not the tables behind them
SET ROLE erp_sync_reader;
SELECT contact_id, mobile, sync_state, last_error FROM erp_sync.contact_status ORDER BY contact_id;
SELECT has_table_privilege('erp_sync.outbox', 'SELECT') AS reads_outbox,
       has_schema_privilege('mp', 'USAGE') AS sees_platform_schema,
       has_table_privilege('erp_sync.queue', 'SELECT') AS reads_queue;
RESET ROLE;

-- the manual sync button on a contact that is still grey, then the grey -> white upgrade
INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
    VALUES (9, 'personal', '孙八八', '13800138009', true, 75, 'grey');
SELECT erp_sync.request_sync('9') ->> 'status' AS status;
SELECT contact_id, sync_state, admission_reasons FROM erp_sync.contact_status WHERE contact_id = '9';
UPDATE mp.contacts SET list_status = 'white' WHERE id = 9;
SELECT contact_id, sync_state, admission_reasons FROM erp_sync.contact_status WHERE contact_id = '9';
SELECT erp_sync.request_sync('9') ->> 'status' AS status;

-- The platform's own application role writes with no privilege on erp_sync at all: capture still
-- queues (SECURITY DEFINER trigger) and it cannot call or attach the trigger function itself.
CREATE ROLE erp_sync_test_app;
GRANT USAGE ON SCHEMA mp TO erp_sync_test_app;
GRANT INSERT, SELECT ON mp.contacts TO erp_sync_test_app;
SET ROLE erp_sync_test_app;
INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
    VALUES (20, 'personal', '周杰伦', '13800138020', true, 80, 'white'),
           (21, 'personal', '蔡依林', '123', true, 80, 'white');
RESET ROLE;
SELECT contact_id, kind, status FROM erp_sync.outbox WHERE contact_id IN ('20', '21') ORDER BY id;
SELECT contact_id, reasons FROM erp_sync.rejections WHERE contact_id IN ('20', '21');
SELECT has_function_privilege('erp_sync_test_app', 'erp_sync.capture()', 'EXECUTE') AS app_executes_capture;
DROP OWNED BY erp_sync_test_app;
DROP ROLE erp_sync_test_app;
