//! The immutable data-plane snapshot: everything a worker needs to judge a packet.
//!
//! The control thread builds a [`Snapshot`] from a plain-data [`SnapshotSpec`] (no config or
//! serde types, so the pipeline does not depend on the configuration format) and publishes
//! it through [`crate::dataplane::rcu`]. Workers only read it, once per burst, so every
//! lookup structure here is chosen for read speed with few entries:
//!
//! * service address -> service index, appliance-local addresses, and (care-of, service)
//!   -> member for the reverse path: sorted `u128` vectors with binary search (services and
//!   members are few; a sorted vector is a handful of cache lines and needs no hashing);
//!   a 64-bit filter in front of the local addresses answers "not local" for almost every
//!   client source without the search;
//! * a member's state by its stable id: each service keeps its members sorted by id, with a
//!   small direct-mapped index from id to position (a binary search only where two ids
//!   share an index slot);
//! * each service's Maglev table is built here, once, over all its members in id order,
//!   draining and down members with weight 0 so that they take no new flows.
//!
//! Validation happens in [`Snapshot::build`]: a snapshot that would make the pipeline loop
//! or send from a bad address is refused with a [`SnapshotError`] naming the culprit.

use std::net::Ipv6Addr;

use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{self, MacAddr};
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::{EncapLimitDestOpts, Ipv6OptionsHeader};
use anycast6_wire::tunnel::{self, TrafficClass};

use super::affinity::{MemberRef, MemberState};
use super::counters::DropReason;
use super::maglev::{MaglevError, MaglevMember, MaglevTable};
use super::pipeline::write_ethernet;

/// How a service keys its affinity table (ARCHITECTURE.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AffinityMode {
    /// (client, service): every flow of a client goes to one member.
    Client,
    /// The transport 5-tuple: each flow is placed on its own.
    Flow,
}

/// Administrative and health state of a member as the control thread sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Registered and healthy: takes new flows.
    Active,
    /// Leaving gracefully: keeps established flows, takes no new ones.
    Draining,
    /// Failed or deregistered: its flows are re-picked.
    Down,
}

/// One port as the pipeline sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// The port's own MAC: Ethernet source of everything sent, and the unicast destination
    /// MAC accepted on receive.
    pub mac: MacAddr,
    /// Link MTU (IPv6 packet size, without the Ethernet header); at least 1280.
    pub link_mtu: u16,
    /// MAC of the next-hop router for everything sent out of this port; `None` while the
    /// control thread has not resolved it (packets that need it are dropped `no_neighbour`).
    pub next_hop_mac: Option<MacAddr>,
}

/// The tunnel entry point (RFC 2473 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelSpec {
    /// Outer source of every tunnel packet and source of every ICMPv6 error sent; also the
    /// exit point members tunnel replies to.
    pub address: Ipv6Addr,
    /// Outer Hop Limit (§6.3), also used for ICMPv6 errors.
    pub hop_limit: u8,
    /// Outer Traffic Class (§6.4).
    pub traffic_class: TrafficClass,
    /// Tunnel Encapsulation Limit added to packets without one (§5.1 (d)); `None` adds none.
    pub encap_limit: Option<u8>,
}

/// ICMPv6 error rate limit (RFC 4443 §2.4(f)): a token bucket per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpRateSpec {
    /// Tokens added per second.
    pub per_second: u32,
    /// Bucket size: the largest burst of errors.
    pub burst: u32,
}

impl Default for IcmpRateSpec {
    /// RFC 4443 §2.4(f)'s example for small and mid-size devices: B = 10, N = 10/s.
    fn default() -> Self {
        IcmpRateSpec {
            per_second: 10,
            burst: 10,
        }
    }
}

/// One member (a registered care-of address) of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberSpec {
    /// Stable id (the same across snapshots while the member exists).
    pub id: u32,
    /// Incarnation: bumped when a member with this id re-registers after being gone, so
    /// that old affinity pins do not come back to life.
    pub epoch: u32,
    /// The member's care-of address: outer destination of its tunnel.
    pub care_of: Ipv6Addr,
    /// Relative share of new flows while active.
    pub weight: u32,
    pub status: MemberStatus,
    /// The member's MAC when it is on-link; `None` sends through the port's next hop.
    pub mac: Option<MacAddr>,
    /// Index of the member's traffic counters in each worker (below [`MEMBER_SLOTS`]),
    /// assigned by the control plane and unique among the members of a snapshot.
    pub stats_slot: u16,
}

