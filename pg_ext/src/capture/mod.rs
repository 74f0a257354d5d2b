//! Capture: the statement trigger, column maps, track()/untrack(), change sources
//! (track_source()), the outbox writes and the payload functions the sidecar reads through.

pub mod columns;
pub mod decide;
pub mod direct;
pub mod guard;
pub mod log;
pub mod log_heap;
pub mod lookup;
pub mod outbox;
pub mod payload;
pub mod quiet;
pub mod relation;
pub mod source;
pub mod track;
pub mod transition;
pub mod trigger;
pub mod wake;
