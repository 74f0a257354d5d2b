//! The one error type of the extension, mapped to real SQLSTATEs with a hint.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use std::fmt;

#[derive(Debug)]
pub enum ErpSyncError {
    /// `entity` is not contact/thread/signal/trigger.
    UnknownEntity(String),
    /// The column map is not a JSON object of strings.
    BadColumnMap(String),
    /// A key of the column map is not a field of the entity.
    UnknownField { entity: String, field: String },
    /// The column map names a column the table does not have.
    UnknownColumn {
        table: String,
        field: String,
        column: String,
    },
    /// A required field (id, contact_id) has no column.
    MissingRequiredColumn {
        table: String,
        entity: String,
        field: String,
    },
    /// A key column (contact id, thread/signal contact_id) whose type cannot be a contact key
    /// (integer, uuid, text); `legacy_schema`: a uuid/text key while the outbox still has the
    /// 0.1.0 bigint key (the extension not updated yet).
    UnsupportedKeyType {
        table: String,
        field: String,
        column: String,
        type_name: String,
        legacy_schema: bool,
    },
    /// track() on something that is not a table.
    NotATable(String),
    /// untrack() on a table that is not tracked.
    NotTracked(String),
    /// request_sync() before track('contact').
    NoContactTable,
    /// An argument outside its domain (kind, tier, ...).
    InvalidArgument { message: String, hint: String },
    /// SPI failed in a way that is not a Postgres ERROR (those propagate on their own).
    Spi(pgrx::spi::Error),
}

impl fmt::Display for ErpSyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErpSyncError::*;
        match self {
            UnknownEntity(e) => write!(f, "erp_sync: unknown entity \"{e}\""),
            BadColumnMap(why) => write!(f, "erp_sync: invalid column map: {why}"),
            UnknownField { entity, field } => {
                write!(f, "erp_sync: \"{field}\" is not a field of entity {entity}")
            }
            UnknownColumn {
                table,
                field,
                column,
            } => {
                write!(f, "erp_sync: column \"{column}\" (mapped from field {field}) does not exist in {table}")
            }
            MissingRequiredColumn {
                table,
                entity,
                field,
            } => {
                write!(
                    f,
                    "erp_sync: {table} has no column for required {entity} field \"{field}\""
                )
            }
            UnsupportedKeyType {
                table,
                field,
                column,
                type_name,
                legacy_schema: false,
            } => write!(
                f,
                "erp_sync: {table}.{column} (field {field}) is of type {type_name}: a contact key must be an integer, uuid or text column"
            ),
            UnsupportedKeyType {
                table,
                field,
                column,
                type_name,
                legacy_schema: true,
            } => write!(
                f,
                "erp_sync: {table}.{column} (field {field}) is of type {type_name}, and this database's erp_sync schema (0.1.0) keys contacts by bigint"
            ),
            NotATable(t) => write!(f, "erp_sync: {t} is not a table"),
            NotTracked(t) => write!(f, "erp_sync: {t} is not tracked"),
            NoContactTable => write!(f, "erp_sync: no contact table is tracked"),
            InvalidArgument { message, .. } => write!(f, "erp_sync: {message}"),
            Spi(e) => write!(f, "erp_sync: SPI failure: {e}"),
        }
    }
}

impl std::error::Error for ErpSyncError {}

impl From<pgrx::spi::Error> for ErpSyncError {
    fn from(e: pgrx::spi::Error) -> Self {
        ErpSyncError::Spi(e)
    }
}

impl ErpSyncError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        use ErpSyncError::*;
        match self {
            UnknownEntity(_) | BadColumnMap(_) | UnknownField { .. } | InvalidArgument { .. } => {
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE // 22023
            }
            UnknownColumn { .. } | MissingRequiredColumn { .. } => {
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN
            } // 42703
            UnsupportedKeyType { .. } => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, // 42804
            NotATable(_) => PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,              // 42809
            NotTracked(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,              // 42704
            NoContactTable => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, // 55000
            Spi(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, // XX000: a bug, not bad input
        }
    }

    pub fn hint(&self) -> Option<String> {
        use ErpSyncError::*;
        Some(match self {
            UnknownEntity(_) => format!("entity must be one of: {}", crate::entities::ENTITIES.join(", ")),
            BadColumnMap(_) => "pass a JSON object mapping spec field names to column names, e.g. '{\"phone\": \"mobile_no\"}'".into(),
            UnknownField { entity, .. } => format!("fields of {entity}: {}", crate::entities::fields(entity).join(", ")),
            UnknownColumn { .. } => "map the field to an existing column, or leave it out of the map".into(),
            MissingRequiredColumn { field, .. } => format!("map it explicitly, e.g. '{{\"{field}\": \"your_column\"}}'"),
            UnsupportedKeyType { legacy_schema: true, .. } => {
                "run ALTER EXTENSION erp_sync UPDATE first: since 0.2.0 contact keys are text (uuid and text ids)".into()
            }
            UnsupportedKeyType { table, field, .. } if field == "id" => format!(
                "map the contact id to a column of one of these types, e.g. '{{\"id\": \"your_key\"}}', \
                 or give {table} a key of its own: ALTER TABLE {table} ADD COLUMN erp_id bigint GENERATED ALWAYS AS IDENTITY UNIQUE"
            ),
            UnsupportedKeyType { field, .. } => format!(
                "map {field} to a column holding the contact table's key (integer, uuid or text), e.g. '{{\"{field}\": \"contact_key\"}}'"
            ),
            NotATable(_) => "only ordinary and partitioned tables can be tracked".into(),
            NotTracked(_) => "see SELECT * FROM erp_sync.tracked_tables".into(),
            NoContactTable => "call erp_sync.track('your_contacts'::regclass, 'contact') first".into(),
            InvalidArgument { hint, .. } => hint.clone(),
            Spi(_) => return None,
        })
    }

    /// Raise this error as a Postgres ERROR. Does not return.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "erp_sync");
        if let Some(h) = self.hint() {
            report = report.set_hint(h);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }
}

/// `Result` of the extension's SQL functions: `Err` is raised with its SQLSTATE.
pub type ErpResult<T> = Result<T, ErpSyncError>;

/// Unwrap or raise.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for ErpResult<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}

impl<T> OrRaise<T> for pgrx::spi::SpiResult<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => ErpSyncError::Spi(e).raise(),
        }
    }
}
