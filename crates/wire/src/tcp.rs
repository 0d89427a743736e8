//! TCP segments (RFC 9293 §3.1) as far as the appliance needs them: it emits half-open
//! health-check probes (a SYN carrying an MSS option, then a RST) and parses the SYN-ACK or
//! RST that comes back. Connections are never terminated here; client flows are tunnelled
//! without being parsed.
//!
//! A [`TcpPacket`] spans exactly one segment (the IPv6 payload after extension headers, cut
//! to Payload Length): TCP has no length field, so the payload runs to the end of the buffer.

use core::fmt;
use core::ops;
use std::net::Ipv6Addr;

use crate::checksum::{self, proto};
use crate::{Error, Result};

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;

/// Longest TCP header: data offset 15, i.e. 40 bytes of options.
pub const MAX_HEADER_LEN: usize = 60;

/// TCP option kinds (IANA "TCP Option Kind Numbers").
pub mod option {
    /// End of Option List (RFC 9293 §3.2).
    pub const END: u8 = 0;
    /// No-Operation (RFC 9293 §3.2).
    pub const NOP: u8 = 1;
    /// Maximum Segment Size (RFC 9293 §3.7.1).
    pub const MSS: u8 = 2;
    /// Length of the MSS option: kind, length, 16-bit value.
    pub const MSS_LEN: usize = 4;
}

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset in the high nibble; the low nibble is reserved (and AccECN's AE bit).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// The eight control bits of byte 13 of the TCP header (RFC 9293 §3.1, RFC 3168 §6.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Letters in bit order, as scapy prints them ("SA" for SYN-ACK).
    const LETTERS: [(TcpFlags, char); 8] = [
        (TcpFlags::FIN, 'F'),
        (TcpFlags::SYN, 'S'),
        (TcpFlags::RST, 'R'),
        (TcpFlags::PSH, 'P'),
        (TcpFlags::ACK, 'A'),
        (TcpFlags::URG, 'U'),
        (TcpFlags::ECE, 'E'),
        (TcpFlags::CWR, 'C'),
    ];

    /// No flag set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// The flags of a raw flags byte.
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }

    /// The raw flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True when no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl ops::BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    /// The letters of the set flags in bit order, e.g. "SA"; nothing when none is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (flag, letter) in TcpFlags::LETTERS {
            if self.contains(flag) {
                fmt::Write::write_char(f, letter)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; accessors may then panic on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the fixed header is present, the data offset is 5 to 15 words, and the
    /// header it describes fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated("TCP header"));
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed("TCP data offset (below 5)"));
        }
        if header_len > len {
            return Err(Error::Truncated("TCP header (data offset)"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[at];
        u16::from_be_bytes([d[0], d[1]])
    }

    fn u32_at(&self, at: ops::Range<usize>) -> u32 {
        let d = &self.buffer.as_ref()[at];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The Source Port field.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// The Destination Port field.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The Sequence Number field.
    pub fn seq_number(&self) -> u32 {
        self.u32_at(field::SEQ_NUM)
    }

    /// The Acknowledgment Number field.
    pub fn ack_number(&self) -> u32 {
        self.u32_at(field::ACK_NUM)
    }

    /// The header length in bytes: the Data Offset field times four.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// The Window field.
    pub fn window_len(&self) -> u16 {
        self.u16_at(field::WINDOW)
    }

    /// The Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The Urgent Pointer field.
    pub fn urgent_at(&self) -> u16 {
        self.u16_at(field::URGENT)
    }

    /// The option bytes between the fixed header and the data offset.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The data after the header, to the end of the buffer.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True when the checksum verifies for a segment from `src_addr` to `dst_addr`.
    pub fn verify_checksum(&self, src_addr: &Ipv6Addr, dst_addr: &Ipv6Addr) -> bool {
        checksum::verify_upper_layer(src_addr, dst_addr, proto::TCP, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn set_u16_at(&mut self, at: ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    fn set_u32_at(&mut self, at: ops::Range<usize>, value: u32) {
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

    /// Sets the Sequence Number field.
    pub fn set_seq_number(&mut self, value: u32) {
        self.set_u32_at(field::SEQ_NUM, value);
    }

    /// Sets the Acknowledgment Number field.
    pub fn set_ack_number(&mut self, value: u32) {
        self.set_u32_at(field::ACK_NUM, value);
    }

    /// Sets the Data Offset field from a header length in bytes (a multiple of 4 from 20 to
    /// 60), keeping the reserved low nibble.
    pub fn set_header_len(&mut self, value: usize) {
        debug_assert!(value & 0b11 == 0 && (HEADER_LEN..=MAX_HEADER_LEN).contains(&value));
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = ((value / 4) as u8) << 4 | (*b & 0x0f);
    }

    /// Sets the control bits.
    pub fn set_flags(&mut self, value: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = value.bits();
    }

    /// Sets the Window field.
    pub fn set_window_len(&mut self, value: u16) {
        self.set_u16_at(field::WINDOW, value);
    }

    /// Sets the Checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Sets the Urgent Pointer field.
    pub fn set_urgent_at(&mut self, value: u16) {
        self.set_u16_at(field::URGENT, value);
    }

    /// The option bytes, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The data after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src_addr: &Ipv6Addr, dst_addr: &Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::upper_layer(src_addr, dst_addr, proto::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The header fields of a TCP segment that health checks send and read.
///
/// Parsing keeps the MSS option and skips every other option; emitting writes the MSS
/// option when present, a zero Urgent Pointer and zero reserved bits. The payload stays in
/// the view on parse and is passed as a slice to [`TcpRepr::emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    /// Meaningful only when `flags` contains ACK; emitted as given either way.
    pub ack_number: u32,
    pub flags: TcpFlags,
    pub window_len: u16,
    /// The Maximum Segment Size option (RFC 9293 §3.7.1).
    pub max_seg_size: Option<u16>,
}

impl TcpRepr {
    /// Validates a segment sent from `src_addr` to `dst_addr` (checksum, then options) and
    /// returns its header fields. The payload is [`TcpPacket::payload`].
    pub fn parse<T: AsRef<[u8]>>(
        packet: &TcpPacket<T>,
        src_addr: &Ipv6Addr,
        dst_addr: &Ipv6Addr,
    ) -> Result<TcpRepr> {
        packet.check_len()?;
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(Error::Checksum("TCP"));
        }
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            max_seg_size: find_mss(packet.options())?,
        })
    }

    /// Length of the emitted header: 20 bytes, plus 4 for the MSS option.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
            + match self.max_seg_size {
                Some(_) => option::MSS_LEN,
                None => 0,
            }
    }

    /// Length of the segment carrying `payload_len` bytes of data.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Sequence space the segment occupies (RFC 9293 §3.4): its data plus one for each of
    /// SYN and FIN.
    pub fn segment_len(&self, payload_len: usize) -> usize {
        payload_len
            + usize::from(self.flags.contains(TcpFlags::SYN))
            + usize::from(self.flags.contains(TcpFlags::FIN))
    }

    /// The reset to send in answer to this segment, received with `payload_len` bytes of
    /// data, by a side that has no connection for it (RFC 9293 §3.10.7.1); a half-open
    /// probe answers a SYN-ACK this way. `None` for a RST, which is never answered.
    pub fn rst_reply(&self, payload_len: usize) -> Option<TcpRepr> {
        if self.flags.contains(TcpFlags::RST) {
            return None;
        }
        let (seq_number, ack_number, flags) = if self.flags.contains(TcpFlags::ACK) {
            // <SEQ=SEG.ACK><CTL=RST>
            (self.ack_number, 0, TcpFlags::RST)
        } else {
            // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; sequence space wraps mod 2^32.
            let seg_len = self.segment_len(payload_len) as u32;
            (
                0,
                self.seq_number.wrapping_add(seg_len),
                TcpFlags::RST | TcpFlags::ACK,
            )
        };
        Some(TcpRepr {
            src_port: self.dst_port,
            dst_port: self.src_port,
            seq_number,
            ack_number,
            flags,
            window_len: 0,
            max_seg_size: None,
        })
    }

    /// Writes the header and `payload` into `packet` and fills the checksum for `src_addr`
    /// -> `dst_addr`.
    ///
    /// The view must span exactly [`buffer_len`](Self::buffer_len)`(payload.len())` bytes,
    /// since the payload runs to the end of the buffer: `Err(NoRoom)` when it is shorter,
    /// `Err(Malformed)` when longer. Nothing is written on error.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src_addr: &Ipv6Addr,
        dst_addr: &Ipv6Addr,
        payload: &[u8],
    ) -> Result<()> {
        match packet
            .buffer
            .as_ref()
            .len()
            .cmp(&self.buffer_len(payload.len()))
        {
            core::cmp::Ordering::Less => return Err(Error::NoRoom("TCP segment")),
            core::cmp::Ordering::Greater => {
                return Err(Error::Malformed(
                    "TCP output buffer longer than the segment",
                ))
            }
            core::cmp::Ordering::Equal => {}
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        // Data offset with the reserved bits cleared.
        packet.buffer.as_mut()[field::DATA_OFF] = ((self.header_len() / 4) as u8) << 4;
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(0);
        if let Some(mss) = self.max_seg_size {
            let options = packet.options_mut();
            options[0] = option::MSS;
            options[1] = option::MSS_LEN as u8;
            options[2..4].copy_from_slice(&mss.to_be_bytes());
        }
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum(src_addr, dst_addr);
        Ok(())
    }
}

/// Walks TCP options (RFC 9293 §3.2) and returns the value of the first MSS option. Every
/// option up to End of Option List is checked for a sane length.
fn find_mss(mut options: &[u8]) -> Result<Option<u16>> {
    let mut mss = None;
    while let Some(&kind) = options.first() {
        match kind {
            option::END => break,
            option::NOP => options = &options[1..],
            _ => {
                let Some(&len) = options.get(1) else {
                    return Err(Error::Malformed("TCP option (no length byte)"));
                };
                let len = usize::from(len);
                if len < 2 || len > options.len() {
                    return Err(Error::Malformed("TCP option length"));
                }
                if kind == option::MSS {
                    if len != option::MSS_LEN {
                        return Err(Error::Malformed("TCP MSS option length"));
                    }
                    if mss.is_none() {
                        mss = Some(u16::from_be_bytes([options[2], options[3]]));
                    }
                }
                options = &options[len..];
            }
        }
    }
    Ok(mss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    // scapy: IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=80,
    //        seq=0x01020304, flags="S", window=64240, options=[("MSS", 1460)])
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa,
        0xf0, 0xa1, 0x2a, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    ];
    // scapy: IPv6(src="2001:db8::2", dst="2001:db8::1") / TCP(sport=80, dport=40000,
    //        seq=0xa0b0c0d0, ack=0x01020305, flags="SA", window=65160,
    //        options=[("MSS", 1440), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None),
    //        ("WScale", 7)])
    const SYN_ACK: [u8; 40] = [
        0x00, 0x50, 0x9c, 0x40, 0xa0, 0xb0, 0xc0, 0xd0, 0x01, 0x02, 0x03, 0x05, 0xa0, 0x12, 0xfe,
        0x88, 0xeb, 0xea, 0x00, 0x00, 0x02, 0x04, 0x05, 0xa0, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, 0x03, 0x03, 0x07,
    ];
    // scapy: IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=80,
    //        seq=0x01020305, ack=0, flags="R", window=0)
    const RST: [u8; 20] = [
        0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x05, 0x00, 0x00, 0x00, 0x00, 0x50, 0x04, 0x00,
        0x00, 0xb3, 0xd4, 0x00, 0x00,
    ];

    fn parse(bytes: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<TcpRepr> {
        TcpRepr::parse(&TcpPacket::new_checked(bytes)?, src, dst)
    }

    fn emit(repr: &TcpRepr, src: &Ipv6Addr, dst: &Ipv6Addr, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xa5; repr.buffer_len(payload.len())];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            src,
            dst,
            payload,
        )
        .unwrap();
        buf
    }

    fn syn_probe() -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 0x0102_0304,
            ack_number: 0,
            flags: TcpFlags::SYN,
            window_len: 64240,
            max_seg_size: Some(1460),
        }
    }

    #[test]
    fn syn_probe_with_mss() {
        let repr = syn_probe();
        assert_eq!(repr.header_len(), 24);
        assert_eq!(emit(&repr, &A, &B, &[]), SYN);
        assert_eq!(parse(&SYN, &A, &B), Ok(repr));
        let view = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!((view.src_port(), view.dst_port()), (40000, 80));
        assert_eq!(view.seq_number(), 0x0102_0304);
        assert_eq!(view.ack_number(), 0);
        assert_eq!(view.header_len(), 24);
        assert_eq!(view.flags(), TcpFlags::SYN);
        assert_eq!(view.window_len(), 64240);
        assert_eq!(view.checksum(), 0xa12a);
        assert_eq!(view.urgent_at(), 0);
        assert_eq!(view.options(), &[2, 4, 0x05, 0xb4]);
        assert!(view.payload().is_empty());
    }

    #[test]
    fn syn_ack_with_linux_options() {
        let repr = parse(&SYN_ACK, &B, &A).unwrap();
        assert_eq!(
            repr,
            TcpRepr {
                src_port: 80,
                dst_port: 40000,
                seq_number: 0xa0b0_c0d0,
                ack_number: 0x0102_0305,
                flags: TcpFlags::SYN | TcpFlags::ACK,
                window_len: 65160,
                max_seg_size: Some(1440),
            }
        );
        assert_eq!(repr.flags.to_string(), "SA");
        // The probe acknowledges SYN-ACK with a reset at the acknowledged sequence number.
        let rst = repr.rst_reply(0).unwrap();
        assert_eq!(
            rst,
            TcpRepr {
                src_port: 40000,
                dst_port: 80,
                seq_number: 0x0102_0305,
                ack_number: 0,
                flags: TcpFlags::RST,
                window_len: 0,
                max_seg_size: None,
            }
        );
        assert_eq!(emit(&rst, &A, &B, &[]), RST);
    }

    #[test]
    fn rst_round_trip_and_no_reply() {
        let repr = parse(&RST, &A, &B).unwrap();
        assert_eq!(repr.flags, TcpFlags::RST);
        assert_eq!(repr.max_seg_size, None);
        assert_eq!(emit(&repr, &A, &B, &[]), RST);
        assert_eq!(repr.rst_reply(0), None);
    }

    #[test]
    fn rst_reply_without_ack() {
        // A SYN with 3 data bytes occupies 4 sequence numbers; wrap-around included.
        let syn = TcpRepr {
            seq_number: u32::MAX - 1,
            ..syn_probe()
        };
        assert_eq!(syn.segment_len(3), 4);
        let rst = syn.rst_reply(3).unwrap();
        assert_eq!(rst.seq_number, 0);
        assert_eq!(rst.ack_number, 2);
        assert_eq!(rst.flags, TcpFlags::RST | TcpFlags::ACK);
        assert_eq!((rst.src_port, rst.dst_port), (80, 40000));
        let fin = TcpRepr {
            flags: TcpFlags::FIN,
            seq_number: 10,
            ..syn_probe()
        };
        assert_eq!(fin.rst_reply(0).unwrap().ack_number, 11);
    }

    #[test]
    fn payload_round_trip() {
        let repr = TcpRepr {
            flags: TcpFlags::PSH | TcpFlags::ACK,
            ack_number: 77,
            max_seg_size: None,
            ..syn_probe()
        };
        let bytes = emit(&repr, &A, &B, b"GET / HTTP/1.0\r\n\r\n");
        let view = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(view.payload(), b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(TcpRepr::parse(&view, &A, &B), Ok(repr));
    }

    #[test]
    fn flags() {
        let mut f = TcpFlags::empty();
        assert!(f.is_empty());
        assert_eq!(f.to_string(), "");
        f.insert(TcpFlags::ACK);
        f |= TcpFlags::SYN;
        assert!(f.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!f.contains(TcpFlags::SYN | TcpFlags::RST));
        assert!(f.contains(TcpFlags::empty()));
        assert_eq!(f.bits(), 0x12);
        assert_eq!(format!("{f:?}"), "TcpFlags(SA)");
        f.remove(TcpFlags::SYN);
        assert_eq!(f, TcpFlags::ACK);
        assert_eq!(
            TcpFlags::from_bits(0xff).to_string(),
            "FSRPAUEC",
            "scapy's letter order"
        );
        assert_eq!(TcpFlags::from_bits(0x18) & TcpFlags::PSH, TcpFlags::PSH);
        assert_eq!(TcpFlags::default(), TcpFlags::empty());
    }

    #[test]
    fn bad_checksum() {
        for at in 0..SYN.len() {
            if at == field::DATA_OFF {
                continue;
            }
            let mut bytes = SYN;
            bytes[at] ^= 0x02;
            assert_eq!(parse(&bytes, &A, &B), Err(Error::Checksum("TCP")), "{at}");
        }
        assert_eq!(parse(&SYN, &A, &A), Err(Error::Checksum("TCP")));
    }

    #[test]
    fn data_offset_errors() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                TcpPacket::new_checked(&SYN[..len]),
                Err(Error::Truncated("TCP header"))
            );
        }
        let mut bytes = SYN;
        for words in 0..5u8 {
            bytes[field::DATA_OFF] = words << 4;
            assert_eq!(
                TcpPacket::new_checked(&bytes[..]),
                Err(Error::Malformed("TCP data offset (below 5)"))
            );
        }
        for words in 7..=15u8 {
            bytes[field::DATA_OFF] = words << 4;
            assert_eq!(
                TcpPacket::new_checked(&bytes[..]),
                Err(Error::Truncated("TCP header (data offset)"))
            );
        }
        // The options of a 24-byte header cut short.
        assert_eq!(
            TcpPacket::new_checked(&SYN[..22]),
            Err(Error::Truncated("TCP header (data offset)"))
        );
        // Parse re-checks views built without `new_checked`.
        assert_eq!(
            TcpRepr::parse(&TcpPacket::new_unchecked(&SYN[..22]), &A, &B),
            Err(Error::Truncated("TCP header (data offset)"))
        );
        // Offset 15: a 60-byte header of NOPs.
        let mut max = vec![0u8; MAX_HEADER_LEN];
        max[..20].copy_from_slice(&RST);
        max[field::DATA_OFF] = 15 << 4;
        max[20..].fill(option::NOP);
        let mut view = TcpPacket::new_checked(&mut max[..]).unwrap();
        assert_eq!(view.options().len(), 40);
        view.fill_checksum(&A, &B);
        assert_eq!(parse(&max, &A, &B).map(|r| r.max_seg_size), Ok(None));
    }

    /// A SYN-ACK with `options` (length a multiple of 4) and a correct checksum.
    fn with_options(options: &[u8]) -> Vec<u8> {
        let mut bytes = SYN_ACK[..20].to_vec();
        bytes[field::DATA_OFF] = (((20 + options.len()) / 4) as u8) << 4;
        bytes.extend_from_slice(options);
        TcpPacket::new_unchecked(&mut bytes[..]).fill_checksum(&B, &A);
        bytes
    }

    #[test]
    fn option_errors() {
        let cases: [(&[u8], Error); 5] = [
            (&[8, 0, 1, 1], Error::Malformed("TCP option length")),
            (&[8, 1, 1, 1], Error::Malformed("TCP option length")),
            (
                &[1, 1, 8, 10, 0, 0, 0, 0],
                Error::Malformed("TCP option length"),
            ),
            (
                &[1, 1, 1, 8],
                Error::Malformed("TCP option (no length byte)"),
            ),
            (&[2, 3, 5, 0], Error::Malformed("TCP MSS option length")),
        ];
        for (options, err) in cases {
            assert_eq!(
                parse(&with_options(options), &B, &A),
                Err(err),
                "{options:?}"
            );
        }
        // Nothing after End of Option List is looked at; NOP padding is skipped.
        assert_eq!(
            parse(&with_options(&[0, 8, 0, 0]), &B, &A).map(|r| r.max_seg_size),
            Ok(None)
        );
        assert_eq!(
            parse(&with_options(&[1, 2, 4, 1, 0, 0, 0, 0]), &B, &A).map(|r| r.max_seg_size),
            Ok(Some(256))
        );
    }

    #[test]
    fn emit_needs_exact_length() {
        let repr = syn_probe();
        let mut short = [0u8; 23];
        assert_eq!(
            repr.emit(&mut TcpPacket::new_unchecked(&mut short[..]), &A, &B, &[]),
            Err(Error::NoRoom("TCP segment"))
        );
        assert_eq!(short, [0; 23], "nothing written on error");
        let mut long = [0u8; 25];
        assert!(matches!(
            repr.emit(&mut TcpPacket::new_unchecked(&mut long[..]), &A, &B, &[]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn view_setters() {
        let mut buf = [0xffu8; 24];
        let mut view = TcpPacket::new_unchecked(&mut buf[..]);
        view.set_header_len(24);
        assert_eq!(view.header_len(), 24);
        view.set_src_port(1);
        view.set_dst_port(2);
        view.set_seq_number(3);
        view.set_ack_number(4);
        view.set_flags(TcpFlags::ACK);
        view.set_window_len(5);
        view.set_urgent_at(6);
        view.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        view.fill_checksum(&A, &B);
        assert!(view.verify_checksum(&A, &B));
        assert_eq!(view.urgent_at(), 6);
        assert_eq!(view.as_ref()[field::DATA_OFF], 0x6f, "reserved bits kept");
        assert_eq!(
            TcpRepr::parse(&view, &A, &B),
            Ok(TcpRepr {
                src_port: 1,
                dst_port: 2,
                seq_number: 3,
                ack_number: 4,
                flags: TcpFlags::ACK,
                window_len: 5,
                max_seg_size: None,
            })
        );
        view.payload_mut().copy_from_slice(&[]);
        view.set_checksum(0);
        assert_eq!(view.into_inner()[16..18], [0, 0]);
    }

    fn repr_strategy() -> impl Strategy<Value = TcpRepr> {
        (
            any::<(u16, u16, u32, u32)>(),
            any::<u8>(),
            any::<u16>(),
            proptest::option::of(any::<u16>()),
        )
            .prop_map(
                |(
                    (src_port, dst_port, seq_number, ack_number),
                    flags,
                    window_len,
                    max_seg_size,
                )| {
                    TcpRepr {
                        src_port,
                        dst_port,
                        seq_number,
                        ack_number,
                        flags: TcpFlags::from_bits(flags),
                        window_len,
                        max_seg_size,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..96),
            src in any::<u128>(),
            dst in any::<u128>(),
        ) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            if let Ok(view) = TcpPacket::new_checked(&bytes[..]) {
                let _ = TcpRepr::parse(&view, &src, &dst);
                let _ = (view.options(), view.payload(), view.flags().to_string());
            }
        }

        /// With a valid checksum parsing reaches the option walk.
        #[test]
        fn checksummed_options_never_panic(
            words in 5u8..=15,
            options in proptest::collection::vec(
                prop::sample::select(vec![0u8, 1, 2, 3, 4, 8, 40, 255]), 40),
            payload in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = RST.to_vec();
            bytes[field::DATA_OFF] = words << 4;
            bytes.extend_from_slice(&options[..usize::from(words - 5) * 4]);
            bytes.extend_from_slice(&payload);
            TcpPacket::new_unchecked(&mut bytes[..]).fill_checksum(&A, &B);
            let _ = parse(&bytes, &A, &B);
        }

        #[test]
        fn emit_then_parse(
            repr in repr_strategy(),
            payload in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let bytes = emit(&repr, &A, &B, &payload);
            let view = TcpPacket::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(TcpRepr::parse(&view, &A, &B), Ok(repr));
            prop_assert_eq!(view.payload(), &payload[..]);
        }
    }
}
