//! Health checks of members, sans I/O.
//!
//! The [`HealthChecker`] decides when to probe each member, builds the probe packets
//! (complete IPv6 packets; the caller adds Ethernet and sends them out of the service's
//! port), matches the replies that come back on the exception path, and turns results into
//! up/down transitions with rise/fall thresholds. It reads no clock: every call takes the
//! time.
//!
//! # Probes
//!
//! Every probe is sent from the appliance's tunnel address (`source`), one at a time per
//! member; a probe not answered within `timeout` fails.
//!
//! | kind | probe | success | failure |
//! |---|---|---|---|
//! | `Echo` | ICMPv6 Echo Request to the care-of address | the Echo Reply | timeout; Destination Unreachable quoting the probe |
//! | `Tcp { port }` | TCP SYN to care-of:port from an ephemeral port (49152..=65535) | SYN-ACK acknowledging our ISN (answered by RST, so no connection is left half open) | RST acknowledging our ISN (port closed); timeout; Destination Unreachable |
//! | `Tunnel` | RFC 2473 tunnel packet to the care-of address (outer source `source`), carrying an Echo Request from `source` to the **service** address | the Echo Reply from the service address, sent directly or reverse-tunnelled by the member | timeout; Destination Unreachable |
//!
//! The tunnel probe checks what client traffic needs: that the member decapsulates and
//! owns the service address. Its reply cannot say which member sent it (every member
//! answers from the service address), so replies are matched by Echo identifier and
//! sequence number only, which are unique per probe; a reply must carry valid checksums.
//! Replies that come after their probe timed out are counted and ignored.
//!
//! # Up and down
//!
//! A member starts up (it has just registered, or is configured). `fall` failures in a row
//! take it down, `rise` successes in a row bring it back. With one probe per `interval` and
//! `timeout <= interval` ([`HealthSpec::validate`]), a member that dies right after a
//! successful probe is reported down at most `interval x fall + timeout` later, within the
//! issue's bound of `interval x fall + interval`. First probes of the members are spread
//! over one interval (an offset from a hash of the member), so a thousand members do not
//! probe in the same millisecond.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6_wire::checksum::proto;
use anycast6_wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
use serde::Serialize;

/// Payload of echo probes.
const ECHO_DATA: &[u8; 8] = b"a6health";
/// High byte of the Echo identifier of every probe, so that replies to probes that have
/// already timed out are still recognised as ours (and counted) rather than handed on.
const ECHO_IDENT_PREFIX: u16 = 0xa600;
/// Ephemeral source ports of TCP probes (RFC 6335 §6 dynamic range).
const TCP_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Echo,
    Tcp { port: u16 },
    Tunnel,
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeKind::Echo => f.write_str("echo"),
            ProbeKind::Tcp { port } => write!(f, "tcp/{port}"),
            ProbeKind::Tunnel => f.write_str("tunnel"),
        }
    }
}

/// How a service's members are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl HealthSpec {
    /// The rules the detection bound relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("interval must be positive".into());
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err(format!(
                "timeout {:?} must be positive and at most the interval {:?}",
                self.timeout, self.interval
            ));
        }
        if self.rise == 0 || self.fall == 0 {
            return Err("rise and fall must be at least 1".into());
        }
        if matches!(self.kind, ProbeKind::Tcp { port: 0 }) {
            return Err("TCP port 0".into());
        }
        Ok(())
    }
}

impl fmt::Display for HealthSpec {
    /// `tcp/80 every 1000ms timeout 500ms rise 2 fall 3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} every {}ms timeout {}ms rise {} fall {}",
            self.kind,
            self.interval.as_millis(),
            self.timeout.as_millis(),
            self.rise,
            self.fall
        )
    }
}

/// A checked member: (service, member id, epoch) identify it; the care-of address is where
/// probes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Target {
    pub service: Ipv6Addr,
    pub member_id: u32,
    pub epoch: u32,
    pub care_of: Ipv6Addr,
}

impl Target {
    fn key(&self) -> TargetKey {
        (self.service, self.member_id, self.epoch)
    }
}

type TargetKey = (Ipv6Addr, u32, u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
}

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailReason {
    Timeout,
    /// TCP RST: nothing listens on the port.
    Refused,
    /// ICMPv6 Destination Unreachable quoting the probe.
    Unreachable,
}

impl FailReason {
    pub fn name(self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::Refused => "refused",
            FailReason::Unreachable => "unreachable",
        }
    }
}

/// A transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEvent {
    Up { target: Target, after: u32 },
    Down { target: Target, reason: FailReason },
}

impl fmt::Display for HealthEvent {
    /// One structured log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthEvent::Up { target: t, after } => write!(
                f,
                "event=member_up service={} care_of={} id={} epoch={} successes={after}",
                t.service, t.care_of, t.member_id, t.epoch
            ),
            HealthEvent::Down { target: t, reason } => write!(
                f,
                "event=member_down service={} care_of={} id={} epoch={} reason={}",
                t.service,
                t.care_of,
                t.member_id,
                t.epoch,
                reason.name()
            ),
        }
    }
}

/// A probe to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    /// A complete IPv6 packet (no Ethernet header).
    pub packet: Vec<u8>,
}

/// What [`HealthChecker::on_packet`] made of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketOutcome {
    /// Not a reply to any probe of ours.
    NotMine,
    /// A reply (possibly late): transitions, and packets to send (the RST after a SYN-ACK).
    Consumed {
        events: Vec<HealthEvent>,
        send: Vec<Vec<u8>>,
    },
}

/// One target's state, for the admin interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    pub target: Target,
    pub health: Health,
    pub kind: String,
    /// Successes and failures in a row.
    pub successes_in_row: u32,
    pub failures_in_row: u32,
    pub probes: u64,
    pub successes: u64,
    pub failures: u64,
    pub last_rtt_us: Option<u64>,
    pub last_failure: Option<FailReason>,
}

