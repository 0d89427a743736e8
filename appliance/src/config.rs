//! The configuration file: one TOML document, validated before anything starts.
//!
//! Every table and key is documented in docs/configuration.md. Unknown keys are errors
//! (a typo must not silently fall back to a default), and validation reports every problem
//! it finds, each naming the key path and what to do, e.g.
//! `services[0].maglev_size: 65536 is not prime`.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::Path;
use std::str::FromStr;

use anycast6_wire::ethernet::MacAddr;
use anycast6_wire::tunnel::TrafficClass;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::dataplane::snapshot::{
    AffinityMode, IcmpRateSpec, MemberSpec, MemberStatus, PortSpec, ServiceSpec, SnapshotSpec,
    TunnelSpec,
};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub appliance: ApplianceConfig,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    pub ports: Vec<PortConfig>,
    pub services: Vec<ServiceConfig>,
}

/// `[appliance]`: the appliance's own addresses and tunnel parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceConfig {
    /// Outer source address of every tunnel; the appliance answers ND and echo for it and
    /// receives reverse-tunnelled traffic on it.
    pub tunnel_address: Ipv6Addr,
    /// More unicast addresses the appliance answers for.
    #[serde(default)]
    pub addresses: Vec<Ipv6Addr>,
    #[serde(default = "default_hop_limit")]
    pub outer_hop_limit: u8,
    /// RFC 2473 Tunnel Encapsulation Limit added to tunnelled packets; absent: none.
    #[serde(default)]
    pub encap_limit: Option<u8>,
    #[serde(default)]
    pub tunnel_traffic_class: TrafficClassConfig,
    #[serde(default = "default_icmp_rate")]
    pub icmp_rate: u32,
    #[serde(default = "default_icmp_rate")]
    pub icmp_burst: u32,
}

/// `tunnel_traffic_class`: `"copy"` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficClassConfig {
    #[default]
    Copy,
    Fixed(u8),
}

impl<'de> Deserialize<'de> for TrafficClassConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Number(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "copy" => Ok(TrafficClassConfig::Copy),
            Raw::Word(w) => Err(de::Error::custom(format!(
                "expected \"copy\" or a number 0..=255, got \"{w}\""
            ))),
            Raw::Number(n) => u8::try_from(n)
                .map(TrafficClassConfig::Fixed)
                .map_err(|_| de::Error::custom(format!("{n} is not in 0..=255"))),
        }
    }
}

/// `[dataplane]`: workers and tables.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// EAL core list (`-l`); default: as many cores as workers plus the control thread.
    #[serde(default)]
    pub lcores: Option<String>,
    #[serde(default = "default_affinity_capacity")]
    pub affinity_capacity: usize,
    #[serde(default = "default_idle_timeout")]
    pub affinity_idle_timeout: u32,
    #[serde(default = "default_mempool_size")]
    pub mempool_size: u32,
    /// `"addresses"` (IPv6 source/destination) or `"five-tuple"`.
    #[serde(default)]
    pub rss: RssConfig,
    /// Hugepage-free EAL defaults (`--no-huge -m 1024 --no-pci`) when true (the default),
    /// so a fresh machine needs no setup; false for bare metal.
    #[serde(default = "default_true")]
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
            affinity_capacity: default_affinity_capacity(),
            affinity_idle_timeout: default_idle_timeout(),
            mempool_size: default_mempool_size(),
            rss: RssConfig::default(),
            virtual_devices_only: true,
            eal_args: Vec::new(),
        }
    }
}

/// `dataplane.rss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RssConfig {
    #[default]
    Addresses,
    FiveTuple,
}

/// `[[ports]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    /// PCI address (`0000:3b:00.0`) or DPDK virtual device string (`net_ring0`,
    /// `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, `virtio_user0,path=/tmp/sock`).
    pub device: String,
    #[serde(default, deserialize_with = "mac_opt")]
    pub mac: Option<MacAddr>,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default)]
    pub next_hop: Option<Ipv6Addr>,
    #[serde(default, deserialize_with = "mac_opt")]
    pub next_hop_mac: Option<MacAddr>,
}

