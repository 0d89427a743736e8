//! Route optimisation end to end, without the appliance: the agent binary against the
//! project's correspondent-node emulator (e2e/cn/run_cn.py, Python + scapy, independent of
//! the Rust code) and against a plain Linux client.
//!
//! Four network namespaces around a router:
//!
//! ```text
//!   member (agent, care-of 2001:db8:100::10) ── router ── cn (run_cn.py on TUN, 2001:db8:3::1)
//!                                                  └───── legacy (plain Linux, 2001:db8:8::2)
//! ```
//!
//! The router stands in for the appliance with plain kernel routing: the service address
//! is routed to the member with `seg6 encap.red` and one segment, which is exactly RFC 2473
//! IPv6-in-IPv6 from the tunnel source (the "home agent" address); packets to the home
//! agent address that carry IPv6-in-IPv6 (the member's reverse-tunnelled HoTI) are
//! decapsulated by a `seg6local End.DT6` route and forwarded to the client. The home
//! registration is answered by the appliance's own `Registrar` (a helper in the router
//! namespace), as in tests/netns.rs.
//!
//! The tests need root, `ip` and the project's Python venv with scapy; without them they
//! say so and pass without checking anything.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddrV6, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    a, address_and_up, exec, helper, ip, registered_agent, scratch_dir, signal, spawn_piped, veth,
    wait_for, write_key_file, Namespaces, HA, SERVICE, SPI, UDP_PORT,
};

const CARE_OF: &str = "2001:db8:100::10";
const ROUTER_MEMBER_SIDE: &str = "2001:db8:100::1";
const CN: &str = "2001:db8:3::1";
const CN_LINK: &str = "2001:db8:9::2";
const ROUTER_CN_SIDE: &str = "2001:db8:9::1";
const LEGACY: &str = "2001:db8:8::2";
const ROUTER_LEGACY_SIDE: &str = "2001:db8:8::1";

fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

fn run_cn_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/cn/run_cn.py")
}

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    if let Some(why) = common::unavailable() {
        return Some(why);
    }
    let scapy = Command::new(python()).args(["-c", "import scapy"]).output();
    if !scapy.is_ok_and(|o| o.status.success()) {
        return Some(format!("{} with scapy is missing", python().display()));
    }
    None
}

/// The four namespaces; removed on drop.
struct Net {
    member: String,
    router: String,
    cn: String,
    legacy: String,
    _namespaces: Namespaces,
}

impl Net {
    fn new(tag: &str) -> Net {
        let id = std::process::id() % 100_000;
        let n = |role: &str| format!("a6ro-{role}{tag}{id}");
        let (member, router, cn, legacy) = (n("m"), n("r"), n("c"), n("l"));
        let namespaces = Namespaces::new(vec![
            member.clone(),
            router.clone(),
            cn.clone(),
            legacy.clone(),
        ]);
        let (m, r, c, l) = (&member, &router, &cn, &legacy);
        let links = [
            (m, "m0", "rm", CARE_OF, ROUTER_MEMBER_SIDE),
            (c, "c0", "rc", CN_LINK, ROUTER_CN_SIDE),
            (l, "l0", "rl", LEGACY, ROUTER_LEGACY_SIDE),
        ];
        for (ns, inside, outside, addr, router_addr) in links {
            let (inside, outside) = (format!("{inside}{id}"), format!("{outside}{id}"));
            veth(ns, &inside, r, &outside);
            address_and_up(ns, &inside, &format!("{addr}/64"));
            address_and_up(r, &outside, &format!("{router_addr}/64"));
            ip(&[
                "-n",
                ns,
                "-6",
                "route",
                "add",
                "default",
                "via",
                router_addr,
            ])
            .unwrap();
        }
        let rm = format!("rm{id}");
        let steps: Vec<Vec<&str>> = vec![
            vec!["-n", r, "addr", "add", HA, "dev", &rm, "nodad"],
            vec![
                "-n",
                r,
                "-6",
                "route",
                "add",
                "2001:db8:3::/64",
                "via",
                CN_LINK,
            ],
            // The appliance's tunnel to the member: IPv6-in-IPv6 from the home agent
            // address (encap.red with a single segment carries no SRH).
            vec!["netns", "exec", r, "ip", "sr", "tunsrc", "set", HA],
            vec![
                "-n",
                r,
                "-6",
                "route",
                "add",
                SERVICE,
                "encap",
                "seg6",
                "mode",
                "encap.red",
                "segs",
                CARE_OF,
                "dev",
                &rm,
            ],
            // The reverse tunnel: IPv6-in-IPv6 to the home agent address is decapsulated
            // and the inner packet (the HoTI) routed on. The home agent address is local,
            // so the selector rule must come before the local table.
            vec![
                "-n",
                r,
                "-6",
                "route",
                "add",
                "table",
                "100",
                HA,
                "encap",
                "seg6local",
                "action",
                "End.DT6",
                "table",
                "254",
                "dev",
                &rm,
            ],
            vec![
                "-n", r, "-6", "rule", "add", "pref", "10", "lookup", "local",
            ],
            vec!["-n", r, "-6", "rule", "del", "pref", "0", "lookup", "local"],
            vec![
                "-n", r, "-6", "rule", "add", "pref", "5", "to", HA, "ipproto", "ipv6", "lookup",
                "100",
            ],
        ];
        for step in steps {
            ip(&step).unwrap();
        }
        for ns in [r, c] {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .arg("net.ipv6.conf.all.forwarding=1")
                .status()
                .unwrap();
            assert!(out.success());
        }
        Net {
            member,
            router,
            cn,
            legacy,
            _namespaces: namespaces,
        }
    }
}

