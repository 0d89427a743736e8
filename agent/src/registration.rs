//! The member's home registrations (RFC 6275 §11.7.1, §11.7.3, §11.8), sans I/O.
//!
//! [`Registration`] keeps one binding per service address with the appliance (the home
//! agent). It reads no clock and touches no socket: the driver passes the time ([`Now`])
//! and the packets received, and sends the packets and writes the log lines that come back
//! as [`Action`]s.
//!
//! * [`Registration::on_timer`]: (re)transmissions, refreshes and retries that are due;
//!   call it at [`Registration::next_timer`].
//! * [`Registration::on_packet`]: an IPv6 packet received on the care-of address (a BA or
//!   a Binding Refresh Request; anything else is ignored).
//! * [`Registration::set_load`]: a new load report; a large enough change triggers an
//!   early refresh (rate-limited) so the appliance's weights follow the load.
//! * [`Registration::drain`]: lifetime-0 Binding Updates for every binding (graceful
//!   leave); [`Registration::is_drained`] tells when every one is acknowledged.
//!
//! # Timers
//!
//! A BU that gets no BA is retransmitted after `InitialBindackTimeoutFirstReg` (1.5 s) for
//! the first registration, `INITIAL_BINDACK_TIMEOUT` (1 s) otherwise, the timeout doubling
//! on each retransmission up to `MAX_BINDACK_TIMEOUT` (32 s), and then every 32 s for as
//! long as no answer comes (§11.8 allows going on at the slower rate indefinitely). Each
//! transmission is a new BU with the next sequence number and a fresh RFC 4285 timestamp,
//! because the appliance refuses a replayed timestamp; a BA for any BU of the exchange
//! ends it.
//!
//! An accepted binding is refreshed when the Binding Refresh Advice says (§11.7.3), or at
//! `refresh_percent` (80 %) of the granted lifetime without one, both counted from when
//! the acknowledged BU was sent. A Binding Refresh Request from the home agent starts a
//! refresh at once (§11.7.4).
//!
//! # Binding Acknowledgement statuses
//!
//! * below 128: registered (or, for a lifetime-0 BU, de-registered);
//! * 135: the BA carries the last sequence number the appliance accepted (§9.5.1); the
//!   next BU continues from it, sent at once (at most [`MAX_RESYNCS`] times in a row);
//! * 133 to a de-registration: the appliance holds no binding, so the drain is done;
//! * any other rejection: logged in words, retried with the back-off (a configuration
//!   fix on the appliance, such as adding the key, is picked up without a restart).
//!
//! When an MN-HA key is configured, only authenticated BAs may accept a BU or resync the
//! sequence number; a rejection is believed without authentication, because the appliance
//! cannot authenticate its answer to a BU whose authentication failed (it only delays the
//! next retry).

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6_wire::auth;
use anycast6_wire::mobility::BaStatus;
use serde::{Deserialize, Serialize};

use crate::messages::{
    ba_status_words, build_binding_update, parse_from_home_agent, BaAuth, BuParams, Incoming,
    LoadReport, MnHaKey, ReceivedBa,
};

/// RFC 6275 §12: INITIAL_BINDACK_TIMEOUT.
pub const INITIAL_BINDACK_TIMEOUT: Duration = Duration::from_secs(1);
/// RFC 6275 §13: InitialBindackTimeoutFirstReg.
pub const INITIAL_BINDACK_TIMEOUT_FIRST_REG: Duration = Duration::from_millis(1500);
/// RFC 6275 §12: MAX_BINDACK_TIMEOUT.
pub const MAX_BINDACK_TIMEOUT: Duration = Duration::from_secs(32);
/// Consecutive status-135 resyncs before falling back to the ordinary back-off.
pub const MAX_RESYNCS: u32 = 3;
/// RFC 6275 §6.1.7: one lifetime unit is 4 seconds.
pub const LIFETIME_UNIT: Duration = Duration::from_secs(4);
/// RFC 6275 §12: MAX_UPDATE_RATE is 3 BUs per second to one node (§11.8), so BUs to one
/// node go out at least this far apart; a BRR arriving sooner than this after the last BU
/// is not answered with another one.
pub const MIN_BU_SPACING: Duration = Duration::from_millis(334);

/// The time, as the caller's clocks give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: timers and lifetimes.
    pub mono: Instant,
    /// Wall-clock time since the Unix epoch: RFC 4285 replay-protection timestamps.
    pub unix: Duration,
}

/// What the registrations need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The appliance's home-agent (tunnel) address.
    pub home_agent: Ipv6Addr,
    /// This member's care-of address (the source of its BUs).
    pub care_of: Ipv6Addr,
    /// Service addresses to register, one binding each.
    pub services: Vec<Ipv6Addr>,
    /// Requested lifetime in 4-second units (1..=65535).
    pub lifetime_units: u16,
    /// RFC 4285 MN-HA key; `None` relies on the appliance trusting the care-of prefix.
    pub auth: Option<MnHaKey>,
    /// RFC 5648 Binding Identifier, when several members share one care-of address.
    pub bid: Option<u16>,
    /// Refresh point without a Binding Refresh Advice, in percent of the granted lifetime.
    pub refresh_percent: u8,
    /// A load report differing from the last one sent by at least this much (percentage
    /// points, or weight units) triggers an early refresh.
    pub load_update_step: u16,
    /// Shortest time between two load-triggered refreshes.
    pub min_load_update_interval: Duration,
    pub hop_limit: u8,
}

impl RegistrationConfig {
    /// Defaults: 600 s lifetime, refresh at 80 %, load updates of 10 points at most every
    /// 10 s, hop limit 64.
    pub fn new(home_agent: Ipv6Addr, care_of: Ipv6Addr, services: Vec<Ipv6Addr>) -> Self {
        RegistrationConfig {
            home_agent,
            care_of,
            services,
            lifetime_units: 150,
            auth: None,
            bid: None,
            refresh_percent: 80,
            load_update_step: 10,
            min_load_update_interval: Duration::from_secs(10),
            hop_limit: 64,
        }
    }
}

