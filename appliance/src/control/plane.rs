//! The management thread's state, sans I/O: everything between the exception rings and the
//! published snapshot (ARCHITECTURE.md §4).
//!
//! [`ControlPlane`] owns the neighbour table, the home-registration [`Registrar`], the
//! [`HealthChecker`], the admin drain marks and the members that are leaving. It is driven
//! by three calls, each given the time:
//!
//! * [`ControlPlane::on_frame`]: a frame a worker passed up (exception path). Neighbor
//!   Discovery and echo are answered; a Mobility Header goes to the registrar; replies to
//!   health probes go to the checker. Returns the frames to send.
//! * [`ControlPlane::on_tick`]: timers: solicitations, binding expiry, probes and their
//!   timeouts, drain deadlines. Returns the frames to send.
//! * [`ControlPlane::take_spec`]: when the member set changed, the spec of the next snapshot.
//!
//! Admin actions ([`ControlPlane::drain`], [`ControlPlane::undrain`],
//! [`ControlPlane::reload`]) and the read-only views used by the admin socket complete the
//! interface. Every state change writes one `key=value` log line ([`ControlPlane::take_log`]).
//!
//! # Members and their state
//!
//! A service's members are its static members (configuration), its registered members
//! (Binding Updates) and the members that are *leaving*. Ids: registered members keep the
//! registrar's id; static members get ids from [`STATIC_ID_BASE`] up, stable per (service,
//! care-of address) for the life of the process, so a reload that keeps a member keeps its
//! flows. The status written into the snapshot:
//!
//! | condition | status |
//! |---|---|
//! | health check says down | `Down` (flows re-picked) |
//! | admin drain past its deadline | `Down` |
//! | leaving (lifetime-0 BU, removed by reload) or admin drain | `Draining` (keeps flows) |
//! | otherwise | `Active` |
//!
//! A leaving member is removed when its drain deadline passes or when it has forwarded no
//! packet for the affinity idle timeout (every worker's affinity entries for it have then
//! expired: "until idle"), whichever comes first. A binding that *expires* is removed at
//! once: a member that stopped refreshing is presumed gone (RFC 6275 §10.3.1 deletes the
//! binding; its flows are re-picked).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{self, MacAddr};
use anycast6_wire::icmpv6::{DstUnreachableCode, Icmpv6Packet, Icmpv6Repr, ParamProblemCode};
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::ExtHeaderChain;
use anycast6_wire::mobility::{MhMessage, MhPacket, MhRepr};
use anycast6_wire::tunnel::{self, TunnelParams};
use anycast6_wire::{PacketBuf, VecBuf};

use crate::config::{Config, HealthKind, ServiceConfig};
use crate::control::health::{
    HealthChecker, HealthEvent, HealthSpec, PacketOutcome, ProbeKind, Target,
};
use crate::control::keys::KeyTable;
use crate::control::neighbour::{self, LocalOutcome, NeighbourTable};
use crate::control::registration::{
    BindingInfo, MemberEvent, Now, ReceivedMh, Registrar, RegistrarConfig, Reply,
    ServiceRegistration,
};
use crate::control::ro::{
    FailReason, HotOutcome, RoClientView, RoConfig, RoCounters, RoMember, RoTracker,
};
use crate::dataplane::ratelimit::TokenBucket;
use crate::dataplane::snapshot::{MemberSpec, MemberStatus, SnapshotSpec, MEMBER_SLOTS};

/// Most octets of an invoking packet an ICMPv6 error quotes: the error must fit the IPv6
/// minimum MTU (RFC 4443 §2.4(c)).
const MAX_QUOTE: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - 8;

/// Refusal log lines (rejected BUs, discarded Mobility Headers) per second, and burst.
pub const REFUSAL_LOG_RATE: u32 = 10;

/// First id of static members (registered members count up from 1).
pub const STATIC_ID_BASE: u32 = 0x8000_0000;

/// A member's identity across snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberKey {
    pub service: Ipv6Addr,
    pub id: u32,
    pub epoch: u32,
}

/// Where a member came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Static,
    Registered,
}

/// One member as the admin interface shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub key: MemberKey,
    pub care_of: Ipv6Addr,
    pub origin: Origin,
    pub weight: u32,
    pub status: MemberStatus,
    /// `None`: the service has no health check.
    pub health_up: Option<bool>,
    pub health_detail: Option<String>,
    pub lifetime_left: Option<Duration>,
    pub drain_left: Option<Duration>,
    pub stats_slot: u16,
}

/// A member on its way out: it keeps its flows until the deadline or until idle.
#[derive(Debug, Clone, Copy)]
struct Leaving {
    spec: MemberSpec,
    service: Ipv6Addr,
    origin: Origin,
    deadline: Instant,
    /// Forwarded-packet count last seen and when it last changed.
    last_packets: Option<u64>,
    last_change: Instant,
}

/// An admin drain: until `deadline` the member keeps its flows; after it, it is down.
#[derive(Debug, Clone, Copy)]
struct DrainMark {
    deadline: Instant,
    timed_out: bool,
}

/// Counters of the control plane itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaneCounters {
    pub replies: u64,
    pub unhandled: u64,
    pub neighbours_learned: u64,
    pub mh_received: u64,
    pub ba_sent: u64,
    pub binding_errors_sent: u64,
    pub parameter_problems_sent: u64,
    pub icmp_rate_limited: u64,
    pub probes_sent: u64,
    pub probe_unroutable: u64,
    pub health_packets: u64,
    pub snapshots_built: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub drained_removed: u64,
    /// Refusal log lines left out by the rate limit.
    pub log_suppressed: u64,
    /// ICMPv6 errors from inside a tunnel relayed to the original source (RFC 2473 §8).
    pub tunnel_errors_relayed: u64,
    /// Mobility Headers between clients and members relayed by the control thread (return
    /// routability: HoTI out, HoT and others in).
    pub ro_relayed: u64,
    /// Mobility Headers to a service address discarded (bad checksum, malformed, no
    /// member to give them to).
    pub ro_discarded: u64,
    /// Unsolicited Neighbor Advertisements sent for claimed care-of addresses.
    pub claim_advertisements: u64,
}

/// An unsolicited Neighbor Advertisement still to send for a claimed care-of address.
#[derive(Debug, Clone, Copy)]
struct Announcement {
    address: Ipv6Addr,
    port: u16,
    remaining: u8,
    next: Instant,
}

/// RFC 4861 §7.2.6: MAX_NEIGHBOR_ADVERTISEMENT unsolicited advertisements.
const MAX_NEIGHBOR_ADVERTISEMENT: u8 = 3;
/// Spacing of those advertisements (RFC 4861 §10: RETRANS_TIMER).
const ANNOUNCEMENT_INTERVAL: Duration = Duration::from_secs(1);

/// What an error from inside a tunnel becomes for the original source.
enum RelayedError {
    TooBig(u32),
    Unreachable,
}

/// Per-service values the plane needs from the configuration.
#[derive(Debug, Clone)]
struct ServicePlan {
    address: Ipv6Addr,
    port: u16,
    drain_timeout: Duration,
    health: Option<HealthSpec>,
}

/// Counter slots: unique per member in a snapshot, reused after the member is gone.
#[derive(Debug, Default)]
struct Slots {
    by_member: BTreeMap<MemberKey, u16>,
    free: Vec<u16>,
    next: u16,
    /// Slots handed out since the last [`ControlPlane::take_new_slots`].
    fresh: Vec<u16>,
}

impl Slots {
    fn get(&mut self, key: MemberKey) -> Option<u16> {
        if let Some(&s) = self.by_member.get(&key) {
            return Some(s);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None if usize::from(self.next) < MEMBER_SLOTS => {
                self.next += 1;
                self.next - 1
            }
            None => return None,
        };
        self.by_member.insert(key, slot);
        self.fresh.push(slot);
        Some(slot)
    }

    /// Frees the slots of members not in `live`.
    fn retain(&mut self, live: &BTreeSet<MemberKey>) {
        let gone: Vec<MemberKey> = self
            .by_member
            .keys()
            .filter(|k| !live.contains(k))
            .copied()
            .collect();
        for k in gone {
            if let Some(s) = self.by_member.remove(&k) {
                self.free.push(s);
            }
        }
    }
}

/// The management thread's state (see the module documentation).
pub struct ControlPlane {
    config: Config,
    /// The spec without members; ports carry their MACs.
    base: SnapshotSpec,
    services: Vec<ServicePlan>,
    port_macs: Vec<MacAddr>,
    local: Vec<Ipv6Addr>,
    neighbours: NeighbourTable,
    registrar: Registrar,
    /// False when the configuration has no `[registration]`: BUs get BA 131.
    registration_enabled: bool,
    health: HealthChecker,
    health_down: BTreeSet<MemberKey>,
    static_ids: BTreeMap<(Ipv6Addr, Ipv6Addr), u32>,
    next_static_id: u32,
    /// Admin-drained members.
    admin_drain: BTreeMap<MemberKey, DrainMark>,
    leaving: Vec<Leaving>,
    slots: Slots,
    icmp: TokenBucket,
    refusal_log: TokenBucket,
    suppressed_pending: u64,
    last_suppressed_note: Instant,
    epoch: Instant,
    dirty: bool,
    generation: u64,
    counters: PlaneCounters,
    log: Vec<String>,
    /// Route-optimised clients and trigger signals.
    ro: RoTracker,
    /// Member statuses in the last snapshot: their changes start and cancel triggers.
    last_status: BTreeMap<MemberKey, MemberStatus>,
    /// Claimed care-of addresses of down members: the port they are claimed on, since when.
    claimed: BTreeMap<Ipv6Addr, (u16, Instant)>,
    /// Down members' care-of addresses whose claim ended (`claim_for` passed, or the owner
    /// showed up on the link): not claimed again until the member has been up.
    claims_over: BTreeSet<Ipv6Addr>,
    announcements: Vec<Announcement>,
}

fn ro_config(config: &Config) -> RoConfig {
    let r = &config.route_optimisation;
    RoConfig {
        triggers: r.triggers,
        give_up_after: Duration::from_secs(u64::from(r.give_up_after)),
        max_clients: r.max_clients,
    }
}

fn registrar_config(config: &Config, keys: &KeyTable) -> RegistrarConfig {
    let mut rc = RegistrarConfig::new(config.appliance.tunnel_address);
    rc.hop_limit = config.appliance.outer_hop_limit;
    let registration = config.registration.as_ref();
    rc.services = config
        .services
        .iter()
        .map(|s| ServiceRegistration {
            address: s.address,
            accept_registrations: registration.is_some() && s.accept_registrations,
            max_bindings: s.max_bindings,
        })
        .collect();
    rc.reserved_care_ofs = config
        .services
        .iter()
        .flat_map(|s| s.members.iter().map(move |m| (s.address, m.care_of)))
        .collect();
    if let Some(r) = registration {
        rc.trusted_prefixes = r.trusted_prefixes.clone();
        rc.keys = keys.keys.clone();
        rc.replay_window = Duration::from_secs(u64::from(r.replay_window));
        rc.max_lifetime_units = u16::try_from(r.max_lifetime / 4).unwrap_or(u16::MAX);
        rc.refresh_percent = r.refresh_percent;
        rc.default_weight = r.default_weight;
    }
    rc
}

/// The health-check settings of a service, if it has any.
pub fn health_spec(s: &ServiceConfig) -> Option<HealthSpec> {
    let h = s.health.as_ref()?;
    let kind = match h.kind {
        HealthKind::Echo => ProbeKind::Echo,
        HealthKind::Tcp => ProbeKind::Tcp {
            port: h.port.unwrap_or(80),
        },
        HealthKind::Tunnel => ProbeKind::Tunnel,
    };
    Some(HealthSpec {
        kind,
        interval: Duration::from_millis(u64::from(h.interval_ms)),
        timeout: Duration::from_millis(u64::from(h.timeout_ms)),
        rise: h.rise,
        fall: h.fall,
    })
}

fn service_plans(config: &Config) -> Vec<ServicePlan> {
    config
        .services
        .iter()
        .map(|s| ServicePlan {
            address: s.address,
            port: config
                .service_port_index(s)
                .and_then(|i| u16::try_from(i).ok())
                .unwrap_or(0),
            drain_timeout: Duration::from_secs(u64::from(s.drain_timeout)),
            health: health_spec(s),
        })
        .collect()
}

/// Prepends an Ethernet header (IPv6 EtherType) to an IPv6 packet.
pub fn ethernet_frame(dst: MacAddr, src: MacAddr, packet: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ethernet::HEADER_LEN + packet.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(packet);
    f
}

/// The frame's IPv6 packet (after an untagged Ethernet header), if it has one.
fn ipv6_payload(frame: &[u8]) -> Option<&[u8]> {
    if frame.len() < ethernet::HEADER_LEN + ipv6::HEADER_LEN || frame[12..14] != [0x86, 0xdd] {
        return None;
    }
    Some(&frame[ethernet::HEADER_LEN..])
}

