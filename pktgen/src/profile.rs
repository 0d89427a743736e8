//! Traffic profiles: what to send, how fast, for how long, and which members to emulate.
//!
//! A profile comes from a TOML file ([`RawProfile::from_toml`]), from command-line flags, or
//! both: [`RawProfile::overlay`] lays the flags over the file, then [`Profile::resolve`]
//! checks every value. Every error names the key it is about, as written by the user:
//! `traffic.rate` for the file, `--rate` for a flag.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Smallest frame a client packet can be: Ethernet, IPv6 and UDP headers (TCP SYN is
/// larger, see [`Protocol::min_frame_len`]).
pub const MIN_UDP_FRAME: usize = 14 + 40 + 8;
/// Largest frame (a 1500-octet IPv6 packet plus the Ethernet header).
pub const MAX_FRAME: usize = 1514;
/// Frame sizes of the simple IMIX (7:4:1 of 64, 594, 1518 octets with FCS; without FCS,
/// as handed to the port, 60, 590 and 1514; raised here to the IPv6 minimum of 64).
pub const IMIX: [(usize, u32); 3] = [(64, 7), (590, 4), (1514, 1)];

/// An error in a profile, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The key as the user wrote it: `traffic.rate` or `--rate`.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ProfileError {}

/// A value and the key it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyed<T> {
    pub value: T,
    pub key: String,
}

impl<T> Keyed<T> {
    pub fn new(value: T, key: impl Into<String>) -> Self {
        Keyed {
            value,
            key: key.into(),
        }
    }

    fn err(&self, reason: impl Into<String>) -> ProfileError {
        ProfileError {
            key: self.key.clone(),
            reason: reason.into(),
        }
    }
}

/// A number or a string in the TOML file (`size = 64` or `size = "imix"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum NumOrStr {
    Num(f64),
    Str(String),
}

/// `[traffic]` of the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pub clients: Option<u64>,
    pub client_prefix: Option<String>,
    pub source_ports: Option<u64>,
    pub first_source_port: Option<u64>,
    pub services: Option<Vec<String>>,
    pub dst_port: Option<u64>,
    pub protocol: Option<String>,
    pub size: Option<NumOrStr>,
    pub rate: Option<NumOrStr>,
    pub duration: Option<f64>,
    pub count: Option<u64>,
    pub popularity: Option<String>,
    pub latency_sample: Option<u64>,
    pub flow_table: Option<u64>,
    pub seed: Option<u64>,
}

/// `[network]` of the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub mac: Option<String>,
    pub appliance_mac: Option<String>,
    pub tunnel_address: Option<String>,
    pub next_hop: Option<String>,
}

/// `[members]` of the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMembers {
    pub count: Option<u64>,
    pub first_care_of: Option<String>,
    pub service: Option<String>,
    pub mode: Option<String>,
    pub lifetime: Option<u64>,
    pub spi: Option<u64>,
    pub key_file: Option<PathBuf>,
    pub bid: Option<bool>,
    pub weight: Option<u64>,
    pub track_flows: Option<bool>,
    pub kill: Option<Vec<String>>,
}

/// The whole TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    traffic: RawTraffic,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    members: RawMembers,
}

/// A profile before checking: every value with the key it came from.
#[derive(Debug, Clone, Default)]
pub struct RawProfile {
    pub values: BTreeMap<&'static str, Keyed<RawValue>>,
}

/// One unchecked value.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Int(u64),
    Float(f64),
    Text(String),
    List(Vec<String>),
    Bool(bool),
    Path(PathBuf),
}

