//! Per-worker flow affinity: which member an established flow (or client) is pinned to.
//!
//! Maglev alone already keeps most flows on their member when the member set changes, but
//! not all of them (adding a member takes over ~1/N of the hash space). The affinity table
//! remembers the member each live flow was sent to, so that (see [`AffinityTable::resolve`]):
//!
//! * a **new member never steals an established flow**: an entry pinned to a live member is
//!   used whatever the current Maglev table says;
//! * a **draining member keeps its flows** until they go idle;
//! * a **dead member's flows are re-picked** through Maglev and the entry is overwritten.
//!
//! RSS sends every packet of a flow to the same worker, so each worker owns its table outright
//! (`&mut self`, no sharing, no atomics).
//!
//! # Layout: two-choice, 8-way set-associative buckets
//!
//! The capacity (rounded up to a power of two) is split into buckets of [`WAYS`] entries. A
//! flow hash selects two candidate buckets and a key lives in any way of either (the
//! bucketised "power of two choices" of DPDK's `rte_hash` and of cuckoo filters, with one
//! step of cuckoo displacement on insert). Every lookup therefore touches at most two
//! buckets: the probe length is bounded by `2 * WAYS` by construction, even in a full
//! table, and there are no tombstones or probe chains to maintain.
//!
//! An insert fills the key's first bucket, then its second; when both are full of live
//! entries it moves one of their entries to that entry's own other bucket if it has room
//! (the second bucket is derived from the first and the tag, symmetrically, so an entry's
//! other bucket is known without its key), and only then evicts. Filling the first bucket
//! first keeps nearly every key there at the loads a table is sized for, which lets a
//! burst prefetch one metadata line per key instead of two; the relocation keeps buckets
//! from overflowing while the table has room. The test below measures, for 2^16 entries:
//! no early eviction up to 85% load, 0.008% at 90%; keys in their second bucket 0.2% at
//! 38% load, 0.8% at 50%, 5.9% at 75%. (Taking the emptier of the two buckets instead, as
//! before, gave no early eviction up to 75%, 0.01% at 80%, 0.6% at 90%, with half the keys
//! in their second bucket; one bucket alone evicts 0.8% of new flows early at 50% load.)
//! Size the table at about 4/3 of the expected concurrent flows (keys) per worker.
//!
//! Each bucket has one 64-byte metadata line with the 8 tags (32 bits of the hash, 0 = empty)
//! and the 8 last-seen times, and 8 slots (key and member) of one cache line each (a 48-byte
//! slot packed tightly would span two lines for half the ways, two misses instead of one).
//! A lookup scans the first tag line, the second only on a miss there, and compares the full
//! key only where a tag matches, so a hit usually costs one tag line plus one slot line;
//! choosing an eviction victim reads the tag lines only.
//!
//! A burst looks its keys up in bulk (the scheme of DPDK's `rte_hash_lookup_bulk`): compute
//! every [`Probe`] and [`AffinityTable::prefetch_buckets`] (the first bucket's line), then
//! [`AffinityTable::prefetch_slot`] for each (the matching slot, or the second bucket's
//! line when the first has no matching tag), then [`AffinityTable::resolve_probed`]. In a
//! table larger than the caches each step is a miss, and this way a burst's misses overlap.
//! The slot prefetch leaves its entry in the probe as a hint, which the lookup checks
//! first (tag and key), so that on a hit it goes from the probe straight to the slot, with
//! the metadata line read beside it rather than before it; a stale hint costs the scan.
//!
//! Memory is allocated once in [`AffinityTable::new`]; nothing allocates afterwards.
//!
//! # Time, expiry and eviction
//!
//! Time is a caller-supplied `u32` tick count (seconds, or a coarse TSC-derived tick) that
//! must not go backwards; ages are computed with wrapping subtraction, so the counter may
//! wrap. An entry idle for more than `idle_timeout` ticks is treated as absent and reclaimed
//! lazily: by the lookup that finds it, or by an insert that needs its way. An insert takes
//! an empty way (first bucket, then second), else an expired entry of either, else room made
//! by relocating one entry (above), else evicts the least recently seen of the 16
//! candidates (LRU within the two sets).

use std::mem::size_of;

use anycast6_dpdk::{equal_lanes, prefetch_read, HugeArray};

/// Entries per bucket: one 64-byte metadata line holds 8 tags and 8 last-seen times. A key
/// has two candidate buckets.
pub const WAYS: usize = 8;

/// Size of a [`FlowKey`] in bytes.
pub const FLOW_KEY_LEN: usize = 40;

/// Largest accepted capacity.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Kind byte of a key (byte 37), so that a client-pair key never equals a five-tuple key.
const KIND_CLIENT_PAIR: u8 = 1;
const KIND_FIVE_TUPLE: u8 = 2;

/// The identity of a flow as the affinity table sees it: 40 bytes (client address, service
/// address, client port, service port, protocol, and a kind byte so that a client-pair key
/// never equals a five-tuple key), held as five little-endian 64-bit words of that byte
/// layout. Words, not bytes: comparing and hashing them takes five loads each, with no
/// `memcmp` call and no narrow stores read back as words (a store-forwarding stall).
#[derive(Clone, Copy)]
pub struct FlowKey([u64; 5]);

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for FlowKey {
    /// Branch-free: a hit compares all five words anyway, and a tag false positive is rare.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }
}

