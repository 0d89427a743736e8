//! The far side of the appliance's port, sans I/O: the router (Neighbor Discovery), the
//! emulated members, and the recognition of client traffic coming back.
//!
//! [`Emulator::on_frame`] takes a received frame (mutable, so that a member's answer to
//! client traffic can be written over it) and says what it was; [`Emulator::on_tick`] runs
//! the timers (Binding Update (re)transmission and refresh, kills, solicitation of the
//! appliance's MAC) and returns the frames to send. Both take the time as arguments.
//!
//! # Members
//!
//! Member *i* has care-of address `first_care_of + i` and serves one service address.
//! It registers with a home-registration Binding Update to the appliance's tunnel address
//! (RFC 6275 §11.7.1; authenticated with RFC 4285 MN-HA + Replay Protection when a key is
//! configured), retransmits unanswered BUs after 1 s, doubling up to 32 s (RFC 6275 §11.8,
//! INITIAL_BINDACK_TIMEOUT / MAX_BINDACK_TIMEOUT), and refreshes at the Binding Refresh
//! Advice of the acknowledgement or else at 80 % of the granted lifetime. It answers the
//! appliance's health probes to its care-of address (health.rs: ICMPv6 echo; TCP SYN to
//! any port with a SYN-ACK, the RST that follows is counted; tunnel probes: an Echo
//! Request to the service address inside an RFC 2473 tunnel, answered with an Echo Reply
//! from the service address, reverse-tunnelled). Client traffic tunnelled to it is counted
//! and, in reply mode, answered in place: the frame is turned around (outer addresses
//! swapped, inner addresses and ports swapped, so the reply goes from the service address
//! to the client reverse-tunnelled through the appliance). A killed member does none of
//! this; what still reaches it is counted separately.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anycast6_wire::auth;
use anycast6_wire::checksum::{self, proto};
use anycast6_wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;
use anycast6_wire::mobility::{BaStatus, MhMessage, MhPacket, MhRepr};
use anycast6_wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
use serde::Serialize;

use crate::build::{self, BuParams, Stamp, ETH_LEN};
use crate::profile::{MemberMode, MembersSpec};

/// RFC 6275 §13: INITIAL_BINDACK_TIMEOUT.
pub const INITIAL_BINDACK_TIMEOUT: Duration = Duration::from_secs(1);
/// RFC 6275 §13: MAX_BINDACK_TIMEOUT.
pub const MAX_BINDACK_TIMEOUT: Duration = Duration::from_secs(32);
/// Wait before retrying after a rejected registration.
pub const REJECT_RETRY: Duration = Duration::from_secs(5);
/// Interval of the solicitations for the appliance's MAC.
pub const SOLICIT_INTERVAL: Duration = Duration::from_secs(1);

/// Static description of the far side.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub our_mac: [u8; 6],
    pub appliance_mac: Option<[u8; 6]>,
    pub tunnel_address: Option<Ipv6Addr>,
    pub next_hop: Option<Ipv6Addr>,
    /// Service addresses the clients talk to (to recognise their replies).
    pub services: Vec<Ipv6Addr>,
    pub client_prefix: Ipv6Addr,
    pub clients: u64,
    pub members: Option<MembersSpec>,
}

/// Registration state of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Nothing sent yet.
    Idle,
    /// A BU is out.
    Waiting { sent_at: Instant, timeout: Duration },
    /// Accepted; the next BU goes out at `refresh_at`.
    Registered {
        sent_at: Instant,
        refresh_at: Instant,
    },
    /// Rejected with `status`; tried again at `retry_at`.
    Rejected { status: u8, retry_at: Instant },
}

/// Per-member counters, as reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemberCounters {
    /// Client packets tunnelled to the member while alive.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Replies sent (reply mode).
    pub replies: u64,
    /// Client packets that reached it after it was killed.
    pub rx_after_death: u64,
    /// Client flows it received that later reached another member (with flow tracking).
    pub flows_moved_away: u64,
    pub echo_probes: u64,
    pub tcp_probes: u64,
    pub tcp_resets: u64,
    pub tunnel_probes: u64,
    pub bu_sent: u64,
    pub ba_accepted: u64,
    pub ba_rejected: u64,
    /// BAs whose MN-HA authenticator or checksum did not verify.
    pub ba_bad: u64,
    pub last_ba_status: Option<u8>,
    pub granted_lifetime_s: Option<u32>,
}

/// One emulated member.
#[derive(Debug, Clone)]
pub struct Member {
    pub index: usize,
    pub care_of: Ipv6Addr,
    pub service: Ipv6Addr,
    pub alive: bool,
    pub killed_at: Option<Instant>,
    /// When the last client packet reached it after it was killed: how long the appliance
    /// kept sending it traffic (its failover time, seen from the member).
    pub last_rx_after_death: Option<Instant>,
    pub registration: Registration,
    /// The binding is known to be valid until then.
    pub bound_until: Option<Instant>,
    pub sequence: u16,
    pub counters: MemberCounters,
}

impl Member {
    /// True while the appliance holds a binding for it (as far as the member knows).
    pub fn is_registered(&self, now: Instant) -> bool {
        self.bound_until.is_some_and(|t| now < t)
    }
}

/// Emulator-wide counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetCounters {
    pub ns_answered: u64,
    pub ns_sent: u64,
    pub not_ipv6: u64,
    pub malformed: u64,
    pub other: u64,
}

/// What a received frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rx {
    /// Client traffic back at the client side (a member's reply, or the generator's own
    /// packet on a loopback).
    Client { stamp: Option<Stamp> },
    /// Client traffic at member `member`; `reply`: the frame has been turned into the
    /// member's answer, to be sent as is.
    Member {
        member: usize,
        stamp: Option<Stamp>,
        reply: bool,
    },
    /// Control traffic handled; these frames answer it.
    Control(Vec<Vec<u8>>),
    /// Not for us, or nothing to do.
    Ignored,
}

/// The far side of the appliance.
#[derive(Debug)]
pub struct Emulator {
    cfg: EmulatorConfig,
    appliance_mac: Option<[u8; 6]>,
    members: Vec<Member>,
    by_care_of: HashMap<Ipv6Addr, usize>,
    mode: MemberMode,
    /// Last Replay Protection timestamp sent: each must be newer (RFC 4285 §5.1; the
    /// appliance keeps the last per SPI, and members share the SPI).
    last_timestamp: u64,
    next_solicit: Option<Instant>,
    kills_done: Vec<bool>,
    start: Option<Instant>,
    /// With flow tracking: the member that last received each client flow.
    flow_owner: Option<HashMap<FlowId, u32>>,
    pub counters: NetCounters,
    pub flows: FlowCounters,
}

/// A client flow as a member sees it inside the tunnel: source address, transport
/// protocol, source and destination ports.
type FlowId = (Ipv6Addr, u8, u16, u16);

