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

/// An [`ExtraTx`](anycast6::dataplane::pipeline::ExtraTx) that has no buffers: the bench
/// frames never need a second fragment.
pub struct NoFragments;

impl anycast6::dataplane::pipeline::ExtraTx<anycast6_wire::VecBuf> for NoFragments {
    fn alloc(&mut self) -> Option<anycast6_wire::VecBuf> {
        None
    }
    fn send_after(&mut self, _port: u16, _buf: anycast6_wire::VecBuf) {}
}

/// Puts `template` back into `buf` at 128 octets of headroom, without allocating (the
/// pipeline prepends the tunnel headers and trims the frame).
pub fn restore(buf: &mut anycast6_wire::VecBuf, template: &[u8]) {
    use anycast6_wire::PacketBuf;
    let h = buf.headroom();
    if h < 128 {
        buf.adj(128 - h).expect("shrink front");
    } else if h > 128 {
        buf.prepend(h - 128).expect("grow front");
    }
    buf.set_len(template.len()).expect("length");
    buf.data_mut().copy_from_slice(template);
}

/// Rewrites the low 32 bits of the client address of a [`client_frame`] in place: the
/// frame of client `i` without building it again (the UDP checksum is left stale; the
/// forward path does not check it).
pub fn set_client(frame: &mut [u8], i: u32) {
    frame[14 + 8 + 12..14 + 8 + 16].copy_from_slice(&i.to_be_bytes());
}

/// A worker whose affinity table holds `flows` at 75 % load at most (the sizing
/// docs/configuration.md gives), with a 300 s idle timeout.
pub fn worker_for(flows: u32) -> anycast6::dataplane::pipeline::Worker {
    use anycast6::dataplane::pipeline::{Tick, Worker, WorkerConfig};
    Worker::new(
        WorkerConfig {
            id: 0,
            affinity_capacity: (flows as usize * 4 / 3).next_power_of_two(),
            affinity_idle_timeout: 300,
            icmp_rate: IcmpRateSpec::default(),
        },
        Tick::from_millis(0),
    )
    .expect("worker")
}

/// The loop of the `pipeline_burst` bench and of `pipeline-loop`: bursts of
/// [`BURST_STAGE`](anycast6::dataplane::pipeline::BURST_STAGE) client frames, restored
/// before each burst and cycling through `flows` clients, through one worker's
/// `process_burst`.
pub struct BurstLoop {
    snapshot: anycast6::dataplane::snapshot::Snapshot,
    worker: anycast6::dataplane::pipeline::Worker,
    template: Vec<u8>,
    bufs: Vec<anycast6_wire::VecBuf>,
    verdicts: Vec<anycast6::dataplane::pipeline::Verdict>,
    flows: u32,
    next: u32,
}

impl BurstLoop {
    /// [`spec`] with 8 members, a [`worker_for`] `flows` (at least 1).
    pub fn new(flows: u32) -> BurstLoop {
        use anycast6::dataplane::pipeline::{Verdict, BURST_STAGE};
        let template = client_frame(0);
        BurstLoop {
            snapshot: anycast6::dataplane::snapshot::Snapshot::build(&spec(8)).expect("snapshot"),
            worker: worker_for(flows),
            bufs: (0..BURST_STAGE)
                .map(|_| anycast6_wire::VecBuf::from_slice_with_room(&template, 128, 2048))
                .collect(),
            template,
            verdicts: vec![Verdict::Exception; BURST_STAGE],
            flows: flows.max(1),
            next: 0,
        }
    }

    /// Restores the frames and runs one burst; returns the verdicts.
    pub fn burst(&mut self) -> &[anycast6::dataplane::pipeline::Verdict] {
        use anycast6::dataplane::pipeline::Tick;
        use anycast6_wire::PacketBuf;
        for buf in self.bufs.iter_mut() {
            self.next = (self.next + 1) % self.flows;
            restore(buf, &self.template);
            set_client(buf.data_mut(), self.next);
        }
        let n = self.worker.process_burst(
            &self.snapshot,
            &mut self.bufs,
            0,
            Tick::from_millis(1),
            &mut NoFragments,
            &mut self.verdicts,
        );
        &self.verdicts[..n]
    }
}
