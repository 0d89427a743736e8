//! `anycast6 run`: the appliance on DPDK ports.
//!
//! One worker per worker lcore owns RX queue *i* and TX queue *i* of every port and runs
//! the pipeline ([`crate::dataplane::pipeline`]) to completion on bursts. The main lcore is
//! the control thread: it drains the workers' exception channels, answers Neighbor
//! Discovery and echo for the appliance's addresses, resolves next hops, publishes
//! snapshots and prints statistics. Frames the control thread sends go to worker 0 on an
//! SPSC channel and leave on that worker's TX queue: every device, including single-queue
//! ones such as `net_pcap`, then needs exactly one TX queue per worker, and no TX queue is
//! ever shared between threads.

use std::io::IsTerminal;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast6_dpdk::{
    exception_channel, Eal, ExceptionReceiver, ExceptionSender, Mbuf, MbufBurst, Mempool, Port,
    PortConfig, RssMode, RxQueue, TxQueue,
};
use anycast6_wire::ethernet::MacAddr;
use anycast6_wire::PacketBuf;
use anyhow::{bail, Context, Result};
use crossbeam_utils::CachePadded;

use crate::control::keys::KeyTable;
use crate::control::plane::ControlPlane;
use crate::dataplane::counters::{CounterName, Counters, Stat};
use crate::dataplane::pipeline::{ExtraTx, Tick, Verdict, Worker, WorkerConfig};
use crate::dataplane::rcu::{SnapshotPublisher, SnapshotReader};
use crate::dataplane::snapshot::Snapshot;

/// Exception packets a worker may queue for the control thread before it drops them.
const EXCEPTION_RING: usize = 1024;
/// Packets per RX burst (ARCHITECTURE.md §3).
pub const BURST: usize = 32;
/// TX staging per port: a burst of outputs plus one extra fragment per packet.
const TX_STAGE: usize = 2 * BURST;

/// One port of the run.
#[derive(Debug, Clone)]
pub struct PortPlan {
    pub name: String,
    pub device: String,
    pub mtu: u16,
    /// Source MAC of frames we send; the device's own MAC when `None`.
    pub mac: Option<MacAddr>,
    pub next_hop: Option<Ipv6Addr>,
    pub next_hop_mac: Option<MacAddr>,
}

/// Everything `run` needs, derived from the configuration file.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub eal_args: Vec<String>,
    pub ports: Vec<PortPlan>,
    pub workers: usize,
    pub mempool_size: u32,
    pub affinity_capacity: usize,
    pub affinity_idle_timeout: u32,
    pub rss: RssMode,
    /// Stop after this long (`None`: until SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// Print a statistics line this often (on a terminal, or always with `force_stats`).
    pub stats_interval: Duration,
    pub force_stats: bool,
    /// The configuration the plan was made from (the control plane starts from it).
    pub config: crate::config::Config,
    /// Where it was read from: SIGHUP and `ctl reload` read this file again.
    pub config_path: Option<std::path::PathBuf>,
}

impl RunPlan {
    /// The plan for a validated configuration: its EAL arguments (with `file_prefix`), ports,
    /// worker and table sizes, and the snapshot of its static members.
    pub fn from_config(
        config: &crate::config::Config,
        file_prefix: &str,
        duration: Option<Duration>,
        force_stats: bool,
    ) -> RunPlan {
        use crate::config::RssConfig;
        RunPlan {
            eal_args: config.eal_args(file_prefix),
            ports: config
                .ports
                .iter()
                .map(|p| PortPlan {
                    name: p.name.clone(),
                    device: p.device.clone(),
                    mtu: p.mtu,
                    mac: p.mac,
                    next_hop: p.next_hop,
                    next_hop_mac: p.next_hop_mac,
                })
                .collect(),
            workers: config.dataplane.workers,
            mempool_size: config.dataplane.mempool_size,
            affinity_capacity: config.dataplane.affinity_capacity,
            affinity_idle_timeout: config.dataplane.affinity_idle_timeout,
            rss: match config.dataplane.rss {
                RssConfig::Addresses => RssMode::Ipv6Addresses,
                RssConfig::FiveTuple => RssMode::Ipv6FiveTuple,
            },
            duration,
            stats_interval: Duration::from_secs(1),
            force_stats,
            config: config.clone(),
            config_path: None,
        }
    }
}

/// Counters the runtime keeps besides the pipeline's (per worker, published by stores).
#[derive(Debug)]
pub struct RuntimeCounters {
    tx_full: CachePadded<AtomicU64>,
    exception_ring_full: CachePadded<AtomicU64>,
    multi_segment: CachePadded<AtomicU64>,
    /// RX polls by how many packets they returned (index 0..=BURST), all ports together.
    burst_sizes: CachePadded<[AtomicU64; BURST + 1]>,
}

