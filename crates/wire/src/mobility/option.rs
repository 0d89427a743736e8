//! Mobility options: the TLVs that follow the fixed part of a Mobility Header message.
//!
//! Every option except Pad1 is Type (1 octet), Length (1 octet, counting only the data after
//! these two octets), then the data (RFC 6275 §6.2.1). Receivers skip options they do not
//! know. An option's alignment is written `xn+y`: its Type octet must sit at an offset from
//! the start of the Mobility Header that is `y` modulo `x` (RFC 6275 §6.2).
//!
//! Type numbers, lengths and alignments, with where they were checked:
//!
//! | Type | Option | Length | Alignment | Source |
//! |---|---|---|---|---|
//! | 0 | Pad1 | (single octet) | none | RFC 6275 §6.2.2 |
//! | 1 | PadN | N−2 | none | RFC 6275 §6.2.3 |
//! | 2 | Binding Refresh Advice | 2 | 2n | RFC 6275 §6.2.4; scapy `MIP6OptBRAdvice` |
//! | 3 | Alternate Care-of Address | 16 | 8n+6 | RFC 6275 §6.2.5; scapy `MIP6OptAltCoA` |
//! | 4 | Nonce Indices | 4 | 2n | RFC 6275 §6.2.6; scapy, UMIP/KAME `check_mopt_len(4)` |
//! | 5 | Binding Authorization Data | 12 (RR) | 8n+2 (implied by "last option") | RFC 6275 §6.2.7 |
//! | 9 | Mobility Message Authentication | ≥ 5 | 4n+1 | RFC 4285 §5; scapy `MIP6OptMsgAuth` |
//! | 10 | Mobility Message Replay Protection | 8 | 8n+2 | RFC 4285 §6; scapy `MIP6OptReplayProtection` |
//! | 19 | Vendor Specific | ≥ 5 | 4n+2 | RFC 5094 §3 (quoted in the OAI PMIPv6 daemon) |
//! | 35 | Binding Identifier | 4, 8 or 20 | 8n+2 | RFC 5648 §6.1 (lengths also in pcapkit, Pcap.Net) |
//!
//! Type numbers 9, 10, 19 and 35 match the IANA list as carried by Wireshark `packet-mip6.c`
//! and pcapkit.

use std::net::Ipv6Addr;

use crate::{Error, Result};

enum_with_unknown! {
    /// Mobility option type numbers (IANA "Mobility Options").
    pub enum OptionType(u8) {
        Pad1 = 0,
        PadN = 1,
        BindingRefreshAdvice = 2,
        AlternateCareOf = 3,
        NonceIndices = 4,
        BindingAuthData = 5,
        MobilityMessageAuth = 9,
        ReplayProtection = 10,
        VendorSpecific = 19,
        BindingIdentifier = 35,
    }
}

enum_with_unknown! {
    /// Subtype of the Mobility Message Authentication option (RFC 4285 §5).
    pub enum AuthSubtype(u8) {
        /// MN-HA mobility message authentication option (RFC 4285 §5.1).
        MnHa = 1,
        /// MN-AAA mobility message authentication option (RFC 4285 §5.2).
        MnAaa = 2,
    }
}

/// Length of the Binding Authorization Data authenticator produced by the return-routability
/// procedure (RFC 6275 §5.2.6: First(96, ...)).
pub const BINDING_AUTH_DATA_LEN: usize = 12;

/// Where an option's Type octet must sit: at an MH offset `o` with `o % multiple == offset`
/// ("xn+y" in the RFCs, x = `multiple`, y = `offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alignment {
    pub multiple: u8,
    pub offset: u8,
}

impl Alignment {
    /// No requirement (1n+0).
    pub const NONE: Alignment = Alignment::new(1, 0);

    pub const fn new(multiple: u8, offset: u8) -> Self {
        Alignment { multiple, offset }
    }

    /// True when an option starting at MH offset `pos` satisfies this alignment.
    pub fn is_aligned(&self, pos: usize) -> bool {
        pos % usize::from(self.multiple) == usize::from(self.offset)
    }