/// Every setting: (name used internally, TOML key, flag).
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("clients", "traffic.clients", "--clients"),
    ("client_prefix", "traffic.client_prefix", "--client-prefix"),
    ("source_ports", "traffic.source_ports", "--source-ports"),
    (
        "first_source_port",
        "traffic.first_source_port",
        "--first-source-port",
    ),
    ("services", "traffic.services", "--service"),
    ("dst_port", "traffic.dst_port", "--dst-port"),
    ("protocol", "traffic.protocol", "--protocol"),
    ("size", "traffic.size", "--size"),
    ("rate", "traffic.rate", "--rate"),
    ("duration", "traffic.duration", "--duration"),
    ("count", "traffic.count", "--count"),
    ("popularity", "traffic.popularity", "--popularity"),
    (
        "latency_sample",
        "traffic.latency_sample",
        "--latency-sample",
    ),
    ("flow_table", "traffic.flow_table", "--flow-table"),
    ("seed", "traffic.seed", "--seed"),
    ("mac", "network.mac", "--mac"),
    ("appliance_mac", "network.appliance_mac", "--appliance-mac"),
    (
        "tunnel_address",
        "network.tunnel_address",
        "--tunnel-address",
    ),
    ("next_hop", "network.next_hop", "--next-hop"),
    ("members", "members.count", "--members"),
    ("first_care_of", "members.first_care_of", "--first-care-of"),
    ("member_service", "members.service", "--member-service"),
    ("member_mode", "members.mode", "--member-mode"),
    ("lifetime", "members.lifetime", "--lifetime"),
    ("spi", "members.spi", "--spi"),
    ("key_file", "members.key_file", "--key-file"),
    ("bid", "members.bid", "--bid"),
    ("weight", "members.weight", "--weight"),
    ("track_flows", "members.track_flows", "--track-flows"),
    ("kill", "members.kill", "--kill-member"),
];

fn toml_key(name: &str) -> &'static str {
    SETTINGS.iter().find(|s| s.0 == name).map_or("?", |s| s.1)
}

/// The flag of a setting, e.g. `--rate` for `rate`.
pub fn flag_of(name: &str) -> &'static str {
    SETTINGS.iter().find(|s| s.0 == name).map_or("?", |s| s.2)
}

impl RawProfile {
    /// Reads a TOML profile. Syntax errors, unknown keys and values of the wrong type are
    /// reported with the key and the line.
    pub fn from_toml(text: &str) -> Result<RawProfile, ProfileError> {
        let file: RawFile = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |s| s.start.min(text.len()));
            let before = &text[..start];
            // The table the error is in: the last `[header]` before it.
            let table = before
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix('[').and_then(|l| l.strip_suffix(']')))
                .map(|t| t.trim().to_owned());
            let field = e.message().split('`').nth(1).map(str::to_owned);
            let key = match (table, field) {
                (Some(t), Some(f)) if !f.contains(' ') => format!("{t}.{f}"),
                (Some(t), _) => t,
                (None, Some(f)) => f,
                (None, None) => "profile".into(),
            };
            let line = before.matches('\n').count() + 1;
            ProfileError {
                key,
                reason: format!("{} (line {line})", e.message().trim()),
            }
        })?;
        let mut raw = RawProfile::default();
        let t = file.traffic;
        let n = file.network;
        let m = file.members;
        let mut put = |name: &'static str, v: Option<RawValue>| {
            if let Some(v) = v {
                raw.values.insert(name, Keyed::new(v, toml_key(name)));
            }
        };
        let num = |v: NumOrStr| match v {
            NumOrStr::Num(x) if x.fract() == 0.0 && x >= 0.0 => RawValue::Int(x as u64),
            NumOrStr::Num(x) => RawValue::Float(x),
            NumOrStr::Str(s) => RawValue::Text(s),
        };
        put("clients", t.clients.map(RawValue::Int));
        put("client_prefix", t.client_prefix.map(RawValue::Text));
        put("source_ports", t.source_ports.map(RawValue::Int));
        put("first_source_port", t.first_source_port.map(RawValue::Int));
        put("services", t.services.map(RawValue::List));
        put("dst_port", t.dst_port.map(RawValue::Int));
        put("protocol", t.protocol.map(RawValue::Text));
        put("size", t.size.map(num));
        put("rate", t.rate.map(num));
        put("duration", t.duration.map(RawValue::Float));
        put("count", t.count.map(RawValue::Int));
        put("popularity", t.popularity.map(RawValue::Text));
        put("latency_sample", t.latency_sample.map(RawValue::Int));
        put("flow_table", t.flow_table.map(RawValue::Int));
        put("seed", t.seed.map(RawValue::Int));
        put("mac", n.mac.map(RawValue::Text));
        put("appliance_mac", n.appliance_mac.map(RawValue::Text));
        put("tunnel_address", n.tunnel_address.map(RawValue::Text));
        put("next_hop", n.next_hop.map(RawValue::Text));
        put("members", m.count.map(RawValue::Int));
        put("first_care_of", m.first_care_of.map(RawValue::Text));
        put("member_service", m.service.map(RawValue::Text));
        put("member_mode", m.mode.map(RawValue::Text));
        put("lifetime", m.lifetime.map(RawValue::Int));
        put("spi", m.spi.map(RawValue::Int));
        put("key_file", m.key_file.map(RawValue::Path));
        put("bid", m.bid.map(RawValue::Bool));
        put("weight", m.weight.map(RawValue::Int));
        put("track_flows", m.track_flows.map(RawValue::Bool));
        put("kill", m.kill.map(RawValue::List));
        Ok(raw)
    }

    /// Sets a value given as a flag (the key is the flag's name).
    pub fn set_flag(&mut self, name: &'static str, value: RawValue) {
        self.values.insert(name, Keyed::new(value, flag_of(name)));
    }

    /// Lays `flags` over `self`: a flag wins over the file.
    pub fn overlay(mut self, flags: RawProfile) -> RawProfile {
        self.values.extend(flags.values);
        self
    }

    fn get(&self, name: &str) -> Option<&Keyed<RawValue>> {
        self.values.get(name)
    }
}

