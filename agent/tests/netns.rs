//! The agent binary on real sockets, in two network namespaces joined by a veth pair:
//!
//! * "member": the agent, with its care-of address on the veth;
//! * "appliance": a responder that reads the BUs on an AF_PACKET socket, answers them with
//!   the appliance's own `Registrar` and sends the BAs (Type 2 routing header) on a raw
//!   socket, then sends one IPv6-in-IPv6 UDP datagram to the care-of address, which a UDP
//!   socket bound to the service address in the member namespace must receive.
//!
//! The helpers that run inside a namespace are this test binary itself, re-executed under
//! `ip netns exec` with `A6_NETNS_ROLE` set (see [`role_entry`]). The tests need root and
//! `ip`; without them they say so and pass without checking anything.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anycast6::control::registration::{
    Now, ReceivedMh, Registrar, RegistrarConfig, Reply, ServiceRegistration,
};
use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::{Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::ExtHeaderChain;
use anycast6_wire::udp::{UdpPacket, UdpRepr};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const HA: &str = "2001:db8:ffff::1";
const SERVICE: &str = "2001:db8:aaaa::80";
const SPI: u32 = 4097;
const KEY_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const UDP_PORT: u16 = 9000;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Why the namespace tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        });
    if uid.as_deref() != Some("0") {
        return Some("not running as root".into());
    }
    if ip(&["-V"]).is_err() {
        return Some("the `ip` command (iproute2) is missing".into());
    }
    None
}

/// Two namespaces and a veth pair; removed on drop.
struct Topology {
    member: String,
    appliance: String,
    care_of: Ipv6Addr,
    member_if: String,
}

impl Topology {
    fn new(tag: &str, care_of: &str) -> Topology {
        let id = std::process::id() % 100_000;
        let t = Topology {
            member: format!("a6ag-m{tag}{id}"),
            appliance: format!("a6ag-h{tag}{id}"),
            care_of: a(care_of),
            member_if: format!("a6m{tag}{id}"),
        };
        let peer = format!("a6h{tag}{id}");
        let _ = ip(&["netns", "del", &t.member]);
        let _ = ip(&["netns", "del", &t.appliance]);
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &t.member],
            vec!["netns", "add", &t.appliance],
            vec![
                "link",
                "add",
                &t.member_if,
                "netns",
                &t.member,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
                "netns",
                &t.appliance,
            ],
            vec!["-n", &t.member, "link", "set", "lo", "up"],
            vec!["-n", &t.appliance, "link", "set", "lo", "up"],
            vec![
                "-n",
                &t.member,
                "addr",
                "add",
                care_of,
                "dev",
                &t.member_if,
                "nodad",
            ],
            vec!["-n", &t.appliance, "addr", "add", HA, "dev", &peer, "nodad"],
            vec!["-n", &t.member, "link", "set", &t.member_if, "up"],
            vec!["-n", &t.appliance, "link", "set", &peer, "up"],
        ];
        for step in steps {
            ip(&step).unwrap();
        }
        // On-link routes for both /128s (no prefixes assigned, so nothing else is on-link).
        ip(&[
            "-n",
            &t.member,
            "-6",
            "route",
            "add",
            HA,
            "dev",
            &t.member_if,
        ])
        .unwrap();
        ip(&[
            "-n",
            &t.appliance,
            "-6",
            "route",
            "add",
            care_of,
            "dev",
            &peer,
        ])
        .unwrap();
        t
    }

    fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.member]);
        let _ = ip(&["netns", "del", &self.appliance]);
    }
}

/// A child process that is killed if the test ends early (a failed assertion), so no
/// agent or helper outlives its namespace.
struct Guard(Child);

impl std::ops::Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// True when `rules` (output of `ip -6 rule show`) has exactly this line.
fn has_rule(rules: &str, line: &str) -> bool {
    rules.lines().any(|l| l.trim_end() == line)
}