/// Where one binding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing sent yet.
    Unregistered,
    /// A registration BU is outstanding and no binding is known to exist.
    Registering,
    /// Accepted; waiting for the refresh point.
    Registered,
    /// A refresh BU is outstanding while the binding is still valid.
    Refreshing,
    /// The last BU was rejected; a retry is scheduled.
    Rejected,
    /// A lifetime-0 BU is outstanding.
    Deregistering,
    /// De-registered (or never registered and drained).
    Deregistered,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this complete IPv6 packet (raw socket, IPv6 header included).
    Send(Vec<u8>),
    /// A structured log line (`key=value` pairs).
    Log(String),
    /// Hand this IPv6 datagram to the local stack (route-optimised data with its Type 2
    /// routing header removed; written to the route-optimisation TUN device).
    Deliver(Vec<u8>),
}

/// The last BA taken for a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBa {
    pub status: u8,
    pub meaning: String,
    pub sequence: u16,
    /// Granted lifetime in seconds.
    pub lifetime_s: u32,
    /// When it arrived, seconds since the Unix epoch.
    pub at_unix_s: u64,
    pub authenticated: bool,
}

/// One binding as `anycast6-agent status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingStatus {
    pub service: Ipv6Addr,
    pub phase: Phase,
    /// Sequence number of the last BU sent.
    pub sequence: u16,
    /// Granted lifetime of the current binding, seconds.
    pub granted_s: Option<u64>,
    /// When the binding expires unless refreshed, seconds since the Unix epoch.
    pub expires_unix_s: Option<u64>,
    /// Seconds left of the binding at the time of the snapshot.
    pub lifetime_left_s: Option<u64>,
    /// Seconds until the next transmission (retransmission, refresh or retry).
    pub next_bu_in_s: Option<f64>,
    pub last_ba: Option<LastBa>,
    pub load: Option<LoadReport>,
    pub bus_sent: u64,
    pub bas_taken: u64,
}

#[derive(Debug, Clone, Copy)]
struct SentBu {
    sequence: u16,
    timestamp: Option<u64>,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Binding {
    service: Ipv6Addr,
    phase: Phase,
    /// Sequence number of the last BU sent.
    sequence: u16,
    /// BUs of the outstanding exchange (empty when none is outstanding).
    outstanding: Vec<SentBu>,
    /// Lifetime the outstanding exchange asks for (0: de-registration).
    outstanding_lifetime: u16,
    /// Current retransmission / retry timeout.
    timeout: Duration,
    next_at: Option<Instant>,
    expires_at: Option<Instant>,
    granted: Option<Duration>,
    last_ba: Option<LastBa>,
    /// The load report carried by the last accepted BU.
    reported_load: Option<LoadReport>,
    last_bu_at: Option<Instant>,
    last_load_update: Option<Instant>,
    resyncs: u32,
    bus_sent: u64,
    bas_taken: u64,
}

/// The member's registrations (see the module documentation).
#[derive(Debug, Clone)]
pub struct Registration {
    config: RegistrationConfig,
    bindings: Vec<Binding>,
    load: Option<LoadReport>,
    /// Last RFC 4285 timestamp sent: each BU's must be newer than the previous one, since
    /// the appliance keeps the last one per SPI.
    last_timestamp: Option<u64>,
    draining: bool,
}

impl Registration {
    /// Starts with every binding due for its first BU at `now`. `initial_sequence` is the
    /// sequence number of the first BU (anything works: a status-135 BA resyncs).
    pub fn new(config: RegistrationConfig, now: Now, initial_sequence: u16) -> Registration {
        let bindings = config
            .services
            .iter()
            .map(|&service| Binding {
                service,
                phase: Phase::Unregistered,
                sequence: initial_sequence.wrapping_sub(1),
                outstanding: Vec::new(),
                outstanding_lifetime: 0,
                timeout: INITIAL_BINDACK_TIMEOUT_FIRST_REG,
                next_at: Some(now.mono),
                expires_at: None,
                granted: None,
                last_ba: None,
                reported_load: None,
                last_bu_at: None,
                last_load_update: None,
                resyncs: 0,
                bus_sent: 0,
                bas_taken: 0,
            })
            .collect();
        Registration {
            config,
            bindings,
            load: None,
            last_timestamp: None,
            draining: false,
        }
    }

    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// When [`on_timer`](Self::on_timer) next has something to do.
    pub fn next_timer(&self) -> Option<Instant> {
        self.bindings
            .iter()
            .flat_map(|b| [b.next_at, b.expires_at, self.load_update_due(b)])
            .flatten()
            .min()
    }

    /// Sends what is due at `now`: first BUs, retransmissions, refreshes, retries; notes
    /// bindings that expired.
    pub fn on_timer(&mut self, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        for i in 0..self.bindings.len() {
            if let Some(expires) = self.bindings[i].expires_at {
                if expires <= now.mono {
                    let b = &mut self.bindings[i];
                    b.expires_at = None;
                    b.granted = None;
                    actions.push(Action::Log(format!(
                        "event=binding_expired service={} seq={}",
                        b.service, b.sequence
                    )));
                    if b.phase == Phase::Refreshing {
                        b.phase = Phase::Registering;
                    } else if b.phase == Phase::Registered {
                        // Only reachable if the refresh point lay past the expiry.
                        b.phase = Phase::Registering;
                        b.next_at = Some(now.mono);
                    }
                }
            }
            let due = self.bindings[i].next_at.is_some_and(|t| t <= now.mono);
            let load_due = self
                .load_update_due(&self.bindings[i])
                .is_some_and(|t| t <= now.mono);
            if due {
                self.timer_due(i, now, &mut actions);
            } else if load_due {
                self.start_exchange(i, now, "load_changed", &mut actions);
            }
        }
        actions
    }

