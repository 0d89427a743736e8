//! Authentication Protocol for Mobile IPv6 (RFC 4285): the MN-HA Mobility Message
//! Authentication option and the replay-protection timestamp.
//!
//! RFC 4285 §5.1 (MN-HA, subtype 1):
//!
//! * Authentication Data = First(96, HMAC_SHA1(MN-HA shared key, Mobility Data))
//! * Mobility Data = care-of address | home address | MH Data
//! * MH Data is the content of the Mobility Header up to and including the Mobility SPI field
//!   of this option, with the Checksum field set to zero.
//! * The option must be the last option of the message (when it is the only authentication
//!   option), so the MH ends with its Authentication Data. The Checksum is computed after,
//!   over the whole MH.
//!
//! The care-of and home addresses are the mobile node's, whichever way the message goes: for
//! a BU the care-of address is the packet's source (or Alternate Care-of Address) and the
//! home address the one in the Home Address option; for a BA they are the addresses of the
//! BU it answers. The shared-key security association also fixes the SPI (values 0–255 are
//! reserved) and the key, 16 octets in RFC 4285 §5.1 (any length is accepted here).
//!
//! The MN-AAA subtype (2) authenticates with a different construction (RFC 4285 §5.2) and is
//! reported as [`Error::Unsupported`].

use std::net::Ipv6Addr;
use std::time::Duration;

use hmac::Mac;

use crate::mobility::{AuthSubtype, MhPacket, MobilityOption};
use crate::rr::{hmac_sha1, update_with_mh, HmacSha1};
use crate::{Error, Result};

/// Length of the MN-HA Authentication Data (First(96, ...)).
pub const MN_HA_AUTH_DATA_LEN: usize = 12;
/// Octets of the option before the Authentication Data: Type, Length, Subtype, SPI.
const AUTH_OPTION_HEADER_LEN: usize = 7;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;
/// The "close enough" default of RFC 4285 §5.1 for timestamp replay protection (it SHOULD be
/// more than 3 seconds).
pub const DEFAULT_CLOSE_ENOUGH: Duration = Duration::from_secs(7);

/// MN-HA Authentication Data = First(96, HMAC_SHA1(key, care-of | home | MH Data)).
/// `mh_data` must already be the MH up to and including the Mobility SPI, with the Checksum
/// field zero; [`compute_mn_ha`] extracts it from a whole MH.
pub fn mn_ha_authenticator(
    key: &[u8],
    care_of: &Ipv6Addr,
    home: &Ipv6Addr,
    mh_data: &[u8],
) -> [u8; MN_HA_AUTH_DATA_LEN] {
    let mut mac = hmac_sha1(key);
    mac.update(&care_of.octets());
    mac.update(&home.octets());
    mac.update(mh_data);
    first96(mac)
}

fn first96(mac: HmacSha1) -> [u8; MN_HA_AUTH_DATA_LEN] {
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; MN_HA_AUTH_DATA_LEN];
    out.copy_from_slice(&full[..MN_HA_AUTH_DATA_LEN]);
    out
}

/// Locates the MN-HA option, which must be the last option and end the MH, and returns
/// (offset just past the SPI, end of the MH).
fn mn_ha_offsets(mh: &[u8]) -> Result<(usize, usize)> {
    let packet = MhPacket::new_checked(mh)?;
    match packet.last_option()? {
        Some((
            at,
            MobilityOption::MobilityMessageAuth {
                subtype, auth_data, ..
            },
        )) if at + AUTH_OPTION_HEADER_LEN + auth_data.len() == packet.total_len() => {
            match subtype {
                AuthSubtype::MnHa => {}
                AuthSubtype::MnAaa => {
                    return Err(Error::Unsupported("MN-AAA mobility message authentication"))
                }
                AuthSubtype::Unknown(_) => {
                    return Err(Error::Unsupported(
                        "mobility message authentication subtype",
                    ))
                }
            }
            if auth_data.len() != MN_HA_AUTH_DATA_LEN {
                return Err(Error::Malformed("MN-HA Authentication Data length"));
            }
            Ok((at + AUTH_OPTION_HEADER_LEN, packet.total_len()))
        }
        _ => Err(Error::Malformed(
            "Mobility Message Authentication is not the last option of the Mobility Header",
        )),
    }
}

