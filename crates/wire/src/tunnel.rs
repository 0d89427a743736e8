//! Generic packet tunnelling in IPv6 (RFC 2473), IPv6 in IPv6, on a [`PacketBuf`] that holds
//! an IPv6 packet starting at its fixed header (no link-layer header).
//!
//! ```text
//! encapsulated: | outer IPv6 (NH 41) | inner IPv6 packet |
//!          or:  | outer IPv6 (NH 60) | DestOpts: TEL (NH 41), 8 octets | inner IPv6 packet |
//! ```
//!
//! Entering a tunnel is forwarding: the caller decrements the inner Hop Limit first with
//! [`decrement_hop_limit`] (RFC 2473 §3.1), then calls [`encapsulate`].

use std::net::Ipv6Addr;

use crate::checksum::proto;
use crate::ipv6::{self, Ipv6Packet, Ipv6Repr};
use crate::ipv6ext::{
    find_encap_limit, EncapLimitDestOpts, Ipv6Option, Ipv6OptionsHeader, UnknownOptionAction,
};
use crate::{Error, PacketBuf, Result};

/// Recommended default Tunnel Encapsulation Limit (RFC 2473 §6.6).
pub const DEFAULT_ENCAP_LIMIT: u8 = 4;
/// Default tunnel Hop Limit of a router entry point (RFC 2473 §6.3).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
/// Largest header a tunnel adds: the outer IPv6 header and a Destination Options header
/// carrying a Tunnel Encapsulation Limit.
pub const MAX_OVERHEAD: usize = ipv6::HEADER_LEN + EncapLimitDestOpts::HEADER_LEN;

/// How the outer Traffic Class is chosen (RFC 2473 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrafficClass {
    /// Copy the inner packet's Traffic Class.
    CopyInner,
    /// Use this value.
    Fixed(u8),
}

/// The tunnel an entry point encapsulates into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelParams {
    /// Entry-point address: outer source (§6.1).
    pub src: Ipv6Addr,
    /// Exit-point address: outer destination (§6.2).
    pub dst: Ipv6Addr,
    /// Outer Hop Limit, independent of the inner one (§6.3).
    pub hop_limit: u8,
    pub traffic_class: TrafficClass,
    /// Outer Flow Label, 20 bits (§6.5).
    pub flow_label: u32,
    /// Limit put on packets that do not carry their own (§5.1 (d)); `None` adds no option.
    pub encap_limit: Option<u8>,
}

impl TunnelParams {
    /// Checks the parameters describe a usable tunnel: entry and exit differ (RFC 2473
    /// §4.1.2), the Hop Limit is not 0, the Flow Label fits 20 bits.
    pub fn check(&self) -> Result<()> {
        if self.src == self.dst {
            return Err(Error::Unsupported(
                "tunnel whose entry and exit point are the same address (RFC 2473 §4.1.2)",
            ));
        }
        if self.hop_limit == 0 {
            return Err(Error::Malformed("tunnel hop limit (0)"));
        }
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Malformed("tunnel flow label (over 20 bits)"));
        }
        Ok(())
    }
}

/// Octets [`encapsulate`] adds for a packet that carries no Tunnel Encapsulation Limit of its
/// own: 40, or 48 when the tunnel has a configured limit. A packet arriving with its own
/// limit always gets the option (RFC 2473 §5.1 (c)), so [`MAX_OVERHEAD`] bounds every case
/// and [`EncapOutcome::Encapsulated`] reports what was actually added.
pub const fn overhead(p: &TunnelParams) -> usize {
    if p.encap_limit.is_some() {
        MAX_OVERHEAD
    } else {
        ipv6::HEADER_LEN
    }
}

