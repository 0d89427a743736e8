//! Neighbour Discovery for the appliance's own addresses (RFC 4861), sans I/O.
//!
//! The control thread answers Neighbor Solicitations for the appliance's addresses,
//! answers Echo Requests sent to them, learns link-layer addresses from Neighbor
//! Advertisements (and from the Source Link-Layer Address option of solicitations), and
//! resolves configured next hops by sending solicitations. Everything here takes frames and
//! time in and gives frames and facts out, so the same code runs in the appliance's control
//! thread and in the offline `explain` tool, and is tested without DPDK.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
use anycast6_wire::icmpv6::{Icmpv6Packet, Icmpv6Repr, ND_HOP_LIMIT};
use anycast6_wire::ipv6::{Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::ExtHeaderChain;

/// RFC 4861 §10: RETRANS_TIMER.
pub const RETRANS_TIMER: Duration = Duration::from_secs(1);
/// RFC 4861 §10: MAX_MULTICAST_SOLICIT; after that many unanswered solicitations the next
/// hop stays unresolved and is retried after [`RETRY_AFTER_FAILURE`].
pub const MAX_MULTICAST_SOLICIT: u32 = 3;
/// How long to wait before starting over with an unresolved next hop.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// Hop limit of Echo Replies the appliance sends.
pub const ECHO_REPLY_HOP_LIMIT: u8 = 64;

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1).
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// What a frame that reached the control thread means for neighbour handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalOutcome {
    /// Send this frame back out of the port it came from.
    Reply(Vec<u8>),
    /// A neighbour's link-layer address was learned (from an NA or an NS's source option).
    Learned { addr: Ipv6Addr, mac: MacAddr },
    /// Both: an NS for one of our addresses carrying the sender's link-layer address.
    ReplyAndLearned {
        reply: Vec<u8>,
        addr: Ipv6Addr,
        mac: MacAddr,
    },
    /// Not for neighbour handling (the reason is for logs and counters).
    NotHandled(&'static str),
}

/// Answers a frame addressed to the appliance: NS for a local address -> NA; Echo Request to
/// a local address -> Echo Reply; NA -> learned. `is_local` says which addresses are ours.
pub fn handle_local_frame(
    frame: &[u8],
    port_mac: MacAddr,
    is_local: impl Fn(&Ipv6Addr) -> bool,
) -> LocalOutcome {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return LocalOutcome::NotHandled("malformed ethernet");
    };
    if eth.ethertype() != EtherType::Ipv6 {
        return LocalOutcome::NotHandled("not IPv6");
    }
    let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
        return LocalOutcome::NotHandled("malformed IPv6");
    };
    let Ok(chain) = ExtHeaderChain::walk(ip.next_header(), ip.payload()) else {
        return LocalOutcome::NotHandled("malformed extension headers");
    };
    if chain.upper_layer != proto::ICMPV6 {
        return LocalOutcome::NotHandled("not ICMPv6");
    }
    let Some(upper) = chain.upper_layer_bytes(ip.payload()) else {
        return LocalOutcome::NotHandled("fragment");
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Ok(icmp) = Icmpv6Packet::new_checked(upper) else {
        return LocalOutcome::NotHandled("malformed ICMPv6");
    };
    let Ok(repr) = Icmpv6Repr::parse(&icmp, &src, &dst) else {
        return LocalOutcome::NotHandled("invalid ICMPv6");
    };
    match repr {
        Icmpv6Repr::NeighborSolicit {
            target,
            source_lladdr,
        } => {
            // RFC 4861 §7.1.1: hop limit 255 and no extension headers that matter here.
            if ip.hop_limit() != ND_HOP_LIMIT {
                return LocalOutcome::NotHandled("ND with hop limit below 255");
            }
            if !is_local(&target) {
                return LocalOutcome::NotHandled("NS for another address");
            }
            let dad = src.is_unspecified();
            // RFC 4861 §7.2.4: reply to the source, or to all-nodes for DAD, S=0 then.
            let (reply_dst, reply_mac) = if dad {
                let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                (all_nodes, MacAddr::from_ipv6_multicast(&all_nodes))
            } else {
                (src, source_lladdr.map(MacAddr).unwrap_or(eth.src_addr()))
            };
            let na = Icmpv6Repr::NeighborAdvert {
                router: false,
                solicited: !dad,
                override_: true,
                target,
                target_lladdr: Some(port_mac.0),
            };
            let reply = build_icmp_frame(port_mac, reply_mac, target, reply_dst, ND_HOP_LIMIT, &na);
            match (source_lladdr, dad) {
                (Some(mac), false) => LocalOutcome::ReplyAndLearned {
                    reply,
                    addr: src,
                    mac: MacAddr(mac),
                },
                _ => LocalOutcome::Reply(reply),
            }
        }
        Icmpv6Repr::NeighborAdvert {
            target,
            target_lladdr,
            ..
        } => {
            if ip.hop_limit() != ND_HOP_LIMIT {
                return LocalOutcome::NotHandled("ND with hop limit below 255");
            }
            match target_lladdr {
                Some(mac) => LocalOutcome::Learned {
                    addr: target,
                    mac: MacAddr(mac),
                },
                None => LocalOutcome::NotHandled("NA without target link-layer address"),
            }
        }
        Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } => {
            if !is_local(&dst) {
                return LocalOutcome::NotHandled("echo request for another address");
            }
            let reply = Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            };
            LocalOutcome::Reply(build_icmp_frame(
                port_mac,
                eth.src_addr(),
                dst,
                src,
                ECHO_REPLY_HOP_LIMIT,
                &reply,
            ))
        }
        _ => LocalOutcome::NotHandled("ICMPv6 type not handled locally"),
    }
}

