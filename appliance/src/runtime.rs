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

use crate::control::admin::{Action, AdminServer, ControlRequest};
use crate::control::keys::KeyTable;
use crate::control::metrics::MetricsServer;
use crate::control::plane::ControlPlane;
use crate::control::view::{
    BindingView, ControlView, MemberView, PortView, ServiceView, WorkerView,
};
use crate::dataplane::counters::{CounterName, Counters, Stat};
use crate::dataplane::pipeline::{ExtraTx, StagedBurst, Tick, Verdict, Worker, WorkerConfig};
use crate::dataplane::pipeline::{MemberTraffic, MemberTrafficMirror};
use crate::dataplane::rcu::{SnapshotPublisher, SnapshotReader};
use crate::dataplane::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::sync::mpsc;

/// Exception packets a worker may queue for the control thread before it drops them.
const EXCEPTION_RING: usize = 1024;
/// Packets per RX burst (ARCHITECTURE.md §3).
pub const BURST: usize = 32;
/// TX staging per port: a burst of outputs plus one extra fragment per packet.
const TX_STAGE: usize = 2 * BURST;
// A received burst is staged whole ([`Pending`]).
const _: () = assert!(BURST <= crate::dataplane::pipeline::BURST_STAGE);

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
        stage_for_tx(self.stage, port, buf, self.dropped);
    }
}

/// Puts `m` on `port`'s TX stage; when the stage is full or there is no such port, `m` is
/// freed (it goes out of scope) and counted in `dropped`.
#[inline]
fn stage_for_tx(stage: &mut [MbufBurst<TX_STAGE>], port: u16, m: Mbuf, dropped: &mut u64) {
    let queued = match stage.get_mut(usize::from(port)) {
        Some(s) => s.push(m).is_ok(),
        None => false,
    };
    if !queued {
        *dropped += 1;
    }
}

struct WorkerLoop {
    worker: Worker,
    reader: SnapshotReader<Snapshot>,
    rx: Vec<RxQueue>,
    tx: Vec<TxQueue>,
    out: Outputs,
    /// Frames from the control thread to send (port, frame).
    inject: ExceptionReceiver<(u16, Mbuf)>,
    stop: Arc<AtomicBool>,
    counters: Arc<RuntimeCounters>,
    epoch: Instant,
}

/// Where a worker's judged packets go, and what could not be placed.
struct Outputs {
    /// For the fragments of outer fragmentation.
    pool: Arc<Mempool>,
    /// Packets for the control thread (rx port, frame).
    exceptions: ExceptionSender<(u16, Mbuf)>,
    /// One TX stage per port, sent once per poll loop.
    stage: Vec<MbufBurst<TX_STAGE>>,
    tx_full: u64,
    ring_full: u64,
}

/// A received burst between stages (2) and (3) of the pipeline (pipeline.rs, "Bursts"),
/// carried over to the next poll. Each poll begins its burst (stage (1): the metadata
/// prefetches), finishes the carried one (stage (3)) with the new burst's stage (2) (the
/// slot prefetches) spread over it, one per packet, and carries the new burst in turn.
/// So a burst's slot lines arrive while the worker receives and begins the next one, and
/// its 32 slot prefetches are not issued back to back: a core has fewer fill buffers than
/// that, and the prefetches beyond them stalled stage (2) (about 13 cycles a packet at
/// 10^5 flows, docs/benchmarks.md). Empty when nothing is carried.
struct Pending {
    mbufs: MbufBurst<BURST>,
    staged: StagedBurst,
    port: u16,
    /// Scratch space for the verdicts of stage (3): written before it is read.
    verdicts: [Verdict; BURST],
}

