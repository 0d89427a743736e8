//! The admin socket, `anycast6 ctl` and the metrics endpoint over real sockets.
//!
//! A harness thread plays the control loop: it answers [`ControlRequest`]s from a sample
//! [`ControlView`] and applies drain/undrain/reload to it, so every command goes through
//! the real server, the real `ctl` client code and the real HTTP server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anycast6::control::admin::{
    Action, AdminServer, ControlRequest, MemberSelector, CONTROL_ANSWER_TIMEOUT, MAX_CONNECTIONS,
    MAX_LINE,
};
use anycast6::control::metrics::{self, MetricsServer};
use anycast6::control::ro::{RoClientView, TriggerView};
use anycast6::control::view::{
    BindingView, ControlView, MemberView, PortView, ServiceView, WorkerView,
};
use anycast6::ctl::{self, CtlArgs, CtlCommand};
use serde_json::Value;

const SERVICE: &str = "2001:db8:100::1";

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn counters(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn member(care_of: &str, id: u32, origin: &str, packets: u64) -> MemberView {
    MemberView {
        service: addr(SERVICE),
        id,
        epoch: 1,
        care_of: addr(care_of),
        origin: origin.into(),
        weight: 1,
        state: "active".into(),
        health: "up".into(),
        health_detail: Some("up, 9/14 ok, rtt 1.8 ms".into()),
        lifetime_left_s: (origin == "registered").then_some(595),
        drain_left_s: None,
        packets,
        bytes: packets * 1200,
        flows: packets / 2,
        rev_packets: packets / 4,
        rev_bytes: packets * 300,
    }
}

/// Two static members and one registered one behind one service, two workers.
fn sample_view() -> ControlView {
    let mut burst0 = vec![0u64; 33];
    burst0[0] = 12_950_000;
    burst0[1] = 120;
    burst0[4] = 30;
    let mut burst1 = vec![0u64; 33];
    burst1[0] = 400;
    burst1[32] = 9_000;
    burst1[17] = 50;
    ControlView {
        version: "0.1.0".into(),
        pid: 4242,
        uptime_s: 3725.4,
        config_path: "/etc/anycast6/anycast6.toml".into(),
        config_generation: 0,
        snapshot_generation: 6,
        snapshots_retained: 1,
        ports: vec![PortView {
            name: "uplink".into(),
            device: "0000:03:00.0".into(),
            mac: "02:00:00:00:00:01".into(),
            mtu: 1500,
            next_hop: Some(addr("fe80::1")),
            next_hop_mac: Some("02:00:00:00:00:fe".into()),
            ipackets: 6_201_000,
            opackets: 6_150_000,
            ibytes: 7_400_000_000,
            obytes: 7_900_000_000,
            imissed: 12,
            ierrors: 0,
            oerrors: 0,
            rx_nombuf: 0,
        }],
        services: vec![ServiceView {
            address: addr(SERVICE),
            affinity: "flow".into(),
            port: "uplink".into(),
            maglev_size: 65537,
            accept_registrations: true,
            members_active: 3,
            members_draining: 0,
            members_down: 0,
            health: Some("tcp/80 every 1000ms timeout 500ms rise 2 fall 3".into()),
            packets: 6_100_000,
            bytes: 6_100_000 * 1200,
            flows: 3_050_000,
        }],
        members: vec![
            member("2001:db8:2::10", 2_147_483_648, "static", 2_000_000),
            member("2001:db8:2::11", 2_147_483_649, "static", 2_100_000),
            member("2001:db8:3::7", 1, "registered", 2_000_000),
        ],
        bindings: vec![BindingView {
            service: addr(SERVICE),
            care_of: addr("2001:db8:3::7"),
            bid: Some(1),
            member_id: 1,
            epoch: 1,
            sequence: 17,
            lifetime_granted_s: 600,
            lifetime_left_s: 595,
            auth: "mn-ha spi 256".into(),
            weight: 1,
            age_s: 3600,
            refreshes: 12,
        }],
        dataplane: counters(&[
            ("rx_packets", 6_201_000),
            ("forwarded", 6_100_000),
            ("reversed", 50_000),
            ("exceptions", 51_000),
            ("drop_no_service_member", 1),
            ("drop_not_for_us", 40),
        ]),
        workers: vec![
            WorkerView {
                id: 0,
                counters: counters(&[("rx_packets", 240), ("forwarded", 230)]),
                burst_sizes: burst0,
                tx_full: 0,
                exception_ring_full: 0,
            },
            WorkerView {
                id: 1,
                counters: counters(&[("rx_packets", 6_200_760), ("forwarded", 6_099_770)]),
                burst_sizes: burst1,
                tx_full: 3,
                exception_ring_full: 0,
            },
        ],
        registration: counters(&[
            ("mh_received", 14),
            ("ba_status_0", 13),
            ("ba_status_129", 1),
            ("auth_fail_bad_authenticator", 1),
        ]),
        health: counters(&[
            ("probes_sent", 11_000),
            ("replies", 10_990),
            ("timeouts", 10),
        ]),
        control: counters(&[
            ("replies", 20),
            ("neighbours_learned", 1),
            ("reloads_ok", 0),
        ]),
        route_optimised: vec![RoClientView {
            service: addr(SERVICE),
            client: addr("2001:db8:c::2"),
            member: 1,
            care_of: addr("2001:db8:3::7"),
            token_age_s: Some(12.0),
            trigger: Some(TriggerView {
                state: "done".into(),
                attempts: 2,
                home_tests: 0,
                last_status: Some(0),
                elapsed_s: 0.02,
            }),
        }],
        route_optimisation: counters(&[("triggers_started", 1), ("triggers_done", 1)]),
    }
}

/// Plays the control loop: answers requests from a view it owns, like the appliance's
/// control thread does between its other work.
struct ControlHarness {
    view: Arc<Mutex<ControlView>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlHarness {
    fn start(requests: mpsc::Receiver<ControlRequest>) -> ControlHarness {
        let view = Arc::new(Mutex::new(sample_view()));
        let stop = Arc::new(AtomicBool::new(false));
        let (v, s) = (Arc::clone(&view), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match requests.recv_timeout(Duration::from_millis(20)) {
                    Ok(ControlRequest::View(reply)) => {
                        let _ = reply.send(v.lock().unwrap().clone());
                    }
                    Ok(ControlRequest::Action(action, reply)) => {
                        let _ = reply.send(apply(&mut v.lock().unwrap(), &action));
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        ControlHarness {
            view,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ControlHarness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn apply(view: &mut ControlView, action: &Action) -> Result<String, String> {
    let (service, selector, drain) = match action {
        Action::Reload => {
            view.config_generation += 1;
            return Ok("reloaded: no change".into());
        }
        Action::Drain { service, member } => (*service, *member, true),
        Action::Undrain { service, member } => (*service, *member, false),
    };
    let m = view
        .members
        .iter_mut()
        .find(|m| {
            m.service == service
                && match selector {
                    MemberSelector::CareOf(a) => m.care_of == a,
                    MemberSelector::Id(id) => m.id == id,
                }
        })
        .ok_or_else(|| format!("service {service} has no member {selector}"))?;
    if drain {
        m.state = "draining".into();
        m.drain_left_s = Some(300);
        Ok(format!(
            "draining member {} (id {}) of {service} for up to 300 s",
            m.care_of, m.id
        ))
    } else {
        m.state = "active".into();
        m.drain_left_s = None;
        Ok(format!(
            "member {} (id {}) of {service} takes new flows again",
            m.care_of, m.id
        ))
    }
}

/// An admin server on a fresh socket path (in a directory it has to create) with a
/// control harness behind it.
struct Fixture {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    server: Option<AdminServer>,
    control: ControlHarness,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/anycast6/admin.sock");
        let (tx, rx) = mpsc::channel();
        let server = AdminServer::start(&socket, tx).unwrap();
        Fixture {
            _dir: dir,
            socket,
            server: Some(server),
            control: ControlHarness::start(rx),
        }
    }

    fn args(&self, json: bool, command: CtlCommand) -> CtlArgs {
        CtlArgs {
            socket: self.socket.clone(),
            json,
            command,
        }
    }

    fn ctl(&self, command: CtlCommand) -> anyhow::Result<String> {
        ctl::execute(&self.args(false, command))
    }
}

/// One client connection speaking the line protocol directly.
struct RawClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl RawClient {
    fn connect(socket: &Path) -> RawClient {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawClient {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// The next answer line, `None` when the server closed the connection.
    fn answer(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }

    fn ask(&mut self, request: &str) -> Value {
        self.send(format!("{request}\n").as_bytes());
        self.answer().expect("an answer")
    }
}

fn lines_of(table: &str) -> Vec<&str> {
    table.lines().collect()
}

/// Every row of a table has its columns where the header has them.
fn assert_aligned(table: &str) {
    let lines = lines_of(table);
    let header = lines[0];
    let starts: Vec<usize> = header
        .match_indices(|c: char| c != ' ')
        .filter(|(i, _)| *i == 0 || header.as_bytes()[i - 1] == b' ')
        .map(|(i, _)| i)
        .collect();
    for row in &lines[1..] {
        for &s in &starts[1..] {
            assert!(
                row.len() > s && row.as_bytes()[s - 1] == b' ' && row.as_bytes()[s] != b' ',
                "column at {s} misaligned in {row:?} under {header:?}"
            );
        }
    }
}

#[test]
fn every_ctl_command_through_the_socket() {
    let f = Fixture::new();
    let service = addr(SERVICE);

    let status = f.ctl(CtlCommand::Status).unwrap();
    println!("$ anycast6 ctl status\n{status}");
    assert!(status.starts_with(
        "anycast6 0.1.0 (pid 4242), up 1h02m05s, config /etc/anycast6/anycast6.toml (reloads 0), snapshot 6 (1 retained)\n"
    ));
    assert!(status.contains(
        "2 workers, 1 services, 3 members, 1 bindings; rx 6.20M fwd 6.10M rev 50.0k dropped 41\n"
    ));
    let port_table = status
        .split_once("PORT")
        .map(|(_, t)| format!("PORT{t}"))
        .unwrap();
    assert_aligned(&port_table);
    assert!(port_table.contains("uplink  02:00:00:00:00:01  1500  fe80::1"));

    let services = f.ctl(CtlCommand::Services).unwrap();
    println!("$ anycast6 ctl services\n{services}");
    assert_eq!(lines_of(&services).len(), 2);
    assert_aligned(&services);
    assert!(services.contains("2001:db8:100::1  flow"));
    assert!(services.contains("3/0/0"));
    assert!(services.contains("tcp/80 every 1000ms timeout 500ms rise 2 fall 3"));

    let members = f.ctl(CtlCommand::Members { service: None }).unwrap();
    println!("$ anycast6 ctl members\n{members}");
    assert_eq!(lines_of(&members).len(), 4);
    assert_aligned(&members);
    assert!(members.contains("2147483648.1"));
    assert!(members.contains("595s"));
    let other = f
        .ctl(CtlCommand::Members {
            service: Some(addr("2001:db8:999::1")),
        })
        .unwrap();
    assert_eq!(lines_of(&other).len(), 1, "only the header: {other}");
    let filtered = f
        .ctl(CtlCommand::Members {
            service: Some(service),
        })
        .unwrap();
    assert_eq!(filtered, members);

    let bindings = f.ctl(CtlCommand::Bindings).unwrap();
    println!("$ anycast6 ctl bindings\n{bindings}");
    // Two tables: home registrations, then route-optimised clients, a blank line apart.
    let (home, ro) = bindings.split_once("\n\n").expect("two tables");
    assert_eq!(lines_of(home).len(), 2);
    assert_aligned(home);
    assert!(home.contains("595/600s"));
    assert!(home.contains("mn-ha spi 256"));
    assert_eq!(lines_of(ro).len(), 2);
    assert_aligned(ro);
    assert!(ro.contains("2001:db8:c::2") && ro.contains("done"));

    let stats = f.ctl(CtlCommand::Stats).unwrap();
    println!("$ anycast6 ctl stats\n{stats}");
    assert!(stats.contains("dataplane: drop_no_service_member 1, drop_not_for_us 40,"));
    assert!(stats.contains("registration: auth_fail_bad_authenticator 1, ba_status_0 13,"));
    assert!(
        stats.contains("control: neighbours_learned 1, replies 20\n"),
        "{stats}"
    );
    let workers = stats
        .split_once("WORKER")
        .map(|(_, t)| format!("WORKER{t}"))
        .unwrap();
    assert_aligned(&workers);
    // Worker 0 idles (p50 and p99 0), worker 1 is saturated (p50 and p99 32).
    let w0: Vec<&str> = lines_of(&workers)[1].split_whitespace().collect();
    let w1: Vec<&str> = lines_of(&workers)[2].split_whitespace().collect();
    assert_eq!(&w0[..6], ["0", "240", "230", "12.95M", "0", "0"]);
    assert_eq!(&w1[..6], ["1", "6.20M", "6.10M", "9450", "32", "32"]);
    assert_eq!(w1[6], "3");

    // Drain by care-of address, see it, undrain by id.
    let drain = CtlCommand::Drain {
        service,
        member: "2001:db8:2::11".into(),
    };
    let out = f.ctl(drain).unwrap();
    println!("$ anycast6 ctl drain {SERVICE} 2001:db8:2::11\n{out}");
    assert_eq!(
        out,
        "draining member 2001:db8:2::11 (id 2147483649) of 2001:db8:100::1 for up to 300 s\n"
    );
    let members = f.ctl(CtlCommand::Members { service: None }).unwrap();
    let row = members
        .lines()
        .find(|l| l.contains("2001:db8:2::11"))
        .unwrap();
    assert!(row.contains("draining") && row.contains("300s"), "{row}");
    let out = f
        .ctl(CtlCommand::Undrain {
            service,
            member: "2147483649".into(),
        })
        .unwrap();
    println!("$ anycast6 ctl undrain {SERVICE} 2147483649\n{out}");
    assert_eq!(
        out,
        "member 2001:db8:2::11 (id 2147483649) of 2001:db8:100::1 takes new flows again\n"
    );
    assert_eq!(
        f.control.view.lock().unwrap().members[1].state,
        "active",
        "the harness saw the undrain"
    );

    let out = f.ctl(CtlCommand::Reload).unwrap();
    println!("$ anycast6 ctl reload\n{out}");
    assert_eq!(out, "reloaded: no change\n");
    assert_eq!(f.control.view.lock().unwrap().config_generation, 1);

    // A refusal is an error: `run` returns it and main exits 1.
    let bad = CtlCommand::Drain {
        service,
        member: "2001:db8:2::99".into(),
    };
    let e = ctl::run(&f.args(false, bad)).unwrap_err();
    println!("$ anycast6 ctl drain {SERVICE} 2001:db8:2::99\nanycast6: {e:#}");
    assert_eq!(
        format!("{e:#}"),
        "service 2001:db8:100::1 has no member 2001:db8:2::99"
    );
    let e = f
        .ctl(CtlCommand::Drain {
            service,
            member: "bob".into(),
        })
        .unwrap_err();
    assert!(format!("{e}").contains("neither a care-of address nor an id"));

    // --json hands out the data as sent.
    let json = ctl::execute(&f.args(true, CtlCommand::Members { service: None })).unwrap();
    let parsed: Vec<MemberView> = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, f.control.view.lock().unwrap().members);
    let json = ctl::execute(&f.args(true, CtlCommand::Status)).unwrap();
    let status: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status["config_generation"], 1);
    assert_eq!(status["dropped"], 41);
    assert_eq!(status["ports"][0]["name"], "uplink");
}

#[test]
fn bad_requests_get_an_error_and_keep_the_connection() {
    let f = Fixture::new();
    let mut c = RawClient::connect(&f.socket);
    for (request, want) in [
        ("nonsense", "not JSON"),
        (r#"{"cmd":"fly"}"#, "unknown command \"fly\""),
        (
            r#"{"cmd":"drain","service":"2001:db8:100::1"}"#,
            "missing \"member\"",
        ),
        (
            r#"{"cmd":"members","service":"nope"}"#,
            "not an IPv6 address",
        ),
        ("42", "a request is a JSON object"),
    ] {
        let a = c.ask(request);
        assert_eq!(a["ok"], false, "{request}");
        assert!(
            a["error"].as_str().unwrap().contains(want),
            "{request}: {a}"
        );
    }
    // The exact line on the wire (docs/operations-admin.md shows it).
    assert_eq!(
        c.ask(r#"{"cmd":"drain","service":"2001:db8:100::1","member":"bob"}"#)
            .to_string(),
        r#"{"ok":false,"error":"drain: member \"bob\" is neither a care-of address nor an id"}"#
    );
    c.send(b"\xff\xfe{\n");
    let a = c.answer().unwrap();
    assert_eq!(a["error"], "request is not UTF-8");
    // Blank lines are skipped, not answered; the connection still works.
    c.send(b"\n\r\n");
    let a = c.ask(r#"{"cmd":"services"}"#);
    assert_eq!(a["ok"], true);
    assert_eq!(a["data"][0]["address"], SERVICE);
    // Two requests in one write get two answers in order.
    c.send(b"{\"cmd\":\"bindings\"}\n{\"cmd\":\"status\"}\n");
    let b = c.answer().unwrap();
    assert_eq!(b["data"]["home"][0]["sequence"], 17);
    assert_eq!(b["data"]["route_optimised"][0]["trigger"]["state"], "done");
    assert_eq!(c.answer().unwrap()["data"]["pid"], 4242);
}

#[test]
fn an_overlong_line_is_refused_and_the_client_dropped() {
    let f = Fixture::new();
    let mut c = RawClient::connect(&f.socket);
    // Up to the limit is fine.
    let padded = format!(
        "{{\"cmd\":\"status\",\"pad\":\"{}\"}}",
        "x".repeat(MAX_LINE - 40)
    );
    assert!(padded.len() < MAX_LINE);
    assert_eq!(c.ask(&padded)["ok"], true);
    // One octet over is not; the server stops reading this client.
    let writer = std::thread::spawn({
        let mut w = c.writer.try_clone().unwrap();
        move || {
            let _ = w.write_all(&vec![b'a'; MAX_LINE + 1]);
            let _ = w.write_all(b"\n");
        }
    });
    let a = c.answer().unwrap();
    assert_eq!(a["ok"], false);
    assert!(a["error"].as_str().unwrap().contains("longer than 65536"));
    assert!(c.answer().is_none(), "the connection is closed");
    writer.join().unwrap();
    // Others are unaffected.
    assert_eq!(
        RawClient::connect(&f.socket).ask(r#"{"cmd":"status"}"#)["ok"],
        true
    );
}

#[test]
fn concurrent_clients_all_get_their_answers() {
    let f = Fixture::new();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let socket = f.socket.clone();
            std::thread::spawn(move || {
                let mut c = RawClient::connect(&socket);
                for n in 0..25 {
                    let a = if (i + n) % 2 == 0 {
                        c.ask(r#"{"cmd":"members"}"#)
                    } else {
                        c.ask(r#"{"cmd":"stats"}"#)
                    };
                    assert_eq!(a["ok"], true, "{a}");
                }
                // The ctl client path, one connection per call.
                let args = CtlArgs {
                    socket,
                    json: false,
                    command: CtlCommand::Bindings,
                };
                assert!(ctl::execute(&args).unwrap().contains("595/600s"));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_stalled_client_blocks_nobody() {
    let f = Fixture::new();
    let mut stalled = RawClient::connect(&f.socket);
    stalled.send(br#"{"cmd":"sta"#);
    let t = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            RawClient::connect(&f.socket).ask(r#"{"cmd":"status"}"#)["ok"],
            true
        );
        f.ctl(CtlCommand::Services).unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Finishing the line later still gets the answer.
    stalled.send(b"tus\"}\n");
    assert_eq!(stalled.answer().unwrap()["ok"], true);
}

#[test]
fn connections_beyond_the_limit_are_refused_then_admitted_again() {
    let f = Fixture::new();
    let mut held: Vec<RawClient> = (0..MAX_CONNECTIONS)
        .map(|_| {
            let mut c = RawClient::connect(&f.socket);
            // An answer proves the server counts this connection.
            assert_eq!(c.ask(r#"{"cmd":"status"}"#)["ok"], true);
            c
        })
        .collect();
    let mut extra = RawClient::connect(&f.socket);
    let a = extra.answer().unwrap();
    assert_eq!(a["ok"], false);
    assert!(a["error"]
        .as_str()
        .unwrap()
        .contains("too many admin connections"));
    assert!(extra.answer().is_none());
    held.pop();
    // The freed slot is reused once the server notices the hang-up.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = RawClient::connect(&f.socket);
        c.send(b"{\"cmd\":\"status\"}\n");
        let a = c.answer().unwrap();
        if a["ok"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed: {a}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_control_thread_that_does_not_answer_gives_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let (tx, rx) = mpsc::channel::<ControlRequest>();
    let _server = AdminServer::start(&socket, tx).unwrap();
    let args = CtlArgs {
        socket: socket.clone(),
        json: false,
        command: CtlCommand::Status,
    };
    let t = Instant::now();
    let e = ctl::execute(&args).unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "the control thread did not answer in time"
    );
    assert!(t.elapsed() >= CONTROL_ANSWER_TIMEOUT);
    assert!(t.elapsed() < CONTROL_ANSWER_TIMEOUT + Duration::from_secs(2));
    // An action waits the same bounded time.
    let args = CtlArgs {
        command: CtlCommand::Reload,
        ..args
    };
    assert!(ctl::execute(&args).is_err());
    // Once the control side is gone, requests fail at once.
    drop(rx);
    let t = Instant::now();
    let e = ctl::execute(&args).unwrap_err();
    assert_eq!(format!("{e:#}"), "the appliance is stopping");
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn socket_is_owner_only_and_removed_at_shutdown() {
    let mut f = Fixture::new();
    let mode = std::fs::metadata(&f.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let dir_mode = std::fs::metadata(f.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o755, "{dir_mode:o}");
    // A client idling mid-line does not hold shutdown up.
    let mut idle = RawClient::connect(&f.socket);
    assert_eq!(idle.ask(r#"{"cmd":"status"}"#)["ok"], true);
    idle.send(b"{\"cmd\"");
    let t = Instant::now();
    f.server.take().unwrap().shutdown();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!f.socket.exists());
    assert!(idle.answer().is_none(), "the idle client was disconnected");
    let e = ctl::execute(&f.args(false, CtlCommand::Status)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("is the appliance running?"), "{msg}");
    assert!(
        msg.contains(&format!("socket {}", f.socket.display())),
        "{msg}"
    );
}

#[test]
fn stale_sockets_are_replaced_live_ones_and_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");

    // A socket file nobody listens on: what a killed appliance leaves.
    drop(UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let e = ctl::execute(&CtlArgs {
        socket: socket.clone(),
        json: false,
        command: CtlCommand::Status,
    })
    .unwrap_err();
    assert!(format!("{e:#}").contains("nobody answers"), "{e:#}");
    let (tx, rx) = mpsc::channel();
    let _control = ControlHarness::start(rx);
    let first = AdminServer::start(&socket, tx).unwrap();
    assert_eq!(
        RawClient::connect(&socket).ask(r#"{"cmd":"status"}"#)["ok"],
        true
    );

    // A second appliance on the same path must not steal it.
    let (tx2, _rx2) = mpsc::channel();
    let e = AdminServer::start(&socket, tx2.clone()).err().unwrap();
    assert!(
        format!("{e:#}").contains("another appliance is answering"),
        "{e:#}"
    );
    assert_eq!(
        RawClient::connect(&socket).ask(r#"{"cmd":"status"}"#)["ok"],
        true
    );
    drop(first);

    // Not a socket: left alone.
    std::fs::write(&socket, b"precious").unwrap();
    let e = AdminServer::start(&socket, tx2).err().unwrap();
    assert!(format!("{e:#}").contains("is not a socket"), "{e:#}");
    assert_eq!(std::fs::read(&socket).unwrap(), b"precious");
}

/// `METHOD path` over a fresh TCP connection: status code, headers (lower-cased names),
/// body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the counter or gauge `metric` whose labels include `labels`.
fn value(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    match found[0].value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{metric}: {other:?}"),
    }
}

#[test]
fn metrics_parse_with_an_independent_parser_and_round_trip() {
    let view = sample_view();
    let text = metrics::render(&view);
    let s = scrape(&text);

    // Every sample line became a sample (histogram lines fold into one per series).
    let sample_lines = text.lines().filter(|l| !l.starts_with('#')).count();
    let bucket_lines = text.lines().filter(|l| l.contains("_bucket{")).count();
    let histograms = s
        .samples
        .iter()
        .filter(|x| matches!(x.value, prometheus_parse::Value::Histogram(_)))
        .count();
    assert_eq!(histograms, view.workers.len());
    assert_eq!(s.samples.len(), sample_lines - bucket_lines + histograms);

    // Every family is documented, and the parser agrees on its type.
    for x in &s.samples {
        let family = x
            .metric
            .strip_suffix("_sum")
            .or_else(|| x.metric.strip_suffix("_count"))
            .filter(|f| s.docs.contains_key(*f))
            .unwrap_or(&x.metric);
        assert!(s.docs.contains_key(family), "{} has no HELP", x.metric);
        assert!(x.metric.starts_with("anycast6_"));
        if x.metric.ends_with("_total") {
            assert!(
                matches!(x.value, prometheus_parse::Value::Counter(_)),
                "{}",
                x.metric
            );
        }
    }

    // Values round-trip.
    assert_eq!(value(&s, "anycast6_uptime_seconds", &[]), view.uptime_s);
    assert_eq!(
        value(&s, "anycast6_snapshots_published_total", &[]),
        view.snapshot_generation as f64
    );
    assert_eq!(
        value(&s, "anycast6_snapshots_retained", &[]),
        view.snapshots_retained as f64
    );
    for m in &view.members {
        let (care_of, id) = (m.care_of.to_string(), m.id.to_string());
        let labels = vec![("service", SERVICE), ("care_of", &*care_of), ("id", &*id)];
        assert_eq!(
            value(&s, "anycast6_member_packets_total", &labels),
            m.packets as f64
        );
        assert_eq!(
            value(&s, "anycast6_member_bytes_total", &labels),
            m.bytes as f64
        );
        assert_eq!(
            value(&s, "anycast6_member_flows_total", &labels),
            m.flows as f64
        );
        assert_eq!(
            value(&s, "anycast6_member_reverse_packets_total", &labels),
            m.rev_packets as f64
        );
        let mut up = labels.clone();
        up.push(("state", "active"));
        assert_eq!(value(&s, "anycast6_member_up", &up), 1.0);
    }
    assert_eq!(
        value(
            &s,
            "anycast6_service_packets_total",
            &[("service", SERVICE)]
        ),
        6_100_000.0
    );
    assert_eq!(
        value(
            &s,
            "anycast6_service_members",
            &[("service", SERVICE), ("state", "active")]
        ),
        3.0
    );
    assert_eq!(
        value(&s, "anycast6_ba_sent_total", &[("status", "0")]),
        13.0
    );
    assert_eq!(
        value(&s, "anycast6_ba_sent_total", &[("status", "129")]),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "anycast6_registration_total",
            &[("event", "auth_fail_bad_authenticator")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "anycast6_dropped_packets_total",
            &[("reason", "not_for_us")]
        ),
        40.0
    );
    assert_eq!(
        value(&s, "anycast6_dataplane_total", &[("counter", "forwarded")]),
        6_100_000.0
    );
    assert_eq!(
        value(
            &s,
            "anycast6_health_checks_total",
            &[("result", "timeouts")]
        ),
        10.0
    );
    assert_eq!(
        value(
            &s,
            "anycast6_worker_total",
            &[("worker", "1"), ("counter", "rx_packets")]
        ),
        6_200_760.0
    );
    assert_eq!(
        value(&s, "anycast6_port_rx_missed_total", &[("port", "uplink")]),
        12.0
    );
    assert_eq!(value(&s, "anycast6_registered_bindings", &[]), 1.0);

    // The burst-size histogram of worker 1: 400 idle polls, 50 of 17, 9000 full.
    let h = s
        .samples
        .iter()
        .find(|x| {
            x.metric == "anycast6_worker_rx_burst_size" && x.labels.get("worker") == Some("1")
        })
        .unwrap();
    let prometheus_parse::Value::Histogram(buckets) = &h.value else {
        panic!("{h:?}")
    };
    let got: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
    assert_eq!(
        got,
        [
            (0.0, 400.0),
            (1.0, 400.0),
            (2.0, 400.0),
            (4.0, 400.0),
            (8.0, 400.0),
            (16.0, 400.0),
            (32.0, 9450.0),
            (f64::INFINITY, 9450.0)
        ]
    );
    assert_eq!(
        value(&s, "anycast6_worker_rx_burst_size_sum", &[("worker", "1")]),
        (50 * 17 + 9000 * 32) as f64
    );
    assert_eq!(
        value(
            &s,
            "anycast6_worker_rx_burst_size_count",
            &[("worker", "1")]
        ),
        9450.0
    );
}

#[test]
fn metrics_endpoint_over_http() {
    let (tx, rx) = mpsc::channel();
    let control = ControlHarness::start(rx);
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
    let addr = server.addr();
    assert_ne!(addr.port(), 0);

    let (status, headers, body) = http(addr, "GET", "/metrics");
    println!("$ curl -s http://{addr}/metrics\n{body}");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4")
    );
    assert_eq!(body, metrics::render(&control.view.lock().unwrap()));
    let s = scrape(&body);
    assert_eq!(value(&s, "anycast6_info", &[("version", "0.1.0")]), 1.0);

    // What the control thread changes shows in the next scrape.
    control.view.lock().unwrap().members[0].packets += 5;
    let (_, _, body) = http(addr, "GET", "/metrics");
    let s = scrape(&body);
    assert_eq!(
        value(
            &s,
            "anycast6_member_packets_total",
            &[("care_of", "2001:db8:2::10")]
        ),
        2_000_005.0
    );

    let (status, headers, body) = http(addr, "GET", "/");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/html"));
    assert!(body.contains("href=\"/metrics\""));
    let (status, _, _) = http(addr, "GET", "/nope");
    assert_eq!(status, 404);
    let (status, _, _) = http(addr, "POST", "/metrics");
    assert_eq!(status, 405);

    drop(server);
    // tiny_http's accept thread lets go of the listening socket just after the drop.
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_endpoint_without_a_control_answer_is_503() {
    let (tx, rx) = mpsc::channel::<ControlRequest>();
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
    let (status, _, body) = http(server.addr(), "GET", "/metrics");
    assert_eq!(status, 503);
    assert!(body.contains("did not answer in time"));
    drop(rx);
    let (status, _, body) = http(server.addr(), "GET", "/metrics");
    assert_eq!(status, 503);
    assert!(body.contains("stopping"));
}
