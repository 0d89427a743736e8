//! `anycast6 ctl`: the operator's client for the admin socket (docs/operations.md).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::Ipv6Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::control::ro::RoClientView;
use crate::control::view::{BindingView, MemberView, ServiceView, WorkerView};

/// Arguments of `anycast6 ctl`.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// The admin socket (`admin.socket` in the configuration).
    #[arg(long, default_value = "/run/anycast6/admin.sock")]
    pub socket: PathBuf,
    /// Print the answer as JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum CtlCommand {
    /// Uptime, configuration, ports and totals.
    Status,
    /// Services and their member counts.
    Services,
    /// Members: state, health, lifetime, traffic.
    Members {
        /// Only the members of this service.
        #[arg(long)]
        service: Option<Ipv6Addr>,
    },
    /// Home registrations (Binding Cache).
    Bindings,
    /// Drain a member: no new flows, established ones stay until the drain timeout.
    Drain {
        service: Ipv6Addr,
        /// Care-of address or member id.
        member: String,
    },
    /// End a drain: the member takes new flows again.
    Undrain { service: Ipv6Addr, member: String },
    /// Read the configuration file again and apply it.
    Reload,
    /// Counters: data plane, workers, registration, health checks, control thread.
    Stats,
}

impl CtlCommand {
    fn request(&self) -> Value {
        match self {
            CtlCommand::Status => json!({"cmd": "status"}),
            CtlCommand::Services => json!({"cmd": "services"}),
            CtlCommand::Members { service } => json!({"cmd": "members", "service": service}),
            CtlCommand::Bindings => json!({"cmd": "bindings"}),
            CtlCommand::Drain { service, member } => {
                json!({"cmd": "drain", "service": service, "member": member})
            }
            CtlCommand::Undrain { service, member } => {
                json!({"cmd": "undrain", "service": service, "member": member})
            }
            CtlCommand::Reload => json!({"cmd": "reload"}),
            CtlCommand::Stats => json!({"cmd": "stats"}),
        }
    }
}

/// How long `ctl` waits for an answer; the appliance itself gives up on its control
/// thread after 2 s, so this only fires when the appliance is wedged.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the admin socket, saying what to check when that fails.
fn connect(socket: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(socket).map_err(|e| {
        let hint = match e.kind() {
            ErrorKind::NotFound => "no such socket: is the appliance running? (admin.socket)",
            ErrorKind::ConnectionRefused => {
                "nobody answers (a socket left by a stopped appliance?): is the appliance running?"
            }
            ErrorKind::PermissionDenied => {
                "permission denied: the socket is mode 0600, run ctl as the appliance's user (root)"
            }
            _ => "is the appliance running?",
        };
        anyhow::anyhow!("{hint}\nsocket {}: {e}", socket.display())
    })
}

/// Sends one request and returns the `data` of a successful answer.
pub fn call(socket: &Path, request: &Value) -> anyhow::Result<Value> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    writeln!(stream, "{request}").context("sending the request")?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading the answer")?;
    if line.is_empty() {
        bail!("the appliance closed the connection without answering");
    }
    let answer: Value = serde_json::from_str(&line).context("the answer is not JSON")?;
    if answer["ok"] == true {
        Ok(answer["data"].clone())
    } else {
        bail!("{}", answer["error"].as_str().unwrap_or("unknown error"))
    }
}

/// What `anycast6 ctl` prints for `args`: the table, or the JSON with `--json`.
pub fn execute(args: &CtlArgs) -> anyhow::Result<String> {
    let data = call(&args.socket, &args.command.request())?;
    if args.json {
        Ok(format!("{}\n", serde_json::to_string_pretty(&data)?))
    } else {
        render(&args.command, &data)
    }
}

/// Runs `anycast6 ctl`; an error (the caller prints it) means exit status 1.
pub fn run(args: &CtlArgs) -> anyhow::Result<ExitCode> {
    print!("{}", execute(args)?);
    Ok(ExitCode::SUCCESS)
}

