//! Ethernet ports (ethdev) and their RX/TX queues.

use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast6_dpdk_sys as sys;

use crate::burst::MbufBurst;
use crate::eal::{Eal, LIVE_RESOURCES};
use crate::error::{Error, Result};
use crate::ffi;
use crate::mempool::Mempool;

/// Ports opened through [`Port::open`], so that one device has one owner.
static PORT_OPEN: [AtomicBool; sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_ETHPORTS as usize];

/// Ethernet header plus FCS: what a frame adds to the MTU.
const ETHER_OVERHEAD: u32 = sys::RTE_ETHER_HDR_LEN + sys::RTE_ETHER_CRC_LEN;
/// The MTU DPDK applies when none is configured.
const DEFAULT_MTU: u16 = sys::RTE_ETHER_MTU as u16;

/// How the NIC spreads received packets over RX queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RssMode {
    /// No hashing: everything lands on queue 0.
    Off,
    /// Hash on the IPv6 source/destination pair (client affinity).
    #[default]
    Ipv6Addresses,
    /// Hash on the IPv6 addresses plus TCP/UDP/SCTP ports (flow affinity).
    Ipv6FiveTuple,
}

impl RssMode {
    /// The `RTE_ETH_RSS_*` flow types the mode asks for.
    pub fn hash_functions(self) -> u64 {
        match self {
            RssMode::Off => 0,
            // SAFETY: the shim functions return constants.
            RssMode::Ipv6Addresses => unsafe { sys::shim_rte_eth_rss_ipv6_addresses() },
            // SAFETY: as above.
            RssMode::Ipv6FiveTuple => unsafe { sys::shim_rte_eth_rss_ipv6_5tuple() },
        }
    }
}

/// What [`Port::configure`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues (one per worker lcore).
    pub rx_queues: u16,
    /// TX queues.
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_descriptors: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_descriptors: u16,
    /// MTU; `None` keeps DPDK's default of 1500.
    pub mtu: Option<u16>,
    /// RSS hashing, used when there is more than one RX queue.
    pub rss: RssMode,
    /// Receive frames for every destination MAC.
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mtu: None,
            rss: RssMode::default(),
            promiscuous: true,
        }
    }
}

/// Device capabilities (`rte_eth_dev_info`), the part this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// PMD name, e.g. `net_ring`, `net_ice`.
    pub driver: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// Minimum MTU.
    pub min_mtu: u16,
    /// Maximum MTU.
    pub max_mtu: u16,
    /// `RTE_ETH_RSS_*` flow types the device can hash.
    pub rss_offloads: u64,
    /// RX descriptor count limits (min, max).
    pub rx_descriptors: (u16, u16),
    /// TX descriptor count limits (min, max).
    pub tx_descriptors: (u16, u16),
    /// `RTE_ETH_TX_OFFLOAD_*` capabilities.
    pub tx_offloads: u64,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the NIC because RX queues were full.
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// The shared part of a port: what queue handles need to keep the device open.
#[derive(Debug)]
struct PortInner {
    id: u16,
    name: String,
    /// The mempool RX queues take buffers from; it must outlive the queues' descriptors.
    rx_pool: Option<Arc<Mempool>>,
    started: AtomicBool,
}

