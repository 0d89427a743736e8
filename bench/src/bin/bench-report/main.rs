//! Writes the generated part of docs/benchmarks.md and its SVG plots from one
//! `scripts/bench` run.
//!
//! `bench-report --run run.json --txonly txonly.txt --dataplane dataplane.txt
//!  --e2e e2e.json --doc docs/benchmarks.md --img-dir docs/img`
//!
//! * `run.json`: what scripts/bench knows about the run (mode, start, elapsed seconds, load
//!   averages before and after, commit, the commands it ran);
//! * `txonly.txt`, `dataplane.txt`: the output of pktgen/bench/txonly-vs-testpmd.sh and
//!   bench/run-dataplane.sh as printed;
//! * `e2e.json`: bench-e2e's result.
//!
//! The page keeps everything outside the `<!-- report:begin -->` / `<!-- report:end -->`
//! markers (the hand-written sections); the part between them is replaced. A page without
//! the markers gets them, with the report, after its first heading. Plots go to `--img-dir`
//! and are linked relative to the page.

mod parse;
mod plot;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use parse::{num, Dataplane, TxRound};
use plot::{Axis, Series};

const BEGIN: &str = "<!-- report:begin -->";
const END: &str = "<!-- report:end -->";

struct Inputs {
    run: Value,
    txonly: Option<Vec<TxRound>>,
    dataplane: Option<Dataplane>,
    e2e: Option<Value>,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut get = std::collections::HashMap::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--run" | "--txonly" | "--dataplane" | "--e2e" | "--doc" | "--img-dir" => {
                get.insert(flag, PathBuf::from(value));
            }
            _ => bail!("unknown argument {flag}"),
        }
    }
    let path = |k: &str| {
        get.get(k)
            .cloned()
            .with_context(|| format!("{k} is required"))
    };
    let (doc, img_dir) = (path("--doc")?, path("--img-dir")?);
    let read = |k: &str| -> Result<Option<String>> {
        match get.get(k) {
            Some(p) => Ok(Some(
                fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )),
            None => Ok(None),
        }
    };
    // A part that is missing or did not parse is reported on the page as such: the report
    // is still written (smoke runs never fail on figures).
    let inputs = Inputs {
        run: read("--run")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .context("run.json")?
            .unwrap_or(Value::Null),
        txonly: read("--txonly")?.and_then(|s| report_err("TX comparison", parse::txonly(&s))),
        dataplane: read("--dataplane")?
            .and_then(|s| report_err("data-plane comparison", parse::dataplane(&s))),
        e2e: read("--e2e")?
            .and_then(|s| report_err("e2e", serde_json::from_str(&s).map_err(Into::into))),
    };
    fs::create_dir_all(&img_dir)?;
    let img_rel = relative(&img_dir, doc.parent().unwrap_or(Path::new(".")));
    let body = render(&inputs, &img_dir, &img_rel)?;
    let old = fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    let page = splice(&old, &body);
    fs::write(&doc, page).with_context(|| format!("writing {}", doc.display()))?;
    eprintln!(
        "bench-report: wrote {} and plots in {}",
        doc.display(),
        img_dir.display()
    );
    Ok(())
}

fn report_err<T>(what: &str, r: Result<T>) -> Option<T> {
    r.map_err(|e| eprintln!("bench-report: {what}: {e:#}")).ok()
}

