//! Through a real EAL: pktgen's TX and RX loops on a `net_ring` port, which hands every
//! transmitted frame back to its RX queue. Client traffic (UDP and TCP SYN, IMIX sizes,
//! 1 packet in 10 stamped) goes out at a fixed rate and comes back: every packet and every
//! stamp must be counted, none lost or reordered, and the one-way latency must be
//! plausible. One #[test] per file: one EAL per process.

use std::time::Duration;

use anycast6_pktgen::profile::{Profile, RawProfile, RawValue};
use anycast6_pktgen::run::{run, RunOptions};

#[test]
fn net_ring_loopback_counts_every_packet_and_stamp() {
    let mut raw = RawProfile::default();
    for (k, v) in [
        ("clients", RawValue::Int(500)),
        ("source_ports", RawValue::Int(4)),
        ("protocol", RawValue::Text("mixed".into())),
        ("size", RawValue::Text("imix".into())),
        ("rate", RawValue::Text("200kpps".into())),
        ("count", RawValue::Int(100_000)),
        ("latency_sample", RawValue::Int(10)),
        ("appliance_mac", RawValue::Text("02:00:00:00:00:01".into())),
    ] {
        raw.set_flag(k, v);
    }
    let profile = Profile::resolve(&raw).unwrap();
    let out = std::env::temp_dir().join(format!("pktgen-ring-{}.json", std::process::id()));
    let report = run(&RunOptions {
        profile,
        device: "net_ring0".into(),
        lcores: "0-1".into(),
        huge: false,
        eal_args: vec![],
        mbufs: 8191,
        out: Some(out.clone()),
        live: false,
        drain: Duration::from_millis(300),
        warmup: Duration::from_secs(5),
        settle: Duration::ZERO,
    })
    .expect("run");
    assert_eq!(report.tx.packets, 100_000);
    assert_eq!(report.rx.client_packets, 100_000);
    assert_eq!(report.port.opackets, 100_000);
    assert_eq!(report.port.ipackets, 100_000);
    assert_eq!((report.loss.lost, report.loss.received), (0, 100_000));
    // 1 in 10 is due a stamp; 64-byte IMIX frames (74 with TCP in the mix) have no room
    // for one, so the stamp goes to the next frame that has: fewer than 10 000.
    let samples = report.tx.latency_samples;
    assert!((5_000..=10_000).contains(&samples), "{samples}");
    let l = &report.latency;
    assert_eq!(
        (l.received, l.lost, l.reordered, l.duplicates),
        (samples, 0, 0, 0)
    );
    assert!(
        l.percentiles.min_ns > 0 && l.percentiles.p50_ns < 100_000_000,
        "{l:?}"
    );
    // 200 kpps for 100 000 packets: about half a second.
    assert!(
        (0.4..2.0).contains(&report.tx.duration_s),
        "{}",
        report.tx.duration_s
    );
    assert!((150e3..250e3).contains(&report.tx.pps), "{}", report.tx.pps);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["tx"]["packets"], 100_000);
    assert_eq!(json["latency"]["received"], samples);
    assert_eq!(json["cores"], "single");
    std::fs::remove_file(&out).unwrap();
}
