//! Route optimisation through the appliance, and the trigger signals that undo it when a
//! member fails (the "hot swap" of route-optimised clients).
//!
//! A member may run return routability (RFC 6275 §5.2) with a client and then bind its
//! care-of address at the client, which from then on sends to the member directly and no
//! longer through the appliance. The member's Home Test Init leaves through its tunnel to
//! the appliance (reverse tunnelling, §10.4.5) and the client's Home Test comes back to the
//! service address (the home address), so both cross the appliance in clear. The tracker
//! notes, per (service, client):
//!
//! * which member sent the HoTI (by its cookie), so that the HoT goes back to that member
//!   whatever the service's affinity mode;
//! * the home keygen token and home nonce index of the HoT, and when it was seen: for
//!   MAX_TOKEN_LIFETIME (210 s, §12) the token lets the appliance itself build a Binding
//!   Update for the home address.
//!
//! When that member fails (health check down, drain, de-registration, expiry), each such
//! client gets a *trigger*: a "returned home" Binding Update (§11.7.2, §9.5.3) from the
//! service address without a Home Address option, H=0, A=1, lifetime 0, Nonce Indices
//! (home index, 0) and Binding Authorization Data with Kbm = SHA1(home keygen token), the
//! service address standing as the care-of address of the authenticator (§5.2.6). A
//! correspondent that accepts it deletes its binding (§9.5.3) and sends to the service
//! address again, where the data plane picks a live member.
//!
//! The appliance never saw the member's own Binding Update to the client, so it does not
//! know the sequence number: it starts at 0 and, on Binding Acknowledgement status 135,
//! retries with the acknowledged (last accepted) number plus one (§9.5.1). On 136 or 138
//! (expired home nonce), or when the recorded token is older than MAX_TOKEN_LIFETIME or
//! missing, it runs its own home test: a HoTI from the service address, whose HoT returns
//! to the service address and is consumed here. Binding Updates are retransmitted from
//! INITIAL_BINDACK_TIMEOUT doubling to MAX_BINDACK_TIMEOUT (§11.8), at most MAX_UPDATE_RATE
//! per second per client (§11.8), until a Binding Acknowledgement or `give_up_after`.
//!
//! Sans I/O: [`RoTracker`] is driven with the time and returns the packets to send; the
//! control plane ([`super::plane`]) parses and sends.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::mobility::{
    BindingAck, BindingUpdate, MhMessage, MhOptions, MhPacket, MhRepr, MobilityOption,
};
use anycast6_wire::rr;

/// RFC 6275 §12: a keygen token is usable for at least this long after its HoT.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(210);
/// RFC 6275 §12: most Binding Updates per second to one correspondent.
pub const MAX_UPDATE_RATE: usize = 3;
/// RFC 6275 §12 and §11.8: first retransmission timeout of a Binding Update.
pub const INITIAL_BINDACK_TIMEOUT: Duration = Duration::from_secs(1);
/// RFC 6275 §12: the retransmission timeout stops doubling here.
pub const MAX_BINDACK_TIMEOUT: Duration = Duration::from_secs(32);
/// RFC 6275 §12: a correspondent binding made by return routability lasts at most this
/// long; a record with nothing newer is forgotten after it (the client's binding to the
/// member has expired by then whatever happened).
pub const MAX_RR_BINDING_LIFETIME: Duration = Duration::from_secs(420);
/// How long a member's HoTI is remembered while its HoT is awaited.
const HOTI_MEMORY: Duration = Duration::from_secs(10);
/// Hop limit of the messages the appliance sends as the home address.
const HOP_LIMIT: u8 = 64;
/// Most member HoTIs awaiting a HoT at once (a bound on memory under a flood).
const MAX_PENDING_HOTI: usize = 4096;

/// Route-optimisation settings (`[route_optimisation]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoConfig {
    /// Send trigger Binding Updates at all.
    pub triggers: bool,
    /// Stop trying for a client after this long.
    pub give_up_after: Duration,
    /// Most (service, client) records; the least recently active goes first.
    pub max_clients: usize,
}

impl Default for RoConfig {
    fn default() -> RoConfig {
        RoConfig {
            triggers: true,
            give_up_after: Duration::from_secs(30),
            max_clients: 65536,
        }
    }
}

/// A member as the tracker knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoMember {
    pub id: u32,
    pub epoch: u32,
    pub care_of: Ipv6Addr,
}

/// Why a member's route-optimised clients are sent home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    Down,
    Draining,
    Gone,
}

impl FailReason {
    pub fn name(self) -> &'static str {
        match self {
            FailReason::Down => "down",
            FailReason::Draining => "draining",
            FailReason::Gone => "gone",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct HomeToken {
    token: [u8; rr::TOKEN_LEN],
    nonce_index: u16,
    at: Instant,
}

/// Where a trigger stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerState {
    /// Waiting for the HoT of our own HoTI.
    HomeTest,
    /// Binding Updates going out, waiting for the Binding Acknowledgement.
    Updating,
    /// The client acknowledged the deletion.
    Done,
    /// `give_up_after` passed, or the client refused for good.
    GaveUp,
    /// The member recovered before the client answered.
    Cancelled,
}

impl TriggerState {
    pub fn name(self) -> &'static str {
        match self {
            TriggerState::HomeTest => "home_test",
            TriggerState::Updating => "pending",
            TriggerState::Done => "done",
            TriggerState::GaveUp => "gave_up",
            TriggerState::Cancelled => "cancelled",
        }
    }

