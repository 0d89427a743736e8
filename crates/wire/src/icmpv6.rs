//! ICMPv6 (RFC 4443) and the two Neighbor Discovery messages the appliance speaks,
//! Neighbor Solicitation and Neighbor Advertisement (RFC 4861 §4.3, §4.4).
//!
//! An [`Icmpv6Packet`] spans exactly one ICMPv6 message: callers hand it the upper-layer
//! bytes (the IPv6 payload after any extension headers, cut to Payload Length), because the
//! checksum and the quoted invoking packet both run to the end of the buffer.
//!
//! Besides the formats, this module holds the pure parts of RFC 4443 §2.4 that every sender
//! of errors needs: how much of the invoking packet to quote ([`truncate_invoking`]) and
//! whether an error may be sent at all ([`may_send_error`]). Rate limiting (§2.4(f)) needs a
//! clock and lives with the caller.

use core::fmt;
use std::net::Ipv6Addr;

use crate::checksum::{self, proto};
use crate::{Error, Result};

/// Declares a wire-number enum with named variants and an `Unknown` catch-all, plus
/// conversions both ways. `Unknown` is meant for values without a named variant.
macro_rules! enum_with_unknown {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value without a named variant.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

enum_with_unknown! {
    /// ICMPv6 message types (IANA "ICMPv6 Parameters").
    pub enum Message(u8) {
        /// RFC 4443 §3.1.
        DstUnreachable = 1,
        /// RFC 4443 §3.2.
        PacketTooBig = 2,
        /// RFC 4443 §3.3.
        TimeExceeded = 3,
        /// RFC 4443 §3.4.
        ParamProblem = 4,
        /// RFC 4443 §4.1.
        EchoRequest = 128,
        /// RFC 4443 §4.2.
        EchoReply = 129,
        /// RFC 4861 §4.1.
        RouterSolicit = 133,
        /// RFC 4861 §4.2.
        RouterAdvert = 134,
        /// RFC 4861 §4.3.
        NeighborSolicit = 135,
        /// RFC 4861 §4.4.
        NeighborAdvert = 136,
        /// RFC 4861 §4.5.
        Redirect = 137,
    }
}

impl Message {
    /// True for error messages (RFC 4443 §2.1: types 0 to 127).
    pub fn is_error(self) -> bool {
        is_error(u8::from(self))
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::DstUnreachable => f.write_str("destination unreachable"),
            Message::PacketTooBig => f.write_str("packet too big"),
            Message::TimeExceeded => f.write_str("time exceeded"),
            Message::ParamProblem => f.write_str("parameter problem"),
            Message::EchoRequest => f.write_str("echo request"),
            Message::EchoReply => f.write_str("echo reply"),
            Message::RouterSolicit => f.write_str("router solicitation"),
            Message::RouterAdvert => f.write_str("router advertisement"),
            Message::NeighborSolicit => f.write_str("neighbor solicitation"),
            Message::NeighborAdvert => f.write_str("neighbor advertisement"),
            Message::Redirect => f.write_str("redirect"),
            Message::Unknown(t) => write!(f, "type {t}"),
        }
    }
}

/// True when `msg_type` is an error message type (RFC 4443 §2.1: the high-order bit of the
/// type is 0), including error types this module does not name.
pub fn is_error(msg_type: u8) -> bool {
    msg_type < 128
}

enum_with_unknown! {
    /// Destination Unreachable codes (RFC 4443 §3.1).
    pub enum DstUnreachableCode(u8) {
        /// No route to destination.
        NoRoute = 0,
        /// Communication with destination administratively prohibited.
        AdminProhibited = 1,
        /// Beyond scope of source address.
        BeyondScope = 2,
        /// Address unreachable.
        AddrUnreachable = 3,
        /// Port unreachable.
        PortUnreachable = 4,
        /// Source address failed ingress/egress policy.
        FailedPolicy = 5,
        /// Reject route to destination.
        RejectRoute = 6,
    }
}

enum_with_unknown! {
    /// Time Exceeded codes (RFC 4443 §3.3).
    pub enum TimeExceededCode(u8) {
        /// Hop limit exceeded in transit.
        HopLimitExceeded = 0,
        /// Fragment reassembly time exceeded.
        FragReassemblyExceeded = 1,
    }
}

enum_with_unknown! {
    /// Parameter Problem codes (RFC 4443 §3.4).
    pub enum ParamProblemCode(u8) {
        /// Erroneous header field encountered.
        ErroneousHeaderField = 0,
        /// Unrecognized Next Header type encountered.
        UnrecognizedNextHeader = 1,
        /// Unrecognized IPv6 option encountered.
        UnrecognizedOption = 2,
    }
}

/// Length of the ICMPv6 header: type, code, checksum and the 4-byte type-specific field.
pub const HEADER_LEN: usize = 8;

/// Length of the fixed part of a Neighbor Solicitation or Advertisement (header + target).
pub const ND_HEADER_LEN: usize = 24;

/// Hop limit every Neighbor Discovery message must arrive with (RFC 4861 §7.1.1, §7.1.2);
/// checked by the caller, which sees the IPv6 header.
pub const ND_HOP_LIMIT: u8 = 255;

/// Size limit of a whole ICMPv6 error packet, IPv6 header included: the IPv6 minimum MTU
/// (RFC 4443 §2.4(c)).
pub const ERROR_PACKET_MAX_LEN: usize = 1280;

/// Neighbor Discovery option types (RFC 4861 §4.6).
pub mod nd_option {
    /// Source Link-Layer Address.
    pub const SOURCE_LLADDR: u8 = 1;
    /// Target Link-Layer Address.
    pub const TARGET_LLADDR: u8 = 2;
    /// Length of a link-layer address option for Ethernet (RFC 2464 §8): one 8-byte unit.
    pub const LLADDR_LEN: usize = 8;
}

/// Length of the fixed IPv6 header, counted against [`ERROR_PACKET_MAX_LEN`].
const IPV6_HEADER_LEN: usize = 40;

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The 4-byte type-specific field: MTU, Pointer, Identifier + Sequence, ND flags.
    pub const SPECIFIC: Range<usize> = 4..8;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ_NO: Range<usize> = 6..8;
    pub const ND_FLAGS: usize = 4;
    pub const ND_TARGET: Range<usize> = 8..24;
}

