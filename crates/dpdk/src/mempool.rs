//! Pools of packet buffers.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use anycast6_dpdk_sys as sys;

use crate::burst::MbufBurst;
use crate::eal::{Eal, LIVE_RESOURCES};
use crate::error::{Error, Result};
use crate::ffi;
use crate::mbuf::Mbuf;

/// Default mbuf data room: 2048 bytes of packet plus `RTE_PKTMBUF_HEADROOM` (128).
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// Headroom DPDK reserves in front of received packets (where tunnel headers go).
pub const MBUF_HEADROOM: u16 = sys::RTE_PKTMBUF_HEADROOM as u16;

/// A DPDK packet-mbuf pool (`rte_pktmbuf_pool_create`).
///
/// Allocation and free are thread-safe (the default `ring_mp_mc` ops, with a per-lcore
/// cache); share a pool between lcores with `Arc<Mempool>`. Dropping it frees the pool when
/// every mbuf has come back; while mbufs are still out (in a queue, a ring, a leaked
/// `Mbuf`) it is left allocated, since freeing it would leave those mbufs dangling.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: rte_mempool get/put with the default multi-producer/multi-consumer ops may be
// called from any thread; the pool's bookkeeping is internally synchronised.
unsafe impl Send for Mempool {}
// SAFETY: as above; &Mempool only allows allocation and read-only queries.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with a per-lcore cache of `cache_size` (0 for none;
    /// DPDK caps it at 512 and at size / 1.5) and `data_room` bytes per mbuf including the
    /// headroom, on the caller's NUMA socket.
    pub fn new(eal: &Eal, name: &str, size: u32, cache_size: u32, data_room: u16) -> Result<Self> {
        Self::new_on_socket(eal, name, size, cache_size, data_room, None)
    }

    /// Like [`Mempool::new`] on a given NUMA socket (`None`: any socket).
    pub fn new_on_socket(
        _eal: &Eal,
        name: &str,
        size: u32,
        cache_size: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<Self> {
        let c_name = CString::new(name).map_err(|_| Error::BadName {
            name: name.to_owned(),
            reason: "contains a NUL byte",
        })?;
        // DPDK refuses a cache larger than the pool can feed (CACHE_FLUSHTHRESH_MULTIPLIER).
        let cache_size = cache_size.min(512).min((u64::from(size) * 2 / 3) as u32);
        let socket = socket.map_or(sys::SOCKET_ID_ANY, |s| s as i32);
        // SAFETY: the EAL is initialised (we hold &Eal); c_name is a valid C string DPDK
        // copies.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(c_name.as_ptr(), size, cache_size, 0, data_room, socket)
        };
        let raw = NonNull::new(raw).ok_or_else(|| Error::MempoolCreate {
            name: name.to_owned(),
            size,
            data_room,
            reason: ffi::last_error_text(),
        })?;
        LIVE_RESOURCES.fetch_add(1, Ordering::AcqRel);
        Ok(Mempool {
            raw,
            name: name.to_owned(),
            size,
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Data room of each mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        // SAFETY: raw is a live pktmbuf pool.
        unsafe { sys::shim_rte_pktmbuf_data_room_size(self.raw.as_ptr()) }
    }

    /// Mbufs free (in the pool and the per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool; the count is a racy snapshot by design.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently allocated.
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// One mbuf, reset, with the default headroom and no data.
    #[inline]
    pub fn alloc(&self) -> Result<Mbuf> {
        // SAFETY: raw is a live pktmbuf pool; the returned mbuf (if any) is ours alone.
        let m = unsafe { sys::shim_rte_pktmbuf_alloc(self.raw.as_ptr()) };
        match NonNull::new(m) {
            // SAFETY: a freshly allocated mbuf with refcnt 1 that nobody else references.
            Some(m) => Ok(unsafe { Mbuf::from_raw(m.as_ptr()) }),
            None => Err(Error::MempoolExhausted(self.name.clone())),
        }
    }

    /// An mbuf holding a copy of `bytes`.
    pub fn alloc_from_slice(&self, bytes: &[u8]) -> Result<Mbuf> {
        let mut m = self.alloc()?;
        m.extend_from_slice(bytes)?;
        Ok(m)
    }

    /// Fills `burst` up to `count` mbufs (all or nothing: `rte_pktmbuf_alloc_bulk`).
    /// `count` is capped by the burst's spare capacity.
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut MbufBurst<N>, count: usize) -> Result<()> {
        let (spare, cap) = burst.spare_raw();
        let count = count.min(cap);
        if count == 0 {
            return Ok(());
        }
        // SAFETY: spare points to `cap` >= count writable slots of the burst; on success
        // DPDK writes `count` valid, exclusively owned mbuf pointers there.
        let ret =
            unsafe { sys::shim_rte_pktmbuf_alloc_bulk(self.raw.as_ptr(), spare, count as u32) };
        if ret != 0 {
            return Err(Error::MempoolExhausted(self.name.clone()));
        }
        // SAFETY: the `count` slots after the current length were just initialised.
        unsafe { burst.set_len(burst.len() + count) };
        Ok(())
    }

    /// Fills `burst` up to `count` mbufs (all or nothing), each one segment holding `len`
    /// bytes at the default headroom: the allocation and the length of
    /// [`PacketBuf::append`] in one call, for a generator that then writes every byte (the
    /// bytes are whatever the buffer held, as after `append`). The metadata is reset like
    /// [`Mempool::alloc_bulk`]'s except `tx_offload`, which a transmit path reads only under
    /// the offload flags, cleared here (a caller that requests a TX offload sets
    /// `tx_offload` itself): the call writes only each mbuf's first cache line (of the
    /// second, `next` is NULL in every mbuf of a pool already). Writing the second line too
    /// made a 64-octet generator about 20 % slower. The call also prefetches each mbuf's
    /// first data line. `count` is capped by the
    /// burst's spare capacity. Fails with [`Error::MbufTooSmall`] when `len` does not fit
    /// after the headroom, [`Error::MempoolExhausted`] when the pool is short.
    ///
    /// [`PacketBuf::append`]: anycast6_wire::PacketBuf::append
    pub fn alloc_bulk_with_len<const N: usize>(
        &self,
        burst: &mut MbufBurst<N>,
        count: usize,
        len: u16,
    ) -> Result<()> {
        let (spare, cap) = burst.spare_raw();
        let count = count.min(cap);
        if count == 0 {
            return Ok(());
        }
        // SAFETY: spare points to `cap` >= count writable slots of the burst; on success
        // DPDK writes `count` valid, exclusively owned mbuf pointers there, each reset to
        // one segment of `len` bytes inside its buffer (the shim checks the data room).
        let ret = unsafe {
            sys::shim_anycast6_pktmbuf_alloc_bulk_len(self.raw.as_ptr(), spare, count as u32, len)
        };
        if ret == -(sys::EINVAL as i32) {
            return Err(Error::MbufTooSmall {
                len: usize::from(len),
                room: usize::from(self.data_room().saturating_sub(MBUF_HEADROOM)),
            });
        }
        if ret != 0 {
            return Err(Error::MempoolExhausted(self.name.clone()));
        }
        // SAFETY: the `count` slots after the current length were just initialised.
        unsafe { burst.set_len(burst.len() + count) };
        Ok(())
    }

    /// The raw pool, for calls this crate does not wrap.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let in_use = self.in_use();
        if in_use != 0 {
            tracing::warn!(
                pool = %self.name,
                in_use,
                "mempool dropped with mbufs still out; leaving it allocated"
            );
            return;
        }
        // SAFETY: no mbuf of the pool is outstanding and this handle is the last reference.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
        LIVE_RESOURCES.fetch_sub(1, Ordering::AcqRel);
    }
}
