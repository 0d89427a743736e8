//! UDP (RFC 768) over IPv6 (RFC 8200 §8.1).
//!
//! A [`UdpPacket`] view may be longer than the datagram (link-layer padding): the Length
//! field decides where the payload ends and what the checksum covers. [`UdpRepr`] holds only
//! the ports; the payload is read from the view and handed to [`UdpRepr::emit`] as a slice
//! (or written in place through [`UdpPacket::payload_mut`] followed by
//! [`UdpPacket::fill_checksum`]).

use std::net::Ipv6Addr;

use crate::checksum::{self, proto};
use crate::{Error, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; accessors may then panic on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the header is present and the Length field lies between the header length
    /// and the buffer length.
    pub fn check_len(&self) -> Result<()> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < HEADER_LEN {
            return Err(Error::Truncated("UDP header"));
        }
        let length = usize::from(self.length());
        // Length 0 would mean an RFC 2675 jumbogram, which the appliance never carries.
        if length < HEADER_LEN {
            return Err(Error::Malformed("UDP length (shorter than the header)"));
        }
        if length > buffer_len {
            return Err(Error::Truncated("UDP datagram (length field)"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[at];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// The Source Port field.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The Destination Port field.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The Length field: header plus payload, in bytes.
    pub fn length(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The datagram as the Length field delimits it.
    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.length())]
    }

    /// The payload, up to the Length field.
    pub fn payload(&self) -> &[u8] {
        &self.datagram()[HEADER_LEN..]
    }

    /// True when the checksum verifies for a datagram from `src_addr` to `dst_addr`. A zero
    /// checksum does not verify (RFC 8200 §8.1: it is not optional in IPv6).
    pub fn verify_checksum(&self, src_addr: &Ipv6Addr, dst_addr: &Ipv6Addr) -> bool {
        self.checksum() != 0
            && checksum::verify_upper_layer(src_addr, dst_addr, proto::UDP, self.datagram())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn set_u16_at(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Source Port field.
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value);
    }

    /// Sets the Destination Port field.
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value);
    }

    /// Sets the Length field.
    pub fn set_length(&mut self, value: u16) {
        self.set_u16_at(field::LENGTH, value);
    }

    /// Sets the Checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// The payload up to the Length field, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes and stores the checksum over the datagram as the Length field delimits it.
    pub fn fill_checksum(&mut self, src_addr: &Ipv6Addr, dst_addr: &Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::upper_layer(src_addr, dst_addr, proto::UDP, self.datagram());
        // RFC 8200 §8.1: a computed zero is sent as all ones, since zero means "none".
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The header of a UDP datagram; the payload stays in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Validates a datagram sent from `src_addr` to `dst_addr` and returns its ports. The
    /// payload is [`UdpPacket::payload`].
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src_addr: &Ipv6Addr,
        dst_addr: &Ipv6Addr,
    ) -> Result<UdpRepr> {
        packet.check_len()?;
        // RFC 8200 §8.1: "IPv6 receivers must discard UDP packets containing a zero
        // checksum".
        if packet.checksum() == 0 {
            return Err(Error::Malformed(
                "UDP checksum (zero is not allowed in IPv6)",
            ));
        }
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(Error::Checksum("UDP"));
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Length of the header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Length of the datagram carrying `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Writes the header and `payload` into `packet` and fills the checksum for `src_addr`
    /// -> `dst_addr`.
    ///
    /// The view must span exactly [`buffer_len`](Self::buffer_len)`(payload.len())` bytes:
    /// `Err(NoRoom)` when it is shorter, `Err(Malformed)` when longer;
    /// `Err(Unsupported)` when the datagram would not fit the 16-bit Length field. Nothing
    /// is written on error.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src_addr: &Ipv6Addr,
        dst_addr: &Ipv6Addr,
        payload: &[u8],
    ) -> Result<()> {
        let len = self.buffer_len(payload.len());
        let length = u16::try_from(len)
            .map_err(|_| Error::Unsupported("UDP datagram longer than 65535 bytes"))?;
        match packet.buffer.as_ref().len().cmp(&len) {
            core::cmp::Ordering::Less => return Err(Error::NoRoom("UDP datagram")),
            core::cmp::Ordering::Greater => {
                return Err(Error::Malformed(
                    "UDP output buffer longer than the datagram",
                ))
            }
            core::cmp::Ordering::Equal => {}
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_length(length);
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum(src_addr, dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    // scapy: IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53)
    //        / Raw(b"hello")
    const DATAGRAM: [u8; 13] = [
        0x14, 0xe9, 0x00, 0x35, 0x00, 0x0d, 0x4b, 0x6f, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
    ];

    fn emit(repr: &UdpRepr, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xa5; repr.buffer_len(payload.len())];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &A, &B, payload)
            .unwrap();
        buf
    }

    #[test]
    fn parse_and_emit_reference_datagram() {
        let view = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(view.src_port(), 5353);
        assert_eq!(view.dst_port(), 53);
        assert_eq!(view.length(), 13);
        assert_eq!(view.checksum(), 0x4b6f);
        assert_eq!(view.payload(), b"hello");
        let repr = UdpRepr::parse(&view, &A, &B).unwrap();
        assert_eq!(
            repr,
            UdpRepr {
                src_port: 5353,
                dst_port: 53
            }
        );
        assert_eq!(repr.header_len(), 8);
        assert_eq!(emit(&repr, view.payload()), DATAGRAM);
    }

    #[test]
    fn padding_after_length_is_ignored() {
        let mut padded = DATAGRAM.to_vec();
        padded.extend_from_slice(&[0xde, 0xad, 0xbe]);
        let view = UdpPacket::new_checked(&padded[..]).unwrap();
        assert_eq!(view.payload(), b"hello");
        assert!(UdpRepr::parse(&view, &A, &B).is_ok());
    }

    #[test]
    fn zero_checksum_is_malformed() {
        let mut bytes = DATAGRAM;
        bytes[6..8].fill(0);
        let view = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert!(!view.verify_checksum(&A, &B));
        assert_eq!(
            UdpRepr::parse(&view, &A, &B),
            Err(Error::Malformed(
                "UDP checksum (zero is not allowed in IPv6)"
            ))
        );
    }

    #[test]
    fn computed_zero_checksum_is_sent_as_all_ones() {
        // With payload word w the checksum is !fold(S + w); choosing w = !fold(S), the
        // checksum of the same datagram with w = 0, makes the sum 0xffff and the checksum 0.
        let repr = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        let zero_word = emit(&repr, &[0, 0]);
        let w = u16::from_be_bytes([zero_word[6], zero_word[7]]);
        let bytes = emit(&repr, &w.to_be_bytes());
        assert_eq!(&bytes[6..8], &[0xff, 0xff]);
        let view = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(UdpRepr::parse(&view, &A, &B), Ok(repr));
    }

    #[test]
    fn bad_checksum() {
        for at in 0..DATAGRAM.len() {
            if field::LENGTH.contains(&at) {
                continue;
            }
            let mut bytes = DATAGRAM;
            bytes[at] ^= 0x10;
            let view = UdpPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(
                UdpRepr::parse(&view, &A, &B),
                Err(Error::Checksum("UDP")),
                "{at}"
            );
        }
        let view = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(
            UdpRepr::parse(&view, &B, &A),
            Ok(UdpRepr {
                src_port: 5353,
                dst_port: 53
            }),
            "swapping both addresses leaves the pseudo-header sum unchanged"
        );
        assert_eq!(UdpRepr::parse(&view, &A, &A), Err(Error::Checksum("UDP")));
    }

    #[test]
    fn length_errors() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                UdpPacket::new_checked(&DATAGRAM[..len]),
                Err(Error::Truncated("UDP header"))
            );
        }
        let mut bytes = DATAGRAM;
        for length in [0u16, 7] {
            bytes[4..6].copy_from_slice(&length.to_be_bytes());
            assert_eq!(
                UdpPacket::new_checked(&bytes[..]),
                Err(Error::Malformed("UDP length (shorter than the header)"))
            );
        }
        bytes[4..6].copy_from_slice(&14u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&bytes[..]),
            Err(Error::Truncated("UDP datagram (length field)"))
        );
        // Parse re-checks views built without `new_checked`.
        assert_eq!(
            UdpRepr::parse(&UdpPacket::new_unchecked(&bytes[..]), &A, &B),
            Err(Error::Truncated("UDP datagram (length field)"))
        );
        // Header-only datagrams are fine.
        let empty = emit(
            &UdpRepr {
                src_port: 9,
                dst_port: 9,
            },
            &[],
        );
        assert_eq!(empty.len(), 8);
        let view = UdpPacket::new_checked(&empty[..]).unwrap();
        assert!(view.payload().is_empty());
        assert!(UdpRepr::parse(&view, &A, &B).is_ok());
    }

    #[test]
    fn emit_needs_exact_length() {
        let repr = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        let mut short = [0u8; 9];
        assert_eq!(
            repr.emit(&mut UdpPacket::new_unchecked(&mut short[..]), &A, &B, b"ab"),
            Err(Error::NoRoom("UDP datagram"))
        );
        assert_eq!(short, [0; 9], "nothing written on error");
        let mut long = [0u8; 11];
        assert!(matches!(
            repr.emit(&mut UdpPacket::new_unchecked(&mut long[..]), &A, &B, b"ab"),
            Err(Error::Malformed(_))
        ));
        let huge = vec![0; 65535 - 7];
        let mut buf = vec![0; 65536];
        assert_eq!(
            repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &A, &B, &huge),
            Err(Error::Unsupported("UDP datagram longer than 65535 bytes"))
        );
    }

    #[test]
    fn in_place_payload_then_checksum() {
        let mut buf = [0u8; 13];
        let mut view = UdpPacket::new_unchecked(&mut buf[..]);
        view.set_src_port(5353);
        view.set_dst_port(53);
        view.set_length(13);
        view.payload_mut().copy_from_slice(b"hello");
        view.fill_checksum(&A, &B);
        assert_eq!(view.into_inner(), &DATAGRAM[..]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<u128>(),
            dst in any::<u128>(),
        ) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            if let Ok(view) = UdpPacket::new_checked(&bytes[..]) {
                let _ = UdpRepr::parse(&view, &src, &dst);
                let _ = view.payload();
            }
        }

        #[test]
        fn emit_then_parse(
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<u128>(),
            dst in any::<u128>(),
        ) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let repr = UdpRepr { src_port, dst_port };
            let mut buf = vec![0; repr.buffer_len(payload.len())];
            repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), &src, &dst, &payload).unwrap();
            let view = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(UdpRepr::parse(&view, &src, &dst), Ok(repr));
            prop_assert_eq!(view.payload(), &payload[..]);
        }
    }
}
