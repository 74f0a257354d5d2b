//! The reliability suite (issue 6), input side: what the platform writes and how long the history
//! grows. `make chaos` runs these big (scripts/chaos.sh); inside `make test` they run small. Each
//! prints ONE `CHAOS <scenario>: …` line of figures and asserts the invariants.
//!
//! - `chaos_bad_input`: hostile but legal platform rows (NULLs, 100 KB strings, emoji / RTL /
//!   combining marks, SQL-looking text, phones in every notation, odd scores and names) written
//!   through ordinary INSERT/UPDATE in several statement shapes, plus a second database whose
//!   tracked contact table has only `text` columns (wrong types: score 'abc', phone_verified
//!   'maybe', non-numeric ids, and the unknown type / list_status values the reference schema's
//!   CHECK constraints would refuse on their own). No platform write may fail, every contact is
//!   captured (queued, or rejected with reasons), every admitted one ends synced, skipped with a
//!   reason or refused by the ERP with its text (`ended_dead`), the sidecars survive, and the ERP
//!   gets no duplicate.
//! - `chaos_log_retention`: finished outbox rows and sync_log rows, aged past the retention window
//!   and written in batches next to real traffic, are pruned by a real sidecar's retention job so
//!   the size of both tables stays bounded; pending, running and dead rows are never deleted.
//!
//! Sizes: CHAOS_BAD_INPUT_ROWS (default 500), CHAOS_LOG_EVENTS (default 20000), CHAOS_LOG_BATCH
//! (default CHAOS_LOG_EVENTS / 20, at least 100, at most 20000), CHAOS_LOG_REAL_CONTACTS (default
//! 200), CHAOS_LOG_PAUSE_MS (pause between batches, default 500), CHAOS_LOG_RETENTION_MS (the
//! sidecar's retention.interval_ms, default 500; 0 turns the job off, and the test must then fail).

mod sync_util;

