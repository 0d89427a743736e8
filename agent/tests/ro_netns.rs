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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anycast6::control::registration::{
    Now, ReceivedMh, Registrar, RegistrarConfig, Reply, ServiceRegistration,
};
use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const HA: &str = "2001:db8:ffff::1";
const SERVICE: &str = "2001:db8:aaaa::80";
const CARE_OF: &str = "2001:db8:100::10";
const ROUTER_MEMBER_SIDE: &str = "2001:db8:100::1";
const CN: &str = "2001:db8:3::1";
const CN_LINK: &str = "2001:db8:9::2";
const ROUTER_CN_SIDE: &str = "2001:db8:9::1";
const LEGACY: &str = "2001:db8:8::2";
const ROUTER_LEGACY_SIDE: &str = "2001:db8:8::1";
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

fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

fn run_cn_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/cn/run_cn.py")
}

/// Why the test cannot run here, if it cannot.
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
}

impl Net {
    fn new(tag: &str) -> Net {
        let id = std::process::id() % 100_000;
        let n = |role: &str| format!("a6ro-{role}{tag}{id}");
        let net = Net {
            member: n("m"),
            router: n("r"),
            cn: n("c"),
            legacy: n("l"),
        };
        for ns in net.all() {
            let _ = ip(&["netns", "del", ns]);
            ip(&["netns", "add", ns]).unwrap();
            ip(&["-n", ns, "link", "set", "lo", "up"]).unwrap();
        }
        let (m, r, c, l) = (&net.member, &net.router, &net.cn, &net.legacy);
        let links = [
            (m, "m0", "rm", CARE_OF, ROUTER_MEMBER_SIDE),
            (c, "c0", "rc", CN_LINK, ROUTER_CN_SIDE),
            (l, "l0", "rl", LEGACY, ROUTER_LEGACY_SIDE),
        ];
        for (ns, inside, outside, addr, router_addr) in links {
            let (inside, outside) = (format!("{inside}{id}"), format!("{outside}{id}"));
            ip(&[
                "link", "add", &inside, "netns", ns, "type", "veth", "peer", "name", &outside,
                "netns", r,
            ])
            .unwrap();
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                &inside,
                "nodad",
            ])
            .unwrap();
            ip(&[
                "-n",
                r,
                "addr",
                "add",
                &format!("{router_addr}/64"),
                "dev",
                &outside,
                "nodad",
            ])
            .unwrap();
            ip(&["-n", ns, "link", "set", &inside, "up"]).unwrap();
            ip(&["-n", r, "link", "set", &outside, "up"]).unwrap();
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
        net
    }

    fn all(&self) -> [&String; 4] {
        [&self.member, &self.router, &self.cn, &self.legacy]
    }

    fn exec(&self, ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// This test binary as a helper inside `ns`.
    fn helper(&self, ns: &str, role: &str) -> Command {
        let me = std::env::current_exe().unwrap();
        let mut c = self.exec(ns, &me);
        c.args([
            "--exact",
            "role_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("A6_RO_ROLE", role);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.all() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A child process killed if the test ends early.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
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
    if seen.iter().any(|l| l.contains(what)) {
        return true;
    }
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
    let dir = std::env::temp_dir().join(format!("a6agent-ro-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
            "appliance = \"{HA}\"\ncare_of = \"{CARE_OF}\"\nservices = [\"{SERVICE}\"]\n\
             lifetime = 120\nspi = {SPI}\nkey_file = \"{}\"\nstate_file = \"{}\"\n\
             drain_timeout = 5\ndrain_linger = 0\nroute_optimisation = true\n\
             delivery = \"{delivery}\"\n",
            key_file.display(),
            state_file.display()
        ),
    )
    .unwrap();

    // The home agent's registrar, in the router.
    let mut responder = Guard(
        net.helper(&net.router, "responder")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let responder_lines = lines_of(&mut responder.0);
    let mut seen = Vec::new();
    assert!(
        wait_line(
            &responder_lines,
            "responder ready",
            Duration::from_secs(10),
            &mut seen
        ),
        "{seen:?}"
    );

    // The correspondent-node emulator.
    let control = dir.join("cn.sock");
    let mut cn = Guard(
        net.exec(&net.cn, &python())
            .arg(run_cn_py())
            .args(["--address", CN, "--ifname", "cn0", "--control"])
            .arg(&control)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let cn_lines = lines_of(&mut cn.0);
    let mut cn_seen = Vec::new();
    assert!(
        wait_line(
            &cn_lines,
            "\"ready\"",
            Duration::from_secs(20),
            &mut cn_seen
        ),
        "{cn_seen:?}"
    );

    let agent_log = dir.join("agent.log");
    let mut agent = Guard(
        net.exec(&net.member, Path::new(env!("CARGO_BIN_EXE_anycast6-agent")))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&agent_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(
        wait_line(
            &responder_lines,
            "event=member_joined",
            Duration::from_secs(10),
            &mut seen
        ),
        "no home registration: {seen:?}\nagent: {}",
        log()
    );
    assert!(
        log().contains("event=route_optimisation tun=a6ro0"),
        "{}",
        log()
    );

    // A service socket on the member, printing what it receives.
    let mut listener = Guard(
        net.helper(&net.member, "udp_listen")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let listener_lines = lines_of(&mut listener.0);
    let mut heard = Vec::new();
    assert!(wait_line(
        &listener_lines,
        "listening",
        Duration::from_secs(10),
        &mut heard
    ));

    // The client's first datagram reaches the member through the "appliance" and starts
    // return routability; the emulator accepts the BU.
    cn_command(
        &control,
        &format!("send-udp {SERVICE} 5555 {UDP_PORT} via-appliance"),
    );
    assert!(
        wait_line(
            &listener_lines,
            "payload=via-appliance",
            Duration::from_secs(5),
            &mut heard
        ),
        "{heard:?}\nagent: {}",
        log()
    );
    assert!(
        wait_for(Duration::from_secs(10), || log()
            .contains(&format!("event=ro_bound client={CN} lifetime="))),
        "not bound\nagent: {}\ncn: {cn_seen:?}",
        log()
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
    assert!(wait_line(
        &cn_lines,
        "bu_accepted",
        Duration::from_secs(2),
        &mut cn_seen
    ));

    // Route-optimised data: straight to the care-of address with a Type 2 routing header,
    // delivered to the service socket by the agent.
    cn_command(
        &control,
        &format!("send-udp {SERVICE} 5556 {UDP_PORT} route-optimised"),
    );
    assert!(
        wait_line(
            &cn_lines,
            "\"routing_header\": true",
            Duration::from_secs(2),
            &mut cn_seen
        ),
        "{cn_seen:?}"
    );
    assert!(
        wait_line(
            &listener_lines,
            "payload=route-optimised",
            Duration::from_secs(5),
            &mut heard
        ),
        "{heard:?}\nagent: {}",
        log()
    );
    assert!(
        heard
            .iter()
            .any(|l| l.contains(&format!("from=[{CN}]:5556"))),
        "{heard:?}"
    );

    // A plain Linux client answers the tests with Parameter Problem code 1: legacy, once.
    let send_legacy = || {
        let out = net.helper(&net.legacy, "send_udp").output().unwrap();
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
        !text.contains("event=ro_bu_sent client=2001:db8:8::2"),
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
    assert!(Command::new("kill")
        .args(["-TERM", &agent.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(
        wait_for(Duration::from_secs(15), || matches!(
            agent.0.try_wait(),
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
    let _ = cn.0.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- helper roles, run inside a namespace -------------------------------------------

/// Answers BUs with the appliance's `Registrar` (60 s at most).
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
        let now = Now {
            mono: Instant::now(),
            unix: SystemTime::now().duration_since(UNIX_EPOCH).unwrap(),
        };
        for e in registrar.on_timer(now.mono) {
            println!("{e}");
        }
        let Ok(n) = (&rx).read(&mut buf) else {
            continue;
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
        let out = registrar.on_mobility_header(now, &received);
        for line in &out.log {
            println!("{line}");
        }
        std::io::stdout().flush().unwrap();
        if let Some(Reply::Packet(p)) = out.reply {
            let to = SockAddr::from(SocketAddrV6::new(ip.src_addr(), 0, 0, 0));
            tx.send_to(&p, &to).unwrap();
        }
    }
}

/// Binds the service address and prints every datagram for 60 s.
fn udp_listen() {
    let socket = UdpSocket::bind(SocketAddrV6::new(a(SERVICE), UDP_PORT, 0, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    println!("listening");
    std::io::stdout().flush().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            println!(
                "udp_received payload={} from={from}",
                String::from_utf8_lossy(&buf[..n])
            );
            std::io::stdout().flush().unwrap();
        }
    }
}

/// One datagram from a plain Linux client to the service.
fn send_udp() {
    let socket = UdpSocket::bind("[::]:0").unwrap();
    socket
        .send_to(b"legacy", SocketAddrV6::new(a(SERVICE), UDP_PORT, 0, 0))
        .unwrap();
}

/// Entry point of the helpers: does nothing unless re-executed with `A6_RO_ROLE`.
#[test]
#[ignore = "helper run by the namespace test inside a namespace"]
fn role_entry() {
    match std::env::var("A6_RO_ROLE").as_deref() {
        Ok("responder") => responder(),
        Ok("udp_listen") => udp_listen(),
        Ok("send_udp") => send_udp(),
        _ => {}
    }
}
