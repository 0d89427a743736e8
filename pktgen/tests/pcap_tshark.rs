//! Every kind of frame pktgen emits, written to a pcap and decoded by Wireshark's
//! dissectors (`tshark -T json`) with checksum validation on: no malformed packet, every
//! UDP/TCP/ICMPv6 checksum good, and the fields that matter have the values we meant. The
//! MN-HA authenticator of the authenticated BU is recomputed here with the `hmac` and
//! `sha1` crates (RFC 4285 §5.1), independently of anycast6-wire.

use std::fs::File;
use std::net::Ipv6Addr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anycast6_pktgen::build::{self, BuParams, ClientSide, Stamp};
use anycast6_pktgen::member::{Emulator, EmulatorConfig, Rx};
use anycast6_pktgen::profile::{MemberMode, MembersSpec, Protocol, IMIX};
use anycast6_wire::checksum::proto;
use anycast6_wire::icmpv6::Icmpv6Repr;
use anycast6_wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
use anycast6_wire::tunnel;
use anycast6_wire::{PacketBuf, VecBuf};
use hmac::{Hmac, Mac};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use serde_json::Value;

const OUR: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const LB: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SPI: u32 = 256;

fn ha() -> Ipv6Addr {
    "2001:db8:ff::1".parse().unwrap()
}
fn svc() -> Ipv6Addr {
    "2001:db8:100::1".parse().unwrap()
}
fn coa() -> Ipv6Addr {
    "2001:db8:2::10".parse().unwrap()
}

fn side() -> ClientSide {
    ClientSide {
        src_mac: OUR,
        dst_mac: LB,
        client_prefix: "2001:db8:77::1".parse().unwrap(),
        services: vec![svc()],
        first_source_port: 1024,
        dst_port: 9999,
    }
}

fn emulator() -> Emulator {
    Emulator::new(EmulatorConfig {
        our_mac: OUR,
        appliance_mac: Some(LB),
        tunnel_address: Some(ha()),
        next_hop: Some("fe80::1".parse().unwrap()),
        services: vec![svc()],
        client_prefix: "2001:db8:77::1".parse().unwrap(),
        clients: 100,
        members: Some(MembersSpec {
            count: 1,
            first_care_of: coa(),
            service: svc(),
            mode: MemberMode::Reply,
            lifetime_secs: 60,
            spi: None,
            auth: None,
            bid: false,
            track_flows: false,
            weight: None,
            kills: vec![],
        }),
    })
}

/// What the appliance does to a client frame: tunnel it to the care-of address.
fn tunnelled_by_appliance(client: &[u8]) -> Vec<u8> {
    let mut buf = VecBuf::from_slice(&client[14..]);
    let _ = tunnel::encapsulate(
        &mut buf,
        &tunnel::TunnelParams {
            src: ha(),
            dst: coa(),
            hop_limit: 64,
            traffic_class: tunnel::TrafficClass::CopyInner,
            flow_label: 0,
            encap_limit: None,
        },
    )
    .unwrap();
    let mut f = Vec::new();
    f.extend_from_slice(&OUR);
    f.extend_from_slice(&LB);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(buf.data());
    f
}

fn control(rx: Rx) -> Vec<u8> {
    match rx {
        Rx::Control(mut v) => v.remove(0),
        other => panic!("expected control frames, got {other:?}"),
    }
}

