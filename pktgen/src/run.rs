//! The DPDK glue: EAL, port, the TX and RX loops on their lcores, the live line and the
//! result. Everything that decides is in the sans-I/O modules; this file moves mbufs.
//!
//! Lcores: with two or more worker lcores, TX runs on the first and RX on the second;
//! with one, a single loop does both; with none, that loop runs on a plain thread. The
//! main lcore prints the live line and decides when client traffic starts (once the
//! appliance's MAC is known and every member is registered, or after the warm-up limit)
//! and stops.
//!
//! The RX side never transmits: what it sends (member replies turned around in their own
//! mbuf, control frames) goes to the TX side through an SPSC channel, and the TX side
//! sends it before client traffic. So one TX queue serves both and no queue is shared
//! between lcores.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anycast6_dpdk::{
    exception_channel, rdtsc, Eal, EalArgs, ExceptionReceiver, ExceptionSender, Mbuf, MbufBurst,
    Mempool, Port, PortConfig, RssMode, RxQueue, TxQueue, DEFAULT_DATA_ROOM,
};
use anycast6_wire::PacketBuf;
use anyhow::{bail, Context};

use crate::build::{self, ClientSide, FlowTable, Stamp, Template};
use crate::latency::LatencyTracker;
use crate::member::{Emulator, EmulatorConfig, Rx};
use crate::profile::{MemberMode, Profile, Protocol, Rate};
use crate::report::{
    self, LiveSample, LossReport, MemberReport, NetworkReport, PortReport, Report, RxReport,
    TxReport,
};

const BURST: usize = 32;
/// Client packets per TX call: larger than the RX burst, to spread the per-call costs.
const TX_BURST: usize = 32;
/// Capacity of the RX -> TX channel.
const CHANNEL: usize = 4096;
/// How often the RX side runs the emulator's timers.
const TICK: Duration = Duration::from_millis(1);

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub profile: Profile,
    /// DPDK device: a virtual device (`net_null0`, `net_vhost0,iface=...`) or a PCI address.
    pub device: String,
    /// EAL core list; the first is the main lcore.
    pub lcores: String,
    /// Run on hugepages (`--in-memory`) instead of `--no-huge`.
    pub huge: bool,
    pub eal_args: Vec<String>,
    pub mbufs: u32,
    /// Result file.
    pub out: Option<PathBuf>,
    /// Print the live line even when stdout is not a terminal.
    pub live: bool,
    /// After the last client packet, how long to keep receiving.
    pub drain: Duration,
    /// Longest wait for the appliance's MAC and the members' registrations.
    pub warmup: Duration,
    /// Wait after everything is ready, before client traffic.
    pub settle: Duration,
}

/// State shared by the lcores and the main thread.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    go: AtomicBool,
    tx_done: AtomicBool,
    kill_signal: Arc<AtomicBool>,
    appliance_mac: Mutex<Option<[u8; 6]>>,
    members_registered: AtomicU64,
    members_alive: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_samples: AtomicU64,
    tx_control: AtomicU64,
    tx_start_tsc: AtomicU64,
    tx_end_tsc: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_client: AtomicU64,
    rx_member: AtomicU64,
    dropped: AtomicU64,
    live: Mutex<LiveRx>,
}

/// What the RX side publishes once a second.
#[derive(Debug, Default, Clone)]
struct LiveRx {
    latency: crate::latency::Percentiles,
    members: Vec<(usize, u64, bool, bool)>,
}

/// Converts TSC cycles to nanoseconds: a multiplication by a 32.32 fixed-point factor
/// (no division on the fast path).
#[derive(Debug, Clone, Copy)]
struct Clock {
    hz: u64,
    ns_per_cycle_q32: u128,
}

impl Clock {
    fn new(hz: u64) -> Clock {
        let hz = hz.max(1);
        Clock {
            hz,
            ns_per_cycle_q32: (1_000_000_000u128 << 32) / u128::from(hz),
        }
    }

    #[inline]
    fn ns(&self, tsc: u64) -> u64 {
        ((u128::from(tsc) * self.ns_per_cycle_q32) >> 32) as u64
    }
}

