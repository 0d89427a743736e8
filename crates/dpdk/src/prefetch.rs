//! Memory hints for the data plane's bulk lookups: a safe cache prefetch, transparent
//! huge pages for large lookup tables, and the vector compare of a bucket's tags.
//!
//! Prefetching never faults and never changes memory (the address only names a cache
//! line), so a hint about any live reference is sound; `_mm_prefetch` is `unsafe` only
//! because it is a `#[target_feature]` intrinsic.
//!
//! A table of many megabytes on 4 KB pages costs a TLB miss (a page walk) on nearly every
//! random access, prefetches included; on 2 MB pages the whole table needs a few dozen TLB
//! entries. [`advise_huge_pages`] asks Linux for transparent huge pages
//! (`madvise(MADV_HUGEPAGE)`), which works with the system setting `madvise` as well as
//! `always`, needs no reserved hugepages and no EAL.

use core::mem::MaybeUninit;

/// Asks the CPU to bring the cache line holding the start of `value` into all cache
/// levels (the `T0` hint). A no-op where no prefetch instruction is available.
#[inline(always)]
pub fn prefetch_read<T: ?Sized>(value: &T) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse", not(miri)))]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let line = (value as *const T).cast::<i8>();
        // SAFETY: PREFETCHT0 is a hint: it does not access memory architecturally and
        // cannot fault, whatever the address; `sse` is enabled (checked by the cfg above).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse", not(miri))))]
    {
        let _ = value;
    }
}

/// Bit `i` set where `values[i] == wanted`: two 4-lane compares and two mask moves on
/// x86-64 (SSE2, part of its baseline). The compiler makes about 30 scalar and vector
/// instructions of the portable loop, which the data plane runs twice per packet (the
/// affinity table's tag match).
#[inline(always)]
pub fn equal_lanes(values: &[u32; 8], wanted: u32) -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(miri)))]
    {
        use core::arch::x86_64::{
            __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps,
            _mm_set1_epi32,
        };
        let lanes = values.as_ptr().cast::<__m128i>();
        // SAFETY: SSE2 is enabled (checked by the cfg above); both unaligned 16-byte loads
        // read inside `values` (32 bytes).
        unsafe {
            let wanted = _mm_set1_epi32(wanted as i32);
            let low = _mm_cmpeq_epi32(_mm_loadu_si128(lanes), wanted);
            let high = _mm_cmpeq_epi32(_mm_loadu_si128(lanes.add(1)), wanted);
            (_mm_movemask_ps(_mm_castsi128_ps(low)) | _mm_movemask_ps(_mm_castsi128_ps(high)) << 4)
                as u32
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2", not(miri))))]
    {
        equal_lanes_portable(values, wanted)
    }
}

/// [`equal_lanes`] without vector instructions.
#[inline]
pub fn equal_lanes_portable(values: &[u32; 8], wanted: u32) -> u32 {
    let mut mask = 0;
    for (i, &v) in values.iter().enumerate() {
        mask |= u32::from(v == wanted) << i;
    }
    mask
}

/// Size of a transparent huge page on x86-64 (a PMD mapping).
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MB pages inside `buf` with transparent huge pages.
/// Call it on memory not yet written (e.g. a `Vec`'s spare capacity), so that the first
/// touch of each 2 MB page faults in a huge page rather than 512 small ones. Returns the
/// number of bytes advised (0 when `buf` holds no whole 2 MB page, off Linux, or
/// when the kernel refused, e.g. without THP support); the contents are never changed.
pub fn advise_huge_pages<T>(buf: &mut [MaybeUninit<T>]) -> usize {
    let start = buf.as_ptr() as usize;
    let end = start + core::mem::size_of_val(buf);
    let first = start.next_multiple_of(HUGE_PAGE_SIZE);
    let last = end & !(HUGE_PAGE_SIZE - 1);
    if last <= first {
        return 0;
    }
    if madvise_hugepage(first, last - first) {
        last - first
    } else {
        0
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
fn madvise_hugepage(addr: usize, len: usize) -> bool {
    // SAFETY: madvise(2) with MADV_HUGEPAGE only changes how the kernel backs the range
    // (the contents stay); the range lies inside a live allocation the caller holds
    // mutably, and both ends are 2 MB (hence page) aligned.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn madvise_hugepage(_addr: usize, _len: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::{
        advise_huge_pages, equal_lanes, equal_lanes_portable, prefetch_read, HUGE_PAGE_SIZE,
    };
    use core::mem::MaybeUninit;

    #[test]
    fn prefetch_is_a_hint_only() {
        let v = vec![7u64; 1024];
        for x in &v {
            prefetch_read(x);
        }
        prefetch_read(&v[..]);
        assert!(v.iter().all(|&x| x == 7));
    }

    #[test]
    fn huge_page_advice_covers_whole_pages_only() {
        let mut small: Vec<u64> = Vec::with_capacity(1024);
        assert_eq!(advise_huge_pages(small.spare_capacity_mut()), 0);
        let words = 3 * HUGE_PAGE_SIZE / 8;
        let mut big: Vec<u64> = Vec::with_capacity(words);
        let advised = advise_huge_pages(big.spare_capacity_mut());
        // At least one whole 2 MB page lies inside 6 MB, at most three.
        // (The kernel refuses only when built without transparent huge pages.)
        let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists();
        if thp && cfg!(all(target_os = "linux", not(miri))) {
            assert!(
                (HUGE_PAGE_SIZE..=3 * HUGE_PAGE_SIZE).contains(&advised),
                "{advised}"
            );
            assert_eq!(advised % HUGE_PAGE_SIZE, 0);
        }
        big.extend((0..words as u64).map(|i| i * 3));
        assert!(big.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
        let mut empty: [MaybeUninit<u8>; 0] = [];
        assert_eq!(advise_huge_pages(&mut empty), 0);
    }

    #[test]
    fn equal_lanes_is_the_portable_mask() {
        // Every subset of lanes equal to the wanted value, with wanted values that differ
        // from the others in one bit, in the sign bit, or not at all.
        for wanted in [0u32, 1, 0x8000_0000, 0xffff_ffff, 0x1234_5678] {
            for subset in 0u32..256 {
                let values: [u32; 8] = std::array::from_fn(|i| {
                    if subset >> i & 1 == 1 {
                        wanted
                    } else {
                        wanted ^ (1 << (i * 4))
                    }
                });
                assert_eq!(
                    equal_lanes(&values, wanted),
                    subset,
                    "{values:x?} {wanted:x}"
                );
                assert_eq!(equal_lanes_portable(&values, wanted), subset);
            }
        }
    }
}
