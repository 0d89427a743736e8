//! Prometheus metrics: the text exposition format (version 0.0.4) over HTTP.
//!
//! [`MetricsServer`] answers `GET /metrics` by asking the control thread for a
//! [`ControlView`] (like the admin socket does) and rendering it with [`render`]. Every
//! name starts with `anycast6_`; counters end in `_total`. docs/operations.md lists them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::control::admin::{ControlRequest, CONTROL_ANSWER_TIMEOUT};
use crate::control::view::ControlView;

/// The running metrics endpoint; dropping it stops it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn start(
        addr: SocketAddr,
        to_control: mpsc::Sender<ControlRequest>,
    ) -> anyhow::Result<MetricsServer> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("serving metrics on {addr}"))?;
        let addr = server
            .server_addr()
            .to_ip()
            .context("the metrics server has no IP address")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("anycast6-metrics".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    let response = respond(&request, &to_control);
                    let _ = request.respond(response);
                }
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port is the kernel's choice when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(
    request: &tiny_http::Request,
    to_control: &mpsc::Sender<ControlRequest>,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let text = |status: u16, body: String, content_type: &str| {
        let header =
            tiny_http::Header::from_bytes("Content-Type", content_type).expect("a valid header");
        tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(header)
    };
    if *request.method() != tiny_http::Method::Get {
        return text(405, "only GET\n".into(), "text/plain");
    }
    match request.url() {
        "/metrics" => {
            let (tx, rx) = mpsc::channel();
            if to_control.send(ControlRequest::View(tx)).is_err() {
                return text(503, "the appliance is stopping\n".into(), "text/plain");
            }
            match rx.recv_timeout(CONTROL_ANSWER_TIMEOUT) {
                Ok(view) => text(200, render(&view), "text/plain; version=0.0.4"),
                Err(_) => text(
                    503,
                    "the control thread did not answer in time\n".into(),
                    "text/plain",
                ),
            }
        }
        "/" => text(
            200,
            "<html><body><a href=\"/metrics\">anycast6 metrics</a></body></html>\n".into(),
            "text/html",
        ),
        _ => text(404, "not found; try /metrics\n".into(), "text/plain"),
    }
}

