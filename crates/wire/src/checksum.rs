//! The Internet checksum (RFC 1071) and the IPv6 pseudo-header (RFC 8200 §8.1).
//!
//! ICMPv6, UDP, TCP and the Mobility Header all use the same rule: the one's complement of
//! the one's-complement sum of the pseudo-header followed by the upper-layer message. The
//! Mobility Header differs only in which addresses go into the pseudo-header (the home
//! address from a Home Address option as source, the final destination of a Type 2 routing
//! header as destination; RFC 6275 §6.1.1); callers pass those addresses in.

use std::net::Ipv6Addr;

/// IANA protocol numbers used in pseudo-headers and Next Header fields.
pub mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
}

/// Adds `data` to a running one's-complement sum, as big-endian 16-bit words. An odd final
/// byte is padded with zero on the right, so `data` must be the last piece or of even length.
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four 16-bit words per step; a u64 accumulator cannot overflow for any packet size.
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits (without complementing).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The one's-complement sum of the IPv6 pseudo-header for an upper-layer message of
/// `length` bytes with protocol `next_header`.
pub fn pseudo_header(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u64 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc += u64::from(length >> 16) + u64::from(length & 0xffff);
    acc + u64::from(next_header)
}

/// The checksum to store in an upper-layer header: `message` is the whole upper-layer
/// message with its checksum field set to zero.
pub fn upper_layer(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, message: &[u8]) -> u16 {
    let acc = pseudo_header(src, dst, next_header, message.len() as u32);
    !fold(sum(acc, message))
}

/// True when `message` (with its checksum field as received) verifies. An all-zero result of
/// the fold means the stored checksum was right.
pub fn verify_upper_layer(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, message: &[u8]) -> bool {
    let acc = pseudo_header(src, dst, next_header, message.len() as u32);
    fold(sum(acc, message)) == 0xffff
}

/// Incremental update of a stored checksum when one 16-bit word changes from `old` to `new`
/// (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
pub fn update_word(check: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!check) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// Incremental update of a stored checksum when the bytes `old` are replaced by `new` (same
/// even length, 16-bit aligned within the summed data), e.g. an address rewrite.
pub fn update_bytes(check: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let mut acc = u64::from(!check);
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        let o = u16::from_be_bytes([o[0], *o.get(1).unwrap_or(&0)]);
        let n = u16::from_be_bytes([n[0], *n.get(1).unwrap_or(&0)]);
        acc += u64::from(!o) + u64::from(n);
    }
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (after folding).
        assert_eq!(
            fold(sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7])),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn icmpv6_echo_request_known_checksum() {
        // Echo Request ::1 -> ::1, id 0x1234, seq 1, no data. By hand: pseudo-header
        // 0x0001 + 0x0001 + 8 + 58 = 0x0044; message 0x8000 + 0x1234 + 0x0001 = 0x9235;
        // sum 0x9279, complement 0x6d86.
        let src: Ipv6Addr = "::1".parse().unwrap();
        let msg = [0x80, 0, 0, 0, 0x12, 0x34, 0x00, 0x01];
        let c = upper_layer(&src, &src, proto::ICMPV6, &msg);
        let mut with = msg;
        with[2..4].copy_from_slice(&c.to_be_bytes());
        assert!(verify_upper_layer(&src, &src, proto::ICMPV6, &with));
        assert_eq!(c, 0x6d86);
    }

    proptest! {
        #[test]
        fn sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut naive: u32 = 0;
            for p in data.chunks(2) {
                naive += u32::from(u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]));
            }
            while naive > 0xffff { naive = (naive & 0xffff) + (naive >> 16); }
            prop_assert_eq!(u32::from(fold(sum(0, &data))), naive);
        }

        #[test]
        fn incremental_matches_full(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            at in any::<usize>(), word in any::<u16>())
        {
            if data.len() % 2 == 1 { data.push(0); }
            let i = (at % (data.len() / 2)) * 2;
            let before = !fold(sum(0, &data));
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&word.to_be_bytes());
            let after = !fold(sum(0, &data));
            let inc = update_word(before, old, word);
            // 0x0000 and 0xffff are both zero in one's complement.
            prop_assert!(inc == after || (inc ^ after) == 0xffff && (inc == 0 || inc == 0xffff));
        }
    }
}
