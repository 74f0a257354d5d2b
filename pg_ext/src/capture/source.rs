//! Change sources: `erp_sync.track_source(tbl, path)` — any table whose change should resync a
//! contact, with the way from its row to the contact key (a scoring row → its thread → the
//! thread's contact). The path becomes one SQL statement over the capture trigger's transition
//! tables (so a 100-row statement is one query), built and tried here once; the trigger runs it
//! and does for each contact what `request_sync()` does, plus its assignment; a source with
//! `followup` also turns each new row into a follow-up.

use crate::error::{ErpResult, ErpSyncError};
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier as q, quote_literal};
use serde::Deserialize;
use serde_json::{json, Value};

use super::relation::{self, TRIGGER_INSERT, TRIGGER_UPDATE};

/// One step of the way: rows of `table` whose column `to` equals the previous row's `from`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hop {
    pub table: String,
    pub from: String,
    pub to: String,
}

/// The columns of a row that becomes a follow-up: its integer id and its text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Followup {
    pub id: String,
    pub content: String,
}

/// `track_source`'s `path` argument.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Path {
    /// the column holding the contact key: of the last table of `via`, or of the tracked table
    pub key: String,
    #[serde(default)]
    pub via: Vec<Hop>,
    /// an UPDATE counts only when one of these columns changed (default: any column)
    pub watch: Option<Vec<String>>,
    /// each new row is a follow-up (and asks for no resync of its own)
    pub followup: Option<Followup>,
    /// queue the contact's assignment along with its customer row (default true; false with
    /// `followup`)
    pub assign: Option<bool>,
}

impl Path {
    pub fn parse(v: &Value) -> ErpResult<Path> {
        serde_json::from_value(v.clone()).map_err(|e| ErpSyncError::InvalidArgument {
            message: format!("erp_sync.track_source: invalid path {v}: {e}"),
            hint: r#"e.g. {"key": "contact_id"} or {"via": [{"table": "threads", "from": "thread_id", "to": "id"}], "key": "contact_id"}, optional "watch": [columns], "followup": {"id": .., "content": ..}, "assign": false"#.into(),
        })
    }

    pub fn assigns(&self) -> bool {
        self.assign.unwrap_or(self.followup.is_none())
    }
}

/// The statements a change source's trigger runs: each returns `(key text, ref bigint, content
/// text)` rows, `ref`/`content` NULL unless the source makes follow-ups.
#[derive(Debug, PartialEq)]
pub struct Resolution {
    pub on_insert: String,
    pub on_update: String,
}

/// The joins from the rows of `rel` (alias `n`) along the path, and the key expression.
fn joins(path: &Path, tables: &[String], rel: &str) -> (String, String) {
    let mut sql = format!("{rel} n");
    let mut prev = "n".to_string();
    for (i, hop) in path.via.iter().enumerate() {
        let alias = format!("h{}", i + 1);
        sql.push_str(&format!(
            " JOIN {} {alias} ON {alias}.{} = {prev}.{}",
            tables[i + 1],
            q(&hop.to),
            q(&hop.from)
        ));
        prev = alias;
    }
    (sql, format!("({prev}.{})::text", q(&path.key)))
}

