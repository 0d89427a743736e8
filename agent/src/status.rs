//! The state file: what the running agent publishes for `anycast6-agent status`.
//!
//! The agent rewrites it (JSON, written to a temporary file and renamed, so a reader never
//! sees half of it) whenever a binding changes and at least once a second; `status` reads
//! it and recomputes the lifetime left from the absolute expiry time. A state file whose
//! `updated_unix_s` is old, or whose process is gone, is reported as stale.

use std::io::Write;
use std::net::Ipv6Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::DeliveryMode;
use crate::correspondent::CorrespondentStatus;
use crate::registration::BindingStatus;

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    pub pid: u32,
    pub started_unix_s: u64,
    pub updated_unix_s: u64,
    pub appliance: Ipv6Addr,
    pub care_of: Ipv6Addr,
    /// The delivery method in use (after `auto` chose).
    pub delivery: DeliveryMode,
    pub draining: bool,
    pub bindings: Vec<BindingStatus>,
    /// Whether route optimisation is on.
    #[serde(default)]
    pub route_optimisation: bool,
    /// The clients route optimisation knows of (bound, under way, failed, legacy).
    #[serde(default)]
    pub correspondents: Vec<CorrespondentStatus>,
}

/// Writes the state atomically (temporary file in the same directory, then rename).
pub fn write(path: &Path, state: &AgentState) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads a state file.
pub fn read(path: &Path) -> anyhow::Result<AgentState> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (is the agent running? it writes this file; see --state-file)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The human-readable report at wall-clock time `now_unix_s`; `alive` tells whether the
/// process that wrote the file still runs.
pub fn render(state: &AgentState, now_unix_s: u64, alive: bool) -> String {
    let mut out = String::new();
    let age = now_unix_s.saturating_sub(state.updated_unix_s);
    let health = if !alive {
        "NOT RUNNING (state file is stale)".to_string()
    } else if age > 5 {
        format!("running, but the state file is {age} s old")
    } else if state.draining {
        "running, draining".to_string()
    } else {
        "running".to_string()
    };
    out.push_str(&format!(
        "agent pid {}: {health}\nappliance {}  care-of {}  delivery {}\n",
        state.pid,
        state.appliance,
        state.care_of,
        serde_json::to_value(state.delivery)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    ));
    for b in &state.bindings {
        let phase = serde_json::to_value(b.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!("service {}: {phase}", b.service));
        match b.expires_unix_s {
            Some(e) => out.push_str(&format!(
                ", lifetime left {} s of {} s",
                e.saturating_sub(now_unix_s),
                b.granted_s.unwrap_or(0)
            )),
            None => out.push_str(", no binding"),
        }
        out.push_str(&format!(", seq {}\n", b.sequence));
        match &b.last_ba {
            Some(ba) => out.push_str(&format!(
                "  last BA: status {} ({}), seq {}, lifetime {} s, {} s ago{}\n",
                ba.status,
                ba.meaning,
                ba.sequence,
                ba.lifetime_s,
                now_unix_s.saturating_sub(ba.at_unix_s),
                if ba.authenticated {
                    ", authenticated"
                } else {
                    ""
                }
            )),
            None => out.push_str("  last BA: none yet\n"),
        }
    }
    if state.route_optimisation {
        out.push_str(&format!(
            "route optimisation: {} correspondent(s)\n",
            state.correspondents.len()
        ));
    }
    for c in &state.correspondents {
        let phase = serde_json::to_value(c.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!("  client {} via {}: {phase}", c.client, c.service));
        if let (Some(left), Some(granted)) = (c.lifetime_left_s, c.granted_s) {
            out.push_str(&format!(", lifetime left {left} s of {granted} s"));
        }
        out.push_str(&format!(", seq {}", c.sequence));
        if let Some(status) = c.last_status {
            out.push_str(&format!(", last BA status {status}"));
        }
        out.push('\n');
    }
    out
}

/// True when a process with this id exists.
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registration::{LastBa, Phase};

    fn state() -> AgentState {
        AgentState {
            pid: 4242,
            started_unix_s: 1000,
            updated_unix_s: 1100,
            appliance: "2001:db8:ffff::1".parse().unwrap(),
            care_of: "2001:db8:100::10".parse().unwrap(),
            delivery: DeliveryMode::Seg6local,
            draining: false,
            bindings: vec![BindingStatus {
                service: "2001:db8:aaaa::80".parse().unwrap(),
                phase: Phase::Registered,
                sequence: 12,
                granted_s: Some(600),
                expires_unix_s: Some(1600),
                lifetime_left_s: Some(500),
                next_bu_in_s: Some(380.0),
                last_ba: Some(LastBa {
                    status: 0,
                    meaning: "binding update accepted".into(),
                    sequence: 12,
                    lifetime_s: 600,
                    at_unix_s: 1000,
                    authenticated: true,
                }),
                load: None,
                bus_sent: 1,
                bas_taken: 1,
            }],
            route_optimisation: true,
            correspondents: vec![CorrespondentStatus {
                service: "2001:db8:aaaa::80".parse().unwrap(),
                client: "2001:db8:3::1".parse().unwrap(),
                state: crate::correspondent::RoPhase::Bound,
                sequence: 1,
                granted_s: Some(420),
                lifetime_left_s: Some(400),
                last_status: Some(0),
                bus_sent: 1,
                return_routability_runs: 1,
                home_token_age_s: Some(20),
            }],
        }
    }

    #[test]
    fn round_trip_and_render() {
        let dir = std::env::temp_dir().join(format!("a6agent-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        write(&path, &state()).unwrap();
        assert_eq!(read(&path).unwrap(), state());
        std::fs::remove_dir_all(&dir).unwrap();

        let text = render(&state(), 1102, true);
        assert!(text.contains("agent pid 4242: running\n"), "{text}");
        assert!(text.contains("delivery seg6local"), "{text}");
        assert!(
            text.contains("service 2001:db8:aaaa::80: registered, lifetime left 498 s of 600 s")
        );
        assert!(text.contains("last BA: status 0 (binding update accepted), seq 12"));
        assert!(
            text.contains(
                "  client 2001:db8:3::1 via 2001:db8:aaaa::80: bound, lifetime left 400 s of \
                 420 s, seq 1, last BA status 0\n"
            ),
            "{text}"
        );
        assert!(render(&state(), 1102, false).contains("NOT RUNNING"));
        assert!(render(&state(), 1200, true).contains("100 s old"));
        assert!(read(&dir.join("missing.json"))
            .unwrap_err()
            .to_string()
            .contains("is the agent running"));
    }
}