    fn is_active(self) -> bool {
        matches!(self, TriggerState::HomeTest | TriggerState::Updating)
    }
}

#[derive(Debug, Clone)]
struct Trigger {
    member: RoMember,
    started: Instant,
    state: TriggerState,
    /// Sequence number of the next (or last) Binding Update.
    sequence: u16,
    /// Binding Updates sent.
    attempts: u32,
    /// HoTIs sent.
    home_tests: u32,
    /// When the next BU or HoTI is due.
    next_at: Instant,
    timeout: Duration,
    /// Send times of the last Binding Updates (MAX_UPDATE_RATE window).
    sent: VecDeque<Instant>,
    last_status: Option<u8>,
    own_cookie: Option<[u8; 8]>,
    ended: Option<Instant>,
}

#[derive(Debug, Clone)]
struct ClientRecord {
    /// The member that last ran return routability with the client.
    member: RoMember,
    token: Option<HomeToken>,
    last_activity: Instant,
    trigger: Option<Trigger>,
}

#[derive(Debug, Clone, Copy)]
struct PendingHoti {
    service: Ipv6Addr,
    client: Ipv6Addr,
    member: RoMember,
    cookie: [u8; 8],
    at: Instant,
}

/// What to do with a Home Test the client sent to a service address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotOutcome {
    /// The answer to this member's HoTI: tunnel it there.
    ToMember(RoMember),
    /// The answer to the appliance's own HoTI: consumed.
    Consumed,
    /// No HoTI with this cookie: deliver it like any other packet to the service.
    Unknown,
}

/// Counters (all monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoCounters {
    pub member_hotis: u64,
    pub hots_to_members: u64,
    pub hots_unmatched: u64,
    pub tokens_recorded: u64,
    pub triggers_started: u64,
    pub trigger_bus_sent: u64,
    pub trigger_retries_135: u64,
    pub own_home_tests: u64,
    pub triggers_done: u64,
    pub triggers_gave_up: u64,
    pub triggers_cancelled: u64,
    pub trigger_bas_bad_auth: u64,
    pub brr_answered: u64,
    pub unreachable_sent: u64,
    pub records_evicted: u64,
}

/// An IPv6 packet the appliance sends as the service address to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToClient {
    pub service: Ipv6Addr,
    pub client: Ipv6Addr,
    pub packet: Vec<u8>,
}

/// One route-optimised client, for `ctl bindings`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoClientView {
    pub service: Ipv6Addr,
    pub client: Ipv6Addr,
    pub member: u32,
    pub care_of: Ipv6Addr,
    /// Age of the recorded home keygen token, seconds; none recorded: null.
    pub token_age_s: Option<f64>,
    pub trigger: Option<TriggerView>,
}

/// A trigger's progress, for `ctl bindings`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TriggerView {
    pub state: String,
    pub attempts: u32,
    pub home_tests: u32,
    pub last_status: Option<u8>,
    pub elapsed_s: f64,
}

/// The route-optimisation tracker (see the module documentation).
pub struct RoTracker {
    config: RoConfig,
    clients: BTreeMap<(Ipv6Addr, Ipv6Addr), ClientRecord>,
    pending: VecDeque<PendingHoti>,
    cookies: Box<dyn FnMut() -> [u8; 8] + Send>,
    counters: RoCounters,
    log: Vec<String>,
}

/// Eight octets from the operating system's random source: cookies must not be guessable
/// (RFC 6275 §5.2.1), or an off-path node could forge the HoT that answers our HoTI.
fn random_cookie() -> [u8; 8] {
    let mut c = [0u8; 8];
    if getrandom::fill(&mut c).is_err() {
        // No entropy source at all: the cookie is then only unique, from the clock.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        c = (t.as_nanos() as u64).to_be_bytes();
    }
    c
}

impl RoTracker {
    pub fn new(config: RoConfig) -> RoTracker {
        RoTracker::with_cookies(config, Box::new(random_cookie))
    }

    /// A tracker whose cookies come from `cookies` (tests).
    pub fn with_cookies(config: RoConfig, cookies: Box<dyn FnMut() -> [u8; 8] + Send>) -> Self {
        RoTracker {
            config,
            clients: BTreeMap::new(),
            pending: VecDeque::new(),
            cookies,
            counters: RoCounters::default(),
            log: Vec::new(),
        }
    }

