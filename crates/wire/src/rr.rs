//! Return-routability cryptography (RFC 6275 §5.2): keygen tokens, the binding management
//! key Kbm and the Binding Authorization Data authenticator.
//!
//! `|` is concatenation, addresses are their 16 raw octets:
//!
//! * home keygen token = First(64, HMAC_SHA1(Kcn, home address | nonce | 0)) (§5.2.5)
//! * care-of keygen token = First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1)) (§5.2.5)
//! * Kbm = SHA1(home keygen token | care-of keygen token), or SHA1(home keygen token) when
//!   deleting a binding or returning home, where no care-of token exists (§5.2.5)
//! * Authenticator = First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH Data))
//!   where MH Data is the Mobility Header with the Checksum field zero, up to but excluding
//!   the authenticator itself (§5.2.6, §6.2.7)
//!
//! Which addresses to pass (§5.2.6, §6.2.7): the care-of address is the Alternate Care-of
//! Address when that option is present, otherwise the source of the BU (for a BU sent from
//! home without a Home Address option, the home address); the correspondent is the CN's own
//! address. The same formula protects a Binding Acknowledgement from a CN.

use std::net::Ipv6Addr;

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

use crate::mobility::{MhPacket, MobilityOption, CHECKSUM_OFFSET};
use crate::{Error, Result};

/// Length of Kcn, the correspondent node's secret (§5.2.1).
pub const KCN_LEN: usize = 20;
/// Recommended nonce length (§5.2.2: 64 bits).
pub const NONCE_LEN: usize = 8;
/// Length of a keygen token (§5.2.5: First(64, ...)).
pub const TOKEN_LEN: usize = 8;
/// Length of Kbm (SHA-1 output).
pub const KBM_LEN: usize = 20;
/// Length of the Binding Authorization Data authenticator (§5.2.6: First(96, ...)).
pub const AUTHENTICATOR_LEN: usize = 12;

pub(crate) type HmacSha1 = Hmac<Sha1>;

/// An HMAC-SHA1 instance keyed with `key`.
pub(crate) fn hmac_sha1(key: &[u8]) -> HmacSha1 {
    // HMAC hashes long keys and pads short ones (RFC 2104 §2), so every key length is
    // valid; the error case of this constructor cannot happen.
    <HmacSha1 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Feeds `mh[..end]` to `mac` with the Checksum field (MH octets 4 and 5) taken as zero, as
/// both RFC 6275 §6.2.7 and RFC 4285 §5.1 require. `end` must be at least 6.
pub(crate) fn update_with_mh(mac: &mut HmacSha1, mh: &[u8], end: usize) {
    mac.update(&mh[..CHECKSUM_OFFSET]);
    mac.update(&[0, 0]);
    mac.update(&mh[CHECKSUM_OFFSET + 2..end]);
}

fn keygen_token(kcn: &[u8; KCN_LEN], address: &Ipv6Addr, nonce: &[u8], which: u8) -> [u8; 8] {
    let mut mac = hmac_sha1(kcn);
    mac.update(&address.octets());
    mac.update(nonce);
    mac.update(&[which]);
    let full = mac.finalize().into_bytes();
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(&full[..TOKEN_LEN]);
    token
}

/// Home keygen token = First(64, HMAC_SHA1(Kcn, home address | nonce | 0)) (§5.2.5).
pub fn home_keygen_token(kcn: &[u8; KCN_LEN], home: &Ipv6Addr, nonce: &[u8]) -> [u8; TOKEN_LEN] {
    keygen_token(kcn, home, nonce, 0)
}

/// Care-of keygen token = First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1)) (§5.2.5).
pub fn care_of_keygen_token(
    kcn: &[u8; KCN_LEN],
    care_of: &Ipv6Addr,
    nonce: &[u8],
) -> [u8; TOKEN_LEN] {
    keygen_token(kcn, care_of, nonce, 1)
}

/// Kbm = SHA1(home keygen token | care-of keygen token) (§5.2.5).
pub fn kbm(home_token: &[u8; TOKEN_LEN], care_of_token: &[u8; TOKEN_LEN]) -> [u8; KBM_LEN] {
    let mut h = Sha1::new();
    h.update(home_token);
    h.update(care_of_token);
    h.finalize().into()
}

/// Kbm = SHA1(home keygen token), for a BU that deletes the binding (lifetime 0) or returns
/// home (care-of address equals home address); the care-of nonce index is then ignored
/// (§5.2.5, §9.5.1).
pub fn kbm_home_only(home_token: &[u8; TOKEN_LEN]) -> [u8; KBM_LEN] {
    Sha1::digest(home_token).into()
}

/// Authenticator = First(96, HMAC_SHA1(Kbm, care-of | correspondent | MH Data)) (§5.2.6).
/// `mh_data` must already be the MH with its Checksum field zero, up to but excluding the 12
/// authenticator octets; [`compute_authenticator`] extracts it from a whole MH.
pub fn authenticator(
    kbm: &[u8; KBM_LEN],
    care_of: &Ipv6Addr,
    correspondent: &Ipv6Addr,
    mh_data: &[u8],
) -> [u8; AUTHENTICATOR_LEN] {
    let mut mac = hmac_sha1(kbm);
    mac.update(&care_of.octets());
    mac.update(&correspondent.octets());
    mac.update(mh_data);
    first96(mac)
}

fn first96(mac: HmacSha1) -> [u8; AUTHENTICATOR_LEN] {
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; AUTHENTICATOR_LEN];
    out.copy_from_slice(&full[..AUTHENTICATOR_LEN]);
    out
}

