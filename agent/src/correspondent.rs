//! Route optimisation with the clients (RFC 6275 §5.2, §11.6-§11.8): the member as a
//! mobile node that tells each correspondent its care-of address, sans I/O.
//!
//! [`RouteOptimisation`] keeps one [`Correspondent`] per (service, client). It reads no
//! clock and touches no socket: the driver passes the time and every packet received for
//! the care-of address, and performs the [`Action`]s that come back (send a packet, hand a
//! datagram to the local stack, log a line).
//!
//! # The exchange
//!
//! 1. The first packet of client C to service S that the appliance tunnels here starts
//!    return routability (§11.6.1, as UMIP's mobile node does on the first tunnelled
//!    packet): a HoTI from S, reverse-tunnelled through the appliance, and a CoTI from the
//!    care-of address, each with a fresh 64-bit cookie.
//! 2. The HoT (tunnelled by the appliance) and the CoT (direct) bring the keygen tokens;
//!    their cookies must be the ones sent (§11.6.2).
//! 3. A BU goes to C from the care-of address with a Home Address option (S), H = 0,
//!    A = 1, Nonce Indices and Binding Authorization Data, Kbm = SHA1(home token | care-of
//!    token) (§5.2.5, §11.7.2). Its lifetime is at most MAX_RR_BINDING_LIFETIME (420 s) and
//!    the remaining home registration (§11.7.2). Sequence numbers start at 1 per client.
//! 4. The BA must carry a valid authenticator (§11.7.2/§9.5.4) unless its status is
//!    136-138, which carry none.
//!
//! # What happens next
//!
//! * BA 135: the BA carries the client's last accepted sequence number; the next BU goes
//!   out above it (§11.7.1), at most [`MAX_RESYNCS`] times in a row.
//! * BA 136 / 137 / 138: the home / care-of / both tokens are stale; the matching tests are
//!   run again, then the BU (at most [`MAX_RR_RESTARTS`] times in a row).
//! * Any other rejection: `ro_failed`; the client is left alone for [`FAILED_HOLD_DOWN`].
//! * No answer: tests and BUs are retransmitted after INITIAL_BINDACK_TIMEOUT (1 s),
//!   doubling up to MAX_BINDACK_TIMEOUT (32 s) (§11.8); when the 32 s wait also ends with
//!   nothing, `ro_failed`.
//! * Refresh at `refresh_percent` of the granted lifetime, if the client used the binding
//!   since the last BU (RH2 data or tunnelled packets); the tokens are reused while they
//!   are younger than [`TOKEN_REUSE`], otherwise return routability runs again first. An
//!   unused binding is left to expire (UMIP refreshes only bindings in use too).
//! * A bound client whose packets still come through the appliance
//!   [`STALE_BINDING_GRACE`] after the BU has lost the binding: it is bound again.
//! * A Binding Refresh Request (tunnelled, sent to S) refreshes at once (§11.7.4).
//! * Binding Error status 1 re-runs return routability and the BU; status 2 stops route
//!   optimisation with that client for good (§11.3.6).
//! * ICMPv6 Parameter Problem code 1 quoting one of our Mobility Headers (identified by
//!   its cookie or sequence number): the client has no Mobile IPv6 (§11.3.5); it is
//!   marked legacy and never tried again. Code 2 quoting our BU (it does not know the Home
//!   Address option) means the same.
//! * [`RouteOptimisation::drain`]: a lifetime-0 BU (Kbm = SHA1(home token), care-of nonce
//!   index 0; §5.2.5, §11.7.2) to every client that may hold a binding; a home test first
//!   when the home token is too old.
//!
//! Route-optimised data (`client -> care-of`, Type 2 routing header = S) comes back as
//! [`Action::Deliver`] with the routing header removed, for the TUN device.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6_wire::mobility::{BaStatus, BeStatus};
use anycast6_wire::rr;
use serde::{Deserialize, Serialize};

use crate::registration::{
    Action, INITIAL_BINDACK_TIMEOUT, LIFETIME_UNIT, MAX_BINDACK_TIMEOUT, MIN_BU_SPACING,
};
use crate::ro_messages::{
    build_correspondent_bu, build_coti, build_hoti, parse_from_client, CorrespondentBu, FromClient,
};

/// RFC 6275 §12: MAX_RR_BINDING_LIFETIME.
pub const MAX_RR_BINDING_LIFETIME: Duration = Duration::from_secs(420);
/// RFC 6275 §12: MAX_TOKEN_LIFETIME; a token older than this may be refused.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(210);
/// Tokens younger than this are reused for a refresh or a deletion: the margin below
/// MAX_TOKEN_LIFETIME leaves room for a few retransmissions.
pub const TOKEN_REUSE: Duration = Duration::from_secs(180);
/// Consecutive status-135 resyncs before giving up.
pub const MAX_RESYNCS: u32 = 3;
/// Consecutive return-routability restarts after BA 136-138 before giving up.
pub const MAX_RR_RESTARTS: u32 = 3;
/// How long a client whose route optimisation failed is left alone.
pub const FAILED_HOLD_DOWN: Duration = Duration::from_secs(300);
/// Route optimisation starts only with at least this much home registration left: a
/// shorter binding is not worth the exchange.
pub const MIN_HOME_LEFT: Duration = Duration::from_secs(8);
/// A bound client's packets still arriving through the appliance this long after the BU
/// mean it no longer holds the binding.
pub const STALE_BINDING_GRACE: Duration = Duration::from_secs(5);
/// Binding Error status 1 re-runs return routability at most this often per client.
const MIN_RR_SPACING: Duration = Duration::from_secs(1);
/// Clients remembered as legacy, at most.
const MAX_LEGACY_CLIENTS: usize = 65536;

/// What route optimisation needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoConfig {
    pub care_of: Ipv6Addr,
    /// The appliance's tunnel address (outer source of the tunnelled packets, outer
    /// destination of the reverse-tunnelled HoTI).
    pub home_agent: Ipv6Addr,
    pub services: Vec<Ipv6Addr>,
    pub hop_limit: u8,
    /// (service, client) pairs tracked at most; further clients are not route-optimised.
    pub max_correspondents: usize,
    /// Refresh point, in percent of the granted lifetime.
    pub refresh_percent: u8,
}

impl RoConfig {
    pub fn new(care_of: Ipv6Addr, home_agent: Ipv6Addr, services: Vec<Ipv6Addr>) -> RoConfig {
        RoConfig {
            care_of,
            home_agent,
            services,
            hop_limit: 64,
            max_correspondents: 4096,
            refresh_percent: 80,
        }
    }
}

/// Where the route optimisation with one client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoPhase {
    /// HoTI/CoTI outstanding.
    ReturnRoutability,
    /// A BU is outstanding.
    Updating,
    /// The client holds our care-of address.
    Bound,
    /// A lifetime-0 BU (or the home test before it) is outstanding.
    Deleting,
    /// De-registered (drain).
    Deleted,
    /// Gave up for now (see `last_status`); retried after the hold-down.
    Failed,
    /// No Mobile IPv6 at the client: never tried again.
    Legacy,
}

/// A keygen token and when it arrived.
#[derive(Debug, Clone, Copy)]
struct Token {
    nonce_index: u16,
    token: [u8; rr::TOKEN_LEN],
    at: Instant,
}

impl Token {
    fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.at)
    }
}

/// True when `token` is there and young enough to be reused (see [`TOKEN_REUSE`]).
fn reusable(token: Option<Token>, now: Instant) -> bool {
    token.is_some_and(|t| t.age(now) < TOKEN_REUSE)
}

#[derive(Debug, Clone, Copy)]
struct SentBu {
    sequence: u16,
    at: Instant,
    lifetime: u16,
    kbm: [u8; rr::KBM_LEN],
}

