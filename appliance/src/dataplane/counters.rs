//! Per-worker packet counters and drop reasons.
//!
//! Each worker owns a [`Counters`] block (`#[repr(align(64))]`, so two workers' blocks never
//! share a cache line) and increments plain `u64` fields: the worker is the only writer, so
//! no atomic read-modify-write is needed, and there is none on the per-packet path. For the
//! control thread to read them, the worker copies the block into its [`CounterMirror`] with
//! Relaxed atomic *stores* once per burst ([`CounterMirror::publish`]); the reader loads
//! them with Relaxed loads. A reader may see a mix of two bursts' values (each value is
//! itself exact), which is fine for monitoring; sums over workers are done by the reader.
//!
//! Invariant (tested): `rx_packets == forwarded + reversed + exceptions + sum(drops)`. A
//! packet dropped with an ICMPv6 error in its place is counted under its drop reason *and*
//! `icmp_sent`.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order (index order).
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Number of variants.
            pub const COUNT: usize = $name::ALL.len();

            /// The snake_case name used in counters, metrics and `explain`.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Position in [`Self::ALL`].
            #[inline]
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum! {
    /// Why the pipeline discarded a packet. docs/dataplane-pipeline.md has the table of
    /// when each one happens.
    pub enum DropReason {
        /// Shorter than an Ethernet header, or a group (multicast) source MAC.
        MalformedEthernet => "malformed_ethernet",
        /// An 802.1Q-tagged frame: the appliance runs on untagged ports.
        VlanTagged => "vlan_tagged",
        /// Not EtherType IPv6.
        NotIpv6 => "not_ipv6",
        /// A unicast destination MAC other than the port's.
        ForeignMac => "foreign_mac",
        /// Received on a port the snapshot does not know.
        UnknownPort => "unknown_port",
        /// IPv6 header truncated, wrong version, payload shorter than announced, jumbogram.
        MalformedIpv6 => "malformed_ipv6",
        /// A multicast source address (RFC 4291 §2.7).
        MulticastSource => "multicast_source",
        /// The extension header chain does not parse.
        BadExtHeaders => "bad_ext_headers",
        /// Unicast, not to a service or appliance address; or Neighbor Discovery for
        /// somebody else's solicited-node group.
        NotForUs => "not_for_us",
        /// Multicast other than Neighbor Discovery: the appliance forwards no multicast.
        MulticastNotHandled => "multicast_not_handled",
        /// An unspecified, loopback or link-local source to a service: such packets must
        /// not be forwarded (RFC 4291 §2.5.2, §2.5.3, §2.5.6).
        UnforwardableSource => "unforwardable_source",
        /// Would loop: a packet from the appliance to a service, or a tunnelled reply to a
        /// service address (one to an appliance address goes to the control thread).
        TunnelLoop => "tunnel_loop",
        /// Hop limit would reach 0 (Time Exceeded sent unless suppressed).
        HopLimitExceeded => "hop_limit_exceeded",
        /// The client packet carries a Tunnel Encapsulation Limit of 0 (RFC 2473 §5.1 (b);
        /// Parameter Problem sent unless suppressed).
        EncapLimitExceeded => "encap_limit_exceeded",
        /// Larger than the tunnel MTU and than 1280 (RFC 2473 §7.1 (a); Packet Too Big
        /// sent unless suppressed), or a decapsulated reply larger than the port MTU.
        TooBig => "too_big",
        /// The service has no member that can take the flow.
        NoServiceMember => "no_service_member",
        /// The next hop's (or on-link member's) MAC is not resolved yet.
        NoNeighbour => "no_neighbour",
        /// The buffer lacks headroom for the headers to prepend.
        NoBufferRoom => "no_buffer_room",
        /// Fragmenting the tunnel packet needed a second buffer and none was available.
        FragmentNoRoom => "fragment_no_room",
        /// A fragmented tunnel packet to the tunnel address: the appliance does not
        /// reassemble.
        TunnelFragment => "tunnel_fragment",
        /// A tunnel packet whose (outer source, inner source) is not a registered
        /// (care-of, service) pair: anti-spoofing.
        ReverseUnregistered => "reverse_unregistered",
        /// A tunnel packet whose inner packet (or tunnel header) is malformed or
        /// unsupported.
        ReverseMalformedInner => "reverse_malformed_inner",
        /// A tunnelled reply to a destination that must not be forwarded (multicast,
        /// unspecified, loopback, link-local).
        ReverseBadDestination => "reverse_bad_destination",
    }
}