/// MH offset of the authenticator in `mh`: the Binding Authorization Data option must be the
/// last option and end the MH (§6.2.7).
fn authenticator_offset(mh: &[u8]) -> Result<(usize, usize)> {
    let packet = MhPacket::new_checked(mh)?;
    match packet.last_option()? {
        Some((at, MobilityOption::BindingAuthData(_)))
            if at + 2 + AUTHENTICATOR_LEN == packet.total_len() =>
        {
            Ok((at + 2, packet.total_len()))
        }
        _ => Err(Error::Malformed(
            "Binding Authorization Data is not the last option of the Mobility Header",
        )),
    }
}

fn mac_over_mh(
    kbm: &[u8; KBM_LEN],
    care_of: &Ipv6Addr,
    correspondent: &Ipv6Addr,
    mh: &[u8],
    auth_at: usize,
) -> HmacSha1 {
    let mut mac = hmac_sha1(kbm);
    mac.update(&care_of.octets());
    mac.update(&correspondent.octets());
    update_with_mh(&mut mac, mh, auth_at);
    mac
}

/// The authenticator for the MH `mh` (a buffer starting with the MH; it may be longer),
/// whose last option must be Binding Authorization Data. The Checksum field and the
/// current authenticator octets do not matter.
pub fn compute_authenticator(
    kbm: &[u8; KBM_LEN],
    care_of: &Ipv6Addr,
    correspondent: &Ipv6Addr,
    mh: &[u8],
) -> Result<[u8; AUTHENTICATOR_LEN]> {
    let (auth_at, _) = authenticator_offset(mh)?;
    Ok(first96(mac_over_mh(
        kbm,
        care_of,
        correspondent,
        mh,
        auth_at,
    )))
}

/// Computes the authenticator of an emitted MH and writes it into its Binding Authorization
/// Data option. Fill the checksum afterwards, or use
/// [`insert_authenticator_and_fill_checksum`].
pub fn insert_authenticator(
    kbm: &[u8; KBM_LEN],
    care_of: &Ipv6Addr,
    correspondent: &Ipv6Addr,
    mh: &mut [u8],
) -> Result<()> {
    let (auth_at, end) = authenticator_offset(mh)?;
    let auth = first96(mac_over_mh(kbm, care_of, correspondent, mh, auth_at));
    mh[auth_at..end].copy_from_slice(&auth);
    Ok(())
}

