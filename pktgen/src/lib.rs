//! `anycast6-pktgen`: a DPDK traffic generator and client/member emulator for anycast6.
//!
//! Everything that builds, parses or decides lives in sans-I/O modules tested without
//! DPDK: [`profile`] (what to send), [`build`] (templates and control packets),
//! [`member`] (the router, the members and the client side of the far end),
//! [`latency`] (latency, loss, reordering). [`run`] is the DPDK glue: EAL, port, the TX
//! and RX loops, the live line and the JSON result ([`report`]).

pub mod build;
pub mod latency;
pub mod member;
pub mod profile;
pub mod report;
pub mod run;