/// Was the member active in the last snapshot (`last_status`)?
fn serves(
    last_status: &BTreeMap<MemberKey, MemberStatus>,
    service: Ipv6Addr,
    m: &RoMember,
) -> bool {
    last_status.get(&MemberKey {
        service,
        id: m.id,
        epoch: m.epoch,
    }) == Some(&MemberStatus::Active)
}

impl ControlPlane {
    /// The plane for a validated configuration; `port_macs` are the ports' MACs (configured
    /// or the devices' own), `keys` the key file's contents.
    pub fn new(
        config: Config,
        keys: &KeyTable,
        port_macs: Vec<MacAddr>,
        now: Instant,
    ) -> ControlPlane {
        let mut base = config.snapshot_spec();
        for (i, mac) in port_macs.iter().enumerate() {
            if let Some(p) = base.ports.get_mut(i) {
                p.mac = *mac;
            }
            let ll = crate::runtime::link_local_of(*mac);
            if !base.local_addresses.contains(&ll) {
                base.local_addresses.push(ll);
            }
        }
        for s in base.services.iter_mut() {
            s.members.clear();
        }
        let local: Vec<Ipv6Addr> = base
            .local_addresses
            .iter()
            .copied()
            .chain(std::iter::once(base.tunnel.address))
            .collect();
        let mut neighbours = NeighbourTable::default();
        for p in &config.ports {
            if let Some(hop) = p.next_hop {
                neighbours.want(hop, p.next_hop_mac, now);
            }
        }
        let registration_enabled = config.registration.is_some();
        let registrar = Registrar::new(registrar_config(&config, keys));
        let health = HealthChecker::new(
            config.appliance.tunnel_address,
            config.appliance.outer_hop_limit,
        );
        let icmp = TokenBucket::new(config.appliance.icmp_rate, config.appliance.icmp_burst, 0);
        let ro = RoTracker::new(ro_config(&config));
        let mut plane = ControlPlane {
            services: service_plans(&config),
            config,
            base,
            port_macs,
            local,
            neighbours,
            registrar,
            registration_enabled,
            health,
            health_down: BTreeSet::new(),
            static_ids: BTreeMap::new(),
            next_static_id: STATIC_ID_BASE,
            admin_drain: BTreeMap::new(),
            leaving: Vec::new(),
            slots: Slots::default(),
            icmp,
            refusal_log: TokenBucket::new(REFUSAL_LOG_RATE, REFUSAL_LOG_RATE, 0),
            suppressed_pending: 0,
            last_suppressed_note: now,
            epoch: now,
            dirty: true,
            generation: 0,
            counters: PlaneCounters::default(),
            log: Vec::new(),
            ro,
            last_status: BTreeMap::new(),
            claimed: BTreeMap::new(),
            claims_over: BTreeSet::new(),
            announcements: Vec::new(),
        };
        plane.assign_static_ids();
        plane.sync_health(now);
        plane
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn counters(&self) -> &PlaneCounters {
        &self.counters
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    pub fn health(&self) -> &HealthChecker {
        &self.health
    }

    /// Whether `[registration]` is configured.
    pub fn registration_enabled(&self) -> bool {
        self.registration_enabled
    }

    /// Snapshots built so far ([`take_spec`](Self::take_spec) calls that returned one).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Next hops not resolved yet.
    pub fn unresolved(&self) -> Vec<Ipv6Addr> {
        self.neighbours.unresolved()
    }

    /// The log lines written since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        self.log.extend(self.ro.take_log());
        std::mem::take(&mut self.log)
    }

    /// Counter slots handed out since the last call: the caller records their current
    /// values as the new members' baselines before it publishes the snapshot.
    pub fn take_new_slots(&mut self) -> Vec<u16> {
        std::mem::take(&mut self.slots.fresh)
    }

    fn assign_static_ids(&mut self) {
        for s in &self.config.services {
            for m in &s.members {
                self.static_ids
                    .entry((s.address, m.care_of))
                    .or_insert_with(|| {
                        let id = self.next_static_id;
                        self.next_static_id = self.next_static_id.wrapping_add(1);
                        id
                    });
            }
        }
    }

    fn is_local(&self, a: &Ipv6Addr) -> bool {
        self.local.contains(a)
    }

    fn now_unix() -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }

    /// Handles a frame from a worker's exception ring, received on `port`.
    pub fn on_frame(&mut self, now: Instant, port: u16, frame: &[u8]) -> Vec<(u16, Vec<u8>)> {
        self.on_frame_at(now, Self::now_unix(), port, frame)
    }