/// `img_dir` as seen from `base` (both as given; plain prefix stripping, else `../` steps
/// for the common case of sibling directories).
fn relative(img_dir: &Path, base: &Path) -> String {
    let (a, b) = (
        img_dir.canonicalize().unwrap_or(img_dir.to_path_buf()),
        base.canonicalize().unwrap_or(base.to_path_buf()),
    );
    let (ac, bc): (Vec<_>, Vec<_>) = (a.components().collect(), b.components().collect());
    let common = ac.iter().zip(&bc).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); bc.len() - common];
    parts.extend(
        ac[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// The page with the part between the markers replaced by `body`.
fn splice(old: &str, body: &str) -> String {
    let block = format!("{BEGIN}\n{body}{END}\n");
    if let (Some(b), Some(e)) = (old.find(BEGIN), old.find(END)) {
        if b < e {
            let after = &old[e + END.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            return format!("{}{block}{after}", &old[..b]);
        }
    }
    // No markers: after the first heading line.
    match old.find('\n') {
        Some(i) if old.starts_with('#') => {
            format!(
                "{}\n\n{block}\n{}",
                &old[..i],
                old[i + 1..].trim_start_matches('\n')
            )
        }
        _ => format!("{block}\n{old}"),
    }
}

fn s(v: &Value, path: &str) -> String {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_owned()
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or("n/a".to_owned(), |x| format!("{x:.digits$}"))
}

fn kpps(v: Option<f64>) -> String {
    f(v.map(|x| x / 1e3), 1)
}

fn machine() -> Vec<(String, String)> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map_or("?".to_owned(), |(_, v)| v.trim().to_owned())
    };
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_owned()
    };
    let cmd = |c: &str, a: &[&str]| {
        std::process::Command::new(c)
            .args(a)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or("?".to_owned(), |o| {
                String::from_utf8_lossy(&o.stdout).trim().to_owned()
            })
    };
    vec![
        (
            "CPUs (nproc)".into(),
            std::thread::available_parallelism().map_or("?".into(), |n| n.to_string()),
        ),
        (
            "CPU".into(),
            format!(
                "{} (family {}, model {})",
                field("model name"),
                field("cpu family"),
                field("model")
            ),
        ),
        ("memory".into(), format!("{} kB", mem("MemTotal:"))),
        (
            "hugepages".into(),
            format!(
                "{} x {} kB reserved, {} free; every DPDK process here ran with --no-huge",
                mem("HugePages_Total:"),
                mem("Hugepagesize:"),
                mem("HugePages_Free:")
            ),
        ),
        (
            "DPDK".into(),
            cmd("pkg-config", &["--modversion", "libdpdk"]),
        ),
        ("kernel".into(), cmd("uname", &["-r"])),
        ("rustc".into(), cmd("rustc", &["--version"])),
    ]
}

fn render(inp: &Inputs, img_dir: &Path, img_rel: &str) -> Result<String> {
    let mut o = String::new();
    let run = &inp.run;
    let smoke = run["mode"].as_str() == Some("smoke");
    writeln!(o, "## Benchmark report (generated by `scripts/bench`)\n")?;
    writeln!(
        o,
        "Everything between the `report:begin` / `report:end` markers of this page is \
         rewritten by `scripts/bench` (bench/src/bin/bench-report); the sections after them \
         are hand-written. Figures are from **one run** on the machine below; only ratios \
         measured in the same run (testpmd alongside) are comparable across machines.\n"
    )?;
    if smoke {
        writeln!(
            o,
            "**This is a smoke run** (`scripts/bench --smoke`: tiny durations, to check the \
             tooling end to end); its figures mean nothing.\n"
        )?;
    }
    writeln!(o, "| run | |\n|---|---|")?;
    writeln!(o, "| date (UTC) | {} |", s(run, "started"))?;
    writeln!(o, "| commit | `{}` |", s(run, "commit"))?;
    writeln!(o, "| mode | {} |", s(run, "mode"))?;
    writeln!(
        o,
        "| wall time | {} s (builds included) |",
        f(num(run, "elapsed_s"), 0)
    )?;
    writeln!(
        o,
        "| load average (1, 5, 15 min) | before {}; after {} |",
        s(run, "load_before"),
        s(run, "load_after")
    )?;
    for (k, v) in machine() {
        writeln!(o, "| {k} | {v} |")?;
    }
    writeln!(o)?;
    if let Some(cmds) = run["commands"].as_array() {
        writeln!(
            o,
            "Commands this run executed (after the release build):\n\n```"
        )?;
        for c in cmds.iter().filter_map(|c| c.as_str()) {
            writeln!(o, "{c}")?;
        }
        writeln!(o, "```\n")?;
    }

    tx_section(&mut o, inp)?;
    dataplane_section(&mut o, inp, img_dir, img_rel)?;
    e2e_sections(&mut o, inp, img_dir, img_rel)?;
    Ok(o)
}