impl Default for RuntimeCounters {
    fn default() -> Self {
        RuntimeCounters {
            tx_full: CachePadded::default(),
            exception_ring_full: CachePadded::default(),
            multi_segment: CachePadded::default(),
            burst_sizes: CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl RuntimeCounters {
    /// RX polls by packets returned (index = packets in the burst).
    pub fn burst_sizes(&self) -> Vec<u64> {
        self.burst_sizes
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }
}

/// What a run did, for the final report.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub elapsed: Duration,
    pub counters: Counters,
    pub tx_full: u64,
    pub exception_ring_full: u64,
    pub multi_segment: u64,
    pub control_replies: u64,
    pub control_unhandled: u64,
    pub neighbours_learned: u64,
    pub snapshots_published: u64,
    /// Frames of the control thread that found no buffer or no room on the way out.
    pub control_tx_dropped: u64,
    pub ba_sent: u64,
    pub probes_sent: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub port_stats: Vec<(String, anycast6_dpdk::PortStats)>,
}

impl RunReport {
    /// The final counters as one JSON object (same names as [`RunReport::render`]).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for line in self.render().lines() {
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some("port"), Some(name)) => {
                    let mut port = serde_json::Map::new();
                    let rest: Vec<&str> = parts.collect();
                    for kv in rest.chunks(2) {
                        if let [k, v] = kv {
                            port.insert(
                                (*k).into(),
                                v.parse::<u64>()
                                    .map(Into::into)
                                    .unwrap_or_else(|_| (*v).into()),
                            );
                        }
                    }
                    m.insert(format!("port.{name}"), port.into());
                }
                (Some(k), Some(v)) => {
                    let value = v
                        .parse::<u64>()
                        .map(serde_json::Value::from)
                        .or_else(|_| v.parse::<f64>().map(serde_json::Value::from))
                        .unwrap_or_else(|_| v.into());
                    m.insert(k.into(), value);
                }
                _ => {}
            }
        }
        m.into()
    }

    /// The final counters, one `name value` per line.
    pub fn render(&self) -> String {
        let mut s = format!("elapsed_seconds {:.3}\n", self.elapsed.as_secs_f64());
        for (name, value) in self.counters.iter() {
            let name = match name {
                CounterName::Stat(st) => st.name().to_string(),
                CounterName::Drop(reason) => format!("drop_{}", reason.name()),
            };
            s.push_str(&format!("{name} {value}\n"));
        }
        for (k, v) in [
            ("tx_full", self.tx_full),
            ("exception_ring_full", self.exception_ring_full),
            ("multi_segment", self.multi_segment),
            ("control_replies", self.control_replies),
            ("control_unhandled", self.control_unhandled),
            ("neighbours_learned", self.neighbours_learned),
            ("snapshots_published", self.snapshots_published),
            ("control_tx_dropped", self.control_tx_dropped),
            ("ba_sent", self.ba_sent),
            ("probes_sent", self.probes_sent),
            ("reloads_ok", self.reloads_ok),
            ("reloads_failed", self.reloads_failed),
        ] {
            s.push_str(&format!("{k} {v}\n"));
        }
        for (name, st) in &self.port_stats {
            s.push_str(&format!(
                "port {name} ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}\n",
                st.ipackets, st.opackets, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf
            ));
        }
        s
    }
}

/// Fragments the pipeline emits besides the packet it returns, staged on the same TX burst.
struct FragmentTx<'a> {
    pool: &'a Mempool,
    stage: &'a mut [MbufBurst<TX_STAGE>],
    dropped: &'a mut u64,
}

impl ExtraTx<Mbuf> for FragmentTx<'_> {
    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc().ok()
    }
    fn send_after(&mut self, port: u16, buf: Mbuf) {
        match self.stage.get_mut(usize::from(port)) {
            Some(stage) => {
                if stage.push(buf).is_err() {
                    *self.dropped += 1;
                }
            }
            None => *self.dropped += 1,
        }
    }
}

struct WorkerLoop {
    worker: Worker,
    reader: SnapshotReader<Snapshot>,
    rx: Vec<RxQueue>,
    tx: Vec<TxQueue>,
    exceptions: ExceptionSender<(u16, Mbuf)>,
    /// Frames from the control thread to send (port, frame).
    inject: ExceptionReceiver<(u16, Mbuf)>,
    pool: Arc<Mempool>,
    stop: Arc<AtomicBool>,
    counters: Arc<RuntimeCounters>,
    epoch: Instant,
}

