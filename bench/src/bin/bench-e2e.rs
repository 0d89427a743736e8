//! The end-to-end part of the benchmark report: anycast6-pktgen -> appliance -> pktgen over
//! vhost-user / virtio-user, as two processes (pktgen serves `net_vhost` with its loop on
//! CPU 0, the appliance attaches with `virtio_user`, its worker busy-polling CPU 1).
//! pktgen plays the clients and the members (sink mode: members count what the appliance
//! tunnels to them; loss and one-way latency are measured at the members).
//!
//! `bench-e2e --appliance BIN --pktgen BIN --work DIR --out e2e.json [--smoke]`
//!
//! Every trial is a fresh pair of processes (registration and warm-up included) and gives
//! one JSON record; the run:
//! * capacity: pktgen at `--rate max` (the rate the pair sustains, with its loss);
//! * no-drop rate: bisection of the offered rate (geometric, since it may be anywhere from
//!   a few kpps on a busy machine to Mpps) for the highest rate with loss <= tolerance;
//! * latency at 10, 50 and 90 % of that rate (member-side one-way latency);
//! * scaling with flows (1e3 .. 1e6) and with members (2 .. 1000), at `--rate max`;
//! * failover: one member killed mid-run; time from its death to the last packet it got,
//!   and the flows that were on it.
//!
//! Called by scripts/bench; `bench-report` turns the output into docs/benchmarks.md.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;

/// The service, tunnel and addressing every trial uses (docker/appliance.toml's values).
const SERVICE: &str = "2001:db8:100::1";
const TUNNEL: &str = "2001:db8:ff::1";
const NEXT_HOP: &str = "fe80::1";
/// Frames with room for a latency stamp (24 octets of UDP payload need 86; 128 as in the
/// demo topology).
const FRAME: usize = 128;
/// Health checks: a dead member is out after `interval x fall + interval` = 0.6 s at most.
const HEALTH_INTERVAL_MS: u32 = 200;
const HEALTH_TIMEOUT_MS: u32 = 150;
const HEALTH_FALL: u32 = 2;

#[derive(Debug, Clone)]
struct Plan {
    /// Seconds of client traffic per trial.
    seconds: f64,
    /// Bisection steps for the no-drop rate.
    search_steps: u32,
    /// Lowest rate the search considers (pps).
    search_floor: f64,
    /// Loss ratio still counted as "no drop".
    loss_tolerance: f64,
    flows: Vec<u64>,
    members: Vec<usize>,
    failover_seconds: f64,
    failover_kill_at: f64,
}

impl Plan {
    fn new(smoke: bool) -> Plan {
        if smoke {
            Plan {
                seconds: 1.0,
                search_steps: 2,
                search_floor: 1000.0,
                loss_tolerance: 1e-4,
                flows: vec![1_000, 10_000],
                members: vec![2, 10],
                failover_seconds: 3.0,
                failover_kill_at: 1.0,
            }
        } else {
            Plan {
                seconds: 4.0,
                search_steps: 7,
                search_floor: 1000.0,
                loss_tolerance: 1e-4,
                flows: vec![1_000, 10_000, 100_000, 1_000_000],
                members: vec![2, 10, 100, 1000],
                failover_seconds: 10.0,
                failover_kill_at: 4.0,
            }
        }
    }
}

/// One trial's settings.
#[derive(Debug, Clone, Serialize)]
struct Trial {
    /// Offered client rate, pps; `None`: as fast as the port takes them.
    rate_pps: Option<f64>,
    members: usize,
    clients: u64,
    source_ports: u64,
    seconds: f64,
    latency_sample: u32,
    /// Kill the live member with the lowest index (member 0) this many seconds after
    /// client traffic starts (SIGUSR1 to pktgen).
    kill_after_s: Option<f64>,
    /// pktgen's `--track-flows`.
    track_flows: bool,
    /// Health checks on the service (the scaling trials run without: at saturation,
    /// probes lost with the appliance's TX-ring drops make members flap).
    health: bool,
}

impl Trial {
    fn flows(&self) -> u64 {
        self.clients * self.source_ports
    }
}

