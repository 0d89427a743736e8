//! The Mobility Header (RFC 6275 §6.1): the IPv6 extension header, Next Header 135, that
//! carries Binding Updates, Binding Acknowledgements, return-routability tests and errors.
//!
//! ```text
//!  0        1        2        3
//! +--------+--------+--------+--------+
//! |PayProto| HdrLen | MHType |Reserved|
//! +--------+--------+--------+--------+
//! |    Checksum     |  Message Data, then mobility options ...
//! ```
//!
//! * [`MhPacket`] is the zero-copy view; `new_checked` only makes sure the buffer holds the
//!   `(HdrLen + 1) * 8` octets the header claims. The view is bounded by that length, so a
//!   longer buffer (the rest of the IPv6 payload) is fine.
//! * [`check_receive`] applies the receive checks of RFC 6275 §9.2 in order and says which
//!   response the RFC asks for.
//! * [`MhRepr`] is the parsed message: [`MhMessage`] for the fixed part plus the options
//!   ([`MhOptions`]), laid out on emit with the padding and ordering rules of
//!   [`option`].
//! * [`mh_checksum`], [`fill_checksum`], [`verify_checksum`]: the checksum with the Mobile
//!   IPv6 pseudo-header rule (see [`mh_checksum`]).

use std::net::Ipv6Addr;

use crate::checksum;
use crate::{Error, Result};