/// Transport of the client packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Udp,
    TcpSyn,
    /// UDP and TCP SYN, alternating.
    Mixed,
}

impl Protocol {
    /// Smallest frame for this protocol (the largest of the mix).
    pub fn min_frame_len(self) -> usize {
        match self {
            Protocol::Udp => MIN_UDP_FRAME,
            Protocol::TcpSyn | Protocol::Mixed => 14 + 40 + 20,
        }
    }
}

/// Frame sizes (Ethernet frame without FCS, as handed to the port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SizeSpec {
    Fixed {
        bytes: usize,
    },
    /// Uniformly drawn from `min..=max`.
    Range {
        min: usize,
        max: usize,
    },
    /// [`IMIX`].
    Imix,
}

/// Sending rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Rate {
    /// As fast as the port takes packets.
    Max,
    Pps(f64),
    /// Bits per second of Ethernet frames as handed to the port (no FCS, preamble or gap),
    /// the same measure as the port's byte counters.
    Bps(f64),
}

/// Which flows the packets belong to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "exponent")]
pub enum Popularity {
    Uniform,
    /// Flow k (1-based, in a fixed random order) is picked with probability ∝ 1/k^s.
    Zipf(f64),
}

/// What an emulated member does with client traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberMode {
    /// Answers from the service address, reverse-tunnelled to the appliance.
    Reply,
    /// Counts and drops.
    Sink,
}

/// When to kill a member.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Kill {
    pub member: usize,
    pub at: Duration,
}

/// The emulated members.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembersSpec {
    pub count: usize,
    /// Care-of address of member 0; member i has this address + i.
    pub first_care_of: Ipv6Addr,
    pub service: Ipv6Addr,
    pub mode: MemberMode,
    /// Requested binding lifetime in seconds (sent in 4-second units).
    pub lifetime_secs: u32,
    /// RFC 4285 MN-HA authentication: SPI and key. None: unauthenticated (trusted prefix).
    #[serde(skip)]
    pub auth: Option<(u32, Vec<u8>)>,
    pub spi: Option<u32>,
    /// Send a Binding Identifier option (BID = index + 1).
    pub bid: bool,
    /// Send a load report with this weight.
    pub weight: Option<u16>,
    /// Remember which member received each client flow, to count flows that move.
    pub track_flows: bool,
    pub kills: Vec<Kill>,
}

/// A checked profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub clients: u64,
    /// Client i is this address + i (in its low 64 bits).
    pub client_prefix: Ipv6Addr,
    pub source_ports: u32,
    pub first_source_port: u16,
    pub services: Vec<Ipv6Addr>,
    pub dst_port: u16,
    pub protocol: Protocol,
    pub size: SizeSpec,
    pub rate: Rate,
    /// How long client traffic is sent; `None` with `count`, or until interrupted.
    pub duration: Option<Duration>,
    pub count: Option<u64>,
    pub popularity: Popularity,
    /// One packet in this many carries a latency stamp; 0: none.
    pub latency_sample: u32,
    /// Length of the precomputed flow sequence the generator cycles through.
    pub flow_table: usize,
    pub seed: u64,
    /// Our MAC; `None`: the port's.
    pub mac: Option<[u8; 6]>,
    /// The appliance port's MAC; `None`: learnt from the wire.
    pub appliance_mac: Option<[u8; 6]>,
    /// The appliance's tunnel (home-agent) address.
    pub tunnel_address: Option<Ipv6Addr>,
    /// The appliance's configured next hop, which pktgen plays.
    pub next_hop: Option<Ipv6Addr>,
    pub members: Option<MembersSpec>,
}