    pub fn config(&self) -> &RoConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: RoConfig) {
        self.config = config;
    }

    pub fn counters(&self) -> &RoCounters {
        &self.counters
    }

    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// The member a client's Mobility Header traffic is pinned to, if any.
    pub fn member_of(&self, service: Ipv6Addr, client: Ipv6Addr) -> Option<RoMember> {
        self.clients.get(&(service, client)).map(|r| r.member)
    }

    /// A member's HoTI to `client` crossed the appliance (reverse-tunnelled).
    pub fn on_member_hoti(
        &mut self,
        now: Instant,
        service: Ipv6Addr,
        client: Ipv6Addr,
        member: RoMember,
        cookie: [u8; 8],
    ) {
        self.counters.member_hotis += 1;
        self.expire_pending(now);
        if self.pending.len() >= MAX_PENDING_HOTI {
            self.pending.pop_front();
        }
        self.pending.push_back(PendingHoti {
            service,
            client,
            member,
            cookie,
            at: now,
        });
    }

    fn expire_pending(&mut self, now: Instant) {
        while self
            .pending
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.at) > HOTI_MEMORY)
        {
            self.pending.pop_front();
        }
    }

    /// The client's HoT to the service address (§5.2.3): whose HoTI it answers.
    pub fn on_hot(
        &mut self,
        now: Instant,
        service: Ipv6Addr,
        client: Ipv6Addr,
        nonce_index: u16,
        cookie: [u8; 8],
        token: [u8; rr::TOKEN_LEN],
    ) -> HotOutcome {
        self.expire_pending(now);
        // Our own home test, for a trigger.
        if let Some(rec) = self.clients.get_mut(&(service, client)) {
            if let Some(t) = rec.trigger.as_mut() {
                if t.state == TriggerState::HomeTest && t.own_cookie == Some(cookie) {
                    rec.token = Some(HomeToken {
                        token,
                        nonce_index,
                        at: now,
                    });
                    t.own_cookie = None;
                    t.state = TriggerState::Updating;
                    t.next_at = now;
                    t.timeout = INITIAL_BINDACK_TIMEOUT;
                    self.counters.tokens_recorded += 1;
                    return HotOutcome::Consumed;
                }
            }
        }
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.service == service && p.client == client && p.cookie == cookie)
        else {
            self.counters.hots_unmatched += 1;
            return HotOutcome::Unknown;
        };
        let Some(p) = self.pending.remove(i) else {
            return HotOutcome::Unknown;
        };
        self.counters.hots_to_members += 1;
        self.counters.tokens_recorded += 1;
        let token = Some(HomeToken {
            token,
            nonce_index,
            at: now,
        });
        match self.clients.get_mut(&(service, client)) {
            Some(rec) => {
                // A new member's return routability replaces whatever was known; a trigger
                // about an earlier member is over for this client.
                if rec.member != p.member {
                    if let Some(t) = rec.trigger.as_ref() {
                        if t.state.is_active() {
                            self.counters.triggers_cancelled += 1;
                        }
                    }
                    rec.trigger = None;
                }
                rec.member = p.member;
                rec.token = token;
                rec.last_activity = now;
            }
            None => {
                self.make_room(now);
                self.clients.insert(
                    (service, client),
                    ClientRecord {
                        member: p.member,
                        token,
                        last_activity: now,
                        trigger: None,
                    },
                );
            }
        }
        self.log.push(format!(
            "event=ro_token service={service} client={client} member={} care_of={} \
             nonce_index={nonce_index}",
            p.member.id, p.member.care_of
        ));
        HotOutcome::ToMember(p.member)
    }

    /// Forgets records past MAX_RR_BINDING_LIFETIME without an active trigger; when still
    /// full, the least recently active.
    fn make_room(&mut self, now: Instant) {
        if self.clients.len() < self.config.max_clients.max(1) {
            return;
        }
        self.forget_stale(now);
        while self.clients.len() >= self.config.max_clients.max(1) {
            let Some(oldest) = self
                .clients
                .iter()
                .min_by_key(|(_, r)| r.last_activity)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.clients.remove(&oldest);
            self.counters.records_evicted += 1;
        }
    }

    fn forget_stale(&mut self, now: Instant) {
        self.clients.retain(|_, r| {
            r.trigger.as_ref().is_some_and(|t| t.state.is_active())
                || now.saturating_duration_since(r.last_activity) < MAX_RR_BINDING_LIFETIME
        });
    }

    /// A member stopped serving: trigger every client route-optimised to it. Returns how
    /// many triggers started.
    pub fn member_failed(
        &mut self,
        now: Instant,
        service: Ipv6Addr,
        id: u32,
        epoch: u32,
        reason: FailReason,
    ) -> usize {
        if !self.config.triggers {
            return 0;
        }
        self.forget_stale(now);
        let mut started = 0;
        for ((svc, client), rec) in self.clients.iter_mut() {
            if *svc != service || rec.member.id != id || rec.member.epoch != epoch {
                continue;
            }
            if start_trigger(
                rec,
                now,
                *svc,
                *client,
                reason,
                &mut self.counters,
                &mut self.log,
            ) {
                started += 1;
            }
        }
        started
    }

    /// The member is serving again: pending triggers for it stop (the client's binding to
    /// it works again).
    pub fn member_restored(&mut self, service: Ipv6Addr, id: u32, epoch: u32, now: Instant) {
        for ((svc, client), rec) in self.clients.iter_mut() {
            if *svc != service || rec.member.id != id || rec.member.epoch != epoch {
                continue;
            }
            if let Some(t) = rec.trigger.as_mut().filter(|t| t.state.is_active()) {
                t.state = TriggerState::Cancelled;
                t.ended = Some(now);
                self.counters.triggers_cancelled += 1;
                self.log.push(format!(
                    "event=trigger_cancelled service={service} client={client} member={id}"
                ));
            }
        }
    }

    /// True when `client` has an active trigger or is bound to a failed member the
    /// caller names: a Binding Refresh Request from it is then answered by a trigger
    /// rather than forwarded. `member_alive` tells whether the recorded member serves.
    pub fn on_brr(
        &mut self,
        now: Instant,
        service: Ipv6Addr,
        client: Ipv6Addr,
        member_alive: impl Fn(&RoMember) -> bool,
    ) -> bool {
        if !self.config.triggers {
            return false;
        }
        let Some(rec) = self.clients.get(&(service, client)) else {
            return false;
        };
        if rec.trigger.as_ref().is_some_and(|t| t.state.is_active()) {
            self.counters.brr_answered += 1;
            return true;
        }
        if member_alive(&rec.member) {
            return false;
        }
        // §9.5.5: the client asks the home address to refresh a binding whose member is
        // gone; the answer is the returned-home update.
        let Some(rec) = self.clients.get_mut(&(service, client)) else {
            return false;
        };
        let started = start_trigger(
            rec,
            now,
            service,
            client,
            FailReason::Gone,
            &mut self.counters,
            &mut self.log,
        );
        if started {
            self.counters.brr_answered += 1;
        }
        started
    }

    /// A Binding Acknowledgement from `client` to the service address. `mh` is the whole
    /// Mobility Header (for the authenticator). Returns true when it answered a trigger.
    pub fn on_binding_ack(
        &mut self,
        now: Instant,
        service: Ipv6Addr,
        client: Ipv6Addr,
        ba: &BindingAck,
        mh: &[u8],
    ) -> bool {
        let Some(rec) = self.clients.get_mut(&(service, client)) else {
            return false;
        };
        let Some(t) = rec.trigger.as_mut() else {
            return false;
        };
        if t.state != TriggerState::Updating || t.attempts == 0 {
            return false;
        }
        let status = ba.status.into();
        let expired_nonce = matches!(status, 136..=138);
        if !expired_nonce {
            // §9.5.4: every other BA from a correspondent carries the authenticator, made
            // with the Kbm of our BU; the "care-of address" of a returned-home BU is the
            // home address (§5.2.6).
            let Some(tok) = rec.token else {
                return false;
            };
            let kbm = rr::kbm_home_only(&tok.token);
            if !rr::verify_authenticator(&kbm, &service, &client, mh).unwrap_or(false) {
                self.counters.trigger_bas_bad_auth += 1;
                self.log.push(format!(
                    "event=trigger_ba_refused service={service} client={client} status={status} \
                     why=authenticator"
                ));
                return true;
            }
        } else if ba.sequence != t.sequence {
            return false;
        }
        t.last_status = Some(status);
        self.log.push(format!(
            "event=trigger_ba service={service} client={client} status={status} seq={}",
            ba.sequence
        ));
        match status {
            // 133: the client holds no binding for the service address (the member deleted
            // it itself when it drained, §11.7.2): what the trigger wanted.
            0..=127 | 133 => {
                t.state = TriggerState::Done;
                t.ended = Some(now);
                self.counters.triggers_done += 1;
                self.log.push(format!(
                    "event=trigger_done service={service} client={client} member={} \
                     elapsed_ms={} attempts={}",
                    t.member.id,
                    now.saturating_duration_since(t.started).as_millis(),
                    t.attempts
                ));
            }
            135 => {
                // §9.5.1: the BA carries the last accepted sequence number.
                t.sequence = ba.sequence.wrapping_add(1);
                t.next_at = now;
                t.timeout = INITIAL_BINDACK_TIMEOUT;
                self.counters.trigger_retries_135 += 1;
            }
            136..=138 => {
                // Expired nonce: a fresh home keygen token from our own home test.
                rec.token = None;
                t.state = TriggerState::HomeTest;
                t.own_cookie = None;
                t.next_at = now;
                t.timeout = INITIAL_BINDACK_TIMEOUT;
            }
            _ => {
                // 128-132, 134, 139 and others: the client refuses this deletion for good.
                t.state = TriggerState::GaveUp;
                t.ended = Some(now);
                self.counters.triggers_gave_up += 1;
                self.log.push(format!(
                    "event=trigger_gave_up service={service} client={client} member={} \
                     why=status_{status}",
                    t.member.id
                ));
            }
        }
        true
    }

    /// Timers: Binding Updates and HoTIs due, give-ups. Returns the packets to send.
    pub fn poll(&mut self, now: Instant) -> Vec<ToClient> {
        let mut out = Vec::new();
        let give_up_after = self.config.give_up_after;
        for ((service, client), rec) in self.clients.iter_mut() {
            let Some(t) = rec.trigger.as_mut() else {
                continue;
            };
            if !t.state.is_active() {
                continue;
            }
            if now.saturating_duration_since(t.started) >= give_up_after {
                t.state = TriggerState::GaveUp;
                t.ended = Some(now);
                self.counters.triggers_gave_up += 1;
                self.log.push(format!(
                    "event=trigger_gave_up service={service} client={client} member={} \
                     why=timeout attempts={}",
                    t.member.id, t.attempts
                ));
                continue;
            }
            if t.next_at > now {
                continue;
            }
            match t.state {
                TriggerState::HomeTest => {
                    let cookie = (self.cookies)();
                    t.own_cookie = Some(cookie);
                    t.home_tests += 1;
                    t.next_at = now + t.timeout;
                    t.timeout = (t.timeout * 2).min(MAX_BINDACK_TIMEOUT);
                    self.counters.own_home_tests += 1;
                    self.log.push(format!(
                        "event=trigger_hoti service={service} client={client}"
                    ));
                    out.push(ToClient {
                        service: *service,
                        client: *client,
                        packet: home_test_init(*service, *client, cookie),
                    });
                }
                TriggerState::Updating => {
                    let Some(tok) = rec.token else {
                        t.state = TriggerState::HomeTest;
                        t.next_at = now;
                        continue;
                    };
                    // MAX_UPDATE_RATE: at most 3 BUs in any second to this client.
                    while t.sent.front().is_some_and(|&s| {
                        now.saturating_duration_since(s) >= Duration::from_secs(1)
                    }) {
                        t.sent.pop_front();
                    }
                    if t.sent.len() >= MAX_UPDATE_RATE {
                        if let Some(&first) = t.sent.front() {
                            t.next_at = first + Duration::from_secs(1);
                        }
                        continue;
                    }
                    let Some(packet) = returned_home_update(*service, *client, t.sequence, &tok)
                    else {
                        continue;
                    };
                    t.sent.push_back(now);
                    t.attempts += 1;
                    t.next_at = now + t.timeout;
                    t.timeout = (t.timeout * 2).min(MAX_BINDACK_TIMEOUT);
                    self.counters.trigger_bus_sent += 1;
                    self.log.push(format!(
                        "event=trigger_sent service={service} client={client} member={} seq={} \
                         attempt={} nonce_index={}",
                        t.member.id, t.sequence, t.attempts, tok.nonce_index
                    ));
                    out.push(ToClient {
                        service: *service,
                        client: *client,
                        packet,
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// When [`poll`](Self::poll) next has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients
            .values()
            .filter_map(|r| r.trigger.as_ref())
            .filter(|t| t.state.is_active())
            .map(|t| t.next_at.min(t.started + self.config.give_up_after))
            .min()
    }

    /// Every (service, client) record, for `ctl bindings`.
    pub fn views(&self, now: Instant) -> Vec<RoClientView> {
        self.clients
            .iter()
            .map(|((service, client), r)| RoClientView {
                service: *service,
                client: *client,
                member: r.member.id,
                care_of: r.member.care_of,
                token_age_s: r
                    .token
                    .map(|t| now.saturating_duration_since(t.at).as_secs_f64()),
                trigger: r.trigger.as_ref().map(|t| TriggerView {
                    state: t.state.name().to_string(),
                    attempts: t.attempts,
                    home_tests: t.home_tests,
                    last_status: t.last_status,
                    elapsed_s: t
                        .ended
                        .unwrap_or(now)
                        .saturating_duration_since(t.started)
                        .as_secs_f64(),
                }),
            })
            .collect()
    }

    /// Count of a Destination Unreachable sent for a claimed care-of address.
    pub fn count_unreachable(&mut self) {
        self.counters.unreachable_sent += 1;
    }
}

/// Starts a trigger for one record unless one is already running. Returns whether it did.
fn start_trigger(
    rec: &mut ClientRecord,
    now: Instant,
    service: Ipv6Addr,
    client: Ipv6Addr,
    reason: FailReason,
    counters: &mut RoCounters,
    log: &mut Vec<String>,
) -> bool {
    if rec.trigger.as_ref().is_some_and(|t| t.state.is_active()) {
        return false;
    }
    let fresh = rec
        .token
        .is_some_and(|t| now.saturating_duration_since(t.at) < MAX_TOKEN_LIFETIME);
    rec.trigger = Some(Trigger {
        member: rec.member,
        started: now,
        state: if fresh {
            TriggerState::Updating
        } else {
            TriggerState::HomeTest
        },
        sequence: 0,
        attempts: 0,
        home_tests: 0,
        next_at: now,
        timeout: INITIAL_BINDACK_TIMEOUT,
        sent: VecDeque::new(),
        last_status: None,
        own_cookie: None,
        ended: None,
    });
    rec.last_activity = now;
    counters.triggers_started += 1;
    log.push(format!(
        "event=trigger_start service={service} client={client} member={} care_of={} \
         reason={} token={}",
        rec.member.id,
        rec.member.care_of,
        reason.name(),
        if fresh { "recorded" } else { "expired" }
    ));
    true
}

/// An IPv6 packet `src` -> `dst` carrying the Mobility Header `mh` (checksum filled).
fn mh_packet(src: Ipv6Addr, dst: Ipv6Addr, mut mh: Vec<u8>) -> Option<Vec<u8>> {
    MhPacket::new_checked(&mut mh[..])
        .ok()?
        .fill_checksum(&src, &dst);
    let mut buf = vec![0u8; ipv6::HEADER_LEN + mh.len()];
    Ipv6Repr {
        src,
        dst,
        next_header: proto::MOBILITY,
        payload_len: mh.len(),
        hop_limit: HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))
    .ok()?;
    buf[ipv6::HEADER_LEN..].copy_from_slice(&mh);
    Some(buf)
}

fn emit_mh(repr: &MhRepr<'_>) -> Option<Vec<u8>> {
    let mut mh = vec![0u8; repr.buffer_len().ok()?];
    repr.emit(&mut MhPacket::new_unchecked(&mut mh[..])).ok()?;
    Some(mh)
}

/// The appliance's own Home Test Init from the service (home) address to the client
/// (§6.1.3), sent directly: the appliance is at home.
pub fn home_test_init(service: Ipv6Addr, client: Ipv6Addr, cookie: [u8; 8]) -> Vec<u8> {
    let repr = MhRepr {
        message: MhMessage::HomeTestInit { cookie },
        options: MhOptions::NONE,
    };
    emit_mh(&repr)
        .and_then(|mh| mh_packet(service, client, mh))
        .unwrap_or_default()
}

/// The trigger: a returned-home Binding Update from the service address (§11.7.2): no
/// Home Address option, H=0, A=1, lifetime 0, Nonce Indices (home, 0), Binding
/// Authorization Data with Kbm = SHA1(home keygen token) and the home address as the
/// care-of address (§5.2.5, §5.2.6).
fn returned_home_update(
    service: Ipv6Addr,
    client: Ipv6Addr,
    sequence: u16,
    token: &HomeToken,
) -> Option<Vec<u8>> {
    let placeholder = [0u8; rr::AUTHENTICATOR_LEN];
    let options = [
        MobilityOption::NonceIndices {
            home: token.nonce_index,
            care_of: 0,
        },
        MobilityOption::BindingAuthData(&placeholder),
    ];
    let repr = MhRepr {
        message: MhMessage::BindingUpdate(BindingUpdate {
            sequence,
            ack: true,
            lifetime: 0,
            ..Default::default()
        }),
        options: MhOptions::List(&options),
    };
    let mut mh = emit_mh(&repr)?;
    let kbm = rr::kbm_home_only(&token.token);
    rr::insert_authenticator(&kbm, &service, &client, &mut mh).ok()?;
    mh_packet(service, client, mh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anycast6_wire::mobility::BaStatus;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const SERVICE: &str = "2001:db8:100::1";
    const CLIENT: &str = "2001:db8:c::2";

    fn member(id: u32) -> RoMember {
        RoMember {
            id,
            epoch: 1,
            care_of: a(&format!("2001:db8:2::{:x}", 0x10 + id)),
        }
    }

    fn tracker() -> RoTracker {
        let mut n = 0u64;
        RoTracker::with_cookies(
            RoConfig::default(),
            Box::new(move || {
                n += 1;
                (0xc0c0_0000_0000_0000 | n).to_be_bytes()
            }),
        )
    }

    const TOKEN: [u8; 8] = [0x9b, 0x35, 0x68, 0x58, 0x2d, 0x56, 0xe3, 0x9d];

    /// A member's RR: its HoTI, then the client's HoT.
    fn route_optimise(t: &mut RoTracker, now: Instant, m: RoMember) {
        let cookie = [1, 2, 3, 4, 5, 6, 7, m.id as u8];
        t.on_member_hoti(now, a(SERVICE), a(CLIENT), m, cookie);
        assert_eq!(
            t.on_hot(now, a(SERVICE), a(CLIENT), 10, cookie, TOKEN),
            HotOutcome::ToMember(m)
        );
    }

    /// Parses a BU packet from the tracker: (sequence, nonce indices, lifetime), and checks
    /// the authenticator with the home-only Kbm, as a correspondent does.
    fn parse_bu(p: &[u8], token: &[u8; 8]) -> (u16, (u16, u16), u16) {
        let ip = Ipv6Packet::new_checked(p).unwrap();
        assert_eq!(ip.src_addr(), a(SERVICE));
        assert_eq!(ip.dst_addr(), a(CLIENT));
        assert_eq!(ip.next_header(), proto::MOBILITY, "no HAO: MH right after");
        let mh = ip.payload();
        let pkt = MhPacket::new_checked(mh).unwrap();
        assert!(pkt.verify_checksum(&a(SERVICE), &a(CLIENT)));
        let repr = MhRepr::parse(&pkt).unwrap();
        let MhMessage::BindingUpdate(bu) = repr.message else {
            panic!("{repr:?}")
        };
        assert!(bu.ack && !bu.home_registration);
        let kbm = rr::kbm_home_only(token);
        assert!(rr::verify_authenticator(&kbm, &a(SERVICE), &a(CLIENT), mh).unwrap());
        (bu.sequence, repr.nonce_indices().unwrap(), bu.lifetime)
    }

    fn ba(status: u8, sequence: u16, token: Option<&[u8; 8]>) -> (BindingAck, Vec<u8>) {
        let ba = BindingAck {
            status: BaStatus::from(status),
            key_mgmt: false,
            other_flags: 0,
            sequence,
            lifetime: 0,
        };
        let placeholder = [0u8; 12];
        let opts = [MobilityOption::BindingAuthData(&placeholder)];
        let repr = MhRepr {
            message: MhMessage::BindingAck(ba),
            options: if token.is_some() {
                MhOptions::List(&opts)
            } else {
                MhOptions::NONE
            },
        };
        let mut mh = emit_mh(&repr).unwrap();
        if let Some(tok) = token {
            rr::insert_authenticator(&rr::kbm_home_only(tok), &a(SERVICE), &a(CLIENT), &mut mh)
                .unwrap();
        }
        (ba, mh)
    }

    #[test]
    fn hot_goes_to_the_member_whose_hoti_it_answers() {
        let mut t = tracker();
        let now = Instant::now();
        let (m1, m2) = (member(1), member(2));
        t.on_member_hoti(now, a(SERVICE), a(CLIENT), m1, [1; 8]);
        t.on_member_hoti(now, a(SERVICE), a(CLIENT), m2, [2; 8]);
        assert_eq!(
            t.on_hot(now, a(SERVICE), a(CLIENT), 7, [2; 8], TOKEN),
            HotOutcome::ToMember(m2)
        );
        assert_eq!(
            t.on_hot(now, a(SERVICE), a(CLIENT), 7, [9; 8], TOKEN),
            HotOutcome::Unknown,
            "unknown cookie"
        );
        assert_eq!(
            t.on_hot(now, a(SERVICE), a("2001:db8:c::3"), 7, [1; 8], TOKEN),
            HotOutcome::Unknown,
            "cookie of another client"
        );
        // HoTIs are forgotten after HOTI_MEMORY.
        assert_eq!(
            t.on_hot(
                now + Duration::from_secs(11),
                a(SERVICE),
                a(CLIENT),
                7,
                [1; 8],
                TOKEN
            ),
            HotOutcome::Unknown
        );
        assert_eq!(t.member_of(a(SERVICE), a(CLIENT)), Some(m2));
        assert!(t.take_log()[0].starts_with("event=ro_token "));
    }

    #[test]
    fn trigger_with_recorded_token_and_135_retry() {
        let mut t = tracker();
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        assert!(
            t.poll(t0).is_empty(),
            "no trigger while the member is healthy"
        );
        let failed = t0 + Duration::from_secs(5);
        assert_eq!(
            t.member_failed(failed, a(SERVICE), 2, 1, FailReason::Down),
            0
        );
        assert_eq!(
            t.member_failed(failed, a(SERVICE), 1, 1, FailReason::Down),
            1
        );
        let out = t.poll(failed);
        assert_eq!(out.len(), 1);
        let (seq, ni, lifetime) = parse_bu(&out[0].packet, &TOKEN);
        assert_eq!((seq, ni, lifetime), (0, (10, 0), 0));
        // The client's binding had sequence 7: 135 with 7.
        let (b, mh) = ba(135, 7, Some(&TOKEN));
        assert!(t.on_binding_ack(failed, a(SERVICE), a(CLIENT), &b, &mh));
        let out = t.poll(failed);
        assert_eq!(parse_bu(&out[0].packet, &TOKEN).0, 8);
        let (b, mh) = ba(0, 8, Some(&TOKEN));
        let done = failed + Duration::from_millis(20);
        assert!(t.on_binding_ack(done, a(SERVICE), a(CLIENT), &b, &mh));
        let v = t.views(done);
        let tv = v[0].trigger.as_ref().unwrap();
        assert_eq!(
            (tv.state.as_str(), tv.attempts, tv.last_status),
            ("done", 2, Some(0))
        );
        assert!(t.poll(done + Duration::from_secs(5)).is_empty());
        assert_eq!(t.counters().trigger_retries_135, 1);
        assert_eq!(t.counters().triggers_done, 1);
        assert!(t
            .take_log()
            .iter()
            .any(|l| l.starts_with("event=trigger_done ")));
    }

    #[test]
    fn no_binding_at_the_client_counts_as_done() {
        let mut t = tracker();
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        t.member_failed(t0, a(SERVICE), 1, 1, FailReason::Draining);
        t.poll(t0);
        let (b, mh) = ba(133, 0, Some(&TOKEN));
        assert!(t.on_binding_ack(t0, a(SERVICE), a(CLIENT), &b, &mh));
        assert_eq!(t.views(t0)[0].trigger.as_ref().unwrap().state, "done");
    }

    #[test]
    fn forged_or_unrelated_acks_are_ignored() {
        let mut t = tracker();
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        // No trigger yet: a BA is not ours.
        let (b, mh) = ba(0, 0, Some(&TOKEN));
        assert!(!t.on_binding_ack(t0, a(SERVICE), a(CLIENT), &b, &mh));
        t.member_failed(t0, a(SERVICE), 1, 1, FailReason::Down);
        t.poll(t0);
        // Wrong key: refused, trigger still pending.
        let (b, mh) = ba(0, 0, Some(&[0; 8]));
        assert!(t.on_binding_ack(t0, a(SERVICE), a(CLIENT), &b, &mh));
        assert_eq!(t.counters().trigger_bas_bad_auth, 1);
        assert_eq!(t.views(t0)[0].trigger.as_ref().unwrap().state, "pending");
    }

    #[test]
    fn expired_token_runs_own_home_test() {
        let mut t = tracker();
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        let late = t0 + MAX_TOKEN_LIFETIME + Duration::from_secs(1);
        t.member_failed(late, a(SERVICE), 1, 1, FailReason::Draining);
        let out = t.poll(late);
        assert_eq!(out.len(), 1);
        let ip = Ipv6Packet::new_checked(&out[0].packet[..]).unwrap();
        let pkt = MhPacket::new_checked(ip.payload()).unwrap();
        assert!(pkt.verify_checksum(&a(SERVICE), &a(CLIENT)));
        let MhMessage::HomeTestInit { cookie } = MhRepr::parse(&pkt).unwrap().message else {
            panic!()
        };
        let fresh = [7u8; 8];
        assert_eq!(
            t.on_hot(late, a(SERVICE), a(CLIENT), 22, cookie, fresh),
            HotOutcome::Consumed
        );
        let out = t.poll(late);
        assert_eq!(parse_bu(&out[0].packet, &fresh), (0, (22, 0), 0));
        // 136 (expired home nonce): another home test.
        let (b, mh) = ba(136, 0, None);
        assert!(t.on_binding_ack(late, a(SERVICE), a(CLIENT), &b, &mh));
        let out = t.poll(late);
        let ip = Ipv6Packet::new_checked(&out[0].packet[..]).unwrap();
        let pkt = MhPacket::new_checked(ip.payload()).unwrap();
        assert!(matches!(
            MhRepr::parse(&pkt).unwrap().message,
            MhMessage::HomeTestInit { .. }
        ));
        assert_eq!(t.counters().own_home_tests, 2);
    }

    #[test]
    fn retransmission_rate_limit_and_give_up() {
        let mut t = tracker();
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        t.member_failed(t0, a(SERVICE), 1, 1, FailReason::Down);
        let mut sent = Vec::new();
        let mut now = t0;
        while now < t0 + Duration::from_secs(40) {
            for p in t.poll(now) {
                sent.push((now, p));
            }
            now += Duration::from_millis(10);
        }
        // 1 s, 2 s, 4 s, 8 s, 16 s: sends at 0, 1, 3, 7, 15; then 31 > 30 s: given up.
        let at: Vec<u64> = sent
            .iter()
            .map(|(n, _)| n.duration_since(t0).as_secs())
            .collect();
        assert_eq!(at, vec![0, 1, 3, 7, 15]);
        assert_eq!(t.views(now)[0].trigger.as_ref().unwrap().state, "gave_up");
        assert_eq!(t.counters().triggers_gave_up, 1);

        // 135 storms are held to MAX_UPDATE_RATE per second.
        let mut t = tracker();
        route_optimise(&mut t, t0, member(1));
        t.member_failed(t0, a(SERVICE), 1, 1, FailReason::Down);
        let mut in_first_second = 0;
        let mut now = t0;
        while now < t0 + Duration::from_secs(1) {
            for p in t.poll(now) {
                in_first_second += 1;
                let (seq, _, _) = parse_bu(&p.packet, &TOKEN);
                let (b, mh) = ba(135, seq.wrapping_add(100), Some(&TOKEN));
                t.on_binding_ack(now, a(SERVICE), a(CLIENT), &b, &mh);
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(in_first_second, MAX_UPDATE_RATE);
    }

    #[test]
    fn recovery_cancels_and_new_member_replaces() {
        let mut t = tracker();
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        t.member_failed(t0, a(SERVICE), 1, 1, FailReason::Down);
        t.member_restored(a(SERVICE), 1, 1, t0);
        assert!(t.poll(t0).is_empty());
        assert_eq!(t.views(t0)[0].trigger.as_ref().unwrap().state, "cancelled");
        // The client route-optimises with member 2: member 1's failure no longer concerns it.
        route_optimise(&mut t, t0, member(2));
        assert_eq!(t.member_failed(t0, a(SERVICE), 1, 1, FailReason::Down), 0);
        assert_eq!(t.views(t0)[0].member, 2);
    }

    #[test]
    fn brr_for_a_dead_member_is_answered_by_a_trigger() {
        let mut t = tracker();
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        assert!(!t.on_brr(t0, a(SERVICE), a(CLIENT), |_| true));
        assert!(!t.on_brr(t0, a(SERVICE), a("2001:db8:c::9"), |_| false));
        assert!(t.on_brr(t0, a(SERVICE), a(CLIENT), |_| false));
        assert_eq!(t.poll(t0).len(), 1);
        assert_eq!(t.counters().brr_answered, 1);
    }

    #[test]
    fn triggers_off_sends_nothing() {
        let mut t = RoTracker::new(RoConfig {
            triggers: false,
            ..RoConfig::default()
        });
        let t0 = Instant::now();
        route_optimise(&mut t, t0, member(1));
        assert_eq!(t.member_failed(t0, a(SERVICE), 1, 1, FailReason::Down), 0);
        assert!(t.poll(t0).is_empty());
    }

    #[test]
    fn records_are_bounded() {
        let mut t = RoTracker::new(RoConfig {
            max_clients: 4,
            ..RoConfig::default()
        });
        let t0 = Instant::now();
        for i in 0..10u16 {
            let client = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, i);
            t.on_member_hoti(t0, a(SERVICE), client, member(1), [i as u8; 8]);
            t.on_hot(t0, a(SERVICE), client, 1, [i as u8; 8], TOKEN);
        }
        assert_eq!(t.views(t0).len(), 4);
        assert_eq!(t.counters().records_evicted, 6);
    }
}
