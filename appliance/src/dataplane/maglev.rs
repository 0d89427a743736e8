//! Maglev consistent hashing: the member choice for a new flow.
//!
//! Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016,
//! §3.4 "Consistent Hashing". Every member owns a permutation of the `M` table slots, given by
//! an `offset` and a `skip` derived from two independent hashes of its name:
//! `permutation[j] = (offset + j * skip) mod M`. Members take turns; on its turn a member
//! claims the next slot of its permutation that is still empty, until the table is full.
//! Because `M` is prime and `1 <= skip < M`, every permutation visits every slot, and:
//!
//! * **balance:** members with equal weight own `floor(M/N)` or `ceil(M/N)` slots;
//! * **minimal disruption:** removing one of `N` members moves little more than the `1/N` of
//!   the hash space it owned (tested below: at most `1/N + 1%` of keys change member).
//!
//! # Identical tables everywhere
//!
//! ECMP may send a flow to any appliance, and RSS to any worker, so every worker on every
//! appliance must build the same table from the same member set. Hence:
//!
//! * the permutations come from SipHash-1-3 with two fixed, published keys ([`OFFSET_KEY`],
//!   [`SKIP_KEY`]) over the member's stable name, never from `std`'s per-process
//!   `RandomState`;
//! * members take their turns in the byte order of their names, not in the caller's order, so
//!   the table depends on the member *set* only. Names must be distinct.
//! * a flow hash selects slot `fold32(hash) mod M` (see [`MaglevTable::slot_of`]).
//!
//! # Weights
//!
//! A member with weight `w` takes a turn in a round with frequency `w / w_max` (`w_max` is the
//! largest weight in the set): each member accumulates `w` credits per round and takes a turn
//! whenever its credit reaches `w_max`. The largest-weight members take a turn every round, so
//! slot counts are proportional to weights within about one slot per member, whatever the
//! absolute weight values (weights 1:3 and 1000:3000 give the same table). Weight 0 removes
//! a member from the table (draining members) while keeping its [`MemberIndex`].
//!
//! Build cost: `O(M log M)` expected for equal weights (the coupon-collector bound of the
//! paper); with very unequal weights the number of rounds grows towards `M`, each round
//! visiting every member, so the bound is `O(M * N)` cheap steps. Lookup is one multiply-based
//! remainder and one array read: no allocation, no locks, no atomics.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

/// Default table size: the prime the paper uses for its production tables.
pub const DEFAULT_TABLE_SIZE: u32 = 65_537;

/// Largest accepted table size (a 64 MiB table of `u32`).
pub const MAX_TABLE_SIZE: u32 = 1 << 24;

/// Fewest slots per weighted member. With fewer, each slot is a >10% step of a member's share,
/// so weights and balance can no longer be honoured. The paper recommends `M >= 100 * N`
/// (at most 1% imbalance of hash space); the default size meets that up to 655 members.
pub const MIN_SLOTS_PER_MEMBER: u32 = 10;

/// SipHash-1-3 key for the permutation offset ("anycast6", "maglev-o").
pub const OFFSET_KEY: (u64, u64) = (0x3674_7361_6379_6e61, 0x6f2d_7665_6c67_616d);

/// SipHash-1-3 key for the permutation skip ("anycast6", "maglev-s"). Distinct from
/// [`OFFSET_KEY`] so that offset and skip are independent, as §3.4 requires.
pub const SKIP_KEY: (u64, u64) = (0x3674_7361_6379_6e61, 0x732d_7665_6c67_616d);

/// Marks a slot not yet claimed during the build; never present in a finished table.
const UNCLAIMED: u32 = u32::MAX;

/// Position of a member in the slice given to [`MaglevTable::build`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberIndex(pub u32);

