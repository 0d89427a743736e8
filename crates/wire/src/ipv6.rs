//! The IPv6 fixed header (RFC 8200 §3).
//!
//! ```text
//!  0       4               12      16              24              32
//! +-------+---------------+-------------------------------------+
//! |Version| Traffic Class |           Flow Label                |
//! +-------+---------------+-------+---------------+-------------+
//! |         Payload Length        |  Next Header  |  Hop Limit  |
//! +-------------------------------+---------------+-------------+
//! |                 Source Address (128 bits)                   |
//! |              Destination Address (128 bits)                 |
//! ```

use std::net::Ipv6Addr;

use crate::checksum::proto;
use crate::{Error, Result};

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The minimum link MTU every IPv6 link supports (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;
/// Largest Payload Length without a Jumbo Payload option.
pub const MAX_PAYLOAD_LEN: usize = 0xffff;

/// Offsets of the fields within the header.
pub mod field {
    use core::ops::Range;
    /// Version (4 bits), Traffic Class (8), Flow Label (20).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// A read/write view of an IPv6 packet (fixed header and payload).
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the header fits, the version is 6, and the buffer holds the whole payload
    /// announced by Payload Length (bytes after it, such as Ethernet padding, are allowed).
    /// After this no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated("IPv6 header"));
        }
        if buf[0] >> 4 != 6 {
            return Err(Error::Malformed("IPv6 version (not 6)"));
        }
        let payload_len = usize::from(self.payload_len());
        // RFC 2675 §2: a jumbogram has Payload Length 0 and a Hop-by-Hop header carrying
        // the real length; a Hop-by-Hop header cannot fit in a zero-length payload otherwise.
        if payload_len == 0 && self.next_header() == proto::HOP_BY_HOP {
            return Err(Error::Unsupported("IPv6 jumbogram (Payload Length 0)"));
        }
        if buf.len() - HEADER_LEN < payload_len {
            return Err(Error::Truncated("IPv6 payload"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Version (6 after a successful check).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic Class (DSCP in the top 6 bits, ECN in the low 2).
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow Label, 20 bits.
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload Length: octets after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Next Header: the protocol number of the first header after the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop Limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr_at(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// Fixed header plus Payload Length: the length of the packet proper.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The payload as bounded by Payload Length (trailing link-layer padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Version field (normally 6).
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the Traffic Class.
    pub fn set_traffic_class(&mut self, traffic_class: u8) {
        let v = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(traffic_class) << 20);
        self.set_ver_tc_flow(v);
    }

    /// Sets the Flow Label; bits above the low 20 are ignored.
    pub fn set_flow_label(&mut self, flow_label: u32) {
        let v = (self.ver_tc_flow() & 0xfff0_0000) | (flow_label & 0x000f_ffff);
        self.set_ver_tc_flow(v);
    }

    /// Sets the Payload Length.
    pub fn set_payload_len(&mut self, payload_len: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&payload_len.to_be_bytes());
    }

    /// Sets the Next Header.
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header;
    }

    /// Sets the Hop Limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload as bounded by Payload Length, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The IPv6 address stored at `buf[at..at + 16]`; the caller has checked the length.
pub(crate) fn addr_at(buf: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&buf[at..at + 16]);
    Ipv6Addr::from(o)
}

/// The parsed IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// Protocol number of the first header after the fixed header.
    pub next_header: u8,
    /// Octets after the fixed header (at most [`MAX_PAYLOAD_LEN`]).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// Flow Label, 20 bits.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads the fixed header of a packet (checking it first, as
    /// [`Ipv6Packet::check_len`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Always [`HEADER_LEN`].
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// A whole packet: this header, its payload length set to that of `payload`, then
    /// `payload`. Fails as [`Ipv6Repr::emit`] does.
    pub fn packet_with(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let repr = Ipv6Repr {
            payload_len: payload.len(),
            ..*self
        };
        let mut buf = vec![0u8; HEADER_LEN + payload.len()];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))?;
        buf[HEADER_LEN..].copy_from_slice(payload);
        Ok(buf)
    }

    /// Writes the fixed header at the start of `packet` (the payload is the caller's).
    /// Fails when the buffer is shorter than the header, the payload length does not fit 16
    /// bits, or the flow label does not fit 20 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::NoRoom("IPv6 header"));
        }
        let payload_len = u16::try_from(self.payload_len)
            .map_err(|_| Error::Unsupported("IPv6 payload over 65535 octets (jumbogram)"))?;
        if self.flow_label > 0x000f_ffff {
            return Err(Error::Malformed("IPv6 flow label (over 20 bits)"));
        }
        packet.set_ver_tc_flow((6 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label);
        packet.set_payload_len(payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src);
        packet.set_dst_addr(self.dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// IPv6 UDP datagram 2001:db8::1 -> 2001:db8::2, TC 0xb8 (EF), flow label 0x12345,
    /// hop limit 64, 8-byte payload, followed by 4 bytes of Ethernet padding.
    fn sample() -> Vec<u8> {
        let mut p = vec![
            0x6b, 0x81, 0x23, 0x45, // version 6, TC 0xb8, flow 0x12345
            0x00, 0x08, 0x11, 0x40, // payload length 8, UDP, hop limit 64
        ];
        p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
        p.extend_from_slice(&[0; 4]);
        p
    }

    fn sample_repr() -> Ipv6Repr {
        Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: proto::UDP,
            payload_len: 8,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn parse_fields() {
        let bytes = sample();
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), proto::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.total_len(), 48);
        assert_eq!(
            p.payload(),
            &bytes[40..48],
            "padding after Payload Length is ignored"
        );
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), sample_repr());
    }

    #[test]
    fn emit_round_trip() {
        let bytes = sample();
        let repr = sample_repr();
        let mut out = vec![0u8; repr.buffer_len()];
        let mut p = Ipv6Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut p).unwrap();
        p.payload_mut().copy_from_slice(&bytes[40..48]);
        assert_eq!(&out[..], &bytes[..48]);
    }

    #[test]
    fn packet_with_sets_the_payload_length() {
        let bytes = sample();
        let repr = Ipv6Repr {
            payload_len: 999, // replaced by the payload's length
            ..sample_repr()
        };
        assert_eq!(repr.packet_with(&bytes[40..48]).unwrap(), &bytes[..48]);
        assert!(repr.packet_with(&vec![0; 65536]).is_err());
    }

    #[test]
    fn setters() {
        let mut bytes = sample();
        let mut p = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_hop_limit(1);
        p.set_flow_label(0xfff_ffff); // only the low 20 bits land
        p.set_traffic_class(0x01);
        p.set_next_header(proto::NO_NEXT_HEADER);
        p.set_payload_len(4);
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x01);
        assert_eq!(p.flow_label(), 0xfffff);
        assert_eq!(p.hop_limit(), 1);
        assert_eq!(p.payload().len(), 4);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.dst_addr(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(&bytes[..8], &[0x60, 0x1f, 0xff, 0xff, 0x00, 0x04, 59, 1]);
        let mut p = Ipv6Packet::new_unchecked(&mut bytes[..]);
        p.set_version(4);
        assert_eq!(p.version(), 4);
        assert_eq!(
            p.traffic_class(),
            0x01,
            "version setter keeps the traffic class"
        );
    }

    #[test]
    fn errors() {
        let bytes = sample();
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..39]).unwrap_err(),
            Error::Truncated("IPv6 header")
        );
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..47]).unwrap_err(),
            Error::Truncated("IPv6 payload")
        );
        let mut v4 = bytes.clone();
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            Error::Malformed("IPv6 version (not 6)")
        );
        let mut jumbo = bytes.clone();
        jumbo[4..7].copy_from_slice(&[0, 0, proto::HOP_BY_HOP]);
        assert_eq!(
            Ipv6Packet::new_checked(&jumbo[..]).unwrap_err(),
            Error::Unsupported("IPv6 jumbogram (Payload Length 0)")
        );
        // Parse re-checks an unchecked view.
        assert!(Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&v4[..])).is_err());
        // An empty payload with No Next Header is fine.
        let mut empty = bytes[..40].to_vec();
        empty[4..7].copy_from_slice(&[0, 0, proto::NO_NEXT_HEADER]);
        assert_eq!(
            Ipv6Packet::new_checked(&empty[..]).unwrap().payload(),
            &[] as &[u8]
        );

        let mut repr = sample_repr();
        let mut short = [0u8; 39];
        assert_eq!(
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut short[..])),
            Err(Error::NoRoom("IPv6 header"))
        );
        let mut out = [0u8; 40];
        repr.flow_label = 0x10_0000;
        assert_eq!(
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..])),
            Err(Error::Malformed("IPv6 flow label (over 20 bits)"))
        );
        repr.flow_label = 0;
        repr.payload_len = 0x1_0000;
        assert!(matches!(
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..])),
            Err(Error::Unsupported(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
                let repr = Ipv6Repr::parse(&p).unwrap();
                prop_assert_eq!(p.payload().len(), repr.payload_len);
                let mut out = vec![0u8; repr.buffer_len()];
                repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..])).unwrap();
                prop_assert_eq!(&out[..40], &bytes[..40]);
            }
        }

        #[test]
        fn header_fields_round_trip(tc in any::<u8>(), flow in 0u32..0x10_0000, hl in any::<u8>(),
                                    nh in any::<u8>(), len in 0usize..64) {
            let repr = Ipv6Repr {
                src: "fe80::1".parse().unwrap(), dst: "ff02::1".parse().unwrap(),
                next_header: nh, payload_len: len, hop_limit: hl, traffic_class: tc,
                flow_label: flow,
            };
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..])).unwrap();
            match Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&out[..])) {
                Ok(parsed) => prop_assert_eq!(parsed, repr),
                Err(e) => prop_assert!(len == 0 && nh == 0 && matches!(e, Error::Unsupported(_))),
            }
        }
    }
}