/// The client traffic generator and the sender of everything the RX side hands over.
struct TxSide {
    queue: TxQueue,
    pool: Arc<Mempool>,
    from_rx: ExceptionReceiver<Mbuf>,
    shared: Arc<Shared>,
    clock: Clock,
    profile: Profile,
    our_mac: [u8; 6],
    gen: Option<Generator>,
    control: MbufBurst<BURST>,
    out: MbufBurst<TX_BURST>,
    control_sent: u64,
}

struct Generator {
    templates: Vec<Template>,
    recipe: Vec<u16>,
    flows: Vec<build::FlowEntry>,
    services: Vec<[u8; 16]>,
    ri: usize,
    fi: usize,
    pps: f64,
    start_tsc: u64,
    packets: u64,
    bytes: u64,
    samples: u64,
    until_stamp: u32,
    count: Option<u64>,
    end_tsc: Option<u64>,
    done: bool,
    /// The frame length when every template has the same one.
    fixed_len: Option<u16>,
    /// With a single template: the flows prepared for it (checksums precomputed), and
    /// `flows` is empty.
    fixed_flows: Vec<build::FixedFlow>,
}

impl Generator {
    fn new(profile: &Profile, side: &ClientSide, clock: Clock) -> anyhow::Result<Generator> {
        let mut templates: Vec<Template> = Vec::new();
        let mut keys: Vec<(Protocol, usize)> = Vec::new();
        let mut recipe = Vec::new();
        for (p, size) in build::recipe(profile) {
            let idx = match keys.iter().position(|k| *k == (p, size)) {
                Some(i) => i,
                None => {
                    templates
                        .push(build::client_template(side, p, size).context("client template")?);
                    keys.push((p, size));
                    keys.len() - 1
                }
            };
            recipe.push(idx as u16);
        }
        let mean_len = recipe
            .iter()
            .map(|&i| templates[usize::from(i)].bytes.len())
            .sum::<usize>() as f64
            / recipe.len() as f64;
        let pps = match profile.rate {
            Rate::Max => f64::INFINITY,
            Rate::Pps(p) => p,
            Rate::Bps(b) => b / (mean_len * 8.0),
        };
        let fixed_len = match templates.split_first() {
            Some((t, rest)) if rest.iter().all(|o| o.bytes.len() == t.bytes.len()) => {
                u16::try_from(t.bytes.len()).ok()
            }
            _ => None,
        };
        let mut flows = FlowTable::new(profile, side).entries;
        // With one template every flow is kept prepared for it (checksum included) instead:
        // both loops use those, and a large flow table is not held twice.
        let fixed_flows = match &templates[..] {
            [t] => std::mem::take(&mut flows)
                .iter()
                .map(|f| build::FixedFlow::for_template(t, f))
                .collect(),
            _ => Vec::new(),
        };
        let start_tsc = rdtsc();
        Ok(Generator {
            fixed_len,
            fixed_flows,
            flows,
            services: side.services.iter().map(|a| a.octets()).collect(),
            templates,
            recipe,
            ri: 0,
            fi: 0,
            pps,
            start_tsc,
            packets: 0,
            bytes: 0,
            samples: 0,
            until_stamp: profile.latency_sample,
            count: profile.count,
            end_tsc: profile
                .duration
                .map(|d| start_tsc + (d.as_secs_f64() * clock.hz as f64) as u64),
            done: false,
        })
    }