impl Pending {
    /// Stage (3) of the carried burst, with the snapshot it was begun with, and the dispatch
    /// of its packets, with stage (2) of `next` (begun with the same snapshot) spread over
    /// it.
    fn finish(
        &mut self,
        worker: &mut Worker,
        snap: &Snapshot,
        now: Tick,
        out: &mut Outputs,
        next: Option<&mut StagedBurst>,
    ) {
        if self.mbufs.is_empty() {
            if let Some(n) = next {
                worker.prefetch_burst(n);
            }
            return;
        }
        let mut extra = out.fragment_tx();
        let done = worker.finish_burst(
            snap,
            self.mbufs.as_mut_slice(),
            self.port,
            now,
            &mut extra,
            &self.staged,
            &mut self.verdicts,
            next,
        );
        for (m, verdict) in self.mbufs.drain().zip(&self.verdicts[..done]) {
            out.dispatch(*verdict, m, self.port);
        }
    }
}

impl Outputs {
    /// Where the pipeline puts the extra frames of a packet (outer fragments), with the
    /// pool they come from.
    #[inline]
    fn fragment_tx(&mut self) -> FragmentTx<'_> {
        FragmentTx {
            pool: &self.pool,
            stage: &mut self.stage,
            dropped: &mut self.tx_full,
        }
    }

    /// Sends a judged packet where its verdict says: the control thread's ring, a port's
    /// TX stage, or (a drop) back to its pool when `m` goes out of scope.
    #[inline]
    fn dispatch(&mut self, verdict: Verdict, m: Mbuf, rx_port: u16) {
        match verdict {
            Verdict::Exception => {
                if self.exceptions.send((rx_port, m)).is_err() {
                    self.ring_full += 1;
                }
            }
            v => {
                if let Some(port) = v.tx_port() {
                    stage_for_tx(&mut self.stage, port, m, &mut self.tx_full);
                }
            }
        }
    }
}

/// TSC cycles of the poll loop's parts (feature `stage-cycles`).
#[cfg(feature = "stage-cycles")]
struct LoopCycles {
    /// RX, the pipeline with the dispatch, TX, the rest of the loop.
    parts: [u64; 4],
    last: u64,
}

#[cfg(feature = "stage-cycles")]
impl LoopCycles {
    const RX: usize = 0;
    const PIPELINE: usize = 1;
    const TX: usize = 2;
    const REST: usize = 3;

    /// Charges the cycles since the last lap to `part`.
    #[inline]
    fn lap(&mut self, part: usize) {
        let t = anycast6_dpdk::rdtsc();
        self.parts[part] += t - self.last;
        self.last = t;
    }
}