/// Declares a wire-number enum with an `Unknown` variant and both `From` conversions, in the
/// manner of smoltcp's `enum_with_unknown!`.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy, Hash)]
        pub enum $name {
            $( $(#[$variant_attr])* $variant ),*,
            #[doc = "A value this code does not know, kept as received."]
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( v if v == $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

pub mod option;

pub use option::{Alignment, AuthSubtype, MobilityOption, MobilityOptionIter, OptionType};

#[cfg(test)]
mod tests;

/// Octets before the message data: Payload Proto, Header Len, MH Type, Reserved, Checksum.
pub const HEADER_LEN: usize = 6;
/// Offset of Payload Proto within the MH.
pub const PAYLOAD_PROTO_OFFSET: usize = 0;
/// Offset of Header Len within the MH.
pub const HEADER_LEN_OFFSET: usize = 1;
/// Offset of MH Type within the MH.
pub const MH_TYPE_OFFSET: usize = 2;
/// Offset of the Checksum within the MH.
pub const CHECKSUM_OFFSET: usize = 4;
/// The only Payload Proto allowed: IPPROTO_NONE (RFC 6275 §6.1.1, no piggybacking).
pub const PAYLOAD_PROTO_NONE: u8 = checksum::proto::NO_NEXT_HEADER;
/// Largest MH: Header Len is one octet, so (255 + 1) * 8.
pub const MAX_LEN: usize = 2048;

enum_with_unknown! {
    /// MH Type (RFC 6275 §6.1.2–§6.1.9). Types 8 and up belong to other RFCs and are
    /// unknown here, which RFC 6275 §9.2 answers with Binding Error status 2.
    pub enum MhType(u8) {
        BindingRefreshRequest = 0,
        HomeTestInit = 1,
        CareOfTestInit = 2,
        HomeTest = 3,
        CareOfTest = 4,
        BindingUpdate = 5,
        BindingAck = 6,
        BindingError = 7,
    }
}

impl MhType {
    /// Length of the fixed part (header plus message fields, before options), or `None`
    /// for an unknown type. BU and BA are 12, so they always need at least 4 octets of
    /// padding or options to reach 16.
    pub const fn fixed_len(self) -> Option<usize> {
        match self {
            MhType::BindingRefreshRequest => Some(8),
            MhType::HomeTestInit | MhType::CareOfTestInit => Some(16),
            MhType::HomeTest | MhType::CareOfTest => Some(24),
            MhType::BindingUpdate | MhType::BindingAck => Some(12),
            MhType::BindingError => Some(24),
            MhType::Unknown(_) => None,
        }
    }

    /// The smallest Header Len the type allows (RFC 6275 §9.2: "MUST NOT be less than the
    /// length specified for this particular type of message").
    pub const fn min_header_len(self) -> Option<u8> {
        match self.fixed_len() {
            Some(len) => Some((len.div_ceil(8) - 1) as u8),
            None => None,
        }
    }

    /// True for the eight RFC 6275 types.
    pub const fn is_known(self) -> bool {
        !matches!(self, MhType::Unknown(_))
    }
}

enum_with_unknown! {
    /// Binding Acknowledgement status (RFC 6275 §6.1.8). Values below 128 mean accepted.
    pub enum BaStatus(u8) {
        Accepted = 0,
        AcceptedPrefixDiscovery = 1,
        ReasonUnspecified = 128,
        AdministrativelyProhibited = 129,
        InsufficientResources = 130,
        HomeRegistrationNotSupported = 131,
        NotHomeSubnet = 132,
        NotHomeAgentForThisMobileNode = 133,
        DuplicateAddressDetectionFailed = 134,
        SequenceNumberOutOfWindow = 135,
        ExpiredHomeNonceIndex = 136,
        ExpiredCareOfNonceIndex = 137,
        ExpiredNonces = 138,
        RegistrationTypeChangeDisallowed = 139,
        InvalidCareOf = 174,
    }
}

impl BaStatus {
    /// RFC 6275 §6.1.8: "Values of the Status field less than 128 indicate that the Binding
    /// Update was accepted".
    pub fn is_accepted(self) -> bool {
        u8::from(self) < 128
    }
}

enum_with_unknown! {
    /// Binding Error status (RFC 6275 §6.1.9).
    pub enum BeStatus(u8) {
        /// Unknown binding for Home Address destination option.
        UnknownBindingForHomeAddress = 1,
        /// Unrecognized MH Type value.
        UnrecognizedMhType = 2,
    }
}

/// Binding Update flag bits in the 16-bit word at MH offset 8 (RFC 6275 §6.1.7).
pub mod bu_flags {
    /// Acknowledge (A): a Binding Acknowledgement is requested.
    pub const ACK: u16 = 0x8000;
    /// Home Registration (H).
    pub const HOME_REGISTRATION: u16 = 0x4000;
    /// Link-Local Address Compatibility (L).
    pub const LINK_LOCAL: u16 = 0x2000;
    /// Key Management Mobility Capability (K).
    pub const KEY_MGMT: u16 = 0x1000;
    /// The bits RFC 6275 defines; the others belong to later RFCs (M, R, P, F, T, B).
    pub const RFC6275: u16 = ACK | HOME_REGISTRATION | LINK_LOCAL | KEY_MGMT;
}

/// Binding Acknowledgement flag bits in the octet at MH offset 7 (RFC 6275 §6.1.8).
pub mod ba_flags {
    /// Key Management Mobility Capability (K).
    pub const KEY_MGMT: u8 = 0x80;
}

/// The fields of a Binding Update (RFC 6275 §6.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BindingUpdate {
    pub sequence: u16,
    /// A: the sender asks for a Binding Acknowledgement.
    pub ack: bool,
    /// H: home registration.
    pub home_registration: bool,
    /// L: link-local address compatibility.
    pub link_local: bool,
    /// K: key management mobility capability.
    pub key_mgmt: bool,
    /// The flag and reserved bits other than A, H, L, K, kept as received (in their wire
    /// positions, i.e. masked with `!bu_flags::RFC6275`) so a message round-trips.
    pub other_flags: u16,
    /// Lifetime in 4-second units; 0 deletes the binding (RFC 6275 §6.1.7).
    pub lifetime: u16,
}

impl BindingUpdate {
    /// The lifetime in seconds ("One time unit is 4 seconds").
    pub fn lifetime_secs(&self) -> u32 {
        u32::from(self.lifetime) * 4
    }
}

/// The fields of a Binding Acknowledgement (RFC 6275 §6.1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindingAck {
    pub status: BaStatus,
    /// K: key management mobility capability.
    pub key_mgmt: bool,
    /// The bits of the flags octet other than K, kept as received (R, P, T of later RFCs).
    pub other_flags: u8,
    pub sequence: u16,
    /// Granted lifetime in 4-second units; meaningless when the status rejects.
    pub lifetime: u16,
}

impl BindingAck {
    /// The lifetime in seconds.
    pub fn lifetime_secs(&self) -> u32 {
        u32::from(self.lifetime) * 4
    }
}

/// The message part of a Mobility Header: the type and its fixed fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MhMessage<'a> {
    /// Binding Refresh Request (§6.1.2).
    BindingRefreshRequest,
    /// Home Test Init (§6.1.3) with the Home Init Cookie.
    HomeTestInit { cookie: [u8; 8] },
    /// Care-of Test Init (§6.1.4) with the Care-of Init Cookie.
    CareOfTestInit { cookie: [u8; 8] },
    /// Home Test (§6.1.5).
    HomeTest {
        home_nonce_index: u16,
        cookie: [u8; 8],
        keygen_token: [u8; 8],
    },
    /// Care-of Test (§6.1.6).
    CareOfTest {
        care_of_nonce_index: u16,
        cookie: [u8; 8],
        keygen_token: [u8; 8],
    },
    /// Binding Update (§6.1.7).
    BindingUpdate(BindingUpdate),
    /// Binding Acknowledgement (§6.1.8).
    BindingAck(BindingAck),
    /// Binding Error (§6.1.9). The home address is the one from the Home Address option of
    /// the offending packet, or `::` when it had none.
    BindingError {
        status: BeStatus,
        home_address: Ipv6Addr,
    },
    /// A type RFC 6275 does not define; `data` is everything after the checksum. It parses
    /// so that the caller can answer with Binding Error status 2 (§9.2).
    Unknown { mh_type: u8, data: &'a [u8] },
}

impl MhMessage<'_> {
    /// The MH Type of this message.
    pub fn mh_type(&self) -> MhType {
        match self {
            MhMessage::BindingRefreshRequest => MhType::BindingRefreshRequest,
            MhMessage::HomeTestInit { .. } => MhType::HomeTestInit,
            MhMessage::CareOfTestInit { .. } => MhType::CareOfTestInit,
            MhMessage::HomeTest { .. } => MhType::HomeTest,
            MhMessage::CareOfTest { .. } => MhType::CareOfTest,
            MhMessage::BindingUpdate(_) => MhType::BindingUpdate,
            MhMessage::BindingAck(_) => MhType::BindingAck,
            MhMessage::BindingError { .. } => MhType::BindingError,
            MhMessage::Unknown { mh_type, .. } => MhType::from(*mh_type),
        }
    }

    /// Octets of the header plus the message fields (before options).
    pub fn fixed_len(&self) -> usize {
        match self {
            MhMessage::Unknown { data, .. } => HEADER_LEN + data.len(),
            other => other.mh_type().fixed_len().unwrap_or(HEADER_LEN),
        }
    }
}

/// A zero-copy view of a Mobility Header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn cookie_at(b: &[u8], at: usize) -> [u8; 8] {
    let mut c = [0u8; 8];
    c.copy_from_slice(&b[at..at + 8]);
    c
}

