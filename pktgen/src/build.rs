//! Packet building, sans I/O.
//!
//! Client traffic is generated from prebuilt templates, one per (protocol, frame size): the
//! generator copies a template and rewrites the fields that vary per flow (client address,
//! source port, service address) in place, patching the transport checksum with a
//! per-flow delta precomputed in the [`FlowTable`] (RFC 1624 incremental update), so no
//! packet is ever built or checksummed from scratch on the fast path. A sample of packets
//! carries a latency [`Stamp`] at the start of the transport payload.
//!
//! Control packets (Binding Updates, Neighbor Advertisements, probe answers) are rare and
//! built with the `anycast6-wire` emitters.

use std::net::Ipv6Addr;

use anycast6_wire::checksum::{self, proto};
use anycast6_wire::ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
use anycast6_wire::icmpv6::{Icmpv6Packet, Icmpv6Repr};
use anycast6_wire::ipv6::{Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::{HomeAddressDestOpts, Ipv6OptionsHeader};
use anycast6_wire::mobility::{
    AuthSubtype, BindingUpdate, MhMessage, MhOptions, MhPacket, MhRepr, MobilityOption,
};
use anycast6_wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
use anycast6_wire::udp::{UdpPacket, UdpRepr};
use anycast6_wire::{auth, Result as WireResult};

use crate::profile::{Popularity, Profile, Protocol, SizeSpec, IMIX};

/// Ethernet header length (untagged).
pub const ETH_LEN: usize = 14;
/// Offset of the IPv6 source address in a frame.
pub const SRC_AT: usize = ETH_LEN + 8;
/// Offset of the IPv6 destination address in a frame.
pub const DST_AT: usize = ETH_LEN + 24;
/// Offset of the transport header in a client frame.
pub const L4_AT: usize = ETH_LEN + 40;
/// Hop limit of everything pktgen originates.
pub const HOP_LIMIT: u8 = 64;
/// Vendor ID of the appliance's load report option (RFC 5612 documentation number).
pub const LOAD_REPORT_VENDOR_ID: u32 = 32473;
/// Load report sub-type carrying a u16 weight.
pub const LOAD_REPORT_WEIGHT: u8 = 1;

/// The latency stamp at the start of a sampled packet's transport payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sample sequence number: counts stamped packets only.
    pub seq: u64,
    /// Send time, nanoseconds of the sender's monotonic clock (TSC).
    pub tx_ns: u64,
}

impl Stamp {
    /// "A6PG": recognises a stamped payload.
    pub const MAGIC: u32 = 0x4136_5047;
    /// Octets on the wire: magic, reserved, sequence, time.
    pub const LEN: usize = 24;

    pub fn write(&self, out: &mut [u8; Stamp::LEN]) {
        out[0..4].copy_from_slice(&Self::MAGIC.to_be_bytes());
        out[4..8].fill(0);
        out[8..16].copy_from_slice(&self.seq.to_be_bytes());
        out[16..24].copy_from_slice(&self.tx_ns.to_be_bytes());
    }

    /// The stamp at the start of `payload`, if it carries one.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let b = payload.get(..Self::LEN)?;
        if u32::from_be_bytes([b[0], b[1], b[2], b[3]]) != Self::MAGIC {
            return None;
        }
        Some(Stamp {
            seq: u64::from_be_bytes(b[8..16].try_into().ok()?),
            tx_ns: u64::from_be_bytes(b[16..24].try_into().ok()?),
        })
    }
}

/// A prebuilt client frame for the base flow (client 0, first source port, service 0).
#[derive(Debug, Clone)]
pub struct Template {
    pub bytes: Vec<u8>,
    pub protocol: Protocol,
    /// Offset of the transport checksum in the frame.
    pub csum_at: usize,
    /// Offset of the transport payload in the frame.
    pub payload_at: usize,
    /// Whether the payload has room for a [`Stamp`].
    pub stamp_ok: bool,
    /// The transport checksum of `bytes`.
    pub csum: u16,
}

