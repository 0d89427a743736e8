//! Fuzz target bodies for anycast6.
//!
//! Each target takes arbitrary bytes, drives one parser through every accessor, and checks
//! invariants that must hold for any input: views never panic once `new_checked` succeeded,
//! a value that parses emits into exactly `buffer_len()` octets and parses back to itself, and
//! checksum-guarded parsers reach their semantic checks when the checksum is made right on a
//! copy. A failed assertion is a bug in `anycast6-wire` or the decoder, not in the input.
//!
//! The same functions run under libFuzzer (`fuzz/fuzz_targets/*.rs`) and on stable in
//! `tests/replay.rs`, which replays the committed corpora.
#![forbid(unsafe_code)]

use std::net::Ipv6Addr;

use anycast6::decode::decode_frame;
use anycast6_wire::auth;
use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr, VlanTag};
use anycast6_wire::icmpv6::{self, ErrorKind, Icmpv6Packet, Icmpv6Repr, InvokingPacket, Message};
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::{
    find_encap_limit, EncapLimitDestOpts, ExtHeaderChain, FragmentRepr, HomeAddressDestOpts,
    Ipv6FragmentHeader, Ipv6Option, Ipv6OptionsHeader, Ipv6OptionsRepr, Ipv6RoutingHeader,
    RoutingType, Type2RoutingRepr, UnknownOptionAction, MAX_EXT_HEADERS,
};
use anycast6_wire::mobility::{
    self, check_receive, MhOptions, MhPacket, MhRejection, MhRepr, MhType, MobilityOption,
    MobilityOptionIter, OptionType,
};
use anycast6_wire::rr;
use anycast6_wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
use anycast6_wire::tunnel::{
    self, decapsulate, decrement_hop_limit, encapsulate, EncapOutcome, HopLimitVerdict,
    TrafficClass, TunnelParams,
};
use anycast6_wire::udp::{UdpPacket, UdpRepr};
use anycast6_wire::{Error, PacketBuf, VecBuf};

/// A fuzz target body: any bytes in, a panic only for a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by name, in the order the corpora directories are listed in the README.
pub const TARGETS: &[(&str, Target)] = &[
    ("ethernet", ethernet),
    ("ipv6", ipv6),
    ("icmpv6", icmpv6),
    ("udp_tcp", udp_tcp),
    ("mobility", mobility),
    ("tunnel", tunnel),
    ("decode", decode),
    ("pipeline", pipeline),
];

