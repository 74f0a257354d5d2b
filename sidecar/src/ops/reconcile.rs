//! Reconciliation (spec 每周日：全量对账): compare what the platform believes is in the ERP
//! (`customer_link` + the contact's current `contact_payload`, mapped exactly as the engine maps
//! it) with what the last pull found there (`erp_customers`, rows still listed), and record one run
//! in `erp_sync.reconcile_runs` with its differences in `erp_sync.reconcile_items`:
//!
//! | kind | meaning |
//! |---|---|
//! | `missing_in_erp` | a linked contact whose ERP customer (by ord, else khid) is not listed |
//! | `missing_in_platform` | a listed ERP customer no platform contact knows (no link by ord/khid, no contact with its khid), or a linked ERP customer whose platform contact is gone |
//! | `field_mismatch` | one item per differing field: `name`, `mobile`, `weixinAcc`, `jz` (fields the platform leaves empty are not compared: the engine does not send them) |
//! | `duplicate_mobile` | one item per listed ERP customer sharing its mobile with another |
//!
//! `erp_sync.reconcile_fix(run_id)` then enqueues a `customer` row for each contact that is
//! missing in the ERP or differs. The comparison itself ([`diff`]) is pure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::{json, Value};

use crate::db::pool_err;
use crate::error::Result;
use crate::mapping;

pub mod q {
    pub const PLATFORM: &str = include_str!("../../queries/reconcile_platform.sql");
    pub const ERP: &str = include_str!("../../queries/reconcile_erp.sql");
    pub const KNOWN_KHIDS: &str = include_str!("../../queries/reconcile_known_khids.sql");
    pub const RUN_INSERT: &str = include_str!("../../queries/reconcile_run_insert.sql");
    pub const ITEMS_INSERT: &str = include_str!("../../queries/reconcile_items_insert.sql");
    pub const RUN_FINISH: &str = include_str!("../../queries/reconcile_run_finish.sql");
}

/// Items written per statement.
const ITEM_BATCH: usize = 500;

/// A linked platform contact.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformRow {
    /// The platform's key of the contact, as text.
    pub contact_id: String,
    pub khid: Option<String>,
    pub erp_ord: Option<i64>,
    /// `contact_payload()`; `None` when the contact row is gone.
    pub payload: Option<Value>,
}

/// A pulled ERP customer (still listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErpRow {
    pub erp_ord: i64,
    pub name: Option<String>,
    pub khid: Option<String>,
    pub mobile: Option<String>,
    pub weixin_acc: Option<String>,
    pub jz: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    MissingInErp,
    MissingInPlatform,
    FieldMismatch,
    DuplicateMobile,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::MissingInErp => "missing_in_erp",
            ItemKind::MissingInPlatform => "missing_in_platform",
            ItemKind::FieldMismatch => "field_mismatch",
            ItemKind::DuplicateMobile => "duplicate_mobile",
        }
    }
}

/// One difference (a `reconcile_items` row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: ItemKind,
    pub contact_id: Option<String>,
    pub erp_ord: Option<i64>,
    pub field: Option<String>,
    pub platform_value: Option<String>,
    pub erp_value: Option<String>,
}

/// Counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileSummary {
    pub run_id: i64,
    pub platform: u64,
    pub erp: u64,
    pub missing_in_erp: u64,
    pub missing_in_platform: u64,
    pub field_mismatch: u64,
    pub duplicate_mobile: u64,
    /// Linked contacts whose payload could not be mapped (not compared).
    pub unmappable: u64,
    pub duration_ms: u64,
}

impl std::fmt::Display for ReconcileSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run={} platform={} erp={} missing_in_erp={} missing_in_platform={} field_mismatch={} duplicate_mobile={} unmappable={} duration_ms={}",
            self.run_id,
            self.platform,
            self.erp,
            self.missing_in_erp,
            self.missing_in_platform,
            self.field_mismatch,
            self.duplicate_mobile,
            self.unmappable,
            self.duration_ms
        )
    }
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Mobiles compare by the shared rule's key: the normalised mobile, else the digits.
pub fn mobile_key(m: &str) -> Option<String> {
    erp_sync_rules::mobile::comparison_key(m)
}