impl Drop for PortInner {
    fn drop(&mut self) {
        if self.started.load(Ordering::Acquire) {
            // SAFETY: no queue handle is left (this is the last reference), so nothing
            // polls the port; stopping a started port is always allowed.
            let ret = unsafe { sys::rte_eth_dev_stop(self.id) };
            if ret < 0 {
                tracing::warn!(port = %self.name, error = %ffi::errno_text(ret), "rte_eth_dev_stop failed");
            }
        }
        // SAFETY: as above; closing releases the queues and the mbufs they hold, after
        // which rx_pool may go.
        let ret = unsafe { sys::rte_eth_dev_close(self.id) };
        if ret < 0 {
            tracing::warn!(port = %self.name, error = %ffi::errno_text(ret), "rte_eth_dev_close failed");
        }
        PORT_OPEN[self.id as usize].store(false, Ordering::Release);
        LIVE_RESOURCES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A DPDK Ethernet port. Owned by the control thread (`Send`, not `Sync`); its RX/TX queue
/// handles go to the worker lcores. The device is stopped and closed when the port and all
/// its queue handles are gone.
#[derive(Debug)]
pub struct Port {
    inner: Arc<PortInner>,
    _not_sync: PhantomData<Cell<()>>,
}

/// Queue handles created by [`Port::configure`].
#[derive(Debug)]
pub struct PortQueues {
    /// RX queues, index = queue id.
    pub rx: Vec<RxQueue>,
    /// TX queues, index = queue id.
    pub tx: Vec<TxQueue>,
    /// The RSS hashing in effect (may be less than asked, see [`Port::configure`]).
    pub rss: RssMode,
    /// The `RTE_ETH_RSS_*` flow types in effect.
    pub rss_hash_functions: u64,
}

impl Port {
    /// Opens a device by name: a port the EAL already created (`--vdev`, PCI scan) or, if
    /// none has that name, a device probed now from `device` as devargs (e.g.
    /// `net_ring0`, `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`, `0000:3b:00.0`).
    pub fn open(_eal: &Eal, device: &str) -> Result<Port> {
        let name = device.split(',').next().unwrap_or("").trim();
        if name.is_empty() {
            return Err(Error::BadName {
                name: device.to_owned(),
                reason: "empty device name",
            });
        }
        let c_name = CString::new(name).map_err(|_| Error::BadName {
            name: device.to_owned(),
            reason: "contains a NUL byte",
        })?;
        let id = match port_by_name(&c_name) {
            Some(id) => id,
            None => {
                let c_dev = CString::new(device).map_err(|_| Error::BadName {
                    name: device.to_owned(),
                    reason: "contains a NUL byte",
                })?;
                // SAFETY: the EAL is initialised (&Eal); c_dev is a valid C string.
                let ret = unsafe { sys::rte_dev_probe(c_dev.as_ptr()) };
                if ret < 0 {
                    return Err(Error::DeviceNotFound {
                        device: device.to_owned(),
                        reason: ffi::errno_text(ret),
                    });
                }
                port_by_name(&c_name).ok_or_else(|| Error::DeviceNotFound {
                    device: device.to_owned(),
                    reason: format!("probed, but no ethdev port is named {name:?}"),
                })?
            }
        };
        if PORT_OPEN[id as usize].swap(true, Ordering::AcqRel) {
            return Err(Error::Port {
                device: name.to_owned(),
                call: "Port::open",
                reason: "the port is already open in this process".into(),
            });
        }
        LIVE_RESOURCES.fetch_add(1, Ordering::AcqRel);
        Ok(Port {
            inner: Arc::new(PortInner {
                id,
                name: name.to_owned(),
                rx_pool: None,
                started: AtomicBool::new(false),
            }),
            _not_sync: PhantomData,
        })
    }

    /// The ethdev port id.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn err(&self, call: &'static str, ret: i32) -> Error {
        Error::Port {
            device: self.inner.name.clone(),
            call,
            reason: ffi::errno_text(ret),
        }
    }

    /// The device's capabilities.
    pub fn info(&self) -> Result<PortInfo> {
        let info = self.raw_info()?;
        Ok(PortInfo {
            // SAFETY: driver_name is NULL or a static string of the PMD.
            driver: unsafe { ffi::c_str_to_string(info.driver_name) },
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            rss_offloads: info.flow_type_rss_offloads,
            rx_descriptors: (info.rx_desc_lim.nb_min, info.rx_desc_lim.nb_max),
            tx_descriptors: (info.tx_desc_lim.nb_min, info.tx_desc_lim.nb_max),
            tx_offloads: info.tx_offload_capa,
        })
    }

    fn raw_info(&self) -> Result<sys::rte_eth_dev_info> {
        let mut info = MaybeUninit::<sys::rte_eth_dev_info>::zeroed();
        // SAFETY: valid port id; DPDK fills the struct.
        let ret = unsafe { sys::rte_eth_dev_info_get(self.inner.id, info.as_mut_ptr()) };
        if ret != 0 {
            return Err(self.err("rte_eth_dev_info_get", ret));
        }
        // SAFETY: zero-initialised, then filled by DPDK; all-zero is valid for every field.
        Ok(unsafe { info.assume_init() })
    }

    /// NUMA socket of the device (0 when unknown, as for virtual devices).
    pub fn socket(&self) -> u32 {
        // SAFETY: valid port id.
        let s = unsafe { sys::rte_eth_dev_socket_id(self.inner.id) };
        u32::try_from(s).unwrap_or(0)
    }

    /// Configures the port (stopping it first if started) and sets up its queues, with RX
    /// buffers from `pool`. Fails with a clear error, naming the device and the limit, for
    /// too many queues, a bad MTU or an MTU the pool's mbufs cannot hold. RSS the device
    /// cannot do is reduced to what it can (or turned off) with a warning; the result says
    /// what is in effect.
    pub fn configure(&mut self, pool: &Arc<Mempool>, config: &PortConfig) -> Result<PortQueues> {
        let name = self.inner.name.clone();
        let info = self.raw_info()?;
        let outstanding = Arc::strong_count(&self.inner) - 1;
        let Some(inner) = Arc::get_mut(&mut self.inner) else {
            return Err(Error::QueuesInUse {
                device: name,
                count: outstanding,
                action: "reconfiguring",
            });
        };
        let id = inner.id;
        let port_err = |call: &'static str, ret: i32| Error::Port {
            device: name.clone(),
            call,
            reason: ffi::errno_text(ret),
        };

        if config.rx_queues == 0 || config.tx_queues == 0 {
            return Err(Error::NoQueues { device: name });
        }
        for (direction, requested, max) in [
            ("RX", config.rx_queues, info.max_rx_queues),
            ("TX", config.tx_queues, info.max_tx_queues),
        ] {
            if requested > max {
                return Err(Error::TooManyQueues {
                    device: name,
                    direction,
                    requested,
                    max,
                });
            }
        }
        let mtu = config.mtu.unwrap_or(DEFAULT_MTU);
        if mtu < info.min_mtu || mtu > info.max_mtu {
            return Err(Error::BadMtu {
                device: name,
                mtu,
                min: info.min_mtu,
                max: info.max_mtu,
            });
        }
        let frame = u32::from(mtu) + ETHER_OVERHEAD;
        let data_room = u32::from(pool.data_room()).saturating_sub(sys::RTE_PKTMBUF_HEADROOM);
        if frame > data_room {
            return Err(Error::MtuExceedsMbuf {
                device: name,
                mtu,
                frame,
                data_room,
            });
        }

        let (rss, rss_hf) = effective_rss(&name, config, info.flow_type_rss_offloads);

        if inner.started.swap(false, Ordering::AcqRel) {
            // SAFETY: no queue handle exists (get_mut succeeded), so nothing polls the port.
            let ret = unsafe { sys::rte_eth_dev_stop(id) };
            if ret < 0 {
                return Err(port_err("rte_eth_dev_stop", ret));
            }
        }

        // SAFETY: all-zero is DPDK's documented default for rte_eth_conf.
        let mut conf: sys::rte_eth_conf = unsafe { MaybeUninit::zeroed().assume_init() };
        conf.rxmode.mtu = u32::from(mtu);
        if rss_hf != 0 {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            // NULL key: the PMD's default key.
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
        }
        // SAFETY: valid port id, stopped; conf is a fully initialised configuration.
        let ret =
            unsafe { sys::rte_eth_dev_configure(id, config.rx_queues, config.tx_queues, &conf) };
        if ret < 0 {
            return Err(port_err("rte_eth_dev_configure", ret));
        }

        let (mut nb_rxd, mut nb_txd) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: valid, configured port; both pointers are to live u16s.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rxd, &mut nb_txd) };
        if ret < 0 {
            return Err(port_err("rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }

        // SAFETY: valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = u32::try_from(socket).unwrap_or(sys::SOCKET_ID_ANY as u32);
        // Kept before any RX queue takes buffers from the pool: even a half-done setup
        // leaves mbufs in descriptors until the port is closed.
        inner.rx_pool = Some(Arc::clone(pool));
        for q in 0..config.rx_queues {
            // SAFETY: configured port, q < rx_queues; NULL rxconf = the PMD's defaults;
            // the pool is kept alive by the port (inner.rx_pool) while the queue holds its
            // mbufs.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(id, q, nb_rxd, socket, std::ptr::null(), pool.as_ptr())
            };
            if ret < 0 {
                return Err(port_err("rte_eth_rx_queue_setup", ret));
            }
        }
        for q in 0..config.tx_queues {
            // SAFETY: configured port, q < tx_queues; NULL txconf = the PMD's defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(id, q, nb_txd, socket, std::ptr::null()) };
            if ret < 0 {
                return Err(port_err("rte_eth_tx_queue_setup", ret));
            }
        }

        if config.promiscuous {
            // SAFETY: valid port id.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(id) };
            if ret < 0 {
                // Virtual devices without a MAC filter answer -ENOTSUP; they receive
                // everything anyway.
                tracing::debug!(port = %name, error = %ffi::errno_text(ret), "promiscuous mode not set");
            }
        }

        let rx = (0..config.rx_queues)
            .map(|queue| RxQueue {
                port: Arc::clone(&self.inner),
                queue,
                _not_sync: PhantomData,
            })
            .collect();
        let tx = (0..config.tx_queues)
            .map(|queue| TxQueue {
                port: Arc::clone(&self.inner),
                queue,
                _not_sync: PhantomData,
            })
            .collect();
        Ok(PortQueues {
            rx,
            tx,
            rss,
            rss_hash_functions: rss_hf,
        })
    }

    /// Starts the port (`rte_eth_dev_start`).
    pub fn start(&self) -> Result<()> {
        // SAFETY: valid port id; starting a configured port; DPDK rejects an unconfigured
        // one with an error.
        let ret = unsafe { sys::rte_eth_dev_start(self.inner.id) };
        if ret < 0 {
            return Err(self.err("rte_eth_dev_start", ret));
        }
        self.inner.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the port. Refused while queue handles exist (a worker could be polling).
    pub fn stop(&mut self) -> Result<()> {
        let outstanding = Arc::strong_count(&self.inner) - 1;
        if outstanding != 0 {
            return Err(Error::QueuesInUse {
                device: self.inner.name.clone(),
                count: outstanding,
                action: "stopping the port",
            });
        }
        if self.inner.started.swap(false, Ordering::AcqRel) {
            // SAFETY: valid, started port with no queue handle left.
            let ret = unsafe { sys::rte_eth_dev_stop(self.inner.id) };
            if ret < 0 {
                return Err(self.err("rte_eth_dev_stop", ret));
            }
        }
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac_address(&self) -> Result<[u8; 6]> {
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: valid port id; mac is a live rte_ether_addr.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.inner.id, &mut mac) };
        if ret != 0 {
            return Err(self.err("rte_eth_macaddr_get", ret));
        }
        Ok(mac.addr_bytes)
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port id; link is a live rte_eth_link.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.inner.id, &mut link) };
        if ret != 0 {
            return Err(self.err("rte_eth_link_get_nowait", ret));
        }
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: u32::from(link.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }

    /// Polls the link until it is up or `timeout` passes; returns the last state.
    pub fn wait_for_link(&self, timeout: Duration) -> Result<LinkStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let link = self.link()?;
            if link.up || Instant::now() >= deadline {
                return Ok(link);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Enables or disables promiscuous mode.
    pub fn set_promiscuous(&self, on: bool) -> Result<()> {
        // SAFETY: valid port id.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.inner.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.inner.id)
            }
        };
        if ret < 0 {
            return Err(self.err("rte_eth_promiscuous_enable/disable", ret));
        }
        Ok(())
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = MaybeUninit::<sys::rte_eth_stats>::zeroed();
        // SAFETY: valid port id; DPDK fills the struct.
        let ret = unsafe { sys::rte_eth_stats_get(self.inner.id, s.as_mut_ptr()) };
        if ret != 0 {
            return Err(self.err("rte_eth_stats_get", ret));
        }
        // SAFETY: zeroed then filled; all-zero is valid.
        let s = unsafe { s.assume_init() };
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the basic counters.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port id.
        let ret = unsafe { sys::rte_eth_stats_reset(self.inner.id) };
        if ret != 0 {
            return Err(self.err("rte_eth_stats_reset", ret));
        }
        Ok(())
    }

    /// Extended counters, name and value, in the driver's order.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        let id = self.inner.id;
        // SAFETY: valid port id; NULL/0 asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(self.err("rte_eth_xstats_get_names", n));
        }
        let mut names = vec![sys::rte_eth_xstat_name::default(); n as usize];
        // SAFETY: names has room for n entries.
        let got = unsafe { sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), n as u32) };
        if got < 0 {
            return Err(self.err("rte_eth_xstats_get_names", got));
        }
        let mut values = vec![sys::rte_eth_xstat::default(); n as usize];
        // SAFETY: values has room for n entries.
        let got_values = unsafe { sys::rte_eth_xstats_get(id, values.as_mut_ptr(), n as u32) };
        if got_values < 0 {
            return Err(self.err("rte_eth_xstats_get", got_values));
        }
        let count = (got.min(got_values) as usize).min(names.len());
        Ok(values[..count]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                Some((ffi::c_array_to_string(&name.name), v.value))
            })
            .collect())
    }
}

