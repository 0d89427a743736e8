//! Ethernet II frames (IEEE 802.3 with an EtherType), optionally with one IEEE 802.1Q tag.
//!
//! ```text
//! untagged: | dst (6) | src (6) | EtherType (2) | payload
//! tagged:   | dst (6) | src (6) | 0x8100 (2) | PCP:3 DEI:1 VID:12 (2) | EtherType (2) | payload
//! ```
//!
//! The frame check sequence is not part of the buffer (NICs strip and add it). Frames shorter
//! than 60 bytes are padded by the sender; the padding stays in [`EthernetFrame::payload`] and
//! the layer above (IPv6 with its Payload Length) ignores it.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv6Addr;

use crate::{Error, Result};

/// A 48-bit IEEE MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const UNSPECIFIED: MacAddr = MacAddr([0; 6]);

    /// The address from the first six bytes of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<MacAddr> {
        let octets: [u8; 6] = bytes
            .get(..6)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::Truncated("MAC address"))?;
        Ok(MacAddr(octets))
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the I/G bit (least significant bit of the first octet) is set; broadcast
    /// counts as multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an individual (non-group) address other than all zeros.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::UNSPECIFIED
    }

    /// True when the U/L bit marks a locally administered address.
    pub fn is_locally_administered(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// The MAC address an IPv6 multicast group maps to: 33:33 followed by the low 32 bits of
    /// the group address (RFC 2464 §7).
    pub fn from_ipv6_multicast(group: &Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// True for an address in the IPv6 multicast range 33:33:xx:xx:xx:xx.
    pub fn is_ipv6_multicast(&self) -> bool {
        self.0[0] == 0x33 && self.0[1] == 0x33
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = Error;

    /// Parses six hexadecimal octets separated by `:` or `-`, e.g. `02:00:5e:10:00:01`.
    fn from_str(s: &str) -> Result<MacAddr> {
        const WHAT: Error =
            Error::Malformed("MAC address (expected six hex octets like 02:00:5e:10:00:01)");
        let mut octets = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for octet in &mut octets {
            let part = parts.next().ok_or(WHAT)?;
            if part.is_empty() || part.len() > 2 {
                return Err(WHAT);
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| WHAT)?;
        }
        if parts.next().is_some() {
            return Err(WHAT);
        }
        Ok(MacAddr(octets))
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

/// An EtherType (IEEE 802 numbers as registered with IANA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    /// IEEE 802.1Q customer VLAN tag (TPID).
    Vlan,
    Ipv6,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x86DD => EtherType::Ipv6,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::Ipv6 => 0x86DD,
            EtherType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Unknown(v) => write!(f, "0x{v:04x}"),
        }
    }
}

/// The Tag Control Information of an IEEE 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority Code Point, 3 bits.
    pub pcp: u8,
    /// Drop Eligible Indicator.
    pub dei: bool,
    /// VLAN identifier, 12 bits.
    pub vid: u16,
}