impl WorkerLoop {
    fn run(mut self) {
        let mut rx_burst: MbufBurst<BURST> = MbufBurst::new();
        let mut staged = StagedBurst::new();
        let mut pending = Pending {
            mbufs: MbufBurst::new(),
            staged: StagedBurst::new(),
            port: 0,
            verdicts: [Verdict::Exception; BURST],
        };
        let mut multi_seg = 0u64;
        let mut bursts = [0u64; BURST + 1];
        let mut published_at = Tick::from_millis(0);
        #[cfg(feature = "stage-cycles")]
        let mut cycles = LoopCycles {
            parts: [0; 4],
            last: anycast6_dpdk::rdtsc(),
        };
        while !self.stop.load(Ordering::Relaxed) {
            let now = Tick::from_millis(self.epoch.elapsed().as_millis() as u64);
            while let Some((port, m)) = self.inject.recv() {
                stage_for_tx(&mut self.out.stage, port, m, &mut self.out.tx_full);
            }
            let mut begun = false;
            for (p, rxq) in self.rx.iter_mut().enumerate() {
                #[cfg(feature = "stage-cycles")]
                cycles.lap(LoopCycles::REST);
                let n = rxq.rx_burst(&mut rx_burst);
                #[cfg(feature = "stage-cycles")]
                cycles.lap(LoopCycles::RX);
                bursts[n.min(BURST)] += 1;
                if n == 0 {
                    continue;
                }
                // The snapshot is read after the RX, so a packet that arrived after a
                // publication is judged with that snapshot or a newer one (a worker
                // descheduled between the read and the RX would otherwise judge it with the
                // older one). A publication still in progress when the worker looks leaves
                // it on its snapshot until the next burst. A burst carried over is finished
                // with the snapshot it was begun with.
                let snap = self.reader.current_after(|held| {
                    pending.finish(&mut self.worker, held, now, &mut self.out, None)
                });
                // The staged burst path (pipeline.rs, "Bursts"): every packet must be one
                // contiguous segment; a burst with one that cannot be made so takes the
                // packet-by-packet path below, which drops just that packet.
                if rx_burst
                    .iter_mut()
                    .all(|m| m.is_contiguous() || m.linearize().is_ok())
                {
                    // Stage (1) of this burst, then stage (3) of the one carried over
                    // (whose slot lines had this RX to arrive) with this burst's stage (2)
                    // spread over it; this burst is carried over in turn ([`Pending`]).
                    // Packets leave in the order they came.
                    self.worker
                        .begin_burst(snap, rx_burst.as_slice(), p as u16, &mut staged);
                    pending.finish(
                        &mut self.worker,
                        snap,
                        now,
                        &mut self.out,
                        Some(&mut staged),
                    );
                    std::mem::swap(&mut pending.mbufs, &mut rx_burst);
                    std::mem::swap(&mut pending.staged, &mut staged);
                    pending.port = p as u16;
                    begun = true;
                    #[cfg(feature = "stage-cycles")]
                    cycles.lap(LoopCycles::PIPELINE);
                    continue;
                }
                pending.finish(&mut self.worker, snap, now, &mut self.out, None);
                for mut m in rx_burst.drain() {
                    if !m.is_contiguous() && m.linearize().is_err() {
                        multi_seg += 1;
                        continue; // dropped: the pipeline needs one contiguous segment
                    }
                    let mut extra = self.out.fragment_tx();
                    let verdict = self.worker.process(snap, &mut m, p as u16, now, &mut extra);
                    self.out.dispatch(verdict, m, p as u16);
                }
            }
            // Nothing new came in: the carried burst does not wait for more, and an idle
            // worker still takes a newer snapshot (after the carried burst is finished
            // with its own), so that the writer can reclaim the older ones.
            if !begun {
                pending.finish(
                    &mut self.worker,
                    self.reader.held(),
                    now,
                    &mut self.out,
                    None,
                );
                self.reader.current();
            }
            #[cfg(feature = "stage-cycles")]
            cycles.lap(LoopCycles::PIPELINE);
            self.transmit();
            #[cfg(feature = "stage-cycles")]
            cycles.lap(LoopCycles::TX);
            // Once per poll loop (the pipeline does not publish per burst), after the
            // transmit counts.
            self.publish_counters(multi_seg);
            // The histogram is published once per millisecond, not per burst: 33 stores
            // per poll would cost more than the counting.
            if now != published_at {
                published_at = now;
                for (c, v) in self.counters.burst_sizes.iter().zip(bursts) {
                    c.store(v, Ordering::Relaxed);
                }
            }
            self.worker.publish_member_traffic(now, false);
            self.reader.quiescent();
        }
        // A burst still carried over was counted as received: it is judged and sent.
        let now = Tick::from_millis(self.epoch.elapsed().as_millis() as u64);
        pending.finish(
            &mut self.worker,
            self.reader.held(),
            now,
            &mut self.out,
            None,
        );
        self.transmit();
        self.publish_counters(multi_seg);
        #[cfg(feature = "stage-cycles")]
        {
            let c = self.worker.stage_cycles();
            let n = c.packets.max(1) as f64;
            let [one, two, three] = c.stages.map(|cycles| cycles as f64 / n);
            let id = self.worker.id();
            eprintln!(
                "stage cycles per packet: {:.1} = (1) {one:.1} + (2) {two:.1} + (3) {three:.1} \
                 over {} packets (worker {id})",
                one + two + three,
                c.packets
            );
            let [rx, pipeline, tx, rest] = cycles.parts.map(|cycles| cycles as f64 / n);
            eprintln!(
                "loop cycles per packet: {:.1} = rx {rx:.1} + pipeline and dispatch \
                 {pipeline:.1} + tx {tx:.1} + rest {rest:.1} (worker {id})",
                rx + pipeline + tx + rest
            );
        }
        self.worker.publish_member_traffic(now, true);
        for (c, v) in self.counters.burst_sizes.iter().zip(bursts) {
            c.store(v, Ordering::Relaxed);
        }
    }