/// `[[services]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub address: Ipv6Addr,
    #[serde(default)]
    pub affinity: AffinityConfig,
    /// Port name; default: the first port.
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default = "default_maglev_size")]
    pub maglev_size: u32,
    #[serde(default)]
    pub members: Vec<MemberConfig>,
}

/// `services[].affinity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AffinityConfig {
    /// (client, service): every flow of a client goes to the same member.
    #[default]
    Client,
    /// 5-tuple: flows of one client spread over members.
    Flow,
}

/// `[[services.members]]`: a static member.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub care_of: Ipv6Addr,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The member's MAC when it is on the port's link (otherwise the next hop is used).
    #[serde(default, deserialize_with = "mac_opt")]
    pub mac: Option<MacAddr>,
}

fn default_hop_limit() -> u8 {
    64
}
fn default_icmp_rate() -> u32 {
    10
}
fn default_workers() -> usize {
    1
}
fn default_affinity_capacity() -> usize {
    65536
}
fn default_idle_timeout() -> u32 {
    300
}
fn default_mempool_size() -> u32 {
    8191
}
fn default_true() -> bool {
    true
}
fn default_mtu() -> u16 {
    1500
}
fn default_maglev_size() -> u32 {
    65537
}
fn default_weight() -> u32 {
    1
}

fn mac_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| {
        MacAddr::from_str(&s)
            .map_err(|_| de::Error::custom(format!("\"{s}\" is not a MAC address")))
    })
    .transpose()
}

/// One problem in the file: the key path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

/// RFC 2473 tunnel header sizes.
const TUNNEL_HEADER: u16 = 40;
const TEL_HEADER: u16 = 8;
const MIN_MTU: u16 = 1280;
const MAX_MTU: u16 = 9216;