/// One (service, client) pair.
#[derive(Debug, Clone)]
struct Correspondent {
    service: Ipv6Addr,
    client: Ipv6Addr,
    phase: RoPhase,
    /// The exchange under way deletes the binding (drain).
    deleting: bool,
    home_cookie: Option<[u8; 8]>,
    care_of_cookie: Option<[u8; 8]>,
    home: Option<Token>,
    care_of: Option<Token>,
    /// Sequence number of the last BU sent (0 before the first).
    sequence: u16,
    outstanding: Vec<SentBu>,
    /// A BU is due as soon as MAX_UPDATE_RATE allows.
    bu_pending: bool,
    timeout: Duration,
    next_at: Option<Instant>,
    /// When the client's binding ends (from the accepted BU's send time).
    bound_until: Option<Instant>,
    /// When the BU of the current binding was sent.
    bound_bu_at: Option<Instant>,
    granted: Option<Duration>,
    last_used: Instant,
    last_bu_at: Option<Instant>,
    rr_started_at: Option<Instant>,
    resyncs: u32,
    rr_restarts: u32,
    last_status: Option<u8>,
    bus_sent: u64,
    rr_runs: u64,
}

impl Correspondent {
    /// Ends the exchange under way: no test, BU or deletion outstanding any more.
    fn stop_exchange(&mut self) {
        self.deleting = false;
        self.home_cookie = None;
        self.care_of_cookie = None;
        self.outstanding.clear();
        self.bu_pending = false;
    }

    /// The deletion is over (`result` says how): nothing more to send to this client.
    fn deletion_done(&mut self, result: &str) -> Action {
        self.phase = RoPhase::Deleted;
        self.deleting = false;
        self.next_at = None;
        Action::Log(format!(
            "event=ro_deregistered client={} service={} {result}",
            self.client, self.service
        ))
    }
}

/// One correspondent as the state file shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrespondentStatus {
    pub service: Ipv6Addr,
    pub client: Ipv6Addr,
    pub state: RoPhase,
    /// Sequence number of the last BU sent.
    pub sequence: u16,
    /// Lifetime the client granted to the current binding, seconds.
    pub granted_s: Option<u64>,
    /// Seconds left of the client's binding.
    pub lifetime_left_s: Option<u64>,
    /// Status of the last BA (or of the ICMPv6/Binding Error that ended it: none).
    pub last_status: Option<u8>,
    pub bus_sent: u64,
    pub return_routability_runs: u64,
    pub home_token_age_s: Option<u64>,
}

/// Route optimisation with every client (see the module documentation).
pub struct RouteOptimisation {
    config: RoConfig,
    correspondents: BTreeMap<(Ipv6Addr, Ipv6Addr), Correspondent>,
    legacy: BTreeSet<Ipv6Addr>,
    /// When each service's home registration ends (`None`: not registered).
    home_expiry: BTreeMap<Ipv6Addr, Option<Instant>>,
    draining: bool,
    cookies: Box<dyn FnMut() -> [u8; 8] + Send>,
}

impl std::fmt::Debug for RouteOptimisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteOptimisation")
            .field("config", &self.config)
            .field("correspondents", &self.correspondents.len())
            .field("legacy", &self.legacy.len())
            .field("draining", &self.draining)
            .finish()
    }
}

impl RouteOptimisation {
    /// `cookies` gives the 64-bit cookies of the tests; they must be unpredictable to
    /// anyone off the path (§5.2.3), so the driver reads them from the system's random
    /// source.
    pub fn new(config: RoConfig, cookies: Box<dyn FnMut() -> [u8; 8] + Send>) -> RouteOptimisation {
        RouteOptimisation {
            config,
            correspondents: BTreeMap::new(),
            legacy: BTreeSet::new(),
            home_expiry: BTreeMap::new(),
            draining: false,
            cookies,
        }
    }

    /// Tells when the home registration of `service` ends (`None`: not registered).
    pub fn set_home_expiry(&mut self, service: Ipv6Addr, expiry: Option<Instant>) {
        self.home_expiry.insert(service, expiry);
    }

    fn home_left(&self, service: Ipv6Addr, now: Instant) -> Duration {
        self.home_expiry
            .get(&service)
            .copied()
            .flatten()
            .map_or(Duration::ZERO, |e| e.saturating_duration_since(now))
    }

    /// True when `client` is known to have no Mobile IPv6.
    pub fn is_legacy(&self, client: Ipv6Addr) -> bool {
        self.legacy.contains(&client)
    }

    /// When [`on_timer`](Self::on_timer) next has something to do.
    pub fn next_timer(&self) -> Option<Instant> {
        self.correspondents.values().filter_map(|c| c.next_at).min()
    }