const fn addr(segments: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

/// Pseudo-header addresses of the upper-layer targets (documentation prefix).
const SRC: Ipv6Addr = addr([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
const DST: Ipv6Addr = addr([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]);

// ---------------------------------------------------------------------------------------------
// ethernet
// ---------------------------------------------------------------------------------------------

/// Ethernet II frame view and repr; MAC address and EtherType conversions.
pub fn ethernet(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        assert!(EthernetRepr::parse(&EthernetFrame::new_unchecked(data)).is_err());
        return;
    };
    let dst = frame.dst_addr();
    let src = frame.src_addr();
    let tagged = frame.is_vlan_tagged();
    let ethertype = frame.ethertype();
    let header_len = frame.header_len();
    assert_eq!(frame.vlan_tag().is_some(), tagged);
    assert_eq!(header_len, if tagged { 18 } else { 14 });
    assert_eq!(frame.payload(), &data[header_len..]);
    check_mac(dst);
    check_mac(src);
    assert_eq!(EtherType::from(u16::from(ethertype)), ethertype);
    let _ = ethertype.to_string();
    if let Some(tag) = frame.vlan_tag() {
        // Tags read off the wire are in range, so the TCI survives the round trip.
        assert_eq!(VlanTag::from_tci(tag.tci()), tag);
        assert_eq!(tag.tci(), u16::from_be_bytes([data[14], data[15]]));
    }

    let repr = EthernetRepr::parse(&frame).expect("a checked frame parses");
    assert_eq!((repr.dst, repr.src, repr.ethertype), (dst, src, ethertype));
    assert_eq!(repr.header_len(), header_len);
    let payload = frame.payload();
    let mut out = vec![0u8; repr.buffer_len(payload.len())];
    let mut out_frame = EthernetFrame::new_unchecked(&mut out[..]);
    repr.emit(&mut out_frame)
        .expect("buffer_len octets are enough");
    out_frame.payload_mut().copy_from_slice(payload);
    // The header is fully determined by the repr, so the frame comes back byte for byte.
    assert_eq!(out, data);
    let reparsed = EthernetRepr::parse(&EthernetFrame::new_checked(&out[..]).unwrap()).unwrap();
    assert_eq!(reparsed, repr);
    assert!(repr
        .emit(&mut EthernetFrame::new_unchecked(
            &mut out[..header_len - 1]
        ))
        .is_err());
}

fn check_mac(mac: MacAddr) {
    assert_eq!(mac.to_string().parse::<MacAddr>(), Ok(mac));
    assert_eq!(MacAddr::from_bytes(&mac.octets()), Ok(mac));
    if mac.is_unicast() {
        assert!(!mac.is_multicast() && mac != MacAddr::UNSPECIFIED);
    }
    if mac.is_broadcast() {
        assert!(mac.is_multicast());
    }
    if mac.is_ipv6_multicast() {
        let o = mac.octets();
        let group = Ipv6Addr::from([
            0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, o[2], o[3], o[4], o[5],
        ]);
        assert_eq!(MacAddr::from_ipv6_multicast(&group), mac);
    }
    let _ = mac.is_locally_administered();
}

// ---------------------------------------------------------------------------------------------
// ipv6
// ---------------------------------------------------------------------------------------------

/// IPv6 fixed header, the extension header chain walk, and every extension header met on the
/// way through its own view and repr.
pub fn ipv6(data: &[u8]) {
    // Walk and scan the bytes as a payload too: the walker must cope with any first header.
    if let Some((&first, payload)) = data.split_first() {
        let _ = check_chain(first, payload);
    }
    let Ok(packet) = Ipv6Packet::new_checked(data) else {
        assert!(Ipv6Repr::parse(&Ipv6Packet::new_unchecked(data)).is_err());
        return;
    };
    assert_eq!(packet.version(), 6);
    let total_len = packet.total_len();
    assert_eq!(
        total_len,
        ipv6::HEADER_LEN + usize::from(packet.payload_len())
    );
    assert!(total_len <= data.len());
    let payload = packet.payload();
    assert_eq!(payload.len(), usize::from(packet.payload_len()));
    assert!(packet.flow_label() <= 0x000f_ffff);
    let _ = (packet.traffic_class(), packet.hop_limit());

    let repr = Ipv6Repr::parse(&packet).expect("a checked packet parses");
    assert_eq!(repr.src, packet.src_addr());
    assert_eq!(repr.dst, packet.dst_addr());
    assert_eq!(repr.next_header, packet.next_header());
    assert_eq!(repr.buffer_len(), total_len);
    let mut out = vec![0u8; repr.buffer_len()];
    let mut out_packet = Ipv6Packet::new_unchecked(&mut out[..]);
    repr.emit(&mut out_packet)
        .expect("buffer_len octets are enough");
    out_packet.payload_mut().copy_from_slice(payload);
    assert_eq!(out, &data[..total_len]);
    assert_eq!(
        Ipv6Repr::parse(&Ipv6Packet::new_checked(&out[..]).unwrap()),
        Ok(repr)
    );

    let chain = check_chain(packet.next_header(), payload);
    assert_eq!(ExtHeaderChain::of_packet(&packet), chain);
    if let Ok(chain) = chain {
        assert_eq!(
            chain.pseudo_header_src(repr.src),
            chain.home_address.unwrap_or(repr.src)
        );
        assert_eq!(
            chain.pseudo_header_dst(repr.dst),
            chain.type2_home_address.unwrap_or(repr.dst)
        );
    }

    let mut hop = data.to_vec();
    match decrement_hop_limit(&mut hop) {
        Ok(HopLimitVerdict::Forward(n)) => {
            assert_eq!(n, repr.hop_limit - 1);
            assert_eq!(hop[7], n);
            assert_eq!(hop[..7], data[..7]);
            assert_eq!(hop[8..], data[8..]);
        }
        Ok(HopLimitVerdict::TimeExceeded) => {
            assert!(repr.hop_limit <= 1);
            assert_eq!(hop, data);
        }
        Err(e) => panic!("decrement_hop_limit on a checked packet: {e}"),
    }
}

/// Runs [`ExtHeaderChain::walk`] and [`find_encap_limit`] over `payload`, checks what they
/// report against the bytes, and walks the same headers one by one through their views.
fn check_chain(first: u8, payload: &[u8]) -> anycast6_wire::Result<ExtHeaderChain> {
    if let Some(found) = find_encap_limit(first, payload) {
        assert_eq!(payload.get(found.offset), Some(&found.limit));
    }
    walk_headers(first, payload);
    let chain = ExtHeaderChain::walk(first, payload);
    let Ok(c) = chain else {
        return chain;
    };
    assert!(usize::from(c.header_count) <= MAX_EXT_HEADERS);
    assert!(c.upper_offset <= payload.len());
    match c.next_header_offset {
        // The octet named as holding the upper layer's protocol number does hold it.
        Some(at) => assert_eq!(payload.get(at), Some(&c.upper_layer)),
        None => {
            assert_eq!(c.upper_layer, first);
            assert_eq!(c.header_count, 0);
            assert_eq!(c.upper_offset, 0);
        }
    }
    if c.hop_by_hop {
        assert_eq!(first, proto::HOP_BY_HOP);
    }
    if let Some(f) = c.fragment {
        assert_eq!(payload.get(f.offset), Some(&f.header.next_header));
        assert!(f.offset < c.upper_offset);
    }
    if let Some(r) = c.routing {
        assert_eq!(payload.get(r.offset + 2), Some(&r.routing_type));
        assert_eq!(payload.get(r.offset + 3), Some(&r.segments_left));
        assert_ne!(r.routing_type, u8::from(RoutingType::Type2));
    }
    if let Some(limit) = c.encap_limit {
        assert_eq!(payload.get(limit.offset), Some(&limit.limit));
    }
    if let Some(u) = c.unknown_option {
        assert_eq!(payload.get(u.offset), Some(&u.option_type));
        assert_eq!(u.action, UnknownOptionAction::of(u.option_type));
        assert_ne!(u.action, UnknownOptionAction::Skip);
    }
    assert_eq!(
        c.has_upper_layer(),
        !c.is_non_first_fragment() && c.upper_layer != proto::NO_NEXT_HEADER
    );
    match c.upper_layer_bytes(payload) {
        Some(upper) => assert_eq!(upper, &payload[c.upper_offset..]),
        None => assert!(!c.has_upper_layer()),
    }
    chain
}

/// Steps through the extension headers the way the walker does, parsing each with its own
/// view and repr, until a header does not parse or the chain ends.
fn walk_headers(first: u8, payload: &[u8]) {
    let mut next_header = first;
    let mut offset = 0;
    for _ in 0..=MAX_EXT_HEADERS {
        let rest = &payload[offset..];
        let len = match next_header {
            proto::HOP_BY_HOP | proto::DEST_OPTS => options_header(rest),
            proto::ROUTING => routing_header(rest),
            proto::FRAGMENT => fragment_header(rest),
            _ => None,
        };
        let Some(len) = len else { return };
        next_header = rest[0];
        offset += len;
    }
}

/// A Hop-by-Hop or Destination Options header: returns its length when its view checks.
fn options_header(bytes: &[u8]) -> Option<usize> {
    let Ok(header) = Ipv6OptionsHeader::new_checked(bytes) else {
        assert!(Ipv6OptionsRepr::parse(&Ipv6OptionsHeader::new_unchecked(bytes)).is_err());
        return None;
    };
    let header_len = header.header_len();
    assert_eq!(header_len, (usize::from(header.hdr_ext_len()) + 1) * 8);
    assert!(header_len <= bytes.len());
    assert_eq!(header.options(), &bytes[2..header_len]);

    let mut all_parse = true;
    let mut expected_at = 2;
    for item in header.iter_options() {
        match item {
            Ok((at, option)) => {
                assert_eq!(at, expected_at);
                assert_eq!(bytes[at], option.option_type());
                assert_eq!(option.unknown_action(), UnknownOptionAction::of(bytes[at]));
                let len = option.buffer_len();
                assert!(at + len <= header_len);
                check_ipv6_option(&option, &bytes[at..at + len]);
                expected_at = at + len;
            }
            Err(_) => all_parse = false,
        }
    }
    if all_parse {
        assert_eq!(expected_at, header_len);
    }

    let repr = Ipv6OptionsRepr::parse(&header);
    assert_eq!(repr.is_ok(), all_parse);
    if let Ok(repr) = repr {
        assert_eq!(repr.next_header, bytes[0]);
        assert_eq!(repr.buffer_len(), header_len);
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
            .expect("buffer_len octets are enough");
        assert_eq!(out, &bytes[..header_len]);
    }
    if let Ok(hao) = HomeAddressDestOpts::parse(&header) {
        let mut out = vec![0u8; hao.buffer_len()];
        hao.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
            .expect("buffer_len octets are enough");
        let back = Ipv6OptionsHeader::new_checked(&out[..]).expect("emitted header checks");
        assert_eq!(back.header_len(), HomeAddressDestOpts::HEADER_LEN);
        assert_eq!(HomeAddressDestOpts::parse(&back), Ok(hao));
    }
    if let Ok(tel) = EncapLimitDestOpts::parse(&header) {
        let mut out = vec![0u8; tel.buffer_len()];
        tel.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
            .expect("buffer_len octets are enough");
        assert_eq!(out[EncapLimitDestOpts::LIMIT_OFFSET], tel.limit);
        let back = Ipv6OptionsHeader::new_checked(&out[..]).expect("emitted header checks");
        assert_eq!(EncapLimitDestOpts::parse(&back), Ok(tel));
    }
    Some(header_len)
}

/// One option parsed from `wire` (exactly its octets) emits back to an option that parses
/// equal; only PadN's data, which is not kept, may differ.
fn check_ipv6_option(option: &Ipv6Option<'_>, wire: &[u8]) {
    assert_eq!(Ipv6Option::parse(wire), Ok((*option, wire.len())));
    let mut out = vec![0u8; option.buffer_len()];
    assert_eq!(option.emit(&mut out), Ok(wire.len()));
    assert_eq!(Ipv6Option::parse(&out), Ok((*option, out.len())));
    if !matches!(option, Ipv6Option::PadN(_)) {
        assert_eq!(out, wire);
    }
}

fn routing_header(bytes: &[u8]) -> Option<usize> {
    let header = Ipv6RoutingHeader::new_checked(bytes).ok()?;
    let header_len = header.header_len();
    assert_eq!(header_len, (usize::from(header.hdr_ext_len()) + 1) * 8);
    assert!(header_len <= bytes.len());
    let routing_type = header.routing_type();
    assert_eq!(RoutingType::from(u8::from(routing_type)), routing_type);
    assert_eq!(header.type_data(), &bytes[4..header_len]);
    let _ = (header.next_header(), header.segments_left());
    match Type2RoutingRepr::parse(&header) {
        Ok(rh2) => {
            assert_eq!(header_len, Type2RoutingRepr::HEADER_LEN);
            let mut out = vec![0u8; rh2.buffer_len()];
            rh2.emit(&mut Ipv6RoutingHeader::new_unchecked(&mut out[..]))
                .expect("buffer_len octets are enough");
            // Only the Reserved field may differ from the original.
            assert_eq!(out[..4], bytes[..4]);
            assert_eq!(out[8..], bytes[8..header_len]);
            let back = Ipv6RoutingHeader::new_checked(&out[..]).expect("emitted header checks");
            assert_eq!(Type2RoutingRepr::parse(&back), Ok(rh2));
        }
        Err(_) => {
            if routing_type == RoutingType::Type2 {
                // RFC 6275 §6.4: a Type 2 header is rejected only for its length or Segments Left.
                assert!(header.hdr_ext_len() != 2 || header.segments_left() != 1);
            }
        }
    }
    Some(header_len)
}

fn fragment_header(bytes: &[u8]) -> Option<usize> {
    let header = Ipv6FragmentHeader::new_checked(bytes).ok()?;
    let repr = FragmentRepr::parse(&header).expect("a checked Fragment header parses");
    assert_eq!(repr.next_header, header.next_header());
    assert_eq!(repr.offset, header.frag_offset());
    assert!(repr.offset <= 0x1fff);
    assert_eq!(repr.more_fragments, header.more_frags());
    assert_eq!(repr.identification, header.ident());
    assert_eq!(repr.byte_offset(), usize::from(repr.offset) * 8);
    assert_eq!(repr.is_first(), repr.offset == 0);
    assert_eq!(repr.is_atomic(), repr.is_first() && !repr.more_fragments);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut out[..]))
        .expect("buffer_len octets are enough");
    let back = Ipv6FragmentHeader::new_checked(&out[..]).expect("emitted header checks");
    assert_eq!(FragmentRepr::parse(&back), Ok(repr));
    // Reserved fields aside, the emitted header is the original.
    assert_eq!(out[0], bytes[0]);
    assert_eq!(out[2..4], [bytes[2], bytes[3] & 0xf9]);
    assert_eq!(out[4..8], bytes[4..8]);
    Some(FragmentRepr::HEADER_LEN)
}

