//! The configuration file (TOML): its types, defaults, validation and derived values.
//!
//! [`Config::from_toml_str`] and [`Config::load`] parse and validate. Every problem is
//! reported as a [`ConfigIssue`] naming the key path (`services[1].members[0].care_of`) and
//! the reason; validation collects all of them, not just the first. A misspelt key is an
//! error (`deny_unknown_fields` everywhere), so a typo never silently falls back to a
//! default. Things that are legal but probably unintended are warnings
//! ([`Config::warnings`]). docs/configuration.md documents every key.
//!
//! The configuration types know nothing of the data plane's; [`Config::snapshot_spec`]
//! converts to the plain-data [`SnapshotSpec`] the control thread builds snapshots from.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use anycast6_wire::ethernet::MacAddr;
use anycast6_wire::ipv6;
use anycast6_wire::tunnel::{self, TrafficClass};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::dataplane::affinity;
use crate::dataplane::maglev;
use crate::dataplane::snapshot::{
    AffinityMode, IcmpRateSpec, MemberSpec, MemberStatus, PortSpec, ServiceSpec, SnapshotSpec,
    TunnelSpec,
};

/// Largest link MTU accepted: the usual jumbo-frame limit of Ethernet NICs.
pub const MAX_MTU: u16 = 9216;
/// Largest member weight.
pub const MAX_WEIGHT: u32 = 65_535;
/// Largest number of workers (RX/TX queue pairs per port).
pub const MAX_WORKERS: usize = 64;
/// Smallest affinity table per worker.
pub const MIN_AFFINITY_CAPACITY: usize = 1024;
/// Longest affinity idle timeout, seconds (one day).
pub const MAX_AFFINITY_IDLE_TIMEOUT: u32 = 86_400;
/// Smallest mempool: a few RX rings' worth of buffers.
pub const MIN_MEMPOOL_SIZE: u32 = 1023;
/// Largest mempool (16 Mi buffers, about 32 GiB with 2 KiB buffers).
pub const MAX_MEMPOOL_SIZE: u32 = (1 << 24) - 1;
/// Largest ICMPv6 error rate (per second per worker) and bucket size.
pub const MAX_ICMP_RATE: u32 = 100_000;
/// Largest affinity table per worker (at [`affinity::AffinityTable::BYTES_PER_ENTRY`] bytes
/// an entry, a few GiB).
pub const MAX_AFFINITY_CAPACITY: usize = 1 << 26;
// A capacity that passes validation must be one the table accepts.
const _: () = assert!(MAX_AFFINITY_CAPACITY <= affinity::MAX_CAPACITY);
/// EAL arguments `dataplane.virtual_devices_only` adds: ordinary memory instead of
/// hugepages, no PCI scan, no runtime files or telemetry socket (docs/dpdk.md).
pub const VIRTUAL_DEVICE_EAL_ARGS: [&str; 6] = [
    "--no-huge",
    "--no-pci",
    "--no-shconf",
    "--no-telemetry",
    "-m",
    "1024",
];
/// Lcore ids accepted in `dataplane.lcores` are below this (DPDK rejects ids above its own
/// build-time `RTE_MAX_LCORE`, 128 by default, at start).
pub const MAX_LCORE_ID: u32 = 1024;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub appliance: ApplianceConfig,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// Absent: the appliance is no home agent, every home-registration BU gets BA 131.
    #[serde(default)]
    pub registration: Option<RegistrationConfig>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub route_optimisation: RouteOptimisationConfig,
}

/// `[route_optimisation]`: what the appliance does for clients that members
/// route-optimised (RFC 6275 §5.2, docs/protocol.md "Trigger signals").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteOptimisationConfig {
    /// Send a returned-home Binding Update to each client route-optimised to a member that
    /// fails, drains or leaves.
    #[serde(default = "default_true")]
    pub triggers: bool,
    /// Seconds after which a trigger that got no Binding Acknowledgement is given up (the
    /// client's binding then ends with its lifetime, at most 420 s).
    #[serde(default = "default_give_up_after")]
    pub give_up_after: u32,
    /// Claim a down member's care-of address by proxy Neighbor Discovery on the service's
    /// port and answer what clients still send there with ICMPv6 Destination Unreachable.
    #[serde(default)]
    pub claim_care_of: bool,
    /// Seconds a care-of address stays claimed; then it is released (while the member is
    /// still down) so that the member can take it back and be probed.
    #[serde(default = "default_claim_for")]
    pub claim_for: u32,
    /// Most route-optimised (service, client) pairs remembered.
    #[serde(default = "default_ro_max_clients")]
    pub max_clients: usize,
}

fn default_give_up_after() -> u32 {
    30
}

fn default_claim_for() -> u32 {
    30
}

fn default_ro_max_clients() -> usize {
    65536
}

impl Default for RouteOptimisationConfig {
    fn default() -> Self {
        RouteOptimisationConfig {
            triggers: true,
            give_up_after: default_give_up_after(),
            claim_care_of: false,
            claim_for: default_claim_for(),
            max_clients: default_ro_max_clients(),
        }
    }
}

/// `[registration]`: home registration by members (RFC 6275 §10.3, PROTOCOL.md §1.9).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// RFC 4285 MN-HA keys by SPI (docs/operations.md): a separate file, which must not be
    /// readable by group or others.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Prefixes (`"2001:db8:2::/64"`) whose care-of addresses may register without
    /// authentication.
    #[serde(default, deserialize_with = "de_prefix_list")]
    pub trusted_prefixes: Vec<(Ipv6Addr, u8)>,
    /// How far a Replay Protection timestamp may be from the appliance's clock, seconds.
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
    /// Longest lifetime granted, seconds (rounded down to 4-second units, RFC 6275 §6.1.7).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: u32,
    /// Binding Refresh Advice as a percentage of the granted lifetime.
    #[serde(default = "default_refresh_percent")]
    pub refresh_percent: u8,
    /// Weight of a member until it reports one.
    #[serde(default = "default_weight")]
    pub default_weight: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            key_file: None,
            trusted_prefixes: Vec::new(),
            replay_window: default_replay_window(),
            max_lifetime: default_max_lifetime(),
            refresh_percent: default_refresh_percent(),
            default_weight: default_weight(),
        }
    }
}

/// `[admin]`: the local admin socket and the metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Unix socket `anycast6 ctl` talks to; `""` disables it.
    #[serde(default = "default_admin_socket")]
    pub socket: PathBuf,
    /// `address:port` serving Prometheus text metrics at `/metrics`; absent: none.
    #[serde(default)]
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            socket: default_admin_socket(),
            metrics: None,
        }
    }
}

/// `[services.health]`: how members of a service are checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// `"echo"` (ICMPv6 echo to the care-of address), `"tcp"` (SYN to care-of:port) or
    /// `"tunnel"` (echo to the service address through the member's tunnel).
    pub kind: HealthKind,
    /// TCP port, for `kind = "tcp"` only.
    #[serde(default)]
    pub port: Option<u16>,
    /// Milliseconds between probes of one member.
    #[serde(default = "default_health_interval")]
    pub interval_ms: u32,
    /// Milliseconds a probe may take; at most `interval_ms`.
    #[serde(default = "default_health_timeout")]
    pub timeout_ms: u32,
    /// Consecutive successes that bring a down member back.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take a member out.
    #[serde(default = "default_fall")]
    pub fall: u32,
}

/// `services.health.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    Echo,
    Tcp,
    Tunnel,
}

/// `[appliance]`: the appliance's addresses and tunnel entry-point parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceConfig {
    /// Outer source of every tunnel packet (RFC 2473 §6.1), source of ICMPv6 errors, and
    /// the exit point members tunnel replies to. Required.
    #[serde(deserialize_with = "de_ipv6")]
    pub tunnel_address: Ipv6Addr,
    /// Further unicast addresses the appliance answers for (exception path).
    #[serde(default, deserialize_with = "de_ipv6_list")]
    pub addresses: Vec<Ipv6Addr>,
    /// Outer Hop Limit (RFC 2473 §6.3).
    #[serde(default = "default_outer_hop_limit")]
    pub outer_hop_limit: u8,
    /// Tunnel Encapsulation Limit put on packets that carry none (RFC 2473 §5.1 (d));
    /// `None` adds no option.
    #[serde(default)]
    pub encap_limit: Option<u8>,
    /// Outer Traffic Class (RFC 2473 §6.4): `"copy"` or a number 0..=255.
    #[serde(
        default = "default_traffic_class",
        deserialize_with = "de_traffic_class"
    )]
    pub tunnel_traffic_class: TrafficClass,
    /// ICMPv6 error token bucket, per worker (RFC 4443 §2.4(f)): tokens per second.
    #[serde(default = "default_icmp_rate")]
    pub icmp_rate: u32,
    /// ICMPv6 error token bucket size.
    #[serde(default = "default_icmp_burst")]
    pub icmp_burst: u32,
}

/// `[dataplane]`: workers and their resources.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Worker lcores; each owns one RX/TX queue pair of every port.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// EAL core list (`-l`), e.g. `"0-3"` or `"2,4,6"`; the first is the main lcore.
    /// `None`: lcore 0 for the main lcore plus one per worker.
    #[serde(default)]
    pub lcores: Option<String>,
    /// How the NICs spread packets over the workers' RX queues.
    #[serde(default)]
    pub rss: RssConfig,
    /// Affinity entries per worker (rounded up to a power of two).
    #[serde(default = "default_affinity_capacity")]
    pub affinity_capacity: usize,
    /// Seconds an affinity entry lives without traffic.
    #[serde(default = "default_affinity_idle_timeout")]
    pub affinity_idle_timeout: u32,
    /// Packet buffers in the mempool.
    #[serde(default = "default_mempool_size")]
    pub mempool_size: u32,
    /// Run without hugepages and PCI devices ([`VIRTUAL_DEVICE_EAL_ARGS`]); `false` on
    /// bare metal.
    #[serde(default = "default_virtual_devices_only")]
    pub virtual_devices_only: bool,
    /// Extra EAL arguments, appended as given.
    #[serde(default)]
    pub eal_args: Vec<String>,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            workers: default_workers(),
            lcores: None,
            rss: RssConfig::default(),
            affinity_capacity: default_affinity_capacity(),
            affinity_idle_timeout: default_affinity_idle_timeout(),
            mempool_size: default_mempool_size(),
            virtual_devices_only: default_virtual_devices_only(),
            eal_args: Vec::new(),
        }
    }
}

/// `dataplane.rss`: the NIC receive-side scaling hash, which decides the worker of a packet.
/// Each worker has its own affinity table, so all packets of one affinity key must reach
/// the same worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RssConfig {
    /// Hash on the IPv6 source/destination pair: right for every affinity mode.
    #[default]
    Addresses,
    /// Hash on addresses and transport ports: finer spreading, only for configurations
    /// whose services all use flow affinity.
    FiveTuple,
}