/// One flow of the precomputed sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEntry {
    /// Low 64 bits of the client address.
    pub src_low: [u8; 8],
    pub sport: [u8; 2],
    pub service: u16,
    /// One's-complement sum of (new - old) over the changed words relative to the base
    /// flow: added to a template's checksum it gives this flow's (RFC 1624 eqn. 3).
    pub delta: u16,
}

/// Addresses and ports of the client side.
#[derive(Debug, Clone)]
pub struct ClientSide {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub client_prefix: Ipv6Addr,
    pub services: Vec<Ipv6Addr>,
    pub first_source_port: u16,
    pub dst_port: u16,
}

/// splitmix64: a small, fast, seedable generator (the sequences only need to look random).
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Client address number `index`: the prefix plus `index` in the low 64 bits.
pub fn client_address(prefix: Ipv6Addr, index: u64) -> Ipv6Addr {
    let p = u128::from(prefix);
    let low = (p as u64).wrapping_add(index);
    Ipv6Addr::from((p & !u128::from(u64::MAX)) | u128::from(low))
}

/// Address `base` + `index` (care-of addresses of members).
pub fn nth_address(base: Ipv6Addr, index: u64) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(base).wrapping_add(u128::from(index)))
}

fn ones_delta(old: &[u8], new: &[u8]) -> u64 {
    let mut acc = 0u64;
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        let o = u16::from_be_bytes([o[0], o[1]]);
        let n = u16::from_be_bytes([n[0], n[1]]);
        acc += u64::from(!o) + u64::from(n);
    }
    acc
}

/// Applies a precomputed delta to a stored checksum; `udp` maps a zero result to 0xffff
/// (RFC 8200 §8.1: a zero UDP checksum is not allowed over IPv6).
#[inline]
pub fn apply_delta(check: u16, delta: u16, udp: bool) -> u16 {
    let c = !checksum::fold(u64::from(!check) + u64::from(delta));
    if udp && c == 0 {
        0xffff
    } else {
        c
    }
}

/// The precomputed sequence of flows the generator cycles through: every flow in a random
/// order when they fit, else a sample drawn from the popularity distribution.
#[derive(Debug, Clone)]
pub struct FlowTable {
    pub entries: Vec<FlowEntry>,
}

/// Zipf ranks are drawn over at most this many flows (a CDF table of this size).
pub const ZIPF_MAX_RANKS: u64 = 1 << 20;