/// What [`encapsulate`] did.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncapOutcome {
    /// The packet is now a tunnel packet.
    Encapsulated {
        /// Octets prepended (40 or 48).
        header_len: usize,
        /// The limit in the added option, if one was added.
        encap_limit: Option<u8>,
    },
    /// RFC 2473 §5.1 (b): the packet carries a Tunnel Encapsulation Limit of 0, so it must
    /// not be encapsulated. The buffer is unchanged; the caller discards the packet and sends
    /// ICMPv6 Parameter Problem code 0 to its source with this pointer (the offset of the
    /// limit octet from the start of the packet's IPv6 header).
    EncapLimitExceeded { pointer: u32 },
}

/// Encapsulates the IPv6 packet in `buf` into the tunnel `p` (RFC 2473 §3.1, §5.1).
///
/// Bytes after the inner packet's Payload Length (link-layer padding) are dropped first.
/// Fails without changing the buffer when the inner packet does not parse, `p` is not
/// usable ([`TunnelParams::check`]), the inner (source, destination) equals the tunnel's
/// (loopback encapsulation, RFC 2473 §4.1.2), the result would exceed 65535 payload octets,
/// or the headroom is short.
pub fn encapsulate(buf: &mut impl PacketBuf, p: &TunnelParams) -> Result<EncapOutcome> {
    p.check()?;
    let inner = Ipv6Packet::new_checked(buf.data())?;
    if inner.src_addr() == p.src && inner.dst_addr() == p.dst {
        return Err(Error::Unsupported(
            "loopback encapsulation: inner addresses equal the tunnel's (RFC 2473 §4.1.2)",
        ));
    }
    let inner_len = inner.total_len();
    let encap_limit = match find_encap_limit(inner.next_header(), inner.payload()) {
        Some(found) if found.limit == 0 => {
            return Ok(EncapOutcome::EncapLimitExceeded {
                pointer: (ipv6::HEADER_LEN + found.offset) as u32,
            });
        }
        Some(found) => Some(found.limit - 1),
        None => p.encap_limit,
    };
    let traffic_class = match p.traffic_class {
        TrafficClass::CopyInner => inner.traffic_class(),
        TrafficClass::Fixed(tc) => tc,
    };
    let (next_header, options_len) = match encap_limit {
        Some(_) => (proto::DEST_OPTS, EncapLimitDestOpts::HEADER_LEN),
        None => (proto::IPV6, 0),
    };
    let payload_len = options_len + inner_len;
    if payload_len > ipv6::MAX_PAYLOAD_LEN {
        return Err(Error::Unsupported(
            "tunnel packet over 65535 payload octets",
        ));
    }
    let header_len = ipv6::HEADER_LEN + options_len;
    if buf.headroom() < header_len {
        return Err(Error::NoRoom("tunnel headers (headroom)"));
    }

    buf.trim(buf.len() - inner_len)?;
    let out = buf.prepend(header_len)?;
    let (outer, options) = out.split_at_mut(ipv6::HEADER_LEN);
    Ipv6Repr {
        src: p.src,
        dst: p.dst,
        next_header,
        payload_len,
        hop_limit: p.hop_limit,
        traffic_class,
        flow_label: p.flow_label,
    }
    .emit(&mut Ipv6Packet::new_unchecked(outer))?;
    if let Some(limit) = encap_limit {
        EncapLimitDestOpts {
            next_header: proto::IPV6,
            limit,
        }
        .emit(&mut Ipv6OptionsHeader::new_unchecked(options))?;
    }
    Ok(EncapOutcome::Encapsulated {
        header_len,
        encap_limit,
    })
}

/// The verdict of [`decrement_hop_limit`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HopLimitVerdict {
    /// The Hop Limit was decremented to this (non-zero) value; forward the packet.
    Forward(u8),
    /// The Hop Limit was 0 or 1: the packet is left unchanged, and the caller discards it
    /// and sends ICMPv6 Time Exceeded code 0 (RFC 8200 §3, RFC 4443 §3.3).
    TimeExceeded,
}