impl MemberIndex {
    /// The index as a `usize`, for indexing the caller's member list.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// One member as Maglev sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaglevMember<'a> {
    /// Stable identity of the member, the same on every appliance and across restarts
    /// (for example its care-of address octets or its configured name). It alone decides
    /// the member's permutation.
    pub name: &'a [u8],
    /// Relative share of new flows; 0 keeps the member out of the table.
    pub weight: u32,
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// Maglev needs a prime size so that every permutation covers every slot.
    #[error("Maglev table size {0} is not prime; use a prime such as 65537 or 655373")]
    SizeNotPrime(u32),
    /// The size is above [`MAX_TABLE_SIZE`].
    #[error("Maglev table size {size} is larger than the maximum {max}")]
    SizeTooLarge {
        /// The requested size.
        size: u32,
        /// [`MAX_TABLE_SIZE`].
        max: u32,
    },
    /// Too many weighted members for the table size.
    #[error(
        "Maglev table size {size} is too small for {members} members: \
         it needs at least {min} slots ({MIN_SLOTS_PER_MEMBER} per member); use a larger prime"
    )]
    TooManyMembers {
        /// The requested size.
        size: u32,
        /// Members with a non-zero weight.
        members: usize,
        /// The smallest acceptable size.
        min: u64,
    },
    /// Two members share a name, so they would share a permutation.
    #[error("members {first} and {second} have the same name; Maglev needs distinct names")]
    DuplicateName {
        /// Index of one of the two members.
        first: usize,
        /// Index of the other member.
        second: usize,
    },
}

/// A finished Maglev lookup table: slot -> member index. Immutable, built by the control
/// thread and shared read-only through the snapshot.
#[derive(Clone, PartialEq, Eq)]
pub struct MaglevTable {
    /// `size` slots, or none when no member has a weight.
    slots: Box<[u32]>,
    size: u32,
    /// `ceil(2^64 / size)`, for the division-free remainder of [`Self::slot_of`].
    remainder_magic: u64,
}

impl std::fmt::Debug for MaglevTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaglevTable")
            .field("size", &self.size)
            .field("is_empty", &self.is_empty())
            .finish()
    }
}