    /// Handles an IPv6 packet received for the care-of address (anything: what is not
    /// route optimisation is ignored).
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let Ok(from) = parse_from_client(
            packet,
            self.config.care_of,
            self.config.home_agent,
            &self.config.services,
        ) else {
            return actions;
        };
        match from {
            FromClient::Tunnelled { service, client } => {
                self.on_client_traffic(now, service, client, &mut actions)
            }
            FromClient::RouteOptimisedData {
                service,
                client,
                inner,
            } => {
                if let Some(c) = self.correspondents.get_mut(&(service, client)) {
                    c.last_used = now;
                }
                actions.push(Action::Deliver(inner));
            }
            FromClient::HomeTest {
                service,
                client,
                nonce_index,
                cookie,
                token,
            } => {
                let Some(c) = self.correspondents.get_mut(&(service, client)) else {
                    return actions;
                };
                if c.home_cookie != Some(cookie) {
                    return actions;
                }
                c.home_cookie = None;
                c.home = Some(Token {
                    nonce_index,
                    token,
                    at: now,
                });
                actions.push(Action::Log(format!(
                    "event=ro_home_test client={client} service={service} nonce_index={nonce_index}"
                )));
                self.tests_done(now, (service, client), &mut actions);
            }
            FromClient::CareOfTest {
                client,
                nonce_index,
                cookie,
                token,
            } => {
                let Some(key) = self
                    .correspondents
                    .iter()
                    .find(|(_, c)| c.client == client && c.care_of_cookie == Some(cookie))
                    .map(|(k, _)| *k)
                else {
                    return actions;
                };
                if let Some(c) = self.correspondents.get_mut(&key) {
                    c.care_of_cookie = None;
                    c.care_of = Some(Token {
                        nonce_index,
                        token,
                        at: now,
                    });
                    actions.push(Action::Log(format!(
                        "event=ro_care_of_test client={client} service={} nonce_index={nonce_index}",
                        c.service
                    )));
                }
                self.tests_done(now, key, &mut actions);
            }
            FromClient::BindingAck {
                service,
                client,
                ack,
                mh,
            } => self.on_ba(now, (service, client), ack, mh, &mut actions),
            FromClient::BindingError {
                service,
                client,
                status,
            } => self.on_binding_error(now, service, client, status, &mut actions),
            FromClient::RefreshRequest { service, client } => {
                let refresh = !self.draining
                    && self
                        .correspondents
                        .get(&(service, client))
                        .is_some_and(|c| {
                            c.phase == RoPhase::Bound
                                && c.last_bu_at.is_none_or(|t| {
                                    now.saturating_duration_since(t) >= MIN_BU_SPACING
                                })
                        });
                if refresh {
                    // RFC 6275 §11.7.4: a BRR is answered with a BU.
                    actions.push(Action::Log(format!(
                        "event=ro_refresh_request client={client} service={service}"
                    )));
                    self.refresh(now, (service, client), &mut actions);
                }
            }
            FromClient::ParameterProblem {
                client,
                code,
                quoted,
                ..
            } => {
                let ours = self.correspondents.values().any(|c| {
                    c.client == client
                        && match quoted.mh_type {
                            1 => quoted.src == c.service && c.home_cookie == quoted.cookie,
                            2 => {
                                quoted.src == self.config.care_of
                                    && c.care_of_cookie == quoted.cookie
                            }
                            _ => {
                                quoted.src == self.config.care_of
                                    && c.outstanding
                                        .iter()
                                        .any(|s| Some(s.sequence) == quoted.sequence)
                            }
                        }
                });
                // RFC 6275 §11.3.5: code 1 (Mobility Header unknown) means the node has
                // no Mobile IPv6. Code 2 about our BU means it rejects the Home Address
                // option: route optimisation cannot work with it either.
                let legacy = code == 1
                    || (code == 2 && quoted.mh_type == 5 && quoted.home_address.is_some());
                if ours && legacy {
                    let reason = format!("parameter_problem_code_{code}");
                    self.mark_legacy(client, &reason, &mut actions);
                }
            }
        }
        actions
    }

    fn on_client_traffic(
        &mut self,
        now: Instant,
        service: Ipv6Addr,
        client: Ipv6Addr,
        actions: &mut Vec<Action>,
    ) {
        if self.legacy.contains(&client) || client == self.config.care_of {
            return;
        }
        let home_left = self.home_left(service, now);
        if let Some(c) = self.correspondents.get_mut(&(service, client)) {
            c.last_used = now;
            // A client that holds our binding sends to the care-of address; one that
            // comes through the appliance well after the BA has lost it (expired, or
            // deleted by the appliance's trigger while we were away): bind again.
            let stale = c.phase == RoPhase::Bound
                && !self.draining
                && home_left >= MIN_HOME_LEFT
                && c.bound_bu_at
                    .is_some_and(|t| now.saturating_duration_since(t) >= STALE_BINDING_GRACE)
                && c.rr_started_at
                    .is_none_or(|t| now.saturating_duration_since(t) >= STALE_BINDING_GRACE);
            if stale {
                c.rr_started_at = Some(now);
                actions.push(Action::Log(format!(
                    "event=ro_rebind client={client} service={service} reason=tunnelled_while_bound"
                )));
                self.refresh(now, (service, client), actions);
            }
            return;
        }
        if self.draining
            || self.home_left(service, now) < MIN_HOME_LEFT
            || self.correspondents.len() >= self.config.max_correspondents
        {
            return;
        }
        self.correspondents.insert(
            (service, client),
            Correspondent {
                service,
                client,
                phase: RoPhase::ReturnRoutability,
                deleting: false,
                home_cookie: None,
                care_of_cookie: None,
                home: None,
                care_of: None,
                sequence: 0,
                outstanding: Vec::new(),
                bu_pending: false,
                timeout: INITIAL_BINDACK_TIMEOUT,
                next_at: None,
                bound_until: None,
                bound_bu_at: None,
                granted: None,
                last_used: now,
                last_bu_at: None,
                rr_started_at: None,
                resyncs: 0,
                rr_restarts: 0,
                last_status: None,
                bus_sent: 0,
                rr_runs: 0,
            },
        );
        actions.push(Action::Log(format!(
            "event=ro_start client={client} service={service}"
        )));
        self.start_tests(now, (service, client), true, true, actions);
    }

    /// Sends the home and/or care-of test (new cookies) and waits for the answers.
    fn start_tests(
        &mut self,
        now: Instant,
        key: (Ipv6Addr, Ipv6Addr),
        home: bool,
        care_of: bool,
        actions: &mut Vec<Action>,
    ) {
        let home_cookie = home.then(|| (self.cookies)());
        let care_of_cookie = care_of.then(|| (self.cookies)());
        let Some(c) = self.correspondents.get_mut(&key) else {
            return;
        };
        c.phase = if c.deleting {
            RoPhase::Deleting
        } else {
            RoPhase::ReturnRoutability
        };
        c.outstanding.clear();
        c.bu_pending = false;
        if home_cookie.is_some() {
            c.home = None;
            c.home_cookie = home_cookie;
        }
        if care_of_cookie.is_some() {
            c.care_of = None;
            c.care_of_cookie = care_of_cookie;
        }
        c.timeout = INITIAL_BINDACK_TIMEOUT;
        c.next_at = Some(now + c.timeout);
        c.rr_started_at = Some(now);
        c.rr_runs += 1;
        send_tests(&self.config, c, actions);
    }

    /// A test answered: when every token the exchange needs is there, the BU goes out.
    fn tests_done(&mut self, now: Instant, key: (Ipv6Addr, Ipv6Addr), actions: &mut Vec<Action>) {
        let Some(c) = self.correspondents.get_mut(&key) else {
            return;
        };
        let ready = c.home_cookie.is_none()
            && c.home.is_some()
            && (c.deleting || (c.care_of_cookie.is_none() && c.care_of.is_some()));
        if !ready || !matches!(c.phase, RoPhase::ReturnRoutability | RoPhase::Deleting) {
            return;
        }
        c.phase = if c.deleting {
            RoPhase::Deleting
        } else {
            RoPhase::Updating
        };
        c.care_of_cookie = if c.deleting { None } else { c.care_of_cookie };
        self.first_bu(now, key, actions);
    }

    /// Starts a new BU exchange: a fresh retransmission timeout, no earlier BU counted.
    fn first_bu(&mut self, now: Instant, key: (Ipv6Addr, Ipv6Addr), actions: &mut Vec<Action>) {
        if let Some(c) = self.correspondents.get_mut(&key) {
            c.timeout = INITIAL_BINDACK_TIMEOUT;
            c.outstanding.clear();
        }
        self.send_bu(now, key, actions);
    }

    /// Sends the next BU of the exchange (or schedules it, MAX_UPDATE_RATE).
    fn send_bu(&mut self, now: Instant, key: (Ipv6Addr, Ipv6Addr), actions: &mut Vec<Action>) {
        let home_left = self.home_left(key.0, now);
        let Some(c) = self.correspondents.get_mut(&key) else {
            return;
        };
        if let Some(earliest) = c.last_bu_at.map(|t| t + MIN_BU_SPACING) {
            if earliest > now {
                c.bu_pending = true;
                c.next_at = Some(earliest);
                return;
            }
        }
        c.bu_pending = false;
        let Some(home) = c.home else {
            return;
        };
        let (lifetime, kbm, care_of_index) = if c.deleting {
            // RFC 6275 §5.2.5 / §9.5.1: a deletion is authorised by the home token alone;
            // the care-of nonce index is ignored.
            (0, rr::kbm_home_only(&home.token), 0)
        } else {
            let Some(care_of) = c.care_of else {
                return;
            };
            // §11.7.2: no longer than MAX_RR_BINDING_LIFETIME nor the home registration.
            let units = (home_left.min(MAX_RR_BINDING_LIFETIME).as_secs() / 4) as u16;
            if units == 0 {
                let (service, client) = key;
                actions.push(Action::Log(format!(
                    "event=ro_stopped client={client} service={service} reason=no_home_registration"
                )));
                self.correspondents.remove(&key);
                return;
            }
            (
                units,
                rr::kbm(&home.token, &care_of.token),
                care_of.nonce_index,
            )
        };
        c.sequence = c.sequence.wrapping_add(1);
        let params = CorrespondentBu {
            care_of: self.config.care_of,
            service: c.service,
            client: c.client,
            sequence: c.sequence,
            lifetime,
            home_nonce_index: home.nonce_index,
            care_of_nonce_index: care_of_index,
            kbm,
            hop_limit: self.config.hop_limit,
        };
        c.outstanding.push(SentBu {
            sequence: c.sequence,
            at: now,
            lifetime,
            kbm,
        });
        if c.outstanding.len() > 16 {
            c.outstanding.remove(0);
        }
        c.last_bu_at = Some(now);
        c.next_at = Some(now + c.timeout);
        c.bus_sent += 1;
        match build_correspondent_bu(&params) {
            Ok(packet) => {
                actions.push(Action::Log(format!(
                    "event=ro_bu_sent client={} service={} seq={} lifetime={}",
                    c.client,
                    c.service,
                    c.sequence,
                    u32::from(lifetime) * 4
                )));
                actions.push(Action::Send(packet));
            }
            Err(e) => actions.push(Action::Log(format!(
                "event=ro_bu_build_failed client={} error=\"{e}\"",
                c.client
            ))),
        }
    }

    fn on_ba(
        &mut self,
        now: Instant,
        key: (Ipv6Addr, Ipv6Addr),
        ack: anycast6_wire::mobility::BindingAck,
        mh: &[u8],
        actions: &mut Vec<Action>,
    ) {
        let (service, client) = key;
        let care_of = self.config.care_of;
        let Some(c) = self.correspondents.get_mut(&key) else {
            return;
        };
        if c.outstanding.is_empty() {
            return;
        }
        let status = u8::from(ack.status);
        let expired_nonce = matches!(
            ack.status,
            BaStatus::ExpiredHomeNonceIndex
                | BaStatus::ExpiredCareOfNonceIndex
                | BaStatus::ExpiredNonces
        );
        // §9.5.4: every BA from a correspondent carries Binding Authorization Data except
        // 136-138; it is computed with the Kbm of the BU it answers. A 135 carries the
        // client's number, not ours, so any outstanding BU's key may fit.
        let verifies =
            |s: &SentBu| rr::verify_authenticator(&s.kbm, &care_of, &client, mh) == Ok(true);
        let matched = if ack.status == BaStatus::SequenceNumberOutOfWindow {
            c.outstanding.iter().find(|s| verifies(s)).copied()
        } else if expired_nonce {
            c.outstanding
                .iter()
                .find(|s| s.sequence == ack.sequence)
                .copied()
        } else {
            c.outstanding
                .iter()
                .find(|s| s.sequence == ack.sequence && verifies(s))
                .copied()
        };
        let Some(sent) = matched else {
            actions.push(Action::Log(format!(
                "event=ro_ba_ignored client={client} service={service} status={status} seq={} \
                 why=no_matching_authenticated_bu",
                ack.sequence
            )));
            return;
        };
        c.last_status = Some(status);
        if ack.status.is_accepted() {
            c.outstanding.clear();
            c.resyncs = 0;
            c.rr_restarts = 0;
            c.timeout = INITIAL_BINDACK_TIMEOUT;
            if sent.lifetime == 0 {
                c.bound_until = None;
                actions.push(c.deletion_done(&format!("seq={} result=accepted", ack.sequence)));
                return;
            }
            let granted = LIFETIME_UNIT * u32::from(ack.lifetime.min(sent.lifetime));
            if granted.is_zero() {
                self.fail(now, key, Some(status), "zero_lifetime", actions);
                return;
            }
            let percent = u32::from(self.config.refresh_percent.clamp(1, 99));
            // §11.7.2: the lifetime counts from when the BU was sent.
            c.phase = RoPhase::Bound;
            c.bound_until = Some(sent.at + granted);
            c.bound_bu_at = Some(sent.at);
            c.granted = Some(granted);
            c.next_at = Some((sent.at + granted * percent / 100).max(now));
            actions.push(Action::Log(format!(
                "event=ro_bound client={client} lifetime={} seq={} service={service}",
                granted.as_secs(),
                ack.sequence
            )));
            return;
        }
        if ack.status == BaStatus::SequenceNumberOutOfWindow {
            if c.resyncs >= MAX_RESYNCS {
                self.fail(now, key, Some(status), "sequence_resync", actions);
                return;
            }
            // §9.5.1: the BA carries the last sequence number the client accepted.
            c.resyncs += 1;
            c.sequence = ack.sequence;
            c.outstanding.clear();
            actions.push(Action::Log(format!(
                "event=ro_sequence_resync client={client} service={service} from_seq={}",
                ack.sequence
            )));
            self.send_bu(now, key, actions);
            return;
        }
        if expired_nonce {
            if c.rr_restarts >= MAX_RR_RESTARTS {
                self.fail(now, key, Some(status), "nonces_keep_expiring", actions);
                return;
            }
            c.rr_restarts += 1;
            let home = matches!(
                ack.status,
                BaStatus::ExpiredHomeNonceIndex | BaStatus::ExpiredNonces
            );
            let care_of = !c.deleting
                && matches!(
                    ack.status,
                    BaStatus::ExpiredCareOfNonceIndex | BaStatus::ExpiredNonces
                );
            actions.push(Action::Log(format!(
                "event=ro_nonce_expired client={client} service={service} status={status}"
            )));
            self.start_tests(now, key, home, care_of, actions);
            return;
        }
        if c.deleting {
            actions.push(c.deletion_done(&format!(
                "seq={} result=refused status={status}",
                ack.sequence
            )));
            return;
        }
        self.fail(now, key, Some(status), "rejected", actions);
    }

    fn on_binding_error(
        &mut self,
        now: Instant,
        service: Option<Ipv6Addr>,
        client: Ipv6Addr,
        status: BeStatus,
        actions: &mut Vec<Action>,
    ) {
        match status {
            // RFC 6275 §11.3.6: the client does not know an MH type we sent: stop.
            BeStatus::UnrecognizedMhType
                if self.correspondents.values().any(|c| c.client == client) =>
            {
                self.mark_legacy(client, "binding_error_status_2", actions);
            }
            // §11.3.6: the client has no binding for our home address: a new return
            // routability and BU, if we thought it had one. An error about a home address
            // that is not one of our services (`None`) is about somebody else's binding.
            BeStatus::UnknownBindingForHomeAddress => {
                let keys: Vec<_> = self
                    .correspondents
                    .iter()
                    .filter(|(k, c)| {
                        k.1 == client
                            && service == Some(k.0)
                            && matches!(c.phase, RoPhase::Bound | RoPhase::Updating)
                            && c.rr_started_at
                                .is_none_or(|t| now.saturating_duration_since(t) >= MIN_RR_SPACING)
                    })
                    .map(|(k, _)| *k)
                    .collect();
                if self.draining {
                    return;
                }
                for key in keys {
                    actions.push(Action::Log(format!(
                        "event=ro_binding_error client={client} service={} status=1",
                        key.0
                    )));
                    self.start_tests(now, key, true, true, actions);
                }
            }
            _ => {}
        }
    }

    /// Marks `client` legacy: no route optimisation with it, for any service, ever.
    fn mark_legacy(&mut self, client: Ipv6Addr, reason: &str, actions: &mut Vec<Action>) {
        if self.legacy.len() < MAX_LEGACY_CLIENTS {
            self.legacy.insert(client);
        }
        for c in self
            .correspondents
            .values_mut()
            .filter(|c| c.client == client)
        {
            c.stop_exchange();
            c.phase = RoPhase::Legacy;
            c.next_at = None;
        }
        actions.push(Action::Log(format!(
            "event=ro_legacy client={client} reason={reason}"
        )));
    }

    fn fail(
        &mut self,
        now: Instant,
        key: (Ipv6Addr, Ipv6Addr),
        status: Option<u8>,
        reason: &str,
        actions: &mut Vec<Action>,
    ) {
        let Some(c) = self.correspondents.get_mut(&key) else {
            return;
        };
        c.stop_exchange();
        c.phase = RoPhase::Failed;
        c.next_at = Some(now + FAILED_HOLD_DOWN);
        let status = status.map_or("none".to_string(), |s| s.to_string());
        actions.push(Action::Log(format!(
            "event=ro_failed client={} status={status} service={} reason={reason}",
            c.client, c.service
        )));
    }

    /// A refresh of a bound client: reuse the tokens while they are fresh.
    fn refresh(&mut self, now: Instant, key: (Ipv6Addr, Ipv6Addr), actions: &mut Vec<Action>) {
        let Some(c) = self.correspondents.get_mut(&key) else {
            return;
        };
        let (home, care_of) = (!reusable(c.home, now), !reusable(c.care_of, now));
        c.rr_restarts = 0;
        c.resyncs = 0;
        if home || care_of {
            self.start_tests(now, key, home, care_of, actions);
        } else {
            c.phase = RoPhase::Updating;
            self.first_bu(now, key, actions);
        }
    }

    /// Retransmissions, refreshes, expiries and hold-downs that are due at `now`.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let due: Vec<_> = self
            .correspondents
            .iter()
            .filter(|(_, c)| c.next_at.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.timer_due(now, key, &mut actions);
        }
        actions
    }

    fn timer_due(&mut self, now: Instant, key: (Ipv6Addr, Ipv6Addr), actions: &mut Vec<Action>) {
        let (service, client) = key;
        let draining = self.draining;
        let home_left = self.home_left(service, now);
        let Some(c) = self.correspondents.get_mut(&key) else {
            return;
        };
        match c.phase {
            RoPhase::ReturnRoutability | RoPhase::Updating | RoPhase::Deleting => {
                if c.bu_pending {
                    self.send_bu(now, key, actions);
                    return;
                }
                // §11.8: no answer within the timeout: retransmit, doubling it, up to
                // MAX_BINDACK_TIMEOUT; after a wait that long, give up.
                if c.timeout >= MAX_BINDACK_TIMEOUT {
                    if c.deleting {
                        actions.push(c.deletion_done("result=no_answer"));
                    } else {
                        self.fail(now, key, None, "no_answer", actions);
                    }
                    return;
                }
                c.timeout = (c.timeout * 2).min(MAX_BINDACK_TIMEOUT);
                c.next_at = Some(now + c.timeout);
                let testing = c.home_cookie.is_some() || c.care_of_cookie.is_some();
                if testing {
                    actions.push(Action::Log(format!(
                        "event=ro_test_retransmit client={client} service={service} next_timeout_ms={}",
                        c.timeout.as_millis()
                    )));
                    send_tests(&self.config, c, actions);
                } else if c.home.is_none_or(|t| t.age(now) >= MAX_TOKEN_LIFETIME) {
                    // The tokens of the retransmitted BU would be refused: test again.
                    let care_of = !c.deleting;
                    self.start_tests(now, key, true, care_of, actions);
                } else {
                    self.send_bu(now, key, actions);
                }
            }
            RoPhase::Bound => {
                if c.bound_until.is_some_and(|t| t <= now) {
                    actions.push(Action::Log(format!(
                        "event=ro_expired client={client} service={service}"
                    )));
                    self.correspondents.remove(&key);
                    return;
                }
                let used = c.bound_bu_at.is_some_and(|t| c.last_used > t);
                if used && !draining && home_left >= MIN_HOME_LEFT {
                    self.refresh(now, key, actions);
                } else {
                    // Not in use (or no home registration to cover it): let it run out.
                    c.next_at = c.bound_until;
                }
            }
            RoPhase::Failed => {
                self.correspondents.remove(&key);
            }
            RoPhase::Deleted | RoPhase::Legacy => c.next_at = None,
        }
    }

    /// Starts the de-registration of every correspondent binding (§11.7.2): lifetime-0 BUs
    /// to the clients that may hold one. Nothing new starts afterwards.
    pub fn drain(&mut self, now: Instant) -> Vec<Action> {
        self.draining = true;
        let mut actions = Vec::new();
        let keys: Vec<_> = self.correspondents.keys().copied().collect();
        for key in keys {
            let Some(c) = self.correspondents.get_mut(&key) else {
                continue;
            };
            let may_be_bound = c.bound_until.is_some_and(|t| t > now)
                || (c.phase == RoPhase::Updating && !c.outstanding.is_empty());
            if !may_be_bound {
                if c.phase != RoPhase::Legacy {
                    self.correspondents.remove(&key);
                }
                continue;
            }
            c.deleting = true;
            c.phase = RoPhase::Deleting;
            c.home_cookie = None;
            c.care_of_cookie = None;
            c.resyncs = 0;
            c.rr_restarts = 0;
            actions.push(Action::Log(format!(
                "event=ro_deregister client={} service={}",
                c.client, c.service
            )));
            if reusable(c.home, now) {
                self.first_bu(now, key, &mut actions);
            } else {
                self.start_tests(now, key, true, false, &mut actions);
            }
        }
        actions
    }

    /// True when no de-registration is outstanding (after [`drain`](Self::drain)).
    pub fn is_drained(&self) -> bool {
        self.draining && self.correspondents.values().all(|c| !c.deleting)
    }

    /// The correspondents as the state file shows them.
    pub fn status(&self, now: Instant) -> Vec<CorrespondentStatus> {
        self.correspondents
            .values()
            .map(|c| CorrespondentStatus {
                service: c.service,
                client: c.client,
                state: c.phase,
                sequence: c.sequence,
                granted_s: c.granted.map(|g| g.as_secs()),
                lifetime_left_s: c
                    .bound_until
                    .filter(|&t| t > now)
                    .map(|t| t.saturating_duration_since(now).as_secs()),
                last_status: c.last_status,
                bus_sent: c.bus_sent,
                return_routability_runs: c.rr_runs,
                home_token_age_s: c.home.map(|t| t.age(now).as_secs()),
            })
            .collect()
    }
}

