//! The harness the namespace tests (tests/netns.rs, tests/ro_netns.rs) share: network
//! namespaces and veth pairs, child processes that do not outlive a failed test, the
//! agent binary, and the helper roles that run inside a namespace.
//!
//! The helpers are the test binary itself, re-executed under `ip netns exec` with
//! [`ROLE_VAR`] naming the role; each test binary has a `role_entry` test (ignored when
//! run normally) that dispatches on [`role`].

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

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
pub use anycast6_agent::delivery::ip;
use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The appliance's home-agent (tunnel) address.
pub const HA: &str = "2001:db8:ffff::1";
pub const SERVICE: &str = "2001:db8:aaaa::80";
pub const SPI: u32 = 4097;
pub const KEY_HEX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
/// The port the service socket listens on.
pub const UDP_PORT: u16 = 9000;
/// The environment variable naming the helper role of a re-executed test binary.
pub const ROLE_VAR: &str = "A6_NETNS_ROLE";

pub fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Why the namespace tests cannot run here (not root, no iproute2), if they cannot.
pub fn unavailable() -> Option<String> {
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

/// Network namespaces with their loopback up; removed on drop.
pub struct Namespaces(Vec<String>);

impl Namespaces {
    pub fn new(names: Vec<String>) -> Namespaces {
        for ns in &names {
            // Left over by an earlier run that was killed.
            let _ = ip(&["netns", "del", ns]);
            ip(&["netns", "add", ns]).unwrap();
            ip(&["-n", ns, "link", "set", "lo", "up"]).unwrap();
        }
        Namespaces(names)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A veth pair: `if_a` in namespace `ns_a`, `if_b` in `ns_b`.
pub fn veth(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) {
    ip(&[
        "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
    ])
    .unwrap();
}

/// Adds `addr` (with its prefix length, if any) to `dev` in `ns`, without DAD, and sets
/// the device up.
pub fn address_and_up(ns: &str, dev: &str, addr: &str) {
    ip(&["-n", ns, "addr", "add", addr, "dev", dev, "nodad"]).unwrap();
    ip(&["-n", ns, "link", "set", dev, "up"]).unwrap();
}

/// `program` run inside namespace `ns`.
pub fn exec(ns: &str, program: &Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(program);
    c
}

/// This test binary as the helper `role` inside namespace `ns`.
pub fn helper(ns: &str, role: &str) -> Command {
    let me = std::env::current_exe().unwrap();
    let mut c = exec(ns, &me);
    c.args([
        "--exact",
        "role_entry",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE_VAR, role);
    c
}

/// The helper role this process was started for, if any.
pub fn role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

/// A child process that is killed if the test ends early (a failed assertion), so no
/// agent or helper outlives its namespace.
pub struct Guard(pub Child);

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

/// A child started with its stdout piped.
pub fn spawn_piped(mut command: Command) -> (Guard, Lines) {
    let mut child = Guard(command.stdout(Stdio::piped()).spawn().unwrap());
    let lines = Lines::of(&mut child);
    (child, lines)
}

/// The lines of a child's stdout, as they come, and those read so far.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    /// Every line read so far, for the failure messages.
    pub seen: Vec<String>,
}

impl Lines {
    pub fn of(child: &mut Child) -> Lines {
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// True once a line containing `what` has been read, earlier or within `timeout`.
    pub fn wait(&mut self, what: &str, timeout: Duration) -> bool {
        if self.seen.iter().any(|l| l.contains(what)) {
            return true;
        }
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(what);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }
}

/// Polls `f` every 100 ms until it holds or `timeout` has passed.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A fresh directory for one test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The MN-HA key file (SPI and key above) in `dir`, readable by its owner only as the
/// agent requires.
pub fn write_key_file(dir: &Path) -> PathBuf {
    let key_file = dir.join("keys.toml");
    std::fs::write(
        &key_file,
        format!("[[keys]]\nspi = {SPI}\nkey = \"{KEY_HEX}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    key_file
}

/// The agent binary.
pub fn agent_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_anycast6-agent"))
}

/// `anycast6-agent run --config config` in namespace `ns`, its log (stderr) in `log`.
pub fn start_agent(ns: &str, config: &Path, log: &Path) -> Guard {
    Guard(
        exec(ns, agent_binary())
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// The appliance's registrar (`responder`, the [`responder`] role) and the agent run in
/// namespace `member_ns` with `config`, its log in `log`; returns once the agent has
/// registered: the responder, its lines and the agent.
pub fn registered_agent(
    responder: Command,
    member_ns: &str,
    config: &Path,
    log: &Path,
) -> (Guard, Lines, Guard) {
    let (responder, mut lines) = spawn_piped(responder);
    assert!(
        lines.wait("responder ready", Duration::from_secs(10)),
        "responder did not start: {:?}",
        lines.seen
    );
    let agent = start_agent(member_ns, config, log);
    assert!(
        lines.wait("event=member_joined", Duration::from_secs(10)),
        "no registration; responder: {:?}\nagent: {}",
        lines.seen,
        std::fs::read_to_string(log).unwrap_or_default()
    );
    (responder, lines, agent)
}

/// Sends `signal` (`-TERM`, `-KILL`) to process `pid`; true when `kill` succeeded.
pub fn signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

// ---- helper roles, run inside a namespace -------------------------------------------

fn now() -> Now {
    Now {
        mono: Instant::now(),
        unix: SystemTime::now().duration_since(UNIX_EPOCH).unwrap(),
    }
}

/// Answers BUs to [`HA`] with the appliance's own `Registrar` (key above, [`SERVICE`]
/// open to registrations) and prints its log lines, for 60 s at most. The BUs are read on
/// an AF_PACKET socket (this kernel has no Mobile IPv6 to hand them to a raw socket); the
/// BAs (Type 2 routing header included) go out on a raw socket.
pub fn responder() {
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

/// Binds [`SERVICE`] port [`UDP_PORT`] and prints every datagram that arrives within
/// `window`; `udp_timeout` at the end when none did.
pub fn udp_listen(window: Duration) {
    let socket = UdpSocket::bind(SocketAddrV6::new(a(SERVICE), UDP_PORT, 0, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    println!("listening");
    std::io::stdout().flush().unwrap();
    let end = Instant::now() + window;
    let mut buf = [0u8; 1500];
    let mut heard = false;
    while Instant::now() < end {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            heard = true;
            println!(
                "udp_received payload={} from={from}",
                String::from_utf8_lossy(&buf[..n])
            );
            std::io::stdout().flush().unwrap();
        }
    }
    if !heard {
        println!("udp_timeout");
    }
}