impl<T: AsRef<[u8]>> MhPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic until
    /// [`check_len`](Self::check_len) has succeeded.
    pub const fn new_unchecked(buffer: T) -> MhPacket<T> {
        MhPacket { buffer }
    }

    /// Wraps a buffer that holds at least the `(Header Len + 1) * 8` octets the header
    /// claims. A longer buffer is fine: the view ends where the MH ends.
    pub fn new_checked(buffer: T) -> Result<MhPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the whole MH as given by Header Len.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < 8 {
            return Err(Error::Truncated("Mobility Header"));
        }
        if data.len() < self.total_len() {
            return Err(Error::Truncated("Mobility Header (Header Len)"));
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the MH in octets: `(Header Len + 1) * 8`.
    pub fn total_len(&self) -> usize {
        (usize::from(self.header_len()) + 1) * 8
    }

    /// Payload Proto (must be 59).
    pub fn payload_proto(&self) -> u8 {
        self.buffer.as_ref()[PAYLOAD_PROTO_OFFSET]
    }

    /// Header Len: 8-octet units after the first 8 octets.
    pub fn header_len(&self) -> u8 {
        self.buffer.as_ref()[HEADER_LEN_OFFSET]
    }

    /// MH Type.
    pub fn mh_type(&self) -> MhType {
        MhType::from(self.buffer.as_ref()[MH_TYPE_OFFSET])
    }

    /// The Reserved octet after MH Type.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    /// The Checksum field.
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[CHECKSUM_OFFSET], b[CHECKSUM_OFFSET + 1]])
    }

    /// The MH, exactly `total_len` octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }

    /// Message Data: the octets after the checksum up to the end of the MH (type-specific
    /// fields, then options).
    pub fn message_data(&self) -> &[u8] {
        &self.as_bytes()[HEADER_LEN..]
    }

    /// MH offset where the options start: the fixed length of a known type, if the MH is
    /// long enough to hold it.
    pub fn options_offset(&self) -> Option<usize> {
        self.mh_type()
            .fixed_len()
            .filter(|&fixed| fixed <= self.total_len())
    }

    /// The options of a known message type (none for an unknown type or a Header Len below
    /// the type's minimum). [`MobilityOptionIter::position`] gives MH offsets.
    pub fn options(&self) -> MobilityOptionIter<'_> {
        match self.options_offset() {
            Some(at) => MobilityOptionIter::new(&self.as_bytes()[at..], at),
            None => MobilityOptionIter::new(&[], self.total_len()),
        }
    }

    /// The last option with its MH offset, or `None` when the message has no options.
    /// Padding counts as an option here, so a message padded after its last real option
    /// reports the padding.
    pub fn last_option(&self) -> Result<Option<(usize, MobilityOption<'_>)>> {
        let mut it = self.options();
        let mut last = None;
        loop {
            let at = it.position();
            match it.next() {
                None => return Ok(last),
                Some(opt) => last = Some((at, opt?)),
            }
        }
    }

    /// True when the checksum verifies with the given pseudo-header addresses (see
    /// [`mh_checksum`] for which addresses those are).
    pub fn verify_checksum(&self, pseudo_src: &Ipv6Addr, pseudo_dst: &Ipv6Addr) -> bool {
        verify_checksum(pseudo_src, pseudo_dst, self.as_bytes())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MhPacket<T> {
    pub fn set_payload_proto(&mut self, value: u8) {
        self.buffer.as_mut()[PAYLOAD_PROTO_OFFSET] = value;
    }

    pub fn set_header_len(&mut self, value: u8) {
        self.buffer.as_mut()[HEADER_LEN_OFFSET] = value;
    }

    pub fn set_mh_type(&mut self, value: MhType) {
        self.buffer.as_mut()[MH_TYPE_OFFSET] = value.into();
    }

    pub fn set_reserved(&mut self, value: u8) {
        self.buffer.as_mut()[3] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2]
            .copy_from_slice(&value.to_be_bytes());
    }

    /// The MH, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.total_len();
        &mut self.buffer.as_mut()[..len]
    }

    /// Message Data, writable.
    pub fn message_data_mut(&mut self) -> &mut [u8] {
        &mut self.as_bytes_mut()[HEADER_LEN..]
    }

    /// Computes and stores the checksum (see [`mh_checksum`] for the addresses).
    pub fn fill_checksum(&mut self, pseudo_src: &Ipv6Addr, pseudo_dst: &Ipv6Addr) {
        let c = mh_checksum(pseudo_src, pseudo_dst, self.as_bytes());
        self.set_checksum(c);
    }
}