/// The human form of an answer.
pub fn render(command: &CtlCommand, data: &Value) -> anyhow::Result<String> {
    Ok(match command {
        CtlCommand::Status => render_status(data),
        CtlCommand::Services => {
            render_services(&serde_json::from_value::<Vec<ServiceView>>(data.clone())?)
        }
        CtlCommand::Members { .. } => {
            render_members(&serde_json::from_value::<Vec<MemberView>>(data.clone())?)
        }
        CtlCommand::Bindings => {
            let home = serde_json::from_value::<Vec<BindingView>>(data["home"].clone())?;
            let ro = serde_json::from_value::<Vec<RoClientView>>(
                data.get("route_optimised")
                    .cloned()
                    .unwrap_or(Value::Array(vec![])),
            )?;
            let mut s = render_bindings(&home);
            if !ro.is_empty() {
                s.push('\n');
                s.push_str(&render_route_optimised(&ro));
            }
            s
        }
        CtlCommand::Stats => render_stats(data)?,
        CtlCommand::Drain { .. } | CtlCommand::Undrain { .. } | CtlCommand::Reload => {
            format!("{}\n", data.as_str().unwrap_or_default())
        }
    })
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// 1234567 -> "1.23M".
fn si(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// 3725.4 -> "1h02m05s": uptimes read at a glance.
fn duration(s: f64) -> String {
    let s = if s.is_finite() && s > 0.0 {
        s as u64
    } else {
        0
    };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
        _ => format!("{}d{:02}h{:02}m", s / 86_400, s / 3600 % 24, s / 60 % 60),
    }
}

fn secs(s: Option<u64>) -> String {
    s.map_or("-".into(), |s| format!("{s}s"))
}

fn render_status(d: &Value) -> String {
    let mut out = format!(
        "anycast6 {} (pid {}), up {}, config {} (reloads {}), snapshot {} ({} retained)\n",
        d["version"].as_str().unwrap_or("?"),
        d["pid"],
        duration(d["uptime_s"].as_f64().unwrap_or(0.0)),
        d["config_path"].as_str().unwrap_or("?"),
        d["config_generation"],
        d["snapshot_generation"],
        d["snapshots_retained"].as_u64().unwrap_or(0),
    );
    out.push_str(&format!(
        "{} workers, {} services, {} members, {} bindings; rx {} fwd {} rev {} dropped {}\n",
        d["workers"],
        d["services"],
        d["members"],
        d["bindings"],
        si(d["rx_packets"].as_u64().unwrap_or(0)),
        si(d["forwarded"].as_u64().unwrap_or(0)),
        si(d["reversed"].as_u64().unwrap_or(0)),
        si(d["dropped"].as_u64().unwrap_or(0)),
    ));
    let rows: Vec<Vec<String>> = d["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    vec![
                        p["name"].as_str().unwrap_or("").into(),
                        p["mac"].as_str().unwrap_or("").into(),
                        p["mtu"].to_string(),
                        p["next_hop"].as_str().unwrap_or("-").into(),
                        p["next_hop_mac"].as_str().unwrap_or("unresolved").into(),
                        si(p["ipackets"].as_u64().unwrap_or(0)),
                        si(p["opackets"].as_u64().unwrap_or(0)),
                        si(p["imissed"].as_u64().unwrap_or(0)),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "PORT",
            "MAC",
            "MTU",
            "NEXT-HOP",
            "NEXT-HOP-MAC",
            "RX",
            "TX",
            "MISSED",
        ],
        &rows,
    ));
    out
}

fn render_services(services: &[ServiceView]) -> String {
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            vec![
                s.address.to_string(),
                s.affinity.clone(),
                s.port.clone(),
                format!(
                    "{}/{}/{}",
                    s.members_active, s.members_draining, s.members_down
                ),
                if s.accept_registrations { "yes" } else { "no" }.into(),
                s.health.clone().unwrap_or_else(|| "-".into()),
                si(s.packets),
                si(s.flows),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "AFFINITY",
            "PORT",
            "ACT/DRN/DOWN",
            "REGISTER",
            "HEALTH",
            "PACKETS",
            "FLOWS",
        ],
        &rows,
    )
}

fn render_members(members: &[MemberView]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.service.to_string(),
                m.care_of.to_string(),
                format!("{}.{}", m.id, m.epoch),
                m.origin.clone(),
                m.weight.to_string(),
                m.state.clone(),
                match &m.health_detail {
                    Some(d) => d.clone(),
                    None => m.health.clone(),
                },
                secs(m.lifetime_left_s),
                secs(m.drain_left_s),
                si(m.packets),
                si(m.flows),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE", "CARE-OF", "ID.EPOCH", "ORIGIN", "WEIGHT", "STATE", "HEALTH", "LIFETIME",
            "DRAIN", "PACKETS", "FLOWS",
        ],
        &rows,
    )
}

