//! Agent configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! appliance = "2001:db8:ffff::1"      # the appliance's home-agent (tunnel) address
//! care_of = "2001:db8:100::10"        # this server's own address
//! services = ["2001:db8:aaaa::80"]    # service (anycast) addresses to join
//! interface = "eth0"                  # optional: the interface holding care_of
//! lifetime = 600                      # requested binding lifetime, seconds
//! spi = 256                           # RFC 4285 Mobility SPI (with key_file)
//! key_file = "/etc/anycast6/agent-keys.toml"
//! bid = 1                             # optional RFC 5648 Binding Identifier
//! delivery = "auto"                   # auto | ip6tnl | seg6local | tun | none
//! state_file = "/run/anycast6-agent.json"
//! drain_timeout = 5                   # seconds to wait for the drain BA on SIGTERM
//! drain_linger = 10                   # seconds to keep decapsulating after it
//! route_optimisation = false          # RFC 6275 return routability + BUs to clients
//! ro_tun_name = "a6ro0"               # TUN device for route-optimised (RH2) data
//! max_correspondents = 4096           # (service, client) pairs route-optimised at most
//!
//! [load]
//! source = "loadavg"                  # fixed | loadavg | none
//! weight = 100                        # with source = "fixed"
//! interval = 5                        # seconds between /proc/loadavg reads
//! update_step = 10                    # change that triggers an early refresh
//! ```
//!
//! The key file has the appliance's format (`[[keys]] spi = .. key = "hex"`), so one file
//! can serve both; it must be a regular file readable by its owner only (0600 or 0400).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::messages::MnHaKey;
use crate::packets::is_global_unicast;

/// Default state file read by `anycast6-agent status`.
pub const DEFAULT_STATE_FILE: &str = "/run/anycast6-agent.json";

/// How tunnelled traffic reaches the service sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// The first of ip6tnl, seg6local, tun that the kernel offers.
    Auto,
    /// Kernel ip6ip6 tunnel device.
    Ip6tnl,
    /// Kernel SRv6 End.DT6 behaviour, selected by a policy rule for IPv6-in-IPv6.
    Seg6local,
    /// The agent decapsulates into a TUN device.
    Tun,
    /// Set nothing up (the operator does).
    None,
}

/// Where the load report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoadSource {
    /// A fixed weight (`load.weight`).
    Fixed,
    /// The 1-minute load average per CPU from /proc/loadavg, as a percentage.
    Loadavg,
    /// No load report: the appliance's default weight.
    None,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLoad {
    source: Option<LoadSource>,
    weight: Option<u16>,
    interval: Option<u64>,
    update_step: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    appliance: Option<Ipv6Addr>,
    care_of: Option<Ipv6Addr>,
    #[serde(default)]
    services: Vec<Ipv6Addr>,
    interface: Option<String>,
    lifetime: Option<u64>,
    spi: Option<u32>,
    key_file: Option<PathBuf>,
    bid: Option<u16>,
    delivery: Option<DeliveryMode>,
    state_file: Option<PathBuf>,
    drain_timeout: Option<u64>,
    drain_linger: Option<u64>,
    hop_limit: Option<u8>,
    refresh_percent: Option<u8>,
    tun_name: Option<String>,
    tunnel_name: Option<String>,
    seg6local_table: Option<u32>,
    route_optimisation: Option<bool>,
    ro_tun_name: Option<String>,
    max_correspondents: Option<usize>,
    #[serde(default)]
    load: FileLoad,
}

/// Command-line overrides (every one optional; the file fills the rest).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The appliance's home-agent address.
    #[arg(long)]
    pub appliance: Option<Ipv6Addr>,
    /// This server's care-of address.
    #[arg(long)]
    pub care_of: Option<Ipv6Addr>,
    /// A service address to join (repeat for several; replaces the file's list).
    #[arg(long = "service")]
    pub services: Vec<Ipv6Addr>,
    /// Interface holding the care-of address (found from the address when omitted).
    #[arg(long)]
    pub interface: Option<String>,
    /// Requested lifetime, seconds.
    #[arg(long)]
    pub lifetime: Option<u64>,
    /// RFC 4285 Mobility SPI.
    #[arg(long)]
    pub spi: Option<u32>,
    /// MN-HA key file (TOML, mode 0600).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// RFC 5648 Binding Identifier.
    #[arg(long)]
    pub bid: Option<u16>,
    /// Fixed weight to report (sets the load source to fixed).
    #[arg(long)]
    pub weight: Option<u16>,
    /// Load report source.
    #[arg(long, value_enum)]
    pub load_source: Option<LoadSource>,
    /// Delivery of tunnelled traffic.
    #[arg(long, value_enum)]
    pub delivery: Option<DeliveryMode>,
    /// State file for `status`.
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// Seconds to wait for the drain BA on SIGTERM.
    #[arg(long)]
    pub drain_timeout: Option<u64>,
    /// Seconds to keep decapsulating after the drain BA, for the connections the appliance
    /// still sends here.
    #[arg(long)]
    pub drain_linger: Option<u64>,
    /// Route-optimise clients (RFC 6275 return routability and Binding Updates from the
    /// care-of address); the file's `route_optimisation = true` does the same.
    #[arg(long)]
    pub route_optimisation: bool,
}

