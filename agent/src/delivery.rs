//! Delivery of the tunnelled client traffic to the service sockets.
//!
//! The appliance sends client packets for service address S inside IPv6-in-IPv6 (RFC 2473)
//! to the care-of address. The member holds S on the loopback interface (a /128, so it is
//! never announced on the link and needs no DAD: RFC 4862 §5.4) and answers from S
//! directly (direct server return). Decapsulation, in the order `auto` tries them:
//!
//! * **ip6tnl**: a kernel `ip6ip6` tunnel device from the appliance to the care-of address.
//! * **seg6local**: the SRv6 End.DT6 behaviour decapsulates and looks the inner packet up
//!   in the local table. The care-of address is local, and the local table is consulted
//!   first (rule preference 0), so a plain `ip -6 route add <care-of>/128 encap seg6local
//!   ...` is never used for it (checked on this kernel: the packet is refused as an
//!   unknown protocol). Instead the End.DT6 route goes in its own table, selected by a
//!   policy rule for `to <care-of> ipproto ipv6` placed before the local table, which is
//!   moved from preference 0 to 10 while the agent runs. Everything else sent to the
//!   care-of address (ICMPv6 echo for the appliance's health checks, BAs, SSH) is
//!   untouched.
//! * **tun**: the agent reads the tunnelled packets on a packet socket, checks the outer
//!   source is the appliance and the inner destination a service, and writes the inner
//!   packet to a TUN device, where the kernel receives it as if it had arrived from the
//!   network. A raw socket for protocol 41 keeps the kernel from answering the outer packet
//!   with "unknown next header".
//! * **none**: nothing is set up.
//!
//! Every change is recorded with the command that undoes it; [`Delivery::teardown`] runs
//! them in reverse order.

use std::net::Ipv6Addr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;

use crate::config::{AgentConfig, DeliveryMode};
use crate::sockets::{PacketReceiver, ProtocolSink, ReceiveFilter};

/// Policy rule preference of the seg6local selector rule.
pub const SEG6LOCAL_RULE_PREF: u32 = 5;
/// Where the local-table rule moves while seg6local delivery is set up.
pub const MOVED_LOCAL_RULE_PREF: u32 = 10;

/// Runs `ip` with `args`; the error carries its stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The set-up delivery and how to undo it.
#[derive(Debug)]
pub struct Delivery {
    pub mode: DeliveryMode,
    /// `ip` command lines, run last-first by [`teardown`](Self::teardown).
    undo: Vec<Vec<String>>,
    tun: Option<TunDecapsulator>,
}

impl Delivery {
    /// Sets up `config.delivery` (trying each method in turn for `auto`) on `interface`.
    /// `log` receives one structured line per step.
    pub fn setup(
        config: &AgentConfig,
        interface: &str,
        log: &mut dyn FnMut(String),
    ) -> Result<Delivery, String> {
        let order: &[DeliveryMode] = match config.delivery {
            DeliveryMode::Auto => &[
                DeliveryMode::Ip6tnl,
                DeliveryMode::Seg6local,
                DeliveryMode::Tun,
            ],
            DeliveryMode::None => {
                log("event=delivery mode=none".to_string());
                return Ok(Delivery {
                    mode: DeliveryMode::None,
                    undo: Vec::new(),
                    tun: None,
                });
            }
            ref one => std::slice::from_ref(one),
        };
        let mut errors = Vec::new();
        for &mode in order {
            let mut d = Delivery {
                mode,
                undo: Vec::new(),
                tun: None,
            };
            match d.try_mode(config, interface) {
                Ok(()) => {
                    match d.add_service_addresses(config) {
                        Ok(()) => {}
                        Err(e) => {
                            d.teardown(log);
                            return Err(e);
                        }
                    }
                    log(format!(
                        "event=delivery mode={} interface={interface}",
                        mode_name(mode)
                    ));
                    return Ok(d);
                }
                Err(e) => {
                    log(format!(
                        "event=delivery_unavailable mode={} error=\"{e}\"",
                        mode_name(mode)
                    ));
                    d.teardown(&mut |_| {});
                    errors.push(format!("{}: {e}", mode_name(mode)));
                }
            }
        }
        Err(format!(
            "no delivery method works here ({}); use delivery = \"none\" and set up \
             decapsulation by hand",
            errors.join("; ")
        ))
    }

