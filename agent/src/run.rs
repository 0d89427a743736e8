//! The driver: clock, sockets, signals and the state file around the sans-I/O
//! [`Registration`] and, with route optimisation, [`RouteOptimisation`].

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::config::AgentConfig;
use crate::correspondent::{RoConfig, RouteOptimisation};
use crate::delivery::Delivery;
use crate::load;
use crate::registration::{Action, Now, Registration, RegistrationConfig};
use crate::sockets::{interface_of, PacketReceiver, ProtocolSink, RawSender, ReceiveFilter};
use crate::status::{self, AgentState};

/// Longest wait for the correspondents' de-registration BAs before the home
/// registrations are withdrawn (the HoTI of a stale home token still needs them).
const CORRESPONDENT_DRAIN: Duration = Duration::from_secs(3);

/// Longest sleep between two looks at the signal flags.
const POLL: Duration = Duration::from_millis(200);
/// The state file is rewritten at least this often, so `status` can tell a live agent.
const STATE_EVERY: Duration = Duration::from_secs(1);

fn now() -> Now {
    Now {
        mono: Instant::now(),
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

fn log(line: &str) {
    eprintln!("anycast6-agent: {line}");
}

/// Runs the agent until SIGTERM or SIGINT, then drains (lifetime-0 BUs, bounded by
/// `drain_timeout`), keeps delivering for `drain_linger`, undoes the delivery set-up and
/// returns.
pub fn run(config: AgentConfig) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handler")?;
    }
    let interface = match &config.interface {
        Some(i) => i.clone(),
        None => interface_of(config.care_of).with_context(|| {
            format!(
                "no interface holds the care-of address {}; add it or set `interface`",
                config.care_of
            )
        })?,
    };
    let sender = RawSender::open().context("raw IPv6 socket (needs CAP_NET_RAW)")?;
    let filter = if config.route_optimisation {
        ReceiveFilter::RouteOptimisation
    } else {
        ReceiveFilter::Mobility
    };
    let receiver = PacketReceiver::open(config.care_of, filter)
        .context("AF_PACKET socket (needs CAP_NET_RAW)")?;
    let mut delivery =
        Delivery::setup(&config, &interface, &mut |l| log(&l)).map_err(|e| anyhow::anyhow!(e))?;
    let mut ro_io = if config.route_optimisation {
        match RoIo::open(&config) {
            Ok(io) => {
                log(&format!(
                    "event=route_optimisation tun={}",
                    config.ro_tun_name
                ));
                Some(io)
            }
            Err(e) => {
                delivery.teardown(&mut |l| log(&l));
                return Err(e.context("route optimisation"));
            }
        }
    } else {
        None
    };

    let result = registration_loop(
        &config,
        &sender,
        &receiver,
        &delivery,
        ro_io.as_mut(),
        &stop,
    );
    if result.is_ok() && stop.load(Ordering::Relaxed) && !config.drain_linger.is_zero() {
        // The appliance keeps sending the connections that were established before the
        // drain (it only stops new ones): keep decapsulating them for a while.
        log(&format!(
            "event=drain_linger seconds={}",
            config.drain_linger.as_secs()
        ));
        std::thread::sleep(config.drain_linger);
    }
    if let Some(io) = ro_io {
        io.stop();
    }
    delivery.teardown(&mut |l| log(&l));
    log("event=exit");
    result
}

/// What route optimisation needs besides the main sockets: the TUN device that hands
/// route-optimised data to the local stack, and a raw Mobility Header socket that keeps
/// the kernel from answering CoTs and decapsulated HoTs with "unknown next header".
struct RoIo {
    tun: tun::Device,
    stop: Arc<AtomicBool>,
    sink: Option<JoinHandle<()>>,
}

