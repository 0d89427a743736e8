//! Packet formats spoken by anycast6.
//!
//! Every protocol lives in its own module with two layers, in the manner of smoltcp:
//!
//! * a zero-copy view (`Packet<T: AsRef<[u8]>>`, `Frame<T>`, ...) whose `new_checked`
//!   validates lengths once, after which its accessors never panic;
//! * a validated value type (`...Repr`) with `parse(&view) -> Result<Repr>` and
//!   `emit(&self, &mut view)`, which is where semantics are judged.
//!
//! Nothing here performs I/O, allocates while parsing, or uses `unsafe`.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

pub mod auth;
pub mod buf;
pub mod checksum;
mod error;
pub mod ethernet;
pub mod icmpv6;
pub mod ipv6;
pub mod ipv6ext;
pub mod mobility;
pub mod rr;
pub mod seqno;
pub mod tcp;
pub mod tunnel;
pub mod udp;

pub use buf::{PacketBuf, VecBuf};
pub use error::{Error, Result};