/// The checksum to store in the MH `mh` (the whole MH, exactly its length), computed as if
/// its Checksum field were zero (RFC 6275 §6.1.1).
///
/// The pseudo-header (RFC 8200 §8.1, Next Header 135) uses:
/// * as `pseudo_src`: the **home address from the Home Address option** when the packet
///   carries one (a BU sent from a care-of address), otherwise the IPv6 source;
/// * as `pseudo_dst`: the **home address from the Type 2 routing header** when the packet
///   carries one (a BA sent to a care-of address), the final destination as for any routing
///   header, otherwise the IPv6 destination.
///
/// The checksum covers any authenticator, so fill it after inserting one.
pub fn mh_checksum(pseudo_src: &Ipv6Addr, pseudo_dst: &Ipv6Addr, mh: &[u8]) -> u16 {
    let mut acc = checksum::pseudo_header(
        pseudo_src,
        pseudo_dst,
        checksum::proto::MOBILITY,
        mh.len() as u32,
    );
    acc = checksum::sum(acc, &mh[..mh.len().min(CHECKSUM_OFFSET)]);
    if let Some(rest) = mh.get(CHECKSUM_OFFSET + 2..) {
        acc = checksum::sum(acc, rest);
    }
    !checksum::fold(acc)
}

/// Stores [`mh_checksum`] into the Checksum field of `mh` (the whole MH, exactly its
/// length; see [`mh_checksum`] for the pseudo-header addresses).
pub fn fill_checksum(pseudo_src: &Ipv6Addr, pseudo_dst: &Ipv6Addr, mh: &mut [u8]) -> Result<()> {
    if mh.len() < HEADER_LEN {
        return Err(Error::Truncated("Mobility Header"));
    }
    let c = mh_checksum(pseudo_src, pseudo_dst, mh);
    mh[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// True when the checksum stored in `mh` (the whole MH) verifies. Pass the same addresses
/// as to [`mh_checksum`]: the HAO home address as source, the RH2 home address as
/// destination, when present.
pub fn verify_checksum(pseudo_src: &Ipv6Addr, pseudo_dst: &Ipv6Addr, mh: &[u8]) -> bool {
    if mh.len() < HEADER_LEN {
        return false;
    }
    checksum::verify_upper_layer(pseudo_src, pseudo_dst, checksum::proto::MOBILITY, mh)
}

/// Why a received Mobility Header fails the checks of RFC 6275 §9.2, in the RFC's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MhRejection {
    /// The checksum does not verify: silently discard.
    BadChecksum,
    /// MH Type not defined by RFC 6275: discard and send Binding Error status 2
    /// ([`BeStatus::UnrecognizedMhType`]).
    UnknownType(u8),
    /// Payload Proto is not 59: discard and send ICMPv6 Parameter Problem code 0 to the
    /// packet's source (no Binding Cache lookup), pointing at Payload Proto.
    PayloadProtoNotNone(u8),
    /// Header Len is below the minimum of the message type: discard and send ICMPv6
    /// Parameter Problem code 0, pointing at Header Len.
    HeaderLenTooShort {
        mh_type: MhType,
        header_len: u8,
        minimum: u8,
    },
}

/// What the RFC asks a node to do about an [`MhRejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MhResponse {
    /// Drop without any reply.
    SilentDiscard,
    /// Drop and send a Binding Error with this status.
    BindingError(BeStatus),
    /// Drop and send ICMPv6 Parameter Problem with this code. `pointer_in_mh` is the
    /// offset of the offending field **from the first octet of the Mobility Header**; the
    /// caller adds the offset of the MH within the invoking packet (IPv6 header plus
    /// extension headers before the MH) to get the ICMPv6 Pointer (RFC 4443 §3.4).
    ParameterProblem { code: u8, pointer_in_mh: u32 },
}