impl WorkerLoop {
    fn run(mut self) {
        let mut rx_burst: MbufBurst<BURST> = MbufBurst::new();
        let mut stage: Vec<MbufBurst<TX_STAGE>> =
            (0..self.tx.len()).map(|_| MbufBurst::new()).collect();
        let (mut tx_full, mut ring_full, mut multi_seg) = (0u64, 0u64, 0u64);
        let mut bursts = [0u64; BURST + 1];
        let mut published_at = Tick::from_millis(0);
        while !self.stop.load(Ordering::Relaxed) {
            let now = Tick::from_millis(self.epoch.elapsed().as_millis() as u64);
            while let Some((port, m)) = self.inject.recv() {
                let queued = match stage.get_mut(usize::from(port)) {
                    Some(s) => s.push(m).is_ok(),
                    None => false,
                };
                if !queued {
                    tx_full += 1;
                }
            }
            let snap = self.reader.current();
            for (p, rxq) in self.rx.iter_mut().enumerate() {
                let n = rxq.rx_burst(&mut rx_burst);
                bursts[n.min(BURST)] += 1;
                if n == 0 {
                    continue;
                }
                for mut m in rx_burst.drain() {
                    if !m.is_contiguous() && m.linearize().is_err() {
                        multi_seg += 1;
                        continue; // dropped: the pipeline needs one contiguous segment
                    }
                    let mut extra = FragmentTx {
                        pool: &self.pool,
                        stage: &mut stage,
                        dropped: &mut tx_full,
                    };
                    let verdict = self.worker.process(snap, &mut m, p as u16, now, &mut extra);
                    match verdict {
                        Verdict::Exception => {
                            if self.exceptions.send((p as u16, m)).is_err() {
                                ring_full += 1;
                            }
                        }
                        v => {
                            if let Some(port) = v.tx_port() {
                                match stage.get_mut(usize::from(port)) {
                                    Some(s) => {
                                        if s.push(m).is_err() {
                                            tx_full += 1;
                                        }
                                    }
                                    None => tx_full += 1,
                                }
                            }
                            // Drop(..): `m` goes out of scope and returns to its pool.
                        }
                    }
                }
            }
            for (s, txq) in stage.iter_mut().zip(self.tx.iter_mut()) {
                if !s.is_empty() {
                    txq.tx_burst(s);
                    // What the NIC did not take is dropped and counted (ARCHITECTURE §3:
                    // no unbounded retry on the hot path).
                    tx_full += s.len() as u64;
                    s.clear();
                }
            }
            self.worker.publish_counters();
            self.counters.tx_full.store(tx_full, Ordering::Relaxed);
            self.counters
                .exception_ring_full
                .store(ring_full, Ordering::Relaxed);
            self.counters
                .multi_segment
                .store(multi_seg, Ordering::Relaxed);
            // The histogram is published once per millisecond, not per burst: 33 stores
            // per poll would cost more than the counting.
            if now != published_at {
                published_at = now;
                for (c, v) in self.counters.burst_sizes.iter().zip(bursts) {
                    c.store(v, Ordering::Relaxed);
                }
            }
            self.reader.quiescent();
        }
        self.worker.publish_counters();
        for (c, v) in self.counters.burst_sizes.iter().zip(bursts) {
            c.store(v, Ordering::Relaxed);
        }
    }
}