// ---------------------------------------------------------------------------------------------
// icmpv6
// ---------------------------------------------------------------------------------------------

/// (source, destination) pairs the ICMPv6 target picks from with its first input octet, so
/// that the address-dependent rules of RFC 4861 §7.1 (DAD probes from ::, solicited NAs to
/// multicast) are reachable.
const ICMPV6_ADDRS: [(Ipv6Addr, Ipv6Addr); 4] = [
    (SRC, DST),
    // DAD probe: unspecified source to the solicited-node group of 2001:db8::2.
    (
        Ipv6Addr::UNSPECIFIED,
        addr([0xff02, 0, 0, 0, 0, 1, 0xff00, 0x0002]),
    ),
    // Link-local to all-nodes.
    (
        addr([0xfe80, 0, 0, 0, 0, 0, 0, 1]),
        addr([0xff02, 0, 0, 0, 0, 0, 0, 1]),
    ),
    // Unspecified to a unicast address: an NS from :: must be refused.
    (Ipv6Addr::UNSPECIFIED, DST),
];

/// ICMPv6: first octet selects the pseudo-header addresses, the rest is the message.
pub fn icmpv6(data: &[u8]) {
    let Some((&selector, message)) = data.split_first() else {
        return;
    };
    let (src, dst) = ICMPV6_ADDRS[usize::from(selector) % ICMPV6_ADDRS.len()];
    let Ok(packet) = Icmpv6Packet::new_checked(message) else {
        assert!(Icmpv6Repr::parse(&Icmpv6Packet::new_unchecked(message), &src, &dst).is_err());
        return;
    };
    let msg_type = packet.msg_type();
    assert_eq!(Message::from(u8::from(msg_type)), msg_type);
    assert_eq!(msg_type.is_error(), icmpv6::is_error(message[0]));
    let _ = msg_type.to_string();
    let _ = (
        packet.msg_code(),
        packet.checksum(),
        packet.mtu(),
        packet.pointer(),
    );
    let _ = (packet.echo_ident(), packet.echo_seq_no());
    let _ = (
        packet.router_flag(),
        packet.solicited_flag(),
        packet.override_flag(),
    );
    let header_len = packet.header_len();
    if header_len == icmpv6::ND_HEADER_LEN {
        let _ = packet.target_addr();
    }
    assert_eq!(packet.payload(), &message[header_len..]);

    // As received: parses only when the checksum happens to verify.
    let verified = packet.verify_checksum(&src, &dst);
    let as_received = Icmpv6Repr::parse(&packet, &src, &dst);
    if !verified {
        assert_eq!(as_received, Err(Error::Checksum("ICMPv6")));
    }

    // With the checksum made right, the semantic checks decide.
    let mut fixed = message.to_vec();
    let mut fixed_packet = Icmpv6Packet::new_checked(&mut fixed[..]).unwrap();
    fixed_packet.fill_checksum(&src, &dst);
    assert!(fixed_packet.verify_checksum(&src, &dst));
    let fixed_packet = Icmpv6Packet::new_checked(&fixed[..]).unwrap();
    let result = Icmpv6Repr::parse(&fixed_packet, &src, &dst);
    if verified {
        assert_eq!(as_received, result);
    }
    match result {
        Ok(repr) => check_icmpv6_repr(&repr, msg_type, &src, &dst),
        Err(e) => {
            assert!(!matches!(e, Error::Checksum(_)), "checksum was filled: {e}");
            // Only NS and NA have semantic checks.
            assert!(matches!(
                msg_type,
                Message::NeighborSolicit | Message::NeighborAdvert
            ));
        }
    }

    // RFC 4443 §2.4: never an error about an error, and the quote fits the minimum MTU.
    let invoking = InvokingPacket {
        src_addr: src,
        dst_addr: dst,
        link_multicast: selector & 0x80 != 0,
        icmp_type: Some(message[0]),
        src_known_anycast: selector & 0x40 != 0,
    };
    for kind in [
        ErrorKind::DstUnreachable,
        ErrorKind::PacketTooBig,
        ErrorKind::TimeExceeded,
        ErrorKind::ErroneousHeaderField,
        ErrorKind::UnrecognizedNextHeader,
        ErrorKind::UnrecognizedOption {
            option_type: message[1],
        },
    ] {
        let allowed = icmpv6::may_send_error(&invoking, kind);
        if icmpv6::is_error(message[0]) || src.is_unspecified() || invoking.src_known_anycast {
            assert!(!allowed);
        }
    }
    let extra = usize::from(message[1]) * 8;
    let quoted = icmpv6::truncate_invoking(message, extra);
    assert!(quoted.len() <= icmpv6::invoking_budget(extra));
    assert_eq!(quoted, &message[..quoted.len()]);
}