    /// Fills `out` with up to `want` new client packets.
    #[inline]
    fn fill(
        &mut self,
        pool: &Mempool,
        out: &mut MbufBurst<TX_BURST>,
        want: usize,
        now_ns: u64,
        sample_every: u32,
    ) {
        let first = out.len();
        if want == 0 {
            return;
        }
        // One call takes the mbufs and, with a single frame size, sets their length too, so
        // the loop below makes no call into DPDK per packet.
        let allocated = match self.fixed_len {
            Some(len) => pool.alloc_bulk_with_len(out, want, len),
            None => pool.alloc_bulk(out, want),
        };
        if allocated.is_err() {
            return;
        }
        // One template and no stamp to write (the 64-byte benchmark case): a loop with
        // nothing but the copy and the flow fields.
        if let ([t], Some(_)) = (&self.templates[..], self.fixed_len) {
            if sample_every == 0 || !t.stamp_ok {
                let (flows, services) = (&self.fixed_flows[..], &self.services[..]);
                let template = build::FixedTemplate::new(t);
                let mut fi = self.fi;
                for m in &mut out.as_mut_slice()[first..] {
                    let f = &flows[fi];
                    fi += 1;
                    if fi == flows.len() {
                        fi = 0;
                    }
                    template.write(m.data_mut(), f, services);
                }
                let sent = (out.len() - first) as u64;
                self.fi = fi;
                self.bytes += sent * t.bytes.len() as u64;
                self.packets += sent;
                return;
            }
        }
        // Locals, so that the loop keeps them in registers.
        let (mut ri, mut fi) = (self.ri, self.fi);
        let (recipe, flows, templates) = (&self.recipe[..], &self.flows[..], &self.templates[..]);
        // With one template only the prepared flows are kept (see `Generator::new`).
        let fixed = &self.fixed_flows[..];
        let n_flows = flows.len().max(fixed.len());
        let mut bytes = 0u64;
        for m in &mut out.as_mut_slice()[first..] {
            let t = &templates[usize::from(recipe[ri])];
            ri += 1;
            if ri == recipe.len() {
                ri = 0;
            }
            let this_flow = fi;
            fi += 1;
            if fi == n_flows {
                fi = 0;
            }
            if self.fixed_len.is_none() && m.set_data_len(t.bytes.len()).is_err() {
                continue;
            }
            let data = m.data_mut();
            build::copy_frame(data, &t.bytes);
            match fixed.get(this_flow) {
                Some(f) => build::apply_fixed_flow(data, t, f, &self.services),
                None => build::apply_flow(data, t, &flows[this_flow], &self.services),
            }
            if sample_every != 0 {
                self.until_stamp = self.until_stamp.saturating_sub(1);
                if self.until_stamp == 0 && t.stamp_ok {
                    build::apply_stamp(
                        data,
                        t,
                        &Stamp {
                            seq: self.samples,
                            tx_ns: now_ns,
                        },
                    );
                    self.samples += 1;
                    self.until_stamp = sample_every;
                }
            }
            bytes += t.bytes.len() as u64;
        }
        self.ri = ri;
        self.fi = fi;
        self.bytes += bytes;
        self.packets += (out.len() - first) as u64;
    }
}

impl TxSide {
    /// One round; true when something was done.
    #[inline]
    fn step(&mut self) -> bool {
        let mut busy = false;
        // Control frames and member replies first: they are few and time-sensitive.
        while !self.control.is_full() {
            let Some(m) = self.from_rx.recv() else { break };
            let _ = self.control.push(m);
        }
        if !self.control.is_empty() {
            self.control_sent += self.queue.tx_burst(&mut self.control) as u64;
            self.shared
                .tx_control
                .store(self.control_sent, Ordering::Relaxed);
            busy = true;
        }
        if self.gen.is_none() && self.shared.go.load(Ordering::Acquire) {
            let mac = self.shared.appliance_mac.lock().map(|m| *m).unwrap_or(None);
            if let Some(dst_mac) = mac {
                let side = client_side(&self.profile, self.our_mac, dst_mac);
                match Generator::new(&self.profile, &side, self.clock) {
                    Ok(g) => {
                        self.shared
                            .tx_start_tsc
                            .store(g.start_tsc, Ordering::Relaxed);
                        self.gen = Some(g);
                    }
                    Err(e) => {
                        eprintln!("anycast6-pktgen: {e:#}");
                        self.shared.stop.store(true, Ordering::Release);
                    }
                }
            }
        }
        let Some(g) = self.gen.as_mut() else {
            return busy;
        };
        if g.done {
            return busy;
        }
        let now = rdtsc();
        let mut want = TX_BURST - self.out.len();
        if g.pps.is_finite() {
            let due =
                ((now.saturating_sub(g.start_tsc)) as f64 / self.clock.hz as f64 * g.pps) as u64;
            want = want.min(due.saturating_sub(g.packets) as usize);
        }
        if let Some(c) = g.count {
            want = want.min(c.saturating_sub(g.packets) as usize);
        }
        let finished =
            g.count.is_some_and(|c| g.packets >= c) || g.end_tsc.is_some_and(|e| now >= e);
        if finished {
            if self.out.is_empty() {
                g.done = true;
                self.shared.tx_end_tsc.store(now, Ordering::Relaxed);
                self.shared.tx_done.store(true, Ordering::Release);
            }
            want = 0;
        }
        g.fill(
            &self.pool,
            &mut self.out,
            want,
            self.clock.ns(now),
            self.profile.latency_sample,
        );
        if !self.out.is_empty() {
            let before = self.out.len();
            let sent = self.queue.tx_burst(&mut self.out);
            busy |= sent > 0;
            // Packets the queue did not take stay in `out` and go first next round.
            let unsent = (before - sent) as u64;
            let s = &self.shared;
            s.tx_packets.store(g.packets - unsent, Ordering::Relaxed);
            s.tx_bytes.store(g.bytes, Ordering::Relaxed);
            s.tx_samples.store(g.samples, Ordering::Relaxed);
        }
        busy
    }

