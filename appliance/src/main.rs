//! `anycast6`: the appliance's command-line entry point.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anycast6::config::Config;
use anycast6::runtime::RunPlan;
use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "anycast6",
    version,
    about = "IPv6 anycast load balancer acting as a pseudo Mobile IPv6 home agent"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance on the DPDK ports of the configuration.
    Run {
        /// The configuration file (docs/configuration.md).
        #[arg(long, short)]
        config: PathBuf,
        /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<f64>,
        /// Print the statistics line even when stderr is not a terminal.
        #[arg(long)]
        stats: bool,
        /// Final counters as one JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration file and say what is wrong with it, naming each key.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// Run a capture through the data-plane pipeline offline (no DPDK) and say what the
    /// appliance would do with each frame.
    Explain {
        /// The configuration file; every port needs `mac` set.
        #[arg(long, short)]
        config: PathBuf,
        /// One JSON object per frame.
        #[arg(long)]
        json: bool,
        /// Write the frames the appliance would send to this pcap file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The capture (pcap or pcapng, Ethernet), as received on the first port.
        file: PathBuf,
    },
    /// Talk to a running appliance over its admin socket (docs/operations.md).
    Ctl(anycast6::ctl::CtlArgs),
    /// Decode a capture (pcap or pcapng, Ethernet): one line per frame.
    Decode {
        /// One JSON object per line, keyed by Wireshark field names (docs/decode.md).
        #[arg(long)]
        json: bool,
        /// The capture file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            duration,
            stats,
            json,
        } => run(&config, duration, stats, json),
        Command::CheckConfig { file } => check_config(&file),
        Command::Explain {
            config,
            json,
            out,
            file,
        } => explain(&config, json, out.as_deref(), &file),
        Command::Decode { json, file } => decode(&file, json),
        Command::Ctl(args) => anycast6::ctl::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("anycast6: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> anyhow::Result<ExitCode> {
    let report = anycast6::config::check_config_file(file);
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run(file: &Path, duration: Option<f64>, stats: bool, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(file)?;
    let duration = match duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => anyhow::bail!("--duration {s}: give a positive number of seconds"),
        None => None,
    };
    let prefix = format!("anycast6-{}", std::process::id());
    let mut plan = RunPlan::from_config(&config, &prefix, duration, stats);
    plan.config_path = Some(file.to_owned());
    eprintln!("anycast6: {} ({})", config.summary(), file.display());
    let report = anycast6::runtime::run(plan)?;
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render());
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(
    file: &Path,
    json: bool,
    out: Option<&Path>,
    capture: &Path,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(file)?;
    if let Some(i) = config.ports.iter().position(|p| p.mac.is_none()) {
        anyhow::bail!(
            "ports[{i}].mac: explain runs without devices, so every port needs its MAC in the file"
        );
    }
    let frames = anycast6::decode::read_capture(capture)?;
    let mut explainer = anycast6::explain::Explainer::new(
        &config.snapshot_spec(),
        config.dataplane.affinity_capacity,
        config.dataplane.affinity_idle_timeout,
    )?;
    let mut writer = match out {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            let header = pcap_file::pcap::PcapHeader {
                datalink: pcap_file::DataLink::ETHERNET,
                ..Default::default()
            };
            Some(pcap_file::pcap::PcapWriter::with_header(f, header)?)
        }
        None => None,
    };
    let stdout = std::io::stdout();
    let mut lines = std::io::BufWriter::new(stdout.lock());
    let mut written = 0u64;
    for (i, frame) in frames.iter().enumerate() {
        let n = i as u64 + 1;
        let e = explainer.frame(frame, 0);
        let line = if json {
            serde_json::Value::Object(e.to_json(n)).to_string()
        } else {
            e.to_line(n)
        };
        if writeln!(lines, "{line}").is_err() {
            break;
        }
        if let Some(w) = writer.as_mut() {
            for f in &e.output {
                let ts = Duration::from_micros(written);
                w.write_packet(&pcap_file::pcap::PcapPacket::new(ts, f.len() as u32, f))?;
                written += 1;
            }
        }
    }
    lines.flush().ok();
    Ok(ExitCode::SUCCESS)
}

fn decode(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let frames = anycast6::decode::read_capture(file)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (i, frame) in frames.iter().enumerate() {
        let number = i as u64 + 1;
        let decoded = anycast6::decode::decode_frame(frame);
        let line = if json {
            serde_json::Value::Object(decoded.to_json(number)).to_string()
        } else {
            decoded.to_line(number)
        };
        if writeln!(out, "{line}").is_err() {
            // The reader went away (e.g. `| head`): not an error of ours.
            return Ok(ExitCode::SUCCESS);
        }
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}
