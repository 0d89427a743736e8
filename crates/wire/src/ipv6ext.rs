//! IPv6 extension headers (RFC 8200 §4) and a bounded walker over a header chain.
//!
//! * Hop-by-Hop and Destination Options headers share one layout ([`Ipv6OptionsHeader`]):
//!   `Next Header, Hdr Ext Len (8-octet units beyond the first 8), options...`.
//! * Routing header ([`Ipv6RoutingHeader`]), with the Mobile IPv6 Type 2 form
//!   ([`Type2RoutingRepr`], RFC 6275 §6.4).
//! * Fragment header ([`Ipv6FragmentHeader`], [`FragmentRepr`]).
//! * The Authentication Header is only walked over (its length counts 4-octet units,
//!   RFC 4302 §2.2).
//!
//! [`ExtHeaderChain::walk`] follows the chain from the IPv6 header to the upper layer without
//! allocating and returns a `Copy` summary of what the data plane and the decoder need.

use std::net::Ipv6Addr;

use crate::checksum::proto;
use crate::ipv6::{addr_at, Ipv6Packet};
use crate::{Error, Result};

/// At most this many extension headers are walked; a longer chain is Malformed. Real
/// traffic carries a handful; the bound keeps per-packet work constant.
pub const MAX_EXT_HEADERS: usize = 10;

/// Option Type numbers of the options this crate knows (IANA "Destination Options and
/// Hop-by-Hop Options").
pub mod option_type {
    pub const PAD1: u8 = 0x00;
    pub const PADN: u8 = 0x01;
    /// RFC 2473 §4.1.1.
    pub const TUNNEL_ENCAP_LIMIT: u8 = 0x04;
    /// RFC 2711.
    pub const ROUTER_ALERT: u8 = 0x05;
    /// RFC 2675.
    pub const JUMBO_PAYLOAD: u8 = 0xC2;
    /// RFC 6275 §6.3.
    pub const HOME_ADDRESS: u8 = 0xC9;
}

/// What a node that does not recognise an option must do, from the two high-order bits of
/// its type (RFC 8200 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownOptionAction {
    /// 00: skip over the option and continue.
    Skip,
    /// 01: discard the packet.
    Discard,
    /// 10: discard and send ICMPv6 Parameter Problem code 2 pointing at the option type,
    /// even to a multicast destination.
    DiscardSendParamProblem,
    /// 11: as above, but only when the destination was not multicast.
    DiscardSendParamProblemUnlessMulticast,
}

impl UnknownOptionAction {
    /// The action encoded in `option_type`.
    pub const fn of(option_type: u8) -> UnknownOptionAction {
        match option_type >> 6 {
            0 => UnknownOptionAction::Skip,
            1 => UnknownOptionAction::Discard,
            2 => UnknownOptionAction::DiscardSendParamProblem,
            _ => UnknownOptionAction::DiscardSendParamProblemUnlessMulticast,
        }
    }
}

/// True when the option's data may change en route (third-highest bit of the type,
/// RFC 8200 §4.2); such data counts as zero in an Authentication Header ICV.
pub const fn option_data_may_change(option_type: u8) -> bool {
    option_type & 0x20 != 0
}

/// One option of a Hop-by-Hop or Destination Options header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ipv6Option<'a> {
    /// A single zero octet.
    Pad1,
    /// PadN with this many data octets (the option occupies two more).
    PadN(u8),
    /// Home Address option (RFC 6275 §6.3): type 0xC9, length 16.
    HomeAddress(Ipv6Addr),
    /// Tunnel Encapsulation Limit (RFC 2473 §4.1.1): type 4, length 1.
    TunnelEncapLimit(u8),
    /// Any other option, its data unparsed.
    Unknown { type_: u8, data: &'a [u8] },
}

impl<'a> Ipv6Option<'a> {
    /// The Option Type octet.
    pub const fn option_type(&self) -> u8 {
        match self {
            Ipv6Option::Pad1 => option_type::PAD1,
            Ipv6Option::PadN(_) => option_type::PADN,
            Ipv6Option::HomeAddress(_) => option_type::HOME_ADDRESS,
            Ipv6Option::TunnelEncapLimit(_) => option_type::TUNNEL_ENCAP_LIMIT,
            Ipv6Option::Unknown { type_, .. } => *type_,
        }
    }

    /// What a node that does not know this option must do.
    pub const fn unknown_action(&self) -> UnknownOptionAction {
        UnknownOptionAction::of(self.option_type())
    }

    /// Octets the option occupies on the wire, type and length included.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Ipv6Option::Pad1 => 1,
            Ipv6Option::PadN(n) => 2 + *n as usize,
            Ipv6Option::HomeAddress(_) => 18,
            Ipv6Option::TunnelEncapLimit(_) => 3,
            Ipv6Option::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Parses the option at the start of `data` (the rest of the options area); returns it
    /// and its length on the wire.
    pub fn parse(data: &'a [u8]) -> Result<(Ipv6Option<'a>, usize)> {
        const OVERRUN: Error = Error::Malformed("IPv6 option length (overruns its header)");
        let type_ = *data.first().ok_or(Error::Truncated("IPv6 option"))?;
        if type_ == option_type::PAD1 {
            return Ok((Ipv6Option::Pad1, 1));
        }
        let len = usize::from(*data.get(1).ok_or(OVERRUN)?);
        let body = data.get(2..2 + len).ok_or(OVERRUN)?;
        let option = match type_ {
            option_type::PADN => Ipv6Option::PadN(len as u8),
            option_type::HOME_ADDRESS => {
                if len != 16 {
                    return Err(Error::Malformed("Home Address option length (not 16)"));
                }
                Ipv6Option::HomeAddress(addr_at(body, 0))
            }
            option_type::TUNNEL_ENCAP_LIMIT => {
                if len != 1 {
                    return Err(Error::Malformed(
                        "Tunnel Encapsulation Limit option length (not 1)",
                    ));
                }
                Ipv6Option::TunnelEncapLimit(body[0])
            }
            _ => Ipv6Option::Unknown { type_, data: body },
        };
        Ok((option, 2 + len))
    }

    /// Writes the option at the start of `buf` and returns its length. PadN data is zero.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if let Ipv6Option::Unknown { data, .. } = self {
            if data.len() > usize::from(u8::MAX) {
                return Err(Error::Malformed("IPv6 option data (over 255 octets)"));
            }
        }
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(Error::NoRoom("IPv6 option"))?;
        out[0] = self.option_type();
        match self {
            Ipv6Option::Pad1 => {}
            Ipv6Option::PadN(n) => {
                out[1] = *n;
                out[2..].fill(0);
            }
            Ipv6Option::HomeAddress(addr) => {
                out[1] = 16;
                out[2..].copy_from_slice(&addr.octets());
            }
            Ipv6Option::TunnelEncapLimit(limit) => {
                out[1] = 1;
                out[2] = *limit;
            }
            Ipv6Option::Unknown { data, .. } => {
                out[1] = data.len() as u8;
                out[2..].copy_from_slice(data);
            }
        }
        Ok(len)
    }
}

/// Fills `buf` with padding options: nothing, Pad1, or one PadN (RFC 8200 §4.2).
fn write_padding(buf: &mut [u8]) {
    match buf.len() {
        0 => {}
        1 => buf[0] = option_type::PAD1,
        n => {
            buf.fill(0);
            buf[0] = option_type::PADN;
            // Callers pad to an 8-octet boundary, so n - 2 <= 5.
            buf[1] = (n - 2) as u8;
        }
    }
}

/// Iterator over the options of a Hop-by-Hop or Destination Options header. Yields each
/// option with the offset of its Type octet from the start of the extension header; stops
/// after the first error.
#[derive(Debug, Clone)]
pub struct Ipv6OptionsIter<'a> {
    options: &'a [u8],
    pos: usize,
    failed: bool,
}

/// Offset of the options area within a Hop-by-Hop or Destination Options header.
const OPTIONS_START: usize = 2;

