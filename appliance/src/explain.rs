//! `anycast6 explain`: the data-plane pipeline offline, on a capture, without DPDK.
//!
//! Each frame goes through the same `Worker::process` the appliance runs on its lcores and,
//! for frames the workers hand to the control thread, through the same neighbour/echo
//! responder the control thread uses. The output says, per frame, what the appliance would
//! do; with `--out` it writes the frames the appliance would send, in the order it would
//! produce them for a single worker. Mobility Header signalling (registrations, return
//! routability, trigger answers) is stateful control-thread work and is only named
//! (`local`, reason `mobility_header`), not replayed: its output depends on bindings and
//! health that a capture does not carry.

use std::net::Ipv6Addr;
use std::time::Duration;

use anycast6_wire::{PacketBuf, VecBuf};
use serde_json::{json, Map, Value};

use crate::control::neighbour::{self, LocalOutcome};
use crate::dataplane::pipeline::{ExtraTx, Tick, Verdict, Worker, WorkerConfig};
use crate::dataplane::snapshot::{Snapshot, SnapshotSpec};

/// Headroom of offline buffers: the same as a DPDK mbuf's.
const HEADROOM: usize = 128;
/// Tailroom of offline buffers: an mbuf's default data room.
const TAILROOM: usize = 2048;

/// One frame's fate.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    /// `forward`, `reverse`, `local` or `drop`.
    pub verdict: &'static str,
    /// The drop reason, or for `local` what the control thread made of the frame.
    pub reason: Option<String>,
    pub service: Option<Ipv6Addr>,
    pub member: Option<Ipv6Addr>,
    /// Port the output leaves on.
    pub port: Option<u16>,
    /// Frames the appliance sends because of this one (tunnel packet, fragments,
    /// decapsulated packet, ICMPv6 error, NA, echo reply).
    pub output: Vec<Vec<u8>>,
}

impl Explained {
    /// The JSON object for `--json`.
    pub fn to_json(&self, frame_number: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("frame.number".into(), frame_number.into());
        m.insert("verdict".into(), self.verdict.into());
        m.insert("reason".into(), json!(self.reason));
        m.insert("service".into(), json!(self.service.map(|a| a.to_string())));
        m.insert("member".into(), json!(self.member.map(|a| a.to_string())));
        m.insert("port".into(), json!(self.port));
        m.insert("output_frames".into(), json!(self.output.len()));
        m
    }

    /// The text line.
    pub fn to_line(&self, frame_number: u64) -> String {
        let mut s = format!("{frame_number} {}", self.verdict);
        if let Some(r) = &self.reason {
            s.push_str(&format!(" reason={r}"));
        }
        if let Some(a) = self.service {
            s.push_str(&format!(" service={a}"));
        }
        if let Some(a) = self.member {
            s.push_str(&format!(" member={a}"));
        }
        if !self.output.is_empty() {
            s.push_str(&format!(" out={}", self.output.len()));
        }
        s
    }
}

struct Fragments(Vec<Vec<u8>>);

impl ExtraTx<VecBuf> for Fragments {
    fn alloc(&mut self) -> Option<VecBuf> {
        Some(VecBuf::with_room(HEADROOM, TAILROOM))
    }
    fn send_after(&mut self, _port: u16, buf: VecBuf) {
        self.0.push(buf.into_vec());
    }
}

/// The appliance's pipeline and control-thread responder, offline.
#[derive(Debug)]
pub struct Explainer {
    snapshot: Snapshot,
    worker: Worker,
    local: Vec<Ipv6Addr>,
    /// Simulated time per frame: the capture's own timestamps are not trusted to be
    /// monotonic, so each frame advances the clock by this much.
    step: Duration,
    now: Duration,
}