impl FlowTable {
    pub fn new(profile: &Profile, side: &ClientSide) -> FlowTable {
        let clients = profile.clients.max(1);
        let ports = u64::from(profile.source_ports.max(1));
        let services = side.services.len().max(1) as u64;
        let flows = clients * ports * services;
        let mut rng = SplitMix(profile.seed);
        let ids: Vec<u64> = match profile.popularity {
            Popularity::Uniform if flows <= profile.flow_table as u64 => {
                let mut ids: Vec<u64> = (0..flows).collect();
                for i in (1..ids.len()).rev() {
                    let j = rng.below(i as u64 + 1) as usize;
                    ids.swap(i, j);
                }
                ids
            }
            Popularity::Uniform => (0..profile.flow_table).map(|_| rng.below(flows)).collect(),
            Popularity::Zipf(s) => {
                let ranks = flows.min(ZIPF_MAX_RANKS);
                let mut cdf = Vec::with_capacity(ranks as usize);
                let mut acc = 0.0;
                for k in 1..=ranks {
                    acc += 1.0 / (k as f64).powf(s);
                    cdf.push(acc);
                }
                // Rank k is flow (k * step) mod flows, a bijection because step is odd
                // and coprime to flows: the popular flows are scattered over clients.
                let mut step = (rng.next_u64() % flows) | 1;
                while gcd(step, flows) != 1 {
                    step += 2;
                }
                (0..profile.flow_table)
                    .map(|_| {
                        let u = rng.unit() * acc;
                        let rank = cdf.partition_point(|c| *c < u) as u64;
                        ((u128::from(rank.min(ranks - 1)) * u128::from(step)) % u128::from(flows))
                            as u64
                    })
                    .collect()
            }
        };
        let base_src = client_address(side.client_prefix, 0).octets();
        let base_port = side.first_source_port.to_be_bytes();
        let base_dst = side.services[0].octets();
        let entries = ids
            .into_iter()
            .map(|id| {
                let client = id % clients;
                let port = (id / clients) % ports;
                let service = (id / (clients * ports)) as u16;
                let src = client_address(side.client_prefix, client).octets();
                let sport = (side.first_source_port + port as u16).to_be_bytes();
                let dst = side.services[usize::from(service)].octets();
                let acc = ones_delta(&base_src, &src)
                    + ones_delta(&base_port, &sport)
                    + ones_delta(&base_dst, &dst);
                let mut src_low = [0u8; 8];
                src_low.copy_from_slice(&src[8..]);
                FlowEntry {
                    src_low,
                    sport,
                    service,
                    delta: checksum::fold(acc),
                }
            })
            .collect();
        FlowTable { entries }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The frame sizes and protocols, in the order the generator cycles through them.
pub fn recipe(profile: &Profile) -> Vec<(Protocol, usize)> {
    let mut rng = SplitMix(profile.seed ^ 0x5eed);
    let mut sizes: Vec<usize> = match profile.size {
        SizeSpec::Fixed { bytes } => vec![bytes],
        SizeSpec::Range { min, max } => (0..1024)
            .map(|_| min + rng.below((max - min + 1) as u64) as usize)
            .collect(),
        SizeSpec::Imix => IMIX
            .iter()
            .flat_map(|&(size, n)| std::iter::repeat_n(size, n as usize))
            .collect(),
    };
    for i in (1..sizes.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        sizes.swap(i, j);
    }
    let min = profile.protocol.min_frame_len();
    sizes
        .into_iter()
        .flat_map(|s| {
            let s = s.max(min);
            match profile.protocol {
                Protocol::Mixed => vec![(Protocol::Udp, s), (Protocol::TcpSyn, s)],
                p => vec![(p, s)],
            }
        })
        .collect()
}

/// The template of a client frame of `frame_len` octets (a multiple-of-two transport
/// payload is not required: the payload is a fixed pattern).
pub fn client_template(
    side: &ClientSide,
    protocol: Protocol,
    frame_len: usize,
) -> WireResult<Template> {
    let src = client_address(side.client_prefix, 0);
    let dst = side.services[0];
    let (l4_header, next_header) = match protocol {
        Protocol::TcpSyn => (20, proto::TCP),
        _ => (8, proto::UDP),
    };
    let payload_len = frame_len.saturating_sub(L4_AT + l4_header);
    let payload: Vec<u8> = (0..payload_len).map(|i| (i as u8) ^ 0x5a).collect();
    let l4 = match protocol {
        Protocol::TcpSyn => {
            let repr = syn_repr(side.first_source_port, side.dst_port);
            let mut seg = vec![0u8; repr.buffer_len(payload.len())];
            repr.emit(
                &mut TcpPacket::new_unchecked(&mut seg),
                &src,
                &dst,
                &payload,
            )?;
            seg
        }
        _ => {
            let repr = UdpRepr {
                src_port: side.first_source_port,
                dst_port: side.dst_port,
            };
            let mut dgram = vec![0u8; repr.buffer_len(payload.len())];
            repr.emit(
                &mut UdpPacket::new_unchecked(&mut dgram),
                &src,
                &dst,
                &payload,
            )?;
            dgram
        }
    };
    let bytes = frame(side.src_mac, side.dst_mac, &ip(src, dst, next_header), &l4)?;
    Ok(Template {
        csum_at: L4_AT + if l4_header == 20 { 16 } else { 6 },
        payload_at: L4_AT + l4_header,
        stamp_ok: payload_len >= Stamp::LEN,
        protocol: if l4_header == 20 {
            Protocol::TcpSyn
        } else {
            Protocol::Udp
        },
        csum: {
            let at = L4_AT + if l4_header == 20 { 16 } else { 6 };
            u16::from_be_bytes([bytes[at], bytes[at + 1]])
        },
        bytes,
    })
}

fn syn_repr(sport: u16, dport: u16) -> TcpRepr {
    TcpRepr {
        src_port: sport,
        dst_port: dport,
        seq_number: 0x1000_0000,
        ack_number: 0,
        flags: TcpFlags::SYN,
        window_len: 65535,
        max_seg_size: None,
    }
}

/// Copies a template into a packet buffer of the same length. The first 64 bytes (every
/// frame of 64 bytes or more has them) are one fixed-size copy the compiler turns into a
/// few vector moves: for the common 64-byte frame that is the whole copy, with no loop and
/// no `memcpy` call, which would cost more than the copy itself.
// Always inlined: the generator's per-packet loop calls it, and a call costs about as much
// as the copy.
#[inline(always)]
pub fn copy_frame(dst: &mut [u8], src: &[u8]) {
    match (
        dst.split_first_chunk_mut::<64>(),
        src.split_first_chunk::<64>(),
    ) {
        (Some((head, dst_rest)), Some((src_head, src_rest))) => {
            *head = *src_head;
            if !src_rest.is_empty() {
                dst_rest.copy_from_slice(src_rest);
            }
        }
        _ => dst.copy_from_slice(src),
    }
}

/// A flow ready for one template: its fields and that template's final checksum, so the
/// single-template fast path writes four fields and computes nothing (see
/// [`FixedFlow::for_template`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedFlow {
    pub src_low: [u8; 8],
    pub sport: [u8; 2],
    /// The transport checksum of this flow's frame, network byte order.
    pub csum: [u8; 2],
    pub service: u16,
}

impl FixedFlow {
    /// `f` as it is written into frames copied from `t`.
    #[inline(always)]
    pub fn for_template(t: &Template, f: &FlowEntry) -> FixedFlow {
        FixedFlow {
            src_low: f.src_low,
            sport: f.sport,
            csum: apply_delta(t.csum, f.delta, t.protocol == Protocol::Udp).to_be_bytes(),
            service: f.service,
        }
    }
}

/// Writes flow `f`, prepared for `t` by [`FixedFlow::for_template`], into a frame copied
/// from `t`.
#[inline(always)]
pub fn apply_fixed_flow(frame: &mut [u8], t: &Template, f: &FixedFlow, services: &[[u8; 16]]) {
    frame[SRC_AT + 8..SRC_AT + 16].copy_from_slice(&f.src_low);
    frame[L4_AT..L4_AT + 2].copy_from_slice(&f.sport);
    if f.service != 0 {
        frame[DST_AT..DST_AT + 16].copy_from_slice(&services[usize::from(f.service)]);
    }
    frame[t.csum_at..t.csum_at + 2].copy_from_slice(&f.csum);
}

/// A template ready for the generator's single-template loop: its first 64 octets as one
/// block, which the loop keeps in registers for a whole burst (no reload per packet, and no
/// store to a packet can delay a load of the template), and the rest.
pub struct FixedTemplate<'a> {
    template: &'a Template,
    head: Option<[u8; 64]>,
    rest: &'a [u8],
}