fn check_icmpv6_repr(repr: &Icmpv6Repr<'_>, msg_type: Message, src: &Ipv6Addr, dst: &Ipv6Addr) {
    assert_eq!(repr.msg_type(), msg_type);
    assert_eq!(
        repr.invoking().is_some(),
        matches!(
            msg_type,
            Message::DstUnreachable
                | Message::PacketTooBig
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    );
    let emitted = emit_icmpv6(repr, src, dst);
    let back = Icmpv6Packet::new_checked(&emitted[..]).expect("emitted message checks");
    assert!(back.verify_checksum(src, dst));
    assert_eq!(Icmpv6Repr::parse(&back, src, dst).as_ref(), Ok(repr));
    // A buffer of the wrong size is refused.
    let mut longer = vec![0u8; emitted.len() + 1];
    assert!(repr
        .emit(&mut Icmpv6Packet::new_unchecked(&mut longer[..]), src, dst)
        .is_err());
    if let Some(reply) = repr.echo_reply() {
        assert_eq!(reply.msg_type(), Message::EchoReply);
        // The reply goes back the way the request came, from its destination.
        let reply_bytes = emit_icmpv6(&reply, dst, src);
        let back = Icmpv6Packet::new_checked(&reply_bytes[..]).unwrap();
        assert_eq!(Icmpv6Repr::parse(&back, dst, src), Ok(reply));
        assert_eq!(reply_bytes[4..], emitted[4..]);
    } else {
        assert_ne!(msg_type, Message::EchoRequest);
    }
}

fn emit_icmpv6(repr: &Icmpv6Repr<'_>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv6Packet::new_unchecked(&mut out[..]), src, dst)
        .expect("buffer_len octets are enough");
    out
}

// ---------------------------------------------------------------------------------------------
// udp_tcp
// ---------------------------------------------------------------------------------------------

/// The same bytes as a UDP datagram and as a TCP segment.
pub fn udp_tcp(data: &[u8]) {
    udp(data);
    tcp(data);
}

fn udp(data: &[u8]) {
    let Ok(packet) = UdpPacket::new_checked(data) else {
        assert!(UdpRepr::parse(&UdpPacket::new_unchecked(data), &SRC, &DST).is_err());
        return;
    };
    let length = usize::from(packet.length());
    assert!((8..=data.len()).contains(&length));
    assert_eq!(packet.payload(), &data[8..length]);
    let _ = (packet.src_port(), packet.dst_port());
    let as_received = UdpRepr::parse(&packet, &SRC, &DST);
    assert_eq!(
        as_received.is_ok(),
        packet.checksum() != 0 && packet.verify_checksum(&SRC, &DST)
    );

    let mut fixed = data.to_vec();
    UdpPacket::new_checked(&mut fixed[..])
        .unwrap()
        .fill_checksum(&SRC, &DST);
    let fixed_packet = UdpPacket::new_checked(&fixed[..]).unwrap();
    assert_ne!(
        fixed_packet.checksum(),
        0,
        "RFC 8200 §8.1: zero is sent as all ones"
    );
    // A UDP header has no semantic checks beyond the checksum.
    let repr = UdpRepr::parse(&fixed_packet, &SRC, &DST).expect("checksummed datagram parses");
    assert_eq!(
        (repr.src_port, repr.dst_port),
        (packet.src_port(), packet.dst_port())
    );
    if let Ok(received) = as_received {
        assert_eq!(received, repr);
    }

    let payload = fixed_packet.payload();
    let mut out = vec![0u8; repr.buffer_len(payload.len())];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut out[..]),
        &SRC,
        &DST,
        payload,
    )
    .expect("buffer_len octets are enough");
    assert_eq!(out, &fixed[..length]);
    let back = UdpPacket::new_checked(&out[..]).unwrap();
    assert_eq!(UdpRepr::parse(&back, &SRC, &DST), Ok(repr));
    assert_eq!(back.payload(), payload);
}