/// `[[ports]]`: one DPDK port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Name services and logs refer to.
    pub name: String,
    /// PCI address (`0000:01:00.0`, optionally followed by `,devargs`) or virtual device
    /// string (`net_ring0`, `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`).
    pub device: String,
    /// MAC to use instead of the device's own.
    #[serde(default, deserialize_with = "de_opt_mac")]
    pub mac: Option<MacAddr>,
    /// Link MTU (IPv6 packet size, without the Ethernet header).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// IPv6 next hop (router) for everything sent out of this port.
    #[serde(default, deserialize_with = "de_opt_ipv6")]
    pub next_hop: Option<Ipv6Addr>,
    /// MAC of the next hop; when absent the control thread resolves `next_hop` by ND.
    #[serde(default, deserialize_with = "de_opt_mac")]
    pub next_hop_mac: Option<MacAddr>,
}

/// How a service keys flows to members (ARCHITECTURE.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    /// (client, service): every flow of one client goes to one member.
    #[default]
    Client,
    /// The transport 5-tuple: each flow is placed on its own.
    Flow,
}

impl From<Affinity> for AffinityMode {
    fn from(a: Affinity) -> AffinityMode {
        match a {
            Affinity::Client => AffinityMode::Client,
            Affinity::Flow => AffinityMode::Flow,
        }
    }
}

/// `[[services]]`: one anycast service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The anycast service address (the members' home address).
    #[serde(deserialize_with = "de_ipv6")]
    pub address: Ipv6Addr,
    #[serde(default)]
    pub affinity: Affinity,
    /// Name of the port towards members and clients; `None`: the first port.
    #[serde(default)]
    pub port: Option<String>,
    /// Maglev table size, a prime.
    #[serde(default = "default_maglev_size")]
    pub maglev_size: u32,
    /// Static members.
    #[serde(default)]
    pub members: Vec<MemberConfig>,
    /// Whether members may register for this service by Binding Update (else BA 131).
    #[serde(default = "default_true")]
    pub accept_registrations: bool,
    /// Most registered members at once (more get BA 130).
    #[serde(default = "default_max_bindings")]
    pub max_bindings: usize,
    /// Seconds a draining member keeps its established flows before it is removed.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: u32,
    /// Health checks of the members; absent: none (members count as healthy).
    #[serde(default)]
    pub health: Option<HealthConfig>,
}

/// `[[services.members]]`: one static member.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The member's care-of address: outer destination of its tunnel.
    #[serde(deserialize_with = "de_ipv6")]
    pub care_of: Ipv6Addr,
    /// Relative share of new flows; 0 keeps the member configured but gives it no new flows.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The member's MAC when it is on-link (frames go to it instead of the port's next hop).
    #[serde(default, deserialize_with = "de_opt_mac")]
    pub mac: Option<MacAddr>,
}

fn default_outer_hop_limit() -> u8 {
    tunnel::DEFAULT_HOP_LIMIT
}
fn default_traffic_class() -> TrafficClass {
    TrafficClass::CopyInner
}
fn default_icmp_rate() -> u32 {
    IcmpRateSpec::default().per_second
}
fn default_icmp_burst() -> u32 {
    IcmpRateSpec::default().burst
}
fn default_workers() -> usize {
    1
}
fn default_affinity_capacity() -> usize {
    65_536
}
fn default_affinity_idle_timeout() -> u32 {
    300
}
fn default_mempool_size() -> u32 {
    8191
}
fn default_virtual_devices_only() -> bool {
    true
}
fn default_mtu() -> u16 {
    1500
}
fn default_maglev_size() -> u32 {
    maglev::DEFAULT_TABLE_SIZE
}
fn default_weight() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_replay_window() -> u32 {
    7
}
fn default_max_lifetime() -> u32 {
    600
}
fn default_refresh_percent() -> u8 {
    80
}
fn default_admin_socket() -> PathBuf {
    PathBuf::from("/run/anycast6/admin.sock")
}
fn default_max_bindings() -> usize {
    256
}
fn default_drain_timeout() -> u32 {
    300
}
fn default_health_interval() -> u32 {
    1000
}
fn default_health_timeout() -> u32 {
    500
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

fn de_prefix_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Ipv6Addr, u8)>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| parse_prefix(s))
        .collect::<Result<_, _>>()
        .map_err(de::Error::custom)
}

/// `address/length`, length 0..=128.
pub fn parse_prefix(s: &str) -> Result<(Ipv6Addr, u8), String> {
    let bad = || format!("{s:?} is not an IPv6 prefix like \"2001:db8:2::/64\"");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 128 {
        return Err(bad());
    }
    Ok((addr, len))
}

fn de_ipv6<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv6Addr, D::Error> {
    let s = String::deserialize(d)?;
    parse_ipv6(&s).map_err(de::Error::custom)
}

fn de_opt_ipv6<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv6Addr>, D::Error> {
    de_ipv6(d).map(Some)
}

fn de_ipv6_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv6Addr>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    list.iter()
        .map(|s| parse_ipv6(s))
        .collect::<Result<_, _>>()
        .map_err(de::Error::custom)
}

fn parse_ipv6(s: &str) -> Result<Ipv6Addr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IPv6 address"))
}

fn de_opt_mac<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<MacAddr>().map(Some).map_err(|_| {
        de::Error::custom(format!(
            "{s:?} is not a MAC address (expected six hex octets like 02:00:5e:10:00:01)"
        ))
    })
}

fn de_traffic_class<'de, D: Deserializer<'de>>(d: D) -> Result<TrafficClass, D::Error> {
    struct TrafficClassVisitor;
    impl Visitor<'_> for TrafficClassVisitor {
        type Value = TrafficClass;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"copy\" or an integer 0..=255")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<TrafficClass, E> {
            if v == "copy" {
                Ok(TrafficClass::CopyInner)
            } else {
                Err(E::custom(format!(
                    "{v:?} is neither \"copy\" nor an integer 0..=255"
                )))
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<TrafficClass, E> {
            u8::try_from(v)
                .map(TrafficClass::Fixed)
                .map_err(|_| E::custom(format!("{v} is outside 0..=255")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<TrafficClass, E> {
            u8::try_from(v)
                .map(TrafficClass::Fixed)
                .map_err(|_| E::custom(format!("{v} is outside 0..=255")))
        }
    }
    d.deserialize_any(TrafficClassVisitor)
}

/// One problem in a configuration file: the key path it is about and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Key path, e.g. `services[1].members[0].care_of`; empty for a TOML syntax error that
    /// is not about one key.
    pub key: String,
    /// What is wrong, e.g. `65536 is not prime`.
    pub reason: String,
    /// 1-based line and column in the file, when known (parse errors only).
    pub position: Option<(usize, usize)>,
}

impl ConfigIssue {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            reason: reason.into(),
            position: None,
        }
    }
}

impl fmt::Display for ConfigIssue {
    /// `key: reason`, with ` (line L, column C)` when the position is known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.reason)?;
        } else {
            write!(f, "{}: {}", self.key, self.reason)?;
        }
        if let Some((line, column)) = self.position {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, a value of the wrong type, an unknown or a missing key: parsing stops at
    /// the first such problem.
    #[error("{0}")]
    Parse(ConfigIssue),
    /// The file parsed but breaks validation rules; all of them. `Display`: `N problems:`
    /// then one indented `key: reason` line per issue.
    #[error("{}", problem_lines(.0))]
    Invalid(Vec<ConfigIssue>),
}

impl ConfigError {
    /// The issues, one per line of the `Display` output (empty for [`ConfigError::Io`]).
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Parse(issue) => std::slice::from_ref(issue),
            ConfigError::Invalid(issues) => issues,
        }
    }
}

fn problem_lines(issues: &[ConfigIssue]) -> String {
    let mut text = format!("{}:", count(issues.len(), "problem"));
    for issue in issues {
        text.push_str(&format!("\n  {issue}"));
    }
    text
}

/// What `anycast6 check-config FILE` prints and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// `true`: exit status 0; `false`: 1.
    pub ok: bool,
    /// For standard output: `ok: 1 port, 2 services, 5 members` on success, else empty.
    pub stdout: String,
    /// For standard error: on success one `warning: key: reason` line per warning; on
    /// failure `FILE: N problems:` and one indented `key: reason` line per problem, or
    /// `FILE: key: reason (line L, column C)` for a parse error, or `cannot read FILE: ...`.
    pub stderr: String,
}

/// Loads and validates `path` and renders the outcome as `anycast6 check-config` shows it.
pub fn check_config_file(path: &Path) -> CheckReport {
    match Config::load(path) {
        Ok(config) => {
            let stderr = config
                .warnings()
                .iter()
                .map(|w| format!("warning: {w}\n"))
                .collect();
            CheckReport {
                ok: true,
                stdout: format!("ok: {}\n", config.summary()),
                stderr,
            }
        }
        Err(e @ ConfigError::Io { .. }) => CheckReport {
            ok: false,
            stdout: String::new(),
            stderr: format!("{e}\n"),
        },
        Err(e) => CheckReport {
            ok: false,
            stdout: String::new(),
            stderr: format!("{}: {e}\n", path.display()),
        },
    }
}

/// Whether a port's device is a PCI device (`-a`) or a virtual device (`--vdev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Pci,
    Virtual,
}

/// Classifies a `ports[].device` string: a PCI address (`0000:01:00.0` or `01:00.0`,
/// optionally followed by `,devargs`) is [`DeviceKind::Pci`]; a string whose name starts
/// with `net_`, `virtio_user` or `eth_`, or that carries `key=value` devargs, is
/// [`DeviceKind::Virtual`]; anything else is `None`.
pub fn device_kind(device: &str) -> Option<DeviceKind> {
    let name = device_name(device);
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return None;
    }
    if is_pci_address(name) {
        Some(DeviceKind::Pci)
    } else if ["net_", "virtio_user", "eth_"]
        .iter()
        .any(|p| name.starts_with(p))
        || device.contains('=')
    {
        Some(DeviceKind::Virtual)
    } else {
        None
    }
}

/// The device name: the part of a device string before its first `,`.
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

/// `[domain:]bus:device.function` with a 4..=8 hex digit domain, 2-digit bus and device,
/// and a function 0..=7.
fn is_pci_address(name: &str) -> bool {
    let (bdf, domain) = match name.matches(':').count() {
        1 => (name, None),
        2 => match name.split_once(':') {
            Some((domain, rest)) => (rest, Some(domain)),
            None => return false,
        },
        _ => return false,
    };
    let hex = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
    };
    if domain.is_some_and(|d| !hex(d, 4..=8)) {
        return false;
    }
    let Some((bus, rest)) = bdf.split_once(':') else {
        return false;
    };
    let Some((dev, function)) = rest.split_once('.') else {
        return false;
    };
    hex(bus, 2..=2)
        && hex(dev, 2..=2)
        && function.len() == 1
        && matches!(function.as_bytes()[0], b'0'..=b'7')
}