impl<'a> Iterator for Ipv6OptionsIter<'a> {
    type Item = Result<(usize, Ipv6Option<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.options.len() {
            return None;
        }
        match Ipv6Option::parse(&self.options[self.pos..]) {
            Ok((option, len)) => {
                let at = OPTIONS_START + self.pos;
                self.pos += len;
                Some(Ok((at, option)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

mod field {
    pub const NEXT_HEADER: usize = 0;
    pub const HDR_EXT_LEN: usize = 1;
    // Routing header.
    pub const ROUTING_TYPE: usize = 2;
    pub const SEGMENTS_LEFT: usize = 3;
    // Fragment header.
    pub const FRAG_OFFSET_M: core::ops::Range<usize> = 2..4;
    pub const FRAG_IDENT: core::ops::Range<usize> = 4..8;
}

/// Length in octets of a header whose Hdr Ext Len counts 8-octet units beyond the first 8.
const fn ext_len_8(hdr_ext_len: u8) -> usize {
    (hdr_ext_len as usize + 1) * 8
}

/// A read/write view of a Hop-by-Hop Options or Destination Options header.
#[derive(Debug, Clone)]
pub struct Ipv6OptionsHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6OptionsHeader<T> {
    /// Wraps `buffer` (starting at the header) without checking it.
    pub const fn new_unchecked(buffer: T) -> Ipv6OptionsHeader<T> {
        Ipv6OptionsHeader { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Ipv6OptionsHeader<T>> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks the whole header (as given by Hdr Ext Len) is in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < 2 || buf.len() < ext_len_8(buf[field::HDR_EXT_LEN]) {
            return Err(Error::Truncated("IPv6 options header"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next Header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hdr Ext Len: 8-octet units beyond the first 8.
    pub fn hdr_ext_len(&self) -> u8 {
        self.buffer.as_ref()[field::HDR_EXT_LEN]
    }

    /// Header length in octets.
    pub fn header_len(&self) -> usize {
        ext_len_8(self.hdr_ext_len())
    }

    /// The options area (after Next Header and Hdr Ext Len).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[OPTIONS_START..self.header_len()]
    }

    /// The options, each with the offset of its Type octet from the start of the header.
    pub fn iter_options(&self) -> Ipv6OptionsIter<'_> {
        Ipv6OptionsIter {
            options: self.options(),
            pos: 0,
            failed: false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6OptionsHeader<T> {
    /// Sets Next Header.
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header;
    }

    /// Sets Hdr Ext Len.
    pub fn set_hdr_ext_len(&mut self, hdr_ext_len: u8) {
        self.buffer.as_mut()[field::HDR_EXT_LEN] = hdr_ext_len;
    }

    /// The options area, writable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[OPTIONS_START..end]
    }
}

/// A Hop-by-Hop or Destination Options header with its options as raw bytes (all of which
/// have been checked to parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6OptionsRepr<'a> {
    pub next_header: u8,
    /// Encoded options; [`emit`](Self::emit) pads them to a multiple of 8 octets.
    pub options: &'a [u8],
}

impl<'a> Ipv6OptionsRepr<'a> {
    /// Reads a header and checks every option parses.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Ipv6OptionsHeader<&'a T>) -> Result<Self> {
        header.check_len()?;
        let buf: &'a [u8] = T::as_ref(header.buffer);
        let options = &buf[OPTIONS_START..header.header_len()];
        for option in header.iter_options() {
            option?;
        }
        Ok(Ipv6OptionsRepr {
            next_header: header.next_header(),
            options,
        })
    }

    /// Octets on the wire: the options plus padding to a multiple of 8.
    pub const fn header_len(&self) -> usize {
        (OPTIONS_START + self.options.len()).div_ceil(8) * 8
    }

    /// Same as [`header_len`](Self::header_len).
    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header, padding the options with Pad1/PadN.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        header: &mut Ipv6OptionsHeader<T>,
    ) -> Result<()> {
        let len = self.header_len();
        if len > ext_len_8(u8::MAX) {
            return Err(Error::Malformed("IPv6 options header (over 2048 octets)"));
        }
        let buf = header
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::NoRoom("IPv6 options header"))?;
        buf[field::NEXT_HEADER] = self.next_header;
        buf[field::HDR_EXT_LEN] = (len / 8 - 1) as u8;
        let end = OPTIONS_START + self.options.len();
        buf[OPTIONS_START..end].copy_from_slice(self.options);
        write_padding(&mut buf[end..]);
        Ok(())
    }
}

/// A Destination Options header carrying only a Home Address option, in the canonical
/// 24-octet layout `NH, 02, 01 02 00 00 (PadN), C9 10, <HoA>`; the HAO type octet sits at
/// offset 6, as its 8n+6 alignment requires (RFC 6275 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HomeAddressDestOpts {
    pub next_header: u8,
    pub home_address: Ipv6Addr,
}

impl HomeAddressDestOpts {
    /// Octets on the wire.
    pub const HEADER_LEN: usize = 24;

    /// Finds the Home Address option in a Destination Options header (other options are
    /// passed over).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Ipv6OptionsHeader<&T>) -> Result<Self> {
        header.check_len()?;
        for option in header.iter_options() {
            if let (_, Ipv6Option::HomeAddress(home_address)) = option? {
                return Ok(HomeAddressDestOpts {
                    next_header: header.next_header(),
                    home_address,
                });
            }
        }
        Err(Error::Malformed(
            "Destination Options header (no Home Address option)",
        ))
    }

    /// Always [`Self::HEADER_LEN`].
    pub const fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Same as [`header_len`](Self::header_len).
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes the canonical 24-octet header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        header: &mut Ipv6OptionsHeader<T>,
    ) -> Result<()> {
        let buf = header
            .buffer
            .as_mut()
            .get_mut(..Self::HEADER_LEN)
            .ok_or(Error::NoRoom("Destination Options header (Home Address)"))?;
        buf[..8].copy_from_slice(&[
            self.next_header,
            2,
            option_type::PADN,
            2,
            0,
            0,
            option_type::HOME_ADDRESS,
            16,
        ]);
        buf[8..].copy_from_slice(&self.home_address.octets());
        Ok(())
    }
}

/// A Destination Options header carrying only a Tunnel Encapsulation Limit option, in the
/// 8-octet layout `NH, 00, 04 01 <limit>, 01 01 00` (RFC 2473 §4.1.1, §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncapLimitDestOpts {
    pub next_header: u8,
    pub limit: u8,
}

impl EncapLimitDestOpts {
    /// Octets on the wire.
    pub const HEADER_LEN: usize = 8;
    /// Offset of the limit octet within the header.
    pub const LIMIT_OFFSET: usize = 4;

    /// Finds the Tunnel Encapsulation Limit option in a Destination Options header (other
    /// options are passed over).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Ipv6OptionsHeader<&T>) -> Result<Self> {
        header.check_len()?;
        for option in header.iter_options() {
            if let (_, Ipv6Option::TunnelEncapLimit(limit)) = option? {
                return Ok(EncapLimitDestOpts {
                    next_header: header.next_header(),
                    limit,
                });
            }
        }
        Err(Error::Malformed(
            "Destination Options header (no Tunnel Encapsulation Limit option)",
        ))
    }

    /// Always [`Self::HEADER_LEN`].
    pub const fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Same as [`header_len`](Self::header_len).
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes the 8-octet header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        header: &mut Ipv6OptionsHeader<T>,
    ) -> Result<()> {
        let buf = header
            .buffer
            .as_mut()
            .get_mut(..Self::HEADER_LEN)
            .ok_or(Error::NoRoom(
                "Destination Options header (Tunnel Encapsulation Limit)",
            ))?;
        buf.copy_from_slice(&[
            self.next_header,
            0,
            option_type::TUNNEL_ENCAP_LIMIT,
            1,
            self.limit,
            option_type::PADN,
            1,
            0,
        ]);
        Ok(())
    }
}

/// Routing Type values (IANA "Routing Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutingType {
    /// Type 0 source route, deprecated by RFC 5095.
    Type0,
    /// Mobile IPv6 Type 2 (RFC 6275 §6.4).
    Type2,
    /// RPL Source Route (RFC 6554).
    Rpl,
    /// Segment Routing Header (RFC 8754).
    SegmentRouting,
    Unknown(u8),
}

impl From<u8> for RoutingType {
    fn from(value: u8) -> Self {
        match value {
            0 => RoutingType::Type0,
            2 => RoutingType::Type2,
            3 => RoutingType::Rpl,
            4 => RoutingType::SegmentRouting,
            other => RoutingType::Unknown(other),
        }
    }
}

impl From<RoutingType> for u8 {
    fn from(value: RoutingType) -> Self {
        match value {
            RoutingType::Type0 => 0,
            RoutingType::Type2 => 2,
            RoutingType::Rpl => 3,
            RoutingType::SegmentRouting => 4,
            RoutingType::Unknown(other) => other,
        }
    }
}