    fn finish(mut self) -> TxResult {
        // Whatever is still queued is freed with the bursts; count it as not sent.
        let unsent = self.out.len() as u64;
        self.out.clear();
        self.control.clear();
        while self.from_rx.recv().is_some() {}
        match self.gen {
            Some(g) => TxResult {
                packets: g.packets - unsent,
                bytes: g.bytes,
                samples: g.samples,
                control: self.control_sent,
            },
            None => TxResult {
                control: self.control_sent,
                ..TxResult::default()
            },
        }
    }
}

#[derive(Debug, Default, Clone)]
struct TxResult {
    packets: u64,
    bytes: u64,
    samples: u64,
    control: u64,
}

fn client_side(p: &Profile, our_mac: [u8; 6], dst_mac: [u8; 6]) -> ClientSide {
    ClientSide {
        src_mac: our_mac,
        dst_mac,
        client_prefix: p.client_prefix,
        services: p.services.clone(),
        first_source_port: p.first_source_port,
        dst_port: p.dst_port,
    }
}

/// The receiver: the emulator and the latency trackers.
struct RxSide {
    queue: RxQueue,
    pool: Arc<Mempool>,
    to_tx: ExceptionSender<Mbuf>,
    shared: Arc<Shared>,
    clock: Clock,
    emu: Emulator,
    client_latency: LatencyTracker,
    member_latency: LatencyTracker,
    burst: MbufBurst<BURST>,
    next_tick: Instant,
    next_publish: Instant,
    last_member_rx: Vec<u64>,
    packets: u64,
    bytes: u64,
    client: u64,
    member: u64,
    dropped: u64,
    mac_published: bool,
    /// Polls since the clock was last read while idle.
    idle_polls: u32,
}

impl RxSide {
    fn send(&mut self, m: Mbuf) {
        if self.to_tx.send(m).is_err() {
            self.dropped += 1;
        }
    }

