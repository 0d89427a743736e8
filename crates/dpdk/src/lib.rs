//! The safe DPDK layer of anycast6: EAL, mempools and mbufs, ethdev ports and queues,
//! lcore launch, the exception channel. The only crate of the workspace that calls DPDK.
//!
//! ```no_run
//! use std::sync::Arc;
//! use anycast6_dpdk::{Eal, EalArgs, Mempool, MbufBurst, Port, PortConfig};
//!
//! let eal = Eal::init(EalArgs::virtual_devices().lcores("0").vdev("net_ring0").as_slice())?;
//! let pool = Arc::new(Mempool::new(&eal, "pool", 8191, 256, anycast6_dpdk::DEFAULT_DATA_ROOM)?);
//! let mut port = Port::open(&eal, "net_ring0")?;
//! let mut queues = port.configure(&pool, &PortConfig::default())?;
//! port.start()?;
//! let mut burst = MbufBurst::<32>::new();
//! let got = queues.rx[0].rx_burst(&mut burst);
//! let sent = queues.tx[0].tx_burst(&mut burst);
//! assert!(sent <= got);
//! # Ok::<(), anycast6_dpdk::Error>(())
//! ```
//!
//! Invariants the types keep:
//! * one EAL per process ([`Eal::init`] errs the second time), cleaned up on drop once no
//!   mempool or port is left;
//! * an [`Mbuf`] is owned by exactly one value (an `Mbuf`, a slot of an [`MbufBurst`], a
//!   NIC queue after TX, a channel slot) and freed exactly once;
//! * an RX/TX queue is used by one lcore at a time (`Send`, not `Sync`), and the port stays
//!   open while queue handles exist.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks
)]

mod burst;
mod channel;
mod eal;
mod error;
mod ffi;
mod huge;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod prefetch;

pub use burst::{Drain, MbufBurst, DEFAULT_BURST};
pub use channel::{exception_channel, ExceptionReceiver, ExceptionSender};
pub use eal::{current_lcore, hugepages_free, rdtsc, Eal, EalArgs};
pub use error::{Error, Result};
pub use huge::{HugeArray, HUGE_PAGE_SIZE};
pub use lcore::LcoreJoinHandle;
pub use mbuf::Mbuf;
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, MBUF_HEADROOM};
pub use port::{
    LinkStatus, Port, PortConfig, PortInfo, PortQueues, PortStats, RssMode, RxQueue, TxQueue,
};
pub use prefetch::{equal_lanes, equal_lanes_portable, prefetch_read};

/// The raw bindings, for what this crate does not wrap.
pub use anycast6_dpdk_sys as sys;