/// A read/write view of a Routing header (RFC 8200 §4.4) of any type.
#[derive(Debug, Clone)]
pub struct Ipv6RoutingHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6RoutingHeader<T> {
    /// Wraps `buffer` (starting at the header) without checking it.
    pub const fn new_unchecked(buffer: T) -> Ipv6RoutingHeader<T> {
        Ipv6RoutingHeader { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Ipv6RoutingHeader<T>> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks the whole header (as given by Hdr Ext Len) is in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < 4 || buf.len() < ext_len_8(buf[field::HDR_EXT_LEN]) {
            return Err(Error::Truncated("IPv6 routing header"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next Header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hdr Ext Len: 8-octet units beyond the first 8.
    pub fn hdr_ext_len(&self) -> u8 {
        self.buffer.as_ref()[field::HDR_EXT_LEN]
    }

    /// Header length in octets.
    pub fn header_len(&self) -> usize {
        ext_len_8(self.hdr_ext_len())
    }

    /// Routing Type.
    pub fn routing_type(&self) -> RoutingType {
        RoutingType::from(self.buffer.as_ref()[field::ROUTING_TYPE])
    }

    /// Segments Left.
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[field::SEGMENTS_LEFT]
    }

    /// The type-specific data after the first four octets.
    pub fn type_data(&self) -> &[u8] {
        &self.buffer.as_ref()[4..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6RoutingHeader<T> {
    /// Sets Next Header.
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header;
    }

    /// Sets Hdr Ext Len.
    pub fn set_hdr_ext_len(&mut self, hdr_ext_len: u8) {
        self.buffer.as_mut()[field::HDR_EXT_LEN] = hdr_ext_len;
    }

    /// Sets Routing Type.
    pub fn set_routing_type(&mut self, routing_type: RoutingType) {
        self.buffer.as_mut()[field::ROUTING_TYPE] = routing_type.into();
    }

    /// Sets Segments Left.
    pub fn set_segments_left(&mut self, segments_left: u8) {
        self.buffer.as_mut()[field::SEGMENTS_LEFT] = segments_left;
    }

    /// The type-specific data, writable.
    pub fn type_data_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[4..end]
    }
}

/// A Type 2 Routing header (RFC 6275 §6.4): `NH 02 02 01 00000000 <HoA>`, 24 octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Type2RoutingRepr {
    pub next_header: u8,
    pub home_address: Ipv6Addr,
}

impl Type2RoutingRepr {
    /// Octets on the wire.
    pub const HEADER_LEN: usize = 24;

    /// Reads a Type 2 routing header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Ipv6RoutingHeader<&T>) -> Result<Self> {
        header.check_len()?;
        if header.routing_type() != RoutingType::Type2 {
            return Err(Error::Unsupported("routing header type (not 2)"));
        }
        // RFC 6275 §6.4: a node that finds Hdr Ext Len != 2 or Segments Left != 1 in a
        // Type 2 header discards the packet silently.
        if header.hdr_ext_len() != 2 {
            return Err(Error::Malformed(
                "Type 2 routing header length (Hdr Ext Len not 2)",
            ));
        }
        if header.segments_left() != 1 {
            return Err(Error::Malformed(
                "Type 2 routing header Segments Left (not 1)",
            ));
        }
        Ok(Type2RoutingRepr {
            next_header: header.next_header(),
            home_address: addr_at(header.buffer.as_ref(), 8),
        })
    }

    /// Always [`Self::HEADER_LEN`].
    pub const fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Same as [`header_len`](Self::header_len).
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Writes the 24-octet header (Reserved zero).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        header: &mut Ipv6RoutingHeader<T>,
    ) -> Result<()> {
        let buf = header
            .buffer
            .as_mut()
            .get_mut(..Self::HEADER_LEN)
            .ok_or(Error::NoRoom("Type 2 routing header"))?;
        buf[..8].copy_from_slice(&[self.next_header, 2, 2, 1, 0, 0, 0, 0]);
        buf[8..].copy_from_slice(&self.home_address.octets());
        Ok(())
    }
}

/// A read/write view of a Fragment header (RFC 8200 §4.5).
///
/// ```text
/// | Next Header | Reserved | Fragment Offset (13) | Res (2) | M |
/// |                   Identification (32)                      |
/// ```
#[derive(Debug, Clone)]
pub struct Ipv6FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragmentHeader<T> {
    /// Wraps `buffer` (starting at the header) without checking it.
    pub const fn new_unchecked(buffer: T) -> Ipv6FragmentHeader<T> {
        Ipv6FragmentHeader { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Ipv6FragmentHeader<T>> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks the 8-octet header is in the buffer.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FragmentRepr::HEADER_LEN {
            return Err(Error::Truncated("IPv6 Fragment header"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn offset_m(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FRAG_OFFSET_M];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Next Header (of the fragmentable part).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Fragment Offset in 8-octet units.
    pub fn frag_offset(&self) -> u16 {
        self.offset_m() >> 3
    }

    /// The M flag: more fragments follow.
    pub fn more_frags(&self) -> bool {
        self.offset_m() & 1 != 0
    }

    /// Identification.
    pub fn ident(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::FRAG_IDENT];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6FragmentHeader<T> {
    /// Sets Next Header.
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = next_header;
    }

    /// Sets Fragment Offset (8-octet units, 13 bits; higher bits are ignored).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let v = (self.offset_m() & 0x7) | (offset << 3);
        self.buffer.as_mut()[field::FRAG_OFFSET_M].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the M flag.
    pub fn set_more_frags(&mut self, more: bool) {
        let v = (self.offset_m() & !1) | u16::from(more);
        self.buffer.as_mut()[field::FRAG_OFFSET_M].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets Identification.
    pub fn set_ident(&mut self, ident: u32) {
        self.buffer.as_mut()[field::FRAG_IDENT].copy_from_slice(&ident.to_be_bytes());
    }
}

/// A parsed Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    pub next_header: u8,
    /// Fragment Offset in 8-octet units (13 bits).
    pub offset: u16,
    /// The M flag.
    pub more_fragments: bool,
    pub identification: u32,
}

impl FragmentRepr {
    /// Octets on the wire.
    pub const HEADER_LEN: usize = 8;

    /// Reads a Fragment header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Ipv6FragmentHeader<&T>) -> Result<Self> {
        header.check_len()?;
        Ok(FragmentRepr {
            next_header: header.next_header(),
            offset: header.frag_offset(),
            more_fragments: header.more_frags(),
            identification: header.ident(),
        })
    }

    /// Always [`Self::HEADER_LEN`].
    pub const fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Same as [`header_len`](Self::header_len).
    pub const fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Fragment offset in octets.
    pub const fn byte_offset(&self) -> usize {
        self.offset as usize * 8
    }

    /// True for the first fragment (offset 0): it carries the upper-layer header.
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }

    /// True for an atomic fragment (offset 0, M clear: the whole packet; RFC 6946).
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more_fragments
    }

    /// Writes the header (Reserved fields zero). Fails when the offset exceeds 13 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        header: &mut Ipv6FragmentHeader<T>,
    ) -> Result<()> {
        if self.offset > 0x1fff {
            return Err(Error::Malformed("fragment offset (over 13 bits)"));
        }
        let buf = header
            .buffer
            .as_mut()
            .get_mut(..Self::HEADER_LEN)
            .ok_or(Error::NoRoom("IPv6 Fragment header"))?;
        buf[0] = self.next_header;
        buf[1] = 0;
        let offset_m = (self.offset << 3) | u16::from(self.more_fragments);
        buf[field::FRAG_OFFSET_M].copy_from_slice(&offset_m.to_be_bytes());
        buf[field::FRAG_IDENT].copy_from_slice(&self.identification.to_be_bytes());
        Ok(())
    }
}

/// A routing header other than Type 2 met on the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoutingInfo {
    pub routing_type: u8,
    pub segments_left: u8,
    /// Offset of the routing header within the IPv6 payload.
    pub offset: usize,
}

/// A Tunnel Encapsulation Limit option met on the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncapLimitInfo {
    pub limit: u8,
    /// Offset of the limit octet within the IPv6 payload; add [`crate::ipv6::HEADER_LEN`]
    /// for the ICMPv6 Parameter Problem pointer (RFC 2473 §5.1 (b)).
    pub offset: usize,
}

/// A Fragment header met on the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    pub header: FragmentRepr,
    /// Offset of the Fragment header within the IPv6 payload: the unfragmentable part
    /// ends here.
    pub offset: usize,
}

/// The first option met on the walk that this crate does not know and whose type asks for
/// something other than skipping (RFC 8200 §4.2). Whether to act on it is the caller's call:
/// only the node a header is addressed to processes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownOptionInfo {
    pub option_type: u8,
    pub action: UnknownOptionAction,
    /// Whether it sat in the Hop-by-Hop header (else a Destination Options header).
    pub in_hop_by_hop: bool,
    /// Offset of the option Type octet within the IPv6 payload; add
    /// [`crate::ipv6::HEADER_LEN`] for a Parameter Problem code 2 pointer.
    pub offset: usize,
}