impl MaglevTable {
    /// Builds the table for `members` with `size` slots (a prime, usually
    /// [`DEFAULT_TABLE_SIZE`]). The result depends only on the set of (name, weight) pairs,
    /// not on their order; lookups return indices into `members`.
    pub fn build(members: &[MaglevMember<'_>], size: u32) -> Result<Self, MaglevError> {
        if size > MAX_TABLE_SIZE {
            return Err(MaglevError::SizeTooLarge {
                size,
                max: MAX_TABLE_SIZE,
            });
        }
        if !is_prime(size) {
            return Err(MaglevError::SizeNotPrime(size));
        }
        if members.len() >= UNCLAIMED as usize {
            return Err(MaglevError::TooManyMembers {
                size,
                members: members.len(),
                min: u64::from(MIN_SLOTS_PER_MEMBER) * members.len() as u64,
            });
        }
        // Turn order is name order; sorting also puts duplicate names side by side.
        let mut by_name: Vec<usize> = (0..members.len()).collect();
        by_name.sort_unstable_by(|&a, &b| members[a].name.cmp(members[b].name));
        for pair in by_name.windows(2) {
            if members[pair[0]].name == members[pair[1]].name {
                let (first, second) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
                return Err(MaglevError::DuplicateName { first, second });
            }
        }
        let weighted: Vec<usize> = by_name
            .into_iter()
            .filter(|&i| members[i].weight > 0)
            .collect();
        let min = u64::from(MIN_SLOTS_PER_MEMBER) * weighted.len() as u64;
        if u64::from(size) < min {
            return Err(MaglevError::TooManyMembers {
                size,
                members: weighted.len(),
                min,
            });
        }
        let remainder_magic = u64::MAX / u64::from(size) + 1;
        if weighted.is_empty() {
            return Ok(Self {
                slots: Box::new([]),
                size,
                remainder_magic,
            });
        }
        let slots = populate(members, &weighted, size);
        Ok(Self {
            slots,
            size,
            remainder_magic,
        })
    }

    /// The member for a new flow with this hash, or `None` when no member has a weight.
    /// Per-packet path: no allocation, no locks, no atomics.
    #[inline]
    pub fn lookup(&self, flow_hash: u64) -> Option<MemberIndex> {
        // An empty table has no slots, so `get` answers `None` without a separate branch.
        self.slots
            .get(self.slot_of(flow_hash))
            .map(|&m| MemberIndex(m))
    }

    /// The slot a flow hash selects: `fold32(hash) mod M`, where `fold32` xors the two
    /// halves. Folding keeps 32-bit hashes (NIC Toeplitz RSS) as good as 64-bit ones; the
    /// remainder is computed exactly without a division (Lemire, Kaser, Kurz, "Faster
    /// remainder by direct computation", 2019), which is valid for 32-bit dividends.
    #[inline]
    pub fn slot_of(&self, flow_hash: u64) -> usize {
        let folded = (flow_hash ^ (flow_hash >> 32)) as u32;
        let low = self.remainder_magic.wrapping_mul(u64::from(folded));
        ((u128::from(low) * u128::from(self.size)) >> 64) as usize
    }

    /// The table size `M`.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// True when no member has a weight, so every lookup answers `None`.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slots owned by `member` (its share of new flows is this divided by [`Self::size`]).
    /// Walks the whole table: for statistics, not for the data path.
    pub fn slots_of(&self, member: MemberIndex) -> usize {
        self.slots.iter().filter(|&&m| m == member.0).count()
    }
}

/// The paper's population loop ("Pseudocode 1"), with weighted turns.
fn populate(members: &[MaglevMember<'_>], turn_order: &[usize], size: u32) -> Box<[u32]> {
    let m = u64::from(size);
    let max_weight = turn_order
        .iter()
        .map(|&i| u64::from(members[i].weight))
        .max()
        .unwrap_or(1);
    struct Turn {
        index: u32,
        weight: u64,
        skip: u64,
        /// Next slot of this member's permutation to try.
        next: u64,
        credit: u64,
    }
    let mut turns: Vec<Turn> = turn_order
        .iter()
        .map(|&i| {
            let name = members[i].name;
            Turn {
                // `build` checked that every index fits below `UNCLAIMED`.
                index: i as u32,
                weight: u64::from(members[i].weight),
                skip: siphash13(SKIP_KEY, name) % (m - 1).max(1) + 1,
                next: siphash13(OFFSET_KEY, name) % m,
                credit: 0,
            }
        })
        .collect();
    let mut slots = vec![UNCLAIMED; size as usize].into_boxed_slice();
    let mut filled: u64 = 0;
    // Each round every member earns `weight` credits; a full `max_weight` buys one turn.
    // The heaviest members take a turn every round, so every round fills at least one slot
    // and the loop ends after at most `M` rounds.
    'rounds: loop {
        for turn in turns.iter_mut() {
            turn.credit += turn.weight;
            if turn.credit < max_weight {
                continue;
            }
            turn.credit -= max_weight;
            // The permutation visits every slot once within `M` steps and the table is not
            // full, so an unclaimed slot is found.
            loop {
                let slot = turn.next as usize;
                turn.next += turn.skip;
                if turn.next >= m {
                    turn.next -= m;
                }
                if slots[slot] == UNCLAIMED {
                    slots[slot] = turn.index;
                    filled += 1;
                    break;
                }
            }
            if filled == m {
                break 'rounds;
            }
        }
    }
    slots
}

/// SipHash-1-3 of `bytes` under a fixed key. Hashes the bytes alone (no length suffix as the
/// `Hash` trait would add), so the value is defined by the SipHash specification only.
fn siphash13(key: (u64, u64), bytes: &[u8]) -> u64 {
    let mut hasher = SipHasher13::new_with_keys(key.0, key.1);
    hasher.write(bytes);
    hasher.finish()
}

/// Trial division; sizes are at most [`MAX_TABLE_SIZE`], so at most ~2900 divisions.
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let n = u64::from(n);
    let mut d = 3u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: a deterministic stream of well-spread 64-bit flow hashes.
    fn flow_hashes(count: usize, seed: u64) -> impl Iterator<Item = u64> {
        let mut state = seed;
        (0..count).map(move |_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    fn names(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("member-{i}").into_bytes()).collect()
    }

    fn members(names: &[Vec<u8>], weight: u32) -> Vec<MaglevMember<'_>> {
        names
            .iter()
            .map(|n| MaglevMember { name: n, weight })
            .collect()
    }

