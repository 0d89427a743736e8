//! Addresses and packet builders the unit tests of several modules share: what the
//! appliance, a client or a correspondent node would send to the member.

use std::net::Ipv6Addr;

use anycast6_wire::checksum::{self, proto};
use anycast6_wire::ipv6ext::{Ipv6RoutingHeader, Type2RoutingRepr};
use anycast6_wire::mobility::{MhPacket, MhRepr};

use crate::packets::ipv6_packet;
use crate::registration::Action;

pub fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Bytes from hex digits; white space between them is ignored.
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The appliance's home-agent (tunnel) address.
pub fn ha() -> Ipv6Addr {
    a("2001:db8:ffff::1")
}

/// The member's care-of address.
pub fn coa() -> Ipv6Addr {
    a("2001:db8:100::10")
}

/// A service (home) address.
pub fn svc() -> Ipv6Addr {
    a("2001:db8:aaaa::80")
}

/// The Mobility Header `repr` on its own, checksum zero: the caller fills it (or inserts
/// an authenticator first) for the addresses it sends it between.
pub fn mh_bytes(repr: &MhRepr<'_>) -> Vec<u8> {
    let mut mh = vec![0u8; repr.buffer_len().unwrap()];
    repr.emit(&mut MhPacket::new_unchecked(&mut mh[..]))
        .unwrap();
    mh
}

/// `src -> dst` with a Type 2 routing header naming `home`, then `payload` of protocol
/// `next_header` (RFC 6275 §6.4): a BA, or route-optimised data.
pub fn with_type2(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    home: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut rh2 = vec![0u8; Type2RoutingRepr::HEADER_LEN];
    Type2RoutingRepr {
        next_header,
        home_address: home,
    }
    .emit(&mut Ipv6RoutingHeader::new_unchecked(&mut rh2[..]))
    .unwrap();
    rh2.extend_from_slice(payload);
    ipv6_packet(src, dst, proto::ROUTING, hop_limit, &rh2).unwrap()
}

/// IPv6-in-IPv6 from `outer_src` to `outer_dst` (RFC 2473), as the appliance tunnels.
pub fn tunnel(outer_src: Ipv6Addr, outer_dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    ipv6_packet(outer_src, outer_dst, proto::IPV6, 64, inner).unwrap()
}

/// An ICMPv6 Parameter Problem (RFC 4443 §3.4) from `from` to `to` with `code`, pointer 6,
/// quoting `quoted`.
pub fn parameter_problem(from: Ipv6Addr, to: Ipv6Addr, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![4, code, 0, 0, 0, 0, 0, 6];
    icmp.extend_from_slice(quoted);
    let sum = checksum::upper_layer(&from, &to, proto::ICMPV6, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv6_packet(from, to, proto::ICMPV6, 64, &icmp).unwrap()
}

/// The log lines among `actions`.
pub fn log_lines(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(l) => Some(l.as_str()),
            Action::Send(_) | Action::Deliver(_) => None,
        })
        .collect()
}