/// Client flows seen by the members (with flow tracking).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowCounters {
    /// Distinct flows received.
    pub seen: u64,
    /// Times a flow reached a different member than the one before.
    pub moved: u64,
}

impl Emulator {
    pub fn new(cfg: EmulatorConfig) -> Emulator {
        let mut members = Vec::new();
        let mut by_care_of = HashMap::new();
        let mut mode = MemberMode::Sink;
        let mut kills = 0;
        let mut flow_owner = None;
        if let Some(spec) = &cfg.members {
            mode = spec.mode;
            if spec.track_flows {
                flow_owner = Some(HashMap::new());
            }
            kills = spec.kills.len();
            for i in 0..spec.count {
                let care_of = build::nth_address(spec.first_care_of, i as u64);
                by_care_of.insert(care_of, i);
                members.push(Member {
                    index: i,
                    care_of,
                    service: spec.service,
                    alive: true,
                    killed_at: None,
                    last_rx_after_death: None,
                    registration: Registration::Idle,
                    bound_until: None,
                    // Spread the members' first sequence numbers (any start is valid).
                    sequence: (i as u16).wrapping_mul(1000),
                    counters: MemberCounters::default(),
                });
            }
        }
        Emulator {
            appliance_mac: cfg.appliance_mac,
            cfg,
            members,
            by_care_of,
            mode,
            last_timestamp: 0,
            next_solicit: None,
            kills_done: vec![false; kills],
            start: None,
            flow_owner,
            counters: NetCounters::default(),
            flows: FlowCounters::default(),
        }
    }