/// Neighbor Advertisement flag bits in the first byte after the checksum (RFC 4861 §4.4).
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A read/write view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer without checking its length; accessors may then panic on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds the header, and for NS/NA the target address, so that the
    /// accessors relevant to the message type cannot panic.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated("ICMPv6 header"));
        }
        if len < self.header_len() {
            return Err(Error::Truncated("ICMPv6 Neighbor Discovery message"));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the fixed part for this message type: [`ND_HEADER_LEN`] for NS/NA, else
    /// [`HEADER_LEN`].
    pub fn header_len(&self) -> usize {
        match self.msg_type() {
            Message::NeighborSolicit | Message::NeighborAdvert => ND_HEADER_LEN,
            _ => HEADER_LEN,
        }
    }

    /// The Type field.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The Code field.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// The Checksum field.
    pub fn checksum(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::CHECKSUM.start], d[field::CHECKSUM.start + 1]])
    }

    /// The 4-byte type-specific field as a 32-bit number.
    fn specific(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::SPECIFIC];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// The MTU of a Packet Too Big message.
    pub fn mtu(&self) -> u32 {
        self.specific()
    }

    /// The Pointer of a Parameter Problem message.
    pub fn pointer(&self) -> u32 {
        self.specific()
    }

    /// The Identifier of an Echo Request or Reply.
    pub fn echo_ident(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::ECHO_IDENT.start], d[field::ECHO_IDENT.start + 1]])
    }

    /// The Sequence Number of an Echo Request or Reply.
    pub fn echo_seq_no(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::ECHO_SEQ_NO.start], d[field::ECHO_SEQ_NO.start + 1]])
    }

    /// The Router flag of a Neighbor Advertisement.
    pub fn router_flag(&self) -> bool {
        self.buffer.as_ref()[field::ND_FLAGS] & NA_ROUTER != 0
    }

    /// The Solicited flag of a Neighbor Advertisement.
    pub fn solicited_flag(&self) -> bool {
        self.buffer.as_ref()[field::ND_FLAGS] & NA_SOLICITED != 0
    }

    /// The Override flag of a Neighbor Advertisement.
    pub fn override_flag(&self) -> bool {
        self.buffer.as_ref()[field::ND_FLAGS] & NA_OVERRIDE != 0
    }

    /// The Target Address of a Neighbor Solicitation or Advertisement.
    ///
    /// # Panics
    /// When the buffer is shorter than [`ND_HEADER_LEN`], which `new_checked` rules out for
    /// NS and NA.
    pub fn target_addr(&self) -> Ipv6Addr {
        let mut octets = [0; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::ND_TARGET]);
        Ipv6Addr::from(octets)
    }

    /// What follows the fixed part: the invoking packet of an error, the data of an echo,
    /// the options of NS/NA, the message body after the first 8 bytes otherwise.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True when the checksum verifies for a message from `src_addr` to `dst_addr`.
    pub fn verify_checksum(&self, src_addr: &Ipv6Addr, dst_addr: &Ipv6Addr) -> bool {
        checksum::verify_upper_layer(src_addr, dst_addr, proto::ICMPV6, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the Type field.
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the Code field.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the Checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    fn set_specific(&mut self, value: u32) {
        self.buffer.as_mut()[field::SPECIFIC].copy_from_slice(&value.to_be_bytes());
    }

    /// Zeroes the 4-byte type-specific field (the "Unused"/"Reserved" bytes).
    pub fn clear_reserved(&mut self) {
        self.set_specific(0);
    }

    /// Sets the MTU of a Packet Too Big message.
    pub fn set_mtu(&mut self, value: u32) {
        self.set_specific(value);
    }

    /// Sets the Pointer of a Parameter Problem message.
    pub fn set_pointer(&mut self, value: u32) {
        self.set_specific(value);
    }

    /// Sets the Identifier of an Echo Request or Reply.
    pub fn set_echo_ident(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Sequence Number of an Echo Request or Reply.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.buffer.as_mut()[field::ECHO_SEQ_NO].copy_from_slice(&value.to_be_bytes());
    }

    fn set_nd_flag(&mut self, mask: u8, value: bool) {
        let b = &mut self.buffer.as_mut()[field::ND_FLAGS];
        if value {
            *b |= mask;
        } else {
            *b &= !mask;
        }
    }

    /// Sets the Router flag of a Neighbor Advertisement.
    pub fn set_router_flag(&mut self, value: bool) {
        self.set_nd_flag(NA_ROUTER, value);
    }

    /// Sets the Solicited flag of a Neighbor Advertisement.
    pub fn set_solicited_flag(&mut self, value: bool) {
        self.set_nd_flag(NA_SOLICITED, value);
    }

    /// Sets the Override flag of a Neighbor Advertisement.
    pub fn set_override_flag(&mut self, value: bool) {
        self.set_nd_flag(NA_OVERRIDE, value);
    }

    /// Sets the Target Address of a Neighbor Solicitation or Advertisement.
    ///
    /// # Panics
    /// When the buffer is shorter than [`ND_HEADER_LEN`].
    pub fn set_target_addr(&mut self, value: &Ipv6Addr) {
        self.buffer.as_mut()[field::ND_TARGET].copy_from_slice(&value.octets());
    }

    /// What follows the fixed part, writable (see [`payload`](Self::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and stores the checksum over the whole buffer (RFC 4443 §2.3).
    pub fn fill_checksum(&mut self, src_addr: &Ipv6Addr, dst_addr: &Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::upper_layer(src_addr, dst_addr, proto::ICMPV6, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A parsed ICMPv6 message.
///
/// Fields the RFCs call "unused" or "reserved" (and the code of Packet Too Big and Echo,
/// which receivers ignore) are dropped on parse and emitted as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    /// RFC 4443 §3.1.
    DstUnreachable {
        code: DstUnreachableCode,
        /// As much of the packet that caused the error as was quoted.
        invoking: &'a [u8],
    },
    /// RFC 4443 §3.2.
    PacketTooBig { mtu: u32, invoking: &'a [u8] },
    /// RFC 4443 §3.3.
    TimeExceeded {
        code: TimeExceededCode,
        invoking: &'a [u8],
    },
    /// RFC 4443 §3.4. `pointer` is the offset in `invoking` of the offending octet.
    ParamProblem {
        code: ParamProblemCode,
        pointer: u32,
        invoking: &'a [u8],
    },
    /// RFC 4443 §4.1.
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// RFC 4443 §4.2.
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// RFC 4861 §4.3. Only the Source Link-Layer Address option is kept.
    NeighborSolicit {
        target: Ipv6Addr,
        source_lladdr: Option<[u8; 6]>,
    },
    /// RFC 4861 §4.4. Only the Target Link-Layer Address option is kept.
    NeighborAdvert {
        router: bool,
        solicited: bool,
        override_: bool,
        target: Ipv6Addr,
        target_lladdr: Option<[u8; 6]>,
    },
    /// Any other type, uninterpreted. `data` is everything after the checksum, starting with
    /// the 4-byte type-specific field, so the message round-trips unchanged.
    Other {
        msg_type: u8,
        code: u8,
        data: &'a [u8],
    },
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses and validates a message sent from `src_addr` to `dst_addr` (the addresses of
    /// the pseudo-header, RFC 4443 §2.3). The checksum is verified first.
    ///
    /// Neighbor Discovery messages are validated as RFC 4861 §7.1.1 and §7.1.2 require,
    /// except for the hop limit ([`ND_HOP_LIMIT`]), which the caller checks.
    pub fn parse<T>(
        packet: &Icmpv6Packet<&'a T>,
        src_addr: &Ipv6Addr,
        dst_addr: &Ipv6Addr,
    ) -> Result<Icmpv6Repr<'a>>
    where
        T: AsRef<[u8]> + ?Sized,
    {
        packet.check_len()?;
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(Error::Checksum("ICMPv6"));
        }
        let data: &'a [u8] = T::as_ref(packet.buffer);
        let code = packet.msg_code();
        let repr = match packet.msg_type() {
            Message::DstUnreachable => Icmpv6Repr::DstUnreachable {
                code: code.into(),
                invoking: &data[HEADER_LEN..],
            },
            Message::PacketTooBig => Icmpv6Repr::PacketTooBig {
                mtu: packet.mtu(),
                invoking: &data[HEADER_LEN..],
            },
            Message::TimeExceeded => Icmpv6Repr::TimeExceeded {
                code: code.into(),
                invoking: &data[HEADER_LEN..],
            },
            Message::ParamProblem => Icmpv6Repr::ParamProblem {
                code: code.into(),
                pointer: packet.pointer(),
                invoking: &data[HEADER_LEN..],
            },
            Message::EchoRequest => Icmpv6Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data: &data[HEADER_LEN..],
            },
            Message::EchoReply => Icmpv6Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data: &data[HEADER_LEN..],
            },
            Message::NeighborSolicit => {
                let target = validate_nd(packet)?;
                let source_lladdr = find_lladdr(&data[ND_HEADER_LEN..], nd_option::SOURCE_LLADDR)?;
                if src_addr.is_unspecified() {
                    // RFC 4861 §7.1.1: a DAD probe goes to a solicited-node multicast
                    // address and carries no source link-layer address.
                    if !is_solicited_node(dst_addr) {
                        return Err(Error::Malformed(
                            "Neighbor Solicitation from :: not to a solicited-node address",
                        ));
                    }
                    if source_lladdr.is_some() {
                        return Err(Error::Malformed(
                            "Neighbor Solicitation from :: with a source link-layer address",
                        ));
                    }
                }
                Icmpv6Repr::NeighborSolicit {
                    target,
                    source_lladdr,
                }
            }
            Message::NeighborAdvert => {
                let target = validate_nd(packet)?;
                let target_lladdr = find_lladdr(&data[ND_HEADER_LEN..], nd_option::TARGET_LLADDR)?;
                let solicited = packet.solicited_flag();
                // RFC 4861 §7.1.2: a multicast advertisement cannot be solicited.
                if solicited && dst_addr.is_multicast() {
                    return Err(Error::Malformed(
                        "Neighbor Advertisement to multicast with the Solicited flag",
                    ));
                }
                Icmpv6Repr::NeighborAdvert {
                    router: packet.router_flag(),
                    solicited,
                    override_: packet.override_flag(),
                    target,
                    target_lladdr,
                }
            }
            Message::RouterSolicit
            | Message::RouterAdvert
            | Message::Redirect
            | Message::Unknown(_) => Icmpv6Repr::Other {
                msg_type: data[field::TYPE],
                code,
                data: &data[field::SPECIFIC.start..],
            },
        };
        Ok(repr)
    }

    /// The message type this representation emits.
    pub fn msg_type(&self) -> Message {
        match self {
            Icmpv6Repr::DstUnreachable { .. } => Message::DstUnreachable,
            Icmpv6Repr::PacketTooBig { .. } => Message::PacketTooBig,
            Icmpv6Repr::TimeExceeded { .. } => Message::TimeExceeded,
            Icmpv6Repr::ParamProblem { .. } => Message::ParamProblem,
            Icmpv6Repr::EchoRequest { .. } => Message::EchoRequest,
            Icmpv6Repr::EchoReply { .. } => Message::EchoReply,
            Icmpv6Repr::NeighborSolicit { .. } => Message::NeighborSolicit,
            Icmpv6Repr::NeighborAdvert { .. } => Message::NeighborAdvert,
            Icmpv6Repr::Other { msg_type, .. } => Message::from(*msg_type),
        }
    }

    /// The quoted invoking packet of the four error messages this module interprets.
    pub fn invoking(&self) -> Option<&'a [u8]> {
        match *self {
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::PacketTooBig { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. }
            | Icmpv6Repr::ParamProblem { invoking, .. } => Some(invoking),
            _ => None,
        }
    }

    /// The Echo Reply answering this Echo Request (RFC 4443 §4.2: same identifier,
    /// sequence number and data); `None` for any other message.
    pub fn echo_reply(&self) -> Option<Icmpv6Repr<'a>> {
        match *self {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => Some(Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            }),
            _ => None,
        }
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::PacketTooBig { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. }
            | Icmpv6Repr::ParamProblem { invoking, .. } => HEADER_LEN + invoking.len(),
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv6Repr::NeighborSolicit { source_lladdr, .. } => {
                ND_HEADER_LEN + source_lladdr.map_or(0, |_| nd_option::LLADDR_LEN)
            }
            Icmpv6Repr::NeighborAdvert { target_lladdr, .. } => {
                ND_HEADER_LEN + target_lladdr.map_or(0, |_| nd_option::LLADDR_LEN)
            }
            // Shorter data is zero-padded up to the 8-byte header.
            Icmpv6Repr::Other { data, .. } => {
                field::SPECIFIC.start + data.len().max(field::SPECIFIC.len())
            }
        }
    }

    /// Writes the message into `packet` and fills the checksum for `src_addr` ->
    /// `dst_addr`.
    ///
    /// The view must span exactly [`buffer_len`](Self::buffer_len) bytes, since an ICMPv6
    /// message runs to the end of its buffer: `Err(NoRoom)` when it is shorter,
    /// `Err(Malformed)` when longer. Nothing is written on error.
    pub fn emit<T>(
        &self,
        packet: &mut Icmpv6Packet<T>,
        src_addr: &Ipv6Addr,
        dst_addr: &Ipv6Addr,
    ) -> Result<()>
    where
        T: AsRef<[u8]> + AsMut<[u8]>,
    {
        let len = packet.buffer.as_ref().len();
        match len.cmp(&self.buffer_len()) {
            core::cmp::Ordering::Less => return Err(Error::NoRoom("ICMPv6 message")),
            core::cmp::Ordering::Greater => {
                return Err(Error::Malformed(
                    "ICMPv6 output buffer longer than the message",
                ))
            }
            core::cmp::Ordering::Equal => {}
        }
        let buf = packet.buffer.as_mut();
        buf[field::TYPE] = self.msg_type().into();
        buf[field::CODE] = 0;
        buf[field::CHECKSUM].fill(0);
        buf[field::SPECIFIC].fill(0);
        match *self {
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                buf[field::CODE] = code.into();
                buf[HEADER_LEN..].copy_from_slice(invoking);
            }
            Icmpv6Repr::PacketTooBig { mtu, invoking } => {
                buf[field::SPECIFIC].copy_from_slice(&mtu.to_be_bytes());
                buf[HEADER_LEN..].copy_from_slice(invoking);
            }
            Icmpv6Repr::TimeExceeded { code, invoking } => {
                buf[field::CODE] = code.into();
                buf[HEADER_LEN..].copy_from_slice(invoking);
            }
            Icmpv6Repr::ParamProblem {
                code,
                pointer,
                invoking,
            } => {
                buf[field::CODE] = code.into();
                buf[field::SPECIFIC].copy_from_slice(&pointer.to_be_bytes());
                buf[HEADER_LEN..].copy_from_slice(invoking);
            }
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                buf[field::ECHO_IDENT].copy_from_slice(&ident.to_be_bytes());
                buf[field::ECHO_SEQ_NO].copy_from_slice(&seq_no.to_be_bytes());
                buf[HEADER_LEN..].copy_from_slice(data);
            }
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                buf[field::ND_TARGET].copy_from_slice(&target.octets());
                if let Some(mac) = source_lladdr {
                    emit_lladdr(&mut buf[ND_HEADER_LEN..], nd_option::SOURCE_LLADDR, &mac);
                }
            }
            Icmpv6Repr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                target_lladdr,
            } => {
                let mut flags = 0;
                if router {
                    flags |= NA_ROUTER;
                }
                if solicited {
                    flags |= NA_SOLICITED;
                }
                if override_ {
                    flags |= NA_OVERRIDE;
                }
                buf[field::ND_FLAGS] = flags;
                buf[field::ND_TARGET].copy_from_slice(&target.octets());
                if let Some(mac) = target_lladdr {
                    emit_lladdr(&mut buf[ND_HEADER_LEN..], nd_option::TARGET_LLADDR, &mac);
                }
            }
            Icmpv6Repr::Other { code, data, .. } => {
                buf[field::CODE] = code;
                let body = &mut buf[field::SPECIFIC.start..];
                body[..data.len()].copy_from_slice(data);
                body[data.len()..].fill(0);
            }
        }
        packet.fill_checksum(src_addr, dst_addr);
        Ok(())
    }
}