/// Summary of an IPv6 extension header chain, from [`ExtHeaderChain::walk`].
///
/// Offsets count from the start of the IPv6 payload (the octet after the fixed header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtHeaderChain {
    /// Protocol number where the walk stopped: an upper layer (TCP, UDP, ICMPv6), the
    /// Mobility Header (135, always the last header), ESP, IPv6 (41), No Next Header (59),
    /// anything not known as an extension header, or the Next Header of a non-first
    /// fragment.
    pub upper_layer: u8,
    /// Offset at which the header named by `upper_layer` begins (for a non-first fragment,
    /// where the fragment data begins).
    pub upper_offset: usize,
    /// Offset of the Next Header octet holding `upper_layer` (for a Parameter Problem code 1
    /// pointer); `None` means the fixed header's Next Header field.
    pub next_header_offset: Option<usize>,
    /// Extension headers walked.
    pub header_count: u8,
    /// A Hop-by-Hop Options header was present (necessarily first).
    pub hop_by_hop: bool,
    /// Home address from a Home Address option in a Destination Options header.
    pub home_address: Option<Ipv6Addr>,
    /// Home address from a Type 2 routing header.
    pub type2_home_address: Option<Ipv6Addr>,
    /// The first routing header of another type.
    pub routing: Option<RoutingInfo>,
    /// The first Tunnel Encapsulation Limit option in a Destination Options header.
    pub encap_limit: Option<EncapLimitInfo>,
    /// The Fragment header.
    pub fragment: Option<FragmentInfo>,
    /// The first unknown option whose type does not say "skip".
    pub unknown_option: Option<UnknownOptionInfo>,
}

impl ExtHeaderChain {
    /// Walks the extension headers of an IPv6 payload whose fixed header said
    /// `first_next_header`.
    ///
    /// Hop-by-Hop must come first; the Mobility Header, ESP and anything unknown end the
    /// walk; AH is passed over by its own length rule; a non-first fragment ends it (its
    /// upper layer is not in this packet). Errors: a header that does not fit (Truncated),
    /// more than [`MAX_EXT_HEADERS`] headers, a misplaced Hop-by-Hop header, an option that
    /// overruns its header or has the wrong length, a duplicate Home Address option, Type 2
    /// routing header or Fragment header, a Type 2 header with Hdr Ext Len != 2 or Segments
    /// Left != 1 (all Malformed).
    pub fn walk(first_next_header: u8, payload: &[u8]) -> Result<ExtHeaderChain> {
        let mut chain = ExtHeaderChain {
            upper_layer: first_next_header,
            upper_offset: 0,
            next_header_offset: None,
            header_count: 0,
            hop_by_hop: false,
            home_address: None,
            type2_home_address: None,
            routing: None,
            encap_limit: None,
            fragment: None,
            unknown_option: None,
        };
        let mut next_header = first_next_header;
        let mut offset = 0usize;
        loop {
            if !is_walked_ext_header(next_header) {
                break;
            }
            if usize::from(chain.header_count) == MAX_EXT_HEADERS {
                return Err(Error::Malformed("extension header chain too long"));
            }
            chain.header_count += 1;
            let rest = &payload[offset..];
            let header_len = match next_header {
                proto::HOP_BY_HOP | proto::DEST_OPTS => {
                    let hop_by_hop = next_header == proto::HOP_BY_HOP;
                    // RFC 8200 §4.1: Hop-by-Hop may only follow the fixed header.
                    if hop_by_hop && offset != 0 {
                        return Err(Error::Malformed("Hop-by-Hop Options header not first"));
                    }
                    chain.hop_by_hop |= hop_by_hop;
                    let header = Ipv6OptionsHeader::new_checked(rest).map_err(|_| {
                        Error::Truncated(if hop_by_hop {
                            "IPv6 Hop-by-Hop Options header"
                        } else {
                            "IPv6 Destination Options header"
                        })
                    })?;
                    chain.note_options(&header, offset, hop_by_hop)?;
                    header.header_len()
                }
                proto::ROUTING => {
                    let header = Ipv6RoutingHeader::new_checked(rest)?;
                    if header.routing_type() == RoutingType::Type2 {
                        let rh2 = Type2RoutingRepr::parse(&header)?;
                        if chain.type2_home_address.is_some() {
                            return Err(Error::Malformed("duplicate Type 2 routing header"));
                        }
                        chain.type2_home_address = Some(rh2.home_address);
                    } else if chain.routing.is_none() {
                        chain.routing = Some(RoutingInfo {
                            routing_type: header.routing_type().into(),
                            segments_left: header.segments_left(),
                            offset,
                        });
                    }
                    header.header_len()
                }
                proto::FRAGMENT => {
                    let header = FragmentRepr::parse(&Ipv6FragmentHeader::new_checked(rest)?)?;
                    if chain.fragment.is_some() {
                        return Err(Error::Malformed("duplicate Fragment header"));
                    }
                    chain.fragment = Some(FragmentInfo { header, offset });
                    if !header.is_first() {
                        chain.upper_layer = header.next_header;
                        chain.upper_offset = offset + FragmentRepr::HEADER_LEN;
                        chain.next_header_offset = Some(offset);
                        return Ok(chain);
                    }
                    FragmentRepr::HEADER_LEN
                }
                _ => {
                    // Authentication Header: Payload Len counts 4-octet units minus 2
                    // (RFC 4302 §2.2).
                    let len_units = *rest
                        .get(1)
                        .ok_or(Error::Truncated("IPv6 Authentication Header"))?;
                    let len = (usize::from(len_units) + 2) * 4;
                    if rest.len() < len {
                        return Err(Error::Truncated("IPv6 Authentication Header"));
                    }
                    len
                }
            };
            chain.next_header_offset = Some(offset);
            next_header = rest[0];
            offset += header_len;
        }
        chain.upper_layer = next_header;
        chain.upper_offset = offset;
        Ok(chain)
    }

    /// [`walk`](Self::walk) over the payload of a checked IPv6 packet.
    pub fn of_packet<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<ExtHeaderChain> {
        packet.check_len()?;
        Self::walk(packet.next_header(), packet.payload())
    }