/// A label value with `\`, `"` and newlines escaped (exposition format).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP anycast6_{name} {help}");
        let _ = writeln!(out, "# TYPE anycast6_{name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], value: impl std::fmt::Display) {
        self.out.push_str("anycast6_");
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// The metrics of a view, in the Prometheus text format.
pub fn render(v: &ControlView) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let o = &mut out;
    Family::header(
        o,
        "info",
        "gauge",
        "Version of the running appliance (value 1).",
    )
    .sample("info", &[("version", v.version.clone())], 1);
    Family::header(
        o,
        "uptime_seconds",
        "gauge",
        "Seconds since the appliance started.",
    )
    .sample("uptime_seconds", &[], format!("{:.3}", v.uptime_s));
    Family::header(
        o,
        "config_reloads_total",
        "counter",
        "Configuration reloads applied.",
    )
    .sample("config_reloads_total", &[], v.config_generation);
    Family::header(
        o,
        "snapshots_published_total",
        "counter",
        "Data-plane snapshots published.",
    )
    .sample("snapshots_published_total", &[], v.snapshot_generation);
    Family::header(
        o,
        "snapshots_retained",
        "gauge",
        "Replaced snapshots kept until every worker has passed a quiescent state.",
    )
    .sample("snapshots_retained", &[], v.snapshots_retained);

    // Data plane: plain counters and drops by reason.
    {
        let mut f = Family::header(
            o,
            "dataplane_total",
            "counter",
            "Data-plane counters summed over workers, by name.",
        );
        for (k, val) in v.dataplane.iter().filter(|(k, _)| !k.starts_with("drop_")) {
            f.sample("dataplane_total", &[("counter", k.clone())], val);
        }
    }
    {
        let mut f = Family::header(
            o,
            "dropped_packets_total",
            "counter",
            "Packets the data plane dropped, by reason.",
        );
        for (k, val) in v.dataplane.iter().filter(|(k, _)| k.starts_with("drop_")) {
            f.sample(
                "dropped_packets_total",
                &[("reason", k["drop_".len()..].to_string())],
                val,
            );
        }
    }
    {
        let mut f = Family::header(
            o,
            "worker_total",
            "counter",
            "Per-worker data-plane counters.",
        );
        for w in &v.workers {
            for (k, val) in &w.counters {
                f.sample(
                    "worker_total",
                    &[("worker", w.id.to_string()), ("counter", k.clone())],
                    val,
                );
            }
        }
    }
    {
        let mut f = Family::header(
            o,
            "worker_rx_burst_size",
            "histogram",
            "Packets returned by each RX poll of a worker (0 = an idle poll).",
        );
        for w in &v.workers {
            let worker = w.id.to_string();
            let mut cumulative = 0u64;
            let mut sum = 0u64;
            let mut bounds = [0usize, 1, 2, 4, 8, 16, 32].into_iter().peekable();
            for (size, &n) in w.burst_sizes.iter().enumerate() {
                sum += size as u64 * n;
                cumulative += n;
                while let Some(&b) = bounds.peek() {
                    if size == b {
                        f.sample(
                            "worker_rx_burst_size_bucket",
                            &[("worker", worker.clone()), ("le", b.to_string())],
                            cumulative,
                        );
                        bounds.next();
                    } else {
                        break;
                    }
                }
            }
            // Sizes the histogram does not reach still get their buckets.
            for b in bounds {
                f.sample(
                    "worker_rx_burst_size_bucket",
                    &[("worker", worker.clone()), ("le", b.to_string())],
                    cumulative,
                );
            }
            f.sample(
                "worker_rx_burst_size_bucket",
                &[("worker", worker.clone()), ("le", "+Inf".into())],
                cumulative,
            );
            f.sample(
                "worker_rx_burst_size_sum",
                &[("worker", worker.clone())],
                sum,
            );
            f.sample(
                "worker_rx_burst_size_count",
                &[("worker", worker)],
                cumulative,
            );
        }
    }

    // Services and members.
    {
        let mut f = Family::header(
            o,
            "service_members",
            "gauge",
            "Members of a service by state.",
        );
        for s in &v.services {
            for (state, n) in [
                ("active", s.members_active),
                ("draining", s.members_draining),
                ("down", s.members_down),
            ] {
                f.sample(
                    "service_members",
                    &[("service", s.address.to_string()), ("state", state.into())],
                    n,
                );
            }
        }
    }
    for (name, help, get) in [
        (
            "service_packets_total",
            "Client packets tunnelled to the service's current members.",
            (|s: &crate::control::view::ServiceView| s.packets) as fn(&_) -> u64,
        ),
        (
            "service_bytes_total",
            "Client octets tunnelled to the service's current members.",
            |s| s.bytes,
        ),
        (
            "service_flows_total",
            "Flows placed on the service's current members.",
            |s| s.flows,
        ),
    ] {
        let mut f = Family::header(o, name, "counter", help);
        for s in &v.services {
            f.sample(name, &[("service", s.address.to_string())], get(s));
        }
    }
    type MemberGet = fn(&crate::control::view::MemberView) -> u64;
    let member_counters: [(&str, &str, MemberGet); 5] = [
        (
            "member_packets_total",
            "Client packets tunnelled to the member.",
            |m| m.packets,
        ),
        (
            "member_bytes_total",
            "Client octets tunnelled to the member.",
            |m| m.bytes,
        ),
        ("member_flows_total", "Flows placed on the member.", |m| {
            m.flows
        }),
        (
            "member_reverse_packets_total",
            "Replies the member tunnelled back.",
            |m| m.rev_packets,
        ),
        (
            "member_reverse_bytes_total",
            "Octets of the replies the member tunnelled back.",
            |m| m.rev_bytes,
        ),
    ];
    let member_labels = |m: &crate::control::view::MemberView| {
        vec![
            ("service", m.service.to_string()),
            ("care_of", m.care_of.to_string()),
            ("id", m.id.to_string()),
        ]
    };
    for (name, help, get) in member_counters {
        let mut f = Family::header(o, name, "counter", help);
        for m in &v.members {
            f.sample(name, &member_labels(m), get(m));
        }
    }
    {
        let mut f = Family::header(
            o,
            "member_up",
            "gauge",
            "1 when the member takes new flows (active), else 0; `state` says which.",
        );
        for m in &v.members {
            let mut labels = member_labels(m);
            labels.push(("state", m.state.clone()));
            labels.push(("health", m.health.clone()));
            f.sample("member_up", &labels, u8::from(m.state == "active"));
        }
    }
    {
        let mut f = Family::header(o, "member_weight", "gauge", "Maglev weight of the member.");
        for m in &v.members {
            f.sample("member_weight", &member_labels(m), m.weight);
        }
    }

    // Registration: BAs by status, the rest by name.
    {
        let mut f = Family::header(
            o,
            "ba_sent_total",
            "counter",
            "Binding Acknowledgements sent, by status.",
        );
        for (k, val) in v
            .registration
            .iter()
            .filter(|(k, _)| k.starts_with("ba_status_"))
        {
            f.sample(
                "ba_sent_total",
                &[("status", k["ba_status_".len()..].to_string())],
                val,
            );
        }
    }
    {
        let mut f = Family::header(
            o,
            "registration_total",
            "counter",
            "Home-registration events by name (BUs received, discards, authentication failures).",
        );
        for (k, val) in v
            .registration
            .iter()
            .filter(|(k, _)| !k.starts_with("ba_status_"))
        {
            f.sample("registration_total", &[("event", k.clone())], val);
        }
    }
    {
        let mut f = Family::header(
            o,
            "registered_bindings",
            "gauge",
            "Live home registrations.",
        );
        f.sample("registered_bindings", &[], v.bindings.len());
    }
    {
        let mut f = Family::header(
            o,
            "route_optimisation_total",
            "counter",
            "Route optimisation through the appliance and trigger signals by event (member HoTIs, HoTs, triggers started/sent/done/given up, 135 retries, own home tests, Destination Unreachables for claimed care-of addresses).",
        );
        for (k, val) in &v.route_optimisation {
            f.sample("route_optimisation_total", &[("event", k.clone())], val);
        }
    }
    {
        let mut f = Family::header(
            o,
            "route_optimised_clients",
            "gauge",
            "Clients known to be route-optimised to a member (recorded home keygen token).",
        );
        f.sample("route_optimised_clients", &[], v.route_optimised.len());
    }
    {
        let mut f = Family::header(o, "health_checks_total", "counter", "Health-check results by name (probes sent, replies, timeouts, refused, unreachable, transitions).");
        for (k, val) in &v.health {
            f.sample("health_checks_total", &[("result", k.clone())], val);
        }
    }
    {
        let mut f = Family::header(
            o,
            "control_total",
            "counter",
            "Control-thread counters by name.",
        );
        for (k, val) in &v.control {
            f.sample("control_total", &[("counter", k.clone())], val);
        }
    }
    for (name, help, get) in [
        (
            "port_rx_packets_total",
            "Packets received by the port (device statistics).",
            (|p: &crate::control::view::PortView| p.ipackets) as fn(&_) -> u64,
        ),
        ("port_tx_packets_total", "Packets sent by the port.", |p| {
            p.opackets
        }),
        ("port_rx_bytes_total", "Octets received by the port.", |p| {
            p.ibytes
        }),
        ("port_tx_bytes_total", "Octets sent by the port.", |p| {
            p.obytes
        }),
        (
            "port_rx_missed_total",
            "Packets the NIC dropped because the RX queue was full.",
            |p| p.imissed,
        ),
        ("port_rx_errors_total", "Erroneous received packets.", |p| {
            p.ierrors
        }),
        ("port_tx_errors_total", "Failed transmissions.", |p| {
            p.oerrors
        }),
        (
            "port_rx_nombuf_total",
            "RX mbuf allocation failures.",
            |p| p.rx_nombuf,
        ),
    ] {
        let mut f = Family::header(o, name, "counter", help);
        for p in &v.ports {
            f.sample(name, &[("port", p.name.clone())], get(p));
        }
    }
    out
}

