//! Mbuf and MbufBurst ownership and the PacketBuf contract, checked against the pool's
//! in-use count (no leak, no double free). One #[test] per file: one EAL per process.

use std::sync::Arc;

use anycast6_dpdk::{Eal, EalArgs, Error, MbufBurst, Mempool, DEFAULT_DATA_ROOM, MBUF_HEADROOM};
use anycast6_wire::{Error as WireError, PacketBuf, VecBuf};

#[test]
fn mbufs_behave_like_vecbuf_and_never_leak() {
    let eal = Eal::init(EalArgs::virtual_devices().lcores("0").as_slice()).expect("EAL init");
    let pool = Arc::new(Mempool::new(&eal, "mbuf_test", 127, 0, DEFAULT_DATA_ROOM).unwrap());
    assert_eq!(pool.size(), 127);
    assert_eq!(pool.data_room(), DEFAULT_DATA_ROOM);
    assert_eq!(pool.in_use(), 0);

    // Same operations on an mbuf and a VecBuf with the same geometry give the same bytes
    // and the same errors.
    let mut m = pool.alloc_from_slice(&[1, 2, 3]).unwrap();
    let tail = usize::from(DEFAULT_DATA_ROOM - MBUF_HEADROOM) - 3;
    let mut v = VecBuf::from_slice_with_room(&[1, 2, 3], usize::from(MBUF_HEADROOM), tail);
    assert_eq!((m.headroom(), m.tailroom()), (v.headroom(), v.tailroom()));
    assert_eq!((m.refcnt(), m.nb_segs(), m.pkt_len()), (1, 1, 3));
    m.prepend(40).unwrap().fill(0xaa);
    v.prepend(40).unwrap().fill(0xaa);
    m.append(5).unwrap().copy_from_slice(&[9; 5]);
    v.append(5).unwrap().copy_from_slice(&[9; 5]);
    m.data_mut()[0] = 0x60;
    v.data_mut()[0] = 0x60;
    assert_eq!(m.data(), v.data());
    assert_eq!(m.prepend(1000).unwrap_err(), v.prepend(1000).unwrap_err());
    assert_eq!(
        m.prepend(1 << 20).unwrap_err(),
        WireError::NoRoom("prepend (headroom)")
    );
    assert_eq!(
        m.append(1 << 20).unwrap_err(),
        v.append(1 << 20).unwrap_err()
    );
    assert_eq!(m.adj(1000).unwrap_err(), v.adj(1000).unwrap_err());
    assert_eq!(m.trim(1000).unwrap_err(), v.trim(1000).unwrap_err());
    m.adj(40).unwrap();
    v.adj(40).unwrap();
    m.trim(5).unwrap();
    v.trim(5).unwrap();
    assert_eq!(m.data(), &[1, 2, 3]);
    assert_eq!(m.data(), v.data());
    assert_eq!((m.headroom(), m.tailroom()), (v.headroom(), v.tailroom()));
    m.set_len(6).unwrap();
    assert_eq!(m.data(), &[1, 2, 3, 0, 0, 0]);
    assert_eq!((m.data_len(), m.pkt_len()), (6, 6));
    // Whole headroom and whole tailroom are usable.
    let (h, t) = (m.headroom(), m.tailroom());
    m.prepend(h).unwrap();
    m.append(t).unwrap();
    assert_eq!(m.len(), usize::from(DEFAULT_DATA_ROOM));
    assert!(matches!(
        pool.alloc_from_slice(&vec![0; 4000]),
        Err(Error::MbufTooSmall { len: 4000, .. })
    ));
    assert_eq!(
        pool.in_use(),
        1,
        "the failed alloc_from_slice freed its mbuf"
    );
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // Bursts: push/pop/drain/truncate/clear and Drop free exactly what they hold.
    let mut burst = MbufBurst::<8>::new();
    pool.alloc_bulk(&mut burst, 5).unwrap();
    assert_eq!((burst.len(), pool.in_use()), (5, 5));
    pool.alloc_bulk(&mut burst, 100).unwrap(); // capped at the spare capacity
    assert!(burst.is_full());
    let extra = pool.alloc().unwrap();
    let extra = burst.push(extra).unwrap_err(); // full: handed back, not lost
    drop(extra);
    assert_eq!(pool.in_use(), 8);
    for (i, m) in burst.iter_mut().enumerate() {
        m.extend_from_slice(&[i as u8]).unwrap();
    }
    let last = burst.pop().unwrap();
    assert_eq!(last.data(), &[7]);
    let second = burst.swap_remove(1).unwrap();
    assert_eq!(second.data(), &[1]);
    assert_eq!(burst.as_slice()[1].data(), &[6], "last moved into the hole");
    drop((last, second));
    burst.truncate(4);
    assert_eq!((burst.len(), pool.in_use()), (4, 4));
    let mut drain = burst.drain();
    let first = drain.next().unwrap();
    assert_eq!(first.data(), &[0]);
    drop(drain); // frees the 3 not taken
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), 1);
    drop(first);
    pool.alloc_bulk(&mut burst, 3).unwrap();
    drop(burst);
    assert_eq!(pool.in_use(), 0);

    // Exhaustion is an error, not a crash; all-or-nothing bulk allocation.
    let mut all: Vec<_> = (0..127).map(|_| pool.alloc().unwrap()).collect();
    assert!(matches!(pool.alloc(), Err(Error::MempoolExhausted(_))));
    let mut b = MbufBurst::<32>::new();
    assert!(pool.alloc_bulk(&mut b, 1).is_err());
    assert!(b.is_empty());
    all.truncate(100);
    assert!(
        pool.alloc_bulk(&mut b, 28).is_err(),
        "27 free, 28 asked: nothing taken"
    );
    assert_eq!(pool.in_use(), 100);
    pool.alloc_bulk(&mut b, 27).unwrap();
    drop((all, b));
    assert_eq!(pool.in_use(), 0);

    // Mbufs may be freed on another thread (handed to the control thread).
    let moved = pool.alloc_from_slice(b"exception").unwrap();
    std::thread::spawn(move || assert_eq!(moved.data(), b"exception"))
        .join()
        .unwrap();
    assert_eq!(pool.in_use(), 0);

    // A duplicate pool name is a clear error.
    let dup = Mempool::new(&eal, "mbuf_test", 63, 0, DEFAULT_DATA_ROOM).unwrap_err();
    assert!(matches!(dup, Error::MempoolCreate { .. }), "{dup}");
    assert!(dup.to_string().contains("mbuf_test"), "{dup}");
}