impl Config {
    /// Parses and validates.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let issues = config.validate();
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(issues))
        }
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Syntax(s) => ConfigError::Syntax(format!("{}: {s}", path.display())),
            other => other,
        })
    }

    /// Every problem, in file order.
    pub fn validate(&self) -> Vec<ConfigIssue> {
        let mut v = Vec::new();
        let mut bad = |key: String, problem: String| v.push(ConfigIssue { key, problem });
        let a = &self.appliance;
        if let Some(p) = not_global_unicast(&a.tunnel_address) {
            bad(
                "appliance.tunnel_address".into(),
                format!(
                    "{} is {p}; it must be a global unicast address",
                    a.tunnel_address
                ),
            );
        }
        for (i, addr) in a.addresses.iter().enumerate() {
            if addr.is_multicast() || addr.is_unspecified() || addr.is_loopback() {
                bad(
                    format!("appliance.addresses[{i}]"),
                    format!("{addr} is not a unicast address"),
                );
            }
        }
        if a.outer_hop_limit == 0 {
            bad(
                "appliance.outer_hop_limit".into(),
                "0 would make every tunnel packet undeliverable; use 1..=255 (64 is usual)".into(),
            );
        }
        if a.icmp_rate == 0 || a.icmp_rate > 100_000 {
            bad(
                "appliance.icmp_rate".into(),
                format!("{} is outside 1..=100000 errors per second", a.icmp_rate),
            );
        }
        if a.icmp_burst == 0 || a.icmp_burst > 100_000 {
            bad(
                "appliance.icmp_burst".into(),
                format!("{} is outside 1..=100000", a.icmp_burst),
            );
        }
        let d = &self.dataplane;
        if d.workers == 0 || d.workers > 64 {
            bad(
                "dataplane.workers".into(),
                format!("{} is outside 1..=64", d.workers),
            );
        }
        if d.affinity_capacity < 1024 || d.affinity_capacity > 1 << 26 {
            bad(
                "dataplane.affinity_capacity".into(),
                format!("{} is outside 1024..=67108864 entries", d.affinity_capacity),
            );
        }
        if d.affinity_idle_timeout == 0 {
            bad(
                "dataplane.affinity_idle_timeout".into(),
                "0 would forget every flow at once; give seconds (300 is usual)".into(),
            );
        }
        if d.mempool_size < 1023 {
            bad(
                "dataplane.mempool_size".into(),
                format!("{} mbufs is too few; at least 1023", d.mempool_size),
            );
        }
        if self.ports.is_empty() {
            bad(
                "ports".into(),
                "at least one [[ports]] table is needed".into(),
            );
        }
        let mut names = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                bad(
                    format!("ports[{i}].name"),
                    format!("\"{}\" is empty or used by another port", p.name),
                );
            }
            if p.device.trim().is_empty() {
                bad(
                    format!("ports[{i}].device"),
                    "a PCI address or a DPDK virtual device string is needed".into(),
                );
            }
            // A link MTU below 1280 + tunnel overhead is allowed: RFC 2473 §7.1 (b) has the
            // entry point fragment tunnel packets whose inner packet is at most 1280 bytes.
            if p.mtu < MIN_MTU || p.mtu > MAX_MTU {
                bad(
                    format!("ports[{i}].mtu"),
                    format!(
                        "{} is outside {MIN_MTU}..={MAX_MTU} (IPv6 needs at least {MIN_MTU})",
                        p.mtu
                    ),
                );
            }
            if let Some(h) = p.next_hop {
                if h.is_multicast() || h.is_unspecified() || h.is_loopback() {
                    bad(
                        format!("ports[{i}].next_hop"),
                        format!("{h} is not a unicast address"),
                    );
                }
            }
            for (key, mac) in [("mac", p.mac), ("next_hop_mac", p.next_hop_mac)] {
                if let Some(m) = mac {
                    if !m.is_unicast() {
                        bad(
                            format!("ports[{i}].{key}"),
                            format!("{m} is not a unicast MAC address"),
                        );
                    }
                }
            }
            if p.next_hop.is_none() && p.next_hop_mac.is_none() {
                bad(
                    format!("ports[{i}]"),
                    "give next_hop (resolved by Neighbor Discovery) or next_hop_mac: tunnel packets need a next hop".into(),
                );
            }
        }
        if self.services.is_empty() {
            bad(
                "services".into(),
                "at least one [[services]] table is needed".into(),
            );
        }
        let service_addrs: HashSet<Ipv6Addr> = self.services.iter().map(|s| s.address).collect();
        let mut seen = HashSet::new();
        for (i, s) in self.services.iter().enumerate() {
            if let Some(p) = not_global_unicast(&s.address) {
                bad(
                    format!("services[{i}].address"),
                    format!(
                        "{} is {p}; a service address must be global unicast",
                        s.address
                    ),
                );
            }
            if !seen.insert(s.address) {
                bad(
                    format!("services[{i}].address"),
                    format!("{} is listed twice", s.address),
                );
            }
            if s.address == a.tunnel_address || a.addresses.contains(&s.address) {
                bad(
                    format!("services[{i}].address"),
                    format!("{} is also an appliance address", s.address),
                );
            }
            if let Some(port) = &s.port {
                if !self.ports.iter().any(|p| &p.name == port) {
                    bad(
                        format!("services[{i}].port"),
                        format!("no port is named \"{port}\""),
                    );
                }
            }
            if !is_prime(s.maglev_size) {
                bad(
                    format!("services[{i}].maglev_size"),
                    format!("{} is not prime (65537 is the usual size)", s.maglev_size),
                );
            } else if s.maglev_size > 1 << 24 {
                bad(
                    format!("services[{i}].maglev_size"),
                    format!("{} is above 16777216", s.maglev_size),
                );
            } else if (s.maglev_size as usize) < 10 * s.members.len().max(1) {
                bad(
                    format!("services[{i}].maglev_size"),
                    format!(
                        "{} is below 10 slots per member ({} members)",
                        s.maglev_size,
                        s.members.len()
                    ),
                );
            }
            let mut coas = HashSet::new();
            for (j, m) in s.members.iter().enumerate() {
                let key = format!("services[{i}].members[{j}]");
                if let Some(p) = not_global_unicast(&m.care_of) {
                    bad(
                        format!("{key}.care_of"),
                        format!(
                            "{} is {p}; a care-of address must be global unicast",
                            m.care_of
                        ),
                    );
                }
                if service_addrs.contains(&m.care_of) {
                    bad(
                        format!("{key}.care_of"),
                        format!("{} is a service address, not a care-of address", m.care_of),
                    );
                }
                if m.care_of == a.tunnel_address {
                    bad(
                        format!("{key}.care_of"),
                        format!(
                            "{} is the tunnel address: the tunnel would loop (RFC 2473 §4.1.2)",
                            m.care_of
                        ),
                    );
                }
                if !coas.insert(m.care_of) {
                    bad(
                        format!("{key}.care_of"),
                        format!("{} is listed twice in this service", m.care_of),
                    );
                }
                if m.weight > 65535 {
                    bad(
                        format!("{key}.weight"),
                        format!("{} is above 65535", m.weight),
                    );
                }
                if let Some(mac) = m.mac {
                    if !mac.is_unicast() {
                        bad(
                            format!("{key}.mac"),
                            format!("{mac} is not a unicast MAC address"),
                        );
                    }
                }
            }
        }
        v
    }

    /// Index of the port a service uses.
    pub fn service_port(&self, service: &ServiceConfig) -> u16 {
        service
            .port
            .as_ref()
            .and_then(|n| self.ports.iter().position(|p| &p.name == n))
            .unwrap_or(0) as u16
    }

    /// Tunnel header bytes per packet: 40, or 48 with a Tunnel Encapsulation Limit.
    pub fn tunnel_overhead(&self) -> u16 {
        TUNNEL_HEADER
            + if self.appliance.encap_limit.is_some() {
                TEL_HEADER
            } else {
                0
            }
    }

    /// The snapshot the data plane starts from: static members active, epoch 1, ids in
    /// file order. Port MACs not given in the file are filled in by `run` from the devices.
    pub fn snapshot_spec(&self) -> SnapshotSpec {
        let a = &self.appliance;
        let mut next_id = 0u32;
        SnapshotSpec {
            tunnel: TunnelSpec {
                address: a.tunnel_address,
                hop_limit: a.outer_hop_limit,
                traffic_class: match a.tunnel_traffic_class {
                    TrafficClassConfig::Copy => TrafficClass::CopyInner,
                    TrafficClassConfig::Fixed(v) => TrafficClass::Fixed(v),
                },
                encap_limit: a.encap_limit,
            },
            local_addresses: a.addresses.clone(),
            ports: self
                .ports
                .iter()
                .map(|p| PortSpec {
                    mac: p.mac.unwrap_or_default(),
                    link_mtu: p.mtu,
                    next_hop_mac: p.next_hop_mac,
                })
                .collect(),
            services: self
                .services
                .iter()
                .map(|s| ServiceSpec {
                    address: s.address,
                    affinity: match s.affinity {
                        AffinityConfig::Client => AffinityMode::Client,
                        AffinityConfig::Flow => AffinityMode::Flow,
                    },
                    port: self.service_port(s),
                    maglev_size: s.maglev_size,
                    members: s
                        .members
                        .iter()
                        .map(|m| {
                            next_id += 1;
                            MemberSpec {
                                id: next_id,
                                epoch: 1,
                                care_of: m.care_of,
                                weight: m.weight,
                                status: if m.weight == 0 {
                                    MemberStatus::Draining
                                } else {
                                    MemberStatus::Active
                                },
                                mac: m.mac,
                            }
                        })
                        .collect(),
                })
                .collect(),
            icmp_rate: IcmpRateSpec {
                per_second: a.icmp_rate,
                burst: a.icmp_burst,
            },
        }
    }

    /// EAL arguments: defaults for virtual devices (or none for bare metal), the core list,
    /// one `--vdev` per virtual device or `-a` per PCI device, then `eal_args`.
    pub fn eal_args(&self, file_prefix: &str) -> Vec<String> {
        let d = &self.dataplane;
        let mut args: Vec<String> = Vec::new();
        if d.virtual_devices_only {
            args.extend(
                [
                    "--no-huge",
                    "-m",
                    "1024",
                    "--no-pci",
                    "--no-shconf",
                    "--no-telemetry",
                ]
                .map(String::from),
            );
        }
        args.extend(["--file-prefix".to_string(), file_prefix.to_string()]);
        args.push("-l".into());
        args.push(
            d.lcores
                .clone()
                .unwrap_or_else(|| format!("0-{}", d.workers)),
        );
        for p in &self.ports {
            if is_pci_address(&p.device) {
                args.extend(["-a".to_string(), p.device.clone()]);
            } else {
                args.extend(["--vdev".to_string(), p.device.clone()]);
            }
        }
        args.extend(d.eal_args.iter().cloned());
        args
    }

    /// "1 port, 2 services, 5 members".
    pub fn summary(&self) -> String {
        let members: usize = self.services.iter().map(|s| s.members.len()).sum();
        format!(
            "{} port{}, {} service{}, {} member{}",
            self.ports.len(),
            if self.ports.len() == 1 { "" } else { "s" },
            self.services.len(),
            if self.services.len() == 1 { "" } else { "s" },
            members,
            if members == 1 { "" } else { "s" }
        )
    }
}

