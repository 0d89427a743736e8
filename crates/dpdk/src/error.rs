use thiserror::Error;

/// What went wrong in the DPDK layer.
///
/// Messages name the device, queue or limit concerned and, where there is one, the fix.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `Eal::init` was called a second time in this process (DPDK supports one EAL per
    /// process, even after cleanup).
    #[error(
        "the DPDK EAL is already initialised in this process (rte_eal_init runs once per process)"
    )]
    EalAlreadyInitialised,
    /// `rte_eal_init` failed.
    #[error("rte_eal_init failed: {reason}; check the EAL arguments ({args})")]
    EalInit {
        /// DPDK's error text.
        reason: String,
        /// The arguments passed, joined with spaces.
        args: String,
    },
    /// An EAL argument contains a NUL byte.
    #[error("EAL argument {0:?} contains a NUL byte")]
    BadEalArgument(String),
    /// A name (mempool, device) is not usable by DPDK.
    #[error("invalid name {name:?}: {reason}")]
    BadName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `rte_pktmbuf_pool_create` failed.
    #[error("cannot create mempool {name:?} ({size} mbufs of {data_room} bytes): {reason}")]
    MempoolCreate {
        /// Pool name.
        name: String,
        /// Number of mbufs asked for.
        size: u32,
        /// Data room per mbuf.
        data_room: u16,
        /// DPDK's error text.
        reason: String,
    },
    /// No free mbuf in the pool.
    #[error("mempool {0:?} has no free mbuf")]
    MempoolExhausted(String),
    /// Bytes do not fit in one mbuf.
    #[error("{len} bytes do not fit in one mbuf ({room} bytes of room)")]
    MbufTooSmall {
        /// Bytes to store.
        len: usize,
        /// Room available.
        room: usize,
    },
    /// The device name matched no port and probing it failed.
    #[error("no DPDK device {device:?}: {reason} (vdev names look like net_ring0, net_pcap0,rx_pcap=in.pcap; PCI devices must be bound to vfio-pci, see docs/dpdk.md)")]
    DeviceNotFound {
        /// Device string given.
        device: String,
        /// DPDK's error text.
        reason: String,
    },
    /// More queues were requested than the device has.
    #[error("device {device:?} has at most {max} {direction} queues, {requested} requested")]
    TooManyQueues {
        /// Device name.
        device: String,
        /// "RX" or "TX".
        direction: &'static str,
        /// Queues asked for.
        requested: u16,
        /// The device's limit (`dev_info.max_{rx,tx}_queues`).
        max: u16,
    },
    /// A queue count of zero.
    #[error("device {device:?}: at least one RX and one TX queue are needed")]
    NoQueues {
        /// Device name.
        device: String,
    },
    /// The MTU is outside what the device supports.
    #[error("device {device:?}: MTU {mtu} outside the supported range {min}..={max}")]
    BadMtu {
        /// Device name.
        device: String,
        /// MTU asked for.
        mtu: u16,
        /// `dev_info.min_mtu`.
        min: u16,
        /// `dev_info.max_mtu`.
        max: u16,
    },
    /// The MTU does not fit the mempool's mbufs (scatter RX is not used).
    #[error("device {device:?}: MTU {mtu} needs {frame} bytes per frame but mempool mbufs hold {data_room}; use a larger data room or a smaller MTU")]
    MtuExceedsMbuf {
        /// Device name.
        device: String,
        /// MTU asked for.
        mtu: u16,
        /// Frame size the MTU implies.
        frame: u32,
        /// Data room of the pool's mbufs (without headroom).
        data_room: u32,
    },
    /// The port is in use by queue handles and cannot be reconfigured or stopped.
    #[error(
        "device {device:?}: {count} RX/TX queue handle(s) still alive; drop them before {action}"
    )]
    QueuesInUse {
        /// Device name.
        device: String,
        /// Queue handles outstanding.
        count: usize,
        /// What was attempted.
        action: &'static str,
    },
    /// An ethdev call failed.
    #[error("device {device:?}: {call} failed: {reason}")]
    Port {
        /// Device name.
        device: String,
        /// The DPDK function.
        call: &'static str,
        /// DPDK's error text.
        reason: String,
    },
    /// The lcore is not a usable worker (not enabled in the lcore list, or the main lcore).
    #[error("lcore {lcore} is not a worker lcore of this EAL (workers: {workers:?})")]
    NotAWorker {
        /// The lcore asked for.
        lcore: u32,
        /// The enabled worker lcores.
        workers: Vec<u32>,
    },
    /// The lcore is already running a launched closure.
    #[error("lcore {0} is busy running a launched closure")]
    LcoreBusy(u32),
    /// `rte_eal_remote_launch` failed.
    #[error("launch on lcore {lcore} failed: {reason}")]
    Launch {
        /// The lcore.
        lcore: u32,
        /// DPDK's error text.
        reason: String,
    },
    /// The closure running on a worker lcore panicked.
    #[error("the closure on lcore {lcore} panicked: {message}")]
    WorkerPanicked {
        /// The lcore.
        lcore: u32,
        /// The panic message, when it was a string.
        message: String,
    },
}

/// Result of the DPDK layer.
pub type Result<T> = core::result::Result<T, Error>;