fn int(v: &Keyed<RawValue>) -> Result<u64, ProfileError> {
    match &v.value {
        RawValue::Int(n) => Ok(*n),
        RawValue::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| v.err(format!("`{s}` is not a non-negative integer"))),
        other => Err(v.err(format!("{other:?} is not a non-negative integer"))),
    }
}

fn int_in(v: &Keyed<RawValue>, min: u64, max: u64) -> Result<u64, ProfileError> {
    let n = int(v)?;
    if n < min || n > max {
        return Err(v.err(format!("{n} is out of range {min}..={max}")));
    }
    Ok(n)
}

fn text(v: &Keyed<RawValue>) -> Result<String, ProfileError> {
    match &v.value {
        RawValue::Text(s) => Ok(s.clone()),
        RawValue::Int(n) => Ok(n.to_string()),
        RawValue::Float(f) => Ok(f.to_string()),
        other => Err(v.err(format!("{other:?} is not a string"))),
    }
}

fn addr(v: &Keyed<RawValue>) -> Result<Ipv6Addr, ProfileError> {
    let s = text(v)?;
    s.trim()
        .parse()
        .map_err(|_| v.err(format!("`{s}` is not an IPv6 address")))
}

/// Parses `02:00:00:00:00:fe` (also with `-`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (o, p) in mac.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

fn mac(v: &Keyed<RawValue>) -> Result<[u8; 6], ProfileError> {
    let s = text(v)?;
    let m = parse_mac(&s).ok_or_else(|| v.err(format!("`{s}` is not a MAC address")))?;
    if m[0] & 1 != 0 || m == [0; 6] {
        return Err(v.err(format!("`{s}` is not a unicast MAC address")));
    }
    Ok(m)
}

/// Parses a rate: `max`, a number of packets per second (`1000000`, `1Mpps`, `250kpps`)
/// or of bits per second (`10Gbps`, `500Mbps`, `1e9bps`).
pub fn parse_rate(s: &str) -> Option<Rate> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("max") {
        return Some(Rate::Max);
    }
    let lower = s.to_ascii_lowercase();
    let (number, unit) = match lower.find(|c: char| c.is_ascii_alphabetic() && c != 'e') {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), "pps"),
    };
    let x: f64 = number.trim().parse().ok()?;
    if !(x.is_finite() && x > 0.0) {
        return None;
    }
    let (mult, pps) = match unit.trim() {
        "pps" => (1.0, true),
        "kpps" => (1e3, true),
        "mpps" => (1e6, true),
        "bps" => (1.0, false),
        "kbps" => (1e3, false),
        "mbps" => (1e6, false),
        "gbps" => (1e9, false),
        _ => return None,
    };
    Some(if pps {
        Rate::Pps(x * mult)
    } else {
        Rate::Bps(x * mult)
    })
}

/// Parses a size: a frame length (`64`), a range (`64-1514`) or `imix`.
pub fn parse_size(s: &str) -> Option<SizeSpec> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("imix") {
        return Some(SizeSpec::Imix);
    }
    if let Some((a, b)) = s.split_once('-') {
        let (min, max) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        return (min <= max).then_some(SizeSpec::Range { min, max });
    }
    Some(SizeSpec::Fixed {
        bytes: s.parse().ok()?,
    })
}

/// Parses `IDX@SECONDS`.
pub fn parse_kill(s: &str) -> Option<Kill> {
    let (idx, secs) = s.trim().split_once('@')?;
    let secs: f64 = secs.trim().parse().ok()?;
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    Some(Kill {
        member: idx.trim().parse().ok()?,
        at: Duration::from_secs_f64(secs),
    })
}