fn tcp(data: &[u8]) {
    let Ok(packet) = TcpPacket::new_checked(data) else {
        assert!(TcpRepr::parse(&TcpPacket::new_unchecked(data), &SRC, &DST).is_err());
        return;
    };
    let header_len = packet.header_len();
    assert!((20..=60).contains(&header_len) && header_len <= data.len());
    assert_eq!(packet.options(), &data[20..header_len]);
    assert_eq!(packet.payload(), &data[header_len..]);
    let flags = packet.flags();
    assert_eq!(TcpFlags::from_bits(flags.bits()), flags);
    let _ = (flags.to_string(), format!("{flags:?}"));
    let _ = (packet.src_port(), packet.dst_port(), packet.seq_number());
    let _ = (packet.ack_number(), packet.window_len(), packet.urgent_at());
    let verified = packet.verify_checksum(&SRC, &DST);
    let as_received = TcpRepr::parse(&packet, &SRC, &DST);
    if !verified {
        assert_eq!(as_received, Err(Error::Checksum("TCP")));
    }

    let mut fixed = data.to_vec();
    TcpPacket::new_checked(&mut fixed[..])
        .unwrap()
        .fill_checksum(&SRC, &DST);
    let fixed_packet = TcpPacket::new_checked(&fixed[..]).unwrap();
    assert!(fixed_packet.verify_checksum(&SRC, &DST));
    let result = TcpRepr::parse(&fixed_packet, &SRC, &DST);
    if verified {
        assert_eq!(as_received, result);
    }
    let repr = match result {
        Ok(repr) => repr,
        Err(e) => {
            assert!(
                matches!(e, Error::Malformed(_)),
                "only options can be wrong: {e}"
            );
            return;
        }
    };
    assert_eq!(repr.flags, flags);
    let payload = fixed_packet.payload();
    let out = emit_tcp(&repr, payload, &SRC, &DST);
    let back = TcpPacket::new_checked(&out[..]).unwrap();
    assert_eq!(TcpRepr::parse(&back, &SRC, &DST), Ok(repr));
    assert_eq!(back.payload(), payload);
    assert_eq!(
        repr.segment_len(payload.len()),
        payload.len()
            + usize::from(flags.contains(TcpFlags::SYN))
            + usize::from(flags.contains(TcpFlags::FIN))
    );
    match repr.rst_reply(payload.len()) {
        Some(rst) => {
            assert!(!flags.contains(TcpFlags::RST));
            assert!(rst.flags.contains(TcpFlags::RST));
            assert_eq!((rst.src_port, rst.dst_port), (repr.dst_port, repr.src_port));
            let out = emit_tcp(&rst, &[], &DST, &SRC);
            let back = TcpPacket::new_checked(&out[..]).unwrap();
            assert_eq!(TcpRepr::parse(&back, &DST, &SRC), Ok(rst));
            // RFC 9293 §3.10.7.1: a reset is never answered.
            assert_eq!(rst.rst_reply(0), None);
        }
        None => assert!(flags.contains(TcpFlags::RST)),
    }
}

fn emit_tcp(repr: &TcpRepr, payload: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
    let mut out = vec![0u8; repr.buffer_len(payload.len())];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut out[..]),
        src,
        dst,
        payload,
    )
    .expect("buffer_len octets are enough");
    out
}

// ---------------------------------------------------------------------------------------------
// mobility
// ---------------------------------------------------------------------------------------------

/// Binding management key of the return-routability target.
const KBM: [u8; rr::KBM_LEN] = [0x5a; rr::KBM_LEN];
/// MN-HA shared key of the RFC 4285 target.
const MN_HA_KEY: &[u8] = b"anycast6 fuzz mn-ha key";

/// Mobility Header: view, options, RFC 6275 §9.2 receive checks, repr round trip, and both
/// authenticators.
pub fn mobility(data: &[u8]) {
    let Ok(packet) = MhPacket::new_checked(data) else {
        assert!(MhRepr::parse(&MhPacket::new_unchecked(data)).is_err());
        assert!(rr::verify_authenticator(&KBM, &SRC, &DST, data).is_err());
        assert!(auth::verify_mn_ha(MN_HA_KEY, &SRC, &DST, data).is_err());
        return;
    };
    let total_len = packet.total_len();
    assert_eq!(total_len, (usize::from(packet.header_len()) + 1) * 8);
    let mh = packet.as_bytes();
    assert_eq!(mh, &data[..total_len]);
    assert_eq!(packet.message_data(), &mh[mobility::HEADER_LEN..]);
    let mh_type = packet.mh_type();
    assert_eq!(MhType::from(u8::from(mh_type)), mh_type);
    let _ = (packet.payload_proto(), packet.reserved(), packet.checksum());
    let options_ok = check_mh_options(&packet);
    assert_eq!(packet.last_option().is_ok(), options_ok);

    // As received: a bad checksum is the first rejection (RFC 6275 §9.2).
    let verified = packet.verify_checksum(&SRC, &DST);
    assert_eq!(verified, mobility::verify_checksum(&SRC, &DST, mh));
    if !verified {
        assert_eq!(
            check_receive(&packet, &SRC, &DST),
            Err(MhRejection::BadChecksum)
        );
    }

    let mut fixed = mh.to_vec();
    mobility::fill_checksum(&SRC, &DST, &mut fixed).expect("a checked MH takes a checksum");
    let fixed_packet = MhPacket::new_checked(&fixed[..]).unwrap();
    assert!(fixed_packet.verify_checksum(&SRC, &DST));
    assert_eq!(
        mobility::mh_checksum(&SRC, &DST, &fixed),
        fixed_packet.checksum()
    );
    let receive = check_receive(&fixed_packet, &SRC, &DST);
    if let Err(rejection) = receive {
        assert_ne!(rejection, MhRejection::BadChecksum);
        let _ = rejection.response();
    }
    let parsed = MhRepr::parse(&fixed_packet);
    assert_eq!(
        MhRepr::parse(&packet),
        parsed,
        "the checksum is not MhRepr's business"
    );
    match (&receive, &parsed) {
        // The receive checks passed: only a malformed option can still fail the parse.
        (Ok(t), Err(_)) => {
            assert_eq!(*t, mh_type);
            assert!(!options_ok);
        }
        (Ok(t), Ok(repr)) => assert_eq!(*t, repr.mh_type()),
        // A known type that parses passes the receive checks.
        (Err(rejection), Ok(repr)) => {
            assert!(!repr.mh_type().is_known());
            assert_eq!(*rejection, MhRejection::UnknownType(u8::from(mh_type)));
        }
        (Err(_), Err(_)) => {}
    }
    if let Ok(repr) = parsed {
        check_mh_repr(&repr, total_len);
    }
    check_rr_authenticator(&fixed);
    check_mn_ha(&fixed);
}

/// Iterates the options of a checked MH, checking positions and each option's round trip;
/// returns whether all of them parsed.
fn check_mh_options(packet: &MhPacket<&[u8]>) -> bool {
    let mh = packet.as_bytes();
    let mut it = packet.options();
    let start = packet.options_offset().unwrap_or(packet.total_len());
    assert_eq!(it.position(), start);
    loop {
        let at = it.position();
        match it.next() {
            None => {
                assert!(at <= packet.total_len());
                return true;
            }
            Some(Ok(option)) => {
                let len = option.buffer_len();
                assert_eq!(it.position(), at + len);
                assert!(at + len <= packet.total_len());
                check_mobility_option(&option, &mh[at..at + len]);
            }
            Some(Err(_)) => {
                assert!(it.next().is_none(), "the iterator stops after an error");
                return false;
            }
        }
    }
}