    /// The worker's counters and the loop's own, for the control thread.
    fn publish_counters(&self, multi_seg: u64) {
        self.worker.publish_counters();
        let c = &self.counters;
        c.tx_full.store(self.out.tx_full, Ordering::Relaxed);
        c.exception_ring_full
            .store(self.out.ring_full, Ordering::Relaxed);
        c.multi_segment.store(multi_seg, Ordering::Relaxed);
    }

    /// Sends every port's TX stage. What the NIC did not take is dropped and counted
    /// (ARCHITECTURE §3: no unbounded retry on the hot path).
    fn transmit(&mut self) {
        for (s, txq) in self.out.stage.iter_mut().zip(self.tx.iter_mut()) {
            if !s.is_empty() {
                txq.tx_burst(s);
                self.out.tx_full += s.len() as u64;
                s.clear();
            }
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

    let started = Instant::now();
    // The admin socket and the metrics endpoint first: a socket another appliance answers
    // on must stop us before any lcore runs. Their threads ask the control loop.
    let (admin_tx, admin_rx) = mpsc::channel::<ControlRequest>();
    let socket = plan.config.admin.socket.clone();
    let _admin = if socket.as_os_str().is_empty() {
        None
    } else {
        let server = AdminServer::start(&socket, admin_tx.clone())?;
        log_line(
            started,
            &format!("event=admin_socket path={}", socket.display()),
        );
        Some(server)
    };
    let _metrics = match plan.config.admin.metrics {
        Some(addr) => {
            let server = MetricsServer::start(addr, admin_tx.clone())?;
            log_line(
                started,
                &format!("event=metrics_listening addr={}", server.addr()),
            );
            Some(server)
        }
        None => None,
    };
    drop(admin_tx);

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
    let mut traffic_mirrors: Vec<Arc<MemberTrafficMirror>> = Vec::new();
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
        traffic_mirrors.push(worker.member_traffic_mirror());
        let (sender, receiver) = exception_channel(EXCEPTION_RING);
        receivers.push(receiver);
        let (inject_tx, inject_rx) = exception_channel(EXCEPTION_RING);
        injectors.push(inject_tx);
        let job = WorkerLoop {
            worker,
            reader: publisher.register_reader(),
            rx,
            out: Outputs {
                pool: Arc::clone(&pool),
                exceptions: sender,
                stage: (0..tx.len()).map(|_| MbufBurst::new()).collect(),
                tx_full: 0,
                ring_full: 0,
            },
            tx,
            inject: inject_rx,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&runtime_counters[w]),
            epoch: started,
        };
        handles.push(
            eal.launch(worker_lcores[w], move || job.run())
                .context("launching a worker lcore")?,
        );
    }