impl<'a> FixedTemplate<'a> {
    pub fn new(template: &'a Template) -> FixedTemplate<'a> {
        FixedTemplate {
            template,
            head: template.bytes.first_chunk::<64>().copied(),
            rest: template.bytes.get(64..).unwrap_or_default(),
        }
    }

    /// Writes the template with flow `f` (prepared for it) into `frame`, which has the
    /// template's length: the bytes of [`copy_frame`] then [`apply_flow`].
    #[inline(always)]
    pub fn write(&self, frame: &mut [u8], f: &FixedFlow, services: &[[u8; 16]]) {
        match (self.head, frame.split_first_chunk_mut::<64>()) {
            (Some(head), Some((d, d_rest))) if d_rest.len() == self.rest.len() => {
                *d = head;
                // An empty copy would still be a call.
                if !self.rest.is_empty() {
                    d_rest.copy_from_slice(self.rest);
                }
            }
            _ => copy_frame(frame, &self.template.bytes),
        }
        apply_fixed_flow(frame, self.template, f, services);
    }
}

/// Writes flow `f` into a frame copied from `t` and patches the checksum.
#[inline(always)]
pub fn apply_flow(frame: &mut [u8], t: &Template, f: &FlowEntry, services: &[[u8; 16]]) {
    apply_fixed_flow(frame, t, &FixedFlow::for_template(t, f), services);
}

/// Writes a stamp into a frame built from `t` (which must have `stamp_ok`) and patches the
/// checksum.
#[inline]
pub fn apply_stamp(frame: &mut [u8], t: &Template, stamp: &Stamp) {
    let mut s = [0u8; Stamp::LEN];
    stamp.write(&mut s);
    let at = t.payload_at;
    let c = u16::from_be_bytes([frame[t.csum_at], frame[t.csum_at + 1]]);
    // The payload starts at an even offset of the transport message, so the 16-bit words
    // line up with the checksum's.
    let delta = checksum::fold(ones_delta(&frame[at..at + Stamp::LEN], &s));
    frame[at..at + Stamp::LEN].copy_from_slice(&s);
    let c = apply_delta(c, delta, t.protocol == Protocol::Udp);
    frame[t.csum_at..t.csum_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An IPv6 header repr with pktgen's defaults (payload length set by [`frame`]).
pub fn ip(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8) -> Ipv6Repr {
    Ipv6Repr {
        src,
        dst,
        next_header,
        payload_len: 0,
        hop_limit: HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    }
}

/// Ethernet + IPv6 header + `payload` (everything after the fixed IPv6 header).
pub fn frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ip: &Ipv6Repr,
    payload: &[u8],
) -> WireResult<Vec<u8>> {
    let mut out = vec![0u8; ETH_LEN + 40 + payload.len()];
    EthernetRepr {
        dst: MacAddr(dst_mac),
        src: MacAddr(src_mac),
        vlan: None,
        ethertype: EtherType::Ipv6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut out[..]))?;
    let repr = Ipv6Repr {
        payload_len: payload.len(),
        ..*ip
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[ETH_LEN..]))?;
    out[ETH_LEN + 40..].copy_from_slice(payload);
    Ok(out)
}

