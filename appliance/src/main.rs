//! `anycast6`: the appliance's command-line entry point.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
    match cli.command {
        Command::Decode { json, file } => decode(&file, json),
    }
}

fn decode(file: &std::path::Path, json: bool) -> ExitCode {
    let frames = match anycast6::decode::read_capture(file) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("anycast6 decode: {e}");
            return ExitCode::FAILURE;
        }
    };
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
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
