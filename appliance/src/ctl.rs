//! `anycast6 ctl`: the operator's client for the admin socket (docs/operations.md).

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

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

/// Sends one request and returns the `data` of a successful answer.
pub fn call(socket: &Path, request: &Value) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the admin socket {} (is the appliance running, and are you allowed to \
             open it?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(stream, "{request}")?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading the answer")?;
    let answer: Value = serde_json::from_str(&line).context("the answer is not JSON")?;
    if answer["ok"] == true {
        Ok(answer["data"].clone())
    } else {
        bail!("{}", answer["error"].as_str().unwrap_or("unknown error"))
    }
}

/// Runs `anycast6 ctl`.
pub fn run(args: &CtlArgs) -> anyhow::Result<ExitCode> {
    let data = call(&args.socket, &args.command.request())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        print!("{}", render(&args.command, &data)?);
    }
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
            render_bindings(&serde_json::from_value::<Vec<BindingView>>(data.clone())?)
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

fn secs(s: Option<u64>) -> String {
    s.map_or("-".into(), |s| format!("{s}s"))
}

fn render_status(d: &Value) -> String {
    let mut out = format!(
        "anycast6 {} (pid {}), up {:.0} s, config {} (reloads {}), snapshot {}\n",
        d["version"].as_str().unwrap_or("?"),
        d["pid"],
        d["uptime_s"].as_f64().unwrap_or(0.0),
        d["config_path"].as_str().unwrap_or("?"),
        d["config_generation"],
        d["snapshot_generation"],
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
    fn unreachable_socket_says_what_to_check() {
        let e = call(
            Path::new("/nonexistent/anycast6.sock"),
            &json!({"cmd": "status"}),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("is the appliance running"),
            "{e:#}"
        );
    }
}