/// Clients route-optimised to members and the trigger sent when the member failed.
fn render_route_optimised(clients: &[RoClientView]) -> String {
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            let (state, attempts, status) = match &c.trigger {
                Some(t) => (
                    t.state.clone(),
                    t.attempts.to_string(),
                    t.last_status.map_or("-".into(), |s| s.to_string()),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            vec![
                c.service.to_string(),
                c.client.to_string(),
                c.member.to_string(),
                c.care_of.to_string(),
                c.token_age_s.map_or("-".into(), |a| format!("{a:.0}s")),
                state,
                attempts,
                status,
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "RO-CLIENT",
            "MEMBER",
            "CARE-OF",
            "TOKEN-AGE",
            "TRIGGER",
            "BUS",
            "LAST-BA",
        ],
        &rows,
    )
}

fn render_bindings(bindings: &[BindingView]) -> String {
    let rows: Vec<Vec<String>> = bindings
        .iter()
        .map(|b| {
            vec![
                b.service.to_string(),
                b.care_of.to_string(),
                b.bid.map_or("-".into(), |x| x.to_string()),
                format!("{}.{}", b.member_id, b.epoch),
                b.sequence.to_string(),
                format!("{}/{}s", b.lifetime_left_s, b.lifetime_granted_s),
                b.auth.clone(),
                b.weight.to_string(),
                b.refreshes.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "SERVICE",
            "CARE-OF",
            "BID",
            "ID.EPOCH",
            "SEQ",
            "LIFETIME",
            "AUTH",
            "WEIGHT",
            "REFRESHES",
        ],
        &rows,
    )
}

fn render_counters(title: &str, map: &Value) -> String {
    let Some(obj) = map.as_object() else {
        return String::new();
    };
    let nonzero: Vec<String> = obj
        .iter()
        .filter(|(_, v)| v.as_u64().is_some_and(|n| n > 0))
        .map(|(k, v)| format!("{k} {}", v))
        .collect();
    if nonzero.is_empty() {
        format!("{title}: all zero\n")
    } else {
        format!("{title}: {}\n", nonzero.join(", "))
    }
}

fn render_stats(d: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    out.push_str(&render_counters("dataplane", &d["dataplane"]));
    out.push_str(&render_counters("registration", &d["registration"]));
    out.push_str(&render_counters("health", &d["health"]));
    out.push_str(&render_counters("control", &d["control"]));
    let workers: Vec<WorkerView> = serde_json::from_value(d["workers"].clone())?;
    let rows: Vec<Vec<String>> = workers
        .iter()
        .map(|w| {
            let polls: u64 = w.burst_sizes.iter().sum();
            let (p50, p99) = crate::control::metrics::burst_percentiles(&w.burst_sizes)
                .map_or(("-".into(), "-".into()), |(a, b)| {
                    (a.to_string(), b.to_string())
                });
            vec![
                w.id.to_string(),
                si(w.counters.get("rx_packets").copied().unwrap_or(0)),
                si(w.counters.get("forwarded").copied().unwrap_or(0)),
                si(polls),
                p50,
                p99,
                si(w.tx_full),
                si(w.exception_ring_full),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "WORKER",
            "RX",
            "FWD",
            "POLLS",
            "BURST-P50",
            "BURST-P99",
            "TX-FULL",
            "EXC-RING-FULL",
        ],
        &rows,
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::admin::Request;
    use crate::control::view::{ControlView, PortView};

    #[test]
    fn tables_align() {
        let t = table(&["A", "LONGER"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(t, "A     LONGER\nxxxx  y\n");
    }

    #[test]
    fn si_units() {
        assert_eq!(si(999), "999");
        assert_eq!(si(12_345), "12.3k");
        assert_eq!(si(6_200_000), "6.20M");
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(7.9), "7s");
        assert_eq!(duration(307.0), "5m07s");
        assert_eq!(duration(3725.4), "1h02m05s");
        assert_eq!(duration(2.0 * 86_400.0 + 3.0 * 3600.0 + 60.0), "2d03h01m");
        assert_eq!(duration(f64::NAN), "0s");
        assert_eq!(duration(-1.0), "0s");
    }

    fn sample_view() -> ControlView {
        let service: Ipv6Addr = "2001:db8:100::1".parse().unwrap();
        let mut view = ControlView {
            version: "0.1.0".into(),
            pid: 17,
            uptime_s: 61.0,
            config_path: "/etc/anycast6.toml".into(),
            config_generation: 2,
            snapshot_generation: 5,
            snapshots_retained: 0,
            ports: vec![PortView {
                name: "uplink".into(),
                mac: "02:00:00:00:00:01".into(),
                mtu: 1500,
                ipackets: 12_345,
                opackets: 99,
                ..Default::default()
            }],
            services: vec![ServiceView {
                address: service,
                affinity: "client".into(),
                port: "uplink".into(),
                maglev_size: 65537,
                accept_registrations: false,
                members_active: 1,
                members_draining: 1,
                members_down: 0,
                health: None,
                packets: 1_500_000,
                bytes: 0,
                flows: 42,
            }],
            members: vec![MemberView {
                service,
                id: 3,
                epoch: 2,
                care_of: "2001:db8:3::7".parse().unwrap(),
                origin: "registered".into(),
                weight: 10,
                state: "draining".into(),
                health: "unchecked".into(),
                health_detail: None,
                lifetime_left_s: Some(30),
                drain_left_s: Some(299),
                packets: 5,
                bytes: 500,
                flows: 1,
                rev_packets: 0,
                rev_bytes: 0,
            }],
            bindings: vec![BindingView {
                service,
                care_of: "2001:db8:3::7".parse().unwrap(),
                bid: None,
                member_id: 3,
                epoch: 2,
                sequence: 65535,
                lifetime_granted_s: 60,
                lifetime_left_s: 30,
                auth: "trusted-prefix".into(),
                weight: 10,
                age_s: 30,
                refreshes: 0,
            }],
            ..Default::default()
        };
        view.dataplane.insert("rx_packets".into(), 12_345);
        view.dataplane.insert("drop_bad_length".into(), 2);
        view.health.insert("probes_sent".into(), 0);
        let mut bursts = vec![0; 33];
        bursts[1] = 99;
        bursts[8] = 1;
        view.workers.push(WorkerView {
            id: 0,
            burst_sizes: bursts,
            ..Default::default()
        });
        view
    }

    /// The table for `command` from what the server selects out of the sample view.
    fn rendered(command: CtlCommand) -> String {
        let request = Request::parse(&command.request().to_string()).unwrap();
        render(&command, &request.select(&sample_view())).unwrap()
    }

    #[test]
    fn renders_status() {
        assert_eq!(
            rendered(CtlCommand::Status),
            "anycast6 0.1.0 (pid 17), up 1m01s, config /etc/anycast6.toml (reloads 2), snapshot 5 (0 retained)
1 workers, 1 services, 1 members, 1 bindings; rx 12.3k fwd 0 rev 0 dropped 2
PORT    MAC                MTU   NEXT-HOP  NEXT-HOP-MAC  RX     TX  MISSED
uplink  02:00:00:00:00:01  1500  -         unresolved    12.3k  99  0
"
        );
    }

    #[test]
    fn renders_services_members_bindings() {
        assert_eq!(
            rendered(CtlCommand::Services),
            "SERVICE          AFFINITY  PORT    ACT/DRN/DOWN  REGISTER  HEALTH  PACKETS  FLOWS
2001:db8:100::1  client    uplink  1/1/0         no        -       1.50M    42
"
        );
        assert_eq!(
            rendered(CtlCommand::Members { service: None }),
            "SERVICE          CARE-OF        ID.EPOCH  ORIGIN      WEIGHT  STATE     HEALTH     LIFETIME  DRAIN  PACKETS  FLOWS
2001:db8:100::1  2001:db8:3::7  3.2       registered  10      draining  unchecked  30s       299s   5        1
"
        );
        assert_eq!(
            rendered(CtlCommand::Members {
                service: Some("2001:db8:200::1".parse().unwrap())
            })
            .lines()
            .count(),
            1
        );
        assert_eq!(
            rendered(CtlCommand::Bindings),
            "SERVICE          CARE-OF        BID  ID.EPOCH  SEQ    LIFETIME  AUTH            WEIGHT  REFRESHES
2001:db8:100::1  2001:db8:3::7  -    3.2       65535  30/60s    trusted-prefix  10      0
"
        );
    }

    #[test]
    fn renders_stats_with_burst_percentiles() {
        assert_eq!(
            rendered(CtlCommand::Stats),
            "dataplane: drop_bad_length 2, rx_packets 12345
registration: all zero
health: all zero
control: all zero
WORKER  RX  FWD  POLLS  BURST-P50  BURST-P99  TX-FULL  EXC-RING-FULL
0       0   0    100    1          1          0        0
"
        );
    }

    #[test]
    fn actions_print_the_appliance_message() {
        let reload = CtlCommand::Reload;
        assert_eq!(
            render(&reload, &json!("reloaded: no change")).unwrap(),
            "reloaded: no change\n"
        );
    }

    #[test]
    fn an_answer_of_the_wrong_shape_is_an_error() {
        for command in [
            CtlCommand::Services,
            CtlCommand::Members { service: None },
            CtlCommand::Bindings,
            CtlCommand::Stats,
        ] {
            assert!(render(&command, &json!({"x": 1})).is_err(), "{command:?}");
        }
        // Status shows what it can.
        assert!(render(&CtlCommand::Status, &json!(null)).is_ok());
    }

    #[test]
    fn unreachable_socket_says_what_to_check() {
        let e = call(
            Path::new("/nonexistent/anycast6.sock"),
            &json!({"cmd": "status"}),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("is the appliance running")
                && format!("{e:#}").contains("/nonexistent/anycast6.sock"),
            "{e:#}"
        );
    }
}