impl MhRejection {
    /// The reply RFC 6275 §9.2 asks for.
    pub fn response(&self) -> MhResponse {
        match self {
            MhRejection::BadChecksum => MhResponse::SilentDiscard,
            MhRejection::UnknownType(_) => MhResponse::BindingError(BeStatus::UnrecognizedMhType),
            MhRejection::PayloadProtoNotNone(_) => MhResponse::ParameterProblem {
                code: 0,
                pointer_in_mh: PAYLOAD_PROTO_OFFSET as u32,
            },
            MhRejection::HeaderLenTooShort { .. } => MhResponse::ParameterProblem {
                code: 0,
                pointer_in_mh: HEADER_LEN_OFFSET as u32,
            },
        }
    }
}

/// Applies the receive checks of RFC 6275 §9.2 in order (checksum, MH Type, Payload Proto,
/// Header Len) and returns the message type when all pass. The pseudo-header addresses are
/// those of [`mh_checksum`]. An unknown type is not a parse error ([`MhRepr::parse`] returns
/// [`MhMessage::Unknown`]); it is a rejection here because the RFC answers it with a
/// Binding Error.
pub fn check_receive<T: AsRef<[u8]>>(
    packet: &MhPacket<T>,
    pseudo_src: &Ipv6Addr,
    pseudo_dst: &Ipv6Addr,
) -> core::result::Result<MhType, MhRejection> {
    if !packet.verify_checksum(pseudo_src, pseudo_dst) {
        return Err(MhRejection::BadChecksum);
    }
    let mh_type = packet.mh_type();
    let Some(minimum) = mh_type.min_header_len() else {
        return Err(MhRejection::UnknownType(mh_type.into()));
    };
    if packet.payload_proto() != PAYLOAD_PROTO_NONE {
        return Err(MhRejection::PayloadProtoNotNone(packet.payload_proto()));
    }
    if packet.header_len() < minimum {
        return Err(MhRejection::HeaderLenTooShort {
            mh_type,
            header_len: packet.header_len(),
            minimum,
        });
    }
    Ok(mh_type)
}

