//! The driver: clock, sockets, signals and the state file around the sans-I/O
//! [`Registration`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::config::AgentConfig;
use crate::delivery::Delivery;
use crate::load;
use crate::registration::{Action, Now, Registration, RegistrationConfig};
use crate::sockets::{interface_of, PacketReceiver, RawSender, ReceiveFilter};
use crate::status::{self, AgentState};

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
    let receiver = PacketReceiver::open(config.care_of, ReceiveFilter::Mobility)
        .context("AF_PACKET socket (needs CAP_NET_RAW)")?;
    let mut delivery =
        Delivery::setup(&config, &interface, &mut |l| log(&l)).map_err(|e| anyhow::anyhow!(e))?;

    let result = registration_loop(&config, &sender, &receiver, &delivery, &stop);
    if result.is_ok() && stop.load(Ordering::Relaxed) && !config.drain_linger.is_zero() {
        // The appliance keeps sending the connections that were established before the
        // drain (it only stops new ones): keep decapsulating them for a while.
        log(&format!(
            "event=drain_linger seconds={}",
            config.drain_linger.as_secs()
        ));
        std::thread::sleep(config.drain_linger);
    }
    delivery.teardown(&mut |l| log(&l));
    log("event=exit");
    result
}

fn registration_loop(
    config: &AgentConfig,
    sender: &RawSender,
    receiver: &PacketReceiver,
    delivery: &Delivery,
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
    let mut actions = reg.set_load(start, load::current(&config.load));
    let mut next_load_read = start.mono + config.load.interval;
    let mut drain_deadline: Option<Instant> = None;
    let mut last_state_write: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let t = now();
        if stop.load(Ordering::Relaxed) && drain_deadline.is_none() {
            drain_deadline = Some(t.mono + config.drain_timeout);
            actions.extend(reg.drain(t));
        }
        if t.mono >= next_load_read && !reg.is_draining() {
            actions.extend(reg.set_load(t, load::current(&config.load)));
            next_load_read = t.mono + config.load.interval;
        }
        actions.extend(reg.on_timer(t));
        let changed = !actions.is_empty();
        perform(sender, std::mem::take(&mut actions));
        if changed || last_state_write.is_none_or(|w| t.mono >= w + STATE_EVERY) {
            write_state(config, delivery, &reg, start, t);
            last_state_write = Some(t.mono);
        }
        if let Some(deadline) = drain_deadline {
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
        }
        let mut wait = POLL;
        for deadline in [reg.next_timer(), Some(next_load_read), drain_deadline]
            .into_iter()
            .flatten()
        {
            wait = wait.min(deadline.saturating_duration_since(t.mono));
        }
        match receiver.recv(&mut buf, wait) {
            Ok(Some(n)) => actions.extend(reg.on_packet(now(), &buf[..n])),
            Ok(None) => {}
            Err(e) => {
                log(&format!("event=receive_error error=\"{e}\""));
                std::thread::sleep(POLL);
            }
        }
    }
}

fn perform(sender: &RawSender, actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::Log(line) => log(&line),
            Action::Send(packet) => {
                if let Err(e) = sender.send(&packet) {
                    log(&format!("event=send_error error=\"{e}\""));
                }
            }
        }
    }
}

fn write_state(config: &AgentConfig, delivery: &Delivery, reg: &Registration, start: Now, t: Now) {
    let state = AgentState {
        pid: std::process::id(),
        started_unix_s: start.unix.as_secs(),
        updated_unix_s: t.unix.as_secs(),
        appliance: config.appliance,
        care_of: config.care_of,
        delivery: delivery.mode,
        draining: reg.is_draining(),
        bindings: reg.status(t),
    };
    if let Err(e) = status::write(&config.state_file, &state) {
        log(&format!(
            "event=state_file_error path={} error=\"{e}\"",
            config.state_file.display()
        ));
    }
}