/// Per-worker traffic counter slots for members: the most members one snapshot may hold.
pub const MEMBER_SLOTS: usize = 4096;

/// One anycast service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The anycast service address (the members' home address).
    pub address: Ipv6Addr,
    pub affinity: AffinityMode,
    /// Index into [`SnapshotSpec::ports`] of the port towards members and clients.
    pub port: u16,
    /// Maglev table size (a prime).
    pub maglev_size: u32,
    pub members: Vec<MemberSpec>,
}

/// Everything a [`Snapshot`] is built from, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    pub tunnel: TunnelSpec,
    /// Further unicast addresses of the appliance (link-local addresses included) whose
    /// traffic goes to the control thread. The tunnel address is always local. A care-of
    /// address may be listed only while its member is `Down` (a claimed care-of address).
    pub local_addresses: Vec<Ipv6Addr>,
    /// Ports by DPDK port index.
    pub ports: Vec<PortSpec>,
    pub services: Vec<ServiceSpec>,
    pub icmp_rate: IcmpRateSpec,
}

/// Why a spec cannot become a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("tunnel address {0} is not a global unicast address")]
    TunnelAddress(Ipv6Addr),
    #[error("tunnel hop limit 0")]
    TunnelHopLimit,
    #[error("local address {0} is multicast or unspecified")]
    LocalAddress(Ipv6Addr),
    #[error("port {port}: link MTU {mtu} is below the IPv6 minimum 1280")]
    LinkMtu { port: usize, mtu: u16 },
    #[error("port {port}: MAC {mac} is not a unicast address")]
    PortMac { port: usize, mac: MacAddr },
    #[error(
        "service {service}: address {address} is multicast, unspecified or an appliance address"
    )]
    ServiceAddress { service: usize, address: Ipv6Addr },
    #[error("service {service}: address {address} is also service {other}")]
    DuplicateService {
        service: usize,
        other: usize,
        address: Ipv6Addr,
    },
    #[error("service {service}: port {port} does not exist")]
    ServicePort { service: usize, port: u16 },
    #[error("service {service}: member id {id} appears twice")]
    DuplicateMemberId { service: usize, id: u32 },
    #[error("service {service}, member {id}: counter slot {slot} is not below {MEMBER_SLOTS}")]
    StatsSlot { service: usize, id: u32, slot: u16 },
    #[error("service {service}: care-of address {care_of} appears twice")]
    DuplicateCareOf { service: usize, care_of: Ipv6Addr },
    #[error(
        "service {service}, member {id}: care-of address {care_of} is multicast, \
         unspecified, a service address or an appliance address"
    )]
    CareOf {
        service: usize,
        id: u32,
        care_of: Ipv6Addr,
    },
    #[error("service {service}: {source}")]
    Maglev {
        service: usize,
        #[source]
        source: MaglevError,
    },
}

/// A port, ready for the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub mac: MacAddr,
    pub link_mtu: u16,
    pub next_hop_mac: Option<MacAddr>,
}

/// A member, ready for the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub id: u32,
    pub epoch: u32,
    pub care_of: Ipv6Addr,
    pub weight: u32,
    pub status: MemberStatus,
    pub mac: Option<MacAddr>,
    pub stats_slot: u16,
    /// The headers the forward path puts in front of a client packet tunnelled to this
    /// member, or why it cannot ([`OuterHeaders::for_member`]).
    pub outer: Result<OuterHeaders, DropReason>,
}

/// Longest header block [`OuterHeaders`] holds: Ethernet, the outer IPv6 header and the
/// tunnel's Destination Options header with the Tunnel Encapsulation Limit.
pub const OUTER_HEADERS_MAX: usize = ethernet::HEADER_LEN + tunnel::MAX_OVERHEAD;

