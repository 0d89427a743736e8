//! Port configuration mistakes are clear errors naming the device and the limit, never
//! aborts. One #[test] per file: one EAL per process.

use std::sync::Arc;

use anycast6_dpdk::{Eal, EalArgs, Error, Mempool, Port, PortConfig, RssMode, DEFAULT_DATA_ROOM};

#[test]
fn configuration_mistakes_are_errors_that_name_device_and_limit() {
    let eal = Eal::init(
        EalArgs::virtual_devices()
            .lcores("0")
            .vdev("net_ring0")
            .as_slice(),
    )
    .expect("EAL init");
    let pool = Arc::new(Mempool::new(&eal, "err_pool", 2047, 0, DEFAULT_DATA_ROOM).unwrap());

    // Unknown devices.
    let e = Port::open(&eal, "net_nosuchdriver0").unwrap_err();
    assert!(matches!(e, Error::DeviceNotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("net_nosuchdriver0"), "{e}");
    let e = Port::open(&eal, "0000:ff:1f.7").unwrap_err();
    assert!(matches!(e, Error::DeviceNotFound { .. }), "{e:?}");
    assert!(matches!(Port::open(&eal, ""), Err(Error::BadName { .. })));
    assert!(matches!(
        Port::open(&eal, "net_ring\0x"),
        Err(Error::BadName { .. })
    ));

    // A port probed at run time from devargs (not given to the EAL) works too.
    let null = Port::open(&eal, "net_null0,size=64").unwrap();
    assert_eq!(null.info().unwrap().driver, "net_null");

    let mut port = Port::open(&eal, "net_ring0").unwrap();
    assert!(
        matches!(Port::open(&eal, "net_ring0"), Err(Error::Port { .. })),
        "one owner per port"
    );
    let info = port.info().unwrap();

    // Too many queues.
    let too_many = info.max_rx_queues + 1;
    let e = port
        .configure(
            &pool,
            &PortConfig {
                rx_queues: too_many,
                ..PortConfig::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e,
        Error::TooManyQueues {
            device: "net_ring0".into(),
            direction: "RX",
            requested: too_many,
            max: info.max_rx_queues
        }
    );
    assert!(
        e.to_string()
            .contains(&format!("at most {}", info.max_rx_queues)),
        "{e}"
    );
    let e = port
        .configure(
            &pool,
            &PortConfig {
                tx_queues: u16::MAX,
                ..PortConfig::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooManyQueues {
                direction: "TX",
                ..
            }
        ),
        "{e:?}"
    );
    let e = port
        .configure(
            &pool,
            &PortConfig {
                rx_queues: 0,
                ..PortConfig::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::NoQueues { .. }), "{e:?}");

    // MTU outside the device's range, and an MTU the mbufs cannot hold.
    let e = port
        .configure(
            &pool,
            &PortConfig {
                mtu: Some(info.min_mtu - 1),
                ..PortConfig::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::BadMtu { .. }), "{e:?}");
    assert!(e.to_string().contains("net_ring0"), "{e}");
    let e = port
        .configure(
            &pool,
            &PortConfig {
                mtu: Some(9000),
                ..PortConfig::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::MtuExceedsMbuf { mtu: 9000, .. }),
        "{e:?}"
    );

    // net_ring hashes nothing: RSS over several queues degrades to off, it does not fail.
    let queues = port
        .configure(
            &pool,
            &PortConfig {
                rx_queues: 2,
                tx_queues: 2,
                rss: RssMode::Ipv6FiveTuple,
                ..PortConfig::default()
            },
        )
        .unwrap();
    assert_eq!((queues.rx.len(), queues.tx.len()), (2, 2));
    assert_eq!(queues.rss, RssMode::Off);
    port.start().unwrap();

    // Queue handles alive: no reconfiguration, no stop.
    let e = port.configure(&pool, &PortConfig::default()).unwrap_err();
    assert!(matches!(e, Error::QueuesInUse { count: 4, .. }), "{e:?}");
    assert!(matches!(port.stop(), Err(Error::QueuesInUse { .. })));
    drop(queues);
    port.stop().unwrap();
    let queues = port.configure(&pool, &PortConfig::default()).unwrap();
    assert_eq!(queues.rx.len(), 1);
    port.start().unwrap();
    assert_eq!(port.mac_address().unwrap().len(), 6);
    drop((queues, port, null));
    assert_eq!(
        pool.in_use(),
        0,
        "closing the ports returned their RX buffers"
    );
}
