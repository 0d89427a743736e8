//! pktgen against the real appliance, two processes over vhost-user: pktgen owns a
//! `net_vhost` port (the server socket), `anycast6 run` a `virtio_user` port connected to
//! it. pktgen plays the appliance's next hop (answers its Neighbor Solicitation), three
//! members register with RFC 4285-authenticated Binding Updates, answer the appliance's
//! tunnel health probes, and answer client traffic (reply mode, reverse-tunnelled). Then
//! member 2 is killed: the appliance must report it down.
//!
//! Checked: every member registered and received client traffic from the appliance's
//! tunnel, the clients got the replies back through the appliance (round trip) with
//! little loss, and the appliance logged `member_down` for the killed member.
//!
//! The appliance binary: `$ANYCAST6_BIN`, else `anycast6` next to this test's target
//! directory, built with cargo when missing. One #[test] per file.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn appliance_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ANYCAST6_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/appliance_interop-HASH -> target/<profile>/anycast6
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("anycast6");
    if !bin.exists() {
        let target = profile_dir.parent().unwrap();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "anycast6", "--bin", "anycast6"])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap())
            .status()
            .expect("cargo build of the appliance");
        assert!(status.success(), "building anycast6 failed");
    }
    bin
}

#[test]
fn members_register_and_serve_client_traffic_through_the_appliance() {
    let dir = std::env::temp_dir().join(format!("pktgen-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("vhost.sock");
    let keys = dir.join("keys.toml");
    std::fs::write(
        &keys,
        "[[keys]]\nspi = 300\nkey = \"0102030405060708090a0b0c0d0e0f1011121314\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("anycast6.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[appliance]
tunnel_address = "2001:db8:ff::1"
[dataplane]
workers = 1
[[ports]]
name = "uplink"
device = "virtio_user0,path={sock}"
mac = "02:00:00:00:00:01"
next_hop = "fe80::1"
[[services]]
address = "2001:db8:100::1"
affinity = "flow"
[services.health]
kind = "tunnel"
interval_ms = 200
timeout_ms = 150
rise = 1
fall = 3
[registration]
key_file = "{keys}"
[admin]
socket = ""
"#,
            sock = sock.display(),
            keys = keys.display()
        ),
    )
    .unwrap();
    let out = dir.join("pktgen.json");

    let pktgen = Command::new(env!("CARGO_BIN_EXE_anycast6-pktgen"))
        .args(["--device", &format!("net_vhost0,iface={}", sock.display())])
        .args([
            "--lcores",
            "1",
            "--tunnel-address",
            "2001:db8:ff::1",
            "--next-hop",
            "fe80::1",
        ])
        .args([
            "--service",
            "2001:db8:100::1",
            "--clients",
            "64",
            "--source-ports",
            "8",
        ])
        .args([
            "--members",
            "3",
            "--first-care-of",
            "2001:db8:2::10",
            "--member-mode",
            "reply",
        ])
        .args(["--spi", "300", "--key-file"])
        .arg(&keys)
        .args([
            "--lifetime",
            "40",
            "--rate",
            "5kpps",
            "--duration",
            "8",
            "--size",
            "128",
        ])
        .args([
            "--latency-sample",
            "5",
            "--kill-member",
            "2@9",
            "--warmup",
            "30",
            "--drain",
            "1",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pktgen");
    let mut pktgen = Kill(pktgen);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "net_vhost socket never appeared");
        if let Ok(Some(s)) = pktgen.0.try_wait() {
            panic!("pktgen exited early: {s}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut appliance = Kill(
        Command::new(appliance_bin())
            .args(["run", "--config"])
            .arg(&config)
            .args(["--duration", "40"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start anycast6"),
    );
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = appliance.0.stderr.take().unwrap();
    let log_writer = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log_writer.lock().unwrap().push(line);
        }
    });

    // pktgen: warm-up (registration), 8 s of traffic, the kill at 9 s after its start.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = pktgen.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "pktgen did not finish; appliance said {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut pg_err = String::new();
    if let Some(mut e) = pktgen.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut pg_err);
    }
    // Give the appliance's health checker time to declare the killed member down.
    let down_deadline = Instant::now() + Duration::from_secs(10);
    let down = loop {
        let found = log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("event=member_down") && l.contains("2001:db8:2::12"));
        if found || Instant::now() > down_deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-INT", &appliance.0.id().to_string()])
        .status();
    let _ = appliance.0.wait();
    let applog = log.lock().unwrap().join("\n");
    assert!(
        status.success(),
        "pktgen failed: {pg_err}\nappliance: {applog}"
    );

    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let members = r["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let sent = r["tx"]["packets"].as_u64().unwrap();
    assert!(sent > 10_000, "{r:#}");
    let mut total = 0;
    for m in members {
        assert!(
            m["ba_accepted"].as_u64().unwrap() >= 1,
            "not registered: {m:#}\n{applog}"
        );
        assert_eq!(m["last_ba_status"], 0, "{m:#}");
        let rx = m["rx_packets"].as_u64().unwrap();
        assert!(rx > 0, "member got no traffic: {m:#}\n{applog}");
        assert!(
            m["tunnel_probes"].as_u64().unwrap() > 0,
            "no tunnel probe answered: {m:#}"
        );
        total += rx;
    }
    assert!(
        total >= sent * 85 / 100,
        "members got {total} of {sent}: {r:#}"
    );
    // The replies came back through the appliance to the clients.
    let back = r["rx"]["client_packets"].as_u64().unwrap();
    assert!(
        back >= sent * 85 / 100,
        "clients got {back} of {sent} back: {r:#}\n{applog}"
    );
    assert!(r["latency"]["received"].as_u64().unwrap() > 1000, "{r:#}");
    assert!(r["latency"]["p50_ns"].as_u64().unwrap() > 0);
    // Learnt on the wire (our solicitation for the tunnel address, or its for the next
    // hop), never configured.
    assert_eq!(r["network"]["appliance_mac"], "02:00:00:00:00:01");
    assert_eq!(members[2]["alive"], false);
    assert!(
        down,
        "the appliance never reported member 2 down:\n{applog}"
    );
    println!(
        "sent {sent}, members {:?}, back {back}, latency p50 {} ns p99 {} ns",
        members
            .iter()
            .map(|m| m["rx_packets"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        r["latency"]["p50_ns"],
        r["latency"]["p99_ns"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