fn port_by_name(name: &CString) -> Option<u16> {
    let mut id = 0u16;
    // SAFETY: name is a valid C string; id is a live u16.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(name.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}

/// The RSS mode and flow types to configure, given what the device can hash.
fn effective_rss(device: &str, config: &PortConfig, capable: u64) -> (RssMode, u64) {
    if config.rx_queues <= 1 || config.rss == RssMode::Off {
        return (RssMode::Off, 0);
    }
    let wanted = config.rss.hash_functions();
    let granted = wanted & capable;
    if granted == 0 {
        tracing::warn!(
            port = device,
            requested = ?config.rss,
            wanted = format_args!("{wanted:#x}"),
            capable = format_args!("{capable:#x}"),
            "device cannot hash IPv6 flows; RSS off, every packet goes to RX queue 0"
        );
        return (RssMode::Off, 0);
    }
    if granted != wanted {
        // A 5-tuple request the device can only do on addresses still gives client
        // affinity; anything partial is worth a line in the log.
        let mode = if config.rss == RssMode::Ipv6FiveTuple
            && granted & RssMode::Ipv6FiveTuple.hash_functions()
                == granted & RssMode::Ipv6Addresses.hash_functions()
        {
            RssMode::Ipv6Addresses
        } else {
            config.rss
        };
        tracing::warn!(
            port = device,
            requested = ?config.rss,
            in_effect = ?mode,
            wanted = format_args!("{wanted:#x}"),
            granted = format_args!("{granted:#x}"),
            "device hashes only part of the requested IPv6 flow types"
        );
        return (mode, granted);
    }
    (config.rss, granted)
}

/// An RX queue, owned by one lcore: `Send`, not `Sync`.
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    /// Queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receives into the free slots of `burst`; returns how many packets arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let (spare, room) = burst.spare_raw();
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue) (not Sync, not Clone); the
        // port stays open while the handle lives; `spare` has `room` <= u16::MAX writable
        // slots.
        let n = unsafe { sys::shim_rte_eth_rx_burst(self.port.id, self.queue, spare, room as u16) };
        let n = usize::from(n);
        // SAFETY: DPDK wrote n owned mbuf pointers after the held ones.
        unsafe { burst.set_len(burst.len() + n) };
        n
    }
}

