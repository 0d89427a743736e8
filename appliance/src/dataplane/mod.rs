//! The per-packet data plane (being written).
//!
//! Building blocks so far (ARCHITECTURE.md §3):
//! * [`maglev`]: Maglev consistent hashing, the member choice for new flows;
//! * [`affinity`]: the per-worker flow -> member table that keeps established flows in place;
//! * [`rcu`]: snapshot publication from the control thread to the workers (QSBR).

pub mod affinity;
pub mod counters;
pub mod flowhash;
pub mod maglev;
pub mod pipeline;
pub mod ratelimit;
pub mod rcu;
pub mod snapshot;