impl Eq for FlowKey {}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlowKey(")?;
        for b in self.to_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// An address as the two little-endian words of its 16 octets.
#[inline]
fn address_words(address: [u8; 16]) -> [u64; 2] {
    let v = u128::from_le_bytes(address);
    [v as u64, (v >> 64) as u64]
}

impl FlowKey {
    #[inline]
    fn from_parts(client: [u8; 16], service: [u8; 16], tail: [u8; 8]) -> Self {
        let [c0, c1] = address_words(client);
        let [s0, s1] = address_words(service);
        Self([c0, c1, s0, s1, u64::from_le_bytes(tail)])
    }

    /// Client affinity: every flow of `client` to `service` maps to one member.
    #[inline]
    pub fn client_pair(client: [u8; 16], service: [u8; 16]) -> Self {
        Self::from_parts(client, service, [0, 0, 0, 0, 0, KIND_CLIENT_PAIR, 0, 0])
    }

    /// Flow affinity: one transport flow (client to service direction) maps to one member.
    #[inline]
    pub fn five_tuple(
        client: [u8; 16],
        client_port: u16,
        service: [u8; 16],
        service_port: u16,
        protocol: u8,
    ) -> Self {
        let [c0, c1] = client_port.to_be_bytes();
        let [s0, s1] = service_port.to_be_bytes();
        Self::from_parts(
            client,
            service,
            Self::transport_tail([c0, c1, s0, s1], protocol),
        )
    }

    /// The last word of a [`FlowKey::five_tuple`] from the first four octets of a TCP or
    /// UDP header as they are on the wire (client port, service port): one load, where
    /// the ports as numbers cost a dozen instructions to put back together.
    #[inline(always)]
    pub fn transport_tail(ports: [u8; 4], protocol: u8) -> [u8; 8] {
        let word = u64::from(u32::from_le_bytes(ports))
            | u64::from(protocol) << 32
            | u64::from(KIND_FIVE_TUPLE) << 40;
        word.to_le_bytes()
    }

    /// [`FlowKey::five_tuple`] from a [`FlowKey::transport_tail`].
    #[inline(always)]
    pub fn five_tuple_of_tail(client: [u8; 16], service: [u8; 16], tail: [u8; 8]) -> Self {
        Self::from_parts(client, service, tail)
    }

    /// A hash of the transport flow of a packet whose affinity key is its client pair,
    /// for the outer Flow Label: the pair's [`FlowKey::software_hash`] with the
    /// [`FlowKey::transport_tail`] folded in by one multiply, which carries every input bit
    /// into the top bits the label takes. The five-tuple's own hash would cost the packet a
    /// second finaliser.
    #[inline(always)]
    pub fn client_flow_hash(client_pair_hash: u64, tail: [u8; 8]) -> u64 {
        (client_pair_hash ^ u64::from_le_bytes(tail)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The key's 40 bytes: client address, service address, client port and service
    /// port (network order), protocol, kind, two zero bytes.
    pub fn to_bytes(&self) -> [u8; FLOW_KEY_LEN] {
        let mut bytes = [0u8; FLOW_KEY_LEN];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// A software flow hash for ports without an RSS hash in the mbuf. Deterministic across
    /// processes and versions (the same value as over [`FlowKey::to_bytes`] read as
    /// little-endian words). Any well-spread hash works for the table; this one is cheap
    /// (five multiply-rotate steps and a final mix).
    #[inline]
    pub fn software_hash(&self) -> u64 {
        mix64(self.0.iter().fold(HASH_SEED, |h, &word| hash_step(h, word)))
    }
}

/// Start value of [`FlowKey::software_hash`].
const HASH_SEED: u64 = 0x6a09_e667_f3bc_c908;

/// One word of [`FlowKey::software_hash`]: a multiply-rotate step.
#[inline]
fn hash_step(h: u64, word: u64) -> u64 {
    (h ^ word)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(29)
}

/// The member a flow is pinned to: a stable member id from the control plane plus the
/// member's epoch (incarnation), so that an id re-used after the member died and came back
/// does not resurrect old pins by accident; the caller decides with the current snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberRef {
    /// Stable member id (not a position in a Maglev member list, which shifts on changes).
    pub id: u32,
    /// Incarnation of the member with this id.
    pub epoch: u32,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AffinityEntry {
    /// The pinned member.
    pub member: MemberRef,
    /// When the flow was seen before this lookup (the lookup itself refreshes it to `now`).
    pub last_seen: u32,
}

/// How [`AffinityTable::insert`] placed an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The key was present; its member was overwritten.
    Updated,
    /// The key took an empty way.
    Inserted,
    /// The key took the way of an expired entry.
    ReplacedExpired,
    /// The bucket was full of live entries; the least recently seen one was evicted.
    Evicted,
}

/// Plain per-worker counters (the control thread sums them over workers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AffinityCounters {
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Inserts of a key that was not present.
    pub inserts: u64,
    /// Inserts that overwrote the member of a present key.
    pub updates: u64,
    /// Live entries evicted to make room.
    pub evictions: u64,
    /// Expired entries reclaimed (by a lookup or by an insert that reused the way).
    pub expirations: u64,
    /// Entries moved to their other bucket to make room for a new key.
    pub relocations: u64,
}

/// Whether the member of an existing entry may still receive the flow, as the current
/// snapshot says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Up and taking new flows.
    Active,
    /// Leaving gracefully: keeps its established flows, takes no new ones.
    Draining,
    /// Dead, removed, or another incarnation: its flows must be re-picked.
    Gone,
}

/// The decision of [`AffinityTable::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The flow stays on the member it is pinned to.
    Sticky(MemberRef),
    /// A new flow, pinned to the member just picked.
    New(MemberRef),
    /// The pinned member was gone; the flow was re-picked and re-pinned.
    Repinned {
        /// The member that was gone.
        previous: MemberRef,
        /// The member now pinned.
        member: MemberRef,
    },
    /// No member can take the flow (nothing pinned usable, nothing to pick).
    NoMember,
}

/// Tags and last-seen times of one bucket: exactly one cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct BucketMeta {
    /// High 32 bits of the mixed hash, forced odd; 0 marks an empty way.
    tags: [u32; WAYS],
    last_seen: [u32; WAYS],
}

/// Key and member of one way, alone in its cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot {
    key: FlowKey,
    member: MemberRef,
}

const EMPTY_TAG: u32 = 0;

/// Bit `way` set where `tags[way] == tag` (a vector compare, [`equal_lanes`]).
#[inline]
fn tag_matches(tags: &[u32; WAYS], tag: u32) -> u32 {
    equal_lanes(tags, tag)
}

/// The candidate buckets and tag of one flow hash in one table ([`AffinityTable::probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    buckets: [usize; 2],
    tag: u32,
    /// The entry [`AffinityTable::prefetch_slot`] prefetched ([`NO_HINT`] when none): the
    /// lookup tries it first, with no scan of the tags between the metadata line and the
    /// slot. A hint that went stale (the entry changed since) only costs the scan.
    hint: u32,
}

/// A [`Probe`] without a hint.
const NO_HINT: u32 = u32::MAX;

/// Why a table could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AffinityError {
    /// Capacity 0 or above [`MAX_CAPACITY`].
    #[error("affinity table capacity {0} is out of range 1..={MAX_CAPACITY}")]
    Capacity(usize),
}

/// A fixed-capacity, preallocated flow -> member table owned by one worker.
pub struct AffinityTable {
    /// Both on huge pages ([`HugeArray`]): a lookup in a table of many megabytes then
    /// costs a cache miss but no TLB miss.
    meta: HugeArray<BucketMeta>,
    slots: HugeArray<Slot>,
    bucket_mask: usize,
    idle_timeout: u32,
    len: usize,
    counters: AffinityCounters,
}

impl std::fmt::Debug for AffinityTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AffinityTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .field("idle_timeout", &self.idle_timeout)
            .field("counters", &self.counters)
            .finish()
    }
}