/// The EUI-64 link-local address of a MAC (RFC 4291 Appendix A).
pub fn link_local_of(mac: MacAddr) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// Runs the appliance until the duration passes or SIGINT/SIGTERM arrives.
pub fn run(plan: RunPlan) -> Result<RunReport> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let eal =
        Eal::init(plan.eal_args.iter().map(String::as_str)).context("initialising DPDK (EAL)")?;
    let worker_lcores = eal.worker_lcores();
    if worker_lcores.len() < plan.workers {
        bail!(
            "{} worker lcores requested but the EAL has {} ({:?}); give more cores in dataplane.lcores",
            plan.workers,
            worker_lcores.len(),
            worker_lcores
        );
    }
    let pool = Arc::new(
        Mempool::new(&eal, "anycast6_pool", plan.mempool_size, 256, 2048 + 128)
            .context("creating the mbuf pool")?,
    );

    // Ports: RX queue i and TX queue i per worker.
    let workers = plan.workers;
    let mut ports = Vec::new();
    let mut rx_by_worker: Vec<Vec<RxQueue>> = (0..workers).map(|_| Vec::new()).collect();
    let mut tx_by_worker: Vec<Vec<TxQueue>> = (0..workers).map(|_| Vec::new()).collect();
    let mut port_macs = Vec::new();
    for (i, pp) in plan.ports.iter().enumerate() {
        let mut port =
            Port::open(&eal, &pp.device).with_context(|| format!("ports[{i}] ({})", pp.name))?;
        anyhow::ensure!(
            usize::from(port.id()) == i,
            "ports[{i}] ({}) got DPDK port id {}; ports must be listed in device order",
            pp.name,
            port.id()
        );
        let cfg = PortConfig {
            rx_queues: workers as u16,
            tx_queues: workers as u16,
            mtu: Some(pp.mtu),
            rss: plan.rss,
            ..PortConfig::default()
        };
        let queues = port
            .configure(&pool, &cfg)
            .with_context(|| format!("configuring ports[{i}] ({})", pp.name))?;
        port.start()
            .with_context(|| format!("starting ports[{i}] ({})", pp.name))?;
        let mac = match pp.mac {
            Some(m) => m,
            None => MacAddr(
                port.mac_address()
                    .with_context(|| format!("MAC of ports[{i}]"))?,
            ),
        };
        port_macs.push(mac);
        let mut rx = queues.rx.into_iter();
        let mut tx = queues.tx.into_iter();
        for w in 0..workers {
            rx_by_worker[w].push(rx.next().expect("configured one RX queue per worker"));
            tx_by_worker[w].push(tx.next().expect("configured one TX queue per worker"));
        }
        ports.push(port);
    }

    // The control plane and the first snapshot: port MACs, configured next-hop MACs, our
    // link-local addresses, the static members.
    let started = Instant::now();
    let keys = load_keys(&plan.config)?;
    let mut control = ControlPlane::new(plan.config.clone(), &keys, port_macs.clone(), started);
    let first_spec = control
        .take_spec(started)
        .context("the control plane produced no first snapshot")?;
    let first = Snapshot::build(&first_spec).context("building the first snapshot")?;
    let icmp_rate = first_spec.icmp_rate;
    let mut publisher = SnapshotPublisher::new(first);
    let mut snapshots_published = 1u64;
    for line in control.take_log() {
        log_line(started, &line);
    }

    let reload_requested = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload_requested))
        .context("installing the SIGHUP handler")?;

    // Workers.
    let runtime_counters: Vec<Arc<RuntimeCounters>> =
        (0..workers).map(|_| Arc::default()).collect();
    let mut receivers: Vec<ExceptionReceiver<(u16, Mbuf)>> = Vec::new();
    let mut injectors: Vec<ExceptionSender<(u16, Mbuf)>> = Vec::new();
    let mut handles = Vec::new();
    let mut mirrors = Vec::new();
    for (w, (rx, tx)) in rx_by_worker.into_iter().zip(tx_by_worker).enumerate() {
        let worker = Worker::new(
            WorkerConfig {
                id: w as u16,
                affinity_capacity: plan.affinity_capacity,
                affinity_idle_timeout: plan.affinity_idle_timeout,
                icmp_rate,
            },
            Tick::from_millis(0),
        )
        .context("creating a worker")?;
        mirrors.push(worker.counter_mirror());
        let (sender, receiver) = exception_channel(EXCEPTION_RING);
        receivers.push(receiver);
        let (inject_tx, inject_rx) = exception_channel(EXCEPTION_RING);
        injectors.push(inject_tx);
        let job = WorkerLoop {
            worker,
            reader: publisher.register_reader(),
            rx,
            tx,
            exceptions: sender,
            inject: inject_rx,
            pool: Arc::clone(&pool),
            stop: Arc::clone(&stop),
            counters: Arc::clone(&runtime_counters[w]),
            epoch: started,
        };
        handles.push(
            eal.launch(worker_lcores[w], move || job.run())
                .context("launching a worker lcore")?,
        );
    }

    // The control thread.
    log_line(
        started,
        &format!(
            "event=started workers={workers} ports={} pid={}",
            plan.ports.len(),
            std::process::id()
        ),
    );
    let tty = std::io::stderr().is_terminal() || plan.force_stats;
    let mut next_stats = started + plan.stats_interval;
    let mut last_rx = 0u64;
    let mut tx_dropped = 0u64;
    let deadline = plan.duration.map(|d| started + d);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let mut busy = false;
        let mut out: Vec<(u16, Vec<u8>)> = Vec::new();
        for rx in receivers.iter_mut() {
            while let Some((port, m)) = rx.recv() {
                busy = true;
                out.extend(control.on_frame(now, port, m.data()));
            }
        }
        out.extend(control.on_tick(now, |_slot| 0));
        if reload_requested.swap(false, Ordering::Relaxed) {
            // The outcome is logged by the control plane, and counted.
            let _ = reload(&mut control, plan.config_path.as_deref(), now);
        }
        for (port, frame) in out {
            if send(&pool, &mut injectors[0], port, &frame) == 0 {
                tx_dropped += 1;
            }
        }
        if let Some(spec) = control.take_spec(now) {
            control.take_new_slots();
            match Snapshot::build(&spec) {
                Ok(snapshot) => {
                    publisher.publish(snapshot);
                    snapshots_published += 1;
                }
                Err(e) => control.spec_rejected(&e.to_string()),
            }
        }
        for line in control.take_log() {
            log_line(started, &line);
        }
        publisher.reclaim();
        if now >= next_stats {
            next_stats += plan.stats_interval;
            if tty {
                let c = sum(&mirrors);
                let rx = c.get(Stat::RxPackets);
                let rate = (rx - last_rx) as f64 / plan.stats_interval.as_secs_f64();
                last_rx = rx;
                eprintln!(
                    "[{:>6.1}s] rx {rx} ({:.3} Mpps) fwd {} rev {} exc {} drop {} icmp {} unresolved {:?}",
                    started.elapsed().as_secs_f64(),
                    rate / 1e6,
                    c.get(Stat::Forwarded),
                    c.get(Stat::Reversed),
                    c.get(Stat::Exceptions),
                    c.total_drops(),
                    c.get(Stat::IcmpSent),
                    control.unresolved(),
                );
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().context("joining a worker lcore")?;
    }
    let elapsed = started.elapsed();
    let mut port_stats = Vec::new();
    for (pp, port) in plan.ports.iter().zip(ports.iter()) {
        if let Ok(st) = port.stats() {
            port_stats.push((pp.name.clone(), st));
        }
    }
    let load = |f: fn(&RuntimeCounters) -> &CachePadded<AtomicU64>| -> u64 {
        runtime_counters
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum()
    };
    let pc = control.counters();
    Ok(RunReport {
        elapsed,
        counters: sum(&mirrors),
        tx_full: load(|c| &c.tx_full),
        exception_ring_full: load(|c| &c.exception_ring_full),
        multi_segment: load(|c| &c.multi_segment),
        control_replies: pc.replies,
        control_unhandled: pc.unhandled,
        neighbours_learned: pc.neighbours_learned,
        snapshots_published,
        control_tx_dropped: tx_dropped,
        ba_sent: pc.ba_sent,
        probes_sent: pc.probes_sent,
        reloads_ok: pc.reloads_ok,
        reloads_failed: pc.reloads_failed,
        port_stats,
    })
}

