//! `anycast6-agent`: the member agent of the anycast6 load balancer (see README.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anycast6_agent::config::{self, AgentConfig, Flags, LoadSource};
use anycast6_agent::delivery::mode_name;
use anycast6_agent::{run, status};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "anycast6-agent", version, about = "anycast6 member agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register with the appliance and serve until SIGTERM (then drain and exit).
    Run(Flags),
    /// Show the running agent's registration state (reads its state file).
    Status {
        /// The state file the agent writes.
        #[arg(long, default_value = config::DEFAULT_STATE_FILE)]
        state_file: PathBuf,
        /// Print the state file's JSON with the lifetime left brought up to date.
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration (and key file) and print the result.
    CheckConfig(Flags),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(flags) => AgentConfig::load(&flags)
            .map_err(anyhow::Error::from)
            .and_then(run::run),
        Command::Status { state_file, json } => show_status(&state_file, json),
        Command::CheckConfig(flags) => AgentConfig::load(&flags)
            .map(|c| print_config(&c))
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anycast6-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn show_status(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let mut state = status::read(path)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let alive = status::process_alive(state.pid);
    if json {
        for b in &mut state.bindings {
            b.lifetime_left_s = b.expires_unix_s.map(|e| e.saturating_sub(now));
        }
        let mut value = serde_json::to_value(&state)?;
        value["running"] = serde_json::Value::Bool(alive);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", status::render(&state, now, alive));
    }
    Ok(())
}

fn print_config(c: &AgentConfig) {
    println!("appliance        {}", c.appliance);
    println!("care-of          {}", c.care_of);
    for s in &c.services {
        println!("service          {s}");
    }
    println!(
        "interface        {}",
        c.interface
            .as_deref()
            .unwrap_or("(from the care-of address)")
    );
    println!("lifetime         {} s", u32::from(c.lifetime_units) * 4);
    match &c.auth {
        Some(k) => println!("authentication   RFC 4285 MN-HA, SPI {}", k.spi),
        None => println!("authentication   none (the appliance must trust the care-of prefix)"),
    }
    if let Some(bid) = c.bid {
        println!("binding id       {bid}");
    }
    println!("delivery         {}", mode_name(c.delivery));
    match c.load.source {
        LoadSource::Fixed => println!("load             fixed weight {}", c.load.weight),
        LoadSource::Loadavg => println!(
            "load             /proc/loadavg every {} s",
            c.load.interval.as_secs()
        ),
        LoadSource::None => println!("load             none (the appliance's default weight)"),
    }
    if c.route_optimisation {
        println!(
            "route opt.       on (TUN {}, at most {} clients)",
            c.ro_tun_name, c.max_correspondents
        );
    } else {
        println!("route opt.       off");
    }
    println!("state file       {}", c.state_file.display());
}
