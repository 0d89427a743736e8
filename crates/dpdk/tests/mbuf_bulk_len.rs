//! `Mempool::alloc_bulk_with_len` and `Mbuf::set_data_len`, the generator's allocation
//! path: lengths, headroom and reset of reused mbufs, errors that change nothing, and
//! frames built that way going through a `net_ring` loopback byte for byte.
//! One #[test] per file: the EAL initialises once per process.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast6_dpdk::{
    Eal, EalArgs, Error, MbufBurst, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM, MBUF_HEADROOM,
};
use anycast6_wire::{Error as WireError, PacketBuf};

const POOL: u32 = 255;

#[test]
fn bulk_allocation_with_length_gives_ready_single_segment_mbufs() {
    let args = EalArgs::virtual_devices()
        .lcores("0")
        .args(["-m", "512"])
        .vdev("net_ring0");
    let eal = Eal::init(args.as_slice()).expect("EAL init");
    // No per-lcore cache: in_use() is then exact after every call.
    let pool = Arc::new(Mempool::new(&eal, "bulk_len", POOL, 0, DEFAULT_DATA_ROOM).unwrap());
    let room = usize::from(DEFAULT_DATA_ROOM - MBUF_HEADROOM);

    // Lengths and geometry.
    let mut burst = MbufBurst::<32>::new();
    pool.alloc_bulk_with_len(&mut burst, 5, 64).unwrap();
    assert_eq!((burst.len(), pool.in_use()), (5, 5));
    for m in &burst {
        assert_eq!(
            (m.data_len(), m.pkt_len(), m.nb_segs(), m.refcnt()),
            (64, 64, 1, 1)
        );
        assert_eq!(m.headroom(), usize::from(MBUF_HEADROOM));
        assert_eq!(m.tailroom(), room - 64);
        assert_eq!(m.data().len(), 64);
    }
    // Appended after what is held, capped at the spare capacity.
    pool.alloc_bulk_with_len(&mut burst, 100, 1514).unwrap();
    assert!(burst.is_full());
    assert_eq!(pool.in_use(), 32);
    assert!(burst.iter().skip(5).all(|m| m.data_len() == 1514));
    pool.alloc_bulk_with_len(&mut burst, 1, 64).unwrap(); // full: nothing to do
    assert_eq!(pool.in_use(), 32);
    burst.clear();
    assert_eq!(pool.in_use(), 0);

    // The whole data room after the headroom is usable; one more byte is an error that
    // takes nothing from the pool and leaves the burst alone.
    pool.alloc_bulk_with_len(&mut burst, 2, room as u16)
        .unwrap();
    assert!(burst.iter().all(|m| m.len() == room && m.tailroom() == 0));
    let err = pool
        .alloc_bulk_with_len(&mut burst, 2, room as u16 + 1)
        .unwrap_err();
    assert!(
        matches!(err, Error::MbufTooSmall { len, room: r } if len == room + 1 && r == room),
        "{err:?}"
    );
    assert_eq!((burst.len(), pool.in_use()), (2, 2));
    burst.clear();
    // Zero-length packets and a zero count are fine.
    pool.alloc_bulk_with_len(&mut burst, 3, 0).unwrap();
    assert!(burst.iter().all(|m| m.is_empty()));
    pool.alloc_bulk_with_len(&mut burst, 0, 64).unwrap();
    assert_eq!(burst.len(), 3);
    burst.clear();

    // All or nothing when the pool runs short.
    let mut big = MbufBurst::<256>::new();
    pool.alloc_bulk_with_len(&mut big, 250, 64).unwrap();
    let err = pool.alloc_bulk_with_len(&mut burst, 10, 64).unwrap_err();
    assert!(
        matches!(err, Error::MempoolExhausted(ref n) if n == "bulk_len"),
        "{err:?}"
    );
    assert_eq!((burst.len(), pool.in_use()), (0, 250));
    pool.alloc_bulk_with_len(&mut burst, 5, 64).unwrap();
    assert_eq!(pool.in_use(), POOL);

    // Mbufs come back from their last user reset: headroom, length and segment count as
    // new whatever was done to them. Every mbuf of the pool is touched, then reallocated.
    for m in big.iter_mut().chain(burst.iter_mut()) {
        m.adj(10).unwrap();
        m.prepend(100).unwrap();
        m.set_data_len(7).unwrap();
    }
    big.clear();
    burst.clear();
    assert_eq!(pool.in_use(), 0);
    pool.alloc_bulk_with_len(&mut big, 250, 100).unwrap();
    pool.alloc_bulk_with_len(&mut burst, 5, 100).unwrap();
    for m in big.iter().chain(burst.iter()) {
        assert_eq!(
            (m.headroom(), m.data_len(), m.pkt_len()),
            (usize::from(MBUF_HEADROOM), 100, 100)
        );
        assert_eq!(m.nb_segs(), 1);
    }
    big.clear();
    burst.clear();

    // What a receive path or a chain leaves behind is gone too: the call writes only the
    // mbuf's first cache line and relies on the pool's invariant (next NULL, one segment,
    // which DPDK's free restores) for the second, so every mbuf is left with receive
    // metadata and offload flags set, and pairs of them chained, then freed and taken again.
    pool.alloc_bulk_with_len(&mut big, 250, 64).unwrap();
    pool.alloc_bulk_with_len(&mut burst, 5, 64).unwrap();
    let mut all: Vec<_> = big.drain().chain(burst.drain()).collect();
    for m in &mut all {
        let raw = m.as_ptr();
        // SAFETY: the mbuf is exclusively ours; plain field writes.
        unsafe {
            (*raw).port = 3;
            // RX flags (bits 0-23) and TX offload requests (bits 52-60); not 61-62, which
            // mark external and indirect buffers.
            (*raw).ol_flags = 0x1ff0_0000_00ff_00ffu64;
            (*raw).vlan_tci = 0x123;
            (*raw).vlan_tci_outer = 0x456;
            (*raw).__bindgen_anon_1.packet_type = 0x0000_0291;
        }
    }
    while all.len() >= 2 {
        let tail = all.pop().unwrap();
        let head = all.pop().unwrap();
        let (h, t) = (head.as_ptr(), tail.into_raw());
        // SAFETY: both are ours; `head` now owns `tail`, and dropping it frees the chain.
        unsafe {
            (*h).next = t;
            (*h).nb_segs = 2;
            (*h).pkt_len += u32::from((*t).data_len);
        }
        assert_eq!((head.nb_segs(), head.pkt_len()), (2, 128));
        // On a chain, adj and prepend act on the first segment (as rte_pktmbuf_adj and
        // _prepend do); trim refuses and changes nothing.
        let mut head = head;
        head.adj(10).unwrap();
        assert_eq!((head.data_len(), head.pkt_len()), (54, 118));
        assert_eq!(
            head.trim(1).unwrap_err(),
            WireError::Unsupported("trim of a multi-segment mbuf")
        );
        assert_eq!((head.data_len(), head.pkt_len()), (54, 118));
        head.prepend(10).unwrap();
        assert_eq!(
            (head.data_len(), head.pkt_len(), head.nb_segs()),
            (64, 128, 2)
        );
        drop(head);
    }
    drop(all);
    assert_eq!(pool.in_use(), 0);
    pool.alloc_bulk_with_len(&mut big, 250, 90).unwrap();
    pool.alloc_bulk_with_len(&mut burst, 5, 90).unwrap();
    for m in big.iter().chain(burst.iter()) {
        let raw = m.as_ptr();
        // SAFETY: reads of an mbuf we hold.
        let (next, vlan, vlan_outer, ptype) = unsafe {
            (
                (*raw).next,
                (*raw).vlan_tci,
                (*raw).vlan_tci_outer,
                (*raw).__bindgen_anon_1.packet_type,
            )
        };
        assert!(next.is_null());
        assert_eq!((m.nb_segs(), m.pkt_len(), m.data_len()), (1, 90, 90));
        assert_eq!(m.headroom(), usize::from(MBUF_HEADROOM));
        assert_eq!(
            (m.ol_flags(), m.port(), vlan, vlan_outer, ptype),
            (0, u16::MAX, 0, 0, 0)
        );
    }
    big.clear();
    burst.clear();

    // set_data_len: grow into the tailroom, shrink, refuse past the room; inline, like
    // PacketBuf::set_len but without zeroing what it exposes.
    let mut m = pool.alloc_from_slice(&[1, 2, 3, 4]).unwrap();
    m.set_data_len(2).unwrap();
    assert_eq!(m.data(), &[1, 2]);
    m.set_data_len(4).unwrap();
    assert_eq!(
        m.data(),
        &[1, 2, 3, 4],
        "bytes past the length stay in the buffer"
    );
    assert_eq!((m.data_len(), m.pkt_len()), (4, 4));
    assert_eq!(
        m.set_data_len(room + 1).unwrap_err(),
        WireError::NoRoom("set_data_len (tailroom)")
    );
    assert_eq!(m.len(), 4);
    m.prepend(8).unwrap();
    m.set_data_len(room + 8).unwrap(); // the room counts from the data offset
    assert_eq!(m.tailroom(), 0);
    drop(m);
    assert_eq!(pool.in_use(), 0);

    // Frames built the generator's way (bulk allocation with the length, bytes written in
    // place) go out and come back through a port unchanged.
    let mut port = Port::open(&eal, "net_ring0").unwrap();
    let mut queues = port.configure(&pool, &PortConfig::default()).unwrap();
    port.start().unwrap();
    let (rx, tx) = (&mut queues.rx[0], &mut queues.tx[0]);
    const PACKETS: u64 = 2_000;
    const PAYLOAD: usize = 64;
    let frame_len = common::ipv6_udp_frame(0, PAYLOAD).len();
    let (mut out, mut back) = (MbufBurst::<32>::new(), MbufBurst::<32>::new());
    let (mut next_tx, mut next_rx) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while next_rx < PACKETS {
        assert!(Instant::now() < deadline, "stuck at {next_rx} received");
        let want = (out.spare() as u64).min(PACKETS - next_tx) as usize;
        let first = out.len();
        pool.alloc_bulk_with_len(&mut out, want, frame_len as u16)
            .unwrap();
        for m in &mut out.as_mut_slice()[first..] {
            m.data_mut()
                .copy_from_slice(&common::ipv6_udp_frame(next_tx, PAYLOAD));
            next_tx += 1;
        }
        tx.tx_burst(&mut out);
        rx.rx_burst(&mut back);
        for m in back.drain() {
            assert_eq!(
                common::frame_seq(m.data()),
                Some(next_rx),
                "lost or reordered"
            );
            assert_eq!(m.data(), &common::ipv6_udp_frame(next_rx, PAYLOAD)[..]);
            next_rx += 1;
        }
    }
    let stats = port.stats().unwrap();
    assert_eq!((stats.opackets, stats.ipackets), (PACKETS, PACKETS));
    drop(queues);
    port.stop().unwrap();
    drop(port);
    assert_eq!(pool.in_use(), 0);
}