/// The key file of a configuration (empty without `registration.key_file`).
fn load_keys(config: &crate::config::Config) -> Result<KeyTable> {
    match config
        .registration
        .as_ref()
        .and_then(|r| r.key_file.as_ref())
    {
        Some(path) => Ok(KeyTable::load(path)?),
        None => Ok(KeyTable::default()),
    }
}

/// Reads the configuration file again and applies it: an invalid file, or one that changes
/// what needs a restart, changes nothing.
pub fn reload(
    control: &mut ControlPlane,
    path: Option<&std::path::Path>,
    now: Instant,
) -> std::result::Result<String, String> {
    let loaded = match path {
        None => Err("the configuration was not read from a file".to_string()),
        Some(path) => crate::config::Config::load(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|config| {
                let keys = load_keys(&config).map_err(|e| format!("{e:#}"))?;
                Ok((config, keys))
            }),
    };
    match loaded {
        Ok((config, keys)) => control.reload(now, config, &keys),
        Err(e) => {
            control.reload_failed(&e);
            Err(e)
        }
    }
}

/// One structured log line on stderr: seconds since start, then the event's `key=value`s.
fn log_line(started: Instant, line: &str) {
    eprintln!("t={:.3} {line}", started.elapsed().as_secs_f64());
}

fn sum(mirrors: &[Arc<crate::dataplane::counters::CounterMirror>]) -> Counters {
    let mut total = Counters::default();
    for m in mirrors {
        total.merge(&m.read());
    }
    total
}

/// Hands one frame to worker 0 for transmission on `port`; returns 1 when queued.
fn send(
    pool: &Mempool,
    to_worker: &mut ExceptionSender<(u16, Mbuf)>,
    port: u16,
    frame: &[u8],
) -> u64 {
    let Ok(m) = pool.alloc_from_slice(frame) else {
        return 0;
    };
    u64::from(to_worker.send((port, m)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_is_modified_eui64() {
        let mac = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
        assert_eq!(
            link_local_of(mac),
            "fe80::5eff:fe10:2030".parse::<Ipv6Addr>().unwrap()
        );
    }
}