/// Checks shared by NS and NA (RFC 4861 §7.1.1, §7.1.2) and returns the target.
fn validate_nd<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv6Packet<&T>) -> Result<Ipv6Addr> {
    if packet.msg_code() != 0 {
        return Err(Error::Malformed("Neighbor Discovery code (must be 0)"));
    }
    let target = packet.target_addr();
    if target.is_multicast() {
        return Err(Error::Malformed("Neighbor Discovery target (multicast)"));
    }
    Ok(target)
}

/// Walks Neighbor Discovery options and returns the first link-layer address option of
/// type `wanted`. Every option is checked for length, wanted or not.
fn find_lladdr(mut options: &[u8], wanted: u8) -> Result<Option<[u8; 6]>> {
    let mut found = None;
    while !options.is_empty() {
        let [kind, units, ..] = *options else {
            return Err(Error::Truncated("Neighbor Discovery option"));
        };
        // RFC 4861 §4.6: "Nodes MUST silently discard an ND packet that contains an option
        // with length zero."
        if units == 0 {
            return Err(Error::Malformed("Neighbor Discovery option (length 0)"));
        }
        let len = usize::from(units) * 8;
        if len > options.len() {
            return Err(Error::Truncated("Neighbor Discovery option"));
        }
        let (option, rest) = options.split_at(len);
        if kind == wanted {
            // RFC 2464 §8: on Ethernet the option is one unit, type + length + 6-byte MAC.
            if len != nd_option::LLADDR_LEN {
                return Err(Error::Malformed(
                    "Neighbor Discovery link-layer address option (length not 1)",
                ));
            }
            if found.is_none() {
                let mut mac = [0; 6];
                mac.copy_from_slice(&option[2..8]);
                found = Some(mac);
            }
        }
        options = rest;
    }
    Ok(found)
}