/// This test binary, to run as a helper inside a namespace.
fn helper(t: &Topology, ns: &str, role: &str) -> Command {
    let me = std::env::current_exe().unwrap();
    let mut c = t.exec(ns, &me);
    c.args([
        "--exact",
        "role_entry",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("A6_NETNS_ROLE", role)
    .env("A6_CARE_OF", t.care_of.to_string());
    c
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(
    rx: &mpsc::Receiver<String>,
    what: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> bool {
    let end = Instant::now() + timeout;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(what);
                seen.push(line);
                if hit {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

fn agent_status(state_file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_anycast6-agent"))
        .args(["status", "--state-file"])
        .arg(state_file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("a6agent-netns-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Registration, tunnelled delivery, status, drain on SIGTERM and clean-up, with the
/// given delivery mode; returns the delivery the agent reported.
fn scenario(tag: &str, care_of: &str, delivery: &str) -> Option<String> {
    let delivers = delivery != "none";
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: namespace test needs root and iproute2: {why}");
        return None;
    }
    let t = Topology::new(tag, care_of);
    let dir = scratch_dir(tag);
    let key_file = dir.join("keys.toml");
    std::fs::write(
        &key_file,
        format!("[[keys]]\nspi = {SPI}\nkey = \"{KEY_HEX}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state_file = dir.join("state.json");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "appliance = \"{HA}\"\ncare_of = \"{care_of}\"\nservices = [\"{SERVICE}\"]\n\
             lifetime = 8\nspi = {SPI}\nkey_file = \"{}\"\ndelivery = \"{delivery}\"\n\
             state_file = \"{}\"\ndrain_timeout = 5\ndrain_linger = 1\n[load]\nsource = \"fixed\"\nweight = 77\n",
            key_file.display(),
            state_file.display()
        ),
    )
    .unwrap();

    let mut responder = Guard(
        helper(&t, &t.appliance, "responder")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let responder_lines = lines_of(&mut responder);
    let mut seen = Vec::new();
    assert!(
        wait_line(
            &responder_lines,
            "responder ready",
            Duration::from_secs(10),
            &mut seen
        ),
        "responder did not start: {seen:?}"
    );

    let agent_log = dir.join("agent.log");
    let mut agent = Guard(
        t.exec(&t.member, Path::new(env!("CARGO_BIN_EXE_anycast6-agent")))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&agent_log).unwrap_or_default();

    // Registered, with the fixed weight.
    assert!(
        wait_line(
            &responder_lines,
            "event=member_joined",
            Duration::from_secs(10),
            &mut seen
        ),
        "no registration; responder: {seen:?}\nagent: {}",
        log()
    );
    assert!(seen.iter().any(|l| l.contains("weight=77")), "{seen:?}");
    assert!(
        wait_for(Duration::from_secs(5), || agent_status(&state_file)
            .contains(": registered, lifetime left")),
        "status: {}\nagent: {}",
        agent_status(&state_file),
        log()
    );
    let status = agent_status(&state_file);
    assert!(status.contains("running"), "{status}");
    assert!(
        status.contains("last BA: status 0 (binding update accepted)"),
        "{status}"
    );
    assert!(status.contains("authenticated"), "{status}");
    let chosen = status
        .lines()
        .find_map(|l| l.split("delivery ").nth(1).map(str::to_string))
        .unwrap_or_default();

    // The appliance's health checks still reach the care-of address.
    let ping = helper(&t, &t.appliance, "ping_care_of").output().unwrap();
    let ping = String::from_utf8_lossy(&ping.stdout);
    assert!(ping.contains("echo_reply"), "{delivery}: {ping}");

    // A UDP socket bound to the service address receives a tunnelled datagram (and, as a
    // control, does not without decapsulation).
    if !delivers {
        ip(&[
            "-n",
            &t.member,
            "-6",
            "addr",
            "add",
            &format!("{SERVICE}/128"),
            "dev",
            "lo",
        ])
        .unwrap();
    }
    let mut listener = Guard(
        helper(&t, &t.member, "udp_listen")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let listener_lines = lines_of(&mut listener);
    let mut heard = Vec::new();
    assert!(
        wait_line(
            &listener_lines,
            "listening",
            Duration::from_secs(10),
            &mut heard
        ),
        "{heard:?}"
    );
    let sent = helper(&t, &t.appliance, "send_tunnel").output().unwrap();
    assert!(sent.status.success(), "{sent:?}");
    let expected = if delivers {
        "udp_received payload=through-the-tunnel from=[2001:db8:9::5]:5555"
    } else {
        "udp_timeout"
    };
    assert!(
        wait_line(
            &listener_lines,
            expected,
            Duration::from_secs(5),
            &mut heard
        ),
        "expected {expected} with delivery {chosen}: {heard:?}\nagent: {}",
        log()
    );
    let _ = listener.wait();

    // Refreshed at the Binding Refresh Advice: 8 s granted, advice 1 unit (4 s).
    assert!(
        wait_line(
            &responder_lines,
            "event=member_refreshed",
            Duration::from_secs(8),
            &mut seen
        ),
        "no refresh: {seen:?}\nagent: {}",
        log()
    );

    // SIGTERM: lifetime-0 BU, BA, exit 0, delivery undone.
    let kill = Command::new("kill")
        .args(["-TERM", &agent.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(
        wait_line(
            &responder_lines,
            "reason=deregistered",
            Duration::from_secs(10),
            &mut seen
        ),
        "no de-registration: {seen:?}\nagent: {}",
        log()
    );
    let exited = wait_for(Duration::from_secs(10), || {
        matches!(agent.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "agent did not exit after SIGTERM: {}", log());
    let code = agent.wait().unwrap();
    assert!(code.success(), "exit {code:?}: {}", log());
    let text = log();
    eprintln!(
        "--- agent log ({delivery}) ---\n{text}--- responder ---\n{}",
        seen.join("\n")
    );
    assert!(text.contains("event=drain_complete"), "{text}");
    assert!(
        text.contains("status=0 meaning=\"binding update accepted\""),
        "{text}"
    );
    let after = agent_status(&state_file);
    assert!(after.contains("NOT RUNNING"), "{after}");
    assert!(after.contains(": deregistered"), "{after}");
    let rules = ip(&["-n", &t.member, "-6", "rule", "show"]).unwrap();
    assert!(has_rule(&rules, "0:\tfrom all lookup local"), "{rules}");
    assert!(!rules.contains("ipproto"), "{rules}");
    // The agent removes the service address it added, and leaves one it found.
    let addrs = ip(&["-n", &t.member, "-6", "addr", "show", "dev", "lo"]).unwrap();
    assert_eq!(addrs.contains(SERVICE), !delivers, "{addrs}");
    let links = ip(&["-n", &t.member, "link", "show"]).unwrap();
    assert!(!links.contains("a6tun0"), "{links}");

    let _ = Command::new("kill")
        .args(["-TERM", &responder.id().to_string()])
        .status();
    let _ = responder.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Some(chosen)
}

#[test]
fn registration_and_delivery_with_auto() {
    if let Some(chosen) = scenario("a", "2001:db8:100::10", "auto") {
        // This kernel has no ip6tnl, so auto settles on seg6local; a kernel with it
        // takes ip6tnl.
        assert!(
            chosen == "seg6local" || chosen == "ip6tnl",
            "auto chose {chosen}"
        );
    }
}

#[test]
fn registration_without_delivery_delivers_nothing() {
    if let Some(chosen) = scenario("n", "2001:db8:100::50", "none") {
        assert_eq!(chosen, "none");
    }
}

#[test]
fn registration_and_delivery_with_tun() {
    if let Some(chosen) = scenario("t", "2001:db8:100::30", "tun") {
        assert_eq!(chosen, "tun");
    }
}

/// A SIGKILLed agent leaves its seg6local rules; the next one takes them over and restores
/// the default rules when it exits (here with no appliance answering: the drain times out).
#[test]
fn seg6local_rules_recovered_after_sigkill() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: namespace test needs root and iproute2: {why}");
        return;
    }
    let t = Topology::new("k", "2001:db8:100::70");
    let dir = scratch_dir("k");
    let state_file = dir.join("state.json");
    let start = || {
        Guard(
            t.exec(&t.member, Path::new(env!("CARGO_BIN_EXE_anycast6-agent")))
                .args(["run", "--appliance", HA, "--care-of", "2001:db8:100::70"])
                .args([
                    "--service",
                    SERVICE,
                    "--delivery",
                    "seg6local",
                    "--drain-timeout",
                    "1",
                    "--drain-linger",
                    "0",
                ])
                .arg("--state-file")
                .arg(&state_file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let rules = || ip(&["-n", &t.member, "-6", "rule", "show"]).unwrap();
    let running = |pid: u32| {
        let path = state_file.clone();
        move || std::fs::read_to_string(&path).is_ok_and(|s| s.contains(&format!("\"pid\": {pid}")))
    };

    let mut first = start();
    assert!(wait_for(Duration::from_secs(5), running(first.id())));
    let r = rules();
    assert!(
        r.contains("5:\tfrom all to 2001:db8:100::70 ipproto ipv6 lookup 166"),
        "{r}"
    );
    assert!(has_rule(&r, "10:\tfrom all lookup local"), "{r}");
    assert!(!has_rule(&r, "0:\tfrom all lookup local"), "{r}");
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    let _ = first.wait();
    assert!(
        rules().contains("ipproto ipv6"),
        "a killed agent undoes nothing"
    );

    let mut second = start();
    assert!(wait_for(Duration::from_secs(5), running(second.id())));
    let r = rules();
    assert_eq!(r.matches("ipproto ipv6").count(), 1, "not stacked: {r}");
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || matches!(
        second.try_wait(),
        Ok(Some(_))
    )));
    let r = rules();
    assert!(has_rule(&r, "0:\tfrom all lookup local"), "{r}");
    assert!(!r.contains("lookup 166"), "{r}");
    assert!(!has_rule(&r, "10:\tfrom all lookup local"), "{r}");
    let routes = ip(&["-n", &t.member, "-6", "route", "show", "table", "166"]).unwrap();
    assert!(routes.trim().is_empty(), "{routes}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- helper roles, run inside a namespace -------------------------------------------

fn now() -> Now {
    Now {
        mono: Instant::now(),
        unix: SystemTime::now().duration_since(UNIX_EPOCH).unwrap(),
    }
}

/// Answers BUs with the appliance's `Registrar` until SIGTERM kills it (or 60 s pass).
fn responder() {
    let mut config = RegistrarConfig::new(a(HA));
    config.services.push(ServiceRegistration {
        address: a(SERVICE),
        accept_registrations: true,
        max_bindings: 8,
    });
    let key: Vec<u8> = (0..KEY_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY_HEX[i..i + 2], 16).unwrap())
        .collect();
    config.keys.insert(SPI, key);
    let mut registrar = Registrar::new(config);
    let rx = Socket::new(
        Domain::PACKET,
        Type::DGRAM,
        Some(Protocol::from(i32::from(0x86ddu16.to_be()))),
    )
    .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let tx = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255))).unwrap();
    println!("responder ready");
    std::io::stdout().flush().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        for e in registrar.on_timer(Instant::now()) {
            println!("{e}");
        }
        let n = match (&rx).read(&mut buf) {
            Ok(n) => n,
            Err(_) => continue,
        };
        let Ok(ip) = Ipv6Packet::new_checked(&buf[..n]) else {
            continue;
        };
        if ip.dst_addr() != a(HA) {
            continue;
        }
        let Ok(chain) = ExtHeaderChain::of_packet(&ip) else {
            continue;
        };
        if chain.upper_layer != proto::MOBILITY {
            continue;
        }
        let Some(mh) = chain.upper_layer_bytes(ip.payload()) else {
            continue;
        };
        let received = ReceivedMh {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            home_address: chain.home_address,
            mh,
            mh_offset: 40 + chain.upper_offset,
        };
        let out = registrar.on_mobility_header(now(), &received);
        for line in &out.log {
            println!("{line}");
        }
        println!("verdict={:?}", out.verdict);
        std::io::stdout().flush().unwrap();
        if let Some(Reply::Packet(p)) = out.reply {
            let to = SockAddr::from(SocketAddrV6::new(ip.src_addr(), 0, 0, 0));
            tx.send_to(&p, &to).unwrap();
        }
    }
}

/// Binds the service address and prints the first datagram.
fn udp_listen() {
    let socket = UdpSocket::bind(SocketAddrV6::new(a(SERVICE), UDP_PORT, 0, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    println!("listening");
    std::io::stdout().flush().unwrap();
    let mut buf = [0u8; 1500];
    match socket.recv_from(&mut buf) {
        Ok((n, from)) => println!(
            "udp_received payload={} from={from}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => println!("udp_timeout {e}"),
    }
}

/// Sends an ICMPv6 Echo Request to the care-of address and prints whether it was answered.
fn ping_care_of() {
    let care_of: Ipv6Addr = std::env::var("A6_CARE_OF").unwrap().parse().unwrap();
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let to = SockAddr::from(SocketAddrV6::new(care_of, 0, 0, 0));
    // The kernel fills the checksum of ICMPv6 raw sockets.
    s.send_to(&[128, 0, 0, 0, 0x12, 0x34, 0, 1], &to).unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        if let Ok(n) = (&s).read(&mut buf) {
            if n >= 8 && buf[0] == 129 && buf[4..6] == [0x12, 0x34] {
                println!("echo_reply");
                return;
            }
        }
    }
    println!("echo_timeout");
}

/// Sends one IPv6-in-IPv6 UDP datagram from the appliance to the care-of address, as the
/// appliance's data plane would (RFC 2473).
fn send_tunnel() {
    let care_of: Ipv6Addr = std::env::var("A6_CARE_OF").unwrap().parse().unwrap();
    let client = a("2001:db8:9::5");
    let payload = b"through-the-tunnel";
    let udp_len = 8 + payload.len();
    let mut inner = vec![0u8; 40 + udp_len];
    Ipv6Repr {
        src: client,
        dst: a(SERVICE),
        next_header: proto::UDP,
        payload_len: udp_len,
        hop_limit: 63,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut inner[..]))
    .unwrap();
    UdpRepr {
        src_port: 5555,
        dst_port: UDP_PORT,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut inner[40..]),
        &client,
        &a(SERVICE),
        payload,
    )
    .unwrap();
    let mut outer = vec![0u8; 40];
    Ipv6Repr {
        src: a(HA),
        dst: care_of,
        next_header: proto::IPV6,
        payload_len: inner.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut Ipv6Packet::new_unchecked(&mut outer[..]))
    .unwrap();
    outer.extend_from_slice(&inner);
    let tx = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255))).unwrap();
    tx.send_to(&outer, &SockAddr::from(SocketAddrV6::new(care_of, 0, 0, 0)))
        .unwrap();
}

/// Entry point of the helpers: does nothing unless re-executed with `A6_NETNS_ROLE`.
#[test]
#[ignore = "helper run by the namespace tests inside a namespace"]
fn role_entry() {
    match std::env::var("A6_NETNS_ROLE").as_deref() {
        Ok("responder") => responder(),
        Ok("udp_listen") => udp_listen(),
        Ok("send_tunnel") => send_tunnel(),
        Ok("ping_care_of") => ping_care_of(),
        _ => {}
    }
}