/// The Ethernet header, outer IPv6 header and (with a tunnel encapsulation limit) the
/// Destination Options header of every packet tunnelled to one member, written once per
/// snapshot by the same emitters as the per-packet path. Three fields vary per packet and
/// are left to fill in: the traffic class when copied from the inner packet, the Flow Label
/// and the Payload Length (pipeline.rs, "Fast path").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OuterHeaders {
    /// The headers; the first `ETHERNET + overhead` octets are used.
    pub bytes: [u8; OUTER_HEADERS_MAX],
    /// Octets the tunnel adds in front of the inner packet: 40, or 48 with the option.
    pub overhead: u8,
    /// The outer header's first word (version, traffic class, flow label) without the flow
    /// label, and without the traffic class when it is copied from the inner packet.
    pub word0: u32,
    /// The bits of the inner packet's first word that go into the outer one: its traffic
    /// class (`0x0ff0_0000`) for [`TrafficClass::CopyInner`], else 0.
    pub inner_tc_mask: u32,
}

impl OuterHeaders {
    /// The headers for a member with care-of address `care_of` and next-hop MAC `dst_mac`
    /// behind a port with MAC `src_mac`, for client packets that carry no Tunnel
    /// Encapsulation Limit of their own (RFC 2473 §5.1 (d): the tunnel's limit, if any).
    /// `Err` is the drop reason the per-packet path gives every packet for this member:
    /// no neighbour MAC, or a tunnel the encapsulation refuses (its own address as the
    /// exit point, or hop limit 0). Validation keeps hop limit 0 out of a snapshot, and the
    /// tunnel address out of the care-of addresses of members that can take traffic: only
    /// a down member's (claimed) care-of address may be local, and down members are never
    /// picked or kept.
    pub fn for_member(
        tunnel_spec: &TunnelSpec,
        care_of: Ipv6Addr,
        dst_mac: Option<MacAddr>,
        src_mac: MacAddr,
    ) -> Result<OuterHeaders, DropReason> {
        let dst_mac = dst_mac.ok_or(DropReason::NoNeighbour)?;
        if tunnel_spec.address == care_of || tunnel_spec.hop_limit == 0 {
            return Err(DropReason::MalformedIpv6);
        }
        let mut bytes = [0u8; OUTER_HEADERS_MAX];
        write_ethernet(&mut bytes, dst_mac, src_mac);
        let rest = &mut bytes[ethernet::HEADER_LEN..];
        let (outer, options) = rest.split_at_mut(ipv6::HEADER_LEN);
        let (next_header, overhead) = match tunnel_spec.encap_limit {
            Some(limit) => {
                EncapLimitDestOpts {
                    next_header: proto::IPV6,
                    limit,
                }
                .emit(&mut Ipv6OptionsHeader::new_unchecked(options))
                .map_err(|_| DropReason::MalformedIpv6)?;
                (proto::DEST_OPTS, tunnel::MAX_OVERHEAD)
            }
            None => (proto::IPV6, ipv6::HEADER_LEN),
        };
        let (traffic_class, inner_tc_mask) = match tunnel_spec.traffic_class {
            TrafficClass::CopyInner => (0, 0x0ff0_0000),
            TrafficClass::Fixed(tc) => (tc, 0),
        };
        Ipv6Repr {
            src: tunnel_spec.address,
            dst: care_of,
            next_header,
            payload_len: 0,
            hop_limit: tunnel_spec.hop_limit,
            traffic_class,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut *outer))
        .map_err(|_| DropReason::MalformedIpv6)?;
        let word0 = u32::from_be_bytes([outer[0], outer[1], outer[2], outer[3]]);
        Ok(OuterHeaders {
            bytes,
            overhead: overhead as u8,
            word0,
            inner_tc_mask,
        })
    }
}

impl Member {
    /// The reference an affinity entry keeps.
    #[inline]
    pub fn member_ref(&self) -> MemberRef {
        MemberRef {
            id: self.id,
            epoch: self.epoch,
        }
    }
}

