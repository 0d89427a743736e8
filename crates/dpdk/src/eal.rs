//! The Environment Abstraction Layer: process-wide DPDK initialisation.

use std::ffi::{c_char, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use anycast6_dpdk_sys as sys;

use crate::error::{Error, Result};
use crate::ffi;

/// Set by the first `Eal::init`; DPDK cannot initialise its EAL twice in one process, not
/// even after `rte_eal_cleanup`.
static EAL_CLAIMED: AtomicBool = AtomicBool::new(false);

/// Mempools and ports not yet released. `rte_eal_cleanup` unmaps DPDK memory, so it only
/// runs when nothing can still point into that memory.
pub(crate) static LIVE_RESOURCES: AtomicUsize = AtomicUsize::new(0);

/// Numbers the `--file-prefix` values this process hands out.
static PREFIX_SEQ: AtomicU32 = AtomicU32::new(0);

/// The initialised EAL. One per process; dropping it waits for the worker lcores and calls
/// `rte_eal_cleanup` (skipped, with a warning, while mempools or ports are still alive).
///
/// It is neither `Send` nor `Sync`: DPDK wants `rte_eal_remote_launch`,
/// `rte_eal_wait_lcore` and `rte_eal_cleanup` on the main lcore, which is the thread that
/// called `Eal::init`.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
    _main_lcore_only: PhantomData<*const ()>,
}

impl Eal {
    /// Initialises DPDK with `args` (EAL arguments without the program name, e.g. from
    /// [`EalArgs`]). A second call in the same process returns
    /// [`Error::EalAlreadyInitialised`], also after a failed first call (DPDK does not
    /// support retrying `rte_eal_init`).
    pub fn init<I, S>(args: I) -> Result<Eal>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let mut c_args = Vec::with_capacity(args.len() + 1);
        for a in std::iter::once("anycast6").chain(args.iter().map(String::as_str)) {
            c_args.push(CString::new(a).map_err(|_| Error::BadEalArgument(a.to_owned()))?);
        }
        if EAL_CLAIMED.swap(true, Ordering::AcqRel) {
            return Err(Error::EalAlreadyInitialised);
        }
        // rte_eal_init may keep pointers into argv (getopt permutes the array, the EAL saves
        // some arguments), so argv lives for the rest of the process: a few hundred bytes,
        // once.
        let argv: &'static mut [*mut c_char] = Vec::leak(
            c_args
                .into_iter()
                .map(CString::into_raw)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect(),
        );
        let argc = (argv.len() - 1) as i32;
        // SAFETY: argv is a NULL-terminated array of argc valid, NUL-terminated strings that
        // outlives the process' use of it (leaked above); EAL_CLAIMED guarantees this is the
        // only call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(Error::EalInit {
                reason: ffi::last_error_text(),
                args: args.join(" "),
            });
        }
        Ok(Eal {
            args,
            _main_lcore_only: PhantomData,
        })
    }

    /// The arguments the EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The main lcore (the thread that called [`Eal::init`]).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: plain query of EAL state, valid after rte_eal_init.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Enabled worker lcores (the lcore list without the main lcore), in increasing order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut workers = Vec::new();
        let mut lcore = u32::MAX; // -1: start the iteration
        loop {
            // SAFETY: plain query of EAL state; skip_main = 1, wrap = 0 ends the walk with
            // RTE_MAX_LCORE.
            lcore = unsafe { sys::rte_get_next_lcore(lcore, 1, 0) };
            if lcore >= sys::RTE_MAX_LCORE {
                return workers;
            }
            workers.push(lcore);
        }
    }

    /// Number of enabled lcores, main included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: plain query of EAL state.
        unsafe { sys::rte_lcore_count() }
    }

    /// NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // rte_lcore_to_socket_id indexes an array of RTE_MAX_LCORE entries unchecked.
        if lcore >= sys::RTE_MAX_LCORE {
            return 0;
        }
        // SAFETY: plain query of EAL state with an in-range index.
        unsafe { sys::rte_lcore_to_socket_id(lcore) }
    }

    /// TSC frequency in Hz, for converting [`rdtsc`] readings.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: plain query of a value the EAL measured at init.
        unsafe { sys::shim_rte_get_tsc_hz() }
    }

    /// DPDK's version string, e.g. "DPDK 22.11.11".
    pub fn version(&self) -> String {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        unsafe { ffi::c_str_to_string(sys::rte_version()) }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: called on the main lcore (Eal is !Send); waits for every worker lcore to
        // return to WAIT, so no closure of ours is still running.
        unsafe { sys::rte_eal_mp_wait_lcore() };
        let live = LIVE_RESOURCES.load(Ordering::Acquire);
        if live != 0 {
            tracing::warn!(
                live,
                "mempools or ports still alive; skipping rte_eal_cleanup so their memory stays mapped"
            );
            return;
        }
        // SAFETY: returns a pointer to the EAL's static runtime directory path.
        let runtime_dir = unsafe { ffi::c_str_to_string(sys::rte_eal_get_runtime_dir()) };
        // SAFETY: main lcore, workers idle, no mempool or port left that could refer to the
        // memory being released.
        let ret = unsafe { sys::rte_eal_cleanup() };
        if ret < 0 {
            tracing::warn!(ret, "rte_eal_cleanup failed");
        }
        // With --no-shconf or --in-memory the EAL still creates its runtime directory but
        // leaves it empty; remove_dir only removes it when it is empty, i.e. unshared.
        if !runtime_dir.is_empty() {
            let _ = std::fs::remove_dir(&runtime_dir);
        }
    }
}

