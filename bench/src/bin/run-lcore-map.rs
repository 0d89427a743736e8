//! `anycast6 run` with an EAL lcore-to-CPU map: the same runtime
//! ([`anycast6::runtime::run`]) on the same configuration, except that the EAL gets
//! `--lcores MAP` instead of `-l LCORES`.
//!
//! `run-lcore-map --config FILE --duration SECONDS --lcores MAP`, e.g.
//! `--lcores 0@0,1@0,2@1`: main lcore 0 and worker lcore 1 share CPU 0, worker lcore 2
//! has CPU 1. `dataplane.lcores` only takes a plain core list, and DPDK refuses lcore ids
//! with no CPU of that number, so on a 2-CPU machine this is the way to run 2 workers.
//! Prints the final counters as one JSON object on stdout and the per-second statistics
//! line on stderr (like `anycast6 run --stats --json`).

use std::path::PathBuf;
use std::time::Duration;

use anycast6::config::{Config, RssConfig};
use anycast6::runtime::{PortPlan, RunPlan};
use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let (mut config, mut duration, mut lcores) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value)),
            "--duration" => duration = Some(value.parse::<f64>().context("--duration")?),
            "--lcores" => lcores = Some(value),
            _ => bail!("unknown argument {flag}"),
        }
    }
    let (Some(file), Some(seconds), Some(lcores)) = (config, duration, lcores) else {
        bail!("usage: run-lcore-map --config FILE --duration SECONDS --lcores MAP");
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--duration {seconds}: give a positive number of seconds");
    }
    let config = Config::load(&file)?;
    let mut eal_args = config.eal_args(&format!("anycast6-{}", std::process::id()));
    let l = eal_args
        .iter()
        .position(|a| a == "-l")
        .context("the EAL arguments have no -l")?;
    eal_args.splice(l..l + 2, ["--lcores".to_owned(), lcores]);
    let plan = RunPlan {
        eal_args,
        ports: config
            .ports
            .iter()
            .map(|p| PortPlan {
                name: p.name.clone(),
                device: p.device.clone(),
                mtu: p.mtu,
                mac: p.mac,
                next_hop: p.next_hop,
                next_hop_mac: p.next_hop_mac,
            })
            .collect(),
        workers: config.dataplane.workers,
        mempool_size: config.dataplane.mempool_size,
        affinity_capacity: config.dataplane.affinity_capacity,
        affinity_idle_timeout: config.dataplane.affinity_idle_timeout,
        rss: match config.dataplane.rss {
            RssConfig::Addresses => anycast6_dpdk::RssMode::Ipv6Addresses,
            RssConfig::FiveTuple => anycast6_dpdk::RssMode::Ipv6FiveTuple,
        },
        spec: config.snapshot_spec(),
        duration: Some(Duration::from_secs_f64(seconds)),
        stats_interval: Duration::from_secs(1),
        force_stats: true,
    };
    eprintln!("run-lcore-map: {} ({})", config.summary(), file.display());
    let report = anycast6::runtime::run(plan)?;
    println!("{}", report.to_json());
    Ok(())
}
