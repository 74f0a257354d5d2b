//! "Never fail the platform's write": run capture logic in an internal subtransaction and turn
//! any error (Postgres ERROR or Rust panic) into a rolled-back subtransaction plus a message.
//!
//! This is what PL/pgSQL's `BEGIN ... EXCEPTION` does. Only a subtransaction makes it safe to
//! continue after a Postgres ERROR (locks, buffers, SPI state are released by its abort).
//! Cost: one subtransaction per captured statement; it gets its own xid only when it writes.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;
use std::panic::AssertUnwindSafe;

fn caught_message(e: &CaughtError) -> String {
    match e {
        CaughtError::PostgresError(r)
        | CaughtError::ErrorReport(r)
        | CaughtError::RustPanic { ereport: r, .. } => {
            format!(
                "{} (SQLSTATE {})",
                r.message(),
                sqlstate_text(r.sql_error_code())
            )
        }
    }
}

fn sqlstate_text(code: pgrx::PgSqlErrorCode) -> String {
    // unpack PGSIXBIT-encoded SQLSTATE
    let mut n = code as i32 as u32;
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        s.push(char::from(((n & 0x3f) as u8) + b'0'));
        n >>= 6;
    }
    s
}

/// Run `f` inside a subtransaction. `Ok` commits it into the caller's transaction; an `Err`
/// returned by `f`, a Postgres ERROR or a panic rolls it back and comes back as `Err(message)`.
pub fn protected<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    // SAFETY: the classic PL/Python / PL/pgSQL subtransaction dance; memory context and resource
    // owner are restored on both paths.
    unsafe {
        let old_cxt = pg_sys::CurrentMemoryContext;
        let old_owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(old_cxt);

        let f = AssertUnwindSafe(f);
        let outcome = PgTryBuilder::new(move || {
            let f = f;
            (f.0)()
        })
        .catch_others(|e| Err(caught_message(&e)))
        .execute();

        if outcome.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(old_cxt);
        pg_sys::CurrentResourceOwner = old_owner;
        outcome
    }
}