fn check_mobility_option(option: &MobilityOption<'_>, wire: &[u8]) {
    assert_eq!(MobilityOption::parse(wire), Ok((*option, wire.len())));
    assert_eq!(u8::from(option.option_type()), wire[0]);
    if !matches!(option, MobilityOption::Pad1) {
        assert_eq!(option.data_len(), usize::from(wire[1]));
    }
    let alignment = option.alignment();
    for pos in 0..16 {
        assert!(alignment.is_aligned(pos + alignment.padding_before(pos)));
    }
    let _ = option.must_be_last();
    let mut out = vec![0u8; option.buffer_len()];
    assert_eq!(option.emit(&mut out), Ok(wire.len()));
    assert_eq!(MobilityOption::parse(&out), Ok((*option, out.len())));
    if !matches!(option, MobilityOption::PadN(_)) {
        assert_eq!(out, wire);
    }
}

fn check_mh_repr(repr: &MhRepr<'_>, total_len: usize) {
    let mut count = 0;
    for option in repr.options.iter() {
        option.expect("parse validated every option");
        count += 1;
    }
    assert_eq!(repr.options.is_empty(), count == 0);
    if let Some((home, care_of)) = repr.nonce_indices() {
        assert_eq!(
            repr.find_option(OptionType::NonceIndices),
            Some(MobilityOption::NonceIndices { home, care_of })
        );
    }
    let _ = (repr.alternate_care_of(), repr.binding_refresh_advice());
    if let Some(auth) = repr.binding_auth_data() {
        assert_eq!(
            repr.find_option(OptionType::BindingAuthData),
            Some(MobilityOption::BindingAuthData(auth))
        );
    }
    // Parsed options are kept as found, so the MH is laid out to the same length.
    assert_eq!(repr.buffer_len(), Ok(total_len));
    let mut out = vec![0u8; total_len];
    repr.emit(&mut MhPacket::new_unchecked(&mut out[..]))
        .expect("buffer_len octets are enough");
    let back = MhPacket::new_checked(&out[..]).expect("emitted MH checks");
    assert_eq!(back.total_len(), total_len);
    assert_eq!(back.checksum(), 0, "emit leaves the checksum to the caller");
    assert_eq!(MhRepr::parse(&back).as_ref(), Ok(repr));
    if let MhOptions::Wire(bytes) = repr.options {
        let fixed = total_len - bytes.len();
        for option in MobilityOptionIter::new(bytes, fixed) {
            option.expect("parse validated every option");
        }
    }
}

/// RFC 6275 §5.2.6: an MH whose last option is Binding Authorization Data can be signed,
/// and then verifies; any other MH is refused by all three functions alike.
fn check_rr_authenticator(mh: &[u8]) {
    let coa = SRC;
    let cn = DST;
    let verdict = rr::verify_authenticator(&KBM, &coa, &cn, mh);
    let computed = rr::compute_authenticator(&KBM, &coa, &cn, mh);
    let mut signed = mh.to_vec();
    let inserted = rr::insert_authenticator(&KBM, &coa, &cn, &mut signed);
    assert_eq!(verdict.is_ok(), computed.is_ok());
    assert_eq!(verdict.is_ok(), inserted.is_ok());
    let Ok(auth) = computed else {
        assert_eq!(signed, mh, "a refused MH is left alone");
        return;
    };
    let end = signed.len();
    assert_eq!(signed[end - rr::AUTHENTICATOR_LEN..], auth);
    assert_eq!(
        signed[..end - rr::AUTHENTICATOR_LEN],
        mh[..end - rr::AUTHENTICATOR_LEN]
    );
    assert_eq!(verdict, Ok(mh[end - rr::AUTHENTICATOR_LEN..] == auth));
    assert_eq!(rr::verify_authenticator(&KBM, &coa, &cn, &signed), Ok(true));
    // The authenticator covers the addresses.
    assert_eq!(
        rr::verify_authenticator(&KBM, &cn, &coa, &signed),
        Ok(false)
    );
    let mut with_checksum = mh.to_vec();
    rr::insert_authenticator_and_fill_checksum(&KBM, &coa, &cn, &mut with_checksum, &SRC, &DST)
        .expect("the MH was signed once already");
    assert!(mobility::verify_checksum(&SRC, &DST, &with_checksum));
    assert_eq!(
        rr::verify_authenticator(&KBM, &coa, &cn, &with_checksum),
        Ok(true)
    );
}

/// RFC 4285 §5: the same for the MN-HA Mobility Message Authentication option.
fn check_mn_ha(mh: &[u8]) {
    let coa = SRC;
    let home = DST;
    let verdict = auth::verify_mn_ha(MN_HA_KEY, &coa, &home, mh);
    let computed = auth::compute_mn_ha(MN_HA_KEY, &coa, &home, mh);
    let mut signed = mh.to_vec();
    let inserted = auth::insert_mn_ha(MN_HA_KEY, &coa, &home, &mut signed);
    assert_eq!(verdict.is_ok(), computed.is_ok());
    assert_eq!(verdict.is_ok(), inserted.is_ok());
    let Ok(mac) = computed else {
        assert_eq!(signed, mh, "a refused MH is left alone");
        return;
    };
    let end = signed.len();
    let at = end - auth::MN_HA_AUTH_DATA_LEN;
    assert_eq!(signed[at..], mac);
    assert_eq!(signed[..at], mh[..at]);
    assert_eq!(verdict, Ok(mh[at..] == mac));
    assert_eq!(
        auth::verify_mn_ha(MN_HA_KEY, &coa, &home, &signed),
        Ok(true)
    );
    assert_eq!(
        auth::verify_mn_ha(b"another key", &coa, &home, &signed),
        Ok(false)
    );
    let mut with_checksum = mh.to_vec();
    auth::insert_mn_ha_and_fill_checksum(MN_HA_KEY, &coa, &home, &mut with_checksum, &SRC, &DST)
        .expect("the MH was signed once already");
    assert!(mobility::verify_checksum(&SRC, &DST, &with_checksum));
    assert_eq!(
        auth::verify_mn_ha(MN_HA_KEY, &coa, &home, &with_checksum),
        Ok(true)
    );
}

// ---------------------------------------------------------------------------------------------
// tunnel
// ---------------------------------------------------------------------------------------------

const TUNNEL_ENTRY: Ipv6Addr = addr([0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1]);
const TUNNEL_EXIT: Ipv6Addr = addr([0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 2]);