/// Build the statements for `path` (pure: names already checked). `tables[0]` is the tracked
/// table, then one per hop (qualified names); `columns` the tracked table's (watched when the
/// path names none).
pub fn resolution(path: &Path, tables: &[String], columns: &[String]) -> Resolution {
    let (ins_from, ins_key) = joins(path, tables, "erp_sync_new");
    let (refs, content) = match &path.followup {
        Some(f) => (
            format!("(n.{})::bigint", q(&f.id)),
            format!("(n.{})::text", q(&f.content)),
        ),
        None => ("NULL::bigint".into(), "NULL::text".into()),
    };
    let on_insert = format!(
        "SELECT {ins_key} AS key, {refs} AS ref, {content} AS content FROM {ins_from} \
         WHERE {ins_key} IS NOT NULL"
    );
    // An UPDATE counts for the rows whose watched columns (with the first step of the path:
    // moving a row to another contact resyncs both) changed: the new rows without an identical
    // old row, and the old rows without an identical new one. Compared as jsonb, which every
    // type has (json, point, ... have no equality operator).
    let mut watched: Vec<String> = match &path.watch {
        Some(w) => w.clone(),
        None => columns.to_vec(),
    };
    let first = path.via.first().map_or(&path.key, |h| &h.from);
    if !watched.contains(first) {
        watched.push(first.clone());
    }
    let image = |alias: &str| {
        let cols = watched
            .iter()
            .map(|c| format!("{alias}.{}", q(c)))
            .collect::<Vec<_>>()
            .join(", ");
        format!("pg_catalog.jsonb_build_array({cols})")
    };
    let side = |rel: &str, other: &str| {
        let (from, key) = joins(path, tables, rel);
        format!(
            "SELECT {key} AS key FROM {from} WHERE NOT EXISTS \
             (SELECT 1 FROM {other} o WHERE {} = {})",
            image("o"),
            image("n")
        )
    };
    let on_update = format!(
        "SELECT DISTINCT c.key, NULL::bigint AS ref, NULL::text AS content FROM ({} UNION ALL {}) c \
         WHERE c.key IS NOT NULL",
        side("erp_sync_new", "erp_sync_old"),
        side("erp_sync_old", "erp_sync_new")
    );
    Resolution {
        on_insert,
        on_update,
    }
}

/// The qualified name of a relation named in a path (resolved with the caller's search_path, as
/// a `regclass` argument is) and its live columns.
fn relation(name: &str) -> ErpResult<(pg_sys::Oid, String, Vec<String>)> {
    let oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT pg_catalog.to_regclass($1)::oid",
        &[name.into()],
    )?
    .ok_or_else(|| ErpSyncError::InvalidArgument {
        message: format!("erp_sync.track_source: the path names {name}, which does not exist"),
        hint: "name each table of \"via\" as you would in a query (schema.table)".into(),
    })?;
    let info = relation::table_info(oid)?;
    Ok((oid, info.qualname, info.columns))
}

fn need_column(table: &str, columns: &[String], col: &str, role: &str) -> ErpResult<()> {
    if columns.iter().any(|c| c == col) {
        return Ok(());
    }
    Err(ErpSyncError::InvalidArgument {
        message: format!("erp_sync.track_source: {table} has no column {col} ({role})"),
        hint: format!("the columns of {table}: {}", columns.join(", ")),
    })
}

/// Check the path against the catalog and build its statements; each is tried once (over empty
/// stand-ins for the transition tables), so a type mismatch in a join fails here, not later in
/// a platform write.
pub fn prepare(tracked: &str, columns: &[String], path: &Path) -> ErpResult<Resolution> {
    let mut tables = vec![tracked.to_string()];
    let mut cols = columns.to_vec();
    let mut at = tracked.to_string();
    for hop in &path.via {
        need_column(&at, &cols, &hop.from, "\"from\" of a step")?;
        let (_, qual, next) = relation(&hop.table)?;
        need_column(&qual, &next, &hop.to, "\"to\" of a step")?;
        tables.push(qual.clone());
        at = qual;
        cols = next;
    }
    need_column(&at, &cols, &path.key, "\"key\": the contact key")?;
    for c in path.watch.iter().flatten() {
        need_column(tracked, columns, c, "\"watch\"")?;
    }
    if let Some(f) = &path.followup {
        need_column(tracked, columns, &f.id, "\"followup\" id")?;
        need_column(tracked, columns, &f.content, "\"followup\" content")?;
    }
    let r = resolution(path, &tables, columns);
    let stand_in = format!(
        "WITH erp_sync_new AS (SELECT * FROM {tracked} LIMIT 0), \
              erp_sync_old AS (SELECT * FROM {tracked} LIMIT 0) "
    );
    for sql in [&r.on_insert, &r.on_update] {
        let tried = super::guard::protected(|| {
            Spi::run(&format!("{stand_in}{sql}")).map_err(|e| e.to_string())
        });
        if let Err(why) = tried {
            return Err(ErpSyncError::InvalidArgument {
                message: format!("erp_sync.track_source: the path of {tracked} does not resolve: {why}"),
                hint: "each step joins \"to\" of its table to \"from\" of the row before: the two columns must be comparable (cast one in a view otherwise)".into(),
            });
        }
    }
    Ok(r)
}