/// A service, ready for the pipeline.
#[derive(Debug, Clone)]
pub struct Service {
    pub address: Ipv6Addr,
    pub affinity: AffinityMode,
    pub port: u16,
    /// Sorted by id; the Maglev table indexes this vector.
    pub members: Vec<Member>,
    pub maglev: MaglevTable,
    /// Finds a member's position by id ([`Service::member_position`]).
    positions: PositionIndex,
    /// The longest client packet (IPv6, without its own Tunnel Encapsulation Limit) that
    /// fits the tunnel to this service's port unfragmented: its link MTU minus the tunnel's
    /// overhead (RFC 2473 §6.7).
    pub tunnel_mtu: usize,
}

/// One of 64 bits for an address, from a multiplicative hash of all its bits: a set of
/// addresses or-ed into a `u64` has a clear bit for nearly every address not in it.
#[inline]
fn filter_bit(addr: u128) -> u64 {
    let folded = (addr as u64) ^ ((addr >> 64) as u64);
    1 << (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58)
}

/// Member id -> position in [`Service::members`], direct-mapped on the id's low bits: the
/// affinity table pins flows by id, so every forwarded packet asks this.
#[derive(Debug, Clone)]
struct PositionIndex {
    /// At `id & mask`: the position of the only member whose id maps there, or one of
    /// [`PositionIndex::EMPTY`] and [`PositionIndex::SHARED`].
    slots: Box<[u16]>,
    mask: u32,
}

impl PositionIndex {
    const EMPTY: u16 = u16::MAX;
    const SHARED: u16 = u16::MAX - 1;

    /// The index of members sorted by id (at most [`MEMBER_SLOTS`] of them): twice as many
    /// slots as members, at least 8, so that ids handed out in order never share one.
    fn new(members: &[Member]) -> PositionIndex {
        let len = (2 * members.len()).next_power_of_two().max(8);
        let mut slots = vec![Self::EMPTY; len].into_boxed_slice();
        let mask = (len - 1) as u32;
        for (position, m) in members.iter().enumerate() {
            let slot = &mut slots[(m.id & mask) as usize];
            *slot = match u16::try_from(position) {
                Ok(position) if *slot == Self::EMPTY && position < Self::SHARED => position,
                _ => Self::SHARED,
            };
        }
        PositionIndex { slots, mask }
    }
}

impl Service {
    /// The position of the member with this id in [`Service::members`].
    #[inline]
    pub fn member_position(&self, id: u32) -> Option<usize> {
        let index = &self.positions;
        match index.slots.get((id & index.mask) as usize) {
            Some(&PositionIndex::SHARED) => self.members.binary_search_by_key(&id, |m| m.id).ok(),
            Some(&position) => {
                let position = usize::from(position);
                // EMPTY is past the end of any member list.
                (self.members.get(position)?.id == id).then_some(position)
            }
            None => None,
        }
    }

    /// The member with this id.
    #[inline]
    pub fn member_by_id(&self, id: u32) -> Option<&Member> {
        self.member_position(id).map(|i| &self.members[i])
    }

    /// What the affinity table should do with a flow pinned to `pin`: another incarnation,
    /// a down member or an unknown id all count as gone.
    #[inline]
    pub fn member_state(&self, pin: MemberRef) -> MemberState {
        self.pinned(pin).0
    }

    /// [`Service::member_state`], and the position in [`Service::members`] of the member
    /// with the pin's id when it is that incarnation.
    #[inline]
    pub fn pinned(&self, pin: MemberRef) -> (MemberState, Option<usize>) {
        match self.member_position(pin.id) {
            Some(i) if self.members[i].epoch == pin.epoch => {
                let state = match self.members[i].status {
                    MemberStatus::Active => MemberState::Active,
                    MemberStatus::Draining => MemberState::Draining,
                    MemberStatus::Down => MemberState::Gone,
                };
                (state, Some(i))
            }
            _ => (MemberState::Gone, None),
        }
    }

    /// The member Maglev picks for a new flow with this hash (active members only).
    #[inline]
    pub fn pick(&self, flow_hash: u64) -> Option<MemberRef> {
        self.pick_index(flow_hash)
            .map(|i| self.members[i].member_ref())
    }