/// RFC 2473 tunnelling: first octet selects the tunnel parameters and the headroom, the rest
/// is an IPv6 packet (or not) to decapsulate and to encapsulate.
pub fn tunnel(data: &[u8]) {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let params = TunnelParams {
        src: TUNNEL_ENTRY,
        dst: TUNNEL_EXIT,
        hop_limit: tunnel::DEFAULT_HOP_LIMIT,
        traffic_class: if selector & 1 == 0 {
            TrafficClass::CopyInner
        } else {
            TrafficClass::Fixed(0xb8)
        },
        flow_label: 0x12345,
        encap_limit: match (selector >> 1) & 3 {
            0 => None,
            1 => Some(0),
            2 => Some(tunnel::DEFAULT_ENCAP_LIMIT),
            _ => Some(u8::MAX),
        },
    };
    // Mostly the DPDK headroom; sometimes too little for the tunnel headers.
    let headroom = match (selector >> 3) & 3 {
        0 => 0,
        1 => ipv6::HEADER_LEN,
        _ => anycast6_wire::buf::DEFAULT_HEADROOM,
    };
    check_decapsulate(packet);
    check_encapsulate(packet, &params, headroom);
}

fn check_decapsulate(packet: &[u8]) {
    let mut buf = VecBuf::from_slice(packet);
    let before = buf.clone();
    let info = match decapsulate(&mut buf) {
        Ok(info) => info,
        Err(_) => {
            assert_eq!(
                buf, before,
                "a failed decapsulation leaves the buffer unchanged"
            );
            return;
        }
    };
    let outer = Ipv6Packet::new_checked(packet).expect("a decapsulated packet had an outer header");
    assert_eq!(
        (info.src, info.dst, info.hop_limit),
        (outer.src_addr(), outer.dst_addr(), outer.hop_limit())
    );
    assert_eq!(
        (info.traffic_class, info.flow_label),
        (outer.traffic_class(), outer.flow_label())
    );
    assert!(info.header_len >= ipv6::HEADER_LEN);
    if outer.next_header() == proto::IPV6 {
        assert_eq!(
            (info.header_len, info.encap_limit),
            (ipv6::HEADER_LEN, None)
        );
    } else {
        assert_eq!(outer.next_header(), proto::DEST_OPTS);
        assert!(info.header_len > ipv6::HEADER_LEN);
    }
    let inner = buf.data();
    let checked = Ipv6Packet::new_checked(inner).expect("decapsulate leaves an IPv6 packet");
    assert_eq!(
        checked.total_len(),
        inner.len(),
        "no trailing octets are left"
    );
    assert_eq!(
        inner,
        &packet[info.header_len..info.header_len + inner.len()]
    );
    assert_eq!(buf.headroom(), before.headroom() + info.header_len);
}

fn check_encapsulate(packet: &[u8], params: &TunnelParams, headroom: usize) {
    let mut buf = VecBuf::from_slice_with_room(packet, headroom, 16);
    let before = buf.clone();
    let outcome = encapsulate(&mut buf, params);
    let (header_len, encap_limit) = match outcome {
        Err(_) => {
            assert_eq!(
                buf, before,
                "a failed encapsulation leaves the buffer unchanged"
            );
            return;
        }
        Ok(EncapOutcome::EncapLimitExceeded { pointer }) => {
            assert_eq!(
                buf, before,
                "RFC 2473 §5.1 (b): the packet is not encapsulated"
            );
            assert_eq!(packet.get(pointer as usize), Some(&0));
            return;
        }
        Ok(EncapOutcome::Encapsulated {
            header_len,
            encap_limit,
        }) => (header_len, encap_limit),
    };
    let inner = Ipv6Packet::new_checked(packet).expect("an encapsulated packet was IPv6");
    let inner_bytes = &packet[..inner.total_len()];
    assert!(header_len <= tunnel::MAX_OVERHEAD);
    assert_eq!(buf.len(), header_len + inner_bytes.len());
    assert_eq!(&buf.data()[header_len..], inner_bytes);
    let outer = Ipv6Repr::parse(&Ipv6Packet::new_checked(buf.data()).unwrap()).unwrap();
    assert_eq!(outer.payload_len + ipv6::HEADER_LEN, buf.len());

    let info = decapsulate(&mut buf).expect("a packet just encapsulated decapsulates");
    assert_eq!(
        buf.data(),
        inner_bytes,
        "the tunnel returns the packet it was given"
    );
    assert_eq!(info.header_len, header_len);
    assert_eq!(info.encap_limit, encap_limit);
    assert_eq!((info.src, info.dst), (params.src, params.dst));
    assert_eq!(
        (info.hop_limit, info.flow_label),
        (params.hop_limit, params.flow_label)
    );
    let traffic_class = match params.traffic_class {
        TrafficClass::CopyInner => inner.traffic_class(),
        TrafficClass::Fixed(tc) => tc,
    };
    assert_eq!(info.traffic_class, traffic_class);
    match find_encap_limit(inner.next_header(), inner.payload()) {
        // RFC 2473 §5.1 (c): the packet's own limit, less one, wins over the tunnel's.
        Some(own) => assert_eq!(encap_limit, Some(own.limit - 1)),
        None => assert_eq!(encap_limit, params.encap_limit),
    }
}

// ---------------------------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------------------------

/// `anycast6 decode` on a whole frame: never panics, emits valid JSON, and the JSON, the text
/// line and `error()` agree.
pub fn decode(data: &[u8]) {
    const NUMBER: u64 = 42;
    let frame = decode_frame(data);
    let object = frame.to_json(NUMBER);
    let text = serde_json::to_string(&object).expect("a JSON map serialises");
    let value: serde_json::Value = serde_json::from_str(&text).expect("decode emits valid JSON");
    let object = value.as_object().expect("a frame decodes to a JSON object");
    assert_eq!(
        object.get("frame.number"),
        Some(&serde_json::Value::from(NUMBER))
    );
    assert_eq!(
        object.get("summary").and_then(|s| s.as_str()),
        Some(frame.summary())
    );
    assert_eq!(object.get("error").and_then(|e| e.as_str()), frame.error());
    if let Some(ok) = object.get("checksum_ok") {
        assert!(ok.is_boolean());
    }
    let line = frame.to_line(NUMBER);
    assert!(!line.contains('\n'), "one line per frame");
    let head = format!("{NUMBER} {}", frame.summary());
    match frame.error() {
        Some(error) => {
            assert!(!error.is_empty());
            assert_eq!(line, format!("{head} [error: {error}]"));
        }
        None => assert_eq!(line, head),
    }
    assert_eq!(frame.summary(), frame.summary().trim_end());
    if data.len() < 14 {
        assert!(
            frame.error().is_some(),
            "a frame shorter than its header is an error"
        );
    }
    // Decoding is a pure function of the bytes.
    assert_eq!(decode_frame(data).to_json(NUMBER), frame.to_json(NUMBER));
}