fn emit_lladdr(buf: &mut [u8], kind: u8, mac: &[u8; 6]) {
    buf[0] = kind;
    buf[1] = 1;
    buf[2..8].copy_from_slice(mac);
}

/// True for ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
fn is_solicited_node(addr: &Ipv6Addr) -> bool {
    let o = addr.octets();
    o[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// How many bytes of the invoking packet an error message may quote so that the whole error
/// packet (IPv6 header, `extra_headers_len` bytes of extension headers, the ICMPv6 header
/// and the quote) stays within [`ERROR_PACKET_MAX_LEN`] (RFC 4443 §2.4(c)).
pub fn invoking_budget(extra_headers_len: usize) -> usize {
    ERROR_PACKET_MAX_LEN.saturating_sub(IPV6_HEADER_LEN + extra_headers_len + HEADER_LEN)
}

/// The prefix of `invoking` an error message should quote: as much as fits in
/// [`invoking_budget`]`(extra_headers_len)` (RFC 4443 §2.4(c)).
pub fn truncate_invoking(invoking: &[u8], extra_headers_len: usize) -> &[u8] {
    let budget = invoking_budget(extra_headers_len);
    &invoking[..invoking.len().min(budget)]
}

/// The kind of error message about to be sent, as far as RFC 4443 §2.4(e) cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Destination Unreachable, any code.
    DstUnreachable,
    /// Packet Too Big.
    PacketTooBig,
    /// Time Exceeded, any code.
    TimeExceeded,
    /// Parameter Problem code 0.
    ErroneousHeaderField,
    /// Parameter Problem code 1.
    UnrecognizedNextHeader,
    /// Parameter Problem code 2, about the option whose Option Type is `option_type`.
    UnrecognizedOption { option_type: u8 },
}

/// What RFC 4443 §2.4(e) needs to know about the packet that would trigger an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvokingPacket {
    /// IPv6 source address of the invoking packet.
    pub src_addr: Ipv6Addr,
    /// IPv6 destination address of the invoking packet.
    pub dst_addr: Ipv6Addr,
    /// The invoking packet arrived as a link-layer multicast or broadcast (for Ethernet:
    /// the group bit of the destination MAC is set; broadcast has it too).
    pub link_multicast: bool,
    /// `Some(type)` when the invoking packet's upper-layer header is ICMPv6 of that type;
    /// `None` for any other upper layer.
    pub icmp_type: Option<u8>,
    /// The caller knows `src_addr` to be an anycast address (RFC 4443 §2.4(e.6)); anycast
    /// addresses look like unicast ones (RFC 4291 §2.6), so only the caller can tell.
    pub src_known_anycast: bool,
}