/// A Neighbor Solicitation for `target` from `src`, multicast to its solicited-node group.
pub fn build_solicitation(port_mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(&target);
    let ns = Icmpv6Repr::NeighborSolicit {
        target,
        source_lladdr: Some(port_mac.0),
    };
    build_icmp_frame(
        port_mac,
        MacAddr::from_ipv6_multicast(&group),
        src,
        group,
        ND_HOP_LIMIT,
        &ns,
    )
}

/// Ethernet + IPv6 + ICMPv6, checksummed.
pub fn build_icmp_frame(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    icmp: &Icmpv6Repr<'_>,
) -> Vec<u8> {
    let eth = EthernetRepr {
        dst: dst_mac,
        src: src_mac,
        vlan: None,
        ethertype: EtherType::Ipv6,
    };
    let ip = Ipv6Repr {
        src,
        dst,
        next_header: proto::ICMPV6,
        payload_len: icmp.buffer_len(),
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    };
    let l3 = eth.header_len();
    let l4 = l3 + anycast6_wire::ipv6::HEADER_LEN;
    let mut frame = vec![0u8; l4 + icmp.buffer_len()];
    // The buffer is sized from the reprs themselves, so these cannot fail.
    eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]))
        .expect("sized Ethernet header");
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut frame[l3..]))
        .expect("sized IPv6 header");
    icmp.emit(
        &mut Icmpv6Packet::new_unchecked(&mut frame[l4..]),
        &src,
        &dst,
    )
    .expect("sized ICMPv6 message");
    frame
}

/// Resolution state of one next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Resolved(MacAddr),
    Incomplete { sent: u32, next_at: Instant },
    Failed { retry_at: Instant },
}

/// The next hops the data plane needs, and what is known of them.
#[derive(Debug, Default)]
pub struct NeighbourTable {
    entries: HashMap<Ipv6Addr, Resolution>,
}

impl NeighbourTable {
    /// Asks for `addr` to be resolved, or records a configured MAC for it.
    pub fn want(&mut self, addr: Ipv6Addr, configured: Option<MacAddr>, now: Instant) {
        let state = match configured {
            Some(mac) => Resolution::Resolved(mac),
            None => Resolution::Incomplete {
                sent: 0,
                next_at: now,
            },
        };
        self.entries.entry(addr).or_insert(state);
    }

    /// The MAC of `addr`, if resolved.
    pub fn lookup(&self, addr: &Ipv6Addr) -> Option<MacAddr> {
        match self.entries.get(addr) {
            Some(Resolution::Resolved(mac)) => Some(*mac),
            _ => None,
        }
    }

    /// Records a learned MAC; returns true when it changed what the data plane should use.
    /// Only addresses we asked for are kept (no cache poisoning by unsolicited NAs for
    /// arbitrary addresses).
    pub fn learn(&mut self, addr: Ipv6Addr, mac: MacAddr) -> bool {
        match self.entries.get_mut(&addr) {
            Some(state) if *state != Resolution::Resolved(mac) => {
                *state = Resolution::Resolved(mac);
                true
            }
            _ => false,
        }
    }

    /// The solicitations due at `now` (targets), advancing retransmission state.
    pub fn due(&mut self, now: Instant) -> Vec<Ipv6Addr> {
        let mut out = Vec::new();
        for (addr, state) in self.entries.iter_mut() {
            match *state {
                Resolution::Incomplete { sent, next_at } if now >= next_at => {
                    if sent >= MAX_MULTICAST_SOLICIT {
                        *state = Resolution::Failed {
                            retry_at: now + RETRY_AFTER_FAILURE,
                        };
                    } else {
                        out.push(*addr);
                        *state = Resolution::Incomplete {
                            sent: sent + 1,
                            next_at: now + RETRANS_TIMER,
                        };
                    }
                }
                Resolution::Failed { retry_at } if now >= retry_at => {
                    out.push(*addr);
                    *state = Resolution::Incomplete {
                        sent: 1,
                        next_at: now + RETRANS_TIMER,
                    };
                }
                _ => {}
            }
        }
        out.sort();
        out
    }

