//! Memory hints for the data plane's bulk lookups: a safe cache prefetch and the vector
//! compare of a bucket's tags (their tables live on huge pages: [`crate::HugeArray`]).
//!
//! Prefetching never faults and never changes memory (the address only names a cache
//! line), so a hint about any live reference is sound; `_mm_prefetch` is `unsafe` only
//! because it is a `#[target_feature]` intrinsic.

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

#[cfg(test)]
mod tests {
    use super::{equal_lanes, equal_lanes_portable, prefetch_read};

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
