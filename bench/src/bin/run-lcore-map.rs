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

use anycast6::config::Config;
use anycast6::runtime::RunPlan;
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
    let mut plan = RunPlan::from_config(
        &config,
        &format!("anycast6-{}", std::process::id()),
        Some(Duration::from_secs_f64(seconds)),
        true,
    );
    let l = plan
        .eal_args
        .iter()
        .position(|a| a == "-l")
        .context("the EAL arguments have no -l")?;
    plan.eal_args
        .splice(l..l + 2, ["--lcores".to_owned(), lcores]);
    eprintln!("run-lcore-map: {} ({})", config.summary(), file.display());
    let report = anycast6::runtime::run(plan)?;
    println!("{}", report.to_json());
    Ok(())
}