use anyhow::{bail, Context, Result};
use e2e::{free_port, wait_until};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use sync_util::{field, World};

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// splitmix64: a deterministic pseudo-random stream per row (no rand crate needed).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// About `bytes` bytes of `unit` repeated (cut on a char boundary), with a row-specific prefix so
/// TOAST cannot share or trivially fold every copy.
fn big(unit: &str, bytes: usize, tag: u64) -> String {
    let mut s = format!("{tag}:");
    while s.len() < bytes {
        s.push_str(unit);
    }
    let mut cut = bytes.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

const KB100: usize = 100 * 1024;

/// Free text that is legal in a PostgreSQL `text` (no NUL) and hostile everywhere else.
const ODD_TEXT: &[&str] = &[
    "",
    "   ",
    "\t\r\n",
    "a",
    "张三丰",
    "👨\u{200d}👩\u{200d}👧\u{200d}👦",
    "🏳\u{fe0f}\u{200d}🌈 彩虹 👍🏽",
    "مرحبا بالعالم",
    "שלום עולם 123",
    "abc\u{202e}fed\u{202c}ghi",
    "e\u{301}\u{302}\u{303}\u{304} Z\u{334}\u{321}a\u{338}l\u{337}g\u{336}o\u{335}",
    "'; DROP TABLE mp.contacts; --",
    "Robert'); DROP TABLE erp_sync.outbox;--",
    "\\x00 \\n \\\\ back\\slash \\",
    "\"double\" 'single' `back` ’curly‘ 「引号」",
    "$$ dollar $$ $tag$ x $tag$",
    "%s %d %n {} {{}} ${HOME} $(id)",
    "<script>alert('x')</script>&amp;",
    "NULL",
    "null",
    "\u{feff}BOM\u{200b}zero\u{200b}width\u{2060}",
    "ｆｕｌｌ－ｗｉｄｔｈ　ＡＢＣ",
    "\u{1}\u{7}\u{1b}[31mred\u{1b}[0m\u{7f}",
    "𝕳𝖊𝖑𝖑𝖔 𠜎𠜱𠝹",
    "line1\nline2\r\nline3",
];

/// Names that pass `has_name` (more than 2 characters after trimming) but are still odd.
const LONG_NAMES: &[&str] = &[
    "张三丰",
    "欧阳娜娜",
    "👨\u{200d}👩\u{200d}👧\u{200d}👦",
    "مرحبا بالعالم",
    "שלום עולם",
    "O'Brien; DROP TABLE mp.contacts;--",
    "Zoe\u{308} Ame\u{301}lie",
    "\"Quote\" \\back\\slash",
    "ｆｕｌｌ名字",
    "李四🚀🚀",
    "abc\u{202e}fed",
    "$$王五$$",
    "\u{200b}\u{200b}\u{200b}",
];

/// Names of 0, 1 and 2 characters (and blanks): `has_name` rejects them.
const SHORT_NAMES: &[&str] = &["", " ", "  \t", "a", "张", "张三", "e\u{301}", "👍", " 张 "];

/// The notations of the 11-digit mainland mobile `d` (`1XXXXXXXXXX`) that people and forms use
/// and the extension's normalisation accepts.
fn valid_notations(d: &str) -> Vec<String> {
    let (a, b, c) = (&d[0..3], &d[3..7], &d[7..]);
    vec![
        d.to_string(),
        format!("+86 {a} {b} {c}"),
        format!("+86{d}"),
        format!("0086-{a}-{b}-{c}"),
        format!("(+86){d}"),
        format!("{a}-{b}-{c}"),
        format!("{a} {b} {c}"),
        format!(" {d} "),
        format!("86{d}"),
        format!("+86-{a}-{b}-{c}"),
        format!("{a}.{b}.{c}"),
        format!("{a}\u{a0}{b}\u{3000}{c}"),
        format!("（+86）{a}－{b}－{c}"),
    ]
}

/// The mobile `d` in one of the notations, or something that only looks like a phone (full-width
/// digits, extensions, letters, too short / long, landlines, foreign, blank, 100 KB), or NULL.
fn phone(d: &str, r: &mut Rng) -> Option<String> {
    let (a, b, c) = (&d[0..3], &d[3..7], &d[7..]);
    let full: String = d
        .chars()
        .map(|ch| char::from_u32(ch as u32 - '0' as u32 + 0xFF10).unwrap_or(ch))
        .collect();
    let invalid = [
        full,
        format!("{d} ext. 123"),
        format!("{d}转8001"),
        format!("{a}-{b}-{c} x12"),
        d.replace('0', "O"),
        d[..7].to_string(),
        format!("{d}0"),
        "021-6888-8888".to_string(),
        "010-12345678".to_string(),
        "0755 8888 8888".to_string(),
        String::new(),
        "   ".to_string(),
        "+1 415 555 0100".to_string(),
        format!("2{}", &d[1..]),
        format!("📱{d}"),
        big("1", KB100, 0),
    ];
    if r.chance(8) {
        return None;
    }
    if r.chance(65) {
        Some(r.pick(&valid_notations(d)))
    } else {
        Some(r.pick(&invalid))
    }
}

fn odd_text(r: &mut Rng, tag: u64) -> Option<String> {
    match r.below(ODD_TEXT.len() + 6) {
        i if i < ODD_TEXT.len() => Some(ODD_TEXT[i].to_string()),
        i if i == ODD_TEXT.len() => None,
        i if i == ODD_TEXT.len() + 1 => None,
        i if i == ODD_TEXT.len() + 2 => Some(big("长城", KB100, tag)),
        i if i == ODD_TEXT.len() + 3 => {
            Some(big("👨\u{200d}👩\u{200d}👧🏳\u{fe0f}\u{200d}🌈", KB100, tag))
        }
        i if i == ODD_TEXT.len() + 4 => Some(big("x'; DROP TABLE t;--\\", KB100, tag)),
        _ => Some(big("مرحبا e\u{301} ", KB100, tag)),
    }
}

/// One platform table, written through text parameters and the SQL casts of its column types.
struct Table {
    name: &'static str,
    /// `(column, cast)`: the cast turns a text parameter into the column's type.
    cols: &'static [(&'static str, &'static str)],
    id_col: &'static str,
    id_cast: &'static str,
}

const CONTACTS: Table = Table {
    name: "mp.contacts",
    cols: &[
        ("type", "text"),
        ("name", "text"),
        ("company", "text"),
        ("phone", "text"),
        ("phone_verified", "bool"),
        ("score", "float8"),
        ("list_status", "text"),
        ("wechat_id", "text"),
        ("address", "text"),
        ("contact_person", "text"),
        ("contact_phone", "text"),
        ("email", "text"),
        ("notes", "text"),
    ],
    id_col: "id",
    id_cast: "int8",
};

/// The second platform: every tracked column is `text`, the id too (no primary key either).
const PEOPLE: Table = Table {
    name: "crm.people",
    cols: &[
        ("pid", "text"),
        ("kind", "text"),
        ("nick", "text"),
        ("corp", "text"),
        ("mobile_no", "text"),
        ("verified", "text"),
        ("rating", "text"),
        ("list", "text"),
        ("wx", "text"),
        ("addr", "text"),
        ("memo", "text"),
    ],
    id_col: "pid",
    id_cast: "text",
};

const PEOPLE_DDL: &str = "CREATE SCHEMA crm;
    CREATE TABLE crm.people (pid text, kind text, nick text, corp text, mobile_no text, verified text,
                             rating text, list text, wx text, addr text, memo text);
    CREATE INDEX people_pid_idx ON crm.people (pid);
    SELECT erp_sync.track('crm.people', 'contact',
        '{\"id\": \"pid\", \"type\": \"kind\", \"name\": \"nick\", \"company\": \"corp\", \"phone\": \"mobile_no\",
          \"phone_verified\": \"verified\", \"score\": \"rating\", \"list_status\": \"list\",
          \"wechat_id\": \"wx\", \"address\": \"addr\", \"notes\": \"memo\"}');";

type Values = Vec<Option<String>>;

/// A row for `mp.contacts` (typed columns: only values its types accept). About 45% of the rows
/// are shaped to pass admission, with odd text everywhere admission does not look.
fn typed_row(i: u64, salt: u64, dup_of: Option<u64>) -> Values {
    if i % 50 == 7 {
        return vec![None; CONTACTS.cols.len()]; // NULL in every column
    }
    let mut r = Rng::new(i * 7919 + salt);
    let d = format!("139{:08}", dup_of.unwrap_or(i));
    let admissible = r.chance(45);
    let kind = if admissible {
        Some(r.pick(&["personal", "company"]).to_string())
    } else {
        r.pick(&[Some("personal"), Some("company"), None])
            .map(str::to_string)
    };
    let name = if admissible || r.chance(50) {
        if r.chance(6) {
            Some(big("名", KB100, i))
        } else {
            Some(r.pick(LONG_NAMES).to_string())
        }
    } else if r.chance(85) {
        Some(r.pick(SHORT_NAMES).to_string())
    } else {
        None
    };
    let company = if admissible && kind.as_deref() == Some("company") {
        Some(format!("{}公司{i}", r.pick(LONG_NAMES)))
    } else {
        odd_text(&mut r, i)
    };
    let mobile = if admissible {
        Some(r.pick(&valid_notations(&d)))
    } else {
        phone(&d, &mut r)
    };
    let verified = if admissible {
        Some(r.pick(&["true", "t", "yes", "on", "1"]))
    } else {
        r.pick(&[Some("true"), Some("false"), Some("f"), Some("no"), None])
    };
    let score = if admissible {
        r.pick(&[
            "60",
            "60.4",
            "75",
            "99.99",
            "100",
            "101",
            "1e2",
            " 88 ",
            "2147483647",
        ])
    } else {
        r.pick(&["-1", "0", "59", "59.4", "-2147483648", "75", "1000", "30.5"])
    };
    let score = if !admissible && r.chance(15) {
        None
    } else {
        Some(score.to_string())
    };
    let list = if admissible {
        Some("white")
    } else {
        r.pick(&[Some("white"), Some("grey"), None])
    };
    vec![
        kind,
        name,
        company,
        mobile,
        verified.map(str::to_string),
        score,
        list.map(str::to_string),
        odd_text(&mut r, i + 1),
        odd_text(&mut r, i + 2),
        odd_text(&mut r, i + 3),
        phone(&format!("137{:08}", i), &mut r),
        r.pick(&[
            Some("a@b.cn".to_string()),
            Some("not-an-email".to_string()),
            Some("😀@例子.中国".to_string()),
            Some("'; DROP TABLE x;--@y.z".to_string()),
            None,
        ])
        .or_else(|| odd_text(&mut r, i + 4)),
        odd_text(&mut r, i + 5),
    ]
}

/// A row for `crm.people`: text everywhere, so the "wrong types" get through: score 'abc',
/// phone_verified 'maybe', ids that are not numbers, unknown type / list_status values.
fn text_row(i: u64, salt: u64) -> Values {
    if i % 50 == 7 {
        return vec![None; PEOPLE.cols.len()]; // NULL in every column, the id too
    }
    let mut r = Rng::new(i * 104_729 + salt);
    let id = match r.below(14) {
        0 => Some(format!(" {} ", 900_000 + i)),
        1 => Some(format!("0{}", 900_000 + i)),
        2 => Some(
            r.pick(&[
                "abc",
                "",
                "9e5",
                "12.5",
                "１２３",
                "99999999999999999999",
                "NaN",
            ])
            .to_string(),
        ),
        3 => None,
        4 => Some(format!("+{}", 900_000 + i)),
        _ => Some(format!("{}", 900_000 + i)),
    };
    let pick = |r: &mut Rng, items: &[Option<&str>]| r.pick(items).map(str::to_string);
    let d = format!("139{:08}", 50_000_000 + i);
    vec![
        id,
        pick(
            &mut r,
            &[
                Some("company"),
                Some("personal"),
                Some("COMPANY"),
                Some("robot"),
                Some(""),
                Some(" personal"),
                Some("个人"),
                None,
            ],
        ),
        if r.chance(50) {
            Some(r.pick(LONG_NAMES).to_string())
        } else {
            odd_text(&mut r, i)
        },
        odd_text(&mut r, i + 1),
        phone(&d, &mut r),
        pick(
            &mut r,
            &[
                Some("maybe"),
                Some("true"),
                Some("t"),
                Some("1"),
                Some("yes"),
                Some(""),
                None,
            ],
        ),
        pick(
            &mut r,
            &[
                Some("abc"),
                Some("75"),
                Some("60.5"),
                Some("1e400"),
                Some("NaN"),
                Some("-Infinity"),
                Some("99999999999999999999999"),
                Some(" 80 "),
                Some(""),
                None,
            ],
        ),
        pick(
            &mut r,
            &[
                Some("white"),
                Some("grey"),
                Some("black"),
                Some("WHITE"),
                Some("white "),
                Some(""),
                None,
            ],
        ),
        odd_text(&mut r, i + 2),
        odd_text(&mut r, i + 3),
        odd_text(&mut r, i + 4),
    ]
}

/// SQL literal for the simple-query protocol (standard_conforming_strings is on).
fn literal(v: &Option<String>, cast: &str) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{}'::{cast}", s.replace('\'', "''")),
    }
}