/// One command on the emulator's control socket; its JSON answer.
fn cn_command(socket: &Path, command: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], true, "{command}: {v}");
    v
}

#[test]
fn route_optimisation_with_seg6local_delivery() {
    scenario("a", "auto");
}

/// With the TUN decapsulator, the HoT reaches the local stack through a6tun0 rather than
/// End.DT6; route optimisation must not care.
#[test]
fn route_optimisation_with_tun_delivery() {
    scenario("t", "tun");
}

/// The emulated client route-optimises, its data takes the Type 2 routing header path,
/// a plain Linux client is marked legacy once, and SIGTERM deletes the client's binding
/// before the home registration.
fn scenario(tag: &str, delivery: &str) {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED: route-optimisation namespace test: {why}");
        return;
    }
    let net = Net::new(tag);
    let dir = scratch_dir(&format!("a6agent-ro-{tag}"));
    let key_file = write_key_file(&dir);
    let state_file = dir.join("state.json");
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "appliance = \"{HA}\"\ncare_of = \"{CARE_OF}\"\nservices = [\"{SERVICE}\"]\n\
             lifetime = 120\nspi = {SPI}\nkey_file = \"{}\"\nstate_file = \"{}\"\n\
             drain_timeout = 5\ndrain_linger = 0\nroute_optimisation = true\n\
             delivery = \"{delivery}\"\n",
            key_file.display(),
            state_file.display()
        ),
    )
    .unwrap();

    // The home agent's registrar, in the router, and the registered agent.
    let agent_log = dir.join("agent.log");
    let log = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    let (_responder, _responder_lines, mut agent) = registered_agent(
        helper(&net.router, "responder"),
        &net.member,
        &config,
        &agent_log,
    );
    assert!(
        log().contains("event=route_optimisation tun=a6ro0"),
        "{}",
        log()
    );

    // The correspondent-node emulator.
    let control = dir.join("cn.sock");
    let mut emulator = exec(&net.cn, &python());
    emulator
        .arg(run_cn_py())
        .args(["--address", CN, "--ifname", "cn0", "--control"])
        .arg(&control);
    let (mut cn, mut cn_lines) = spawn_piped(emulator);
    assert!(
        cn_lines.wait("\"ready\"", Duration::from_secs(20)),
        "{:?}",
        cn_lines.seen
    );

    // A service socket on the member, printing what it receives.
    let (_listener, mut heard) = spawn_piped(helper(&net.member, "udp_listen"));
    assert!(heard.wait("listening", Duration::from_secs(10)));

    // The client's first datagram reaches the member through the "appliance" and starts
    // return routability; the emulator accepts the BU.
    cn_command(
        &control,
        &format!("send-udp {SERVICE} 5555 {UDP_PORT} via-appliance"),
    );
    assert!(
        heard.wait("payload=via-appliance", Duration::from_secs(5)),
        "{:?}\nagent: {}",
        heard.seen,
        log()
    );
    assert!(
        wait_for(Duration::from_secs(10), || log()
            .contains(&format!("event=ro_bound client={CN} lifetime="))),
        "not bound\nagent: {}\ncn: {:?}",
        log(),
        cn_lines.seen
    );
    let text = log();
    assert!(
        text.contains(&format!("event=ro_start client={CN}")),
        "{text}"
    );
    assert!(text.contains("event=ro_home_test"), "{text}");
    assert!(text.contains("event=ro_care_of_test"), "{text}");
    let bindings = cn_command(&control, "bindings");
    assert_eq!(
        bindings["bindings"][SERVICE]["coa"], CARE_OF,
        "the emulator's binding cache: {bindings}"
    );
    assert!(cn_lines.wait("bu_accepted", Duration::from_secs(2)));

    // Route-optimised data: straight to the care-of address with a Type 2 routing header,
    // delivered to the service socket by the agent.
    cn_command(
        &control,
        &format!("send-udp {SERVICE} 5556 {UDP_PORT} route-optimised"),
    );
    assert!(
        cn_lines.wait("\"routing_header\": true", Duration::from_secs(2)),
        "{:?}",
        cn_lines.seen
    );
    assert!(
        heard.wait("payload=route-optimised", Duration::from_secs(5)),
        "{:?}\nagent: {}",
        heard.seen,
        log()
    );
    assert!(
        heard
            .seen
            .iter()
            .any(|l| l.contains(&format!("from=[{CN}]:5556"))),
        "{:?}",
        heard.seen
    );

    // A plain Linux client answers the tests with Parameter Problem code 1: legacy, once.
    let send_legacy = || {
        let out = helper(&net.legacy, "send_udp").output().unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    send_legacy();
    assert!(
        wait_for(Duration::from_secs(10), || log()
            .contains(&format!("event=ro_legacy client={LEGACY}"))),
        "legacy client not recognised\nagent: {}",
        log()
    );
    send_legacy();
    std::thread::sleep(Duration::from_secs(2));
    let text = log();
    assert_eq!(
        text.matches(&format!("event=ro_start client={LEGACY}"))
            .count(),
        1,
        "{text}"
    );
    assert!(
        !text.contains(&format!("event=ro_bu_sent client={LEGACY}")),
        "{text}"
    );

    // The state file lists both.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let correspondents = state["correspondents"].as_array().unwrap();
    let state_of = |client: &str| {
        correspondents
            .iter()
            .find(|c| c["client"] == client)
            .map(|c| c["state"].clone())
    };
    assert_eq!(state_of(CN), Some("bound".into()), "{state}");
    assert_eq!(state_of(LEGACY), Some("legacy".into()), "{state}");

    // SIGTERM: the correspondent binding is deleted first (lifetime-0 BU), then the home
    // registration.
    assert!(signal(agent.id(), "-TERM"));
    assert!(
        wait_for(Duration::from_secs(15), || matches!(
            agent.try_wait(),
            Ok(Some(_))
        )),
        "agent did not exit: {}",
        log()
    );
    let text = log();
    eprintln!("--- agent log ({delivery}) ---\n{text}");
    assert!(
        text.contains(&format!("event=ro_deregistered client={CN}"))
            && text.contains("result=accepted"),
        "{text}"
    );
    assert!(text.contains("event=drain_complete"), "{text}");
    let bindings = cn_command(&control, "bindings");
    assert_eq!(bindings["bindings"], serde_json::json!({}), "{bindings}");
    let deregistered_at = text.find("event=ro_deregistered").unwrap();
    let home_drain_at = text.find("event=drain_start").unwrap();
    assert!(deregistered_at < home_drain_at, "{text}");
    let links = ip(&["-n", &net.member, "link", "show"]).unwrap();
    assert!(!links.contains("a6ro0"), "{links}");

    let _ = cn_command(&control, "quit");
    let _ = cn.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- helper roles, run inside a namespace -------------------------------------------

/// One datagram from a plain Linux client to the service.
fn send_udp() {
    let socket = UdpSocket::bind("[::]:0").unwrap();
    socket
        .send_to(b"legacy", SocketAddrV6::new(a(SERVICE), UDP_PORT, 0, 0))
        .unwrap();
}

/// Entry point of the helpers: does nothing unless re-executed with a role.
#[test]
#[ignore = "helper run by the namespace test inside a namespace"]
fn role_entry() {
    match common::role().as_deref() {
        Some("responder") => common::responder(),
        Some("udp_listen") => common::udp_listen(Duration::from_secs(60)),
        Some("send_udp") => send_udp(),
        _ => {}
    }
}