/// A 64-bit finaliser (MurmurHash3 fmix64): spreads every input bit over the whole word, so
/// that [`AffinityTable::probe`] may take its bucket from the low bits and its tag from
/// the high bits, and Maglev its slot from both halves.
#[inline]
fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl AffinityTable {
    /// Bytes of memory per entry: one slot plus its share of the bucket metadata line.
    pub const BYTES_PER_ENTRY: usize = size_of::<Slot>() + size_of::<BucketMeta>() / WAYS;

    /// A table for at least `capacity` entries (rounded up to a power of two, at least
    /// [`WAYS`]); entries idle for more than `idle_timeout` ticks expire. Allocates all its
    /// memory here.
    pub fn new(capacity: usize, idle_timeout: u32) -> Result<Self, AffinityError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(AffinityError::Capacity(capacity));
        }
        let capacity = capacity.next_power_of_two().max(WAYS);
        let buckets = capacity / WAYS;
        let empty_meta = BucketMeta {
            tags: [EMPTY_TAG; WAYS],
            last_seen: [0; WAYS],
        };
        let empty_slot = Slot {
            key: FlowKey([0; 5]),
            member: MemberRef { id: 0, epoch: 0 },
        };
        Ok(Self {
            meta: HugeArray::filled(buckets, empty_meta),
            slots: HugeArray::filled(capacity, empty_slot),
            bucket_mask: buckets - 1,
            idle_timeout,
            len: 0,
            counters: AffinityCounters::default(),
        })
    }

    /// Number of entries the table holds when full.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Occupied entries, including expired ones not yet reclaimed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no way is occupied.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The idle timeout in ticks.
    pub fn idle_timeout(&self) -> u32 {
        self.idle_timeout
    }

    /// The counters so far.
    pub fn counters(&self) -> &AffinityCounters {
        &self.counters
    }

    /// The two candidate buckets and the tag of a flow hash.
    #[cfg(test)]
    fn locate(&self, flow_hash: u64) -> ([usize; 2], u32) {
        let probe = self.probe(flow_hash);
        (probe.buckets, probe.tag)
    }

    /// Where the key of `flow_hash` may live: two candidate buckets and a tag. The second
    /// bucket is derived from the first and the tag (the partial-key scheme of cuckoo
    /// filters), so that the 32 tag bits and the bucket bits do not have to share the
    /// 64-bit hash twice. Computing it once lets a burst prefetch the
    /// buckets of every packet before the first lookup ([`AffinityTable::prefetch_buckets`],
    /// [`AffinityTable::prefetch_slot`], then [`AffinityTable::resolve_probed`]).
    ///
    /// `flow_hash` must be finalised, every bit depending on every key bit, as
    /// [`FlowKey::software_hash`] is: the first bucket is its low bits and the tag its high
    /// 32. (Mixing it again here cost 9 instructions per packet and spread nothing more.)
    #[inline]
    pub fn probe(&self, flow_hash: u64) -> Probe {
        let tag = ((flow_hash >> 32) as u32) | 1;
        let first = (flow_hash as usize) & self.bucket_mask;
        Probe {
            buckets: [first, self.alternate(first, tag)],
            tag,
            hint: NO_HINT,
        }
    }

    /// The other candidate bucket of a key with this tag in `bucket`: the relation is
    /// symmetric (`alternate(alternate(b, t), t) == b`), so an entry can be moved to its
    /// other bucket knowing only where it is and its tag.
    #[inline]
    fn alternate(&self, bucket: usize, tag: u32) -> usize {
        let scatter = (u64::from(tag).wrapping_mul(0xc6a4_a793_5bd1_e995) >> 20) as usize;
        (bucket ^ scatter) & self.bucket_mask
    }

    /// Prefetches the metadata line of the first candidate bucket (the first step of a bulk
    /// lookup: in a large table it is a cache miss, and a burst's misses overlap).
    #[inline]
    pub fn prefetch_buckets(&self, probe: &Probe) {
        if let Some(meta) = self.meta.get(probe.buckets[0]) {
            prefetch_read(meta);
        }
    }

    /// Prefetches the slot of every way of the first bucket whose tag matches (the second
    /// step: reads the metadata line [`AffinityTable::prefetch_buckets`] should have brought
    /// in), or, when none does, the second bucket's metadata line: the key is there, or it
    /// is new and the insert reads both. A slot is one aligned cache line, so one prefetch
    /// covers it. The first matching entry becomes the probe's hint.
    #[inline]
    pub fn prefetch_slot(&self, probe: &mut Probe) {
        let bucket = probe.buckets[0];
        let Some(meta) = self.meta.get(bucket) else {
            return;
        };
        let mut matches = tag_matches(&meta.tags, probe.tag);
        if matches == 0 {
            if let Some(meta) = self.meta.get(probe.buckets[1]) {
                prefetch_read(meta);
            }
            return;
        }
        probe.hint = (bucket * WAYS + matches.trailing_zeros() as usize) as u32;
        while matches != 0 {
            let way = matches.trailing_zeros() as usize;
            matches &= matches - 1;
            if let Some(slot) = self.slots.get(bucket * WAYS + way) {
                prefetch_read(slot);
            }
        }
    }

    #[inline]
    fn expired(&self, now: u32, last_seen: u32) -> bool {
        now.wrapping_sub(last_seen) > self.idle_timeout
    }

    #[inline]
    fn tag(&mut self, entry: usize) -> &mut u32 {
        &mut self.meta[entry / WAYS].tags[entry % WAYS]
    }

    #[inline]
    fn last_seen(&mut self, entry: usize) -> &mut u32 {
        &mut self.meta[entry / WAYS].last_seen[entry % WAYS]
    }

    /// The entry (`bucket * WAYS + way`) holding `key`, if any, expired or not: the hint's
    /// entry when it holds `key` under `tag` (keys are unique in the table, so it is the
    /// one), else by the tags of the first bucket, then of the second.
    #[inline]
    fn find(&self, probe: &Probe, key: &FlowKey) -> Option<usize> {
        let (buckets, tag) = (probe.buckets, probe.tag);
        let hint = probe.hint as usize;
        if let (Some(meta), Some(slot)) = (self.meta.get(hint / WAYS), self.slots.get(hint)) {
            if meta.tags[hint % WAYS] == tag && slot.key == *key {
                return Some(hint);
            }
        }
        buckets.into_iter().find_map(|bucket| {
            let mut matches = tag_matches(&self.meta[bucket].tags, tag);
            while matches != 0 {
                let entry = bucket * WAYS + matches.trailing_zeros() as usize;
                if self.slots[entry].key == *key {
                    return Some(entry);
                }
                matches &= matches - 1;
            }
            None
        })
    }

    /// The member `key` is pinned to, refreshing its last-seen time to `now`. An expired
    /// entry is reclaimed and reported as absent. Per-packet path: no allocation.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, flow_hash: u64, now: u32) -> Option<AffinityEntry> {
        let probe = self.probe(flow_hash);
        self.lookup_probed(key, &probe, now)
    }

    /// [`AffinityTable::lookup`] with the probe already computed: the first step of
    /// [`AffinityTable::resolve_probed`], for a caller that judges the member itself and
    /// finishes with [`AffinityTable::repin_probed`] or [`AffinityTable::pin_new_probed`].
    #[inline]
    pub fn lookup_probed(
        &mut self,
        key: &FlowKey,
        probe: &Probe,
        now: u32,
    ) -> Option<AffinityEntry> {
        let Some(entry) = self.find(probe, key) else {
            self.counters.misses += 1;
            return None;
        };
        let last_seen = *self.last_seen(entry);
        if self.expired(now, last_seen) {
            *self.tag(entry) = EMPTY_TAG;
            self.len -= 1;
            self.counters.expirations += 1;
            self.counters.misses += 1;
            return None;
        }
        if last_seen != now {
            *self.last_seen(entry) = now;
        }
        self.counters.hits += 1;
        Some(AffinityEntry {
            member: self.slots[entry].member,
            last_seen,
        })
    }

    /// Pins `key` to `member` as of `now`, overwriting an existing pin. Never fails: when
    /// both candidate buckets are full, an expired entry gives way, else the least recently
    /// seen of the 16 candidates. Per-packet path: no allocation.
    #[inline]
    pub fn insert(
        &mut self,
        key: &FlowKey,
        flow_hash: u64,
        member: MemberRef,
        now: u32,
    ) -> InsertOutcome {
        let probe = self.probe(flow_hash);
        self.insert_probed(key, &probe, member, now)
    }

    #[inline]
    fn insert_probed(
        &mut self,
        key: &FlowKey,
        probe: &Probe,
        member: MemberRef,
        now: u32,
    ) -> InsertOutcome {
        if let Some(entry) = self.find(probe, key) {
            self.slots[entry].member = member;
            *self.last_seen(entry) = now;
            self.counters.updates += 1;
            return InsertOutcome::Updated;
        }
        self.insert_absent(key, probe, member, now)
    }

    /// Inserts a key known to be absent.
    #[inline]
    fn insert_absent(
        &mut self,
        key: &FlowKey,
        probe: &Probe,
        member: MemberRef,
        now: u32,
    ) -> InsertOutcome {
        let (buckets, tag) = (probe.buckets, probe.tag);
        let (mut entry, mut outcome) = self.victim(buckets, now);
        // A full table has no empty way anywhere: skip the 16 reads that could only fail.
        if outcome == InsertOutcome::Evicted && self.len < self.capacity() {
            if let Some(freed) = self.relocate_one(buckets) {
                (entry, outcome) = (freed, InsertOutcome::Inserted);
            }
        }
        match outcome {
            InsertOutcome::Inserted => self.len += 1,
            InsertOutcome::ReplacedExpired => self.counters.expirations += 1,
            InsertOutcome::Evicted => self.counters.evictions += 1,
            InsertOutcome::Updated => {}
        }
        self.counters.inserts += 1;
        *self.tag(entry) = tag;
        *self.last_seen(entry) = now;
        self.slots[entry] = Slot { key: *key, member };
        outcome
    }

    /// Both candidate buckets are full of live entries: moves one of their entries to its
    /// own other bucket if that has an empty way (one step of cuckoo displacement), and
    /// returns the way it left. Reads up to 16 more metadata lines, on inserts into a full
    /// pair of buckets of a table that is not full. (Only empty ways are taken: an expired
    /// entry in the other bucket is left for a lookup or insert there to reclaim.)
    fn relocate_one(&mut self, buckets: [usize; 2]) -> Option<usize> {
        for bucket in buckets {
            for way in 0..WAYS {
                let tag = self.meta[bucket].tags[way];
                let other = self.alternate(bucket, tag);
                if other == bucket {
                    continue;
                }
                let empty = tag_matches(&self.meta[other].tags, EMPTY_TAG);
                if empty == 0 {
                    continue;
                }
                let (from, to) = (
                    bucket * WAYS + way,
                    other * WAYS + empty.trailing_zeros() as usize,
                );
                *self.tag(to) = tag;
                *self.last_seen(to) = *self.last_seen(from);
                self.slots[to] = self.slots[from];
                *self.tag(from) = EMPTY_TAG;
                self.counters.relocations += 1;
                return Some(from);
            }
        }
        None
    }

    /// The entry an insert of a new key takes: an empty way of the first candidate bucket,
    /// else of the second, else an expired entry, else the least recently seen (after
    /// [`AffinityTable::relocate_one`] has found no room). Reads the two metadata lines
    /// only. Filling the first bucket first keeps most keys there, so that a lookup needs
    /// the second bucket's line for few of them (see "Layout").
    #[inline]
    fn victim(&self, buckets: [usize; 2], now: u32) -> (usize, InsertOutcome) {
        for bucket in buckets {
            let empty = tag_matches(&self.meta[bucket].tags, EMPTY_TAG);
            if empty != 0 {
                let way = empty.trailing_zeros() as usize;
                return (bucket * WAYS + way, InsertOutcome::Inserted);
            }
        }
        let mut oldest = buckets[0] * WAYS;
        let mut oldest_age = 0;
        for bucket in buckets {
            for (way, &seen) in self.meta[bucket].last_seen.iter().enumerate() {
                let age = now.wrapping_sub(seen);
                if age > self.idle_timeout {
                    return (bucket * WAYS + way, InsertOutcome::ReplacedExpired);
                }
                if age > oldest_age {
                    oldest_age = age;
                    oldest = bucket * WAYS + way;
                }
            }
        }
        (oldest, InsertOutcome::Evicted)
    }

    /// Removes the pin of `key`, returning it if it was live.
    pub fn remove(&mut self, key: &FlowKey, flow_hash: u64, now: u32) -> Option<AffinityEntry> {
        let probe = self.probe(flow_hash);
        self.remove_probed(key, &probe, now)
    }

    fn remove_probed(&mut self, key: &FlowKey, probe: &Probe, now: u32) -> Option<AffinityEntry> {
        let entry = self.find(probe, key)?;
        let last_seen = *self.last_seen(entry);
        *self.tag(entry) = EMPTY_TAG;
        self.len -= 1;
        if self.expired(now, last_seen) {
            self.counters.expirations += 1;
            return None;
        }
        Some(AffinityEntry {
            member: self.slots[entry].member,
            last_seen,
        })
    }

    /// The member for a packet of flow `key`, applying the stickiness rules of the module
    /// documentation:
    ///
    /// * pinned to an `Active` or `Draining` member (per `state_of`): stay there, whatever
    ///   `pick` would say now (a new member never steals an established flow);
    /// * pinned to a `Gone` member: `pick` again and re-pin;
    /// * not pinned (or expired): `pick` and pin.
    ///
    /// `pick` must offer only members that accept new flows (the snapshot's Maglev table,
    /// which gives draining members weight 0). When it offers none, a stale pin is removed
    /// and the packet has [`Resolution::NoMember`]. Per-packet path: no allocation.
    #[inline]
    pub fn resolve(
        &mut self,
        key: &FlowKey,
        flow_hash: u64,
        now: u32,
        state_of: impl FnMut(MemberRef) -> MemberState,
        pick: impl FnMut() -> Option<MemberRef>,
    ) -> Resolution {
        let probe = self.probe(flow_hash);
        self.resolve_probed(key, &probe, now, state_of, pick)
    }

    /// [`AffinityTable::resolve`] with the probe already computed (and its lines perhaps
    /// prefetched). `probe` must come from [`AffinityTable::probe`] of `key`'s hash on
    /// this table.
    #[inline]
    pub fn resolve_probed(
        &mut self,
        key: &FlowKey,
        probe: &Probe,
        now: u32,
        mut state_of: impl FnMut(MemberRef) -> MemberState,
        mut pick: impl FnMut() -> Option<MemberRef>,
    ) -> Resolution {
        match self.lookup_probed(key, probe, now) {
            Some(entry) => match state_of(entry.member) {
                MemberState::Active | MemberState::Draining => Resolution::Sticky(entry.member),
                MemberState::Gone => self.repin_probed(key, probe, now, entry.member, pick()),
            },
            None => self.pin_new_probed(key, probe, now, pick()),
        }
    }

    /// The rest of [`AffinityTable::resolve_probed`] after [`AffinityTable::lookup_probed`]
    /// found `key` pinned to `previous`, a member that is gone: re-pin it to `member`, the
    /// pick, or remove the pin when there is none.
    #[inline]
    pub fn repin_probed(
        &mut self,
        key: &FlowKey,
        probe: &Probe,
        now: u32,
        previous: MemberRef,
        member: Option<MemberRef>,
    ) -> Resolution {
        match member {
            Some(member) => {
                self.insert_probed(key, probe, member, now);
                Resolution::Repinned { previous, member }
            }
            None => {
                self.remove_probed(key, probe, now);
                Resolution::NoMember
            }
        }
    }

    /// The rest of [`AffinityTable::resolve_probed`] after [`AffinityTable::lookup_probed`]
    /// found no live pin for `key`: pin it to `member`, the pick, if there is one.
    #[inline]
    pub fn pin_new_probed(
        &mut self,
        key: &FlowKey,
        probe: &Probe,
        now: u32,
        member: Option<MemberRef>,
    ) -> Resolution {
        match member {
            Some(member) => {
                // The lookup just missed (or reclaimed an expired entry): the key is
                // absent, so skip the second search.
                self.insert_absent(key, probe, member, now);
                Resolution::New(member)
            }
            None => Resolution::NoMember,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::maglev::{MaglevMember, MaglevTable, DEFAULT_TABLE_SIZE};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn addr(n: u32) -> [u8; 16] {
        let mut a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        a[12..].copy_from_slice(&n.to_be_bytes());
        a
    }

    const SERVICE: u32 = 0xffff;

    fn key(client: u32) -> FlowKey {
        FlowKey::client_pair(addr(client), addr(SERVICE))
    }

    fn m(id: u32) -> MemberRef {
        MemberRef { id, epoch: 1 }
    }

    #[test]
    fn bytes_per_entry() {
        println!(
            "affinity: {} bytes per entry (slot {} + metadata {}/{WAYS}), {} KiB per 64Ki entries",
            AffinityTable::BYTES_PER_ENTRY,
            size_of::<Slot>(),
            size_of::<BucketMeta>(),
            AffinityTable::BYTES_PER_ENTRY * 65_536 / 1024
        );
        assert_eq!(size_of::<BucketMeta>(), 64);
        assert_eq!(std::mem::align_of::<BucketMeta>(), 64);
        assert_eq!(size_of::<Slot>(), 64);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        assert_eq!(AffinityTable::BYTES_PER_ENTRY, 72);
    }

    #[test]
    fn transport_tails_and_client_flow_hashes() {
        let mut labels = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            let (client, service) = (addr(i % 7), addr(SERVICE));
            let (cport, sport, protocol) = (i as u16, (i >> 3) as u16 ^ 443, (i % 256) as u8);
            let five = FlowKey::five_tuple(client, cport, service, sport, protocol);
            let [c0, c1] = cport.to_be_bytes();
            let [s0, s1] = sport.to_be_bytes();
            let tail = FlowKey::transport_tail([c0, c1, s0, s1], protocol);
            assert_eq!(tail[..], five.to_bytes()[32..]);
            assert_eq!(FlowKey::five_tuple_of_tail(client, service, tail), five);
            if i % 7 == 0 {
                // One client pair, 1429 transport flows: their labels spread like random
                // 20-bit values (about one collision expected).
                let pair_hash = FlowKey::client_pair(client, service).software_hash();
                labels.insert(crate::dataplane::flowhash::flow_label(
                    FlowKey::client_flow_hash(pair_hash, tail),
                ));
            }
        }
        assert!(
            labels.len() >= 1420,
            "{} distinct labels of 1429",
            labels.len()
        );
    }

    #[test]
    fn keys_of_different_kinds_never_collide() {
        let pair = FlowKey::client_pair(addr(1), addr(2));
        let tuple = FlowKey::five_tuple(addr(1), 0, addr(2), 0, 0);
        assert_ne!(pair, tuple);
        let tuple2 = FlowKey::five_tuple(addr(1), 0, addr(2), 0, 6);
        assert_ne!(tuple, tuple2);
        assert_ne!(
            FlowKey::five_tuple(addr(1), 1, addr(2), 2, 6),
            FlowKey::five_tuple(addr(1), 2, addr(2), 1, 6)
        );
        assert_eq!(
            pair.software_hash(),
            FlowKey::client_pair(addr(1), addr(2)).software_hash()
        );
        assert_ne!(pair.software_hash(), tuple.software_hash());
    }

    /// The hash chooses Maglev slots, so it must not change between versions (appliances
    /// of different versions behind one ECMP group must agree). Values computed over the
    /// 40-byte layout read as little-endian words, the definition before keys were words.
    #[test]
    fn hash_and_layout_are_stable() {
        let client: [u8; 16] = "2001:db8:77::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let service: [u8; 16] = "2001:db8:100::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let pair = FlowKey::client_pair(client, service);
        let tuple = FlowKey::five_tuple(client, 40000, service, 9999, 17);
        assert_eq!(pair.software_hash(), 0xb3d1_dadf_4933_6aa3);
        assert_eq!(tuple.software_hash(), 0xf88c_c1b2_d966_9344);
        let bytes = tuple.to_bytes();
        assert_eq!(&bytes[..16], &client);
        assert_eq!(&bytes[16..32], &service);
        assert_eq!(
            &bytes[32..],
            &[0x9c, 0x40, 0x27, 0x0f, 17, KIND_FIVE_TUPLE, 0, 0]
        );
        assert_eq!(
            pair.to_bytes()[32..],
            [0, 0, 0, 0, 0, KIND_CLIENT_PAIR, 0, 0]
        );
    }

    /// The bulk path (probe, prefetches, resolve_probed) decides exactly as `resolve`.
    #[test]
    fn probed_resolution_matches_resolve() {
        let mut bulk = AffinityTable::new(256, 10).unwrap();
        let mut single = AffinityTable::new(256, 10).unwrap();
        for round in 0..4u32 {
            for client in 0..400u32 {
                let k = key(client);
                let h = k.software_hash();
                let pick = || Some(m(client % 7));
                let state = |r: MemberRef| {
                    if r.id == round {
                        MemberState::Gone
                    } else {
                        MemberState::Active
                    }
                };
                let mut probe = bulk.probe(h);
                bulk.prefetch_buckets(&probe);
                bulk.prefetch_slot(&mut probe);
                let now = round * 4 + client / 200;
                assert_eq!(
                    bulk.resolve_probed(&k, &probe, now, state, pick),
                    single.resolve(&k, h, now, state, pick)
                );
            }
        }
        assert_eq!(bulk.counters(), single.counters());
        assert_eq!(bulk.len(), single.len());
    }

    #[test]
    fn capacity_is_rounded_to_a_power_of_two() {
        assert_eq!(AffinityTable::new(1, 10).unwrap().capacity(), WAYS);
        assert_eq!(AffinityTable::new(1000, 10).unwrap().capacity(), 1024);
        assert_eq!(AffinityTable::new(1024, 10).unwrap().capacity(), 1024);
        assert_eq!(
            AffinityTable::new(0, 10).unwrap_err(),
            AffinityError::Capacity(0)
        );
        assert!(AffinityTable::new(MAX_CAPACITY + 1, 10).is_err());
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = AffinityTable::new(64, 100).unwrap();
        let k = key(1);
        let h = k.software_hash();
        assert_eq!(t.lookup(&k, h, 0), None);
        assert_eq!(t.insert(&k, h, m(7), 10), InsertOutcome::Inserted);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup(&k, h, 20),
            Some(AffinityEntry {
                member: m(7),
                last_seen: 10
            })
        );
        assert_eq!(
            t.lookup(&k, h, 30),
            Some(AffinityEntry {
                member: m(7),
                last_seen: 20
            })
        );
        assert_eq!(t.insert(&k, h, m(8), 40), InsertOutcome::Updated);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.remove(&k, h, 50),
            Some(AffinityEntry {
                member: m(8),
                last_seen: 40
            })
        );
        assert_eq!(t.remove(&k, h, 50), None);
        assert!(t.is_empty());
        let c = t.counters();
        assert_eq!((c.hits, c.misses, c.inserts, c.updates), (2, 1, 1, 1));
    }

    #[test]
    fn idle_entries_expire_lazily() {
        let mut t = AffinityTable::new(64, 100).unwrap();
        let k = key(1);
        let h = k.software_hash();
        t.insert(&k, h, m(1), 1000);
        // Exactly the timeout is still live; one tick more is not.
        assert!(t.lookup(&k, h, 1100).is_some());
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&k, h, 1201), None);
        assert_eq!(t.len(), 0);
        assert_eq!(t.counters().expirations, 1);
        assert_eq!(t.counters().misses, 1);
    }

    #[test]
    fn ages_survive_tick_counter_wrap() {
        let mut t = AffinityTable::new(64, 100).unwrap();
        let k = key(1);
        let h = k.software_hash();
        t.insert(&k, h, m(1), u32::MAX - 10);
        assert!(
            t.lookup(&k, h, 50).is_some(),
            "61 ticks across the wrap is not idle"
        );
        assert_eq!(t.lookup(&k, h, 151), None);
    }

    /// A flow hash whose two candidate buckets differ in `table`.
    fn two_bucket_hash(table: &AffinityTable) -> u64 {
        (1u64..)
            .find(|&h| {
                let ([a, b], _) = table.locate(h);
                a != b
            })
            .unwrap()
    }

    /// All keys share one flow hash, so they compete for its two buckets (16 ways).
    #[test]
    fn full_candidate_buckets_evict_the_least_recently_seen() {
        let mut t = AffinityTable::new(64, 1000).unwrap();
        let h = two_bucket_hash(&t);
        let ways = 2 * WAYS as u32;
        for i in 0..ways {
            assert_eq!(t.insert(&key(i), h, m(i), i), InsertOutcome::Inserted);
        }
        // Both buckets were filled evenly.
        let ([a, b], _) = t.locate(h);
        assert!(t.meta[a]
            .tags
            .iter()
            .chain(&t.meta[b].tags)
            .all(|&tag| tag != EMPTY_TAG));
        // Touch key 0: now key 1 is the least recently seen.
        assert!(t.lookup(&key(0), h, 100).is_some());
        assert_eq!(t.insert(&key(100), h, m(100), 101), InsertOutcome::Evicted);
        assert_eq!(t.lookup(&key(1), h, 102), None, "LRU victim");
        for i in (0..ways).filter(|&i| i != 1).chain([100]) {
            assert!(t.lookup(&key(i), h, 103).is_some(), "key {i} kept");
        }
        assert_eq!(t.len(), 2 * WAYS);
        assert_eq!(t.counters().evictions, 1);
    }

    #[test]
    fn inserts_fill_the_first_bucket_then_the_second() {
        let mut t = AffinityTable::new(64, 1000).unwrap();
        let h = two_bucket_hash(&t);
        let ([a, b], _) = t.locate(h);
        let occupied = |t: &AffinityTable, bucket: usize| {
            t.meta[bucket]
                .tags
                .iter()
                .filter(|&&tag| tag != EMPTY_TAG)
                .count()
        };
        for i in 0..5u32 {
            t.insert(&key(i), h, m(i), 0);
        }
        assert_eq!((occupied(&t, a), occupied(&t, b)), (5, 0));
        for i in 5..10u32 {
            t.insert(&key(i), h, m(i), 0);
        }
        assert_eq!((occupied(&t, a), occupied(&t, b)), (8, 2));
        // Every key is found, with or without the burst's prefetches.
        for i in 0..10u32 {
            let mut probe = t.probe(h);
            t.prefetch_buckets(&probe);
            t.prefetch_slot(&mut probe);
            assert_eq!(t.lookup(&key(i), h, 1).map(|e| e.member), Some(m(i)));
        }
        // All ten share the tag, so one hint (the first matching way: key 0's) serves
        // them all: right for key 0, and a key mismatch, then the scan, for the others.
        let mut hinted = t.probe(h);
        t.prefetch_slot(&mut hinted);
        assert_eq!(hinted.hint, (a * WAYS) as u32);
        for i in 0..10u32 {
            let found = t.lookup_probed(&key(i), &hinted, 2).map(|e| e.member);
            assert_eq!(found, Some(m(i)), "key {i}");
        }
        // A stale hint: key 0's way now holds key 10 under the same tag.
        assert!(t.remove(&key(0), h, 3).is_some());
        t.insert(&key(10), h, m(10), 3);
        assert_eq!(t.lookup_probed(&key(0), &hinted, 3), None);
        let found = t.lookup_probed(&key(10), &hinted, 3).map(|e| e.member);
        assert_eq!(found, Some(m(10)));
        // A hint from another table, out of this one's range, is ignored.
        let mut foreign = hinted;
        foreign.hint = u32::MAX - 1;
        assert_eq!(
            t.lookup_probed(&key(5), &foreign, 3).map(|e| e.member),
            Some(m(5))
        );
    }

    /// A full pair of buckets makes room by moving an entry to its own other bucket
    /// before it evicts anything.
    #[test]
    fn full_buckets_relocate_before_they_evict() {
        let mut t = AffinityTable::new(256, 1000).unwrap();
        let h1 = two_bucket_hash(&t);
        let ([a, b], _) = t.locate(h1);
        // Another hash whose first bucket is also `a` but whose second is a third one.
        let h2 = (h1 + 1..)
            .find(|&h| {
                let ([x, y], _) = t.locate(h);
                x == a && y != a && y != b
            })
            .unwrap();
        let c = t.locate(h2).0[1];
        for i in 0..8u32 {
            t.insert(&key(100 + i), h2, m(100 + i), 0);
        }
        for i in 0..9u32 {
            t.insert(&key(i), h1, m(i), 0);
        }
        assert_eq!(t.counters().evictions, 0);
        assert_eq!(t.counters().relocations, 1);
        assert_eq!(t.len(), 17);
        let tags = |bucket: usize| t.meta[bucket].tags.iter().filter(|&&g| g != 0).count();
        assert_eq!((tags(a), tags(b), tags(c)), (8, 8, 1));
        for i in 0..9u32 {
            assert_eq!(t.lookup(&key(i), h1, 1).map(|e| e.member), Some(m(i)));
        }
        for i in 100..108u32 {
            assert_eq!(t.lookup(&key(i), h2, 1).map(|e| e.member), Some(m(i)));
        }
    }

    #[test]
    fn full_candidate_buckets_prefer_an_expired_victim() {
        let mut t = AffinityTable::new(64, 100).unwrap();
        let h = two_bucket_hash(&t);
        let ways = 2 * WAYS as u32;
        for i in 0..ways {
            t.insert(&key(i), h, m(i), 1000);
        }
        // Every key but 11 is seen again at 1090; at 1150 only key 11 is idle (age 150).
        for i in (0..ways).filter(|&i| i != 11) {
            t.lookup(&key(i), h, 1090);
        }
        assert_eq!(
            t.insert(&key(50), h, m(50), 1150),
            InsertOutcome::ReplacedExpired
        );
        assert_eq!(t.lookup(&key(11), h, 1150), None);
        assert_eq!(t.counters().evictions, 0);
        assert_eq!(t.counters().expirations, 1);
        assert_eq!(t.len(), 2 * WAYS);
    }

    #[test]
    fn overfull_table_keeps_probe_bound_and_capacity() {
        let capacity = 1024;
        let mut t = AffinityTable::new(capacity, u32::MAX).unwrap();
        let flows = 4 * capacity as u32;
        for i in 0..flows {
            let k = key(i);
            let h = k.software_hash();
            t.insert(&k, h, m(i), i);
            // The newest pin is always retrievable, whatever the pressure.
            assert_eq!(t.lookup(&k, h, i).map(|e| e.member), Some(m(i)));
            assert!(t.len() <= capacity);
        }
        let c = *t.counters();
        assert_eq!(c.inserts, u64::from(flows));
        assert_eq!(t.len(), capacity, "every way ends up occupied");
        assert_eq!(c.evictions, u64::from(flows) - capacity as u64);
        // The survivors are mostly the recent flows: LRU over two buckets approximates LRU.
        let recent = (flows - capacity as u32..flows)
            .filter(|&i| {
                let k = key(i);
                t.lookup(&k, k.software_hash(), flows).is_some()
            })
            .count();
        assert!(
            recent > capacity * 6 / 10,
            "only {recent} of the last {capacity} flows kept"
        );
    }

    /// Premature evictions (a bucket full while the table is not) by load factor; printed
    /// for capacity planning.
    #[test]
    fn premature_evictions_by_load_factor() {
        let capacity = 1 << 16;
        for percent in [38usize, 50, 75, 80, 85, 90, 100] {
            let mut t = AffinityTable::new(capacity, u32::MAX).unwrap();
            let flows = capacity * percent / 100;
            for i in 0..flows as u32 {
                let k = key(i);
                t.insert(&k, k.software_hash(), m(i), 0);
            }
            let evicted = t.counters().evictions as f64 / flows as f64;
            // Keys a lookup finds only in their second bucket (one more metadata line).
            let second = (0..flows as u32)
                .filter(|&i| {
                    let k = key(i);
                    let mut probe = t.probe(k.software_hash());
                    probe.buckets[1] = probe.buckets[0];
                    t.find(&probe, &k).is_none()
                })
                .count() as f64
                / flows as f64;
            println!(
                "affinity: load {percent}%: {:.3}% of flows evicted early, {:.2}% in their second bucket, {} relocations",
                evicted * 100.0,
                second * 100.0,
                t.counters().relocations
            );
            if percent <= 85 {
                assert!(evicted == 0.0, "load {percent}%: {evicted}");
            }
            if percent <= 90 {
                assert!(evicted < 0.001, "load {percent}%: {evicted}");
            }
            if percent <= 50 {
                assert!(
                    second < 0.02,
                    "load {percent}%: {second} in the second bucket"
                );
            }
        }
    }

    #[test]
    fn tags_separate_distinct_keys_with_the_same_hash() {
        let mut t = AffinityTable::new(8, 100).unwrap();
        t.insert(&key(1), 5, m(1), 0);
        t.insert(&key(2), 5, m(2), 0);
        assert_eq!(t.lookup(&key(1), 5, 1).unwrap().member, m(1));
        assert_eq!(t.lookup(&key(2), 5, 1).unwrap().member, m(2));
        assert_eq!(t.lookup(&key(3), 5, 1), None);
    }

    /// The control plane's view in these tests: stable ids, names, weights and states.
    struct Service {
        members: Vec<(MemberRef, Vec<u8>, MemberState)>,
        maglev: MaglevTable,
    }

    impl Service {
        fn new(members: Vec<(MemberRef, Vec<u8>, MemberState)>) -> Self {
            let maglev = Self::build(&members);
            Self { members, maglev }
        }

        fn build(members: &[(MemberRef, Vec<u8>, MemberState)]) -> MaglevTable {
            let input: Vec<MaglevMember<'_>> = members
                .iter()
                .map(|(_, name, state)| MaglevMember {
                    name,
                    weight: u32::from(*state == MemberState::Active),
                })
                .collect();
            MaglevTable::build(&input, DEFAULT_TABLE_SIZE).unwrap()
        }

        fn set(&mut self, id: u32, state: MemberState) {
            for member in &mut self.members {
                if member.0.id == id {
                    member.2 = state;
                }
            }
            self.maglev = Self::build(&self.members);
        }

        fn add(&mut self, member: MemberRef) {
            self.members.push((
                member,
                format!("m{}", member.id).into_bytes(),
                MemberState::Active,
            ));
            self.maglev = Self::build(&self.members);
        }

        fn state_of(&self, member: MemberRef) -> MemberState {
            self.members
                .iter()
                .find(|(r, _, _)| *r == member)
                .map_or(MemberState::Gone, |(_, _, s)| *s)
        }

        fn resolve(&self, table: &mut AffinityTable, client: u32, now: u32) -> Resolution {
            let k = key(client);
            let h = k.software_hash();
            table.resolve(
                &k,
                h,
                now,
                |r| self.state_of(r),
                || self.maglev.lookup(h).map(|i| self.members[i.get()].0),
            )
        }
    }

    fn member_of(r: Resolution) -> MemberRef {
        match r {
            Resolution::Sticky(m) | Resolution::New(m) | Resolution::Repinned { member: m, .. } => {
                m
            }
            Resolution::NoMember => panic!("no member"),
        }
    }

    #[test]
    fn stickiness_across_member_set_changes() {
        let mut svc = Service::new(
            (1..=3)
                .map(|i| (m(i), format!("m{i}").into_bytes(), MemberState::Active))
                .collect(),
        );
        // Sized well above the ~3000 flows of the test so that no bucket overflows.
        let mut table = AffinityTable::new(65_536, 300).unwrap();
        let clients = 0..1000u32;
        let pinned: HashMap<u32, MemberRef> = clients
            .clone()
            .map(|c| match svc.resolve(&mut table, c, 0) {
                Resolution::New(m) => (c, m),
                other => panic!("first packet gave {other:?}"),
            })
            .collect();

        // A new member never steals established flows, though Maglev now sends ~1/4 of
        // these hashes to it.
        svc.add(m(4));
        let would_move = clients.clone().filter(|&c| {
            let h = key(c).software_hash();
            svc.members[svc.maglev.lookup(h).unwrap().get()].0 != pinned[&c]
        });
        assert!(would_move.count() > 150);
        for c in clients.clone() {
            assert_eq!(
                svc.resolve(&mut table, c, 10),
                Resolution::Sticky(pinned[&c])
            );
        }
        // New flows do reach the new member.
        let new_on_4 = (5000..6000)
            .filter(|&c| svc.resolve(&mut table, c, 10) == Resolution::New(m(4)))
            .count();
        assert!(new_on_4 > 150, "{new_on_4}");

        // A draining member keeps its flows but takes no new ones.
        svc.set(2, MemberState::Draining);
        for c in clients.clone() {
            assert_eq!(
                svc.resolve(&mut table, c, 20),
                Resolution::Sticky(pinned[&c])
            );
        }
        assert!((7000..8000).all(|c| member_of(svc.resolve(&mut table, c, 20)) != m(2)));

        // A dead member's flows are re-picked among the active members; others stay.
        svc.set(1, MemberState::Gone);
        for c in clients.clone() {
            match svc.resolve(&mut table, c, 30) {
                Resolution::Sticky(kept) => assert!(pinned[&c] == kept && kept.id != 1),
                Resolution::Repinned { previous, member } => {
                    assert_eq!(previous, pinned[&c]);
                    assert_eq!(previous.id, 1);
                    assert!(member.id == 3 || member.id == 4, "{member:?}");
                }
                other => panic!("{other:?}"),
            }
            // After re-pinning, the flow is sticky to its new member.
            assert!(matches!(
                svc.resolve(&mut table, c, 31),
                Resolution::Sticky(_)
            ));
        }
    }

    #[test]
    fn a_reincarnated_member_does_not_inherit_old_pins() {
        let mut svc = Service::new(vec![(m(1), b"a".to_vec(), MemberState::Active)]);
        let mut table = AffinityTable::new(64, 300).unwrap();
        assert_eq!(svc.resolve(&mut table, 1, 0), Resolution::New(m(1)));
        // Member 1 dies and re-registers with a new epoch.
        let reborn = MemberRef { id: 1, epoch: 2 };
        svc.members[0].0 = reborn;
        svc.maglev = Service::build(&svc.members);
        assert_eq!(
            svc.resolve(&mut table, 1, 1),
            Resolution::Repinned {
                previous: m(1),
                member: reborn
            }
        );
    }

    #[test]
    fn no_member_left_removes_the_stale_pin() {
        let mut svc = Service::new(vec![(m(1), b"a".to_vec(), MemberState::Active)]);
        let mut table = AffinityTable::new(64, 300).unwrap();
        assert_eq!(svc.resolve(&mut table, 1, 0), Resolution::New(m(1)));
        svc.set(1, MemberState::Gone);
        assert_eq!(svc.resolve(&mut table, 1, 1), Resolution::NoMember);
        assert!(table.is_empty());
        assert_eq!(svc.resolve(&mut table, 2, 1), Resolution::NoMember);
    }

    #[test]
    fn idle_flow_is_re_picked_after_timeout() {
        let mut svc = Service::new(vec![(m(1), b"a".to_vec(), MemberState::Active)]);
        let mut table = AffinityTable::new(64, 300).unwrap();
        assert_eq!(svc.resolve(&mut table, 1, 0), Resolution::New(m(1)));
        svc.add(m(2));
        svc.set(1, MemberState::Draining);
        assert_eq!(svc.resolve(&mut table, 1, 300), Resolution::Sticky(m(1)));
        // Idle past the timeout: a new flow as far as the table is concerned.
        assert_eq!(svc.resolve(&mut table, 1, 601), Resolution::New(m(2)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Lookup(u8),
        Remove(u8),
        Advance(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..WAYS as u8, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0..WAYS as u8).prop_map(Op::Lookup),
            (0..WAYS as u8).prop_map(Op::Remove),
            (0..80u32).prop_map(Op::Advance),
        ]
    }

    proptest! {
        /// Against a `HashMap` model with the same expiry rule. At most `WAYS` distinct keys,
        /// so even keys that share a bucket never force an eviction: behaviour must match
        /// exactly. A small capacity and a forced hash collision mode exercise both one and
        /// several buckets.
        #[test]
        fn matches_a_hashmap_model(ops in proptest::collection::vec(op(), 1..200), collide in any::<bool>()) {
            const TIMEOUT: u32 = 100;
            let mut table = AffinityTable::new(16, TIMEOUT).unwrap();
            let mut model: HashMap<u8, (MemberRef, u32)> = HashMap::new();
            let mut now = 0u32;
            let hash = |k: u8| if collide { 7 } else { key(u32::from(k)).software_hash() };
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let outcome = table.insert(&key(u32::from(k)), hash(k), m(v), now);
                        prop_assert_ne!(outcome, InsertOutcome::Evicted);
                        model.insert(k, (m(v), now));
                    }
                    Op::Lookup(k) => {
                        let got = table.lookup(&key(u32::from(k)), hash(k), now);
                        let want = match model.get(&k).copied() {
                            Some((member, seen)) if now - seen <= TIMEOUT => {
                                model.insert(k, (member, now));
                                Some(AffinityEntry { member, last_seen: seen })
                            }
                            _ => {
                                model.remove(&k);
                                None
                            }
                        };
                        prop_assert_eq!(got, want);
                    }
                    Op::Remove(k) => {
                        let got = table.remove(&key(u32::from(k)), hash(k), now);
                        let want = model
                            .remove(&k)
                            .filter(|&(_, seen)| now - seen <= TIMEOUT)
                            .map(|(member, last_seen)| AffinityEntry { member, last_seen });
                        prop_assert_eq!(got, want);
                    }
                    Op::Advance(dt) => now += dt,
                }
                // Expired entries linger in both until touched, so the counts agree exactly.
                prop_assert_eq!(table.len(), model.len());
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // The insert policy (first bucket first, one relocation step) under
    // heavy collisions, against a model that allows exactly the losses the table reports.
    // ---------------------------------------------------------------------------------

    #[derive(Debug, Clone)]
    enum PolicyOp {
        Insert(u8, u32),
        Lookup(u8),
        Remove(u8),
        Resolve(u8, u32, bool),
        Advance(u32),
    }

    fn policy_op(keys: u8) -> impl Strategy<Value = PolicyOp> {
        prop_oneof![
            4 => (0..keys, any::<u32>()).prop_map(|(k, v)| PolicyOp::Insert(k, v)),
            2 => (0..keys).prop_map(PolicyOp::Lookup),
            1 => (0..keys).prop_map(PolicyOp::Remove),
            2 => (0..keys, any::<u32>(), any::<bool>())
                .prop_map(|(k, v, some)| PolicyOp::Resolve(k, v, some)),
            1 => (0..60u32).prop_map(PolicyOp::Advance),
        ]
    }

    /// Every occupied way: key -> (member, last seen, entry index).
    fn contents(t: &AffinityTable) -> HashMap<FlowKey, (MemberRef, u32, usize)> {
        let mut out = HashMap::new();
        for (bucket, meta) in t.meta.iter().enumerate() {
            for way in 0..WAYS {
                if meta.tags[way] == EMPTY_TAG {
                    continue;
                }
                let entry = bucket * WAYS + way;
                let slot = t.slots[entry];
                let previous = out.insert(slot.key, (slot.member, meta.last_seen[way], entry));
                assert!(previous.is_none(), "{:?} held twice", slot.key);
            }
        }
        out
    }

    /// Whether an insert of a new key with these candidate buckets finds room without
    /// evicting a live entry: an empty way, an expired entry, or an entry of either bucket
    /// whose other bucket has an empty way.
    fn has_room(t: &AffinityTable, buckets: [usize; 2], now: u32) -> bool {
        buckets.iter().any(|&b| {
            (0..WAYS).any(|w| {
                let tag = t.meta[b].tags[w];
                if tag == EMPTY_TAG || t.expired(now, t.meta[b].last_seen[w]) {
                    return true;
                }
                let other = t.alternate(b, tag);
                other != b && t.meta[other].tags.contains(&EMPTY_TAG)
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Heavy collisions (few distinct hashes, several buckets, more keys than ways):
        /// after every operation the table holds exactly the model's entries, except the one
        /// an insert reports it evicted (live) or reclaimed (expired); each entry sits in
        /// one of its key's candidate buckets under its key's tag; `len` counts the occupied
        /// ways; an entry moves only by a counted relocation and keeps its member and
        /// last-seen time; nothing live is evicted while a relocation would make room; and
        /// every counter matches the model's count.
        #[test]
        fn insert_policy_matches_a_lossy_model(
            capacity in prop_oneof![Just(16usize), Just(32), Just(64)],
            classes in 1u64..8,
            collide in any::<bool>(),
            keys in 9u8..48,
            ops in proptest::collection::vec(policy_op(48), 1..300),
        ) {
            const TIMEOUT: u32 = 100;
            let mut t = AffinityTable::new(capacity, TIMEOUT).unwrap();
            let hash = |k: u8| {
                let k = u32::from(k % keys);
                if collide {
                    (u64::from(k) % classes).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x55
                } else {
                    key(k).software_hash()
                }
            };
            let fk = |k: u8| key(u32::from(k % keys));
            let mut model: HashMap<FlowKey, (MemberRef, u32)> = HashMap::new();
            let mut want = AffinityCounters::default();
            let mut now = 1000u32;
            let live = |seen: u32, now: u32| now.wrapping_sub(seen) <= TIMEOUT;
            for op in ops {
                let op_key = op.clone();
                let before = contents(&t);
                let relocations_before = t.counters().relocations;
                // Which key an insert of a new key may displace, and whether it may evict.
                let mut new_key_room: Option<bool> = None;
                match op {
                    PolicyOp::Insert(k, v) => {
                        let (key, h) = (fk(k), hash(k));
                        let present = model.contains_key(&key);
                        if !present {
                            new_key_room = Some(has_room(&t, t.probe(h).buckets, now));
                        }
                        let outcome = t.insert(&key, h, m(v), now);
                        if present {
                            prop_assert_eq!(outcome, InsertOutcome::Updated);
                            want.updates += 1;
                        } else {
                            prop_assert_ne!(outcome, InsertOutcome::Updated);
                            want.inserts += 1;
                        }
                        match outcome {
                            InsertOutcome::Evicted => {
                                prop_assert_eq!(new_key_room, Some(false), "evicted with room");
                                want.evictions += 1;
                            }
                            InsertOutcome::ReplacedExpired => want.expirations += 1,
                            _ => {}
                        }
                        model.insert(key, (m(v), now));
                        let after = contents(&t);
                        let lost: Vec<FlowKey> =
                            model.keys().filter(|k| !after.contains_key(k)).copied().collect();
                        match outcome {
                            InsertOutcome::Evicted | InsertOutcome::ReplacedExpired => {
                                prop_assert_eq!(lost.len(), 1, "{:?}", outcome);
                                let (_, seen) = model.remove(&lost[0]).unwrap();
                                prop_assert_eq!(
                                    live(seen, now),
                                    outcome == InsertOutcome::Evicted
                                );
                                prop_assert_ne!(lost[0], key);
                            }
                            _ => prop_assert!(lost.is_empty(), "{:?} lost {:?}", outcome, lost),
                        }
                    }
                    PolicyOp::Lookup(k) => {
                        let (key, h) = (fk(k), hash(k));
                        let got = t.lookup(&key, h, now);
                        let expect = match model.get(&key).copied() {
                            Some((member, seen)) if live(seen, now) => {
                                model.insert(key, (member, now));
                                want.hits += 1;
                                Some(AffinityEntry { member, last_seen: seen })
                            }
                            Some(_) => {
                                model.remove(&key);
                                want.misses += 1;
                                want.expirations += 1;
                                None
                            }
                            None => {
                                want.misses += 1;
                                None
                            }
                        };
                        prop_assert_eq!(got, expect);
                    }
                    PolicyOp::Remove(k) => {
                        let (key, h) = (fk(k), hash(k));
                        let got = t.remove(&key, h, now);
                        let expect = match model.remove(&key) {
                            Some((member, seen)) if live(seen, now) => {
                                Some(AffinityEntry { member, last_seen: seen })
                            }
                            Some(_) => {
                                want.expirations += 1;
                                None
                            }
                            None => None,
                        };
                        prop_assert_eq!(got, expect);
                    }
                    PolicyOp::Resolve(k, v, some) => {
                        let (key, h) = (fk(k), hash(k));
                        // Odd member ids are gone, even ones active.
                        let state = |r: MemberRef| {
                            if r.id % 2 == 1 { MemberState::Gone } else { MemberState::Active }
                        };
                        let pick = m(v & !1);
                        let pinned = model.get(&key).copied().filter(|&(_, seen)| live(seen, now));
                        if pinned.is_none() && some {
                            new_key_room = Some(has_room(&t, t.probe(h).buckets, now));
                        }
                        if model.contains_key(&key) && pinned.is_none() {
                            // Expired: the lookup reclaims it.
                            model.remove(&key);
                            want.expirations += 1;
                        }
                        let got = t.resolve(&key, h, now, state, || some.then_some(pick));
                        let expect = match pinned {
                            Some((member, _)) if state(member) == MemberState::Active => {
                                want.hits += 1;
                                model.insert(key, (member, now));
                                Resolution::Sticky(member)
                            }
                            Some((previous, _)) => {
                                want.hits += 1;
                                if some {
                                    want.updates += 1;
                                    model.insert(key, (pick, now));
                                    Resolution::Repinned { previous, member: pick }
                                } else {
                                    model.remove(&key);
                                    Resolution::NoMember
                                }
                            }
                            None => {
                                want.misses += 1;
                                if some {
                                    want.inserts += 1;
                                    model.insert(key, (pick, now));
                                    Resolution::New(pick)
                                } else {
                                    Resolution::NoMember
                                }
                            }
                        };
                        prop_assert_eq!(got, expect);
                        // An insert of the new pin may have taken one other entry's way.
                        let after = contents(&t);
                        let lost: Vec<FlowKey> =
                            model.keys().filter(|k| !after.contains_key(k)).copied().collect();
                        prop_assert!(lost.len() <= 1, "{:?}", lost);
                        for k in &lost {
                            prop_assert_ne!(*k, key);
                            let (_, seen) = model.remove(k).unwrap();
                            if live(seen, now) {
                                prop_assert_eq!(new_key_room, Some(false), "evicted with room");
                                want.evictions += 1;
                            } else {
                                want.expirations += 1;
                            }
                        }
                    }
                    PolicyOp::Advance(dt) => now = now.wrapping_add(dt),
                }
                let after = contents(&t);
                prop_assert_eq!(t.len(), after.len());
                for (key, &(member, seen, entry)) in &after {
                    let got = model.get(key).copied();
                    prop_assert_eq!(got, Some((member, seen)), "{:?}", key);
                    let probe = t.probe(hash(
                        (0..keys).find(|&k| fk(k) == *key).unwrap(),
                    ));
                    prop_assert!(probe.buckets.contains(&(entry / WAYS)));
                    prop_assert_eq!(t.meta[entry / WAYS].tags[entry % WAYS], probe.tag);
                }
                prop_assert_eq!(after.len(), model.len());
                // The key operated on may be reclaimed and re-inserted elsewhere; any other
                // key moves only by relocation.
                let operated = match op_key {
                    PolicyOp::Insert(k, _)
                    | PolicyOp::Lookup(k)
                    | PolicyOp::Remove(k)
                    | PolicyOp::Resolve(k, _, _) => Some(fk(k)),
                    PolicyOp::Advance(_) => None,
                };
                let moved = before
                    .iter()
                    .filter(|(k, _)| Some(**k) != operated)
                    .filter(|(k, &(_, _, e))| after.get(k).is_some_and(|&(_, _, f)| f != e))
                    .count() as u64;
                let relocated = t.counters().relocations - relocations_before;
                prop_assert!(relocated <= 1);
                prop_assert_eq!(moved, relocated);
                want.relocations = t.counters().relocations;
                prop_assert_eq!(*t.counters(), want);
            }
        }
    }
}
