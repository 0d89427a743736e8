//! Emits a corpus of frames with `anycast6-wire`'s encoders, for the independent
//! cross-check in `tests/crosscheck/test_emit.py`: scapy and tshark decode each frame and
//! must find the field values written next to it, and scapy's recomputed checksums must
//! equal ours.
//!
//! Usage: `emit_corpus OUT.pcap OUT.json`. The JSON file is an array with, per frame, its
//! name, the fields it must decode to (decode-key conventions, docs/decode.md), and for
//! messages carrying an RFC 4285 authenticator the key used, so the check can recompute it
//! with Python's own `hmac`.
//!
//! Expected values are written here by hand (from PROTOCOL.md's vectors where they exist),
//! not computed by the code under test.

use std::net::Ipv6Addr;

use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr, VlanTag};
use anycast6_wire::icmpv6::{
    DstUnreachableCode, Icmpv6Packet, Icmpv6Repr, ParamProblemCode, TimeExceededCode,
};
use anycast6_wire::ipv6::{Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::{
    HomeAddressDestOpts, Ipv6OptionsHeader, Ipv6RoutingHeader, Type2RoutingRepr,
};
use anycast6_wire::mobility::option::{AuthSubtype, MobilityOption};
use anycast6_wire::mobility::{BaStatus, BeStatus, BindingAck, BindingUpdate, MhMessage};
use anycast6_wire::mobility::{MhOptions, MhPacket, MhRepr};
use anycast6_wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
use anycast6_wire::tunnel::{self, TrafficClass, TunnelParams};
use anycast6_wire::udp::{UdpPacket, UdpRepr};
use anycast6_wire::{auth, rr, PacketBuf, VecBuf};
use serde_json::{json, Value};

const MAC_A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const MAC_B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);

fn a(s: &str) -> Ipv6Addr {
    s.parse().expect("address literal")
}

/// Extension headers between the fixed header and the upper layer.
enum Ext {
    None,
    HomeAddress(Ipv6Addr),
    Type2(Ipv6Addr),
}

/// Ethernet + IPv6 + `ext` + `upper` (already complete, checksum included).
fn frame(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ext: Ext,
    upper_proto: u8,
    upper: &[u8],
    vlan: Option<VlanTag>,
) -> Vec<u8> {
    let mut ext_bytes = Vec::new();
    let first_nh = match ext {
        Ext::None => upper_proto,
        Ext::HomeAddress(hoa) => {
            let r = HomeAddressDestOpts {
                next_header: upper_proto,
                home_address: hoa,
            };
            ext_bytes.resize(HomeAddressDestOpts::HEADER_LEN, 0);
            r.emit(&mut Ipv6OptionsHeader::new_unchecked(&mut ext_bytes[..]))
                .expect("HAO");
            proto::DEST_OPTS
        }
        Ext::Type2(hoa) => {
            let r = Type2RoutingRepr {
                next_header: upper_proto,
                home_address: hoa,
            };
            ext_bytes.resize(Type2RoutingRepr::HEADER_LEN, 0);
            r.emit(&mut Ipv6RoutingHeader::new_unchecked(&mut ext_bytes[..]))
                .expect("RH2");
            proto::ROUTING
        }
    };
    let eth = EthernetRepr {
        dst: MAC_B,
        src: MAC_A,
        vlan,
        ethertype: EtherType::Ipv6,
    };
    let ip = Ipv6Repr {
        src,
        dst,
        next_header: first_nh,
        payload_len: ext_bytes.len() + upper.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut out = vec![0u8; eth.header_len() + ip.buffer_len() - ip.payload_len + ip.payload_len];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut out[..]))
        .expect("ethernet");
    let l3 = eth.header_len();
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut out[l3..]))
        .expect("ipv6");
    let l4 = l3 + 40;
    out[l4..l4 + ext_bytes.len()].copy_from_slice(&ext_bytes);
    out[l4 + ext_bytes.len()..].copy_from_slice(upper);
    out
}