    fn run(&mut self, args: &[&str], undo: &[&str]) -> Result<String, String> {
        let out = ip(args)?;
        if !undo.is_empty() {
            self.undo.push(undo.iter().map(|s| s.to_string()).collect());
        }
        Ok(out)
    }

    fn try_mode(&mut self, config: &AgentConfig, interface: &str) -> Result<(), String> {
        let coa = config.care_of.to_string();
        let ha = config.appliance.to_string();
        match self.mode {
            DeliveryMode::Ip6tnl => {
                let name = config.tunnel_name.as_str();
                self.run(
                    &[
                        "-6",
                        "tunnel",
                        "add",
                        name,
                        "mode",
                        "ip6ip6",
                        "local",
                        &coa,
                        "remote",
                        &ha,
                        "encaplimit",
                        "none",
                    ],
                    &["-6", "tunnel", "del", name],
                )?;
                self.run(&["link", "set", name, "up"], &[])?;
                Ok(())
            }
            DeliveryMode::Seg6local => {
                let table = config.seg6local_table.to_string();
                let dst = format!("{coa}/128");
                // A rule or route left by an agent that was killed: replace, don't stack.
                let _ = ip(&[
                    "-6",
                    "rule",
                    "del",
                    "pref",
                    &SEG6LOCAL_RULE_PREF.to_string(),
                    "to",
                    &dst,
                ]);
                self.run(
                    &[
                        "-6",
                        "route",
                        "replace",
                        "table",
                        &table,
                        &dst,
                        "encap",
                        "seg6local",
                        "action",
                        "End.DT6",
                        "table",
                        "255",
                        "dev",
                        interface,
                    ],
                    &["-6", "route", "del", "table", &table, &dst],
                )?;
                let moved = MOVED_LOCAL_RULE_PREF.to_string();
                // Undo in one step, in this order: local back at 0, then the copy gone.
                let restore_local: Vec<String> =
                    ["-6", "rule", "add", "pref", "0", "lookup", "local"]
                        .iter()
                        .map(|s| s.to_string())
                        .chain(std::iter::once(";".to_string()))
                        .chain(
                            ["-6", "rule", "del", "pref", &moved, "lookup", "local"]
                                .iter()
                                .map(|s| s.to_string()),
                        )
                        .collect();
                let at_zero = ip(&["-6", "rule", "show", "pref", "0"])?;
                let at_moved = ip(&["-6", "rule", "show", "pref", &moved])?;
                if at_zero.contains("lookup local") {
                    self.run(
                        &["-6", "rule", "add", "pref", &moved, "lookup", "local"],
                        &[],
                    )?;
                    self.undo.push(restore_local);
                    ip(&["-6", "rule", "del", "pref", "0", "lookup", "local"])?;
                } else if at_moved.contains("lookup local") {
                    // Moved by an agent that was killed before it could undo: restore the
                    // default when this one exits.
                    self.undo.push(restore_local);
                }
                let pref = SEG6LOCAL_RULE_PREF.to_string();
                self.run(
                    &[
                        "-6", "rule", "add", "pref", &pref, "to", &dst, "ipproto", "ipv6",
                        "lookup", &table,
                    ],
                    &[
                        "-6", "rule", "del", "pref", &pref, "to", &dst, "ipproto", "ipv6",
                        "lookup", &table,
                    ],
                )?;
                Ok(())
            }
            DeliveryMode::Tun => {
                let tun = TunDecapsulator::start(config)?;
                self.tun = Some(tun);
                Ok(())
            }
            DeliveryMode::Auto | DeliveryMode::None => Ok(()),
        }
    }