#[derive(Debug, Clone, Default, Serialize)]
struct Latency {
    samples: u64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

#[derive(Debug, Clone, Serialize)]
struct MemberResult {
    index: u64,
    registered: bool,
    alive: bool,
    rx_packets: u64,
    rx_after_death: u64,
    killed_at_s: Option<f64>,
    failover_s: Option<f64>,
    /// With flow tracking: its flows that later reached another member.
    flows_moved_away: u64,
}

/// What a trial measured.
#[derive(Debug, Clone, Serialize)]
struct TrialResult {
    trial: Trial,
    flows: u64,
    /// Client packets pktgen handed to the port, per second of traffic.
    tx_pps: f64,
    /// Client packets the members received, per second of traffic.
    delivered_pps: f64,
    sent: u64,
    received: u64,
    loss_ratio: f64,
    latency: Latency,
    members: Vec<MemberResult>,
    /// With flow tracking: distinct flows the members saw, and moves between members.
    flows_seen: u64,
    flows_moved: u64,
    /// `member_down` events in the appliance's log (health checks failing).
    member_down_events: u64,
    /// The appliance's drops: its TX queue full (the virtio ring towards pktgen).
    appliance_tx_full: u64,
    /// Every other `drop_*` counter of the appliance, summed.
    appliance_drops: u64,
    /// 1-minute load average right after the trial.
    load1: f64,
    wall_s: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Failover {
    result: TrialResult,
    killed_member: usize,
    failover_s: Option<f64>,
    rx_after_death: u64,
    /// Seconds after pktgen's start at which the member died.
    killed_at_s: Option<f64>,
    /// Seconds after client traffic started at which it died (as scheduled).
    killed_after_traffic_s: f64,
    /// Flows that were on the dead member and moved to another (counted by pktgen at the
    /// members: a flow seen at one member, then at another).
    flows_disrupted: u64,
    /// Flows of live members that moved too (Maglev's table rebuild may shift a few).
    flows_moved_other: u64,
    flows_seen: u64,
    /// Client packets lost during the run (mostly the dead member's share until the
    /// health checks took it out).
    lost: u64,
    /// Upper bound of the detection time set by the health checks, seconds.
    health_bound_s: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Output {
    schema_version: u32,
    smoke: bool,
    trial_seconds: f64,
    frame_bytes: usize,
    loss_tolerance: f64,
    health: String,
    layout: String,
    capacity: TrialResult,
    search: Vec<TrialResult>,
    no_drop_pps: Option<f64>,
    latency: Vec<(u32, TrialResult)>,
    flows: Vec<TrialResult>,
    members: Vec<TrialResult>,
    failover: Failover,
    /// A representative pair of commands, for the page.
    appliance_command: String,
    pktgen_command: String,
    appliance_config: String,
    total_wall_s: f64,
}

struct Runner {
    appliance: PathBuf,
    pktgen: PathBuf,
    work: PathBuf,
    count: u32,
    last_commands: (String, String, String),
}

impl Runner {
    /// One trial; a trial whose processes fail is tried once more (a busy machine can make
    /// a start-up miss its timeouts), and the first error is reported.
    fn run(&mut self, t: &Trial) -> Result<TrialResult> {
        match self.run_once(t) {
            Ok(r) => Ok(r),
            Err(e) => {
                eprintln!("bench-e2e: trial {} failed, once more: {e:#}", self.count);
                self.run_once(t)
            }
        }
    }

    fn run_once(&mut self, t: &Trial) -> Result<TrialResult> {
        self.count += 1;
        let dir = self.work.join(format!("trial-{:03}", self.count));
        fs::create_dir_all(&dir)?;
        let sock = dir.join("up.sock");
        let config = appliance_config(&sock, t);
        fs::write(dir.join("appliance.toml"), &config)?;
        let mut pg_args: Vec<String> = vec![
            "--device".into(),
            format!("net_vhost0,iface={}", sock.display()),
            // The loop on a plain thread of the main lcore (CPU 0); the appliance's worker
            // busy-polls CPU 1.
            "--lcores".into(),
            "0".into(),
            "--tunnel-address".into(),
            TUNNEL.into(),
            "--next-hop".into(),
            NEXT_HOP.into(),
            "--service".into(),
            SERVICE.into(),
            "--members".into(),
            t.members.to_string(),
            "--member-mode".into(),
            "sink".into(),
            "--clients".into(),
            t.clients.to_string(),
            "--source-ports".into(),
            t.source_ports.to_string(),
            // Every flow in the cycled sequence (the default table holds 65536).
            "--flow-table".into(),
            t.flows().clamp(1, 1 << 24).to_string(),
            "--size".into(),
            FRAME.to_string(),
            "--rate".into(),
            t.rate_pps.map_or("max".to_owned(), |r| {
                format!("{}", r.round().max(1.0) as u64)
            }),
            "--duration".into(),
            format!("{}", t.seconds),
            "--latency-sample".into(),
            t.latency_sample.to_string(),
            "--warmup".into(),
            "30".into(),
            // Registered is not yet up: the appliance brings a member up after its first
            // passed health check (rise = 1, every 200 ms). Flows placed before that would
            // stay on the members that came up first (flow affinity).
            "--settle".into(),
            "1".into(),
            "--drain".into(),
            "0.5".into(),
            "--out".into(),
            dir.join("pktgen.json").display().to_string(),
        ];
        if t.track_flows {
            pg_args.push("--track-flows".into());
        }
        let started = Instant::now();
        let mut pktgen = Command::new(&self.pktgen)
            .args(&pg_args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("pktgen.log"))?)
            .spawn()
            .with_context(|| format!("starting {}", self.pktgen.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if Instant::now() > deadline || pktgen.try_wait()?.is_some() {
                let _ = pktgen.kill();
                let _ = pktgen.wait();
                bail!(
                    "pktgen did not create {}: {}",
                    sock.display(),
                    tail(&dir.join("pktgen.log"))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut appliance = Command::new(&self.appliance)
            .args(["run", "--config"])
            .arg(dir.join("appliance.toml"))
            .arg("--json")
            .stdout(fs::File::create(dir.join("appliance.json"))?)
            .stderr(fs::File::create(dir.join("appliance.log"))?)
            .spawn()
            .with_context(|| format!("starting {}", self.appliance.display()))?;
        self.last_commands = (
            format!(
                "anycast6 run --config appliance.toml --json   # virtio_user0,path={}",
                sock.display()
            ),
            format!("anycast6-pktgen {}", pg_args.join(" ")),
            config,
        );
        if let Some(after) = t.kill_after_s {
            // pktgen says when client traffic starts; the kill is timed from there.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !fs::read_to_string(dir.join("pktgen.log"))
                .unwrap_or_default()
                .contains("client traffic starts")
            {
                if Instant::now() > deadline || pktgen.try_wait()?.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_secs_f64(after));
            signal(&pktgen, "-USR1");
        }
        // Warm-up (members registered, MAC learnt) + traffic + drain + slack.
        let limit = Duration::from_secs_f64(t.seconds + 60.0);
        let pg_status = wait_timeout(&mut pktgen, limit)?;
        signal(&appliance, "-INT");
        let app_status = wait_timeout(&mut appliance, Duration::from_secs(15))?;
        let wall_s = started.elapsed().as_secs_f64();
        match pg_status {
            Some(s) if s.success() => {}
            other => bail!(
                "pktgen failed ({other:?}) in {}: {}",
                dir.display(),
                tail(&dir.join("pktgen.log"))
            ),
        }
        if app_status.is_none() {
            bail!(
                "the appliance did not stop: {}",
                tail(&dir.join("appliance.log"))
            );
        }
        let pg: Value = serde_json::from_str(&fs::read_to_string(dir.join("pktgen.json"))?)
            .context("pktgen.json")?;
        let app: Value = fs::read_to_string(dir.join("appliance.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null);
        let log = fs::read_to_string(dir.join("appliance.log")).unwrap_or_default();
        let downs = log.matches("event=member_down").count() as u64;
        Ok(result(t, &pg, &app, downs, wall_s))
    }
}

fn result(t: &Trial, pg: &Value, app: &Value, downs: u64, wall_s: f64) -> TrialResult {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    let duration = f(&pg["tx"]["duration_s"]).max(1e-9);
    let loss = &pg["loss"];
    let lat = &pg["member_latency"];
    let members = pg["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| MemberResult {
                    index: u(&m["index"]),
                    registered: m["registered"].as_bool().unwrap_or(false),
                    alive: m["alive"].as_bool().unwrap_or(false),
                    rx_packets: u(&m["rx_packets"]),
                    rx_after_death: u(&m["rx_after_death"]),
                    killed_at_s: m["killed_at_s"].as_f64(),
                    failover_s: m["failover_s"].as_f64(),
                    flows_moved_away: u(&m["flows_moved_away"]),
                })
                .collect()
        })
        .unwrap_or_default();
    let appliance_drops = app
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.starts_with("drop_"))
                .map(|(_, v)| u(v))
                .sum()
        })
        .unwrap_or(0);
    TrialResult {
        trial: t.clone(),
        flows: t.flows(),
        tx_pps: f(&pg["tx"]["pps"]),
        delivered_pps: f(&loss["received"]) / duration,
        sent: u(&loss["sent"]),
        received: u(&loss["received"]),
        loss_ratio: f(&loss["ratio"]),
        latency: Latency {
            samples: u(&lat["samples"]),
            p50_us: f(&lat["p50_ns"]) / 1e3,
            p99_us: f(&lat["p99_ns"]) / 1e3,
            max_us: f(&lat["max_ns"]) / 1e3,
        },
        members,
        flows_seen: u(&pg["flows"]["seen"]),
        flows_moved: u(&pg["flows"]["moved"]),
        member_down_events: downs,
        appliance_tx_full: u(&app["tx_full"]),
        appliance_drops,
        load1: load1(),
        wall_s,
    }
}

fn appliance_config(sock: &Path, t: &Trial) -> String {
    // Affinity: a power of two >= 4/3 of the flows (as bench/run-dataplane.sh sizes it).
    let mut capacity = 1024u64;
    while capacity * 3 < t.flows() * 4 {
        capacity *= 2;
    }
    let health = if t.health {
        format!(
            "\n[services.health]\nkind = \"tunnel\"\ninterval_ms = {HEALTH_INTERVAL_MS}\ntimeout_ms = {HEALTH_TIMEOUT_MS}\nrise = 1\nfall = {HEALTH_FALL}\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"# Written by bench-e2e: one port on pktgen's vhost-user socket, one service whose
# members register by (unauthenticated, trusted-prefix) Binding Update.
[appliance]
tunnel_address = "{TUNNEL}"

[dataplane]
workers = 1
lcores = "0-1"
affinity_capacity = {capacity}
mempool_size = 16383

[[ports]]
name = "uplink"
device = "virtio_user0,path={sock}"
mac = "02:00:00:00:00:01"
next_hop = "{NEXT_HOP}"

[[services]]
address = "{SERVICE}"
affinity = "flow"
max_bindings = {bindings}
{health}
[registration]
trusted_prefixes = ["2001:db8:2::/64"]
max_lifetime = 120
"#,
        sock = sock.display(),
        bindings = t.members.clamp(256, 4096),
    )
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Signals a child: SIGINT stops the appliance cleanly (it prints its final JSON
/// counters), SIGUSR1 makes pktgen kill its live member with the lowest index.
fn signal(child: &Child, which: &str) {
    let _ = Command::new("kill")
        .args([which, &child.id().to_string()])
        .status();
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn load1() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn passes(r: &TrialResult, tolerance: f64) -> bool {
    r.sent > 0 && r.loss_ratio <= tolerance
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut appliance, mut pktgen, mut work, mut out, mut smoke) = (None, None, None, None, false);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--appliance" => appliance = Some(PathBuf::from(value()?)),
            "--pktgen" => pktgen = Some(PathBuf::from(value()?)),
            "--work" => work = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--smoke" => smoke = true,
            _ => bail!("unknown argument {flag}; usage: bench-e2e --appliance BIN --pktgen BIN --work DIR --out FILE [--smoke]"),
        }
    }
    let (Some(appliance), Some(pktgen), Some(work), Some(out)) = (appliance, pktgen, work, out)
    else {
        bail!("usage: bench-e2e --appliance BIN --pktgen BIN --work DIR --out FILE [--smoke]");
    };
    fs::create_dir_all(&work)?;
    let plan = Plan::new(smoke);
    let mut runner = Runner {
        appliance,
        pktgen,
        work,
        count: 0,
        last_commands: Default::default(),
    };
    let started = Instant::now();
    let base = Trial {
        rate_pps: None,
        members: 4,
        clients: 1000,
        source_ports: 4,
        seconds: plan.seconds,
        latency_sample: 100,
        kill_after_s: None,
        track_flows: false,
        health: true,
    };
    let say = |what: &str, r: &TrialResult| {
        eprintln!(
            "bench-e2e: {what}: offered {} tx {:.0} pps, delivered {:.0} pps, loss {:.4}%, p50 {:.0} us p99 {:.0} us, load {:.2}",
            r.trial.rate_pps.map_or("max".to_owned(), |p| format!("{p:.0} pps,")),
            r.tx_pps,
            r.delivered_pps,
            r.loss_ratio * 100.0,
            r.latency.p50_us,
            r.latency.p99_us,
            r.load1
        );
    };

    // Capacity: as fast as the pair goes.
    let capacity = runner.run(&base)?;
    say("capacity", &capacity);

    // No-drop rate: geometric bisection between the floor and what pktgen could send.
    let mut search = Vec::new();
    let mut lo = plan.search_floor;
    let mut hi = capacity.tx_pps.max(lo * 2.0);
    let mut best: Option<f64> = None;
    let first = runner.run(&Trial {
        rate_pps: Some(lo),
        ..base.clone()
    })?;
    say("search", &first);
    let floor_passes = passes(&first, plan.loss_tolerance);
    search.push(first);
    if floor_passes {
        best = Some(lo);
        for _ in 1..plan.search_steps {
            let mid = (lo * hi).sqrt();
            let r = runner.run(&Trial {
                rate_pps: Some(mid),
                ..base.clone()
            })?;
            say("search", &r);
            if passes(&r, plan.loss_tolerance) {
                lo = mid;
                best = Some(mid);
            } else {
                hi = mid;
            }
            search.push(r);
        }
    }

    // Latency at fractions of the no-drop rate (of the floor when nothing passed).
    let reference = best.unwrap_or(plan.search_floor);
    let mut latency = Vec::new();
    for percent in [10u32, 50, 90] {
        let r = runner.run(&Trial {
            rate_pps: Some(reference * f64::from(percent) / 100.0),
            // About 2000 stamps a second whatever the rate.
            latency_sample: ((reference * f64::from(percent) / 100.0) / 2000.0).max(1.0) as u32,
            ..base.clone()
        })?;
        say(&format!("latency {percent}%"), &r);
        latency.push((percent, r));
    }

    // Scaling with flows (clients x 1 port each) and with members, at full speed.
    let mut flows = Vec::new();
    for &n in &plan.flows {
        let r = runner.run(&Trial {
            clients: n,
            source_ports: 1,
            health: false,
            ..base.clone()
        })?;
        say(&format!("{n} flows"), &r);
        flows.push(r);
    }
    let mut members = Vec::new();
    for &n in &plan.members {
        let r = runner.run(&Trial {
            members: n,
            clients: 10_000,
            source_ports: 1,
            health: false,
            ..base.clone()
        })?;
        say(&format!("{n} members"), &r);
        members.push(r);
    }

    // Failover: member 0 of 4 dies mid-run, at half the no-drop rate (at least 5 kpps, so
    // that the failover time is resolved to well under a millisecond).
    let killed = 0usize;
    let rate = (reference * 0.5).max(5000.0);
    let r = runner.run(&Trial {
        rate_pps: Some(rate),
        seconds: plan.failover_seconds,
        kill_after_s: Some(plan.failover_kill_at),
        track_flows: true,
        latency_sample: (rate / 2000.0).max(1.0) as u32,
        ..base.clone()
    })?;
    say("failover", &r);
    let dead = r.members.iter().find(|m| m.index == killed as u64);
    let flows_disrupted = dead.map_or(0, |m| m.flows_moved_away);
    let failover = Failover {
        killed_member: killed,
        failover_s: dead.and_then(|m| m.failover_s),
        rx_after_death: dead.map_or(0, |m| m.rx_after_death),
        killed_at_s: dead.and_then(|m| m.killed_at_s),
        killed_after_traffic_s: plan.failover_kill_at,
        flows_disrupted,
        flows_moved_other: r.flows_moved.saturating_sub(flows_disrupted),
        flows_seen: r.flows_seen,
        lost: r.sent.saturating_sub(r.received),
        health_bound_s: f64::from(HEALTH_INTERVAL_MS * (HEALTH_FALL + 1)) / 1e3,
        result: r,
    };

    let (appliance_command, pktgen_command, appliance_config) = runner.last_commands.clone();
    let output = Output {
        schema_version: 1,
        smoke,
        trial_seconds: plan.seconds,
        frame_bytes: FRAME,
        loss_tolerance: plan.loss_tolerance,
        health: format!(
            "tunnel probes every {HEALTH_INTERVAL_MS} ms, timeout {HEALTH_TIMEOUT_MS} ms, down after {HEALTH_FALL} failures"
        ),
        layout: "pktgen: net_vhost server, one loop on a plain thread of CPU 0 (--lcores 0); \
                 appliance: virtio_user, control thread lcore 0 (CPU 0), worker lcore 1 (CPU 1)"
            .into(),
        capacity,
        search,
        no_drop_pps: best,
        latency,
        flows,
        members,
        failover,
        appliance_command,
        pktgen_command,
        appliance_config,
        total_wall_s: started.elapsed().as_secs_f64(),
    };
    fs::write(&out, serde_json::to_string_pretty(&output)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "bench-e2e: {} trials in {:.0} s -> {}",
        runner.count,
        output.total_wall_s,
        out.display()
    );
    Ok(())
}