/// p50 and p99 of a burst-size histogram (index = packets per poll), via hdrhistogram.
pub fn burst_percentiles(burst_sizes: &[u64]) -> Option<(u64, u64)> {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 64, 3).ok()?;
    for (size, &n) in burst_sizes.iter().enumerate() {
        if n > 0 {
            // hdrhistogram cannot hold 0: every size is stored plus one.
            h.record_n(size as u64 + 1, n).ok()?;
        }
    }
    if h.is_empty() {
        return None;
    }
    Some((
        h.value_at_quantile(0.5).saturating_sub(1),
        h.value_at_quantile(0.99).saturating_sub(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::view::{MemberView, ServiceView, WorkerView};

    fn sample_view() -> ControlView {
        let mut v = ControlView {
            version: "0.1.0".into(),
            uptime_s: 12.5,
            ..Default::default()
        };
        v.dataplane.insert("rx_packets".into(), 100);
        v.dataplane.insert("drop_not_for_us".into(), 3);
        v.registration.insert("ba_status_0".into(), 4);
        v.registration.insert("ba_status_129".into(), 1);
        v.registration.insert("bu_received".into(), 5);
        v.services.push(ServiceView {
            address: "2001:db8:100::1".parse().unwrap(),
            affinity: "client".into(),
            port: "uplink".into(),
            maglev_size: 65537,
            accept_registrations: true,
            members_active: 2,
            members_draining: 0,
            members_down: 0,
            health: None,
            packets: 90,
            bytes: 9000,
            flows: 3,
        });
        v.members.push(MemberView {
            service: "2001:db8:100::1".parse().unwrap(),
            id: 7,
            epoch: 1,
            care_of: "2001:db8:2::10".parse().unwrap(),
            origin: "static".into(),
            weight: 1,
            state: "active".into(),
            health: "up".into(),
            health_detail: None,
            lifetime_left_s: None,
            drain_left_s: None,
            packets: 90,
            bytes: 9000,
            flows: 3,
            rev_packets: 0,
            rev_bytes: 0,
        });
        let mut bursts = vec![0u64; 33];
        bursts[0] = 10;
        bursts[3] = 5;
        bursts[32] = 2;
        v.workers.push(WorkerView {
            id: 0,
            burst_sizes: bursts,
            ..Default::default()
        });
        v
    }

    #[test]
    fn exposition_is_well_formed() {
        let text = render(&sample_view());
        let mut families = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap();
                assert!(families.insert(name.to_string()), "{name} declared twice");
                assert!(matches!(
                    parts.next(),
                    Some("counter" | "gauge" | "histogram")
                ));
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            // name{labels} value
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            assert!(name.starts_with("anycast6_"), "{line}");
            assert!(
                families.iter().any(|f| name == f
                    || name
                        .strip_prefix(f.as_str())
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))),
                "{name} has no TYPE line before it"
            );
            if name.ends_with("_total") {
                assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
            }
        }
        assert!(text.contains("anycast6_ba_sent_total{status=\"129\"} 1"));
        assert!(text.contains("anycast6_dropped_packets_total{reason=\"not_for_us\"} 3"));
        assert!(text.contains("anycast6_member_packets_total{service=\"2001:db8:100::1\",care_of=\"2001:db8:2::10\",id=\"7\"} 90"));
        assert!(text.contains("anycast6_member_up{service=\"2001:db8:100::1\",care_of=\"2001:db8:2::10\",id=\"7\",state=\"active\",health=\"up\"} 1"));
    }

    #[test]
    fn burst_histogram_buckets_are_cumulative() {
        let text = render(&sample_view());
        let bucket = |le: &str| {
            let key = format!("anycast6_worker_rx_burst_size_bucket{{worker=\"0\",le=\"{le}\"}} ");
            let line = text
                .lines()
                .find(|l| l.starts_with(&key))
                .unwrap_or_else(|| panic!("{key}"));
            line[key.len()..].parse::<u64>().unwrap()
        };
        assert_eq!(bucket("0"), 10);
        assert_eq!(bucket("2"), 10);
        assert_eq!(bucket("4"), 15);
        assert_eq!(bucket("16"), 15);
        assert_eq!(bucket("32"), 17);
        assert_eq!(bucket("+Inf"), 17);
        assert!(text.contains("anycast6_worker_rx_burst_size_sum{worker=\"0\"} 79"));
        assert_eq!(
            burst_percentiles(&sample_view().workers[0].burst_sizes),
            Some((0, 32))
        );
        assert_eq!(burst_percentiles(&[0; 33]), None);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