/// Sends the tests whose cookies are outstanding.
fn send_tests(config: &RoConfig, c: &Correspondent, actions: &mut Vec<Action>) {
    if let Some(cookie) = c.home_cookie {
        match build_hoti(
            config.care_of,
            config.home_agent,
            c.service,
            c.client,
            cookie,
            config.hop_limit,
        ) {
            Ok(p) => actions.push(Action::Send(p)),
            Err(e) => actions.push(Action::Log(format!("event=ro_build_failed error=\"{e}\""))),
        }
    }
    if let Some(cookie) = c.care_of_cookie {
        match build_coti(config.care_of, c.client, cookie, config.hop_limit) {
            Ok(p) => actions.push(Action::Send(p)),
            Err(e) => actions.push(Action::Log(format!("event=ro_build_failed error=\"{e}\""))),
        }
    }
    actions.push(Action::Log(format!(
        "event=ro_test_sent client={} service={} home={} care_of={}",
        c.client,
        c.service,
        c.home_cookie.is_some(),
        c.care_of_cookie.is_some()
    )));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::{ipv6_packet, mh_packet};
    use crate::test_support::{self, a, coa, ha, log_lines, mh_bytes, svc, with_type2};
    use anycast6_wire::checksum::proto;
    use anycast6_wire::ipv6::Ipv6Packet;
    use anycast6_wire::ipv6ext::ExtHeaderChain;
    use anycast6_wire::mobility::{
        fill_checksum, BindingAck, MhMessage, MhOptions, MhPacket, MhRepr, MobilityOption,
        OptionType,
    };

    fn cn() -> Ipv6Addr {
        a("2001:db8:3::1")
    }

    /// A correspondent node built from the wire crate's RR functions, for scripting.
    struct Cn {
        kcn: [u8; 20],
        nonce: [u8; 8],
        index: u16,
    }

    impl Cn {
        fn new() -> Cn {
            Cn {
                kcn: [0x5c; 20],
                nonce: [1, 2, 3, 4, 5, 6, 7, 8],
                index: 10,
            }
        }
        fn home_token(&self) -> [u8; 8] {
            rr::home_keygen_token(&self.kcn, &svc(), &self.nonce)
        }
        fn care_of_token(&self) -> [u8; 8] {
            rr::care_of_keygen_token(&self.kcn, &coa(), &self.nonce)
        }
        fn kbm(&self) -> [u8; 20] {
            rr::kbm(&self.home_token(), &self.care_of_token())
        }
        /// The HoT, tunnelled by the appliance.
        fn hot(&self, cookie: [u8; 8]) -> Vec<u8> {
            let inner = mh_packet(
                cn(),
                svc(),
                64,
                &MhRepr {
                    message: MhMessage::HomeTest {
                        home_nonce_index: self.index,
                        cookie,
                        keygen_token: self.home_token(),
                    },
                    options: MhOptions::NONE,
                },
            )
            .unwrap();
            tunnel(&inner)
        }
        fn cot(&self, cookie: [u8; 8]) -> Vec<u8> {
            mh_packet(
                cn(),
                coa(),
                64,
                &MhRepr {
                    message: MhMessage::CareOfTest {
                        care_of_nonce_index: self.index,
                        cookie,
                        keygen_token: self.care_of_token(),
                    },
                    options: MhOptions::NONE,
                },
            )
            .unwrap()
        }
        /// A BA to the care-of address with a Type 2 routing header; with BAD under `kbm`.
        fn ba(&self, status: u8, seq: u16, lifetime: u16, kbm: Option<[u8; 20]>) -> Vec<u8> {
            let placeholder = [0u8; 12];
            let opts = [MobilityOption::BindingAuthData(&placeholder)];
            let repr = MhRepr {
                message: MhMessage::BindingAck(BindingAck {
                    status: BaStatus::from(status),
                    key_mgmt: false,
                    other_flags: 0,
                    sequence: seq,
                    lifetime,
                }),
                options: if kbm.is_some() {
                    MhOptions::List(&opts)
                } else {
                    MhOptions::NONE
                },
            };
            let mut mh = mh_bytes(&repr);
            if let Some(kbm) = kbm {
                rr::insert_authenticator(&kbm, &coa(), &cn(), &mut mh).unwrap();
            }
            fill_checksum(&cn(), &svc(), &mut mh).unwrap();
            with_type2(cn(), coa(), svc(), proto::MOBILITY, 64, &mh)
        }
    }

    /// A packet tunnelled by the appliance to the care-of address.
    fn tunnel(inner: &[u8]) -> Vec<u8> {
        test_support::tunnel(ha(), coa(), inner)
    }

    /// A client datagram to the service, tunnelled by the appliance.
    fn client_packet(client: Ipv6Addr) -> Vec<u8> {
        tunnel(&ipv6_packet(client, svc(), proto::NO_NEXT_HEADER, 63, &[0; 8]).unwrap())
    }

    /// Route-optimised data from the client (RH2 = service, No Next Header).
    fn rh2_data() -> Vec<u8> {
        with_type2(cn(), coa(), svc(), proto::NO_NEXT_HEADER, 64, &[])
    }

    /// What the member sent, decoded.
    #[derive(Debug, PartialEq)]
    enum Sent {
        Hoti {
            cookie: [u8; 8],
        },
        Coti {
            cookie: [u8; 8],
        },
        Bu {
            seq: u16,
            lifetime: u16,
            ni: (u16, u16),
            mh: Vec<u8>,
        },
    }

    fn decode(packet: &[u8]) -> Sent {
        let ip = Ipv6Packet::new_checked(packet).unwrap();
        if ip.next_header() == proto::IPV6 {
            assert_eq!((ip.src_addr(), ip.dst_addr()), (coa(), ha()));
            let inner = Ipv6Packet::new_checked(ip.payload()).unwrap();
            assert_eq!((inner.src_addr(), inner.dst_addr()), (svc(), cn()));
            let mh = MhPacket::new_checked(inner.payload()).unwrap();
            assert!(mh.verify_checksum(&svc(), &cn()));
            let MhMessage::HomeTestInit { cookie } = MhRepr::parse(&mh).unwrap().message else {
                panic!("tunnelled, not a HoTI");
            };
            return Sent::Hoti { cookie };
        }
        assert_eq!((ip.src_addr(), ip.dst_addr()), (coa(), cn()));
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        let mh_bytes = chain.upper_layer_bytes(ip.payload()).unwrap();
        let mh = MhPacket::new_checked(mh_bytes).unwrap();
        let pseudo_src = chain.home_address.unwrap_or(coa());
        assert!(mh.verify_checksum(&pseudo_src, &cn()));
        let repr = MhRepr::parse(&mh).unwrap();
        match repr.message {
            MhMessage::CareOfTestInit { cookie } => Sent::Coti { cookie },
            MhMessage::BindingUpdate(bu) => {
                assert_eq!(chain.home_address, Some(svc()));
                assert!(bu.ack && !bu.home_registration);
                let Some(MobilityOption::NonceIndices { home, care_of }) =
                    repr.find_option(OptionType::NonceIndices)
                else {
                    panic!("BU without Nonce Indices");
                };
                Sent::Bu {
                    seq: bu.sequence,
                    lifetime: bu.lifetime,
                    ni: (home, care_of),
                    mh: mh_bytes.to_vec(),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn sent(actions: &[Action]) -> Vec<Sent> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(decode(p)),
                _ => None,
            })
            .collect()
    }

    fn logs(actions: &[Action]) -> String {
        log_lines(actions).join("\n")
    }

    struct Fixture {
        ro: RouteOptimisation,
        t0: Instant,
        cn: Cn,
    }

    impl Fixture {
        fn new() -> Fixture {
            let mut counter = 0u64;
            let cookies = Box::new(move || {
                counter += 1;
                counter.to_be_bytes()
            });
            let t0 = Instant::now();
            let mut ro = RouteOptimisation::new(RoConfig::new(coa(), ha(), vec![svc()]), cookies);
            ro.set_home_expiry(svc(), Some(t0 + Duration::from_secs(600)));
            Fixture {
                ro,
                t0,
                cn: Cn::new(),
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn packet(&mut self, ms: u64, p: &[u8]) -> Vec<Action> {
            let now = self.at(ms);
            self.ro.on_packet(now, p)
        }
        fn timer(&mut self, ms: u64) -> Vec<Action> {
            let now = self.at(ms);
            self.ro.on_timer(now)
        }
        fn state(&self) -> RoPhase {
            self.ro.status(self.t0)[0].state
        }
        /// Client traffic, tests answered: returns the first BU's actions.
        fn answer_tests(&mut self) -> (Vec<Action>, [u8; 8], [u8; 8]) {
            let out = self.packet(0, &client_packet(cn()));
            assert!(logs(&out).contains(&format!("event=ro_start client={}", cn())));
            let tests = sent(&out);
            let [Sent::Hoti { cookie: hc }, Sent::Coti { cookie: cc }] = tests[..] else {
                panic!("expected HoTI and CoTI: {tests:?}");
            };
            assert_ne!(hc, cc);
            let hot = self.cn.hot(hc);
            assert!(sent(&self.packet(10, &hot)).is_empty(), "BU before the CoT");
            let cot = self.cn.cot(cc);
            (self.packet(20, &cot), hc, cc)
        }
        fn bind(&mut self) -> u16 {
            let (out, ..) = self.answer_tests();
            let [Sent::Bu { seq, .. }] = sent(&out)[..] else {
                panic!("no BU");
            };
            let ba = self.cn.ba(0, seq, 105, Some(self.cn.kbm()));
            let out = self.packet(40, &ba);
            assert!(logs(&out).contains("event=ro_bound"), "{}", logs(&out));
            seq
        }
    }

    #[test]
    fn return_routability_then_authenticated_bu_then_bound() {
        let mut f = Fixture::new();
        let (out, ..) = f.answer_tests();
        let s = sent(&out);
        let [Sent::Bu {
            seq,
            lifetime,
            ni,
            ref mh,
        }] = s[..]
        else {
            panic!("{s:?}");
        };
        assert_eq!(seq, 1, "sequence numbers start at 1");
        assert_eq!(lifetime, 105, "MAX_RR_BINDING_LIFETIME in 4-second units");
        assert_eq!(ni, (10, 10));
        // The client can check the authenticator with its own tokens.
        assert!(rr::verify_authenticator(&f.cn.kbm(), &coa(), &cn(), mh).unwrap());
        let ba = f.cn.ba(0, 1, 105, Some(f.cn.kbm()));
        let out = f.packet(40, &ba);
        assert!(logs(&out).contains(&format!(
            "event=ro_bound client={} lifetime=420 seq=1",
            cn()
        )));
        assert_eq!(f.state(), RoPhase::Bound);
        let st = &f.ro.status(f.at(40))[0];
        assert_eq!(st.granted_s, Some(420));
        assert_eq!(st.last_status, Some(0));
        // More traffic from the client starts nothing new.
        assert!(sent(&f.packet(50, &client_packet(cn()))).is_empty());
    }

    #[test]
    fn lifetime_follows_the_home_registration_and_needs_one() {
        let mut f = Fixture::new();
        f.ro.set_home_expiry(svc(), Some(f.t0 + Duration::from_secs(101)));
        let (out, ..) = f.answer_tests();
        assert!(matches!(sent(&out)[..], [Sent::Bu { lifetime: 25, .. }]));
        let mut g = Fixture::new();
        g.ro.set_home_expiry(svc(), None);
        assert!(g.packet(0, &client_packet(cn())).is_empty());
        g.ro.set_home_expiry(svc(), Some(g.t0 + Duration::from_secs(5)));
        assert!(g.packet(0, &client_packet(cn())).is_empty(), "too short");
    }

    #[test]
    fn wrong_cookies_and_forged_bas_are_ignored() {
        let mut f = Fixture::new();
        let out = f.packet(0, &client_packet(cn()));
        let [Sent::Hoti { cookie: hc }, Sent::Coti { cookie: cc }] = sent(&out)[..] else {
            panic!();
        };
        assert!(f.packet(5, &f.cn.hot([0xee; 8])).is_empty());
        assert!(f.packet(5, &f.cn.cot(hc)).is_empty(), "the home cookie");
        f.packet(10, &f.cn.hot(hc));
        let out = f.packet(20, &f.cn.cot(cc));
        assert_eq!(sent(&out).len(), 1);
        // A BA under another key, or without BAD, does not bind.
        let forged = f.cn.ba(0, 1, 105, Some([9; 20]));
        assert!(logs(&f.packet(30, &forged)).contains("ro_ba_ignored"));
        let bare = f.cn.ba(0, 1, 105, None);
        assert!(logs(&f.packet(30, &bare)).contains("ro_ba_ignored"));
        assert_eq!(f.state(), RoPhase::Updating);
    }

    #[test]
    fn retransmissions_double_then_give_up() {
        let mut f = Fixture::new();
        f.packet(0, &client_packet(cn()));
        // Tests: again at 1 s, 3 s, 7 s, 15 s, 31 s, 63 s (1, 2, 4, 8, 16, 32 s waits).
        let mut at = 0;
        for wait in [1000, 2000, 4000, 8000, 16000] {
            assert!(sent(&f.timer(at + wait - 1)).is_empty());
            at += wait;
            let s = sent(&f.timer(at));
            assert!(
                matches!(s[..], [Sent::Hoti { .. }, Sent::Coti { .. }]),
                "{s:?}"
            );
        }
        at += 32000;
        let out = f.timer(at);
        assert!(
            logs(&out).contains(&format!("event=ro_failed client={} status=none", cn())),
            "{}",
            logs(&out)
        );
        assert_eq!(f.state(), RoPhase::Failed);
        // Held down, then forgotten; the next packet starts again.
        assert!(f.packet(at + 10, &client_packet(cn())).is_empty());
        f.timer(at + FAILED_HOLD_DOWN.as_millis() as u64);
        assert!(f.ro.status(f.t0).is_empty());
        let out = f.packet(
            at + FAILED_HOLD_DOWN.as_millis() as u64 + 1,
            &client_packet(cn()),
        );
        assert!(logs(&out).contains("event=ro_start"));
    }

    #[test]
    fn bu_retransmitted_with_new_sequence_numbers() {
        let mut f = Fixture::new();
        f.answer_tests();
        let s = sent(&f.timer(1020));
        assert!(matches!(s[..], [Sent::Bu { seq: 2, .. }]), "{s:?}");
        assert!(sent(&f.timer(3019)).is_empty());
        let s = sent(&f.timer(3020));
        assert!(matches!(s[..], [Sent::Bu { seq: 3, .. }]), "{s:?}");
        // A BA to the first BU still counts.
        let out = f.packet(3100, &f.cn.ba(0, 1, 105, Some(f.cn.kbm())));
        assert!(logs(&out).contains("seq=1"));
        assert_eq!(f.state(), RoPhase::Bound);
    }

    #[test]
    fn status_135_continues_above_the_clients_number_at_most_three_per_second() {
        let mut f = Fixture::new();
        f.answer_tests();
        // BU 1 went out at 20 ms; the answer at 40 ms says the client last took 700.
        let out = f.packet(40, &f.cn.ba(135, 700, 0, Some(f.cn.kbm())));
        assert!(logs(&out).contains("event=ro_sequence_resync"));
        assert!(sent(&out).is_empty(), "MAX_UPDATE_RATE: not within 334 ms");
        assert_eq!(f.ro.next_timer(), Some(f.at(20) + MIN_BU_SPACING));
        let s = sent(&f.timer(354));
        assert!(matches!(s[..], [Sent::Bu { seq: 701, .. }]), "{s:?}");
        let out = f.packet(400, &f.cn.ba(0, 701, 105, Some(f.cn.kbm())));
        assert!(logs(&out).contains("event=ro_bound"));
    }

    #[test]
    fn expired_nonces_rerun_the_tests_they_name() {
        let mut f = Fixture::new();
        f.answer_tests();
        // 136: the home token only.
        let out = f.packet(40, &f.cn.ba(136, 1, 0, None));
        let s = sent(&out);
        let [Sent::Hoti { cookie }] = s[..] else {
            panic!("{s:?}");
        };
        f.cn.nonce = [8; 8];
        f.cn.index = 11;
        // The BU waits for MAX_UPDATE_RATE (the last one left at 20 ms).
        assert!(sent(&f.packet(60, &f.cn.hot(cookie))).is_empty());
        let s = sent(&f.timer(354));
        // New home token with the old care-of token: NI (11, 10).
        assert!(
            matches!(
                s[..],
                [Sent::Bu {
                    seq: 2,
                    ni: (11, 10),
                    ..
                }]
            ),
            "{s:?}"
        );
        // 138: both.
        let out = f.packet(400, &f.cn.ba(138, 2, 0, None));
        assert!(matches!(
            sent(&out)[..],
            [Sent::Hoti { .. }, Sent::Coti { .. }]
        ));
        // A 137 for a BU never sent is ignored.
        assert!(logs(&f.packet(410, &f.cn.ba(137, 77, 0, None))).is_empty());
    }

    #[test]
    fn other_rejections_fail_the_client() {
        let mut f = Fixture::new();
        f.answer_tests();
        let out = f.packet(40, &f.cn.ba(130, 1, 0, Some(f.cn.kbm())));
        assert!(logs(&out).contains(&format!("event=ro_failed client={} status=130", cn())));
        assert_eq!(f.state(), RoPhase::Failed);
    }

    /// An ICMPv6 Parameter Problem from the client quoting `quoted`.
    fn parameter_problem(code: u8, quoted: &[u8], to: Ipv6Addr) -> Vec<u8> {
        test_support::parameter_problem(cn(), to, code, quoted)
    }

    #[test]
    fn parameter_problem_code_1_makes_the_client_legacy_for_good() {
        let mut f = Fixture::new();
        let out = f.packet(0, &client_packet(cn()));
        let coti = out
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) if p[6] == proto::MOBILITY => Some(p.clone()),
                _ => None,
            })
            .next()
            .unwrap();
        // Code 0 (a header field) is not "no Mobile IPv6"; a quote with another cookie is
        // not about our test.
        assert!(f.packet(5, &parameter_problem(0, &coti, coa())).is_empty());
        let mut other = coti.clone();
        other[48] ^= 0xff;
        assert!(f.packet(5, &parameter_problem(1, &other, coa())).is_empty());
        let out = f.packet(10, &parameter_problem(1, &coti, coa()));
        assert_eq!(
            logs(&out),
            format!(
                "event=ro_legacy client={} reason=parameter_problem_code_1",
                cn()
            )
        );
        assert_eq!(f.state(), RoPhase::Legacy);
        assert!(f.ro.is_legacy(cn()));
        // No retransmission, no new start, ever.
        assert!(f.timer(100_000).is_empty());
        assert!(f.packet(200_000, &client_packet(cn())).is_empty());
        assert_eq!(f.ro.next_timer(), None);
    }

    #[test]
    fn parameter_problem_about_the_hoti_comes_back_tunnelled() {
        let mut f = Fixture::new();
        let out = f.packet(0, &client_packet(cn()));
        let hoti = out
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) if p[6] == proto::IPV6 => Some(p[40..].to_vec()),
                _ => None,
            })
            .next()
            .unwrap();
        let out = f.packet(10, &tunnel(&parameter_problem(1, &hoti, svc())));
        assert!(logs(&out).contains("event=ro_legacy"));
    }

    fn binding_error(status: u8, home: Ipv6Addr) -> Vec<u8> {
        mh_packet(
            cn(),
            coa(),
            64,
            &MhRepr {
                message: MhMessage::BindingError {
                    status: BeStatus::from(status),
                    home_address: home,
                },
                options: MhOptions::NONE,
            },
        )
        .unwrap()
    }

    #[test]
    fn binding_errors() {
        let mut f = Fixture::new();
        f.bind();
        // Status 1 about somebody else's home address: not ours to repair.
        assert!(
            sent(&f.packet(4000, &binding_error(1, "2001:db8:999::1".parse().unwrap()))).is_empty()
        );
        // Status 1: the client lost the binding: return routability and a BU again.
        let out = f.packet(5000, &binding_error(1, svc()));
        assert!(matches!(
            sent(&out)[..],
            [Sent::Hoti { .. }, Sent::Coti { .. }]
        ));
        // ... not again within a second.
        assert!(f.packet(5500, &binding_error(1, svc())).is_empty());
        // Status 2: no route optimisation with this client.
        let out = f.packet(6000, &binding_error(2, Ipv6Addr::UNSPECIFIED));
        assert!(logs(&out).contains("reason=binding_error_status_2"));
        assert!(f.ro.is_legacy(cn()));
    }

    #[test]
    fn refresh_only_when_used_and_expiry_otherwise() {
        let mut f = Fixture::new();
        f.bind();
        // Refresh point: 80 % of 420 s after the BU (sent at 20 ms).
        let refresh = 20 + 336_000;
        assert_eq!(f.ro.next_timer(), Some(f.at(refresh)));
        // The client used the binding (route-optimised data, delivered without the RH2).
        let out = f.packet(100_000, &rh2_data());
        let [Action::Deliver(d)] = &out[..] else {
            panic!("{out:?}");
        };
        assert_eq!(Ipv6Packet::new_checked(&d[..]).unwrap().dst_addr(), svc());
        // The tokens are 336 s old by then: new tests before the BU.
        let s = sent(&f.timer(refresh));
        assert!(
            matches!(s[..], [Sent::Hoti { .. }, Sent::Coti { .. }]),
            "{s:?}"
        );

        let mut g = Fixture::new();
        g.bind();
        assert!(sent(&g.timer(refresh)).is_empty(), "unused: no refresh");
        let out = g.timer(20 + 420_000);
        assert!(logs(&out).contains("event=ro_expired"));
        assert!(g.ro.status(g.t0).is_empty());
    }

    #[test]
    fn tunnelled_traffic_from_a_bound_client_binds_again() {
        let mut f = Fixture::new();
        f.bind();
        // In flight when the client switched: nothing.
        assert!(f.packet(2_000, &client_packet(cn())).is_empty());
        // Long after: the client lost the binding; fresh tokens, so straight to a BU.
        let out = f.packet(30_000, &client_packet(cn()));
        assert!(logs(&out).contains("event=ro_rebind"), "{}", logs(&out));
        assert!(matches!(sent(&out)[..], [Sent::Bu { seq: 2, .. }]));
        // Not again and again while it is under way.
        assert!(f.packet(31_000, &client_packet(cn())).is_empty());
    }

    #[test]
    fn binding_refresh_request_refreshes_with_fresh_tokens() {
        let mut f = Fixture::new();
        f.bind();
        let brr = tunnel(
            &mh_packet(
                cn(),
                svc(),
                64,
                &MhRepr {
                    message: MhMessage::BindingRefreshRequest,
                    options: MhOptions::NONE,
                },
            )
            .unwrap(),
        );
        let s = sent(&f.packet(60_000, &brr));
        assert!(
            matches!(
                s[..],
                [Sent::Bu {
                    seq: 2,
                    lifetime: 105,
                    ..
                }]
            ),
            "{s:?}"
        );
    }

    #[test]
    fn drain_deletes_the_binding_with_the_home_token() {
        let mut f = Fixture::new();
        f.bind();
        let out = f.ro.drain(f.at(60_000));
        let s = sent(&out);
        let [Sent::Bu {
            seq: 2,
            lifetime: 0,
            ni: (10, 0),
            ref mh,
        }] = s[..]
        else {
            panic!("{s:?}");
        };
        let kbm = rr::kbm_home_only(&f.cn.home_token());
        assert!(rr::verify_authenticator(&kbm, &coa(), &cn(), mh).unwrap());
        assert!(!f.ro.is_drained());
        // Nothing new starts while draining.
        assert!(sent(&f.packet(60_010, &client_packet(a("2001:db8:3::2")))).is_empty());
        let out = f.packet(60_020, &f.cn.ba(0, 2, 0, Some(kbm)));
        assert!(
            logs(&out).contains("event=ro_deregistered"),
            "{}",
            logs(&out)
        );
        assert!(f.ro.is_drained());
        assert_eq!(f.state(), RoPhase::Deleted);
    }

    #[test]
    fn drain_with_a_stale_home_token_runs_the_home_test_first() {
        let mut f = Fixture::new();
        f.bind();
        let out = f.ro.drain(f.at(200_000));
        let s = sent(&out);
        let [Sent::Hoti { cookie }] = s[..] else {
            panic!("{s:?}");
        };
        let s = sent(&f.packet(200_010, &f.cn.hot(cookie)));
        assert!(
            matches!(
                s[..],
                [Sent::Bu {
                    lifetime: 0,
                    ni: (10, 0),
                    ..
                }]
            ),
            "{s:?}"
        );
    }

    #[test]
    fn drain_without_answers_ends() {
        let mut f = Fixture::new();
        f.bind();
        f.ro.drain(f.at(1000));
        let mut at = 1000;
        for wait in [1000, 2000, 4000, 8000, 16000] {
            at += wait;
            assert_eq!(sent(&f.timer(at)).len(), 1);
        }
        at += 32000;
        assert!(logs(&f.timer(at)).contains("result=no_answer"));
        assert!(f.ro.is_drained());
    }

    #[test]
    fn capacity_is_bounded() {
        let mut f = Fixture::new();
        f.ro.config.max_correspondents = 2;
        for i in 1..=3u16 {
            let client = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, i);
            f.packet(0, &client_packet(client));
        }
        assert_eq!(f.ro.status(f.t0).len(), 2);
        // Link-local and multicast sources are never clients.
        f.ro.config.max_correspondents = 10;
        assert!(f.packet(0, &client_packet(a("fe80::1"))).is_empty());
    }
}
