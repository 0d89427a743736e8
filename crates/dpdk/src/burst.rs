//! A fixed-size, stack-allocated group of mbufs: the unit of RX, TX and processing.

use std::mem::MaybeUninit;

use anycast6_dpdk_sys as sys;

use crate::mbuf::Mbuf;

/// Default burst size, as in DPDK's sample applications.
pub const DEFAULT_BURST: usize = 32;

/// Up to `N` owned mbufs, inline (no heap allocation per burst).
///
/// Slots `0..len()` hold owned mbufs; dropping the burst frees them with one
/// `rte_pktmbuf_free_bulk`. RX appends to the end; TX sends from the front and leaves what
/// the NIC did not take at the front, still owned by the burst.
pub struct MbufBurst<const N: usize = DEFAULT_BURST> {
    mbufs: [MaybeUninit<Mbuf>; N],
    len: usize,
}

impl<const N: usize> MbufBurst<N> {
    const CAPACITY_FITS_U16: () = assert!(N > 0 && N <= u16::MAX as usize, "burst size 1..=65535");

    /// An empty burst.
    #[inline]
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS_U16;
        MbufBurst {
            mbufs: [const { MaybeUninit::uninit() }; N],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no mbuf is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `N` mbufs are held.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// `N`.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        N - self.len
    }

    /// Adds an mbuf at the end; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.mbufs[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is no longer counted as held.
        Some(unsafe { self.mbufs[self.len].assume_init_read() })
    }

    /// Removes the mbuf at `index`, moving the last one into its place.
    pub fn swap_remove(&mut self, index: usize) -> Option<Mbuf> {
        if index >= self.len {
            return None;
        }
        self.mbufs.swap(index, self.len - 1);
        self.pop()
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots 0..len are initialised Mbufs; MaybeUninit<Mbuf> has Mbuf's layout.
        unsafe { std::slice::from_raw_parts(self.mbufs.as_ptr() as *const Mbuf, self.len) }
    }

    /// The held mbufs, writable (packet contents; not ownership).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`, with exclusive access through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.mbufs.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Iterates over the held mbufs.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates over the held mbufs, writable.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Takes every mbuf out, front to back. Mbufs the iterator has not yielded when it is
    /// dropped are freed.
    pub fn drain(&mut self) -> Drain<'_, N> {
        let end = self.len;
        // Set first: if the Drain is leaked, the mbufs leak rather than being freed twice.
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end,
        }
    }

    /// Frees the mbufs after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let start = len;
        let count = self.len - len;
        self.len = len;
        // SAFETY: slots start..start+count held owned mbufs that are no longer counted.
        unsafe {
            free_raw(
                self.mbufs.as_mut_ptr().add(start) as *mut *mut sys::rte_mbuf,
                count,
            )
        };
    }

    /// Frees every mbuf.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Pointer to the first free slot and the number of free slots (for RX and bulk
    /// allocation, which write mbuf pointers there).
    #[inline]
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // SAFETY: len <= N, so the pointer stays within (or one past) the array.
        let p = unsafe { self.mbufs.as_mut_ptr().add(self.len) } as *mut *mut sys::rte_mbuf;
        (p, N - self.len)
    }

    /// Pointer to the held mbufs, for TX.
    #[inline]
    pub(crate) fn held_raw(&mut self) -> *mut *mut sys::rte_mbuf {
        self.mbufs.as_mut_ptr() as *mut *mut sys::rte_mbuf
    }

    /// Sets the number of held mbufs.
    ///
    /// # Safety
    /// Slots `0..len` hold owned, valid mbufs, and `len <= N`.
    #[inline]
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= N);
        self.len = len;
    }

    /// Forgets the first `sent` mbufs (now owned by the NIC) and moves the rest to the
    /// front.
    ///
    /// # Safety
    /// `sent <= len()`, and ownership of the first `sent` mbufs has passed elsewhere.
    #[inline]
    pub(crate) unsafe fn forget_front(&mut self, sent: usize) {
        debug_assert!(sent <= self.len);
        let rest = self.len - sent;
        if rest != 0 && sent != 0 {
            let base = self.mbufs.as_mut_ptr();
            // SAFETY: both ranges lie within the array; ptr::copy handles overlap.
            unsafe { std::ptr::copy(base.add(sent), base, rest) };
        }
        self.len = rest;
    }
}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

impl<const N: usize> std::fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<'a, const N: usize> IntoIterator for &'a MbufBurst<N> {
    type Item = &'a Mbuf;
    type IntoIter = std::slice::Iter<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, const N: usize> IntoIterator for &'a mut MbufBurst<N> {
    type Item = &'a mut Mbuf;
    type IntoIter = std::slice::IterMut<'a, Mbuf>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

/// Iterator returned by [`MbufBurst::drain`].
pub struct Drain<'a, const N: usize> {
    burst: &'a mut MbufBurst<N>,
    next: usize,
    end: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: slots next..end hold owned mbufs that only this Drain may take, once each.
        let m = unsafe { self.burst.mbufs[self.next].assume_init_read() };
        self.next += 1;
        Some(m)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let count = self.end - self.next;
        // SAFETY: slots next..end hold owned mbufs not yielded; the burst no longer counts
        // them (len was set to 0 when draining started).
        unsafe {
            free_raw(
                self.burst.mbufs.as_mut_ptr().add(self.next) as *mut *mut sys::rte_mbuf,
                count,
            )
        };
    }
}

impl<const N: usize> std::fmt::Debug for Drain<'_, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &(self.end - self.next))
            .finish()
    }
}

/// Frees `count` owned mbufs at `p`.
///
/// # Safety
/// `p..p+count` are owned, valid mbuf pointers not used afterwards.
#[inline]
unsafe fn free_raw(p: *mut *mut sys::rte_mbuf, count: usize) {
    if count != 0 {
        // SAFETY: per the contract.
        unsafe { sys::shim_rte_pktmbuf_free_bulk(p, count as u32) };
    }
}