    /// Octets of padding needed before an option that would otherwise start at `pos`.
    pub fn padding_before(&self, pos: usize) -> usize {
        let x = usize::from(self.multiple);
        (usize::from(self.offset) + x - pos % x) % x
    }
}

/// One mobility option, borrowed from the packet where it has data of variable length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MobilityOption<'a> {
    /// A single octet of padding (RFC 6275 §6.2.2).
    Pad1,
    /// Padding whose Length field (the number of zero octets after Type and Length) is the
    /// value held; the option occupies that many octets plus two (RFC 6275 §6.2.3).
    PadN(u8),
    /// Suggested refresh interval in 4-second units (RFC 6275 §6.2.4).
    BindingRefreshAdvice { interval: u16 },
    /// Alternate Care-of Address (RFC 6275 §6.2.5).
    AlternateCareOf(Ipv6Addr),
    /// Home and care-of nonce indices (RFC 6275 §6.2.6).
    NonceIndices { home: u16, care_of: u16 },
    /// The 96-bit authenticator of the return-routability procedure (RFC 6275 §6.2.7).
    BindingAuthData(&'a [u8; BINDING_AUTH_DATA_LEN]),
    /// Mobility Message Authentication (RFC 4285 §5).
    MobilityMessageAuth {
        subtype: AuthSubtype,
        spi: u32,
        auth_data: &'a [u8],
    },
    /// Mobility Message Replay Protection, a 64-bit NTP-format timestamp (RFC 4285 §6).
    ReplayProtection { timestamp: u64 },
    /// Vendor Specific Mobility Option (RFC 5094 §3).
    VendorSpecific {
        vendor_id: u32,
        sub_type: u8,
        data: &'a [u8],
    },
    /// Binding Identifier (RFC 5648 §6.1). `h` is the Simultaneous Home and Foreign Binding
    /// flag; `bid_pri` is the low 7 bits of that octet (Reserved in RFC 5648, BID-PRI in
    /// RFC 6089 §4.1), kept so the option round-trips. `care_of` is `None` for the form
    /// without a care-of address (Length 4). The IPv4 care-of form (Length 8) is reported as
    /// [`Error::Unsupported`].
    BindingIdentifier {
        bid: u16,
        status: u8,
        h: bool,
        bid_pri: u8,
        care_of: Option<Ipv6Addr>,
    },
    /// An option of a type this code does not know; receivers skip it (RFC 6275 §6.2.1).
    Unknown { type_: u8, data: &'a [u8] },
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn ipv6(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

impl<'a> MobilityOption<'a> {
    /// Parses the option at the start of `bytes` and returns it with the number of octets it
    /// occupies. Options of a known type with a length the RFC does not allow are
    /// [`Error::Malformed`]; an option running past the end of `bytes` is
    /// [`Error::Truncated`].
    pub fn parse(bytes: &'a [u8]) -> Result<(MobilityOption<'a>, usize)> {
        let type_ = *bytes.first().ok_or(Error::Truncated("mobility option"))?;
        if type_ == u8::from(OptionType::Pad1) {
            return Ok((MobilityOption::Pad1, 1));
        }
        let len = usize::from(*bytes.get(1).ok_or(Error::Truncated("mobility option"))?);
        let data = bytes
            .get(2..2 + len)
            .ok_or(Error::Truncated("mobility option"))?;
        let opt = match OptionType::from(type_) {
            OptionType::Pad1 => MobilityOption::Pad1,
            OptionType::PadN => MobilityOption::PadN(len as u8),
            OptionType::BindingRefreshAdvice => {
                if len != 2 {
                    return Err(Error::Malformed("Binding Refresh Advice option length"));
                }
                MobilityOption::BindingRefreshAdvice {
                    interval: be16(data),
                }
            }
            OptionType::AlternateCareOf => {
                if len != 16 {
                    return Err(Error::Malformed("Alternate Care-of Address option length"));
                }
                MobilityOption::AlternateCareOf(ipv6(data))
            }
            OptionType::NonceIndices => {
                if len != 4 {
                    return Err(Error::Malformed("Nonce Indices option length"));
                }
                MobilityOption::NonceIndices {
                    home: be16(data),
                    care_of: be16(&data[2..]),
                }
            }
            OptionType::BindingAuthData => {
                // RFC 6275 §5.2.6: the return-routability authenticator is 96 bits; no other
                // authenticator is defined for this option.
                let auth = <&[u8; BINDING_AUTH_DATA_LEN]>::try_from(data)
                    .map_err(|_| Error::Malformed("Binding Authorization Data option length"))?;
                MobilityOption::BindingAuthData(auth)
            }
            OptionType::MobilityMessageAuth => {
                // RFC 4285 §5: Subtype (1) and Mobility SPI (4) precede the authentication data.
                if len < 5 {
                    return Err(Error::Malformed(
                        "Mobility Message Authentication option length",
                    ));
                }
                MobilityOption::MobilityMessageAuth {
                    subtype: AuthSubtype::from(data[0]),
                    spi: be32(&data[1..]),
                    auth_data: &data[5..],
                }
            }
            OptionType::ReplayProtection => {
                if len != 8 {
                    return Err(Error::Malformed("Replay Protection option length"));
                }
                let mut ts = [0u8; 8];
                ts.copy_from_slice(data);
                MobilityOption::ReplayProtection {
                    timestamp: u64::from_be_bytes(ts),
                }
            }
            OptionType::VendorSpecific => {
                // RFC 5094 §3: Vendor ID (4) and Sub-Type (1) precede the data.
                if len < 5 {
                    return Err(Error::Malformed("Vendor Specific option length"));
                }
                MobilityOption::VendorSpecific {
                    vendor_id: be32(data),
                    sub_type: data[4],
                    data: &data[5..],
                }
            }
            OptionType::BindingIdentifier => {
                // RFC 5648 §6.1: Length is 4 (no care-of address), 8 (IPv4) or 20 (IPv6).
                let care_of = match len {
                    4 => None,
                    20 => Some(ipv6(&data[4..])),
                    8 => {
                        return Err(Error::Unsupported(
                            "Binding Identifier option with an IPv4 care-of address",
                        ))
                    }
                    _ => return Err(Error::Malformed("Binding Identifier option length")),
                };
                MobilityOption::BindingIdentifier {
                    bid: be16(data),
                    status: data[2],
                    h: data[3] & 0x80 != 0,
                    bid_pri: data[3] & 0x7f,
                    care_of,
                }
            }
            OptionType::Unknown(type_) => MobilityOption::Unknown { type_, data },
        };
        Ok((opt, 2 + len))
    }

    /// The option's type number.
    pub fn option_type(&self) -> OptionType {
        match self {
            MobilityOption::Pad1 => OptionType::Pad1,
            MobilityOption::PadN(_) => OptionType::PadN,
            MobilityOption::BindingRefreshAdvice { .. } => OptionType::BindingRefreshAdvice,
            MobilityOption::AlternateCareOf(_) => OptionType::AlternateCareOf,
            MobilityOption::NonceIndices { .. } => OptionType::NonceIndices,
            MobilityOption::BindingAuthData(_) => OptionType::BindingAuthData,
            MobilityOption::MobilityMessageAuth { .. } => OptionType::MobilityMessageAuth,
            MobilityOption::ReplayProtection { .. } => OptionType::ReplayProtection,
            MobilityOption::VendorSpecific { .. } => OptionType::VendorSpecific,
            MobilityOption::BindingIdentifier { .. } => OptionType::BindingIdentifier,
            MobilityOption::Unknown { type_, .. } => OptionType::from(*type_),
        }
    }

    /// The value of the Length field: octets of data after Type and Length (0 for Pad1,
    /// which has neither).
    pub fn data_len(&self) -> usize {
        match self {
            MobilityOption::Pad1 => 0,
            MobilityOption::PadN(n) => usize::from(*n),
            MobilityOption::BindingRefreshAdvice { .. } => 2,
            MobilityOption::AlternateCareOf(_) => 16,
            MobilityOption::NonceIndices { .. } => 4,
            MobilityOption::BindingAuthData(_) => BINDING_AUTH_DATA_LEN,
            MobilityOption::MobilityMessageAuth { auth_data, .. } => 5 + auth_data.len(),
            MobilityOption::ReplayProtection { .. } => 8,
            MobilityOption::VendorSpecific { data, .. } => 5 + data.len(),
            MobilityOption::BindingIdentifier { care_of, .. } => {
                if care_of.is_some() {
                    20
                } else {
                    4
                }
            }
            MobilityOption::Unknown { data, .. } => data.len(),
        }
    }

    /// Octets the option occupies on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            MobilityOption::Pad1 => 1,
            _ => 2 + self.data_len(),
        }
    }

    /// The alignment the sender must honour (see the module table for sources).
    pub fn alignment(&self) -> Alignment {
        match self {
            MobilityOption::Pad1 | MobilityOption::PadN(_) | MobilityOption::Unknown { .. } => {
                Alignment::NONE
            }
            MobilityOption::BindingRefreshAdvice { .. } | MobilityOption::NonceIndices { .. } => {
                Alignment::new(2, 0)
            }
            MobilityOption::AlternateCareOf(_) => Alignment::new(8, 6),
            // RFC 6275 §6.2.7: "no alignment requirement as such", but it must be last and
            // the MH a multiple of 8 octets, so a 12-octet authenticator lands at 8n+2.
            MobilityOption::BindingAuthData(_) => Alignment::new(8, 2),
            MobilityOption::MobilityMessageAuth { .. } => Alignment::new(4, 1),
            MobilityOption::ReplayProtection { .. } => Alignment::new(8, 2),
            MobilityOption::VendorSpecific { .. } => Alignment::new(4, 2),
            MobilityOption::BindingIdentifier { .. } => Alignment::new(8, 2),
        }
    }

    /// True for the options that must be the last in the message with no padding after
    /// them: Binding Authorization Data (RFC 6275 §6.2.7) and Mobility Message
    /// Authentication (RFC 4285 §5.1, §5.2), whose authenticators cover everything before.
    pub fn must_be_last(&self) -> bool {
        matches!(
            self,
            MobilityOption::BindingAuthData(_) | MobilityOption::MobilityMessageAuth { .. }
        )
    }

    /// Writes the option at the start of `buf` and returns the octets written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if self.data_len() > usize::from(u8::MAX) {
            return Err(Error::Malformed(
                "mobility option longer than 255 octets of data",
            ));
        }
        if let MobilityOption::Unknown { type_, .. } = self {
            if !matches!(OptionType::from(*type_), OptionType::Unknown(_)) {
                return Err(Error::Malformed(
                    "Unknown mobility option with a known type number",
                ));
            }
        }
        let out = buf.get_mut(..len).ok_or(Error::NoRoom("mobility option"))?;
        out[0] = u8::from(self.option_type());
        if len == 1 {
            return Ok(1);
        }
        out[1] = self.data_len() as u8;
        let d = &mut out[2..];
        match self {
            MobilityOption::Pad1 => {}
            MobilityOption::PadN(_) => d.fill(0),
            MobilityOption::BindingRefreshAdvice { interval } => {
                d.copy_from_slice(&interval.to_be_bytes())
            }
            MobilityOption::AlternateCareOf(a) => d.copy_from_slice(&a.octets()),
            MobilityOption::NonceIndices { home, care_of } => {
                d[..2].copy_from_slice(&home.to_be_bytes());
                d[2..].copy_from_slice(&care_of.to_be_bytes());
            }
            MobilityOption::BindingAuthData(a) => d.copy_from_slice(&a[..]),
            MobilityOption::MobilityMessageAuth {
                subtype,
                spi,
                auth_data,
            } => {
                d[0] = u8::from(*subtype);
                d[1..5].copy_from_slice(&spi.to_be_bytes());
                d[5..].copy_from_slice(auth_data);
            }
            MobilityOption::ReplayProtection { timestamp } => {
                d.copy_from_slice(&timestamp.to_be_bytes())
            }
            MobilityOption::VendorSpecific {
                vendor_id,
                sub_type,
                data,
            } => {
                d[..4].copy_from_slice(&vendor_id.to_be_bytes());
                d[4] = *sub_type;
                d[5..].copy_from_slice(data);
            }
            MobilityOption::BindingIdentifier {
                bid,
                status,
                h,
                bid_pri,
                care_of,
            } => {
                d[..2].copy_from_slice(&bid.to_be_bytes());
                d[2] = *status;
                d[3] = (if *h { 0x80 } else { 0 }) | (bid_pri & 0x7f);
                if let Some(a) = care_of {
                    d[4..].copy_from_slice(&a.octets());
                }
            }
            MobilityOption::Unknown { data, .. } => d.copy_from_slice(data),
        }
        Ok(len)
    }
}