/// The load report settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    pub source: LoadSource,
    pub weight: u16,
    pub interval: Duration,
    pub update_step: u16,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub appliance: Ipv6Addr,
    pub care_of: Ipv6Addr,
    pub services: Vec<Ipv6Addr>,
    pub interface: Option<String>,
    /// Requested lifetime in 4-second units.
    pub lifetime_units: u16,
    pub auth: Option<MnHaKey>,
    pub key_file: Option<PathBuf>,
    pub bid: Option<u16>,
    pub delivery: DeliveryMode,
    pub state_file: PathBuf,
    pub drain_timeout: Duration,
    /// After draining, how long delivery stays set up before the agent exits.
    pub drain_linger: Duration,
    pub hop_limit: u8,
    pub refresh_percent: u8,
    pub tun_name: String,
    pub tunnel_name: String,
    pub seg6local_table: u32,
    /// Route optimisation with the clients.
    pub route_optimisation: bool,
    /// TUN device through which route-optimised data reaches the local stack.
    pub ro_tun_name: String,
    pub max_correspondents: usize,
    pub load: LoadConfig,
}

/// A configuration problem, naming the key and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Parse { path: String, error: String },
    #[error("`{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

impl AgentConfig {
    /// Reads the file named by `flags.config` (if any), applies the flags, reads the key
    /// file and validates the result.
    pub fn load(flags: &Flags) -> Result<AgentConfig, ConfigError> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                    path: path.display().to_string(),
                    error,
                })?;
                parse_file(&text).map_err(|error| ConfigError::Parse {
                    path: path.display().to_string(),
                    error,
                })?
            }
            None => FileConfig::default(),
        };
        Self::from_parts(file, flags)
    }

    /// Like [`load`](Self::load) with the file's text given.
    pub fn from_toml(text: &str, flags: &Flags) -> Result<AgentConfig, ConfigError> {
        let file = parse_file(text).map_err(|error| ConfigError::Parse {
            path: "<config>".to_string(),
            error,
        })?;
        Self::from_parts(file, flags)
    }

    fn from_parts(file: FileConfig, flags: &Flags) -> Result<AgentConfig, ConfigError> {
        let appliance = flags
            .appliance
            .or(file.appliance)
            .ok_or_else(|| invalid("appliance", "missing: the appliance's home-agent address"))?;
        let care_of = flags
            .care_of
            .or(file.care_of)
            .ok_or_else(|| invalid("care_of", "missing: this server's own IPv6 address"))?;
        let services = if flags.services.is_empty() {
            file.services
        } else {
            flags.services.clone()
        };
        if services.is_empty() {
            return Err(invalid(
                "services",
                "empty: name at least one service address",
            ));
        }
        let unique: BTreeSet<_> = services.iter().collect();
        if unique.len() != services.len() {
            return Err(invalid("services", "a service address is listed twice"));
        }
        for a in [&appliance, &care_of].into_iter().chain(services.iter()) {
            if !is_global_unicast(*a) {
                return Err(invalid(
                    "appliance/care_of/services",
                    format!("{a} is not a global unicast address"),
                ));
            }
        }
        if services.contains(&care_of) || services.contains(&appliance) || care_of == appliance {
            return Err(invalid(
                "care_of",
                "the care-of, appliance and service addresses must all differ",
            ));
        }
        let lifetime = flags.lifetime.or(file.lifetime).unwrap_or(600);
        // RFC 6275 §6.1.7: 4-second units, at most 65535 of them; round up so a short
        // lifetime is not 0 (which would de-register).
        let lifetime_units = lifetime.div_ceil(4);
        if lifetime_units == 0 || lifetime_units > u64::from(u16::MAX) {
            return Err(invalid("lifetime", "must be 1..=262140 seconds"));
        }
        let spi = flags.spi.or(file.spi);
        let key_file = flags.key_file.clone().or(file.key_file);
        let auth = match (spi, &key_file) {
            (Some(spi), Some(path)) => Some(read_key(path, spi)?),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("key_file", "missing: `spi` needs a key file")),
            (None, Some(_)) => return Err(invalid("spi", "missing: `key_file` needs an SPI")),
        };
        let refresh_percent = file.refresh_percent.unwrap_or(80);
        if !(1..=99).contains(&refresh_percent) {
            return Err(invalid("refresh_percent", "must be 1..=99"));
        }
        let source = match (flags.weight, flags.load_source) {
            (Some(_), None) => LoadSource::Fixed,
            (_, Some(s)) => s,
            (None, None) => file.load.source.unwrap_or(LoadSource::None),
        };
        let weight = flags.weight.or(file.load.weight).unwrap_or(100);
        let interval = file.load.interval.unwrap_or(5);
        if interval == 0 {
            return Err(invalid("load.interval", "must be at least 1 second"));
        }
        let name_ok = |n: &str| !n.is_empty() && n.len() < 16 && !n.contains(['/', ' ']);
        let tun_name = file.tun_name.unwrap_or_else(|| "a6tun0".to_string());
        if !name_ok(&tun_name) {
            return Err(invalid("tun_name", "must be a valid interface name"));
        }
        let tunnel_name = file.tunnel_name.unwrap_or_else(|| "a6tnl0".to_string());
        if !name_ok(&tunnel_name) {
            return Err(invalid("tunnel_name", "must be a valid interface name"));
        }
        let ro_tun_name = file.ro_tun_name.unwrap_or_else(|| "a6ro0".to_string());
        if !name_ok(&ro_tun_name) || ro_tun_name == tun_name {
            return Err(invalid(
                "ro_tun_name",
                "must be a valid interface name, other than tun_name",
            ));
        }
        let max_correspondents = file.max_correspondents.unwrap_or(4096);
        if max_correspondents == 0 {
            return Err(invalid("max_correspondents", "must be at least 1"));
        }
        let interface = flags.interface.clone().or(file.interface);
        if let Some(i) = &interface {
            if !name_ok(i) {
                return Err(invalid("interface", "must be a valid interface name"));
            }
        }
        let seg6local_table = file.seg6local_table.unwrap_or(166);
        if matches!(seg6local_table, 0 | 253..=255) {
            return Err(invalid(
                "seg6local_table",
                "must not be a reserved table (0, 253, 254, 255)",
            ));
        }
        Ok(AgentConfig {
            appliance,
            care_of,
            services,
            interface,
            lifetime_units: lifetime_units as u16,
            auth,
            key_file,
            bid: flags.bid.or(file.bid),
            delivery: flags
                .delivery
                .or(file.delivery)
                .unwrap_or(DeliveryMode::Auto),
            state_file: flags
                .state_file
                .clone()
                .or(file.state_file)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_FILE)),
            drain_timeout: Duration::from_secs(
                flags.drain_timeout.or(file.drain_timeout).unwrap_or(5),
            ),
            drain_linger: Duration::from_secs(
                flags.drain_linger.or(file.drain_linger).unwrap_or(10),
            ),
            hop_limit: file.hop_limit.unwrap_or(64),
            refresh_percent,
            tun_name,
            tunnel_name,
            seg6local_table,
            route_optimisation: flags.route_optimisation
                || file.route_optimisation.unwrap_or(false),
            ro_tun_name,
            max_correspondents,
            load: LoadConfig {
                source,
                weight,
                interval: Duration::from_secs(interval),
                update_step: file.load.update_step.unwrap_or(10),
            },
        })
    }
}

fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    spi: u32,
    key: String,
}

/// Reads the key for `spi` from a key file, refusing a file others may read or write.
pub fn read_key(path: &Path, spi: u32) -> Result<MnHaKey, ConfigError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    if !meta.is_file() {
        return Err(invalid(
            "key_file",
            format!("{shown} is not a regular file"),
        ));
    }
    // The key authenticates the member to the appliance: anyone who reads it can register
    // a server of their own for the service.
    if meta.mode() & 0o077 != 0 {
        return Err(invalid(
            "key_file",
            format!(
                "{shown} has mode {:o}; others must not read it: chmod 600 {shown}",
                meta.mode() & 0o777
            ),
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    parse_key(&text, spi).map_err(|problem| invalid("key_file", format!("{shown}: {problem}")))
}

/// Finds the key for `spi` in the text of a key file.
pub fn parse_key(text: &str, spi: u32) -> Result<MnHaKey, String> {
    let file: KeyFile = toml::from_str(text).map_err(|e| e.to_string())?;
    // RFC 4285 §5: SPIs 0..=255 are reserved.
    if spi < 256 {
        return Err(format!(
            "SPI {spi} is reserved (RFC 4285 §5: use 256 or more)"
        ));
    }
    let entry = file
        .keys
        .iter()
        .find(|k| k.spi == spi)
        .ok_or_else(|| format!("no key for SPI {spi}"))?;
    let key = hex_decode(entry.key.trim())
        .ok_or_else(|| format!("key for SPI {spi} is not hexadecimal"))?;
    if !(16..=64).contains(&key.len()) {
        return Err(format!(
            "key for SPI {spi} has {} octets; use 16 to 64",
            key.len()
        ));
    }
    Ok(MnHaKey { spi, key })
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        appliance = "2001:db8:ffff::1"
        care_of = "2001:db8:100::10"
        services = ["2001:db8:aaaa::80", "2001:db8:aaaa::443"]
        lifetime = 30
        delivery = "seg6local"
        [load]
        source = "loadavg"
        interval = 2
    "#;

    #[test]
    fn file_and_defaults() {
        let c = AgentConfig::from_toml(BASE, &Flags::default()).unwrap();
        assert_eq!(c.services.len(), 2);
        assert_eq!(c.lifetime_units, 8, "30 s rounds up to 8 units");
        assert_eq!(c.delivery, DeliveryMode::Seg6local);
        assert_eq!(c.load.source, LoadSource::Loadavg);
        assert_eq!(c.load.interval, Duration::from_secs(2));
        assert_eq!(c.auth, None);
        assert_eq!(c.state_file, PathBuf::from(DEFAULT_STATE_FILE));
        assert_eq!(c.drain_timeout, Duration::from_secs(5));
        assert!(!c.route_optimisation);
        assert_eq!(c.ro_tun_name, "a6ro0");
        assert_eq!(c.max_correspondents, 4096);
    }

    #[test]
    fn route_optimisation_from_file_or_flag() {
        let on = format!("route_optimisation = true\nro_tun_name = \"ro1\"\n{BASE}");
        let c = AgentConfig::from_toml(&on, &Flags::default()).unwrap();
        assert!(c.route_optimisation);
        assert_eq!(c.ro_tun_name, "ro1");
        let flags = Flags {
            route_optimisation: true,
            ..Default::default()
        };
        assert!(
            AgentConfig::from_toml(BASE, &flags)
                .unwrap()
                .route_optimisation
        );
        let clash = format!("ro_tun_name = \"a6tun0\"\n{BASE}");
        assert!(AgentConfig::from_toml(&clash, &Flags::default())
            .unwrap_err()
            .to_string()
            .contains("ro_tun_name"));
    }

    #[test]
    fn flags_override_the_file() {
        let flags = Flags {
            services: vec!["2001:db8:aaaa::1".parse().unwrap()],
            weight: Some(7),
            delivery: Some(DeliveryMode::None),
            lifetime: Some(8),
            ..Default::default()
        };
        let c = AgentConfig::from_toml(BASE, &flags).unwrap();
        assert_eq!(
            c.services,
            ["2001:db8:aaaa::1".parse::<Ipv6Addr>().unwrap()]
        );
        assert_eq!(c.load.source, LoadSource::Fixed);
        assert_eq!(c.load.weight, 7);
        assert_eq!(c.delivery, DeliveryMode::None);
        assert_eq!(c.lifetime_units, 2);
    }

    #[test]
    fn errors_name_the_key() {
        let msg = |text: &str| {
            AgentConfig::from_toml(text, &Flags::default())
                .unwrap_err()
                .to_string()
        };
        assert!(msg("care_of = \"2001:db8::1\"\nservices=[\"2001:db8::2\"]").contains("appliance"));
        assert!(msg(&BASE.replace("lifetime = 30", "lifetime = 0")).contains("lifetime"));
        assert!(msg(&BASE.replace("lifetime = 30", "spi = 300")).contains("key_file"));
        assert!(msg(&BASE.replace("\"2001:db8:100::10\"", "\"fe80::1\"")).contains("global"));
        assert!(msg(&BASE.replace("lifetime = 30", "colour = 1")).contains("colour"));
        assert!(
            msg(&BASE.replace("\"2001:db8:aaaa::443\"", "\"2001:db8:aaaa::80\"")).contains("twice")
        );
    }

    #[test]
    fn key_file_format_and_permissions() {
        let text = "[[keys]]\nspi = 256\nkey = \"000102030405060708090a0b0c0d0e0f\"\n";
        let k = parse_key(text, 256).unwrap();
        assert_eq!(k.key, (0u8..16).collect::<Vec<_>>());
        assert!(parse_key(text, 257).unwrap_err().contains("no key"));
        assert!(parse_key(text, 12).unwrap_err().contains("reserved"));
        assert!(parse_key("[[keys]]\nspi = 256\nkey = \"0g\"\n", 256)
            .unwrap_err()
            .contains("hexadecimal"));
        assert!(parse_key("[[keys]]\nspi = 256\nkey = \"00ff\"\n", 256)
            .unwrap_err()
            .contains("16 to 64"));

        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("a6agent-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key(&path, 256).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key(&path, 256).unwrap().spi, 256);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