    fn add_service_addresses(&mut self, config: &AgentConfig) -> Result<(), String> {
        for s in &config.services {
            let addr = format!("{s}/128");
            // Already there (put by the operator, or left by an agent that was killed):
            // leave it in place on exit too, since this agent cannot tell which.
            if !ip(&["-6", "addr", "show", "dev", "lo", "to", &addr])?
                .trim()
                .is_empty()
            {
                continue;
            }
            ip(&["-6", "addr", "add", &addr, "dev", "lo"])?;
            self.undo.push(
                ["-6", "addr", "del", &addr, "dev", "lo"]
                    .map(String::from)
                    .to_vec(),
            );
        }
        Ok(())
    }

    /// Packets the TUN decapsulator delivered (0 for other modes).
    pub fn decapsulated(&self) -> u64 {
        self.tun
            .as_ref()
            .map_or(0, |t| t.delivered.load(Ordering::Relaxed))
    }

    /// Undoes every change, last first.
    pub fn teardown(&mut self, log: &mut dyn FnMut(String)) {
        if let Some(tun) = self.tun.take() {
            tun.stop();
        }
        while let Some(cmd) = self.undo.pop() {
            for part in cmd.split(|a| a == ";") {
                let args: Vec<&str> = part.iter().map(String::as_str).collect();
                if let Err(e) = ip(&args) {
                    log(format!("event=undo_failed error=\"{e}\""));
                }
            }
        }
    }
}

/// The configuration name of a mode.
pub fn mode_name(mode: DeliveryMode) -> &'static str {
    match mode {
        DeliveryMode::Auto => "auto",
        DeliveryMode::Ip6tnl => "ip6tnl",
        DeliveryMode::Seg6local => "seg6local",
        DeliveryMode::Tun => "tun",
        DeliveryMode::None => "none",
    }
}

/// Why a tunnelled packet was not delivered by the TUN decapsulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecapRefusal {
    Malformed,
    /// The outer source is not the appliance: anyone could otherwise inject traffic that
    /// appears to come from clients.
    NotFromAppliance,
    NotTunnel,
    /// The inner destination is not a service of this member.
    NotForService,
}

/// The inner packet of an IPv6-in-IPv6 packet from `appliance` whose inner destination is
/// one of `services` (a Tunnel Encapsulation Limit destination option before it is
/// allowed, RFC 2473 §4.1.1).
pub fn inner_packet<'a>(
    packet: &'a [u8],
    appliance: Ipv6Addr,
    services: &[Ipv6Addr],
) -> Result<&'a [u8], DecapRefusal> {
    let outer = Ipv6Packet::new_checked(packet).map_err(|_| DecapRefusal::Malformed)?;
    if outer.src_addr() != appliance {
        return Err(DecapRefusal::NotFromAppliance);
    }
    let chain = ExtHeaderChain::of_packet(&outer).map_err(|_| DecapRefusal::Malformed)?;
    if chain.upper_layer != proto::IPV6 {
        return Err(DecapRefusal::NotTunnel);
    }
    let payload = packet
        .get(40..outer.total_len())
        .ok_or(DecapRefusal::Malformed)?;
    let inner_bytes = chain
        .upper_layer_bytes(payload)
        .ok_or(DecapRefusal::Malformed)?;
    let inner = Ipv6Packet::new_checked(inner_bytes).map_err(|_| DecapRefusal::Malformed)?;
    if inner.version() != 6 {
        return Err(DecapRefusal::Malformed);
    }
    if !services.contains(&inner.dst_addr()) {
        return Err(DecapRefusal::NotForService);
    }
    Ok(&inner_bytes[..inner.total_len()])
}

