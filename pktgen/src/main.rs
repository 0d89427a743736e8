//! `anycast6-pktgen`: see pktgen/README.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anycast6_pktgen::profile::{Profile, RawProfile, RawValue};
use anycast6_pktgen::run::{self, RunOptions};
use clap::Parser;

/// DPDK traffic generator and member/client emulator for anycast6.
///
/// Profile settings come from --config FILE and/or flags (a flag wins over the file).
#[derive(Parser, Debug)]
#[command(name = "anycast6-pktgen", version)]
struct Cli {
    /// DPDK device: net_null0, net_ring0, net_vhost0,iface=/tmp/x.sock, virtio_user0,path=...,
    /// net_pcap0,..., or a PCI address.
    #[arg(long)]
    device: String,
    /// EAL core list; the first is the main lcore. Two more lcores: TX and RX apart; one:
    /// both on it.
    #[arg(long, default_value = "0-1")]
    lcores: String,
    /// Run on hugepages (--in-memory) instead of --no-huge.
    #[arg(long)]
    huge: bool,
    /// Extra EAL argument (repeatable).
    #[arg(long = "eal-arg", allow_hyphen_values = true)]
    eal_args: Vec<String>,
    /// Packet buffers in the pool.
    #[arg(long, default_value_t = 16383)]
    mbufs: u32,
    /// TOML profile.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Result file (JSON, schema in pktgen/README.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the live line even when stdout is not a terminal.
    #[arg(long)]
    live: bool,
    /// Seconds to keep receiving after the last client packet.
    #[arg(long, default_value_t = 0.5)]
    drain: f64,
    /// Longest wait (s) for the appliance's MAC and the members' registrations before
    /// client traffic starts.
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    /// Seconds to wait, once ready, before client traffic starts: time for the appliance
    /// to bring the registered members up (health checks) so that no member starts late.
    #[arg(long, default_value_t = 0.0)]
    settle: f64,

    /// Number of client addresses.
    #[arg(long)]
    clients: Option<u64>,
    /// Address of client 0 (client i = this + i).
    #[arg(long)]
    client_prefix: Option<String>,
    /// Source ports per client.
    #[arg(long)]
    source_ports: Option<u64>,
    #[arg(long)]
    first_source_port: Option<u64>,
    /// Service address (repeatable, or comma-separated).
    #[arg(long = "service")]
    services: Vec<String>,
    #[arg(long)]
    dst_port: Option<u64>,
    /// udp, tcp-syn or mixed.
    #[arg(long)]
    protocol: Option<String>,
    /// Frame size without FCS: N, MIN-MAX or imix.
    #[arg(long)]
    size: Option<String>,
    /// max, N (pps), 250kpps, 1Mpps, 10Gbps ...
    #[arg(long)]
    rate: Option<String>,
    /// Seconds of client traffic (or of the whole run without clients).
    #[arg(long)]
    duration: Option<f64>,
    /// Client packets to send.
    #[arg(long)]
    count: Option<u64>,
    /// uniform or zipf:S.
    #[arg(long)]
    popularity: Option<String>,
    /// One packet in N carries a latency stamp (0: none).
    #[arg(long)]
    latency_sample: Option<u64>,
    /// Length of the precomputed flow sequence.
    #[arg(long)]
    flow_table: Option<u64>,
    #[arg(long)]
    seed: Option<u64>,
    /// Our MAC (default: the port's).
    #[arg(long)]
    mac: Option<String>,
    /// The appliance port's MAC (default: learnt from the wire).
    #[arg(long)]
    appliance_mac: Option<String>,
    /// The appliance's tunnel (home-agent) address.
    #[arg(long)]
    tunnel_address: Option<String>,
    /// The appliance's next hop, which pktgen plays (answers its Neighbor Solicitations).
    #[arg(long)]
    next_hop: Option<String>,
    /// Number of emulated members.
    #[arg(long)]
    members: Option<u64>,
    /// Care-of address of member 0 (member i = this + i).
    #[arg(long)]
    first_care_of: Option<String>,
    /// Service the members register for (default: the first --service).
    #[arg(long)]
    member_service: Option<String>,
    /// reply or sink.
    #[arg(long)]
    member_mode: Option<String>,
    /// Requested binding lifetime (s).
    #[arg(long)]
    lifetime: Option<u64>,
    /// RFC 4285 MN-HA SPI (with --key-file).
    #[arg(long)]
    spi: Option<u64>,
    /// Key file in the appliance's format ([[keys]] spi, key).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Send a Binding Identifier option (BID = index + 1).
    #[arg(long)]
    bid: bool,
    /// Send a load report with this weight.
    #[arg(long)]
    weight: Option<u64>,
    /// Count client flows that move from one member to another (failover measurements;
    /// costs a hash lookup per received packet).
    #[arg(long)]
    track_flows: bool,
    /// Kill member IDX at SECONDS after the start (repeatable): IDX@SECONDS.
    #[arg(long = "kill-member")]
    kill: Vec<String>,
}