/// `erp_sync.track_source(tbl, path)`: check the path, remember it, attach the triggers.
pub fn track_source_impl(relid: pg_sys::Oid, path_json: &Value) -> ErpResult<Value> {
    relation::require_0_2_0("change_sources", "change sources")?;
    let path = Path::parse(path_json)?;
    let info = relation::table_info(relid)?;
    relation::refuse_if_tracked(relid, &info.qualname, "a change source")?;
    let r = prepare(&info.qualname, &info.columns, &path)?;
    Spi::run_with_args(
        "INSERT INTO erp_sync.change_sources (relid, path) VALUES ($1::regclass, $2::jsonb) \
         ON CONFLICT (relid) DO UPDATE SET path = EXCLUDED.path, tracked_at = now()",
        &[relid.into(), path_json.to_string().into()],
    )?;
    let flags = json!({"followup": path.followup.is_some(), "assign": path.assigns()}).to_string();
    relation::drop_triggers(relid, &info.qualname)?;
    let args = |sql: &str| {
        format!(
            "'source', {}, {}",
            quote_literal(sql),
            quote_literal(&flags)
        )
    };
    Spi::run(&format!(
        "CREATE TRIGGER {TRIGGER_INSERT} AFTER INSERT ON {} REFERENCING NEW TABLE AS erp_sync_new \
         FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.capture({})",
        info.qualname,
        args(&r.on_insert)
    ))?;
    if path.followup.is_none() {
        Spi::run(&format!(
            "CREATE TRIGGER {TRIGGER_UPDATE} AFTER UPDATE ON {} \
             REFERENCING OLD TABLE AS erp_sync_old NEW TABLE AS erp_sync_new \
             FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.capture({})",
            info.qualname,
            args(&r.on_update)
        ))?;
    }
    Ok(json!({"entity": "source", "table": info.qualname, "path": path_json}))
}

/// Forget a change source; false when the table is none (or the schema is still 0.1.0's).
pub fn untrack_source(relid: pg_sys::Oid) -> ErpResult<bool> {
    relation::forget("change_sources", relid)
}

#[pg_extern(
    volatile,
    strict,
    parallel_unsafe,
    sql = "CREATE FUNCTION erp_sync.track_source(tbl regclass, path jsonb) RETURNS jsonb \
           VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'track_source_wrapper';"
)]
fn track_source(tbl: pg_sys::Oid, path: pgrx::JsonB) -> pgrx::JsonB {
    use crate::error::OrRaise;
    pgrx::JsonB(track_source_impl(tbl, &path.0).or_raise())
}

/// One row the trigger's statement resolved: the contact key, and for a follow-up source the
/// row's id and text.
pub struct Resolved {
    pub key: String,
    pub ref_id: Option<i64>,
    pub content: Option<String>,
}

/// Run a change source's statement over the transition tables of the current trigger call.
pub fn resolve(td: &pg_sys::TriggerData, sql: &str) -> pgrx::spi::SpiResult<Vec<Resolved>> {
    Spi::connect(|client| {
        // SAFETY: the trigger data of the running statement trigger; registering makes its
        // transition tables readable by name in this SPI connection only.
        unsafe {
            pg_sys::SPI_register_trigger_data(std::ptr::from_ref(td).cast_mut());
        }
        let mut out = Vec::new();
        for row in client.select(sql, None, &[])? {
            if let Some(key) = row.get::<String>(1)? {
                out.push(Resolved {
                    key,
                    ref_id: row.get::<i64>(2)?,
                    content: row.get::<String>(3)?,
                });
            }
        }
        Ok(out)
    })
}