impl RoIo {
    fn open(config: &AgentConfig) -> anyhow::Result<RoIo> {
        let mut tun_config = tun::Configuration::default();
        tun_config.tun_name(&config.ro_tun_name).up();
        let tun = tun::create(&tun_config)
            .map_err(|e| anyhow::anyhow!("TUN {}: {e}", config.ro_tun_name))?;
        let sink = ProtocolSink::for_protocol(i32::from(anycast6_wire::checksum::proto::MOBILITY))
            .context("raw socket for the Mobility Header (needs CAP_NET_RAW)")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sink = std::thread::Builder::new()
            .name("mh-sink".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    sink.discard_one();
                }
            })
            .context("starting the Mobility Header sink")?;
        Ok(RoIo {
            tun,
            stop,
            sink: Some(sink),
        })
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.sink.take() {
            let _ = t.join();
        }
    }
}

/// Cookies for the home and care-of tests: 64 bits from the kernel's random source
/// (RFC 6275 §5.2.3 wants them unguessable). Should /dev/urandom fail, a SipHash of a
/// counter under the process's random hash keys stands in.
fn cookie_source() -> Box<dyn FnMut() -> [u8; 8] + Send> {
    use std::hash::{BuildHasher, Hasher};
    let mut urandom = std::fs::File::open("/dev/urandom").ok();
    let keys = std::collections::hash_map::RandomState::new();
    let mut counter: u64 = 0;
    Box::new(move || {
        let mut cookie = [0u8; 8];
        if let Some(f) = urandom.as_mut() {
            if f.read_exact(&mut cookie).is_ok() {
                return cookie;
            }
        }
        counter += 1;
        let mut h = keys.build_hasher();
        h.write_u64(counter);
        h.finish().to_be_bytes()
    })
}

/// Where the graceful leave stands.
#[derive(Debug, Clone, Copy)]
enum DrainStage {
    Serving,
    /// Lifetime-0 BUs to the route-optimised clients are out.
    Correspondents {
        until: Instant,
    },
    /// Lifetime-0 BUs to the appliance are out.
    Home {
        deadline: Instant,
    },
}