    fn timer_due(&mut self, i: usize, now: Now, actions: &mut Vec<Action>) {
        let b = &self.bindings[i];
        match b.phase {
            Phase::Unregistered | Phase::Rejected => {
                self.start_exchange(i, now, "register", actions);
            }
            Phase::Registered => self.start_exchange(i, now, "refresh", actions),
            Phase::Registering | Phase::Refreshing | Phase::Deregistering => {
                // §11.8: no BA within the timeout: retransmit, doubling the timeout.
                let b = &mut self.bindings[i];
                b.timeout = (b.timeout * 2).min(MAX_BINDACK_TIMEOUT);
                let lifetime = b.outstanding_lifetime;
                actions.push(Action::Log(format!(
                    "event=bu_retransmit service={} next_timeout_ms={}",
                    b.service,
                    b.timeout.as_millis()
                )));
                self.send_bu(i, now, lifetime, actions);
            }
            Phase::Deregistered => self.bindings[i].next_at = None,
        }
    }

    /// Begins a new exchange (registration, refresh or de-registration) with a fresh
    /// timeout.
    fn start_exchange(&mut self, i: usize, now: Now, why: &str, actions: &mut Vec<Action>) {
        let lifetime = if self.draining {
            0
        } else {
            self.config.lifetime_units
        };
        let b = &mut self.bindings[i];
        // The timeout of a retry after a rejection keeps growing (bounded), so a member the
        // appliance refuses does not hammer it.
        b.timeout = if lifetime == 0 {
            INITIAL_BINDACK_TIMEOUT
        } else if b.phase == Phase::Rejected {
            (b.timeout * 2).min(MAX_BINDACK_TIMEOUT)
        } else if b.phase == Phase::Unregistered {
            INITIAL_BINDACK_TIMEOUT_FIRST_REG
        } else {
            INITIAL_BINDACK_TIMEOUT
        };
        b.phase = if lifetime == 0 {
            Phase::Deregistering
        } else if b.expires_at.is_some() {
            Phase::Refreshing
        } else {
            Phase::Registering
        };
        b.outstanding.clear();
        b.outstanding_lifetime = lifetime;
        if why == "load_changed" {
            b.last_load_update = Some(now.mono);
        }
        actions.push(Action::Log(format!(
            "event=bu_exchange service={} reason={why} lifetime_s={}",
            b.service,
            u32::from(lifetime) * 4
        )));
        self.send_bu(i, now, lifetime, actions);
    }

    fn next_timestamp(&mut self, now: Now) -> u64 {
        let mut ts = auth::ntp_from_unix(now.unix);
        if let Some(last) = self.last_timestamp {
            if (ts.wrapping_sub(last) as i64) <= 0 {
                ts = last.wrapping_add(1);
            }
        }
        self.last_timestamp = Some(ts);
        ts
    }

    fn send_bu(&mut self, i: usize, now: Now, lifetime: u16, actions: &mut Vec<Action>) {
        let timestamp = self.config.auth.is_some().then(|| self.next_timestamp(now));
        let load = if lifetime == 0 { None } else { self.load };
        let b = &mut self.bindings[i];
        b.sequence = b.sequence.wrapping_add(1);
        let params = BuParams {
            care_of: self.config.care_of,
            home_agent: self.config.home_agent,
            service: b.service,
            sequence: b.sequence,
            lifetime,
            bid: self.config.bid,
            load,
            auth: self.config.auth.as_ref().zip(timestamp),
            hop_limit: self.config.hop_limit,
        };
        b.outstanding.push(SentBu {
            sequence: b.sequence,
            timestamp,
            at: now.mono,
        });
        // Only the recent BUs of a long exchange can still be answered.
        if b.outstanding.len() > 16 {
            b.outstanding.remove(0);
        }
        b.next_at = Some(now.mono + b.timeout);
        b.last_bu_at = Some(now.mono);
        b.bus_sent += 1;
        match build_binding_update(&params) {
            Ok(packet) => {
                actions.push(Action::Log(format!(
                    "event=bu_sent service={} seq={} lifetime_s={} load={}",
                    b.service,
                    b.sequence,
                    u32::from(lifetime) * 4,
                    load_words(load)
                )));
                actions.push(Action::Send(packet));
            }
            Err(e) => actions.push(Action::Log(format!(
                "event=bu_build_failed service={} error=\"{e}\"",
                b.service
            ))),
        }
    }

    /// Handles an IPv6 packet received on the care-of address.
    pub fn on_packet(&mut self, now: Now, packet: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let incoming = match parse_from_home_agent(
            packet,
            self.config.care_of,
            self.config.home_agent,
            self.config.auth.as_ref(),
        ) {
            Ok(incoming) => incoming,
            Err(_) => return actions,
        };
        match incoming {
            Incoming::BindingAck(ba) => self.on_ba(now, &ba, &mut actions),
            Incoming::RefreshRequest { service } => self.on_brr(now, service, &mut actions),
        }
        actions
    }

    fn on_brr(&mut self, now: Now, service: Ipv6Addr, actions: &mut Vec<Action>) {
        let Some(i) = self.bindings.iter().position(|b| b.service == service) else {
            return;
        };
        let b = &self.bindings[i];
        let recent = b
            .last_bu_at
            .is_some_and(|t| now.mono.saturating_duration_since(t) < MIN_BU_SPACING);
        if b.phase != Phase::Registered || self.draining || recent {
            actions.push(Action::Log(format!(
                "event=brr_ignored service={service} phase={:?}",
                b.phase
            )));
            return;
        }
        // RFC 6275 §11.7.4: a BRR from the home agent is answered with a home
        // registration BU.
        self.start_exchange(i, now, "binding_refresh_request", actions);
    }