/// [`insert_authenticator`], then the checksum with the pseudo-header addresses of
/// [`crate::mobility::mh_checksum`] (HAO home address as source, RH2 home address as
/// destination, when present).
pub fn insert_authenticator_and_fill_checksum(
    kbm: &[u8; KBM_LEN],
    care_of: &Ipv6Addr,
    correspondent: &Ipv6Addr,
    mh: &mut [u8],
    pseudo_src: &Ipv6Addr,
    pseudo_dst: &Ipv6Addr,
) -> Result<()> {
    insert_authenticator(kbm, care_of, correspondent, mh)?;
    let mut packet = MhPacket::new_checked(mh)?;
    packet.fill_checksum(pseudo_src, pseudo_dst);
    Ok(())
}

/// True when the authenticator in the MH's Binding Authorization Data option is right,
/// compared in constant time. An MH whose last option is not BAD is an error.
pub fn verify_authenticator(
    kbm: &[u8; KBM_LEN],
    care_of: &Ipv6Addr,
    correspondent: &Ipv6Addr,
    mh: &[u8],
) -> Result<bool> {
    let (auth_at, end) = authenticator_offset(mh)?;
    let mac = mac_over_mh(kbm, care_of, correspondent, mh, auth_at);
    Ok(mac.verify_truncated_left(&mh[auth_at..end]).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // PROTOCOL.md §1.6 inputs (TAHI MN_mh.def); outputs from Python hmac/hashlib.
    const KCN: [u8; 20] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff, 0x00, 0x11, 0x22, 0x33,
    ];
    const NONCE: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];

    #[test]
    fn keygen_tokens_and_kbm() {
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let coa: Ipv6Addr = "2001:db8:2::10".parse().unwrap();
        let ht = home_keygen_token(&KCN, &hoa, &NONCE);
        let ct = care_of_keygen_token(&KCN, &coa, &NONCE);
        assert_eq!(ht, [0x9b, 0x35, 0x68, 0x58, 0x2d, 0x56, 0xe3, 0x9d]);
        assert_eq!(ct, [0x27, 0x53, 0x4c, 0xa0, 0xe0, 0x13, 0x26, 0x3e]);
        assert_eq!(
            kbm(&ht, &ct),
            [
                0x47, 0x34, 0x02, 0x3e, 0x35, 0xa6, 0x84, 0x18, 0xd8, 0xc2, 0x17, 0xd7, 0xc1, 0xf5,
                0x43, 0xba, 0xd0, 0xdf, 0x26, 0x29
            ]
        );
        assert_eq!(
            kbm_home_only(&ht),
            [
                0xa2, 0x96, 0x1e, 0xbb, 0x9c, 0x62, 0x04, 0xe1, 0x30, 0x66, 0x45, 0x96, 0x92, 0x51,
                0xbd, 0x79, 0xd1, 0xd4, 0xd4, 0x59
            ]
        );
        // The trailing octet separates the two tokens even for the same address.
        assert_ne!(
            home_keygen_token(&KCN, &hoa, &NONCE),
            care_of_keygen_token(&KCN, &hoa, &NONCE)
        );
    }

    #[test]
    fn authenticator_requires_bad_last() {
        // A BA with no options ends in PadN.
        let ba = [0x3b, 1, 6, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 0, 0];
        let a: Ipv6Addr = "::1".parse().unwrap();
        let key = [0u8; 20];
        assert!(matches!(
            compute_authenticator(&key, &a, &a, &ba),
            Err(Error::Malformed(_))
        ));
        assert!(verify_authenticator(&key, &a, &a, &ba).is_err());
        assert!(compute_authenticator(&key, &a, &a, &ba[..7]).is_err());
    }
}
