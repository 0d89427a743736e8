//! The packet buffer the pipeline works on.
//!
//! A packet occupies a contiguous window `[start, end)` of a larger buffer; the space before
//! it is *headroom* (where tunnel headers are prepended) and the space after it *tailroom*.
//! DPDK mbufs implement this trait in `anycast6-dpdk`; [`VecBuf`] implements it on the heap
//! for tests and offline tools, so pipeline code is written once for both.

use crate::{Error, Result};

/// A contiguous packet with headroom and tailroom.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Bytes free in front of the packet.
    fn headroom(&self) -> usize;
    /// Bytes free after the packet.
    fn tailroom(&self) -> usize;
    /// Grows the packet by `len` bytes at the front and returns the new leading bytes
    /// (contents unspecified). Fails without change when headroom is short.
    fn prepend(&mut self, len: usize) -> Result<&mut [u8]>;
    /// Removes `len` bytes from the front. Fails without change when the packet is shorter.
    fn adj(&mut self, len: usize) -> Result<()>;
    /// Grows the packet by `len` bytes at the end and returns them (contents unspecified).
    /// Fails without change when tailroom is short.
    fn append(&mut self, len: usize) -> Result<&mut [u8]>;
    /// Removes `len` bytes from the end. Fails without change when the packet is shorter.
    fn trim(&mut self, len: usize) -> Result<()>;

    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the packet holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sets the packet length, trimming or appending (appended bytes are zeroed).
    fn set_len(&mut self, len: usize) -> Result<()> {
        let cur = self.len();
        if len <= cur {
            self.trim(cur - len)
        } else {
            self.append(len - cur)?.fill(0);
            Ok(())
        }
    }
}

/// Default headroom of a [`VecBuf`], the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;

/// A heap-backed [`PacketBuf`] for tests and offline tools.
#[derive(Clone, PartialEq, Eq)]
pub struct VecBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecBuf {
    /// An empty packet with `headroom` bytes in front and `tailroom` behind.
    pub fn with_room(headroom: usize, tailroom: usize) -> Self {
        VecBuf {
            storage: vec![0; headroom + tailroom],
            start: headroom,
            end: headroom,
        }
    }

    /// A copy of `bytes` with `headroom` bytes in front and `tailroom` behind.
    pub fn from_slice_with_room(bytes: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut storage = vec![0; headroom + bytes.len() + tailroom];
        storage[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        VecBuf {
            storage,
            start: headroom,
            end: headroom + bytes.len(),
        }
    }

    /// A copy of `bytes` with [`DEFAULT_HEADROOM`] in front and room for an Ethernet MTU
    /// behind.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::from_slice_with_room(bytes, DEFAULT_HEADROOM, 2048)
    }

    /// The packet bytes as an owned vector.
    pub fn into_vec(self) -> Vec<u8> {
        self.storage[self.start..self.end].to_vec()
    }
}

impl core::fmt::Debug for VecBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VecBuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

impl PacketBuf for VecBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }
    fn prepend(&mut self, len: usize) -> Result<&mut [u8]> {
        if len > self.start {
            return Err(Error::NoRoom("prepend (headroom)"));
        }
        self.start -= len;
        Ok(&mut self.storage[self.start..self.start + len])
    }
    fn adj(&mut self, len: usize) -> Result<()> {
        if len > self.end - self.start {
            return Err(Error::Truncated("packet (adj)"));
        }
        self.start += len;
        Ok(())
    }
    fn append(&mut self, len: usize) -> Result<&mut [u8]> {
        if len > self.storage.len() - self.end {
            return Err(Error::NoRoom("append (tailroom)"));
        }
        let old = self.end;
        self.end += len;
        Ok(&mut self.storage[old..self.end])
    }
    fn trim(&mut self, len: usize) -> Result<()> {
        if len > self.end - self.start {
            return Err(Error::Truncated("packet (trim)"));
        }
        self.end -= len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_append_trim_round_trip() {
        let mut b = VecBuf::from_slice_with_room(&[1, 2, 3], 4, 2);
        assert_eq!((b.headroom(), b.tailroom()), (4, 2));
        b.prepend(4).unwrap().copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(b.data(), &[9, 9, 9, 9, 1, 2, 3]);
        assert_eq!(b.prepend(1), Err(Error::NoRoom("prepend (headroom)")));
        b.append(2).unwrap().copy_from_slice(&[7, 7]);
        assert!(b.append(1).is_err());
        b.adj(4).unwrap();
        b.trim(2).unwrap();
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(b.adj(4).is_err());
        assert!(b.trim(4).is_err());
        assert_eq!(b.data(), &[1, 2, 3], "failed calls change nothing");
        b.set_len(5).unwrap();
        assert_eq!(b.data(), &[1, 2, 3, 0, 0]);
        b.set_len(1).unwrap();
        assert_eq!(b.into_vec(), vec![1]);
    }
}