impl fmt::Display for TargetStatus {
    /// `up, 12/12 ok, rtt 0.4 ms` or `down (timeout, 3 in a row)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.health {
            Health::Up => write!(f, "up, {}/{} ok", self.successes, self.probes)?,
            Health::Down => write!(
                f,
                "down ({}, {} in a row)",
                self.last_failure.map_or("?", FailReason::name),
                self.failures_in_row
            )?,
        }
        if let Some(rtt) = self.last_rtt_us {
            write!(f, ", rtt {:.1} ms", rtt as f64 / 1000.0)?;
        }
        Ok(())
    }
}

/// Totals over all targets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HealthCounters {
    pub probes_sent: u64,
    pub replies: u64,
    pub timeouts: u64,
    pub refused: u64,
    pub unreachable: u64,
    /// Replies to probes that had already timed out, or that match nothing outstanding.
    pub late_or_unmatched: u64,
    /// Replies whose checksum did not verify.
    pub bad_checksum: u64,
    pub went_down: u64,
    pub went_up: u64,
}

/// How a reply finds its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ProbeId {
    /// Echo identifier and sequence number (echo and tunnel probes).
    Echo { ident: u16, seq: u16 },
    /// Our TCP port, the member's address and port.
    Tcp {
        local: u16,
        remote: Ipv6Addr,
        remote_port: u16,
    },
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    id: ProbeId,
    /// Where the answer comes from: the care-of address, or the service address for a
    /// tunnel probe.
    reply_from: Ipv6Addr,
    isn: u32,
    sent: Instant,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct Checked {
    target: Target,
    spec: HealthSpec,
    health: Health,
    successes_in_row: u32,
    failures_in_row: u32,
    next_probe: Instant,
    outstanding: Option<Outstanding>,
    probes: u64,
    successes: u64,
    failures: u64,
    last_rtt: Option<Duration>,
    last_failure: Option<FailReason>,
}

/// The health checker (see the module documentation).
#[derive(Debug)]
pub struct HealthChecker {
    source: Ipv6Addr,
    hop_limit: u8,
    targets: BTreeMap<TargetKey, Checked>,
    probes: HashMap<ProbeId, TargetKey>,
    counter: u32,
    next_port: u16,
    /// Keys the TCP initial sequence numbers (RFC 6528): not guessable from outside.
    isn_key: std::collections::hash_map::RandomState,
    counters: HealthCounters,
}

impl HealthChecker {
    pub fn new(source: Ipv6Addr, hop_limit: u8) -> HealthChecker {
        HealthChecker {
            source,
            hop_limit: hop_limit.max(1),
            targets: BTreeMap::new(),
            probes: HashMap::new(),
            counter: 0,
            next_port: *TCP_PORTS.start(),
            isn_key: std::collections::hash_map::RandomState::new(),
            counters: HealthCounters::default(),
        }
    }

    pub fn counters(&self) -> &HealthCounters {
        &self.counters
    }