/// Statements written and the ones the database refused (with their errors).
#[derive(Default)]
struct Writes {
    attempted: usize,
    failed: Vec<String>,
}

impl Writes {
    fn record<T>(&mut self, what: &str, res: std::result::Result<T, postgres::Error>) -> Option<T> {
        self.attempted += 1;
        match res {
            Ok(v) => Some(v),
            Err(e) => {
                self.failed.push(format!("{what}: {e}"));
                None
            }
        }
    }
}

fn params(vals: &[Option<String>]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    vals.iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// Insert `rows` into `t` in groups of 10, rotating through four statement shapes: single-row
/// INSERTs with parameters, one multi-row INSERT … VALUES, INSERT … SELECT FROM unnest(arrays),
/// and single-row INSERTs as plain SQL text (simple-query protocol, quoted literals).
fn insert_rows(db: &mut postgres::Client, t: &Table, rows: &[Values], w: &mut Writes) {
    let cols: Vec<&str> = t.cols.iter().map(|c| c.0).collect();
    let collist = cols.join(", ");
    let one = |base: usize| {
        t.cols
            .iter()
            .enumerate()
            .map(|(k, (_, cast))| format!("${}::text::{cast}", base + k + 1))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (g, group) in rows.chunks(10).enumerate() {
        match g % 4 {
            0 => {
                let sql = format!("INSERT INTO {} ({collist}) VALUES ({})", t.name, one(0));
                for row in group {
                    w.record("single-row insert", db.execute(sql.as_str(), &params(row)));
                }
            }
            1 => {
                let values: Vec<String> = (0..group.len())
                    .map(|k| format!("({})", one(k * t.cols.len())))
                    .collect();
                let sql = format!(
                    "INSERT INTO {} ({collist}) VALUES {}",
                    t.name,
                    values.join(", ")
                );
                let flat: Values = group.iter().flatten().cloned().collect();
                w.record("multi-row insert", db.execute(sql.as_str(), &params(&flat)));
            }
            2 => {
                let arrays: Vec<String> = t
                    .cols
                    .iter()
                    .enumerate()
                    .map(|(k, (_, cast))| format!("${}::text[]::{cast}[]", k + 1))
                    .collect();
                let sql = format!(
                    "INSERT INTO {} ({collist}) SELECT * FROM unnest({})",
                    t.name,
                    arrays.join(", ")
                );
                let columns: Vec<Values> = (0..t.cols.len())
                    .map(|k| group.iter().map(|row| row[k].clone()).collect())
                    .collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = columns
                    .iter()
                    .map(|c| c as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                w.record("unnest insert", db.execute(sql.as_str(), &refs));
            }
            _ => {
                for row in group {
                    let vals: Vec<String> = row
                        .iter()
                        .zip(t.cols)
                        .map(|(v, (_, cast))| literal(v, cast))
                        .collect();
                    let sql = format!(
                        "INSERT INTO {} ({collist}) VALUES ({})",
                        t.name,
                        vals.join(", ")
                    );
                    w.record("plain-SQL insert", db.batch_execute(&sql));
                }
            }
        }
    }
}

/// Updates of existing rows: whole rows replaced one by one (parameters and plain SQL), and
/// multi-row UPDATEs that edit text, flip rows to admissible, rewrite phones in other notations
/// from arrays, or touch only columns the sync does not map.
fn update_rows(
    db: &mut postgres::Client,
    t: &Table,
    replace: &[(String, Values)],
    multi: &[&str],
    w: &mut Writes,
) {
    let sets: Vec<String> = t
        .cols
        .iter()
        .enumerate()
        .map(|(k, (c, cast))| format!("{c} = ${}::text::{cast}", k + 1))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE {} = ${}::text::{}",
        t.name,
        sets.join(", "),
        t.id_col,
        t.cols.len() + 1,
        t.id_cast
    );
    for (n, (id, row)) in replace.iter().enumerate() {
        if n % 3 == 2 {
            let sets: Vec<String> = row
                .iter()
                .zip(t.cols)
                .map(|(v, (c, cast))| format!("{c} = {}", literal(v, cast)))
                .collect();
            let plain = format!(
                "UPDATE {} SET {} WHERE {} = {}",
                t.name,
                sets.join(", "),
                t.id_col,
                literal(&Some(id.clone()), t.id_cast)
            );
            w.record("plain-SQL update", db.batch_execute(&plain));
        } else {
            let mut vals = row.clone();
            vals.push(Some(id.clone()));
            w.record(
                "single-row update",
                db.execute(sql.as_str(), &params(&vals)),
            );
        }
    }
    for m in multi {
        w.record("multi-row update", db.batch_execute(m));
    }
}

/// ERP customers sharing a khid and sharing a non-empty mobile (the duplicate figures of
/// sync_chaos.rs, which keeps its computation private to that file).
fn erp_duplicates(w: &World) -> Result<(usize, usize, HashSet<String>)> {
    let mut by_khid: HashMap<String, usize> = HashMap::new();
    let mut by_mobile: HashMap<String, usize> = HashMap::new();
    for c in w.erp_customers()? {
        if let Some(k) = field(&c, "khid") {
            *by_khid.entry(k).or_default() += 1;
        }
        if let Some(m) = field(&c, "mobile").filter(|m| !m.is_empty()) {
            *by_mobile.entry(m).or_default() += 1;
        }
    }
    let dup_khid = by_khid.values().filter(|n| **n > 1).count();
    let dup_mobile = by_mobile.values().filter(|n| **n > 1).count();
    Ok((dup_khid, dup_mobile, by_khid.into_keys().collect()))
}

/// A reason as a short group key: digits folded, clipped.
fn reason_key(r: &str) -> String {
    let mut out = String::new();
    let mut last_digit = false;
    for ch in r.chars() {
        if ch.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            out.push(ch);
            last_digit = false;
        }
    }
    out.chars().take(64).collect()
}

fn grouped(reasons: &[String]) -> String {
    let mut g: BTreeMap<String, usize> = BTreeMap::new();
    for r in reasons {
        *g.entry(reason_key(r)).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = g.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v.iter()
        .map(|(r, n)| format!("{n}×{r:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Outbox rows skipped / dead without a reason, and rejections whose reasons array is empty or
/// holds an empty / non-string reason, in one database.
fn unexplained(db: &mut postgres::Client) -> Result<(i64, i64, i64)> {
    let row = db.query_one(
        "SELECT (SELECT count(*) FROM erp_sync.outbox WHERE status = 'skipped' AND coalesce(btrim(last_error), '') = ''),
                (SELECT count(*) FROM erp_sync.outbox WHERE status = 'dead' AND coalesce(btrim(last_error), '') = ''),
                (SELECT count(*) FROM erp_sync.rejections r
                  WHERE CASE WHEN jsonb_typeof(r.reasons) = 'array'
                             THEN jsonb_array_length(r.reasons) = 0
                                  OR EXISTS (SELECT FROM jsonb_array_elements(r.reasons) e
                                             WHERE jsonb_typeof(e) <> 'string' OR btrim(e #>> '{}') = '')
                             ELSE true END)",
        &[],
    )?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}

#[test]
fn chaos_bad_input() -> Result<()> {
    let n = u64::try_from(env_num("CHAOS_BAD_INPUT_ROWS", 500).max(20)).unwrap_or(500);
    let n_text = (n / 4).max(20);
    let started = Instant::now();
    let w = World::start()?;

    // The second platform: its own database, a contact table with only text columns.
    w.pg.connect_db("postgres")?
        .batch_execute("CREATE DATABASE erp_text")?;
    let mut text_db = w.pg.connect_db("erp_text")?;
    text_db.batch_execute("CREATE EXTENSION erp_sync")?;
    text_db
        .batch_execute(PEOPLE_DDL)
        .context("tracking crm.people")?;

    let http = |p: u16| format!("127.0.0.1:{p}");
    let (p1, p2) = (http(free_port()), http(free_port()));
    let mut sidecar = w.sidecar("bad1", &[("ERP_SYNC_HTTP_LISTEN_ADDR", p1.as_str())])?;
    let text_url = w.pg.worker_url("erp_text");
    let mut text_sidecar = w.sidecar(
        "bad2",
        &[
            ("ERP_SYNC_HTTP_LISTEN_ADDR", p2.as_str()),
            ("ERP_SYNC_DATABASE_URL", text_url.as_str()),
        ],
    )?;

    // ---- typed platform table: inserts in four shapes, then updates in four shapes ----
    let mut writes = Writes::default();
    let mut db = w.pg.client()?;
    // Every 25th contact reuses the previous one's mobile in (most likely) another notation.
    let rows: Vec<Values> = (1..=n)
        .map(|i| typed_row(i, 1, (i % 25 == 0).then(|| i - 1)))
        .collect();
    insert_rows(&mut db, &CONTACTS, &rows, &mut writes);
    let ids: Vec<i64> = db
        .query("SELECT id FROM mp.contacts ORDER BY id", &[])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let replace: Vec<(String, Values)> = ids
        .iter()
        .filter(|id| *id % 5 == 0)
        .map(|id| {
            let i = u64::try_from(*id).unwrap_or(0);
            // Every 13th replacement takes the next contact's mobile (a conflict in the ERP).
            (
                id.to_string(),
                typed_row(i, 2, (i % 13 == 0).then_some(i + 1)),
            )
        })
        .collect();
    let phone_ids: Vec<i64> = ids.iter().copied().filter(|id| id % 4 == 1).collect();
    let mut pr = Rng::new(99);
    let phones: Values = phone_ids
        .iter()
        .map(|id| phone(&format!("139{id:08}"), &mut pr))
        .collect();
    let scores: Values = phone_ids
        .iter()
        .map(|id| Some(format!("{}", 55 + id % 50)))
        .collect();
    let multi = [
        "UPDATE mp.contacts SET name = coalesce(name, '') || ' 改·🚀' WHERE id % 7 = 3",
        "UPDATE mp.contacts SET phone_verified = true, list_status = 'white' WHERE id % 6 = 1",
        "UPDATE mp.contacts SET updated_at = now() WHERE id % 11 = 0",
        "UPDATE mp.contacts SET name = name, notes = notes WHERE id % 9 = 0",
        r"UPDATE mp.contacts SET address = E'\\\'' || coalesce(address, '') || '''; --' WHERE id % 8 = 5",
    ];
    update_rows(&mut db, &CONTACTS, &replace, &multi, &mut writes);
    // Phones rewritten in other notations, many rows from parameter arrays in one statement.
    writes.record(
        "unnest update",
        db.execute(
            "UPDATE mp.contacts c SET phone = u.p, score = u.s::float8
             FROM unnest($1::int8[], $2::text[], $3::text[]) AS u (id, p, s) WHERE c.id = u.id",
            &[&phone_ids, &phones, &scores],
        ),
    );

    // ---- text-only platform table ----
    let text_rows: Vec<Values> = (1..=n_text).map(|i| text_row(i, 1)).collect();
    insert_rows(&mut text_db, &PEOPLE, &text_rows, &mut writes);
    let text_replace: Vec<(String, Values)> = text_rows
        .iter()
        .enumerate()
        .filter(|(k, _)| k % 4 == 0)
        .filter_map(|(k, row)| {
            let id = row[0].clone()?;
            let mut new = text_row(u64::try_from(k).unwrap_or(0) + 1, 2);
            new[0] = Some(id.clone());
            Some((id, new))
        })
        .collect();
    update_rows(
        &mut text_db,
        &PEOPLE,
        &text_replace,
        &[
            "UPDATE crm.people SET rating = 'abc', verified = 'maybe' WHERE length(coalesce(pid, '')) % 2 = 0",
            "UPDATE crm.people SET list = 'white', kind = 'personal', rating = '90', verified = 'true'",
            "UPDATE crm.people SET memo = memo",
        ],
        &mut writes,
    );

    // ---- let both sidecars finish ----
    let settle = Duration::from_secs(120 + n / 4);
    w.settle(settle, &[&sidecar])?;
    let text_unfinished = |c: &mut postgres::Client| -> Result<i64> {
        Ok(c.query_one(
            "SELECT count(*) FROM erp_sync.outbox WHERE status IN ('pending', 'running')",
            &[],
        )?
        .try_get(0)?)
    };
    if !wait_until(settle, || matches!(text_unfinished(&mut text_db), Ok(0))) {
        bail!(
            "the text platform's outbox did not settle: {}",
            text_sidecar.proc.output()
        );
    }

    // ---- figures: typed platform ----
    // Per contact: admitted now (the extension's verdict on the current row), its latest customer
    // outbox row, its rejection, its ERP link.
    let state = db.query(
        "WITH last AS (SELECT DISTINCT ON (contact_id) contact_id, status, last_error FROM erp_sync.outbox
                       WHERE kind = 'customer' ORDER BY contact_id, id DESC)
         SELECT c.id, (erp_sync.contact_payload(c.id::text) -> 'admission' ->> 'passed')::bool,
                l.status, l.last_error, r.contact_id IS NOT NULL, k.erp_ord
         FROM mp.contacts c
         LEFT JOIN last l ON l.contact_id = c.id::text
         LEFT JOIN erp_sync.rejections r ON r.contact_id = c.id::text
         LEFT JOIN erp_sync.customer_link k ON k.contact_id = c.id::text
         ORDER BY c.id",
        &[],
    )?;
    let (dup_khid, dup_mobile, khids) = erp_duplicates(&w)?;
    let mut f = BadInput {
        rows: ids.len(),
        ..BadInput::default()
    };
    for r in &state {
        let id: i64 = r.try_get(0)?;
        let admitted_now: Option<bool> = r.try_get(1)?;
        let status: Option<String> = r.try_get(2)?;
        let reason: Option<String> = r.try_get(3)?;
        let rejected: bool = r.try_get(4)?;
        let erp_ord: Option<i64> = r.try_get(5)?;
        let reason = reason.filter(|s| !s.trim().is_empty());
        if status.is_some() || rejected {
            f.captured += 1;
        } else {
            f.uncaptured.push(id);
        }
        if rejected {
            f.rejected += 1;
            if admitted_now == Some(true) {
                f.stale_rejections.push(id);
            }
        } else if admitted_now == Some(false) && status.as_deref() != Some("skipped") {
            // failing admission now, yet no rejection and no skipped row saying why
            f.unexplained_not_admitted.push(id);
        }
        let Some(status) = status else {
            if admitted_now == Some(true) {
                f.lost.push(format!("{id}: admitted but never queued"));
            }
            continue;
        };
        f.admitted += 1;
        match (status.as_str(), reason) {
            ("done", _) => {
                if erp_ord.is_some() && khids.contains(&format!("WX{id}")) {
                    f.synced += 1;
                } else {
                    f.lost
                        .push(format!("{id}: done but not in the ERP (ord {erp_ord:?})"));
                }
            }
            ("skipped", Some(r)) => f.skipped.push(r),
            // The ERP's own refusal (e.g. its duplicate-mobile rule when two contacts with one
            // mobile are created at once) ends a row dead with the ERP's text: visible in the
            // queue and the alerts, retried by retry_failed(). Any other death is lost work.
            ("dead", Some(r)) if r.starts_with("ERP refused:") => f.admitted_dead += 1,
            (s, r) => f.lost.push(format!("{id}: ended {s} ({r:?})")),
        }
    }
    let (skip_no_reason, dead_no_reason, bad_rejections) = unexplained(&mut db)?;
    // Every dead row as "kind/step: reason" (step: the last sync_log action of the row).
    f.dead = db
        .query(
            "SELECT o.kind || '/' || coalesce((SELECT l.action FROM erp_sync.sync_log l WHERE l.outbox_id = o.id
                                                ORDER BY l.id DESC LIMIT 1), '-') || ': ' || coalesce(o.last_error, '')
             FROM erp_sync.outbox o WHERE o.status = 'dead' ORDER BY o.id",
            &[],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;

    // ---- figures: text-only platform ----
    // Contact keys are text: every id that is not NULL is a key as written ('abc', '0900007',
    // ' 900007 '); a key the ERP would not keep as sent (padded, empty) is a recorded rejection.
    let usable: HashSet<String> = text_rows.iter().filter_map(|r| r[0].clone()).collect();
    let text_rejected: HashSet<String> = text_db
        .query("SELECT contact_id FROM erp_sync.rejections", &[])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let text_queued: HashSet<String> = text_db
        .query("SELECT DISTINCT contact_id FROM erp_sync.outbox", &[])?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    let text_uncaptured = usable
        .iter()
        .filter(|id| !text_rejected.contains(*id) && !text_queued.contains(*id))
        .count();
    let text_unkeyed = text_rows.iter().filter(|r| r[0].is_none()).count();
    let (t_skip_no_reason, t_dead_no_reason, t_bad_rejections) = unexplained(&mut text_db)?;
    let text_not_done: i64 = text_db
        .query_one(
            "SELECT count(*) FROM erp_sync.outbox WHERE status NOT IN ('done', 'skipped')",
            &[],
        )?
        .try_get(0)?;

    // ---- the processes ----
    let capture_failures = w.pg.log().matches("erp_sync: capture on").count();
    let alive = sidecar.proc.is_running() && text_sidecar.proc.is_running();
    let logs = format!("{}{}", sidecar.proc.output(), text_sidecar.proc.output());
    let panics = logs.matches("panicked").count();

    println!(
        "CHAOS bad_input: rows={} text_rows={} writes={} write_failures={} captured={} admitted={} synced={} \
         skipped=[{}] ended_dead={} rejected={} text_rejected={} text_unkeyed={} dead={} lost={} dup_khid={dup_khid} \
         dup_mobile={dup_mobile} capture_failures={capture_failures} sidecar_alive={alive} panics={panics} secs={}",
        f.rows,
        text_rows.len(),
        writes.attempted,
        writes.failed.len(),
        f.captured,
        f.admitted,
        f.synced,
        grouped(&f.skipped),
        f.admitted_dead,
        f.rejected,
        text_rejected.len(),
        text_unkeyed,
        if f.dead.is_empty() {
            "0".to_string()
        } else {
            format!("{}[{}]", f.dead.len(), grouped(&f.dead))
        },
        f.lost.len(),
        started.elapsed().as_secs()
    );

    assert!(
        writes.failed.is_empty(),
        "{} platform writes failed, e.g. {:?}",
        writes.failed.len(),
        writes.failed.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        f.uncaptured.is_empty(),
        "contacts neither queued nor rejected: {:?}",
        f.uncaptured
    );
    for lost in &f.lost {
        let id: i64 = lost
            .split(':')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        for r in db.query(
            "SELECT row_to_json(c)::text, erp_sync.contact_payload(c.id::text)::text,
                    (SELECT string_agg(format('%s %s %s', o.id, o.status, o.last_error), '; ' ORDER BY o.id)
                     FROM erp_sync.outbox o WHERE o.contact_id = c.id::text)
             FROM mp.contacts c WHERE c.id = $1",
            &[&id],
        )? {
            let (row, payload, outbox): (String, Option<String>, Option<String>) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            eprintln!("lost contact {id}: row {row}\n  payload {payload:?}\n  outbox {outbox:?}");
        }
    }
    assert!(f.lost.is_empty(), "lost: {:?}", f.lost);
    assert!(
        f.stale_rejections.is_empty(),
        "rejections of admitted contacts: {:?}",
        f.stale_rejections
    );
    assert!(
        f.unexplained_not_admitted.is_empty(),
        "not admitted, but no rejection / skip says why: {:?}",
        f.unexplained_not_admitted
    );
    assert!(
        f.synced > 0,
        "nothing synced: the scenario did not exercise the sync"
    );
    assert!(
        f.rejected > 0,
        "nothing rejected: the scenario did not exercise admission"
    );
    assert_eq!(
        (skip_no_reason, dead_no_reason, bad_rejections),
        (0, 0, 0),
        "skipped rows / dead rows / rejections without a reason"
    );
    assert_eq!(
        (t_skip_no_reason, t_dead_no_reason, t_bad_rejections),
        (0, 0, 0),
        "text platform: skipped rows / dead rows / rejections without a reason"
    );
    assert_eq!(
        text_uncaptured, 0,
        "text platform: rows with an id neither queued nor rejected"
    );
    assert!(!text_rejected.is_empty(), "text platform: nothing captured");
    assert_eq!(text_not_done, 0, "text platform: outbox rows not finished");
    assert_eq!((dup_khid, dup_mobile), (0, 0), "ERP duplicates");
    assert!(alive, "a sidecar exited:\n{logs}");
    assert_eq!(panics, 0, "panic in a sidecar log:\n{logs}");
    Ok(())
}

#[derive(Default)]
struct BadInput {
    rows: usize,
    captured: usize,
    uncaptured: Vec<i64>,
    admitted: usize,
    synced: usize,
    skipped: Vec<String>,
    /// every dead outbox row, "kind/step: reason"
    dead: Vec<String>,
    /// admitted contacts whose latest customer row is dead (with a reason)
    admitted_dead: usize,
    rejected: usize,
    stale_rejections: Vec<i64>,
    unexplained_not_admitted: Vec<i64>,
    lost: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Log retention.

/// Contact ids of the synthetic history (far from the real contacts' bigserial ids).
const SYNTHETIC_BASE: i64 = 2_000_000_000;
/// Contact ids of the rows retention must keep.
const GUARD_BASE: i64 = 1_900_000_000;

/// `batch` finished syncs as the sidecar leaves them (a `done` customer row and its `create`
/// sync_log entry with the traced request/response), finished two days ago (the test sets both
/// retention windows to one day).
const SYNTHETIC_BATCH: &str = "
WITH o AS (
    INSERT INTO erp_sync.outbox (contact_id, kind, status, attempts, created_at, updated_at, finished_at)
    SELECT $1::int8 + g, 'customer', 'done', 0, t - interval '3 seconds', t, t
    FROM generate_series($2::int8, $3::int8) g,
         LATERAL (SELECT now() - interval '2 days' - (g % 3600) * interval '1 second' AS t) x
    RETURNING id, contact_id, finished_at)
INSERT INTO erp_sync.sync_log (outbox_id, contact_id, action, erp_ord, request, response, outcome, duration_ms,
                               worker, created_at)
SELECT o.id, o.contact_id, 'create', 700000 + (o.contact_id::int8 - $1::int8),
       jsonb_build_array(
           jsonb_build_object('endpoint', '/webapi/v3/ov1/customer/add.asp', 'cmdkey', 'allocate', 'body',
                              jsonb_build_object('session', '***')),
           jsonb_build_object('endpoint', '/webapi/v3/ov1/customer/add.asp', 'cmdkey', '__sys_dosave', 'body',
               jsonb_build_object('intsort', 2, 'ord', 700000 + (o.contact_id::int8 - $1::int8), 'fields', jsonb_build_object(
                   'name', '留存客户' || o.contact_id, 'khid', 'WX' || o.contact_id, 'ly', '171',
                   'mobile', '137****' || lpad((o.contact_id::int8 % 10000)::text, 4, '0'),
                   'weixinAcc', 'wx_' || o.contact_id, 'address', '上海市浦东新区张江路' || (o.contact_id::int8 % 999) || '号',
                   'jz', '289', 'intro', '来自微信中台，评分: 80')))),
       jsonb_build_array(
           jsonb_build_object('endpoint', '/webapi/v3/ov1/customer/add.asp', 'http_status', 200, 'elapsed_ms', 4,
                              'body', jsonb_build_object('bill', jsonb_build_object('value', 700000 + (o.contact_id::int8 - $1::int8)))),
           jsonb_build_object('endpoint', '/webapi/v3/ov1/customer/add.asp', 'http_status', 200, 'elapsed_ms', 11,
                              'body', jsonb_build_object('message', jsonb_build_object('text', '保存成功', 'result', true)))),
       'success', 15, 'synthetic', o.finished_at
FROM o";

/// Rows retention must never delete: old pending (not yet due), running (leased by a worker that
/// is not here) and dead rows, and recent done / sync_log rows (inside the window).
const GUARDS: &str = "
INSERT INTO erp_sync.outbox (contact_id, kind, status, next_attempt_at, created_at, updated_at)
SELECT $1::int8 + g, 'customer', 'pending', now() + interval '10 days', now() - interval '40 days', now() - interval '40 days'
FROM generate_series(1, 20) g;
INSERT INTO erp_sync.outbox (contact_id, kind, status, lease_owner, lease_expires_at, created_at, updated_at)
SELECT $1::int8 + 100 + g, 'customer', 'running', 'ghost', now() + interval '10 days', now() - interval '40 days',
       now() - interval '40 days'
FROM generate_series(1, 20) g;
INSERT INTO erp_sync.outbox (contact_id, kind, status, last_error, created_at, updated_at, finished_at)
SELECT $1::int8 + 200 + g, 'customer', 'dead', 'ERP refused: 客户名称不能为空', now() - interval '40 days',
       now() - interval '40 days', now() - interval '40 days'
FROM generate_series(1, 20) g;
INSERT INTO erp_sync.outbox (contact_id, kind, status, created_at, updated_at, finished_at)
SELECT $1::int8 + 300 + g, 'customer', 'done', now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour'
FROM generate_series(1, 20) g;
INSERT INTO erp_sync.sync_log (contact_id, action, outcome, worker, created_at)
SELECT $1::int8 + 300 + g, 'create', 'success', 'guard', now() - interval '1 hour' FROM generate_series(1, 20) g";

const GUARD_SUMMARY: &str = "
SELECT (SELECT string_agg(status || '=' || n, ' ' ORDER BY status) FROM
          (SELECT status, count(*) n FROM erp_sync.outbox WHERE contact_id::int8 BETWEEN $1::int8 AND $1::int8 + 1000
           GROUP BY status) s)
       || ' log=' || (SELECT count(*) FROM erp_sync.sync_log WHERE worker = 'guard')";

fn mb(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[test]
fn chaos_log_retention() -> Result<()> {
    let events = env_num("CHAOS_LOG_EVENTS", 20_000).max(1000);
    let batch = env_num("CHAOS_LOG_BATCH", (events / 20).clamp(100, 20_000)).max(1);
    let batches = (events + batch - 1) / batch;
    let real = env_num("CHAOS_LOG_REAL_CONTACTS", 200).max(0);
    let pause =
        Duration::from_millis(u64::try_from(env_num("CHAOS_LOG_PAUSE_MS", 500)).unwrap_or(500));
    let retention_ms = env_num("CHAOS_LOG_RETENTION_MS", 500).max(0).to_string();
    assert!(
        batches >= 4,
        "need at least 4 batches to compare halves ({events} events of {batch})"
    );
    let started = Instant::now();

    let w = World::start()?;
    // Deleted rows become reusable space only after a vacuum: let autovacuum look every second
    // (its default minute would stretch the test, not change what it proves).
    w.exec("ALTER SYSTEM SET autovacuum_naptime = '1s'")?;
    w.exec("SELECT pg_reload_conf()")?;
    w.exec(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('retention.done_days', '1'), ('retention.sync_log_days', '1')
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )?;
    let mut db = w.pg.client()?;
    db.batch_execute(&GUARDS.replace("$1::int8", &GUARD_BASE.to_string()))?;
    let guards_before: String = db.query_one(GUARD_SUMMARY, &[&GUARD_BASE])?.try_get(0)?;

    let port = format!("127.0.0.1:{}", free_port());
    let mut sidecar = w.sidecar(
        "ret",
        &[
            ("ERP_SYNC_HTTP_LISTEN_ADDR", port.as_str()),
            ("ERP_SYNC_RETENTION_INTERVAL_MS", retention_ms.as_str()),
            ("ERP_SYNC_RETENTION_PAUSE_MS", "10"),
        ],
    )?;

    let size_sql = "SELECT pg_total_relation_size('erp_sync.outbox') + pg_total_relation_size('erp_sync.sync_log')";
    let mut sizes: Vec<i64> = Vec::new();
    let mut written = 0i64;
    let mut real_written = 0i64;
    for b in 0..batches {
        let lo = b * batch + 1;
        let hi = ((b + 1) * batch).min(events);
        db.execute(SYNTHETIC_BATCH, &[&SYNTHETIC_BASE, &lo, &hi])?;
        written += hi - lo + 1;
        // Real traffic, spread over the run: contacts with one follow-up each.
        let upto = real * (b + 1) / batches;
        if upto > real_written {
            db.execute(
                "INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status, wechat_id, address)
                 SELECT 'personal', '留存真客户' || g, '137' || lpad(g::text, 8, '0'), true, 80, 'white', 'wxr' || g, '杭州市'
                 FROM generate_series($1::int8, $2::int8) g",
                &[&(real_written + 1), &upto],
            )?;
            db.execute(
                "INSERT INTO mp.signals (contact_id, content)
                 SELECT id, '留存测试 考虑中' FROM mp.contacts WHERE name LIKE '留存真客户%' AND id NOT IN
                   (SELECT contact_id FROM mp.signals) ORDER BY id",
                &[],
            )?;
            real_written = upto;
        }
        sizes.push(db.query_one(size_sql, &[])?.try_get(0)?);
        std::thread::sleep(pause);
    }
    let write_secs = started.elapsed().as_secs();

    // Real traffic all synced (the guard rows stay pending / running on purpose); then give
    // retention time to finish the last batches.
    let real_busy = |c: &mut postgres::Client| -> Result<i64> {
        Ok(c.query_one(
            "SELECT count(*) FROM erp_sync.outbox WHERE status IN ('pending', 'running') AND contact_id::int8 < $1::int8",
            &[&GUARD_BASE],
        )?
        .try_get(0)?)
    };
    let settle = Duration::from_secs(120 + u64::try_from(real).unwrap_or(0) / 2);
    if !wait_until(settle, || matches!(real_busy(&mut db), Ok(0))) {
        bail!(
            "real traffic did not settle within {settle:?} ({} rows unfinished):\n{}",
            real_busy(&mut db)?,
            sidecar
                .proc
                .output()
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let aged_left = |c: &mut postgres::Client| -> Result<(i64, i64)> {
        let r = c.query_one(
            "SELECT (SELECT count(*) FROM erp_sync.outbox WHERE contact_id::int8 > $1::int8),
                    (SELECT count(*) FROM erp_sync.sync_log WHERE worker = 'synthetic')",
            &[&SYNTHETIC_BASE],
        )?;
        Ok((r.try_get(0)?, r.try_get(1)?))
    };
    let drain = Duration::from_secs(30 + u64::try_from(events / 20_000).unwrap_or(0));
    let drained = wait_until(drain, || matches!(aged_left(&mut db), Ok((0, 0))));
    let (left_outbox, left_log) = aged_left(&mut db)?;
    let final_size: i64 = db.query_one(size_sql, &[])?.try_get(0)?;
    let guards_after: String = db.query_one(GUARD_SUMMARY, &[&GUARD_BASE])?.try_get(0)?;
    let autovacuums: i64 = db
        .query_one(
            "SELECT coalesce(sum(autovacuum_count), 0)::int8 FROM pg_stat_user_tables
             WHERE schemaname = 'erp_sync' AND relname IN ('outbox', 'sync_log')",
            &[],
        )?
        .try_get(0)?;

    // Real contacts: every outbox row done, each in the ERP exactly once.
    let real_ids: Vec<i64> = db
        .query(
            "SELECT id FROM mp.contacts WHERE name LIKE '留存真客户%' ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    // (kind, status, rows) of the real contacts' outbox rows; an `assign` row queued by the
    // engine for a customer created without one may be there too.
    let real_rows: Vec<(String, String, i64)> = db
        .query(
            "SELECT kind, status, count(*) FROM erp_sync.outbox WHERE contact_id = ANY ($1::int8[]::text[])
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[&real_ids],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_>>()?;
    let real_done = |kind: &str| {
        real_rows
            .iter()
            .filter(|(k, s, _)| k == kind && s == "done")
            .map(|r| r.2)
            .sum::<i64>()
    };
    let real_unfinished: i64 = real_rows
        .iter()
        .filter(|(_, s, _)| s != "done" && s != "skipped")
        .map(|r| r.2)
        .sum();
    let (dup_khid, dup_mobile, khids) = erp_duplicates(&w)?;
    let real_synced = real_ids
        .iter()
        .filter(|id| khids.contains(&format!("WX{id}")))
        .count();

    let half = sizes.len() / 2;
    let first_half = sizes[..half].iter().copied().max().unwrap_or(0);
    let second_half = sizes[half..].iter().copied().max().unwrap_or(0);
    let peak = first_half.max(second_half);
    let first = sizes.first().copied().unwrap_or(1).max(1);
    let alive = sidecar.proc.is_running();
    let log = sidecar.proc.output();
    println!(
        "CHAOS log_retention: events={written} batch={batch} batches={batches} real_contacts={} real_synced={real_synced} \
         deleted_outbox={} deleted_sync_log={} left_aged={} first_batch_mb={:.1} peak_mb={:.1} final_mb={:.1} \
         peak_over_first={:.2} peak_first_half_mb={:.1} peak_second_half_mb={:.1} autovacuums={autovacuums} \
         guards=[{guards_after}] write_secs={write_secs} secs={}",
        real_ids.len(),
        written - left_outbox,
        written - left_log,
        left_outbox + left_log,
        mb(first),
        mb(peak),
        mb(final_size),
        peak as f64 / first as f64,
        mb(first_half),
        mb(second_half),
        started.elapsed().as_secs()
    );
    let curve: Vec<String> = sizes.iter().map(|s| format!("{:.1}", mb(*s))).collect();
    eprintln!("sizes after each batch (MB): {}", curve.join(" "));

    // Bounded: with retention working the size levels off after a few batches; without it the
    // second half ends about twice as big as the first (every batch adds the same bytes).
    assert!(
        second_half * 2 <= first_half * 3,
        "size not bounded: second-half peak {:.1} MB > 1.5 × first-half peak {:.1} MB ({})",
        mb(second_half),
        mb(first_half),
        curve.join(" ")
    );
    assert!(
        drained,
        "retention left {left_outbox} outbox / {left_log} sync_log rows past the window:\n{}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(
        log.contains("retention: pruned"),
        "the sidecar never reported pruning:\n{log}"
    );
    assert_eq!(guards_after, guards_before, "rows retention must keep");
    assert_eq!(real_ids.len() as i64, real);
    assert_eq!(
        (
            real_done("customer"),
            real_done("followup"),
            real_unfinished
        ),
        (real, real, 0),
        "real traffic outbox rows: {real_rows:?}"
    );
    assert_eq!(real_synced, real_ids.len(), "real contacts in the ERP");
    assert_eq!((dup_khid, dup_mobile), (0, 0), "ERP duplicates");
    assert!(alive, "the sidecar exited:\n{log}");
    assert!(
        !log.contains("panicked"),
        "panic in the sidecar log:\n{log}"
    );
    Ok(())
}