/// Iterator over the options of a Mobility Header message, yielding each option or the
/// first error (after which it stops). Padding options are yielded too.
#[derive(Debug, Clone)]
pub struct MobilityOptionIter<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> MobilityOptionIter<'a> {
    /// Iterates the options in `data`, which starts at MH offset `base` (used only by
    /// [`position`](Self::position)).
    pub fn new(data: &'a [u8], base: usize) -> Self {
        MobilityOptionIter {
            data,
            pos: 0,
            base,
            failed: false,
        }
    }

    /// The offset, from the start of the Mobility Header, of the option the next call to
    /// `next` returns.
    pub fn position(&self) -> usize {
        self.base + self.pos
    }
}

impl<'a> Iterator for MobilityOptionIter<'a> {
    type Item = Result<MobilityOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        match MobilityOption::parse(&self.data[self.pos..]) {
            Ok((opt, len)) => {
                self.pos += len;
                Some(Ok(opt))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Writes `n` octets of padding: Pad1 for one octet, one PadN otherwise (RFC 6275 §6.2.2,
/// §6.2.3).
pub(crate) fn write_padding(buf: &mut [u8], n: usize) -> Result<()> {
    let out = buf.get_mut(..n).ok_or(Error::NoRoom("mobility padding"))?;
    match n {
        0 => {}
        1 => out[0] = 0,
        _ => {
            out.fill(0);
            out[0] = u8::from(OptionType::PadN);
            out[1] = (n - 2) as u8;
        }
    }
    Ok(())
}

/// Lays out `options` after a fixed part that ends at MH offset `start` and returns the MH
/// length. With `out` (the whole MH buffer) it also writes them.
///
/// Each option is preceded by the padding its alignment needs. The one option that must be
/// last (BAD or Mobility Message Authentication) is put last whatever its place in `options`,
/// at the first offset that satisfies its alignment *and* makes it end on an 8-octet
/// boundary, so no padding follows it. Without such an option, padding completes the MH to a
/// multiple of 8 octets (RFC 6275 §6.1.1).
pub(crate) fn layout(
    start: usize,
    options: &[MobilityOption<'_>],
    mut out: Option<&mut [u8]>,
) -> Result<usize> {
    let mut trailing = None;
    let mut pos = start;
    for opt in options {
        if opt.must_be_last() {
            if trailing.is_some() {
                return Err(Error::Malformed(
                    "mobility options: more than one option that must be last",
                ));
            }
            trailing = Some(opt);
            continue;
        }
        let pad = opt.alignment().padding_before(pos);
        if let Some(buf) = out.as_deref_mut() {
            write_padding(
                buf.get_mut(pos..).ok_or(Error::NoRoom("Mobility Header"))?,
                pad,
            )?;
            opt.emit(
                buf.get_mut(pos + pad..)
                    .ok_or(Error::NoRoom("Mobility Header"))?,
            )?;
        }
        pos += pad + opt.buffer_len();
    }
    let end = match trailing {
        Some(opt) => {
            let align = opt.alignment();
            let size = opt.buffer_len();
            let mut at = pos + align.padding_before(pos);
            // Candidates repeat every lcm(multiple, 8) octets; eight steps cover them all.
            let mut found = None;
            for _ in 0..8 {
                if (at + size) % 8 == 0 {
                    found = Some(at);
                    break;
                }
                at += usize::from(align.multiple);
            }
            let at = found.ok_or(Error::Malformed(
                "mobility option that must be last cannot end on an 8-octet boundary",
            ))?;
            if let Some(buf) = out.as_deref_mut() {
                write_padding(
                    buf.get_mut(pos..).ok_or(Error::NoRoom("Mobility Header"))?,
                    at - pos,
                )?;
                opt.emit(buf.get_mut(at..).ok_or(Error::NoRoom("Mobility Header"))?)?;
            }
            at + size
        }
        None => {
            let end = pos.div_ceil(8) * 8;
            if let Some(buf) = out {
                write_padding(
                    buf.get_mut(pos..).ok_or(Error::NoRoom("Mobility Header"))?,
                    end - pos,
                )?;
            }
            end
        }
    };
    // At least one 8-octet unit, and Header Len is one octet (RFC 6275 §6.1.1).
    let end = end.max(8);
    if end > super::MAX_LEN {
        return Err(Error::Malformed("Mobility Header longer than 2048 octets"));
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(opt: MobilityOption<'_>, wire: &[u8]) {
        let mut buf = [0xeeu8; 64];
        let n = opt.emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], wire, "emit {opt:?}");
        assert_eq!(n, opt.buffer_len());
        let (parsed, used) = MobilityOption::parse(wire).unwrap();
        assert_eq!(parsed, opt);
        assert_eq!(used, wire.len());
    }

    #[test]
    fn every_option_round_trips() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let auth = [7u8; 12];
        round_trip(MobilityOption::Pad1, &[0]);
        round_trip(MobilityOption::PadN(0), &[1, 0]);
        round_trip(MobilityOption::PadN(3), &[1, 3, 0, 0, 0]);
        round_trip(
            MobilityOption::BindingRefreshAdvice { interval: 0x1234 },
            &[2, 2, 0x12, 0x34],
        );
        let mut altcoa = vec![3, 16];
        altcoa.extend_from_slice(&a.octets());
        round_trip(MobilityOption::AlternateCareOf(a), &altcoa);
        round_trip(
            MobilityOption::NonceIndices {
                home: 10,
                care_of: 20,
            },
            &[4, 4, 0, 10, 0, 20],
        );
        let mut bad = vec![5, 12];
        bad.extend_from_slice(&auth);
        round_trip(MobilityOption::BindingAuthData(&auth), &bad);
        let mut mauth = vec![9, 17, 1, 0x12, 0x34, 0x56, 0x78];
        mauth.extend_from_slice(&auth);
        round_trip(
            MobilityOption::MobilityMessageAuth {
                subtype: AuthSubtype::MnHa,
                spi: 0x1234_5678,
                auth_data: &auth,
            },
            &mauth,
        );
        round_trip(
            MobilityOption::ReplayProtection {
                timestamp: 0x0102_0304_0506_0708,
            },
            &[10, 8, 1, 2, 3, 4, 5, 6, 7, 8],
        );
        round_trip(
            MobilityOption::VendorSpecific {
                vendor_id: 10415,
                sub_type: 7,
                data: &[0xaa, 0xbb],
            },
            &[19, 7, 0, 0, 0x28, 0xaf, 7, 0xaa, 0xbb],
        );
        round_trip(
            MobilityOption::BindingIdentifier {
                bid: 3,
                status: 0,
                h: true,
                bid_pri: 5,
                care_of: None,
            },
            &[35, 4, 0, 3, 0, 0x85],
        );
        let mut bid6 = vec![35, 20, 0, 9, 128, 0];
        bid6.extend_from_slice(&a.octets());
        round_trip(
            MobilityOption::BindingIdentifier {
                bid: 9,
                status: 128,
                h: false,
                bid_pri: 0,
                care_of: Some(a),
            },
            &bid6,
        );
        round_trip(
            MobilityOption::Unknown {
                type_: 200,
                data: &[1, 2, 3],
            },
            &[200, 3, 1, 2, 3],
        );
    }

    #[test]
    fn known_options_with_wrong_length_are_malformed() {
        let cases: &[&[u8]] = &[
            &[2, 3, 0, 0, 0],
            &[3, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[4, 2, 0, 0],
            &[5, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[9, 4, 1, 0, 0, 0],
            &[10, 4, 0, 0, 0, 0],
            &[19, 4, 0, 0, 0, 0],
            &[35, 6, 0, 0, 0, 0, 0, 0],
        ];
        for c in cases {
            assert!(
                matches!(MobilityOption::parse(c), Err(Error::Malformed(_))),
                "{c:?}"
            );
        }
        let bid4 = [35u8, 8, 0, 1, 0, 0, 192, 0, 2, 1];
        assert!(matches!(
            MobilityOption::parse(&bid4),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn truncated_options() {
        for c in [&[][..], &[1][..], &[4, 4, 0, 10, 0][..], &[200, 1][..]] {
            assert!(matches!(MobilityOption::parse(c), Err(Error::Truncated(_))));
        }
    }

    #[test]
    fn iterator_stops_after_error_and_reports_positions() {
        let data = [0u8, 1, 0, 4, 4, 0, 1, 0, 2, 4, 9];
        let mut it = MobilityOptionIter::new(&data, 12);
        assert_eq!(it.position(), 12);
        assert_eq!(it.next(), Some(Ok(MobilityOption::Pad1)));
        assert_eq!(it.position(), 13);
        assert_eq!(it.next(), Some(Ok(MobilityOption::PadN(0))));
        assert_eq!(
            it.next(),
            Some(Ok(MobilityOption::NonceIndices {
                home: 1,
                care_of: 2
            }))
        );
        assert!(matches!(it.next(), Some(Err(Error::Truncated(_)))));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn alignment_padding() {
        let a = Alignment::new(8, 6);
        assert_eq!(a.padding_before(12), 2);
        assert_eq!(a.padding_before(14), 0);
        assert_eq!(a.padding_before(15), 7);
        assert!(a.is_aligned(22));
        assert_eq!(Alignment::new(4, 1).padding_before(12), 1);
        assert_eq!(Alignment::NONE.padding_before(13), 0);
    }

    #[test]
    fn layout_rejects_two_trailing_options_and_unalignable_auth() {
        let auth = [0u8; 12];
        let two = [
            MobilityOption::BindingAuthData(&auth),
            MobilityOption::BindingAuthData(&auth),
        ];
        assert!(matches!(layout(12, &two, None), Err(Error::Malformed(_))));
        // 7 + 3 octets: a 4n+1 start can never end on a multiple of 8.
        let odd = [MobilityOption::MobilityMessageAuth {
            subtype: AuthSubtype::MnHa,
            spi: 256,
            auth_data: &[1, 2, 3],
        }];
        assert!(matches!(layout(12, &odd, None), Err(Error::Malformed(_))));
    }

    #[test]
    fn layout_places_trailing_option_last_and_aligns_the_rest() {
        let auth = [0u8; 12];
        let opts = [
            MobilityOption::BindingAuthData(&auth),
            MobilityOption::ReplayProtection { timestamp: 1 },
        ];
        let mut buf = [0xeeu8; 64];
        let len = layout(12, &opts, Some(&mut buf)).unwrap();
        // Replay Protection at 8n+2 = 18 after PadN(6); BAD at 34 ends at 48.
        assert_eq!(len, 48);
        assert_eq!(&buf[12..18], &[1, 4, 0, 0, 0, 0]);
        assert_eq!(buf[18], 10);
        assert_eq!(&buf[28..34], &[1, 4, 0, 0, 0, 0]);
        assert_eq!(&buf[34..36], &[5, 12]);
    }

    proptest! {
        #[test]
        fn arbitrary_option_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            for opt in MobilityOptionIter::new(&data, 0).flatten() {
                let mut buf = [0u8; 300];
                let n = opt.emit(&mut buf).unwrap();
                prop_assert_eq!(MobilityOption::parse(&buf[..n]).unwrap().0, opt);
            }
        }
    }
}