/// The options of a message: either as received (raw octets, padding included) or as a
/// list to lay out when emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MhOptions<'a> {
    /// The octets after the fixed part, as found on the wire; emitted unchanged, then
    /// padded to a multiple of 8 octets if needed.
    Wire(&'a [u8]),
    /// Options to lay out with alignment padding (see [`option`]); padding
    /// options given here are emitted as given.
    List(&'a [MobilityOption<'a>]),
}

impl<'a> MhOptions<'a> {
    /// No options.
    pub const NONE: MhOptions<'static> = MhOptions::List(&[]);

    /// The options one by one (padding included). For `Wire`,
    /// [`MobilityOptionIter::position`] is relative to the start of the option area.
    pub fn iter(&self) -> MhOptionsIter<'a> {
        match *self {
            MhOptions::Wire(bytes) => MhOptionsIter::Wire(MobilityOptionIter::new(bytes, 0)),
            MhOptions::List(list) => MhOptionsIter::List(list.iter()),
        }
    }

    /// True when there is no option (padding counts as an option).
    pub fn is_empty(&self) -> bool {
        match self {
            MhOptions::Wire(bytes) => bytes.is_empty(),
            MhOptions::List(list) => list.is_empty(),
        }
    }
}

/// Iterator over [`MhOptions`].
#[derive(Debug, Clone)]
pub enum MhOptionsIter<'a> {
    Wire(MobilityOptionIter<'a>),
    List(core::slice::Iter<'a, MobilityOption<'a>>),
}

impl<'a> Iterator for MhOptionsIter<'a> {
    type Item = Result<MobilityOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            MhOptionsIter::Wire(it) => it.next(),
            MhOptionsIter::List(it) => it.next().map(|o| Ok(*o)),
        }
    }
}

/// A parsed Mobility Header message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MhRepr<'a> {
    pub message: MhMessage<'a>,
    /// Options after the fixed part; always empty for [`MhMessage::Unknown`], whose data
    /// holds everything.
    pub options: MhOptions<'a>,
}