/// An MH laid out by the builder, checksum filled with the given pseudo-header addresses.
fn mh(
    message: MhMessage<'_>,
    options: &[MobilityOption<'_>],
    psrc: Ipv6Addr,
    pdst: Ipv6Addr,
) -> Vec<u8> {
    let repr = MhRepr {
        message,
        options: MhOptions::List(options),
    };
    let mut buf = vec![0u8; repr.buffer_len().expect("layout")];
    repr.emit(&mut MhPacket::new_unchecked(&mut buf[..]))
        .expect("emit MH");
    MhPacket::new_unchecked(&mut buf[..]).fill_checksum(&psrc, &pdst);
    buf
}

fn icmp(repr: Icmpv6Repr<'_>, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv6Packet::new_unchecked(&mut buf[..]), &src, &dst)
        .expect("emit ICMPv6");
    buf
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 3, "usage: emit_corpus OUT.pcap OUT.json");

    let hoa = a("2001:db8:1::100");
    let coa = a("2001:db8:2::10");
    let cn = a("2001:db8:3::1");
    let ha = a("2001:db8:ff::1");
    let client = a("2001:db8:77::5");
    let service = a("2001:db8:100::1");
    // PROTOCOL.md §1.6 inputs.
    let kcn: [u8; 20] = hex("00112233445566778899aabbccddeeff00112233");
    let nonce = hex::<8>("123456789abcdef0");
    let home_token = rr::home_keygen_token(&kcn, &hoa, &nonce);
    let care_of_token = rr::care_of_keygen_token(&kcn, &coa, &nonce);
    let mn_ha_key = b"anycast6 cross-check key 01";

    let mut frames: Vec<(String, Vec<u8>, Value)> = Vec::new();
    let mut push =
        |name: &str, bytes: Vec<u8>, expect: Value| frames.push((name.to_string(), bytes, expect));

    // HoT of PROTOCOL §1.6, CN -> HoA.
    let hot = mh(
        MhMessage::HomeTest {
            home_nonce_index: 10,
            cookie: hex("0123456789abcdef"),
            keygen_token: home_token,
        },
        &[],
        cn,
        hoa,
    );
    push(
        "hot_vector",
        frame(cn, hoa, Ext::None, proto::MOBILITY, &hot, None),
        json!({
        "mip6.mhtype": 3, "mip6.hlen": 2, "mip6.csum": 0xb235, "mip6.hot.nindex": 10,
        "mip6.hot.cookie": "0123456789abcdef", "mip6.hot.token": "9b3568582d56e39d"}),
    );

    // BU of PROTOCOL §1.6: CoA -> CN with HAO, NI(10,20), BAD; checksum with pseudo-src HoA.
    let bu = BindingUpdate {
        sequence: 1,
        ack: true,
        lifetime: 105,
        ..Default::default()
    };
    let mut bu_mh = mh(
        MhMessage::BindingUpdate(bu),
        &[
            MobilityOption::NonceIndices {
                home: 10,
                care_of: 20,
            },
            MobilityOption::BindingAuthData(&[0; 12]),
        ],
        hoa,
        cn,
    );
    let kbm = rr::kbm(&home_token, &care_of_token);
    rr::insert_authenticator_and_fill_checksum(&kbm, &coa, &cn, &mut bu_mh, &hoa, &cn)?;
    push(
        "bu_vector",
        frame(
            coa,
            cn,
            Ext::HomeAddress(hoa),
            proto::MOBILITY,
            &bu_mh,
            None,
        ),
        json!({
        "ipv6.src": "2001:db8:2::10", "ipv6.opt.mipv6.home_address": "2001:db8:1::100",
        "mip6.mhtype": 5, "mip6.hlen": 3, "mip6.csum": 0xcb18, "mip6.bu.seqnr": 1,
        "mip6.bu.a_flag": true, "mip6.bu.h_flag": false, "mip6.bu.lifetime": 105,
        "mip6.ni.hni": 10, "mip6.ni.cni": 20, "mip6.bad.auth": "ebbcf0131b2c9f8d6174162e"}),
    );

    // De-registration from home (the appliance's "returned home" trigger), PROTOCOL §1.6.
    let dereg = BindingUpdate {
        sequence: 2,
        ack: true,
        lifetime: 0,
        ..Default::default()
    };
    let mut dereg_mh = mh(
        MhMessage::BindingUpdate(dereg),
        &[
            MobilityOption::NonceIndices {
                home: 10,
                care_of: 0,
            },
            MobilityOption::BindingAuthData(&[0; 12]),
        ],
        hoa,
        cn,
    );
    rr::insert_authenticator_and_fill_checksum(
        &rr::kbm_home_only(&home_token),
        &hoa,
        &cn,
        &mut dereg_mh,
        &hoa,
        &cn,
    )?;
    push(
        "bu_dereg_vector",
        frame(hoa, cn, Ext::None, proto::MOBILITY, &dereg_mh, None),
        json!({
        "mip6.csum": 0x0a98, "mip6.bu.seqnr": 2, "mip6.bu.lifetime": 0, "mip6.ni.hni": 10,
        "mip6.ni.cni": 0, "mip6.bad.auth": "ab26b85fcfc5f652adeff79a"}),
    );

    // BA from the CN, PROTOCOL §1.6: CN -> CoA with RH2 = HoA, checksum with pseudo-dst HoA.
    let ba = BindingAck {
        status: BaStatus::Accepted,
        sequence: 1,
        lifetime: 105,
        key_mgmt: false,
        other_flags: 0,
    };
    let mut ba_mh = mh(
        MhMessage::BindingAck(ba),
        &[MobilityOption::BindingAuthData(&[0; 12])],
        cn,
        hoa,
    );
    rr::insert_authenticator_and_fill_checksum(&kbm, &coa, &cn, &mut ba_mh, &cn, &hoa)?;
    push(
        "ba_vector",
        frame(cn, coa, Ext::Type2(hoa), proto::MOBILITY, &ba_mh, None),
        json!({
        "ipv6.routing.type": 2, "ipv6.routing.segleft": 1,
        "ipv6.routing.mipv6.home_address": "2001:db8:1::100", "mip6.mhtype": 6, "mip6.hlen": 3,
        "mip6.csum": 0xa729, "mip6.ba.status": 0, "mip6.ba.seqnr": 1, "mip6.ba.lifetime": 105,
        "mip6.bad.auth": "ef84ecf524725e92437c113f"}),
    );

    // A member's authenticated home registration: BID, vendor-specific load report,
    // replay protection and the RFC 4285 MN-HA authenticator (recomputed in Python).
    let reg = BindingUpdate {
        sequence: 9,
        ack: true,
        home_registration: true,
        lifetime: 100,
        ..Default::default()
    };
    let mut reg_mh = mh(
        MhMessage::BindingUpdate(reg),
        &[
            MobilityOption::BindingIdentifier {
                bid: 3,
                status: 0,
                h: false,
                bid_pri: 0,
                care_of: None,
            },
            MobilityOption::VendorSpecific {
                vendor_id: 0x7f3d,
                sub_type: 1,
                data: &[0, 0, 5],
            },
            MobilityOption::ReplayProtection {
                timestamp: 0xeb0a_1b2c_8000_0000,
            },
            MobilityOption::MobilityMessageAuth {
                subtype: AuthSubtype::MnHa,
                spi: 0x100,
                auth_data: &[0; 12],
            },
        ],
        service,
        ha,
    );
    auth::insert_mn_ha_and_fill_checksum(mn_ha_key, &coa, &service, &mut reg_mh, &service, &ha)?;
    push(
        "bu_home_registration_auth",
        frame(
            coa,
            ha,
            Ext::HomeAddress(service),
            proto::MOBILITY,
            &reg_mh,
            None,
        ),
        json!({
        "ipv6.opt.mipv6.home_address": "2001:db8:100::1", "mip6.bu.seqnr": 9,
        "mip6.bu.a_flag": true, "mip6.bu.h_flag": true, "mip6.bu.lifetime": 100,
        "mip6.bi.bid": 3, "mip6.bi.status": 0, "mip6.bi.h_flag": false,
        "mip6.vsm.vendorId": 0x7f3d, "mip6.vsm.subtype": 1,
        "mip6.mseg_id.timestamp": "eb0a1b2c80000000",
        "mip6.auth.subtype": 1, "mip6.auth.mobility_spi": 256,
        "_mn_ha_key": hex_str(mn_ha_key), "_care_of": "2001:db8:2::10", "_home": "2001:db8:100::1"}),
    );

    // The appliance's BA to a member: HA -> CoA with RH2 = service, Binding Refresh Advice.
    let ba_reg = BindingAck {
        status: BaStatus::Accepted,
        sequence: 9,
        lifetime: 100,
        key_mgmt: false,
        other_flags: 0,
    };
    let ba_reg_mh = mh(
        MhMessage::BindingAck(ba_reg),
        &[MobilityOption::BindingRefreshAdvice { interval: 75 }],
        ha,
        service,
    );
    push(
        "ba_home_registration_bra",
        frame(
            ha,
            coa,
            Ext::Type2(service),
            proto::MOBILITY,
            &ba_reg_mh,
            None,
        ),
        json!({
        "mip6.ba.status": 0, "mip6.ba.seqnr": 9, "mip6.ba.lifetime": 100, "mip6.bra.interval": 75,
        "mip6.hlen": 1}),
    );
    let ba_135 = BindingAck {
        status: BaStatus::SequenceNumberOutOfWindow,
        sequence: 41,
        lifetime: 0,
        key_mgmt: false,
        other_flags: 0,
    };
    let ba_135_mh = mh(MhMessage::BindingAck(ba_135), &[], ha, service);
    push(
        "ba_status_135",
        frame(
            ha,
            coa,
            Ext::Type2(service),
            proto::MOBILITY,
            &ba_135_mh,
            None,
        ),
        json!({
        "mip6.ba.status": 135, "mip6.ba.seqnr": 41, "mip6.ba.lifetime": 0}),
    );
    let be = mh(
        MhMessage::BindingError {
            status: BeStatus::UnrecognizedMhType,
            home_address: Ipv6Addr::UNSPECIFIED,
        },
        &[],
        ha,
        coa,
    );
    push(
        "be_status_2",
        frame(ha, coa, Ext::None, proto::MOBILITY, &be, None),
        json!({
        "mip6.mhtype": 7, "mip6.be.status": 2, "mip6.be.haddr": "::"}),
    );
    let hoti = mh(
        MhMessage::HomeTestInit {
            cookie: hex("1122334455667788"),
        },
        &[],
        service,
        client,
    );
    push(
        "hoti",
        frame(service, client, Ext::None, proto::MOBILITY, &hoti, None),
        json!({
        "mip6.mhtype": 1, "mip6.hoti.cookie": "1122334455667788"}),
    );
    let coti = mh(
        MhMessage::CareOfTestInit {
            cookie: hex("8877665544332211"),
        },
        &[],
        coa,
        client,
    );
    push(
        "coti",
        frame(coa, client, Ext::None, proto::MOBILITY, &coti, None),
        json!({
        "mip6.mhtype": 2, "mip6.coti.cookie": "8877665544332211"}),
    );
    let cot = mh(
        MhMessage::CareOfTest {
            care_of_nonce_index: 20,
            cookie: hex("8877665544332211"),
            keygen_token: care_of_token,
        },
        &[],
        cn,
        coa,
    );
    push(
        "cot",
        frame(cn, coa, Ext::None, proto::MOBILITY, &cot, None),
        json!({
        "mip6.mhtype": 4, "mip6.cot.nindex": 20, "mip6.cot.token": "27534ca0e013263e"}),
    );
    let brr = mh(MhMessage::BindingRefreshRequest, &[], client, service);
    push(
        "brr",
        frame(client, service, Ext::None, proto::MOBILITY, &brr, None),
        json!({
        "mip6.mhtype": 0, "mip6.hlen": 0}),
    );
    let bu_acoa = BindingUpdate {
        sequence: 10,
        ack: true,
        home_registration: true,
        key_mgmt: true,
        lifetime: 30,
        ..Default::default()
    };
    let bu_acoa_mh = mh(
        MhMessage::BindingUpdate(bu_acoa),
        &[MobilityOption::AlternateCareOf(a("2001:db8:2::99"))],
        service,
        ha,
    );
    push(
        "bu_alternate_coa",
        frame(
            coa,
            ha,
            Ext::HomeAddress(service),
            proto::MOBILITY,
            &bu_acoa_mh,
            None,
        ),
        json!({
        "mip6.bu.k_flag": true, "mip6.acoa.acoa": "2001:db8:2::99", "mip6.hlen": 3}),
    );

    // ICMPv6, as the appliance sends them.
    let invoking = frame(
        client,
        service,
        Ext::None,
        proto::UDP,
        &udp(client, service, 40000, 53, b"0123456789abcdef"),
        None,
    );
    let quoted = &invoking[14..];
    for (name, repr, expect) in [
        (
            "icmp_ptb",
            Icmpv6Repr::PacketTooBig {
                mtu: 1460,
                invoking: quoted,
            },
            json!({"icmpv6.type": 2, "icmpv6.code": 0, "icmpv6.mtu": 1460}),
        ),
        (
            "icmp_dst_unreach",
            Icmpv6Repr::DstUnreachable {
                code: DstUnreachableCode::AddrUnreachable,
                invoking: quoted,
            },
            json!({"icmpv6.type": 1, "icmpv6.code": 3}),
        ),
        (
            "icmp_time_exceeded",
            Icmpv6Repr::TimeExceeded {
                code: TimeExceededCode::HopLimitExceeded,
                invoking: quoted,
            },
            json!({"icmpv6.type": 3, "icmpv6.code": 0}),
        ),
        (
            "icmp_param_problem",
            Icmpv6Repr::ParamProblem {
                code: ParamProblemCode::ErroneousHeaderField,
                pointer: 44,
                invoking: quoted,
            },
            json!({"icmpv6.type": 4, "icmpv6.code": 0, "icmpv6.pointer": 44}),
        ),
        (
            "icmp_echo_reply",
            Icmpv6Repr::EchoReply {
                ident: 0x4242,
                seq_no: 9,
                data: b"anycast6",
            },
            json!({"icmpv6.type": 129, "icmpv6.echo.identifier": 0x4242, "icmpv6.echo.sequence_number": 9}),
        ),
    ] {
        push(
            name,
            frame(
                ha,
                client,
                Ext::None,
                proto::ICMPV6,
                &icmp(repr, ha, client),
                None,
            ),
            expect,
        );
    }
    let ns_dst = a("ff02::1:ff00:10");
    let ns = icmp(
        Icmpv6Repr::NeighborSolicit {
            target: coa,
            source_lladdr: Some(MAC_A.0),
        },
        ha,
        ns_dst,
    );
    push(
        "nd_ns",
        frame(ha, ns_dst, Ext::None, proto::ICMPV6, &ns, None),
        json!({
        "icmpv6.type": 135, "icmpv6.nd.ns.target_address": "2001:db8:2::10", "icmpv6.opt.linkaddr": "02:00:00:00:00:01"}),
    );
    let na = icmp(
        Icmpv6Repr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target: ha,
            target_lladdr: Some(MAC_A.0),
        },
        ha,
        coa,
    );
    push(
        "nd_na",
        frame(ha, coa, Ext::None, proto::ICMPV6, &na, None),
        json!({
        "icmpv6.type": 136, "icmpv6.nd.na.target_address": "2001:db8:ff::1", "icmpv6.nd.na.flag.r": false,
        "icmpv6.nd.na.flag.s": true, "icmpv6.nd.na.flag.o": true, "icmpv6.opt.linkaddr": "02:00:00:00:00:01"}),
    );

    // TCP probes and UDP.
    let syn = TcpRepr {
        src_port: 33000,
        dst_port: 80,
        seq_number: 0x01020304,
        ack_number: 0,
        flags: TcpFlags::SYN,
        window_len: 64240,
        max_seg_size: Some(1440),
    };
    push(
        "tcp_syn_probe",
        frame(ha, coa, Ext::None, proto::TCP, &tcp(&syn, ha, coa), None),
        json!({
        "tcp.srcport": 33000, "tcp.dstport": 80, "tcp.seq_raw": 0x01020304, "tcp.flags": 2,
        "tcp.flags.syn": true, "tcp.window_size_value": 64240, "tcp.options.mss_val": 1440}),
    );
    let rst = TcpRepr {
        src_port: 33000,
        dst_port: 80,
        seq_number: 77,
        ack_number: 0,
        flags: TcpFlags::RST,
        window_len: 0,
        max_seg_size: None,
    };
    push(
        "tcp_rst",
        frame(ha, coa, Ext::None, proto::TCP, &tcp(&rst, ha, coa), None),
        json!({
        "tcp.flags": 4, "tcp.flags.reset": true, "tcp.seq_raw": 77}),
    );
    push(
        "udp_vlan",
        frame(
            client,
            service,
            Ext::None,
            proto::UDP,
            &udp(client, service, 5000, 6000, b"hello"),
            Some(VlanTag {
                pcp: 3,
                dei: false,
                vid: 42,
            }),
        ),
        json!({
        "vlan.id": 42, "vlan.priority": 3, "udp.srcport": 5000, "udp.dstport": 6000, "udp.length": 13}),
    );

    // RFC 2473 tunnels as the data plane builds them.
    for (name, limit) in [("tunnel_udp", None), ("tunnel_udp_tel", Some(4u8))] {
        let inner = frame(
            client,
            service,
            Ext::None,
            proto::UDP,
            &udp(client, service, 40000, 9999, b"payload!"),
            None,
        );
        let mut buf = VecBuf::from_slice(&inner[14..]);
        let params = TunnelParams {
            src: ha,
            dst: coa,
            hop_limit: 64,
            traffic_class: TrafficClass::Fixed(0),
            flow_label: 0xabcde,
            encap_limit: limit,
        };
        let outcome = tunnel::encapsulate(&mut buf, &params)?;
        anyhow::ensure!(
            matches!(outcome, tunnel::EncapOutcome::Encapsulated { .. }),
            "encapsulation refused"
        );
        let mut out = vec![0u8; 14];
        EthernetRepr {
            dst: MAC_B,
            src: MAC_A,
            vlan: None,
            ethertype: EtherType::Ipv6,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut out[..]))?;
        out.extend_from_slice(buf.data());
        let mut expect = json!({
            "ipv6.src": "2001:db8:ff::1", "ipv6.dst": "2001:db8:2::10", "ipv6.flow": 0xabcde,
            "ipv6.hlim": 64, "ipv6.nxt": if limit.is_some() { 60 } else { 41 },
            "inner.ipv6.src": "2001:db8:77::5", "inner.ipv6.dst": "2001:db8:100::1",
            "inner.udp.srcport": 40000, "inner.udp.dstport": 9999});
        if let Some(l) = limit {
            expect["ipv6.opt.tel"] = json!(l);
        }
        push(name, out, expect);
    }

    // Write the capture and the expectations.
    let file = std::fs::File::create(&args[1])?;
    let header = pcap_file::pcap::PcapHeader {
        datalink: pcap_file::DataLink::ETHERNET,
        ..Default::default()
    };
    let mut writer = pcap_file::pcap::PcapWriter::with_header(file, header)?;
    let mut meta = Vec::new();
    for (i, (name, bytes, expect)) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(i as u64);
        writer.write_packet(&pcap_file::pcap::PcapPacket::new(
            ts,
            bytes.len() as u32,
            bytes,
        ))?;
        meta.push(json!({"name": name, "expect": expect}));
    }
    std::fs::write(&args[2], serde_json::to_string_pretty(&meta)?)?;
    eprintln!("emit_corpus: {} frames", frames.len());
    Ok(())
}

fn udp(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: sport,
        dst_port: dport,
    };
    let mut buf = vec![0u8; repr.buffer_len(payload.len())];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut buf[..]),
        &src,
        &dst,
        payload,
    )
    .expect("emit UDP");
    buf
}

fn tcp(repr: &TcpRepr, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len(0)];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &src, &dst, &[])
        .expect("emit TCP");
    buf
}

fn hex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex literal");
    }
    out
}

fn hex_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