    /// Makes the checked set equal `targets`, keeping the state of targets already checked.
    pub fn sync(&mut self, now: Instant, targets: &[(Target, HealthSpec)]) {
        let wanted: BTreeMap<TargetKey, (Target, HealthSpec)> = targets
            .iter()
            .map(|(t, s)| (t.key(), (*t, s.clone())))
            .collect();
        let gone: Vec<TargetKey> = self
            .targets
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            if let Some(c) = self.targets.remove(&k) {
                if let Some(o) = c.outstanding {
                    self.probes.remove(&o.id);
                }
            }
        }
        for (key, (target, spec)) in wanted {
            match self.targets.get_mut(&key) {
                Some(c) => {
                    // A shorter interval takes effect now, not after the old one has run.
                    c.next_probe = c.next_probe.min(now + spec.interval);
                    c.target = target;
                    c.spec = spec;
                }
                None => {
                    let offset = spread(&target, spec.interval);
                    self.targets.insert(
                        key,
                        Checked {
                            target,
                            spec,
                            health: Health::Up,
                            successes_in_row: 0,
                            failures_in_row: 0,
                            next_probe: now + offset,
                            outstanding: None,
                            probes: 0,
                            successes: 0,
                            failures: 0,
                            last_rtt: None,
                            last_failure: None,
                        },
                    );
                }
            }
        }
    }

    /// Times out overdue probes and returns the probes due at `now`.
    pub fn poll(&mut self, now: Instant) -> (Vec<Probe>, Vec<HealthEvent>) {
        let mut events = Vec::new();
        let overdue: Vec<TargetKey> = self
            .targets
            .iter()
            .filter(|(_, c)| c.outstanding.is_some_and(|o| o.deadline <= now))
            .map(|(k, _)| *k)
            .collect();
        for k in overdue {
            if let Some(o) = self.targets.get_mut(&k).and_then(|c| c.outstanding.take()) {
                self.probes.remove(&o.id);
                self.counters.timeouts += 1;
                events.extend(self.fail(k, FailReason::Timeout));
            }
        }
        let due: Vec<TargetKey> = self
            .targets
            .iter()
            .filter(|(_, c)| c.outstanding.is_none() && c.next_probe <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut probes = Vec::with_capacity(due.len());
        for k in due {
            if let Some(p) = self.probe(k, now) {
                probes.push(p);
            }
        }
        (probes, events)
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.targets
            .values()
            .map(|c| match c.outstanding {
                Some(o) => o.deadline,
                None => c.next_probe,
            })
            .min()
    }

    pub fn health(&self, target: &Target) -> Option<Health> {
        self.targets.get(&target.key()).map(|c| c.health)
    }

    pub fn status(&self) -> Vec<TargetStatus> {
        self.targets
            .values()
            .map(|c| TargetStatus {
                target: c.target,
                health: c.health,
                kind: c.spec.kind.to_string(),
                successes_in_row: c.successes_in_row,
                failures_in_row: c.failures_in_row,
                probes: c.probes,
                successes: c.successes,
                failures: c.failures,
                last_rtt_us: c.last_rtt.map(|d| d.as_micros() as u64),
                last_failure: c.last_failure,
            })
            .collect()
    }

    fn probe(&mut self, key: TargetKey, now: Instant) -> Option<Probe> {
        let c = self.targets.get(&key)?;
        let (target, kind, interval, timeout) =
            (c.target, c.spec.kind, c.spec.interval, c.spec.timeout);
        self.counter = self.counter.wrapping_add(1);
        // 24 bits of probe counter: ample to keep outstanding probes apart.
        let ident = ECHO_IDENT_PREFIX | ((self.counter >> 16) as u16 & 0x00ff);
        let seq = self.counter as u16;
        let (id, reply_from, isn, packet) = match kind {
            ProbeKind::Echo => {
                let icmp = echo_request(self.source, target.care_of, ident, seq);
                let p = ipv6_packet(
                    self.source,
                    target.care_of,
                    proto::ICMPV6,
                    self.hop_limit,
                    &icmp,
                );
                (ProbeId::Echo { ident, seq }, target.care_of, 0, p)
            }
            ProbeKind::Tunnel => {
                let icmp = echo_request(self.source, target.service, ident, seq);
                let inner = ipv6_packet(self.source, target.service, proto::ICMPV6, 64, &icmp);
                // RFC 2473 §4: outer header from the entry point to the exit point.
                let p = ipv6_packet(self.source, target.care_of, 41, self.hop_limit, &inner);
                (ProbeId::Echo { ident, seq }, target.service, 0, p)
            }
            ProbeKind::Tcp { port } => {
                let Some(local) = self.free_port(target.care_of, port) else {
                    // Every port is taken by a probe to the same care-of:port; try again
                    // next interval rather than on every poll.
                    let c = self.targets.get_mut(&key)?;
                    c.next_probe = now + interval;
                    return None;
                };
                let isn = self.isn_key.hash_one((target, self.counter)) as u32;
                let syn = TcpRepr {
                    src_port: local,
                    dst_port: port,
                    seq_number: isn,
                    ack_number: 0,
                    flags: TcpFlags::SYN,
                    window_len: 1024,
                    max_seg_size: Some(1220),
                };
                let mut seg = vec![0u8; syn.buffer_len(0)];
                syn.emit(
                    &mut TcpPacket::new_unchecked(&mut seg[..]),
                    &self.source,
                    &target.care_of,
                    &[],
                )
                .ok()?;
                let p = ipv6_packet(
                    self.source,
                    target.care_of,
                    proto::TCP,
                    self.hop_limit,
                    &seg,
                );
                (
                    ProbeId::Tcp {
                        local,
                        remote: target.care_of,
                        remote_port: port,
                    },
                    target.care_of,
                    isn,
                    p,
                )
            }
        };
        self.probes.insert(id, key);
        let c = self.targets.get_mut(&key)?;
        c.outstanding = Some(Outstanding {
            id,
            reply_from,
            isn,
            sent: now,
            deadline: now + timeout,
        });
        c.probes += 1;
        // Keep the cadence, but never queue probes up after a stall.
        c.next_probe = (c.next_probe + interval).max(now + interval / 2);
        self.counters.probes_sent += 1;
        Some(Probe { target, packet })
    }

    fn free_port(&mut self, remote: Ipv6Addr, remote_port: u16) -> Option<u16> {
        let span = (TCP_PORTS.end() - TCP_PORTS.start()) as u32 + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p == *TCP_PORTS.end() {
                *TCP_PORTS.start()
            } else {
                p + 1
            };
            let id = ProbeId::Tcp {
                local: p,
                remote,
                remote_port,
            };
            if !self.probes.contains_key(&id) {
                return Some(p);
            }
        }
        None
    }

    fn fail(&mut self, key: TargetKey, reason: FailReason) -> Option<HealthEvent> {
        let c = self.targets.get_mut(&key)?;
        c.failures += 1;
        c.failures_in_row = c.failures_in_row.saturating_add(1);
        c.successes_in_row = 0;
        c.last_failure = Some(reason);
        if c.health == Health::Up && c.failures_in_row >= c.spec.fall {
            c.health = Health::Down;
            self.counters.went_down += 1;
            return Some(HealthEvent::Down {
                target: c.target,
                reason,
            });
        }
        None
    }

    fn succeed(&mut self, key: TargetKey, rtt: Duration) -> Option<HealthEvent> {
        let c = self.targets.get_mut(&key)?;
        c.successes += 1;
        c.successes_in_row = c.successes_in_row.saturating_add(1);
        c.failures_in_row = 0;
        c.last_rtt = Some(rtt);
        if c.health == Health::Down && c.successes_in_row >= c.spec.rise {
            c.health = Health::Up;
            self.counters.went_up += 1;
            return Some(HealthEvent::Up {
                target: c.target,
                after: c.successes_in_row,
            });
        }
        None
    }

    /// Takes the outstanding probe `id` off the books; `None` if none matches (late).
    fn settle(&mut self, id: ProbeId) -> Option<(TargetKey, Outstanding)> {
        let Some(key) = self.probes.remove(&id) else {
            self.counters.late_or_unmatched += 1;
            return None;
        };
        let o = self.targets.get_mut(&key)?.outstanding.take()?;
        Some((key, o))
    }

    /// A packet from the exception path (IPv6, no Ethernet header).
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) -> PacketOutcome {
        let Some((src, dst, nh, payload)) = split_ipv6(packet) else {
            return PacketOutcome::NotMine;
        };
        if dst != self.source {
            return PacketOutcome::NotMine;
        }
        match nh {
            proto::ICMPV6 => self.on_icmp(now, src, dst, payload),
            proto::TCP => self.on_tcp(now, src, dst, payload),
            // A reverse-tunnelled reply to a tunnel probe.
            41 => match split_ipv6(payload) {
                Some((isrc, idst, proto::ICMPV6, ipayload)) if idst == self.source => {
                    self.on_icmp(now, isrc, idst, ipayload)
                }
                _ => PacketOutcome::NotMine,
            },
            _ => PacketOutcome::NotMine,
        }
    }

    fn on_icmp(&mut self, now: Instant, src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> PacketOutcome {
        let Ok(packet) = Icmpv6Packet::new_checked(msg) else {
            return PacketOutcome::NotMine;
        };
        let repr = match Icmpv6Repr::parse(&packet, &src, &dst) {
            Ok(r) => r,
            Err(anycast6_wire::Error::Checksum(_)) => {
                // Only count it when it would have been ours.
                if msg.first() == Some(&129) {
                    self.counters.bad_checksum += 1;
                }
                return PacketOutcome::NotMine;
            }
            Err(_) => return PacketOutcome::NotMine,
        };
        match repr {
            Icmpv6Repr::EchoReply { ident, seq_no, .. } => {
                let id = ProbeId::Echo { ident, seq: seq_no };
                if !self.probes.contains_key(&id) && (ident & 0xff00) != ECHO_IDENT_PREFIX {
                    return PacketOutcome::NotMine;
                }
                let from_target = self
                    .probes
                    .get(&id)
                    .and_then(|k| self.targets.get(k))
                    .and_then(|c| c.outstanding)
                    .is_some_and(|o| o.reply_from == src);
                let mut events = Vec::new();
                if !from_target {
                    // Right identifiers, wrong sender (or no probe outstanding any more).
                    self.counters.late_or_unmatched += 1;
                } else if let Some((key, o)) = self.settle(id) {
                    self.counters.replies += 1;
                    events.extend(self.succeed(key, now.saturating_duration_since(o.sent)));
                }
                PacketOutcome::Consumed {
                    events,
                    send: Vec::new(),
                }
            }
            Icmpv6Repr::DstUnreachable { invoking, .. } => match self.quoted_probe(invoking) {
                Some(id) => {
                    let mut events = Vec::new();
                    if let Some((key, _)) = self.settle(id) {
                        self.counters.unreachable += 1;
                        events.extend(self.fail(key, FailReason::Unreachable));
                    }
                    PacketOutcome::Consumed {
                        events,
                        send: Vec::new(),
                    }
                }
                None => PacketOutcome::NotMine,
            },
            _ => PacketOutcome::NotMine,
        }
    }

    /// The probe an ICMPv6 error quotes, if it is one of ours that is outstanding.
    fn quoted_probe(&self, invoking: &[u8]) -> Option<ProbeId> {
        let (src, dst, nh, payload) = split_ipv6_truncated(invoking)?;
        if src != self.source {
            return None;
        }
        let id = match nh {
            proto::ICMPV6 if payload.len() >= 8 && payload[0] == 128 => ProbeId::Echo {
                ident: u16::from_be_bytes([payload[4], payload[5]]),
                seq: u16::from_be_bytes([payload[6], payload[7]]),
            },
            proto::TCP if payload.len() >= 4 => ProbeId::Tcp {
                local: u16::from_be_bytes([payload[0], payload[1]]),
                remote: dst,
                remote_port: u16::from_be_bytes([payload[2], payload[3]]),
            },
            41 => {
                let (_, _, inh, ipayload) = split_ipv6_truncated(payload)?;
                if inh != proto::ICMPV6 || ipayload.len() < 8 || ipayload[0] != 128 {
                    return None;
                }
                ProbeId::Echo {
                    ident: u16::from_be_bytes([ipayload[4], ipayload[5]]),
                    seq: u16::from_be_bytes([ipayload[6], ipayload[7]]),
                }
            }
            _ => return None,
        };
        self.probes.contains_key(&id).then_some(id)
    }

    fn on_tcp(&mut self, now: Instant, src: Ipv6Addr, dst: Ipv6Addr, seg: &[u8]) -> PacketOutcome {
        let Ok(packet) = TcpPacket::new_checked(seg) else {
            return PacketOutcome::NotMine;
        };
        let id = ProbeId::Tcp {
            local: packet.dst_port(),
            remote: src,
            remote_port: packet.src_port(),
        };
        let Some(&key) = self.probes.get(&id) else {
            return PacketOutcome::NotMine;
        };
        let Ok(repr) = TcpRepr::parse(&packet, &src, &dst) else {
            self.counters.bad_checksum += 1;
            return PacketOutcome::Consumed {
                events: Vec::new(),
                send: Vec::new(),
            };
        };
        let Some(isn) = self
            .targets
            .get(&key)
            .and_then(|c| c.outstanding)
            .map(|o| o.isn)
        else {
            return PacketOutcome::NotMine;
        };
        // Only a segment acknowledging our SYN counts (RFC 9293 §3.10.7.3): anything else
        // could be forged by a third party.
        if !repr.flags.contains(TcpFlags::ACK) || repr.ack_number != isn.wrapping_add(1) {
            self.counters.late_or_unmatched += 1;
            return PacketOutcome::Consumed {
                events: Vec::new(),
                send: Vec::new(),
            };
        }
        let mut events = Vec::new();
        let mut send = Vec::new();
        if repr.flags.contains(TcpFlags::RST) {
            if let Some((key, _)) = self.settle(id) {
                self.counters.refused += 1;
                events.extend(self.fail(key, FailReason::Refused));
            }
        } else if repr.flags.contains(TcpFlags::SYN) {
            if let Some((key, o)) = self.settle(id) {
                self.counters.replies += 1;
                events.extend(self.succeed(key, now.saturating_duration_since(o.sent)));
            }
            // Close the half-open connection at once.
            if let Some(rst) = repr.rst_reply(packet.payload().len()) {
                let mut out = vec![0u8; rst.buffer_len(0)];
                if rst
                    .emit(&mut TcpPacket::new_unchecked(&mut out[..]), &dst, &src, &[])
                    .is_ok()
                {
                    send.push(ipv6_packet(dst, src, proto::TCP, self.hop_limit, &out));
                }
            }
        }
        PacketOutcome::Consumed { events, send }
    }
}