    let mut traffic = Traffic::new(traffic_mirrors);

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
    // From now, not from `started`: EAL and port start-up (seconds when a large capture is
    // loaded) must not come out as a run of catch-up lines with rate 0.
    let mut last_stats = Instant::now();
    let mut next_stats = last_stats + plan.stats_interval;
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
        out.extend(control.on_tick(now, |slot| traffic.raw(slot).fwd_packets));
        while let Ok(request) = admin_rx.try_recv() {
            busy = true;
            match request {
                ControlRequest::View(reply) => {
                    let view = build_view(&ViewInputs {
                        plan: &plan,
                        control: &control,
                        traffic: &traffic,
                        mirrors: &mirrors,
                        runtime_counters: &runtime_counters,
                        ports: &ports,
                        port_macs: &port_macs,
                        started,
                        now,
                        snapshots_published,
                        snapshots_retained: publisher.retired_count() as u64,
                    });
                    let _ = reply.send(view);
                }
                ControlRequest::Action(action, reply) => {
                    let result = match action {
                        Action::Drain { service, member } => control.drain(now, service, &member),
                        Action::Undrain { service, member } => control.undrain(service, &member),
                        Action::Reload => reload(&mut control, plan.config_path.as_deref(), now),
                    };
                    let _ = reply.send(result);
                }
            }
        }
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
            for slot in control.take_new_slots() {
                traffic.rebase(slot);
            }
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
            next_stats = now + plan.stats_interval;
            let elapsed = now.duration_since(last_stats).as_secs_f64();
            last_stats = now;
            if tty {
                let c = sum(&mirrors);
                let rx = c.get(Stat::RxPackets);
                // Over the time that really passed since the last line.
                let rate = (rx - last_rx) as f64 / elapsed.max(1e-9);
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

/// Per-member traffic: the workers' mirrors, and each counter slot's value when its
/// current member got it (slots are reused, counters never reset).
struct Traffic {
    mirrors: Vec<Arc<MemberTrafficMirror>>,
    baselines: Vec<MemberTraffic>,
}

impl Traffic {
    fn new(mirrors: Vec<Arc<MemberTrafficMirror>>) -> Traffic {
        Traffic {
            mirrors,
            baselines: vec![MemberTraffic::default(); crate::dataplane::snapshot::MEMBER_SLOTS],
        }
    }

    /// The slot's counts summed over workers, since the start.
    fn raw(&self, slot: u16) -> MemberTraffic {
        let mut t = MemberTraffic::default();
        for m in &self.mirrors {
            t.add(&m.read(slot));
        }
        t
    }

    /// A new member took the slot: count from here.
    fn rebase(&mut self, slot: u16) {
        let now = self.raw(slot);
        if let Some(b) = self.baselines.get_mut(usize::from(slot)) {
            *b = now;
        }
    }

    /// The slot's counts since its member got it.
    fn of(&self, slot: u16) -> MemberTraffic {
        let base = self
            .baselines
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default();
        self.raw(slot).since(&base)
    }
}

struct ViewInputs<'a> {
    plan: &'a RunPlan,
    control: &'a ControlPlane,
    traffic: &'a Traffic,
    mirrors: &'a [Arc<crate::dataplane::counters::CounterMirror>],
    runtime_counters: &'a [Arc<RuntimeCounters>],
    ports: &'a [Port],
    port_macs: &'a [MacAddr],
    started: Instant,
    now: Instant,
    snapshots_published: u64,
    snapshots_retained: u64,
}

fn counter_map(c: &Counters) -> BTreeMap<String, u64> {
    c.iter()
        .map(|(name, v)| {
            let k = match name {
                CounterName::Stat(st) => st.name().to_string(),
                CounterName::Drop(reason) => format!("drop_{}", reason.name()),
            };
            (k, v)
        })
        .collect()
}

/// `UnknownSpi(300)` -> `unknown_spi`.
fn snake(debug: &str) -> String {
    let mut out = String::new();
    for (i, ch) in debug.split('(').next().unwrap_or("").chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The admin interface's picture of the appliance.
fn build_view(i: &ViewInputs<'_>) -> ControlView {
    use crate::dataplane::snapshot::MemberStatus;
    let config = i.control.config();
    let now = i.now;
    let mut dataplane = Counters::default();
    let workers: Vec<WorkerView> = i
        .mirrors
        .iter()
        .zip(i.runtime_counters)
        .enumerate()
        .map(|(id, (m, rc))| {
            let c = m.read();
            dataplane.merge(&c);
            WorkerView {
                id,
                counters: counter_map(&c),
                burst_sizes: rc.burst_sizes(),
                tx_full: rc.tx_full.load(Ordering::Relaxed),
                exception_ring_full: rc.exception_ring_full.load(Ordering::Relaxed),
            }
        })
        .collect();
    let members: Vec<MemberView> = i
        .control
        .members(now)
        .into_iter()
        .map(|m| {
            let t = i.traffic.of(m.stats_slot);
            MemberView {
                service: m.key.service,
                id: m.key.id,
                epoch: m.key.epoch,
                care_of: m.care_of,
                origin: match m.origin {
                    crate::control::plane::Origin::Static => "static".into(),
                    crate::control::plane::Origin::Registered => "registered".into(),
                },
                weight: m.weight,
                state: match m.status {
                    MemberStatus::Active => "active".into(),
                    MemberStatus::Draining => "draining".into(),
                    MemberStatus::Down => "down".into(),
                },
                health: match m.health_up {
                    None => "unchecked".into(),
                    Some(true) => "up".into(),
                    Some(false) => "down".into(),
                },
                health_detail: m.health_detail,
                lifetime_left_s: m.lifetime_left.map(|d| d.as_secs()),
                drain_left_s: m.drain_left.map(|d| d.as_secs()),
                packets: t.fwd_packets,
                bytes: t.fwd_bytes,
                flows: t.new_flows,
                rev_packets: t.rev_packets,
                rev_bytes: t.rev_bytes,
            }
        })
        .collect();
    let services = config
        .services
        .iter()
        .map(|s| {
            let mine: Vec<&MemberView> =
                members.iter().filter(|m| m.service == s.address).collect();
            let count = |state: &str| mine.iter().filter(|m| m.state == state).count();
            ServiceView {
                address: s.address,
                affinity: match s.affinity {
                    crate::config::Affinity::Client => "client".into(),
                    crate::config::Affinity::Flow => "flow".into(),
                },
                port: config
                    .service_port_index(s)
                    .and_then(|p| config.ports.get(p))
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                maglev_size: s.maglev_size,
                accept_registrations: config.registration.is_some() && s.accept_registrations,
                members_active: count("active"),
                members_draining: count("draining"),
                members_down: count("down"),
                health: crate::control::plane::health_spec(s).map(|h| h.to_string()),
                packets: mine.iter().map(|m| m.packets).sum(),
                bytes: mine.iter().map(|m| m.bytes).sum(),
                flows: mine.iter().map(|m| m.flows).sum(),
            }
        })
        .collect();
    let bindings = i
        .control
        .registrar()
        .bindings(now)
        .into_iter()
        .map(|b| BindingView {
            service: b.service,
            care_of: b.care_of,
            bid: match b.ident {
                crate::control::registration::BindingIdent::Bid(bid) => Some(bid),
                crate::control::registration::BindingIdent::CareOf(_) => None,
            },
            member_id: b.id,
            epoch: b.epoch,
            sequence: b.sequence,
            lifetime_granted_s: b.granted.as_secs(),
            lifetime_left_s: b.left.as_secs(),
            auth: match b.spi {
                Some(spi) => format!("mn-ha spi {spi}"),
                None => "trusted-prefix".into(),
            },
            weight: b.weight,
            age_s: b.age.as_secs(),
            refreshes: b.refreshes,
        })
        .collect();
    let rc = i.control.registrar().counters();
    let mut registration = BTreeMap::new();
    for (status, n) in &rc.ba_by_status {
        registration.insert(format!("ba_status_{status}"), *n);
    }
    for (reason, n) in &rc.discards {
        registration.insert(format!("discard_{}", snake(&format!("{reason:?}"))), *n);
    }
    for (failure, n) in &rc.auth_failures {
        *registration
            .entry(format!("auth_fail_{}", snake(&format!("{failure:?}"))))
            .or_insert(0) += *n;
    }
    for (k, v) in [
        ("binding_errors", rc.binding_errors),
        ("parameter_problems", rc.parameter_problems),
        ("not_for_us", rc.not_for_us),
        ("bad_load_reports", rc.bad_load_reports),
        ("ba_unsendable", rc.ba_unsendable),
        ("expired", rc.expired),
        ("mh_received", i.control.counters().mh_received),
    ] {
        registration.insert(k.into(), v);
    }
    let hc = i.control.health().counters();
    let health = BTreeMap::from([
        ("probes_sent".to_string(), hc.probes_sent),
        ("replies".into(), hc.replies),
        ("timeouts".into(), hc.timeouts),
        ("refused".into(), hc.refused),
        ("unreachable".into(), hc.unreachable),
        ("late_or_unmatched".into(), hc.late_or_unmatched),
        ("bad_checksum".into(), hc.bad_checksum),
        ("went_down".into(), hc.went_down),
        ("went_up".into(), hc.went_up),
    ]);
    let pc = i.control.counters();
    let control = BTreeMap::from([
        ("replies".to_string(), pc.replies),
        ("unhandled".into(), pc.unhandled),
        ("neighbours_learned".into(), pc.neighbours_learned),
        ("ba_sent".into(), pc.ba_sent),
        ("binding_errors_sent".into(), pc.binding_errors_sent),
        ("parameter_problems_sent".into(), pc.parameter_problems_sent),
        ("icmp_rate_limited".into(), pc.icmp_rate_limited),
        ("probes_sent".into(), pc.probes_sent),
        ("probe_unroutable".into(), pc.probe_unroutable),
        ("reloads_ok".into(), pc.reloads_ok),
        ("reloads_failed".into(), pc.reloads_failed),
        ("drained_removed".into(), pc.drained_removed),
        ("log_suppressed".into(), pc.log_suppressed),
        ("tunnel_errors_relayed".into(), pc.tunnel_errors_relayed),
        ("ro_relayed".into(), pc.ro_relayed),
        ("ro_discarded".into(), pc.ro_discarded),
        ("claim_advertisements".into(), pc.claim_advertisements),
    ]);
    let rc = i.control.ro_counters();
    let route_optimisation = BTreeMap::from([
        ("member_hotis".to_string(), rc.member_hotis),
        ("hots_to_members".into(), rc.hots_to_members),
        ("hots_unmatched".into(), rc.hots_unmatched),
        ("tokens_recorded".into(), rc.tokens_recorded),
        ("triggers_started".into(), rc.triggers_started),
        ("trigger_bus_sent".into(), rc.trigger_bus_sent),
        ("trigger_retries_135".into(), rc.trigger_retries_135),
        ("own_home_tests".into(), rc.own_home_tests),
        ("triggers_done".into(), rc.triggers_done),
        ("triggers_gave_up".into(), rc.triggers_gave_up),
        ("triggers_cancelled".into(), rc.triggers_cancelled),
        ("trigger_bas_bad_auth".into(), rc.trigger_bas_bad_auth),
        ("brr_answered".into(), rc.brr_answered),
        ("unreachable_sent".into(), rc.unreachable_sent),
        ("records_evicted".into(), rc.records_evicted),
    ]);
    let route_optimised = i.control.route_optimised(now);
    let ports = i
        .plan
        .ports
        .iter()
        .zip(i.ports)
        .zip(i.port_macs)
        .enumerate()
        .map(|(p, ((pp, port), mac))| {
            let st = port.stats().unwrap_or_default();
            PortView {
                name: pp.name.clone(),
                device: pp.device.clone(),
                mac: mac.to_string(),
                mtu: pp.mtu,
                next_hop: pp.next_hop,
                next_hop_mac: i.control.next_hop_mac(p as u16).map(|m| m.to_string()),
                ipackets: st.ipackets,
                opackets: st.opackets,
                ibytes: st.ibytes,
                obytes: st.obytes,
                imissed: st.imissed,
                ierrors: st.ierrors,
                oerrors: st.oerrors,
                rx_nombuf: st.rx_nombuf,
            }
        })
        .collect();
    ControlView {
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
        uptime_s: now.saturating_duration_since(i.started).as_secs_f64(),
        config_path: i
            .plan
            .config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        config_generation: pc.reloads_ok,
        snapshot_generation: i.snapshots_published,
        snapshots_retained: i.snapshots_retained,
        ports,
        services,
        members,
        bindings,
        dataplane: counter_map(&dataplane),
        workers,
        registration,
        health,
        control,
        route_optimised,
        route_optimisation,
    }
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
