//! Large lookup tables on transparent huge pages.
//!
//! A table of many megabytes on 4 KB pages costs a TLB miss (a page walk) on nearly every
//! random access, prefetches included; on 2 MB pages the whole table needs a few TLB
//! entries. A software prefetch that misses the TLB walks the page tables before it can
//! retire, so on 4 KB pages a burst's prefetches stall the worker instead of overlapping
//! its work. [`HugeArray`] places a table on memory aligned to 2 MB and a whole number of
//! 2 MB long, and asks Linux for transparent huge pages there (`madvise(MADV_HUGEPAGE)`),
//! which works with the system setting `madvise` as well as `always`, needs no reserved
//! hugepages and no EAL. (A heap allocation is only page aligned: advising the whole 2 MB
//! pages inside it left the first and last 2 MB of every table, and all of a 2 MB one, on
//! small pages.)

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::mem::{align_of, size_of};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Size of a transparent huge page on x86-64 (a PMD mapping).
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// A fixed-length array of plain values, allocated once. At least half a huge page long,
/// it starts on a 2 MB boundary, spans whole huge pages, and is advised to be backed by
/// them before its first write, so that every 2 MB of it faults in as one huge page.
/// Smaller arrays are ordinary allocations.
pub struct HugeArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// The allocation's layout (size 0: nothing allocated).
    layout: Layout,
    advised: usize,
}

// SAFETY: a HugeArray owns its elements exclusively, as a Box<[T]> does.
unsafe impl<T: Copy + Send> Send for HugeArray<T> {}
// SAFETY: shared access only hands out &[T], as a Box<[T]> does.
unsafe impl<T: Copy + Sync> Sync for HugeArray<T> {}

impl<T: Copy> HugeArray<T> {
    /// `len` copies of `value`. Aborts like `Vec` when memory runs out; panics only when
    /// the size overflows `isize`.
    pub fn filled(len: usize, value: T) -> HugeArray<T> {
        let bytes = size_of::<T>()
            .checked_mul(len)
            .expect("HugeArray size overflows usize");
        if bytes == 0 {
            return HugeArray {
                ptr: NonNull::dangling(),
                len,
                layout: Layout::new::<()>(),
                advised: 0,
            };
        }
        let huge = bytes >= HUGE_PAGE_SIZE / 2;
        let layout = if huge {
            Layout::from_size_align(
                bytes.next_multiple_of(HUGE_PAGE_SIZE),
                HUGE_PAGE_SIZE.max(align_of::<T>()),
            )
        } else {
            Layout::from_size_align(bytes, align_of::<T>())
        }
        .expect("HugeArray size overflows isize");
        // SAFETY: the layout's size is not zero.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        let advised = if huge && madvise_hugepage(raw as usize, layout.size()) {
            layout.size()
        } else {
            0
        };
        for i in 0..len {
            // SAFETY: element i lies inside the allocation (len * size_of::<T>() <= size),
            // which is aligned for T; it is written once before any read.
            unsafe { ptr.as_ptr().add(i).write(value) };
        }
        HugeArray {
            ptr,
            len,
            layout,
            advised,
        }
    }

    /// Bytes the kernel was asked to back with huge pages: the whole allocation of an
    /// array of at least half a huge page on Linux with THP, else 0.
    pub fn advised(&self) -> usize {
        self.advised
    }
}

impl<T: Copy> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray")
            .field("len", &self.len)
            .field("bytes", &self.layout.size())
            .field("advised", &self.advised)
            .finish()
    }
}

impl<T: Copy> Deref for HugeArray<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised elements start at `ptr` (or len * size 0 bytes at a
        // dangling, aligned pointer), borrowed for as long as `self` is.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeArray<T> {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated in `filled` with this layout; T: Copy needs no drop.
            unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) };
        }
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
fn madvise_hugepage(addr: usize, len: usize) -> bool {
    // SAFETY: madvise(2) with MADV_HUGEPAGE only changes how the kernel backs the range
    // (the contents stay); the range is a live allocation the caller owns, and both ends
    // are 2 MB (hence page) aligned.
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE) == 0 }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn madvise_hugepage(_addr: usize, _len: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::{HugeArray, HUGE_PAGE_SIZE};

    #[test]
    fn large_arrays_sit_on_whole_huge_pages() {
        let words = 3 * HUGE_PAGE_SIZE / 8 + 5;
        let mut big = HugeArray::filled(words, 7u64);
        assert_eq!(big.len(), words);
        assert_eq!(big.as_ptr() as usize % HUGE_PAGE_SIZE, 0, "2 MB aligned");
        assert!(big.iter().all(|&x| x == 7));
        // The kernel refuses only when built without transparent huge pages.
        let thp = std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists();
        if thp && cfg!(all(target_os = "linux", not(miri))) {
            assert_eq!(big.advised(), 4 * HUGE_PAGE_SIZE);
        }
        for (i, x) in big.iter_mut().enumerate() {
            *x = i as u64 * 3;
        }
        assert!(big.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
        assert_eq!(big[words - 1], (words as u64 - 1) * 3);
    }

    #[test]
    fn small_and_empty_arrays_are_ordinary() {
        #[derive(Clone, Copy, PartialEq, Debug)]
        #[repr(align(64))]
        struct Line([u8; 64]);
        let small = HugeArray::filled(100, Line([1; 64]));
        assert_eq!(small.advised(), 0);
        assert_eq!(small.as_ptr() as usize % 64, 0, "aligned for T");
        assert!(small.iter().all(|l| *l == Line([1; 64])));
        let empty = HugeArray::filled(0, 1u8);
        assert!(empty.is_empty());
        let zero_sized = HugeArray::filled(10, ());
        assert_eq!(zero_sized.len(), 10);
    }
}