    fn on_ba(&mut self, now: Now, ba: &ReceivedBa, actions: &mut Vec<Action>) {
        let Some(i) = self.bindings.iter().position(|b| b.service == ba.service) else {
            return;
        };
        let status = u8::from(ba.ack.status);
        let meaning = ba_status_words(ba.ack.status);
        let authenticated = matches!(ba.auth, BaAuth::Verified { .. });
        let b = &self.bindings[i];
        let log_ignored = |why: &str| {
            Action::Log(format!(
                "event=ba_ignored service={} status={status} seq={} why={why}",
                ba.service, ba.ack.sequence
            ))
        };
        if b.outstanding.is_empty() {
            actions.push(log_ignored("no_bu_outstanding"));
            return;
        }
        if ba.auth == BaAuth::Failed {
            actions.push(log_ignored("bad_authenticator"));
            return;
        }
        let needs_auth = self.config.auth.is_some()
            && (ba.ack.status.is_accepted()
                || ba.ack.status == BaStatus::SequenceNumberOutOfWindow);
        if needs_auth && !authenticated {
            actions.push(log_ignored("not_authenticated"));
            return;
        }
        // Which BU it answers: by sequence number, or for a 135 (which carries the
        // appliance's number) by the echoed timestamp, or, unauthenticated, any.
        let matched = if ba.ack.status == BaStatus::SequenceNumberOutOfWindow {
            match ba.auth {
                BaAuth::Verified {
                    timestamp: Some(ts),
                } => b.outstanding.iter().find(|s| s.timestamp == Some(ts)),
                _ => b.outstanding.last(),
            }
        } else {
            b.outstanding.iter().find(|s| s.sequence == ba.ack.sequence)
        }
        .copied();
        let Some(sent) = matched else {
            actions.push(log_ignored("no_matching_bu"));
            return;
        };
        let b = &mut self.bindings[i];
        b.bas_taken += 1;
        b.last_ba = Some(LastBa {
            status,
            meaning: meaning.to_string(),
            sequence: ba.ack.sequence,
            lifetime_s: ba.ack.lifetime_secs(),
            at_unix_s: now.unix.as_secs(),
            authenticated,
        });
        actions.push(Action::Log(format!(
            "event=ba_received service={} status={status} meaning=\"{meaning}\" seq={} \
             lifetime_s={} refresh_s={} authenticated={authenticated}",
            ba.service,
            ba.ack.sequence,
            ba.ack.lifetime_secs(),
            ba.refresh.map_or(0, |r| u32::from(r) * 4),
        )));
        let deregistering = b.outstanding_lifetime == 0;
        if ba.ack.status.is_accepted() {
            b.outstanding.clear();
            b.resyncs = 0;
            b.timeout = INITIAL_BINDACK_TIMEOUT;
            if deregistering {
                self.finish_deregistration(i, actions, "deregistered");
                return;
            }
            self.accepted(i, now, ba, sent, actions);
            return;
        }
        if ba.ack.status == BaStatus::SequenceNumberOutOfWindow && b.resyncs < MAX_RESYNCS {
            // §9.5.1 / §11.7.1: the BA carries the last accepted sequence number; continue
            // above it at once.
            b.resyncs += 1;
            b.sequence = ba.ack.sequence;
            let lifetime = b.outstanding_lifetime;
            actions.push(Action::Log(format!(
                "event=sequence_resync service={} from_seq={}",
                b.service, ba.ack.sequence
            )));
            self.send_bu(i, now, lifetime, actions);
            return;
        }
        b.outstanding.clear();
        b.resyncs = 0;
        if deregistering {
            // 133: nothing to remove; anything else: the appliance will not remove it, and
            // the lifetime runs out on its own.
            let how = if ba.ack.status == BaStatus::NotHomeAgentForThisMobileNode {
                "no_binding"
            } else {
                "refused"
            };
            self.finish_deregistration(i, actions, how);
            return;
        }
        b.phase = Phase::Rejected;
        b.next_at = Some(now.mono + b.timeout);
        actions.push(Action::Log(format!(
            "event=registration_rejected service={} status={status} meaning=\"{meaning}\" \
             retry_in_ms={}",
            b.service,
            b.timeout.as_millis()
        )));
    }

    fn accepted(
        &mut self,
        i: usize,
        now: Now,
        ba: &ReceivedBa,
        sent: SentBu,
        actions: &mut Vec<Action>,
    ) {
        let refresh_percent = u32::from(self.config.refresh_percent.clamp(1, 99));
        let load = self.load;
        let b = &mut self.bindings[i];
        let granted = LIFETIME_UNIT * u32::from(ba.ack.lifetime);
        if granted.is_zero() {
            b.phase = Phase::Rejected;
            b.next_at = Some(now.mono + b.timeout);
            actions.push(Action::Log(format!(
                "event=registration_rejected service={} status=0 meaning=\"accepted with a \
                 zero lifetime\"",
                b.service
            )));
            return;
        }
        // §11.7.3: the lifetime runs from when the BU was sent.
        let expires = sent.at + granted;
        let refresh_after = match ba.refresh {
            Some(r) if r > 0 && r < ba.ack.lifetime => LIFETIME_UNIT * u32::from(r),
            _ => granted * refresh_percent / 100,
        };
        let refresh_at = (sent.at + refresh_after).max(now.mono);
        let fresh = b.expires_at.is_none();
        b.phase = Phase::Registered;
        b.expires_at = Some(expires);
        b.granted = Some(granted);
        b.next_at = Some(refresh_at);
        b.reported_load = load;
        actions.push(Action::Log(format!(
            "event={} service={} lifetime_s={} refresh_in_ms={}",
            if fresh { "registered" } else { "refreshed" },
            b.service,
            granted.as_secs(),
            refresh_at.saturating_duration_since(now.mono).as_millis()
        )));
    }

    fn finish_deregistration(&mut self, i: usize, actions: &mut Vec<Action>, how: &str) {
        let b = &mut self.bindings[i];
        b.phase = Phase::Deregistered;
        b.outstanding.clear();
        b.next_at = None;
        b.expires_at = None;
        b.granted = None;
        actions.push(Action::Log(format!(
            "event=drained service={} result={how}",
            b.service
        )));
    }

    /// Sets the load report carried from now on. A change of at least
    /// `load_update_step` from what the appliance last accepted refreshes the binding
    /// early, at most once per `min_load_update_interval`.
    pub fn set_load(&mut self, now: Now, load: Option<LoadReport>) -> Vec<Action> {
        self.load = load;
        let mut actions = Vec::new();
        for i in 0..self.bindings.len() {
            if self
                .load_update_due(&self.bindings[i])
                .is_some_and(|t| t <= now.mono)
            {
                self.start_exchange(i, now, "load_changed", &mut actions);
            }
        }
        actions
    }

