//! The result file (`--out FILE`) and the live line. The JSON schema is documented in
//! pktgen/README.md; `SCHEMA_VERSION` changes when a field changes meaning or goes away.

use serde::Serialize;

use crate::latency::{LatencyReport, Percentiles};
use crate::member::{MemberCounters, NetCounters};
use crate::profile::Profile;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub device: String,
    pub profile: Profile,
    /// Lcore layout: "split" (TX and RX on two lcores) or "single".
    pub cores: String,
    pub tx: TxReport,
    pub rx: RxReport,
    /// Client packets that came back (reply mode, loopback) or reached a member (sink mode)
    /// against client packets sent.
    pub loss: LossReport,
    /// Stamped client packets seen back at the client side: round trip through the
    /// appliance and a member in reply mode, one way on a loopback.
    pub latency: LatencyReport,
    /// Stamped client packets seen at the members (one way, client -> appliance -> member).
    pub member_latency: LatencyReport,
    pub members: Vec<MemberReport>,
    /// Client flows at the members: present with flow tracking (`--track-flows`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<crate::member::FlowCounters>,
    pub network: NetworkReport,
    pub port: PortReport,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TxReport {
    pub packets: u64,
    pub bytes: u64,
    pub latency_samples: u64,
    /// Seconds from the first to the last client packet.
    pub duration_s: f64,
    pub pps: f64,
    pub gbps: f64,
    /// Control frames (BUs, NAs, probe answers) and member replies sent.
    pub control_packets: u64,
    /// Frames the RX side could not hand to TX (channel full) or the pool could not hold.
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RxReport {
    pub packets: u64,
    pub bytes: u64,
    /// Client packets back at the client side.
    pub client_packets: u64,
    /// Client packets tunnelled to (live) members.
    pub member_packets: u64,
    pub pps: f64,
    pub gbps: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LossReport {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub ratio: f64,
    /// What `received` counts: "client" or "members".
    pub measured_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemberReport {
    pub index: usize,
    pub care_of: String,
    pub service: String,
    pub alive: bool,
    /// Seconds after the start at which it was killed.
    pub killed_at_s: Option<f64>,
    /// Seconds from the kill to the last client packet that still reached it (the
    /// appliance's failover time as the member saw it); `None` if none came after.
    pub failover_s: Option<f64>,
    pub registered: bool,
    #[serde(flatten)]
    pub counters: MemberCounters,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkReport {
    pub our_mac: String,
    pub appliance_mac: Option<String>,
    #[serde(flatten)]
    pub counters: NetCounters,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PortReport {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

pub fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What the live line shows for one second.
#[derive(Debug, Clone, Default)]
pub struct LiveSample {
    pub elapsed_s: f64,
    pub tx_pps: f64,
    pub tx_gbps: f64,
    pub rx_pps: f64,
    pub loss_ratio: Option<f64>,
    pub latency: Percentiles,
    /// (index, rx packets this second, alive, registered)
    pub members: Vec<(usize, u64, bool, bool)>,
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// One line: `t=3s tx 1.00 Mpps 0.51 Gb/s | rx ... | loss 0.00% | lat us p50 ...`.
pub fn live_line(s: &LiveSample) -> String {
    let mut line = format!(
        "t={:>5.1}s tx {:>7.3} Mpps {:>6.2} Gb/s | rx {:>7.3} Mpps",
        s.elapsed_s,
        s.tx_pps / 1e6,
        s.tx_gbps,
        s.rx_pps / 1e6
    );
    if let Some(l) = s.loss_ratio {
        line += &format!(" | loss {:.3}%", l * 100.0);
    }
    if s.latency.samples > 0 {
        let p = &s.latency;
        line += &format!(
            " | lat us p50 {} p90 {} p99 {} p99.9 {} max {}",
            us(p.p50_ns),
            us(p.p90_ns),
            us(p.p99_ns),
            us(p.p999_ns),
            us(p.max_ns)
        );
    }
    if !s.members.is_empty() {
        line += " | members";
        for (i, n, alive, registered) in &s.members {
            let mark = match (alive, registered) {
                (false, _) => "x",
                (true, false) => "?",
                (true, true) => "",
            };
            line += &format!(" {i}:{n}{mark}");
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_line_shows_everything() {
        let s = LiveSample {
            elapsed_s: 3.0,
            tx_pps: 1.5e6,
            tx_gbps: 0.77,
            rx_pps: 1.49e6,
            loss_ratio: Some(0.001),
            latency: Percentiles {
                samples: 10,
                p50_ns: 12_300,
                p90_ns: 20_000,
                p99_ns: 30_000,
                p999_ns: 40_000,
                max_ns: 50_000,
                ..Default::default()
            },
            members: vec![
                (0, 500, true, true),
                (1, 0, false, true),
                (2, 7, true, false),
            ],
        };
        let l = live_line(&s);
        assert!(l.contains("tx   1.500 Mpps"), "{l}");
        assert!(l.contains("loss 0.100%"), "{l}");
        assert!(l.contains("p50 12.3 "), "{l}");
        assert!(l.contains("members 0:500 1:0x 2:7?"), "{l}");
        assert_eq!(mac_string([2, 0, 0, 0, 0, 0xfe]), "02:00:00:00:00:fe");
    }
}