impl Explainer {
    /// Builds the snapshot and one worker as `run` would.
    pub fn new(
        spec: &SnapshotSpec,
        affinity_capacity: usize,
        affinity_idle_timeout: u32,
    ) -> anyhow::Result<Self> {
        let snapshot = Snapshot::build(spec)?;
        let worker = Worker::new(
            WorkerConfig {
                id: 0,
                affinity_capacity,
                affinity_idle_timeout,
                icmp_rate: spec.icmp_rate,
            },
            Tick::from_millis(0),
        )?;
        let local = spec
            .local_addresses
            .iter()
            .copied()
            .chain(std::iter::once(spec.tunnel.address))
            .collect();
        Ok(Explainer {
            snapshot,
            worker,
            local,
            step: Duration::from_micros(10),
            now: Duration::ZERO,
        })
    }

    /// Explains one frame received on `rx_port`.
    pub fn frame(&mut self, frame: &[u8], rx_port: u16) -> Explained {
        self.now += self.step;
        let mut buf = VecBuf::from_slice_with_room(frame, HEADROOM, TAILROOM);
        let mut extra = Fragments(Vec::new());
        let verdict = self.worker.process(
            &self.snapshot,
            &mut buf,
            rx_port,
            Tick::from_millis(self.now.as_millis() as u64),
            &mut extra,
        );
        let service_of = |s: u16| self.snapshot.service(s);
        let mut e = Explained {
            verdict: "drop",
            reason: None,
            service: None,
            member: None,
            port: verdict.tx_port(),
            output: Vec::new(),
        };
        match verdict {
            Verdict::Forward {
                service, member, ..
            }
            | Verdict::Reverse {
                service, member, ..
            } => {
                e.verdict = if matches!(verdict, Verdict::Forward { .. }) {
                    "forward"
                } else {
                    "reverse"
                };
                if let Some(svc) = service_of(service) {
                    e.service = Some(svc.address);
                    e.member = svc.member_by_id(member).map(|m| m.care_of);
                }
                e.output.push(buf.data().to_vec());
                e.output.extend(extra.0);
            }
            Verdict::IcmpError { reason, .. } => {
                e.reason = Some(reason.name().to_string());
                e.output.push(buf.data().to_vec());
            }
            Verdict::Drop(reason) => e.reason = Some(reason.name().to_string()),
            Verdict::Exception if carries_mobility_header(frame) => {
                e.verdict = "local";
                e.reason = Some("mobility_header".into());
            }
            Verdict::Exception => {
                e.verdict = "local";
                let port_mac = self
                    .snapshot
                    .port(rx_port)
                    .map(|p| p.mac)
                    .unwrap_or_default();
                match neighbour::handle_local_frame(frame, port_mac, |a| self.local.contains(a)) {
                    LocalOutcome::Reply(reply) | LocalOutcome::ReplyAndLearned { reply, .. } => {
                        e.reason = Some("answered".into());
                        e.port = Some(rx_port);
                        e.output.push(reply);
                    }
                    LocalOutcome::Learned { .. } => e.reason = Some("neighbour_learned".into()),
                    LocalOutcome::NotHandled(why) => e.reason = Some(why.replace(' ', "_")),
                }
            }
        }
        e
    }
}

/// Is the frame IPv6 carrying a Mobility Header, directly or inside IPv6-in-IPv6 (a
/// member's reverse-tunnelled return-routability message)?
fn carries_mobility_header(frame: &[u8]) -> bool {
    use anycast6_wire::checksum::proto;
    use anycast6_wire::ipv6::Ipv6Packet;
    use anycast6_wire::ipv6ext::ExtHeaderChain;
    let Some(ip) = frame
        .get(14..)
        .and_then(|b| Ipv6Packet::new_checked(b).ok())
    else {
        return false;
    };
    let Ok(chain) = ExtHeaderChain::walk(ip.next_header(), ip.payload()) else {
        return false;
    };
    match chain.upper_layer {
        proto::MOBILITY => true,
        proto::IPV6 => chain
            .upper_layer_bytes(ip.payload())
            .and_then(|inner| Ipv6Packet::new_checked(inner).ok())
            .is_some_and(|inner| inner.next_header() == proto::MOBILITY),
        _ => false,
    }
}
