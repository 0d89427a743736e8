//! The per-packet pipeline (ARCHITECTURE.md §3): one [`Worker`] per lcore judges each
//! received frame against the current [`Snapshot`] and rewrites it in place.
//!
//! # Packet walk
//!
//! 1. **Parse once** ([`Parsed`]): Ethernet (untagged, IPv6 EtherType, destination MAC is
//!    the port's or a group address), the IPv6 fixed header, and the extension header chain
//!    with [`ExtHeaderChain::walk`]. Every later step reads this summary, encapsulation
//!    included (the Tunnel Encapsulation Limit comes from the walk); nothing is parsed
//!    twice, except the inner header of a tunnel packet on the reverse path.
//! 2. **Classify** by destination, in this order:
//!    1. a service address -> *forward* (Neighbor Discovery for it -> exception);
//!    2. an appliance address: tunnel packet (NH 41, possibly behind the tunnel's
//!       Destination Options) to the tunnel address -> *reverse*; anything else ->
//!       *exception* (echo, Mobility Header, ND, health-check replies, ICMPv6 errors about
//!       tunnel packets, which RFC 2473 §8 has the control thread relay);
//!    3. multicast: Neighbor Discovery to all-nodes/all-routers or to the solicited-node
//!       group of one of our addresses -> exception; other multicast -> drop;
//!    4. anything else -> drop `not_for_us`.
//! 3. **Forward**: hop limit (Time Exceeded), Tunnel Encapsulation Limit 0 (Parameter
//!    Problem), tunnel MTU (Packet Too Big, or outer fragmentation for packets of 1280 or
//!    less), then the member (affinity table, Maglev for new flows), the neighbour MAC, and
//!    only then the rewrite: inner hop limit - 1, RFC 2473 encapsulation, Ethernet. All
//!    checks run before the first write, so an ICMPv6 error quotes the packet as received.
//! 4. **Reverse**: the (outer source, inner source) pair must be a registered (care-of,
//!    service) pair (anti-spoofing: nobody else may inject traffic from a service address);
//!    then the inner destination, hop limit and MTU are checked, the tunnel headers removed,
//!    the inner hop limit decremented and a new Ethernet header written. An inner
//!    destination that is an appliance address (a member's reverse-tunnelled answer to a
//!    tunnel health probe) goes to the control thread untouched (*exception*); one that is
//!    a service address is a loop (`tunnel_loop`).
//!
//! Forwarded and reversed packets are also counted per member, in the member's counter
//! slot ([`MemberTraffic`]), and copied for the control thread every
//! [`MEMBER_TRAFFIC_PUBLISH_MS`].
//!
//! # Bursts
//!
//! [`Worker::process_burst`] is the runtime's entry point; [`Worker::process`] (explain,
//! tests) is the general path for one packet. A burst goes through in stages, so that the
//! cache misses of the affinity lookups overlap instead of queueing one memory latency per
//! packet: (1) parse and classify every packet, and for those to a service compute the
//! flow key, its hash and table probe, and prefetch the first candidate bucket's metadata
//! line; (2) read those lines and prefetch the slot whose tag matches (or the second
//! bucket's line); (3) resolve the member and rewrite each packet, in order. Stages (1)
//! and (2) change nothing, so the result is exactly that of `process` on each packet in
//! turn.
//!
//! The stages are also entry points of their own ([`Worker::begin_burst`],
//! [`Worker::prefetch_burst`], [`Worker::finish_burst`]). The runtime uses them to carry a
//! burst over to the next poll: it begins the new burst, then finishes the carried one
//! with the new one's stage (2) spread over it, one slot prefetch per packet, so that the
//! slot lines arrive during the next RX and no more prefetches are in flight at once than
//! the core has fill buffers for. Stage (1) of a burst may run before stage (3) of the one
//! before because it changes nothing; the proptests hold this order to the same results
//! too.
//!
//! # Fast path
//!
//! Nearly all traffic is one kind of packet: untagged Ethernet to the port's MAC, IPv6
//! without extension headers, TCP or UDP, from an ordinary client to a service, with hop
//! limit above 1 and within the tunnel MTU. In a burst, stage (1) recognises it with a few
//! fixed-offset reads ([`Worker::fast_plan`]) and keeps only the flow key, its hash, the
//! transport flow's hash for the Flow Label ([`FlowKey::client_flow_hash`] for a
//! client-pair key) and the table probe; stage (3) ([`Worker::forward_fast`]) resolves
//! the member, finding it once,
//! and copies the Ethernet, outer IPv6 and option headers from the member's
//! [`OuterHeaders`](super::snapshot::OuterHeaders), built with the snapshot by the same
//! emitters, filling in the traffic class, Flow Label and Payload Length. Every other
//! packet takes the general path above. Accepting a packet on the fast path means every
//! check the general path makes before the affinity lookup has passed, and after it the
//! fast path gives the same drop reasons in the same order, so the two give the same
//! verdicts, bytes, counters and table changes: the burst-against-single proptest below
//! holds them to it (`process` never takes the fast path), and so do the golden tests,
//! which compare the DPDK binary (bursts) with `explain` (single packets).
//!
//! # Why it is fast
//!
//! No heap allocation, no lock and no atomic read-modify-write per packet: the snapshot is
//! a plain `&Snapshot` for the burst (QSBR in [`super::rcu`]), the affinity table, the
//! counters and the ICMP token bucket belong to the worker (`&mut self`), and counters
//! reach other threads by plain stores once per burst ([`CounterMirror::publish`]). Flow
//! keys are five 64-bit words, compared and hashed without a `memcmp` call. Packets
//! are rewritten in place: the headroom takes the tunnel headers, ICMPv6 errors are built
//! over the invoking packet. Only outer fragmentation needs a second buffer, taken from the
//! caller's [`ExtraTx`].
//!
//! # ICMPv6 errors
//!
//! Sent from the tunnel address to the invoking packet's source, out of the receiving port,
//! to the frame's source MAC (the previous hop that delivered the packet is a route back to
//! its source, and this needs no neighbour resolution). RFC 4443 §2.4(e) is applied with
//! [`may_send_error`] (a service address counts as a known anycast address), then the
//! worker's token bucket (§2.4(f)). The quote is cut so the error fits 1280 octets
//! (§2.4(c)).

use std::net::Ipv6Addr;
use std::sync::Arc;

use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use anycast6_wire::icmpv6::{
    self, may_send_error, ErrorKind, Icmpv6Packet, InvokingPacket, Message,
};
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::{
    EncapLimitDestOpts, EncapLimitInfo, ExtHeaderChain, FragmentRepr, Ipv6FragmentHeader,
    Ipv6OptionsHeader,
};
use anycast6_wire::tcp::TcpFlags;
use anycast6_wire::tunnel::{self, TrafficClass};
use anycast6_wire::PacketBuf;

use super::affinity::{
    AffinityError, AffinityTable, FlowKey, MemberRef, MemberState, Probe, Resolution,
};
use super::counters::{CounterMirror, Counters, DropReason, Stat};
use super::flowhash::{self, flow_label, ports_of};
use super::ratelimit::TokenBucket;
use super::snapshot::{
    is_link_local, AffinityMode, IcmpRateSpec, Port, Service, Snapshot, TunnelSpec, MEMBER_SLOTS,
    OUTER_HEADERS_MAX,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// The worker's clock: milliseconds from any fixed origin, never going backwards. The
/// affinity table uses whole seconds of it, the ICMP token bucket milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Tick(u64);

impl Tick {
    /// A tick `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Tick {
        Tick(millis)
    }

    /// A tick `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Tick {
        Tick(secs.saturating_mul(1000))
    }

    /// Milliseconds since the origin.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the origin, wrapping at 2^32 (the affinity table's time, which
    /// tolerates wrapping).
    #[inline]
    pub const fn secs(self) -> u32 {
        (self.0 / 1000) as u32
    }
}

/// What became of a packet. The buffer holds what to transmit for the three transmit
/// variants (see [`Verdict::tx_port`]), and is untouched for [`Verdict::Exception`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Tunnelled to a member: transmit on `port`. With `fragments == 2` the second
    /// fragment was handed to [`ExtraTx::send_after`].
    Forward {
        port: u16,
        /// Index of the service in the snapshot.
        service: u16,
        /// Stable id of the member.
        member: u32,
        fragments: u8,
    },
    /// A member's reply, decapsulated: transmit on `port`.
    Reverse {
        port: u16,
        service: u16,
        member: u32,
    },
    /// The packet was dropped for `reason` and the buffer now holds the ICMPv6 error about
    /// it: transmit on `port`.
    IcmpError { port: u16, reason: DropReason },
    /// For the control thread; the frame is unchanged.
    Exception,
    /// Discard the buffer.
    Drop(DropReason),
}

impl Verdict {
    /// The port to transmit the buffer on, if any.
    #[inline]
    pub fn tx_port(&self) -> Option<u16> {
        match *self {
            Verdict::Forward { port, .. }
            | Verdict::Reverse { port, .. }
            | Verdict::IcmpError { port, .. } => Some(port),
            Verdict::Exception | Verdict::Drop(_) => None,
        }
    }

    /// "forward", "reverse", "icmp_error", "exception" or "drop".
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Forward { .. } => "forward",
            Verdict::Reverse { .. } => "reverse",
            Verdict::IcmpError { .. } => "icmp_error",
            Verdict::Exception => "exception",
            Verdict::Drop(_) => "drop",
        }
    }

    /// The drop reason, for drops and ICMPv6 errors.
    pub fn reason(&self) -> Option<DropReason> {
        match *self {
            Verdict::IcmpError { reason, .. } | Verdict::Drop(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Extra packets a verdict needs: the second fragment of an outer-fragmented tunnel packet
/// (RFC 2473 §7.1 (b)). The DPDK layer allocates from the worker's mempool and queues on
/// its TX burst.
pub trait ExtraTx<B> {
    /// An empty buffer with headroom, or `None` when none is available.
    fn alloc(&mut self) -> Option<B>;
    /// Transmits `buf` on `port` along with the packet being processed.
    fn send_after(&mut self, port: u16, buf: B);
}

/// How to create a [`Worker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Worker index; its low 8 bits go into fragment identifications, so that workers
    /// sharing the tunnel source address never reuse one another's.
    pub id: u16,
    /// Affinity table entries (rounded up to a power of two).
    pub affinity_capacity: usize,
    /// Seconds an affinity entry lives without traffic.
    pub affinity_idle_timeout: u32,
    /// Initial ICMP rate limit; later snapshots may change it.
    pub icmp_rate: IcmpRateSpec,
}

/// One data-plane worker: owns its affinity table, counters and ICMP token bucket.
#[derive(Debug)]
pub struct Worker {
    id: u16,
    affinity: AffinityTable,
    counters: Counters,
    icmp_bucket: TokenBucket,
    fragment_seq: u32,
    mirror: Arc<CounterMirror>,
    /// Traffic per member counter slot ([`MEMBER_SLOTS`]), plain adds on the hot path.
    member_traffic: Box<[MemberTraffic]>,
    traffic_mirror: Arc<MemberTrafficMirror>,
    traffic_published: Option<Tick>,
    /// Stage (1) results of the burst being processed ([`Worker::process_burst`]).
    staged: StagedBurst,
    #[cfg(feature = "stage-cycles")]
    stage_cycles: StageCycles,
}

/// TSC cycles the worker spent in each stage of [`Worker::process_burst`] (feature
/// `stage-cycles`, for benchmarks).
#[cfg(feature = "stage-cycles")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageCycles {
    /// Cycles in stages (1), (2) and (3).
    pub stages: [u64; 3],
    /// The packets they were spent on.
    pub packets: u64,
}

/// Traffic of one member (one counter slot), counted by one worker since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberTraffic {
    /// Client packets tunnelled to the member, and their octets (the client's IPv6 packet).
    pub fwd_packets: u64,
    pub fwd_bytes: u64,
    /// Affinity entries created pinned to the member (new flows, or flows re-picked onto it).
    pub new_flows: u64,
    /// Replies the member tunnelled back, and their octets (the decapsulated packet).
    pub rev_packets: u64,
    pub rev_bytes: u64,
}

impl MemberTraffic {
    /// `self - base`, field by field (a slot's counts since a baseline).
    pub fn since(&self, base: &MemberTraffic) -> MemberTraffic {
        MemberTraffic {
            fwd_packets: self.fwd_packets.wrapping_sub(base.fwd_packets),
            fwd_bytes: self.fwd_bytes.wrapping_sub(base.fwd_bytes),
            new_flows: self.new_flows.wrapping_sub(base.new_flows),
            rev_packets: self.rev_packets.wrapping_sub(base.rev_packets),
            rev_bytes: self.rev_bytes.wrapping_sub(base.rev_bytes),
        }
    }

    /// Field-by-field sum.
    pub fn add(&mut self, other: &MemberTraffic) {
        self.fwd_packets += other.fwd_packets;
        self.fwd_bytes += other.fwd_bytes;
        self.new_flows += other.new_flows;
        self.rev_packets += other.rev_packets;
        self.rev_bytes += other.rev_bytes;
    }
}

/// The cross-thread copy of a worker's per-member traffic: written by the worker with
/// relaxed stores at most every [`MEMBER_TRAFFIC_PUBLISH_MS`], read by the control thread.
#[derive(Debug)]
pub struct MemberTrafficMirror {
    slots: Box<[[AtomicU64; 5]]>,
}

/// How often a worker copies its per-member traffic to the mirror: 4096 slots are too
/// many to copy every burst, and counters a tenth of a second old are fresh enough.
pub const MEMBER_TRAFFIC_PUBLISH_MS: u64 = 100;

impl MemberTrafficMirror {
    fn new() -> MemberTrafficMirror {
        MemberTrafficMirror {
            slots: (0..MEMBER_SLOTS)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
        }
    }

    fn publish(&self, traffic: &[MemberTraffic]) {
        for (slot, t) in self.slots.iter().zip(traffic) {
            for (cell, v) in slot.iter().zip([
                t.fwd_packets,
                t.fwd_bytes,
                t.new_flows,
                t.rev_packets,
                t.rev_bytes,
            ]) {
                cell.store(v, Ordering::Relaxed);
            }
        }
    }

    /// The last published traffic of a slot (zero for a slot out of range).
    pub fn read(&self, slot: u16) -> MemberTraffic {
        match self.slots.get(usize::from(slot)) {
            Some(s) => MemberTraffic {
                fwd_packets: s[0].load(Ordering::Relaxed),
                fwd_bytes: s[1].load(Ordering::Relaxed),
                new_flows: s[2].load(Ordering::Relaxed),
                rev_packets: s[3].load(Ordering::Relaxed),
                rev_bytes: s[4].load(Ordering::Relaxed),
            },
            None => MemberTraffic::default(),
        }
    }
}

/// The one-pass summary of a received frame: only what later steps read, so that a burst's
/// stage keeps it small (a copy of the whole [`ExtHeaderChain`] per packet cost more than
/// the parse).
#[derive(Debug, Clone, Copy)]
struct Parsed {
    /// Ethernet header length (the IPv6 packet starts here).
    eth_len: usize,
    src_mac: MacAddr,
    /// The frame went to a group MAC address.
    link_multicast: bool,
    /// The IPv6 packet's length by its Payload Length (link padding excluded).
    ip_len: usize,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    chain: ChainSummary,
    /// The ICMPv6 type, when the upper layer is ICMPv6.
    icmp_type: Option<u8>,
}

/// What the pipeline needs of an [`ExtHeaderChain`] walk (same meanings as its fields).
#[derive(Debug, Clone, Copy)]
struct ChainSummary {
    /// Where the walk stopped: the upper layer, or the Next Header of a non-first fragment.
    upper_layer: u8,
    /// Offset of that header in the IPv6 payload.
    upper_offset: usize,
    /// The first Tunnel Encapsulation Limit option (RFC 2473 §5.1 (a)).
    encap_limit: Option<EncapLimitInfo>,
    /// A Fragment header was present.
    fragment: Option<FragmentSummary>,
}

/// The Fragment header of a packet, as far as the pipeline cares.
#[derive(Debug, Clone, Copy)]
struct FragmentSummary {
    /// Offset 0 and no More Fragments: the whole datagram (RFC 6946).
    atomic: bool,
    /// Offset 0: the upper-layer header is in this fragment.
    first: bool,
}

impl ChainSummary {
    /// A packet without extension headers: the upper layer follows the fixed header.
    #[inline]
    fn bare(next_header: u8) -> ChainSummary {
        ChainSummary {
            upper_layer: next_header,
            upper_offset: 0,
            encap_limit: None,
            fragment: None,
        }
    }

    #[inline]
    fn of(chain: &ExtHeaderChain) -> ChainSummary {
        ChainSummary {
            upper_layer: chain.upper_layer,
            upper_offset: chain.upper_offset,
            encap_limit: chain.encap_limit,
            fragment: chain.fragment.map(|f| FragmentSummary {
                atomic: f.header.is_atomic(),
                first: f.header.is_first(),
            }),
        }
    }

    /// As [`ExtHeaderChain::upper_layer_bytes`]: the upper-layer header and what follows,
    /// unless this is a non-first fragment or the chain ends with No Next Header.
    #[inline]
    fn upper_layer_bytes<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8]> {
        let non_first_fragment = self.fragment.is_some_and(|f| !f.first);
        if non_first_fragment || self.upper_layer == proto::NO_NEXT_HEADER {
            None
        } else {
            payload.get(self.upper_offset..)
        }
    }
}

impl Parsed {
    /// The IPv6 packet (no link padding) in `frame`.
    #[inline]
    fn ip<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.eth_len..self.eth_len + self.ip_len]
    }

    /// The upper-layer header and what follows, when present in this packet.
    #[inline]
    fn upper<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        self.chain
            .upper_layer_bytes(&self.ip(frame)[ipv6::HEADER_LEN..])
    }

    /// A fragment that is not the whole datagram: no reliable transport header.
    #[inline]
    fn is_fragmented(&self) -> bool {
        self.chain.fragment.is_some_and(|f| !f.atomic)
    }
}

/// Packets per stage of [`Worker::process_burst`]: a typical RX burst, whose prefetches
/// fit the CPU's outstanding-miss buffers about twice over.
pub const BURST_STAGE: usize = 32;