/// `Some(what it is)` when `a` is not a global unicast address.
fn not_global_unicast(a: &Ipv6Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_loopback() {
        Some("the loopback address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.is_unicast_link_local() {
        Some("a link-local address")
    } else {
        None
    }
}

fn is_pci_address(s: &str) -> bool {
    // dddd:bb:dd.f or bb:dd.f, optionally followed by ,devargs
    let id = s.split(',').next().unwrap_or("");
    let parts: Vec<&str> = id.split([':', '.']).collect();
    matches!(parts.len(), 3 | 4)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: &str = include_str!("../../examples/basic.toml");

    fn issues(text: &str) -> Vec<String> {
        match Config::from_toml_str(text) {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(v)) => v.into_iter().map(|i| i.to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    fn broken(find: &str, replace: &str) -> Vec<String> {
        assert!(BASIC.contains(find), "example lacks {find:?}");
        issues(&BASIC.replacen(find, replace, 1))
    }

    #[test]
    fn the_example_is_valid_and_has_the_documented_shape() {
        let c = Config::from_toml_str(BASIC).unwrap();
        assert_eq!(c.summary(), "1 port, 2 services, 5 members");
        let spec = c.snapshot_spec();
        assert_eq!(spec.ports[0].link_mtu - c.tunnel_overhead(), 1460);
        assert_eq!(spec.services[1].members[1].weight, 3);
        assert_eq!(spec.services[1].affinity, AffinityMode::Flow);
        crate::dataplane::snapshot::Snapshot::build(&spec).unwrap();
    }

    #[test]
    fn each_rule_names_its_key() {
        let cases = [
            (
                "tunnel_address = \"2001:db8:ff::1\"",
                "tunnel_address = \"ff02::1\"",
                "appliance.tunnel_address",
            ),
            (
                "maglev_size = 65537",
                "maglev_size = 65536",
                "services[0].maglev_size: 65536 is not prime",
            ),
            (
                "care_of = \"2001:db8:2::10\"",
                "care_of = \"2001:db8:100::2\"",
                "services[0].members[0].care_of: 2001:db8:100::2 is a service address",
            ),
            (
                "care_of = \"2001:db8:2::11\"",
                "care_of = \"2001:db8:2::10\"",
                "services[0].members[1].care_of: 2001:db8:2::10 is listed twice",
            ),
            (
                "care_of = \"2001:db8:2::12\"",
                "care_of = \"2001:db8:ff::1\"",
                "RFC 2473 §4.1.2",
            ),
            (
                "mtu = 1500",
                "mtu = 1200",
                "ports[0].mtu: 1200 is outside 1280..=9216",
            ),
            (
                "weight = 3",
                "weight = 70000",
                "services[1].members[1].weight: 70000 is above 65535",
            ),
            (
                "address = \"2001:db8:100::2\"",
                "address = \"2001:db8:100::1\"",
                "services[1].address: 2001:db8:100::1 is listed twice",
            ),
            (
                "workers = 1",
                "workers = 0",
                "dataplane.workers: 0 is outside 1..=64",
            ),
            (
                "next_hop_mac = \"02:00:00:00:00:fe\"",
                "next_hop_mac = \"01:00:5e:00:00:01\"",
                "ports[0].next_hop_mac",
            ),
        ];
        for (find, replace, want) in cases {
            let got = broken(find, replace);
            assert!(
                got.iter().any(|l| l.contains(want)),
                "{replace}: wanted {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_syntax_errors_naming_the_key() {
        let got = broken("outer_hop_limit = 64", "outer_hop_limt = 64");
        assert!(got.iter().any(|l| l.contains("outer_hop_limt")), "{got:?}");
        let got = broken(
            "tunnel_traffic_class = \"copy\"",
            "tunnel_traffic_class = \"keep\"",
        );
        assert!(
            got.iter()
                .any(|l| l.contains("tunnel_traffic_class") && l.contains("copy")),
            "{got:?}"
        );
        let got = broken(
            "next_hop_mac = \"02:00:00:00:00:fe\"",
            "next_hop_mac = \"nope\"",
        );
        assert!(
            got.iter().any(|l| l.contains("not a MAC address")),
            "{got:?}"
        );
    }

    #[test]
    fn all_problems_are_reported_together() {
        let text = BASIC
            .replacen("maglev_size = 65537", "maglev_size = 65536", 1)
            .replacen("workers = 1", "workers = 0", 1);
        assert_eq!(issues(&text).len(), 2);
    }

    #[test]
    fn defaults_apply() {
        let c = Config::from_toml_str(
            "[appliance]\ntunnel_address = \"2001:db8::1\"\n[[ports]]\nname = \"p\"\ndevice = \"net_null0\"\nnext_hop_mac = \"02:00:00:00:00:09\"\n[[services]]\naddress = \"2001:db8:1::1\"\n[[services.members]]\ncare_of = \"2001:db8:2::1\"\n",
        )
        .unwrap();
        assert_eq!(c.dataplane, DataplaneConfig::default());
        assert_eq!(c.appliance.outer_hop_limit, 64);
        assert_eq!(c.ports[0].mtu, 1500);
        assert_eq!(c.services[0].maglev_size, 65537);
        assert_eq!(c.services[0].members[0].weight, 1);
        assert_eq!(
            c.eal_args("x"),
            [
                "--no-huge",
                "-m",
                "1024",
                "--no-pci",
                "--no-shconf",
                "--no-telemetry",
                "--file-prefix",
                "x",
                "-l",
                "0-1",
                "--vdev",
                "net_null0"
            ]
        );
    }

    #[test]
    fn pci_devices_are_allow_listed() {
        assert!(is_pci_address("0000:3b:00.0"));
        assert!(is_pci_address("3b:00.1,rx_queue_size=1024"));
        assert!(!is_pci_address("net_pcap0,rx_pcap=a.pcap"));
        assert!(!is_pci_address("virtio_user0,path=/tmp/s"));
    }

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(7) && !is_prime(65536) && !is_prime(1) && !is_prime(0));
    }
}