    /// When a load-triggered refresh of `b` is due (`None`: not needed).
    fn load_update_due(&self, b: &Binding) -> Option<Instant> {
        if b.phase != Phase::Registered || self.draining {
            return None;
        }
        let step = self.config.load_update_step.max(1);
        let differs = match (b.reported_load, self.load) {
            (Some(LoadReport::LoadPercent(a)), Some(LoadReport::LoadPercent(c))) => {
                u16::from(a.abs_diff(c)) >= step
            }
            (Some(LoadReport::Weight(a)), Some(LoadReport::Weight(c))) => a.abs_diff(c) >= step,
            (a, c) => a != c,
        };
        if !differs {
            return None;
        }
        let base = b.last_load_update.or(b.last_bu_at)?;
        Some(base + self.config.min_load_update_interval)
    }

    /// Starts the graceful leave: a lifetime-0 BU for every binding that may exist on the
    /// appliance. Bindings for which no BU was ever sent are done at once.
    pub fn drain(&mut self, now: Now) -> Vec<Action> {
        self.draining = true;
        let mut actions = vec![Action::Log("event=drain_start".to_string())];
        for i in 0..self.bindings.len() {
            let b = &self.bindings[i];
            match b.phase {
                Phase::Unregistered => self.finish_deregistration(i, &mut actions, "never_sent"),
                Phase::Deregistering | Phase::Deregistered => {}
                _ => self.start_exchange(i, now, "drain", &mut actions),
            }
        }
        actions
    }

    /// True once every binding is de-registered (after [`drain`](Self::drain)).
    pub fn is_drained(&self) -> bool {
        self.draining && self.bindings.iter().all(|b| b.phase == Phase::Deregistered)
    }

    /// When the home registration for `service` ends, while it is in force and not being
    /// withdrawn (`None` otherwise).
    pub fn home_expiry(&self, service: Ipv6Addr) -> Option<Instant> {
        if self.draining {
            return None;
        }
        self.bindings
            .iter()
            .find(|b| b.service == service)
            .filter(|b| matches!(b.phase, Phase::Registered | Phase::Refreshing))
            .and_then(|b| b.expires_at)
    }