/// The affinity identity of a packet to a service, computed before any lookup.
#[derive(Debug, Clone, Copy)]
struct FlowPlan {
    /// The affinity key (client pair or five-tuple, by the service's mode).
    key: FlowKey,
    /// Where `key` may live in the worker's table.
    probe: Probe,
    /// Hash of `key`: also selects the Maglev slot for a new flow.
    key_hash: u64,
    /// Hash of the transport five-tuple: the outer Flow Label.
    flow_hash: u64,
}

/// What stage (1) of the pipeline decided about a frame.
#[derive(Debug, Clone, Copy)]
enum Classified {
    /// Nothing left to do but count: a drop, or an exception (frame untouched).
    Done(Verdict),
    /// To a service: the forward path, with the flow already identified.
    Forward {
        parsed: Parsed,
        service: u16,
        flow: FlowPlan,
    },
    /// A tunnel packet to the tunnel address: the reverse path.
    Reverse(Parsed),
}

/// What stage (1) of the fast path (module documentation) found out about a packet to a
/// service: everything the general path checks before the affinity lookup has passed, so
/// stage (3) only resolves the member and writes the headers.
#[derive(Debug, Clone, Copy)]
struct FastPlan {
    service: u16,
    /// The client packet's length (Ethernet header and link padding excluded).
    ip_len: u16,
    /// A TCP SYN to a service with flow affinity (see [`Worker::forward`]).
    opens_connection: bool,
    key: FlowKey,
    probe: Probe,
    key_hash: u64,
    /// Hash of the transport five-tuple: the outer Flow Label.
    flow_hash: u64,
}

/// A packet of a burst after stage (1).
#[derive(Debug, Clone, Copy)]
enum Staged {
    Fast(FastPlan),
    General(Classified),
}

/// What stage (1) found out about the packets of a burst ([`Worker::begin_burst`]), kept
/// until [`Worker::finish_burst`]. Allocated once, for [`BURST_STAGE`] packets.
#[derive(Debug)]
pub struct StagedBurst(Vec<Staged>);

impl StagedBurst {
    pub fn new() -> StagedBurst {
        StagedBurst(Vec::with_capacity(BURST_STAGE))
    }
}

impl Default for StagedBurst {
    fn default() -> StagedBurst {
        StagedBurst::new()
    }
}

/// The ICMPv6 error to build.
#[derive(Debug, Clone, Copy)]
enum IcmpError {
    TimeExceeded,
    PacketTooBig { mtu: u32 },
    ParamProblem { pointer: u32 },
}

impl IcmpError {
    fn kind(self) -> ErrorKind {
        match self {
            IcmpError::TimeExceeded => ErrorKind::TimeExceeded,
            IcmpError::PacketTooBig { .. } => ErrorKind::PacketTooBig,
            IcmpError::ParamProblem { .. } => ErrorKind::ErroneousHeaderField,
        }
    }
}

/// The six octets of a MAC address in a little-endian word ([`mac_word`]).
const MAC_MASK: u64 = 0xffff_ffff_ffff;

/// A MAC address as the low six octets of a little-endian word.
#[inline]
fn mac_word(mac: MacAddr) -> u64 {
    let [a, b, c, d, e, f] = mac.0;
    u64::from_le_bytes([a, b, c, d, e, f, 0, 0])
}

/// The part of [`OuterHeaders`](super::snapshot::OuterHeaders) every tunnel packet has:
/// Ethernet and the outer IPv6 header.
const OUTER_FIXED: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN;

/// Length of the ICMPv6 error headers built in front of the quote.
const ICMP_ERROR_HEADERS: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmpv6::HEADER_LEN;

/// Neighbor Discovery message types (RFC 4861 §4): Router Solicitation to Redirect.
#[inline]
fn is_nd(icmp_type: Option<u8>) -> bool {
    matches!(icmp_type, Some(133..=137))
}

/// A TCP segment with SYN and without ACK: the first packet of a new connection.
#[inline]
fn is_tcp_syn(protocol: u8, upper: Option<&[u8]>) -> bool {
    protocol == proto::TCP
        && upper.and_then(|u| u.get(13)).is_some_and(|&bits| {
            let flags = TcpFlags::from_bits(bits);
            flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK)
        })
}

/// The headers [`ExtHeaderChain::walk`] walks through (RFC 8200 §4, plus AH by RFC 4302's
/// length rule); any other Next Header ends the walk where it starts.
#[inline]
fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        proto::HOP_BY_HOP | proto::DEST_OPTS | proto::ROUTING | proto::FRAGMENT | proto::AH
    )
}

/// The affinity key of a flow to a service by the service's mode (client pair or
/// five-tuple), the key's hash, and the transport flow's hash (for the outer Flow Label).
/// `ports` are the client and service ports as on the wire.
#[inline(always)]
fn affinity_key(
    mode: AffinityMode,
    client: [u8; 16],
    ports: [u8; 4],
    service: [u8; 16],
    protocol: u8,
) -> (FlowKey, u64, u64) {
    let tail = FlowKey::transport_tail(ports, protocol);
    match mode {
        AffinityMode::Client => {
            let key = FlowKey::client_pair(client, service);
            let hash = flowhash::hash(&key);
            (key, hash, FlowKey::client_flow_hash(hash, tail))
        }
        AffinityMode::Flow => {
            let key = FlowKey::five_tuple_of_tail(client, service, tail);
            let hash = flowhash::hash(&key);
            (key, hash, hash)
        }
    }
}

/// Sources the forward path refuses (`unforwardable_source`): unspecified, loopback and
/// link-local addresses, which must not leave their link (RFC 4291 §2.5.2, §2.5.3, §2.5.6).
#[inline]
fn is_unforwardable_source(src: &Ipv6Addr) -> bool {
    src.is_unspecified() || src.is_loopback() || is_link_local(src)
}

/// Parses the frame once; an `Err` is the drop reason.
#[inline(always)]
fn parse(frame: &[u8], port: &Port) -> Result<Parsed, DropReason> {
    if frame.len() < ethernet::HEADER_LEN {
        return Err(DropReason::MalformedEthernet);
    }
    let eth = EthernetFrame::new_unchecked(frame);
    if eth.is_vlan_tagged() {
        return Err(DropReason::VlanTagged);
    }
    if eth.ethertype() != EtherType::Ipv6 {
        return Err(DropReason::NotIpv6);
    }
    let src_mac = eth.src_addr();
    if src_mac.is_multicast() {
        return Err(DropReason::MalformedEthernet);
    }
    let dst_mac = eth.dst_addr();
    let link_multicast = dst_mac.is_multicast();
    if !link_multicast && dst_mac != port.mac {
        return Err(DropReason::ForeignMac);
    }
    let ip = Ipv6Packet::new_checked(&frame[ethernet::HEADER_LEN..])
        .map_err(|_| DropReason::MalformedIpv6)?;
    let src = ip.src_addr();
    if src.is_multicast() {
        return Err(DropReason::MulticastSource);
    }
    let next_header = ip.next_header();
    // Most packets have no extension header: then the walk would stop at once, and
    // skipping it saves building (and copying) its large result.
    let chain = if is_extension_header(next_header) {
        let chain = ExtHeaderChain::walk(next_header, ip.payload())
            .map_err(|_| DropReason::BadExtHeaders)?;
        ChainSummary::of(&chain)
    } else {
        ChainSummary::bare(next_header)
    };
    let icmp_type = if chain.upper_layer == proto::ICMPV6 {
        chain
            .upper_layer_bytes(ip.payload())
            .and_then(|b| b.first().copied())
    } else {
        None
    };
    Ok(Parsed {
        eth_len: ethernet::HEADER_LEN,
        src_mac,
        link_multicast,
        ip_len: ip.total_len(),
        src,
        dst: ip.dst_addr(),
        hop_limit: ip.hop_limit(),
        chain,
        icmp_type,
    })
}

/// RFC 2473 encapsulation of the parsed packet in `pkt` (Ethernet header included): the
/// inner hop limit is decremented, the Ethernet header and link padding removed, and the
/// outer IPv6 header (and Tunnel Encapsulation Limit option) prepended. The same bytes as
/// [`tunnel::encapsulate`], but from the parse already done: the extension chain is not
/// walked a second time for the limit (the walk keeps the first one met, as §5.1 (a) and
/// `encapsulate` do). The caller has checked the hop limit (at least 2), the limit (not
/// 0), the size and the headroom.
#[inline]
fn encapsulate_parsed<B: PacketBuf>(
    pkt: &mut B,
    p: &Parsed,
    tunnel_spec: &TunnelSpec,
    care_of: Ipv6Addr,
    flow: &FlowPlan,
) -> Result<(), DropReason> {
    // What `TunnelParams::check` and the loopback rule (§4.1.2) refuse; the snapshot
    // should never hold such a tunnel or member.
    if tunnel_spec.address == care_of
        || tunnel_spec.hop_limit == 0
        || (p.src == tunnel_spec.address && p.dst == care_of)
    {
        return Err(DropReason::MalformedIpv6);
    }
    // §5.1 (c): a packet's own limit goes on, decremented; otherwise the tunnel's (§5.1 (d)).
    let encap_limit = match p.chain.encap_limit {
        Some(tel) => Some(
            tel.limit
                .checked_sub(1)
                .ok_or(DropReason::EncapLimitExceeded)?,
        ),
        None => tunnel_spec.encap_limit,
    };
    let (next_header, options_len) = match encap_limit {
        Some(_) => (proto::DEST_OPTS, EncapLimitDestOpts::HEADER_LEN),
        None => (proto::IPV6, 0),
    };
    let header_len = ipv6::HEADER_LEN + options_len;
    let frame = pkt.data_mut();
    let Some(inner) = frame.get_mut(p.eth_len..p.eth_len + p.ip_len) else {
        return Err(DropReason::MalformedIpv6);
    };
    let mut inner = Ipv6Packet::new_unchecked(inner);
    let traffic_class = match tunnel_spec.traffic_class {
        TrafficClass::CopyInner => inner.traffic_class(),
        TrafficClass::Fixed(tc) => tc,
    };
    inner.set_hop_limit(p.hop_limit - 1);
    let padding = pkt.len() - p.eth_len - p.ip_len;
    pkt.trim(padding).map_err(|_| DropReason::MalformedIpv6)?;
    pkt.adj(p.eth_len)
        .map_err(|_| DropReason::MalformedEthernet)?;
    let out = pkt
        .prepend(header_len)
        .map_err(|_| DropReason::NoBufferRoom)?;
    let (outer, options) = out.split_at_mut(ipv6::HEADER_LEN);
    Ipv6Repr {
        src: tunnel_spec.address,
        dst: care_of,
        next_header,
        payload_len: options_len + p.ip_len,
        hop_limit: tunnel_spec.hop_limit,
        traffic_class,
        flow_label: flow_label(flow.flow_hash),
    }
    .emit(&mut Ipv6Packet::new_unchecked(outer))
    .map_err(|_| DropReason::MalformedIpv6)?;
    if let Some(limit) = encap_limit {
        EncapLimitDestOpts {
            next_header: proto::IPV6,
            limit,
        }
        .emit(&mut Ipv6OptionsHeader::new_unchecked(options))
        .map_err(|_| DropReason::MalformedIpv6)?;
    }
    Ok(())
}

/// Prepends an untagged Ethernet header for an IPv6 packet.
#[inline]
fn push_ethernet<B: PacketBuf>(pkt: &mut B, dst: MacAddr, src: MacAddr) -> Result<(), DropReason> {
    let header = pkt
        .prepend(ethernet::HEADER_LEN)
        .map_err(|_| DropReason::NoBufferRoom)?;
    write_ethernet(header, dst, src);
    Ok(())
}

/// Writes an untagged Ethernet header for an IPv6 packet at the start of `header`.
#[inline]
pub(super) fn write_ethernet(header: &mut [u8], dst: MacAddr, src: MacAddr) {
    let mut frame = EthernetFrame::new_unchecked(&mut header[..ethernet::HEADER_LEN]);
    frame.set_dst_addr(dst);
    frame.set_src_addr(src);
    frame.set_ethertype(EtherType::Ipv6);
}

impl Worker {
    /// A worker with an empty affinity table (allocated here, once).
    pub fn new(config: WorkerConfig, now: Tick) -> Result<Worker, AffinityError> {
        Ok(Worker {
            id: config.id,
            affinity: AffinityTable::new(config.affinity_capacity, config.affinity_idle_timeout)?,
            counters: Counters::default(),
            icmp_bucket: TokenBucket::new(
                config.icmp_rate.per_second,
                config.icmp_rate.burst,
                now.millis(),
            ),
            fragment_seq: 0,
            mirror: Arc::new(CounterMirror::default()),
            member_traffic: vec![MemberTraffic::default(); MEMBER_SLOTS].into_boxed_slice(),
            traffic_mirror: Arc::new(MemberTrafficMirror::new()),
            traffic_published: None,
            staged: StagedBurst::new(),
            #[cfg(feature = "stage-cycles")]
            stage_cycles: StageCycles::default(),
        })
    }

    /// The worker's id (its lcore's position among the workers).
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The cycles spent in each stage so far.
    #[cfg(feature = "stage-cycles")]
    pub fn stage_cycles(&self) -> StageCycles {
        self.stage_cycles
    }

    /// The cross-thread copy of the per-member traffic.
    pub fn member_traffic_mirror(&self) -> Arc<MemberTrafficMirror> {
        Arc::clone(&self.traffic_mirror)
    }

    /// The worker's own per-member traffic (by counter slot).
    pub fn member_traffic(&self, slot: u16) -> MemberTraffic {
        self.member_traffic
            .get(usize::from(slot))
            .copied()
            .unwrap_or_default()
    }

    /// Copies the per-member traffic to its mirror when [`MEMBER_TRAFFIC_PUBLISH_MS`]
    /// have passed since the last copy (or always with `force`, e.g. at exit).
    pub fn publish_member_traffic(&mut self, now: Tick, force: bool) {
        let due = match self.traffic_published {
            None => true,
            Some(last) => now.millis().saturating_sub(last.millis()) >= MEMBER_TRAFFIC_PUBLISH_MS,
        };
        if due || force {
            self.traffic_mirror.publish(&self.member_traffic);
            self.traffic_published = Some(now);
        }
    }

    /// The worker's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The worker's affinity table (for statistics).
    pub fn affinity(&self) -> &AffinityTable {
        &self.affinity
    }

    /// The cross-thread copy of the counters, for the control thread.
    pub fn counter_mirror(&self) -> Arc<CounterMirror> {
        Arc::clone(&self.mirror)
    }

    /// Copies the counters to the mirror (plain stores); call once per burst.
    pub fn publish_counters(&self) {
        self.mirror.publish(&self.counters);
    }

    /// Processes a burst: `verdicts[i]` is the verdict of `pkts[i]`. Processes
    /// `min(pkts.len(), verdicts.len())` packets and returns that number. The counters are
    /// not published: the caller does that once per poll loop
    /// ([`Worker::publish_counters`]), after its transmit counts too.
    ///
    /// Staged, [`BURST_STAGE`] packets at a time, so that the affinity table's cache misses
    /// overlap instead of costing one memory latency per packet: (1) parse and classify
    /// every packet (the fast path's plan, else the general classification), computing the
    /// flow key and hash of those to a service and prefetching their first bucket's
    /// metadata line; (2) read those lines and prefetch the slots whose tag matches; (3)
    /// resolve and rewrite each packet in order. The verdicts and the bytes are exactly
    /// those of [`Worker::process`] on each packet in turn: stages (1) and (2) read only the
    /// frame, the snapshot and the table, and change nothing (module documentation, "Fast
    /// path").
    ///
    /// The stages are also offered one by one ([`Worker::begin_burst`],
    /// [`Worker::prefetch_burst`], [`Worker::finish_burst`]), for a caller that puts other
    /// work between them.
    pub fn process_burst<B: PacketBuf, X: ExtraTx<B>>(
        &mut self,
        snap: &Snapshot,
        pkts: &mut [B],
        rx_port: u16,
        now: Tick,
        extra: &mut X,
        verdicts: &mut [Verdict],
    ) -> usize {
        let n = pkts.len().min(verdicts.len());
        // The worker's own staging area (allocated once; taken out of `self` for the burst
        // so that stage (3) may borrow `self` mutably): no per-burst initialisation.
        let mut staged = std::mem::take(&mut self.staged);
        for (pkts, verdicts) in pkts[..n]
            .chunks_mut(BURST_STAGE)
            .zip(verdicts[..n].chunks_mut(BURST_STAGE))
        {
            self.begin_burst(snap, pkts, rx_port, &mut staged);
            self.prefetch_burst(&mut staged);
            self.finish_burst(snap, pkts, rx_port, now, extra, &staged, verdicts, None);
        }
        self.staged = staged;
        n
    }