fn mac_over_mh(
    key: &[u8],
    care_of: &Ipv6Addr,
    home: &Ipv6Addr,
    mh: &[u8],
    spi_end: usize,
) -> HmacSha1 {
    let mut mac = hmac_sha1(key);
    mac.update(&care_of.octets());
    mac.update(&home.octets());
    update_with_mh(&mut mac, mh, spi_end);
    mac
}

/// The MN-HA Authentication Data for the MH `mh` (a buffer starting with the MH), whose last
/// option must be an MN-HA Mobility Message Authentication option with 12 octets of data.
pub fn compute_mn_ha(
    key: &[u8],
    care_of: &Ipv6Addr,
    home: &Ipv6Addr,
    mh: &[u8],
) -> Result<[u8; MN_HA_AUTH_DATA_LEN]> {
    let (spi_end, _) = mn_ha_offsets(mh)?;
    Ok(first96(mac_over_mh(key, care_of, home, mh, spi_end)))
}

/// Computes the MN-HA Authentication Data of an emitted MH and writes it into the option.
/// Fill the checksum afterwards, or use [`insert_mn_ha_and_fill_checksum`].
pub fn insert_mn_ha(key: &[u8], care_of: &Ipv6Addr, home: &Ipv6Addr, mh: &mut [u8]) -> Result<()> {
    let (spi_end, end) = mn_ha_offsets(mh)?;
    let auth = first96(mac_over_mh(key, care_of, home, mh, spi_end));
    mh[spi_end..end].copy_from_slice(&auth);
    Ok(())
}

/// [`insert_mn_ha`], then the checksum with the pseudo-header addresses of
/// [`crate::mobility::mh_checksum`] (HAO home address as source, RH2 home address as
/// destination, when present).
pub fn insert_mn_ha_and_fill_checksum(
    key: &[u8],
    care_of: &Ipv6Addr,
    home: &Ipv6Addr,
    mh: &mut [u8],
    pseudo_src: &Ipv6Addr,
    pseudo_dst: &Ipv6Addr,
) -> Result<()> {
    insert_mn_ha(key, care_of, home, mh)?;
    let mut packet = MhPacket::new_checked(mh)?;
    packet.fill_checksum(pseudo_src, pseudo_dst);
    Ok(())
}

/// True when the MN-HA Authentication Data of the MH is right, compared in constant time.
/// An MH that does not end with an MN-HA option is an error.
pub fn verify_mn_ha(key: &[u8], care_of: &Ipv6Addr, home: &Ipv6Addr, mh: &[u8]) -> Result<bool> {
    let (spi_end, end) = mn_ha_offsets(mh)?;
    let mac = mac_over_mh(key, care_of, home, mh, spi_end);
    Ok(mac.verify_truncated_left(&mh[spi_end..end]).is_ok())
}

/// A 64-bit NTP-format timestamp (RFC 4285 §6, RFC 5905 §6): seconds since 1900 in the high
/// 32 bits, the binary fraction of a second in the low 32. Seconds wrap modulo 2^32 (NTP
/// era 1 starts in 2036).
pub fn ntp_timestamp(unix_secs: u64, fraction: u32) -> u64 {
    let secs = unix_secs.wrapping_add(NTP_UNIX_OFFSET_SECS) as u32;
    (u64::from(secs) << 32) | u64::from(fraction)
}