    /// Addresses still unresolved.
    pub fn unresolved(&self) -> Vec<Ipv6Addr> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, s)| !matches!(s, Resolution::Resolved(_)))
            .map(|(a, _)| *a)
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const PEER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn parse_icmp(frame: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, Vec<u8>) {
        let eth = EthernetFrame::new_checked(frame).unwrap();
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        (
            ip.src_addr(),
            ip.dst_addr(),
            ip.hop_limit(),
            ip.payload().to_vec(),
        )
    }

    #[test]
    fn solicited_node_address() {
        assert_eq!(
            solicited_node(&a("2001:db8::abcd:1234:5678")),
            a("ff02::1:ff34:5678")
        );
    }

    #[test]
    fn answers_ns_for_local_address_and_learns_sender() {
        let me = a("2001:db8:ff::1");
        let peer = a("fe80::fe");
        let ns = build_solicitation(PEER, peer, me);
        match handle_local_frame(&ns, OURS, |x| *x == me) {
            LocalOutcome::ReplyAndLearned { reply, addr, mac } => {
                assert_eq!((addr, mac), (peer, PEER));
                let (src, dst, hl, payload) = parse_icmp(&reply);
                assert_eq!((src, dst, hl), (me, peer, 255));
                let icmp = Icmpv6Packet::new_checked(&payload[..]).unwrap();
                match Icmpv6Repr::parse(&icmp, &src, &dst).unwrap() {
                    Icmpv6Repr::NeighborAdvert {
                        solicited,
                        override_,
                        router,
                        target,
                        target_lladdr,
                    } => {
                        assert!(solicited && override_ && !router);
                        assert_eq!((target, target_lladdr), (me, Some(OURS.0)));
                    }
                    other => panic!("not an NA: {other:?}"),
                }
                assert_eq!(
                    EthernetFrame::new_checked(&reply[..]).unwrap().dst_addr(),
                    PEER
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // Someone else's address: not answered.
        assert!(matches!(
            handle_local_frame(&ns, OURS, |_| false),
            LocalOutcome::NotHandled(_)
        ));
    }

    #[test]
    fn answers_echo_from_the_pinged_address() {
        let me = a("2001:db8:ff::1");
        let client = a("2001:db8:77::5");
        let req = Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no: 3,
            data: b"abc",
        };
        let frame = build_icmp_frame(PEER, OURS, client, me, 64, &req);
        let LocalOutcome::Reply(reply) = handle_local_frame(&frame, OURS, |x| *x == me) else {
            panic!("no reply")
        };
        let (src, dst, _, payload) = parse_icmp(&reply);
        assert_eq!((src, dst), (me, client));
        let icmp = Icmpv6Packet::new_checked(&payload[..]).unwrap();
        assert_eq!(
            Icmpv6Repr::parse(&icmp, &src, &dst).unwrap(),
            Icmpv6Repr::EchoReply {
                ident: 7,
                seq_no: 3,
                data: b"abc"
            }
        );
    }

    #[test]
    fn nd_with_forwarded_hop_limit_is_ignored() {
        let me = a("2001:db8:ff::1");
        let mut ns = build_solicitation(PEER, a("fe80::fe"), me);
        ns[14 + 7] = 254;
        assert!(matches!(
            handle_local_frame(&ns, OURS, |x| *x == me),
            LocalOutcome::NotHandled(_)
        ));
    }

    #[test]
    fn resolution_retransmits_then_fails_then_retries() {
        let t0 = Instant::now();
        let hop = a("fe80::1");
        let mut t = NeighbourTable::default();
        t.want(hop, None, t0);
        assert_eq!(t.due(t0), vec![hop]);
        assert!(
            t.due(t0).is_empty(),
            "not again before the retransmission timer"
        );
        assert_eq!(t.due(t0 + RETRANS_TIMER), vec![hop]);
        assert_eq!(t.due(t0 + 2 * RETRANS_TIMER), vec![hop]);
        assert!(t.due(t0 + 3 * RETRANS_TIMER).is_empty(), "gave up after 3");
        assert_eq!(t.unresolved(), vec![hop]);
        assert_eq!(
            t.due(t0 + 3 * RETRANS_TIMER + RETRY_AFTER_FAILURE),
            vec![hop]
        );
        assert!(t.learn(hop, PEER));
        assert!(!t.learn(hop, PEER), "same MAC is no change");
        assert_eq!(t.lookup(&hop), Some(PEER));
        assert!(t.due(t0 + Duration::from_secs(100)).is_empty());
        // Unsolicited learning of an address we never asked for is ignored.
        assert!(!t.learn(a("fe80::99"), PEER));
        assert_eq!(t.lookup(&a("fe80::99")), None);
    }

    #[test]
    fn configured_mac_needs_no_solicitation() {
        let t0 = Instant::now();
        let mut t = NeighbourTable::default();
        t.want(a("fe80::1"), Some(PEER), t0);
        assert!(t.due(t0).is_empty());
        assert_eq!(t.lookup(&a("fe80::1")), Some(PEER));
    }
}
