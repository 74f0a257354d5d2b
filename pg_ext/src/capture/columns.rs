//! Entities, their spec field names, and reading a tuple through a column map.
//!
//! The capture triggers are created by `track()` with its column map as trigger arguments:
//! `capture('<entity>', '<column for field 1>', '<column for field 2>', ...)` in the order of
//! [`fields`], `''` for a field the table does not have. So the hot path needs no lookup at all.

use erp_sync_rules::admission::{ContactView, Val};
use pgrx::pg_sys;
use std::ffi::{CStr, CString};

/// One field read from a tuple: its text form (for change detection) and typed value (for rules).
#[derive(Debug, Clone)]
pub struct Field {
    pub raw: Option<String>,
    pub val: Val,
}

/// A row of an entity in spec field names, read from a tuple.
#[derive(Debug, Clone)]
pub struct Row {
    pub entity: &'static [&'static str],
    pub fields: Vec<Field>,
}

impl Row {
    pub fn get(&self, name: &str) -> &Val {
        static MISSING: Val = Val::Missing;
        self.entity
            .iter()
            .position(|f| *f == name)
            .and_then(|i| self.fields.get(i))
            .map_or(&MISSING, |f| &f.val)
    }

    pub fn raw(&self, name: &str) -> Option<&str> {
        self.entity
            .iter()
            .position(|f| *f == name)
            .and_then(|i| self.fields.get(i))
            .and_then(|f| f.raw.as_deref())
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        as_i64(self.get(name))
    }

    /// A contact key (contact `id`, thread/signal `contact_id`): the column's text form as
    /// Postgres writes it (`42` for a bigint, the canonical lower-case form for a uuid, a text id
    /// as stored); `None` for NULL or an unmapped field.
    pub fn key(&self, name: &str) -> Option<String> {
        self.raw(name).map(str::to_owned)
    }

    /// Did any of `names` (all fields when empty) change between `old` and `self`?
    pub fn changed_from(&self, old: &Row, names: &[&str]) -> bool {
        if names.is_empty() {
            return self
                .fields
                .iter()
                .zip(&old.fields)
                .any(|(a, b)| a.raw != b.raw);
        }
        names.iter().any(|n| self.raw(n) != old.raw(n))
    }

    pub fn contact_view(&self) -> ContactView {
        ContactView {
            phone: self.get("phone").clone(),
            name: self.get("name").clone(),
            phone_verified: self.get("phone_verified").clone(),
            score: self.get("score").clone(),
            kind: self.get("type").clone(),
            company: self.get("company").clone(),
            list_status: self.get("list_status").clone(),
            address: self.get("address").clone(),
            wechat_id: self.get("wechat_id").clone(),
            conversation: None,
        }
    }
}

/// An integer id / score from a value of any reasonable type (bigint, numeric, '42', '85.0').
pub fn as_i64(v: &Val) -> Option<i64> {
    let n = match v {
        Val::Number(n) => *n,
        Val::Text(s) => erp_sync_rules::parse_number(s)?,
        _ => return None,
    };
    (n.is_finite() && n.abs() < 9.0e15).then(|| n.floor() as i64)
}

/// Classify a column type the way `json_build_object()` would (the payload lookup), so trigger and
/// payload paths agree.
fn typed(type_oid: pg_sys::Oid, text: String) -> Val {
    use pgrx::pg_sys::BuiltinOid as B;
    match B::from_u32(type_oid.to_u32()) {
        Ok(B::BOOLOID) => Val::Bool(text == "t"),
        Ok(
            B::INT2OID
            | B::INT4OID
            | B::INT8OID
            | B::NUMERICOID
            | B::FLOAT4OID
            | B::FLOAT8OID
            | B::OIDOID,
        ) => match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Val::Number(n),
            _ => Val::Other("number"),
        },
        Ok(B::JSONOID | B::JSONBOID) => Val::Other("json"),
        _ => Val::Text(text),
    }
}

/// One mapped column: its attribute number, type and output function (text form).
struct Attr {
    attnum: i32,
    type_oid: pg_sys::Oid,
    output: Box<pg_sys::FmgrInfo>,
}

/// Where each field of an entity sits in a tuple descriptor (`None`: not mapped, or no such
/// column, e.g. dropped since track()). Resolved once per statement, so reading a row costs one
/// output-function call per field and no catalog lookups.
pub struct Layout {
    entity: &'static [&'static str],
    attrs: Vec<Option<Attr>>,
    /// highest attribute number to deform
    last: i32,
}

/// Resolve the column names in `columns` (in the order of `entity`) against `tupdesc`.
///
/// # Safety
/// `tupdesc` must be a valid tuple descriptor (the trigger relation's).
pub unsafe fn layout(
    entity: &'static [&'static str],
    columns: &[String],
    tupdesc: pg_sys::TupleDesc,
) -> Layout {
    let attrs: Vec<Option<Attr>> = (0..entity.len())
        .map(|i| {
            let col = columns.get(i).map(String::as_str).unwrap_or("");
            let attnum = match CString::new(col) {
                Ok(c) if !col.is_empty() => pg_sys::SPI_fnumber(tupdesc, c.as_ptr()),
                _ => 0,
            };
            if attnum <= 0 {
                return None;
            }
            let type_oid = pg_sys::SPI_gettypeid(tupdesc, attnum);
            let (mut func, mut varlena) = (pg_sys::InvalidOid, false);
            pg_sys::getTypeOutputInfo(type_oid, &mut func, &mut varlena);
            let mut output = Box::new(pg_sys::FmgrInfo::default());
            pg_sys::fmgr_info(func, &mut *output);
            Some(Attr {
                attnum,
                type_oid,
                output,
            })
        })
        .collect();
    let last = attrs.iter().flatten().map(|a| a.attnum).max().unwrap_or(0);
    Layout {
        entity,
        attrs,
        last,
    }
}

/// Read the fields of a layout's entity from the tuple in `slot`.
///
/// # Safety
/// `slot` must hold a tuple of the descriptor `layout` was resolved with.
pub unsafe fn read_slot(layout: &mut Layout, slot: *mut pg_sys::TupleTableSlot) -> Row {
    if layout.last > 0 {
        pg_sys::slot_getsomeattrs_int(slot, layout.last);
    }
    let fields = layout
        .attrs
        .iter_mut()
        .map(|attr| match attr {
            None => Field {
                raw: None,
                val: Val::Missing,
            },
            Some(a) => {
                let i = (a.attnum - 1) as usize;
                if *(*slot).tts_isnull.add(i) {
                    return Field {
                        raw: None,
                        val: Val::Null,
                    };
                }
                let cstr = pg_sys::OutputFunctionCall(&mut *a.output, *(*slot).tts_values.add(i));
                let text = CStr::from_ptr(cstr).to_string_lossy().into_owned();
                pg_sys::pfree(cstr.cast());
                Field {
                    raw: Some(text.clone()),
                    val: typed(a.type_oid, text),
                }
            }
        })
        .collect();
    Row {
        entity: layout.entity,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_from_any_type() {
        assert_eq!(as_i64(&Val::Number(42.0)), Some(42));
        assert_eq!(as_i64(&Val::Text(" 7 ".into())), Some(7));
        assert_eq!(as_i64(&Val::Text("x".into())), None);
        assert_eq!(as_i64(&Val::Text("85.0".into())), Some(85));
        assert_eq!(as_i64(&Val::Text("NaN".into())), None);
        assert_eq!(as_i64(&Val::Null), None);
    }
}