/// A TX queue, owned by one lcore: `Send`, not `Sync`.
#[derive(Debug)]
pub struct TxQueue {
    port: Arc<PortInner>,
    queue: u16,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }

    /// Queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Hands the burst's mbufs to the NIC, front first; returns how many it took. The rest
    /// stay in `burst` (moved to the front), for the caller to retry or drop and count.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let len = burst.len();
        if len == 0 {
            return 0;
        }
        // SAFETY: this handle is the only user of (port, queue); the port stays open while
        // the handle lives; the first `len` slots are owned mbufs.
        let sent = unsafe {
            sys::shim_rte_eth_tx_burst(self.port.id, self.queue, burst.held_raw(), len as u16)
        };
        let sent = usize::from(sent);
        // SAFETY: the NIC now owns the first `sent` mbufs.
        unsafe { burst.forget_front(sent) };
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_degrades_to_what_the_device_can_hash() {
        let cfg = |rx_queues, rss| PortConfig {
            rx_queues,
            rss,
            ..PortConfig::default()
        };
        let addrs = RssMode::Ipv6Addresses.hash_functions();
        let five = RssMode::Ipv6FiveTuple.hash_functions();
        assert_ne!(addrs, 0);
        assert_eq!(five & addrs, addrs);
        // One queue: nothing to spread.
        assert_eq!(
            effective_rss("d", &cfg(1, RssMode::Ipv6FiveTuple), five),
            (RssMode::Off, 0)
        );
        assert_eq!(
            effective_rss("d", &cfg(4, RssMode::Off), five),
            (RssMode::Off, 0)
        );
        // Fully capable device.
        assert_eq!(
            effective_rss("d", &cfg(4, RssMode::Ipv6FiveTuple), u64::MAX),
            (RssMode::Ipv6FiveTuple, five)
        );
        // No IPv6 hashing at all: off, not an abort.
        assert_eq!(
            effective_rss("d", &cfg(4, RssMode::Ipv6Addresses), 0),
            (RssMode::Off, 0)
        );
        // 5-tuple asked, addresses only available.
        assert_eq!(
            effective_rss("d", &cfg(4, RssMode::Ipv6FiveTuple), addrs),
            (RssMode::Ipv6Addresses, addrs)
        );
    }
}