    fn name_of<'a>(members: &'a [MaglevMember<'_>], index: Option<MemberIndex>) -> &'a [u8] {
        members[index.expect("non-empty table").get()].name
    }

    #[test]
    fn rejects_sizes_that_are_not_prime() {
        let names = names(3);
        let m = members(&names, 1);
        assert_eq!(
            MaglevTable::build(&m, 65_536),
            Err(MaglevError::SizeNotPrime(65_536))
        );
        assert_eq!(MaglevTable::build(&m, 1), Err(MaglevError::SizeNotPrime(1)));
        assert_eq!(MaglevTable::build(&m, 0), Err(MaglevError::SizeNotPrime(0)));
        assert!(matches!(
            MaglevTable::build(&m, u32::MAX),
            Err(MaglevError::SizeTooLarge { .. })
        ));
        assert!(MaglevTable::build(&m, 655_373).is_ok());
    }

    #[test]
    fn rejects_too_many_members_for_the_size() {
        let names = names(11);
        let m = members(&names, 1);
        assert_eq!(
            MaglevTable::build(&m, 101),
            Err(MaglevError::TooManyMembers {
                size: 101,
                members: 11,
                min: 110
            })
        );
        // Weight-0 members do not occupy slots, so they do not count.
        let mut m = m;
        m[0].weight = 0;
        assert!(MaglevTable::build(&m, 101).is_ok());
    }

    #[test]
    fn rejects_duplicate_names() {
        let m = [
            MaglevMember {
                name: b"a",
                weight: 1,
            },
            MaglevMember {
                name: b"b",
                weight: 1,
            },
            MaglevMember {
                name: b"a",
                weight: 2,
            },
        ];
        assert_eq!(
            MaglevTable::build(&m, DEFAULT_TABLE_SIZE),
            Err(MaglevError::DuplicateName {
                first: 0,
                second: 2
            })
        );
    }

    #[test]
    fn primality_by_trial_division() {
        let primes: Vec<u32> = (0..60).filter(|&n| is_prime(n)).collect();
        assert_eq!(
            primes,
            [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59]
        );
        assert!(is_prime(65_537));
        assert!(!is_prime(65_535));
        assert!(!is_prime(4_294_836_225)); // 65535^2
    }

    #[test]
    fn slot_of_is_the_exact_remainder_of_the_folded_hash() {
        let names = names(1);
        for size in [11, 13, 31, 65_537, 655_373, 16_777_213] {
            let table = MaglevTable::build(&members(&names, 1), size).unwrap();
            let edge = [
                0,
                1,
                u64::from(size) - 1,
                u64::from(size),
                u64::MAX,
                u64::from(u32::MAX),
            ];
            for hash in edge.into_iter().chain(flow_hashes(20_000, u64::from(size))) {
                let folded = (hash ^ (hash >> 32)) as u32;
                assert_eq!(
                    table.slot_of(hash),
                    (folded % size) as usize,
                    "hash {hash:#x}"
                );
            }
        }
    }

    #[test]
    fn empty_set_and_all_zero_weights_give_none() {
        let table = MaglevTable::build(&[], DEFAULT_TABLE_SIZE).unwrap();
        assert!(table.is_empty());
        assert_eq!(table.lookup(12345), None);
        let names = names(4);
        let table = MaglevTable::build(&members(&names, 0), DEFAULT_TABLE_SIZE).unwrap();
        assert!(table.is_empty());
        assert!(flow_hashes(1000, 1).all(|h| table.lookup(h).is_none()));
    }

    #[test]
    fn single_member_owns_every_slot() {
        let table = MaglevTable::build(
            &[MaglevMember {
                name: b"only",
                weight: 7,
            }],
            13,
        )
        .unwrap();
        assert_eq!(table.slots_of(MemberIndex(0)), 13);
        assert!(flow_hashes(1000, 2).all(|h| table.lookup(h) == Some(MemberIndex(0))));
    }

    #[test]
    fn identical_input_gives_identical_tables() {
        let names = names(37);
        let a = MaglevTable::build(&members(&names, 1), DEFAULT_TABLE_SIZE).unwrap();
        let b = MaglevTable::build(&members(&names, 1), DEFAULT_TABLE_SIZE).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn member_order_does_not_change_the_member_chosen() {
        let names = names(20);
        let mut forward = members(&names, 1);
        for (i, m) in forward.iter_mut().enumerate() {
            m.weight = 1 + (i as u32 % 4);
        }
        let mut shuffled = forward.clone();
        shuffled.reverse();
        shuffled.rotate_left(7);
        let a = MaglevTable::build(&forward, DEFAULT_TABLE_SIZE).unwrap();
        let b = MaglevTable::build(&shuffled, DEFAULT_TABLE_SIZE).unwrap();
        // Indices differ (they point into different slices); the chosen names must not.
        for slot_hash in 0..u64::from(DEFAULT_TABLE_SIZE) {
            assert_eq!(
                name_of(&forward, a.lookup(slot_hash)),
                name_of(&shuffled, b.lookup(slot_hash))
            );
        }
    }

    /// SipHash-1-3 reference vectors (key 00..0f, message 00..len-1), as published with the
    /// reference implementation and used by Rust's own `SipHasher13` tests.
    #[test]
    fn permutation_hash_is_siphash_1_3() {
        let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let message: Vec<u8> = (0..16).collect();
        assert_eq!(siphash13(key, &message[..0]), 0xabac_0158_050f_c4dc);
        assert_eq!(siphash13(key, &message[..1]), 0xc9f4_9bf3_7d57_ca93);
        assert_eq!(siphash13(key, &message[..2]), 0x82cb_9b02_4dc7_d44d);
        assert_eq!(siphash13(key, &message[..7]), 0xd392_7d98_9bb1_1140);
        assert_eq!(siphash13(key, &message[..8]), 0x3690_9511_8d29_9a8e);
    }

    /// Pins the whole construction (keys, turn order, weights, slot selection): a change here
    /// changes every table, which breaks flow consistency between appliances running
    /// different versions during an upgrade. Values recorded from this implementation.
    #[test]
    fn small_table_is_pinned() {
        let m = [
            MaglevMember {
                name: b"2001:db8::c",
                weight: 1,
            },
            MaglevMember {
                name: b"2001:db8::a",
                weight: 2,
            },
            MaglevMember {
                name: b"2001:db8::b",
                weight: 1,
            },
        ];
        let table = MaglevTable::build(&m, 31).unwrap();
        let owners: Vec<u32> = (0..31).map(|h| table.lookup(h).unwrap().0).collect();
        assert_eq!(owners, PINNED_31_SLOT_TABLE);
    }

    const PINNED_31_SLOT_TABLE: [u32; 31] = [
        1, 2, 1, 1, 1, 1, 1, 0, 2, 0, 2, 1, 2, 2, 1, 0, 1, 2, 1, 1, 1, 0, 1, 1, 0, 1, 0, 2, 0, 1, 2,
    ];

    fn share_errors(table: &MaglevTable, weights: &[u32]) -> f64 {
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let expected = f64::from(w) / total;
                let actual = table.slots_of(MemberIndex(i as u32)) as f64 / f64::from(table.size());
                ((actual - expected) / expected).abs()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn equal_weights_balance_within_one_percent() {
        for n in [2, 3, 7, 10, 50, 100] {
            let names = names(n);
            let table = MaglevTable::build(&members(&names, 1), DEFAULT_TABLE_SIZE).unwrap();
            let err = share_errors(&table, &vec![1; n]);
            assert!(err < 0.01, "n={n}: worst relative share error {err}");
            // Stronger: equal weights differ by at most one slot.
            let counts: Vec<usize> = (0..n)
                .map(|i| table.slots_of(MemberIndex(i as u32)))
                .collect();
            let spread = counts.iter().max().unwrap() - counts.iter().min().unwrap();
            assert!(spread <= 1, "n={n}: slot counts {counts:?}");
        }
    }

    #[test]
    fn unequal_weights_balance_within_one_percent() {
        let names = names(6);
        let weights = [1, 2, 3, 5, 8, 13];
        let m: Vec<MaglevMember<'_>> = names
            .iter()
            .zip(weights)
            .map(|(n, weight)| MaglevMember { name: n, weight })
            .collect();
        let table = MaglevTable::build(&m, DEFAULT_TABLE_SIZE).unwrap();
        let err = share_errors(&table, &weights);
        assert!(err < 0.01, "worst relative share error {err}");
    }

    #[test]
    fn weights_one_to_three_split_25_75() {
        for scale in [1, 1000] {
            let m = [
                MaglevMember {
                    name: b"light",
                    weight: scale,
                },
                MaglevMember {
                    name: b"heavy",
                    weight: 3 * scale,
                },
            ];
            let table = MaglevTable::build(&m, DEFAULT_TABLE_SIZE).unwrap();
            let light = table.slots_of(MemberIndex(0)) as f64 / f64::from(table.size());
            assert!((light - 0.25).abs() <= 0.01, "table share {light}");
            let keys = 200_000;
            let light_keys = flow_hashes(keys, 7)
                .filter(|&h| table.lookup(h) == Some(MemberIndex(0)))
                .count();
            let light_keys = light_keys as f64 / keys as f64;
            assert!((light_keys - 0.25).abs() <= 0.01, "key share {light_keys}");
        }
    }

    #[test]
    fn zero_weight_member_gets_no_slots_but_keeps_its_index() {
        let m = [
            MaglevMember {
                name: b"a",
                weight: 1,
            },
            MaglevMember {
                name: b"draining",
                weight: 0,
            },
            MaglevMember {
                name: b"c",
                weight: 1,
            },
        ];
        let table = MaglevTable::build(&m, 101).unwrap();
        assert_eq!(table.slots_of(MemberIndex(1)), 0);
        assert_eq!(
            table.slots_of(MemberIndex(0)) + table.slots_of(MemberIndex(2)),
            101
        );
    }

    /// Fraction of `keys` sampled flow hashes whose member name differs between two tables.
    fn moved_fraction(
        before: (&MaglevTable, &[MaglevMember<'_>]),
        after: (&MaglevTable, &[MaglevMember<'_>]),
        keys: usize,
    ) -> f64 {
        let moved = flow_hashes(keys, 42)
            .filter(|&h| {
                name_of(before.1, before.0.lookup(h)) != name_of(after.1, after.0.lookup(h))
            })
            .count();
        moved as f64 / keys as f64
    }

    #[test]
    fn removing_one_member_moves_at_most_its_share_plus_one_percent() {
        for n in [3, 4, 5, 10, 20, 50, 100] {
            let names = names(n);
            let all = members(&names, 1);
            let full = MaglevTable::build(&all, DEFAULT_TABLE_SIZE).unwrap();
            for removed in [0, n / 2, n - 1] {
                let mut rest = all.clone();
                rest.remove(removed);
                let smaller = MaglevTable::build(&rest, DEFAULT_TABLE_SIZE).unwrap();
                let moved = moved_fraction((&full, &all), (&smaller, &rest), 200_000);
                let bound = 1.0 / n as f64 + 0.01;
                assert!(
                    moved <= bound,
                    "n={n} removed={removed}: moved {moved} > {bound}"
                );
                // The removed member's own keys must all move; they are ~1/n of the keys.
                assert!(moved >= 1.0 / n as f64 - 0.01, "n={n}: moved only {moved}");
            }
        }
    }

    #[test]
    fn adding_one_member_moves_at_most_its_share_plus_one_percent() {
        for n in [3, 10, 100] {
            let names = names(n + 1);
            let all = members(&names, 1);
            let before = &all[..n];
            let small = MaglevTable::build(before, DEFAULT_TABLE_SIZE).unwrap();
            let large = MaglevTable::build(&all, DEFAULT_TABLE_SIZE).unwrap();
            let moved = moved_fraction((&small, before), (&large, &all), 200_000);
            let bound = 1.0 / (n + 1) as f64 + 0.01;
            assert!(moved <= bound, "n={n}: moved {moved} > {bound}");
        }
    }

    #[test]
    fn extreme_weights_still_build() {
        let m = [
            MaglevMember {
                name: b"huge",
                weight: u32::MAX,
            },
            MaglevMember {
                name: b"tiny",
                weight: 1,
            },
            MaglevMember {
                name: b"half",
                weight: u32::MAX / 2,
            },
        ];
        let table = MaglevTable::build(&m, 1009).unwrap();
        let total: usize = (0..3).map(|i| table.slots_of(MemberIndex(i))).sum();
        assert_eq!(total, 1009);
        assert!(table.slots_of(MemberIndex(1)) <= 1);
        let half = table.slots_of(MemberIndex(2)) as f64 / 1009.0;
        assert!((half - 1.0 / 3.0).abs() < 0.01, "half-weight share {half}");
    }

    /// Build time for the report; meaningful with `--release`.
    #[test]
    fn build_time_at_default_size() {
        for n in [10, 100, 1000] {
            let names = names(n);
            let m = members(&names, 1);
            let start = std::time::Instant::now();
            let table = MaglevTable::build(&m, DEFAULT_TABLE_SIZE).unwrap();
            let elapsed = start.elapsed();
            assert_eq!(table.size(), DEFAULT_TABLE_SIZE);
            println!("maglev build: {n} members, M={DEFAULT_TABLE_SIZE}: {elapsed:?}");
        }
        // The slow case: one heavy member among many light ones makes ~M/2 rounds.
        let names = names(1000);
        let mut m = members(&names, 1);
        m[0].weight = 1000;
        let start = std::time::Instant::now();
        let table = MaglevTable::build(&m, DEFAULT_TABLE_SIZE).unwrap();
        let elapsed = start.elapsed();
        assert!(table.slots_of(MemberIndex(0)) > 32_000);
        println!(
            "maglev build: 1000 members, one 1000x heavier, M={DEFAULT_TABLE_SIZE}: {elapsed:?}"
        );
    }
}