fn tx_section(o: &mut String, inp: &Inputs) -> Result<()> {
    writeln!(o, "### pktgen TX rate vs testpmd txonly\n")?;
    writeln!(
        o,
        "`pktgen/bench/txonly-vs-testpmd.sh`: `dpdk-testpmd --forward-mode=txonly \
         --txpkts=64` and `anycast6-pktgen --rate max --size 64 --latency-sample 0`, both \
         into `net_null0,no-rx=1` with one TX lcore, alternating; each figure is the median \
         of a run's per-second Tx-pps samples. Goal: pktgen >= 0.9x testpmd.\n"
    )?;
    let Some(rows) = &inp.txonly else {
        writeln!(
            o,
            "_No result (the comparison did not run or its output did not parse)._\n"
        )?;
        return Ok(());
    };
    writeln!(
        o,
        "| round | testpmd txonly Mpps | pktgen Mpps | ratio |\n|---|---:|---:|---:|"
    )?;
    for r in rows {
        let b = if r.round == "median" { "**" } else { "" };
        writeln!(
            o,
            "| {b}{}{b} | {b}{}{b} | {b}{}{b} | {b}{}{b} |",
            r.round,
            f(r.testpmd, 3),
            f(r.pktgen, 3),
            f(r.ratio, 3)
        )?;
    }
    writeln!(o)?;
    Ok(())
}

fn dataplane_section(o: &mut String, inp: &Inputs, img_dir: &Path, img_rel: &str) -> Result<()> {
    writeln!(o, "### (a) Appliance vs testpmd, one core\n")?;
    writeln!(
        o,
        "`bench/run-dataplane.sh` (described in \"Data plane: appliance vs testpmd\" below): \
         K client addresses replayed by `net_pcap` into port 0, every frame tunnelled out of \
         `net_null` port 1; testpmd `io` and `5tswap` on the same devices in the same run. \
         Mpps, median of per-second samples; ratio = appliance / 5tswap.\n"
    )?;
    let Some(d) = &inp.dataplane else {
        writeln!(
            o,
            "_No result (the comparison did not run or its output did not parse)._\n"
        )?;
        return Ok(());
    };
    writeln!(
        o,
        "| K (clients) | round | testpmd io | testpmd 5tswap | appliance | appliance (forwarded / elapsed) | ratio | load1 | check |\n|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    for r in &d.rows {
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.clients,
            r.round,
            f(r.io, 3),
            f(r.swap, 3),
            f(r.appliance, 3),
            f(r.appliance_avg, 3),
            f(r.ratio, 3),
            f(r.load1, 2),
            r.check
        )?;
    }
    writeln!(
        o,
        "\nLoad average before: {}; after: {}.\n",
        d.load_before.as_deref().unwrap_or("?"),
        d.load_after.as_deref().unwrap_or("?")
    )?;
    if !d.rows.is_empty() {
        let mut ks: Vec<u64> = d.rows.iter().map(|r| r.clients).collect();
        ks.dedup();
        let first_of = |k: u64| d.rows.iter().find(|r| r.clients == k);
        let col = |g: &dyn Fn(&parse::DataplaneRow) -> Option<f64>| -> Vec<Option<f64>> {
            ks.iter().map(|&k| first_of(k).and_then(g)).collect()
        };
        plot::bars(
            &img_dir.join("bench-dataplane.svg"),
            "One core: testpmd vs the appliance (Mpps)",
            "Mpps",
            &ks.iter().map(|k| format!("K = {k}")).collect::<Vec<_>>(),
            &[
                ("testpmd io".into(), col(&|r| r.io)),
                ("testpmd 5tswap".into(), col(&|r| r.swap)),
                ("appliance".into(), col(&|r| r.appliance)),
            ],
        )?;
        writeln!(o, "![one core, Mpps]({img_rel}/bench-dataplane.svg)\n")?;
    }
    Ok(())
}

fn trial_row(o: &mut String, label: &str, t: &Value) -> Result<()> {
    writeln!(
        o,
        "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        num(t, "trial.rate_pps").map_or("max".to_owned(), |r| kpps(Some(r))),
        kpps(num(t, "tx_pps")),
        kpps(num(t, "delivered_pps")),
        f(num(t, "loss_ratio").map(|x| x * 100.0), 4),
        f(num(t, "latency.p50_us"), 1),
        f(num(t, "latency.p99_us"), 1),
        f(num(t, "latency.max_us"), 1),
        num(t, "appliance_tx_full").map_or("?".into(), |v| format!("{v}")),
        f(num(t, "member_down_events"), 0),
        f(num(t, "load1"), 2)
    )?;
    Ok(())
}