/// The comparison. `platform_khids`: khids of platform contacts (linked or not) among the khids
/// of the ERP rows. Items come out sorted by kind, then contact, ord and field.
pub fn diff(
    platform: &[PlatformRow],
    erp: &[ErpRow],
    platform_khids: &HashSet<String>,
) -> (Vec<Item>, u64) {
    let by_ord: HashMap<i64, &ErpRow> = erp.iter().map(|e| (e.erp_ord, e)).collect();
    let by_khid: HashMap<&str, &ErpRow> = erp
        .iter()
        .filter_map(|e| e.khid.as_deref().map(|k| (k, e)))
        .collect();
    let mut items = Vec::new();
    let mut matched: HashSet<i64> = HashSet::new();
    let mut ord_of_contact: HashMap<&str, i64> = HashMap::new();
    let mut unmappable = 0u64;
    for p in platform {
        let found = p
            .erp_ord
            .and_then(|o| by_ord.get(&o).copied())
            .or_else(|| p.khid.as_deref().and_then(|k| by_khid.get(k).copied()));
        let Some(e) = found else {
            if p.payload.is_some() {
                items.push(Item {
                    kind: ItemKind::MissingInErp,
                    contact_id: Some(p.contact_id.clone()),
                    erp_ord: p.erp_ord,
                    field: None,
                    platform_value: p.khid.clone(),
                    erp_value: None,
                });
            }
            continue;
        };
        matched.insert(e.erp_ord);
        ord_of_contact.insert(&p.contact_id, e.erp_ord);
        let Some(payload) = &p.payload else {
            items.push(Item {
                kind: ItemKind::MissingInPlatform,
                contact_id: Some(p.contact_id.clone()),
                erp_ord: Some(e.erp_ord),
                field: None,
                platform_value: None,
                erp_value: e.khid.clone(),
            });
            continue;
        };
        let view = match mapping::contact_view(payload) {
            Ok(v) => v,
            Err(err) => {
                tracing::debug!(contact_id = %p.contact_id, error = %err, "reconcile: payload not mappable");
                unmappable += 1;
                continue;
            }
        };
        let f = &view.fields;
        let checks: [(&str, Option<String>, Option<String>, bool); 4] = [
            (
                "name",
                clean(Some(&f.name)),
                clean(e.name.as_deref()),
                false,
            ),
            (
                "mobile",
                clean(f.mobile.as_deref()),
                clean(e.mobile.as_deref()),
                true,
            ),
            (
                "weixinAcc",
                clean(f.weixin_acc.as_deref()),
                clean(e.weixin_acc.as_deref()),
                false,
            ),
            ("jz", clean(f.jz.as_deref()), clean(e.jz.as_deref()), false),
        ];
        for (field, mine, theirs, is_mobile) in checks {
            let Some(mine) = mine else { continue };
            let same = match (&theirs, is_mobile) {
                (Some(t), true) => mobile_key(&mine) == mobile_key(t),
                (Some(t), false) => &mine == t,
                (None, _) => false,
            };
            if !same {
                items.push(Item {
                    kind: ItemKind::FieldMismatch,
                    contact_id: Some(p.contact_id.clone()),
                    erp_ord: Some(e.erp_ord),
                    field: Some(field.to_string()),
                    platform_value: Some(mine),
                    erp_value: theirs,
                });
            }
        }
    }
    let contact_of_ord: HashMap<i64, &str> = ord_of_contact.iter().map(|(c, o)| (*o, *c)).collect();
    let mut by_mobile: BTreeMap<String, Vec<&ErpRow>> = BTreeMap::new();
    for e in erp {
        if !matched.contains(&e.erp_ord)
            && !e
                .khid
                .as_deref()
                .is_some_and(|k| platform_khids.contains(k))
        {
            items.push(Item {
                kind: ItemKind::MissingInPlatform,
                contact_id: None,
                erp_ord: Some(e.erp_ord),
                field: None,
                platform_value: None,
                erp_value: e.khid.clone(),
            });
        }
        if let Some(k) = e.mobile.as_deref().and_then(mobile_key) {
            by_mobile.entry(k).or_default().push(e);
        }
    }
    for group in by_mobile.values().filter(|g| g.len() > 1) {
        for e in group {
            items.push(Item {
                kind: ItemKind::DuplicateMobile,
                contact_id: contact_of_ord.get(&e.erp_ord).map(|c| c.to_string()),
                erp_ord: Some(e.erp_ord),
                field: Some("mobile".into()),
                platform_value: None,
                erp_value: e.mobile.clone(),
            });
        }
    }
    // a stable report order (by kind, then contact key as text, ERP ord and field)
    items.sort_by(|a, b| {
        (a.kind, &a.contact_id, a.erp_ord, &a.field).cmp(&(
            b.kind,
            &b.contact_id,
            b.erp_ord,
            &b.field,
        ))
    });
    (items, unmappable)
}

