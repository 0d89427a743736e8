//! IPv6 packet assembly shared by the home-registration messages ([`crate::messages`]) and
//! the route-optimisation messages ([`crate::ro_messages`]).
//!
//! The agent writes whole IPv6 packets and sends them on a raw socket with the IPv6 header
//! included, because this kernel has no Mobile IPv6 and cannot add a Home Address option
//! itself.

use std::net::Ipv6Addr;

use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::{HomeAddressDestOpts, Ipv6OptionsHeader};
use anycast6_wire::mobility::{fill_checksum, MhPacket, MhRepr};

/// An IPv6 packet `src -> dst` carrying `payload` after the header; `next_header` names
/// what the payload starts with (41 makes it an RFC 2473 tunnel packet).
pub fn ipv6_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload: &[u8],
) -> anycast6_wire::Result<Vec<u8>> {
    Ipv6Repr {
        src,
        dst,
        next_header,
        payload_len: payload.len(),
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .packet_with(payload)
}

/// An IPv6 packet `src -> dst` whose only payload is the Mobility Header `repr`, its
/// checksum filled.
pub fn mh_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    repr: &MhRepr<'_>,
) -> anycast6_wire::Result<Vec<u8>> {
    let (mut buf, mh_at) = mh_packet_unsummed(src, dst, None, hop_limit, repr)?;
    fill_checksum(&src, &dst, &mut buf[mh_at..])?;
    Ok(buf)
}

/// The layout of every Mobility Header packet the member sends: IPv6 header, then a
/// Destination Options header with the Home Address option when `home_address` is given
/// (a Binding Update, RFC 6275 §6.1: no other message carries it), then the Mobility
/// Header. Returns the packet and the offset of the Mobility Header, whose checksum is
/// left for the caller: an authenticated BU must insert its authenticator first.
pub(crate) fn mh_packet_unsummed(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    home_address: Option<Ipv6Addr>,
    hop_limit: u8,
    repr: &MhRepr<'_>,
) -> anycast6_wire::Result<(Vec<u8>, usize)> {
    let mh_len = repr.buffer_len()?;
    let (next_header, mh_at) = match home_address {
        Some(_) => (
            proto::DEST_OPTS,
            ipv6::HEADER_LEN + HomeAddressDestOpts::HEADER_LEN,
        ),
        None => (proto::MOBILITY, ipv6::HEADER_LEN),
    };
    let mut buf = vec![0u8; mh_at + mh_len];
    Ipv6Repr {
        src,
        dst,
        next_header,
        payload_len: mh_at - ipv6::HEADER_LEN + mh_len,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]))?;
    if let Some(home_address) = home_address {
        HomeAddressDestOpts {
            next_header: proto::MOBILITY,
            home_address,
        }
        .emit(&mut Ipv6OptionsHeader::new_unchecked(
            &mut buf[ipv6::HEADER_LEN..mh_at],
        ))?;
    }
    repr.emit(&mut MhPacket::new_unchecked(&mut buf[mh_at..]))?;
    Ok((buf, mh_at))
}

/// True for a global unicast address: not unspecified, loopback, multicast, link-local
/// or IPv4-mapped. The member's own addresses must be (configuration), and so must a
/// client worth route-optimising with.
pub fn is_global_unicast(addr: Ipv6Addr) -> bool {
    let o = addr.octets();
    !(addr.is_unspecified()
        || addr.is_loopback()
        || addr.is_multicast()
        || (o[0] == 0xfe && o[1] & 0xc0 == 0x80)
        || addr.to_ipv4_mapped().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{a, coa, ha, svc};
    use anycast6_wire::ipv6ext::ExtHeaderChain;
    use anycast6_wire::mobility::{MhMessage, MhOptions};

    #[test]
    fn mh_packet_layouts_with_and_without_home_address() {
        let repr = MhRepr {
            message: MhMessage::BindingRefreshRequest,
            options: MhOptions::NONE,
        };
        let plain = mh_packet(ha(), coa(), 7, &repr).unwrap();
        let ip = Ipv6Packet::new_checked(&plain[..]).unwrap();
        assert_eq!((ip.next_header(), ip.hop_limit()), (proto::MOBILITY, 7));
        assert_eq!(usize::from(ip.payload_len()), plain.len() - 40);
        assert!(MhPacket::new_checked(ip.payload())
            .unwrap()
            .verify_checksum(&ha(), &coa()));

        let (hao, mh_at) = mh_packet_unsummed(coa(), ha(), Some(svc()), 64, &repr).unwrap();
        assert_eq!(mh_at, 64);
        let ip = Ipv6Packet::new_checked(&hao[..]).unwrap();
        assert_eq!(usize::from(ip.payload_len()), hao.len() - 40);
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        assert_eq!(chain.home_address, Some(svc()));
        assert_eq!(chain.upper_layer, proto::MOBILITY);
        assert_eq!(chain.upper_layer_bytes(ip.payload()), Some(&hao[mh_at..]));
    }

    #[test]
    fn global_unicast() {
        assert!(is_global_unicast(a("2001:db8::1")));
        for not in [
            "::",
            "::1",
            "ff02::1",
            "fe80::1",
            "febf::1",
            "::ffff:192.0.2.1",
        ] {
            assert!(!is_global_unicast(a(not)), "{not}");
        }
    }
}
