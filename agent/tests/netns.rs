//! The agent binary on real sockets, in two network namespaces joined by a veth pair:
//!
//! * "member": the agent, with its care-of address on the veth;
//! * "appliance": a responder that reads the BUs on an AF_PACKET socket, answers them with
//!   the appliance's own `Registrar` and sends the BAs (Type 2 routing header) on a raw
//!   socket, then sends one IPv6-in-IPv6 UDP datagram to the care-of address, which a UDP
//!   socket bound to the service address in the member namespace must receive.
//!
//! The helpers that run inside a namespace are this test binary itself, re-executed under
//! `ip netns exec` (see [`role_entry`] and tests/common). The tests need root and `ip`;
//! without them they say so and pass without checking anything.

mod common;

use std::io::Read;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anycast6_agent::packets::ipv6_packet;
use anycast6_wire::checksum::proto;
use anycast6_wire::udp::{UdpPacket, UdpRepr};
use common::{
    a, address_and_up, agent_binary, exec, helper, ip, registered_agent, scratch_dir, signal,
    spawn_piped, unavailable, veth, wait_for, write_key_file, Guard, Namespaces, HA, SERVICE, SPI,
    UDP_PORT,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Two namespaces and a veth pair; removed on drop.
struct Topology {
    member: String,
    appliance: String,
    care_of: Ipv6Addr,
    _namespaces: Namespaces,
}

impl Topology {
    fn new(tag: &str, care_of: &str) -> Topology {
        let id = std::process::id() % 100_000;
        let (member, appliance) = (format!("a6ag-m{tag}{id}"), format!("a6ag-h{tag}{id}"));
        let namespaces = Namespaces::new(vec![member.clone(), appliance.clone()]);
        let (member_if, peer) = (format!("a6m{tag}{id}"), format!("a6h{tag}{id}"));
        veth(&member, &member_if, &appliance, &peer);
        address_and_up(&member, &member_if, care_of);
        address_and_up(&appliance, &peer, HA);
        // On-link routes for both /128s (no prefixes assigned, so nothing else is on-link).
        ip(&["-n", &member, "-6", "route", "add", HA, "dev", &member_if]).unwrap();
        ip(&[
            "-n", &appliance, "-6", "route", "add", care_of, "dev", &peer,
        ])
        .unwrap();
        Topology {
            member,
            appliance,
            care_of: a(care_of),
            _namespaces: namespaces,
        }
    }

    /// A helper role in `ns` that knows the care-of address.
    fn helper(&self, ns: &str, role: &str) -> Command {
        let mut c = helper(ns, role);
        c.env("A6_CARE_OF", self.care_of.to_string());
        c
    }
}

/// True when `rules` (output of `ip -6 rule show`) has exactly this line.
fn has_rule(rules: &str, line: &str) -> bool {
    rules.lines().any(|l| l.trim_end() == line)
}

fn agent_status(state_file: &Path) -> String {
    let out = Command::new(agent_binary())
        .args(["status", "--state-file"])
        .arg(state_file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
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
    let dir = scratch_dir(&format!("a6agent-netns-{tag}"));
    let key_file = write_key_file(&dir);
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

    let agent_log = dir.join("agent.log");
    let log = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    // Registered, with the fixed weight.
    let (mut responder, mut responder_lines, mut agent) = registered_agent(
        t.helper(&t.appliance, "responder"),
        &t.member,
        &config,
        &agent_log,
    );
    assert!(
        responder_lines.seen.iter().any(|l| l.contains("weight=77")),
        "{:?}",
        responder_lines.seen
    );
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
    let ping = t.helper(&t.appliance, "ping_care_of").output().unwrap();
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
    let (listener, mut listener_lines) = spawn_piped(t.helper(&t.member, "udp_listen"));
    assert!(
        listener_lines.wait("listening", Duration::from_secs(10)),
        "{:?}",
        listener_lines.seen
    );
    let sent = t.helper(&t.appliance, "send_tunnel").output().unwrap();
    assert!(sent.status.success(), "{sent:?}");
    let expected = if delivers {
        "udp_received payload=through-the-tunnel from=[2001:db8:9::5]:5555"
    } else {
        "udp_timeout"
    };
    assert!(
        listener_lines.wait(expected, Duration::from_secs(5)),
        "expected {expected} with delivery {chosen}: {:?}\nagent: {}",
        listener_lines.seen,
        log()
    );
    drop(listener);

    // Refreshed at the Binding Refresh Advice: 8 s granted, advice 1 unit (4 s).
    assert!(
        responder_lines.wait("event=member_refreshed", Duration::from_secs(8)),
        "no refresh: {:?}\nagent: {}",
        responder_lines.seen,
        log()
    );

    // SIGTERM: lifetime-0 BU, BA, exit 0, delivery undone.
    assert!(signal(agent.id(), "-TERM"));
    assert!(
        responder_lines.wait("reason=deregistered", Duration::from_secs(10)),
        "no de-registration: {:?}\nagent: {}",
        responder_lines.seen,
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
        responder_lines.seen.join("\n")
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

    signal(responder.id(), "-TERM");
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
    let dir = scratch_dir("a6agent-netns-k");
    let state_file = dir.join("state.json");
    let start = || {
        Guard(
            exec(&t.member, agent_binary())
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
    signal(first.id(), "-KILL");
    let _ = first.wait();
    assert!(
        rules().contains("ipproto ipv6"),
        "a killed agent undoes nothing"
    );

    let mut second = start();
    assert!(wait_for(Duration::from_secs(5), running(second.id())));
    let r = rules();
    assert_eq!(r.matches("ipproto ipv6").count(), 1, "not stacked: {r}");
    signal(second.id(), "-TERM");
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
    let mut udp = vec![0u8; 8 + payload.len()];
    UdpRepr {
        src_port: 5555,
        dst_port: UDP_PORT,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut udp[..]),
        &client,
        &a(SERVICE),
        payload,
    )
    .unwrap();
    let inner = ipv6_packet(client, a(SERVICE), proto::UDP, 63, &udp).unwrap();
    let outer = ipv6_packet(a(HA), care_of, proto::IPV6, 64, &inner).unwrap();
    let tx = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(255))).unwrap();
    tx.send_to(&outer, &SockAddr::from(SocketAddrV6::new(care_of, 0, 0, 0)))
        .unwrap();
}

/// Entry point of the helpers: does nothing unless re-executed with a role.
#[test]
#[ignore = "helper run by the namespace tests inside a namespace"]
fn role_entry() {
    match common::role().as_deref() {
        Some("responder") => common::responder(),
        Some("udp_listen") => common::udp_listen(Duration::from_secs(3)),
        Some("send_tunnel") => send_tunnel(),
        Some("ping_care_of") => ping_care_of(),
        _ => {}
    }
}