fn registration_loop(
    config: &AgentConfig,
    sender: &RawSender,
    receiver: &PacketReceiver,
    delivery: &Delivery,
    mut ro_io: Option<&mut RoIo>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let start = now();
    let mut reg_config =
        RegistrationConfig::new(config.appliance, config.care_of, config.services.clone());
    reg_config.lifetime_units = config.lifetime_units;
    reg_config.auth = config.auth.clone();
    reg_config.bid = config.bid;
    reg_config.refresh_percent = config.refresh_percent;
    reg_config.load_update_step = config.load.update_step;
    reg_config.hop_limit = config.hop_limit;
    // Any start value works (a 135 resyncs); the clock makes a restarted agent likely to
    // continue above its previous numbers.
    let initial_sequence = (start.unix.as_millis() / 100) as u16;
    let mut reg = Registration::new(reg_config, start, initial_sequence);
    let mut ro = config.route_optimisation.then(|| {
        let mut ro_config =
            RoConfig::new(config.care_of, config.appliance, config.services.clone());
        ro_config.hop_limit = config.hop_limit;
        ro_config.max_correspondents = config.max_correspondents;
        ro_config.refresh_percent = config.refresh_percent;
        RouteOptimisation::new(ro_config, cookie_source())
    });
    let mut actions = reg.set_load(start, load::current(&config.load));
    let mut next_load_read = start.mono + config.load.interval;
    let mut stage = DrainStage::Serving;
    let mut last_state_write: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let t = now();
        if stop.load(Ordering::Relaxed) && matches!(stage, DrainStage::Serving) {
            // RFC 6275 §11.7.2: the correspondents' bindings go first, while the home
            // registration still carries the HoTI a stale home token needs.
            stage = match ro.as_mut() {
                Some(ro) => {
                    actions.extend(ro.drain(t.mono));
                    DrainStage::Correspondents {
                        until: t.mono + CORRESPONDENT_DRAIN.min(config.drain_timeout),
                    }
                }
                None => DrainStage::Correspondents { until: t.mono },
            };
        }
        if let DrainStage::Correspondents { until } = stage {
            if t.mono >= until || ro.as_ref().is_none_or(|r| r.is_drained()) {
                stage = DrainStage::Home {
                    deadline: t.mono + config.drain_timeout,
                };
                actions.extend(reg.drain(t));
            }
        }
        if t.mono >= next_load_read && !reg.is_draining() {
            actions.extend(reg.set_load(t, load::current(&config.load)));
            next_load_read = t.mono + config.load.interval;
        }
        actions.extend(reg.on_timer(t));
        if let Some(ro) = ro.as_mut() {
            for &service in &config.services {
                ro.set_home_expiry(service, reg.home_expiry(service));
            }
            actions.extend(ro.on_timer(t.mono));
        }
        // Delivered datagrams are not worth a state-file write each.
        let changed = actions.iter().any(|a| !matches!(a, Action::Deliver(_)));
        perform(sender, ro_io.as_deref_mut(), std::mem::take(&mut actions));
        if changed || last_state_write.is_none_or(|w| t.mono >= w + STATE_EVERY) {
            write_state(config, delivery, &reg, ro.as_ref(), start, t);
            last_state_write = Some(t.mono);
        }
        let drain_deadline = match stage {
            DrainStage::Serving => None,
            DrainStage::Correspondents { until } => Some(until),
            DrainStage::Home { deadline } => {
                if reg.is_drained() {
                    log("event=drain_complete");
                    return Ok(());
                }
                if t.mono >= deadline {
                    log(
                        "event=drain_timeout note=\"no BA for every lifetime-0 BU; the \
                         appliance removes the binding when its lifetime ends\"",
                    );
                    return Ok(());
                }
                Some(deadline)
            }
        };
        let mut wait = POLL;
        for deadline in [
            reg.next_timer(),
            ro.as_ref().and_then(|r| r.next_timer()),
            Some(next_load_read),
            drain_deadline,
        ]
        .into_iter()
        .flatten()
        {
            wait = wait.min(deadline.saturating_duration_since(t.mono));
        }
        match receiver.recv(&mut buf, wait) {
            Ok(Some(n)) => {
                let t = now();
                actions.extend(reg.on_packet(t, &buf[..n]));
                if let Some(ro) = ro.as_mut() {
                    actions.extend(ro.on_packet(t.mono, &buf[..n]));
                }
            }
            Ok(None) => {}
            Err(e) => {
                log(&format!("event=receive_error error=\"{e}\""));
                std::thread::sleep(POLL);
            }
        }
    }
}

fn perform(sender: &RawSender, mut ro_io: Option<&mut RoIo>, actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::Log(line) => log(&line),
            Action::Send(packet) => {
                if let Err(e) = sender.send(&packet) {
                    log(&format!("event=send_error error=\"{e}\""));
                }
            }
            Action::Deliver(datagram) => {
                if let Some(io) = ro_io.as_deref_mut() {
                    if let Err(e) = io.tun.write_all(&datagram) {
                        log(&format!("event=deliver_error error=\"{e}\""));
                    }
                }
            }
        }
    }
}

fn write_state(
    config: &AgentConfig,
    delivery: &Delivery,
    reg: &Registration,
    ro: Option<&RouteOptimisation>,
    start: Now,
    t: Now,
) {
    let state = AgentState {
        pid: std::process::id(),
        started_unix_s: start.unix.as_secs(),
        updated_unix_s: t.unix.as_secs(),
        appliance: config.appliance,
        care_of: config.care_of,
        delivery: delivery.mode,
        draining: reg.is_draining(),
        bindings: reg.status(t),
        route_optimisation: ro.is_some(),
        correspondents: ro.map(|r| r.status(t.mono)).unwrap_or_default(),
    };
    if let Err(e) = status::write(&config.state_file, &state) {
        log(&format!(
            "event=state_file_error path={} error=\"{e}\"",
            config.state_file.display()
        ));
    }
}
