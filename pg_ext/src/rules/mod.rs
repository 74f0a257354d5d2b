//! SQL surface of the business rules. The rules themselves live in the workspace crate
//! `erp_sync_rules` (`rules/`), which the sidecar uses too; [`sql`] holds only the thin
//! `#[pg_extern]` wrappers.

pub mod sql;