    /// Stage (1) of [`Worker::process_burst`] for the first [`BURST_STAGE`] packets of
    /// `pkts`: their plans, in `staged`, and the prefetch of each one's first bucket's
    /// metadata line. Changes nothing but the receive counters, so other bursts may be
    /// finished between this and [`Worker::finish_burst`] of these packets, with the same
    /// snapshot.
    #[inline]
    pub fn begin_burst<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkts: &[B],
        rx_port: u16,
        staged: &mut StagedBurst,
    ) {
        #[cfg(feature = "stage-cycles")]
        let t0 = anycast6_dpdk::rdtsc();
        // The port's MAC as a word, read once per burst ([`Worker::fast_plan`]).
        let port_mac = snap.port(rx_port).map(|port| mac_word(port.mac));
        let staged = &mut staged.0;
        staged.clear();
        for pkt in pkts.iter().take(BURST_STAGE) {
            self.stage_one(snap, port_mac, rx_port, pkt, staged);
        }
        #[cfg(feature = "stage-cycles")]
        {
            self.stage_cycles.stages[0] += anycast6_dpdk::rdtsc() - t0;
        }
    }

    /// Stage (2): for each packet of a begun burst, the prefetch of the slot its key
    /// should be in (its metadata line, prefetched by [`Worker::begin_burst`], is read).
    #[inline]
    pub fn prefetch_burst(&mut self, staged: &mut StagedBurst) {
        #[cfg(feature = "stage-cycles")]
        let t0 = anycast6_dpdk::rdtsc();
        for stage in staged.0.iter_mut() {
            self.stage_two(stage);
        }
        #[cfg(feature = "stage-cycles")]
        {
            self.stage_cycles.stages[1] += anycast6_dpdk::rdtsc() - t0;
        }
    }

    /// Stage (3): resolves and rewrites the packets of a burst begun with
    /// [`Worker::begin_burst`] (the same `pkts`, unchanged, and the same snapshot), in
    /// order, writing their verdicts. Returns how many were judged: the staged packets, or
    /// fewer when `verdicts` is shorter. With `next`, a burst begun since (same snapshot),
    /// stage (2) of `next` is done along the way, one packet's prefetch before each packet
    /// judged here (and counted in stage (3)'s cycles).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn finish_burst<B: PacketBuf, X: ExtraTx<B>>(
        &mut self,
        snap: &Snapshot,
        pkts: &mut [B],
        rx_port: u16,
        now: Tick,
        extra: &mut X,
        staged: &StagedBurst,
        verdicts: &mut [Verdict],
        next: Option<&mut StagedBurst>,
    ) -> usize {
        #[cfg(feature = "stage-cycles")]
        let t0 = anycast6_dpdk::rdtsc();
        let mut done = 0;
        let next = next.map_or(&mut [][..], |n| &mut n.0[..]);
        for ((pkt, stage), verdict) in pkts.iter_mut().zip(staged.0.iter()).zip(verdicts) {
            if let Some(n) = next.get_mut(done) {
                self.stage_two(n);
            }
            done += 1;
            // The forward verdict is written field by field where it goes: a verdict
            // built on the stack and copied as a whole was read back before its
            // narrower stores had left the store buffer (a store-forwarding stall).
            let v = match stage {
                Staged::Fast(plan) => match self.forward_fast(snap, pkt, plan, now) {
                    Ok((port, member)) => {
                        self.counters.add(Stat::Forwarded, 1);
                        self.count_tx(pkt.len());
                        *verdict = Verdict::Forward {
                            port,
                            service: plan.service,
                            member,
                            fragments: 1,
                        };
                        continue;
                    }
                    Err(reason) => Verdict::Drop(reason),
                },
                Staged::General(stage) => self.act(snap, pkt, rx_port, now, extra, stage),
            };
            self.count_verdict(v, pkt.len());
            *verdict = v;
        }
        for n in next.iter_mut().skip(done) {
            self.stage_two(n);
        }
        self.copy_table_counters();
        #[cfg(feature = "stage-cycles")]
        {
            self.stage_cycles.stages[2] += anycast6_dpdk::rdtsc() - t0;
            self.stage_cycles.packets += done as u64;
        }
        done
    }

    /// Stage (1) of [`Worker::process_burst`] for one packet: its plan, and the prefetch
    /// of its first bucket's metadata line.
    #[inline(always)]
    fn stage_one<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        port_mac: Option<u64>,
        rx_port: u16,
        pkt: &B,
        staged: &mut Vec<Staged>,
    ) {
        self.count_rx(pkt.len());
        let frame = pkt.data();
        // Each arm pushes its own variant: pushing a `Staged` built by the match copied all
        // 192 bytes of the largest variant for every packet.
        match port_mac.and_then(|mac| self.fast_plan(snap, frame, mac)) {
            Some(plan) => {
                self.affinity.prefetch_buckets(&plan.probe);
                staged.push(Staged::Fast(plan));
            }
            None => {
                let stage = self.classify(snap, frame, rx_port);
                if let Classified::Forward { flow, .. } = &stage {
                    self.affinity.prefetch_buckets(&flow.probe);
                }
                staged.push(Staged::General(stage));
            }
        }
    }

    /// Stage (2): the prefetch of the slot the packet's key should be in.
    #[inline(always)]
    fn stage_two(&self, stage: &mut Staged) {
        match stage {
            Staged::Fast(plan) => self.affinity.prefetch_slot(&mut plan.probe),
            Staged::General(Classified::Forward { flow, .. }) => {
                self.affinity.prefetch_slot(&mut flow.probe)
            }
            Staged::General(_) => {}
        }
    }

    /// Copies the affinity table's counters into the worker's (once per burst, or per
    /// packet for [`Worker::process`]).
    #[inline]
    fn copy_table_counters(&mut self) {
        let t = *self.affinity.counters();
        self.counters.set(Stat::AffinityHits, t.hits);
        self.counters.set(Stat::AffinityMisses, t.misses);
        self.counters.set(Stat::AffinityEvictions, t.evictions);
        self.counters.set(Stat::AffinityExpirations, t.expirations);
        self.counters.set(Stat::AffinityRelocations, t.relocations);
    }

    /// Judges one received frame and rewrites it in place as the verdict says (the same
    /// code as [`Worker::process_burst`], one packet at a time, without prefetching).
    #[inline]
    pub fn process<B: PacketBuf, X: ExtraTx<B>>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        rx_port: u16,
        now: Tick,
        extra: &mut X,
    ) -> Verdict {
        self.count_rx(pkt.len());
        let stage = self.classify(snap, pkt.data(), rx_port);
        let verdict = self.act(snap, pkt, rx_port, now, extra, &stage);
        self.count_verdict(verdict, pkt.len());
        self.copy_table_counters();
        verdict
    }

    #[inline]
    fn count_rx(&mut self, len: usize) {
        self.counters.add(Stat::RxPackets, 1);
        self.counters.add(Stat::RxBytes, len as u64);
    }

    /// Counts a verdict; `len` is the buffer's length after processing.
    #[inline]
    fn count_verdict(&mut self, verdict: Verdict, len: usize) {
        match verdict {
            Verdict::Forward { .. } => self.counters.add(Stat::Forwarded, 1),
            Verdict::Reverse { .. } => self.counters.add(Stat::Reversed, 1),
            Verdict::IcmpError { reason, .. } => {
                self.counters.add_drop(reason);
                self.counters.add(Stat::IcmpSent, 1);
            }
            Verdict::Exception => self.counters.add(Stat::Exceptions, 1),
            Verdict::Drop(reason) => self.counters.add_drop(reason),
        }
        if verdict.tx_port().is_some() {
            self.count_tx(len);
        }
    }

    /// Counts one frame to transmit of `len` octets.
    #[inline]
    fn count_tx(&mut self, len: usize) {
        self.counters.add(Stat::TxPackets, 1);
        self.counters.add(Stat::TxBytes, len as u64);
    }

    /// Stage (3): carries out what [`Worker::classify`] decided. Out of line, like
    /// `classify`, so that the general path stays out of the fast path's code.
    #[cold]
    #[inline(never)]
    fn act<B: PacketBuf, X: ExtraTx<B>>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        rx_port: u16,
        now: Tick,
        extra: &mut X,
        stage: &Classified,
    ) -> Verdict {
        match stage {
            Classified::Done(verdict) => *verdict,
            Classified::Forward {
                parsed,
                service,
                flow,
            } => self.forward(snap, pkt, rx_port, parsed, *service, flow, now, extra),
            Classified::Reverse(parsed) => self.reverse(snap, pkt, parsed, now),
        }
    }

    /// Stage (1): parses and classifies a frame without changing anything. Out of line:
    /// inlined, the general path sat in the middle of the burst's loop, and stage (1) of
    /// the fast path took about 4 cycles per packet more (rdtsc-measured).
    #[cold]
    #[inline(never)]
    fn classify(&self, snap: &Snapshot, frame: &[u8], rx_port: u16) -> Classified {
        let Some(port) = snap.port(rx_port) else {
            return Classified::Done(Verdict::Drop(DropReason::UnknownPort));
        };
        let p = match parse(frame, port) {
            Ok(p) => p,
            Err(reason) => return Classified::Done(Verdict::Drop(reason)),
        };
        let dst = u128::from(p.dst);
        if let Some(service_index) = snap.service_by_address(dst) {
            // Neighbor Discovery about a service address (unicast NUD) is the control
            // thread's: it decides how the appliance answers for its anycast addresses.
            if is_nd(p.icmp_type) {
                return Classified::Done(Verdict::Exception);
            }
            // Mobility Header signalling from a client to a service (HoT, BA, Binding
            // Refresh Request) is the control thread's: it pins return routability to the
            // member that started it and answers for failed members (trigger signals).
            if p.chain.upper_layer == proto::MOBILITY {
                return Classified::Done(Verdict::Exception);
            }
            let Some(service) = snap.service(service_index) else {
                return Classified::Done(Verdict::Drop(DropReason::NoServiceMember));
            };
            let flow = self.flow_plan(&p, frame, service.affinity);
            return Classified::Forward {
                parsed: p,
                service: service_index,
                flow,
            };
        }
        if snap.is_local(dst) {
            let tunnel_packet = matches!(p.chain.upper_layer, proto::IPV6 | proto::DEST_OPTS)
                && p.dst == snap.tunnel().address;
            if tunnel_packet && p.chain.fragment.is_some() {
                // RFC 2473 §3.3 wants reassembly first; the data plane keeps no fragment
                // state, and members are told to stay within the tunnel MTU.
                return Classified::Done(Verdict::Drop(DropReason::TunnelFragment));
            }
            if p.chain.upper_layer == proto::IPV6 && p.dst == snap.tunnel().address {
                return Classified::Reverse(p);
            }
            return Classified::Done(Verdict::Exception);
        }
        if p.dst.is_multicast() {
            if is_nd(p.icmp_type) {
                let o = p.dst.octets();
                // Solicited-node group ff02::1:ffXX:XXXX (RFC 4291 §2.7.1): only ours.
                if o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff] {
                    let low24 = u32::from_be_bytes([0, o[13], o[14], o[15]]);
                    if !snap.is_our_solicited_node(low24) {
                        return Classified::Done(Verdict::Drop(DropReason::NotForUs));
                    }
                }
                return Classified::Done(Verdict::Exception);
            }
            return Classified::Done(Verdict::Drop(DropReason::MulticastNotHandled));
        }
        Classified::Done(Verdict::Drop(DropReason::NotForUs))
    }

    /// Stage (1) of the fast path: the plan for a frame of the common kind (untagged
    /// Ethernet to the port's own MAC, IPv6 without extension headers, TCP or UDP with its
    /// ports inside the packet, to a service, from a source the general path forwards, hop
    /// limit above 1, within the tunnel MTU), or `None` for the general path. Accepting a
    /// frame means that [`Worker::classify`] and [`Worker::forward`] would pass every check
    /// up to the affinity lookup; the tests hold the two paths to the same verdicts and
    /// bytes.
    #[inline(always)]
    fn fast_plan(&self, snap: &Snapshot, frame: &[u8], port_mac: u64) -> Option<FastPlan> {
        const ETH: usize = ethernet::HEADER_LEN;
        const IP: usize = ETH + ipv6::HEADER_LEN;
        let h: &[u8; IP + 4] = frame.get(..IP + 4)?.try_into().ok()?;
        // Two overlapping words: destination MAC (and two octets of the source MAC), then
        // the source MAC and the EtherType.
        let dst_word = u64::from_le_bytes(*h.first_chunk::<8>()?);
        let src_word = u64::from_le_bytes(*h[6..].first_chunk::<8>()?);
        if (dst_word ^ port_mac) & MAC_MASK != 0
            || src_word & 1 != 0
            || src_word >> 48 != u64::from(u16::from_le_bytes([0x86, 0xdd]))
        {
            return None;
        }
        let protocol = h[ETH + 6];
        if h[ETH] >> 4 != 6 || (protocol != proto::TCP && protocol != proto::UDP) {
            return None;
        }
        let ip_len = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([h[ETH + 4], h[ETH + 5]]));
        if ip_len < ipv6::HEADER_LEN + 4 || frame.len() - ETH < ip_len || h[ETH + 7] <= 1 {
            return None;
        }
        let mut src = [0u8; 16];
        src.copy_from_slice(&h[ETH + 8..ETH + 24]);
        let mut dst = [0u8; 16];
        dst.copy_from_slice(&h[ETH + 24..ETH + 40]);
        let service_index = snap.service_by_address(u128::from_be_bytes(dst))?;
        let service = snap.service(service_index)?;
        if ip_len > service.tunnel_mtu {
            return None;
        }
        // Multicast, unforwardable and our own sources are dropped by the general path.
        let client = Ipv6Addr::from(src);
        if client.is_multicast()
            || is_unforwardable_source(&client)
            || snap.is_local(u128::from(client))
        {
            return None;
        }
        let ports = *h[IP..].first_chunk::<4>()?;
        let (key, key_hash, flow_hash) = affinity_key(service.affinity, src, ports, dst, protocol);
        let opens_connection = service.affinity == AffinityMode::Flow
            && is_tcp_syn(protocol, Some(&frame[IP..ETH + ip_len]));
        Some(FastPlan {
            service: service_index,
            ip_len: ip_len as u16,
            opens_connection,
            key,
            probe: self.affinity.probe(key_hash),
            key_hash,
            flow_hash,
        })
    }

    /// Stage (3) of the fast path: the member, then the headers from its
    /// [`OuterHeaders`](super::snapshot::OuterHeaders) in front of the client packet.
    /// `Ok` is the service's port and the member's id: a [`Verdict::Forward`] of one
    /// fragment. The same verdict, bytes, counts and table changes as [`Worker::forward`].
    #[inline(always)]
    fn forward_fast<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        plan: &FastPlan,
        now: Tick,
    ) -> Result<(u16, u32), DropReason> {
        const ETH: usize = ethernet::HEADER_LEN;
        let Some(service) = snap.service(plan.service) else {
            return Err(DropReason::NoServiceMember);
        };
        // A live pin to a member that keeps it is nearly every packet: judged here, without
        // the general resolution's closures; a new or re-picked flow goes out of line.
        let now_secs = now.secs();
        let (index, new_flow) = match self
            .affinity
            .lookup_probed(&plan.key, &plan.probe, now_secs)
        {
            Some(entry) => {
                let (state, pinned) = service.pinned(entry.member);
                let stays = match state {
                    MemberState::Active => true,
                    MemberState::Draining => !plan.opens_connection,
                    MemberState::Gone => false,
                };
                if stays {
                    (pinned, false)
                } else {
                    (
                        self.repick_fast(service, plan, now_secs, Some(entry.member)),
                        true,
                    )
                }
            }
            None => (self.repick_fast(service, plan, now_secs, None), true),
        };
        let Some(member) = index.and_then(|i| service.members.get(i)) else {
            return Err(DropReason::NoServiceMember);
        };
        // In the general path's order: neighbour, headroom, then what the encapsulation
        // refuses.
        let outer = match &member.outer {
            Ok(outer) => outer,
            Err(DropReason::NoNeighbour) => return Err(DropReason::NoNeighbour),
            Err(_) if pkt.headroom() < snap.tunnel_overhead() => {
                return Err(DropReason::NoBufferRoom)
            }
            Err(reason) => return Err(*reason),
        };
        let overhead = usize::from(outer.overhead);
        if pkt.headroom() < overhead {
            return Err(DropReason::NoBufferRoom);
        }

        // Rewrite: drop the link padding, grow the front by the tunnel headers, and write
        // Ethernet + outer IPv6 (+ options) over the old Ethernet header and the new room.
        let ip_len = usize::from(plan.ip_len);
        let padding = pkt.len() - ETH - ip_len;
        // The general path's reasons, should either ever fail.
        if pkt.trim(padding).is_err() {
            return Err(DropReason::MalformedIpv6);
        }
        if pkt.prepend(overhead).is_err() {
            return Err(DropReason::NoBufferRoom);
        }
        let data = pkt.data_mut();
        let Some(headers) = data.get_mut(..ETH + overhead + ipv6::HEADER_LEN) else {
            return Err(DropReason::MalformedIpv6);
        };
        let (headers, inner) = headers.split_at_mut(ETH + overhead);
        let inner_word0 = u32::from_be_bytes([inner[0], inner[1], inner[2], inner[3]]);
        headers[..OUTER_FIXED].copy_from_slice(&outer.bytes[..OUTER_FIXED]);
        // The Destination Options header, when there is one, is 8 octets: a fixed-size copy
        // (a slice of variable length is a call to memcpy, even when it is empty).
        if let Some(options) = headers.get_mut(OUTER_FIXED..OUTER_HEADERS_MAX) {
            options.copy_from_slice(&outer.bytes[OUTER_FIXED..]);
        }
        let word0 = outer.word0 | (inner_word0 & outer.inner_tc_mask) | flow_label(plan.flow_hash);
        headers[ETH..ETH + 4].copy_from_slice(&word0.to_be_bytes());
        let payload_len = (overhead - ipv6::HEADER_LEN + ip_len) as u16;
        headers[ETH + 4..ETH + 6].copy_from_slice(&payload_len.to_be_bytes());
        inner[7] -= 1;

        if let Some(t) = self.member_traffic.get_mut(usize::from(member.stats_slot)) {
            t.fwd_packets += 1;
            t.fwd_bytes += ip_len as u64;
            t.new_flows += u64::from(new_flow);
        }
        Ok((service.port, member.id))
    }

    /// [`Worker::forward_fast`] for a flow without a live pin (`previous` is `None`), or
    /// pinned to `previous`, a member that is gone (or draining, for a new connection):
    /// picked by Maglev and pinned, as [`AffinityTable::resolve_probed`] does. The member's
    /// position, or `None` when no member takes new flows (a stale pin is then removed).
    #[inline(never)]
    fn repick_fast(
        &mut self,
        service: &Service,
        plan: &FastPlan,
        now_secs: u32,
        previous: Option<MemberRef>,
    ) -> Option<usize> {
        let picked = service.pick_index(plan.key_hash);
        let member = picked.map(|i| service.members[i].member_ref());
        let (key, probe) = (&plan.key, &plan.probe);
        let resolution = match previous {
            Some(previous) => self
                .affinity
                .repin_probed(key, probe, now_secs, previous, member),
            None => self.affinity.pin_new_probed(key, probe, now_secs, member),
        };
        match resolution {
            Resolution::NoMember => None,
            _ => picked,
        }
    }

    /// The affinity key of a packet to a service, its table probe, and the transport flow
    /// hash. Fragments carry no reliable ports, so every fragment of a datagram is keyed
    /// without them (as Maglev does, NSDI 2016 §3.3), which keeps them together.
    #[inline(always)]
    fn flow_plan(&self, p: &Parsed, frame: &[u8], mode: AffinityMode) -> FlowPlan {
        let src = p.src.octets();
        let dst = p.dst.octets();
        let quoted = if p.icmp_type.is_some_and(icmpv6::is_error) {
            p.upper(frame)
                .and_then(|icmp| flowhash::quoted_flow(icmp, &dst))
        } else {
            None
        };
        let (client, client_port, service_port, protocol) = match quoted {
            // An ICMPv6 error about a member's packet goes to that member's flow.
            Some(q) => q,
            None if p.is_fragmented() => (src, 0, 0, 0),
            None => {
                let protocol = p.chain.upper_layer;
                let (sport, dport) = ports_of(protocol, p.upper(frame));
                (src, sport, dport, protocol)
            }
        };
        let [c0, c1] = client_port.to_be_bytes();
        let [s0, s1] = service_port.to_be_bytes();
        let (key, key_hash, flow_hash) =
            affinity_key(mode, client, [c0, c1, s0, s1], dst, protocol);
        FlowPlan {
            key,
            probe: self.affinity.probe(key_hash),
            key_hash,
            flow_hash,
        }
    }

    /// The forward path: client -> service, tunnelled to a member.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn forward<B: PacketBuf, X: ExtraTx<B>>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        rx_port: u16,
        p: &Parsed,
        service_index: u16,
        flow: &FlowPlan,
        now: Tick,
        extra: &mut X,
    ) -> Verdict {
        let Some(service) = snap.service(service_index) else {
            return Verdict::Drop(DropReason::NoServiceMember);
        };
        let Some(out_port) = snap.port(service.port) else {
            return Verdict::Drop(DropReason::NoServiceMember);
        };
        if is_unforwardable_source(&p.src) {
            return Verdict::Drop(DropReason::UnforwardableSource);
        }
        if snap.is_local(u128::from(p.src)) {
            return Verdict::Drop(DropReason::TunnelLoop);
        }
        // RFC 2473 §3.1: entering the tunnel is forwarding, so the inner hop limit is
        // decremented, and a packet that would reach 0 is discarded (RFC 8200 §3).
        if p.hop_limit <= 1 {
            return self.icmp_error(
                snap,
                pkt,
                rx_port,
                p,
                now,
                IcmpError::TimeExceeded,
                DropReason::HopLimitExceeded,
            );
        }
        // RFC 2473 §5.1 (b).
        if let Some(tel) = p.chain.encap_limit {
            if tel.limit == 0 {
                return self.icmp_error(
                    snap,
                    pkt,
                    rx_port,
                    p,
                    now,
                    IcmpError::ParamProblem {
                        pointer: (ipv6::HEADER_LEN + tel.offset) as u32,
                    },
                    DropReason::EncapLimitExceeded,
                );
            }
        }
        // A packet carrying its own limit always gets the option (§5.1 (c)).
        let overhead = if p.chain.encap_limit.is_some() || snap.tunnel().encap_limit.is_some() {
            tunnel::MAX_OVERHEAD
        } else {
            ipv6::HEADER_LEN
        };
        let link_mtu = usize::from(out_port.link_mtu);
        let tunnel_mtu = link_mtu - overhead;
        // RFC 2473 §7.1 (a); smaller packets are fragmented after encapsulation (§7.1 (b)).
        if p.ip_len > tunnel_mtu && p.ip_len > ipv6::MIN_MTU {
            return self.icmp_error(
                snap,
                pkt,
                rx_port,
                p,
                now,
                IcmpError::PacketTooBig {
                    mtu: tunnel_mtu.max(ipv6::MIN_MTU) as u32,
                },
                DropReason::TooBig,
            );
        }

        // In flow mode a TCP SYN opens a new connection even when its 5-tuple is
        // remembered (clients reuse ports): it must not be pinned to a draining member,
        // which takes no new connections. Other packets of a remembered flow stay where
        // they are. (In client mode the key is the client: a draining member keeps its
        // clients, new connections included, until they go idle.)
        let opens_connection = service.affinity == AffinityMode::Flow
            && is_tcp_syn(p.chain.upper_layer, p.upper(pkt.data()));
        let resolution = self.affinity.resolve_probed(
            &flow.key,
            &flow.probe,
            now.secs(),
            |m| match service.member_state(m) {
                MemberState::Draining if opens_connection => MemberState::Gone,
                state => state,
            },
            || service.pick(flow.key_hash),
        );
        let (member_ref, new_flow) = match resolution {
            Resolution::Sticky(m) => (m, false),
            Resolution::New(m) | Resolution::Repinned { member: m, .. } => (m, true),
            Resolution::NoMember => return Verdict::Drop(DropReason::NoServiceMember),
        };
        let Some(member) = service.member_by_id(member_ref.id) else {
            return Verdict::Drop(DropReason::NoServiceMember);
        };
        let Some(dst_mac) = member.mac.or(out_port.next_hop_mac) else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        if pkt.headroom() + p.eth_len < overhead + ethernet::HEADER_LEN {
            return Verdict::Drop(DropReason::NoBufferRoom);
        }

        // Rewrite. Every check that can send an error is behind us.
        if let Err(reason) = encapsulate_parsed(pkt, p, snap.tunnel(), member.care_of, flow) {
            return Verdict::Drop(reason);
        }
        let fragments = if pkt.len() > link_mtu {
            if let Err(reason) =
                self.fragment(pkt, link_mtu, dst_mac, out_port.mac, service.port, extra)
            {
                return Verdict::Drop(reason);
            }
            2
        } else {
            1
        };
        if let Err(reason) = push_ethernet(pkt, dst_mac, out_port.mac) {
            return Verdict::Drop(reason);
        }
        if let Some(t) = self.member_traffic.get_mut(usize::from(member.stats_slot)) {
            t.fwd_packets += 1;
            t.fwd_bytes += p.ip_len as u64;
            t.new_flows += u64::from(new_flow);
        }
        Verdict::Forward {
            port: service.port,
            service: service_index,
            member: member.id,
            fragments,
        }
    }

    /// RFC 2473 §7.1 (b): splits the tunnel packet in `pkt` (no Ethernet header yet) into
    /// two fragments of at most `link_mtu` octets: `pkt` keeps the first, the second goes
    /// to `extra` with its Ethernet header. The unfragmentable part is the outer IPv6
    /// header alone: the tunnel's Destination Options header is for the exit point, the
    /// final destination, so it travels in the fragmentable part (RFC 8200 §4.5). Inner
    /// packets of at most 1280 octets over links of at least 1280 always fit in two.
    fn fragment<B: PacketBuf, X: ExtraTx<B>>(
        &mut self,
        pkt: &mut B,
        link_mtu: usize,
        dst_mac: MacAddr,
        src_mac: MacAddr,
        port: u16,
        extra: &mut X,
    ) -> Result<(), DropReason> {
        const FRAG: usize = FragmentRepr::HEADER_LEN;
        let unfragmentable = ipv6::HEADER_LEN;
        let fragmentable = pkt.len() - unfragmentable;
        // Every fragment but the last carries a multiple of 8 octets (RFC 8200 §4.5).
        let first_len = (link_mtu - unfragmentable - FRAG) & !7;
        let rest = fragmentable.saturating_sub(first_len);
        if rest == 0 || unfragmentable + FRAG + rest > link_mtu {
            return Err(DropReason::TooBig);
        }
        if pkt.headroom() < FRAG + ethernet::HEADER_LEN {
            return Err(DropReason::NoBufferRoom);
        }
        let Some(mut second) = extra.alloc() else {
            return Err(DropReason::FragmentNoRoom);
        };
        let second_len = ethernet::HEADER_LEN + unfragmentable + FRAG + rest;
        let stale = second.len();
        if second.trim(stale).is_err() || second.append(second_len).is_err() {
            return Err(DropReason::FragmentNoRoom);
        }
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        // RFC 7739: unique per (source, destination) while fragments can live; 24 bits of
        // sequence and the worker's id keep workers apart.
        let identification = (self.fragment_seq << 8) | u32::from(self.id & 0xff);
        let data = pkt.data();
        let first_next_header = data[6];
        let out = second.data_mut();
        write_ethernet(out, dst_mac, src_mac);
        let ip = &mut out[ethernet::HEADER_LEN..];
        ip[..unfragmentable].copy_from_slice(&data[..unfragmentable]);
        ip[unfragmentable + FRAG..].copy_from_slice(&data[unfragmentable + first_len..]);
        let mut header = Ipv6Packet::new_unchecked(&mut ip[..unfragmentable]);
        header.set_payload_len((FRAG + rest) as u16);
        header.set_next_header(proto::FRAGMENT);
        let second_header = FragmentRepr {
            next_header: first_next_header,
            offset: (first_len / 8) as u16,
            more_fragments: false,
            identification,
        };
        second_header
            .emit(&mut Ipv6FragmentHeader::new_unchecked(
                &mut ip[unfragmentable..unfragmentable + FRAG],
            ))
            .map_err(|_| DropReason::TooBig)?;

        // First fragment: cut the tail, open a gap for the Fragment header after the
        // fixed header.
        pkt.trim(rest).map_err(|_| DropReason::NoBufferRoom)?;
        pkt.prepend(FRAG).map_err(|_| DropReason::NoBufferRoom)?;
        let d = pkt.data_mut();
        d.copy_within(FRAG..FRAG + unfragmentable, 0);
        let mut header = Ipv6Packet::new_unchecked(&mut d[..unfragmentable]);
        header.set_payload_len((FRAG + first_len) as u16);
        header.set_next_header(proto::FRAGMENT);
        FragmentRepr {
            more_fragments: true,
            offset: 0,
            ..second_header
        }
        .emit(&mut Ipv6FragmentHeader::new_unchecked(
            &mut d[unfragmentable..unfragmentable + FRAG],
        ))
        .map_err(|_| DropReason::TooBig)?;

        self.counters.add(Stat::Fragmented, 1);
        self.counters.add(Stat::TxPackets, 1);
        self.counters.add(Stat::TxBytes, second_len as u64);
        extra.send_after(port, second);
        Ok(())
    }

    /// The reverse path: a member's reply tunnelled to the tunnel address.
    #[inline]
    fn reverse<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        p: &Parsed,
        now: Tick,
    ) -> Verdict {
        let ip = p.ip(pkt.data());
        let Some(inner_bytes) = ip.get(ipv6::HEADER_LEN + p.chain.upper_offset..) else {
            return Verdict::Drop(DropReason::ReverseMalformedInner);
        };
        let Ok(inner) = Ipv6Packet::new_checked(inner_bytes) else {
            return Verdict::Drop(DropReason::ReverseMalformedInner);
        };
        let inner_src = inner.src_addr();
        // Anti-spoofing: only a registered member may speak for its service.
        let Some((service_index, member_index)) =
            snap.registered_pair(u128::from(p.src), u128::from(inner_src))
        else {
            return Verdict::Drop(DropReason::ReverseUnregistered);
        };
        let inner_dst = inner.dst_addr();
        if inner_dst.is_multicast()
            || inner_dst.is_unspecified()
            || inner_dst.is_loopback()
            || is_link_local(&inner_dst)
        {
            return Verdict::Drop(DropReason::ReverseBadDestination);
        }
        // A member's Mobility Header to a client (its HoTI, return routability through its
        // home agent, RFC 6275 §5.2.3): the control thread notes which member asked and
        // forwards it.
        if inner.next_header() == proto::MOBILITY {
            return Verdict::Exception;
        }
        let inner_dst_bits = u128::from(inner_dst);
        if snap.is_local(inner_dst_bits) {
            // A registered member's reply to the appliance itself (the answer to a tunnel
            // health probe): the control thread decapsulates it.
            return Verdict::Exception;
        }
        if snap.service_by_address(inner_dst_bits).is_some() {
            return Verdict::Drop(DropReason::TunnelLoop);
        }
        let Some(service) = snap.service(service_index) else {
            return Verdict::Drop(DropReason::ReverseUnregistered);
        };
        let Some(member) = service.members.get(usize::from(member_index)) else {
            return Verdict::Drop(DropReason::ReverseUnregistered);
        };
        let Some(out_port) = snap.port(service.port) else {
            return Verdict::Drop(DropReason::ReverseUnregistered);
        };
        let inner_hop_limit = inner.hop_limit();
        let inner_len = inner.total_len();
        // Errors about the inner packet would go to its source, the service address: an
        // anycast address, to which RFC 4443 §2.4(e.6) forbids sending them. The policy
        // check still runs so that the suppression is counted.
        let invoking = InvokingPacket {
            src_addr: inner_src,
            dst_addr: inner_dst,
            link_multicast: false,
            icmp_type: None,
            src_known_anycast: true,
        };
        if inner_hop_limit <= 1 {
            self.error_permitted(snap, &invoking, ErrorKind::TimeExceeded, now);
            return Verdict::Drop(DropReason::HopLimitExceeded);
        }
        if inner_len > usize::from(out_port.link_mtu) {
            self.error_permitted(snap, &invoking, ErrorKind::PacketTooBig, now);
            return Verdict::Drop(DropReason::TooBig);
        }
        let Some(dst_mac) = out_port.next_hop_mac else {
            return Verdict::Drop(DropReason::NoNeighbour);
        };
        if pkt.adj(p.eth_len).is_err() {
            return Verdict::Drop(DropReason::MalformedEthernet);
        }
        if tunnel::decapsulate(pkt).is_err() {
            return Verdict::Drop(DropReason::ReverseMalformedInner);
        }
        // Checked above: the hop limit is at least 2.
        if tunnel::decrement_hop_limit(pkt.data_mut()).is_err() {
            return Verdict::Drop(DropReason::ReverseMalformedInner);
        }
        if let Err(reason) = push_ethernet(pkt, dst_mac, out_port.mac) {
            return Verdict::Drop(reason);
        }
        if let Some(t) = self.member_traffic.get_mut(usize::from(member.stats_slot)) {
            t.rev_packets += 1;
            t.rev_bytes += inner_len as u64;
        }
        Verdict::Reverse {
            port: service.port,
            service: service_index,
            member: member.id,
        }
    }

    /// RFC 4443 §2.4(e) then (f): may an error be sent now? Counts the refusals.
    #[inline]
    fn error_permitted(
        &mut self,
        snap: &Snapshot,
        invoking: &InvokingPacket,
        kind: ErrorKind,
        now: Tick,
    ) -> bool {
        if !may_send_error(invoking, kind) {
            self.counters.add(Stat::IcmpNotAllowed, 1);
            return false;
        }
        let rate = snap.icmp_rate();
        if self.icmp_bucket.params() != (rate.per_second, rate.burst) {
            self.icmp_bucket.reconfigure(rate.per_second, rate.burst);
        }
        if !self.icmp_bucket.try_take(now.millis()) {
            self.counters.add(Stat::IcmpRateLimited, 1);
            return false;
        }
        true
    }

    /// Drops the packet for `reason` and, when RFC 4443 allows, replaces it in place with
    /// the ICMPv6 error `error` about it, sent back out of `rx_port`.
    #[allow(clippy::too_many_arguments)]
    fn icmp_error<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        rx_port: u16,
        p: &Parsed,
        now: Tick,
        error: IcmpError,
        reason: DropReason,
    ) -> Verdict {
        let Some(port) = snap.port(rx_port) else {
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let invoking = InvokingPacket {
            src_addr: p.src,
            dst_addr: p.dst,
            link_multicast: p.link_multicast,
            icmp_type: p.icmp_type,
            src_known_anycast: snap.service_by_address(u128::from(p.src)).is_some(),
        };
        // The headers go where the Ethernet header and headroom are.
        if pkt.headroom() + p.eth_len < ICMP_ERROR_HEADERS {
            return Verdict::Drop(DropReason::NoBufferRoom);
        }
        if !self.error_permitted(snap, &invoking, error.kind(), now) {
            return Verdict::Drop(reason);
        }
        // RFC 4443 §2.4(c): as much of the invoking packet as fits in 1280 octets.
        let quote_len = p.ip_len.min(icmpv6::invoking_budget(0));
        let excess = pkt.len() - p.eth_len - quote_len;
        if pkt.trim(excess).is_err()
            || pkt.adj(p.eth_len).is_err()
            || pkt.prepend(ICMP_ERROR_HEADERS).is_err()
        {
            return Verdict::Drop(DropReason::NoBufferRoom);
        }
        let tunnel_spec = snap.tunnel();
        let out = pkt.data_mut();
        write_ethernet(out, p.src_mac, port.mac);
        let (ip, icmp) = out[ethernet::HEADER_LEN..].split_at_mut(ipv6::HEADER_LEN);
        let header = Ipv6Repr {
            src: tunnel_spec.address,
            dst: p.src,
            next_header: proto::ICMPV6,
            payload_len: icmpv6::HEADER_LEN + quote_len,
            hop_limit: tunnel_spec.hop_limit,
            traffic_class: 0,
            flow_label: 0,
        };
        if header.emit(&mut Ipv6Packet::new_unchecked(ip)).is_err() {
            return Verdict::Drop(reason);
        }
        let mut message = Icmpv6Packet::new_unchecked(icmp);
        match error {
            IcmpError::TimeExceeded => {
                message.set_msg_type(Message::TimeExceeded);
                message.set_msg_code(0);
                message.set_pointer(0);
            }
            IcmpError::PacketTooBig { mtu } => {
                message.set_msg_type(Message::PacketTooBig);
                message.set_msg_code(0);
                message.set_mtu(mtu);
            }
            IcmpError::ParamProblem { pointer } => {
                message.set_msg_type(Message::ParamProblem);
                message.set_msg_code(0);
                message.set_pointer(pointer);
            }
        }
        message.fill_checksum(&tunnel_spec.address, &p.src);
        Verdict::IcmpError {
            port: rx_port,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::snapshot::{
        MemberSpec, MemberStatus, PortSpec, ServiceSpec, SnapshotSpec, TunnelSpec,
    };
    use anycast6_wire::icmpv6::{Icmpv6Repr, ParamProblemCode, TimeExceededCode};
    use anycast6_wire::tunnel::{TrafficClass, TunnelParams};
    use anycast6_wire::VecBuf;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xfe]);
    const ONLINK_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x33]);
    const TUNNEL: &str = "2001:db8:ff::1";
    const SERVICE: &str = "2001:db8:100::1";
    const FLOW_SERVICE: &str = "2001:db8:100::2";
    const EMPTY_SERVICE: &str = "2001:db8:100::3";
    const ONLINK_SERVICE: &str = "2001:db8:100::4";
    const CLIENT: &str = "2001:db8:c::1";
    const M1: &str = "2001:db8:2::10";
    const M2: &str = "2001:db8:2::11";
    const M3: &str = "2001:db8:2::12";

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn member(id: u32, care_of: &str, status: MemberStatus) -> MemberSpec {
        MemberSpec {
            id,
            epoch: 1,
            care_of: a(care_of),
            weight: 1,
            status,
            mac: None,
            stats_slot: id as u16,
        }
    }

    fn service(address: &str, affinity: AffinityMode, members: Vec<MemberSpec>) -> ServiceSpec {
        ServiceSpec {
            address: a(address),
            affinity,
            port: 0,
            maglev_size: 1021,
            members,
        }
    }

    fn spec() -> SnapshotSpec {
        let both = || {
            vec![
                member(1, M1, MemberStatus::Active),
                member(2, M2, MemberStatus::Active),
            ]
        };
        let mut onlink = member(9, "2001:db8:2::99", MemberStatus::Active);
        onlink.mac = Some(ONLINK_MAC);
        SnapshotSpec {
            tunnel: TunnelSpec {
                address: a(TUNNEL),
                hop_limit: 64,
                traffic_class: TrafficClass::CopyInner,
                encap_limit: None,
            },
            local_addresses: vec![a("fe80::1")],
            ports: vec![PortSpec {
                mac: PORT_MAC,
                link_mtu: 1500,
                next_hop_mac: Some(ROUTER_MAC),
            }],
            services: vec![
                service(SERVICE, AffinityMode::Client, both()),
                service(FLOW_SERVICE, AffinityMode::Flow, both()),
                service(EMPTY_SERVICE, AffinityMode::Client, vec![]),
                service(ONLINK_SERVICE, AffinityMode::Client, vec![onlink]),
            ],
            icmp_rate: IcmpRateSpec::default(),
        }
    }

    fn snap() -> Snapshot {
        Snapshot::build(&spec()).unwrap()
    }

    fn snap_with(f: impl FnOnce(&mut SnapshotSpec)) -> Snapshot {
        let mut s = spec();
        f(&mut s);
        Snapshot::build(&s).unwrap()
    }

    fn worker() -> Worker {
        Worker::new(
            WorkerConfig {
                id: 1,
                affinity_capacity: 4096,
                affinity_idle_timeout: 300,
                icmp_rate: IcmpRateSpec::default(),
            },
            Tick::from_secs(0),
        )
        .unwrap()
    }

    /// Hands out `allocs` buffers and keeps what is sent.
    struct Tx {
        allocs: usize,
        sent: Vec<(u16, VecBuf)>,
    }

    impl Tx {
        fn new(allocs: usize) -> Tx {
            Tx {
                allocs,
                sent: Vec::new(),
            }
        }
    }

    impl ExtraTx<VecBuf> for Tx {
        fn alloc(&mut self) -> Option<VecBuf> {
            if self.allocs == 0 {
                return None;
            }
            self.allocs -= 1;
            Some(VecBuf::with_room(128, 2048))
        }
        fn send_after(&mut self, port: u16, buf: VecBuf) {
            self.sent.push((port, buf));
        }
    }

    /// An IPv6 packet with Traffic Class 0x2e and Flow Label 0xabcde.
    fn ip6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x62, 0xea, 0xbc, 0xde];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[nh, hop]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(payload);
        p
    }

    fn tcp(sport: u16, dport: u16, data_len: usize) -> Vec<u8> {
        let mut t = Vec::with_capacity(20 + data_len);
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        t.extend((0..data_len).map(|i| i as u8));
        t
    }

    /// A TCP packet from CLIENT of exactly `ip_len` octets.
    fn client_tcp(dst: &str, sport: u16, hop: u8, ip_len: usize) -> Vec<u8> {
        ip6(
            a(CLIENT),
            a(dst),
            proto::TCP,
            hop,
            &tcp(sport, 80, ip_len - 60),
        )
    }

    fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = dst.0.to_vec();
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn frame(ip: &[u8]) -> Vec<u8> {
        eth(PORT_MAC, ROUTER_MAC, 0x86dd, ip)
    }

    fn now() -> Tick {
        Tick::from_secs(10)
    }

    fn run(w: &mut Worker, s: &Snapshot, bytes: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = VecBuf::from_slice(bytes);
        let v = w.process(s, &mut buf, 0, now(), &mut Tx::new(1));
        assert!(w.counters().is_consistent());
        (v, buf.into_vec())
    }

    /// Checks a forward-path output frame against the inner packet it carries and returns
    /// the outer Flow Label.
    fn check_tunnel(
        out: &[u8],
        care_of: &str,
        eth_dst: MacAddr,
        inner: &[u8],
        tel: Option<u8>,
    ) -> u32 {
        assert_eq!(&out[0..6], &eth_dst.0);
        assert_eq!(&out[6..12], &PORT_MAC.0);
        assert_eq!(&out[12..14], &[0x86, 0xdd]);
        let outer = Ipv6Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(outer.src_addr(), a(TUNNEL));
        assert_eq!(outer.dst_addr(), a(care_of));
        assert_eq!(outer.hop_limit(), 64);
        assert_eq!(outer.traffic_class(), 0x2e, "copied from the inner packet");
        assert_ne!(outer.flow_label(), 0);
        let tel_len = match tel {
            None => {
                assert_eq!(outer.next_header(), proto::IPV6);
                0
            }
            Some(limit) => {
                assert_eq!(outer.next_header(), proto::DEST_OPTS);
                assert_eq!(&out[54..62], &[41, 0, 4, 1, limit, 1, 1, 0]);
                8
            }
        };
        assert_eq!(usize::from(outer.payload_len()), tel_len + inner.len());
        let mut expected = inner.to_vec();
        expected[7] -= 1;
        assert_eq!(
            &out[54 + tel_len..],
            &expected[..],
            "inner intact but hop limit"
        );
        outer.flow_label()
    }

    /// Parses an ICMPv6 error frame (checksum verified) sent back towards CLIENT.
    fn icmp_of(out: &[u8]) -> Icmpv6Repr<'_> {
        assert_eq!(&out[0..6], &ROUTER_MAC.0, "back to the previous hop");
        assert_eq!(&out[6..12], &PORT_MAC.0);
        let ip = Ipv6Packet::new_checked(&out[14..]).unwrap();
        assert_eq!(ip.src_addr(), a(TUNNEL));
        assert_eq!(ip.next_header(), proto::ICMPV6);
        assert!(out.len() - 14 <= 1280, "RFC 4443 §2.4(c)");
        assert_eq!(ip.total_len(), out.len() - 14);
        let dst = ip.dst_addr();
        let packet = Icmpv6Packet::new_checked(&out[54..]).unwrap();
        Icmpv6Repr::parse(&packet, &a(TUNNEL), &dst).unwrap()
    }

    fn tel_packet(limit: u8) -> Vec<u8> {
        let mut payload = vec![proto::TCP, 0, 4, 1, limit, 1, 1, 0];
        payload.extend_from_slice(&tcp(1234, 80, 10));
        ip6(a(CLIENT), a(SERVICE), proto::DEST_OPTS, 64, &payload)
    }

    fn reply(from: &str, inner_src: &str, inner_dst: &str, hop: u8) -> (Vec<u8>, Vec<u8>) {
        let inner = ip6(
            a(inner_src),
            a(inner_dst),
            proto::TCP,
            hop,
            &tcp(80, 1234, 30),
        );
        (ip6(a(from), a(TUNNEL), proto::IPV6, 60, &inner), inner)
    }

    struct Case {
        reason: DropReason,
        snap: Snapshot,
        buf: VecBuf,
        port: u16,
        allocs: usize,
    }

    #[test]
    fn every_drop_reason_is_reachable() {
        let s = snap;
        let case = |reason, bytes: Vec<u8>| Case {
            reason,
            snap: s(),
            buf: VecBuf::from_slice(&bytes),
            port: 0,
            allocs: 1,
        };
        let good = || frame(&client_tcp(SERVICE, 1234, 64, 100));
        let mut vlan = eth(PORT_MAC, ROUTER_MAC, 0x8100, &[0, 5, 0x86, 0xdd]);
        vlan.extend_from_slice(&client_tcp(SERVICE, 1, 64, 80));
        let mut fragmented_tunnel = vec![41, 0, 0, 1, 0, 0, 0, 7];
        fragmented_tunnel.extend_from_slice(&client_tcp(SERVICE, 1, 64, 80));
        let cases = vec![
            case(DropReason::MalformedEthernet, vec![0; 10]),
            case(DropReason::VlanTagged, vlan),
            case(
                DropReason::NotIpv6,
                eth(PORT_MAC, ROUTER_MAC, 0x0800, &[0x45; 40]),
            ),
            case(
                DropReason::ForeignMac,
                eth(
                    MacAddr([2, 0, 0, 0, 0, 0x99]),
                    ROUTER_MAC,
                    0x86dd,
                    &client_tcp(SERVICE, 1, 64, 80),
                ),
            ),
            Case {
                port: 7,
                ..case(DropReason::UnknownPort, good())
            },
            case(
                DropReason::MalformedIpv6,
                frame(&client_tcp(SERVICE, 1, 64, 80)[..50]),
            ),
            case(
                DropReason::MulticastSource,
                frame(&ip6(
                    a("ff02::1"),
                    a(SERVICE),
                    proto::TCP,
                    64,
                    &tcp(1, 80, 0),
                )),
            ),
            case(
                DropReason::BadExtHeaders,
                frame(&ip6(
                    a(CLIENT),
                    a(SERVICE),
                    proto::HOP_BY_HOP,
                    64,
                    &[6, 1, 0, 0, 0, 0, 0, 0],
                )),
            ),
            case(
                DropReason::NotForUs,
                frame(&client_tcp("2001:db8:999::1", 1, 64, 80)),
            ),
            case(
                DropReason::MulticastNotHandled,
                eth(
                    MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                    ROUTER_MAC,
                    0x86dd,
                    &ip6(a(CLIENT), a("ff05::1"), proto::UDP, 64, &[0; 8]),
                ),
            ),
            case(
                DropReason::UnforwardableSource,
                frame(&ip6(
                    a("fe80::5"),
                    a(SERVICE),
                    proto::TCP,
                    64,
                    &tcp(1, 80, 0),
                )),
            ),
            case(
                DropReason::TunnelLoop,
                frame(&ip6(a(TUNNEL), a(SERVICE), proto::TCP, 64, &tcp(1, 80, 0))),
            ),
            case(
                DropReason::HopLimitExceeded,
                frame(&client_tcp(SERVICE, 1, 1, 80)),
            ),
            case(DropReason::EncapLimitExceeded, frame(&tel_packet(0))),
            case(DropReason::TooBig, frame(&client_tcp(SERVICE, 1, 64, 1500))),
            case(
                DropReason::NoServiceMember,
                frame(&client_tcp(EMPTY_SERVICE, 1, 64, 80)),
            ),
            Case {
                snap: snap_with(|sp| sp.ports[0].next_hop_mac = None),
                ..case(DropReason::NoNeighbour, good())
            },
            Case {
                buf: VecBuf::from_slice_with_room(&good(), 0, 0),
                ..case(DropReason::NoBufferRoom, good())
            },
            Case {
                snap: snap_with(|sp| sp.ports[0].link_mtu = 1300),
                allocs: 0,
                ..case(
                    DropReason::FragmentNoRoom,
                    frame(&client_tcp(SERVICE, 1, 64, 1280)),
                )
            },
            case(
                DropReason::TunnelFragment,
                frame(&ip6(
                    a(M1),
                    a(TUNNEL),
                    proto::FRAGMENT,
                    64,
                    &fragmented_tunnel,
                )),
            ),
            case(
                DropReason::ReverseUnregistered,
                frame(&reply("2001:db8:2::77", SERVICE, CLIENT, 64).0),
            ),
            case(
                DropReason::ReverseMalformedInner,
                frame(&ip6(a(M1), a(TUNNEL), proto::IPV6, 64, &[0x60; 20])),
            ),
            case(
                DropReason::ReverseBadDestination,
                frame(&reply(M1, SERVICE, "ff02::1", 64).0),
            ),
        ];
        let mut reached = HashSet::new();
        for mut c in cases {
            let mut w = worker();
            let v = w.process(&c.snap, &mut c.buf, c.port, now(), &mut Tx::new(c.allocs));
            assert_eq!(v.reason(), Some(c.reason), "{v:?}");
            assert_eq!(w.counters().drops(c.reason), 1);
            assert!(w.counters().is_consistent());
            reached.insert(c.reason);
        }
        for r in DropReason::ALL {
            assert!(reached.contains(r), "no test packet reaches {}", r.name());
        }
    }

    #[test]
    fn forward_path_byte_exact() {
        let s = snap();
        let mut w = worker();
        let inner = client_tcp(SERVICE, 40000, 64, 200);
        let (v, out) = run(&mut w, &s, &frame(&inner));
        let Verdict::Forward {
            port: 0,
            service: 0,
            member,
            fragments: 1,
        } = v
        else {
            panic!("{v:?}")
        };
        let care_of = if member == 1 { M1 } else { M2 };
        let label = check_tunnel(&out, care_of, ROUTER_MAC, &inner, None);
        // Stable per flow.
        let (_, again) = run(&mut w, &s, &frame(&inner));
        assert_eq!(
            check_tunnel(&again, care_of, ROUTER_MAC, &inner, None),
            label
        );
        // Other flows of the same client: same member (client affinity), other labels.
        let labels: HashSet<u32> = (1..20u16)
            .map(|p| {
                let other = client_tcp(SERVICE, 40000 + p, 64, 200);
                let (v, out) = run(&mut w, &s, &frame(&other));
                assert!(matches!(v, Verdict::Forward { member: m, .. } if m == member));
                check_tunnel(&out, care_of, ROUTER_MAC, &other, None)
            })
            .collect();
        assert!(labels.len() > 15 && !labels.contains(&label));
        let c = w.counters();
        assert_eq!(c.get(Stat::Forwarded), 21);
        assert_eq!(c.get(Stat::TxPackets), 21);

        // With a configured Tunnel Encapsulation Limit.
        let s = snap_with(|sp| sp.tunnel.encap_limit = Some(4));
        let (v, out) = run(&mut worker(), &s, &frame(&inner));
        assert!(matches!(v, Verdict::Forward { .. }));
        check_tunnel(&out, care_of, ROUTER_MAC, &inner, Some(4));
        // A client packet with its own limit 3 gets 2 (RFC 2473 §5.1 (c)), even without
        // a configured one.
        let own = tel_packet(3);
        let (v, out) = run(&mut worker(), &snap(), &frame(&own));
        let Verdict::Forward { member, .. } = v else {
            panic!("{v:?}")
        };
        check_tunnel(
            &out,
            if member == 1 { M1 } else { M2 },
            ROUTER_MAC,
            &own,
            Some(2),
        );
        // An on-link member gets its own MAC.
        let onlink = client_tcp(ONLINK_SERVICE, 1, 64, 100);
        let (v, out) = run(&mut worker(), &snap(), &frame(&onlink));
        assert!(matches!(
            v,
            Verdict::Forward {
                service: 3,
                member: 9,
                ..
            }
        ));
        check_tunnel(&out, "2001:db8:2::99", ONLINK_MAC, &onlink, None);
        // Ethernet padding after the IPv6 packet is not carried.
        let mut padded = frame(&client_tcp(SERVICE, 40000, 64, 61));
        padded.extend_from_slice(&[0xee; 5]);
        let (_, out) = run(&mut worker(), &snap(), &padded);
        assert_eq!(out.len(), 14 + 40 + 61);
    }

    #[test]
    fn reverse_path() {
        let s = snap();
        let mut w = worker();
        let (outer, inner) = reply(M2, SERVICE, CLIENT, 64);
        let (v, out) = run(&mut w, &s, &frame(&outer));
        assert_eq!(
            v,
            Verdict::Reverse {
                port: 0,
                service: 0,
                member: 2
            }
        );
        assert_eq!(&out[..14], &eth(ROUTER_MAC, PORT_MAC, 0x86dd, &[])[..]);
        let mut expected = inner.clone();
        expected[7] = 63;
        assert_eq!(&out[14..], &expected[..]);
        // With a Tunnel Encapsulation Limit in the tunnel header.
        let mut with_tel = vec![41, 0, 4, 1, 3, 1, 1, 0];
        with_tel.extend_from_slice(&inner);
        let (v, out) = run(
            &mut w,
            &s,
            &frame(&ip6(a(M1), a(TUNNEL), proto::DEST_OPTS, 60, &with_tel)),
        );
        assert_eq!(
            v,
            Verdict::Reverse {
                port: 0,
                service: 0,
                member: 1
            }
        );
        assert_eq!(&out[14..], &expected[..]);
        // M1 is registered for FLOW_SERVICE too.
        let (v, _) = run(&mut w, &s, &frame(&reply(M1, FLOW_SERVICE, CLIENT, 64).0));
        assert_eq!(
            v,
            Verdict::Reverse {
                port: 0,
                service: 1,
                member: 1
            }
        );
        // Anti-spoofing: a registered care-of speaking for a service it does not serve, an
        // unknown care-of, a member speaking from a non-service address.
        for (from, src) in [
            (M1, ONLINK_SERVICE),
            ("2001:db8:2::77", SERVICE),
            (M1, "2001:db8:100::9"),
        ] {
            let (v, _) = run(&mut w, &s, &frame(&reply(from, src, CLIENT, 64).0));
            assert_eq!(v, Verdict::Drop(DropReason::ReverseUnregistered));
        }
        // A reply aimed back at a service loops.
        let (v, _) = run(&mut w, &s, &frame(&reply(M1, SERVICE, FLOW_SERVICE, 64).0));
        assert_eq!(v, Verdict::Drop(DropReason::TunnelLoop));
        // A reply to the appliance itself (a tunnel probe's answer) is for the control
        // thread, frame untouched; from an unregistered care-of it is still refused.
        let probe_reply = frame(&reply(M1, SERVICE, TUNNEL, 64).0);
        let (v, out) = run(&mut w, &s, &probe_reply);
        assert_eq!(v, Verdict::Exception);
        assert_eq!(out, probe_reply);
        let (v, _) = run(
            &mut w,
            &s,
            &frame(&reply("2001:db8:2::77", SERVICE, TUNNEL, 64).0),
        );
        assert_eq!(v, Verdict::Drop(DropReason::ReverseUnregistered));
        // Hop limit 1: dropped, no error to the anycast source.
        let (v, _) = run(&mut w, &s, &frame(&reply(M1, SERVICE, CLIENT, 1).0));
        assert_eq!(v, Verdict::Drop(DropReason::HopLimitExceeded));
        assert_eq!(w.counters().get(Stat::IcmpNotAllowed), 1);
        assert_eq!(w.counters().get(Stat::Reversed), 3);
        // Per member: M2 (slot 2) one reply, M1 (slot 1) two; octets of the inner packets.
        assert_eq!(w.member_traffic(2).rev_packets, 1);
        assert_eq!(w.member_traffic(2).rev_bytes, inner.len() as u64);
        assert_eq!(w.member_traffic(1).rev_packets, 2);
        // Nothing reaches the mirror before it is published.
        let mirror = w.member_traffic_mirror();
        assert_eq!(mirror.read(1), MemberTraffic::default());
        w.publish_member_traffic(Tick::from_millis(0), false);
        assert_eq!(mirror.read(1), w.member_traffic(1));
    }

    #[test]
    fn member_traffic_counts_packets_bytes_and_new_flows() {
        let s = snap();
        let mut w = worker();
        let mirror = w.member_traffic_mirror();
        let mut per_member = std::collections::BTreeMap::<u32, (u64, u64)>::new();
        for i in 0..40u16 {
            let client = format!("2001:db8:77::{:x}", i % 10 + 1);
            let pkt = ip6(
                a(&client),
                a(SERVICE),
                proto::TCP,
                64,
                &tcp(1000 + i, 80, 20),
            );
            let (v, _) = run(&mut w, &s, &frame(&pkt));
            let Verdict::Forward { member, .. } = v else {
                panic!("{v:?}");
            };
            let e = per_member.entry(member).or_default();
            e.0 += 1;
            e.1 += pkt.len() as u64;
        }
        let mut flows = 0;
        for (&id, &(packets, bytes)) in &per_member {
            // In the test snapshot a member's counter slot is its id.
            let t = w.member_traffic(id as u16);
            assert_eq!(
                (t.fwd_packets, t.fwd_bytes),
                (packets, bytes),
                "member {id}"
            );
            flows += t.new_flows;
        }
        assert_eq!(flows, 10, "client affinity: one flow per client");
        // Published at most every MEMBER_TRAFFIC_PUBLISH_MS (the first call always).
        w.publish_member_traffic(Tick::from_millis(1000), false);
        let first = *per_member.keys().next().unwrap() as u16;
        let before = mirror.read(first);
        assert_eq!(before, w.member_traffic(first));
        let pkt = ip6(
            a("2001:db8:77::1"),
            a(SERVICE),
            proto::TCP,
            64,
            &tcp(1, 80, 20),
        );
        run(&mut w, &s, &frame(&pkt));
        w.publish_member_traffic(Tick::from_millis(1050), false);
        let total = |m: &MemberTrafficMirror| (1..=3).map(|id| m.read(id).fwd_packets).sum::<u64>();
        assert_eq!(total(&mirror), 40, "too early: not published");
        w.publish_member_traffic(Tick::from_millis(1100), false);
        assert_eq!(total(&mirror), 41);
    }

    #[test]
    fn exception_classification() {
        let s = snap();
        let mut w = worker();
        let ns = |target: &str, dst: &str| {
            let mut body = vec![135, 0, 0, 0, 0, 0, 0, 0];
            body.extend_from_slice(&a(target).octets());
            ip6(a("fe80::2"), a(dst), proto::ICMPV6, 255, &body)
        };
        let echo = |dst: &str| {
            ip6(
                a(CLIENT),
                a(dst),
                proto::ICMPV6,
                64,
                &[128, 0, 0, 0, 0, 1, 0, 1],
            )
        };
        let mh = |dst: &str, mh_type: u8| {
            ip6(
                a(CLIENT),
                a(dst),
                proto::MOBILITY,
                64,
                &[59, 1, mh_type, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            )
        };
        let multicast = |group: &str, ip: &[u8]| {
            eth(
                MacAddr::from_ipv6_multicast(&a(group)),
                ROUTER_MAC,
                0x86dd,
                ip,
            )
        };
        let exceptions = [
            multicast("ff02::1:ff00:1", &ns(TUNNEL, "ff02::1:ff00:1")),
            multicast("ff02::1:ff00:1", &ns("fe80::1", "ff02::1:ff00:1")),
            frame(&ns(TUNNEL, TUNNEL)),
            frame(&ns(SERVICE, SERVICE)),
            multicast(
                "ff02::1",
                &ip6(a("fe80::2"), a("ff02::1"), proto::ICMPV6, 255, &[134; 16]),
            ),
            frame(&echo(TUNNEL)),
            frame(&echo("fe80::1")),
            frame(&mh(TUNNEL, 5)),
            frame(&mh(TUNNEL, 1)),
            frame(&ip6(a(M1), a(TUNNEL), proto::UDP, 64, &[0; 8])),
        ];
        for f in &exceptions {
            let (v, out) = run(&mut w, &s, f);
            assert_eq!(v, Verdict::Exception, "{f:02x?}");
            assert_eq!(&out, f, "exceptions leave the frame untouched");
        }
        // Somebody else's solicited-node group.
        let other = multicast("ff02::1:ff00:77", &ns("2001:db8::77", "ff02::1:ff00:77"));
        assert_eq!(
            run(&mut w, &s, &other).0,
            Verdict::Drop(DropReason::NotForUs)
        );
        // Echo to a service address is the members' business.
        assert!(matches!(
            run(&mut w, &s, &frame(&echo(SERVICE))).0,
            Verdict::Forward { .. }
        ));
        // A Mobility Header to a service address (a HoT, a BA, a Binding Refresh Request)
        // goes to the control thread, which pins return routability and sends triggers;
        // so does a member's reverse-tunnelled one (its HoTI).
        for mh_type in [2, 3, 6, 0] {
            let (v, out) = run(&mut w, &s, &frame(&mh(SERVICE, mh_type)));
            assert_eq!(v, Verdict::Exception, "MH type {mh_type}");
            assert_eq!(out, frame(&mh(SERVICE, mh_type)));
        }
        let hoti = ip6(
            a(SERVICE),
            a(CLIENT),
            proto::MOBILITY,
            64,
            &[59, 1, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7],
        );
        let tunnelled = ip6(a(M1), a(TUNNEL), proto::IPV6, 64, &hoti);
        assert_eq!(run(&mut w, &s, &frame(&tunnelled)).0, Verdict::Exception);
        // From an unregistered care-of address it is still spoofing.
        let spoofed = ip6(a("2001:db8:2::99"), a(TUNNEL), proto::IPV6, 64, &hoti);
        assert_eq!(
            run(&mut w, &s, &frame(&spoofed)).0,
            Verdict::Drop(DropReason::ReverseUnregistered)
        );
        assert_eq!(
            w.counters().get(Stat::Exceptions),
            exceptions.len() as u64 + 5
        );
    }

    #[test]
    fn time_exceeded_and_rate_limit() {
        let s = snap();
        let mut w = worker();
        let expired = client_tcp(SERVICE, 1234, 1, 300);
        let send = |w: &mut Worker, at: Tick| {
            let mut buf = VecBuf::from_slice(&frame(&expired));
            let v = w.process(&s, &mut buf, 0, at, &mut Tx::new(0));
            (v, buf.into_vec())
        };
        for _ in 0..10 {
            let (v, out) = send(&mut w, now());
            assert_eq!(
                v,
                Verdict::IcmpError {
                    port: 0,
                    reason: DropReason::HopLimitExceeded
                }
            );
            assert_eq!(
                icmp_of(&out),
                Icmpv6Repr::TimeExceeded {
                    code: TimeExceededCode::HopLimitExceeded,
                    invoking: &expired[..]
                }
            );
            assert_eq!(&out[38..54], &a(CLIENT).octets());
        }
        let (v, _) = send(&mut w, now());
        assert_eq!(v, Verdict::Drop(DropReason::HopLimitExceeded));
        assert_eq!(w.counters().get(Stat::IcmpRateLimited), 1);
        // 10/s: a token after 100 ms.
        let later = Tick::from_millis(now().millis() + 100);
        assert!(matches!(send(&mut w, later).0, Verdict::IcmpError { .. }));
        assert!(matches!(send(&mut w, later).0, Verdict::Drop(_)));
        let c = w.counters();
        assert_eq!(c.get(Stat::IcmpSent), 11);
        assert_eq!(c.get(Stat::IcmpRateLimited), 2);
        assert_eq!(c.drops(DropReason::HopLimitExceeded), 13);
        assert!(c.is_consistent());
    }

    #[test]
    fn packet_too_big() {
        for (encap_limit, mtu) in [(None, 1460), (Some(4), 1452)] {
            let s = snap_with(|sp| sp.tunnel.encap_limit = encap_limit);
            let big = client_tcp(SERVICE, 1234, 64, 1500);
            let (v, out) = run(&mut worker(), &s, &frame(&big));
            assert_eq!(
                v,
                Verdict::IcmpError {
                    port: 0,
                    reason: DropReason::TooBig
                }
            );
            assert_eq!(out.len(), 14 + 1280);
            assert_eq!(
                icmp_of(&out),
                Icmpv6Repr::PacketTooBig {
                    mtu,
                    invoking: &big[..1280 - 48]
                }
            );
            // Exactly the tunnel MTU passes.
            let fits = client_tcp(SERVICE, 1234, 64, mtu as usize);
            let (v, out) = run(&mut worker(), &s, &frame(&fits));
            assert!(matches!(v, Verdict::Forward { fragments: 1, .. }), "{v:?}");
            assert_eq!(out.len(), 14 + 1500);
        }
        // Over a small link, the advertised MTU is never below 1280.
        let s = snap_with(|sp| sp.ports[0].link_mtu = 1300);
        let big = client_tcp(SERVICE, 1234, 64, 1281);
        let (_, out) = run(&mut worker(), &s, &frame(&big));
        assert!(matches!(
            icmp_of(&out),
            Icmpv6Repr::PacketTooBig { mtu: 1280, .. }
        ));
    }

    /// Reassembles fragment frames into the IPv6 packet they came from.
    fn reassemble(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut ident = None;
        let mut data = Vec::new();
        let mut first_header = None;
        for (i, f) in frames.iter().enumerate() {
            let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(ip.next_header(), proto::FRAGMENT);
            assert_eq!(ip.total_len(), f.len() - 14);
            let header =
                FragmentRepr::parse(&Ipv6FragmentHeader::new_checked(&f[54..62]).unwrap()).unwrap();
            assert_eq!(
                *ident.get_or_insert(header.identification),
                header.identification
            );
            assert_eq!(header.byte_offset(), data.len());
            assert_eq!(header.more_fragments, i + 1 < frames.len());
            if header.more_fragments {
                assert_eq!((f.len() - 62) % 8, 0);
            }
            first_header.get_or_insert((f[14..54].to_vec(), header.next_header));
            data.extend_from_slice(&f[62..]);
        }
        let (mut packet, next_header) = first_header.unwrap();
        packet[4..6].copy_from_slice(&(data.len() as u16).to_be_bytes());
        packet[6] = next_header;
        packet.extend_from_slice(&data);
        packet
    }

    #[test]
    fn outer_fragmentation() {
        for encap_limit in [None, Some(4)] {
            let s = snap_with(|sp| {
                sp.ports[0].link_mtu = 1300;
                sp.tunnel.encap_limit = encap_limit;
            });
            let mut w = worker();
            let inner = client_tcp(SERVICE, 1234, 64, 1280);
            let mut buf = VecBuf::from_slice(&frame(&inner));
            let mut tx = Tx::new(1);
            let v = w.process(&s, &mut buf, 0, now(), &mut tx);
            let Verdict::Forward {
                port: 0,
                member,
                fragments: 2,
                ..
            } = v
            else {
                panic!("{v:?}")
            };
            assert_eq!(tx.sent.len(), 1);
            let first = buf.into_vec();
            let second = tx.sent.pop().unwrap().1.into_vec();
            for f in [&first, &second] {
                assert!(f.len() - 14 <= 1300);
                assert_eq!(&f[..14], &eth(ROUTER_MAC, PORT_MAC, 0x86dd, &[])[..]);
            }
            let whole = reassemble(&[first, second]);
            // The same tunnel packet, unfragmented.
            let outer = Ipv6Packet::new_checked(&whole[..]).unwrap();
            let care_of = if member == 1 { M1 } else { M2 };
            let mut hop_decremented = inner.clone();
            hop_decremented[7] -= 1;
            let mut expected = VecBuf::from_slice(&hop_decremented);
            let _ = tunnel::encapsulate(
                &mut expected,
                &TunnelParams {
                    src: a(TUNNEL),
                    dst: a(care_of),
                    hop_limit: 64,
                    traffic_class: TrafficClass::CopyInner,
                    flow_label: outer.flow_label(),
                    encap_limit,
                },
            )
            .unwrap();
            assert_eq!(whole, expected.into_vec());
            let c = w.counters();
            assert_eq!((c.get(Stat::Fragmented), c.get(Stat::TxPackets)), (1, 2));
        }
    }

    #[test]
    fn encap_limit_zero_gets_parameter_problem() {
        let bad = tel_packet(0);
        let (v, out) = run(&mut worker(), &snap(), &frame(&bad));
        assert_eq!(
            v,
            Verdict::IcmpError {
                port: 0,
                reason: DropReason::EncapLimitExceeded
            }
        );
        assert_eq!(
            icmp_of(&out),
            Icmpv6Repr::ParamProblem {
                code: ParamProblemCode::ErroneousHeaderField,
                pointer: 44,
                invoking: &bad[..]
            }
        );
        assert_eq!(bad[44], 0);
    }

    #[test]
    fn no_icmp_error_about_anycast_multicast_or_errors() {
        let s = snap();
        let mut w = worker();
        // From an anycast (service) address.
        let from_anycast = ip6(a(SERVICE), a(FLOW_SERVICE), proto::TCP, 1, &tcp(1, 80, 10));
        // To a link-layer multicast address (RFC 4443 §2.4(e.3)).
        let link_multicast = eth(
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            ROUTER_MAC,
            0x86dd,
            &client_tcp(SERVICE, 1, 1, 80),
        );
        // About an ICMPv6 error.
        let about_error = ip6(
            a(CLIENT),
            a(SERVICE),
            proto::ICMPV6,
            1,
            &[1, 0, 0, 0, 0, 0, 0, 0],
        );
        for f in [frame(&from_anycast), link_multicast, frame(&about_error)] {
            let (v, _) = run(&mut w, &s, &f);
            assert_eq!(v, Verdict::Drop(DropReason::HopLimitExceeded));
        }
        // From a multicast or unspecified source: dropped before any error is considered.
        let (v, _) = run(
            &mut w,
            &s,
            &frame(&ip6(
                a("ff0e::1"),
                a(SERVICE),
                proto::TCP,
                1,
                &tcp(1, 80, 0),
            )),
        );
        assert_eq!(v, Verdict::Drop(DropReason::MulticastSource));
        let (v, _) = run(
            &mut w,
            &s,
            &frame(&ip6(a("::"), a(SERVICE), proto::TCP, 1, &tcp(1, 80, 0))),
        );
        assert_eq!(v, Verdict::Drop(DropReason::UnforwardableSource));
        let c = w.counters();
        assert_eq!((c.get(Stat::IcmpSent), c.get(Stat::IcmpNotAllowed)), (0, 3));
        assert_eq!(c.get(Stat::IcmpRateLimited), 0);
    }

    fn client(n: u32) -> Ipv6Addr {
        let mut o = a("2001:db8:c::").octets();
        o[12..].copy_from_slice(&n.to_be_bytes());
        o.into()
    }

    fn member_of(w: &mut Worker, s: &Snapshot, n: u32, dst: &str) -> Option<u32> {
        let pkt = ip6(client(n), a(dst), proto::TCP, 64, &tcp(1000, 80, 0));
        match run(w, s, &frame(&pkt)).0 {
            Verdict::Forward { member, .. } => Some(member),
            Verdict::Drop(DropReason::NoServiceMember) => None,
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_syn_with_a_remembered_five_tuple_does_not_go_to_a_draining_member() {
        let s = snap();
        let mut w = worker();
        // tcp() builds a SYN; the same segment with ACK set continues the connection.
        let syn = |sport: u16| {
            ip6(
                a(CLIENT),
                a(FLOW_SERVICE),
                proto::TCP,
                64,
                &tcp(sport, 80, 0),
            )
        };
        let ack = |sport: u16| {
            let mut seg = tcp(sport, 80, 0);
            seg[13] = 0x10;
            ip6(a(CLIENT), a(FLOW_SERVICE), proto::TCP, 64, &seg)
        };
        let on = |w: &mut Worker, snap: &Snapshot, pkt: &[u8]| match run(w, snap, &frame(pkt)).0 {
            Verdict::Forward { member, .. } => member,
            v => panic!("{v:?}"),
        };
        // Ports whose flows sit on member 1.
        let ports: Vec<u16> = (1000..1200)
            .filter(|&p| on(&mut w, &s, &syn(p)) == 1)
            .collect();
        assert!(ports.len() > 20);
        let draining = snap_with(|sp| sp.services[1].members[0].status = MemberStatus::Draining);
        for &p in &ports {
            // The established connection keeps its member while it drains...
            assert_eq!(on(&mut w, &draining, &ack(p)), 1);
            // ...but a new connection that happens to reuse the 5-tuple does not.
            assert_eq!(on(&mut w, &draining, &syn(p)), 2);
            // And from then on the flow is the new connection's.
            assert_eq!(on(&mut w, &draining, &ack(p)), 2);
        }
    }

    #[test]
    fn affinity_across_snapshot_changes() {
        let clients = 0..300u32;
        let base = snap();
        let mut w = worker();
        let before: HashMap<u32, u32> = clients
            .clone()
            .map(|n| (n, member_of(&mut w, &base, n, SERVICE).unwrap()))
            .collect();
        assert!(before.values().any(|&m| m == 1) && before.values().any(|&m| m == 2));

        // A new member: established clients stay, although Maglev alone moves some.
        let added = snap_with(|sp| {
            sp.services[0]
                .members
                .push(member(3, M3, MemberStatus::Active))
        });
        let mut fresh = worker();
        let moved = clients
            .clone()
            .filter(|&n| member_of(&mut fresh, &added, n, SERVICE) != Some(before[&n]))
            .count();
        assert!(moved > 30, "Maglev alone moves about a third ({moved})");
        for n in clients.clone() {
            assert_eq!(member_of(&mut w, &added, n, SERVICE), Some(before[&n]));
        }
        // New clients do reach the new member.
        assert!((1000..1300).any(|n| member_of(&mut w, &added, n, SERVICE) == Some(3)));

        // Member 1 down: its clients are re-picked, the others stay.
        let down = snap_with(|sp| {
            sp.services[0]
                .members
                .push(member(3, M3, MemberStatus::Active));
            sp.services[0].members[0].status = MemberStatus::Down;
        });
        for n in clients.clone() {
            let now_on = member_of(&mut w, &down, n, SERVICE).unwrap();
            if before[&n] == 1 {
                assert_ne!(now_on, 1);
            } else {
                assert_eq!(now_on, before[&n]);
            }
        }

        // Member 2 draining: keeps its clients, takes no new ones.
        let draining = snap_with(|sp| sp.services[0].members[1].status = MemberStatus::Draining);
        let mut w = worker();
        for n in clients.clone() {
            assert_eq!(member_of(&mut w, &base, n, SERVICE), Some(before[&n]));
        }
        for n in clients.clone() {
            assert_eq!(member_of(&mut w, &draining, n, SERVICE), Some(before[&n]));
        }
        for n in 2000..2300 {
            assert_eq!(member_of(&mut w, &draining, n, SERVICE), Some(1));
        }
        // A member re-registered with a new epoch does not inherit old pins.
        let reborn = snap_with(|sp| {
            sp.services[0].members[1].epoch = 2;
            sp.services[0].members[1].status = MemberStatus::Draining;
        });
        for n in clients {
            assert_eq!(member_of(&mut w, &reborn, n, SERVICE), Some(1));
        }
    }

    #[test]
    fn flow_mode_spreads_flows_of_one_client() {
        let s = snap();
        let mut w = worker();
        let flow_members: HashSet<u32> = (0..64u16)
            .map(|p| {
                let pkt = client_tcp(FLOW_SERVICE, 30000 + p, 64, 100);
                let Verdict::Forward { member, .. } = run(&mut w, &s, &frame(&pkt)).0 else {
                    panic!()
                };
                member
            })
            .collect();
        assert_eq!(
            flow_members.len(),
            2,
            "flows of one client use both members"
        );
        let key = FlowKey::client_pair(a(CLIENT).octets(), a(FLOW_SERVICE).octets());
        let hash = flowhash::hash(&key);
        assert!(
            w.affinity.lookup(&key, hash, now().secs()).is_none(),
            "flow mode: no client pin"
        );
    }

    #[test]
    fn icmp_error_to_service_follows_the_quoted_flow() {
        let s = snap();
        let mut w = worker();
        for p in 0..32u16 {
            let pkt = client_tcp(FLOW_SERVICE, 30000 + p, 64, 100);
            let Verdict::Forward { member, .. } = run(&mut w, &s, &frame(&pkt)).0 else {
                panic!()
            };
            // A router's Packet Too Big about the member's reply (service:80 -> client).
            let reply = ip6(
                a(FLOW_SERVICE),
                a(CLIENT),
                proto::TCP,
                60,
                &tcp(80, 30000 + p, 1400),
            );
            let mut icmp = vec![2, 0, 0, 0, 0, 0, 5, 0];
            icmp.extend_from_slice(&reply[..1000]);
            let ptb = ip6(
                a("2001:db8:e::1"),
                a(FLOW_SERVICE),
                proto::ICMPV6,
                64,
                &icmp,
            );
            let v = run(&mut w, &s, &frame(&ptb)).0;
            assert!(
                matches!(v, Verdict::Forward { member: m, .. } if m == member),
                "{v:?}"
            );
        }
    }

    #[test]
    fn burst_and_counter_mirror() {
        let s = snap();
        let mut w = worker();
        let mirror = w.counter_mirror();
        let mut pkts = vec![
            VecBuf::from_slice(&frame(&client_tcp(SERVICE, 1, 64, 100))),
            VecBuf::from_slice(&frame(&reply(M1, SERVICE, CLIENT, 64).0)),
            VecBuf::from_slice(&[0; 3]),
            VecBuf::from_slice(&frame(&ip6(
                a(CLIENT),
                a(TUNNEL),
                proto::ICMPV6,
                64,
                &[128, 0, 0, 0, 0, 0, 0, 0],
            ))),
            VecBuf::from_slice(&frame(&client_tcp(SERVICE, 1, 1, 100))),
        ];
        let mut verdicts = [Verdict::Exception; 8];
        let n = w.process_burst(&s, &mut pkts, 0, now(), &mut Tx::new(0), &mut verdicts);
        assert_eq!(n, 5);
        assert_eq!(
            mirror.read(),
            Counters::default(),
            "published by the caller only"
        );
        w.publish_counters();
        assert_eq!(
            verdicts[..5].iter().map(Verdict::name).collect::<Vec<_>>(),
            ["forward", "reverse", "drop", "exception", "icmp_error"]
        );
        let c = mirror.read();
        assert_eq!(&c, w.counters());
        assert_eq!(c.get(Stat::RxPackets), 5);
        assert_eq!(c.get(Stat::TxPackets), 3);
        // One affinity lookup (the forwarded packet's: a new flow), copied from the table.
        assert_eq!(c.get(Stat::AffinityMisses), 1);
        assert_eq!(c.get(Stat::AffinityHits), 0);
        assert_eq!(c.get(Stat::AffinityMisses), w.affinity().counters().misses);
        let tx_bytes: usize = pkts
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.tx_port().is_some())
            .map(|(p, _)| p.len())
            .sum();
        assert_eq!(c.get(Stat::TxBytes), tx_bytes as u64);
        assert!(c.is_consistent());
    }

    /// Runs `f` through `process` on the first worker and through a one-packet
    /// `process_burst` on the second, checks they agree on everything, and returns the
    /// verdict, the bytes and whether the burst took the fast path.
    fn general_and_burst(
        s: &Snapshot,
        ws: &mut (Worker, Worker),
        f: &[u8],
        headroom: usize,
    ) -> (Verdict, Vec<u8>, bool) {
        let fast =
            ws.1.fast_plan(s, f, mac_word(s.port(0).unwrap().mac))
                .is_some();
        let mut one = VecBuf::from_slice_with_room(f, headroom, 64);
        let v = ws.0.process(s, &mut one, 0, now(), &mut Tx::new(1));
        let mut bulk = vec![VecBuf::from_slice_with_room(f, headroom, 64)];
        let mut verdicts = [Verdict::Exception];
        ws.1.process_burst(s, &mut bulk, 0, now(), &mut Tx::new(1), &mut verdicts);
        let out = one.into_vec();
        assert_eq!(verdicts[0], v);
        assert_eq!(bulk.pop().unwrap().into_vec(), out);
        assert_eq!(ws.0.counters(), ws.1.counters());
        assert_eq!(ws.0.affinity().counters(), ws.1.affinity().counters());
        for slot in 0..16 {
            assert_eq!(ws.0.member_traffic(slot), ws.1.member_traffic(slot));
        }
        (v, out, fast)
    }

    /// The fast path takes exactly the packets it should, and at each of its edges gives
    /// what the general path gives.
    #[test]
    fn fast_path_edges_match_the_general_path() {
        let udp = |src: &str, dst: &str, hop: u8, len: usize| {
            let mut u = vec![0xc0, 0x01, 0x00, 0x35];
            u.truncate(len);
            u.extend((4..len).map(|i| i as u8));
            ip6(a(src), a(dst), proto::UDP, hop, &u)
        };
        let s = snap();
        let mut ws = (worker(), worker());
        let mut padded = frame(&udp(CLIENT, SERVICE, 64, 8));
        padded.extend_from_slice(&[0xee; 20]);
        let mut group_mac = frame(&client_tcp(SERVICE, 1, 64, 100));
        group_mac[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
        let mut truncated = frame(&client_tcp(SERVICE, 1, 64, 100));
        truncated.truncate(100);
        let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
            (
                "tcp",
                frame(&client_tcp(SERVICE, 1, 64, 100)),
                true,
                "forward",
            ),
            ("udp", frame(&udp(CLIENT, SERVICE, 64, 8)), true, "forward"),
            (
                "ports only",
                frame(&udp(CLIENT, SERVICE, 64, 4)),
                true,
                "forward",
            ),
            (
                "no ports",
                frame(&udp(CLIENT, SERVICE, 64, 3)),
                false,
                "forward",
            ),
            ("padding", padded, true, "forward"),
            (
                "syn, flow",
                frame(&client_tcp(FLOW_SERVICE, 2, 64, 100)),
                true,
                "forward",
            ),
            (
                "hop 2",
                frame(&client_tcp(SERVICE, 3, 2, 100)),
                true,
                "forward",
            ),
            (
                "hop 1",
                frame(&client_tcp(SERVICE, 3, 1, 100)),
                false,
                "icmp_error",
            ),
            (
                "tunnel mtu",
                frame(&client_tcp(SERVICE, 4, 64, 1460)),
                true,
                "forward",
            ),
            (
                "over it",
                frame(&client_tcp(SERVICE, 4, 64, 1461)),
                false,
                "icmp_error",
            ),
            (
                "link-local",
                frame(&udp("fe80::9", SERVICE, 64, 8)),
                false,
                "drop",
            ),
            (
                "loopback",
                frame(&udp("::1", SERVICE, 64, 8)),
                false,
                "drop",
            ),
            (
                "unspecified",
                frame(&udp("::", SERVICE, 64, 8)),
                false,
                "drop",
            ),
            ("ours", frame(&udp(TUNNEL, SERVICE, 64, 8)), false, "drop"),
            (
                "multicast",
                frame(&udp("ff0e::1", SERVICE, 64, 8)),
                false,
                "drop",
            ),
            (
                "no members",
                frame(&udp(CLIENT, EMPTY_SERVICE, 64, 8)),
                true,
                "drop",
            ),
            (
                "on-link",
                frame(&udp(CLIENT, ONLINK_SERVICE, 64, 8)),
                true,
                "forward",
            ),
            (
                "not a service",
                frame(&udp(CLIENT, M1, 64, 8)),
                false,
                "drop",
            ),
            ("group mac", group_mac, false, "forward"),
            ("truncated", truncated, false, "drop"),
        ];
        for (name, f, fast, verdict) in &cases {
            let (v, _, took) = general_and_burst(&s, &mut ws, f, 128);
            assert_eq!((took, v.name()), (*fast, *verdict), "{name}");
        }
        let (v, out, _) = general_and_burst(&s, &mut ws, &cases[4].1, 128);
        assert_eq!(v.name(), "forward");
        assert_eq!(out.len(), 14 + 40 + 48, "link padding removed");

        // Too little headroom: the member is resolved, then the packet is dropped.
        let (v, _, took) = general_and_burst(&s, &mut ws, &cases[0].1, 39);
        assert_eq!((took, v), (true, Verdict::Drop(DropReason::NoBufferRoom)));

        // No neighbour MAC for the members.
        let s = snap_with(|sp| sp.ports[0].next_hop_mac = None);
        let (v, _, took) = general_and_burst(&s, &mut ws, &cases[0].1, 128);
        assert_eq!((took, v), (true, Verdict::Drop(DropReason::NoNeighbour)));

        // A tunnel limit (48 octets of overhead) and a fixed traffic class.
        let s = snap_with(|sp| {
            sp.tunnel.encap_limit = Some(4);
            sp.tunnel.traffic_class = TrafficClass::Fixed(0xb8);
        });
        for (len, fast) in [(100, true), (1452, true), (1453, false)] {
            let f = frame(&client_tcp(SERVICE, 5, 64, len));
            let (v, out, took) = general_and_burst(&s, &mut ws, &f, 128);
            assert_eq!(took, fast, "{len}");
            if fast {
                assert_eq!(v.name(), "forward");
                assert_eq!(&out[54..62], &[41, 0, 4, 1, 4, 1, 1, 0]);
                assert_eq!(
                    Ipv6Packet::new_checked(&out[14..]).unwrap().traffic_class(),
                    0xb8
                );
            }
        }

        // A SYN whose five-tuple is pinned to a member that is now draining is re-picked;
        // another segment of the flow stays.
        let s = snap();
        let mut ws = (worker(), worker());
        let mut ack = client_tcp(FLOW_SERVICE, 7, 64, 100);
        ack[40 + 13] = 0x10;
        let (Verdict::Forward { member, .. }, _, true) =
            general_and_burst(&s, &mut ws, &frame(&ack), 128)
        else {
            panic!("not forwarded on the fast path");
        };
        let draining = snap_with(|sp| {
            for m in &mut sp.services[1].members {
                if m.id == member {
                    m.status = MemberStatus::Draining;
                }
            }
        });
        let (v, _, _) = general_and_burst(&draining, &mut ws, &frame(&ack), 128);
        assert!(matches!(v, Verdict::Forward { member: m, .. } if m == member));
        let syn = frame(&client_tcp(FLOW_SERVICE, 7, 64, 100));
        let (v, _, took) = general_and_burst(&draining, &mut ws, &syn, 128);
        assert!(took);
        assert!(matches!(v, Verdict::Forward { member: m, .. } if m != member));
    }

    /// `frames` through `process` on the first worker, one at a time, and through one
    /// `process_burst` on the second: the single results, then the burst's verdicts,
    /// buffers and count.
    #[allow(clippy::type_complexity)]
    fn one_by_one_and_burst(
        s: &Snapshot,
        frames: &[Vec<u8>],
        headroom: usize,
        rx_port: u16,
        now: Tick,
        (one, tx_one): (&mut Worker, &mut Tx),
        (bulk, tx_bulk): (&mut Worker, &mut Tx),
    ) -> (Vec<(Verdict, Vec<u8>)>, Vec<Verdict>, Vec<VecBuf>, usize) {
        let singles = frames
            .iter()
            .map(|f| {
                let mut b = VecBuf::from_slice_with_room(f, headroom, 64);
                let v = one.process(s, &mut b, rx_port, now, tx_one);
                (v, b.into_vec())
            })
            .collect();
        let mut bufs: Vec<VecBuf> = frames
            .iter()
            .map(|f| VecBuf::from_slice_with_room(f, headroom, 64))
            .collect();
        let mut verdicts = vec![Verdict::Exception; frames.len() + 3];
        let n = bulk.process_burst(s, &mut bufs, rx_port, now, tx_bulk, &mut verdicts);
        (singles, verdicts, bufs, n)
    }

    /// The packets of `bufs` in the runtime's order (runtime.rs, `Pending`), `chunk` at a
    /// time: each chunk is begun, then the chunk before it is finished with this chunk's
    /// stage (2) spread over it, and the last chunk is finished alone.
    #[allow(clippy::too_many_arguments)]
    fn carried_bursts(
        w: &mut Worker,
        s: &Snapshot,
        bufs: &mut [VecBuf],
        chunk: usize,
        rx_port: u16,
        now: Tick,
        tx: &mut Tx,
    ) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Exception; bufs.len()];
        let (mut current, mut carried) = (StagedBurst::new(), StagedBurst::new());
        let mut previous: Option<(&mut [VecBuf], &mut [Verdict])> = None;
        for (bufs, verdicts) in bufs.chunks_mut(chunk).zip(verdicts.chunks_mut(chunk)) {
            w.begin_burst(s, bufs, rx_port, &mut current);
            match previous.take() {
                Some((b, v)) => {
                    let done =
                        w.finish_burst(s, b, rx_port, now, tx, &carried, v, Some(&mut current));
                    assert_eq!(done, b.len());
                }
                None => w.prefetch_burst(&mut current),
            }
            std::mem::swap(&mut current, &mut carried);
            previous = Some((bufs, verdicts));
        }
        if let Some((b, v)) = previous {
            let done = w.finish_burst(s, b, rx_port, now, tx, &carried, v, None);
            assert_eq!(done, b.len());
        }
        verdicts
    }

    fn arbitrary_frame() -> impl Strategy<Value = Vec<u8>> {
        let raw = proptest::collection::vec(any::<u8>(), 0..200);
        let dsts = prop_oneof![
            Just(a(SERVICE)),
            Just(a(FLOW_SERVICE)),
            Just(a(TUNNEL)),
            Just(a("ff02::1:ff00:1")),
            Just(a(CLIENT)),
        ];
        let nhs = prop_oneof![
            Just(0u8),
            Just(6),
            Just(17),
            Just(41),
            Just(43),
            Just(44),
            Just(58),
            Just(60),
            Just(135),
            any::<u8>()
        ];
        let shaped = (
            proptest::collection::vec(any::<u8>(), 0..1600),
            dsts,
            nhs,
            0u8..4,
            prop::bool::ANY,
        )
            .prop_map(|(payload, dst, nh, hop, inner)| {
                let body = if inner && payload.len() >= 40 {
                    // Something that looks like a tunnelled reply.
                    let mut p = payload.clone();
                    p[0] = 0x60;
                    let len = (p.len() - 40) as u16;
                    p[4..6].copy_from_slice(&len.to_be_bytes());
                    p[8..24].copy_from_slice(&a(SERVICE).octets());
                    p
                } else {
                    payload
                };
                let src = if inner { a(M1) } else { a(CLIENT) };
                frame(&ip6(src, dst, nh, hop.max(1) * 60 - 59, &body))
            });
        prop_oneof![raw, shaped]
    }

    proptest! {
        /// `process_burst` (staged, with prefetches, in chunks of BURST_STAGE) gives every
        /// packet the verdict and bytes `process` gives it one at a time, and the in-place
        /// encapsulation equals `tunnel::encapsulate` of the hop-decremented client packet.
        #[test]
        fn burst_matches_one_by_one_and_encapsulation_matches_reference(
            frames in proptest::collection::vec(arbitrary_frame(), 1..80),
            encap_limit in prop::option::of(1u8..6),
            fixed_tc in prop::option::of(any::<u8>()),
            headroom in 40usize..160,
        ) {
            let s = snap_with(|sp| {
                sp.ports[0].link_mtu = 1300;
                sp.tunnel.encap_limit = encap_limit;
                if let Some(tc) = fixed_tc {
                    sp.tunnel.traffic_class = TrafficClass::Fixed(tc);
                }
            });
            let (mut one, mut bulk) = (worker(), worker());
            let (mut tx_one, mut tx_bulk) = (Tx::new(100), Tx::new(100));
            let (singles, verdicts, bufs, n) = one_by_one_and_burst(
                &s, &frames, headroom, 0, now(), (&mut one, &mut tx_one), (&mut bulk, &mut tx_bulk),
            );
            prop_assert_eq!(n, frames.len());
            for (i, ((v, out), (bv, b))) in singles.iter().zip(verdicts.iter().zip(bufs)).enumerate() {
                prop_assert_eq!(v, bv, "packet {}", i);
                prop_assert_eq!(out, &b.into_vec(), "packet {}", i);
            }
            prop_assert_eq!(one.counters(), bulk.counters());
            prop_assert_eq!(one.affinity().counters(), bulk.affinity().counters());
            let sent = |tx: Tx| tx.sent.into_iter().map(|(p, b)| (p, b.into_vec())).collect::<Vec<_>>();
            prop_assert_eq!(sent(tx_one), sent(tx_bulk));

            for (f, (v, out)) in frames.iter().zip(&singles) {
                let Verdict::Forward { service, member, fragments: 1, .. } = *v else {
                    continue;
                };
                let ip_len = 40 + usize::from(u16::from_be_bytes([f[18], f[19]]));
                let mut inner = f[14..14 + ip_len].to_vec();
                inner[7] -= 1;
                let outer = Ipv6Packet::new_checked(&out[14..]).unwrap();
                let care_of = s.service(service).unwrap().member_by_id(member).unwrap().care_of;
                let mut expected = VecBuf::from_slice_with_room(&inner, 64, 0);
                let encapsulated = tunnel::encapsulate(
                    &mut expected,
                    &TunnelParams {
                        src: a(TUNNEL),
                        dst: care_of,
                        hop_limit: 64,
                        traffic_class: fixed_tc.map_or(TrafficClass::CopyInner, TrafficClass::Fixed),
                        flow_label: outer.flow_label(),
                        encap_limit,
                    },
                );
                prop_assert!(encapsulated.is_ok());
                prop_assert_eq!(&out[14..], &expected.into_vec()[..]);
            }
        }

        #[test]
        fn arbitrary_frames_never_panic(frames in proptest::collection::vec(arbitrary_frame(), 1..8),
                                        mtu in prop_oneof![Just(1280u16), Just(1300), Just(1500)],
                                        headroom in 0usize..160) {
            let s = snap_with(|sp| sp.ports[0].link_mtu = mtu);
            let mut w = worker();
            for f in frames {
                let mut buf = VecBuf::from_slice_with_room(&f, headroom, 64);
                let mut tx = Tx::new(1);
                let v = w.process(&s, &mut buf, 0, now(), &mut tx);
                prop_assert!(w.counters().is_consistent());
                if v.tx_port().is_some() {
                    let out = buf.data();
                    prop_assert!(out.len() >= 54);
                    prop_assert!(Ipv6Packet::new_checked(&out[14..]).is_ok());
                    prop_assert!(out.len() - 14 <= usize::from(mtu));
                }
                if v == Verdict::Exception {
                    prop_assert_eq!(buf.data(), &f[..]);
                }
                for (_, extra) in &tx.sent {
                    prop_assert!(extra.len() - 14 <= usize::from(mtu));
                }
            }
        }
    }

    /// `parse` skips the extension-header walk for a Next Header that is not one: the
    /// walk must then stop where it starts, with nothing found, whatever follows.
    #[test]
    fn no_walk_needed_for_non_extension_headers() {
        let payloads: [&[u8]; 3] = [&[], &[0; 64], &[0xff; 64]];
        for next_header in 0..=255u8 {
            for payload in payloads {
                let walked = ExtHeaderChain::walk(next_header, payload);
                if is_extension_header(next_header) {
                    assert!(
                        walked.as_ref().map_or(true, |c| c.header_count > 0),
                        "{next_header}: an extension header is walked"
                    );
                    continue;
                }
                let chain = walked.expect("no extension header: nothing to fail");
                assert_eq!(chain.header_count, 0, "{next_header}");
                let summary = ChainSummary::of(&chain);
                let bare = ChainSummary::bare(next_header);
                assert_eq!(summary.upper_layer, bare.upper_layer);
                assert_eq!(summary.upper_offset, bare.upper_offset);
                assert_eq!(summary.encap_limit, bare.encap_limit);
                assert!(summary.fragment.is_none() && bare.fragment.is_none());
                assert_eq!(
                    summary.upper_layer_bytes(payload),
                    chain.upper_layer_bytes(payload),
                    "{next_header}"
                );
            }
        }
    }

    /// The summary answers like the walk it summarises, fragments included.
    #[test]
    fn chain_summary_matches_the_walk() {
        // Fragment header (first fragment, then a later one), then UDP.
        for (offset_field, first) in [(0x0001u16, true), (0x0011, false), (0x0000, true)] {
            let mut payload = vec![proto::UDP, 0];
            payload.extend_from_slice(&offset_field.to_be_bytes());
            payload.extend_from_slice(&[0, 0, 0, 7]);
            payload.extend_from_slice(&[0x12, 0x34, 0, 53, 0, 8, 0, 0]);
            let chain = ExtHeaderChain::walk(proto::FRAGMENT, &payload).expect("walks");
            let summary = ChainSummary::of(&chain);
            let f = summary.fragment.expect("fragment");
            assert_eq!(f.first, first);
            assert_eq!(f.atomic, offset_field == 0);
            assert_eq!(summary.upper_layer, chain.upper_layer);
            assert_eq!(summary.upper_offset, chain.upper_offset);
            assert_eq!(
                summary.upper_layer_bytes(&payload),
                chain.upper_layer_bytes(&payload)
            );
        }
        // Destination Options with a Tunnel Encapsulation Limit of 3 (RFC 2473 §4.1.1).
        // Next Header UDP, 8 octets: the option (type 4, length 1, limit 3), PadN, Pad1.
        let options = [proto::UDP, 0, 4, 1, 3, 1, 0, 0];
        let payload = [&options[..], &[0x12, 0x34, 0, 53, 0, 8, 0, 0]].concat();
        let chain = ExtHeaderChain::walk(proto::DEST_OPTS, &payload).expect("walks");
        let summary = ChainSummary::of(&chain);
        assert_eq!(summary.encap_limit, chain.encap_limit);
        assert_eq!(summary.encap_limit.map(|t| t.limit), Some(3));
        assert_eq!(summary.upper_offset, 8);
        // No Next Header: no upper layer.
        let chain = ExtHeaderChain::walk(proto::NO_NEXT_HEADER, &[1, 2, 3]).expect("walks");
        assert_eq!(ChainSummary::of(&chain).upper_layer_bytes(&[1, 2, 3]), None);
    }

    // ---------------------------------------------------------------------------------
    // Frames aimed at the fast path's edges, over changing snapshots, time,
    // headroom and a small affinity table; bursts against packets one by one.
    // ---------------------------------------------------------------------------------

    /// One frame built around the fast path's checks, each field near one of its edges.
    #[derive(Debug, Clone)]
    struct EdgeFrame {
        dst_mac: u8,
        src_mac_group: bool,
        ethertype: u16,
        version: u8,
        word0: u32,
        src: u8,
        client: u8,
        dst: u8,
        next_header: u8,
        hop: u8,
        /// 0: short payload `short`; 1: the tunnel MTU plus `edge`; 2: big.
        size: u8,
        short: usize,
        edge: i8,
        ports: (u8, u8),
        flags: u8,
        padding: usize,
        cut: usize,
        payload_len_delta: i8,
    }

    fn edge_frame() -> impl Strategy<Value = EdgeFrame> {
        (
            (
                prop_oneof![8 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
                prop::bool::weighted(0.05),
                prop_oneof![20 => Just(0x86ddu16), 1 => Just(0x8100), 1 => Just(0x0800)],
                prop_oneof![20 => Just(6u8), 1 => Just(4), 1 => Just(7)],
                any::<u32>(),
                0u8..16,
                0u8..4,
                prop_oneof![6 => 0u8..4, 1 => 4u8..7],
            ),
            (
                prop_oneof![
                    8 => Just(proto::TCP),
                    8 => Just(proto::UDP),
                    1 => Just(proto::ICMPV6),
                    1 => Just(0u8),
                    1 => Just(60),
                    1 => Just(132),
                    1 => Just(135)
                ],
                prop_oneof![Just(0u8), Just(1), Just(2), Just(64), Just(255)],
                prop_oneof![6 => Just(0u8), 2 => Just(1), 1 => Just(2)],
                0usize..64,
                -3i8..=3,
                (0u8..3, 0u8..3),
                prop_oneof![
                    Just(0x02u8),
                    Just(0x12),
                    Just(0x10),
                    Just(0x03),
                    any::<u8>()
                ],
                prop_oneof![4 => Just(0usize), 1 => 1usize..40],
                prop_oneof![8 => Just(0usize), 1 => 1usize..12],
                prop_oneof![10 => Just(0i8), 1 => -4i8..=4],
            ),
        )
            .prop_map(
                |(
                    (dst_mac, src_mac_group, ethertype, version, word0, src, client, dst),
                    (next_header, hop, size, short, edge, ports, flags, padding, cut, delta),
                )| EdgeFrame {
                    dst_mac,
                    src_mac_group,
                    ethertype,
                    version,
                    word0,
                    src,
                    client,
                    dst,
                    next_header,
                    hop,
                    size,
                    short,
                    edge,
                    ports,
                    flags,
                    padding,
                    cut,
                    payload_len_delta: delta,
                },
            )
    }

    const EDGE_SERVICES: [&str; 7] = [
        SERVICE,
        FLOW_SERVICE,
        ONLINK_SERVICE,
        "2001:db8:100::5",
        EMPTY_SERVICE,
        M1,
        TUNNEL,
    ];

    impl EdgeFrame {
        fn bytes(&self, snap: &Snapshot, port_mac: MacAddr) -> Vec<u8> {
            let src = match self.src {
                0..=8 => {
                    let mut c = a(CLIENT).octets();
                    c[15] = self.client;
                    c[14] = self.src;
                    Ipv6Addr::from(c)
                }
                9 => a("fe80::9"),
                10 => a("febf:ffff::1"),
                11 => a("fec0::1"),
                12 => [a("::1"), a("::"), a("::2")][usize::from(self.client % 3)],
                13 => a("ff0e::1"),
                14 => [a(TUNNEL), a("fe80::1")][usize::from(self.client % 2)],
                _ => [a(SERVICE), a(M1)][usize::from(self.client % 2)],
            };
            let dst = a(EDGE_SERVICES[usize::from(self.dst)]);
            let tunnel_mtu = snap
                .service_by_address(u128::from(dst))
                .and_then(|i| snap.service(i))
                .map_or(1460, |s| s.tunnel_mtu);
            let payload_len = match self.size {
                0 => self.short,
                1 => (tunnel_mtu as isize - 40 + isize::from(self.edge)).max(0) as usize,
                _ => 1400 + self.short * 3,
            };
            let mut payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
            let ports = [
                1000u16 + u16::from(self.ports.0),
                80 + u16::from(self.ports.1),
            ];
            for (i, b) in [ports[0].to_be_bytes(), ports[1].to_be_bytes()]
                .concat()
                .into_iter()
                .enumerate()
            {
                if let Some(p) = payload.get_mut(i) {
                    *p = b;
                }
            }
            if let Some(f) = payload.get_mut(13) {
                *f = self.flags;
            }
            let mut ip = ip6(src, dst, self.next_header, self.hop, &payload);
            let w0 = (u32::from(self.version) << 28) | (self.word0 & 0x0fff_ffff);
            ip[..4].copy_from_slice(&w0.to_be_bytes());
            let announced = (payload_len as isize + isize::from(self.payload_len_delta))
                .clamp(0, 0xffff) as u16;
            ip[4..6].copy_from_slice(&announced.to_be_bytes());
            let dst_mac = match self.dst_mac {
                0 => port_mac,
                1 => MacAddr([0x33, 0x33, 0, 0, 0, 1]),
                2 => MacAddr([0xff; 6]),
                _ => MacAddr([2, 0, 0, 0, 0, 9]),
            };
            let mut src_mac = ROUTER_MAC;
            if self.src_mac_group {
                src_mac.0[0] |= 1;
            }
            let mut f = eth(dst_mac, src_mac, self.ethertype, &ip);
            f.extend((0..self.padding).map(|i| 0xa0 ^ i as u8));
            let cut = self.cut.min(f.len());
            f.truncate(f.len() - cut);
            f
        }
    }

    /// A snapshot variant: MTUs, tunnel options, member states and MACs, and a second port.
    #[derive(Debug, Clone)]
    struct EdgeSnap {
        mtu: u16,
        mtu2: u16,
        encap_limit: Option<u8>,
        fixed_tc: Option<u8>,
        next_hop: bool,
        m1_mac: bool,
        m2: u8,
        flow_on_port_1: bool,
    }

    fn edge_snap() -> impl Strategy<Value = EdgeSnap> {
        (
            prop_oneof![Just(1280u16), Just(1300), Just(1500), Just(9000)],
            prop_oneof![Just(1280u16), Just(1500)],
            prop::option::of(0u8..4),
            prop::option::of(any::<u8>()),
            prop::bool::weighted(0.85),
            any::<bool>(),
            0u8..3,
            any::<bool>(),
        )
            .prop_map(
                |(mtu, mtu2, encap_limit, fixed_tc, next_hop, m1_mac, m2, flow_on_port_1)| {
                    EdgeSnap {
                        mtu,
                        mtu2,
                        encap_limit,
                        fixed_tc,
                        next_hop,
                        m1_mac,
                        m2,
                        flow_on_port_1,
                    }
                },
            )
    }

    impl EdgeSnap {
        fn build(&self) -> Snapshot {
            snap_with(|sp| {
                sp.ports[0].link_mtu = self.mtu;
                sp.ports.push(PortSpec {
                    mac: MacAddr([2, 0, 0, 0, 0, 2]),
                    link_mtu: self.mtu2,
                    next_hop_mac: Some(MacAddr([2, 0, 0, 0, 0, 0xfd])),
                });
                sp.tunnel.encap_limit = self.encap_limit;
                if let Some(tc) = self.fixed_tc {
                    sp.tunnel.traffic_class = TrafficClass::Fixed(tc);
                }
                if !self.next_hop {
                    sp.ports[0].next_hop_mac = None;
                }
                let status = [
                    MemberStatus::Active,
                    MemberStatus::Draining,
                    MemberStatus::Down,
                ][usize::from(self.m2)];
                for s in &mut sp.services {
                    for m in &mut s.members {
                        if m.id == 1 && self.m1_mac {
                            m.mac = Some(MacAddr([2, 0, 0, 0, 0, 0x44]));
                        }
                        if m.id == 2 {
                            m.status = status;
                        }
                    }
                }
                if self.flow_on_port_1 {
                    sp.services[1].port = 1;
                }
                // A flow-mode service with three members, one draining.
                sp.services.push(service(
                    "2001:db8:100::5",
                    AffinityMode::Flow,
                    vec![
                        member(3, M1, MemberStatus::Active),
                        member(4, M2, status),
                        member(5, M3, MemberStatus::Draining),
                    ],
                ));
            })
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Bursts of edge frames, each burst with its own snapshot, time and headroom, into
        /// a small affinity table (evictions, relocations, expiry): `process_burst`, and the
        /// runtime's carried-over stages in chunks of `chunk` ([`carried_bursts`]), give
        /// every packet what `process` gives it, and the workers end with the same
        /// counters, table counters and size, member traffic and extra packets.
        #[test]
        fn fast_path_edges_burst_matches_one_by_one(
            bursts in proptest::collection::vec(
                (
                    proptest::collection::vec(edge_frame(), 1..48),
                    edge_snap(),
                    0u64..200,
                    prop_oneof![Just(0usize), 38usize..50, Just(128)],
                    prop::bool::weighted(0.9),
                ),
                1..6,
            ),
            capacity in prop_oneof![Just(8usize), Just(16), Just(4096)],
            chunk in 1usize..=BURST_STAGE,
        ) {
            let config = WorkerConfig {
                id: 3,
                affinity_capacity: capacity,
                affinity_idle_timeout: 120,
                icmp_rate: IcmpRateSpec::default(),
            };
            let mut one = Worker::new(config, Tick::from_secs(0)).unwrap();
            let mut bulk = Worker::new(config, Tick::from_secs(0)).unwrap();
            let mut carried = Worker::new(config, Tick::from_secs(0)).unwrap();
            let (mut tx_one, mut tx_bulk) = (Tx::new(1000), Tx::new(1000));
            let mut tx_carried = Tx::new(1000);
            let mut secs = 10u64;
            for (frames, snap_spec, advance, headroom, rx0) in bursts {
                secs += advance;
                let now = Tick::from_secs(secs);
                let s = snap_spec.build();
                let rx_port = u16::from(!rx0);
                let port_mac = s.port(rx_port).unwrap().mac;
                let frames: Vec<Vec<u8>> = frames.iter().map(|f| f.bytes(&s, port_mac)).collect();
                let (singles, verdicts, bufs, n) = one_by_one_and_burst(
                    &s, &frames, headroom, rx_port, now, (&mut one, &mut tx_one), (&mut bulk, &mut tx_bulk),
                );
                prop_assert_eq!(n, frames.len());
                let mut carried_bufs: Vec<VecBuf> = frames
                    .iter()
                    .map(|f| VecBuf::from_slice_with_room(f, headroom, 64))
                    .collect();
                let carried_verdicts = carried_bursts(
                    &mut carried, &s, &mut carried_bufs, chunk, rx_port, now, &mut tx_carried,
                );
                for (i, (((v, out), (bv, b)), (cv, c))) in singles
                    .iter()
                    .zip(verdicts.iter().zip(bufs))
                    .zip(carried_verdicts.iter().zip(carried_bufs))
                    .enumerate()
                {
                    prop_assert_eq!(v, bv, "packet {}: {:02x?}", i, &frames[i]);
                    prop_assert_eq!(out, &b.into_vec(), "packet {}", i);
                    prop_assert_eq!(v, cv, "packet {} (carried)", i);
                    prop_assert_eq!(out, &c.into_vec(), "packet {} (carried)", i);
                }
                for w in [&bulk, &carried] {
                    prop_assert_eq!(one.counters(), w.counters());
                    prop_assert!(w.counters().is_consistent());
                    prop_assert_eq!(one.affinity().counters(), w.affinity().counters());
                    prop_assert_eq!(one.affinity().len(), w.affinity().len());
                    for slot in 0..MEMBER_SLOTS as u16 {
                        prop_assert_eq!(one.member_traffic(slot), w.member_traffic(slot));
                    }
                }
            }
            let sent = |tx: Tx| {
                tx.sent.into_iter().map(|(p, b)| (p, b.into_vec())).collect::<Vec<_>>()
            };
            let sent_one = sent(tx_one);
            prop_assert_eq!(&sent_one, &sent(tx_bulk));
            prop_assert_eq!(&sent_one, &sent(tx_carried));
        }
    }
}
