//! What the admin socket and the metrics endpoint show: one plain-data picture of the
//! appliance, filled by the control thread on request ([`ControlView`]).
//!
//! It is serialisable both ways: the appliance sends it as JSON, `anycast6 ctl` reads it
//! back to print tables, and `--json` hands it to scripts as is.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

/// Everything an operator can ask about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlView {
    pub version: String,
    pub pid: u32,
    pub uptime_s: f64,
    pub config_path: String,
    /// Reloads applied since start.
    pub config_generation: u64,
    /// Snapshots published since start (the first counts).
    pub snapshot_generation: u64,
    /// Replaced snapshots still kept because a worker has not passed a quiescent state
    /// since: a few at most while the workers poll.
    pub snapshots_retained: u64,
    pub ports: Vec<PortView>,
    pub services: Vec<ServiceView>,
    pub members: Vec<MemberView>,
    pub bindings: Vec<BindingView>,
    /// Pipeline counters summed over workers (`rx_packets`, ..., `drop_<reason>`).
    pub dataplane: BTreeMap<String, u64>,
    pub workers: Vec<WorkerView>,
    /// Home registration: `bu_received`, `ba_status_<n>`, `discard_<reason>`, ...
    pub registration: BTreeMap<String, u64>,
    /// Health checks: `probes_sent`, `replies`, `timeouts`, ...
    pub health: BTreeMap<String, u64>,
    /// The control thread's own counters.
    pub control: BTreeMap<String, u64>,
    /// Clients route-optimised to members, with their triggers (`ctl bindings`).
    pub route_optimised: Vec<crate::control::ro::RoClientView>,
    /// Route optimisation and trigger counters: `triggers_started`, `trigger_bus_sent`, ...
    pub route_optimisation: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortView {
    pub name: String,
    pub device: String,
    pub mac: String,
    pub mtu: u16,
    pub next_hop: Option<Ipv6Addr>,
    /// `None` while unresolved.
    pub next_hop_mac: Option<String>,
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub address: Ipv6Addr,
    /// `client` or `flow`.
    pub affinity: String,
    pub port: String,
    pub maglev_size: u32,
    pub accept_registrations: bool,
    pub members_active: usize,
    pub members_draining: usize,
    pub members_down: usize,
    /// `tcp/80 every 1000ms timeout 500ms rise 2 fall 3`; `None`: not checked.
    pub health: Option<String>,
    /// Sums over the service's current members.
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    pub service: Ipv6Addr,
    pub id: u32,
    pub epoch: u32,
    pub care_of: Ipv6Addr,
    /// `static` or `registered`.
    pub origin: String,
    pub weight: u32,
    /// `active`, `draining` or `down`.
    pub state: String,
    /// `up`, `down` or `unchecked`.
    pub health: String,
    pub health_detail: Option<String>,
    pub lifetime_left_s: Option<u64>,
    pub drain_left_s: Option<u64>,
    /// Client packets and octets tunnelled to it, flows placed on it, replies it tunnelled
    /// back; counted since this incarnation joined.
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
    pub rev_packets: u64,
    pub rev_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingView {
    pub service: Ipv6Addr,
    pub care_of: Ipv6Addr,
    /// RFC 5648 Binding Identifier, when the member registered with one.
    pub bid: Option<u16>,
    pub member_id: u32,
    pub epoch: u32,
    /// Last accepted sequence number.
    pub sequence: u16,
    pub lifetime_granted_s: u64,
    pub lifetime_left_s: u64,
    /// `mn-ha spi 256` or `trusted-prefix`.
    pub auth: String,
    pub weight: u32,
    pub age_s: u64,
    pub refreshes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub id: usize,
    pub counters: BTreeMap<String, u64>,
    /// RX polls by the number of packets they returned (index 0..=32).
    pub burst_sizes: Vec<u64>,
    pub tx_full: u64,
    pub exception_ring_full: u64,
}