/// Offset of a target's first probe within its interval.
fn spread(target: &Target, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.hash(&mut h);
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(std::hash::Hasher::finish(&h) % ms)
}

fn echo_request(src: Ipv6Addr, dst: Ipv6Addr, ident: u16, seq: u16) -> Vec<u8> {
    let repr = Icmpv6Repr::EchoRequest {
        ident,
        seq_no: seq,
        data: ECHO_DATA,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    // The buffer has exactly the message's length: emit cannot fail.
    let _ = repr.emit(&mut Icmpv6Packet::new_unchecked(&mut buf[..]), &src, &dst);
    buf
}

fn ipv6_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    // Probes and their answers are a few hundred octets at most and carry no flow label:
    // building them cannot fail.
    Ipv6Repr {
        src,
        dst,
        next_header,
        payload_len: payload.len(),
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .packet_with(payload)
    .unwrap_or_default()
}

/// (source, destination, next header, payload) of a complete IPv6 packet without
/// extension headers before the upper layer.
fn split_ipv6(packet: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, u8, &[u8])> {
    let ip = Ipv6Packet::new_checked(packet).ok()?;
    let repr = Ipv6Repr::parse(&ip).ok()?;
    let end = ipv6::HEADER_LEN + repr.payload_len;
    Some((
        repr.src,
        repr.dst,
        repr.next_header,
        packet.get(ipv6::HEADER_LEN..end)?,
    ))
}

/// Like [`split_ipv6`] for a quoted packet, which may be cut short.
fn split_ipv6_truncated(packet: &[u8]) -> Option<(Ipv6Addr, Ipv6Addr, u8, &[u8])> {
    if packet.len() < ipv6::HEADER_LEN || packet[0] >> 4 != 6 {
        return None;
    }
    let addr = |at: usize| -> Option<Ipv6Addr> {
        let octets: [u8; 16] = packet.get(at..at + 16)?.try_into().ok()?;
        Some(Ipv6Addr::from(octets))
    };
    Some((addr(8)?, addr(24)?, packet[6], &packet[ipv6::HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn src() -> Ipv6Addr {
        a("2001:db8:ff::1")
    }
    fn target(id: u32) -> Target {
        Target {
            service: a("2001:db8:100::1"),
            member_id: id,
            epoch: 1,
            care_of: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10 + id as u16),
        }
    }
    fn spec(kind: ProbeKind) -> HealthSpec {
        HealthSpec {
            kind,
            interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 3,
        }
    }
    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// The member's answer to a probe, built from the probe bytes as a Linux host would.
    fn answer(probe: &[u8]) -> Vec<u8> {
        let (s, d, nh, payload) = split_ipv6(probe).unwrap();
        match nh {
            proto::ICMPV6 => {
                let p = Icmpv6Packet::new_checked(payload).unwrap();
                let r = Icmpv6Repr::parse(&p, &s, &d).unwrap().echo_reply().unwrap();
                let mut buf = vec![0u8; r.buffer_len()];
                r.emit(&mut Icmpv6Packet::new_unchecked(&mut buf[..]), &d, &s)
                    .unwrap();
                ipv6_packet(d, s, proto::ICMPV6, 64, &buf)
            }
            41 => answer(payload), // decapsulate, answer from the service address directly
            proto::TCP => {
                let p = TcpPacket::new_checked(payload).unwrap();
                let syn = TcpRepr::parse(&p, &s, &d).unwrap();
                let synack = TcpRepr {
                    src_port: syn.dst_port,
                    dst_port: syn.src_port,
                    seq_number: 777,
                    ack_number: syn.seq_number.wrapping_add(1),
                    flags: TcpFlags::SYN | TcpFlags::ACK,
                    window_len: 100,
                    max_seg_size: None,
                };
                let mut buf = vec![0u8; synack.buffer_len(0)];
                synack
                    .emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &d, &s, &[])
                    .unwrap();
                ipv6_packet(d, s, proto::TCP, 64, &buf)
            }
            _ => panic!("unexpected probe"),
        }
    }

    fn refuse(probe: &[u8]) -> Vec<u8> {
        let (s, d, _, payload) = split_ipv6(probe).unwrap();
        let p = TcpPacket::new_checked(payload).unwrap();
        let syn = TcpRepr::parse(&p, &s, &d).unwrap();
        let rst = syn.rst_reply(0).unwrap();
        let mut buf = vec![0u8; rst.buffer_len(0)];
        rst.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &d, &s, &[])
            .unwrap();
        ipv6_packet(d, s, proto::TCP, 64, &buf)
    }

    fn checker(kind: ProbeKind, t0: Instant) -> HealthChecker {
        let mut h = HealthChecker::new(src(), 64);
        h.sync(t0, &[(target(0), spec(kind))]);
        h
    }

    /// Runs one probe round at `t`: returns the probe and any events of the poll.
    fn probe_at(h: &mut HealthChecker, t: Instant) -> (Vec<u8>, Vec<HealthEvent>) {
        let (mut probes, events) = h.poll(t);
        assert_eq!(probes.len(), 1, "one probe due at {t:?}");
        (probes.remove(0).packet, events)
    }

    #[test]
    fn echo_probe_and_reply() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Echo, t0);
        let due = h.next_deadline().unwrap();
        assert!(due < ms(t0, 1000), "first probe within one interval");
        let (p, _) = probe_at(&mut h, due);
        let (s, d, nh, payload) = split_ipv6(&p).unwrap();
        assert_eq!((s, d, nh), (src(), target(0).care_of, proto::ICMPV6));
        assert!(Icmpv6Packet::new_checked(payload)
            .unwrap()
            .verify_checksum(&s, &d));
        assert!(h.poll(due).0.is_empty(), "one probe outstanding at a time");
        let out = h.on_packet(due + Duration::from_millis(3), &answer(&p));
        assert_eq!(
            out,
            PacketOutcome::Consumed {
                events: vec![],
                send: vec![]
            }
        );
        let st = &h.status()[0];
        assert_eq!(
            (st.probes, st.successes, st.last_rtt_us),
            (1, 1, Some(3000))
        );
        assert_eq!(h.counters().replies, 1);
    }

    #[test]
    fn tunnel_probe_is_answered_from_the_service_address_directly_or_tunnelled() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Tunnel, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        let (s, d, nh, inner) = split_ipv6(&p).unwrap();
        assert_eq!((s, d, nh), (src(), target(0).care_of, 41));
        let (is, id, inh, _) = split_ipv6(inner).unwrap();
        assert_eq!((is, id, inh), (src(), target(0).service, proto::ICMPV6));
        let reply = answer(&p);
        assert_eq!(split_ipv6(&reply).unwrap().0, target(0).service);
        assert!(matches!(
            h.on_packet(due, &reply),
            PacketOutcome::Consumed { .. }
        ));
        assert_eq!(h.status()[0].successes, 1);
        // Next round: the reply comes back reverse-tunnelled from the care-of address.
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        let tunnelled = ipv6_packet(target(0).care_of, src(), 41, 64, &answer(&p));
        assert!(matches!(
            h.on_packet(due, &tunnelled),
            PacketOutcome::Consumed { .. }
        ));
        assert_eq!(h.status()[0].successes, 2);
    }

    #[test]
    fn tcp_probe_synack_is_success_and_answered_by_rst() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Tcp { port: 80 }, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        let (s, d, _, seg) = split_ipv6(&p).unwrap();
        let syn = TcpRepr::parse(&TcpPacket::new_checked(seg).unwrap(), &s, &d).unwrap();
        assert_eq!(syn.flags, TcpFlags::SYN);
        assert_eq!(syn.dst_port, 80);
        assert!(TCP_PORTS.contains(&syn.src_port));
        let PacketOutcome::Consumed { events, send } = h.on_packet(due, &answer(&p)) else {
            panic!("not consumed");
        };
        assert!(events.is_empty());
        assert_eq!(send.len(), 1);
        let (rs, rd, _, rseg) = split_ipv6(&send[0]).unwrap();
        let rst = TcpRepr::parse(&TcpPacket::new_checked(rseg).unwrap(), &rs, &rd).unwrap();
        assert_eq!(rst.flags, TcpFlags::RST);
        assert_eq!(rst.seq_number, syn.seq_number.wrapping_add(1));
        assert_eq!(h.status()[0].successes, 1);
    }

    #[test]
    fn tcp_rst_fails_and_three_take_the_member_down() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Tcp { port: 80 }, t0);
        let mut events = Vec::new();
        for _ in 0..3 {
            let due = h.next_deadline().unwrap();
            let (p, ev) = probe_at(&mut h, due);
            events.extend(ev);
            if let PacketOutcome::Consumed { events: e, send } = h.on_packet(due, &refuse(&p)) {
                assert!(send.is_empty());
                events.extend(e);
            }
        }
        assert_eq!(
            events,
            vec![HealthEvent::Down {
                target: target(0),
                reason: FailReason::Refused
            }]
        );
        assert_eq!(h.counters().refused, 3);
        assert!(events[0].to_string().starts_with("event=member_down"));
    }

    #[test]
    fn forged_tcp_answers_do_not_count() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Tcp { port: 80 }, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        // A SYN-ACK with the wrong acknowledgement number.
        let mut forged = answer(&p);
        let (s, d, _, _) = split_ipv6(&forged).unwrap();
        let seg = &mut forged[40..];
        seg[8..12].copy_from_slice(&12345u32.to_be_bytes());
        TcpPacket::new_unchecked(&mut seg[..]).fill_checksum(&s, &d);
        h.on_packet(due, &forged);
        assert_eq!(h.status()[0].successes, 0);
        // A bad checksum.
        let mut bad = answer(&p);
        bad[44] ^= 0xff;
        h.on_packet(due, &bad);
        assert_eq!(h.status()[0].successes, 0);
        assert_eq!(h.counters().bad_checksum, 1);
        // The real one still counts.
        h.on_packet(due, &answer(&p));
        assert_eq!(h.status()[0].successes, 1);
    }

    #[test]
    fn flapping_with_rise_two_fall_three() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Echo, t0);
        // true = answered, false = silent.
        let script = [
            true, false, false, true, false, false, false, true, false, true, true, false, true,
        ];
        let mut transitions = Vec::new();
        for (round, ok) in script.iter().enumerate() {
            let due = h.next_deadline().unwrap();
            let (p, ev) = probe_at(&mut h, due);
            transitions.extend(ev.into_iter().map(|e| (round, e)));
            if *ok {
                if let PacketOutcome::Consumed { events, .. } = h.on_packet(due, &answer(&p)) {
                    transitions.extend(events.into_iter().map(|e| (round, e)));
                }
            } else {
                // The timeout is seen at the next poll after the deadline.
                let (probes, ev) = h.poll(due + Duration::from_millis(500));
                assert!(probes.is_empty());
                transitions.extend(ev.into_iter().map(|e| (round, e)));
            }
        }
        let got: Vec<(usize, bool)> = transitions
            .iter()
            .map(|(r, e)| (*r, matches!(e, HealthEvent::Up { .. })))
            .collect();
        // Down after the third failure in a row (round 6); up after two successes in a
        // row (rounds 9, 10); one success in between does not bring it back (round 7).
        assert_eq!(got, vec![(6, false), (10, true)]);
        assert_eq!(h.counters().went_down, 1);
        assert_eq!(h.counters().went_up, 1);
        assert_eq!(h.counters().timeouts, 7);
    }

    #[test]
    fn detection_within_interval_times_fall_plus_one_interval() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Echo, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        h.on_packet(due, &answer(&p));
        let died = due + Duration::from_millis(1);
        // Drive time in 10 ms steps, answering nothing, until the member is down.
        let mut t = died;
        let down_at = loop {
            t += Duration::from_millis(10);
            let (_, ev) = h.poll(t);
            if !ev.is_empty() {
                break t;
            }
            assert!(t < died + Duration::from_secs(10));
        };
        let bound = Duration::from_millis(1000 * 3 + 1000);
        assert!(down_at - died <= bound, "{:?}", down_at - died);
    }

    #[test]
    fn destination_unreachable_fails_the_quoted_probe() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Tunnel, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        let router = a("2001:db8:2::1");
        let err = Icmpv6Repr::DstUnreachable {
            code: anycast6_wire::icmpv6::DstUnreachableCode::AddrUnreachable,
            invoking: &p,
        };
        let mut buf = vec![0u8; err.buffer_len()];
        err.emit(
            &mut Icmpv6Packet::new_unchecked(&mut buf[..]),
            &router,
            &src(),
        )
        .unwrap();
        let pkt = ipv6_packet(router, src(), proto::ICMPV6, 64, &buf);
        assert!(matches!(
            h.on_packet(due, &pkt),
            PacketOutcome::Consumed { .. }
        ));
        let st = &h.status()[0];
        assert_eq!(
            (st.failures, st.last_failure),
            (1, Some(FailReason::Unreachable))
        );
        // The same error again matches nothing outstanding.
        assert_eq!(h.on_packet(due, &pkt), PacketOutcome::NotMine);
    }

    #[test]
    fn late_reply_is_counted_and_ignored() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Echo, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        h.poll(due + Duration::from_millis(600));
        assert!(matches!(
            h.on_packet(due + Duration::from_millis(700), &answer(&p)),
            PacketOutcome::Consumed { .. }
        ));
        let st = &h.status()[0];
        assert_eq!((st.successes, st.failures), (0, 1));
        assert_eq!(h.counters().late_or_unmatched, 1);
    }

    #[test]
    fn sync_adds_removes_and_keeps_state() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Echo, t0);
        for _ in 0..3 {
            let due = h.next_deadline().unwrap();
            probe_at(&mut h, due);
            h.poll(due + Duration::from_millis(500));
        }
        assert_eq!(h.health(&target(0)), Some(Health::Down));
        // Keep target 0, add 1: 0 stays down, 1 starts up.
        h.sync(
            t0,
            &[
                (target(0), spec(ProbeKind::Echo)),
                (target(1), spec(ProbeKind::Echo)),
            ],
        );
        assert_eq!(h.health(&target(0)), Some(Health::Down));
        assert_eq!(h.health(&target(1)), Some(Health::Up));
        // A new epoch is a new member: it starts up.
        let mut reborn = target(0);
        reborn.epoch = 2;
        h.sync(t0, &[(reborn, spec(ProbeKind::Echo))]);
        assert_eq!(h.health(&reborn), Some(Health::Up));
        assert_eq!(h.health(&target(1)), None);
        assert_eq!(h.status().len(), 1);
    }

    #[test]
    fn first_probes_are_spread_over_the_interval() {
        let t0 = Instant::now();
        let mut h = HealthChecker::new(src(), 64);
        let targets: Vec<(Target, HealthSpec)> = (0..1000)
            .map(|i| (target(i), spec(ProbeKind::Echo)))
            .collect();
        h.sync(t0, &targets);
        let mut per_100ms = [0usize; 10];
        for c in h.targets.values() {
            let off = c.next_probe.duration_since(t0).as_millis() as usize;
            assert!(off < 1000);
            per_100ms[off / 100] += 1;
        }
        assert!(
            per_100ms.iter().all(|&n| (50..=150).contains(&n)),
            "{per_100ms:?}"
        );
        let (probes, _) = h.poll(ms(t0, 1000));
        assert_eq!(probes.len(), 1000);
        // Echo identifiers and sequence numbers are unique.
        let ids: std::collections::HashSet<_> = h.probes.keys().collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn spec_validation() {
        let mut s = spec(ProbeKind::Echo);
        assert!(s.validate().is_ok());
        s.timeout = Duration::from_millis(1500);
        assert!(s.validate().is_err());
        s.timeout = Duration::from_millis(500);
        s.fall = 0;
        assert!(s.validate().is_err());
        assert_eq!(
            spec(ProbeKind::Tcp { port: 80 }).to_string(),
            "tcp/80 every 1000ms timeout 500ms rise 2 fall 3"
        );
    }

    /// The fixed part of an IPv6 header: version 6, no traffic class or flow label.
    fn ipv6_header(payload_len: u16, next_header: u8, hop_limit: u8) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&[next_header, hop_limit]);
        h
    }

    #[test]
    fn probes_byte_for_byte() {
        let t0 = Instant::now();
        let t = target(0);
        for kind in [
            ProbeKind::Echo,
            ProbeKind::Tunnel,
            ProbeKind::Tcp { port: 8080 },
        ] {
            let mut h = HealthChecker::new(src(), 17);
            h.sync(t0, &[(t, spec(kind))]);
            let due = h.next_deadline().unwrap();
            let (p, _) = probe_at(&mut h, due);
            assert_eq!(&p[24..40], &t.care_of.octets());
            assert_eq!(&p[8..24], &src().octets());
            match kind {
                ProbeKind::Echo => {
                    assert_eq!(p.len(), 40 + 16);
                    assert_eq!(&p[..8], &ipv6_header(16, 58, 17)[..]);
                    // Type 128, code 0, checksum, identifier, sequence, payload.
                    assert_eq!(&p[40..42], &[128, 0]);
                    assert_eq!(p[44], (ECHO_IDENT_PREFIX >> 8) as u8);
                    assert_eq!(&p[48..], ECHO_DATA);
                    let msg = Icmpv6Packet::new_checked(&p[40..]).unwrap();
                    assert!(msg.verify_checksum(&src(), &t.care_of));
                }
                ProbeKind::Tunnel => {
                    assert_eq!(p.len(), 40 + 40 + 16);
                    // RFC 2473 §3: the outer hop limit is the entry point's, the inner
                    // packet is the one a host would originate.
                    assert_eq!(&p[..8], &ipv6_header(56, 41, 17)[..]);
                    assert_eq!(&p[40..48], &ipv6_header(16, 58, 64)[..]);
                    assert_eq!(&p[48..64], &src().octets());
                    assert_eq!(&p[64..80], &t.service.octets());
                    assert_eq!(&p[80..82], &[128, 0]);
                    assert_eq!(&p[88..], ECHO_DATA);
                    let msg = Icmpv6Packet::new_checked(&p[80..]).unwrap();
                    assert!(msg.verify_checksum(&src(), &t.service));
                }
                ProbeKind::Tcp { .. } => {
                    assert_eq!(p.len(), 40 + 24);
                    assert_eq!(&p[..8], &ipv6_header(24, 6, 17)[..]);
                    let seg = &p[40..];
                    assert!(TCP_PORTS.contains(&u16::from_be_bytes([seg[0], seg[1]])));
                    assert_eq!(&seg[2..4], &8080u16.to_be_bytes());
                    assert_eq!(&seg[8..12], &[0, 0, 0, 0], "no acknowledgement in a SYN");
                    // Data offset 6 words, SYN only, window 1024, no urgent pointer.
                    assert_eq!(&seg[12..16], &[0x60, 0x02, 0x04, 0x00]);
                    assert_eq!(&seg[18..20], &[0, 0]);
                    // MSS option: kind 2, length 4, 1220 (the IPv6 minimum MTU minus the
                    // headers).
                    assert_eq!(&seg[20..24], &[2, 4, 0x04, 0xc4]);
                    assert!(TcpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum(&src(), &t.care_of));
                }
            }
        }
    }

    #[test]
    fn echo_reply_with_bad_checksum_or_wrong_sender_is_ignored() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Echo, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        let mut bad = answer(&p);
        bad[42] ^= 0x01;
        assert_eq!(h.on_packet(due, &bad), PacketOutcome::NotMine);
        assert_eq!(h.counters().bad_checksum, 1);
        // Right identifiers, valid checksum, but not from the care-of address.
        let genuine = answer(&p);
        let (_, d, _, payload) = split_ipv6(&genuine).unwrap();
        let stranger = a("2001:db8:9::9");
        let mut msg = payload.to_vec();
        Icmpv6Packet::new_unchecked(&mut msg[..]).fill_checksum(&stranger, &d);
        let spoofed = ipv6_packet(stranger, d, proto::ICMPV6, 64, &msg);
        assert!(matches!(
            h.on_packet(due, &spoofed),
            PacketOutcome::Consumed { .. }
        ));
        assert_eq!(h.status()[0].successes, 0);
        assert_eq!(h.counters().late_or_unmatched, 1);
        // The genuine reply still settles the probe.
        h.on_packet(due, &answer(&p));
        assert_eq!(h.status()[0].successes, 1);
        // An echo reply that is not ours at all is left for other handlers.
        let foreign = Icmpv6Repr::EchoReply {
            ident: 0x1234,
            seq_no: 1,
            data: b"ping",
        };
        let mut buf = vec![0u8; foreign.buffer_len()];
        foreign
            .emit(
                &mut Icmpv6Packet::new_unchecked(&mut buf[..]),
                &target(0).care_of,
                &src(),
            )
            .unwrap();
        let pkt = ipv6_packet(target(0).care_of, src(), proto::ICMPV6, 64, &buf);
        assert_eq!(h.on_packet(due, &pkt), PacketOutcome::NotMine);
    }

    #[test]
    fn port_unreachable_fails_a_tcp_probe() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Tcp { port: 443 }, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        let err = Icmpv6Repr::DstUnreachable {
            code: anycast6_wire::icmpv6::DstUnreachableCode::PortUnreachable,
            invoking: &p,
        };
        let mut buf = vec![0u8; err.buffer_len()];
        err.emit(
            &mut Icmpv6Packet::new_unchecked(&mut buf[..]),
            &target(0).care_of,
            &src(),
        )
        .unwrap();
        let pkt = ipv6_packet(target(0).care_of, src(), proto::ICMPV6, 64, &buf);
        assert!(matches!(
            h.on_packet(due, &pkt),
            PacketOutcome::Consumed { .. }
        ));
        assert_eq!(h.status()[0].last_failure, Some(FailReason::Unreachable));
        assert_eq!(h.counters().unreachable, 1);
    }

    #[test]
    fn tcp_probe_timeout_and_outstanding_ports_are_distinct() {
        let t0 = Instant::now();
        let mut h = HealthChecker::new(src(), 64);
        // Two services on the same member and port: two probes to one care-of:port.
        let mut other = target(0);
        other.service = a("2001:db8:100::2");
        h.sync(
            t0,
            &[
                (target(0), spec(ProbeKind::Tcp { port: 80 })),
                (other, spec(ProbeKind::Tcp { port: 80 })),
            ],
        );
        let (probes, _) = h.poll(ms(t0, 1000));
        assert_eq!(probes.len(), 2);
        let port = |p: &Probe| u16::from_be_bytes([p.packet[40], p.packet[41]]);
        assert_ne!(port(&probes[0]), port(&probes[1]));
        let (_, events) = h.poll(ms(t0, 1500));
        assert!(events.is_empty());
        assert_eq!(h.counters().timeouts, 2);
        assert!(h
            .status()
            .iter()
            .all(|s| s.last_failure == Some(FailReason::Timeout)));
    }

    #[test]
    fn spec_change_applies_from_the_next_probe() {
        let t0 = Instant::now();
        let mut h = checker(ProbeKind::Echo, t0);
        let due = h.next_deadline().unwrap();
        let (p, _) = probe_at(&mut h, due);
        let mut faster = spec(ProbeKind::Tcp { port: 22 });
        faster.interval = Duration::from_millis(200);
        faster.timeout = Duration::from_millis(100);
        h.sync(due, &[(target(0), faster)]);
        // The echo probe already sent is still answered and counted.
        h.on_packet(due, &answer(&p));
        assert_eq!(h.status()[0].successes, 1);
        // The next probe is a TCP SYN, due within the new, shorter interval.
        let next = h.next_deadline().unwrap();
        assert!(next <= due + Duration::from_millis(200), "{:?}", next - due);
        let (p, _) = probe_at(&mut h, next);
        assert_eq!(split_ipv6(&p).unwrap().2, proto::TCP);
        assert_eq!(h.status()[0].kind, "tcp/22");
    }

    proptest! {
        #[test]
        fn arbitrary_packets_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let t0 = Instant::now();
            let mut h = checker(ProbeKind::Tcp { port: 80 }, t0);
            let due = h.next_deadline().unwrap();
            h.poll(due);
            let _ = h.on_packet(due, &bytes);
            // Also as the payload of a packet to us, under each next header.
            for nh in [proto::ICMPV6, proto::TCP, 41] {
                let p = ipv6_packet(target(0).care_of, src(), nh, 64, &bytes);
                let _ = h.on_packet(due, &p);
            }
        }
    }
}