/// An ICMPv6 message as bytes.
pub fn icmpv6(repr: &Icmpv6Repr<'_>, src: &Ipv6Addr, dst: &Ipv6Addr) -> WireResult<Vec<u8>> {
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv6Packet::new_unchecked(&mut out[..]), src, dst)?;
    Ok(out)
}

/// The solicited-node multicast address of `target` (RFC 4291 §2.7.1).
pub fn solicited_node(target: &Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    )
}

/// The link-local address of a MAC (modified EUI-64, RFC 4291 App. A).
pub fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    o[8] = mac[0] ^ 2;
    o[9] = mac[1];
    o[10] = mac[2];
    o[11] = 0xff;
    o[12] = 0xfe;
    o[13] = mac[3];
    o[14] = mac[4];
    o[15] = mac[5];
    Ipv6Addr::from(o)
}

/// A Neighbor Advertisement for `target` with our MAC (RFC 4861 §7.2.4): solicited unless
/// the solicitation came from `::`, in which case it goes to all-nodes.
pub fn neighbor_advert(
    our_mac: [u8; 6],
    dst_mac: [u8; 6],
    target: Ipv6Addr,
    solicitor: Ipv6Addr,
    router: bool,
) -> WireResult<Vec<u8>> {
    let (dst, solicited, dst_mac) = if solicitor.is_unspecified() {
        (
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            false,
            [0x33, 0x33, 0, 0, 0, 1],
        )
    } else {
        (solicitor, true, dst_mac)
    };
    let na = Icmpv6Repr::NeighborAdvert {
        router,
        solicited,
        override_: true,
        target,
        target_lladdr: Some(our_mac),
    };
    let msg = icmpv6(&na, &target, &dst)?;
    let mut hdr = ip(target, dst, proto::ICMPV6);
    // RFC 4861 §7.1.2: ND messages carry hop limit 255.
    hdr.hop_limit = 255;
    frame(our_mac, dst_mac, &hdr, &msg)
}