    fn note_options(
        &mut self,
        header: &Ipv6OptionsHeader<&[u8]>,
        header_offset: usize,
        hop_by_hop: bool,
    ) -> Result<()> {
        for option in header.iter_options() {
            let (at, option) = option?;
            let at = header_offset + at;
            match option {
                // The HAO and the TEL are destination options (RFC 6275 §6.3, RFC 2473
                // §4.1.1); in a Hop-by-Hop header they mean nothing to us.
                Ipv6Option::HomeAddress(addr) if !hop_by_hop => {
                    if self.home_address.is_some() {
                        return Err(Error::Malformed("duplicate Home Address option"));
                    }
                    self.home_address = Some(addr);
                }
                Ipv6Option::TunnelEncapLimit(limit) if !hop_by_hop => {
                    // RFC 2473 §5.1 (a): the first limit met is the one that counts.
                    self.encap_limit = self.encap_limit.or(Some(EncapLimitInfo {
                        limit,
                        offset: at + 2,
                    }));
                }
                Ipv6Option::Unknown { type_, .. } if self.unknown_option.is_none() => {
                    let action = UnknownOptionAction::of(type_);
                    if action != UnknownOptionAction::Skip {
                        self.unknown_option = Some(UnknownOptionInfo {
                            option_type: type_,
                            action,
                            in_hop_by_hop: hop_by_hop,
                            offset: at,
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// True when this packet is a fragment other than the first: no upper-layer header.
    pub const fn is_non_first_fragment(&self) -> bool {
        match self.fragment {
            Some(f) => !f.header.is_first(),
            None => false,
        }
    }

    /// True when an upper-layer header starts at `upper_offset` in this packet: not a
    /// non-first fragment and not No Next Header.
    pub const fn has_upper_layer(&self) -> bool {
        !self.is_non_first_fragment() && self.upper_layer != proto::NO_NEXT_HEADER
    }

    /// The upper-layer header and what follows it, when [`has_upper_layer`](Self::has_upper_layer).
    pub fn upper_layer_bytes<'a>(&self, payload: &'a [u8]) -> Option<&'a [u8]> {
        if self.has_upper_layer() {
            payload.get(self.upper_offset..)
        } else {
            None
        }
    }

    /// The source address for an upper-layer pseudo-header: the home address from a Home
    /// Address option if present (RFC 6275 §6.3), else `src`.
    pub fn pseudo_header_src(&self, src: Ipv6Addr) -> Ipv6Addr {
        self.home_address.unwrap_or(src)
    }

    /// The destination address for an upper-layer pseudo-header: the final destination of
    /// a Type 2 routing header if present (RFC 8200 §8.1, RFC 6275 §6.4), else `dst`.
    /// Other routing types are not resolved.
    pub fn pseudo_header_dst(&self, dst: Ipv6Addr) -> Ipv6Addr {
        self.type2_home_address.unwrap_or(dst)
    }
}

/// Extension headers the walker steps over; everything else ends the walk.
const fn is_walked_ext_header(next_header: u8) -> bool {
    matches!(
        next_header,
        proto::HOP_BY_HOP | proto::DEST_OPTS | proto::ROUTING | proto::FRAGMENT | proto::AH
    )
}

/// RFC 2473 §5.1 (a): scans the headers of a packet about to be encapsulated for a Tunnel
/// Encapsulation Limit option, left to right, stopping at another IPv6 header, an upper-layer
/// header, a non-first fragment or a header that cannot be parsed (the RFC's "unparseable
/// header": the scan ends without a limit rather than failing). At most
/// [`MAX_EXT_HEADERS`] headers are scanned.
pub fn find_encap_limit(first_next_header: u8, payload: &[u8]) -> Option<EncapLimitInfo> {
    let mut next_header = first_next_header;
    let mut offset = 0usize;
    for _ in 0..MAX_EXT_HEADERS {
        let rest = payload.get(offset..)?;
        let header_len = match next_header {
            proto::HOP_BY_HOP | proto::DEST_OPTS => {
                let header = Ipv6OptionsHeader::new_checked(rest).ok()?;
                if next_header == proto::DEST_OPTS {
                    for option in header.iter_options() {
                        match option.ok()? {
                            (at, Ipv6Option::TunnelEncapLimit(limit)) => {
                                return Some(EncapLimitInfo {
                                    limit,
                                    offset: offset + at + 2,
                                })
                            }
                            _ => continue,
                        }
                    }
                }
                header.header_len()
            }
            proto::ROUTING => Ipv6RoutingHeader::new_checked(rest).ok()?.header_len(),
            proto::FRAGMENT => {
                let header = Ipv6FragmentHeader::new_checked(rest).ok()?;
                if header.frag_offset() != 0 {
                    return None;
                }
                FragmentRepr::HEADER_LEN
            }
            proto::AH => {
                let len = (usize::from(*rest.get(1)?) + 2) * 4;
                if rest.len() < len {
                    return None;
                }
                len
            }
            _ => return None,
        };
        next_header = rest[0];
        offset += header_len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hoa() -> Ipv6Addr {
        "2001:db8:5::53".parse().unwrap()
    }

    /// PROTOCOL.md §1.5: Destination Options with only a HAO, Next Header 135.
    fn hao_dest_opts(next_header: u8) -> Vec<u8> {
        let mut h = vec![next_header, 0x02, 0x01, 0x02, 0x00, 0x00, 0xc9, 0x10];
        h.extend_from_slice(&hoa().octets());
        h
    }

    /// PROTOCOL.md §1.5: Type 2 routing header.
    fn rh2(next_header: u8) -> Vec<u8> {
        let mut h = vec![next_header, 0x02, 0x02, 0x01, 0, 0, 0, 0];
        h.extend_from_slice(&hoa().octets());
        h
    }

    /// PROTOCOL.md §2: Destination Options with only a TEL.
    fn tel_dest_opts(next_header: u8, limit: u8) -> Vec<u8> {
        vec![next_header, 0x00, 0x04, 0x01, limit, 0x01, 0x01, 0x00]
    }

    #[test]
    fn canonical_hao_layout() {
        let repr = HomeAddressDestOpts {
            next_header: proto::MOBILITY,
            home_address: hoa(),
        };
        let mut out = [0xaau8; 24];
        repr.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(&out[..], &hao_dest_opts(135)[..]);
        assert_eq!(out[6], 0xc9, "HAO type octet at 8n+6");
        let header = Ipv6OptionsHeader::new_checked(&out[..]).unwrap();
        assert_eq!(header.header_len(), 24);
        assert_eq!(HomeAddressDestOpts::parse(&header).unwrap(), repr);
        let options: Vec<_> = header.iter_options().map(|o| o.unwrap()).collect();
        assert_eq!(
            options,
            vec![
                (2, Ipv6Option::PadN(2)),
                (6, Ipv6Option::HomeAddress(hoa()))
            ]
        );
        let mut short = [0u8; 23];
        assert!(matches!(
            repr.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut short[..])),
            Err(Error::NoRoom(_))
        ));
    }

    #[test]
    fn canonical_tel_layout() {
        let repr = EncapLimitDestOpts {
            next_header: proto::IPV6,
            limit: 4,
        };
        let mut out = [0xaau8; 8];
        repr.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out, [41, 0, 4, 1, 4, 1, 1, 0]);
        assert_eq!(out[EncapLimitDestOpts::LIMIT_OFFSET], 4);
        let header = Ipv6OptionsHeader::new_checked(&out[..]).unwrap();
        assert_eq!(EncapLimitDestOpts::parse(&header).unwrap(), repr);
        assert!(HomeAddressDestOpts::parse(&header).is_err());
        let hao = hao_dest_opts(59);
        assert!(
            EncapLimitDestOpts::parse(&Ipv6OptionsHeader::new_checked(&hao[..]).unwrap()).is_err()
        );
        let mut short = [0u8; 7];
        assert!(repr
            .emit(&mut Ipv6OptionsHeader::new_unchecked(&mut short[..]))
            .is_err());
    }

    #[test]
    fn canonical_rh2_layout() {
        let repr = Type2RoutingRepr {
            next_header: proto::MOBILITY,
            home_address: hoa(),
        };
        let mut out = [0xaau8; 24];
        repr.emit(&mut Ipv6RoutingHeader::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(&out[..], &rh2(0x87)[..]);
        let header = Ipv6RoutingHeader::new_checked(&out[..]).unwrap();
        assert_eq!(header.routing_type(), RoutingType::Type2);
        assert_eq!(header.segments_left(), 1);
        assert_eq!(header.type_data().len(), 20);
        assert_eq!(Type2RoutingRepr::parse(&header).unwrap(), repr);
    }

    #[test]
    fn rh2_errors() {
        let mut bad = rh2(59);
        bad[3] = 0;
        assert_eq!(
            Type2RoutingRepr::parse(&Ipv6RoutingHeader::new_checked(&bad[..]).unwrap()),
            Err(Error::Malformed(
                "Type 2 routing header Segments Left (not 1)"
            ))
        );
        let mut long = rh2(59);
        long[1] = 3;
        long.extend_from_slice(&[0; 8]);
        assert_eq!(
            Type2RoutingRepr::parse(&Ipv6RoutingHeader::new_checked(&long[..]).unwrap()),
            Err(Error::Malformed(
                "Type 2 routing header length (Hdr Ext Len not 2)"
            ))
        );
        let mut srh = rh2(59);
        srh[2] = 4;
        assert_eq!(
            Type2RoutingRepr::parse(&Ipv6RoutingHeader::new_checked(&srh[..]).unwrap()),
            Err(Error::Unsupported("routing header type (not 2)"))
        );
        let ok = rh2(59);
        assert_eq!(
            Ipv6RoutingHeader::new_checked(&ok[..23]).unwrap_err(),
            Error::Truncated("IPv6 routing header")
        );
        assert!(Ipv6RoutingHeader::new_checked(&ok[..3]).is_err());
        // Parse re-checks an unchecked view.
        assert!(Type2RoutingRepr::parse(&Ipv6RoutingHeader::new_unchecked(&ok[..20])).is_err());
        let mut short = [0u8; 23];
        assert!(Type2RoutingRepr {
            next_header: 59,
            home_address: hoa()
        }
        .emit(&mut Ipv6RoutingHeader::new_unchecked(&mut short[..]))
        .is_err());
    }

    #[test]
    fn routing_header_setters() {
        let mut buf = [0u8; 24];
        let mut h = Ipv6RoutingHeader::new_unchecked(&mut buf[..]);
        h.set_next_header(6);
        h.set_hdr_ext_len(2);
        h.set_routing_type(RoutingType::Unknown(253));
        h.set_segments_left(3);
        h.type_data_mut()[0] = 0xee;
        assert_eq!(h.routing_type(), RoutingType::Unknown(253));
        assert_eq!(&buf[..5], &[6, 2, 253, 3, 0xee]);
        for (n, t) in [
            (0, RoutingType::Type0),
            (2, RoutingType::Type2),
            (3, RoutingType::Rpl),
            (4, RoutingType::SegmentRouting),
        ] {
            assert_eq!(RoutingType::from(n), t);
            assert_eq!(u8::from(t), n);
        }
    }

    #[test]
    fn options_parse_and_errors() {
        // Pad1, PadN(0), Router Alert (5, len 2), unknown 0x3e (skip) len 1: 1+2+4+3 = 10,
        // plus PadN(2) = 14 octets of options, a 16-octet header.
        let h = [
            59, 1, 0x00, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x3e, 0x01, 0xff, 0x01, 0x02, 0x00,
            0x00,
        ];
        let header = Ipv6OptionsHeader::new_checked(&h[..]).unwrap();
        let options: Vec<_> = header.iter_options().map(|o| o.unwrap()).collect();
        assert_eq!(
            options,
            vec![
                (2, Ipv6Option::Pad1),
                (3, Ipv6Option::PadN(0)),
                (
                    5,
                    Ipv6Option::Unknown {
                        type_: 5,
                        data: &[0, 0]
                    }
                ),
                (
                    9,
                    Ipv6Option::Unknown {
                        type_: 0x3e,
                        data: &[0xff]
                    }
                ),
                (12, Ipv6Option::PadN(2)),
            ]
        );
        assert_eq!(options[3].1.unknown_action(), UnknownOptionAction::Skip);
        assert!(option_data_may_change(0x3e));
        assert!(!option_data_may_change(option_type::HOME_ADDRESS));
        let repr = Ipv6OptionsRepr::parse(&header).unwrap();
        assert_eq!(repr.header_len(), 16);
        let mut out = [0u8; 16];
        repr.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out, h);

        // An option that overruns the header.
        let overrun = [59, 0, 0x01, 0x05, 0, 0, 0, 0];
        let header = Ipv6OptionsHeader::new_checked(&overrun[..]).unwrap();
        let mut it = header.iter_options();
        assert_eq!(
            it.next(),
            Some(Err(Error::Malformed(
                "IPv6 option length (overruns its header)"
            )))
        );
        assert_eq!(it.next(), None, "the iterator stops after an error");
        assert!(Ipv6OptionsRepr::parse(&header).is_err());
        // A type octet with no room for its length octet.
        let no_len = [59, 0, 0, 0, 0, 0, 0, 0x1e];
        assert!(
            Ipv6OptionsRepr::parse(&Ipv6OptionsHeader::new_checked(&no_len[..]).unwrap()).is_err()
        );

        // HAO and TEL with the wrong lengths.
        let bad_hao = [59, 0, 0xc9, 0x04, 0, 0, 0, 0];
        assert_eq!(
            Ipv6OptionsRepr::parse(&Ipv6OptionsHeader::new_checked(&bad_hao[..]).unwrap()),
            Err(Error::Malformed("Home Address option length (not 16)"))
        );
        let bad_tel = [59, 0, 0x04, 0x02, 1, 1, 1, 0];
        assert_eq!(
            Ipv6OptionsRepr::parse(&Ipv6OptionsHeader::new_checked(&bad_tel[..]).unwrap()),
            Err(Error::Malformed(
                "Tunnel Encapsulation Limit option length (not 1)"
            ))
        );

        // A header longer than its buffer.
        assert_eq!(
            Ipv6OptionsHeader::new_checked(&h[..15]).unwrap_err(),
            Error::Truncated("IPv6 options header")
        );
        assert!(Ipv6OptionsHeader::new_checked(&h[..1]).is_err());
        assert_eq!(Ipv6Option::parse(&[]), Err(Error::Truncated("IPv6 option")));
    }

    #[test]
    fn options_emit_and_padding() {
        let mut opts = [0u8; 32];
        let mut at = 0;
        for o in [
            Ipv6Option::TunnelEncapLimit(3),
            Ipv6Option::Pad1,
            Ipv6Option::HomeAddress(hoa()),
            Ipv6Option::Unknown {
                type_: 0x1e,
                data: &[1, 2],
            },
        ] {
            at += o.emit(&mut opts[at..]).unwrap();
        }
        assert_eq!(at, 3 + 1 + 18 + 4);
        let repr = Ipv6OptionsRepr {
            next_header: 6,
            options: &opts[..at],
        };
        assert_eq!(repr.header_len(), 32);
        let mut out = [0xaau8; 32];
        repr.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out[1], 3);
        assert_eq!(
            &out[28..],
            &[1, 2, 0, 0],
            "PadN(2) fills the last four octets"
        );
        let header = Ipv6OptionsHeader::new_checked(&out[..]).unwrap();
        assert_eq!(
            Ipv6OptionsRepr::parse(&header).unwrap(),
            repr_with_padding(&out)
        );
        let options: Vec<_> = header.iter_options().map(|o| o.unwrap().1).collect();
        assert_eq!(options[0], Ipv6Option::TunnelEncapLimit(3));
        assert_eq!(options[2], Ipv6Option::HomeAddress(hoa()));
        assert_eq!(options[4], Ipv6Option::PadN(2));

        // One octet of padding is Pad1.
        let five = [0x1e, 3, 0, 0, 0];
        let mut out = [0xaau8; 8];
        Ipv6OptionsRepr {
            next_header: 59,
            options: &five,
        }
        .emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..]))
        .unwrap();
        assert_eq!(out[7], 0);
        // No room, and too long to encode.
        assert!(Ipv6OptionsRepr {
            next_header: 59,
            options: &five
        }
        .emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..7]))
        .is_err());
        let huge = [0u8; 2047];
        let mut big = vec![0u8; 2056];
        assert!(matches!(
            Ipv6OptionsRepr {
                next_header: 59,
                options: &huge
            }
            .emit(&mut Ipv6OptionsHeader::new_unchecked(&mut big[..])),
            Err(Error::Malformed(_))
        ));
        assert!(Ipv6Option::Pad1.emit(&mut []).is_err());
        let long = [0u8; 256];
        assert!(Ipv6Option::Unknown {
            type_: 0x1e,
            data: &long
        }
        .emit(&mut [0u8; 258])
        .is_err());
        let mut padn = [0xffu8; 4];
        assert_eq!(Ipv6Option::PadN(2).emit(&mut padn), Ok(4));
        assert_eq!(padn, [1, 2, 0, 0]);
    }

    fn repr_with_padding(bytes: &[u8]) -> Ipv6OptionsRepr<'_> {
        Ipv6OptionsRepr {
            next_header: bytes[0],
            options: &bytes[2..],
        }
    }

    #[test]
    fn options_header_setters() {
        let mut buf = [0u8; 16];
        let mut h = Ipv6OptionsHeader::new_unchecked(&mut buf[..]);
        h.set_next_header(17);
        h.set_hdr_ext_len(1);
        h.options_mut()[0] = 0x01;
        h.options_mut()[1] = 12;
        let h = Ipv6OptionsHeader::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (h.next_header(), h.hdr_ext_len(), h.header_len()),
            (17, 1, 16)
        );
        assert_eq!(h.iter_options().count(), 1);
    }

    #[test]
    fn unknown_option_actions() {
        assert_eq!(UnknownOptionAction::of(0x04), UnknownOptionAction::Skip);
        assert_eq!(UnknownOptionAction::of(0x5e), UnknownOptionAction::Discard);
        assert_eq!(
            UnknownOptionAction::of(0x82),
            UnknownOptionAction::DiscardSendParamProblem
        );
        assert_eq!(
            UnknownOptionAction::of(option_type::HOME_ADDRESS),
            UnknownOptionAction::DiscardSendParamProblemUnlessMulticast
        );
        assert_eq!(
            Ipv6Option::HomeAddress(hoa()).unknown_action(),
            UnknownOptionAction::DiscardSendParamProblemUnlessMulticast
        );
    }

    #[test]
    fn fragment_header() {
        // Offset 185 (1480 octets), M set, identification 0xdeadbeef, then UDP.
        let bytes = [17, 0, 0x05, 0xc9, 0xde, 0xad, 0xbe, 0xef];
        let view = Ipv6FragmentHeader::new_checked(&bytes[..]).unwrap();
        let repr = FragmentRepr::parse(&view).unwrap();
        assert_eq!(
            repr,
            FragmentRepr {
                next_header: 17,
                offset: 185,
                more_fragments: true,
                identification: 0xdeadbeef
            }
        );
        assert_eq!(repr.byte_offset(), 1480);
        assert!(!repr.is_first() && !repr.is_atomic());
        let mut out = [0xaau8; 8];
        repr.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out, bytes);

        let mut h = Ipv6FragmentHeader::new_unchecked(&mut out[..]);
        h.set_frag_offset(0);
        h.set_more_frags(false);
        h.set_ident(7);
        h.set_next_header(6);
        let repr =
            FragmentRepr::parse(&Ipv6FragmentHeader::new_checked(&out[..]).unwrap()).unwrap();
        assert!(repr.is_first() && repr.is_atomic());
        assert_eq!((repr.next_header, repr.identification), (6, 7));

        assert_eq!(
            Ipv6FragmentHeader::new_checked(&bytes[..7]).unwrap_err(),
            Error::Truncated("IPv6 Fragment header")
        );
        assert!(FragmentRepr::parse(&Ipv6FragmentHeader::new_unchecked(&bytes[..7])).is_err());
        let too_far = FragmentRepr {
            next_header: 17,
            offset: 0x2000,
            more_fragments: false,
            identification: 0,
        };
        assert!(too_far
            .emit(&mut Ipv6FragmentHeader::new_unchecked(&mut out[..]))
            .is_err());
        assert!(repr
            .emit(&mut Ipv6FragmentHeader::new_unchecked(&mut out[..7]))
            .is_err());
    }

    /// A Binding Update as a route-optimising client would send it: Destination Options
    /// with HAO, then the Mobility Header.
    #[test]
    fn walk_binding_update_with_hao() {
        let mut payload = hao_dest_opts(proto::MOBILITY);
        let mh = [59, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0];
        payload.extend_from_slice(&mh);
        let chain = ExtHeaderChain::walk(proto::DEST_OPTS, &payload).unwrap();
        assert_eq!(chain.upper_layer, proto::MOBILITY);
        assert_eq!(chain.upper_offset, 24);
        assert_eq!(chain.next_header_offset, Some(0));
        assert_eq!(chain.header_count, 1);
        assert_eq!(chain.home_address, Some(hoa()));
        assert!(chain.has_upper_layer());
        assert_eq!(chain.upper_layer_bytes(&payload), Some(&mh[..]));
        let coa: Ipv6Addr = "2001:db8:c0a::1".parse().unwrap();
        assert_eq!(chain.pseudo_header_src(coa), hoa());
        assert_eq!(chain.pseudo_header_dst(coa), coa);
    }

    /// A Binding Acknowledgement to a mobile node: Type 2 routing header, then MH.
    #[test]
    fn walk_rh2() {
        let mut payload = rh2(proto::MOBILITY);
        payload.extend_from_slice(&[59, 1, 6, 0, 0, 0, 0, 0]);
        let chain = ExtHeaderChain::walk(proto::ROUTING, &payload).unwrap();
        assert_eq!(chain.upper_layer, proto::MOBILITY);
        assert_eq!(chain.upper_offset, 24);
        assert_eq!(chain.type2_home_address, Some(hoa()));
        assert_eq!(chain.routing, None);
        assert_eq!(chain.pseudo_header_dst(Ipv6Addr::LOCALHOST), hoa());

        let mut bad = rh2(proto::MOBILITY);
        bad[3] = 2;
        assert!(matches!(
            ExtHeaderChain::walk(proto::ROUTING, &bad),
            Err(Error::Malformed(_))
        ));
        let mut two = rh2(proto::ROUTING);
        two.extend_from_slice(&rh2(59));
        assert_eq!(
            ExtHeaderChain::walk(proto::ROUTING, &two),
            Err(Error::Malformed("duplicate Type 2 routing header"))
        );
    }

    #[test]
    fn walk_full_chain() {
        // HbH (router alert) / DestOpts (unknown 0x9e, TEL 3) / RH type 4, SL 2 / Fragment
        // (first) / AH / UDP.
        let mut p = vec![proto::DEST_OPTS, 0, 0x05, 0x02, 0, 0, 0x01, 0x00];
        p.extend_from_slice(&[proto::ROUTING, 1, 0x9e, 0x01, 0xaa, 0x04, 0x01, 0x03]);
        p.extend_from_slice(&[0x01, 0x04, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[proto::FRAGMENT, 0, 4, 2, 0, 0, 0, 0]);
        p.extend_from_slice(&[proto::AH, 0, 0x00, 0x01, 0, 0, 0, 9]);
        p.extend_from_slice(&[proto::UDP, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        let udp = [0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];
        p.extend_from_slice(&udp);
        let chain = ExtHeaderChain::walk(proto::HOP_BY_HOP, &p).unwrap();
        assert_eq!(chain.header_count, 5);
        assert!(chain.hop_by_hop);
        assert_eq!(chain.upper_layer, proto::UDP);
        assert_eq!(chain.upper_offset, 8 + 16 + 8 + 8 + 12);
        assert_eq!(chain.next_header_offset, Some(40));
        assert_eq!(
            chain.encap_limit,
            Some(EncapLimitInfo {
                limit: 3,
                offset: 15
            })
        );
        assert_eq!(p[15], 3);
        assert_eq!(
            chain.unknown_option,
            Some(UnknownOptionInfo {
                option_type: 0x9e,
                action: UnknownOptionAction::DiscardSendParamProblem,
                in_hop_by_hop: false,
                offset: 10,
            })
        );
        assert_eq!(
            chain.routing,
            Some(RoutingInfo {
                routing_type: 4,
                segments_left: 2,
                offset: 24
            })
        );
        let frag = chain.fragment.unwrap();
        assert_eq!(frag.offset, 32);
        assert!(frag.header.is_first() && frag.header.more_fragments);
        assert!(!chain.is_non_first_fragment());
        assert_eq!(chain.upper_layer_bytes(&p), Some(&udp[..]));
        assert_eq!(find_encap_limit(proto::HOP_BY_HOP, &p), chain.encap_limit);
    }

    #[test]
    fn walk_stops() {
        // No extension headers at all.
        let chain = ExtHeaderChain::walk(proto::TCP, &[]).unwrap();
        assert_eq!(
            (chain.upper_layer, chain.upper_offset, chain.header_count),
            (6, 0, 0)
        );
        assert_eq!(chain.next_header_offset, None);
        assert_eq!(chain.upper_layer_bytes(&[]), Some(&[][..]));
        // No Next Header.
        let chain = ExtHeaderChain::walk(proto::DEST_OPTS, &tel_dest_opts(59, 0)).unwrap();
        assert_eq!(chain.upper_layer, proto::NO_NEXT_HEADER);
        assert!(!chain.has_upper_layer());
        assert_eq!(
            chain.encap_limit,
            Some(EncapLimitInfo {
                limit: 0,
                offset: 4
            })
        );
        // ESP ends the walk; IPv6-in-IPv6 too.
        for stop in [proto::ESP, proto::IPV6, 253] {
            let chain = ExtHeaderChain::walk(stop, &[1, 2, 3]).unwrap();
            assert_eq!((chain.upper_layer, chain.upper_offset), (stop, 0));
        }
        // A non-first fragment: upper layer not available.
        let mut p = vec![proto::TCP, 0, 0x00, 0xb8, 0, 0, 0, 1];
        p.extend_from_slice(&[0xab; 16]);
        let chain = ExtHeaderChain::walk(proto::FRAGMENT, &p).unwrap();
        assert!(chain.is_non_first_fragment());
        assert!(!chain.has_upper_layer());
        assert_eq!(chain.upper_layer_bytes(&p), None);
        assert_eq!((chain.upper_layer, chain.upper_offset), (proto::TCP, 8));
        assert_eq!(chain.fragment.unwrap().header.offset, 23);
        // A non-first fragment ends the walk even when a malformed header would follow.
        let mut p2 = vec![proto::HOP_BY_HOP, 0, 0x00, 0x08, 0, 0, 0, 1];
        p2.extend_from_slice(&[59, 9]);
        assert!(ExtHeaderChain::walk(proto::FRAGMENT, &p2).is_ok());
    }

    #[test]
    fn walk_errors() {
        // Hop-by-Hop anywhere but first.
        let mut p = tel_dest_opts(proto::HOP_BY_HOP, 1);
        p.extend_from_slice(&[59, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &p),
            Err(Error::Malformed("Hop-by-Hop Options header not first"))
        );
        // Too many headers: 11 Destination Options headers.
        let mut p = Vec::new();
        for _ in 0..10 {
            p.extend_from_slice(&[proto::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        p.extend_from_slice(&[59, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &p),
            Err(Error::Malformed("extension header chain too long"))
        );
        // Exactly ten is fine.
        assert_eq!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &p[8..])
                .unwrap()
                .header_count,
            10
        );
        assert_eq!(find_encap_limit(proto::DEST_OPTS, &p), None);
        // Truncations of each kind.
        let hao = hao_dest_opts(59);
        assert_eq!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &hao[..23]),
            Err(Error::Truncated("IPv6 Destination Options header"))
        );
        assert_eq!(
            ExtHeaderChain::walk(proto::HOP_BY_HOP, &hao[..1]),
            Err(Error::Truncated("IPv6 Hop-by-Hop Options header"))
        );
        assert_eq!(
            ExtHeaderChain::walk(proto::ROUTING, &rh2(59)[..20]),
            Err(Error::Truncated("IPv6 routing header"))
        );
        assert_eq!(
            ExtHeaderChain::walk(proto::FRAGMENT, &[59, 0, 0]),
            Err(Error::Truncated("IPv6 Fragment header"))
        );
        assert_eq!(
            ExtHeaderChain::walk(proto::AH, &[59]),
            Err(Error::Truncated("IPv6 Authentication Header"))
        );
        assert_eq!(
            ExtHeaderChain::walk(proto::AH, &[59, 1, 0, 0, 0, 0, 0, 0]),
            Err(Error::Truncated("IPv6 Authentication Header"))
        );
        assert_eq!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &[]),
            Err(Error::Truncated("IPv6 Destination Options header"))
        );
        // Per-option errors.
        let bad_hao = [59, 0, 0xc9, 0x04, 0, 0, 0, 0];
        assert_eq!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &bad_hao),
            Err(Error::Malformed("Home Address option length (not 16)"))
        );
        let overrun = [59, 0, 0x1e, 0x09, 0, 0, 0, 0];
        assert!(matches!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &overrun),
            Err(Error::Malformed(_))
        ));
        // Two HAOs.
        let mut two = hao_dest_opts(proto::DEST_OPTS);
        two.extend_from_slice(&hao_dest_opts(59));
        assert_eq!(
            ExtHeaderChain::walk(proto::DEST_OPTS, &two),
            Err(Error::Malformed("duplicate Home Address option"))
        );
        // Two Fragment headers.
        let frags = [
            proto::FRAGMENT,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
            59,
            0,
            0,
            1,
            0,
            0,
            0,
            1,
        ];
        assert_eq!(
            ExtHeaderChain::walk(proto::FRAGMENT, &frags),
            Err(Error::Malformed("duplicate Fragment header"))
        );
    }

    #[test]
    fn walk_options_in_hop_by_hop() {
        // HAO and TEL in a Hop-by-Hop header are not taken as destination options, while an
        // unknown 0b11 option there is reported.
        let mut p = vec![proto::UDP, 3, 0x04, 0x01, 7, 0x01, 0x00, 0xc9, 0x10];
        p.extend_from_slice(&hoa().octets());
        p.extend_from_slice(&[0xfe, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00]);
        assert_eq!(p.len(), 32);
        let chain = ExtHeaderChain::walk(proto::HOP_BY_HOP, &p).unwrap();
        assert_eq!(chain.home_address, None);
        assert_eq!(chain.encap_limit, None);
        let unknown = chain.unknown_option.unwrap();
        assert_eq!(unknown.option_type, 0xfe);
        assert!(unknown.in_hop_by_hop);
        assert_eq!(unknown.offset, 25);
        assert_eq!(find_encap_limit(proto::HOP_BY_HOP, &p), None);
    }

    #[test]
    fn walk_of_packet() {
        let mut pkt = vec![0x60, 0, 0, 0, 0, 32, proto::DEST_OPTS, 64];
        pkt.extend_from_slice(&[0; 32]);
        pkt.extend_from_slice(&hao_dest_opts(proto::MOBILITY));
        pkt.extend_from_slice(&[59, 0, 0, 0, 0, 0, 0, 0]);
        let chain = ExtHeaderChain::of_packet(&Ipv6Packet::new_unchecked(&pkt[..])).unwrap();
        assert_eq!(chain.upper_layer, proto::MOBILITY);
        assert!(ExtHeaderChain::of_packet(&Ipv6Packet::new_unchecked(&pkt[..70])).is_err());
    }

    #[test]
    fn find_encap_limit_is_lenient() {
        // A malformed header before any TEL: the scan stops without a limit.
        let mut p = vec![proto::DEST_OPTS, 0, 0xc9, 0x02, 0, 0, 0, 0];
        p.extend_from_slice(&tel_dest_opts(59, 2));
        assert_eq!(find_encap_limit(proto::DEST_OPTS, &p), None);
        // The TEL found in the second Destination Options header, past a routing header.
        let mut p = vec![proto::ROUTING, 0, 0x1e, 0x04, 0, 0, 0, 0];
        p.extend_from_slice(&[proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&tel_dest_opts(59, 2));
        assert_eq!(
            find_encap_limit(proto::DEST_OPTS, &p),
            Some(EncapLimitInfo {
                limit: 2,
                offset: 20
            })
        );
        // Past a first fragment and an AH; not past a non-first fragment or an inner IPv6.
        let mut p = vec![proto::AH, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&tel_dest_opts(59, 9));
        assert_eq!(
            find_encap_limit(proto::FRAGMENT, &p).map(|e| e.limit),
            Some(9)
        );
        p[3] = 0x08;
        assert_eq!(find_encap_limit(proto::FRAGMENT, &p), None);
        assert_eq!(find_encap_limit(proto::IPV6, &tel_dest_opts(59, 9)), None);
        // Truncated headers end the scan.
        assert_eq!(
            find_encap_limit(proto::DEST_OPTS, &tel_dest_opts(59, 9)[..7]),
            None
        );
        assert_eq!(find_encap_limit(proto::AH, &[59]), None);
        assert_eq!(find_encap_limit(proto::AH, &[59, 1, 0, 0]), None);
        assert_eq!(find_encap_limit(proto::ROUTING, &[59, 1, 0, 0]), None);
        assert_eq!(find_encap_limit(proto::FRAGMENT, &[59, 1, 0, 0]), None);
    }

    proptest! {
        #[test]
        fn walker_never_panics(nh in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60), any::<u8>()],
                               bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(chain) = ExtHeaderChain::walk(nh, &bytes) {
                prop_assert!(chain.upper_offset <= bytes.len());
                prop_assert!(usize::from(chain.header_count) <= MAX_EXT_HEADERS);
                if let Some(e) = chain.encap_limit {
                    prop_assert_eq!(bytes[e.offset], e.limit);
                }
                if let Some(u) = chain.unknown_option {
                    prop_assert_eq!(bytes[u.offset], u.option_type);
                }
                if let Some(off) = chain.next_header_offset {
                    prop_assert_eq!(bytes[off], chain.upper_layer);
                }
                let _ = chain.upper_layer_bytes(&bytes);
            }
            if let Some(e) = find_encap_limit(nh, &bytes) {
                prop_assert_eq!(bytes[e.offset], e.limit);
            }
        }

        #[test]
        fn walker_follows_built_chains(kinds in proptest::collection::vec((0u8..4, 0u8..4), 0..13)) {
            // Build DestOpts / Routing (type 253) / AH / first-Fragment headers of assorted
            // lengths, ending in UDP, and check the walk lands exactly on the UDP header.
            let mut payload = Vec::new();
            let mut first = proto::UDP;
            let mut fragment_used = false;
            let mut nh_at: Option<usize> = None;
            for (kind, units) in &kinds {
                let (nh, header) = match kind {
                    0 => {
                        let mut h = vec![0u8; (usize::from(*units) + 1) * 8];
                        h[1] = *units;
                        h[2] = option_type::PADN;
                        h[3] = (h.len() - 4) as u8;
                        (proto::DEST_OPTS, h)
                    }
                    1 => {
                        let mut h = vec![0u8; (usize::from(*units) + 1) * 8];
                        h[1] = *units;
                        h[2] = 253;
                        (proto::ROUTING, h)
                    }
                    2 => {
                        let mut h = vec![0u8; (usize::from(*units) + 2) * 4];
                        h[1] = *units;
                        (proto::AH, h)
                    }
                    _ if !fragment_used => {
                        fragment_used = true;
                        (proto::FRAGMENT, vec![0, 0, 0, 1, 0, 0, 0, 7])
                    }
                    _ => continue,
                };
                match nh_at {
                    Some(at) => payload[at] = nh,
                    None => first = nh,
                }
                nh_at = Some(payload.len());
                payload.extend_from_slice(&header);
            }
            if let Some(at) = nh_at {
                payload[at] = proto::UDP;
            }
            let headers = payload.len();
            payload.extend_from_slice(&[0x04, 0xd2, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
            let count = kinds.iter().filter(|(k, _)| *k < 3).count() + usize::from(fragment_used);
            match ExtHeaderChain::walk(first, &payload) {
                Ok(chain) => {
                    prop_assert!(count <= MAX_EXT_HEADERS);
                    prop_assert_eq!(usize::from(chain.header_count), count);
                    prop_assert_eq!(chain.upper_layer, proto::UDP);
                    prop_assert_eq!(chain.upper_offset, headers);
                    prop_assert_eq!(chain.next_header_offset, nh_at);
                    prop_assert_eq!(chain.fragment.is_some(), fragment_used);
                }
                Err(e) => {
                    prop_assert!(count > MAX_EXT_HEADERS);
                    prop_assert_eq!(e, Error::Malformed("extension header chain too long"));
                }
            }
        }

        #[test]
        fn header_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(h) = Ipv6OptionsHeader::new_checked(&bytes[..]) {
                for (at, o) in h.iter_options().flatten() {
                    prop_assert!(at + o.buffer_len() <= h.header_len());
                }
                if let Ok(repr) = Ipv6OptionsRepr::parse(&h) {
                    let mut out = vec![0u8; repr.buffer_len()];
                    repr.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut out[..])).unwrap();
                    prop_assert_eq!(&out[..], &bytes[..repr.buffer_len()]);
                }
                let _ = HomeAddressDestOpts::parse(&h);
                let _ = EncapLimitDestOpts::parse(&h);
            }
            if let Ok(h) = Ipv6RoutingHeader::new_checked(&bytes[..]) {
                let _ = (h.type_data(), h.routing_type(), h.segments_left());
                if let Ok(repr) = Type2RoutingRepr::parse(&h) {
                    let mut out = [0u8; 24];
                    repr.emit(&mut Ipv6RoutingHeader::new_unchecked(&mut out[..])).unwrap();
                    prop_assert_eq!(&out[..4], &bytes[..4]);
                    prop_assert_eq!(&out[8..], &bytes[8..24]);
                }
            }
            if let Ok(h) = Ipv6FragmentHeader::new_checked(&bytes[..]) {
                let repr = FragmentRepr::parse(&h).unwrap();
                let mut out = [0u8; 8];
                repr.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut out[..])).unwrap();
                prop_assert_eq!(out[0], bytes[0]);
                prop_assert_eq!(&out[4..], &bytes[4..8]);
                prop_assert_eq!(out[3] & 0xf9, bytes[3] & 0xf9);
                prop_assert_eq!(out[2], bytes[2]);
            }
            let _ = Ipv6Option::parse(&bytes);
        }
    }
}