impl<'a> MhRepr<'a> {
    /// Parses a Mobility Header. Run [`check_receive`] first to get the RFC's answer to a bad
    /// checksum, an unknown type, a wrong Payload Proto or a short Header Len; here an
    /// unknown type parses as [`MhMessage::Unknown`], while a Payload Proto other than 59, a
    /// Header Len below the type's minimum or a malformed option is an error. The options
    /// are validated once and kept as [`MhOptions::Wire`]; nothing is allocated.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &MhPacket<&'a T>) -> Result<MhRepr<'a>> {
        packet.check_len()?;
        let total = packet.total_len();
        let b: &'a [u8] = &packet.buffer.as_ref()[..total];
        if b[PAYLOAD_PROTO_OFFSET] != PAYLOAD_PROTO_NONE {
            return Err(Error::Malformed(
                "Mobility Header Payload Proto (must be 59)",
            ));
        }
        let mh_type = MhType::from(b[MH_TYPE_OFFSET]);
        // Unknown types have no fixed part beyond the header; their data is kept whole.
        let fixed = mh_type.fixed_len().unwrap_or(HEADER_LEN);
        if fixed > total {
            return Err(Error::Malformed(
                "Mobility Header Header Len below the minimum for its MH Type",
            ));
        }
        let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        let message = match mh_type {
            MhType::BindingRefreshRequest => MhMessage::BindingRefreshRequest,
            MhType::HomeTestInit => MhMessage::HomeTestInit {
                cookie: cookie_at(b, 8),
            },
            MhType::CareOfTestInit => MhMessage::CareOfTestInit {
                cookie: cookie_at(b, 8),
            },
            MhType::HomeTest => MhMessage::HomeTest {
                home_nonce_index: be16(6),
                cookie: cookie_at(b, 8),
                keygen_token: cookie_at(b, 16),
            },
            MhType::CareOfTest => MhMessage::CareOfTest {
                care_of_nonce_index: be16(6),
                cookie: cookie_at(b, 8),
                keygen_token: cookie_at(b, 16),
            },
            MhType::BindingUpdate => {
                let flags = be16(8);
                MhMessage::BindingUpdate(BindingUpdate {
                    sequence: be16(6),
                    ack: flags & bu_flags::ACK != 0,
                    home_registration: flags & bu_flags::HOME_REGISTRATION != 0,
                    link_local: flags & bu_flags::LINK_LOCAL != 0,
                    key_mgmt: flags & bu_flags::KEY_MGMT != 0,
                    other_flags: flags & !bu_flags::RFC6275,
                    lifetime: be16(10),
                })
            }
            MhType::BindingAck => MhMessage::BindingAck(BindingAck {
                status: BaStatus::from(b[6]),
                key_mgmt: b[7] & ba_flags::KEY_MGMT != 0,
                other_flags: b[7] & !ba_flags::KEY_MGMT,
                sequence: be16(8),
                lifetime: be16(10),
            }),
            MhType::BindingError => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[8..24]);
                MhMessage::BindingError {
                    status: BeStatus::from(b[6]),
                    home_address: Ipv6Addr::from(a),
                }
            }
            MhType::Unknown(mh_type) => {
                return Ok(MhRepr {
                    message: MhMessage::Unknown {
                        mh_type,
                        data: &b[HEADER_LEN..],
                    },
                    options: MhOptions::Wire(&[]),
                })
            }
        };
        let options = &b[fixed..];
        for opt in MobilityOptionIter::new(options, fixed) {
            opt?;
        }
        Ok(MhRepr {
            message,
            options: MhOptions::Wire(options),
        })
    }

    /// The MH Type of the message.
    pub fn mh_type(&self) -> MhType {
        self.message.mh_type()
    }

    /// Octets [`emit`](Self::emit) writes: the fixed part, the options with their padding,
    /// completed to a multiple of 8. Fails when the options cannot be laid out (two
    /// options that must be last, one that cannot end on an 8-octet boundary, an MH over
    /// 2048 octets, or data on an unknown message that is not 2 octets past a multiple of 8).
    pub fn buffer_len(&self) -> Result<usize> {
        self.layout(None)
    }

    /// Writes the MH at the start of the packet buffer, with Reserved fields and the
    /// Checksum set to zero. Insert authenticators ([`crate::rr`], [`crate::auth`]) and then
    /// fill the checksum ([`MhPacket::fill_checksum`]).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut MhPacket<T>) -> Result<()> {
        self.layout(Some(packet.buffer.as_mut()))?;
        Ok(())
    }

    fn layout(&self, out: Option<&mut [u8]>) -> Result<usize> {
        let fixed = self.message.fixed_len();
        let len = match (&self.message, &self.options) {
            (MhMessage::Unknown { mh_type, .. }, opts) => {
                if MhType::from(*mh_type).is_known() {
                    return Err(Error::Malformed("Unknown MH message with a known MH Type"));
                }
                if !opts.is_empty() {
                    return Err(Error::Malformed("options on an unknown MH Type"));
                }
                if fixed % 8 != 0 || fixed > MAX_LEN {
                    return Err(Error::Malformed("unknown MH Type data length"));
                }
                fixed
            }
            (_, MhOptions::Wire(bytes)) => {
                let end = (fixed + bytes.len()).div_ceil(8) * 8;
                if end > MAX_LEN {
                    return Err(Error::Malformed("Mobility Header longer than 2048 octets"));
                }
                end
            }
            (_, MhOptions::List(list)) => option::layout(fixed, list, None)?,
        };
        let Some(buf) = out else {
            return Ok(len);
        };
        let buf = buf.get_mut(..len).ok_or(Error::NoRoom("Mobility Header"))?;
        buf.fill(0);
        buf[PAYLOAD_PROTO_OFFSET] = PAYLOAD_PROTO_NONE;
        buf[HEADER_LEN_OFFSET] = (len / 8 - 1) as u8;
        buf[MH_TYPE_OFFSET] = self.mh_type().into();
        match &self.message {
            MhMessage::BindingRefreshRequest => {}
            MhMessage::HomeTestInit { cookie } | MhMessage::CareOfTestInit { cookie } => {
                buf[8..16].copy_from_slice(cookie);
            }
            MhMessage::HomeTest {
                home_nonce_index: index,
                cookie,
                keygen_token,
            }
            | MhMessage::CareOfTest {
                care_of_nonce_index: index,
                cookie,
                keygen_token,
            } => {
                buf[6..8].copy_from_slice(&index.to_be_bytes());
                buf[8..16].copy_from_slice(cookie);
                buf[16..24].copy_from_slice(keygen_token);
            }
            MhMessage::BindingUpdate(bu) => {
                let mut flags = bu.other_flags & !bu_flags::RFC6275;
                for (set, bit) in [
                    (bu.ack, bu_flags::ACK),
                    (bu.home_registration, bu_flags::HOME_REGISTRATION),
                    (bu.link_local, bu_flags::LINK_LOCAL),
                    (bu.key_mgmt, bu_flags::KEY_MGMT),
                ] {
                    if set {
                        flags |= bit;
                    }
                }
                buf[6..8].copy_from_slice(&bu.sequence.to_be_bytes());
                buf[8..10].copy_from_slice(&flags.to_be_bytes());
                buf[10..12].copy_from_slice(&bu.lifetime.to_be_bytes());
            }
            MhMessage::BindingAck(ba) => {
                buf[6] = ba.status.into();
                buf[7] = (ba.other_flags & !ba_flags::KEY_MGMT)
                    | if ba.key_mgmt { ba_flags::KEY_MGMT } else { 0 };
                buf[8..10].copy_from_slice(&ba.sequence.to_be_bytes());
                buf[10..12].copy_from_slice(&ba.lifetime.to_be_bytes());
            }
            MhMessage::BindingError {
                status,
                home_address,
            } => {
                buf[6] = (*status).into();
                buf[8..24].copy_from_slice(&home_address.octets());
            }
            MhMessage::Unknown { data, .. } => {
                buf[HEADER_LEN..].copy_from_slice(data);
                return Ok(len);
            }
        }
        match self.options {
            MhOptions::Wire(bytes) => {
                buf[fixed..fixed + bytes.len()].copy_from_slice(bytes);
                option::write_padding(&mut buf[fixed + bytes.len()..], len - fixed - bytes.len())?;
            }
            MhOptions::List(list) => {
                option::layout(fixed, list, Some(buf))?;
            }
        }
        Ok(len)
    }

    /// The first option of the given type that parses, ignoring malformed ones (which
    /// [`parse`](Self::parse) has already rejected for `Wire` options).
    pub fn find_option(&self, option_type: OptionType) -> Option<MobilityOption<'a>> {
        self.options
            .iter()
            .filter_map(|o| o.ok())
            .find(|o| o.option_type() == option_type)
    }

    /// The Nonce Indices option, as (home, care-of).
    pub fn nonce_indices(&self) -> Option<(u16, u16)> {
        match self.find_option(OptionType::NonceIndices)? {
            MobilityOption::NonceIndices { home, care_of } => Some((home, care_of)),
            _ => None,
        }
    }

    /// The Alternate Care-of Address option.
    pub fn alternate_care_of(&self) -> Option<Ipv6Addr> {
        match self.find_option(OptionType::AlternateCareOf)? {
            MobilityOption::AlternateCareOf(a) => Some(a),
            _ => None,
        }
    }

    /// The Binding Authorization Data authenticator.
    pub fn binding_auth_data(&self) -> Option<&'a [u8; option::BINDING_AUTH_DATA_LEN]> {
        match self.find_option(OptionType::BindingAuthData)? {
            MobilityOption::BindingAuthData(a) => Some(a),
            _ => None,
        }
    }

    /// The Binding Refresh Advice interval in 4-second units.
    pub fn binding_refresh_advice(&self) -> Option<u16> {
        match self.find_option(OptionType::BindingRefreshAdvice)? {
            MobilityOption::BindingRefreshAdvice { interval } => Some(interval),
            _ => None,
        }
    }
}
