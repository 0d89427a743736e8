//! `net_ring` loopback: 10 000 generated IPv6 frames out and back in, byte for byte.
//! One #[test] per file: the EAL initialises once per process.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast6_dpdk::{Eal, EalArgs, MbufBurst, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};
use anycast6_wire::PacketBuf;

const PACKETS: u64 = 10_000;

#[test]
fn net_ring_loopback_returns_every_frame_unchanged() {
    let args = EalArgs::virtual_devices().lcores("0").vdev("net_ring0");
    let eal = Eal::init(args.as_slice()).expect("EAL init");
    assert!(matches!(
        Eal::init(args.as_slice()),
        Err(anycast6_dpdk::Error::EalAlreadyInitialised)
    ));

    let pool = Arc::new(Mempool::new(&eal, "ring_pool", 4095, 128, DEFAULT_DATA_ROOM).unwrap());
    let mut port = Port::open(&eal, "net_ring0").unwrap();
    assert_eq!(port.info().unwrap().driver, "net_ring");
    let mut queues = port.configure(&pool, &PortConfig::default()).unwrap();
    port.start().unwrap();
    assert!(port.link().unwrap().up);

    let (rx, tx) = (&mut queues.rx[0], &mut queues.tx[0]);
    let mut out = MbufBurst::<32>::new();
    let mut back = MbufBurst::<32>::new();
    let (mut next_tx, mut next_rx) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while next_rx < PACKETS {
        assert!(Instant::now() < deadline, "stuck at {next_rx} received");
        while !out.is_full() && next_tx < PACKETS {
            // Sizes from 64-byte frames up to a full 1500-byte MTU.
            let payload = 8 + (next_tx as usize * 37) % (1500 - 40 - 8 - 8);
            let frame = common::ipv6_udp_frame(next_tx, payload);
            out.push(pool.alloc_from_slice(&frame).unwrap()).unwrap();
            next_tx += 1;
        }
        tx.tx_burst(&mut out); // what the ring did not take stays in `out` for next round
        rx.rx_burst(&mut back);
        for m in back.drain() {
            let seq = common::frame_seq(m.data()).expect("frame too short");
            assert_eq!(seq, next_rx, "out of order or lost");
            let payload = 8 + (seq as usize * 37) % (1500 - 40 - 8 - 8);
            assert_eq!(m.data(), &common::ipv6_udp_frame(seq, payload)[..]);
            assert_eq!(m.nb_segs(), 1);
            next_rx += 1;
        }
    }

    let stats = port.stats().unwrap();
    assert_eq!((stats.ipackets, stats.opackets), (PACKETS, PACKETS));
    assert_eq!(
        stats.imissed + stats.ierrors + stats.oerrors + stats.rx_nombuf,
        0
    );
    assert!(!port.xstats().unwrap().is_empty());

    drop(queues);
    port.stop().unwrap();
    drop(port);
    assert_eq!(pool.in_use(), 0, "every mbuf came back to the pool");
}