    /// [`Service::pick`] as a position in [`Service::members`].
    #[inline]
    pub fn pick_index(&self, flow_hash: u64) -> Option<usize> {
        let index = self.maglev.lookup(flow_hash)?.get();
        (index < self.members.len()).then_some(index)
    }
}

/// The immutable data-plane state one worker reads per burst.
#[derive(Debug, Clone)]
pub struct Snapshot {
    tunnel: TunnelSpec,
    ports: Vec<Port>,
    services: Vec<Service>,
    /// (address, service index), sorted by address.
    service_index: Vec<(u128, u16)>,
    /// The tunnel address and the other local addresses, sorted.
    local: Vec<u128>,
    /// [`filter_bit`] of every local address, or-ed.
    local_filter: u64,
    /// Low 24 bits of every local and service address, sorted: the solicited-node
    /// multicast groups (RFC 4291 §2.7.1) whose Neighbor Solicitations concern us.
    solicited_node: Vec<u32>,
    /// ((care-of, service address), (service index, member index)), sorted by key.
    reverse: Vec<((u128, u128), (u16, u16))>,
    icmp_rate: IcmpRateSpec,
}

impl Snapshot {
    /// Validates `spec` and builds the lookup structures and Maglev tables.
    pub fn build(spec: &SnapshotSpec) -> Result<Snapshot, SnapshotError> {
        let t = spec.tunnel.address;
        if t.is_multicast() || t.is_unspecified() || t.is_loopback() || is_link_local(&t) {
            return Err(SnapshotError::TunnelAddress(t));
        }
        if spec.tunnel.hop_limit == 0 {
            return Err(SnapshotError::TunnelHopLimit);
        }
        let mut local = vec![u128::from(t)];
        for a in &spec.local_addresses {
            if a.is_multicast() || a.is_unspecified() {
                return Err(SnapshotError::LocalAddress(*a));
            }
            local.push(u128::from(*a));
        }
        local.sort_unstable();
        local.dedup();

        let mut ports = Vec::with_capacity(spec.ports.len());
        for (i, p) in spec.ports.iter().enumerate() {
            if usize::from(p.link_mtu) < ipv6::MIN_MTU {
                return Err(SnapshotError::LinkMtu {
                    port: i,
                    mtu: p.link_mtu,
                });
            }
            if !p.mac.is_unicast() {
                return Err(SnapshotError::PortMac {
                    port: i,
                    mac: p.mac,
                });
            }
            ports.push(Port {
                mac: p.mac,
                link_mtu: p.link_mtu,
                next_hop_mac: p.next_hop_mac,
            });
        }

        let mut service_index: Vec<(u128, u16)> = Vec::with_capacity(spec.services.len());
        for (i, s) in spec.services.iter().enumerate() {
            let a = s.address;
            if a.is_multicast() || a.is_unspecified() || local.binary_search(&a.into()).is_ok() {
                return Err(SnapshotError::ServiceAddress {
                    service: i,
                    address: a,
                });
            }
            if let Some(&(_, other)) = service_index.iter().find(|(x, _)| *x == u128::from(a)) {
                return Err(SnapshotError::DuplicateService {
                    service: i,
                    other: usize::from(other),
                    address: a,
                });
            }
            if usize::from(s.port) >= ports.len() {
                return Err(SnapshotError::ServicePort {
                    service: i,
                    port: s.port,
                });
            }
            service_index.push((a.into(), i as u16));
        }
        service_index.sort_unstable();

        let mut services = Vec::with_capacity(spec.services.len());
        let mut reverse = Vec::new();
        for (i, s) in spec.services.iter().enumerate() {
            // Checked above: every service's port exists.
            let port = &ports[usize::from(s.port)];
            let mut members: Vec<Member> = s
                .members
                .iter()
                .map(|m| Member {
                    id: m.id,
                    epoch: m.epoch,
                    care_of: m.care_of,
                    weight: m.weight,
                    status: m.status,
                    mac: m.mac,
                    stats_slot: m.stats_slot,
                    outer: OuterHeaders::for_member(
                        &spec.tunnel,
                        m.care_of,
                        m.mac.or(port.next_hop_mac),
                        port.mac,
                    ),
                })
                .collect();
            members.sort_unstable_by_key(|m| m.id);
            for pair in members.windows(2) {
                if pair[0].id == pair[1].id {
                    return Err(SnapshotError::DuplicateMemberId {
                        service: i,
                        id: pair[0].id,
                    });
                }
            }
            for (j, m) in members.iter().enumerate() {
                if usize::from(m.stats_slot) >= MEMBER_SLOTS {
                    return Err(SnapshotError::StatsSlot {
                        service: i,
                        id: m.id,
                        slot: m.stats_slot,
                    });
                }
                let c = m.care_of;
                let is_service = service_index
                    .binary_search_by_key(&u128::from(c), |e| e.0)
                    .is_ok();
                // A down member's care-of address may be local: the control thread claims
                // it (proxy Neighbor Discovery) to answer clients still sending there.
                let claimed = m.status == MemberStatus::Down;
                if c.is_multicast()
                    || c.is_unspecified()
                    || is_service
                    || (!claimed && local.binary_search(&c.into()).is_ok())
                {
                    return Err(SnapshotError::CareOf {
                        service: i,
                        id: m.id,
                        care_of: c,
                    });
                }
                if members[..j].iter().any(|o| o.care_of == c) {
                    return Err(SnapshotError::DuplicateCareOf {
                        service: i,
                        care_of: c,
                    });
                }
                reverse.push(((u128::from(c), u128::from(s.address)), (i as u16, j as u16)));
            }
            // The member's permutation depends on its care-of address only, so every
            // appliance and every worker builds the same table (see maglev.rs).
            let names: Vec<[u8; 16]> = members.iter().map(|m| m.care_of.octets()).collect();
            let maglev_members: Vec<MaglevMember<'_>> = members
                .iter()
                .zip(&names)
                .map(|(m, name)| MaglevMember {
                    name,
                    weight: if m.status == MemberStatus::Active {
                        m.weight
                    } else {
                        0
                    },
                })
                .collect();
            let maglev = MaglevTable::build(&maglev_members, s.maglev_size)
                .map_err(|source| SnapshotError::Maglev { service: i, source })?;
            services.push(Service {
                address: s.address,
                affinity: s.affinity,
                port: s.port,
                positions: PositionIndex::new(&members),
                members,
                maglev,
                tunnel_mtu: usize::from(port.link_mtu) - overhead_of(&spec.tunnel),
            });
        }
        reverse.sort_unstable();

        let mut solicited_node: Vec<u32> = local
            .iter()
            .chain(service_index.iter().map(|(a, _)| a))
            .map(|&a| (a as u32) & 0x00ff_ffff)
            .collect();
        solicited_node.sort_unstable();
        solicited_node.dedup();

        Ok(Snapshot {
            tunnel: spec.tunnel,
            ports,
            services,
            service_index,
            local_filter: local.iter().fold(0, |f, &a| f | filter_bit(a)),
            local,
            solicited_node,
            reverse,
            icmp_rate: spec.icmp_rate,
        })
    }

