//! SPI helpers: prepared plans cached for the life of the backend (`SPI_keepplan`), keyed by
//! their SQL text. All SQL names are schema-qualified, so a cached plan never depends on the
//! caller's search_path.

use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiResult};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    static PLANS: RefCell<HashMap<String, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

pub const TEXT: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTOID);
pub const INT8_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT8ARRAYOID);
pub const INT4_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::INT4ARRAYOID);
pub const TEXT_ARRAY: PgOid = PgOid::BuiltIn(PgBuiltInOids::TEXTARRAYOID);

/// The cached plan for `sql`, preparing (and keeping) it on first use.
pub fn plan(
    client: &SpiClient<'_>,
    sql: &str,
    types: &[PgOid],
) -> SpiResult<Rc<OwnedPreparedStatement>> {
    if let Some(p) = PLANS.with(|p| p.borrow().get(sql).cloned()) {
        return Ok(p);
    }
    let prepared = Rc::new(client.prepare_mut(sql, types)?.keep());
    PLANS.with(|p| p.borrow_mut().insert(sql.to_string(), Rc::clone(&prepared)));
    Ok(prepared)
}

/// Forget every cached plan (after DDL that a plan cannot survive, e.g. a re-track).
pub fn forget_plans() {
    PLANS.with(|p| p.borrow_mut().clear());
}
