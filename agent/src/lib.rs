//! anycast6 member agent: registers this server with the anycast6 appliance by
//! authenticated Mobile IPv6 home-registration Binding Updates, keeps the registrations
//! fresh, reports load, withdraws on shutdown, and sets up delivery of the tunnelled
//! traffic, and optionally route-optimises its clients (RFC 6275 return routability and
//! correspondent Binding Updates). See README.md.
//!
//! The protocol logic ([`registration`], [`messages`]) is sans-I/O and tested with scripted
//! time; [`run`] is the thin driver that owns the sockets, the clock and the signals.

pub mod config;
pub mod correspondent;
pub mod delivery;
pub mod load;
pub mod messages;
pub mod packets;
pub mod registration;
pub mod ro_messages;
pub mod run;
pub mod sockets;
pub mod status;
#[cfg(test)]
mod test_support;