    /// The tunnel entry point.
    #[inline]
    pub fn tunnel(&self) -> &TunnelSpec {
        &self.tunnel
    }

    /// The port with this index.
    #[inline]
    pub fn port(&self, index: u16) -> Option<&Port> {
        self.ports.get(usize::from(index))
    }

    /// All ports.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// The service with this index.
    #[inline]
    pub fn service(&self, index: u16) -> Option<&Service> {
        self.services.get(usize::from(index))
    }

    /// All services, by index.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The index of the service whose address is `addr`.
    #[inline]
    pub fn service_by_address(&self, addr: u128) -> Option<u16> {
        self.service_index
            .binary_search_by_key(&addr, |e| e.0)
            .ok()
            .map(|i| self.service_index[i].1)
    }

    /// True for the tunnel address and the other appliance addresses. Every forwarded
    /// packet asks this about its source; the filter answers most of them.
    #[inline]
    pub fn is_local(&self, addr: u128) -> bool {
        self.local_filter & filter_bit(addr) != 0 && self.local.binary_search(&addr).is_ok()
    }

    /// True when some local or service address maps to the solicited-node multicast group
    /// ending in these 24 bits.
    #[inline]
    pub fn is_our_solicited_node(&self, low24: u32) -> bool {
        self.solicited_node.binary_search(&low24).is_ok()
    }