    pub fn appliance_mac(&self) -> Option<[u8; 6]> {
        self.appliance_mac
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Members alive and registered at `now`.
    pub fn registered_count(&self, now: Instant) -> usize {
        self.members
            .iter()
            .filter(|m| m.alive && m.is_registered(now))
            .count()
    }

    /// Kills member `index`: it stops answering and refreshing. False when already dead.
    pub fn kill(&mut self, index: usize, now: Instant) -> bool {
        match self.members.get_mut(index) {
            Some(m) if m.alive => {
                m.alive = false;
                m.killed_at = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Kills the live member with the lowest index (SIGUSR1).
    pub fn kill_next(&mut self, now: Instant) -> Option<usize> {
        let i = self.members.iter().position(|m| m.alive)?;
        self.kill(i, now);
        Some(i)
    }

    fn is_client(&self, a: &Ipv6Addr) -> bool {
        let (p, x) = (u128::from(self.cfg.client_prefix), u128::from(*a));
        let high = !u128::from(u64::MAX);
        if p & high != x & high {
            return false;
        }
        (x as u64).wrapping_sub(p as u64) < self.cfg.clients
    }

    fn is_service(&self, a: &Ipv6Addr) -> bool {
        self.cfg.services.contains(a)
    }

    fn next_timestamp(&mut self, wall: SystemTime) -> u64 {
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let ts = auth::ntp_from_unix(since).max(self.last_timestamp + 1);
        self.last_timestamp = ts;
        ts
    }

    fn send_bu(
        &mut self,
        i: usize,
        now: Instant,
        wall: SystemTime,
        timeout: Duration,
    ) -> Option<Vec<u8>> {
        let dst_mac = self.appliance_mac?;
        let home_agent = self.cfg.tunnel_address?;
        let spec = self.cfg.members.clone()?;
        let timestamp = spec.auth.as_ref().map(|_| self.next_timestamp(wall));
        let m = &mut self.members[i];
        m.sequence = m.sequence.wrapping_add(1);
        let params = BuParams {
            care_of: m.care_of,
            home: m.service,
            home_agent,
            sequence: m.sequence,
            lifetime_units: (spec.lifetime_secs / 4).min(u32::from(u16::MAX)) as u16,
            bid: spec.bid.then_some(i as u16 + 1),
            weight: spec.weight,
            auth: spec
                .auth
                .as_ref()
                .zip(timestamp)
                .map(|((spi, key), ts)| (*spi, key.as_slice(), ts)),
        };
        let frame = build::binding_update(self.cfg.our_mac, dst_mac, &params).ok()?;
        m.counters.bu_sent += 1;
        m.registration = Registration::Waiting {
            sent_at: now,
            timeout,
        };
        Some(frame)
    }

    /// Timers. `wall` is the real-time clock (Replay Protection timestamps).
    pub fn on_tick(&mut self, now: Instant, wall: SystemTime) -> Vec<Vec<u8>> {
        let start = *self.start.get_or_insert(now);
        let mut out = Vec::new();
        if let Some(spec) = &self.cfg.members {
            let due: Vec<usize> = spec
                .kills
                .iter()
                .enumerate()
                .filter(|(k, kill)| !self.kills_done[*k] && now >= start + kill.at)
                .map(|(k, _)| k)
                .collect();
            for k in due {
                self.kills_done[k] = true;
                let member = self.cfg.members.as_ref().map_or(0, |s| s.kills[k].member);
                self.kill(member, now);
            }
        }
        if self.appliance_mac.is_none() {
            if let Some(target) = self.cfg.tunnel_address {
                if self.next_solicit.is_none_or(|t| now >= t) {
                    self.next_solicit = Some(now + SOLICIT_INTERVAL);
                    let src = self
                        .cfg
                        .next_hop
                        .unwrap_or_else(|| build::link_local(self.cfg.our_mac));
                    if let Ok(f) = build::neighbor_solicit(self.cfg.our_mac, src, target) {
                        self.counters.ns_sent += 1;
                        out.push(f);
                    }
                }
            }
            return out;
        }
        for i in 0..self.members.len() {
            let m = &self.members[i];
            if !m.alive {
                continue;
            }
            let timeout = match m.registration {
                Registration::Idle => Some(INITIAL_BINDACK_TIMEOUT),
                Registration::Waiting { sent_at, timeout } if now >= sent_at + timeout => {
                    Some((timeout * 2).min(MAX_BINDACK_TIMEOUT))
                }
                Registration::Registered { refresh_at, .. } if now >= refresh_at => {
                    Some(INITIAL_BINDACK_TIMEOUT)
                }
                Registration::Rejected { retry_at, .. } if now >= retry_at => {
                    Some(INITIAL_BINDACK_TIMEOUT)
                }
                _ => None,
            };
            if let Some(timeout) = timeout {
                out.extend(self.send_bu(i, now, wall, timeout));
            }
        }
        out
    }

    /// A received frame. In reply mode the frame may be rewritten into the answer
    /// ([`Rx::Member`] with `reply`).
    pub fn on_frame(&mut self, now: Instant, frame: &mut [u8]) -> Rx {
        if frame.len() < ETH_LEN + 40 || frame[12..14] != [0x86, 0xdd] {
            self.counters.not_ipv6 += 1;
            return Rx::Ignored;
        }
        let Ok(ip) = Ipv6Packet::new_checked(&frame[ETH_LEN..]) else {
            self.counters.malformed += 1;
            return Rx::Ignored;
        };
        let (src, dst, nh) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
        let ip_end = ETH_LEN + ip.total_len();
        if self.appliance_mac.is_none() && Some(src) == self.cfg.tunnel_address {
            self.appliance_mac = Some(frame[6..12].try_into().unwrap_or([0; 6]));
        }
        // Fast path: client traffic back at the clients, or on a loopback.
        if (nh == proto::UDP || nh == proto::TCP)
            && (self.is_service(&src) || self.is_service(&dst))
            && !self.by_care_of.contains_key(&dst)
        {
            return Rx::Client {
                stamp: l4_payload(nh, &frame[ETH_LEN + 40..ip_end]).and_then(Stamp::read),
            };
        }
        if let Some(&i) = self.by_care_of.get(&dst) {
            return self.member_frame(now, i, frame, ip_end);
        }
        if nh == proto::ICMPV6 {
            return self.icmp_frame(frame, ip_end);
        }
        self.counters.other += 1;
        Rx::Ignored
    }

    fn icmp_frame(&mut self, frame: &[u8], ip_end: usize) -> Rx {
        let ip = Ipv6Packet::new_unchecked(&frame[ETH_LEN..ip_end]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let msg = &frame[ETH_LEN + 40..ip_end];
        let Ok(packet) = Icmpv6Packet::new_checked(msg) else {
            self.counters.malformed += 1;
            return Rx::Ignored;
        };
        let Ok(repr) = Icmpv6Repr::parse(&packet, &src, &dst) else {
            self.counters.malformed += 1;
            return Rx::Ignored;
        };
        let eth_src: [u8; 6] = frame[6..12].try_into().unwrap_or([0; 6]);
        match repr {
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                let router = Some(target) == self.cfg.next_hop;
                if !(router || self.is_client(&target) || self.by_care_of.contains_key(&target)) {
                    self.counters.other += 1;
                    return Rx::Ignored;
                }
                // Whoever resolves the next hop is the appliance.
                if router && self.appliance_mac.is_none() {
                    self.appliance_mac = Some(source_lladdr.unwrap_or(eth_src));
                }
                let reply_mac = source_lladdr.unwrap_or(eth_src);
                match build::neighbor_advert(self.cfg.our_mac, reply_mac, target, src, router) {
                    Ok(f) => {
                        self.counters.ns_answered += 1;
                        Rx::Control(vec![f])
                    }
                    Err(_) => Rx::Ignored,
                }
            }
            Icmpv6Repr::NeighborAdvert {
                target,
                target_lladdr,
                ..
            } => {
                if Some(target) == self.cfg.tunnel_address && self.appliance_mac.is_none() {
                    self.appliance_mac = Some(target_lladdr.unwrap_or(eth_src));
                }
                Rx::Ignored
            }
            _ => {
                self.counters.other += 1;
                Rx::Ignored
            }
        }
    }

    fn member_frame(&mut self, now: Instant, i: usize, frame: &mut [u8], ip_end: usize) -> Rx {
        let (src, dst, nh) = {
            let ip = Ipv6Packet::new_unchecked(&frame[ETH_LEN..ip_end]);
            (ip.src_addr(), ip.dst_addr(), ip.next_header())
        };
        let payload_at = ETH_LEN + 40;
        let Ok(chain) = ExtHeaderChain::walk(nh, &frame[payload_at..ip_end]) else {
            self.counters.malformed += 1;
            return Rx::Ignored;
        };
        let upper_at = payload_at + chain.upper_offset;
        match chain.upper_layer {
            proto::IPV6 => self.member_tunnel(now, i, frame, upper_at, ip_end),
            proto::MOBILITY => {
                self.member_mobility(now, i, frame, src, dst, &chain, upper_at, ip_end)
            }
            proto::ICMPV6 | proto::TCP if !self.members[i].alive => Rx::Ignored,
            proto::ICMPV6 => {
                let Ok(packet) = Icmpv6Packet::new_checked(&frame[upper_at..ip_end]) else {
                    return Rx::Ignored;
                };
                let Ok(repr) = Icmpv6Repr::parse(&packet, &src, &dst) else {
                    self.counters.malformed += 1;
                    return Rx::Ignored;
                };
                if let Icmpv6Repr::NeighborSolicit { .. } = repr {
                    return self.icmp_frame(frame, ip_end);
                }
                let Some(reply) = repr.echo_reply() else {
                    return Rx::Ignored;
                };
                self.members[i].counters.echo_probes += 1;
                let eth_src: [u8; 6] = frame[6..12].try_into().unwrap_or([0; 6]);
                let out = build::icmpv6(&reply, &dst, &src).and_then(|msg| {
                    build::frame(
                        self.cfg.our_mac,
                        eth_src,
                        &build::ip(dst, src, proto::ICMPV6),
                        &msg,
                    )
                });
                out.map_or(Rx::Ignored, |f| Rx::Control(vec![f]))
            }
            proto::TCP => {
                let seg = &frame[upper_at..ip_end];
                let Ok(packet) = TcpPacket::new_checked(seg) else {
                    return Rx::Ignored;
                };
                let Ok(repr) = TcpRepr::parse(&packet, &src, &dst) else {
                    self.counters.malformed += 1;
                    return Rx::Ignored;
                };
                let c = &mut self.members[i].counters;
                if repr.flags.contains(TcpFlags::RST) {
                    c.tcp_resets += 1;
                    return Rx::Ignored;
                }
                if !repr.flags.contains(TcpFlags::SYN) || repr.flags.contains(TcpFlags::ACK) {
                    return Rx::Ignored;
                }
                c.tcp_probes += 1;
                let eth_src: [u8; 6] = frame[6..12].try_into().unwrap_or([0; 6]);
                let isn = isn_for(&repr, i);
                build::syn_ack(
                    self.cfg.our_mac,
                    eth_src,
                    dst,
                    src,
                    &repr,
                    packet.payload().len(),
                    isn,
                )
                .map_or(Rx::Ignored, |f| Rx::Control(vec![f]))
            }
            _ => Rx::Ignored,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn member_mobility(
        &mut self,
        now: Instant,
        i: usize,
        frame: &[u8],
        src: Ipv6Addr,
        dst: Ipv6Addr,
        chain: &ExtHeaderChain,
        upper_at: usize,
        ip_end: usize,
    ) -> Rx {
        let mh = &frame[upper_at..ip_end];
        let Ok(packet) = MhPacket::new_checked(mh) else {
            self.counters.malformed += 1;
            return Rx::Ignored;
        };
        // RFC 6275 §6.1.1: a BA's pseudo-header destination is the home address of its
        // Type 2 routing header.
        let pseudo_dst = chain.type2_home_address.unwrap_or(dst);
        let m = &mut self.members[i];
        if !packet.verify_checksum(&src, &pseudo_dst) {
            m.counters.ba_bad += 1;
            return Rx::Ignored;
        }
        let Ok(repr) = MhRepr::parse(&packet) else {
            m.counters.ba_bad += 1;
            return Rx::Ignored;
        };
        let MhMessage::BindingAck(ba) = repr.message else {
            self.counters.other += 1;
            return Rx::Ignored;
        };
        if !m.alive {
            return Rx::Ignored;
        }
        let Registration::Waiting { sent_at, .. } = m.registration else {
            return Rx::Ignored;
        };
        if let Some((_, key)) = self.cfg.members.as_ref().and_then(|s| s.auth.as_ref()) {
            if ba.status.is_accepted()
                && !auth::verify_mn_ha(key, &m.care_of, &m.service, packet.as_bytes())
                    .unwrap_or(false)
            {
                m.counters.ba_bad += 1;
                return Rx::Ignored;
            }
        }
        m.counters.last_ba_status = Some(ba.status.into());
        if ba.status.is_accepted() {
            if ba.sequence != m.sequence {
                return Rx::Ignored;
            }
            m.counters.ba_accepted += 1;
            let lifetime = Duration::from_secs(u64::from(ba.lifetime_secs()));
            m.counters.granted_lifetime_s = Some(ba.lifetime_secs());
            let refresh = match repr.binding_refresh_advice() {
                Some(units) if units > 0 => Duration::from_secs(u64::from(units) * 4),
                _ => lifetime.mul_f64(0.8),
            };
            m.bound_until = Some(sent_at + lifetime);
            m.registration = Registration::Registered {
                sent_at,
                refresh_at: sent_at + refresh.max(Duration::from_millis(500)),
            };
        } else if ba.status == BaStatus::SequenceNumberOutOfWindow {
            // RFC 6275 §11.7.3: take the sequence number from the BA and send again.
            m.counters.ba_rejected += 1;
            m.sequence = ba.sequence;
            m.registration = Registration::Rejected {
                status: ba.status.into(),
                retry_at: now,
            };
        } else {
            m.counters.ba_rejected += 1;
            m.registration = Registration::Rejected {
                status: ba.status.into(),
                retry_at: now + REJECT_RETRY,
            };
        }
        Rx::Ignored
    }

    fn member_tunnel(
        &mut self,
        now: Instant,
        i: usize,
        frame: &mut [u8],
        inner_at: usize,
        ip_end: usize,
    ) -> Rx {
        let Ok(inner) = Ipv6Packet::new_checked(&frame[inner_at..ip_end]) else {
            self.counters.malformed += 1;
            return Rx::Ignored;
        };
        let (isrc, idst, inh) = (inner.src_addr(), inner.dst_addr(), inner.next_header());
        let inner_end = inner_at + inner.total_len();
        let l4_at = inner_at + 40;
        let m = &mut self.members[i];
        if idst != m.service {
            self.counters.other += 1;
            return Rx::Ignored;
        }
        let outer_src = Ipv6Packet::new_unchecked(&frame[ETH_LEN..]).src_addr();
        // A tunnel probe: an Echo Request to the service address from the appliance.
        if inh == proto::ICMPV6 && Some(isrc) == self.cfg.tunnel_address {
            if !m.alive {
                return Rx::Ignored;
            }
            let Ok(packet) = Icmpv6Packet::new_checked(&frame[l4_at..inner_end]) else {
                return Rx::Ignored;
            };
            let Ok(repr) = Icmpv6Repr::parse(&packet, &isrc, &idst) else {
                self.counters.malformed += 1;
                return Rx::Ignored;
            };
            let Some(reply) = repr.echo_reply() else {
                return Rx::Ignored;
            };
            m.counters.tunnel_probes += 1;
            let (care_of, eth_src) = (m.care_of, frame[6..12].try_into().unwrap_or([0; 6]));
            let out = build::icmpv6(&reply, &idst, &isrc)
                .and_then(|msg| build::ip(idst, isrc, proto::ICMPV6).packet_with(&msg))
                .and_then(|inner| {
                    build::tunnelled(self.cfg.our_mac, eth_src, care_of, outer_src, &inner)
                });
            return out.map_or(Rx::Ignored, |f| Rx::Control(vec![f]));
        }
        let stamp = l4_payload(inh, &frame[l4_at..inner_end]).and_then(Stamp::read);
        if let (Some(owners), Some(ports)) = (&mut self.flow_owner, frame.get(l4_at..l4_at + 4)) {
            let id = (
                isrc,
                inh,
                u16::from_be_bytes([ports[0], ports[1]]),
                u16::from_be_bytes([ports[2], ports[3]]),
            );
            match owners.entry(id) {
                Entry::Vacant(v) => {
                    v.insert(i as u32);
                    self.flows.seen += 1;
                }
                Entry::Occupied(mut o) if *o.get() != i as u32 => {
                    let before = std::mem::replace(o.get_mut(), i as u32) as usize;
                    self.flows.moved += 1;
                    if let Some(b) = self.members.get_mut(before) {
                        b.counters.flows_moved_away += 1;
                    }
                }
                Entry::Occupied(_) => {}
            }
        }
        let m = &mut self.members[i];
        if !m.alive {
            m.counters.rx_after_death += 1;
            m.last_rx_after_death = Some(now);
            return Rx::Ignored;
        }
        m.counters.rx_packets += 1;
        m.counters.rx_bytes += (frame.len()) as u64;
        let reply = self.mode == MemberMode::Reply
            && turn_around(frame, inner_at, inner_end, i, self.cfg.our_mac);
        if reply {
            self.members[i].counters.replies += 1;
        }
        Rx::Member {
            member: i,
            stamp,
            reply,
        }
    }
}

/// Our ISN for a SYN-ACK: any value will do; derived from the segment so it varies.
fn isn_for(syn: &TcpRepr, member: usize) -> u32 {
    (u32::from(syn.src_port) << 16 | u32::from(syn.dst_port))
        ^ syn.seq_number.rotate_left(7)
        ^ (member as u32).wrapping_mul(0x9e37_79b9)
}

/// The transport payload of a UDP datagram or TCP segment (`l4` spans exactly it).
pub fn l4_payload(next_header: u8, l4: &[u8]) -> Option<&[u8]> {
    match next_header {
        proto::UDP => l4.get(8..),
        proto::TCP => {
            let off = usize::from(*l4.get(12)? >> 4) * 4;
            l4.get(off.max(20)..)
        }
        _ => None,
    }
}

/// Turns a tunnelled client packet into the member's answer, in place: Ethernet and outer
/// addresses swapped (so it goes from the care-of address back to the tunnel entry point,
/// RFC 2473 reverse tunnel), inner addresses and ports swapped (from the service address to
/// the client). A UDP checksum does not change when addresses and ports swap places; a TCP
/// SYN becomes a SYN-ACK with its checksum recomputed; an ICMPv6 Echo Request becomes the
/// Echo Reply. Other packets are not answered (false).
fn turn_around(
    frame: &mut [u8],
    inner_at: usize,
    inner_end: usize,
    member: usize,
    our_mac: [u8; 6],
) -> bool {
    let l4_at = inner_at + 40;
    let inh = frame[inner_at + 6];
    match inh {
        proto::UDP if inner_end >= l4_at + 8 => swap(frame, l4_at, l4_at + 2, 2),
        proto::TCP if inner_end >= l4_at + 20 => {
            let seg = &frame[l4_at..inner_end];
            let flags = TcpFlags::from_bits(seg[13]);
            if !flags.contains(TcpFlags::SYN) || flags.contains(TcpFlags::ACK) {
                return false;
            }
            let off = usize::from(seg[12] >> 4) * 4;
            if off < 20 || l4_at + off > inner_end {
                return false;
            }
            let seq = u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]);
            let data_len = inner_end - l4_at - off;
            let ack = seq.wrapping_add(1 + data_len as u32);
            let isn = seq.rotate_left(13) ^ (member as u32).wrapping_mul(0x9e37_79b9);
            swap(frame, l4_at, l4_at + 2, 2);
            frame[l4_at + 4..l4_at + 8].copy_from_slice(&isn.to_be_bytes());
            frame[l4_at + 8..l4_at + 12].copy_from_slice(&ack.to_be_bytes());
            frame[l4_at + 13] = (TcpFlags::SYN | TcpFlags::ACK).bits();
            frame[l4_at + 16..l4_at + 18].fill(0);
        }
        proto::ICMPV6 if inner_end >= l4_at + 8 => {
            // RFC 4443 §4.1: Echo Request is type 128.
            if frame[l4_at] != 128 {
                return false;
            }
            frame[l4_at] = 129;
            frame[l4_at + 2..l4_at + 4].fill(0);
        }
        _ => return false,
    }
    // Ethernet: back to where it came from.
    swap(frame, 0, 6, 6);
    frame[6..12].copy_from_slice(&our_mac);
    // Outer and inner addresses, fresh hop limits.
    swap(frame, ETH_LEN + 8, ETH_LEN + 24, 16);
    frame[ETH_LEN + 7] = build::HOP_LIMIT;
    swap(frame, inner_at + 8, inner_at + 24, 16);
    frame[inner_at + 7] = build::HOP_LIMIT;
    if inh != proto::UDP {
        let src = Ipv6Packet::new_unchecked(&frame[inner_at..]).src_addr();
        let dst = Ipv6Packet::new_unchecked(&frame[inner_at..]).dst_addr();
        let c = checksum::upper_layer(&src, &dst, inh, &frame[l4_at..inner_end]);
        let at = if inh == proto::TCP {
            l4_at + 16
        } else {
            l4_at + 2
        };
        frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    true
}

fn swap(buf: &mut [u8], a: usize, b: usize, len: usize) {
    let (x, y) = buf.split_at_mut(b);
    x[a..a + len].swap_with_slice(&mut y[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{ClientSide, Template};
    use crate::profile::{Kill, Protocol};
    use anycast6_wire::ipv6ext::Ipv6RoutingHeader;
    use anycast6_wire::ipv6ext::Type2RoutingRepr;
    use anycast6_wire::mobility::{BindingAck, MhOptions, MobilityOption};
    use anycast6_wire::tunnel;
    use anycast6_wire::{PacketBuf, VecBuf};

    const OUR: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
    const LB: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn ha() -> Ipv6Addr {
        "2001:db8:ff::1".parse().unwrap()
    }
    fn svc() -> Ipv6Addr {
        "2001:db8:100::1".parse().unwrap()
    }
    fn coa(i: u64) -> Ipv6Addr {
        build::nth_address("2001:db8:2::10".parse().unwrap(), i)
    }

    fn spec(count: usize, mode: MemberMode, auth: Option<(u32, Vec<u8>)>) -> MembersSpec {
        MembersSpec {
            count,
            first_care_of: coa(0),
            service: svc(),
            mode,
            lifetime_secs: 40,
            spi: auth.as_ref().map(|a| a.0),
            auth,
            bid: false,
            track_flows: false,
            weight: None,
            kills: vec![],
        }
    }

    fn emulator(members: Option<MembersSpec>, mac_known: bool) -> Emulator {
        Emulator::new(EmulatorConfig {
            our_mac: OUR,
            appliance_mac: mac_known.then_some(LB),
            tunnel_address: Some(ha()),
            next_hop: Some("fe80::1".parse().unwrap()),
            services: vec![svc()],
            client_prefix: "2001:db8:77::1".parse().unwrap(),
            clients: 10,
            members,
        })
    }

    /// The BA the appliance would send for `bu` (RFC 6275 §9.5.4: to the care-of address
    /// with a Type 2 routing header carrying the home address).
    fn ba_for(
        bu_frame: &[u8],
        status: BaStatus,
        lifetime: u16,
        refresh: Option<u16>,
        key: Option<(u32, &[u8])>,
    ) -> Vec<u8> {
        let ip = Ipv6Packet::new_checked(&bu_frame[ETH_LEN..]).unwrap();
        let chain = ExtHeaderChain::walk(ip.next_header(), ip.payload()).unwrap();
        let mh = MhPacket::new_checked(&ip.payload()[chain.upper_offset..]).unwrap();
        let bu = match MhRepr::parse(&mh).unwrap().message {
            MhMessage::BindingUpdate(bu) => bu,
            other => panic!("{other:?}"),
        };
        let (care_of, home) = (ip.src_addr(), chain.home_address.unwrap());
        let zero = [0u8; 12];
        let mut opts = vec![];
        if let Some(r) = refresh {
            opts.push(MobilityOption::BindingRefreshAdvice { interval: r });
        }
        if let Some((spi, _)) = key {
            opts.push(MobilityOption::ReplayProtection { timestamp: 7 });
            opts.push(MobilityOption::MobilityMessageAuth {
                subtype: anycast6_wire::mobility::AuthSubtype::MnHa,
                spi,
                auth_data: &zero,
            });
        }
        let repr = MhRepr {
            message: MhMessage::BindingAck(BindingAck {
                status,
                key_mgmt: false,
                other_flags: 0,
                sequence: bu.sequence,
                lifetime,
            }),
            options: MhOptions::List(&opts),
        };
        let mut mhb = vec![0u8; repr.buffer_len().unwrap()];
        repr.emit(&mut MhPacket::new_unchecked(&mut mhb[..]))
            .unwrap();
        match key {
            Some((_, k)) => {
                auth::insert_mn_ha_and_fill_checksum(k, &care_of, &home, &mut mhb, &ha(), &home)
                    .unwrap()
            }
            None => MhPacket::new_checked(&mut mhb[..])
                .unwrap()
                .fill_checksum(&ha(), &home),
        }
        let rh = Type2RoutingRepr {
            next_header: proto::MOBILITY,
            home_address: home,
        };
        let mut payload = vec![0u8; rh.buffer_len()];
        rh.emit(&mut Ipv6RoutingHeader::new_unchecked(&mut payload[..]))
            .unwrap();
        payload.extend_from_slice(&mhb);
        build::frame(LB, OUR, &build::ip(ha(), care_of, proto::ROUTING), &payload).unwrap()
    }

    #[test]
    fn solicits_the_appliance_then_learns_its_mac_from_the_next_hop_ns() {
        let mut e = emulator(Some(spec(1, MemberMode::Reply, None)), false);
        let t0 = Instant::now();
        let out = e.on_tick(t0, SystemTime::now());
        assert_eq!(out.len(), 1, "one NS for the tunnel address, no BU yet");
        assert_eq!(e.counters.ns_sent, 1);
        // The appliance resolves its next hop (us).
        let mut ns =
            build::neighbor_solicit(LB, build::link_local(LB), "fe80::1".parse().unwrap()).unwrap();
        match e.on_frame(t0, &mut ns) {
            Rx::Control(frames) => {
                let f = &frames[0];
                assert_eq!(&f[0..6], &LB);
                let ip = Ipv6Packet::new_checked(&f[ETH_LEN..]).unwrap();
                let repr = Icmpv6Repr::parse(
                    &Icmpv6Packet::new_checked(ip.payload()).unwrap(),
                    &ip.src_addr(),
                    &ip.dst_addr(),
                )
                .unwrap();
                assert!(
                    matches!(
                        repr,
                        Icmpv6Repr::NeighborAdvert {
                            router: true,
                            solicited: true,
                            target_lladdr: Some(OUR),
                            ..
                        }
                    ),
                    "{repr:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.appliance_mac(), Some(LB));
        // Now the BU goes out.
        let out = e.on_tick(t0, SystemTime::now());
        assert_eq!(out.len(), 1);
        assert_eq!(e.members()[0].counters.bu_sent, 1);
        // NS for a foreign address: ignored.
        let mut ns =
            build::neighbor_solicit(LB, build::link_local(LB), "2001:db8::99".parse().unwrap())
                .unwrap();
        assert_eq!(e.on_frame(t0, &mut ns), Rx::Ignored);
    }

    #[test]
    fn registers_refreshes_at_the_advice_and_retransmits_with_backoff() {
        let mut e = emulator(Some(spec(2, MemberMode::Reply, None)), true);
        let t0 = Instant::now();
        let w = SystemTime::now();
        let bus = e.on_tick(t0, w);
        assert_eq!(bus.len(), 2);
        // Member 0 is acknowledged (lifetime 10 units, refresh advice 8 units = 32 s).
        let mut ba = ba_for(&bus[0], BaStatus::Accepted, 10, Some(8), None);
        assert_eq!(e.on_frame(t0, &mut ba), Rx::Ignored);
        assert!(e.members()[0].is_registered(t0));
        assert_eq!(e.registered_count(t0), 1);
        assert!(e.on_tick(t0 + Duration::from_millis(500), w).is_empty());
        // Member 1's BU times out after 1 s: retransmitted with a new sequence number.
        let again = e.on_tick(t0 + Duration::from_millis(1001), w);
        assert_eq!(again.len(), 1);
        assert_eq!(e.members()[1].counters.bu_sent, 2);
        assert!(
            matches!(e.members()[1].registration, Registration::Waiting { timeout, .. } if timeout == Duration::from_secs(2))
        );
        // The old BU's BA no longer matches the sequence number.
        let mut stale = ba_for(&bus[1], BaStatus::Accepted, 10, None, None);
        e.on_frame(t0, &mut stale);
        assert!(!e.members()[1].is_registered(t0));
        // Member 0 refreshes at 32 s.
        assert!(e
            .on_tick(t0 + Duration::from_secs(31), w)
            .iter()
            .all(|f| Ipv6Packet::new_checked(&f[ETH_LEN..]).unwrap().src_addr() != coa(0)));
        let refresh = e.on_tick(t0 + Duration::from_secs(32), w);
        assert!(refresh
            .iter()
            .any(|f| Ipv6Packet::new_checked(&f[ETH_LEN..]).unwrap().src_addr() == coa(0)));
        // Still registered while the refresh is out.
        assert!(e.members()[0].is_registered(t0 + Duration::from_secs(33)));
    }

    #[test]
    fn refresh_at_80_percent_without_advice_and_rejections() {
        let mut e = emulator(Some(spec(1, MemberMode::Reply, None)), true);
        let t0 = Instant::now();
        let w = SystemTime::now();
        let bu = e.on_tick(t0, w).remove(0);
        e.on_frame(t0, &mut ba_for(&bu, BaStatus::Accepted, 10, None, None));
        assert!(
            matches!(e.members()[0].registration, Registration::Registered { refresh_at, .. } if refresh_at == t0 + Duration::from_secs(32))
        );
        let bu = e.on_tick(t0 + Duration::from_secs(32), w).remove(0);
        e.on_frame(
            t0 + Duration::from_secs(32),
            &mut ba_for(&bu, BaStatus::from(129), 0, None, None),
        );
        assert_eq!(e.members()[0].counters.last_ba_status, Some(129));
        assert!(e.on_tick(t0 + Duration::from_secs(33), w).is_empty());
        assert_eq!(
            e.on_tick(t0 + Duration::from_secs(38), w).len(),
            1,
            "retried after 5 s"
        );
    }

    #[test]
    fn authenticated_bu_and_ba() {
        let key: Vec<u8> = (1..=20).collect();
        let mut e = emulator(
            Some(spec(2, MemberMode::Reply, Some((256, key.clone())))),
            true,
        );
        let t0 = Instant::now();
        let bus = e.on_tick(t0, SystemTime::now());
        let mut stamps = vec![];
        for bu in &bus {
            let ip = Ipv6Packet::new_checked(&bu[ETH_LEN..]).unwrap();
            let chain = ExtHeaderChain::walk(ip.next_header(), ip.payload()).unwrap();
            let mh = &ip.payload()[chain.upper_offset..];
            assert!(auth::verify_mn_ha(&key, &ip.src_addr(), &svc(), mh).unwrap());
            assert!(MhPacket::new_checked(mh)
                .unwrap()
                .verify_checksum(&svc(), &ha()));
            let repr = MhRepr::parse(&MhPacket::new_checked(mh).unwrap()).unwrap();
            match repr.find_option(anycast6_wire::mobility::OptionType::ReplayProtection) {
                Some(MobilityOption::ReplayProtection { timestamp }) => stamps.push(timestamp),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            stamps[1] > stamps[0],
            "timestamps strictly increase across members"
        );
        // A BA with a wrong authenticator is not believed.
        let mut bad = ba_for(
            &bus[0],
            BaStatus::Accepted,
            10,
            None,
            Some((256, &[9u8; 20])),
        );
        e.on_frame(t0, &mut bad);
        assert!(!e.members()[0].is_registered(t0));
        assert_eq!(e.members()[0].counters.ba_bad, 1);
        let mut good = ba_for(&bus[0], BaStatus::Accepted, 10, None, Some((256, &key)));
        e.on_frame(t0, &mut good);
        assert!(e.members()[0].is_registered(t0));
    }

    fn client_frame(protocol: Protocol, size: usize) -> (Template, Vec<u8>) {
        let side = ClientSide {
            src_mac: OUR,
            dst_mac: LB,
            client_prefix: "2001:db8:77::1".parse().unwrap(),
            services: vec![svc()],
            first_source_port: 1024,
            dst_port: 9999,
        };
        let t = build::client_template(&side, protocol, size).unwrap();
        let mut f = t.bytes.clone();
        build::apply_stamp(&mut f, &t, &Stamp { seq: 5, tx_ns: 77 });
        (t, f)
    }

    /// What the appliance does to client traffic: strip Ethernet, decrement the hop limit,
    /// encapsulate to the care-of address, new Ethernet header.
    fn appliance_tunnels(client: &[u8], care_of: Ipv6Addr) -> Vec<u8> {
        let mut buf = VecBuf::from_slice(&client[ETH_LEN..]);
        let _ = tunnel::decrement_hop_limit(buf.data_mut()).unwrap();
        let _ = tunnel::encapsulate(
            &mut buf,
            &tunnel::TunnelParams {
                src: ha(),
                dst: care_of,
                hop_limit: 64,
                traffic_class: tunnel::TrafficClass::CopyInner,
                flow_label: 0,
                encap_limit: None,
            },
        )
        .unwrap();
        let mut f = LB.to_vec();
        f.splice(0..0, OUR);
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(buf.data());
        f
    }

    #[test]
    fn member_answers_client_traffic_reverse_tunnelled() {
        for protocol in [Protocol::Udp, Protocol::TcpSyn] {
            let mut e = emulator(Some(spec(2, MemberMode::Reply, None)), true);
            let (_, client) = client_frame(protocol, 128);
            let mut f = appliance_tunnels(&client, coa(1));
            let rx = e.on_frame(Instant::now(), &mut f);
            assert_eq!(
                rx,
                Rx::Member {
                    member: 1,
                    stamp: Some(Stamp { seq: 5, tx_ns: 77 }),
                    reply: true
                }
            );
            // The reply: outer care-of -> tunnel address; inner service -> client.
            assert_eq!(&f[0..6], &LB);
            assert_eq!(&f[6..12], &OUR);
            let mut buf = VecBuf::from_slice(&f[ETH_LEN..]);
            let info = tunnel::decapsulate(&mut buf).unwrap();
            assert_eq!((info.src, info.dst), (coa(1), ha()));
            let inner = Ipv6Packet::new_checked(buf.data()).unwrap();
            assert_eq!(inner.src_addr(), svc());
            assert_eq!(
                inner.dst_addr(),
                "2001:db8:77::1".parse::<Ipv6Addr>().unwrap()
            );
            assert!(checksum::verify_upper_layer(
                &inner.src_addr(),
                &inner.dst_addr(),
                inner.next_header(),
                inner.payload()
            ));
            if protocol == Protocol::TcpSyn {
                let seg = TcpPacket::new_checked(inner.payload()).unwrap();
                assert_eq!(seg.flags(), TcpFlags::SYN | TcpFlags::ACK);
                assert_eq!(seg.dst_port(), 1024);
            }
            // Back at the client side, after the appliance decapsulated it.
            let mut back = OUR.to_vec();
            back.extend_from_slice(&LB);
            back.extend_from_slice(&[0x86, 0xdd]);
            back.extend_from_slice(buf.data());
            assert_eq!(
                e.on_frame(Instant::now(), &mut back),
                Rx::Client {
                    stamp: Some(Stamp { seq: 5, tx_ns: 77 })
                }
            );
            assert_eq!(e.members()[1].counters.rx_packets, 1);
            assert_eq!(e.members()[1].counters.replies, 1);
        }
    }

    #[test]
    fn flow_tracking_counts_flows_that_move() {
        let mut s = spec(3, MemberMode::Sink, None);
        s.track_flows = true;
        s.kills = vec![Kill {
            member: 0,
            at: Duration::from_secs(2),
        }];
        let mut e = emulator(Some(s), true);
        let t0 = Instant::now();
        e.on_tick(t0, SystemTime::now());
        let (_, flow_a) = client_frame(Protocol::Udp, 100);
        // Flow B: the same client from another source port (members do not check the
        // transport checksum).
        let mut flow_b = flow_a.clone();
        flow_b[ETH_LEN + 40..ETH_LEN + 42].copy_from_slice(&2000u16.to_be_bytes());
        for _ in 0..3 {
            e.on_frame(t0, &mut appliance_tunnels(&flow_a, coa(0)));
        }
        assert_eq!(e.flows, FlowCounters { seen: 1, moved: 0 });
        e.on_tick(t0 + Duration::from_secs(2), SystemTime::now());
        assert!(!e.members()[0].alive);
        // Still sent to the dead member: not moved yet.
        e.on_frame(t0, &mut appliance_tunnels(&flow_a, coa(0)));
        assert_eq!(e.flows.moved, 0);
        assert_eq!(e.members()[0].counters.rx_after_death, 1);
        // Failed over to member 2, then stays there.
        for _ in 0..2 {
            e.on_frame(t0, &mut appliance_tunnels(&flow_a, coa(2)));
        }
        e.on_frame(t0, &mut appliance_tunnels(&flow_b, coa(1)));
        assert_eq!(e.flows, FlowCounters { seen: 2, moved: 1 });
        let away: Vec<u64> = e
            .members()
            .iter()
            .map(|m| m.counters.flows_moved_away)
            .collect();
        assert_eq!(away, [1, 0, 0]);

        // Without tracking nothing is counted.
        let mut e = emulator(Some(spec(3, MemberMode::Sink, None)), true);
        e.on_tick(t0, SystemTime::now());
        e.on_frame(t0, &mut appliance_tunnels(&flow_a, coa(0)));
        e.on_frame(t0, &mut appliance_tunnels(&flow_a, coa(1)));
        assert_eq!(e.flows, FlowCounters::default());
        assert_eq!(e.members()[1].counters.rx_packets, 1);
    }

    #[test]
    fn sink_mode_and_dead_members() {
        let mut s = spec(2, MemberMode::Sink, None);
        s.kills = vec![Kill {
            member: 0,
            at: Duration::from_secs(2),
        }];
        let mut e = emulator(Some(s), true);
        let t0 = Instant::now();
        e.on_tick(t0, SystemTime::now());
        let (_, client) = client_frame(Protocol::Udp, 100);
        let mut f = appliance_tunnels(&client, coa(0));
        let before = f.clone();
        assert_eq!(
            e.on_frame(t0, &mut f),
            Rx::Member {
                member: 0,
                stamp: Some(Stamp { seq: 5, tx_ns: 77 }),
                reply: false
            }
        );
        assert_eq!(f, before, "sink mode leaves the frame alone");
        e.on_tick(t0 + Duration::from_secs(2), SystemTime::now());
        assert!(!e.members()[0].alive);
        let mut f = appliance_tunnels(&client, coa(0));
        assert_eq!(e.on_frame(t0, &mut f), Rx::Ignored);
        assert_eq!(e.members()[0].counters.rx_after_death, 1);
        assert_eq!(e.members()[0].counters.rx_packets, 1);
        // Probes to a dead member go unanswered.
        let echo = Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"x",
        };
        let msg = build::icmpv6(&echo, &ha(), &coa(0)).unwrap();
        let mut probe =
            build::frame(LB, OUR, &build::ip(ha(), coa(0), proto::ICMPV6), &msg).unwrap();
        assert_eq!(e.on_frame(t0, &mut probe), Rx::Ignored);
        assert_eq!(e.kill_next(t0), Some(1));
        assert_eq!(e.kill_next(t0), None);
    }

    #[test]
    fn answers_the_three_health_probes() {
        let mut e = emulator(Some(spec(1, MemberMode::Reply, None)), true);
        let t0 = Instant::now();
        // Echo.
        let echo = Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 9,
            data: b"probe",
        };
        let msg = build::icmpv6(&echo, &ha(), &coa(0)).unwrap();
        let mut probe =
            build::frame(LB, OUR, &build::ip(ha(), coa(0), proto::ICMPV6), &msg).unwrap();
        let Rx::Control(out) = e.on_frame(t0, &mut probe) else {
            panic!()
        };
        let ip = Ipv6Packet::new_checked(&out[0][ETH_LEN..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (coa(0), ha()));
        let r = Icmpv6Repr::parse(
            &Icmpv6Packet::new_checked(ip.payload()).unwrap(),
            &ip.src_addr(),
            &ip.dst_addr(),
        )
        .unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::EchoReply {
                ident: 7,
                seq_no: 9,
                data: b"probe"
            }
        );
        // TCP SYN to any port.
        let syn = TcpRepr {
            src_port: 50000,
            dst_port: 80,
            seq_number: 1000,
            ack_number: 0,
            flags: TcpFlags::SYN,
            window_len: 1024,
            max_seg_size: None,
        };
        let mut seg = vec![0u8; syn.buffer_len(0)];
        syn.emit(&mut TcpPacket::new_unchecked(&mut seg), &ha(), &coa(0), &[])
            .unwrap();
        let mut probe = build::frame(LB, OUR, &build::ip(ha(), coa(0), proto::TCP), &seg).unwrap();
        let Rx::Control(out) = e.on_frame(t0, &mut probe) else {
            panic!()
        };
        let ip = Ipv6Packet::new_checked(&out[0][ETH_LEN..]).unwrap();
        let r = TcpRepr::parse(
            &TcpPacket::new_checked(ip.payload()).unwrap(),
            &ip.src_addr(),
            &ip.dst_addr(),
        )
        .unwrap();
        assert_eq!(r.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!((r.src_port, r.dst_port, r.ack_number), (80, 50000, 1001));
        // The RST that follows.
        let rst = TcpRepr {
            flags: TcpFlags::RST,
            seq_number: 1001,
            ..syn
        };
        let mut seg = vec![0u8; rst.buffer_len(0)];
        rst.emit(&mut TcpPacket::new_unchecked(&mut seg), &ha(), &coa(0), &[])
            .unwrap();
        let mut f = build::frame(LB, OUR, &build::ip(ha(), coa(0), proto::TCP), &seg).unwrap();
        assert_eq!(e.on_frame(t0, &mut f), Rx::Ignored);
        // Tunnel probe.
        let echo = Icmpv6Repr::EchoRequest {
            ident: 3,
            seq_no: 4,
            data: b"",
        };
        let msg = build::icmpv6(&echo, &ha(), &svc()).unwrap();
        let inner = build::ip(ha(), svc(), proto::ICMPV6)
            .packet_with(&msg)
            .unwrap();
        let mut probe = build::tunnelled(LB, OUR, ha(), coa(0), &inner).unwrap();
        let Rx::Control(out) = e.on_frame(t0, &mut probe) else {
            panic!()
        };
        let mut buf = VecBuf::from_slice(&out[0][ETH_LEN..]);
        let info = tunnel::decapsulate(&mut buf).unwrap();
        assert_eq!((info.src, info.dst), (coa(0), ha()));
        let ip = Ipv6Packet::new_checked(buf.data()).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (svc(), ha()));
        let r = Icmpv6Repr::parse(
            &Icmpv6Packet::new_checked(ip.payload()).unwrap(),
            &ip.src_addr(),
            &ip.dst_addr(),
        )
        .unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::EchoReply {
                ident: 3,
                seq_no: 4,
                data: b""
            }
        );
        let c = &e.members()[0].counters;
        assert_eq!(
            (c.echo_probes, c.tcp_probes, c.tcp_resets, c.tunnel_probes),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut e = emulator(
            Some(spec(2, MemberMode::Reply, Some((256, vec![1; 16])))),
            true,
        );
        let t0 = Instant::now();
        let (_, client) = client_frame(Protocol::Udp, 128);
        let tunnelled = appliance_tunnels(&client, coa(0));
        let mut rng = build::SplitMix(3);
        for n in 0..20_000 {
            let mut f = if n % 2 == 0 {
                tunnelled.clone()
            } else {
                client.clone()
            };
            let cut = rng.below(f.len() as u64 + 1) as usize;
            f.truncate(cut);
            for _ in 0..3 {
                if !f.is_empty() {
                    let i = rng.below(f.len() as u64) as usize;
                    f[i] = rng.next_u64() as u8;
                }
            }
            let _ = e.on_frame(t0, &mut f);
        }
    }
}