const TRIAL_HEADER: &str = "| trial | offered kpps | sent kpps | delivered kpps | loss % | p50 us | p99 us | max us | appliance tx_full | member_down events | load1 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

fn e2e_sections(o: &mut String, inp: &Inputs, img_dir: &Path, img_rel: &str) -> Result<()> {
    writeln!(o, "### (b) pktgen -> appliance -> pktgen over vhost-user\n")?;
    let Some(e) = &inp.e2e else {
        writeln!(
            o,
            "_No result (bench-e2e did not run or its output did not parse)._\n"
        )?;
        return Ok(());
    };
    writeln!(
        o,
        "`bench-e2e` (bench/src/bin/bench-e2e.rs): every trial starts anycast6-pktgen \
         (`net_vhost` server) and the appliance (`virtio_user`) afresh as two processes; \
         layout: {}. pktgen plays {}-octet UDP clients and the members of the one service, \
         which register by Binding Update (trusted prefix) and count what the appliance \
         tunnels to them (sink mode): loss and one-way latency (client -> appliance -> \
         member, stamps read with the same TSC) are measured at the members. Health checks (not in (c)): \
         {}; `member_down` events are the appliance's (a member taken out after failed \
         probes: under overload probes and answers are lost like other packets and members \
         flap). {} s of traffic per trial. \"delivered\" = client packets that reached a member \
         per second of traffic; `tx_full` = the appliance's drops for a full TX ring \
         (towards pktgen): packets lost that way mean pktgen's loop, which also \
         transmits and shares CPU 0 with the appliance's control thread, did not empty \
         its receive ring in time, which a busy machine causes at any rate (the search \
         assumes loss grows with the rate). pktgen starts the clients 1 s after every \
         member registered (`--settle 1`), once the appliance has them all up.\n",
        s(e, "layout"),
        f(num(e, "frame_bytes"), 0),
        s(e, "health"),
        f(num(e, "trial_seconds"), 1)
    )?;
    writeln!(
        o,
        "One trial's commands (the appliance configuration is written per trial):\n\n```\n{}\n{}\n```\n",
        s(e, "pktgen_command"),
        s(e, "appliance_command")
    )?;
    let tol = num(e, "loss_tolerance").unwrap_or(0.0);
    let no_drop = num(e, "no_drop_pps");
    writeln!(
        o,
        "**Capacity** (`--rate max`): {} kpps sent, {} kpps delivered, loss {} %.  \n\
         **No-drop rate** (loss <= {} %, geometric bisection of the offered rate, {} trials): **{}**.\n",
        kpps(num(e, "capacity.tx_pps")),
        kpps(num(e, "capacity.delivered_pps")),
        f(num(e, "capacity.loss_ratio").map(|x| x * 100.0), 4),
        f(Some(tol * 100.0), 4),
        e["search"].as_array().map_or(0, |a| a.len()),
        no_drop.map_or("none: even the lowest rate tried lost packets".to_owned(), |r| format!("{} kpps", kpps(Some(r))))
    )?;
    writeln!(o, "{TRIAL_HEADER}")?;
    trial_row(o, "capacity", &e["capacity"])?;
    for (i, t) in e["search"].as_array().into_iter().flatten().enumerate() {
        trial_row(o, &format!("search {}", i + 1), t)?;
    }
    for l in e["latency"].as_array().into_iter().flatten() {
        trial_row(o, &format!("latency at {} %", f(l[0].as_f64(), 0)), &l[1])?;
    }
    writeln!(o)?;
    let search: Vec<(f64, f64)> = e["search"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((num(t, "trial.rate_pps")?, num(t, "loss_ratio")? * 100.0)))
        .collect();
    let mut sorted = search.clone();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    plot::lines(
        &img_dir.join("bench-e2e-loss.svg"),
        "Loss vs offered rate (no-drop search)",
        Axis {
            label: "offered pps",
            log: true,
        },
        Axis {
            label: "loss %",
            log: false,
        },
        &[Series {
            label: "loss %".into(),
            points: sorted,
        }],
    )?;
    let lat = |key: &str| -> Vec<(f64, f64)> {
        e["latency"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| Some((num(&l[1], "trial.rate_pps")?, num(&l[1], key)?)))
            .collect()
    };
    plot::lines(
        &img_dir.join("bench-e2e-latency.svg"),
        "One-way latency at 10/50/90 % of the no-drop rate",
        Axis {
            label: "offered pps",
            log: false,
        },
        Axis {
            label: "microseconds",
            log: true,
        },
        &[
            Series {
                label: "p50".into(),
                points: lat("latency.p50_us"),
            },
            Series {
                label: "p99".into(),
                points: lat("latency.p99_us"),
            },
            Series {
                label: "max".into(),
                points: lat("latency.max_us"),
            },
        ],
    )?;
    writeln!(o, "![loss vs offered rate]({img_rel}/bench-e2e-loss.svg)\n")?;
    writeln!(o, "![latency]({img_rel}/bench-e2e-latency.svg)\n")?;

    writeln!(o, "### (c) Scaling with flows and members\n")?;
    writeln!(
        o,
        "pktgen at `--rate max` (what the pair sustains), one trial per point. Flows: N \
         clients x 1 source port (`affinity = \"flow\"`, the affinity table sized to 4/3 N, \
         pktgen's flow table holding all N); 4 members. Members: 10 000 flows, N members \
         registered. No health checks here: at saturation lost probes make members flap, \
         which with flow affinity skews the split over members. The one-core \
         appliance-only figures for 1e3/1e5/1e6 clients are in (a).\n"
    )?;
    writeln!(
        o,
        "| flows | sent kpps | delivered kpps | loss % | p99 us | load1 |\n|---:|---:|---:|---:|---:|---:|"
    )?;
    for t in e["flows"].as_array().into_iter().flatten() {
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            f(num(t, "flows"), 0),
            kpps(num(t, "tx_pps")),
            kpps(num(t, "delivered_pps")),
            f(num(t, "loss_ratio").map(|x| x * 100.0), 4),
            f(num(t, "latency.p99_us"), 1),
            f(num(t, "load1"), 2)
        )?;
    }
    writeln!(
        o,
        "\n| members | registered | sent kpps | delivered kpps | loss % | per-member share min / max (of the mean) | load1 |\n|---:|---:|---:|---:|---:|---|---:|"
    )?;
    for t in e["members"].as_array().into_iter().flatten() {
        let ms = t["members"].as_array().cloned().unwrap_or_default();
        let rx: Vec<f64> = ms.iter().filter_map(|m| num(m, "rx_packets")).collect();
        let mean = rx.iter().sum::<f64>() / rx.len().max(1) as f64;
        let (lo, hi) = rx
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        let registered = ms
            .iter()
            .filter(|m| m["registered"].as_bool() == Some(true))
            .count();
        writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} / {} | {} |",
            ms.len(),
            registered,
            kpps(num(t, "tx_pps")),
            kpps(num(t, "delivered_pps")),
            f(num(t, "loss_ratio").map(|x| x * 100.0), 4),
            f((mean > 0.0).then(|| lo / mean), 2),
            f((mean > 0.0).then(|| hi / mean), 2),
            f(num(t, "load1"), 2)
        )?;
    }
    writeln!(o)?;
    let pts = |key: &str, x: &str| -> Vec<(f64, f64)> {
        e[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let xv = if x == "members" {
                    t["members"].as_array()?.len() as f64
                } else {
                    num(t, x)?
                };
                Some((xv, num(t, "delivered_pps")? / 1e3))
            })
            .collect()
    };
    let mut flow_series = vec![Series {
        label: "pktgen -> appliance -> pktgen (delivered)".into(),
        points: pts("flows", "flows"),
    }];
    if let Some(d) = &inp.dataplane {
        let mut seen = Vec::new();
        let appl: Vec<(f64, f64)> = d
            .rows
            .iter()
            .filter(|r| {
                let new = !seen.contains(&r.clients);
                seen.push(r.clients);
                new
            })
            .filter_map(|r| Some((r.clients as f64, r.appliance? * 1e3)))
            .collect();
        flow_series.push(Series {
            label: "appliance alone, net_pcap -> net_null (a)".into(),
            points: appl,
        });
    }
    plot::lines(
        &img_dir.join("bench-flows.svg"),
        "Rate vs active flows",
        Axis {
            label: "flows",
            log: true,
        },
        Axis {
            label: "kpps",
            log: true,
        },
        &flow_series,
    )?;
    plot::lines(
        &img_dir.join("bench-members.svg"),
        "Delivered rate vs members",
        Axis {
            label: "members",
            log: true,
        },
        Axis {
            label: "kpps",
            log: false,
        },
        &[Series {
            label: "delivered".into(),
            points: pts("members", "members"),
        }],
    )?;
    writeln!(o, "![rate vs flows]({img_rel}/bench-flows.svg)\n")?;
    writeln!(o, "![rate vs members]({img_rel}/bench-members.svg)\n")?;

    writeln!(o, "### (d) Failover\n")?;
    let fo = &e["failover"];
    let t = &fo["result"];
    writeln!(
        o,
        "{} members, {} flows at {} kpps for {} s; member {} killed {} s into the client \
         traffic (SIGUSR1 to pktgen: the member stops answering probes and counts what still \
         reaches it). pktgen tracks which member receives each flow (`--track-flows`): a \
         flow that reaches another member than before has moved.\n",
        t["members"].as_array().map_or(0, |a| a.len()),
        f(num(t, "flows"), 0),
        kpps(num(t, "trial.rate_pps")),
        f(num(t, "trial.seconds"), 0),
        f(num(fo, "killed_member"), 0),
        f(num(fo, "killed_after_traffic_s"), 1)
    )?;
    writeln!(o, "| measure | value |\n|---|---:|")?;
    writeln!(
        o,
        "| failover time: death -> last packet the dead member received | {} ms |",
        f(num(fo, "failover_s").map(|x| x * 1e3), 1)
    )?;
    writeln!(
        o,
        "| detection bound set by the health checks | {} ms |",
        f(num(fo, "health_bound_s").map(|x| x * 1e3), 0)
    )?;
    writeln!(
        o,
        "| packets sent to the dead member after its death | {} |",
        f(num(fo, "rx_after_death"), 0)
    )?;
    writeln!(
        o,
        "| flows disrupted (were on the dead member, moved) | {} of {} seen |",
        f(num(fo, "flows_disrupted"), 0),
        f(num(fo, "flows_seen"), 0)
    )?;
    writeln!(
        o,
        "| flows of live members that moved | {} |",
        f(num(fo, "flows_moved_other"), 0)
    )?;
    writeln!(
        o,
        "| client packets lost in the run | {} of {} |",
        f(num(fo, "lost"), 0),
        f(num(t, "sent"), 0)
    )?;
    writeln!(o, "| load1 | {} |", f(num(t, "load1"), 2))?;
    writeln!(o)?;
    writeln!(
        o,
        "bench-e2e ran {} trials in {} s.\n",
        ["capacity"].len()
            + ["search", "latency", "flows", "members"]
                .iter()
                .map(|k| e[*k].as_array().map_or(0, |a| a.len()))
                .sum::<usize>()
            + 1,
        f(num(e, "total_wall_s"), 0)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_keeps_what_is_outside_the_markers() {
        let page = format!("# B\n\nintro\n\n{BEGIN}\nold\n{END}\n\n## Hand-written\ntext\n");
        let out = splice(&page, "new\n");
        assert_eq!(
            out,
            format!("# B\n\nintro\n\n{BEGIN}\nnew\n{END}\n\n## Hand-written\ntext\n")
        );
        // Idempotent shape.
        assert_eq!(splice(&out, "new\n"), out);
        // Without markers: after the title.
        let out = splice("# B\n\n## Old\nx\n", "r\n");
        assert_eq!(out, format!("# B\n\n{BEGIN}\nr\n{END}\n\n## Old\nx\n"));
    }

    #[test]
    fn relative_image_paths() {
        assert_eq!(
            relative(Path::new("/a/docs/img"), Path::new("/a/docs")),
            "img"
        );
        assert_eq!(
            relative(Path::new("/a/img"), Path::new("/a/docs")),
            "../img"
        );
        assert_eq!(relative(Path::new("/a/docs"), Path::new("/a/docs")), ".");
    }
}