    /// The (service index, member index in the service) a reply tunnelled from `care_of`
    /// with inner source `service_address` belongs to: the reverse path's registration
    /// check.
    #[inline]
    pub fn registered_pair(&self, care_of: u128, service_address: u128) -> Option<(u16, u16)> {
        self.reverse
            .binary_search_by_key(&(care_of, service_address), |e| e.0)
            .ok()
            .map(|i| self.reverse[i].1)
    }

    /// The ICMPv6 error rate limit.
    #[inline]
    pub fn icmp_rate(&self) -> IcmpRateSpec {
        self.icmp_rate
    }

    /// Octets the tunnel adds to a packet that carries no encapsulation limit of its own.
    #[inline]
    pub fn tunnel_overhead(&self) -> usize {
        overhead_of(&self.tunnel)
    }

    /// The tunnel MTU of a port: its link MTU minus the configured tunnel overhead
    /// (RFC 2473 §6.7).
    pub fn tunnel_mtu(&self, port: u16) -> Option<usize> {
        self.port(port)
            .map(|p| usize::from(p.link_mtu) - self.tunnel_overhead())
    }
}

/// Octets `tunnel` adds to a packet that carries no encapsulation limit of its own.
fn overhead_of(tunnel: &TunnelSpec) -> usize {
    if tunnel.encap_limit.is_some() {
        tunnel::MAX_OVERHEAD
    } else {
        ipv6::HEADER_LEN
    }
}