/// A Neighbor Solicitation for `target` from `src` to its solicited-node group.
pub fn neighbor_solicit(our_mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> WireResult<Vec<u8>> {
    let group = solicited_node(&target);
    let ns = Icmpv6Repr::NeighborSolicit {
        target,
        source_lladdr: Some(our_mac),
    };
    let msg = icmpv6(&ns, &src, &group)?;
    let mut hdr = ip(src, group, proto::ICMPV6);
    hdr.hop_limit = 255;
    let g = group.octets();
    frame(
        our_mac,
        [0x33, 0x33, g[12], g[13], g[14], g[15]],
        &hdr,
        &msg,
    )
}

/// What goes into a Binding Update.
#[derive(Debug, Clone)]
pub struct BuParams<'a> {
    pub care_of: Ipv6Addr,
    pub home: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    pub sequence: u16,
    /// Requested lifetime, 4-second units (0 de-registers).
    pub lifetime_units: u16,
    pub bid: Option<u16>,
    pub weight: Option<u16>,
    /// MN-HA authentication: SPI, key, and the Replay Protection timestamp (NTP format).
    pub auth: Option<(u32, &'a [u8], u64)>,
}

/// A home-registration Binding Update frame (RFC 6275 §6.1.7, §11.7.1): from the care-of
/// address to the home agent, the home address in a Home Address option, A and H set;
/// with `auth`, a Replay Protection option followed by the MN-HA option, last (RFC 4285
/// §5.1, §6).
pub fn binding_update(src_mac: [u8; 6], dst_mac: [u8; 6], p: &BuParams<'_>) -> WireResult<Vec<u8>> {
    let weight_bytes = p.weight.map(u16::to_be_bytes);
    let zero_auth = [0u8; auth::MN_HA_AUTH_DATA_LEN];
    let mut options = Vec::new();
    if let Some(bid) = p.bid {
        options.push(MobilityOption::BindingIdentifier {
            bid,
            status: 0,
            h: false,
            bid_pri: 0,
            care_of: None,
        });
    }
    if let Some(w) = &weight_bytes {
        options.push(MobilityOption::VendorSpecific {
            vendor_id: LOAD_REPORT_VENDOR_ID,
            sub_type: LOAD_REPORT_WEIGHT,
            data: w,
        });
    }
    if let Some((spi, _, timestamp)) = p.auth {
        options.push(MobilityOption::ReplayProtection { timestamp });
        options.push(MobilityOption::MobilityMessageAuth {
            subtype: AuthSubtype::MnHa,
            spi,
            auth_data: &zero_auth,
        });
    }
    let repr = MhRepr {
        message: MhMessage::BindingUpdate(BindingUpdate {
            sequence: p.sequence,
            ack: true,
            home_registration: true,
            link_local: false,
            key_mgmt: false,
            other_flags: 0,
            lifetime: p.lifetime_units,
        }),
        options: MhOptions::List(&options),
    };
    let mut mh = vec![0u8; repr.buffer_len()?];
    repr.emit(&mut MhPacket::new_unchecked(&mut mh[..]))?;
    // RFC 6275 §6.1.1: the checksum pseudo-header takes the home address (from the HAO)
    // as source.
    match p.auth {
        Some((_, key, _)) => auth::insert_mn_ha_and_fill_checksum(
            key,
            &p.care_of,
            &p.home,
            &mut mh,
            &p.home,
            &p.home_agent,
        )?,
        None => MhPacket::new_checked(&mut mh[..])?.fill_checksum(&p.home, &p.home_agent),
    }
    let hao = HomeAddressDestOpts {
        next_header: proto::MOBILITY,
        home_address: p.home,
    };
    let mut payload = vec![0u8; hao.buffer_len() + mh.len()];
    hao.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut payload[..]))?;
    payload[hao.buffer_len()..].copy_from_slice(&mh);
    frame(
        src_mac,
        dst_mac,
        &ip(p.care_of, p.home_agent, proto::DEST_OPTS),
        &payload,
    )
}

