//! Traffic for the micro-benchmarks: frames from many clients to one service, built with
//! `anycast6-wire`, and the snapshot they run against.

use std::net::Ipv6Addr;

use anycast6::dataplane::snapshot::{
    AffinityMode, IcmpRateSpec, MemberSpec, MemberStatus, PortSpec, ServiceSpec, SnapshotSpec,
    TunnelSpec,
};
use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
use anycast6_wire::ipv6::{Ipv6Packet, Ipv6Repr};
use anycast6_wire::tunnel::TrafficClass;
use anycast6_wire::udp::{UdpPacket, UdpRepr};

pub const PORT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);

pub fn service() -> Ipv6Addr {
    "2001:db8:100::1".parse().expect("literal")
}

/// One service with `members` members of weight 1 behind one port (MTU 1500).
pub fn spec(members: u32) -> SnapshotSpec {
    SnapshotSpec {
        tunnel: TunnelSpec {
            address: "2001:db8:ff::1".parse().expect("literal"),
            hop_limit: 64,
            traffic_class: TrafficClass::CopyInner,
            encap_limit: None,
        },
        local_addresses: vec![],
        ports: vec![PortSpec {
            mac: PORT_MAC,
            link_mtu: 1500,
            next_hop_mac: Some(ROUTER_MAC),
        }],
        services: vec![ServiceSpec {
            address: service(),
            affinity: AffinityMode::Client,
            port: 0,
            maglev_size: 65537,
            members: (0..members)
                .map(|i| MemberSpec {
                    id: i,
                    epoch: 1,
                    care_of: Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, (i >> 16) as u16, i as u16),
                    weight: 1,
                    status: MemberStatus::Active,
                    mac: None,
                    stats_slot: (i % 4096) as u16,
                })
                .collect(),
        }],
        icmp_rate: IcmpRateSpec::default(),
    }
}

/// An Ethernet/IPv6/UDP frame with a 64-byte payload from client number `i` to the service.
pub fn client_frame(i: u32) -> Vec<u8> {
    let client = Ipv6Addr::new(0x2001, 0xdb8, 0x77, 0, 0, 0, (i >> 16) as u16, i as u16);
    let dst = service();
    let payload = [0x5au8; 64];
    let udp = UdpRepr {
        src_port: 40000 + (i % 20000) as u16,
        dst_port: 53,
    };
    let ip = Ipv6Repr {
        src: client,
        dst,
        next_header: proto::UDP,
        payload_len: udp.buffer_len(payload.len()),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let eth = EthernetRepr {
        dst: PORT_MAC,
        src: ROUTER_MAC,
        vlan: None,
        ethertype: EtherType::Ipv6,
    };
    let mut f = vec![0u8; 14 + 40 + ip.payload_len];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]))
        .expect("sized");
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut f[14..]))
        .expect("sized");
    udp.emit(
        &mut UdpPacket::new_unchecked(&mut f[54..]),
        &client,
        &dst,
        &payload,
    )
    .expect("sized");
    f
}