/// Parses a DPDK `-l` core list (`0-3`, `2,4,6`, `0,2-3`) into lcore ids, in order.
pub fn parse_lcore_list(list: &str) -> Result<Vec<u32>, String> {
    let mut ids = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        let bad = || format!("{list:?} is not a core list like \"0-3\" or \"0,2,4\"");
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u32>().map_err(|_| bad())?,
                b.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let id = part.parse::<u32>().map_err(|_| bad())?;
                (id, id)
            }
        };
        if first > last {
            return Err(format!("{list:?}: range {part} runs backwards"));
        }
        if last >= MAX_LCORE_ID {
            return Err(format!(
                "{list:?}: lcore {last} is not below {MAX_LCORE_ID}"
            ));
        }
        for id in first..=last {
            if ids.contains(&id) {
                return Err(format!("{list:?}: lcore {id} is listed twice"));
            }
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Why `a` is not a global unicast address, if it is not.
fn not_global_unicast(a: &Ipv6Addr) -> Option<&'static str> {
    not_unicast(a).or_else(|| is_link_local(a).then_some("a link-local address"))
}

/// Why `a` is not a unicast address a packet may be sent to or from, if it is not.
fn not_unicast(a: &Ipv6Addr) -> Option<&'static str> {
    if a.is_multicast() {
        Some("a multicast address")
    } else if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_loopback() {
        Some("the loopback address")
    } else if a.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped address")
    } else {
        None
    }
}

/// fe80::/10 (RFC 4291 §2.5.6).
fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Trial division; `n` is at most 2^24 here, so at most ~2000 divisions.
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// `n` with its English noun, singular or plural.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Errors and warnings collected during validation.
#[derive(Default)]
struct Findings {
    errors: Vec<ConfigIssue>,
    warnings: Vec<ConfigIssue>,
}

impl Findings {
    fn error(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(ConfigIssue::new(key, reason));
    }
    fn warn(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(ConfigIssue::new(key, reason));
    }
}