    /// [`on_frame`](Self::on_frame) with the wall-clock time given (for RFC 4285 replay
    /// protection), for tests.
    pub fn on_frame_at(
        &mut self,
        now: Instant,
        unix: Duration,
        port: u16,
        frame: &[u8],
    ) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let Some(&port_mac) = self.port_macs.get(usize::from(port)) else {
            self.counters.unhandled += 1;
            return out;
        };
        if self.owner_returned(frame, port_mac) {
            return out;
        }
        if self.answer_claimed(now, port, port_mac, frame, &mut out) {
            return out;
        }
        let claimed = &self.claimed;
        let local = &self.local;
        match neighbour::handle_local_frame(frame, port_mac, |a| {
            local.contains(a) || claimed.contains_key(a)
        }) {
            LocalOutcome::Reply(reply) => {
                self.counters.replies += 1;
                out.push((port, reply));
                return out;
            }
            LocalOutcome::Learned { addr, mac } => {
                self.learn(addr, mac);
                return out;
            }
            LocalOutcome::ReplyAndLearned { reply, addr, mac } => {
                self.counters.replies += 1;
                out.push((port, reply));
                self.learn(addr, mac);
                return out;
            }
            LocalOutcome::NotHandled(_) => {}
        }
        let Some(packet) = ipv6_payload(frame) else {
            self.counters.unhandled += 1;
            return out;
        };
        let peer_mac = MacAddr(frame[6..12].try_into().unwrap_or([0; 6]));
        if self.route_optimisation(now, packet, &mut out) {
            return out;
        }
        if self.handle_mobility(now, unix, port, port_mac, peer_mac, packet, &mut out) {
            return out;
        }
        match self.health.on_packet(now, packet) {
            PacketOutcome::Consumed { events, send } => {
                self.counters.health_packets += 1;
                for p in send {
                    self.send_to_port_next_hop(port, &p, &mut out);
                }
                self.apply_health_events(events);
            }
            PacketOutcome::NotMine => match self.tunnel_error_relay(now, packet) {
                Some((service_port, relayed)) => {
                    // Towards the client, like every reply of the service: the service's
                    // port and next hop (the error itself came from the members' side).
                    self.counters.tunnel_errors_relayed += 1;
                    self.send_to_port_next_hop(service_port, &relayed, &mut out);
                }
                None => self.counters.unhandled += 1,
            },
        }
        out
    }

    /// RFC 2473 §8: an ICMPv6 error from inside a tunnel (sent to the tunnel address,
    /// quoting one of our tunnel packets) is relayed to the original packet's source:
    /// Packet Too Big as Packet Too Big with the tunnel headers taken off the MTU (only
    /// for an original packet over 1280 octets, §8.2), everything else as Destination
    /// Unreachable code 3 (address unreachable). Rate-limited like every error we send
    /// (RFC 4443 §2.4(f)); never sent to a service, multicast or unspecified source
    /// (§2.4(e)).
    fn tunnel_error_relay(&mut self, now: Instant, packet: &[u8]) -> Option<(u16, Vec<u8>)> {
        let ip = Ipv6Packet::new_checked(packet).ok()?;
        let repr = Ipv6Repr::parse(&ip).ok()?;
        if repr.dst != self.config.appliance.tunnel_address || repr.next_header != proto::ICMPV6 {
            return None;
        }
        let msg = Icmpv6Packet::new_checked(ip.payload()).ok()?;
        let error = Icmpv6Repr::parse(&msg, &repr.src, &repr.dst).ok()?;
        let invoking = error.invoking()?;
        // The quoted packet: our tunnel packet, then the original inside it.
        let outer = Ipv6Packet::new_unchecked(invoking);
        if invoking.len() < ipv6::HEADER_LEN
            || outer.src_addr() != self.config.appliance.tunnel_address
        {
            return None;
        }
        let chain =
            ExtHeaderChain::walk(outer.next_header(), &invoking[ipv6::HEADER_LEN..]).ok()?;
        if chain.upper_layer != 41 {
            return None;
        }
        let tunnel_headers = ipv6::HEADER_LEN + chain.upper_offset;
        let original = invoking.get(tunnel_headers..)?;
        if original.len() < ipv6::HEADER_LEN {
            return None;
        }
        let orig = Ipv6Packet::new_unchecked(original);
        let to = orig.src_addr();
        let service_port = self
            .services
            .iter()
            .find(|s| s.address == orig.dst_addr())?
            .port;
        let original_len = ipv6::HEADER_LEN + usize::from(orig.payload_len());
        // Never relay to ourselves; error_allowed below refuses the other sources RFC 4443
        // §2.4(e) excludes.
        if self.is_local(&to) {
            return None;
        }
        let relayed = match error {
            Icmpv6Repr::PacketTooBig { mtu, .. } => {
                if original_len <= ipv6::MIN_MTU {
                    return None;
                }
                let inner_mtu = mtu
                    .saturating_sub(tunnel_headers as u32)
                    .max(ipv6::MIN_MTU as u32);
                RelayedError::TooBig(inner_mtu)
            }
            Icmpv6Repr::DstUnreachable { .. }
            | Icmpv6Repr::TimeExceeded { .. }
            | Icmpv6Repr::ParamProblem { .. } => RelayedError::Unreachable,
            _ => return None,
        };
        if !self.error_allowed(now, to) {
            return None;
        }
        let quote = &original[..original.len().min(MAX_QUOTE)];
        let icmp = match relayed {
            RelayedError::TooBig(mtu) => Icmpv6Repr::PacketTooBig {
                mtu,
                invoking: quote,
            },
            RelayedError::Unreachable => Icmpv6Repr::DstUnreachable {
                code: DstUnreachableCode::AddrUnreachable,
                invoking: quote,
            },
        };
        Some((service_port, self.icmp_packet(to, &icmp)?))
    }

    /// RFC 4443 §2.4(e) and (f): no error to an unspecified, multicast or anycast
    /// (service) address, and at most the token bucket's rate. Counts what is refused.
    fn error_allowed(&mut self, now: Instant, to: Ipv6Addr) -> bool {
        if to.is_unspecified()
            || to.is_multicast()
            || self.config.services.iter().any(|s| s.address == to)
        {
            return false;
        }
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        if !self.icmp.try_take(ms) {
            self.counters.icmp_rate_limited += 1;
            return false;
        }
        true
    }

    /// An ICMPv6 message from the tunnel address to `to`, as a complete IPv6 packet.
    fn icmp_packet(&self, to: Ipv6Addr, icmp: &Icmpv6Repr<'_>) -> Option<Vec<u8>> {
        let src = self.config.appliance.tunnel_address;
        let len = icmp.buffer_len();
        let mut buf = vec![0u8; ipv6::HEADER_LEN + len];
        Ipv6Repr {
            src,
            dst: to,
            next_header: proto::ICMPV6,
            payload_len: len,
            hop_limit: self.config.appliance.outer_hop_limit,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))
        .ok()?;
        icmp.emit(
            &mut Icmpv6Packet::new_unchecked(&mut buf[ipv6::HEADER_LEN..]),
            &src,
            &to,
        )
        .ok()?;
        Some(buf)
    }

    /// Ends the claim of `address` (it stays unclaimed while its member is down).
    fn end_claim(&mut self, address: Ipv6Addr, reason: &str) {
        if self.claimed.remove(&address).is_some() {
            self.claims_over.insert(address);
            self.announcements.retain(|n| n.address != address);
            self.log.push(format!(
                "event=care_of_released care_of={address} reason={reason}"
            ));
            // The next snapshot no longer hands the address to the control thread.
            self.dirty = true;
        }
    }

    /// The owner of a claimed care-of address is back on the link: its Duplicate Address
    /// Detection (a Neighbor Solicitation from `::`, RFC 4862 §5.4.2) or an advertisement
    /// for the address from another link-layer address. The claim ends at once, unanswered,
    /// so that its DAD succeeds and neighbours learn its MAC again, and health checks can
    /// reach it. Returns true when the frame was such a message.
    fn owner_returned(&mut self, frame: &[u8], port_mac: MacAddr) -> bool {
        if self.claimed.is_empty() {
            return false;
        }
        let Some(packet) = ipv6_payload(frame) else {
            return false;
        };
        let Ok(ip) = Ipv6Packet::new_checked(packet) else {
            return false;
        };
        if ip.next_header() != proto::ICMPV6 {
            return false;
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(msg) = Icmpv6Packet::new_checked(ip.payload()) else {
            return false;
        };
        let target = match Icmpv6Repr::parse(&msg, &src, &dst) {
            Ok(Icmpv6Repr::NeighborSolicit { target, .. }) if src.is_unspecified() => target,
            Ok(Icmpv6Repr::NeighborAdvert {
                target,
                target_lladdr,
                ..
            }) if frame.get(6..12) != Some(&port_mac.0[..])
                && target_lladdr != Some(port_mac.0) =>
            {
                target
            }
            _ => return false,
        };
        if !self.claimed.contains_key(&target) {
            return false;
        }
        self.end_claim(target, "owner_returned");
        true
    }

    /// A frame to a claimed care-of address (a down member's, `claim_care_of`): ICMPv6
    /// Destination Unreachable code 3 to its source, quoting it (with its Type 2 routing
    /// header: a correspondent finds its binding from the quote, RFC 6275 §9.3.4), within
    /// the error rate limit. Neighbor Solicitations for the address are left to the ND
    /// code, which answers them for claimed addresses. Returns true when consumed.
    fn answer_claimed(
        &mut self,
        now: Instant,
        port: u16,
        port_mac: MacAddr,
        frame: &[u8],
        out: &mut Vec<(u16, Vec<u8>)>,
    ) -> bool {
        if self.claimed.is_empty() {
            return false;
        }
        let Some(packet) = ipv6_payload(frame) else {
            return false;
        };
        let Ok(ip) = Ipv6Packet::new_checked(packet) else {
            return false;
        };
        let dst = ip.dst_addr();
        if !self.claimed.contains_key(&dst) {
            return false;
        }
        if let Ok(chain) = ExtHeaderChain::walk(ip.next_header(), ip.payload()) {
            let icmp_type = chain
                .upper_layer_bytes(ip.payload())
                .and_then(|b| b.first().copied());
            if chain.upper_layer == proto::ICMPV6 && matches!(icmp_type, Some(135 | 136)) {
                return false;
            }
            // RFC 4443 §2.4(e.1): never an error about an error.
            if chain.upper_layer == proto::ICMPV6 && icmp_type.is_some_and(|t| t < 128) {
                return true;
            }
        }
        let to = ip.src_addr();
        let original =
            &packet[..(ipv6::HEADER_LEN + usize::from(ip.payload_len())).min(packet.len())];
        if self.is_local(&to) || !self.error_allowed(now, to) {
            return true;
        }
        let icmp = Icmpv6Repr::DstUnreachable {
            code: DstUnreachableCode::AddrUnreachable,
            invoking: &original[..original.len().min(MAX_QUOTE)],
        };
        if let Some(p) = self.icmp_packet(to, &icmp) {
            // Back through the router that delivered it.
            let peer_mac = MacAddr(frame[6..12].try_into().unwrap_or([0; 6]));
            out.push((port, ethernet_frame(peer_mac, port_mac, &p)));
            self.ro.count_unreachable();
            self.log
                .push(format!("event=unreachable_sent client={to} care_of={dst}"));
        }
        true
    }

    /// Return routability between members and clients, and the clients' answers to
    /// triggers (see [`crate::control::ro`]). Returns true when `packet` was one of:
    /// a Mobility Header to a service address, or a registered member's reverse-tunnelled
    /// Mobility Header.
    fn route_optimisation(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut Vec<(u16, Vec<u8>)>,
    ) -> bool {
        let Ok(ip) = Ipv6Packet::new_checked(packet) else {
            return false;
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(chain) = ExtHeaderChain::walk(ip.next_header(), ip.payload()) else {
            return false;
        };
        let ip_len = (ipv6::HEADER_LEN + usize::from(ip.payload_len())).min(packet.len());
        let packet = &packet[..ip_len];
        if chain.upper_layer == proto::MOBILITY && self.services.iter().any(|s| s.address == dst) {
            let mh = packet
                .get(ipv6::HEADER_LEN + chain.upper_offset..)
                .unwrap_or(&[]);
            self.client_mobility(now, src, dst, mh, packet, out);
            return true;
        }
        if chain.upper_layer == 41
            && dst == self.config.appliance.tunnel_address
            && chain.fragment.is_none()
        {
            let inner = packet
                .get(ipv6::HEADER_LEN + chain.upper_offset..)
                .unwrap_or(&[]);
            let Ok(inner_ip) = Ipv6Packet::new_checked(inner) else {
                return false;
            };
            if inner_ip.next_header() != proto::MOBILITY {
                return false;
            }
            self.member_mobility(now, src, inner, out);
            return true;
        }
        false
    }

    /// The port a service's members and clients are reached through.
    fn service_port(&self, service: Ipv6Addr) -> u16 {
        self.services
            .iter()
            .find(|s| s.address == service)
            .map_or(0, |s| s.port)
    }

    /// Is this member serving (in the last snapshot, active)?
    fn member_serves(&self, service: Ipv6Addr, m: &RoMember) -> bool {
        serves(&self.last_status, service, m)
    }

    /// The member a client's Mobility Header goes to when return routability did not pin
    /// one: highest random weight over the active members (stable while they are), so all
    /// of one client's signalling meets one member.
    fn pick_member(&self, service: Ipv6Addr, client: Ipv6Addr) -> Option<RoMember> {
        use std::hash::{Hash, Hasher};
        self.current_members()
            .into_iter()
            .filter(|(k, ..)| {
                k.service == service && self.last_status.get(k) == Some(&MemberStatus::Active)
            })
            .max_by_key(|(k, ..)| {
                let mut h = siphasher::sip::SipHasher13::new_with_keys(0x616e_7963, 0x6173_7436);
                client.hash(&mut h);
                (k.id, k.epoch).hash(&mut h);
                h.finish()
            })
            .map(|(k, care_of, ..)| RoMember {
                id: k.id,
                epoch: k.epoch,
                care_of,
            })
    }

    /// A client's Mobility Header to a service address: a HoT goes to the member whose
    /// HoTI it answers; a Binding Acknowledgement or Binding Refresh Request may be the
    /// answer to, or the occasion for, a trigger; the rest goes to the client's member.
    fn client_mobility(
        &mut self,
        now: Instant,
        client: Ipv6Addr,
        service: Ipv6Addr,
        mh: &[u8],
        packet: &[u8],
        out: &mut Vec<(u16, Vec<u8>)>,
    ) {
        let Ok(mhp) = MhPacket::new_checked(mh) else {
            self.counters.ro_discarded += 1;
            return;
        };
        // RFC 6275 §9.2: a wrong checksum is silently discarded.
        if !mhp.verify_checksum(&client, &service) {
            self.counters.ro_discarded += 1;
            return;
        }
        let message = MhRepr::parse(&mhp).map(|r| r.message);
        let target = match message {
            Ok(MhMessage::HomeTest {
                home_nonce_index,
                cookie,
                keygen_token,
            }) => match self
                .ro
                .on_hot(now, service, client, home_nonce_index, cookie, keygen_token)
            {
                HotOutcome::ToMember(m) => Some(m),
                HotOutcome::Consumed => return,
                HotOutcome::Unknown => None,
            },
            Ok(MhMessage::BindingAck(ba)) => {
                if self.ro.on_binding_ack(now, service, client, &ba, mh) {
                    return;
                }
                None
            }
            Ok(MhMessage::BindingRefreshRequest) => {
                let last = &self.last_status;
                if self
                    .ro
                    .on_brr(now, service, client, |m| serves(last, service, m))
                {
                    return;
                }
                None
            }
            _ => None,
        };
        let member = target
            .or_else(|| {
                self.ro
                    .member_of(service, client)
                    .filter(|m| self.member_serves(service, m))
            })
            .or_else(|| self.pick_member(service, client));
        let Some(member) = member else {
            self.counters.ro_discarded += 1;
            return;
        };
        self.tunnel_to_member(service, member, packet, out);
    }

    /// RFC 2473 encapsulation of `packet` (inner hop limit decremented) to a member, out of
    /// the service's port.
    fn tunnel_to_member(
        &mut self,
        service: Ipv6Addr,
        member: RoMember,
        packet: &[u8],
        out: &mut Vec<(u16, Vec<u8>)>,
    ) {
        let mut buf = VecBuf::from_slice(packet);
        match tunnel::decrement_hop_limit(buf.data_mut()) {
            Ok(tunnel::HopLimitVerdict::Forward(_)) => {}
            _ => {
                self.counters.ro_discarded += 1;
                return;
            }
        }
        let a = &self.config.appliance;
        let params = TunnelParams {
            src: a.tunnel_address,
            dst: member.care_of,
            hop_limit: a.outer_hop_limit,
            traffic_class: a.tunnel_traffic_class,
            flow_label: 0,
            encap_limit: a.encap_limit,
        };
        if !matches!(
            tunnel::encapsulate(&mut buf, &params),
            Ok(tunnel::EncapOutcome::Encapsulated { .. })
        ) {
            self.counters.ro_discarded += 1;
            return;
        }
        let port = self.service_port(service);
        let mac = self.member_mac(&Target {
            service,
            member_id: member.id,
            epoch: member.epoch,
            care_of: member.care_of,
        });
        match mac.or_else(|| self.next_hop_mac(port)) {
            Some(dst) => {
                self.counters.ro_relayed += 1;
                out.push((
                    port,
                    ethernet_frame(dst, self.port_macs[usize::from(port)], buf.data()),
                ));
            }
            None => self.counters.ro_discarded += 1,
        }
    }

    /// A registered member's reverse-tunnelled Mobility Header (RFC 6275 §10.4.5): the
    /// outer source must be the member's care-of address and the inner source its service
    /// (home) address. A HoTI is noted (which member asks) before the inner packet goes on
    /// to the client like any reverse-tunnelled packet.
    fn member_mobility(
        &mut self,
        now: Instant,
        care_of: Ipv6Addr,
        inner: &[u8],
        out: &mut Vec<(u16, Vec<u8>)>,
    ) {
        let Ok(ip) = Ipv6Packet::new_checked(inner) else {
            self.counters.ro_discarded += 1;
            return;
        };
        let (service, client) = (ip.src_addr(), ip.dst_addr());
        let Some((key, ..)) = self
            .current_members()
            .into_iter()
            .find(|(k, c, ..)| k.service == service && *c == care_of)
        else {
            self.counters.ro_discarded += 1;
            return;
        };
        if client.is_multicast() || client.is_unspecified() || self.is_local(&client) {
            self.counters.ro_discarded += 1;
            return;
        }
        let len = (ipv6::HEADER_LEN + usize::from(ip.payload_len())).min(inner.len());
        let inner = &inner[..len];
        if let Ok(mhp) = MhPacket::new_checked(ip.payload()) {
            if let Ok(MhRepr {
                message: MhMessage::HomeTestInit { cookie },
                ..
            }) = MhRepr::parse(&mhp)
            {
                let member = RoMember {
                    id: key.id,
                    epoch: key.epoch,
                    care_of,
                };
                self.ro.on_member_hoti(now, service, client, member, cookie);
            }
        }
        let mut packet = inner.to_vec();
        if !matches!(
            tunnel::decrement_hop_limit(&mut packet),
            Ok(tunnel::HopLimitVerdict::Forward(_))
        ) {
            self.counters.ro_discarded += 1;
            return;
        }
        let port = self.service_port(service);
        self.counters.ro_relayed += 1;
        self.send_to_port_next_hop(port, &packet, out);
    }

    /// Route-optimised clients, for `ctl bindings`.
    pub fn route_optimised(&self, now: Instant) -> Vec<RoClientView> {
        self.ro.views(now)
    }

    /// Route-optimisation counters (triggers and relays).
    pub fn ro_counters(&self) -> &RoCounters {
        self.ro.counters()
    }

    /// Care-of addresses claimed for down members.
    pub fn claimed_care_of(&self) -> Vec<Ipv6Addr> {
        self.claimed.keys().copied().collect()
    }

    /// Compares member statuses with the previous snapshot's: a member that stops being
    /// active (down, draining, gone) triggers its route-optimised clients; one that is
    /// active again cancels what is pending. Then updates the claimed care-of addresses.
    fn member_transitions(&mut self, now: Instant, spec: &mut SnapshotSpec) {
        let mut status = BTreeMap::new();
        for s in &spec.services {
            for m in &s.members {
                status.insert(
                    MemberKey {
                        service: s.address,
                        id: m.id,
                        epoch: m.epoch,
                    },
                    m.status,
                );
            }
        }
        for (k, old) in &self.last_status {
            let new = status.get(k).copied();
            match (old, new) {
                (MemberStatus::Active, Some(MemberStatus::Down)) => {
                    self.ro
                        .member_failed(now, k.service, k.id, k.epoch, FailReason::Down);
                }
                (MemberStatus::Active, Some(MemberStatus::Draining)) => {
                    self.ro
                        .member_failed(now, k.service, k.id, k.epoch, FailReason::Draining);
                }
                (MemberStatus::Active, None) => {
                    self.ro
                        .member_failed(now, k.service, k.id, k.epoch, FailReason::Gone);
                }
                (MemberStatus::Down | MemberStatus::Draining, Some(MemberStatus::Active)) => {
                    self.ro.member_restored(k.service, k.id, k.epoch, now);
                }
                _ => {}
            }
        }
        self.last_status = status;

        let mut down = BTreeMap::new();
        let mut serving = BTreeSet::new();
        for s in &spec.services {
            for m in &s.members {
                if m.status == MemberStatus::Down {
                    down.insert(m.care_of, s.port);
                } else {
                    serving.insert(m.care_of);
                }
            }
        }
        // An address still in use by a member of another service stays its own.
        down.retain(|a, _| !serving.contains(a));
        self.claims_over.retain(|a| down.contains_key(a));
        let mut claimed = BTreeMap::new();
        if self.config.route_optimisation.claim_care_of {
            for (a, port) in down {
                if self.claims_over.contains(&a) {
                    continue;
                }
                let since = self.claimed.get(&a).map_or(now, |c| c.1);
                claimed.insert(a, (port, since));
            }
        }
        for (a, (port, _)) in &claimed {
            if !self.claimed.contains_key(a) {
                self.log
                    .push(format!("event=care_of_claimed care_of={a} port={port}"));
                self.announcements.push(Announcement {
                    address: *a,
                    port: *port,
                    remaining: MAX_NEIGHBOR_ADVERTISEMENT,
                    next: now,
                });
            }
        }
        for a in self.claimed.keys() {
            if !claimed.contains_key(a) && !self.claims_over.contains(a) {
                self.log.push(format!(
                    "event=care_of_released care_of={a} reason=member_up"
                ));
            }
        }
        self.announcements
            .retain(|n| claimed.contains_key(&n.address));
        for a in claimed.keys() {
            if !spec.local_addresses.contains(a) {
                spec.local_addresses.push(*a);
            }
        }
        self.claimed = claimed;
    }

    /// RFC 4861 §7.2.6 unsolicited Neighbor Advertisements (Override set) for claimed
    /// care-of addresses, so that neighbours send what was the member's to us at once.
    fn announce(&mut self, now: Instant, out: &mut Vec<(u16, Vec<u8>)>) {
        for n in self.announcements.iter_mut() {
            if n.next > now || n.remaining == 0 {
                continue;
            }
            let Some(&mac) = self.port_macs.get(usize::from(n.port)) else {
                n.remaining = 0;
                continue;
            };
            let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
            let na = Icmpv6Repr::NeighborAdvert {
                router: false,
                solicited: false,
                override_: true,
                target: n.address,
                target_lladdr: Some(mac.0),
            };
            out.push((
                n.port,
                neighbour::build_icmp_frame(
                    mac,
                    MacAddr::from_ipv6_multicast(&all_nodes),
                    crate::runtime::link_local_of(mac),
                    all_nodes,
                    255,
                    &na,
                ),
            ));
            self.counters.claim_advertisements += 1;
            n.remaining -= 1;
            n.next = now + ANNOUNCEMENT_INTERVAL;
        }
        self.announcements.retain(|n| n.remaining > 0);
    }

    fn learn(&mut self, addr: Ipv6Addr, mac: MacAddr) {
        self.counters.neighbours_learned += 1;
        if self.neighbours.learn(addr, mac) {
            self.log
                .push(format!("event=neighbour_resolved addr={addr} mac={mac}"));
            self.dirty = true;
        }
    }

    /// A Mobility Header for the registrar. Returns false when the packet is not one.
    #[allow(clippy::too_many_arguments)]
    fn handle_mobility(
        &mut self,
        now: Instant,
        unix: Duration,
        port: u16,
        port_mac: MacAddr,
        peer_mac: MacAddr,
        packet: &[u8],
        out: &mut Vec<(u16, Vec<u8>)>,
    ) -> bool {
        let Ok(ip) = Ipv6Packet::new_checked(packet) else {
            return false;
        };
        let Ok(repr) = Ipv6Repr::parse(&ip) else {
            return false;
        };
        let payload = ip.payload();
        let Ok(chain) = ExtHeaderChain::walk(repr.next_header, payload) else {
            return false;
        };
        if chain.upper_layer != proto::MOBILITY {
            return false;
        }
        self.counters.mh_received += 1;
        let Some(mh) = payload.get(chain.upper_offset..) else {
            return true;
        };
        let rx = ReceivedMh {
            src: repr.src,
            dst: repr.dst,
            home_address: chain.home_address,
            mh,
            mh_offset: ipv6::HEADER_LEN + chain.upper_offset,
        };
        let outcome = self
            .registrar
            .on_mobility_header(Now { mono: now, unix }, &rx);
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        for line in &outcome.log {
            // Refusals are logged at most REFUSAL_LOG_RATE per second (a flood of bad BUs
            // must not flood the log); what is left out is counted and summarised.
            let refusal = line.starts_with("event=bu_rejected")
                || line.starts_with("event=mh_discarded")
                || line.starts_with("event=binding_error");
            if refusal && !self.refusal_log.try_take(ms) {
                self.counters.log_suppressed += 1;
                self.suppressed_pending += 1;
                continue;
            }
            self.log.push(line.clone());
        }
        match &outcome.reply {
            Some(Reply::Packet(p)) => {
                // Back to the previous hop that delivered the BU (RFC 6275 §9.5.4 addresses
                // the BA to the BU's source; the delivering router is a route to it).
                if outcome.ba_status().is_some() {
                    self.counters.ba_sent += 1;
                    out.push((port, ethernet_frame(peer_mac, port_mac, p)));
                } else {
                    // RFC 6275 §9.3.3: Binding Errors SHOULD be rate-limited; they share
                    // the ICMPv6 error bucket.
                    let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
                    if self.icmp.try_take(ms) {
                        self.counters.binding_errors_sent += 1;
                        out.push((port, ethernet_frame(peer_mac, port_mac, p)));
                    } else {
                        self.counters.icmp_rate_limited += 1;
                    }
                }
            }
            Some(Reply::ParameterProblem { to, code, pointer }) => {
                if let Some(p) = self.parameter_problem(now, *to, *code, *pointer, packet) {
                    self.counters.parameter_problems_sent += 1;
                    out.push((port, ethernet_frame(peer_mac, port_mac, &p)));
                }
            }
            None => {}
        }
        if !outcome.events.is_empty() {
            self.apply_member_events(now, &outcome.events);
        }
        true
    }

    /// ICMPv6 Parameter Problem about `invoking` (RFC 4443 §3.4), rate-limited (§2.4(f)).
    fn parameter_problem(
        &mut self,
        now: Instant,
        to: Ipv6Addr,
        code: u8,
        pointer: u32,
        invoking: &[u8],
    ) -> Option<Vec<u8>> {
        if !self.error_allowed(now, to) {
            return None;
        }
        let code = match code {
            1 => ParamProblemCode::UnrecognizedNextHeader,
            2 => ParamProblemCode::UnrecognizedOption,
            _ => ParamProblemCode::ErroneousHeaderField,
        };
        self.icmp_packet(
            to,
            &Icmpv6Repr::ParamProblem {
                code,
                pointer,
                invoking: &invoking[..invoking.len().min(MAX_QUOTE)],
            },
        )
    }

    fn apply_member_events(&mut self, now: Instant, events: &[MemberEvent]) {
        for e in events {
            match *e {
                MemberEvent::Joined { service, id, .. } => {
                    // A new incarnation replaces a leaving older one of the same key.
                    self.leaving
                        .retain(|l| !(l.service == service && l.spec.id == id));
                }
                MemberEvent::Left {
                    service,
                    care_of,
                    id,
                    epoch,
                    reason,
                } => {
                    use crate::control::registration::LeaveReason;
                    let key = MemberKey { service, id, epoch };
                    self.admin_drain.remove(&key);
                    if reason != LeaveReason::Expired {
                        // Lifetime 0 or withdrawn by a reload: drain, keep established flows.
                        if let Some(plan) = self.services.iter().find(|s| s.address == service) {
                            let weight = 0;
                            self.leaving.push(Leaving {
                                spec: MemberSpec {
                                    id,
                                    epoch,
                                    care_of,
                                    weight,
                                    status: MemberStatus::Draining,
                                    mac: None,
                                    stats_slot: 0,
                                },
                                service,
                                origin: Origin::Registered,
                                deadline: now + plan.drain_timeout,
                                last_packets: None,
                                last_change: now,
                            });
                            self.log.push(format!(
                                "event=member_draining service={service} care_of={care_of} \
                                 id={id} epoch={epoch} drain_timeout_s={}",
                                plan.drain_timeout.as_secs()
                            ));
                        }
                    }
                }
                MemberEvent::Refreshed { .. } | MemberEvent::WeightChanged { .. } => {}
            }
        }
        self.dirty = true;
        self.sync_health(now);
    }

    fn apply_health_events(&mut self, events: Vec<HealthEvent>) {
        for e in events {
            self.log.push(e.to_string());
            match e {
                HealthEvent::Down { target, .. } => {
                    self.health_down.insert(MemberKey {
                        service: target.service,
                        id: target.member_id,
                        epoch: target.epoch,
                    });
                }
                HealthEvent::Up { target, .. } => {
                    self.health_down.remove(&MemberKey {
                        service: target.service,
                        id: target.member_id,
                        epoch: target.epoch,
                    });
                }
            }
            self.dirty = true;
        }
    }

    /// Every member that is not leaving, per service: (key, care-of, weight, mac, origin).
    fn current_members(&self) -> Vec<(MemberKey, Ipv6Addr, u32, Option<MacAddr>, Origin)> {
        let mut out = Vec::new();
        for s in &self.config.services {
            for m in &s.members {
                if let Some(&id) = self.static_ids.get(&(s.address, m.care_of)) {
                    out.push((
                        MemberKey {
                            service: s.address,
                            id,
                            epoch: 1,
                        },
                        m.care_of,
                        m.weight,
                        m.mac,
                        Origin::Static,
                    ));
                }
            }
            for m in self.registrar.members(&s.address) {
                out.push((
                    MemberKey {
                        service: s.address,
                        id: m.id,
                        epoch: m.epoch,
                    },
                    m.care_of,
                    m.weight,
                    m.mac,
                    Origin::Registered,
                ));
            }
        }
        out
    }

    fn sync_health(&mut self, now: Instant) {
        let mut targets = Vec::new();
        for (key, care_of, _, _, _) in self.current_members() {
            let Some(spec) = self
                .services
                .iter()
                .find(|s| s.address == key.service)
                .and_then(|s| s.health.clone())
            else {
                continue;
            };
            targets.push((
                Target {
                    service: key.service,
                    member_id: key.id,
                    epoch: key.epoch,
                    care_of,
                },
                spec,
            ));
        }
        self.health.sync(now, &targets);
        // Forget the down marks of members that are no longer checked.
        let checked: BTreeSet<MemberKey> = targets
            .iter()
            .map(|(t, _)| MemberKey {
                service: t.service,
                id: t.member_id,
                epoch: t.epoch,
            })
            .collect();
        self.health_down.retain(|k| checked.contains(k));
    }

    /// Timers due at `now`; `forwarded(slot)` reads a member's forwarded-packet counter
    /// (summed over workers) for the idle check of leaving members.
    pub fn on_tick(&mut self, now: Instant, forwarded: impl Fn(u16) -> u64) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        for target in self.neighbours.due(now) {
            for (p, pc) in self.config.ports.iter().enumerate() {
                if pc.next_hop == Some(target) {
                    let mac = self.port_macs[p];
                    let ns = neighbour::build_solicitation(
                        mac,
                        crate::runtime::link_local_of(mac),
                        target,
                    );
                    out.push((p as u16, ns));
                }
            }
        }
        if self.registrar.next_expiry().is_some_and(|t| t <= now) {
            let events = self.registrar.on_timer(now);
            for e in &events {
                self.log.push(e.to_string());
            }
            if !events.is_empty() {
                self.apply_member_events(now, &events);
            }
        }
        if self.health.next_deadline().is_some_and(|t| t <= now) {
            let (probes, events) = self.health.poll(now);
            for probe in probes {
                let port = self.service_port(probe.target.service);
                let mac = self.member_mac(&probe.target);
                match mac.or_else(|| self.next_hop_mac(port)) {
                    Some(dst) => {
                        self.counters.probes_sent += 1;
                        out.push((
                            port,
                            ethernet_frame(dst, self.port_macs[usize::from(port)], &probe.packet),
                        ));
                    }
                    None => self.counters.probe_unroutable += 1,
                }
            }
            self.apply_health_events(events);
        }
        // Leaving members: deadline or idle.
        let idle = Duration::from_secs(u64::from(self.config.dataplane.affinity_idle_timeout));
        let mut removed = Vec::new();
        for l in self.leaving.iter_mut() {
            let packets = forwarded(l.spec.stats_slot);
            if l.last_packets != Some(packets) {
                l.last_packets = Some(packets);
                l.last_change = now;
            }
            if now >= l.deadline {
                removed.push((*l, "drain_timeout"));
            } else if now.saturating_duration_since(l.last_change) >= idle {
                removed.push((*l, "idle"));
            }
        }
        for (l, why) in removed {
            self.leaving
                .retain(|x| !(x.service == l.service && x.spec.id == l.spec.id));
            self.counters.drained_removed += 1;
            self.log.push(format!(
                "event=member_removed service={} care_of={} id={} epoch={} reason={why}",
                l.service, l.spec.care_of, l.spec.id, l.spec.epoch
            ));
            self.dirty = true;
        }
        if self.suppressed_pending > 0
            && now.saturating_duration_since(self.last_suppressed_note) >= Duration::from_secs(1)
        {
            self.log.push(format!(
                "event=log_suppressed lines={} what=refused_mobility_headers",
                self.suppressed_pending
            ));
            self.suppressed_pending = 0;
            self.last_suppressed_note = now;
        }
        // Admin drains past their deadline turn the member down (flows re-picked) until
        // undrained.
        for (k, mark) in self.admin_drain.iter_mut() {
            if !mark.timed_out && mark.deadline <= now {
                mark.timed_out = true;
                self.log.push(format!(
                    "event=member_drain_timeout service={} id={} epoch={}",
                    k.service, k.id, k.epoch
                ));
                self.dirty = true;
            }
        }
        for t in self.ro.poll(now) {
            let port = self.service_port(t.service);
            self.send_to_port_next_hop(port, &t.packet, &mut out);
        }
        let claim_for = Duration::from_secs(u64::from(self.config.route_optimisation.claim_for));
        let expired: Vec<Ipv6Addr> = self
            .claimed
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= claim_for)
            .map(|(a, _)| *a)
            .collect();
        for a in expired {
            self.end_claim(a, "claim_for");
        }
        self.announce(now, &mut out);
        out
    }

    fn member_mac(&self, t: &Target) -> Option<MacAddr> {
        let s = self
            .config
            .services
            .iter()
            .find(|s| s.address == t.service)?;
        s.members
            .iter()
            .find(|m| m.care_of == t.care_of)
            .and_then(|m| m.mac)
    }

    /// The next hop's MAC of a port: configured or resolved.
    pub fn next_hop_mac(&self, port: u16) -> Option<MacAddr> {
        let p = self.config.ports.get(usize::from(port))?;
        p.next_hop_mac
            .or_else(|| p.next_hop.and_then(|h| self.neighbours.lookup(&h)))
    }

    fn send_to_port_next_hop(&mut self, port: u16, packet: &[u8], out: &mut Vec<(u16, Vec<u8>)>) {
        if let Some(dst) = self.next_hop_mac(port) {
            out.push((
                port,
                ethernet_frame(dst, self.port_macs[usize::from(port)], packet),
            ));
        } else {
            self.counters.probe_unroutable += 1;
        }
    }

    /// When [`on_tick`](Self::on_tick) next has work (the caller may poll more often).
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.registrar.next_expiry(),
            self.health.next_deadline(),
            self.leaving.iter().map(|l| l.deadline).min(),
            self.admin_drain
                .values()
                .filter(|m| !m.timed_out)
                .map(|m| m.deadline)
                .min(),
            self.ro.next_deadline(),
            self.announcements.iter().map(|n| n.next).min(),
            self.claimed
                .values()
                .map(|(_, since)| {
                    *since
                        + Duration::from_secs(u64::from(self.config.route_optimisation.claim_for))
                })
                .min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn status_of(&self, key: &MemberKey, leaving: bool, now: Instant) -> MemberStatus {
        if self.health_down.contains(key) {
            return MemberStatus::Down;
        }
        match self.admin_drain.get(key) {
            Some(mark) if mark.timed_out || mark.deadline <= now => MemberStatus::Down,
            Some(_) => MemberStatus::Draining,
            None if leaving => MemberStatus::Draining,
            None => MemberStatus::Active,
        }
    }

    /// The spec of the next snapshot, when something changed since the last call.
    pub fn take_spec(&mut self, now: Instant) -> Option<SnapshotSpec> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        let mut spec = self.base.clone();
        for (i, p) in spec.ports.iter_mut().enumerate() {
            p.next_hop_mac = self.next_hop_mac(i as u16);
        }
        let current = self.current_members();
        let mut live = BTreeSet::new();
        let mut leaving = std::mem::take(&mut self.leaving);
        for s in spec.services.iter_mut() {
            let address = s.address;
            let mut members = Vec::new();
            for (key, care_of, weight, mac, _) in current.iter().filter(|m| m.0.service == address)
            {
                let Some(slot) = self.slots.get(*key) else {
                    self.log.push(format!(
                        "event=member_not_counted service={address} id={} reason=no_counter_slot",
                        key.id
                    ));
                    continue;
                };
                live.insert(*key);
                members.push(MemberSpec {
                    id: key.id,
                    epoch: key.epoch,
                    care_of: *care_of,
                    weight: *weight,
                    status: self.status_of(key, false, now),
                    mac: *mac,
                    stats_slot: slot,
                });
            }
            for l in leaving.iter_mut().filter(|l| l.service == address) {
                // A leaving member whose id is live again (re-registered) was replaced.
                if members.iter().any(|m| m.id == l.spec.id) {
                    continue;
                }
                // The same care-of address registered anew under another key: the new
                // binding wins the reverse path, the old one stops.
                if members.iter().any(|m| m.care_of == l.spec.care_of) {
                    continue;
                }
                let key = MemberKey {
                    service: address,
                    id: l.spec.id,
                    epoch: l.spec.epoch,
                };
                let Some(slot) = self.slots.get(key) else {
                    continue;
                };
                live.insert(key);
                l.spec.stats_slot = slot;
                let mut m = l.spec;
                m.status = match self.status_of(&key, true, now) {
                    MemberStatus::Active => MemberStatus::Draining,
                    other => other,
                };
                members.push(m);
            }
            s.members = members;
        }
        self.leaving = leaving;
        self.slots.retain(&live);
        self.member_transitions(now, &mut spec);
        self.generation += 1;
        self.counters.snapshots_built += 1;
        Some(spec)
    }

    /// Marks a spec build as failed so the next [`take_spec`](Self::take_spec) retries.
    pub fn spec_rejected(&mut self, why: &str) {
        self.log
            .push(format!("event=snapshot_rejected reason={why:?}"));
    }

    fn find_member(
        &self,
        service: Ipv6Addr,
        selector: &MemberSelector,
    ) -> Result<(MemberKey, Ipv6Addr), String> {
        if !self.services.iter().any(|s| s.address == service) {
            return Err(format!("{service} is not a configured service"));
        }
        let found = self.current_members().into_iter().find(|(k, care_of, ..)| {
            k.service == service
                && match selector {
                    MemberSelector::CareOf(a) => care_of == a,
                    MemberSelector::Id(id) => k.id == *id,
                }
        });
        found
            .map(|(k, c, ..)| (k, c))
            .ok_or_else(|| format!("service {service} has no member {selector}"))
    }

    /// Admin drain: the member takes no new flows and keeps its established ones until the
    /// service's drain timeout, then goes down until [`undrain`](Self::undrain).
    pub fn drain(
        &mut self,
        now: Instant,
        service: Ipv6Addr,
        selector: &MemberSelector,
    ) -> Result<String, String> {
        let (key, care_of) = self.find_member(service, selector)?;
        if self.admin_drain.contains_key(&key) {
            return Ok(format!("member {care_of} of {service} is already draining"));
        }
        let timeout = self
            .services
            .iter()
            .find(|s| s.address == service)
            .map_or(Duration::ZERO, |s| s.drain_timeout);
        self.admin_drain.insert(
            key,
            DrainMark {
                deadline: now + timeout,
                timed_out: false,
            },
        );
        self.dirty = true;
        self.log.push(format!(
            "event=member_drain service={service} care_of={care_of} id={} epoch={} \
             drain_timeout_s={} by=admin",
            key.id,
            key.epoch,
            timeout.as_secs()
        ));
        Ok(format!(
            "draining member {care_of} (id {}) of {service} for up to {} s",
            key.id,
            timeout.as_secs()
        ))
    }

    /// Ends an admin drain: the member takes new flows again.
    pub fn undrain(
        &mut self,
        service: Ipv6Addr,
        selector: &MemberSelector,
    ) -> Result<String, String> {
        let (key, care_of) = self.find_member(service, selector)?;
        if self.admin_drain.remove(&key).is_none() {
            return Err(format!("member {care_of} of {service} is not draining"));
        }
        self.dirty = true;
        self.log.push(format!(
            "event=member_undrain service={service} care_of={care_of} id={} epoch={} by=admin",
            key.id, key.epoch
        ));
        Ok(format!(
            "member {care_of} (id {}) of {service} takes new flows again",
            key.id
        ))
    }

    /// Records a reload that failed before it reached [`reload`](Self::reload) (the file
    /// did not parse or validate, or the key file is unusable): nothing changed.
    pub fn reload_failed(&mut self, reason: &str) {
        self.counters.reloads_failed += 1;
        self.log
            .push(format!("event=reload_refused reason={reason:?}"));
    }

    /// Applies a new configuration, already validated, with its key table. Settings that
    /// need a restart (ports, workers, memory, EAL) must be unchanged; otherwise nothing
    /// changes and the error says which key differs.
    pub fn reload(&mut self, now: Instant, new: Config, keys: &KeyTable) -> Result<String, String> {
        if let Err(e) = restart_needed(&self.config, &new) {
            self.counters.reloads_failed += 1;
            self.log.push(format!("event=reload_refused reason={e:?}"));
            return Err(e);
        }
        let summary = describe_diff(&self.config, &new);
        // Static members removed by the reload leave like a lifetime-0 BU: they drain.
        for old in &self.config.services {
            let new_service = new.services.iter().find(|s| s.address == old.address);
            for m in &old.members {
                let kept =
                    new_service.is_some_and(|s| s.members.iter().any(|n| n.care_of == m.care_of));
                if kept {
                    continue;
                }
                let Some(&id) = self.static_ids.get(&(old.address, m.care_of)) else {
                    continue;
                };
                if let Some(ns) = new_service {
                    self.leaving.push(Leaving {
                        spec: MemberSpec {
                            id,
                            epoch: 1,
                            care_of: m.care_of,
                            weight: 0,
                            status: MemberStatus::Draining,
                            mac: m.mac,
                            stats_slot: 0,
                        },
                        service: old.address,
                        origin: Origin::Static,
                        deadline: now + Duration::from_secs(u64::from(ns.drain_timeout)),
                        last_packets: None,
                        last_change: now,
                    });
                }
                self.static_ids.remove(&(old.address, m.care_of));
            }
        }
        // Leaving members of services that are gone go with them.
        self.leaving
            .retain(|l| new.services.iter().any(|s| s.address == l.service));
        let mut base = new.snapshot_spec();
        for (i, p) in base.ports.iter_mut().enumerate() {
            p.mac = self.port_macs[i];
        }
        base.local_addresses = self.base.local_addresses.clone();
        for a in &new.appliance.addresses {
            if !base.local_addresses.contains(a) {
                base.local_addresses.push(*a);
            }
        }
        for s in base.services.iter_mut() {
            s.members.clear();
        }
        self.base = base;
        self.local = self
            .base
            .local_addresses
            .iter()
            .copied()
            .chain(std::iter::once(self.base.tunnel.address))
            .collect();
        self.services = service_plans(&new);
        self.registration_enabled = new.registration.is_some();
        let events = self.registrar.reconfigure(registrar_config(&new, keys));
        for e in &events {
            self.log.push(e.to_string());
        }
        self.icmp
            .reconfigure(new.appliance.icmp_rate, new.appliance.icmp_burst);
        self.ro.set_config(ro_config(&new));
        self.config = new;
        self.assign_static_ids();
        self.apply_member_events(now, &events);
        self.sync_health(now);
        self.dirty = true;
        self.counters.reloads_ok += 1;
        self.log
            .push(format!("event=reload_applied changes={summary:?}"));
        Ok(format!("reloaded: {summary}"))
    }

    /// Every member, for the admin interface.
    pub fn members(&self, now: Instant) -> Vec<MemberInfo> {
        let bindings: BTreeMap<(Ipv6Addr, u32), BindingInfo> = self
            .registrar
            .bindings(now)
            .into_iter()
            .map(|b| ((b.service, b.id), b))
            .collect();
        let statuses: BTreeMap<(Ipv6Addr, u32, u32), String> = self
            .health
            .status()
            .into_iter()
            .map(|t| {
                (
                    (t.target.service, t.target.member_id, t.target.epoch),
                    format!("{t}"),
                )
            })
            .collect();
        let mut out = Vec::new();
        let checked = |service: &Ipv6Addr| {
            self.services
                .iter()
                .any(|s| &s.address == service && s.health.is_some())
        };
        for (key, care_of, weight, _, origin) in self.current_members() {
            let hk = (key.service, key.id, key.epoch);
            out.push(MemberInfo {
                key,
                care_of,
                origin,
                weight,
                status: self.status_of(&key, false, now),
                health_up: checked(&key.service).then(|| !self.health_down.contains(&key)),
                health_detail: statuses.get(&hk).cloned(),
                lifetime_left: bindings.get(&(key.service, key.id)).map(|b| b.left),
                drain_left: self
                    .admin_drain
                    .get(&key)
                    .filter(|m| !m.timed_out)
                    .map(|m| m.deadline.saturating_duration_since(now)),
                stats_slot: self.slots.by_member.get(&key).copied().unwrap_or(u16::MAX),
            });
        }
        for l in &self.leaving {
            let key = MemberKey {
                service: l.service,
                id: l.spec.id,
                epoch: l.spec.epoch,
            };
            if out
                .iter()
                .any(|m| m.key.service == key.service && m.key.id == key.id)
            {
                continue;
            }
            out.push(MemberInfo {
                key,
                care_of: l.spec.care_of,
                origin: l.origin,
                weight: 0,
                status: MemberStatus::Draining,
                health_up: None,
                health_detail: None,
                lifetime_left: None,
                drain_left: Some(l.deadline.saturating_duration_since(now)),
                stats_slot: self.slots.by_member.get(&key).copied().unwrap_or(u16::MAX),
            });
        }
        out
    }
}