fn opt_text(row: &tokio_postgres::Row, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<_, Option<String>>(col)?)
}

/// Run a reconciliation against the rows pulled so far and record it. `trigger`: `schedule` or
/// `manual`. `progress` gets the phase name.
pub async fn reconcile(
    pool: &Pool,
    trigger: &str,
    worker: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<ReconcileSummary> {
    let started = Instant::now();
    let mut c = pool.get().await.map_err(pool_err)?;
    progress("reading platform links");
    let mut platform = Vec::new();
    for r in c.query(q::PLATFORM, &[]).await? {
        platform.push(PlatformRow {
            contact_id: r.try_get("contact_id")?,
            khid: opt_text(&r, "khid")?,
            erp_ord: r.try_get("erp_ord")?,
            payload: r.try_get("payload")?,
        });
    }
    progress("reading pulled ERP customers");
    let mut erp = Vec::new();
    for r in c.query(q::ERP, &[]).await? {
        erp.push(ErpRow {
            erp_ord: r.try_get("erp_ord")?,
            name: opt_text(&r, "name")?,
            khid: opt_text(&r, "khid")?,
            mobile: opt_text(&r, "mobile")?,
            weixin_acc: opt_text(&r, "weixin_acc")?,
            jz: opt_text(&r, "jz")?,
        });
    }
    let khids: Vec<String> = erp.iter().filter_map(|e| e.khid.clone()).collect();
    let mut known = HashSet::new();
    for r in c.query(q::KNOWN_KHIDS, &[&khids]).await? {
        if let Some(k) = opt_text(&r, "khid")? {
            known.insert(k);
        }
    }
    progress("comparing");
    let (items, unmappable) = diff(&platform, &erp, &known);
    let mut s = ReconcileSummary {
        platform: platform.len() as u64,
        erp: erp.len() as u64,
        unmappable,
        ..ReconcileSummary::default()
    };
    for i in &items {
        match i.kind {
            ItemKind::MissingInErp => s.missing_in_erp += 1,
            ItemKind::MissingInPlatform => s.missing_in_platform += 1,
            ItemKind::FieldMismatch => s.field_mismatch += 1,
            ItemKind::DuplicateMobile => s.duplicate_mobile += 1,
        }
    }
    progress("writing the report");
    let tx = c.transaction().await?;
    let run_id: i64 = tx
        .query_one(q::RUN_INSERT, &[&trigger, &worker])
        .await?
        .try_get(0)?;
    for chunk in items.chunks(ITEM_BATCH) {
        let records: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"kind": i.kind.as_str(), "contact_id": i.contact_id, "erp_ord": i.erp_ord,
                       "field": i.field, "platform_value": i.platform_value, "erp_value": i.erp_value})
            })
            .collect();
        tx.execute(q::ITEMS_INSERT, &[&run_id, &Value::Array(records)])
            .await?;
    }
    s.run_id = run_id;
    s.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let counts = super::pull::summary_json(&s)?;
    tx.execute(q::RUN_FINISH, &[&run_id, &counts]).await?;
    tx.commit().await?;
    tracing::info!(
        run_id,
        platform = s.platform,
        erp = s.erp,
        missing_in_erp = s.missing_in_erp,
        missing_in_platform = s.missing_in_platform,
        field_mismatch = s.field_mismatch,
        duplicate_mobile = s.duplicate_mobile,
        unmappable = s.unmappable,
        trigger,
        "reconciliation finished"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(id: i64, name: &str, phone: &str, wechat: &str, score: i32) -> Value {
        json!({"id": id, "type": "personal", "name": name, "phone": phone, "wechat_id": wechat,
               "score": score, "khid": format!("WX{id}")})
    }

    fn erp(ord: i64, name: &str, khid: &str, mobile: &str, wx: &str, jz: &str) -> ErpRow {
        let s = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
        ErpRow {
            erp_ord: ord,
            name: s(name),
            khid: s(khid),
            mobile: s(mobile),
            weixin_acc: s(wx),
            jz: s(jz),
        }
    }

    fn link(id: i64, ord: i64, p: Option<Value>) -> PlatformRow {
        PlatformRow {
            contact_id: id.to_string(),
            khid: Some(format!("WX{id}")),
            erp_ord: Some(ord),
            payload: p,
        }
    }

    #[test]
    fn identical_sides_have_no_items() {
        let p = vec![link(
            1,
            100,
            Some(payload(1, "张三", "13800000001", "wx1", 80)),
        )];
        let e = vec![erp(100, "张三", "WX1", "+86 138 0000 0001", "wx1", "289")];
        let (items, unmappable) = diff(&p, &e, &HashSet::new());
        assert_eq!(items, vec![]);
        assert_eq!(unmappable, 0);
    }

    #[test]
    fn every_kind_of_difference() {
        let p = vec![
            // 1: four differing fields
            link(1, 100, Some(payload(1, "张三", "13800000001", "wx1", 95))),
            // 2: not in the ERP
            link(2, 200, Some(payload(2, "李四", "13800000002", "wx2", 80))),
            // 3: contact gone on the platform
            link(3, 300, None),
            // 4: matched by khid (ord changed), equal
            link(4, 999, Some(payload(4, "王五", "13800000004", "wx4", 80))),
        ];
        let e = vec![
            erp(100, "张三丰", "WX1", "13900000001", "", "289"),
            erp(300, "赵六", "WX3", "13800000003", "", ""),
            erp(400, "王五", "WX4", "13800000004", "wx4", "289"),
            erp(500, "手工录入", "KH500", "13800000004", "", ""),
            erp(600, "平台未同步", "WX6", "", "", ""),
        ];
        let known: HashSet<String> = ["WX6".to_string()].into();
        let (items, _) = diff(&p, &e, &known);
        type Row<'a> = (&'a str, Option<i64>, Option<i64>, Option<&'a str>);
        let got: Vec<Row> = items
            .iter()
            .map(|i| {
                let contact = i.contact_id.as_deref().and_then(|c| c.parse::<i64>().ok());
                (i.kind.as_str(), contact, i.erp_ord, i.field.as_deref())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("missing_in_erp", Some(2), Some(200), None),
                ("missing_in_platform", None, Some(500), None),
                ("missing_in_platform", Some(3), Some(300), None),
                ("field_mismatch", Some(1), Some(100), Some("jz")),
                ("field_mismatch", Some(1), Some(100), Some("mobile")),
                ("field_mismatch", Some(1), Some(100), Some("name")),
                ("field_mismatch", Some(1), Some(100), Some("weixinAcc")),
                ("duplicate_mobile", None, Some(500), Some("mobile")),
                ("duplicate_mobile", Some(4), Some(400), Some("mobile")),
            ]
        );
        let jz = items
            .iter()
            .find(|i| i.field.as_deref() == Some("jz"))
            .expect("jz item");
        assert_eq!(jz.platform_value.as_deref(), Some("175"));
        assert_eq!(jz.erp_value.as_deref(), Some("289"));
    }

    #[test]
    fn empty_platform_fields_are_not_compared() {
        let mut pl = payload(1, "张三", "13800000001", "", 80);
        pl["wechat_id"] = Value::Null;
        let p = vec![link(1, 100, Some(pl))];
        let e = vec![erp(100, "张三", "WX1", "13800000001", "erp_wx", "289")];
        assert_eq!(diff(&p, &e, &HashSet::new()).0, vec![]);
    }

    #[test]
    fn mobile_keys() {
        assert_eq!(
            mobile_key("+86 138-0000-0001").as_deref(),
            Some("13800000001")
        );
        assert_eq!(mobile_key("13800000001").as_deref(), Some("13800000001"));
        assert_eq!(mobile_key(" - "), None);
    }
}
