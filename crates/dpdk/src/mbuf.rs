//! One packet buffer.

use std::ptr::NonNull;

use anycast6_dpdk_sys as sys;
use anycast6_wire::{Error as WireError, PacketBuf};

use crate::error::{Error, Result};

/// An owned DPDK packet buffer (`struct rte_mbuf *`). Dropping it returns it to its pool.
///
/// [`PacketBuf`] gives the packet as one contiguous slice: the first segment. Mbufs received
/// by this crate's ports are single-segment (scatter RX is not enabled and the MTU is
/// checked against the mbuf size); a chained mbuf (`nb_segs() > 1`) built elsewhere can be
/// made contiguous with [`Mbuf::linearize`]. On a chained mbuf `data()` is the first
/// segment, `prepend`/`adj` act on it, and `append`/`trim` (which DPDK applies to the last
/// segment) return `Err(Unsupported)` with `tailroom() == 0`.
///
/// An `Mbuf` is the sole owner of its buffer: this crate never raises the reference count,
/// which is what makes `data_mut` sound.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: the mbuf is exclusively owned; handing it to another thread (another lcore, the
// control thread) is how DPDK pipelines work, and freeing it from any thread is allowed.
unsafe impl Send for Mbuf {}
// SAFETY: &Mbuf only reads the mbuf.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` is a valid, non-null mbuf that nobody else owns or references (refcnt 1, not
    /// attached to another mbuf's buffer), and it stays valid until this `Mbuf` frees it.
    #[inline]
    pub unsafe fn from_raw(m: *mut sys::rte_mbuf) -> Mbuf {
        // SAFETY: the caller guarantees m is non-null.
        Mbuf(unsafe { NonNull::new_unchecked(m) })
    }

    /// Gives up ownership; the caller frees the mbuf (or hands it to DPDK).
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// The raw mbuf, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf.
        unsafe { self.0.as_ref() }
    }

    /// Bytes in the first segment (`data_len`).
    #[inline]
    pub fn data_len(&self) -> usize {
        self.raw().data_len as usize
    }

    /// Bytes in the whole packet, all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.raw().nb_segs
    }

    /// True when the packet is in one segment.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// The port the packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The NIC's RSS hash (valid when the port hashes, see [`Mbuf::ol_flags`]).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: self owns a valid mbuf; reading the hash union is a plain field read.
        unsafe { sys::shim_rte_pktmbuf_rss_hash(self.0.as_ptr()) }
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// Reference count (1 for every mbuf this crate hands out).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: self owns a valid mbuf.
        unsafe { sys::shim_rte_mbuf_refcnt_read(self.0.as_ptr()) }
    }

    /// Sets the length of a single-segment packet to `len` bytes from the current start of
    /// its data (`data_len` and `pkt_len`, inline: no call into DPDK), growing into the
    /// tailroom or shrinking; the bytes a growth exposes hold whatever the buffer held.
    /// Like [`PacketBuf::append`] and [`PacketBuf::trim`] it fails, changing nothing, on a
    /// chained mbuf (`Unsupported`) and when `len` exceeds the room after the data offset
    /// (`NoRoom`).
    #[inline]
    pub fn set_data_len(&mut self, len: usize) -> anycast6_wire::Result<()> {
        // SAFETY: self exclusively owns a valid mbuf; only its length fields change.
        let m = unsafe { self.0.as_mut() };
        if m.nb_segs != 1 {
            return Err(WireError::Unsupported(
                "set_data_len of a multi-segment mbuf",
            ));
        }
        if len > usize::from(m.buf_len) - usize::from(m.data_off) {
            return Err(WireError::NoRoom("set_data_len (tailroom)"));
        }
        // len <= buf_len - data_off <= u16::MAX.
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        Ok(())
    }

    /// Copies a chained packet into its first segment (`rte_pktmbuf_linearize`); fails
    /// when it does not fit.
    pub fn linearize(&mut self) -> Result<()> {
        if self.is_contiguous() {
            return Ok(());
        }
        // SAFETY: self exclusively owns the chain.
        let ret = unsafe { sys::shim_rte_pktmbuf_linearize(self.0.as_ptr()) };
        if ret != 0 {
            return Err(Error::MbufTooSmall {
                len: self.pkt_len(),
                room: self.raw().buf_len as usize - self.raw().data_off as usize,
            });
        }
        Ok(())
    }

    /// Appends a copy of `bytes`.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        let room = self.tailroom();
        match self.append(bytes.len()) {
            Ok(dst) => {
                dst.copy_from_slice(bytes);
                Ok(())
            }
            Err(_) => Err(Error::MbufTooSmall {
                len: bytes.len(),
                room,
            }),
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf (and its chain) and is never used again.
        unsafe { sys::shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: [buf_addr + data_off, + data_len) is the first segment's data, inside the
        // buffer owned by this mbuf; shared borrow of self keeps it unchanged.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (
            m.buf_addr as *mut u8,
            m.data_off as usize,
            m.data_len as usize,
        );
        // SAFETY: as in `data`; &mut self and sole ownership of the buffer (refcnt 1, not
        // shared) make the slice exclusive.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }

    #[inline]
    fn tailroom(&self) -> usize {
        if !self.is_contiguous() {
            return 0;
        }
        let m = self.raw();
        m.buf_len as usize - m.data_off as usize - m.data_len as usize
    }

    /// As `rte_pktmbuf_prepend`, inline (the fast path prepends tunnel and Ethernet
    /// headers to every packet): fails, changing nothing, when the headroom is short.
    #[inline]
    fn prepend(&mut self, len: usize) -> anycast6_wire::Result<&mut [u8]> {
        // SAFETY: self exclusively owns a valid mbuf; only its offset and lengths change.
        let m = unsafe { self.0.as_mut() };
        if len > usize::from(m.data_off) {
            return Err(WireError::NoRoom("prepend (headroom)"));
        }
        // len <= data_off, and data_off + data_len <= buf_len: both fit 16 bits.
        let len16 = len as u16;
        m.data_off -= len16;
        m.data_len += len16;
        // Wrapping, as in C: pkt_len is DPDK's to keep consistent, not a reason to panic.
        m.pkt_len = m.pkt_len.wrapping_add(u32::from(len16));
        // SAFETY: the `len` bytes now in front of the data are inside our buffer.
        Ok(unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(usize::from(m.data_off)),
                len,
            )
        })
    }

    /// As `rte_pktmbuf_adj`, inline: refuses, changing nothing, to remove more than the
    /// first segment holds.
    #[inline]
    fn adj(&mut self, len: usize) -> anycast6_wire::Result<()> {
        // SAFETY: self exclusively owns a valid mbuf; only its offset and lengths change.
        let m = unsafe { self.0.as_mut() };
        if len > usize::from(m.data_len) {
            return Err(WireError::Truncated("packet (adj)"));
        }
        let len16 = len as u16;
        m.data_off += len16;
        m.data_len -= len16;
        m.pkt_len = m.pkt_len.wrapping_sub(u32::from(len16));
        Ok(())
    }

    fn append(&mut self, len: usize) -> anycast6_wire::Result<&mut [u8]> {
        if !self.is_contiguous() {
            return Err(WireError::Unsupported("append to a multi-segment mbuf"));
        }
        let len16 = u16::try_from(len).map_err(|_| WireError::NoRoom("append (tailroom)"))?;
        // SAFETY: self exclusively owns the single-segment mbuf; rte_pktmbuf_append checks
        // the tailroom and changes nothing (NULL) when it is short.
        let p = unsafe { sys::shim_rte_pktmbuf_append(self.0.as_ptr(), len16) };
        if p.is_null() {
            return Err(WireError::NoRoom("append (tailroom)"));
        }
        // SAFETY: p points to the `len` bytes just added at the end of the data.
        Ok(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) })
    }

    /// As `rte_pktmbuf_trim` on a single segment, inline: refuses, changing nothing, to
    /// remove more than it holds.
    #[inline]
    fn trim(&mut self, len: usize) -> anycast6_wire::Result<()> {
        // SAFETY: self exclusively owns a valid mbuf; only its lengths change.
        let m = unsafe { self.0.as_mut() };
        if m.nb_segs != 1 {
            return Err(WireError::Unsupported("trim of a multi-segment mbuf"));
        }
        if len > usize::from(m.data_len) {
            return Err(WireError::Truncated("packet (trim)"));
        }
        let len16 = len as u16;
        m.data_len -= len16;
        m.pkt_len = m.pkt_len.wrapping_sub(u32::from(len16));
        Ok(())
    }

    #[inline]
    fn len(&self) -> usize {
        self.data_len()
    }
}