/// (name, frame) for every kind.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let s = side();
    let mut out = Vec::new();
    let flow = build::FlowEntry {
        src_low: build::client_address(s.client_prefix, 41).octets()[8..]
            .try_into()
            .unwrap(),
        sport: 1030u16.to_be_bytes(),
        service: 0,
        delta: 0,
    };
    // The delta of flow 41/1030 computed the way FlowTable does, through a table of one.
    let delta = {
        let mut raw = anycast6_pktgen::profile::RawProfile::default();
        raw.set_flag("clients", anycast6_pktgen::profile::RawValue::Int(42));
        let p = anycast6_pktgen::profile::Profile::resolve(&raw).unwrap();
        let t = build::FlowTable::new(&p, &s);
        t.entries
            .iter()
            .find(|e| e.src_low == flow.src_low)
            .unwrap()
            .delta
    };
    let flow = build::FlowEntry {
        sport: 1024u16.to_be_bytes(),
        delta,
        ..flow
    };
    let services = [svc().octets()];
    for (name, protocol, size) in [
        ("udp_64", Protocol::Udp, 64),
        ("udp_imix_590", Protocol::Udp, IMIX[1].0),
        ("udp_imix_1514", Protocol::Udp, IMIX[2].0),
        ("tcp_syn_74", Protocol::TcpSyn, 74),
        ("tcp_syn_stamped_200", Protocol::TcpSyn, 200),
        ("udp_stamped_128", Protocol::Udp, 128),
    ] {
        let t = build::client_template(&s, protocol, size).unwrap();
        let mut f = t.bytes.clone();
        build::apply_flow(&mut f, &t, &flow, &services);
        if t.stamp_ok {
            build::apply_stamp(
                &mut f,
                &t,
                &Stamp {
                    seq: 7,
                    tx_ns: 123_456_789,
                },
            );
        }
        out.push((name, f));
    }
    let key: Vec<u8> = (1..=20).collect();
    for (name, auth) in [
        ("bu_trusted", None),
        (
            "bu_authenticated",
            Some((SPI, key.as_slice(), 0xe000_0000_8000_0000u64)),
        ),
    ] {
        let f = build::binding_update(
            OUR,
            LB,
            &BuParams {
                care_of: coa(),
                home: svc(),
                home_agent: ha(),
                sequence: 42,
                lifetime_units: 15,
                bid: auth.map(|_| 1),
                weight: auth.map(|_| 5),
                auth,
            },
        )
        .unwrap();
        out.push((name, f));
    }
    // Member replies: UDP and TCP client traffic turned around.
    let mut e = emulator();
    let now = Instant::now();
    e.on_tick(now, SystemTime::now());
    for (name, protocol) in [
        ("member_reply_udp", Protocol::Udp),
        ("member_reply_tcp", Protocol::TcpSyn),
    ] {
        let t = build::client_template(&s, protocol, 150).unwrap();
        let mut f = t.bytes.clone();
        build::apply_stamp(&mut f, &t, &Stamp { seq: 1, tx_ns: 2 });
        let mut tun = tunnelled_by_appliance(&f);
        assert!(matches!(
            e.on_frame(now, &mut tun),
            Rx::Member { reply: true, .. }
        ));
        out.push((name, tun));
    }
    // Probe answers.
    let echo = Icmpv6Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 5,
        data: b"probe-data",
    };
    let msg = build::icmpv6(&echo, &ha(), &coa()).unwrap();
    let mut probe = build::frame(LB, OUR, &build::ip(ha(), coa(), proto::ICMPV6), &msg).unwrap();
    out.push(("probe_echo_reply", control(e.on_frame(now, &mut probe))));
    let syn = TcpRepr {
        src_port: 50001,
        dst_port: 80,
        seq_number: 777,
        ack_number: 0,
        flags: TcpFlags::SYN,
        window_len: 1024,
        max_seg_size: None,
    };
    let mut seg = vec![0u8; syn.buffer_len(0)];
    syn.emit(&mut TcpPacket::new_unchecked(&mut seg), &ha(), &coa(), &[])
        .unwrap();
    let mut probe = build::frame(LB, OUR, &build::ip(ha(), coa(), proto::TCP), &seg).unwrap();
    out.push(("probe_syn_ack", control(e.on_frame(now, &mut probe))));
    let echo = Icmpv6Repr::EchoRequest {
        ident: 0x4321,
        seq_no: 6,
        data: b"",
    };
    let msg = build::icmpv6(&echo, &ha(), &svc()).unwrap();
    let inner = build::ip(ha(), svc(), proto::ICMPV6)
        .packet_with(&msg)
        .unwrap();
    let mut probe = build::tunnelled(LB, OUR, ha(), coa(), &inner).unwrap();
    out.push(("probe_tunnel_reply", control(e.on_frame(now, &mut probe))));
    // Neighbor Discovery.
    let mut ns =
        build::neighbor_solicit(LB, build::link_local(LB), "fe80::1".parse().unwrap()).unwrap();
    out.push(("na_router", control(e.on_frame(now, &mut ns))));
    out.push((
        "ns_tunnel_address",
        build::neighbor_solicit(OUR, "fe80::1".parse().unwrap(), ha()).unwrap(),
    ));
    out
}

fn tshark(path: &std::path::Path) -> Vec<Value> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(path)
        .args([
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-T",
            "json",
            // Tunnelled frames have two "ipv6" layers: keep both (as an array).
            "--no-duplicate-keys",
        ])
        .output()
        .expect("tshark is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// Every value of `key` anywhere in the layer tree.
fn find<'a>(v: &'a Value, key: &str, acc: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    acc.push(x);
                }
                find(x, key, acc);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| find(x, key, acc)),
        _ => {}
    }
}