/// Whether RFC 4443 §2.4(e) allows sending an error of kind `error` about `invoking`.
/// Rate limiting (§2.4(f)) is still the caller's job.
pub fn may_send_error(invoking: &InvokingPacket, error: ErrorKind) -> bool {
    // (e.1), (e.2): never about an ICMPv6 error message or a Redirect.
    if let Some(t) = invoking.icmp_type {
        if is_error(t) || t == u8::from(Message::Redirect) {
            return false;
        }
    }
    // (e.6): never to a source that does not identify a single node.
    let src = &invoking.src_addr;
    if src.is_unspecified() || src.is_multicast() || invoking.src_known_anycast {
        return false;
    }
    if let ErrorKind::UnrecognizedOption { option_type } = error {
        // RFC 8200 §4.2: only the "10" and "11" actions report an unrecognised option,
        // and "11" only when the destination was not multicast.
        match option_type >> 6 {
            0b10 => return true,
            0b11 => {}
            _ => return false,
        }
    }
    // (e.3), (e.4), (e.5): never about multicast or link-layer multicast/broadcast, except
    // Packet Too Big (and option type 10xxxxxx, handled above).
    let multicast = invoking.dst_addr.is_multicast() || invoking.link_multicast;
    !multicast || error == ErrorKind::PacketTooBig
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    const LL1: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const LL2: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    const SOLICITED_B: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);

    // scapy: IPv6(src="2001:db8::1", dst="2001:db8::2")
    //        / ICMPv6EchoRequest(id=0x1234, seq=7, data=b"anycast6")
    const ECHO_REQUEST: [u8; 16] = [
        0x80, 0x00, 0x61, 0x89, 0x12, 0x34, 0x00, 0x07, 0x61, 0x6e, 0x79, 0x63, 0x61, 0x73, 0x74,
        0x36,
    ];
    // scapy: IPv6(src="2001:db8::2", dst="2001:db8::1")
    //        / ICMPv6EchoReply(id=0x1234, seq=7, data=b"anycast6")
    const ECHO_REPLY: [u8; 16] = [
        0x81, 0x00, 0x60, 0x89, 0x12, 0x34, 0x00, 0x07, 0x61, 0x6e, 0x79, 0x63, 0x61, 0x73, 0x74,
        0x36,
    ];
    // scapy: IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255)
    //        / ICMPv6ND_NS(tgt="2001:db8::2")
    //        / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    const NS_SLLA: [u8; 32] = [
        0x87, 0x00, 0x4b, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x01,
    ];
    // scapy: IPv6(src="fe80::2", dst="fe80::1", hlim=255)
    //        / ICMPv6ND_NA(R=1, S=1, O=1, tgt="2001:db8::2")
    //        / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02")
    const NA_TLLA: [u8; 32] = [
        0x88, 0x00, 0x68, 0xe1, 0xe0, 0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x02,
    ];
    // scapy: IPv6(src="2001:db8::ff", dst="2001:db8::1") / ICMPv6PacketTooBig(mtu=1400)
    //        / IPv6(src="2001:db8::1", dst="2001:db8::3", plen=8)
    //        / UDP(sport=1000, dport=2000, len=8, chksum=0x1234)
    const PTB: [u8; 56] = [
        0x02, 0x00, 0xb0, 0xf0, 0x00, 0x00, 0x05, 0x78, 0x60, 0x00, 0x00, 0x00, 0x00, 0x08, 0x11,
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x03, 0x03, 0xe8, 0x07, 0xd0, 0x00, 0x08, 0x12, 0x34,
    ];
    const PTB_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xff);
    // scapy: IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6ParamProblem(code=1, ptr=6)
    //        / IPv6(src="2001:db8::1", dst="2001:db8::2", nh=135, plen=0)
    const PARAM_PROBLEM: [u8; 48] = [
        0x04, 0x01, 0x5d, 0x63, 0x00, 0x00, 0x00, 0x06, 0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x87,
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x02,
    ];
    // scapy: IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6DestUnreach(code=4)
    //        / IPv6(src="2001:db8::1", dst="2001:db8::2", plen=0, nh=17)
    const DST_UNREACHABLE: [u8; 48] = [
        0x01, 0x04, 0xd6, 0x66, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11,
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x02,
    ];
    // scapy: IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6TimeExceeded(code=0)
    //        / IPv6(src="2001:db8::1", dst="2001:db8::2", plen=0, nh=59)
    const TIME_EXCEEDED: [u8; 48] = [
        0x03, 0x00, 0xaa, 0x6a, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3b,
        0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x02,
    ];
    // scapy: IPv6(src="fe80::1", dst="ff02::1") / ICMPv6ND_RS()
    const ROUTER_SOLICIT: [u8; 8] = [0x85, 0x00, 0x7d, 0x37, 0x00, 0x00, 0x00, 0x00];
    const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

    fn parse<'a>(bytes: &'a [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Icmpv6Repr<'a>> {
        let packet = Icmpv6Packet::new_checked(bytes)?;
        Icmpv6Repr::parse(&packet, src, dst)
    }

    fn emit(repr: &Icmpv6Repr<'_>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Vec<u8> {
        let mut buf = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut Icmpv6Packet::new_unchecked(&mut buf), src, dst)
            .unwrap();
        buf
    }

    /// Parses `bytes`, checks the result, and checks that emitting it gives `bytes` back.
    fn round_trip(bytes: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr, expected: Icmpv6Repr<'_>) {
        let repr = parse(bytes, src, dst).unwrap();
        assert_eq!(repr, expected);
        assert_eq!(repr.buffer_len(), bytes.len());
        assert_eq!(emit(&repr, src, dst), bytes);
    }

    #[test]
    fn echo_request_hand_computed_checksum() {
        // Same message as checksum.rs computes by hand: ::1 -> ::1, id 0x1234, seq 1.
        let lo = Ipv6Addr::LOCALHOST;
        let repr = Icmpv6Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data: &[],
        };
        assert_eq!(
            emit(&repr, &lo, &lo),
            [0x80, 0, 0x6d, 0x86, 0x12, 0x34, 0x00, 0x01]
        );
    }

    #[test]
    fn echo_request_and_reply() {
        let request = Icmpv6Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 7,
            data: b"anycast6",
        };
        round_trip(&ECHO_REQUEST, &A, &B, request);
        let view = Icmpv6Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(view.msg_type(), Message::EchoRequest);
        assert_eq!(view.msg_code(), 0);
        assert_eq!(view.checksum(), 0x6189);
        assert_eq!((view.echo_ident(), view.echo_seq_no()), (0x1234, 7));
        assert_eq!(view.payload(), b"anycast6");
        assert!(view.verify_checksum(&A, &B));
        assert!(!view.verify_checksum(&B, &PTB_SRC));

        let reply = request.echo_reply().unwrap();
        round_trip(&ECHO_REPLY, &B, &A, reply);
        assert_eq!(reply.echo_reply(), None);
    }

    #[test]
    fn neighbor_solicitation_with_source_lladdr() {
        round_trip(
            &NS_SLLA,
            &LL1,
            &SOLICITED_B,
            Icmpv6Repr::NeighborSolicit {
                target: B,
                source_lladdr: Some([2, 0, 0, 0, 0, 1]),
            },
        );
        let view = Icmpv6Packet::new_checked(&NS_SLLA[..]).unwrap();
        assert_eq!(view.header_len(), ND_HEADER_LEN);
        assert_eq!(view.target_addr(), B);
        assert_eq!(view.payload(), &NS_SLLA[24..]);
    }

    #[test]
    fn neighbor_advertisement_with_target_lladdr_and_flags() {
        round_trip(
            &NA_TLLA,
            &LL2,
            &LL1,
            Icmpv6Repr::NeighborAdvert {
                router: true,
                solicited: true,
                override_: true,
                target: B,
                target_lladdr: Some([2, 0, 0, 0, 0, 2]),
            },
        );
        let view = Icmpv6Packet::new_checked(&NA_TLLA[..]).unwrap();
        assert!(view.router_flag() && view.solicited_flag() && view.override_flag());
    }

    #[test]
    fn neighbor_advertisement_flags_individually() {
        for (router, solicited, override_) in [
            (true, false, false),
            (false, true, false),
            (false, false, true),
        ] {
            let repr = Icmpv6Repr::NeighborAdvert {
                router,
                solicited,
                override_,
                target: A,
                target_lladdr: None,
            };
            let bytes = emit(&repr, &LL2, &LL1);
            assert_eq!(bytes.len(), ND_HEADER_LEN);
            let view = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(view.router_flag(), router);
            assert_eq!(view.solicited_flag(), solicited);
            assert_eq!(view.override_flag(), override_);
            assert_eq!(parse(&bytes, &LL2, &LL1), Ok(repr));
        }
    }

    #[test]
    fn packet_too_big() {
        let repr = parse(&PTB, &PTB_SRC, &A).unwrap();
        assert_eq!(
            repr,
            Icmpv6Repr::PacketTooBig {
                mtu: 1400,
                invoking: &PTB[8..],
            }
        );
        assert_eq!(repr.invoking(), Some(&PTB[8..]));
        assert!(repr.msg_type().is_error());
        assert_eq!(Icmpv6Packet::new_checked(&PTB[..]).unwrap().mtu(), 1400);
        assert_eq!(emit(&repr, &PTB_SRC, &A), PTB);
    }

    #[test]
    fn parameter_problem() {
        round_trip(
            &PARAM_PROBLEM,
            &B,
            &A,
            Icmpv6Repr::ParamProblem {
                code: ParamProblemCode::UnrecognizedNextHeader,
                pointer: 6,
                invoking: &PARAM_PROBLEM[8..],
            },
        );
        assert_eq!(
            Icmpv6Packet::new_checked(&PARAM_PROBLEM[..])
                .unwrap()
                .pointer(),
            6
        );
    }

    #[test]
    fn destination_unreachable_and_time_exceeded() {
        round_trip(
            &DST_UNREACHABLE,
            &B,
            &A,
            Icmpv6Repr::DstUnreachable {
                code: DstUnreachableCode::PortUnreachable,
                invoking: &DST_UNREACHABLE[8..],
            },
        );
        round_trip(
            &TIME_EXCEEDED,
            &B,
            &A,
            Icmpv6Repr::TimeExceeded {
                code: TimeExceededCode::HopLimitExceeded,
                invoking: &TIME_EXCEEDED[8..],
            },
        );
    }

    #[test]
    fn unknown_codes_survive() {
        let repr = Icmpv6Repr::DstUnreachable {
            code: DstUnreachableCode::Unknown(8),
            invoking: &[1, 2, 3],
        };
        let bytes = emit(&repr, &A, &B);
        assert_eq!(bytes[1], 8);
        assert_eq!(parse(&bytes, &A, &B), Ok(repr));
        assert_eq!(DstUnreachableCode::from(6), DstUnreachableCode::RejectRoute);
        assert_eq!(u8::from(TimeExceededCode::FragReassemblyExceeded), 1);
        assert_eq!(
            ParamProblemCode::from(2),
            ParamProblemCode::UnrecognizedOption
        );
    }

    #[test]
    fn other_types_parse_uninterpreted() {
        round_trip(
            &ROUTER_SOLICIT,
            &LL1,
            &ALL_NODES,
            Icmpv6Repr::Other {
                msg_type: 133,
                code: 0,
                data: &[0, 0, 0, 0],
            },
        );
        // An unknown error type is an error for §2.4 purposes and still parses.
        let repr = Icmpv6Repr::Other {
            msg_type: 100,
            code: 9,
            data: &[1, 2, 3, 4, 5],
        };
        let bytes = emit(&repr, &A, &B);
        assert_eq!(bytes, {
            let mut expected = vec![100, 9, 0, 0, 1, 2, 3, 4, 5];
            let c = checksum::upper_layer(&A, &B, proto::ICMPV6, &expected);
            expected[2..4].copy_from_slice(&c.to_be_bytes());
            expected
        });
        assert_eq!(parse(&bytes, &A, &B), Ok(repr));
        assert!(repr.msg_type().is_error());
        // Short data is padded to the 8-byte header.
        let short = Icmpv6Repr::Other {
            msg_type: 200,
            code: 0,
            data: &[7],
        };
        assert_eq!(short.buffer_len(), 8);
        let bytes = emit(&short, &A, &B);
        assert_eq!(&bytes[4..], &[7, 0, 0, 0]);
        assert_eq!(
            parse(&bytes, &A, &B),
            Ok(Icmpv6Repr::Other {
                msg_type: 200,
                code: 0,
                data: &[7, 0, 0, 0],
            })
        );
    }

    #[test]
    fn message_numbers() {
        assert!(is_error(0) && is_error(127) && !is_error(128) && !is_error(255));
        assert_eq!(Message::from(136), Message::NeighborAdvert);
        assert_eq!(Message::from(5), Message::Unknown(5));
        assert!(Message::Unknown(5).is_error());
        assert!(!Message::Redirect.is_error());
        assert_eq!(Message::PacketTooBig.to_string(), "packet too big");
        assert_eq!(Message::Unknown(200).to_string(), "type 200");
    }

    #[test]
    fn bad_checksum() {
        let vectors = [
            (&ECHO_REQUEST[..], A, B),
            (&NS_SLLA[..], LL1, SOLICITED_B),
            (&PTB[..], PTB_SRC, A),
        ];
        for (bytes, src, dst) in vectors {
            assert!(parse(bytes, &src, &dst).is_ok());
            for at in 0..bytes.len() {
                let mut corrupted = bytes.to_vec();
                corrupted[at] ^= 0x01;
                assert_eq!(
                    parse(&corrupted, &src, &dst),
                    Err(Error::Checksum("ICMPv6")),
                    "byte {at}"
                );
            }
            // Right bytes, wrong pseudo-header (swapping src and dst would not change the
            // sum, so use the source twice).
            assert_eq!(parse(bytes, &src, &src), Err(Error::Checksum("ICMPv6")));
        }
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv6Packet::new_checked(&ECHO_REQUEST[..len]),
                Err(Error::Truncated("ICMPv6 header"))
            );
        }
        for len in HEADER_LEN..ND_HEADER_LEN {
            assert_eq!(
                Icmpv6Packet::new_checked(&NS_SLLA[..len]),
                Err(Error::Truncated("ICMPv6 Neighbor Discovery message"))
            );
        }
        // Parse re-checks views built without `new_checked`.
        let view = Icmpv6Packet::new_unchecked(&NA_TLLA[..10]);
        assert_eq!(
            Icmpv6Repr::parse(&view, &LL2, &LL1),
            Err(Error::Truncated("ICMPv6 Neighbor Discovery message"))
        );
    }

    /// An NS/NA with `options` after the fixed part and a correct checksum.
    fn nd_with_options(msg_type: u8, flags: u8, target: &Ipv6Addr, options: &[u8]) -> Vec<u8> {
        let mut bytes = vec![msg_type, 0, 0, 0, flags, 0, 0, 0];
        bytes.extend_from_slice(&target.octets());
        bytes.extend_from_slice(options);
        let c = checksum::upper_layer(&LL1, &LL2, proto::ICMPV6, &bytes);
        bytes[2..4].copy_from_slice(&c.to_be_bytes());
        bytes
    }

    #[test]
    fn nd_option_errors() {
        // RFC 4861 §4.6: length 0 is malformed, whatever the type.
        for kind in [1, 2, 3, 200] {
            let ns = nd_with_options(135, 0, &B, &[kind, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(
                parse(&ns, &LL1, &LL2),
                Err(Error::Malformed("Neighbor Discovery option (length 0)"))
            );
        }
        // The option claims two units but one is present.
        let na = nd_with_options(136, 0, &B, &[2, 2, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            parse(&na, &LL1, &LL2),
            Err(Error::Truncated("Neighbor Discovery option"))
        );
        // A lone trailing byte cannot hold type and length.
        let na = nd_with_options(136, 0, &B, &[2]);
        assert_eq!(
            parse(&na, &LL1, &LL2),
            Err(Error::Truncated("Neighbor Discovery option"))
        );
        // A link-layer address option of the wrong size for Ethernet.
        let mut long_slla = vec![1, 2];
        long_slla.resize(16, 0);
        let ns = nd_with_options(135, 0, &B, &long_slla);
        assert_eq!(
            parse(&ns, &LL1, &LL2),
            Err(Error::Malformed(
                "Neighbor Discovery link-layer address option (length not 1)"
            ))
        );
    }

    #[test]
    fn nd_options_skipped_and_first_kept() {
        // A prefix-information-sized unknown option, a TLLA (ignored in NS), two SLLAs.
        let mut options = vec![3, 4];
        options.resize(32, 0xee);
        options.extend_from_slice(&[2, 1, 9, 9, 9, 9, 9, 9]);
        options.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0x11]);
        options.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0x22]);
        let ns = nd_with_options(135, 0, &B, &options);
        assert_eq!(
            parse(&ns, &LL1, &LL2),
            Ok(Icmpv6Repr::NeighborSolicit {
                target: B,
                source_lladdr: Some([2, 0, 0, 0, 0, 0x11]),
            })
        );
        // The NA has no TLLA among the same options (only SLLAs, which it ignores).
        let na = nd_with_options(136, 0, &B, &options[..32]);
        assert_eq!(
            parse(&na, &LL1, &LL2),
            Ok(Icmpv6Repr::NeighborAdvert {
                router: false,
                solicited: false,
                override_: false,
                target: B,
                target_lladdr: None,
            })
        );
    }

    #[test]
    fn nd_message_errors() {
        // Code must be 0.
        let mut ns = nd_with_options(135, 0, &B, &[]);
        ns[1] = 1;
        let c = checksum::upper_layer(&LL1, &LL2, proto::ICMPV6, &{
            let mut z = ns.clone();
            z[2..4].fill(0);
            z
        });
        ns[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            parse(&ns, &LL1, &LL2),
            Err(Error::Malformed("Neighbor Discovery code (must be 0)"))
        );
        // Target must not be multicast.
        for msg_type in [135, 136] {
            let bytes = nd_with_options(msg_type, 0, &ALL_NODES, &[]);
            assert_eq!(
                parse(&bytes, &LL1, &LL2),
                Err(Error::Malformed("Neighbor Discovery target (multicast)"))
            );
        }
    }

    #[test]
    fn nd_address_rules() {
        let dad = |options: &[u8], dst: &Ipv6Addr| {
            let mut bytes = vec![135, 0, 0, 0, 0, 0, 0, 0];
            bytes.extend_from_slice(&B.octets());
            bytes.extend_from_slice(options);
            let c = checksum::upper_layer(&Ipv6Addr::UNSPECIFIED, dst, proto::ICMPV6, &bytes);
            bytes[2..4].copy_from_slice(&c.to_be_bytes());
            bytes
        };
        // A DAD probe: from ::, to the solicited-node address, no SLLA.
        let ok = dad(&[], &SOLICITED_B);
        assert_eq!(
            parse(&ok, &Ipv6Addr::UNSPECIFIED, &SOLICITED_B),
            Ok(Icmpv6Repr::NeighborSolicit {
                target: B,
                source_lladdr: None,
            })
        );
        let with_slla = dad(&[1, 1, 2, 0, 0, 0, 0, 1], &SOLICITED_B);
        assert_eq!(
            parse(&with_slla, &Ipv6Addr::UNSPECIFIED, &SOLICITED_B),
            Err(Error::Malformed(
                "Neighbor Solicitation from :: with a source link-layer address"
            ))
        );
        let unicast = dad(&[], &B);
        assert_eq!(
            parse(&unicast, &Ipv6Addr::UNSPECIFIED, &B),
            Err(Error::Malformed(
                "Neighbor Solicitation from :: not to a solicited-node address"
            ))
        );
        // A solicited advertisement cannot be multicast.
        let repr = Icmpv6Repr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: false,
            target: B,
            target_lladdr: None,
        };
        let bytes = emit(&repr, &LL2, &ALL_NODES);
        assert_eq!(
            parse(&bytes, &LL2, &ALL_NODES),
            Err(Error::Malformed(
                "Neighbor Advertisement to multicast with the Solicited flag"
            ))
        );
    }

    #[test]
    fn emit_needs_exact_length() {
        let repr = Icmpv6Repr::EchoReply {
            ident: 1,
            seq_no: 2,
            data: b"xyz",
        };
        let mut short = [0u8; 10];
        assert_eq!(
            repr.emit(&mut Icmpv6Packet::new_unchecked(&mut short[..]), &A, &B),
            Err(Error::NoRoom("ICMPv6 message"))
        );
        assert_eq!(short, [0; 10], "nothing written on error");
        let mut long = [0u8; 12];
        assert!(matches!(
            repr.emit(&mut Icmpv6Packet::new_unchecked(&mut long[..]), &A, &B),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn view_setters() {
        let mut buf = [0u8; ND_HEADER_LEN];
        let mut view = Icmpv6Packet::new_unchecked(&mut buf[..]);
        view.set_msg_type(Message::NeighborAdvert);
        view.set_msg_code(0);
        view.set_router_flag(true);
        view.set_override_flag(true);
        view.set_override_flag(false);
        view.set_solicited_flag(true);
        view.set_target_addr(&A);
        view.fill_checksum(&LL1, &LL2);
        assert!(view.verify_checksum(&LL1, &LL2));
        assert_eq!(
            parse(&buf, &LL1, &LL2),
            Ok(Icmpv6Repr::NeighborAdvert {
                router: true,
                solicited: true,
                override_: false,
                target: A,
                target_lladdr: None,
            })
        );
        let mut buf = [0xffu8; 12];
        let mut view = Icmpv6Packet::new_unchecked(&mut buf[..]);
        view.set_msg_type(Message::PacketTooBig);
        view.clear_reserved();
        assert_eq!(view.mtu(), 0);
        view.set_pointer(0x0102_0304);
        assert_eq!(view.pointer(), 0x0102_0304);
        view.set_mtu(1280);
        view.set_echo_ident(0xabcd);
        view.set_echo_seq_no(0x0042);
        assert_eq!(view.mtu(), 0xabcd_0042);
        view.payload_mut().copy_from_slice(&[1, 2, 3, 4]);
        view.set_checksum(0xbeef);
        assert_eq!(view.checksum(), 0xbeef);
        assert_eq!(&view.into_inner()[8..], &[1, 2, 3, 4]);
    }

    #[test]
    fn error_quote_fits_minimum_mtu() {
        assert_eq!(invoking_budget(0), 1280 - 40 - 8);
        assert_eq!(invoking_budget(24), 1280 - 40 - 24 - 8);
        assert_eq!(invoking_budget(5000), 0);
        let big = vec![0x5a; 1500];
        let quote = truncate_invoking(&big, 0);
        assert_eq!(quote.len(), 1232);
        let repr = Icmpv6Repr::PacketTooBig {
            mtu: 1280,
            invoking: quote,
        };
        assert_eq!(40 + repr.buffer_len(), ERROR_PACKET_MAX_LEN);
        // Room left for a Destination Options header holding a Home Address option.
        assert_eq!(40 + 24 + 8 + truncate_invoking(&big, 24).len(), 1280);
        // Small packets are quoted whole.
        assert_eq!(truncate_invoking(&big[..100], 0), &big[..100]);
        assert_eq!(truncate_invoking(&big[..1232], 0).len(), 1232);
        assert_eq!(truncate_invoking(&big[..1233], 0).len(), 1232);
    }

    fn invoking(dst: Ipv6Addr) -> InvokingPacket {
        InvokingPacket {
            src_addr: A,
            dst_addr: dst,
            link_multicast: false,
            icmp_type: None,
            src_known_anycast: false,
        }
    }

    #[test]
    fn error_sending_rules() {
        use ErrorKind::*;
        let all = [
            DstUnreachable,
            PacketTooBig,
            TimeExceeded,
            ErroneousHeaderField,
            UnrecognizedNextHeader,
            UnrecognizedOption { option_type: 0x80 },
        ];
        let unicast = invoking(B);
        for kind in all {
            assert!(may_send_error(&unicast, kind), "{kind:?}");
        }
        // (e.6) sources that do not name one node.
        for src in [Ipv6Addr::UNSPECIFIED, ALL_NODES] {
            for kind in all {
                let p = InvokingPacket {
                    src_addr: src,
                    ..unicast
                };
                assert!(!may_send_error(&p, kind), "{src} {kind:?}");
            }
        }
        let anycast = InvokingPacket {
            src_known_anycast: true,
            ..unicast
        };
        assert!(!may_send_error(&anycast, PacketTooBig));
        // (e.1), (e.2) never about an ICMPv6 error or a Redirect; informational is fine.
        for t in [1, 2, 3, 4, 100, 137] {
            let p = InvokingPacket {
                icmp_type: Some(t),
                ..unicast
            };
            assert!(!may_send_error(&p, TimeExceeded), "type {t}");
        }
        for t in [128, 129, 135] {
            let p = InvokingPacket {
                icmp_type: Some(t),
                ..unicast
            };
            assert!(may_send_error(&p, TimeExceeded), "type {t}");
        }
        // (e.3)-(e.5) multicast, by address or by link layer.
        let by_addr = invoking(ALL_NODES);
        let by_link = InvokingPacket {
            link_multicast: true,
            ..unicast
        };
        for p in [by_addr, by_link] {
            assert!(may_send_error(&p, PacketTooBig));
            assert!(may_send_error(&p, UnrecognizedOption { option_type: 0x9e }));
            assert!(!may_send_error(
                &p,
                UnrecognizedOption { option_type: 0xc9 }
            ));
            for kind in [
                DstUnreachable,
                TimeExceeded,
                ErroneousHeaderField,
                UnrecognizedNextHeader,
            ] {
                assert!(!may_send_error(&p, kind), "{kind:?}");
            }
        }
        // RFC 8200 §4.2: "11" options are reported to unicast; "00"/"01" never are.
        assert!(may_send_error(
            &unicast,
            UnrecognizedOption { option_type: 0xc9 }
        ));
        assert!(!may_send_error(
            &unicast,
            UnrecognizedOption { option_type: 0x05 }
        ));
        assert!(!may_send_error(
            &unicast,
            UnrecognizedOption { option_type: 0x45 }
        ));
    }

    fn addr() -> impl Strategy<Value = Ipv6Addr> {
        prop_oneof![
            Just(A),
            Just(LL1),
            Just(SOLICITED_B),
            Just(Ipv6Addr::UNSPECIFIED),
            any::<u128>().prop_map(Ipv6Addr::from),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
            src in addr(),
            dst in addr(),
        ) {
            if let Ok(view) = Icmpv6Packet::new_checked(&bytes[..]) {
                let _ = Icmpv6Repr::parse(&view, &src, &dst);
                let _ = (view.payload(), view.mtu(), view.echo_seq_no(), view.router_flag());
            }
        }

        /// With a valid checksum parsing reaches every type's checks; what parses must
        /// re-emit to a message that parses to the same thing.
        #[test]
        fn checksummed_bytes_parse_and_reemit(
            msg_type in prop::sample::select(vec![1u8, 2, 3, 4, 100, 128, 129, 133, 135, 136, 137, 250]),
            code in 0u8..3,
            body in proptest::collection::vec(any::<u8>(), 2..96),
            src in addr(),
            dst in addr(),
        ) {
            let mut bytes = vec![msg_type, code];
            bytes.extend_from_slice(&body);
            if let Ok(mut view) = Icmpv6Packet::new_checked(&mut bytes[..]) {
                view.fill_checksum(&src, &dst);
            }
            let Ok(view) = Icmpv6Packet::new_checked(&bytes[..]) else { return Ok(()) };
            if let Ok(repr) = Icmpv6Repr::parse(&view, &src, &dst) {
                let mut out = vec![0; repr.buffer_len()];
                repr.emit(&mut Icmpv6Packet::new_unchecked(&mut out[..]), &src, &dst).unwrap();
                let again = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&out[..]).unwrap(), &src, &dst);
                prop_assert_eq!(again, Ok(repr));
            }
        }
    }
}