/// fe80::/10 (RFC 4291 §2.5.6).
#[inline]
pub(crate) fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn member(id: u32, care_of: &str, status: MemberStatus) -> MemberSpec {
        MemberSpec {
            id,
            epoch: 1,
            care_of: a(care_of),
            weight: 1,
            status,
            mac: None,
            stats_slot: id as u16,
        }
    }

    fn spec() -> SnapshotSpec {
        SnapshotSpec {
            tunnel: TunnelSpec {
                address: a("2001:db8:ff::1"),
                hop_limit: 64,
                traffic_class: TrafficClass::CopyInner,
                encap_limit: None,
            },
            local_addresses: vec![a("fe80::1")],
            ports: vec![PortSpec {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                link_mtu: 1500,
                next_hop_mac: Some(MacAddr([2, 0, 0, 0, 0, 0xfe])),
            }],
            services: vec![ServiceSpec {
                address: a("2001:db8:100::1"),
                affinity: AffinityMode::Client,
                port: 0,
                maglev_size: 251,
                members: vec![
                    member(7, "2001:db8:2::10", MemberStatus::Active),
                    member(3, "2001:db8:2::11", MemberStatus::Draining),
                ],
            }],
            icmp_rate: IcmpRateSpec::default(),
        }
    }

    mod fast_lookups {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The id index and the local-address filter answer exactly what a search of the
            /// sorted vectors answers, for ids that share index slots (clustered, spread by
            /// powers of two, or random) and for addresses that share filter bits.
            #[test]
            fn fast_lookups_match_the_searches(
                ids in proptest::collection::btree_set(
                    prop_oneof![0u32..40, (0u32..16).prop_map(|k| k << 12), any::<u32>()],
                    0..40,
                ),
                probes in proptest::collection::vec(any::<u32>(), 16),
                locals in proptest::collection::btree_set(0u128..200, 1..30),
            ) {
                let members: Vec<Member> = ids
                    .iter()
                    .map(|&id| Member {
                        id,
                        epoch: 1,
                        care_of: Ipv6Addr::LOCALHOST,
                        weight: 1,
                        status: MemberStatus::Active,
                        mac: None,
                        stats_slot: 0,
                        outer: Err(DropReason::NoNeighbour),
                    })
                    .collect();
                let service = Service {
                    address: Ipv6Addr::UNSPECIFIED,
                    affinity: AffinityMode::Client,
                    port: 0,
                    positions: PositionIndex::new(&members),
                    members,
                    maglev: MaglevTable::build(&[], 7).unwrap(),
                    tunnel_mtu: 1460,
                };
                for id in ids.iter().copied().chain(probes).chain(ids.iter().map(|i| i ^ 8)) {
                    let searched = service.members.binary_search_by_key(&id, |m| m.id).ok();
                    prop_assert_eq!(service.member_position(id), searched, "id {}", id);
                }

                let mut spec = spec();
                // A /120 of addresses: many share their filter bit with a local one.
                let base = u128::from(a("2001:db8:7::"));
                spec.local_addresses = locals.iter().map(|&l| Ipv6Addr::from(base + l)).collect();
                let snap = Snapshot::build(&spec).unwrap();
                for probe in (0..256).map(|l| base + l).chain([u128::from(a("2001:db8:ff::1"))]) {
                    let searched = snap.local.binary_search(&probe).is_ok();
                    prop_assert_eq!(snap.is_local(probe), searched);
                }
            }
        }
    }

    #[test]
    fn lookups() {
        let s = Snapshot::build(&spec()).unwrap();
        assert_eq!(s.service_by_address(a("2001:db8:100::1").into()), Some(0));
        assert_eq!(s.service_by_address(a("2001:db8:100::2").into()), None);
        assert!(s.is_local(a("2001:db8:ff::1").into()));
        assert!(s.is_local(a("fe80::1").into()));
        assert!(!s.is_local(a("2001:db8:100::1").into()));
        assert_eq!(
            s.registered_pair(a("2001:db8:2::11").into(), a("2001:db8:100::1").into()),
            Some((0, 0)),
            "members are sorted by id: id 3 first"
        );
        assert_eq!(
            s.registered_pair(a("2001:db8:2::11").into(), a("2001:db8:100::2").into()),
            None
        );
        assert!(s.is_our_solicited_node(0x00_00_01));
        assert!(!s.is_our_solicited_node(0x00_00_02));
        let svc = s.service(0).unwrap();
        assert_eq!(svc.members[0].id, 3);
        // Only the active member is in the Maglev table.
        for h in 0..1000u64 {
            assert_eq!(
                svc.pick(h.wrapping_mul(0x9e37_79b9_7f4a_7c15)).unwrap().id,
                7
            );
        }
        assert_eq!(
            svc.member_state(MemberRef { id: 3, epoch: 1 }),
            MemberState::Draining
        );
        assert_eq!(
            svc.member_state(MemberRef { id: 7, epoch: 2 }),
            MemberState::Gone
        );
        assert_eq!(
            svc.member_state(MemberRef { id: 8, epoch: 1 }),
            MemberState::Gone
        );
        assert_eq!(s.tunnel_mtu(0), Some(1460));
    }

    #[test]
    fn validation() {
        let check = |f: &dyn Fn(&mut SnapshotSpec), want: &str| {
            let mut sp = spec();
            f(&mut sp);
            let err = Snapshot::build(&sp).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} does not contain {want:?}");
        };
        check(&|s| s.tunnel.address = a("ff02::1"), "tunnel address");
        check(&|s| s.tunnel.hop_limit = 0, "hop limit");
        check(&|s| s.local_addresses.push(a("::")), "local address");
        check(&|s| s.ports[0].link_mtu = 1279, "below the IPv6 minimum");
        check(&|s| s.ports[0].mac = MacAddr::BROADCAST, "not a unicast");
        check(
            &|s| s.services[0].address = a("fe80::1"),
            "appliance address",
        );
        check(
            &|s| {
                let dup = s.services[0].clone();
                s.services.push(dup);
            },
            "is also service 0",
        );
        check(&|s| s.services[0].port = 1, "port 1 does not exist");
        check(
            &|s| s.services[0].members[1].id = 7,
            "member id 7 appears twice",
        );
        check(
            &|s| s.services[0].members[1].care_of = a("2001:db8:2::10"),
            "appears twice",
        );
        check(
            &|s| s.services[0].members[0].care_of = a("2001:db8:100::1"),
            "care-of address",
        );
        check(
            &|s| s.services[0].members[0].care_of = a("2001:db8:ff::1"),
            "care-of address",
        );
        check(&|s| s.services[0].maglev_size = 250, "not prime");
    }
}