    #[inline]
    fn step(&mut self) -> bool {
        let n = self.queue.rx_burst(&mut self.burst);
        let mut now = None;
        if n > 0 {
            let t = Instant::now();
            now = Some(t);
            let now_ns = self.clock.ns(rdtsc());
            let mut burst = std::mem::take(&mut self.burst);
            for mut m in burst.drain() {
                self.packets += 1;
                self.bytes += m.len() as u64;
                match self.emu.on_frame(t, m.data_mut()) {
                    Rx::Client { stamp } => {
                        self.client += 1;
                        if let Some(s) = stamp {
                            self.client_latency.record(s.seq, s.tx_ns, now_ns);
                        }
                    }
                    Rx::Member { stamp, reply, .. } => {
                        self.member += 1;
                        if let Some(s) = stamp {
                            self.member_latency.record(s.seq, s.tx_ns, now_ns);
                        }
                        if reply {
                            self.send(m);
                        }
                    }
                    Rx::Control(frames) => {
                        for f in frames {
                            match self.pool.alloc_from_slice(&f) {
                                Ok(out) => self.send(out),
                                Err(_) => self.dropped += 1,
                            }
                        }
                    }
                    Rx::Ignored => {}
                }
            }
            self.burst = burst;
            let s = &self.shared;
            s.rx_packets.store(self.packets, Ordering::Relaxed);
            s.rx_bytes.store(self.bytes, Ordering::Relaxed);
            s.rx_client.store(self.client, Ordering::Relaxed);
            s.rx_member.store(self.member, Ordering::Relaxed);
            s.dropped.store(self.dropped, Ordering::Relaxed);
        }
        let now = match now {
            Some(t) => t,
            None => {
                // Idle: reading the clock on every empty poll would cost more than the
                // poll; every 64th is still far more often than the 1 ms tick.
                self.idle_polls += 1;
                if self.idle_polls < 64 {
                    return false;
                }
                self.idle_polls = 0;
                Instant::now()
            }
        };
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.tick(now);
        }
        n > 0
    }

    fn tick(&mut self, now: Instant) {
        if self.shared.kill_signal.swap(false, Ordering::AcqRel) {
            match self.emu.kill_next(now) {
                Some(i) => eprintln!("anycast6-pktgen: SIGUSR1: member {i} killed"),
                None => eprintln!("anycast6-pktgen: SIGUSR1: no live member left"),
            }
        }
        for f in self.emu.on_tick(now, SystemTime::now()) {
            match self.pool.alloc_from_slice(&f) {
                Ok(m) => self.send(m),
                Err(_) => self.dropped += 1,
            }
        }
        if !self.mac_published {
            if let Some(mac) = self.emu.appliance_mac() {
                if let Ok(mut g) = self.shared.appliance_mac.lock() {
                    *g = Some(mac);
                }
                self.mac_published = true;
            }
        }
        let members = self.emu.members();
        self.shared
            .members_registered
            .store(self.emu.registered_count(now) as u64, Ordering::Relaxed);
        self.shared.members_alive.store(
            members.iter().filter(|m| m.alive).count() as u64,
            Ordering::Relaxed,
        );
        if now >= self.next_publish {
            self.next_publish = now + Duration::from_secs(1);
            let mut list = Vec::with_capacity(members.len());
            for (m, last) in members.iter().zip(self.last_member_rx.iter_mut()) {
                let total = m.counters.rx_packets + m.counters.rx_after_death;
                list.push((m.index, total - *last, m.alive, m.is_registered(now)));
                *last = total;
            }
            let latency = if self.client > 0 {
                self.client_latency.take_interval()
            } else {
                self.member_latency.take_interval()
            };
            if let Ok(mut live) = self.shared.live.lock() {
                *live = LiveRx {
                    latency,
                    members: list,
                };
            }
        }
    }
}

/// After an empty RX poll, TX rounds before the next poll in the single loop.
const RX_BACKOFF: u32 = 3;

/// Runs both sides in one loop until told to stop. While nothing arrives, RX is polled
/// every [`RX_BACKOFF`] + 1 rounds only (an empty poll costs about as much as building a
/// few packets); that delays a first arrival by at most a few TX bursts (microseconds).
/// As long as packets arrive it is polled every round.
fn single_loop(mut tx: TxSide, mut rx: RxSide) -> (TxResult, RxSide) {
    let mut skip = 0u32;
    while !tx.shared.stop.load(Ordering::Acquire) {
        let a = if skip == 0 {
            let got = rx.step();
            if !got {
                skip = RX_BACKOFF;
            }
            got
        } else {
            skip -= 1;
            false
        };
        let b = tx.step();
        if !b {
            // TX idle: poll RX every round.
            skip = 0;
            if !a {
                std::hint::spin_loop();
            }
        }
    }
    (tx.finish(), rx)
}

fn tx_loop(mut tx: TxSide) -> TxResult {
    while !tx.shared.stop.load(Ordering::Acquire) {
        if !tx.step() {
            std::hint::spin_loop();
        }
    }
    tx.finish()
}

fn rx_loop(mut rx: RxSide) -> RxSide {
    while !rx.shared.stop.load(Ordering::Acquire) {
        if !rx.step() {
            std::hint::spin_loop();
        }
    }
    rx
}