/// Reads the MN-HA key for `spi` from a key file in the appliance's format
/// (`[[keys]] spi = N, key = "hex"`, docs/configuration.md).
pub fn read_key(path: &std::path::Path, spi: u32) -> Result<Vec<u8>, String> {
    #[derive(Deserialize)]
    struct KeyFile {
        keys: Vec<KeyEntry>,
    }
    #[derive(Deserialize)]
    struct KeyEntry {
        spi: u32,
        key: String,
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: KeyFile =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    let entry = file
        .keys
        .iter()
        .find(|k| k.spi == spi)
        .ok_or_else(|| format!("{}: no key for SPI {spi}", path.display()))?;
    let hex: String = entry.key.chars().filter(|c| *c != ':').collect();
    if hex.len() % 2 != 0 {
        return Err(format!("{}: key of SPI {spi} is not hex", path.display()));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| format!("{}: key of SPI {spi} is not hex", path.display()))
}

impl Profile {
    /// Checks every value; the first problem is returned, naming its key.
    pub fn resolve(raw: &RawProfile) -> Result<Profile, ProfileError> {
        let opt = |name: &str| raw.get(name);
        let clients = opt("clients").map_or(Ok(1), |v| int_in(v, 0, u64::from(u32::MAX)))?;
        let client_prefix =
            opt("client_prefix").map_or(Ok("2001:db8:77::1".parse().unwrap()), addr)?;
        let source_ports = opt("source_ports").map_or(Ok(1), |v| int_in(v, 1, 65535))? as u32;
        let first_source_port =
            opt("first_source_port").map_or(Ok(1024), |v| int_in(v, 1, 65535))? as u16;
        if u32::from(first_source_port) + source_ports - 1 > 65535 {
            let key = opt("source_ports").map_or("traffic.source_ports".into(), |v| v.key.clone());
            return Err(ProfileError {
                key,
                reason: format!("{source_ports} ports from {first_source_port} run past 65535"),
            });
        }
        let services = match opt("services") {
            None => vec!["2001:db8:100::1".parse().unwrap()],
            Some(v) => {
                let list = match &v.value {
                    RawValue::List(l) => l.clone(),
                    RawValue::Text(s) => s.split(',').map(str::to_owned).collect(),
                    other => return Err(v.err(format!("{other:?} is not a list of addresses"))),
                };
                if list.is_empty() {
                    return Err(v.err("at least one service address"));
                }
                let mut out = Vec::new();
                for s in list {
                    let a: Ipv6Addr = s
                        .trim()
                        .parse()
                        .map_err(|_| v.err(format!("`{s}` is not an IPv6 address")))?;
                    out.push(a);
                }
                if out.len() > 65535 {
                    return Err(v.err("at most 65535 services"));
                }
                out
            }
        };
        let dst_port = opt("dst_port").map_or(Ok(9999), |v| int_in(v, 1, 65535))? as u16;
        let protocol = match opt("protocol") {
            None => Protocol::Udp,
            Some(v) => match text(v)?.to_ascii_lowercase().as_str() {
                "udp" => Protocol::Udp,
                "tcp-syn" | "tcp" | "syn" => Protocol::TcpSyn,
                "mixed" => Protocol::Mixed,
                other => {
                    return Err(v.err(format!(
                        "`{other}`: expected one of `udp`, `tcp-syn`, `mixed`"
                    )))
                }
            },
        };
        let size = match opt("size") {
            None => SizeSpec::Fixed { bytes: 64 },
            Some(v) => {
                let s = text(v)?;
                let spec = parse_size(&s).ok_or_else(|| {
                    v.err(format!(
                        "`{s}`: expected a frame length, `MIN-MAX` or `imix`"
                    ))
                })?;
                let min = protocol.min_frame_len();
                let bad = |n: usize| n < min || n > MAX_FRAME;
                match spec {
                    SizeSpec::Fixed { bytes } if bad(bytes) => {
                        return Err(v.err(format!(
                            "{bytes} is out of range {min}..={MAX_FRAME} for {protocol:?}"
                        )))
                    }
                    SizeSpec::Range { min: a, max: b } if bad(a) || bad(b) => {
                        return Err(v.err(format!(
                            "{a}-{b} is out of range {min}..={MAX_FRAME} for {protocol:?}"
                        )))
                    }
                    _ => {}
                }
                spec
            }
        };
        let rate = match opt("rate") {
            None => Rate::Max,
            Some(v) => {
                let s = text(v)?;
                parse_rate(&s).ok_or_else(|| {
                    v.err(format!(
                        "`{s}`: expected `max`, packets per second (`1Mpps`) or bits per second (`10Gbps`)"
                    ))
                })?
            }
        };
        let duration = match opt("duration") {
            None => None,
            Some(v) => {
                let secs = match v.value {
                    RawValue::Float(f) => f,
                    RawValue::Int(n) => n as f64,
                    _ => text(v)?
                        .parse()
                        .map_err(|_| v.err("not a number of seconds"))?,
                };
                if !(secs.is_finite() && secs > 0.0 && secs < 1e7) {
                    return Err(v.err(format!("{secs}: give a positive number of seconds")));
                }
                Some(Duration::from_secs_f64(secs))
            }
        };
        let count = match opt("count") {
            None => None,
            Some(v) => Some(int_in(v, 1, u64::MAX)?),
        };
        let popularity = match opt("popularity") {
            None => Popularity::Uniform,
            Some(v) => {
                let s = text(v)?.to_ascii_lowercase();
                if s == "uniform" {
                    Popularity::Uniform
                } else if let Some(e) = s.strip_prefix("zipf") {
                    let e = e.trim_start_matches([':', '=']).trim();
                    let exp: f64 = if e.is_empty() {
                        1.0
                    } else {
                        e.parse()
                            .map_err(|_| v.err(format!("`{s}`: bad Zipf exponent")))?
                    };
                    if !(exp.is_finite() && exp > 0.0 && exp <= 10.0) {
                        return Err(v.err(format!("Zipf exponent {exp} is out of range (0, 10]")));
                    }
                    Popularity::Zipf(exp)
                } else {
                    return Err(v.err(format!("`{s}`: expected `uniform` or `zipf:S`")));
                }
            }
        };
        let latency_sample =
            opt("latency_sample").map_or(Ok(100), |v| int_in(v, 0, 1 << 30))? as u32;
        let flow_table = opt("flow_table").map_or(Ok(65536), |v| int_in(v, 1, 1 << 24))? as usize;
        let seed = opt("seed").map_or(Ok(1), int)?;
        let mac_v = opt("mac").map(mac).transpose()?;
        let appliance_mac = opt("appliance_mac").map(mac).transpose()?;
        let tunnel_address = opt("tunnel_address").map(addr).transpose()?;
        let next_hop = opt("next_hop").map(addr).transpose()?;

        let member_count = opt("members").map_or(Ok(0), |v| int_in(v, 0, 4096))? as usize;
        let members = if member_count == 0 {
            None
        } else {
            let Some(tunnel) = tunnel_address else {
                return Err(ProfileError {
                    key: "network.tunnel_address".into(),
                    reason: "required with members (BUs go to the appliance's tunnel address)"
                        .into(),
                });
            };
            let _ = tunnel;
            let first_care_of =
                opt("first_care_of").map_or(Ok("2001:db8:2::10".parse().unwrap()), addr)?;
            let service = opt("member_service").map_or(Ok(services[0]), addr)?;
            let mode = match opt("member_mode") {
                None => MemberMode::Reply,
                Some(v) => match text(v)?.as_str() {
                    "reply" => MemberMode::Reply,
                    "sink" => MemberMode::Sink,
                    other => return Err(v.err(format!("`{other}`: expected `reply` or `sink`"))),
                },
            };
            // RFC 6275 §6.1.7: 16-bit lifetime in 4-second units.
            let lifetime_secs = opt("lifetime").map_or(Ok(60), |v| int_in(v, 4, 262_140))? as u32;
            let spi = opt("spi")
                .map(|v| int_in(v, 256, u64::from(u32::MAX)))
                .transpose()?;
            let auth = match (spi, opt("key_file")) {
                (None, None) => None,
                (Some(spi), Some(kv)) => {
                    let path = match &kv.value {
                        RawValue::Path(p) => p.clone(),
                        _ => PathBuf::from(text(kv)?),
                    };
                    let key = read_key(&path, spi as u32).map_err(|e| kv.err(e))?;
                    Some((spi as u32, key))
                }
                (Some(_), None) => {
                    return Err(ProfileError {
                        key: flag_of("key_file").into(),
                        reason: "required with an SPI".into(),
                    })
                }
                (None, Some(kv)) => return Err(kv.err("needs an SPI (--spi / members.spi)")),
            };
            let bid = match opt("bid").map(|v| &v.value) {
                Some(RawValue::Bool(b)) => *b,
                None => false,
                Some(_) => return Err(opt("bid").unwrap().err("expected true or false")),
            };
            let track_flows = match opt("track_flows").map(|v| &v.value) {
                Some(RawValue::Bool(b)) => *b,
                None => false,
                Some(_) => return Err(opt("track_flows").unwrap().err("expected true or false")),
            };
            let weight = opt("weight")
                .map(|v| int_in(v, 0, 65535))
                .transpose()?
                .map(|w| w as u16);
            let mut kills = Vec::new();
            if let Some(v) = opt("kill") {
                let list = match &v.value {
                    RawValue::List(l) => l.clone(),
                    RawValue::Text(s) => vec![s.clone()],
                    other => return Err(v.err(format!("{other:?}: expected IDX@SECONDS"))),
                };
                for s in list {
                    let k = parse_kill(&s)
                        .ok_or_else(|| v.err(format!("`{s}`: expected IDX@SECONDS")))?;
                    if k.member >= member_count {
                        return Err(v.err(format!(
                            "member {} does not exist ({member_count} members)",
                            k.member
                        )));
                    }
                    kills.push(k);
                }
            }
            Some(MembersSpec {
                count: member_count,
                first_care_of,
                service,
                mode,
                lifetime_secs,
                spi: auth.as_ref().map(|a| a.0),
                auth,
                bid,
                weight,
                track_flows,
                kills,
            })
        };
        if clients > 0 && source_ports > 0 {
            let flows = clients
                .saturating_mul(u64::from(source_ports))
                .saturating_mul(services.len() as u64);
            if flows == 0 {
                return Err(ProfileError {
                    key: "traffic.clients".into(),
                    reason: "no flows".into(),
                });
            }
        }
        Ok(Profile {
            clients,
            client_prefix,
            source_ports,
            first_source_port,
            services,
            dst_port,
            protocol,
            size,
            rate,
            duration,
            count,
            popularity,
            latency_sample,
            flow_table,
            seed,
            mac: mac_v,
            appliance_mac,
            tunnel_address,
            next_hop,
            members,
        })
    }

    /// Total number of distinct flows (client, source port, service).
    pub fn flow_count(&self) -> u64 {
        self.clients
            .saturating_mul(u64::from(self.source_ports))
            .saturating_mul(self.services.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_toml(text: &str) -> Result<Profile, ProfileError> {
        Profile::resolve(&RawProfile::from_toml(text)?)
    }

    #[test]
    fn defaults() {
        let p = resolve_toml("").unwrap();
        assert_eq!(p.clients, 1);
        assert_eq!(p.rate, Rate::Max);
        assert_eq!(p.size, SizeSpec::Fixed { bytes: 64 });
        assert_eq!(p.protocol, Protocol::Udp);
        assert!(p.members.is_none());
        assert_eq!(p.latency_sample, 100);
    }

    #[test]
    fn full_toml() {
        let p = resolve_toml(
            r#"
            [traffic]
            clients = 1000
            client_prefix = "2001:db8:77::100"
            source_ports = 16
            services = ["2001:db8:100::1", "2001:db8:100::2"]
            dst_port = 443
            protocol = "mixed"
            size = "imix"
            rate = "2.5Mpps"
            duration = 10
            popularity = "zipf:1.2"
            latency_sample = 10
            [network]
            appliance_mac = "02:00:00:00:00:01"
            tunnel_address = "2001:db8:ff::1"
            next_hop = "fe80::1"
            [members]
            count = 3
            mode = "sink"
            lifetime = 120
            kill = ["1@5.5"]
            bid = true
            weight = 7
            track_flows = true
            "#,
        )
        .unwrap();
        assert_eq!(p.clients, 1000);
        assert_eq!(p.services.len(), 2);
        assert_eq!(p.protocol, Protocol::Mixed);
        assert_eq!(p.size, SizeSpec::Imix);
        assert_eq!(p.rate, Rate::Pps(2.5e6));
        assert_eq!(p.duration, Some(Duration::from_secs(10)));
        assert_eq!(p.popularity, Popularity::Zipf(1.2));
        assert_eq!(p.appliance_mac, Some([2, 0, 0, 0, 0, 1]));
        let m = p.members.unwrap();
        assert_eq!(m.count, 3);
        assert_eq!(m.mode, MemberMode::Sink);
        assert_eq!(m.service, "2001:db8:100::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            m.kills,
            vec![Kill {
                member: 1,
                at: Duration::from_millis(5500)
            }]
        );
        assert!(m.bid);
        assert!(m.track_flows);
        assert_eq!(m.weight, Some(7));
    }

    #[test]
    fn flags_override_the_file_and_name_themselves_in_errors() {
        let file = RawProfile::from_toml("[traffic]\nrate = \"1Mpps\"\nsize = 128\n").unwrap();
        let mut flags = RawProfile::default();
        flags.set_flag("rate", RawValue::Text("10Gbps".into()));
        let p = Profile::resolve(&file.clone().overlay(flags)).unwrap();
        assert_eq!(p.rate, Rate::Bps(1e10));
        assert_eq!(p.size, SizeSpec::Fixed { bytes: 128 });

        let mut flags = RawProfile::default();
        flags.set_flag("rate", RawValue::Text("fast".into()));
        let e = Profile::resolve(&file.overlay(flags)).unwrap_err();
        assert_eq!(e.key, "--rate");
        assert!(e.reason.contains("fast"), "{e}");
    }

    #[test]
    fn errors_name_the_toml_key() {
        for (text, key) in [
            ("[traffic]\nrate = \"7 furlongs\"", "traffic.rate"),
            ("[traffic]\nsize = 20", "traffic.size"),
            ("[traffic]\nsize = \"100-50\"", "traffic.size"),
            ("[traffic]\nprotocol = \"sctp\"", "traffic.protocol"),
            ("[traffic]\nservices = [\"nope\"]", "traffic.services"),
            ("[traffic]\npopularity = \"zipf:-1\"", "traffic.popularity"),
            ("[traffic]\nduration = -3.0", "traffic.duration"),
            ("[traffic]\nsource_ports = 70000", "traffic.source_ports"),
            ("[network]\nappliance_mac = \"01:00:00:00:00:01\"", "network.appliance_mac"),
            ("[members]\ncount = 2", "network.tunnel_address"),
            (
                "[network]\ntunnel_address = \"2001:db8:ff::1\"\n[members]\ncount = 2\nkill = [\"5@1\"]",
                "members.kill",
            ),
            (
                "[network]\ntunnel_address = \"2001:db8:ff::1\"\n[members]\ncount = 2\nmode = \"echo\"",
                "members.mode",
            ),
            (
                "[network]\ntunnel_address = \"2001:db8:ff::1\"\n[members]\ncount = 1\nspi = 300",
                "--key-file",
            ),
        ] {
            let e = resolve_toml(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let e = RawProfile::from_toml("[traffic]\nrat = 5\n").unwrap_err();
        assert_eq!(e.key, "traffic.rat", "{e}");
        assert!(e.reason.contains("line 2"), "{e}");
        let e = RawProfile::from_toml("[traffic]\nclients = \"many\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn rate_and_size_syntax() {
        assert_eq!(parse_rate("max"), Some(Rate::Max));
        assert_eq!(parse_rate("1000"), Some(Rate::Pps(1000.0)));
        assert_eq!(parse_rate("250kpps"), Some(Rate::Pps(250e3)));
        assert_eq!(parse_rate("1.5Gbps"), Some(Rate::Bps(1.5e9)));
        assert_eq!(parse_rate("1e6pps"), Some(Rate::Pps(1e6)));
        assert_eq!(parse_rate("0pps"), None);
        assert_eq!(parse_rate("3 parsecs"), None);
        assert_eq!(parse_size("imix"), Some(SizeSpec::Imix));
        assert_eq!(
            parse_size("64-128"),
            Some(SizeSpec::Range { min: 64, max: 128 })
        );
        assert_eq!(parse_size("x"), None);
        assert_eq!(
            parse_kill("2@1.5"),
            Some(Kill {
                member: 2,
                at: Duration::from_millis(1500)
            })
        );
        assert_eq!(parse_kill("2"), None);
        assert_eq!(parse_mac("02:00:00:00:00:fe"), Some([2, 0, 0, 0, 0, 0xfe]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
    }

    #[test]
    fn key_file_in_the_appliance_format() {
        let dir = std::env::temp_dir().join(format!("pktgen-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        std::fs::write(
            &path,
            "[[keys]]\nspi = 256\nkey = \"00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f\"\n",
        )
        .unwrap();
        assert_eq!(read_key(&path, 256).unwrap(), (0u8..16).collect::<Vec<_>>());
        assert!(read_key(&path, 257)
            .unwrap_err()
            .contains("no key for SPI 257"));
        let text = format!(
            "[network]\ntunnel_address = \"2001:db8:ff::1\"\n[members]\ncount = 1\nspi = 256\nkey_file = \"{}\"\n",
            path.display()
        );
        let p = resolve_toml(&text).unwrap();
        assert_eq!(p.members.unwrap().auth.unwrap().0, 256);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
