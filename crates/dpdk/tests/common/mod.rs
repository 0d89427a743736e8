//! Test packets: Ethernet + IPv6 + UDP frames that carry a sequence number.
#![allow(dead_code)]

use std::net::Ipv6Addr;

use anycast6_wire::checksum;

pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const ETHERTYPE_IPV6: u16 = 0x86dd;
const NEXT_HEADER_UDP: u8 = 17;

/// An IPv6/UDP frame whose UDP payload is `payload_len` bytes (>= 8) starting with `seq`
/// (big endian) followed by a pattern derived from it. Addresses and ports vary with `seq`
/// so that frames differ beyond the counter.
pub fn ipv6_udp_frame(seq: u64, payload_len: usize) -> Vec<u8> {
    assert!(payload_len >= 8);
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, (seq % 251) as u16 + 1);
    let dst = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);
    let udp_len = 8 + payload_len;
    let mut f = Vec::with_capacity(14 + 40 + udp_len);
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    // RFC 8200 §3: version 6, traffic class 0, flow label from seq.
    let flow = (seq as u32) & 0x000f_ffff;
    f.extend_from_slice(&(0x6000_0000u32 | flow).to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.push(NEXT_HEADER_UDP);
    f.push(64);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    let udp_start = f.len();
    f.extend_from_slice(&(1024 + (seq % 60000) as u16).to_be_bytes());
    f.extend_from_slice(&443u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend((0..payload_len - 8).map(|i| (seq as u8).wrapping_add(i as u8)));
    // RFC 8200 §8.1: the UDP checksum is mandatory over IPv6.
    let mut csum = checksum::upper_layer(&src, &dst, NEXT_HEADER_UDP, &f[udp_start..]);
    if csum == 0 {
        csum = 0xffff;
    }
    f[udp_start + 6..udp_start + 8].copy_from_slice(&csum.to_be_bytes());
    f
}

/// The sequence number of a frame built by [`ipv6_udp_frame`].
pub fn frame_seq(frame: &[u8]) -> Option<u64> {
    let at = 14 + 40 + 8;
    Some(u64::from_be_bytes(frame.get(at..at + 8)?.try_into().ok()?))
}