fn eal_args(o: &RunOptions) -> Vec<String> {
    let mut args = if o.huge {
        EalArgs::virtual_devices_in_memory()
    } else {
        EalArgs::virtual_devices()
    };
    args = args.lcores(&o.lcores).log_level("warning");
    let name = o.device.split(',').next().unwrap_or("");
    let is_pci = name.contains(':')
        && name.split(':').all(|p| {
            p.split('.')
                .all(|x| x.chars().all(|c| c.is_ascii_hexdigit()))
        });
    if is_pci {
        args = args.args(["-a", o.device.as_str()]);
        // A PCI device needs the PCI bus: drop the --no-pci of the virtual-device defaults.
        let mut v = args.into_vec();
        v.retain(|a| a != "--no-pci");
        args = EalArgs::new().args(v);
    } else {
        args = args.vdev(&o.device);
    }
    args.args(o.eal_args.iter().cloned()).into_vec()
}

/// Runs a profile and returns the report (also written to `o.out`).
pub fn run(o: &RunOptions) -> anyhow::Result<Report> {
    let profile = &o.profile;
    let eal = Eal::init(eal_args(o)).context("EAL init")?;
    let clock = Clock::new(eal.tsc_hz());
    let pool = Arc::new(
        Mempool::new(&eal, "pktgen_pool", o.mbufs, 256, DEFAULT_DATA_ROOM).context("mempool")?,
    );
    let name = o.device.split(',').next().unwrap_or(&o.device).to_owned();
    let mut port = Port::open(&eal, &o.device).with_context(|| format!("opening {}", o.device))?;
    let mut queues = port
        .configure(
            &pool,
            &PortConfig {
                rss: RssMode::Off,
                ..PortConfig::default()
            },
        )
        .with_context(|| format!("configuring {name}"))?;
    port.start().with_context(|| format!("starting {name}"))?;
    let _ = port.wait_for_link(Duration::from_secs(5));
    let our_mac = match profile.mac {
        Some(m) => m,
        None => port.mac_address().context("port MAC")?,
    };

    let shared = Arc::new(Shared::default());
    signal_hook::flag::register(
        signal_hook::consts::SIGUSR1,
        Arc::clone(&shared.kill_signal),
    )?;
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&interrupted))?;

    let emu = Emulator::new(EmulatorConfig {
        our_mac,
        appliance_mac: profile.appliance_mac,
        tunnel_address: profile.tunnel_address,
        next_hop: profile.next_hop,
        services: profile.services.clone(),
        client_prefix: profile.client_prefix,
        clients: profile.clients,
        members: profile.members.clone(),
    });
    let member_count = profile.members.as_ref().map_or(0, |m| m.count);
    let (to_tx, from_rx) = exception_channel::<Mbuf>(CHANNEL);
    let rxq = queues.rx.remove(0);
    let txq = queues.tx.remove(0);
    let now = Instant::now();
    let rx = RxSide {
        queue: rxq,
        pool: Arc::clone(&pool),
        to_tx,
        shared: Arc::clone(&shared),
        clock,
        emu,
        client_latency: LatencyTracker::new(),
        member_latency: LatencyTracker::new(),
        burst: MbufBurst::new(),
        next_tick: now,
        next_publish: now + Duration::from_secs(1),
        last_member_rx: vec![0; member_count],
        packets: 0,
        bytes: 0,
        client: 0,
        member: 0,
        dropped: 0,
        mac_published: false,
        idle_polls: 0,
    };
    let tx = TxSide {
        queue: txq,
        pool: Arc::clone(&pool),
        from_rx,
        shared: Arc::clone(&shared),
        clock,
        profile: profile.clone(),
        our_mac,
        gen: None,
        control: MbufBurst::new(),
        out: MbufBurst::new(),
        control_sent: 0,
    };

    let workers = eal.worker_lcores();
    let cores;
    enum Handles<'a> {
        Split(
            anycast6_dpdk::LcoreJoinHandle<'a, TxResult>,
            anycast6_dpdk::LcoreJoinHandle<'a, RxSide>,
        ),
        Single(anycast6_dpdk::LcoreJoinHandle<'a, (TxResult, RxSide)>),
        Thread(std::thread::JoinHandle<(TxResult, RxSide)>),
    }
    // Without a worker lcore the loop runs on a plain thread: DPDK lets unregistered
    // threads poll queues and use mempools (without a per-lcore cache).
    let handles = match workers.as_slice() {
        [t, r, ..] => {
            cores = "split";
            let ht = eal.launch(*t, move || tx_loop(tx))?;
            let hr = eal.launch(*r, move || rx_loop(rx))?;
            Handles::Split(ht, hr)
        }
        [w] => {
            cores = "single";
            Handles::Single(eal.launch(*w, move || single_loop(tx, rx))?)
        }
        [] => {
            cores = "single";
            Handles::Thread(std::thread::spawn(move || single_loop(tx, rx)))
        }
    };

    // The main lcore: start, live line, stop.
    let live = o.live || std::io::stdout().is_terminal();
    let started = Instant::now();
    let clients = profile.clients > 0;
    let mut go_at: Option<Instant> = None;
    let mut ready_at: Option<Instant> = None;
    let mut done_at: Option<Instant> = None;
    let mut next_line = started + Duration::from_secs(1);
    let mut last = (0u64, 0u64, 0u64, 0u64, 0u64, started);
    let mut failure = None;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if interrupted.load(Ordering::Acquire) || shared.stop.load(Ordering::Acquire) {
            break;
        }
        if go_at.is_none() {
            let mac = shared
                .appliance_mac
                .lock()
                .map(|m| m.is_some())
                .unwrap_or(false);
            let registered = shared.members_registered.load(Ordering::Relaxed) as usize;
            let alive = shared.members_alive.load(Ordering::Relaxed) as usize;
            if mac && registered >= alive {
                ready_at.get_or_insert(now);
            }
            let ready = ready_at.is_some_and(|r| now >= r + o.settle);
            let waited = now - started;
            if ready || waited >= o.warmup {
                if !mac && clients {
                    failure = Some(anyhow::anyhow!(
                        "the appliance's MAC is still unknown after {:.1} s: give --appliance-mac, or --tunnel-address / --next-hop so it can be learnt",
                        waited.as_secs_f64()
                    ));
                    break;
                }
                if ready_at.is_none() {
                    eprintln!(
                        "anycast6-pktgen: starting with {registered} of {alive} members registered after {:.1} s",
                        waited.as_secs_f64()
                    );
                }
                go_at = Some(now);
                if clients {
                    shared.go.store(true, Ordering::Release);
                    // Scripts time events (a SIGUSR1 kill) from this line.
                    eprintln!(
                        "anycast6-pktgen: client traffic starts {:.3} s after the start",
                        waited.as_secs_f64()
                    );
                }
            }
        }
        if let Some(g) = go_at {
            if done_at.is_none() {
                let finished = if clients {
                    shared.tx_done.load(Ordering::Acquire)
                } else {
                    profile.duration.is_some_and(|d| now >= g + d)
                };
                if finished {
                    done_at = Some(now);
                }
            }
        }
        if done_at.is_some_and(|d| now >= d + o.drain) {
            break;
        }
        if now >= next_line {
            next_line += Duration::from_secs(1);
            let cur = (
                shared.tx_packets.load(Ordering::Relaxed),
                shared.tx_bytes.load(Ordering::Relaxed),
                shared.rx_packets.load(Ordering::Relaxed),
                shared.rx_client.load(Ordering::Relaxed),
                shared.rx_member.load(Ordering::Relaxed),
                now,
            );
            let dt = (cur.5 - last.5).as_secs_f64().max(1e-9);
            let sent = cur.0 - last.0;
            let back = if profile
                .members
                .as_ref()
                .is_some_and(|m| m.mode == MemberMode::Sink)
            {
                cur.4 - last.4
            } else {
                cur.3 - last.3
            };
            let rx_live = shared.live.lock().map(|l| l.clone()).unwrap_or_default();
            let sample = LiveSample {
                elapsed_s: (now - started).as_secs_f64(),
                tx_pps: sent as f64 / dt,
                tx_gbps: (cur.1 - last.1) as f64 * 8.0 / dt / 1e9,
                rx_pps: (cur.2 - last.2) as f64 / dt,
                loss_ratio: (sent > 0).then(|| 1.0 - (back as f64 / sent as f64).min(1.0)),
                latency: rx_live.latency,
                members: rx_live.members,
            };
            if live {
                println!("{}", report::live_line(&sample));
            }
            last = cur;
        }
    }
    shared.stop.store(true, Ordering::Release);
    let (txr, rx) = match handles {
        Handles::Split(ht, hr) => (ht.join()?, hr.join()?),
        Handles::Single(h) => h.join()?,
        Handles::Thread(h) => h
            .join()
            .map_err(|_| anyhow::anyhow!("worker thread panicked"))?,
    };
    let stats = port.stats().unwrap_or_default();
    drop(queues);
    let _ = port.stop();
    if let Some(e) = failure {
        return Err(e);
    }

    let start_tsc = shared.tx_start_tsc.load(Ordering::Relaxed);
    let end_tsc = shared.tx_end_tsc.load(Ordering::Relaxed);
    let end_tsc = if end_tsc > start_tsc {
        end_tsc
    } else {
        rdtsc()
    };
    let duration_s = if start_tsc == 0 {
        0.0
    } else {
        (end_tsc - start_tsc) as f64 / clock.hz as f64
    };
    let per_s = |x: u64| {
        if duration_s > 0.0 {
            x as f64 / duration_s
        } else {
            0.0
        }
    };
    let sink = profile
        .members
        .as_ref()
        .is_some_and(|m| m.mode == MemberMode::Sink);
    let (received, measured_at) = if sink {
        (rx.member, "members")
    } else {
        (rx.client, "client")
    };
    let lost = txr.packets.saturating_sub(received);
    let t0 = started;
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        device: o.device.clone(),
        profile: profile.clone(),
        cores: cores.into(),
        tx: TxReport {
            packets: txr.packets,
            bytes: txr.bytes,
            latency_samples: txr.samples,
            duration_s,
            pps: per_s(txr.packets),
            gbps: per_s(txr.bytes) * 8.0 / 1e9,
            control_packets: txr.control,
            dropped: rx.dropped,
        },
        rx: RxReport {
            packets: rx.packets,
            bytes: rx.bytes,
            client_packets: rx.client,
            member_packets: rx.member,
            pps: per_s(rx.packets),
            gbps: per_s(rx.bytes) * 8.0 / 1e9,
        },
        loss: LossReport {
            sent: txr.packets,
            received,
            lost,
            ratio: if txr.packets == 0 {
                0.0
            } else {
                lost as f64 / txr.packets as f64
            },
            measured_at: measured_at.into(),
        },
        latency: rx.client_latency.report(txr.samples),
        member_latency: rx.member_latency.report(txr.samples),
        members: rx
            .emu
            .members()
            .iter()
            .map(|m| MemberReport {
                index: m.index,
                care_of: m.care_of.to_string(),
                service: m.service.to_string(),
                alive: m.alive,
                killed_at_s: m
                    .killed_at
                    .map(|k| k.saturating_duration_since(t0).as_secs_f64()),
                failover_s: m
                    .killed_at
                    .zip(m.last_rx_after_death)
                    .map(|(k, last)| last.saturating_duration_since(k).as_secs_f64()),
                registered: m.alive && m.is_registered(Instant::now()),
                counters: m.counters.clone(),
            })
            .collect(),
        flows: profile
            .members
            .as_ref()
            .is_some_and(|m| m.track_flows)
            .then_some(rx.emu.flows),
        network: NetworkReport {
            our_mac: report::mac_string(our_mac),
            appliance_mac: rx.emu.appliance_mac().map(report::mac_string),
            counters: rx.emu.counters.clone(),
        },
        port: PortReport {
            ipackets: stats.ipackets,
            opackets: stats.opackets,
            ibytes: stats.ibytes,
            obytes: stats.obytes,
            imissed: stats.imissed,
            ierrors: stats.ierrors,
            oerrors: stats.oerrors,
            rx_nombuf: stats.rx_nombuf,
        },
    };
    drop(rx);
    drop(port);
    if let Some(path) = &o.out {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// Checks a device name looks usable before the EAL is started.
pub fn check_device(device: &str) -> anyhow::Result<()> {
    if device.trim().is_empty() {
        bail!("--device: empty");
    }
    Ok(())
}