/// A TCP SYN-ACK answering a SYN (a health probe to the care-of address): our ISN `isn`,
/// acknowledging the SYN (RFC 9293 §3.5).
pub fn syn_ack(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    syn: &TcpRepr,
    syn_payload_len: usize,
    isn: u32,
) -> WireResult<Vec<u8>> {
    let repr = TcpRepr {
        src_port: syn.dst_port,
        dst_port: syn.src_port,
        seq_number: isn,
        ack_number: syn
            .seq_number
            .wrapping_add(syn.segment_len(syn_payload_len) as u32),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window_len: 65535,
        max_seg_size: Some(1440),
    };
    let mut seg = vec![0u8; repr.buffer_len(0)];
    repr.emit(&mut TcpPacket::new_unchecked(&mut seg), &src, &dst, &[])?;
    frame(src_mac, dst_mac, &ip(src, dst, proto::TCP), &seg)
}

/// An IPv6-in-IPv6 tunnel frame (RFC 2473) around the IPv6 packet `inner`.
pub fn tunnelled(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    outer_src: Ipv6Addr,
    outer_dst: Ipv6Addr,
    inner: &[u8],
) -> WireResult<Vec<u8>> {
    frame(
        src_mac,
        dst_mac,
        &ip(outer_src, outer_dst, proto::IPV6),
        inner,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{RawProfile, RawValue};

    fn side(services: usize) -> ClientSide {
        ClientSide {
            src_mac: [2, 0, 0, 0, 0, 0xfe],
            dst_mac: [2, 0, 0, 0, 0, 1],
            client_prefix: "2001:db8:77::1".parse().unwrap(),
            services: (0..services)
                .map(|i| nth_address("2001:db8:100::1".parse().unwrap(), i as u64))
                .collect(),
            first_source_port: 1024,
            dst_port: 9999,
        }
    }

    fn profile(pairs: &[(&'static str, RawValue)]) -> Profile {
        let mut raw = RawProfile::default();
        for (k, v) in pairs {
            raw.set_flag(k, v.clone());
        }
        Profile::resolve(&raw).unwrap()
    }

    fn verify(frame: &[u8]) -> bool {
        let ip = Ipv6Packet::new_checked(&frame[ETH_LEN..]).unwrap();
        checksum::verify_upper_layer(
            &ip.src_addr(),
            &ip.dst_addr(),
            ip.next_header(),
            ip.payload(),
        )
    }

    #[test]
    fn copy_frame_copies_every_length() {
        // Below, at and above the fixed 64-octet head.
        for len in (0..=130).chain([590, 1514]) {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut dst = vec![0u8; len];
            copy_frame(&mut dst, &src);
            assert_eq!(dst, src, "length {len}");
        }
    }

    #[test]
    fn rewritten_flows_have_correct_checksums() {
        let p = profile(&[
            ("clients", RawValue::Int(300)),
            ("source_ports", RawValue::Int(7)),
            (
                "services",
                RawValue::List(vec!["2001:db8:100::1".into(), "2001:db8:100::2".into()]),
            ),
        ]);
        let s = side(2);
        let table = FlowTable::new(&p, &s);
        assert_eq!(
            table.entries.len(),
            300 * 7 * 2,
            "all flows fit: every one once"
        );
        let mut distinct: Vec<_> = table
            .entries
            .iter()
            .map(|e| (e.src_low, e.sport, e.service))
            .collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 300 * 7 * 2);
        let services: Vec<[u8; 16]> = s.services.iter().map(|a| a.octets()).collect();
        for proto_ in [Protocol::Udp, Protocol::TcpSyn] {
            for size in [74, 100, 1514] {
                let t = client_template(&s, proto_, size).unwrap();
                assert_eq!(t.bytes.len(), size);
                assert!(verify(&t.bytes));
                for (i, f) in table.entries.iter().enumerate().step_by(37) {
                    let mut fr = vec![0u8; t.bytes.len()];
                    copy_frame(&mut fr, &t.bytes);
                    assert_eq!(fr, t.bytes);
                    apply_flow(&mut fr, &t, f, &services);
                    assert!(verify(&fr), "{proto_:?} {size} flow {i}");
                    if t.stamp_ok {
                        apply_stamp(
                            &mut fr,
                            &t,
                            &Stamp {
                                seq: i as u64,
                                tx_ns: 0xdead_beef_1234,
                            },
                        );
                        assert!(verify(&fr));
                        assert_eq!(
                            Stamp::read(&fr[t.payload_at..]),
                            Some(Stamp {
                                seq: i as u64,
                                tx_ns: 0xdead_beef_1234
                            })
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_single_template_loop_writes_what_the_general_one_does() {
        let p = profile(&[
            ("clients", RawValue::Int(50)),
            ("source_ports", RawValue::Int(3)),
            (
                "services",
                RawValue::List(vec!["2001:db8:100::1".into(), "2001:db8:100::2".into()]),
            ),
        ]);
        let s = side(2);
        let table = FlowTable::new(&p, &s);
        let services: Vec<[u8; 16]> = s.services.iter().map(|a| a.octets()).collect();
        let mut checked = 0;
        for proto_ in [Protocol::Udp, Protocol::TcpSyn] {
            // Below, at and above the 64-octet head.
            for size in [62, 63, 64, 65, 74, 128, 1514] {
                let Ok(t) = client_template(&s, proto_, size) else {
                    continue; // too short for this protocol's headers
                };
                let fixed = FixedTemplate::new(&t);
                for f in &table.entries {
                    let mut general = vec![0xa5u8; t.bytes.len()];
                    copy_frame(&mut general, &t.bytes);
                    apply_flow(&mut general, &t, f, &services);
                    // A buffer holding something else: every octet must be written.
                    let mut fast = vec![0x5au8; t.bytes.len()];
                    fixed.write(&mut fast, &FixedFlow::for_template(&t, f), &services);
                    assert_eq!(fast, general, "{proto_:?} {size}");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 11 * table.entries.len(), "{checked}");
    }

    #[test]
    fn zipf_favours_few_flows_and_uniform_spreads() {
        let p = profile(&[
            ("clients", RawValue::Int(100_000)),
            ("popularity", RawValue::Text("zipf:1.2".into())),
            ("flow_table", RawValue::Int(50_000)),
        ]);
        let t = FlowTable::new(&p, &side(1));
        let mut counts = std::collections::HashMap::new();
        for e in &t.entries {
            *counts.entry(e.src_low).or_insert(0u32) += 1;
        }
        let mut c: Vec<u32> = counts.values().copied().collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        // With s = 1.2 over 10^5 ranks, rank 1 has about 1/zeta-ish = 22 % of the mass.
        let top = f64::from(c[0]) / 50_000.0;
        assert!((0.15..0.30).contains(&top), "top flow share {top}");
        assert!(c[0] > c[1] && c[1] > c[10]);

        let p = profile(&[
            ("clients", RawValue::Int(100_000)),
            ("flow_table", RawValue::Int(50_000)),
        ]);
        let t = FlowTable::new(&p, &side(1));
        let mut counts = std::collections::HashMap::new();
        for e in &t.entries {
            *counts.entry(e.src_low).or_insert(0u32) += 1;
        }
        assert!(*counts.values().max().unwrap() < 10);
        assert!(counts.len() > 35_000);
    }

    #[test]
    fn recipes() {
        let p = profile(&[("size", RawValue::Text("imix".into()))]);
        let r = recipe(&p);
        assert_eq!(r.len(), 12);
        assert_eq!(r.iter().filter(|x| x.1 == 64).count(), 7);
        assert_eq!(r.iter().filter(|x| x.1 == 590).count(), 4);
        let p = profile(&[
            ("size", RawValue::Text("80-90".into())),
            ("protocol", RawValue::Text("mixed".into())),
        ]);
        let r = recipe(&p);
        assert!(r.iter().all(|x| (80..=90).contains(&x.1)));
        assert_eq!(
            r.iter().filter(|x| x.0 == Protocol::TcpSyn).count(),
            r.len() / 2
        );
    }

    #[test]
    fn solicited_node_and_link_local() {
        let a: Ipv6Addr = "2001:db8::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(&a),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            link_local([0x02, 0, 0, 0, 0, 0xfe]),
            "fe80::ff:fe00:fe".parse::<Ipv6Addr>().unwrap()
        );
    }
}