/// How `ctl drain` names a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSelector {
    CareOf(Ipv6Addr),
    Id(u32),
}

impl std::fmt::Display for MemberSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberSelector::CareOf(a) => write!(f, "{a}"),
            MemberSelector::Id(id) => write!(f, "id {id}"),
        }
    }
}

/// `Err(key)` when `new` changes something only a restart can apply.
pub fn restart_needed(old: &Config, new: &Config) -> Result<(), String> {
    let mut keys = Vec::new();
    if old.dataplane != new.dataplane {
        keys.push("dataplane");
    }
    if old.ports != new.ports {
        keys.push("ports");
    }
    if old.appliance.tunnel_address != new.appliance.tunnel_address {
        keys.push("appliance.tunnel_address");
    }
    if old.admin != new.admin {
        keys.push("admin");
    }
    if keys.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} changed; these need a restart, nothing was applied",
            keys.join(", ")
        ))
    }
}

/// A one-line summary of what a reload changes.
fn describe_diff(old: &Config, new: &Config) -> String {
    let mut parts = Vec::new();
    for s in &new.services {
        match old.services.iter().find(|o| o.address == s.address) {
            None => parts.push(format!("+service {}", s.address)),
            Some(o) if o != s => parts.push(format!("~service {}", s.address)),
            Some(_) => {}
        }
    }
    for o in &old.services {
        if !new.services.iter().any(|s| s.address == o.address) {
            parts.push(format!("-service {}", o.address));
        }
    }
    if old.appliance != new.appliance {
        parts.push("~appliance".into());
    }
    if old.registration != new.registration {
        parts.push("~registration".into());
    }
    if old.route_optimisation != new.route_optimisation {
        parts.push("~route_optimisation".into());
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anycast6_wire::ipv6ext::HomeAddressDestOpts;
    use anycast6_wire::ipv6ext::Ipv6OptionsHeader;
    use anycast6_wire::mobility::{
        fill_checksum, BindingUpdate, MhMessage, MhOptions, MhPacket, MhRepr,
    };

    const PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn tunnel() -> Ipv6Addr {
        a("2001:db8:ff::1")
    }
    fn svc() -> Ipv6Addr {
        a("2001:db8:100::1")
    }

    const CONFIG: &str = r#"
[appliance]
tunnel_address = "2001:db8:ff::1"
[dataplane]
affinity_idle_timeout = 5
[[ports]]
name = "uplink"
device = "net_ring0"
mac = "02:00:00:00:00:01"
next_hop = "fe80::1"
next_hop_mac = "02:00:00:00:00:fe"
[[services]]
address = "2001:db8:100::1"
drain_timeout = 30
[[services.members]]
care_of = "2001:db8:2::10"
[[services.members]]
care_of = "2001:db8:2::11"
[registration]
trusted_prefixes = ["2001:db8:3::/64"]
max_lifetime = 40
"#;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    fn plane(text: &str, now: Instant) -> ControlPlane {
        ControlPlane::new(config(text), &KeyTable::default(), vec![PORT_MAC], now)
    }

    /// A BU frame from `coa` for the service, as a router delivers it to the port.
    fn bu_frame(coa: Ipv6Addr, home: Ipv6Addr, seq: u16, lifetime_units: u16) -> Vec<u8> {
        let repr = MhRepr {
            message: MhMessage::BindingUpdate(BindingUpdate {
                sequence: seq,
                ack: true,
                home_registration: true,
                lifetime: lifetime_units,
                ..Default::default()
            }),
            options: MhOptions::List(&[]),
        };
        let mut mh = vec![0u8; repr.buffer_len().unwrap()];
        repr.emit(&mut MhPacket::new_unchecked(&mut mh)).unwrap();
        fill_checksum(&home, &tunnel(), &mut mh).unwrap();
        let mut dst_opts = [0u8; HomeAddressDestOpts::HEADER_LEN];
        HomeAddressDestOpts {
            next_header: proto::MOBILITY,
            home_address: home,
        }
        .emit(&mut Ipv6OptionsHeader::new_unchecked(&mut dst_opts[..]))
        .unwrap();
        let payload_len = dst_opts.len() + mh.len();
        let mut packet = vec![0u8; ipv6::HEADER_LEN + payload_len];
        Ipv6Repr {
            src: coa,
            dst: tunnel(),
            next_header: 60,
            payload_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut packet[..]))
        .unwrap();
        packet[40..40 + dst_opts.len()].copy_from_slice(&dst_opts);
        packet[40 + dst_opts.len()..].copy_from_slice(&mh);
        ethernet_frame(PORT_MAC, ROUTER_MAC, &packet)
    }

    /// The status of the BA in a frame the plane sent.
    fn ba_status(frame: &[u8]) -> u8 {
        assert_eq!(&frame[0..6], &ROUTER_MAC.0, "back to the delivering router");
        assert_eq!(&frame[6..12], &PORT_MAC.0);
        let ip = Ipv6Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!(ip.src_addr(), tunnel());
        let chain = ExtHeaderChain::walk(ip.next_header(), ip.payload()).unwrap();
        assert_eq!(chain.upper_layer, proto::MOBILITY);
        let mh = chain.upper_layer_bytes(ip.payload()).unwrap();
        let repr = MhRepr::parse(&MhPacket::new_checked(mh).unwrap()).unwrap();
        match repr.message {
            MhMessage::BindingAck(ack) => ack.status.into(),
            other => panic!("not a BA: {other:?}"),
        }
    }

    fn members(spec: &SnapshotSpec) -> Vec<(Ipv6Addr, MemberStatus)> {
        spec.services[0]
            .members
            .iter()
            .map(|m| (m.care_of, m.status))
            .collect()
    }

    fn no_traffic(_: u16) -> u64 {
        0
    }

    #[test]
    fn static_members_first_snapshot() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let spec = p.take_spec(t0).unwrap();
        assert_eq!(
            members(&spec),
            vec![
                (a("2001:db8:2::10"), MemberStatus::Active),
                (a("2001:db8:2::11"), MemberStatus::Active)
            ]
        );
        assert!(spec.services[0]
            .members
            .iter()
            .all(|m| m.id >= STATIC_ID_BASE));
        assert_eq!(spec.ports[0].next_hop_mac, Some(ROUTER_MAC));
        assert!(p.take_spec(t0).is_none(), "nothing changed");
        crate::dataplane::snapshot::Snapshot::build(&spec).unwrap();
    }

    #[test]
    fn registration_joins_and_ba_returns() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        p.take_spec(t0);
        let out = p.on_frame(t0, 0, &bu_frame(a("2001:db8:3::7"), svc(), 1, 10));
        assert_eq!(out.len(), 1);
        assert_eq!(ba_status(&out[0].1), 0);
        let spec = p.take_spec(t0).unwrap();
        assert!(members(&spec).contains(&(a("2001:db8:3::7"), MemberStatus::Active)));
        let slots: BTreeSet<u16> = spec.services[0]
            .members
            .iter()
            .map(|m| m.stats_slot)
            .collect();
        assert_eq!(slots.len(), 3, "unique counter slots");
        assert_eq!(p.take_new_slots().len(), 3);
        assert_eq!(p.counters().ba_sent, 1);
        assert!(p
            .take_log()
            .iter()
            .any(|l| l.contains("event=member_joined")));
        crate::dataplane::snapshot::Snapshot::build(&spec).unwrap();
        // Untrusted source: 129, nothing changes.
        let out = p.on_frame(t0, 0, &bu_frame(a("2001:db8:9::7"), svc(), 1, 10));
        assert_eq!(ba_status(&out[0].1), 129);
        assert!(p.take_spec(t0).is_none());
    }

    #[test]
    fn without_registration_section_every_bu_gets_131() {
        let text = CONFIG.split("[registration]").next().unwrap();
        let t0 = Instant::now();
        let mut p = plane(text, t0);
        let out = p.on_frame(t0, 0, &bu_frame(a("2001:db8:3::7"), svc(), 1, 10));
        assert_eq!(ba_status(&out[0].1), 131);
        // Not a service: 132.
        let out = p.on_frame(
            t0,
            0,
            &bu_frame(a("2001:db8:3::7"), a("2001:db8:100::9"), 1, 10),
        );
        assert_eq!(ba_status(&out[0].1), 132);
    }

    #[test]
    fn lifetime_zero_drains_until_idle() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let coa = a("2001:db8:3::7");
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 1, 10));
        p.take_spec(t0);
        let out = p.on_frame(t0, 0, &bu_frame(coa, svc(), 2, 0));
        assert_eq!(ba_status(&out[0].1), 0);
        let spec = p.take_spec(t0).unwrap();
        assert!(members(&spec).contains(&(coa, MemberStatus::Draining)));
        // Traffic keeps it; 5 s (affinity_idle_timeout) without traffic removes it.
        let packets = std::cell::Cell::new(0u64);
        for s in 1..=10 {
            packets.set(s);
            p.on_tick(t0 + Duration::from_secs(s), |_| packets.get());
        }
        let spec = p.take_spec(t0 + Duration::from_secs(10));
        assert!(spec.is_none_or(|s| members(&s).contains(&(coa, MemberStatus::Draining))));
        p.on_tick(t0 + Duration::from_secs(14), |_| packets.get());
        assert!(p.take_spec(t0).is_none(), "idle for 4 s only");
        p.on_tick(t0 + Duration::from_secs(15), |_| packets.get());
        let spec = p.take_spec(t0 + Duration::from_secs(15)).unwrap();
        assert!(!members(&spec).iter().any(|m| m.0 == coa), "idle: removed");
        assert!(p
            .take_log()
            .iter()
            .any(|l| l.contains("event=member_removed") && l.contains("reason=idle")));
    }

    #[test]
    fn lifetime_zero_drains_until_timeout() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let coa = a("2001:db8:3::7");
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 1, 10));
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 2, 0));
        p.take_spec(t0);
        let mut n = 0;
        for s in 1..30 {
            n += 1;
            p.on_tick(t0 + Duration::from_secs(s), |_| n);
        }
        assert!(p.take_spec(t0).is_none());
        p.on_tick(t0 + Duration::from_secs(30), |_| n + 1);
        let spec = p.take_spec(t0 + Duration::from_secs(30)).unwrap();
        assert!(!members(&spec).iter().any(|m| m.0 == coa));
        assert!(p
            .take_log()
            .iter()
            .any(|l| l.contains("reason=drain_timeout")));
    }

    #[test]
    fn expiry_removes_at_once_and_reregistration_gets_a_new_epoch() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let coa = a("2001:db8:3::7");
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 1, 2)); // 8 s
        let first = p.take_spec(t0).unwrap();
        let old = *first.services[0]
            .members
            .iter()
            .find(|m| m.care_of == coa)
            .unwrap();
        assert_eq!(p.next_deadline(), Some(t0 + Duration::from_secs(8)));
        p.on_tick(t0 + Duration::from_secs(8), no_traffic);
        let spec = p.take_spec(t0 + Duration::from_secs(8)).unwrap();
        assert!(
            !members(&spec).iter().any(|m| m.0 == coa),
            "expired: gone at once"
        );
        p.on_frame(t0 + Duration::from_secs(9), 0, &bu_frame(coa, svc(), 2, 10));
        let spec = p.take_spec(t0 + Duration::from_secs(9)).unwrap();
        let new = *spec.services[0]
            .members
            .iter()
            .find(|m| m.care_of == coa)
            .unwrap();
        assert_eq!(new.id, old.id);
        assert_eq!(new.epoch, old.epoch + 1);
    }

    #[test]
    fn reregistration_while_draining_replaces_the_leaving_incarnation() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let coa = a("2001:db8:3::7");
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 1, 10));
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 2, 0));
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 3, 10));
        let spec = p.take_spec(t0).unwrap();
        let ours: Vec<_> = spec.services[0]
            .members
            .iter()
            .filter(|m| m.care_of == coa)
            .collect();
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0].status, MemberStatus::Active);
        crate::dataplane::snapshot::Snapshot::build(&spec).unwrap();
    }

    #[test]
    fn admin_drain_then_timeout_then_undrain() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        p.take_spec(t0);
        let m10 = MemberSelector::CareOf(a("2001:db8:2::10"));
        assert!(p.drain(t0, svc(), &m10).unwrap().contains("draining"));
        let spec = p.take_spec(t0).unwrap();
        assert_eq!(members(&spec)[0].1, MemberStatus::Draining);
        assert_eq!(members(&spec)[1].1, MemberStatus::Active);
        p.on_tick(t0 + Duration::from_secs(29), no_traffic);
        assert!(p.take_spec(t0 + Duration::from_secs(29)).is_none());
        p.on_tick(t0 + Duration::from_secs(30), no_traffic);
        let spec = p.take_spec(t0 + Duration::from_secs(30)).unwrap();
        assert_eq!(members(&spec)[0].1, MemberStatus::Down);
        p.undrain(svc(), &m10).unwrap();
        let spec = p.take_spec(t0 + Duration::from_secs(31)).unwrap();
        assert_eq!(members(&spec)[0].1, MemberStatus::Active);
        assert!(p.undrain(svc(), &m10).is_err(), "not draining");
        assert!(p
            .drain(t0, svc(), &MemberSelector::CareOf(a("2001:db8:2::99")))
            .is_err());
        assert!(p
            .drain(t0, a("2001:db8:100::9"), &MemberSelector::Id(1))
            .is_err());
    }

    #[test]
    fn reload_applies_changes_and_refuses_restart_only_ones() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let before = p.take_spec(t0).unwrap();
        let id11 = before.services[0].members[1].id;
        // Restart-only change: nothing applied.
        let moved = CONFIG.replace("net_ring0", "net_ring1");
        let e = p
            .reload(t0, config(&moved), &KeyTable::default())
            .unwrap_err();
        assert!(e.contains("ports"), "{e}");
        assert!(p.take_spec(t0).is_none());
        assert_eq!(p.counters().reloads_failed, 1);
        // Drop member ::10, add ::12: ::10 drains, ::11 keeps its id (and flows).
        let edited = CONFIG.replace(
            "care_of = \"2001:db8:2::10\"",
            "care_of = \"2001:db8:2::12\"",
        );
        let msg = p.reload(t0, config(&edited), &KeyTable::default()).unwrap();
        assert!(msg.contains("~service"), "{msg}");
        let spec = p.take_spec(t0).unwrap();
        let got = members(&spec);
        assert!(got.contains(&(a("2001:db8:2::10"), MemberStatus::Draining)));
        assert!(got.contains(&(a("2001:db8:2::11"), MemberStatus::Active)));
        assert!(got.contains(&(a("2001:db8:2::12"), MemberStatus::Active)));
        let m11 = spec.services[0]
            .members
            .iter()
            .find(|m| m.care_of == a("2001:db8:2::11"))
            .unwrap();
        assert_eq!(m11.id, id11);
        crate::dataplane::snapshot::Snapshot::build(&spec).unwrap();
    }

    #[test]
    fn reload_closing_registrations_withdraws_bindings() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let coa = a("2001:db8:3::7");
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 1, 10));
        p.take_spec(t0);
        let closed = CONFIG.replace(
            "drain_timeout = 30",
            "drain_timeout = 30\naccept_registrations = false",
        );
        p.reload(t0, config(&closed), &KeyTable::default()).unwrap();
        let spec = p.take_spec(t0).unwrap();
        assert!(members(&spec).contains(&(coa, MemberStatus::Draining)));
        assert!(p.take_log().iter().any(|l| l.contains("reason=withdrawn")));
        let out = p.on_frame(t0, 0, &bu_frame(coa, svc(), 2, 10));
        assert_eq!(ba_status(&out[0].1), 131);
    }

    #[test]
    fn static_member_added_over_a_registration_replaces_it() {
        let t0 = Instant::now();
        let base = CONFIG.replace(
            "[\"2001:db8:3::/64\"]",
            "[\"2001:db8:3::/64\", \"2001:db8:2::/64\"]",
        );
        let mut p = plane(&base, t0);
        let coa = a("2001:db8:3::7");
        p.on_frame(t0, 0, &bu_frame(coa, svc(), 1, 10));
        p.take_spec(t0);
        // A registration may not take a static member's care-of address: 128.
        let out = p.on_frame(t0, 0, &bu_frame(a("2001:db8:2::10"), svc(), 1, 10));
        assert_eq!(ba_status(&out[0].1), 128);
        let text = base.replace(
            "[registration]",
            "[[services.members]]\ncare_of = \"2001:db8:3::7\"\n[registration]",
        );
        p.reload(t0, config(&text), &KeyTable::default()).unwrap();
        let spec = p.take_spec(t0).unwrap();
        let ours: Vec<_> = spec.services[0]
            .members
            .iter()
            .filter(|m| m.care_of == coa)
            .collect();
        assert_eq!(ours.len(), 1, "one member per care-of address");
        assert!(ours[0].id >= STATIC_ID_BASE);
        crate::dataplane::snapshot::Snapshot::build(&spec).unwrap();
    }

    #[test]
    fn neighbour_solicitation_and_echo_are_answered() {
        let t0 = Instant::now();
        let text = CONFIG.replace("next_hop_mac = \"02:00:00:00:00:fe\"\n", "");
        let mut p = plane(&text, t0);
        let spec = p.take_spec(t0).unwrap();
        assert_eq!(spec.ports[0].next_hop_mac, None);
        let out = p.on_tick(t0, no_traffic);
        assert_eq!(out.len(), 1, "one NS for the next hop");
        assert_eq!(p.unresolved(), vec![a("fe80::1")]);
    }

    #[test]
    fn health_checks_take_members_out_and_back() {
        let text = CONFIG.replace(
            "drain_timeout = 30",
            "drain_timeout = 30\n[services.health]\nkind = \"echo\"\ninterval_ms = 100\ntimeout_ms = 50\nrise = 2\nfall = 2",
        );
        let t0 = Instant::now();
        let mut p = plane(&text, t0);
        p.take_spec(t0);
        let dead = a("2001:db8:2::11");
        let mut t = t0;
        let mut down_at = None;
        // Member ::10 answers every probe, ::11 none.
        for _ in 0..100 {
            t += Duration::from_millis(10);
            for (port, frame) in p.on_tick(t, no_traffic) {
                assert_eq!(port, 0);
                assert_eq!(
                    &frame[0..6],
                    &ROUTER_MAC.0,
                    "probes leave through the next hop"
                );
                let ip = Ipv6Packet::new_checked(&frame[14..]).unwrap();
                if ip.dst_addr() == dead {
                    continue;
                }
                // Answer like the member's kernel: an Echo Reply, via the router.
                let payload = ip.payload();
                let req = Icmpv6Repr::parse(
                    &Icmpv6Packet::new_checked(payload).unwrap(),
                    &ip.src_addr(),
                    &ip.dst_addr(),
                )
                .unwrap();
                let reply = req.echo_reply().unwrap();
                let mut msg = vec![0u8; reply.buffer_len()];
                reply
                    .emit(
                        &mut Icmpv6Packet::new_unchecked(&mut msg[..]),
                        &ip.dst_addr(),
                        &ip.src_addr(),
                    )
                    .unwrap();
                let mut pkt = vec![0u8; 40 + msg.len()];
                Ipv6Repr {
                    src: ip.dst_addr(),
                    dst: ip.src_addr(),
                    next_header: proto::ICMPV6,
                    payload_len: msg.len(),
                    hop_limit: 63,
                    traffic_class: 0,
                    flow_label: 0,
                }
                .emit(&mut Ipv6Packet::new_unchecked(&mut pkt[..]))
                .unwrap();
                pkt[40..].copy_from_slice(&msg);
                p.on_frame(t, 0, &ethernet_frame(PORT_MAC, ROUTER_MAC, &pkt));
            }
            if let Some(spec) = p.take_spec(t) {
                if members(&spec).contains(&(dead, MemberStatus::Down)) && down_at.is_none() {
                    down_at = Some(t);
                    assert!(members(&spec).contains(&(a("2001:db8:2::10"), MemberStatus::Active)));
                }
            }
        }
        let down_at = down_at.expect("the silent member went down");
        // interval x fall + one interval after the start (it was never answered).
        assert!(
            down_at - t0 <= Duration::from_millis(100 * 2 + 100 + 100),
            "{:?}",
            down_at - t0
        );
        assert!(p
            .take_log()
            .iter()
            .any(|l| l.contains("event=member_down") && l.contains("2001:db8:2::11")));
        let info = p.members(t);
        let m11 = info.iter().find(|m| m.care_of == dead).unwrap();
        assert_eq!(
            (m11.status, m11.health_up),
            (MemberStatus::Down, Some(false))
        );
        assert!(p.health().counters().timeouts >= 2);
        assert!(p.health().counters().replies >= 5);
    }

    #[test]
    fn refusals_are_logged_at_a_limited_rate() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        p.take_log();
        for seq in 0..50 {
            let out = p.on_frame(t0, 0, &bu_frame(a("2001:db8:9::1"), svc(), seq, 10));
            assert_eq!(ba_status(&out[0].1), 129, "every refusal is answered");
        }
        let logged = p.take_log();
        assert_eq!(logged.len(), REFUSAL_LOG_RATE as usize);
        assert_eq!(p.counters().log_suppressed, 40);
        p.on_tick(t0 + Duration::from_secs(1), no_traffic);
        assert!(p
            .take_log()
            .iter()
            .any(|l| l == "event=log_suppressed lines=40 what=refused_mobility_headers"));
        assert_eq!(
            p.registrar().counters().auth_failures.values().sum::<u64>(),
            50,
            "all counted"
        );
    }

    fn mh_bytes(repr: &MhRepr<'_>, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let mut mh = vec![0u8; repr.buffer_len().unwrap()];
        repr.emit(&mut MhPacket::new_unchecked(&mut mh)).unwrap();
        fill_checksum(&src, &dst, &mut mh).unwrap();
        mh
    }

    /// The IPv6 packet of a frame the plane sent, checking the link addresses.
    fn sent_ip(frame: &[u8], dst_mac: MacAddr) -> Ipv6Packet<&[u8]> {
        assert_eq!(&frame[0..6], &dst_mac.0);
        assert_eq!(&frame[6..12], &PORT_MAC.0);
        Ipv6Packet::new_checked(&frame[14..]).unwrap()
    }

    #[test]
    fn return_routability_is_pinned_and_failed_members_trigger_their_clients() {
        use anycast6_wire::mobility::{BaStatus, BindingAck, MobilityOption};
        use anycast6_wire::rr;
        let t0 = Instant::now();
        let cfg = format!("{CONFIG}\n[route_optimisation]\nclaim_care_of = true\n");
        let mut p = plane(&cfg, t0);
        p.take_spec(t0).unwrap();
        let client = a("2001:db8:c::2");
        let (m10, m11) = (a("2001:db8:2::10"), a("2001:db8:2::11"));
        let frame = |ip: &[u8]| ethernet_frame(PORT_MAC, ROUTER_MAC, ip);

        // Member ::11's HoTI, reverse-tunnelled: relayed to the client, hop limit - 1.
        let cookie = [1, 2, 3, 4, 5, 6, 7, 8];
        let hoti = ipv6(
            svc(),
            client,
            proto::MOBILITY,
            &mh_bytes(
                &MhRepr {
                    message: MhMessage::HomeTestInit { cookie },
                    options: MhOptions::NONE,
                },
                svc(),
                client,
            ),
        );
        let out = p.on_frame(t0, 0, &frame(&ipv6(m11, tunnel(), 41, &hoti)));
        assert_eq!(out.len(), 1);
        let ip = sent_ip(&out[0].1, ROUTER_MAC);
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.hop_limit()),
            (svc(), client, 63)
        );
        assert_eq!(ip.payload(), &hoti[40..]);
        // The same HoTI from a care-of address that is no member: dropped.
        let spoofed = ipv6(a("2001:db8:2::99"), tunnel(), 41, &hoti);
        assert!(p.on_frame(t0, 0, &frame(&spoofed)).is_empty());

        // The client's HoT goes back to ::11 (the service's affinity would not decide it).
        let token = [0x9b, 0x35, 0x68, 0x58, 0x2d, 0x56, 0xe3, 0x9d];
        let hot = ipv6(
            client,
            svc(),
            proto::MOBILITY,
            &mh_bytes(
                &MhRepr {
                    message: MhMessage::HomeTest {
                        home_nonce_index: 10,
                        cookie,
                        keygen_token: token,
                    },
                    options: MhOptions::NONE,
                },
                client,
                svc(),
            ),
        );
        let out = p.on_frame(t0, 0, &frame(&hot));
        assert_eq!(out.len(), 1);
        let ip = sent_ip(&out[0].1, ROUTER_MAC);
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.next_header()),
            (tunnel(), m11, 41)
        );
        let inner = Ipv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((inner.src_addr(), inner.hop_limit()), (client, 63));
        assert_eq!(p.route_optimised(t0)[0].care_of, m11);
        // A corrupted checksum is silently discarded (RFC 6275 §9.2).
        let mut bad = hot.clone();
        bad[45] ^= 0xff;
        assert!(p.on_frame(t0, 0, &frame(&bad)).is_empty());
        assert!(p.on_tick(t0, no_traffic).is_empty(), "healthy: no trigger");

        // ::11 drains: the client is sent home.
        p.drain(t0, svc(), &MemberSelector::CareOf(m11)).unwrap();
        p.take_spec(t0).unwrap();
        let out = p.on_tick(t0, no_traffic);
        assert_eq!(out.len(), 1, "{out:02x?}");
        let ip = sent_ip(&out[0].1, ROUTER_MAC);
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.next_header()),
            (svc(), client, proto::MOBILITY)
        );
        let mh = ip.payload();
        assert!(MhPacket::new_checked(mh)
            .unwrap()
            .verify_checksum(&svc(), &client));
        let repr = MhRepr::parse(&MhPacket::new_checked(mh).unwrap()).unwrap();
        let MhMessage::BindingUpdate(bu) = repr.message else {
            panic!("{repr:?}")
        };
        assert_eq!(
            (bu.sequence, bu.lifetime, bu.ack, bu.home_registration),
            (0, 0, true, false)
        );
        assert_eq!(repr.nonce_indices(), Some((10, 0)));
        let kbm = rr::kbm_home_only(&token);
        assert!(rr::verify_authenticator(&kbm, &svc(), &client, mh).unwrap());

        // The client's BA (status 0, with its authenticator) ends the trigger.
        let placeholder = [0u8; 12];
        let opts = [MobilityOption::BindingAuthData(&placeholder)];
        let mut ba = mh_bytes(
            &MhRepr {
                message: MhMessage::BindingAck(BindingAck {
                    status: BaStatus::Accepted,
                    key_mgmt: false,
                    other_flags: 0,
                    sequence: 0,
                    lifetime: 0,
                }),
                options: MhOptions::List(&opts),
            },
            client,
            svc(),
        );
        rr::insert_authenticator_and_fill_checksum(&kbm, &svc(), &client, &mut ba, &client, &svc())
            .unwrap();
        assert!(p
            .on_frame(t0, 0, &frame(&ipv6(client, svc(), proto::MOBILITY, &ba)))
            .is_empty());
        let view = &p.route_optimised(t0)[0];
        assert_eq!(view.trigger.as_ref().unwrap().state, "done");
        assert_eq!(p.ro_counters().triggers_done, 1);
        let log = p.take_log().join("\n");
        assert!(log.contains("event=trigger_sent service=2001:db8:100::1 client=2001:db8:c::2"));
        assert!(log.contains("event=trigger_done "));

        // Past the drain timeout ::11 is down: its care-of address is claimed.
        let t1 = t0 + Duration::from_secs(31);
        p.on_tick(t1, no_traffic);
        let spec = p.take_spec(t1).unwrap();
        assert!(spec.local_addresses.contains(&m11));
        assert!(!spec.local_addresses.contains(&m10));
        assert!(crate::dataplane::snapshot::Snapshot::build(&spec).is_ok());
        assert_eq!(p.claimed_care_of(), vec![m11]);
        let nas = p.on_tick(t1, no_traffic);
        assert_eq!(nas.len(), 1, "first unsolicited NA at once");
        let ip = sent_ip(&nas[0].1, MacAddr::from_ipv6_multicast(&a("ff02::1")));
        let msg = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        match Icmpv6Repr::parse(&msg, &ip.src_addr(), &ip.dst_addr()).unwrap() {
            Icmpv6Repr::NeighborAdvert {
                override_,
                solicited,
                target,
                target_lladdr,
                ..
            } => {
                assert!(override_ && !solicited);
                assert_eq!((target, target_lladdr), (m11, Some(PORT_MAC.0)));
            }
            other => panic!("{other:?}"),
        }
        assert!(p.on_tick(t1, no_traffic).is_empty());
        assert_eq!(p.on_tick(t1 + Duration::from_secs(1), no_traffic).len(), 1);
        assert_eq!(p.on_tick(t1 + Duration::from_secs(2), no_traffic).len(), 1);
        assert!(p
            .on_tick(t1 + Duration::from_secs(3), no_traffic)
            .is_empty());

        // A route-optimised packet to the claimed address (Type 2 routing header, home
        // address = the service): Destination Unreachable, quoting it whole.
        let mut rh2 = vec![proto::UDP, 2, 2, 1, 0, 0, 0, 0];
        rh2.extend_from_slice(&svc().octets());
        rh2.extend_from_slice(&[0x30, 0x39, 0, 7, 0, 12, 0, 0, 1, 2, 3, 4]);
        let to_claimed = ipv6(client, m11, 43, &rh2);
        let out = p.on_frame(t1, 0, &frame(&to_claimed));
        assert_eq!(out.len(), 1);
        let ip = sent_ip(&out[0].1, ROUTER_MAC);
        assert_eq!(ip.dst_addr(), client);
        let msg = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        match Icmpv6Repr::parse(&msg, &ip.src_addr(), &ip.dst_addr()).unwrap() {
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                assert_eq!(code, DstUnreachableCode::AddrUnreachable);
                assert_eq!(invoking, &to_claimed[..]);
            }
            other => panic!("{other:?}"),
        }
        // A Neighbor Solicitation for it is answered with the port's MAC.
        let ns = neighbour::build_solicitation(ROUTER_MAC, a("fe80::1"), m11);
        let out = p.on_frame(t1, 0, &ns);
        assert_eq!(out.len(), 1);
        // Echo to the claimed address is not answered as if we were the member.
        let echo = ipv6(
            client,
            m11,
            proto::ICMPV6,
            &[128, 0, 0x7f, 0xfe, 0, 1, 0, 1],
        );
        let out = p.on_frame(t1, 0, &frame(&echo));
        let ip = sent_ip(&out[0].1, ROUTER_MAC);
        assert_eq!(
            ip.payload()[0],
            1,
            "Destination Unreachable, not Echo Reply"
        );

        // The member's DAD for its address (it is back on the link): left unanswered, the
        // claim ends and is not renewed while the member is still down.
        let member_mac = MacAddr([0x02, 0, 0, 0, 0, 0x11]);
        let group = neighbour::solicited_node(&m11);
        // RFC 4861 §7.1.1: no source link-layer address option from `::`.
        let dad = neighbour::build_icmp_frame(
            member_mac,
            MacAddr::from_ipv6_multicast(&group),
            Ipv6Addr::UNSPECIFIED,
            group,
            255,
            &Icmpv6Repr::NeighborSolicit {
                target: m11,
                source_lladdr: None,
            },
        );
        assert!(p.on_frame(t1, 0, &dad).is_empty());
        assert!(p.claimed_care_of().is_empty());
        let spec = p.take_spec(t1).unwrap();
        assert!(!spec.local_addresses.contains(&m11));
        assert!(p
            .take_log()
            .join("\n")
            .contains("event=care_of_released care_of=2001:db8:2::11 reason=owner_returned"));
        p.on_tick(t1 + Duration::from_secs(1), no_traffic);
        assert!(p
            .take_spec(t1 + Duration::from_secs(1))
            .is_none_or(|s| !s.local_addresses.contains(&m11)));
        assert!(p.claimed_care_of().is_empty());
    }

    #[test]
    fn a_claim_ends_after_claim_for_and_when_the_member_is_up() {
        let t0 = Instant::now();
        let cfg = format!("{CONFIG}\n[route_optimisation]\nclaim_care_of = true\nclaim_for = 5\n");
        let mut p = plane(&cfg, t0);
        p.take_spec(t0).unwrap();
        let m10 = a("2001:db8:2::10");
        p.drain(t0, svc(), &MemberSelector::CareOf(m10)).unwrap();
        let t1 = t0 + Duration::from_secs(31);
        p.on_tick(t1, no_traffic);
        assert!(p.take_spec(t1).unwrap().local_addresses.contains(&m10));
        assert_eq!(
            p.next_deadline().map(|d| d <= t1 + Duration::from_secs(1)),
            Some(true)
        );
        p.on_tick(t1 + Duration::from_secs(4), no_traffic);
        assert_eq!(p.claimed_care_of(), vec![m10]);
        p.on_tick(t1 + Duration::from_secs(5), no_traffic);
        assert!(p.claimed_care_of().is_empty());
        let spec = p.take_spec(t1 + Duration::from_secs(5)).unwrap();
        assert!(
            !spec.local_addresses.contains(&m10),
            "released while still down"
        );
        assert!(p
            .take_log()
            .join("\n")
            .contains("event=care_of_released care_of=2001:db8:2::10 reason=claim_for"));
        // Up, then down again: claimed anew.
        p.undrain(svc(), &MemberSelector::CareOf(m10)).unwrap();
        p.take_spec(t1 + Duration::from_secs(6)).unwrap();
        p.drain(
            t1 + Duration::from_secs(6),
            svc(),
            &MemberSelector::CareOf(m10),
        )
        .unwrap();
        let t2 = t1 + Duration::from_secs(37);
        p.on_tick(t2, no_traffic);
        assert!(p.take_spec(t2).unwrap().local_addresses.contains(&m10));
    }

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut pkt = vec![0u8; 40 + payload.len()];
        Ipv6Repr {
            src,
            dst,
            next_header: nh,
            payload_len: payload.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut pkt[..]))
        .unwrap();
        pkt[40..].copy_from_slice(payload);
        pkt
    }

    fn icmp_error(repr: Icmpv6Repr<'_>, from: Ipv6Addr, to: Ipv6Addr) -> Vec<u8> {
        let mut msg = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv6Packet::new_unchecked(&mut msg[..]), &from, &to)
            .unwrap();
        ipv6(from, to, proto::ICMPV6, &msg)
    }

    #[test]
    fn errors_from_inside_the_tunnel_are_relayed_to_the_original_source() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        let client = a("2001:db8:77::5");
        let router = a("2001:db8:2::1");
        let original = ipv6(client, svc(), 17, &[0u8; 1400]);
        let tunnel_pkt = ipv6(tunnel(), a("2001:db8:2::10"), 41, &original);
        // Packet Too Big inside the tunnel: PTB to the client, MTU minus the 40 octets.
        let ptb = icmp_error(
            Icmpv6Repr::PacketTooBig {
                mtu: 1400,
                invoking: &tunnel_pkt[..1232],
            },
            router,
            tunnel(),
        );
        let out = p.on_frame(t0, 0, &ethernet_frame(PORT_MAC, ROUTER_MAC, &ptb));
        assert_eq!(out.len(), 1);
        let ip = Ipv6Packet::new_checked(&out[0].1[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (tunnel(), client));
        let msg = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        match Icmpv6Repr::parse(&msg, &ip.src_addr(), &ip.dst_addr()).unwrap() {
            Icmpv6Repr::PacketTooBig { mtu, invoking } => {
                assert_eq!(mtu, 1360);
                assert_eq!(
                    &invoking[..40],
                    &original[..40],
                    "quotes the original packet"
                );
            }
            other => panic!("{other:?}"),
        }
        // Time Exceeded inside the tunnel: Destination Unreachable code 3.
        let te = icmp_error(
            Icmpv6Repr::TimeExceeded {
                code: anycast6_wire::icmpv6::TimeExceededCode::HopLimitExceeded,
                invoking: &tunnel_pkt[..200],
            },
            router,
            tunnel(),
        );
        let out = p.on_frame(t0, 0, &ethernet_frame(PORT_MAC, ROUTER_MAC, &te));
        let ip = Ipv6Packet::new_checked(&out[0].1[14..]).unwrap();
        let msg = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(matches!(
            Icmpv6Repr::parse(&msg, &ip.src_addr(), &ip.dst_addr()).unwrap(),
            Icmpv6Repr::DstUnreachable {
                code: DstUnreachableCode::AddrUnreachable,
                ..
            }
        ));
        assert_eq!(p.counters().tunnel_errors_relayed, 2);
        // PTB for an original of 1280 octets or less: the entry point fragments, no relay.
        let small = ipv6(client, svc(), 17, &[0u8; 600]);
        let small_tunnel = ipv6(tunnel(), a("2001:db8:2::10"), 41, &small);
        let ptb = icmp_error(
            Icmpv6Repr::PacketTooBig {
                mtu: 1280,
                invoking: &small_tunnel,
            },
            router,
            tunnel(),
        );
        assert!(p
            .on_frame(t0, 0, &ethernet_frame(PORT_MAC, ROUTER_MAC, &ptb))
            .is_empty());
        // An error about somebody else's packet is not relayed.
        let foreign = ipv6(a("2001:db8:9::9"), a("2001:db8:2::10"), 41, &original);
        let te = icmp_error(
            Icmpv6Repr::TimeExceeded {
                code: anycast6_wire::icmpv6::TimeExceededCode::HopLimitExceeded,
                invoking: &foreign[..200],
            },
            router,
            tunnel(),
        );
        assert!(p
            .on_frame(t0, 0, &ethernet_frame(PORT_MAC, ROUTER_MAC, &te))
            .is_empty());
        assert_eq!(p.counters().tunnel_errors_relayed, 2);
    }

    #[test]
    fn garbage_frames_are_counted_not_fatal() {
        let t0 = Instant::now();
        let mut p = plane(CONFIG, t0);
        for f in [&[][..], &[0u8; 13][..], &[0xffu8; 80][..]] {
            assert!(p.on_frame(t0, 0, f).is_empty());
        }
        assert!(p.on_frame(t0, 9, &[0u8; 80]).is_empty(), "unknown port");
        assert_eq!(p.counters().unhandled, 4);
    }
}