    /// True while draining.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// The bindings as `status` shows them.
    pub fn status(&self, now: Now) -> Vec<BindingStatus> {
        self.bindings
            .iter()
            .map(|b| {
                let left = b.expires_at.map(|e| e.saturating_duration_since(now.mono));
                BindingStatus {
                    service: b.service,
                    phase: b.phase,
                    sequence: b.sequence,
                    granted_s: b.granted.map(|g| g.as_secs()),
                    expires_unix_s: left.map(|l| (now.unix + l).as_secs()),
                    lifetime_left_s: left.map(|l| l.as_secs()),
                    next_bu_in_s: b
                        .next_at
                        .map(|t| t.saturating_duration_since(now.mono).as_secs_f64()),
                    last_ba: b.last_ba.clone(),
                    load: b.reported_load,
                    bus_sent: b.bus_sent,
                    bas_taken: b.bas_taken,
                }
            })
            .collect()
    }
}

fn load_words(load: Option<LoadReport>) -> String {
    match load {
        Some(LoadReport::Weight(w)) => format!("weight:{w}"),
        Some(LoadReport::LoadPercent(l)) => format!("load_percent:{l}"),
        None => "none".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::mh_packet;
    use crate::test_support::{a, coa, ha, log_lines as logs, mh_bytes, tunnel, with_type2};
    use anycast6_wire::checksum::proto;
    use anycast6_wire::ipv6::Ipv6Packet;
    use anycast6_wire::ipv6ext::ExtHeaderChain;
    use anycast6_wire::mobility::{
        fill_checksum, AuthSubtype, BindingAck, MhMessage, MhOptions, MhPacket, MhRepr,
        MobilityOption, OptionType,
    };

    const T0_UNIX: u64 = 1_700_000_000;

    fn s1() -> Ipv6Addr {
        crate::test_support::svc()
    }
    fn s2() -> Ipv6Addr {
        a("2001:db8:aaaa::443")
    }
    fn key() -> MnHaKey {
        MnHaKey {
            spi: 0x1001,
            key: vec![0x42; 16],
        }
    }

    struct Clock {
        base: Instant,
    }
    impl Clock {
        fn new() -> Clock {
            Clock {
                base: Instant::now(),
            }
        }
        fn at_ms(&self, ms: u64) -> Now {
            Now {
                mono: self.base + Duration::from_millis(ms),
                unix: Duration::from_millis(T0_UNIX * 1000 + ms),
            }
        }
        fn at(&self, secs: u64) -> Now {
            self.at_ms(secs * 1000)
        }
    }

    /// What a sent BU says.
    #[derive(Debug)]
    struct SentBuInfo {
        service: Ipv6Addr,
        seq: u16,
        lifetime: u16,
        timestamp: Option<u64>,
        load: Option<(u8, Vec<u8>)>,
    }

    fn decode_bu(packet: &[u8]) -> SentBuInfo {
        let ip = Ipv6Packet::new_checked(packet).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (coa(), ha()));
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        let service = chain.home_address.expect("BU without Home Address option");
        let mh = chain.upper_layer_bytes(ip.payload()).unwrap();
        let packet = MhPacket::new_checked(mh).unwrap();
        assert!(packet.verify_checksum(&service, &ha()));
        let repr = MhRepr::parse(&packet).unwrap();
        let MhMessage::BindingUpdate(bu) = repr.message else {
            panic!("not a BU");
        };
        assert!(bu.ack && bu.home_registration);
        let timestamp = match repr.find_option(OptionType::ReplayProtection) {
            Some(MobilityOption::ReplayProtection { timestamp }) => Some(timestamp),
            _ => None,
        };
        let load = repr.options.iter().flatten().find_map(|o| match o {
            MobilityOption::VendorSpecific {
                vendor_id: 32473,
                sub_type,
                data,
            } => Some((sub_type, data.to_vec())),
            _ => None,
        });
        SentBuInfo {
            service,
            seq: bu.sequence,
            lifetime: bu.lifetime,
            timestamp,
            load,
        }
    }

    fn sent(actions: &[Action]) -> Vec<SentBuInfo> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(decode_bu(p)),
                Action::Log(_) | Action::Deliver(_) => None,
            })
            .collect()
    }

    struct BaSpec {
        service: Ipv6Addr,
        status: u8,
        seq: u16,
        lifetime: u16,
        refresh: Option<u16>,
        /// (key, echoed timestamp)
        auth: Option<(MnHaKey, u64)>,
    }

    fn ba(spec: &BaSpec) -> Vec<u8> {
        let placeholder = [0u8; 12];
        let mut opts = Vec::new();
        if let Some(r) = spec.refresh {
            opts.push(MobilityOption::BindingRefreshAdvice { interval: r });
        }
        if let Some((k, ts)) = &spec.auth {
            opts.push(MobilityOption::ReplayProtection { timestamp: *ts });
            opts.push(MobilityOption::MobilityMessageAuth {
                subtype: AuthSubtype::MnHa,
                spi: k.spi,
                auth_data: &placeholder,
            });
        }
        let repr = MhRepr {
            message: MhMessage::BindingAck(BindingAck {
                status: BaStatus::from(spec.status),
                key_mgmt: false,
                other_flags: 0,
                sequence: spec.seq,
                lifetime: spec.lifetime,
            }),
            options: MhOptions::List(&opts),
        };
        let mut mh = mh_bytes(&repr);
        match &spec.auth {
            Some((k, _)) => auth::insert_mn_ha_and_fill_checksum(
                &k.key,
                &coa(),
                &spec.service,
                &mut mh,
                &ha(),
                &spec.service,
            )
            .unwrap(),
            None => fill_checksum(&ha(), &spec.service, &mut mh).unwrap(),
        }
        with_type2(ha(), coa(), spec.service, proto::MOBILITY, 64, &mh)
    }

    fn accept(service: Ipv6Addr, seq: u16, lifetime: u16, refresh: Option<u16>) -> Vec<u8> {
        ba(&BaSpec {
            service,
            status: 0,
            seq,
            lifetime,
            refresh,
            auth: None,
        })
    }

    /// A BRR tunnelled to the care-of address: outer HA -> CoA, inner HA -> service.
    fn tunnelled_brr(service: Ipv6Addr) -> Vec<u8> {
        let repr = MhRepr {
            message: MhMessage::BindingRefreshRequest,
            options: MhOptions::NONE,
        };
        tunnel(ha(), coa(), &mh_packet(ha(), service, 64, &repr).unwrap())
    }

    fn one_service() -> RegistrationConfig {
        RegistrationConfig::new(ha(), coa(), vec![s1()])
    }

    /// Runs the timers from `from_ms` to `to_ms` in 100 ms steps; returns (time, BU).
    fn run_timers(
        r: &mut Registration,
        clock: &Clock,
        from_ms: u64,
        to_ms: u64,
    ) -> Vec<(u64, SentBuInfo)> {
        let mut out = Vec::new();
        let mut t = from_ms;
        while t <= to_ms {
            for bu in sent(&r.on_timer(clock.at_ms(t))) {
                out.push((t, bu));
            }
            t += 100;
        }
        out
    }

    #[test]
    fn first_registration_back_off_doubles_to_32_s() {
        let clock = Clock::new();
        let mut cfg = one_service();
        cfg.auth = Some(key());
        let mut r = Registration::new(cfg, clock.at(0), 100);
        let bus = run_timers(&mut r, &clock, 0, 200_000);
        let times: Vec<u64> = bus.iter().map(|(t, _)| *t).collect();
        // Intervals 1.5, 3, 6, 12, 24, 32, 32, ... s.
        assert_eq!(
            times[..9],
            [0, 1_500, 4_500, 10_500, 22_500, 46_500, 78_500, 110_500, 142_500]
        );
        // Every transmission is a new BU: next sequence number, newer timestamp.
        for (i, w) in bus.windows(2).enumerate() {
            assert_eq!(w[1].1.seq, w[0].1.seq.wrapping_add(1), "at {i}");
            assert!(w[1].1.timestamp.unwrap() > w[0].1.timestamp.unwrap());
        }
        assert_eq!(bus[0].1.seq, 100);
        assert_eq!(bus[0].1.lifetime, 150);
        assert_eq!(r.status(clock.at(0))[0].phase, Phase::Registering);
    }

    #[test]
    fn refresh_follows_binding_refresh_advice_then_80_percent() {
        let clock = Clock::new();
        let mut r = Registration::new(one_service(), clock.at(0), 1);
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        // Granted 100 units (400 s), advice 50 units (200 s).
        let out = r.on_packet(clock.at_ms(300), &accept(s1(), bu.seq, 100, Some(50)));
        assert!(logs(&out).iter().any(|l| l.starts_with("event=registered")));
        let st = &r.status(clock.at_ms(300))[0];
        assert_eq!(st.phase, Phase::Registered);
        assert_eq!(st.granted_s, Some(400));
        // The lifetime counts from when the BU was sent (§11.7.3).
        assert_eq!(st.lifetime_left_s, Some(399));
        assert_eq!(r.next_timer(), Some(clock.at(200).mono));
        assert!(run_timers(&mut r, &clock, 1_000, 199_900).is_empty());
        let bus = run_timers(&mut r, &clock, 200_000, 200_000);
        assert_eq!(bus.len(), 1);
        assert_eq!(bus[0].1.seq, bu.seq.wrapping_add(1));
        assert_eq!(r.status(clock.at(200))[0].phase, Phase::Refreshing);
        // A refresh retransmits from 1 s, not 1.5 s.
        let bus = run_timers(&mut r, &clock, 200_100, 203_000);
        let times: Vec<u64> = bus.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [201_000, 203_000]);
        // Accepted without advice: refresh at 80 % of 10 units = 32 s after the BU.
        let seq = bus[1].1.seq;
        r.on_packet(clock.at_ms(203_100), &accept(s1(), seq, 10, None));
        assert_eq!(r.status(clock.at(204))[0].phase, Phase::Registered);
        assert_eq!(r.next_timer(), Some(clock.at(235).mono));
    }

    #[test]
    fn binding_expires_when_refreshes_go_unanswered() {
        let clock = Clock::new();
        let mut r = Registration::new(one_service(), clock.at(0), 1);
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        r.on_packet(clock.at(0), &accept(s1(), bu.seq, 5, Some(4)));
        // Refresh at 16 s, retransmissions at 17, 19, 23; expiry at 20 s.
        let mut expired = false;
        let mut t = 16_000;
        while t <= 24_000 {
            let out = r.on_timer(clock.at_ms(t));
            expired |= logs(&out)
                .iter()
                .any(|l| l.starts_with("event=binding_expired"));
            t += 100;
        }
        assert!(expired);
        let st = &r.status(clock.at(24))[0];
        assert_eq!(st.phase, Phase::Registering);
        assert_eq!(st.lifetime_left_s, None);
    }

    #[test]
    fn binding_refresh_request_is_answered() {
        let clock = Clock::new();
        let mut r = Registration::new(one_service(), clock.at(0), 1);
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        r.on_packet(clock.at(0), &accept(s1(), bu.seq, 150, Some(120)));
        let out = r.on_packet(clock.at(30), &tunnelled_brr(s1()));
        let bus = sent(&out);
        assert_eq!(bus.len(), 1, "{out:?}");
        assert_eq!((bus[0].service, bus[0].seq), (s1(), bu.seq + 1));
        assert_eq!(r.status(clock.at(30))[0].phase, Phase::Refreshing);
        // A second BRR while the refresh is outstanding sends nothing more.
        assert!(sent(&r.on_packet(clock.at(30), &tunnelled_brr(s1()))).is_empty());
        // A BRR for a service we do not register is ignored.
        assert!(r.on_packet(clock.at(31), &tunnelled_brr(s2())).is_empty());
    }

    #[test]
    fn rejections_logged_in_words_and_retried_with_back_off() {
        let clock = Clock::new();
        let mut r = Registration::new(one_service(), clock.at(0), 1);
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        let out = r.on_packet(
            clock.at_ms(100),
            &ba(&BaSpec {
                service: s1(),
                status: 129,
                seq: bu.seq,
                lifetime: 0,
                refresh: None,
                auth: None,
            }),
        );
        let l = logs(&out);
        assert!(
            l.iter()
                .any(|l| l.contains("status=129")
                    && l.contains("meaning=\"administratively prohibited")),
            "{l:?}"
        );
        assert!(l
            .iter()
            .any(|l| l.starts_with("event=registration_rejected")));
        let st = &r.status(clock.at_ms(100))[0];
        assert_eq!(st.phase, Phase::Rejected);
        assert_eq!(st.last_ba.as_ref().unwrap().status, 129);
        assert!(st
            .last_ba
            .as_ref()
            .unwrap()
            .meaning
            .starts_with("administratively"));
        // Retry after 1.5 s, then (rejected again) after 3 s.
        let bus = run_timers(&mut r, &clock, 200, 1_700);
        assert_eq!(bus.iter().map(|b| b.0).collect::<Vec<_>>(), [1_600]);
        r.on_packet(
            clock.at_ms(1_650),
            &ba(&BaSpec {
                service: s1(),
                status: 130,
                seq: bus[0].1.seq,
                lifetime: 0,
                refresh: None,
                auth: None,
            }),
        );
        assert!(r.status(clock.at(2))[0]
            .last_ba
            .as_ref()
            .unwrap()
            .meaning
            .starts_with("insufficient resources"));
        let bus = run_timers(&mut r, &clock, 1_700, 4_700);
        assert_eq!(bus.iter().map(|b| b.0).collect::<Vec<_>>(), [4_700]);
    }

    #[test]
    fn status_135_resyncs_the_sequence_number() {
        let clock = Clock::new();
        let mut cfg = one_service();
        cfg.auth = Some(key());
        let mut r = Registration::new(cfg, clock.at(0), 5);
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        assert_eq!(bu.seq, 5);
        // The appliance knows 40000 from an earlier incarnation.
        let out = r.on_packet(
            clock.at_ms(50),
            &ba(&BaSpec {
                service: s1(),
                status: 135,
                seq: 40_000,
                lifetime: 0,
                refresh: None,
                auth: Some((key(), bu.timestamp.unwrap())),
            }),
        );
        let l = logs(&out);
        assert!(l
            .iter()
            .any(|l| l.contains("meaning=\"sequence number out of window\"")));
        assert!(l.iter().any(|l| l.starts_with("event=sequence_resync")));
        let bus = sent(&out);
        assert_eq!(bus.len(), 1);
        assert_eq!(bus[0].seq, 40_001);
        assert!(bus[0].timestamp.unwrap() > bu.timestamp.unwrap());
        let out = r.on_packet(
            clock.at_ms(60),
            &ba(&BaSpec {
                service: s1(),
                status: 0,
                seq: 40_001,
                lifetime: 150,
                refresh: Some(120),
                auth: Some((key(), bus[0].timestamp.unwrap())),
            }),
        );
        assert!(logs(&out).iter().any(|l| l.starts_with("event=registered")));
        assert_eq!(r.status(clock.at(1))[0].phase, Phase::Registered);
    }

    #[test]
    fn unauthenticated_or_forged_acceptance_is_ignored() {
        let clock = Clock::new();
        let mut cfg = one_service();
        cfg.auth = Some(key());
        let mut r = Registration::new(cfg, clock.at(0), 1);
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        let out = r.on_packet(clock.at_ms(10), &accept(s1(), bu.seq, 150, None));
        assert!(logs(&out)
            .iter()
            .any(|l| l.contains("why=not_authenticated")));
        let wrong = MnHaKey {
            spi: 0x1001,
            key: vec![0x43; 16],
        };
        let forged = ba(&BaSpec {
            service: s1(),
            status: 0,
            seq: bu.seq,
            lifetime: 150,
            refresh: None,
            auth: Some((wrong, bu.timestamp.unwrap())),
        });
        let out = r.on_packet(clock.at_ms(20), &forged);
        assert!(logs(&out)
            .iter()
            .any(|l| l.contains("why=bad_authenticator")));
        assert_eq!(r.status(clock.at(0))[0].phase, Phase::Registering);
        // A BA for a sequence number never sent does not match.
        let out = r.on_packet(
            clock.at_ms(30),
            &ba(&BaSpec {
                service: s1(),
                status: 0,
                seq: bu.seq.wrapping_add(7),
                lifetime: 150,
                refresh: None,
                auth: Some((key(), bu.timestamp.unwrap())),
            }),
        );
        assert!(logs(&out).iter().any(|l| l.contains("why=no_matching_bu")));
    }

    #[test]
    fn drain_sends_lifetime_zero_and_finishes_on_ba() {
        let clock = Clock::new();
        let mut r = Registration::new(
            RegistrationConfig::new(ha(), coa(), vec![s1(), s2()]),
            clock.at(0),
            1,
        );
        let bus = sent(&r.on_timer(clock.at(0)));
        assert_eq!(bus.len(), 2);
        r.on_packet(clock.at(0), &accept(s1(), bus[0].seq, 150, None));
        // s2 never answered: it may exist on the appliance, so it is drained too.
        let out = r.drain(clock.at(10));
        let drains = sent(&out);
        assert_eq!(drains.len(), 2);
        assert!(drains.iter().all(|b| b.lifetime == 0 && b.load.is_none()));
        assert!(!r.is_drained());
        r.on_packet(clock.at(10), &accept(s1(), drains[0].seq, 0, None));
        assert!(!r.is_drained());
        // 133: no binding to remove, which is as good.
        let out = r.on_packet(
            clock.at(10),
            &ba(&BaSpec {
                service: s2(),
                status: 133,
                seq: drains[1].seq,
                lifetime: 0,
                refresh: None,
                auth: None,
            }),
        );
        assert!(logs(&out).iter().any(|l| l.contains("result=no_binding")));
        assert!(r.is_drained());
        assert!(r
            .status(clock.at(10))
            .iter()
            .all(|b| b.phase == Phase::Deregistered));
        // Nothing more is sent.
        assert!(run_timers(&mut r, &clock, 10_000, 100_000).is_empty());
    }

    #[test]
    fn drain_retransmits_until_answered() {
        let clock = Clock::new();
        let mut r = Registration::new(one_service(), clock.at(0), 1);
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        r.on_packet(clock.at(0), &accept(s1(), bu.seq, 150, None));
        assert_eq!(sent(&r.drain(clock.at(5))).len(), 1);
        let bus = run_timers(&mut r, &clock, 5_100, 12_000);
        assert_eq!(
            bus.iter().map(|b| b.0).collect::<Vec<_>>(),
            [6_000, 8_000, 12_000]
        );
        assert!(bus.iter().all(|b| b.1.lifetime == 0));
        // Never registered at all: drained at once.
        let mut fresh = Registration::new(one_service(), clock.at(0), 1);
        assert!(sent(&fresh.drain(clock.at(0))).is_empty());
        assert!(fresh.is_drained());
    }

    #[test]
    fn load_changes_refresh_early_but_rate_limited() {
        let clock = Clock::new();
        let mut r = Registration::new(one_service(), clock.at(0), 1);
        r.set_load(clock.at(0), Some(LoadReport::LoadPercent(10)));
        let bu = sent(&r.on_timer(clock.at(0))).remove(0);
        assert_eq!(bu.load, Some((2, vec![10])));
        r.on_packet(clock.at(0), &accept(s1(), bu.seq, 150, Some(120)));
        // A small change waits for the next refresh.
        assert!(sent(&r.set_load(clock.at(20), Some(LoadReport::LoadPercent(15)))).is_empty());
        // A big one goes out at once (10 s have passed since the last BU)...
        let bus = sent(&r.set_load(clock.at(21), Some(LoadReport::LoadPercent(60))));
        assert_eq!(bus.len(), 1);
        assert_eq!(bus[0].load, Some((2, vec![60])));
        r.on_packet(clock.at(21), &accept(s1(), bus[0].seq, 150, Some(120)));
        // ...but not more often than every 10 s.
        assert!(sent(&r.set_load(clock.at(25), Some(LoadReport::LoadPercent(90)))).is_empty());
        let bus = run_timers(&mut r, &clock, 25_000, 31_000);
        assert_eq!(bus.len(), 1);
        assert_eq!(bus[0].0, 31_000);
        assert_eq!(bus[0].1.load, Some((2, vec![90])));
    }

    #[test]
    fn fixed_weight_and_binding_identifier_in_every_bu() {
        let clock = Clock::new();
        let mut cfg = one_service();
        cfg.bid = Some(9);
        let mut r = Registration::new(cfg, clock.at(0), 1);
        r.set_load(clock.at(0), Some(LoadReport::Weight(500)));
        let out = r.on_timer(clock.at(0));
        let Some(Action::Send(p)) = out.iter().find(|a| matches!(a, Action::Send(_))) else {
            panic!("no BU");
        };
        let info = decode_bu(p);
        assert_eq!(info.load, Some((1, 500u16.to_be_bytes().to_vec())));
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        let mh = chain.upper_layer_bytes(ip.payload()).unwrap();
        let repr = MhRepr::parse(&MhPacket::new_checked(mh).unwrap()).unwrap();
        assert!(repr
            .options
            .iter()
            .flatten()
            .any(|o| matches!(o, MobilityOption::BindingIdentifier { bid: 9, .. })));
    }
}
