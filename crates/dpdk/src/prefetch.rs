//! A safe cache prefetch hint for the data plane's bulk lookups.
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

#[cfg(test)]
mod tests {
    use super::prefetch_read;

    #[test]
    fn prefetch_is_a_hint_only() {
        let v = vec![7u64; 1024];
        for x in &v {
            prefetch_read(x);
        }
        prefetch_read(&v[..]);
        assert!(v.iter().all(|&x| x == 7));
    }
}