/// Reads the CPU's time-stamp counter (cycles since reset; see [`Eal::tsc_hz`]).
#[inline]
pub fn rdtsc() -> u64 {
    // The instruction itself where there is one (what rte_rdtsc does on x86-64), not a
    // call into the shim: generators and workers read it every burst.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc has no preconditions.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: rdtsc has no preconditions.
    unsafe {
        sys::shim_rte_rdtsc()
    }
}

/// The lcore id of the calling thread, or `None` for a thread DPDK does not know.
#[inline]
pub fn current_lcore() -> Option<u32> {
    // SAFETY: reads a thread-local variable; LCORE_ID_ANY in unregistered threads.
    let id = unsafe { sys::shim_rte_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// A builder for EAL arguments.
///
/// ```no_run
/// use anycast6_dpdk::{Eal, EalArgs};
/// let args = EalArgs::virtual_devices().lcores("0-1").vdev("net_ring0");
/// let eal = Eal::init(args.as_slice())?;
/// # Ok::<(), anycast6_dpdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EalArgs {
    args: Vec<String>,
}

impl EalArgs {
    /// Empty argument list (DPDK's defaults: hugepages, PCI scan, shared runtime files).
    pub fn new() -> Self {
        EalArgs { args: Vec::new() }
    }

    /// Arguments for a run on virtual devices that needs no setup: no hugepages
    /// (`--no-huge -m 1024`), no PCI scan, no shared runtime files or telemetry socket
    /// (`--no-shconf --no-telemetry`: nothing is left in /var/run/dpdk), and a
    /// `--file-prefix` unique to this process and call so that several DPDK processes can
    /// run side by side.
    pub fn virtual_devices() -> Self {
        EalArgs::new()
            .args([
                "--no-huge",
                "-m",
                "1024",
                "--no-pci",
                "--no-shconf",
                "--no-telemetry",
            ])
            .file_prefix(&Self::unique_file_prefix())
    }

    /// Like [`EalArgs::virtual_devices`] but on hugepages, without runtime files
    /// (`--in-memory`, which excludes `--no-huge`). Needs free hugepages
    /// (`scripts/hugepages`).
    pub fn virtual_devices_in_memory() -> Self {
        EalArgs::new()
            .args(["--in-memory", "--no-pci", "--no-telemetry"])
            .file_prefix(&Self::unique_file_prefix())
    }

    /// [`EalArgs::virtual_devices_in_memory`] when the system has free hugepages,
    /// [`EalArgs::virtual_devices`] otherwise.
    pub fn virtual_devices_auto() -> Self {
        if hugepages_free() > 0 {
            Self::virtual_devices_in_memory()
        } else {
            Self::virtual_devices()
        }
    }

    /// `anycast6-<pid>-<n>`, with n counting the calls in this process.
    pub fn unique_file_prefix() -> String {
        format!(
            "anycast6-{}-{}",
            std::process::id(),
            PREFIX_SEQ.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Adds one raw argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds raw arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `--file-prefix PREFIX`, replacing an earlier one.
    pub fn file_prefix(mut self, prefix: &str) -> Self {
        if let Some(i) = self.args.iter().position(|a| a == "--file-prefix") {
            self.args.drain(i..(i + 2).min(self.args.len()));
        }
        self.args(["--file-prefix", prefix])
    }

    /// The `--file-prefix` value, if any.
    pub fn get_file_prefix(&self) -> Option<&str> {
        let i = self.args.iter().position(|a| a == "--file-prefix")?;
        self.args.get(i + 1).map(String::as_str)
    }

    /// `--vdev DEVARGS`, e.g. `net_ring0` or `net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`.
    pub fn vdev(self, devargs: &str) -> Self {
        self.args(["--vdev", devargs])
    }

    /// `-l LIST`: the lcores to use, e.g. `0-3` or `2,4,6`; the first is the main lcore
    /// unless [`EalArgs::main_lcore`] says otherwise.
    pub fn lcores(self, list: &str) -> Self {
        self.args(["-l", list])
    }

    /// `--main-lcore N`.
    pub fn main_lcore(self, lcore: u32) -> Self {
        self.args(["--main-lcore".to_owned(), lcore.to_string()])
    }

    /// `-d PATH`: load a driver shared object (or every driver in a directory) in addition
    /// to the EAL's plugin directory.
    pub fn driver(self, path: &str) -> Self {
        self.args(["-d", path])
    }

    /// `--log-level LEVEL`, e.g. `warning`, `lib.eal:debug`, `pmd.net.vhost:info`.
    pub fn log_level(self, level: &str) -> Self {
        self.args(["--log-level", level])
    }

    /// The arguments.
    pub fn as_slice(&self) -> &[String] {
        &self.args
    }

    /// The arguments, owned.
    pub fn into_vec(self) -> Vec<String> {
        self.args
    }
}

impl Default for EalArgs {
    fn default() -> Self {
        Self::new()
    }
}

/// Free 2 MB (default size) hugepages, from `/proc/meminfo`; 0 when unknown.
pub fn hugepages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("HugePages_Free:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}