named_enum! {
    /// The non-drop counters.
    pub enum Stat {
        /// Frames received.
        RxPackets => "rx_packets",
        /// Bytes received (frames as given to the pipeline).
        RxBytes => "rx_bytes",
        /// Frames to transmit (fragments and ICMPv6 errors included).
        TxPackets => "tx_packets",
        /// Bytes to transmit.
        TxBytes => "tx_bytes",
        /// Client packets tunnelled to a member.
        Forwarded => "forwarded",
        /// Member replies decapsulated and forwarded.
        Reversed => "reversed",
        /// Frames handed to the control thread.
        Exceptions => "exceptions",
        /// Tunnel packets sent as two fragments (RFC 2473 §7.1 (b)).
        Fragmented => "fragmented",
        /// ICMPv6 errors sent.
        IcmpSent => "icmp_sent",
        /// ICMPv6 errors the token bucket suppressed (RFC 4443 §2.4(f)).
        IcmpRateLimited => "icmp_rate_limited",
        /// ICMPv6 errors RFC 4443 §2.4(e) forbids (about an error, to a multicast, anycast
        /// or unspecified source, ...).
        IcmpNotAllowed => "icmp_not_allowed",
        /// Affinity lookups that found a live entry (the worker's table, `affinity.rs`).
        AffinityHits => "affinity_hits",
        /// Affinity lookups that found none: new flows, and flows idle past the timeout.
        AffinityMisses => "affinity_misses",
        /// Live affinity entries evicted to make room: flows the table was too small to
        /// remember (`dataplane.affinity_capacity`).
        AffinityEvictions => "affinity_evictions",
        /// Idle affinity entries reclaimed.
        AffinityExpirations => "affinity_expirations",
        /// Affinity entries moved to their other bucket to make room for a new flow.
        AffinityRelocations => "affinity_relocations",
    }
}

/// Total number of counter values: the stats, then one per drop reason.
pub const COUNTER_COUNT: usize = Stat::COUNT + DropReason::COUNT;

/// One worker's counters. Plain fields: only the owning worker writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Counters {
    stats: [u64; Stat::COUNT],
    drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            stats: [0; Stat::COUNT],
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Adds `n` to a stat.
    #[inline]
    pub fn add(&mut self, stat: Stat, n: u64) {
        self.stats[stat.index()] += n;
    }

    /// Counts one drop.
    #[inline]
    pub fn add_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    /// Sets a stat (one kept elsewhere and copied in).
    #[inline]
    pub fn set(&mut self, stat: Stat, value: u64) {
        self.stats[stat.index()] = value;
    }

    /// A stat's value.
    #[inline]
    pub fn get(&self, stat: Stat) -> u64 {
        self.stats[stat.index()]
    }

    /// Drops counted for `reason`.
    #[inline]
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Drops over all reasons.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Checks `rx == forwarded + reversed + exceptions + drops`.
    pub fn is_consistent(&self) -> bool {
        self.get(Stat::RxPackets)
            == self.get(Stat::Forwarded)
                + self.get(Stat::Reversed)
                + self.get(Stat::Exceptions)
                + self.total_drops()
    }

    /// Every counter with its name: the stats, then the drops by reason.
    pub fn iter(&self) -> impl Iterator<Item = (CounterName, u64)> + '_ {
        Stat::ALL
            .iter()
            .map(|&s| (CounterName::Stat(s), self.get(s)))
            .chain(
                DropReason::ALL
                    .iter()
                    .map(|&r| (CounterName::Drop(r), self.drops(r))),
            )
    }

    /// Sums two blocks (the control thread totals over workers).
    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.stats.iter_mut().zip(other.stats) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(other.drops) {
            *a += b;
        }
    }

    fn value(&self, i: usize) -> u64 {
        if i < Stat::COUNT {
            self.stats[i]
        } else {
            self.drops[i - Stat::COUNT]
        }
    }

    fn set_value(&mut self, i: usize, v: u64) {
        if i < Stat::COUNT {
            self.stats[i] = v;
        } else {
            self.drops[i - Stat::COUNT] = v;
        }
    }
}

/// The name of one counter value from [`Counters::iter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterName {
    Stat(Stat),
    Drop(DropReason),
}

/// A cross-thread copy of one worker's [`Counters`]: written by the worker with Relaxed
/// stores once per burst, read by the control thread. On its own cache lines.
#[derive(Debug)]
pub struct CounterMirror {
    cells: CachePadded<[AtomicU64; COUNTER_COUNT]>,
}

impl Default for CounterMirror {
    fn default() -> Self {
        CounterMirror {
            cells: CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl CounterMirror {
    /// Copies `counters` in: plain stores, no read-modify-write. Only the owning worker
    /// calls this.
    pub fn publish(&self, counters: &Counters) {
        for (i, cell) in self.cells.iter().enumerate() {
            cell.store(counters.value(i), Ordering::Relaxed);
        }
    }

    /// The values last published.
    pub fn read(&self) -> Counters {
        let mut c = Counters::default();
        for (i, cell) in self.cells.iter().enumerate() {
            c.set_value(i, cell.load(Ordering::Relaxed));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<&str> = DropReason::ALL
            .iter()
            .map(|r| r.name())
            .chain(Stat::ALL.iter().map(|s| s.name()))
            .collect();
        for n in &names {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{n}"
            );
        }
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn mirror_round_trip_and_merge() {
        assert_eq!(std::mem::align_of::<Counters>(), 64);
        let mut c = Counters::default();
        c.add(Stat::RxPackets, 3);
        c.add(Stat::Forwarded, 1);
        c.add_drop(DropReason::ReverseBadDestination);
        assert!(!c.is_consistent());
        c.add(Stat::Exceptions, 1);
        assert!(c.is_consistent());
        c.add(Stat::RxPackets, 1);
        c.add_drop(DropReason::ReverseBadDestination);
        assert!(c.is_consistent());
        let m = CounterMirror::default();
        m.publish(&c);
        assert_eq!(m.read(), c);
        let mut total = c;
        total.merge(&c);
        assert_eq!(total.get(Stat::RxPackets), 8);
        assert_eq!(total.drops(DropReason::ReverseBadDestination), 4);
        assert!(total.is_consistent());
        assert_eq!(c.iter().count(), COUNTER_COUNT);
    }
}