fn values(v: &Value, key: &str) -> Vec<String> {
    let mut acc = Vec::new();
    find(v, key, &mut acc);
    acc.into_iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn one(v: &Value, key: &str) -> String {
    let vs = values(v, key);
    assert!(!vs.is_empty(), "no {key} in {v:#}");
    vs[0].clone()
}

#[test]
fn every_emitted_frame_decodes_cleanly_in_tshark() {
    let frames = frames();
    let dir = std::env::temp_dir().join(format!("pktgen-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pktgen.pcap");
    {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(File::create(&path).unwrap(), header).unwrap();
        for (i, (_, f)) in frames.iter().enumerate() {
            w.write_packet(&PcapPacket::new(
                Duration::from_millis(i as u64),
                f.len() as u32,
                f,
            ))
            .unwrap();
        }
    }
    let decoded = tshark(&path);
    assert_eq!(decoded.len(), frames.len());
    let by_name: std::collections::HashMap<&str, &Value> =
        frames.iter().map(|(n, _)| *n).zip(decoded.iter()).collect();

    for ((name, frame), pkt) in frames.iter().zip(&decoded) {
        let layers = &pkt["_source"]["layers"];
        assert!(
            values(layers, "_ws.malformed").is_empty(),
            "{name}: malformed: {layers:#}"
        );
        for sev in values(layers, "_ws.expert.severity") {
            // 8388608 = PI_ERROR (expert info of error severity, e.g. a bad checksum).
            assert_ne!(sev, "8388608", "{name}: expert error: {layers:#}");
        }
        for key in [
            "udp.checksum.status",
            "tcp.checksum.status",
            "icmpv6.checksum.status",
        ] {
            for status in values(layers, key) {
                assert_eq!(status, "1", "{name}: {key} = {status} (1 = good)");
            }
        }
        let frame_len = one(layers, "frame.len");
        assert_eq!(frame_len, frame.len().to_string(), "{name}");
    }

    // Client packets.
    let udp = by_name["udp_64"]["_source"]["layers"].clone();
    assert_eq!(one(&udp, "ipv6.src"), "2001:db8:77::2a");
    assert_eq!(one(&udp, "ipv6.dst"), "2001:db8:100::1");
    assert_eq!(one(&udp, "udp.srcport"), "1024");
    assert_eq!(one(&udp, "udp.dstport"), "9999");
    assert_eq!(one(&udp, "udp.checksum.status"), "1");
    for name in ["udp_imix_590", "udp_imix_1514", "udp_stamped_128"] {
        assert_eq!(
            one(&by_name[name]["_source"]["layers"], "udp.checksum.status"),
            "1",
            "{name}"
        );
    }
    let syn = &by_name["tcp_syn_74"]["_source"]["layers"];
    assert_eq!(one(syn, "tcp.flags.syn"), "1");
    assert_eq!(one(syn, "tcp.flags.ack"), "0");
    assert_eq!(one(syn, "tcp.checksum.status"), "1");
    assert_eq!(
        one(
            &by_name["tcp_syn_stamped_200"]["_source"]["layers"],
            "tcp.checksum.status"
        ),
        "1"
    );

    // Binding Updates.
    for name in ["bu_trusted", "bu_authenticated"] {
        let bu = &by_name[name]["_source"]["layers"];
        assert_eq!(one(bu, "ipv6.src"), "2001:db8:2::10", "{name}");
        assert_eq!(one(bu, "ipv6.dst"), "2001:db8:ff::1", "{name}");
        assert_eq!(
            one(bu, "ipv6.opt.mipv6.home_address"),
            "2001:db8:100::1",
            "{name}"
        );
        assert_eq!(one(bu, "mip6.mhtype"), "5", "{name}");
        assert_eq!(one(bu, "mip6.bu.seqnr"), "42", "{name}");
        assert_eq!(one(bu, "mip6.bu.a_flag"), "1", "{name}");
        assert_eq!(one(bu, "mip6.bu.h_flag"), "1", "{name}");
        assert_eq!(one(bu, "mip6.bu.lifetime"), "15", "{name}");
    }
    let bu = &by_name["bu_authenticated"]["_source"]["layers"];
    assert_eq!(one(bu, "mip6.auth.subtype"), "1");
    assert_eq!(one(bu, "mip6.auth.mobility_spi"), SPI.to_string());
    assert_eq!(one(bu, "mip6.bi.bid"), "1");
    assert_eq!(one(bu, "mip6.vsm.vendorId"), "32473");
    // The authenticator, recomputed independently: First(96, HMAC-SHA1(key, CoA | HoA |
    // MH up to the SPI with the checksum zeroed)).
    let f = &frames
        .iter()
        .find(|(n, _)| *n == "bu_authenticated")
        .unwrap()
        .1;
    let mh = &f[14 + 40 + 24..];
    let mut covered = mh[..mh.len() - 12].to_vec();
    covered[4] = 0;
    covered[5] = 0;
    let key: Vec<u8> = (1..=20).collect();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&coa().octets());
    mac.update(&svc().octets());
    mac.update(&covered);
    let full = mac.finalize().into_bytes();
    assert_eq!(&mh[mh.len() - 12..], &full[..12]);
    let auth_hex: String = full[..12].iter().map(|b| format!("{b:02x}")).collect();
    // RFC 4285 §5: Option Length excludes Type and Length: subtype 1 + SPI 4 + 12 = 17,
    // and the option is the last one.
    assert_eq!((mh[mh.len() - 19], mh[mh.len() - 18]), (9, 17));
    // Wireshark's mip6 dissector shows Length - 7 octets of Authentication Data (it
    // subtracts Type and Length a second time), so it sees the first 10 of the 12.
    let shown = one(bu, "mip6.auth.auth_data").replace(':', "");
    assert!(
        shown.len() >= 20 && auth_hex.starts_with(&shown),
        "{shown} vs {auth_hex}"
    );

    // Member replies: reverse tunnel care-of -> tunnel address, inner service -> client.
    for name in ["member_reply_udp", "member_reply_tcp"] {
        let r = &by_name[name]["_source"]["layers"];
        let src = values(r, "ipv6.src");
        let dst = values(r, "ipv6.dst");
        assert_eq!(src, ["2001:db8:2::10", "2001:db8:100::1"], "{name}");
        assert_eq!(dst, ["2001:db8:ff::1", "2001:db8:77::1"], "{name}");
    }
    let r = &by_name["member_reply_udp"]["_source"]["layers"];
    assert_eq!(one(r, "udp.srcport"), "9999");
    assert_eq!(one(r, "udp.dstport"), "1024");
    let r = &by_name["member_reply_tcp"]["_source"]["layers"];
    assert_eq!(one(r, "tcp.flags.syn"), "1");
    assert_eq!(one(r, "tcp.flags.ack"), "1");

    // Probe answers.
    let r = &by_name["probe_echo_reply"]["_source"]["layers"];
    assert_eq!(one(r, "icmpv6.type"), "129");
    assert_eq!(one(r, "icmpv6.echo.identifier"), "0x1234");
    assert_eq!(one(r, "ipv6.src"), "2001:db8:2::10");
    let r = &by_name["probe_syn_ack"]["_source"]["layers"];
    assert_eq!(one(r, "tcp.flags.syn"), "1");
    assert_eq!(one(r, "tcp.flags.ack"), "1");
    assert_eq!(one(r, "tcp.ack_raw"), "778");
    let r = &by_name["probe_tunnel_reply"]["_source"]["layers"];
    assert_eq!(values(r, "ipv6.src"), ["2001:db8:2::10", "2001:db8:100::1"]);
    assert_eq!(values(r, "ipv6.dst"), ["2001:db8:ff::1", "2001:db8:ff::1"]);
    assert_eq!(one(r, "icmpv6.type"), "129");
    assert_eq!(one(r, "icmpv6.echo.identifier"), "0x4321");

    // Neighbor Discovery.
    let r = &by_name["na_router"]["_source"]["layers"];
    assert_eq!(one(r, "icmpv6.type"), "136");
    assert_eq!(one(r, "icmpv6.nd.na.target_address"), "fe80::1");
    assert_eq!(one(r, "icmpv6.nd.na.flag.r"), "1");
    assert_eq!(one(r, "icmpv6.nd.na.flag.s"), "1");
    assert_eq!(one(r, "icmpv6.opt.linkaddr"), "02:00:00:00:00:fe");
    assert_eq!(one(r, "ipv6.hlim"), "255");
    let r = &by_name["ns_tunnel_address"]["_source"]["layers"];
    assert_eq!(one(r, "icmpv6.nd.ns.target_address"), "2001:db8:ff::1");
    assert_eq!(one(r, "ipv6.dst"), "ff02::1:ff00:1");

    std::fs::remove_dir_all(&dir).unwrap();
}