impl Config {
    /// Parses and validates a configuration.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config = Config::parse(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates the configuration file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text)
    }

    /// Parses without validating: only TOML syntax, types and key names are checked.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| ConfigError::Parse(parse_issue(text, "", &e)))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::Parse(parse_issue(text, &path, e.inner()))
        })
    }

    /// Checks every rule of docs/configuration.md; all broken rules are reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let findings = self.findings();
        if findings.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(findings.errors))
        }
    }

    /// Legal settings that are probably not what was meant, or that cost performance.
    pub fn warnings(&self) -> Vec<ConfigIssue> {
        self.findings().warnings
    }

    /// `1 port, 2 services, 5 members`: what `check-config` prints after `ok: `.
    pub fn summary(&self) -> String {
        let members: usize = self.services.iter().map(|s| s.members.len()).sum();
        format!(
            "{}, {}, {}",
            count(self.ports.len(), "port"),
            count(self.services.len(), "service"),
            count(members, "member")
        )
    }

    /// Octets a tunnel adds to a packet that carries no Tunnel Encapsulation Limit option:
    /// 40 (outer IPv6 header), or 48 with `appliance.encap_limit` (plus the Destination
    /// Options header carrying the option, RFC 2473 §4.1.1).
    pub fn tunnel_overhead(&self) -> u32 {
        if self.appliance.encap_limit.is_some() {
            tunnel::MAX_OVERHEAD as u32
        } else {
            ipv6::HEADER_LEN as u32
        }
    }

    /// Tunnel MTU of a port: its link MTU minus [`Config::tunnel_overhead`] (0 if the MTU
    /// is smaller than the overhead, which validation rejects).
    pub fn port_tunnel_mtu(&self, port: &PortConfig) -> u32 {
        u32::from(port.mtu).saturating_sub(self.tunnel_overhead())
    }

    /// Index of the port a service uses: its `port`, or the first port. `None` if the name
    /// is unknown or there are no ports.
    pub fn service_port_index(&self, service: &ServiceConfig) -> Option<usize> {
        match &service.port {
            Some(name) => self.ports.iter().position(|p| &p.name == name),
            None => (!self.ports.is_empty()).then_some(0),
        }
    }

    /// Tunnel MTU of a service: the largest inner packet it sends to members unfragmented.
    pub fn service_tunnel_mtu(&self, service: &ServiceConfig) -> Option<u32> {
        let port = &self.ports[self.service_port_index(service)?];
        Some(self.port_tunnel_mtu(port))
    }

    /// The EAL lcores: `dataplane.lcores` parsed, or `0..=workers` (main lcore 0 plus one
    /// per worker). The first is the main lcore.
    pub fn lcores(&self) -> Result<Vec<u32>, String> {
        match &self.dataplane.lcores {
            Some(list) => parse_lcore_list(list),
            None => Ok((0..=self.dataplane.workers as u32).collect()),
        }
    }

    /// The `-l` argument: `dataplane.lcores` as given, or `0-N` for N workers.
    pub fn lcore_arg(&self) -> String {
        match &self.dataplane.lcores {
            Some(list) => list.clone(),
            None => format!("0-{}", self.dataplane.workers),
        }
    }

    /// EAL arguments (without the program name), in this order:
    /// [`VIRTUAL_DEVICE_EAL_ARGS`] when `dataplane.virtual_devices_only`;
    /// `--file-prefix FILE_PREFIX` unless `dataplane.eal_args` has its own; `-l LCORES`;
    /// per port, `-a DEVICE` (PCI) or `--vdev DEVICE` (virtual); `--no-pci` when no port
    /// is a PCI device and the virtual-device arguments did not already say so (the EAL
    /// would otherwise claim NICs the configuration does not name); `dataplane.eal_args`
    /// as given.
    pub fn eal_args(&self, file_prefix: &str) -> Vec<String> {
        let d = &self.dataplane;
        let mut args: Vec<String> = Vec::new();
        if d.virtual_devices_only {
            args.extend(VIRTUAL_DEVICE_EAL_ARGS.iter().map(|a| (*a).to_owned()));
        }
        let own_prefix = d
            .eal_args
            .iter()
            .any(|a| a == "--file-prefix" || a.starts_with("--file-prefix="));
        if !own_prefix {
            args.push("--file-prefix".to_owned());
            args.push(file_prefix.to_owned());
        }
        args.push("-l".to_owned());
        args.push(self.lcore_arg());
        let mut any_pci = false;
        for port in &self.ports {
            let flag = match device_kind(&port.device) {
                Some(DeviceKind::Pci) => {
                    any_pci = true;
                    "-a"
                }
                // Unclassifiable strings fail validation; as a vdev the EAL names the problem.
                Some(DeviceKind::Virtual) | None => "--vdev",
            };
            args.push(flag.to_owned());
            args.push(port.device.clone());
        }
        if !any_pci && !d.virtual_devices_only {
            args.push("--no-pci".to_owned());
        }
        args.extend(d.eal_args.iter().cloned());
        args
    }

    /// The data-plane snapshot spec for this configuration. A port's MAC is its configured
    /// `mac`, else [`MacAddr::UNSPECIFIED`], which the caller replaces with the device's
    /// own once it is open ([`Snapshot::build`] refuses a non-unicast port MAC). Static
    /// members get ids 0, 1, ... in file order, epoch 0, status active. Next-hop MACs are
    /// the configured ones (`None` until resolved otherwise).
    ///
    /// [`Snapshot::build`]: crate::dataplane::snapshot::Snapshot::build
    pub fn snapshot_spec(&self) -> SnapshotSpec {
        let ports = self
            .ports
            .iter()
            .map(|p| PortSpec {
                mac: p.mac.unwrap_or(MacAddr::UNSPECIFIED),
                link_mtu: p.mtu,
                next_hop_mac: p.next_hop_mac,
            })
            .collect();
        let services = self
            .services
            .iter()
            .map(|s| ServiceSpec {
                address: s.address,
                affinity: s.affinity.into(),
                port: self
                    .service_port_index(s)
                    .and_then(|i| u16::try_from(i).ok())
                    .unwrap_or(u16::MAX),
                maglev_size: s.maglev_size,
                members: s
                    .members
                    .iter()
                    .enumerate()
                    .map(|(id, m)| MemberSpec {
                        id: id as u32,
                        epoch: 0,
                        care_of: m.care_of,
                        weight: m.weight,
                        status: MemberStatus::Active,
                        mac: m.mac,
                        stats_slot: 0,
                    })
                    .collect(),
            })
            .collect();
        SnapshotSpec {
            tunnel: TunnelSpec {
                address: self.appliance.tunnel_address,
                hop_limit: self.appliance.outer_hop_limit,
                traffic_class: self.appliance.tunnel_traffic_class,
                encap_limit: self.appliance.encap_limit,
            },
            local_addresses: self.appliance.addresses.clone(),
            ports,
            services,
            icmp_rate: IcmpRateSpec {
                per_second: self.appliance.icmp_rate,
                burst: self.appliance.icmp_burst,
            },
        }
    }

    fn findings(&self) -> Findings {
        let mut f = Findings::default();
        self.check_appliance(&mut f);
        self.check_dataplane(&mut f);
        self.check_ports(&mut f);
        self.check_services(&mut f);
        self.check_registration(&mut f);
        self.check_admin(&mut f);
        self.check_route_optimisation(&mut f);
        f
    }

    fn check_registration(&self, f: &mut Findings) {
        let Some(r) = &self.registration else {
            return;
        };
        if !(1..=3600).contains(&r.replay_window) {
            f.error(
                "registration.replay_window",
                format!("{} is outside 1..=3600 seconds", r.replay_window),
            );
        } else if r.replay_window <= 3 {
            f.warn(
                "registration.replay_window",
                format!(
                    "{} s: RFC 4285 §6 recommends more than 3 s for clocks that are not tightly \
                     synchronised",
                    r.replay_window
                ),
            );
        }
        // RFC 6275 §6.1.7: the Lifetime field counts 4-second units in 16 bits.
        let max = u32::from(u16::MAX) * 4;
        if !(4..=max).contains(&r.max_lifetime) {
            f.error(
                "registration.max_lifetime",
                format!("{} is outside 4..={max} seconds", r.max_lifetime),
            );
        } else if r.max_lifetime % 4 != 0 {
            f.warn(
                "registration.max_lifetime",
                format!(
                    "{} is rounded down to {} (4-second units)",
                    r.max_lifetime,
                    r.max_lifetime / 4 * 4
                ),
            );
        }
        if !(1..=99).contains(&r.refresh_percent) {
            f.error(
                "registration.refresh_percent",
                format!("{} is outside 1..=99", r.refresh_percent),
            );
        }
        if r.default_weight > MAX_WEIGHT {
            f.error(
                "registration.default_weight",
                format!("{} is above {MAX_WEIGHT}", r.default_weight),
            );
        }
        for (i, (addr, len)) in r.trusted_prefixes.iter().enumerate() {
            let key = format!("registration.trusted_prefixes[{i}]");
            let host_bits = if *len == 0 {
                u128::from(*addr)
            } else {
                u128::from(*addr) & (u128::MAX >> len)
            };
            if host_bits != 0 {
                f.warn(
                    &key,
                    format!("{addr}/{len} has bits set after the prefix length; they are ignored"),
                );
            }
            if *len < 32 {
                f.warn(
                    &key,
                    format!(
                        "{addr}/{len} trusts a very large part of the address space to \
                         register without authentication"
                    ),
                );
            }
        }
        if let Some(path) = &r.key_file {
            if let Err(e) = crate::control::keys::KeyTable::load(path) {
                f.error("registration.key_file", e.to_string());
            }
        }
        let accepting = self.services.iter().any(|s| s.accept_registrations);
        if accepting && r.key_file.is_none() && r.trusted_prefixes.is_empty() {
            f.warn(
                "registration",
                "neither key_file nor trusted_prefixes is set: every Binding Update will be \
                 refused with status 129",
            );
        }
    }

    fn check_route_optimisation(&self, f: &mut Findings) {
        let r = &self.route_optimisation;
        if r.give_up_after == 0 {
            f.error(
                "route_optimisation.give_up_after",
                "0 would give up before the first Binding Update; give seconds (default 30)",
            );
        } else if r.give_up_after > 420 {
            f.warn(
                "route_optimisation.give_up_after",
                "beyond 420 s (MAX_RR_BINDING_LIFETIME) every client binding has expired anyway",
            );
        }
        if r.claim_for == 0 {
            f.error(
                "route_optimisation.claim_for",
                "0 would release a claim at once; give seconds (default 30)",
            );
        }
        if r.max_clients == 0 {
            f.error(
                "route_optimisation.max_clients",
                "0 remembers no route-optimised client; triggers could never be sent",
            );
        }
        if r.claim_care_of && !self.services.iter().any(|s| s.health.is_some()) {
            f.warn(
                "route_optimisation.claim_care_of",
                "no service has health checks: only a member that is down is claimed",
            );
        }
    }

    fn check_admin(&self, f: &mut Findings) {
        let a = &self.admin;
        if !a.socket.as_os_str().is_empty() && a.socket.is_relative() {
            f.error(
                "admin.socket",
                format!(
                    "{} is a relative path; give an absolute one",
                    a.socket.display()
                ),
            );
        }
        if let Some(addr) = a.metrics {
            if !addr.ip().is_loopback() {
                f.warn(
                    "admin.metrics",
                    format!(
                        "{addr} is reachable from the network; metrics reveal member \
                         addresses and load"
                    ),
                );
            }
        }
    }

    fn check_health(&self, f: &mut Findings, i: usize, s: &ServiceConfig) {
        let Some(h) = &s.health else {
            return;
        };
        let key = |k: &str| format!("services[{i}].health.{k}");
        match (h.kind, h.port) {
            (HealthKind::Tcp, None) => f.error(key("port"), "is required when kind = \"tcp\""),
            (HealthKind::Tcp, Some(0)) => f.error(key("port"), "0 is not a TCP port"),
            (HealthKind::Echo | HealthKind::Tunnel, Some(_)) => {
                f.error(key("port"), "is only for kind = \"tcp\"")
            }
            _ => {}
        }
        if !(10..=3_600_000).contains(&h.interval_ms) {
            f.error(
                key("interval_ms"),
                format!("{} is outside 10..=3600000", h.interval_ms),
            );
        }
        if h.timeout_ms == 0 || h.timeout_ms > h.interval_ms {
            // One probe outstanding per member: the bound on detection time
            // (interval x fall + one interval) needs timeout <= interval.
            f.error(
                key("timeout_ms"),
                format!(
                    "{} is outside 1..=interval_ms ({})",
                    h.timeout_ms, h.interval_ms
                ),
            );
        }
        for (name, v) in [("rise", h.rise), ("fall", h.fall)] {
            if !(1..=100).contains(&v) {
                f.error(key(name), format!("{v} is outside 1..=100"));
            }
        }
    }

    fn check_appliance(&self, f: &mut Findings) {
        let a = &self.appliance;
        if let Some(why) = not_global_unicast(&a.tunnel_address) {
            f.error(
                "appliance.tunnel_address",
                format!(
                    "{} is {why}, not a global unicast address",
                    a.tunnel_address
                ),
            );
        }
        for (i, addr) in a.addresses.iter().enumerate() {
            let key = format!("appliance.addresses[{i}]");
            if let Some(why) = not_unicast(addr) {
                f.error(&key, format!("{addr} is {why}, not a unicast address"));
            } else if *addr == a.tunnel_address {
                f.error(&key, format!("{addr} is already appliance.tunnel_address"));
            } else if let Some(j) = a.addresses[..i].iter().position(|b| b == addr) {
                f.error(&key, format!("{addr} is also appliance.addresses[{j}]"));
            }
        }
        if a.outer_hop_limit == 0 {
            // RFC 2473 §6.3: the tunnel packet must be able to cross at least one hop.
            f.error("appliance.outer_hop_limit", "0 is outside 1..=255");
        }
        if a.encap_limit == Some(0) {
            f.warn(
                "appliance.encap_limit",
                "0 means no tunnel downstream may encapsulate these packets again \
                 (RFC 2473 §5.1 (b))",
            );
        }
        if !(1..=MAX_ICMP_RATE).contains(&a.icmp_rate) {
            f.error(
                "appliance.icmp_rate",
                format!(
                    "{} is outside 1..={MAX_ICMP_RATE} (0 would silence Packet Too Big and \
                     break path MTU discovery)",
                    a.icmp_rate
                ),
            );
        }
        if !(1..=MAX_ICMP_RATE).contains(&a.icmp_burst) {
            f.error(
                "appliance.icmp_burst",
                format!("{} is outside 1..={MAX_ICMP_RATE}", a.icmp_burst),
            );
        }
    }

    fn check_dataplane(&self, f: &mut Findings) {
        let d = &self.dataplane;
        if !(1..=MAX_WORKERS).contains(&d.workers) {
            f.error(
                "dataplane.workers",
                format!("{} is outside 1..={MAX_WORKERS}", d.workers),
            );
        }
        if let Some(list) = &d.lcores {
            match parse_lcore_list(list) {
                Err(e) => f.error("dataplane.lcores", e),
                Ok(ids) => {
                    let needed = d.workers + 1;
                    if ids.len() < needed {
                        f.error(
                            "dataplane.lcores",
                            format!(
                                "{list:?} has {}, {} workers need {needed} (one main lcore plus \
                                 one per worker)",
                                count(ids.len(), "lcore"),
                                d.workers
                            ),
                        );
                    } else if ids.len() > needed {
                        f.warn(
                            "dataplane.lcores",
                            format!(
                                "{list:?} has {}, only {needed} are used (main + {})",
                                count(ids.len(), "lcore"),
                                count(d.workers, "worker")
                            ),
                        );
                    }
                }
            }
        }
        if d.rss == RssConfig::FiveTuple {
            if let Some(i) = self
                .services
                .iter()
                .position(|s| s.affinity == Affinity::Client)
            {
                f.error(
                    "dataplane.rss",
                    format!(
                        "\"five-tuple\" would spread one client's flows over several \
                         workers, but services[{i}] has client affinity; use \"addresses\""
                    ),
                );
            }
        }
        if !(MIN_AFFINITY_CAPACITY..=MAX_AFFINITY_CAPACITY).contains(&d.affinity_capacity) {
            f.error(
                "dataplane.affinity_capacity",
                format!(
                    "{} is outside {MIN_AFFINITY_CAPACITY}..={}",
                    d.affinity_capacity, MAX_AFFINITY_CAPACITY
                ),
            );
        } else if !d.affinity_capacity.is_power_of_two() {
            f.warn(
                "dataplane.affinity_capacity",
                format!(
                    "{} is rounded up to the power of two {}",
                    d.affinity_capacity,
                    d.affinity_capacity.next_power_of_two()
                ),
            );
        }
        if !(1..=MAX_AFFINITY_IDLE_TIMEOUT).contains(&d.affinity_idle_timeout) {
            f.error(
                "dataplane.affinity_idle_timeout",
                format!(
                    "{} is outside 1..={MAX_AFFINITY_IDLE_TIMEOUT} seconds",
                    d.affinity_idle_timeout
                ),
            );
        }
        if !(MIN_MEMPOOL_SIZE..=MAX_MEMPOOL_SIZE).contains(&d.mempool_size) {
            f.error(
                "dataplane.mempool_size",
                format!(
                    "{} is outside {MIN_MEMPOOL_SIZE}..={MAX_MEMPOOL_SIZE}",
                    d.mempool_size
                ),
            );
        } else if !(d.mempool_size + 1).is_power_of_two() {
            // rte_mempool sits on a ring of 2^n slots: 2^n - 1 buffers fill it exactly.
            f.warn(
                "dataplane.mempool_size",
                format!(
                    "{} is not of the form 2^n - 1; {} would use the same memory",
                    d.mempool_size,
                    (d.mempool_size + 1).next_power_of_two() - 1
                ),
            );
        }
    }

    fn check_ports(&self, f: &mut Findings) {
        if self.ports.is_empty() {
            f.error(
                "ports",
                "no port is configured; at least one [[ports]] is needed",
            );
        }
        let local = self.appliance_addresses();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut devices: HashMap<String, usize> = HashMap::new();
        let mut macs: HashMap<MacAddr, usize> = HashMap::new();
        for (i, p) in self.ports.iter().enumerate() {
            let key = |k: &str| format!("ports[{i}].{k}");
            if p.name.is_empty() {
                f.error(key("name"), "is empty");
            } else if let Some(j) = names.insert(&p.name, i) {
                f.error(key("name"), format!("{:?} is also ports[{j}].name", p.name));
                names.insert(&p.name, j);
            }
            match device_kind(&p.device) {
                None => f.error(
                    key("device"),
                    format!(
                        "{:?} is neither a PCI address (0000:01:00.0) nor a virtual device \
                         (net_ring0, net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap)",
                        p.device
                    ),
                ),
                Some(kind) => {
                    if kind == DeviceKind::Pci && self.dataplane.virtual_devices_only {
                        f.error(
                            key("device"),
                            format!(
                                "{} is a PCI device, but dataplane.virtual_devices_only \
                                 (default true) runs the EAL with --no-pci; set it to false",
                                p.device
                            ),
                        );
                    }
                    let mut name = device_name(&p.device).to_ascii_lowercase();
                    if kind == DeviceKind::Pci && name.matches(':').count() == 1 {
                        name.insert_str(0, "0000:");
                    }
                    if let Some(&j) = devices.get(&name) {
                        f.error(
                            key("device"),
                            format!("device {name} is also ports[{j}].device"),
                        );
                    } else {
                        devices.insert(name, i);
                    }
                }
            }
            if let Some(mac) = p.mac {
                if !mac.is_unicast() || mac == MacAddr::UNSPECIFIED {
                    f.error(key("mac"), format!("{mac} is not a unicast MAC address"));
                } else if let Some(&j) = macs.get(&mac) {
                    f.error(key("mac"), format!("{mac} is also ports[{j}].mac"));
                } else {
                    macs.insert(mac, i);
                }
            }
            let min = ipv6::MIN_MTU as u32;
            if u32::from(p.mtu) < min {
                f.error(
                    key("mtu"),
                    format!("{} is below the IPv6 minimum {min}", p.mtu),
                );
            } else if p.mtu > MAX_MTU {
                f.error(key("mtu"), format!("{} is above {MAX_MTU}", p.mtu));
            } else if self.port_tunnel_mtu(p) < min {
                // RFC 2473 §7.1 (b): inner packets of up to 1280 octets that do not fit are
                // still carried, in outer fragments; legal, but every such packet costs two.
                f.warn(
                    key("mtu"),
                    format!(
                        "{} leaves a tunnel MTU of {} (overhead {}), below {min}: packets of \
                         {}..={min} octets are sent as two outer fragments",
                        p.mtu,
                        self.port_tunnel_mtu(p),
                        self.tunnel_overhead(),
                        self.port_tunnel_mtu(p) + 1
                    ),
                );
            }
            if let Some(nh) = p.next_hop {
                if let Some(why) = not_unicast(&nh) {
                    f.error(
                        key("next_hop"),
                        format!("{nh} is {why}, not a link-local or global unicast address"),
                    );
                } else if local.contains(&nh) {
                    f.error(
                        key("next_hop"),
                        format!("{nh} is an address of the appliance itself"),
                    );
                } else if self.services.iter().any(|s| s.address == nh) {
                    f.error(key("next_hop"), format!("{nh} is a service address"));
                }
            }
            if let Some(mac) = p.next_hop_mac {
                if !mac.is_unicast() || mac == MacAddr::UNSPECIFIED {
                    f.error(
                        key("next_hop_mac"),
                        format!("{mac} is not a unicast MAC address"),
                    );
                }
            }
            if p.next_hop.is_none() && p.next_hop_mac.is_none() {
                f.error(
                    format!("ports[{i}]"),
                    "has neither next_hop nor next_hop_mac: packets to clients could not \
                     leave this port",
                );
            }
        }
    }

    fn check_services(&self, f: &mut Findings) {
        if self.services.is_empty() {
            f.error(
                "services",
                "no service is configured; at least one [[services]] is needed",
            );
        }
        let tunnel = self.appliance.tunnel_address;
        let local = self.appliance_addresses();
        let mut addresses: HashMap<Ipv6Addr, usize> = HashMap::new();
        for (i, s) in self.services.iter().enumerate() {
            let key = |k: &str| format!("services[{i}].{k}");
            if let Some(why) = not_global_unicast(&s.address) {
                f.error(
                    key("address"),
                    format!("{} is {why}, not a global unicast address", s.address),
                );
            } else if s.address == tunnel {
                f.error(
                    key("address"),
                    format!(
                        "{} is appliance.tunnel_address, not a service address",
                        s.address
                    ),
                );
            } else if local.contains(&s.address) {
                f.error(
                    key("address"),
                    format!(
                        "{} is in appliance.addresses, not a service address",
                        s.address
                    ),
                );
            } else if let Some(&j) = addresses.get(&s.address) {
                f.error(
                    key("address"),
                    format!("{} is also services[{j}].address", s.address),
                );
            } else {
                addresses.insert(s.address, i);
            }
            if let Some(name) = &s.port {
                if self.service_port_index(s).is_none() {
                    f.error(key("port"), format!("{name:?} is not the name of a port"));
                }
            }
            let size = s.maglev_size;
            if size > maglev::MAX_TABLE_SIZE {
                f.error(
                    key("maglev_size"),
                    format!("{size} is above the maximum {}", maglev::MAX_TABLE_SIZE),
                );
            } else if !is_prime(size) {
                f.error(
                    key("maglev_size"),
                    format!("{size} is not prime (e.g. 65537 or 655373)"),
                );
            } else {
                let min = u64::from(maglev::MIN_SLOTS_PER_MEMBER) * s.members.len() as u64;
                if u64::from(size) < min {
                    f.error(
                        key("maglev_size"),
                        format!(
                            "{size} is too small for {}: at least {min} slots ({} per member) \
                             are needed",
                            count(s.members.len(), "member"),
                            maglev::MIN_SLOTS_PER_MEMBER
                        ),
                    );
                }
            }
            if s.members.is_empty() {
                let why = if self.registration.is_some() && s.accept_registrations {
                    "no static member: the service takes no flows until a member registers"
                } else {
                    "no static member and no registrations: the service takes no flows"
                };
                f.warn(format!("services[{i}].members"), why);
            } else if s.members.iter().all(|m| m.weight == 0) {
                f.warn(
                    format!("services[{i}].members"),
                    "every member has weight 0: the service takes no new flows",
                );
            }
            self.check_members(f, i, s, &local);
            self.check_health(f, i, s);
            if s.max_bindings == 0 && s.accept_registrations {
                f.error(
                    key("max_bindings"),
                    "0 admits no registration; set accept_registrations = false instead",
                );
            } else if s.max_bindings > crate::dataplane::snapshot::MEMBER_SLOTS {
                f.error(
                    key("max_bindings"),
                    format!(
                        "{} is above {}, the most members the data plane counts",
                        s.max_bindings,
                        crate::dataplane::snapshot::MEMBER_SLOTS
                    ),
                );
            }
            if s.drain_timeout > MAX_AFFINITY_IDLE_TIMEOUT {
                f.error(
                    key("drain_timeout"),
                    format!(
                        "{} is above {MAX_AFFINITY_IDLE_TIMEOUT} seconds",
                        s.drain_timeout
                    ),
                );
            }
        }
    }

    fn check_members(&self, f: &mut Findings, i: usize, s: &ServiceConfig, local: &[Ipv6Addr]) {
        let mut care_ofs: HashMap<Ipv6Addr, usize> = HashMap::new();
        for (k, m) in s.members.iter().enumerate() {
            let key = |name: &str| format!("services[{i}].members[{k}].{name}");
            let c = m.care_of;
            // RFC 2473 §4.1.2: a care-of address that leads back to the appliance (its own
            // address or a service it tunnels for) would make tunnel packets loop.
            if let Some(why) = not_global_unicast(&c) {
                f.error(
                    key("care_of"),
                    format!("{c} is {why}, not a global unicast address"),
                );
            } else if c == self.appliance.tunnel_address {
                f.error(
                    key("care_of"),
                    format!("{c} is appliance.tunnel_address, not a care-of address"),
                );
            } else if local.contains(&c) {
                f.error(
                    key("care_of"),
                    format!("{c} is an address of the appliance, not a care-of address"),
                );
            } else if self.services.iter().any(|other| other.address == c) {
                f.error(
                    key("care_of"),
                    format!("{c} is a service address, not a care-of address"),
                );
            } else if let Some(&j) = care_ofs.get(&c) {
                f.error(
                    key("care_of"),
                    format!("{c} is also services[{i}].members[{j}].care_of"),
                );
            } else {
                care_ofs.insert(c, k);
            }
            if m.weight > MAX_WEIGHT {
                f.error(
                    key("weight"),
                    format!("{} is outside 0..={MAX_WEIGHT}", m.weight),
                );
            }
            if let Some(mac) = m.mac {
                if !mac.is_unicast() || mac == MacAddr::UNSPECIFIED {
                    f.error(key("mac"), format!("{mac} is not a unicast MAC address"));
                }
            }
        }
    }

    /// The tunnel address and `appliance.addresses`.
    fn appliance_addresses(&self) -> Vec<Ipv6Addr> {
        let mut v = vec![self.appliance.tunnel_address];
        v.extend(self.appliance.addresses.iter().copied());
        v
    }
}