impl VlanTag {
    /// The tag decoded from a 16-bit TCI.
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }

    /// The 16-bit TCI. Out-of-range `pcp` and `vid` bits are masked off.
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;
/// TPID of an 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    /// EtherType of an untagged frame, TPID of a tagged one.
    pub const TYPE_OR_TPID: Range<usize> = 12..14;
    pub const TCI: Range<usize> = 14..16;
    pub const INNER_TYPE: Range<usize> = 16..18;
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the whole header (including the 802.1Q tag when the
    /// TPID says one is present), after which no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated("Ethernet header"));
        }
        if self.is_vlan_tagged() && len < VLAN_HEADER_LEN {
            return Err(Error::Truncated("Ethernet 802.1Q tag"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> MacAddr {
        let mut o = [0u8; 6];
        o.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        MacAddr(o)
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> MacAddr {
        let mut o = [0u8; 6];
        o.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        MacAddr(o)
    }

    /// True when bytes 12..14 hold the 802.1Q TPID.
    pub fn is_vlan_tagged(&self) -> bool {
        let b = self.buffer.as_ref();
        b.len() >= HEADER_LEN && u16::from_be_bytes([b[12], b[13]]) == TPID_8021Q
    }

    /// The 802.1Q tag, if the frame carries one.
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        self.is_vlan_tagged()
            .then(|| VlanTag::from_tci(self.u16_at(field::TCI)))
    }

    /// The EtherType of the payload (after the tag, for a tagged frame).
    pub fn ethertype(&self) -> EtherType {
        if self.is_vlan_tagged() {
            EtherType::from(self.u16_at(field::INNER_TYPE))
        } else {
            EtherType::from(self.u16_at(field::TYPE_OR_TPID))
        }
    }

    /// 14, or 18 for a tagged frame.
    pub fn header_len(&self) -> usize {
        if self.is_vlan_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Everything after the header, including any padding to the 60-byte minimum.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the payload EtherType where the current layout keeps it (after the tag when the
    /// frame is tagged).
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        let at = if self.is_vlan_tagged() {
            field::INNER_TYPE
        } else {
            field::TYPE_OR_TPID
        };
        self.buffer.as_mut()[at].copy_from_slice(&u16::from(ethertype).to_be_bytes());
    }

    /// Rewrites the TCI of a tagged frame; does nothing on an untagged one (adding a tag
    /// moves the payload, which is the job of [`EthernetRepr::emit`]).
    pub fn set_vlan_tag(&mut self, tag: VlanTag) {
        if self.is_vlan_tagged() {
            self.buffer.as_mut()[field::TCI].copy_from_slice(&tag.tci().to_be_bytes());
        }
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// The parsed header of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// The single 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a frame (checking its length first).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        Ok(EthernetRepr {
            dst: frame.dst_addr(),
            src: frame.src_addr(),
            vlan: frame.vlan_tag(),
            ethertype: frame.ethertype(),
        })
    }

    /// 14, or 18 with a VLAN tag.
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Header length plus `payload_len`.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header at the start of `frame`; the payload follows at
    /// [`header_len`](Self::header_len).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) -> Result<()> {
        let buf = frame.buffer.as_mut();
        if buf.len() < self.header_len() {
            return Err(Error::NoRoom("Ethernet header"));
        }
        buf[field::DST].copy_from_slice(&self.dst.0);
        buf[field::SRC].copy_from_slice(&self.src.0);
        let ethertype = u16::from(self.ethertype).to_be_bytes();
        match self.vlan {
            Some(tag) => {
                buf[field::TYPE_OR_TPID].copy_from_slice(&TPID_8021Q.to_be_bytes());
                buf[field::TCI].copy_from_slice(&tag.tci().to_be_bytes());
                buf[field::INNER_TYPE].copy_from_slice(&ethertype);
            }
            None => buf[field::TYPE_OR_TPID].copy_from_slice(&ethertype),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DST: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
    const SRC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];

    /// An untagged IPv6 frame: 14-byte header then the first bytes of an IPv6 header.
    fn untagged() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0x00, 0x00, 0x00]);
        f
    }

    /// The same frame tagged with PCP 5, DEI 1, VID 100 (TCI 0xb064).
    fn tagged() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(&[0x81, 0x00, 0xb0, 0x64, 0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0x00, 0x00, 0x00]);
        f
    }

    #[test]
    fn parse_untagged() {
        let bytes = untagged();
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.dst_addr(), MacAddr(DST));
        assert_eq!(frame.src_addr(), MacAddr(SRC));
        assert_eq!(frame.vlan_tag(), None);
        assert_eq!(frame.ethertype(), EtherType::Ipv6);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload(), &[0x60, 0, 0, 0]);
        let repr = EthernetRepr::parse(&frame).unwrap();
        assert_eq!(
            repr,
            EthernetRepr {
                dst: MacAddr(DST),
                src: MacAddr(SRC),
                vlan: None,
                ethertype: EtherType::Ipv6
            }
        );
    }

    #[test]
    fn parse_tagged() {
        let bytes = tagged();
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            frame.vlan_tag(),
            Some(VlanTag {
                pcp: 5,
                dei: true,
                vid: 100
            })
        );
        assert_eq!(frame.ethertype(), EtherType::Ipv6);
        assert_eq!(frame.header_len(), 18);
        assert_eq!(frame.payload(), &[0x60, 0, 0, 0]);
    }

    #[test]
    fn round_trips() {
        for bytes in [untagged(), tagged()] {
            let repr =
                EthernetRepr::parse(&EthernetFrame::new_checked(&bytes[..]).unwrap()).unwrap();
            let mut out = vec![0u8; repr.buffer_len(4)];
            let mut frame = EthernetFrame::new_unchecked(&mut out[..]);
            repr.emit(&mut frame).unwrap();
            frame.payload_mut().copy_from_slice(&[0x60, 0, 0, 0]);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn errors() {
        let bytes = untagged();
        assert_eq!(
            EthernetFrame::new_checked(&bytes[..13]).unwrap_err(),
            Error::Truncated("Ethernet header")
        );
        let bytes = tagged();
        assert_eq!(
            EthernetFrame::new_checked(&bytes[..17]).unwrap_err(),
            Error::Truncated("Ethernet 802.1Q tag")
        );
        // A bare 14-byte frame with TPID but no tag is caught by parse as well.
        let frame = EthernetFrame::new_unchecked(&bytes[..14]);
        assert!(EthernetRepr::parse(&frame).is_err());
        let repr = EthernetRepr {
            dst: MacAddr(DST),
            src: MacAddr(SRC),
            vlan: Some(VlanTag::default()),
            ethertype: EtherType::Ipv6,
        };
        let mut short = [0u8; 17];
        assert_eq!(
            repr.emit(&mut EthernetFrame::new_unchecked(&mut short[..])),
            Err(Error::NoRoom("Ethernet header"))
        );
    }

    #[test]
    fn setters() {
        let mut bytes = tagged();
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        frame.set_dst_addr(MacAddr(SRC));
        frame.set_src_addr(MacAddr(DST));
        frame.set_vlan_tag(VlanTag {
            pcp: 0,
            dei: false,
            vid: 4095,
        });
        frame.set_ethertype(EtherType::Arp);
        assert_eq!(frame.dst_addr(), MacAddr(SRC));
        assert_eq!(frame.src_addr(), MacAddr(DST));
        assert_eq!(
            frame.vlan_tag(),
            Some(VlanTag {
                pcp: 0,
                dei: false,
                vid: 4095
            })
        );
        assert_eq!(frame.ethertype(), EtherType::Arp);
        assert_eq!(&bytes[12..18], &[0x81, 0x00, 0x0f, 0xff, 0x08, 0x06]);

        let mut bytes = untagged();
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        frame.set_vlan_tag(VlanTag {
            pcp: 1,
            dei: false,
            vid: 1,
        });
        frame.set_ethertype(EtherType::Unknown(0x88b5));
        assert_eq!(frame.vlan_tag(), None);
        assert_eq!(&bytes[12..14], &[0x88, 0xb5]);
    }

    #[test]
    fn ethertype_numbers() {
        for (n, t) in [
            (0x0800, EtherType::Ipv4),
            (0x0806, EtherType::Arp),
            (0x8100, EtherType::Vlan),
            (0x86dd, EtherType::Ipv6),
            (0x88cc, EtherType::Unknown(0x88cc)),
        ] {
            assert_eq!(EtherType::from(n), t);
            assert_eq!(u16::from(t), n);
        }
        assert_eq!(EtherType::Unknown(0x88cc).to_string(), "0x88cc");
    }

    #[test]
    fn vlan_tci() {
        let tag = VlanTag {
            pcp: 7,
            dei: true,
            vid: 0xabc,
        };
        assert_eq!(tag.tci(), 0xfabc);
        assert_eq!(VlanTag::from_tci(0xfabc), tag);
        assert_eq!(
            VlanTag {
                pcp: 9,
                dei: false,
                vid: 0xffff
            }
            .tci(),
            0x2fff
        );
    }

    #[test]
    fn mac_addresses() {
        let m = MacAddr(DST);
        assert_eq!(m.to_string(), "02:00:5e:10:00:01");
        assert_eq!("02:00:5e:10:00:01".parse::<MacAddr>(), Ok(m));
        assert_eq!("02-00-5E-10-00-01".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:01:02",
            "02:00:5e:10:00:1g",
            "002:00:5e:10:00:01",
            "02::5e:10:00:01",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
        assert!(m.is_unicast() && m.is_locally_administered() && !m.is_multicast());
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::UNSPECIFIED.is_unicast());
        assert_eq!(
            MacAddr::from_bytes(&[1, 2, 3, 4, 5, 6, 7]),
            Ok(MacAddr([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(
            MacAddr::from_bytes(&[1, 2, 3]),
            Err(Error::Truncated("MAC address"))
        );
    }

    #[test]
    fn ipv6_multicast_mapping() {
        // RFC 2464 §7: ff02::1:ff00:1234 (a solicited-node group) -> 33:33:ff:00:12:34.
        let group: Ipv6Addr = "ff02::1:ff00:1234".parse().unwrap();
        let mac = MacAddr::from_ipv6_multicast(&group);
        assert_eq!(mac, MacAddr([0x33, 0x33, 0xff, 0x00, 0x12, 0x34]));
        assert!(mac.is_ipv6_multicast() && mac.is_multicast());
        assert_eq!(
            MacAddr::from_ipv6_multicast(&"ff02::1".parse().unwrap()).to_string(),
            "33:33:00:00:00:01"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = EthernetFrame::new_checked(&bytes[..]) {
                let repr = EthernetRepr::parse(&frame).unwrap();
                prop_assert_eq!(frame.header_len(), repr.header_len());
                let _ = frame.payload();
                let mut out = vec![0u8; bytes.len()];
                repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..])).unwrap();
                prop_assert_eq!(&out[..repr.header_len()], &bytes[..repr.header_len()]);
            }
        }
    }
}