/// The whole data-plane pipeline on arbitrary frames: `Worker::process` never panics, its
/// counters stay consistent (`rx == forwarded + reversed + exceptions + drops`), and every
/// frame it sends parses as Ethernet + IPv6 (an ICMPv6 error with a valid checksum).
///
/// The first input byte picks the receiving port, whether a valid Ethernet header for the
/// appliance is put in front of the rest (so the fuzzer spends its time past layer 2), and
/// the snapshot (with or without a Tunnel Encapsulation Limit; a 1300-byte member link, so
/// that outer fragmentation is reachable).
pub fn pipeline(data: &[u8]) {
    use anycast6::dataplane::pipeline::{ExtraTx, Tick, Verdict, Worker, WorkerConfig};
    use anycast6::dataplane::snapshot::{
        AffinityMode, IcmpRateSpec, MemberSpec, MemberStatus, PortSpec, ServiceSpec, Snapshot,
        SnapshotSpec, TunnelSpec,
    };
    use std::sync::OnceLock;

    struct Extra(Vec<VecBuf>);
    impl ExtraTx<VecBuf> for Extra {
        fn alloc(&mut self) -> Option<VecBuf> {
            Some(VecBuf::with_room(128, 2048))
        }
        fn send_after(&mut self, _port: u16, buf: VecBuf) {
            self.0.push(buf);
        }
    }

    const PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    fn snapshot(encap_limit: Option<u8>) -> Snapshot {
        let member = |id: u32, last: u16, status| MemberSpec {
            id,
            epoch: 1,
            care_of: addr([0x2001, 0xdb8, 2, 0, 0, 0, 0, last]),
            weight: id,
            status,
            mac: None,
            stats_slot: id as u16,
        };
        let spec = SnapshotSpec {
            tunnel: TunnelSpec {
                address: addr([0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 1]),
                hop_limit: 64,
                traffic_class: TrafficClass::CopyInner,
                encap_limit,
            },
            local_addresses: vec![addr([0xfe80, 0, 0, 0, 0, 0, 0, 1])],
            ports: vec![
                PortSpec {
                    mac: PORT_MAC,
                    link_mtu: 1500,
                    next_hop_mac: Some(MacAddr([2, 0, 0, 0, 0, 0xfe])),
                },
                PortSpec {
                    mac: MacAddr([2, 0, 0, 0, 0, 2]),
                    link_mtu: 1300,
                    next_hop_mac: None,
                },
            ],
            services: vec![
                ServiceSpec {
                    address: addr([0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 1]),
                    affinity: AffinityMode::Client,
                    port: 0,
                    maglev_size: 251,
                    members: vec![
                        member(1, 0x10, MemberStatus::Active),
                        member(2, 0x11, MemberStatus::Draining),
                        member(3, 0x12, MemberStatus::Down),
                    ],
                },
                ServiceSpec {
                    address: addr([0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2]),
                    affinity: AffinityMode::Flow,
                    port: 1,
                    maglev_size: 251,
                    members: vec![member(4, 0x20, MemberStatus::Active)],
                },
            ],
            icmp_rate: IcmpRateSpec::default(),
        };
        Snapshot::build(&spec).expect("the fuzz snapshot is valid")
    }
    static PLAIN: OnceLock<Snapshot> = OnceLock::new();
    static WITH_TEL: OnceLock<Snapshot> = OnceLock::new();

    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let snap = if selector & 0x04 != 0 {
        WITH_TEL.get_or_init(|| snapshot(Some(4)))
    } else {
        PLAIN.get_or_init(|| snapshot(None))
    };
    let rx_port = u16::from(selector & 0x03);
    let mut frame = Vec::with_capacity(rest.len() + 14);
    if selector & 0x08 != 0 {
        let eth = EthernetRepr {
            dst: PORT_MAC,
            src: MacAddr([2, 0, 0, 0, 0, 0xfe]),
            vlan: None,
            ethertype: EtherType::Ipv6,
        };
        frame.resize(14, 0);
        eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]))
            .expect("14 bytes");
    }
    frame.extend_from_slice(rest);

    let config = WorkerConfig {
        id: 1,
        affinity_capacity: 1024,
        affinity_idle_timeout: 30,
        icmp_rate: IcmpRateSpec::default(),
    };
    let mut worker = Worker::new(config, Tick::from_millis(0)).expect("worker");
    let mut extra = Extra(Vec::new());
    let mut buf = VecBuf::from_slice_with_room(&frame, 128, 2048);
    let verdict = worker.process(snap, &mut buf, rx_port, Tick::from_millis(5), &mut extra);
    assert!(
        worker.counters().is_consistent(),
        "counters inconsistent after {verdict:?}"
    );
    // The staged burst path decides and rewrites exactly as the one-packet path.
    let mut burst_worker = Worker::new(config, Tick::from_millis(0)).expect("worker");
    let mut burst_extra = Extra(Vec::new());
    let mut burst = [VecBuf::from_slice_with_room(&frame, 128, 2048)];
    let mut burst_verdict = [Verdict::Exception];
    burst_worker.process_burst(
        snap,
        &mut burst,
        rx_port,
        Tick::from_millis(5),
        &mut burst_extra,
        &mut burst_verdict,
    );
    assert_eq!(burst_verdict[0], verdict, "process_burst verdict");
    assert_eq!(burst[0].data(), buf.data(), "process_burst bytes");
    assert_eq!(burst_worker.counters(), worker.counters());
    let sent: Vec<&[u8]> = match verdict {
        Verdict::Forward { .. } | Verdict::Reverse { .. } | Verdict::IcmpError { .. } => {
            std::iter::once(buf.data())
                .chain(extra.0.iter().map(|b| b.data()))
                .collect()
        }
        Verdict::Exception => {
            assert_eq!(
                buf.data(),
                &frame[..],
                "an exception frame is handed over untouched"
            );
            Vec::new()
        }
        Verdict::Drop(_) => Vec::new(),
    };
    for out in sent {
        let eth = EthernetFrame::new_checked(out).expect("sent frames have an Ethernet header");
        assert_eq!(eth.ethertype(), EtherType::Ipv6);
        let ip = Ipv6Packet::new_checked(eth.payload()).expect("sent frames are IPv6");
        if let Verdict::IcmpError { .. } = verdict {
            assert!(
                ip.total_len() <= ipv6::MIN_MTU,
                "RFC 4443 §2.4(c): errors fit in 1280 octets"
            );
            let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("ICMPv6 error");
            assert!(
                icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()),
                "error checksum"
            );
        }
    }
}