/// Turns a TOML/serde error into an issue: `unknown field`/`missing field` messages are
/// rewritten to name the full key path.
fn parse_issue(text: &str, path: &str, e: &toml::de::Error) -> ConfigIssue {
    let message = e.message().trim();
    // The path may already end with the key (unknown keys) or stop at its table (missing).
    let join = |field: &str| {
        if path == field || path.ends_with(&format!(".{field}")) {
            path.to_owned()
        } else if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        }
    };
    let (key, reason) = if let Some(rest) = message.strip_prefix("unknown field `") {
        match rest.split_once('`') {
            Some((field, expected)) => {
                let expected = expected.trim_start_matches(',').trim();
                (join(field), format!("unknown key; {expected}"))
            }
            None => (path.to_owned(), message.to_owned()),
        }
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        match rest.split_once('`') {
            Some((field, _)) => (join(field), "is required".to_owned()),
            None => (path.to_owned(), message.to_owned()),
        }
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        match rest.split_once('`') {
            Some((value, expected)) => (
                path.to_owned(),
                format!(
                    "{value:?} is not allowed; {}",
                    expected.trim_start_matches(',').trim()
                ),
            ),
            None => (path.to_owned(), message.to_owned()),
        }
    } else {
        (path.to_owned(), message.to_owned())
    };
    let position = e.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
        (line, column)
    });
    ConfigIssue {
        key,
        reason,
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = include_str!("../../examples/basic.toml");

    /// The smallest valid configuration.
    const MINIMAL: &str = r#"
[appliance]
tunnel_address = "2001:db8:ff::1"

[[ports]]
name = "uplink"
device = "net_ring0"
next_hop = "fe80::1"

[[services]]
address = "2001:db8:100::1"
[[services.members]]
care_of = "2001:db8:2::10"
"#;

    fn errors_of(text: &str) -> Vec<ConfigIssue> {
        match Config::from_toml_str(text) {
            Err(ConfigError::Invalid(issues)) => issues,
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    /// `MINIMAL` with `from` replaced by `to` breaks exactly one rule, about `key`, and
    /// the message contains `reason`.
    fn assert_single_error(from: &str, to: &str, key: &str, reason: &str) {
        assert!(MINIMAL.contains(from), "{from:?} not in MINIMAL");
        let text = MINIMAL.replacen(from, to, 1);
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, key, "{}", errors[0]);
        assert!(
            errors[0].reason.contains(reason),
            "{:?} does not contain {reason:?}",
            errors[0].reason
        );
    }

    /// Like [`assert_single_error`], appending `extra` lines to the section `section`.
    fn assert_single_error_with(section: &str, extra: &str, key: &str, reason: &str) {
        assert_single_error(section, &format!("{section}\n{extra}"), key, reason);
    }

    fn parse_error_of(text: &str) -> ConfigIssue {
        match Config::from_toml_str(text) {
            Err(ConfigError::Parse(issue)) => issue,
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn example_parses_and_validates() {
        let c = Config::from_toml_str(BASIC).expect("examples/basic.toml is valid");
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        assert_eq!(
            c.appliance.tunnel_address,
            "2001:db8:ff::1".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(c.appliance.encap_limit, None);
        assert_eq!(c.ports.len(), 1);
        assert_eq!(
            c.ports[0].next_hop_mac,
            Some(MacAddr([2, 0, 0, 0, 0, 0xfe]))
        );
        assert_eq!(c.services.len(), 2);
        let s0 = &c.services[0];
        assert_eq!(s0.address, "2001:db8:100::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(s0.affinity, Affinity::Client);
        let care_ofs: Vec<String> = s0.members.iter().map(|m| m.care_of.to_string()).collect();
        assert_eq!(
            care_ofs,
            ["2001:db8:2::10", "2001:db8:2::11", "2001:db8:2::12"]
        );
        assert!(s0.members.iter().all(|m| m.weight == 1));
        let s1 = &c.services[1];
        assert_eq!(s1.address, "2001:db8:100::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(s1.affinity, Affinity::Flow);
        let weights: Vec<(String, u32)> = s1
            .members
            .iter()
            .map(|m| (m.care_of.to_string(), m.weight))
            .collect();
        assert_eq!(
            weights,
            [
                ("2001:db8:2::20".to_owned(), 1),
                ("2001:db8:2::21".to_owned(), 3)
            ]
        );
        assert_eq!(c.tunnel_overhead(), 40);
        assert_eq!(c.service_tunnel_mtu(s0), Some(1460));
        assert_eq!(c.service_tunnel_mtu(s1), Some(1460));
        assert_eq!(c.summary(), "1 port, 2 services, 5 members");
    }

    #[test]
    fn example_snapshot_spec_builds_a_snapshot() {
        let c = Config::from_toml_str(BASIC).unwrap();
        let spec = c.snapshot_spec();
        assert_eq!(spec.ports[0].mac, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(spec.ports[0].link_mtu, 1500);
        assert_eq!(spec.services[1].affinity, AffinityMode::Flow);
        assert_eq!(spec.services[1].members[1].weight, 3);
        assert_eq!(spec.services[1].members[1].id, 1);
        assert_eq!(spec.tunnel.traffic_class, TrafficClass::CopyInner);
        crate::dataplane::snapshot::Snapshot::build(&spec).expect("snapshot builds");
    }

    #[test]
    fn defaults_are_applied() {
        let c = Config::from_toml_str(MINIMAL).unwrap();
        let a = &c.appliance;
        assert!(a.addresses.is_empty());
        assert_eq!(a.outer_hop_limit, 64);
        assert_eq!(a.encap_limit, None);
        assert_eq!(a.tunnel_traffic_class, TrafficClass::CopyInner);
        assert_eq!((a.icmp_rate, a.icmp_burst), (10, 10));
        assert_eq!(c.dataplane, DataplaneConfig::default());
        let d = &c.dataplane;
        assert_eq!(d.workers, 1);
        assert_eq!(d.lcores, None);
        assert_eq!(d.affinity_capacity, 65_536);
        assert_eq!(d.affinity_idle_timeout, 300);
        assert_eq!(d.mempool_size, 8191);
        assert_eq!(d.rss, RssConfig::Addresses);
        assert!(d.virtual_devices_only);
        assert!(d.eal_args.is_empty());
        let p = &c.ports[0];
        assert_eq!((p.mac, p.mtu, p.next_hop_mac), (None, 1500, None));
        let s = &c.services[0];
        assert_eq!(s.affinity, Affinity::Client);
        assert_eq!(s.port, None);
        assert_eq!(c.service_port_index(s), Some(0));
        assert_eq!(s.maglev_size, 65_537);
        assert_eq!((s.members[0].weight, s.members[0].mac), (1, None));
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn registration_admin_and_health_sections() {
        let text = format!(
            "{MINIMAL}\n[services.health]\nkind = \"tcp\"\nport = 80\n\
             [registration]\ntrusted_prefixes = [\"2001:db8:2::/64\"]\nmax_lifetime = 100\n\
             [admin]\nsocket = \"/tmp/a.sock\"\nmetrics = \"127.0.0.1:9106\"\n"
        );
        let c = Config::from_toml_str(&text).unwrap();
        let r = c.registration.as_ref().unwrap();
        assert_eq!(r.trusted_prefixes, [("2001:db8:2::".parse().unwrap(), 64)]);
        assert_eq!(
            (r.replay_window, r.max_lifetime, r.refresh_percent),
            (7, 100, 80)
        );
        let h = c.services[0].health.as_ref().unwrap();
        assert_eq!(
            (h.kind, h.port, h.interval_ms, h.timeout_ms),
            (HealthKind::Tcp, Some(80), 1000, 500)
        );
        assert_eq!((h.rise, h.fall), (2, 3));
        assert_eq!(c.admin.metrics.unwrap().port(), 9106);
        assert!(c.services[0].accept_registrations);
        assert_eq!(
            (c.services[0].max_bindings, c.services[0].drain_timeout),
            (256, 300)
        );
        // Without [registration] nothing registers, and a missing member says so.
        assert!(Config::from_toml_str(MINIMAL)
            .unwrap()
            .registration
            .is_none());
    }

    #[test]
    fn registration_admin_and_health_errors() {
        let svc = "address = \"2001:db8:100::1\"";
        assert_single_error_with(
            svc,
            "[services.health]\nkind = \"tcp\"",
            "services[0].health.port",
            "required",
        );
        assert_single_error_with(
            svc,
            "[services.health]\nkind = \"echo\"\nport = 80",
            "services[0].health.port",
            "only for",
        );
        assert_single_error_with(
            svc,
            "[services.health]\nkind = \"echo\"\ninterval_ms = 100\ntimeout_ms = 200",
            "services[0].health.timeout_ms",
            "1..=interval_ms",
        );
        assert_single_error_with(
            svc,
            "[services.health]\nkind = \"echo\"\nfall = 0",
            "services[0].health.fall",
            "outside",
        );
        assert_single_error_with(
            svc,
            "max_bindings = 5000",
            "services[0].max_bindings",
            "4096",
        );
        let reg = |extra: &str| {
            format!("{MINIMAL}\n[registration]\ntrusted_prefixes = [\"2001:db8:2::/64\"]\n{extra}")
        };
        for (extra, key, reason) in [
            ("replay_window = 0", "registration.replay_window", "outside"),
            ("max_lifetime = 2", "registration.max_lifetime", "outside"),
            (
                "refresh_percent = 100",
                "registration.refresh_percent",
                "outside",
            ),
            (
                "key_file = \"/nonexistent/keys.toml\"",
                "registration.key_file",
                "cannot read",
            ),
        ] {
            let errors = errors_of(&reg(extra));
            assert_eq!(errors.len(), 1, "{errors:#?}");
            assert_eq!(errors[0].key, key);
            assert!(errors[0].reason.contains(reason), "{}", errors[0]);
        }
        let e = parse_error_of(&format!(
            "{MINIMAL}\n[registration]\ntrusted_prefixes = [\"2001:db8::/129\"]"
        ));
        assert!(e.reason.contains("not an IPv6 prefix"), "{e}");
        let errors = errors_of(&format!("{MINIMAL}\n[admin]\nsocket = \"relative.sock\""));
        assert_eq!(errors[0].key, "admin.socket");
        // Legal but risky: warnings.
        let c = Config::from_toml_str(&format!(
            "{MINIMAL}\n[registration]\ntrusted_prefixes = [\"2001:db8::1/16\"]\n[admin]\nmetrics = \"[::]:9106\""
        ))
        .unwrap();
        let w: Vec<String> = c.warnings().iter().map(|w| w.to_string()).collect();
        assert!(w.iter().any(|w| w.contains("bits set after")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("very large part")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("admin.metrics")), "{w:?}");
        let c = Config::from_toml_str(&format!("{MINIMAL}\n[registration]\n")).unwrap();
        assert!(c.warnings().iter().any(|w| w.reason.contains("status 129")));
    }

    #[test]
    fn dataplane_section_may_be_partial() {
        let text = format!("{MINIMAL}\n[dataplane]\nworkers = 2\n");
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.dataplane.workers, 2);
        assert_eq!(c.lcores().unwrap(), [0, 1, 2]);
    }

    #[test]
    fn traffic_class_copy_or_number() {
        let c = Config::from_toml_str(&MINIMAL.replace(
            "tunnel_address = \"2001:db8:ff::1\"",
            "tunnel_address = \"2001:db8:ff::1\"\ntunnel_traffic_class = 46",
        ))
        .unwrap();
        assert_eq!(c.appliance.tunnel_traffic_class, TrafficClass::Fixed(46));
        for bad in ["256", "-1", "\"keep\""] {
            let e = parse_error_of(&MINIMAL.replace(
                "tunnel_address = \"2001:db8:ff::1\"",
                &format!("tunnel_address = \"2001:db8:ff::1\"\ntunnel_traffic_class = {bad}"),
            ));
            assert_eq!(e.key, "appliance.tunnel_traffic_class", "{e}");
        }
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let e = parse_error_of(&MINIMAL.replace("care_of =", "care_off ="));
        assert_eq!(e.key, "services[0].members[0].care_off", "{e}");
        assert!(e.reason.starts_with("unknown key"), "{e}");
        assert!(e.reason.contains("care_of"), "{e}");
        assert!(e.position.is_some(), "{e}");

        let e = parse_error_of(&MINIMAL.replace("tunnel_address =", "tunel_address ="));
        // The typo also leaves the required key missing; the unknown key is reported.
        assert!(e.key == "appliance.tunel_address", "{e}");

        let e = parse_error_of(&format!("{MINIMAL}\n[dataplan]\nworkers = 2\n"));
        assert_eq!(e.key, "dataplan", "{e}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let e = parse_error_of(&MINIMAL.replace("device = \"net_ring0\"\n", ""));
        assert_eq!(e.key, "ports[0].device", "{e}");
        assert_eq!(e.reason, "is required");
        let e = parse_error_of("[[ports]]\nname = \"a\"\ndevice = \"net_ring0\"\n");
        assert_eq!(e.key, "appliance", "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse_error_of(&MINIMAL.replace("2001:db8:2::10", "2001:db8:2::g"));
        assert_eq!(e.key, "services[0].members[0].care_of", "{e}");
        assert!(e.reason.contains("not an IPv6 address"), "{e}");
        let e = parse_error_of(&MINIMAL.replace(
            "next_hop = \"fe80::1\"",
            "next_hop = \"fe80::1\"\nnext_hop_mac = \"02:00:00:00:00\"",
        ));
        assert_eq!(e.key, "ports[0].next_hop_mac", "{e}");
        assert!(e.reason.contains("not a MAC address"), "{e}");
        let e = parse_error_of(&MINIMAL.replace(
            "address = \"2001:db8:100::1\"",
            "address = \"2001:db8:100::1\"\naffinity = \"sticky\"",
        ));
        assert_eq!(e.key, "services[0].affinity", "{e}");
        assert!(e.reason.contains("client"), "{e}");
        let e = parse_error_of(&MINIMAL.replace(
            "tunnel_address = \"2001:db8:ff::1\"",
            "tunnel_address = \"2001:db8:ff::1\"\nencap_limit = 256",
        ));
        assert_eq!(e.key, "appliance.encap_limit", "{e}");
        let e = parse_error_of("[appliance\n");
        assert_eq!(e.key, "");
        assert_eq!(e.position.map(|p| p.0), Some(1), "{e}");
    }

    #[test]
    fn needs_a_port_and_a_service() {
        let errors = errors_of("[appliance]\ntunnel_address = \"2001:db8:ff::1\"\n");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["ports", "services"]);
    }

    #[test]
    fn several_errors_are_all_reported_one_per_line() {
        let text = MINIMAL
            .replace("2001:db8:2::10", "2001:db8:100::1")
            .replace(
                "next_hop = \"fe80::1\"",
                "next_hop = \"fe80::1\"\nmtu = 1200",
            )
            .replace(
                "address = \"2001:db8:100::1\"",
                "address = \"2001:db8:100::1\"\nmaglev_size = 65536",
            );
        let err = Config::from_toml_str(&text).unwrap_err();
        let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
        assert_eq!(
            lines,
            [
                "3 problems:",
                "  ports[0].mtu: 1200 is below the IPv6 minimum 1280",
                "  services[0].maglev_size: 65536 is not prime (e.g. 65537 or 655373)",
                "  services[0].members[0].care_of: 2001:db8:100::1 is a service address, \
                 not a care-of address",
            ]
        );
        assert_eq!(err.issues().len(), 3);
    }

    #[test]
    fn tunnel_address_must_be_global_unicast() {
        for (bad, why) in [
            ("ff05::1", "multicast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::2", "link-local"),
            ("::ffff:192.0.2.1", "IPv4-mapped"),
        ] {
            assert_single_error(
                "tunnel_address = \"2001:db8:ff::1\"",
                &format!("tunnel_address = \"{bad}\""),
                "appliance.tunnel_address",
                why,
            );
        }
    }

    #[test]
    fn extra_addresses_are_unicast_and_unique() {
        let section = "tunnel_address = \"2001:db8:ff::1\"";
        assert_single_error_with(
            section,
            "addresses = [\"ff02::1\"]",
            "appliance.addresses[0]",
            "multicast",
        );
        assert_single_error_with(
            section,
            "addresses = [\"2001:db8:ff::1\"]",
            "appliance.addresses[0]",
            "tunnel_address",
        );
        assert_single_error_with(
            section,
            "addresses = [\"2001:db8:ff::2\", \"2001:db8:ff::2\"]",
            "appliance.addresses[1]",
            "appliance.addresses[0]",
        );
        // Link-local extra addresses are fine.
        let c = Config::from_toml_str(&MINIMAL.replace(
            section,
            &format!("{section}\naddresses = [\"fe80::2\", \"2001:db8:ff::2\"]"),
        ))
        .unwrap();
        assert_eq!(c.appliance.addresses.len(), 2);
    }

    #[test]
    fn outer_hop_limit_not_zero() {
        assert_single_error_with(
            "tunnel_address = \"2001:db8:ff::1\"",
            "outer_hop_limit = 0",
            "appliance.outer_hop_limit",
            "1..=255",
        );
    }

    #[test]
    fn encap_limit_zero_is_allowed_with_a_warning() {
        let text = MINIMAL.replace(
            "tunnel_address = \"2001:db8:ff::1\"",
            "tunnel_address = \"2001:db8:ff::1\"\nencap_limit = 0",
        );
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.appliance.encap_limit, Some(0));
        assert_eq!(c.tunnel_overhead(), 48);
        let w = c.warnings();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].key, "appliance.encap_limit");
    }

    #[test]
    fn icmp_rate_and_burst_in_range() {
        let section = "tunnel_address = \"2001:db8:ff::1\"";
        assert_single_error_with(section, "icmp_rate = 0", "appliance.icmp_rate", "outside");
        assert_single_error_with(
            section,
            "icmp_rate = 1000001",
            "appliance.icmp_rate",
            "outside",
        );
        assert_single_error_with(section, "icmp_burst = 0", "appliance.icmp_burst", "outside");
    }

    #[test]
    fn dataplane_ranges() {
        let cases = [
            ("workers = 0", "dataplane.workers"),
            ("workers = 65", "dataplane.workers"),
            ("affinity_capacity = 1023", "dataplane.affinity_capacity"),
            (
                "affinity_idle_timeout = 0",
                "dataplane.affinity_idle_timeout",
            ),
            (
                "affinity_idle_timeout = 86401",
                "dataplane.affinity_idle_timeout",
            ),
            ("mempool_size = 1000", "dataplane.mempool_size"),
            ("lcores = \"0\"", "dataplane.lcores"),
            ("lcores = \"3-1\"", "dataplane.lcores"),
            ("lcores = \"0,1,1\"", "dataplane.lcores"),
            ("lcores = \"zero\"", "dataplane.lcores"),
        ];
        for (line, key) in cases {
            let errors = errors_of(&format!("{MINIMAL}\n[dataplane]\n{line}\n"));
            assert_eq!(errors.len(), 1, "{line}: {errors:#?}");
            assert_eq!(errors[0].key, key, "{line}");
        }
    }

    #[test]
    fn dataplane_warnings() {
        let c = Config::from_toml_str(&format!(
            "{MINIMAL}\n[dataplane]\naffinity_capacity = 3000\nmempool_size = 8000\nlcores = \"0-3\"\n"
        ))
        .unwrap();
        let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            w,
            [
                "dataplane.lcores: \"0-3\" has 4 lcores, only 2 are used (main + 1 worker)",
                "dataplane.affinity_capacity: 3000 is rounded up to the power of two 4096",
                "dataplane.mempool_size: 8000 is not of the form 2^n - 1; 8191 would use the \
                 same memory",
            ]
        );
    }

    #[test]
    fn port_names_and_devices_unique() {
        let second =
            "\n[[ports]]\nname = \"uplink\"\ndevice = \"net_ring1\"\nnext_hop = \"fe80::1\"\n";
        let errors = errors_of(&format!("{MINIMAL}{second}"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "ports[1].name");

        let second =
            "\n[[ports]]\nname = \"down\"\ndevice = \"net_ring0\"\nnext_hop = \"fe80::1\"\n";
        let errors = errors_of(&format!("{MINIMAL}{second}"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "ports[1].device");

        // A short PCI address names the same device as its long form.
        let text = format!(
            "{}\n[dataplane]\nvirtual_devices_only = false\n",
            MINIMAL.replace("net_ring0", "0000:01:00.0")
        );
        let second = "\n[[ports]]\nname = \"down\"\ndevice = \"01:00.0\"\nnext_hop = \"fe80::1\"\n";
        let errors = errors_of(&format!("{text}{second}"));
        assert_eq!(errors[0].key, "ports[1].device");
    }

    #[test]
    fn port_device_must_be_recognisable() {
        assert_single_error(
            "net_ring0",
            "eth0",
            "ports[0].device",
            "neither a PCI address",
        );
        assert_single_error("net_ring0", "", "ports[0].device", "neither");
        assert_single_error("net_ring0", "0000:01:00.8", "ports[0].device", "neither");
    }

    #[test]
    fn pci_device_needs_bare_metal_mode() {
        assert_single_error(
            "net_ring0",
            "0000:3b:00.0",
            "ports[0].device",
            "virtual_devices_only",
        );
        let text = format!(
            "{}\n[dataplane]\nvirtual_devices_only = false\n",
            MINIMAL.replace("net_ring0", "0000:3b:00.0")
        );
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.eal_args("p")[4..], ["-a", "0000:3b:00.0"]);
    }

    #[test]
    fn five_tuple_rss_needs_flow_affinity() {
        let errors = errors_of(&format!("{MINIMAL}\n[dataplane]\nrss = \"five-tuple\"\n"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "dataplane.rss");
        assert!(errors[0].reason.contains("services[0] has client affinity"));
        let text = MINIMAL.replace(
            "address = \"2001:db8:100::1\"",
            "address = \"2001:db8:100::1\"\naffinity = \"flow\"",
        );
        let c =
            Config::from_toml_str(&format!("{text}\n[dataplane]\nrss = \"five-tuple\"\n")).unwrap();
        assert_eq!(c.dataplane.rss, RssConfig::FiveTuple);
        let e = parse_error_of(&format!("{MINIMAL}\n[dataplane]\nrss = \"five_tuple\"\n"));
        assert_eq!(e.key, "dataplane.rss", "{e}");
    }

    #[test]
    fn port_mtu_range() {
        let section = "next_hop = \"fe80::1\"";
        assert_single_error_with(
            section,
            "mtu = 1279",
            "ports[0].mtu",
            "below the IPv6 minimum 1280",
        );
        assert_single_error_with(section, "mtu = 9217", "ports[0].mtu", "above 9216");
        Config::from_toml_str(&MINIMAL.replace(section, &format!("{section}\nmtu = 9216")))
            .unwrap();
    }

    #[test]
    fn small_tunnel_mtu_is_a_warning() {
        let c = Config::from_toml_str(&MINIMAL.replace(
            "next_hop = \"fe80::1\"",
            "next_hop = \"fe80::1\"\nmtu = 1300",
        ))
        .unwrap();
        assert_eq!(c.service_tunnel_mtu(&c.services[0]), Some(1260));
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "ports[0].mtu");
        assert!(w[0].reason.contains("tunnel MTU of 1260"), "{}", w[0]);
    }

    #[test]
    fn port_macs_unicast() {
        let section = "next_hop = \"fe80::1\"";
        assert_single_error_with(
            section,
            "mac = \"01:00:5e:00:00:01\"",
            "ports[0].mac",
            "unicast",
        );
        assert_single_error_with(
            section,
            "mac = \"00:00:00:00:00:00\"",
            "ports[0].mac",
            "unicast",
        );
        assert_single_error_with(
            section,
            "next_hop_mac = \"ff:ff:ff:ff:ff:ff\"",
            "ports[0].next_hop_mac",
            "unicast",
        );
    }

    #[test]
    fn port_macs_unique() {
        let text = MINIMAL.replace(
            "next_hop = \"fe80::1\"",
            "next_hop = \"fe80::1\"\nmac = \"02:00:00:00:00:01\"",
        );
        let second = "\n[[ports]]\nname = \"b\"\ndevice = \"net_ring1\"\nnext_hop = \"fe80::1\"\nmac = \"02:00:00:00:00:01\"\n";
        let c = Config::parse(&format!("{text}{second}")).unwrap();
        let errors = match c.validate() {
            Err(ConfigError::Invalid(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "ports[1].mac");
    }

    #[test]
    fn next_hop_kinds() {
        for bad in ["ff02::2", "::", "::1"] {
            assert_single_error(
                "next_hop = \"fe80::1\"",
                &format!("next_hop = \"{bad}\""),
                "ports[0].next_hop",
                "not a link-local or global unicast address",
            );
        }
        assert_single_error(
            "next_hop = \"fe80::1\"",
            "next_hop = \"2001:db8:ff::1\"",
            "ports[0].next_hop",
            "appliance itself",
        );
        assert_single_error(
            "next_hop = \"fe80::1\"",
            "next_hop = \"2001:db8:100::1\"",
            "ports[0].next_hop",
            "service address",
        );
        Config::from_toml_str(&MINIMAL.replace("fe80::1", "2001:db8:1::1")).unwrap();
        // A static MAC alone is enough.
        Config::from_toml_str(&MINIMAL.replace(
            "next_hop = \"fe80::1\"",
            "next_hop_mac = \"02:00:00:00:00:fe\"",
        ))
        .unwrap();
    }

    #[test]
    fn port_needs_a_next_hop() {
        assert_single_error(
            "next_hop = \"fe80::1\"\n",
            "",
            "ports[0]",
            "neither next_hop nor next_hop_mac",
        );
    }

    #[test]
    fn port_without_services_is_fine() {
        // An ingress-only port (clients arrive on it, tunnels leave by another) is normal.
        let second =
            "\n[[ports]]\nname = \"clients\"\ndevice = \"net_ring1\"\nnext_hop = \"fe80::1\"\n";
        let c = Config::from_toml_str(&format!("{MINIMAL}{second}")).unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn service_address_must_be_global_unicast() {
        for (bad, why) in [
            ("ff0e::1", "multicast"),
            ("::", "unspecified"),
            ("fe80::5", "link-local"),
        ] {
            assert_single_error(
                "address = \"2001:db8:100::1\"",
                &format!("address = \"{bad}\""),
                "services[0].address",
                why,
            );
        }
        assert_single_error(
            "address = \"2001:db8:100::1\"",
            "address = \"2001:db8:ff::1\"",
            "services[0].address",
            "appliance.tunnel_address",
        );
        assert_single_error_with(
            "tunnel_address = \"2001:db8:ff::1\"",
            "addresses = [\"2001:db8:100::1\"]",
            "services[0].address",
            "appliance.addresses",
        );
    }

    #[test]
    fn service_addresses_unique() {
        let second = "\n[[services]]\naddress = \"2001:db8:100::1\"\n[[services.members]]\ncare_of = \"2001:db8:2::11\"\n";
        let errors = errors_of(&format!("{MINIMAL}{second}"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "services[1].address");
        assert!(errors[0].reason.contains("services[0].address"));
    }

    #[test]
    fn service_port_must_exist() {
        assert_single_error_with(
            "address = \"2001:db8:100::1\"",
            "port = \"downlink\"",
            "services[0].port",
            "not the name of a port",
        );
        let c = Config::from_toml_str(&MINIMAL.replace(
            "address = \"2001:db8:100::1\"",
            "address = \"2001:db8:100::1\"\nport = \"uplink\"",
        ))
        .unwrap();
        assert_eq!(c.service_port_index(&c.services[0]), Some(0));
    }

    #[test]
    fn maglev_size_rules() {
        let section = "address = \"2001:db8:100::1\"";
        assert_single_error_with(
            section,
            "maglev_size = 65536",
            "services[0].maglev_size",
            "65536 is not prime",
        );
        assert_single_error_with(
            section,
            "maglev_size = 1",
            "services[0].maglev_size",
            "not prime",
        );
        assert_single_error_with(
            section,
            "maglev_size = 16777259",
            "services[0].maglev_size",
            "above the maximum 16777216",
        );
        // 1 member needs 10 slots: 7 is prime but too small, 11 is enough.
        assert_single_error_with(
            section,
            "maglev_size = 7",
            "services[0].maglev_size",
            "too small",
        );
        Config::from_toml_str(&MINIMAL.replace(section, &format!("{section}\nmaglev_size = 11")))
            .unwrap();
    }

    #[test]
    fn care_of_rules() {
        let from = "care_of = \"2001:db8:2::10\"";
        for (bad, why) in [
            ("ff02::1", "multicast"),
            ("::1", "loopback"),
            ("fe80::10", "link-local"),
            ("2001:db8:ff::1", "appliance.tunnel_address"),
            (
                "2001:db8:100::1",
                "is a service address, not a care-of address",
            ),
        ] {
            assert_single_error(
                from,
                &format!("care_of = \"{bad}\""),
                "services[0].members[0].care_of",
                why,
            );
        }
        assert_single_error_with(
            "tunnel_address = \"2001:db8:ff::1\"",
            "addresses = [\"2001:db8:2::10\"]",
            "services[0].members[0].care_of",
            "address of the appliance",
        );
        // A care-of naming another service is a loop too.
        let second = "\n[[services]]\naddress = \"2001:db8:100::2\"\n[[services.members]]\ncare_of = \"2001:db8:2::11\"\n";
        let errors = errors_of(&format!(
            "{}{second}",
            MINIMAL.replace("2001:db8:2::10", "2001:db8:100::2")
        ));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "services[0].members[0].care_of");
    }

    #[test]
    fn care_of_unique_per_service_only() {
        let dup = "\n[[services.members]]\ncare_of = \"2001:db8:2::10\"\n";
        let errors = errors_of(&format!("{MINIMAL}{dup}"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].key, "services[0].members[1].care_of");
        assert!(errors[0].reason.contains("services[0].members[0].care_of"));
        // The same member serving two services is fine.
        let second = "\n[[services]]\naddress = \"2001:db8:100::2\"\n[[services.members]]\ncare_of = \"2001:db8:2::10\"\n";
        Config::from_toml_str(&format!("{MINIMAL}{second}")).unwrap();
    }

    #[test]
    fn weight_range_and_zero() {
        let from = "care_of = \"2001:db8:2::10\"";
        assert_single_error_with(
            from,
            "weight = 65536",
            "services[0].members[0].weight",
            "0..=65535",
        );
        let c =
            Config::from_toml_str(&MINIMAL.replace(from, &format!("{from}\nweight = 0"))).unwrap();
        assert_eq!(c.services[0].members[0].weight, 0);
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "services[0].members");
    }

    #[test]
    fn member_mac_unicast() {
        assert_single_error_with(
            "care_of = \"2001:db8:2::10\"",
            "mac = \"33:33:00:00:00:01\"",
            "services[0].members[0].mac",
            "unicast",
        );
    }

    #[test]
    fn service_without_members_is_a_warning() {
        let text = MINIMAL.replace("[[services.members]]\ncare_of = \"2001:db8:2::10\"\n", "");
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.summary(), "1 port, 1 service, 0 members");
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "services[0].members");
    }

    #[test]
    fn device_kinds() {
        assert_eq!(device_kind("0000:01:00.0"), Some(DeviceKind::Pci));
        assert_eq!(device_kind("01:00.1"), Some(DeviceKind::Pci));
        assert_eq!(device_kind("10000:3b:00.7"), Some(DeviceKind::Pci));
        assert_eq!(
            device_kind("0000:01:00.0,txq_inline=128"),
            Some(DeviceKind::Pci)
        );
        assert_eq!(device_kind("net_ring0"), Some(DeviceKind::Virtual));
        assert_eq!(
            device_kind("net_pcap0,rx_pcap=/tmp/a.pcap,tx_pcap=/tmp/b.pcap"),
            Some(DeviceKind::Virtual)
        );
        assert_eq!(
            device_kind("virtio_user0,path=/tmp/x.sock"),
            Some(DeviceKind::Virtual)
        );
        assert_eq!(device_kind("eth_pcap0"), Some(DeviceKind::Virtual));
        assert_eq!(
            device_kind("crypto_null0,socket_id=0"),
            Some(DeviceKind::Virtual)
        );
        assert_eq!(device_kind("eth0"), None);
        assert_eq!(device_kind("0000:01:00"), None);
        assert_eq!(device_kind("net ring"), None);
        assert_eq!(device_kind(""), None);
    }

    #[test]
    fn eal_arguments() {
        let c = Config::from_toml_str(BASIC).unwrap();
        assert_eq!(
            c.eal_args("anycast6-test"),
            [
                "--no-huge",
                "--no-pci",
                "--no-shconf",
                "--no-telemetry",
                "-m",
                "1024",
                "--file-prefix",
                "anycast6-test",
                "-l",
                "0-1",
                "--vdev",
                "net_pcap0,rx_pcap=/tmp/anycast6-in.pcap,tx_pcap=/tmp/anycast6-out.pcap",
            ]
        );
        // Bare metal with only virtual devices: the EAL must not scan PCI.
        let c = Config::from_toml_str(&format!(
            "{MINIMAL}\n[dataplane]\nvirtual_devices_only = false\neal_args = [\"--in-memory\"]\n"
        ))
        .unwrap();
        assert_eq!(
            c.eal_args("p"),
            [
                "--file-prefix",
                "p",
                "-l",
                "0-1",
                "--vdev",
                "net_ring0",
                "--no-pci",
                "--in-memory"
            ]
        );
        let text = format!(
            "{}\n[[ports]]\nname = \"b\"\ndevice = \"0000:01:00.0\"\nnext_hop = \"fe80::1\"\n\
             [dataplane]\nworkers = 2\nlcores = \"2,4-5\"\nvirtual_devices_only = false\n\
             eal_args = [\"--file-prefix=mine\"]\n",
            MINIMAL.replace("[[services]]", "[[services]]\nport = \"b\"")
        );
        let c = Config::from_toml_str(&text).unwrap();
        assert_eq!(c.lcores().unwrap(), [2, 4, 5]);
        assert_eq!(
            c.eal_args("unused"),
            [
                "-l",
                "2,4-5",
                "--vdev",
                "net_ring0",
                "-a",
                "0000:01:00.0",
                "--file-prefix=mine"
            ]
        );
    }

    #[test]
    fn lcore_lists() {
        assert_eq!(parse_lcore_list("0-3").unwrap(), [0, 1, 2, 3]);
        assert_eq!(parse_lcore_list("2,4,6").unwrap(), [2, 4, 6]);
        assert_eq!(parse_lcore_list("0, 2-3").unwrap(), [0, 2, 3]);
        assert!(parse_lcore_list("").is_err());
        assert!(parse_lcore_list("1-").is_err());
        assert!(parse_lcore_list("0-5000").is_err());
        assert!(parse_lcore_list("1,0-2").is_err());
    }

    #[test]
    fn check_config_report() {
        let dir = std::env::temp_dir().join(format!("anycast6-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, BASIC).unwrap();
        let r = check_config_file(&good);
        assert!(r.ok);
        assert_eq!(r.stdout, "ok: 1 port, 2 services, 5 members\n");
        assert_eq!(r.stderr, "");

        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            BASIC
                .replacen("maglev_size = 65537", "maglev_size = 65536", 1)
                .replace("weight = 3", "weight = 70000"),
        )
        .unwrap();
        let r = check_config_file(&bad);
        assert!(!r.ok);
        assert_eq!(r.stdout, "");
        assert_eq!(
            r.stderr,
            format!(
                "{}: 2 problems:\n  \
                 services[0].maglev_size: 65536 is not prime (e.g. 65537 or 655373)\n  \
                 services[1].members[1].weight: 70000 is outside 0..=65535\n",
                bad.display()
            )
        );

        let typo = dir.join("typo.toml");
        std::fs::write(&typo, BASIC.replace("weight = 3", "wieght = 3")).unwrap();
        let r = check_config_file(&typo);
        assert!(!r.ok);
        let line = BASIC.lines().position(|l| l == "weight = 3").unwrap() + 1;
        assert_eq!(
            r.stderr,
            format!(
                "{}: services[1].members[1].wieght: unknown key; expected one of `care_of`, \
                 `weight`, `mac` (line {line}, column 1)\n",
                typo.display()
            )
        );

        let warn = dir.join("warn.toml");
        std::fs::write(
            &warn,
            BASIC
                .replace("weight = 3", "weight = 3\nmac = \"02:00:00:00:00:21\"")
                .replace("mempool_size = 8191", "mempool_size = 8000"),
        )
        .unwrap();
        let r = check_config_file(&warn);
        assert!(r.ok);
        assert_eq!(r.stdout, "ok: 1 port, 2 services, 5 members\n");
        assert_eq!(
            r.stderr,
            "warning: dataplane.mempool_size: 8000 is not of the form 2^n - 1; 8191 would \
             use the same memory\n"
        );

        let r = check_config_file(&dir.join("missing.toml"));
        assert!(!r.ok);
        assert!(r.stderr.starts_with("cannot read "), "{}", r.stderr);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn never_panics_on_arbitrary_text() {
        for text in [
            "",
            "=",
            "[[ports]]\n[[ports]]",
            "appliance = 3",
            "[appliance]\ntunnel_address = 5\n",
            "\u{0}",
        ] {
            assert!(Config::from_toml_str(text).is_err(), "{text:?}");
        }
    }
}
