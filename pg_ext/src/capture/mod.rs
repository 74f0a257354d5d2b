//! Capture: the row trigger, column maps, track()/untrack(), the outbox writes and the payload
//! functions the sidecar reads through.

pub mod columns;
pub mod guard;
pub mod lookup;
pub mod outbox;
pub mod payload;
pub mod track;
pub mod trigger;