/// Decrements the Hop Limit of the IPv6 packet at the start of `packet` as a forwarding
/// node does.
pub fn decrement_hop_limit(packet: &mut [u8]) -> Result<HopLimitVerdict> {
    if packet.len() < ipv6::HEADER_LEN {
        return Err(Error::Truncated("IPv6 header"));
    }
    let mut view = Ipv6Packet::new_unchecked(packet);
    if view.version() != 6 {
        return Err(Error::Malformed("IPv6 version (not 6)"));
    }
    match view.hop_limit() {
        0 | 1 => Ok(HopLimitVerdict::TimeExceeded),
        n => {
            view.set_hop_limit(n - 1);
            Ok(HopLimitVerdict::Forward(n - 1))
        }
    }
}

/// The outer headers [`decapsulate`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecapInfo {
    /// Outer source: the entry point.
    pub src: Ipv6Addr,
    /// Outer destination: this exit point.
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    /// The Tunnel Encapsulation Limit option, if the tunnel header carried one.
    pub encap_limit: Option<u8>,
    /// Octets removed from the front (40, or 40 plus the Destination Options header).
    pub header_len: usize,
}

/// Removes the tunnel headers from the tunnel packet in `buf`, leaving exactly the inner IPv6
/// packet (RFC 2473 §3.3).
///
/// The outer Next Header must be 41, or 60 with a Destination Options header whose Next
/// Header is 41; that header may hold padding, a Tunnel Encapsulation Limit and unknown
/// options of the "skip" kind. Anything else (other extension headers, fragments, which must
/// be reassembled first, a Home Address option, unknown options that demand a discard) is
/// Unsupported. The inner packet must be a whole IPv6 packet. Fails without changing the
/// buffer.
pub fn decapsulate(buf: &mut impl PacketBuf) -> Result<DecapInfo> {
    let outer = Ipv6Packet::new_checked(buf.data())?;
    let payload = outer.payload();
    let (options_len, encap_limit) = match outer.next_header() {
        proto::IPV6 => (0, None),
        proto::DEST_OPTS => {
            let header = Ipv6OptionsHeader::new_checked(payload)
                .map_err(|_| Error::Truncated("tunnel Destination Options header"))?;
            let mut encap_limit = None;
            for option in header.iter_options() {
                match option?.1 {
                    Ipv6Option::Pad1 | Ipv6Option::PadN(_) => {}
                    Ipv6Option::TunnelEncapLimit(limit) => {
                        encap_limit = encap_limit.or(Some(limit));
                    }
                    Ipv6Option::HomeAddress(_) => {
                        return Err(Error::Unsupported("Home Address option in a tunnel header"));
                    }
                    Ipv6Option::Unknown { type_, .. } => {
                        // RFC 8200 §4.2: only "skip" options may be ignored by the
                        // destination of the outer packet.
                        if UnknownOptionAction::of(type_) != UnknownOptionAction::Skip {
                            return Err(Error::Unsupported(
                                "unknown destination option in a tunnel header",
                            ));
                        }
                    }
                }
            }
            if header.next_header() != proto::IPV6 {
                return Err(Error::Unsupported(
                    "tunnel packet: header after Destination Options is not IPv6 (41)",
                ));
            }
            (header.header_len(), encap_limit)
        }
        _ => {
            return Err(Error::Unsupported(
                "tunnel packet: Next Header not IPv6 (41) or Destination Options (60)",
            ))
        }
    };
    let inner = Ipv6Packet::new_checked(&payload[options_len..]).map_err(|e| match e {
        Error::Truncated(_) => Error::Truncated("inner IPv6 packet"),
        Error::Malformed(_) => Error::Malformed("inner IPv6 packet (version not 6)"),
        other => other,
    })?;
    let info = DecapInfo {
        src: outer.src_addr(),
        dst: outer.dst_addr(),
        hop_limit: outer.hop_limit(),
        traffic_class: outer.traffic_class(),
        flow_label: outer.flow_label(),
        encap_limit,
        header_len: ipv6::HEADER_LEN + options_len,
    };
    let trailing = buf.len() - info.header_len - inner.total_len();
    buf.adj(info.header_len)?;
    buf.trim(trailing)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecBuf;
    use proptest::prelude::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const CLIENT: &str = "2001:db8:c::1";
    const SERVICE: &str = "2001:db8:5::53";
    const APPLIANCE: &str = "2001:db8:a::1";
    const MEMBER: &str = "2001:db8:b::2";

    /// A client's TCP SYN to the service: TC 0x2a, flow 0x54321, hop limit 63 (already
    /// decremented), 20-octet TCP header.
    fn client_syn() -> Vec<u8> {
        let mut p = vec![0x62, 0xa5, 0x43, 0x21, 0x00, 0x14, proto::TCP, 63];
        p.extend_from_slice(&addr(CLIENT).octets());
        p.extend_from_slice(&addr(SERVICE).octets());
        p.extend_from_slice(&[
            0xc3, 0x50, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        ]);
        p
    }

    /// A packet whose first header is a Destination Options header with a TEL of `limit`,
    /// then TCP (as the client's packet would look if it came out of another tunnel entry).
    fn client_with_tel(limit: u8) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0x00, 0x1c, proto::DEST_OPTS, 63];
        p.extend_from_slice(&addr(CLIENT).octets());
        p.extend_from_slice(&addr(SERVICE).octets());
        p.extend_from_slice(&[proto::TCP, 0, 0x04, 0x01, limit, 0x01, 0x01, 0x00]);
        p.extend_from_slice(&[
            0xc3, 0x50, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        ]);
        p
    }

    fn params(encap_limit: Option<u8>) -> TunnelParams {
        TunnelParams {
            src: addr(APPLIANCE),
            dst: addr(MEMBER),
            hop_limit: 64,
            traffic_class: TrafficClass::CopyInner,
            flow_label: 0xabcde,
            encap_limit,
        }
    }

    /// The outer header by hand: version 6, TC 0x2a, flow 0xabcde, given payload length
    /// and next header, hop limit 64, appliance -> member.
    fn outer_header(payload_len: u16, next_header: u8) -> Vec<u8> {
        let mut h = vec![0x62, 0xaa, 0xbc, 0xde];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&[next_header, 64]);
        h.extend_from_slice(&addr(APPLIANCE).octets());
        h.extend_from_slice(&addr(MEMBER).octets());
        h
    }

    #[test]
    fn encapsulate_without_tel() {
        let inner = client_syn();
        let mut buf = VecBuf::from_slice(&inner);
        let outcome = encapsulate(&mut buf, &params(None)).unwrap();
        assert_eq!(
            outcome,
            EncapOutcome::Encapsulated {
                header_len: 40,
                encap_limit: None
            }
        );
        let mut expected = outer_header(60, proto::IPV6);
        expected.extend_from_slice(&inner);
        assert_eq!(buf.data(), &expected[..]);
        assert_eq!(overhead(&params(None)), 40);

        let info = decapsulate(&mut buf).unwrap();
        assert_eq!(buf.data(), &inner[..]);
        assert_eq!(
            info,
            DecapInfo {
                src: addr(APPLIANCE),
                dst: addr(MEMBER),
                hop_limit: 64,
                traffic_class: 0x2a,
                flow_label: 0xabcde,
                encap_limit: None,
                header_len: 40,
            }
        );
    }

    #[test]
    fn encapsulate_with_configured_tel() {
        let inner = client_syn();
        let mut buf = VecBuf::from_slice(&inner);
        let mut p = params(Some(DEFAULT_ENCAP_LIMIT));
        p.traffic_class = TrafficClass::Fixed(0xb8);
        let outcome = encapsulate(&mut buf, &p).unwrap();
        assert_eq!(
            outcome,
            EncapOutcome::Encapsulated {
                header_len: 48,
                encap_limit: Some(4)
            }
        );
        let mut expected = outer_header(68, proto::DEST_OPTS);
        expected[0..2].copy_from_slice(&[0x6b, 0x8a]); // TC 0xb8
        expected.extend_from_slice(&[41, 0, 4, 1, 4, 1, 1, 0]);
        expected.extend_from_slice(&inner);
        assert_eq!(buf.data(), &expected[..]);
        assert_eq!(overhead(&p), 48);

        let info = decapsulate(&mut buf).unwrap();
        assert_eq!(buf.data(), &inner[..]);
        assert_eq!(
            (info.encap_limit, info.header_len, info.traffic_class),
            (Some(4), 48, 0xb8)
        );
    }

    #[test]
    fn inner_tel_is_decremented() {
        // §5.1 (c): an inner limit of 3 gives an outer limit of 2, whatever is configured.
        for configured in [None, Some(4)] {
            let inner = client_with_tel(3);
            let mut buf = VecBuf::from_slice(&inner);
            let outcome = encapsulate(&mut buf, &params(configured)).unwrap();
            assert_eq!(
                outcome,
                EncapOutcome::Encapsulated {
                    header_len: 48,
                    encap_limit: Some(2)
                }
            );
            assert_eq!(&buf.data()[40..48], &[41, 0, 4, 1, 2, 1, 1, 0]);
            assert_eq!(&buf.data()[48..], &inner[..]);
            let info = decapsulate(&mut buf).unwrap();
            assert_eq!(info.encap_limit, Some(2));
            assert_eq!(buf.data(), &inner[..]);
        }
    }

    #[test]
    fn inner_tel_zero_is_refused() {
        // §5.1 (b): limit 0 -> no encapsulation; pointer at the limit octet (40 + 4).
        let inner = client_with_tel(0);
        let mut buf = VecBuf::from_slice(&inner);
        let outcome = encapsulate(&mut buf, &params(Some(4))).unwrap();
        assert_eq!(outcome, EncapOutcome::EncapLimitExceeded { pointer: 44 });
        assert_eq!(inner[44], 0);
        assert_eq!(buf.data(), &inner[..], "buffer unchanged");
        assert_eq!(buf.headroom(), crate::buf::DEFAULT_HEADROOM);
    }

    #[test]
    fn nested_tunnel_packet() {
        // A tunnel packet being encapsulated again: its own TEL (1) is found and
        // decremented; the scan stops at the inner-inner IPv6 header.
        let mut first = VecBuf::from_slice(&client_syn());
        let _ = encapsulate(&mut first, &params(Some(1))).unwrap();
        let tunnelled = first.data().to_vec();
        let outer_tunnel = TunnelParams {
            src: addr("2001:db8:f::1"),
            dst: addr("2001:db8:f::2"),
            ..params(None)
        };
        let mut second = VecBuf::from_slice(&tunnelled);
        let outcome = encapsulate(&mut second, &outer_tunnel).unwrap();
        assert_eq!(
            outcome,
            EncapOutcome::Encapsulated {
                header_len: 48,
                encap_limit: Some(0)
            }
        );
        // Once more: the outermost tunnel header now holds limit 0, its octet at 40 + 4.
        let twice = second.data().to_vec();
        let mut third = VecBuf::from_slice(&twice);
        let third_tunnel = TunnelParams {
            src: addr("2001:db8:e::1"),
            dst: addr("2001:db8:e::2"),
            ..params(None)
        };
        assert_eq!(
            encapsulate(&mut third, &third_tunnel).unwrap(),
            EncapOutcome::EncapLimitExceeded { pointer: 44 }
        );
        assert_eq!(twice[44], 0);
    }

    #[test]
    fn encapsulate_trims_link_padding() {
        let inner = client_syn();
        let mut padded = inner.clone();
        padded.extend_from_slice(&[0xee; 6]);
        let mut buf = VecBuf::from_slice(&padded);
        let _ = encapsulate(&mut buf, &params(None)).unwrap();
        assert_eq!(buf.len(), 40 + inner.len());
        assert_eq!(&buf.data()[40..], &inner[..]);
    }

    #[test]
    fn encapsulate_errors_leave_buffer_unchanged() {
        let inner = client_syn();
        let check = |bytes: &[u8], p: &TunnelParams, headroom: usize, want: Error| {
            let mut buf = VecBuf::from_slice_with_room(bytes, headroom, 16);
            assert_eq!(encapsulate(&mut buf, p), Err(want));
            assert_eq!(buf.data(), bytes);
            assert_eq!(buf.headroom(), headroom);
        };
        // Loopback: the inner packet already goes entry -> exit.
        let mut looped = inner.clone();
        looped[8..24].copy_from_slice(&addr(APPLIANCE).octets());
        looped[24..40].copy_from_slice(&addr(MEMBER).octets());
        check(
            &looped,
            &params(None),
            128,
            Error::Unsupported(
                "loopback encapsulation: inner addresses equal the tunnel's (RFC 2473 §4.1.2)",
            ),
        );
        // Headroom.
        check(
            &inner,
            &params(None),
            39,
            Error::NoRoom("tunnel headers (headroom)"),
        );
        check(
            &inner,
            &params(Some(4)),
            47,
            Error::NoRoom("tunnel headers (headroom)"),
        );
        // Bad parameters.
        let same = TunnelParams {
            dst: addr(APPLIANCE),
            ..params(None)
        };
        assert!(matches!(same.check(), Err(Error::Unsupported(_))));
        check(&inner, &same, 128, same.check().unwrap_err());
        let hl0 = TunnelParams {
            hop_limit: 0,
            ..params(None)
        };
        check(&inner, &hl0, 128, Error::Malformed("tunnel hop limit (0)"));
        let fl = TunnelParams {
            flow_label: 0x10_0000,
            ..params(None)
        };
        check(
            &inner,
            &fl,
            128,
            Error::Malformed("tunnel flow label (over 20 bits)"),
        );
        // Inner packet that does not parse.
        check(
            &inner[..50],
            &params(None),
            128,
            Error::Truncated("IPv6 payload"),
        );
        let mut v4 = inner.clone();
        v4[0] = 0x45;
        check(
            &v4,
            &params(None),
            128,
            Error::Malformed("IPv6 version (not 6)"),
        );
    }

    #[test]
    fn encapsulate_refuses_oversize() {
        // A maximum-size inner packet fits without a TEL, but not with one.
        let mut inner = vec![0u8; 40 + 65495];
        inner[..8].copy_from_slice(&[0x60, 0, 0, 0, 0xff, 0xd7, proto::NO_NEXT_HEADER, 9]);
        inner[8..24].copy_from_slice(&addr(CLIENT).octets());
        let mut buf = VecBuf::from_slice_with_room(&inner, 64, 0);
        assert!(encapsulate(&mut buf, &params(None)).is_ok());
        let mut buf = VecBuf::from_slice_with_room(&inner, 64, 0);
        assert_eq!(
            encapsulate(&mut buf, &params(Some(4))),
            Err(Error::Unsupported(
                "tunnel packet over 65535 payload octets"
            ))
        );
        assert_eq!(buf.len(), inner.len());
    }

    #[test]
    fn hop_limit() {
        let mut p = client_syn();
        assert_eq!(
            decrement_hop_limit(&mut p),
            Ok(HopLimitVerdict::Forward(62))
        );
        assert_eq!(p[7], 62);
        p[7] = 2;
        assert_eq!(decrement_hop_limit(&mut p), Ok(HopLimitVerdict::Forward(1)));
        for edge in [1, 0] {
            p[7] = edge;
            assert_eq!(
                decrement_hop_limit(&mut p),
                Ok(HopLimitVerdict::TimeExceeded)
            );
            assert_eq!(
                p[7], edge,
                "unchanged so the ICMPv6 error quotes it as received"
            );
        }
        assert_eq!(
            decrement_hop_limit(&mut p[..39]),
            Err(Error::Truncated("IPv6 header"))
        );
        p[0] = 0x45;
        assert_eq!(
            decrement_hop_limit(&mut p),
            Err(Error::Malformed("IPv6 version (not 6)"))
        );
    }

    #[test]
    fn decapsulate_strips_padding_and_skips_unknown_skip_options() {
        let inner = client_syn();
        // Outer DestOpts: unknown option 0x1e (skip), len 0; TEL 7; Pad1s; NH 41.
        let mut pkt = outer_header(8 + inner.len() as u16, proto::DEST_OPTS);
        pkt.extend_from_slice(&[41, 0, 0x1e, 0x00, 0x04, 0x01, 7, 0x00]);
        pkt.extend_from_slice(&inner);
        pkt.extend_from_slice(&[0; 10]); // Ethernet padding
        let mut buf = VecBuf::from_slice(&pkt);
        let info = decapsulate(&mut buf).unwrap();
        assert_eq!(info.encap_limit, Some(7));
        assert_eq!(buf.data(), &inner[..]);

        // Bytes between the inner packet's end and the outer payload's end go too.
        let mut pkt = outer_header(inner.len() as u16 + 4, proto::IPV6);
        pkt.extend_from_slice(&inner);
        pkt.extend_from_slice(&[0xee; 4]);
        let mut buf = VecBuf::from_slice(&pkt);
        assert_eq!(decapsulate(&mut buf).unwrap().header_len, 40);
        assert_eq!(buf.data(), &inner[..]);
    }

    #[test]
    fn decapsulate_errors_leave_buffer_unchanged() {
        let inner = client_syn();
        let check = |bytes: &[u8], want: Error| {
            let mut buf = VecBuf::from_slice(bytes);
            assert_eq!(decapsulate(&mut buf), Err(want));
            assert_eq!(buf.data(), bytes);
        };
        let with_opts = |opts: &[u8]| {
            let mut pkt = outer_header((opts.len() + inner.len()) as u16, proto::DEST_OPTS);
            pkt.extend_from_slice(opts);
            pkt.extend_from_slice(&inner);
            pkt
        };
        // Not a tunnel packet.
        check(
            &inner,
            Error::Unsupported(
                "tunnel packet: Next Header not IPv6 (41) or Destination Options (60)",
            ),
        );
        // A Fragment header in front of the inner packet.
        let mut frag = outer_header(8 + inner.len() as u16, proto::FRAGMENT);
        frag.extend_from_slice(&[41, 0, 0, 1, 0, 0, 0, 1]);
        frag.extend_from_slice(&inner);
        check(
            &frag,
            Error::Unsupported(
                "tunnel packet: Next Header not IPv6 (41) or Destination Options (60)",
            ),
        );
        // Destination Options followed by something other than IPv6.
        check(
            &with_opts(&[proto::ROUTING, 0, 4, 1, 4, 1, 1, 0]),
            Error::Unsupported("tunnel packet: header after Destination Options is not IPv6 (41)"),
        );
        // Options the exit point cannot ignore.
        let mut hao = vec![41, 2, 1, 2, 0, 0, 0xc9, 0x10];
        hao.extend_from_slice(&addr(CLIENT).octets());
        check(
            &with_opts(&hao),
            Error::Unsupported("Home Address option in a tunnel header"),
        );
        check(
            &with_opts(&[41, 0, 0x5e, 0x00, 1, 2, 0, 0]),
            Error::Unsupported("unknown destination option in a tunnel header"),
        );
        check(
            &with_opts(&[41, 0, 0x04, 0x02, 1, 1, 1, 0]),
            Error::Malformed("Tunnel Encapsulation Limit option length (not 1)"),
        );
        // Destination Options longer than the outer payload.
        let mut short = outer_header(6, proto::DEST_OPTS);
        short.extend_from_slice(&[41, 0, 4, 1, 4, 0]);
        check(
            &short,
            Error::Truncated("tunnel Destination Options header"),
        );
        // Inner packet truncated, or not IPv6.
        let mut cut = outer_header(30, proto::IPV6);
        cut.extend_from_slice(&inner[..30]);
        check(&cut, Error::Truncated("inner IPv6 packet"));
        let mut lying = outer_header(inner.len() as u16, proto::IPV6);
        let mut longer = inner.clone();
        longer[5] += 1; // inner Payload Length one more than present
        lying.extend_from_slice(&longer);
        check(&lying, Error::Truncated("inner IPv6 packet"));
        let mut v4 = outer_header(inner.len() as u16, proto::IPV6);
        let mut not6 = inner.clone();
        not6[0] = 0x45;
        v4.extend_from_slice(&not6);
        check(&v4, Error::Malformed("inner IPv6 packet (version not 6)"));
        let mut jumbo = outer_header(inner.len() as u16, proto::IPV6);
        let mut j = inner.clone();
        j[4..7].copy_from_slice(&[0, 0, proto::HOP_BY_HOP]);
        jumbo.extend_from_slice(&j);
        check(
            &jumbo,
            Error::Unsupported("IPv6 jumbogram (Payload Length 0)"),
        );
        // Outer packet broken.
        check(&inner[..20], Error::Truncated("IPv6 header"));
    }

    proptest! {
        #[test]
        fn decapsulate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..160),
                                    nh in prop_oneof![Just(41u8), Just(60u8)]) {
            // Bias towards the interesting shapes: a valid-looking fixed header.
            let mut shaped = bytes.clone();
            if shaped.len() >= 40 {
                shaped[0] = 0x60 | (shaped[0] & 0x0f);
                shaped[6] = nh;
                let len = (shaped.len() - 40) as u16;
                shaped[4..6].copy_from_slice(&len.to_be_bytes());
            }
            for input in [bytes, shaped] {
                let mut buf = VecBuf::from_slice(&input);
                match decapsulate(&mut buf) {
                    Ok(info) => {
                        prop_assert!(info.header_len >= 40);
                        prop_assert!(Ipv6Packet::new_checked(buf.data()).is_ok());
                        prop_assert_eq!(buf.data(), &input[info.header_len..info.header_len + buf.len()]);
                    }
                    Err(_) => prop_assert_eq!(buf.data(), &input[..]),
                }
            }
        }

        #[test]
        fn encapsulate_never_panics_and_round_trips(
            bytes in proptest::collection::vec(any::<u8>(), 0..160),
            limit in proptest::option::of(any::<u8>()),
            headroom in 0usize..64,
        ) {
            let mut shaped = bytes.clone();
            if shaped.len() >= 40 {
                shaped[0] = 0x60 | (shaped[0] & 0x0f);
                let len = (shaped.len() - 40) as u16;
                shaped[4..6].copy_from_slice(&len.to_be_bytes());
            }
            for input in [bytes, shaped] {
                let mut buf = VecBuf::from_slice_with_room(&input, headroom, 0);
                match encapsulate(&mut buf, &params(limit)) {
                    Ok(EncapOutcome::Encapsulated { header_len, .. }) => {
                        let inner_len = buf.len() - header_len;
                        prop_assert_eq!(&buf.data()[header_len..], &input[..inner_len]);
                        let info = decapsulate(&mut buf).unwrap();
                        prop_assert_eq!(info.header_len, header_len);
                        prop_assert_eq!(buf.data(), &input[..inner_len]);
                    }
                    Ok(EncapOutcome::EncapLimitExceeded { pointer }) => {
                        prop_assert_eq!(input[pointer as usize], 0);
                        prop_assert_eq!(buf.data(), &input[..]);
                    }
                    Err(_) => prop_assert_eq!(buf.data(), &input[..]),
                }
            }
        }
    }
}