/// The NTP timestamp of a time given as a duration since the Unix epoch (nanoseconds are
/// rounded down to the 2^-32 s fraction).
pub fn ntp_from_unix(since_epoch: Duration) -> u64 {
    let fraction = ((u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    ntp_timestamp(since_epoch.as_secs(), fraction)
}

/// The time since the Unix epoch of an NTP timestamp. Seconds values below the Unix epoch
/// are read as NTP era 1 (2036 to 2106), so the result covers 1970–2106.
pub fn ntp_to_unix(timestamp: u64) -> Duration {
    let secs = timestamp >> 32;
    let unix = if secs >= NTP_UNIX_OFFSET_SECS {
        secs - NTP_UNIX_OFFSET_SECS
    } else {
        secs + (1 << 32) - NTP_UNIX_OFFSET_SECS
    };
    let nanos = ((timestamp & 0xffff_ffff) * 1_000_000_000) >> 32;
    Duration::new(unix, nanos as u32)
}

/// True when a received replay-protection timestamp is within `window` of the receiver's
/// `now` (both NTP format), in either direction: RFC 4285 §5.1's "close enough" check
/// ([`DEFAULT_CLOSE_ENOUGH`] is the RFC default). The difference is taken modulo 2^64 so the
/// NTP era boundary does not matter. Rejecting timestamps already seen is the caller's job.
pub fn timestamp_acceptable(received: u64, now: u64, window: Duration) -> bool {
    let diff = received.wrapping_sub(now) as i64;
    let window_ntp = (u128::from(window.as_secs()) << 32)
        + ((u128::from(window.subsec_nanos()) << 32) / 1_000_000_000);
    u128::from(diff.unsigned_abs()) <= window_ntp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobility::{BindingUpdate, MhMessage, MhOptions, MhPacket, MhRepr, MobilityOption};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// An MN-HA vector computed independently with Python's standard library (MH Data is the
    /// MH up to and including the SPI, checksum zero; it prints 282de27744cb773c41240f3c):
    ///
    /// ```text
    /// python3 -c 'import hmac,hashlib,ipaddress as i; a=lambda s:i.IPv6Address(s).packed; \
    ///   mh=bytes.fromhex("3b05050000000007c00003e80104000000000a08e8fe6f80800000000009110100001001"); \
    ///   print(hmac.new(bytes(range(1,17)), a("2001:db8:2::10")+a("2001:db8:1::100")+mh, hashlib.sha1).digest()[:12].hex())'
    /// ```
    ///
    /// Key 01..10, CoA 2001:db8:2::10, HoA 2001:db8:1::100; BU seq 7, A|H, lifetime 1000,
    /// Replay Protection (Unix 1700000000.5 s), MN-HA with SPI 0x1001. The checksum 0x833a
    /// uses pseudo-source HoA (Home Address option) and destination HA 2001:db8:1::1.
    #[test]
    fn mn_ha_vector_from_python() {
        let key: Vec<u8> = (1..=16).collect();
        let coa: Ipv6Addr = "2001:db8:2::10".parse().unwrap();
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let ha: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let expected = hex("3b050500833a0007c00003e80104000000000a08e8fe6f8080000000
             0009110100001001282de27744cb773c41240f3c");
        let ts = ntp_timestamp(1_700_000_000, 0x8000_0000);
        assert_eq!(ts, 0xe8fe_6f80_8000_0000);
        let placeholder = [0u8; MN_HA_AUTH_DATA_LEN];
        let opts = [
            MobilityOption::MobilityMessageAuth {
                subtype: AuthSubtype::MnHa,
                spi: 0x1001,
                auth_data: &placeholder,
            },
            MobilityOption::ReplayProtection { timestamp: ts },
        ];
        let repr = MhRepr {
            message: MhMessage::BindingUpdate(BindingUpdate {
                sequence: 7,
                ack: true,
                home_registration: true,
                lifetime: 1000,
                ..Default::default()
            }),
            options: MhOptions::List(&opts),
        };
        let len = repr.buffer_len().unwrap();
        assert_eq!(len, 48);
        let mut buf = vec![0u8; len];
        repr.emit(&mut MhPacket::new_unchecked(&mut buf)).unwrap();
        insert_mn_ha_and_fill_checksum(&key, &coa, &hoa, &mut buf, &hoa, &ha).unwrap();
        assert_eq!(buf, expected);
        assert_eq!(
            compute_mn_ha(&key, &coa, &hoa, &expected).unwrap()[..],
            expected[36..]
        );
        assert_eq!(
            mn_ha_authenticator(&key, &coa, &hoa, &{
                let mut d = expected[..36].to_vec();
                d[4] = 0;
                d[5] = 0;
                d
            })[..],
            expected[36..]
        );
        assert!(verify_mn_ha(&key, &coa, &hoa, &expected).unwrap());
        assert!(MhPacket::new_checked(&expected[..])
            .unwrap()
            .verify_checksum(&hoa, &ha));
        let mut tampered = expected.clone();
        tampered[11] ^= 1; // lifetime
        assert!(!verify_mn_ha(&key, &coa, &hoa, &tampered).unwrap());
        assert!(!verify_mn_ha(&key[1..], &coa, &hoa, &expected).unwrap());
        assert!(!verify_mn_ha(&key, &hoa, &coa, &expected).unwrap());
        // The checksum field does not enter the authenticator.
        let mut other_checksum = expected.clone();
        other_checksum[4] ^= 0xff;
        assert!(verify_mn_ha(&key, &coa, &hoa, &other_checksum).unwrap());

        let parsed = MhRepr::parse(&MhPacket::new_checked(&expected[..]).unwrap()).unwrap();
        let items: Vec<_> = parsed.options.iter().map(|o| o.unwrap()).collect();
        assert_eq!(
            items,
            [
                MobilityOption::PadN(4),
                MobilityOption::ReplayProtection { timestamp: ts },
                MobilityOption::Pad1,
                MobilityOption::MobilityMessageAuth {
                    subtype: AuthSubtype::MnHa,
                    spi: 0x1001,
                    auth_data: &expected[36..],
                },
            ]
        );
    }

    #[test]
    fn mn_ha_must_be_last_and_mn_ha() {
        let key = [1u8; 16];
        let a: Ipv6Addr = "::1".parse().unwrap();
        let aaa = [0u8; 12];
        let opts = [MobilityOption::MobilityMessageAuth {
            subtype: AuthSubtype::MnAaa,
            spi: 300,
            auth_data: &aaa,
        }];
        let repr = MhRepr {
            message: MhMessage::BindingUpdate(BindingUpdate::default()),
            options: MhOptions::List(&opts),
        };
        let mut buf = vec![0u8; repr.buffer_len().unwrap()];
        repr.emit(&mut MhPacket::new_unchecked(&mut buf)).unwrap();
        assert!(matches!(
            insert_mn_ha(&key, &a, &a, &mut buf),
            Err(Error::Unsupported(_))
        ));
        let plain = MhRepr {
            message: MhMessage::BindingUpdate(BindingUpdate::default()),
            options: MhOptions::NONE,
        };
        let mut buf = vec![0u8; plain.buffer_len().unwrap()];
        plain.emit(&mut MhPacket::new_unchecked(&mut buf)).unwrap();
        assert!(matches!(
            verify_mn_ha(&key, &a, &a, &buf),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn ntp_conversions() {
        assert_eq!(ntp_timestamp(0, 0), NTP_UNIX_OFFSET_SECS << 32);
        let d = Duration::new(1_700_000_000, 500_000_000);
        assert_eq!(ntp_from_unix(d), 0xe8fe_6f80_8000_0000);
        assert_eq!(ntp_to_unix(0xe8fe_6f80_8000_0000), d);
        // 2040 lies in NTP era 1: the seconds field wraps and reads back correctly.
        let y2040 = Duration::from_secs(2_208_988_800);
        assert_eq!(
            ntp_from_unix(y2040) >> 32,
            2_208_988_800 + NTP_UNIX_OFFSET_SECS - (1 << 32)
        );
        assert_eq!(ntp_to_unix(ntp_from_unix(y2040)), y2040);
        let precise = Duration::new(1_000_000_000, 123_456_789);
        let back = ntp_to_unix(ntp_from_unix(precise));
        assert!(precise - back < Duration::from_nanos(2));
    }

    #[test]
    fn timestamp_window() {
        let now = ntp_timestamp(1_700_000_000, 0);
        let w = DEFAULT_CLOSE_ENOUGH;
        assert!(timestamp_acceptable(now, now, w));
        assert!(timestamp_acceptable(
            ntp_timestamp(1_700_000_007, 0),
            now,
            w
        ));
        assert!(timestamp_acceptable(
            ntp_timestamp(1_699_999_993, 0),
            now,
            w
        ));
        assert!(!timestamp_acceptable(
            ntp_timestamp(1_700_000_007, 1),
            now,
            w
        ));
        assert!(!timestamp_acceptable(
            ntp_timestamp(1_699_999_992, u32::MAX),
            now,
            w
        ));
        assert!(!timestamp_acceptable(0, now, w));
        // Across the NTP era boundary (Feb 2036).
        let before = ntp_timestamp(2_085_978_495, 0);
        let after = ntp_timestamp(2_085_978_497, 0);
        assert!(after < before, "the seconds field wrapped");
        assert!(timestamp_acceptable(after, before, Duration::from_secs(3)));
        assert!(timestamp_acceptable(
            ntp_from_unix(Duration::from_millis(1_700_000_000_250)),
            now,
            Duration::from_millis(250)
        ));
    }
}
