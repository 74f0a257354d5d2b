-- Sample WeChat contacts for `make demo`: a realistic mix that passes and fails admission.
-- Loaded after `CREATE EXTENSION erp_sync` and sql/middle_platform.sql.

-- Sales reps the assignment rule chooses from (ERP user ids of the sales team).
INSERT INTO erp_sync.sales_reps (erp_user_id, name, tier, active) VALUES
  ('63', '王金牌', 'top', true),
  ('64', '李金牌', 'top', true),
  ('71', '张销售', 'regular', true),
  ('72', '赵销售', 'regular', true),
  ('73', '孙销售', 'regular', false);

-- Contacts. Each one's fate is in the comment.
INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status,
                         wechat_id, address, contact_person, contact_phone, email, notes) VALUES
  -- company, admitted, top tier after its thread
  (1001, 'company',  '陈经理', '杭州云帆科技有限公司', '+86 138-0013-8000', true, 92, 'white',
   'wx_chenjl', '杭州市西湖区文三路 90 号', '陈晓明', '0571-88886666', 'chen@yunfan.example', '展会获客'),
  -- personal, admitted, regular tier
  (1002, 'personal', '刘女士', NULL, '13912345678', true, 70, 'white',
   'liu_2024', '上海市浦东新区', NULL, NULL, 'liu@example.com', NULL),
  -- personal, admitted, low thread score → public pool
  (1003, 'personal', '周先生', NULL, '0086 150 1234 5678', true, 61, 'white',
   NULL, NULL, NULL, NULL, NULL, NULL),
  -- company, admitted, mixed-script name
  (1004, 'company',  'Anna Schmidt 安娜', 'Rheinmetall 贸易（上海）有限公司', '186.0000.1111', true, 85, 'white',
   'anna_sh', '上海市静安区', 'Anna Schmidt', '021-55556666', 'anna@rh.example', '德国客户 🇩🇪'),
  -- rejected: phone not a mainland mobile
  (1005, 'personal', '吴先生', NULL, '12345', true, 88, 'white', 'wu_x', NULL, NULL, NULL, NULL, NULL),
  -- rejected: phone not verified
  (1006, 'personal', '郑女士', NULL, '13700001111', false, 75, 'white', NULL, NULL, NULL, NULL, NULL, NULL),
  -- rejected: score below 60
  (1007, 'personal', '王小二', NULL, '13600002222', true, 40, 'white', NULL, NULL, NULL, NULL, NULL, NULL),
  -- rejected: company customer without a company name
  (1008, 'company',  '钱经理', NULL, '13500003333', true, 80, 'white', NULL, NULL, '钱经理', NULL, NULL, NULL),
  -- rejected for now: still on the grey list (upgraded below → admitted)
  (1009, 'personal', '孙先生', NULL, '13300004444', true, 77, 'grey', 'sun_77', NULL, NULL, NULL, NULL, NULL),
  -- rejected: name too short (counted in characters, not bytes)
  (1010, 'personal', '冯', NULL, '13200005555', true, 90, 'white', NULL, NULL, NULL, NULL, NULL, NULL);

INSERT INTO mp.threads (contact_id, score, summary) VALUES
  (1001, 92, '需要 50 套企业微信 SCRM，预算已批'),
  (1002, 70, '咨询个人版价格'),
  (1003, 50, '随便看看'),
  (1004, 85, 'Interested in the ERP bridge; wants a demo'),
  (1009, 77, '老客户转介绍');

INSERT INTO mp.signals (contact_id, content, ts) VALUES
  (1001, '客户说方案很好，下周发合同', now() - interval '2 hours'),
  (1001, '约了周四面谈', now() - interval '1 hour'),
  (1002, '电话无人接听', now() - interval '30 minutes'),
  (1004, 'Will discuss internally — 研究一下', now() - interval '10 minutes'),
  (1005, '这个号码打不通', now() - interval '5 minutes');

-- The grey → white upgrade: an ordinary UPDATE is all the platform does.
UPDATE mp.contacts SET list_status = 'white' WHERE id = 1009;