impl Cli {
    fn flags(&self) -> RawProfile {
        let mut raw = RawProfile::default();
        let mut int = |name, v: Option<u64>| {
            if let Some(v) = v {
                raw.set_flag(name, RawValue::Int(v));
            }
        };
        int("clients", self.clients);
        int("source_ports", self.source_ports);
        int("first_source_port", self.first_source_port);
        int("dst_port", self.dst_port);
        int("count", self.count);
        int("latency_sample", self.latency_sample);
        int("flow_table", self.flow_table);
        int("seed", self.seed);
        int("members", self.members);
        int("lifetime", self.lifetime);
        int("spi", self.spi);
        int("weight", self.weight);
        let mut text = |name, v: &Option<String>| {
            if let Some(v) = v {
                raw.set_flag(name, RawValue::Text(v.clone()));
            }
        };
        text("client_prefix", &self.client_prefix);
        text("protocol", &self.protocol);
        text("size", &self.size);
        text("rate", &self.rate);
        text("popularity", &self.popularity);
        text("mac", &self.mac);
        text("appliance_mac", &self.appliance_mac);
        text("tunnel_address", &self.tunnel_address);
        text("next_hop", &self.next_hop);
        text("first_care_of", &self.first_care_of);
        text("member_service", &self.member_service);
        text("member_mode", &self.member_mode);
        if let Some(d) = self.duration {
            raw.set_flag("duration", RawValue::Float(d));
        }
        if !self.services.is_empty() {
            let list = self
                .services
                .iter()
                .flat_map(|s| s.split(','))
                .map(str::to_owned)
                .collect();
            raw.set_flag("services", RawValue::List(list));
        }
        if let Some(p) = &self.key_file {
            raw.set_flag("key_file", RawValue::Path(p.clone()));
        }
        if self.bid {
            raw.set_flag("bid", RawValue::Bool(true));
        }
        if self.track_flows {
            raw.set_flag("track_flows", RawValue::Bool(true));
        }
        if !self.kill.is_empty() {
            raw.set_flag("kill", RawValue::List(self.kill.clone()));
        }
        raw
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anycast6-pktgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: &Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            RawProfile::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => RawProfile::default(),
    };
    let profile = Profile::resolve(&file.overlay(cli.flags()))?;
    run::check_device(&cli.device)?;
    let secs = |name: &str, v: f64| {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(anyhow::anyhow!("--{name}: {v} is not a number of seconds"))
        }
    };
    let opts = RunOptions {
        profile,
        device: cli.device.clone(),
        lcores: cli.lcores.clone(),
        huge: cli.huge,
        eal_args: cli.eal_args.clone(),
        mbufs: cli.mbufs,
        out: cli.out.clone(),
        live: cli.live,
        drain: secs("drain", cli.drain)?,
        warmup: secs("warmup", cli.warmup)?,
        settle: secs("settle", cli.settle)?,
    };
    let r = run::run(&opts)?;
    eprintln!(
        "anycast6-pktgen: tx {} pkts in {:.3} s ({:.3} Mpps, {:.3} Gb/s); back {} (loss {:.4}%); latency samples {} p50 {} ns p99 {} ns max {} ns",
        r.tx.packets,
        r.tx.duration_s,
        r.tx.pps / 1e6,
        r.tx.gbps,
        r.loss.received,
        r.loss.ratio * 100.0,
        r.latency.received.max(r.member_latency.received),
        r.latency.percentiles.p50_ns.max(r.member_latency.percentiles.p50_ns),
        r.latency.percentiles.p99_ns.max(r.member_latency.percentiles.p99_ns),
        r.latency.percentiles.max_ns.max(r.member_latency.percentiles.max_ns),
    );
    Ok(())
}