/// The user-space decapsulator of the `tun` mode: two threads (packet reader, protocol-41
/// sink) and the TUN device.
#[derive(Debug)]
struct TunDecapsulator {
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl TunDecapsulator {
    fn start(config: &AgentConfig) -> Result<TunDecapsulator, String> {
        let mut tun_config = tun::Configuration::default();
        tun_config.tun_name(&config.tun_name).up();
        let device =
            tun::create(&tun_config).map_err(|e| format!("TUN {}: {e}", config.tun_name))?;
        let receiver = PacketReceiver::open(config.care_of, ReceiveFilter::Tunnel)
            .map_err(|e| format!("packet socket: {e}"))?;
        let sink = ProtocolSink::open().map_err(|e| format!("raw socket for protocol 41: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(AtomicU64::new(0));
        let appliance = config.appliance;
        let services = config.services.clone();
        let reader = {
            let stop = stop.clone();
            let delivered = delivered.clone();
            let mut device = device;
            std::thread::Builder::new()
                .name("tun-decap".into())
                .spawn(move || {
                    use std::io::Write;
                    let mut buf = vec![0u8; 65536];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(Some(n)) = receiver.recv(&mut buf, Duration::from_millis(200))
                        else {
                            continue;
                        };
                        if let Ok(inner) = inner_packet(&buf[..n], appliance, &services) {
                            if device.write_all(inner).is_ok() {
                                delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
                .map_err(|e| e.to_string())?
        };
        let sink_thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("tun-sink".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        sink.discard_one();
                    }
                })
                .map_err(|e| e.to_string())?
        };
        Ok(TunDecapsulator {
            stop,
            delivered,
            threads: vec![reader, sink_thread],
        })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        // The device was moved into the reader thread and is closed with it; a TUN device
        // that is not persistent disappears with its last file descriptor.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anycast6_wire::ipv6::Ipv6Repr;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn tunnelled(outer_src: Ipv6Addr, inner_dst: Ipv6Addr, tel: bool) -> Vec<u8> {
        let inner_payload = b"payload!";
        let mut inner = vec![0u8; 40 + inner_payload.len()];
        Ipv6Repr {
            src: a("2001:db8:9::5"),
            dst: inner_dst,
            next_header: proto::NO_NEXT_HEADER,
            payload_len: inner_payload.len(),
            hop_limit: 63,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut inner[..]))
        .unwrap();
        inner[40..].copy_from_slice(inner_payload);
        let opts: &[u8] = if tel { &[41, 0, 4, 1, 4, 1, 1, 0] } else { &[] };
        let mut out = vec![0u8; 40 + opts.len()];
        Ipv6Repr {
            src: outer_src,
            dst: a("2001:db8:100::10"),
            next_header: if tel { proto::DEST_OPTS } else { proto::IPV6 },
            payload_len: opts.len() + inner.len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut out[..]))
        .unwrap();
        out[40..].copy_from_slice(opts);
        out.extend_from_slice(&inner);
        out
    }

    #[test]
    fn decapsulation_checks() {
        let ha = a("2001:db8:ffff::1");
        let s = a("2001:db8:aaaa::80");
        let p = tunnelled(ha, s, false);
        let inner = inner_packet(&p, ha, &[s]).unwrap();
        assert_eq!(inner, &p[40..]);
        let p = tunnelled(ha, s, true);
        assert_eq!(inner_packet(&p, ha, &[s]).unwrap(), &p[48..]);
        assert_eq!(
            inner_packet(&tunnelled(a("2001:db8::666"), s, false), ha, &[s]),
            Err(DecapRefusal::NotFromAppliance)
        );
        assert_eq!(
            inner_packet(&tunnelled(ha, a("2001:db8:aaaa::81"), false), ha, &[s]),
            Err(DecapRefusal::NotForService)
        );
        for n in 0..p.len() {
            assert!(inner_packet(&p[..n], ha, &[s]).is_err());
        }
    }
}
