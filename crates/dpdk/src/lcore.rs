//! Running closures on worker lcores.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use anycast6_dpdk_sys as sys;

use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::ffi;

/// Lcores running a closure launched through this crate, so that a second launch on the
/// same lcore is refused instead of being queued behind (or confused with) the first.
static LCORE_BUSY: [AtomicBool; sys::RTE_MAX_LCORE as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_LCORE as usize];

/// What the trampoline hands over: the closure in, its outcome out.
struct Launch<F, R> {
    job: Option<F>,
    outcome: Option<std::thread::Result<R>>,
    /// Set (release) by the worker after writing `outcome`; the EAL's own lcore state
    /// change orders this too, the flag keeps the handover explicit.
    done: AtomicBool,
}

/// Entry point DPDK calls on the worker lcore.
unsafe extern "C" fn trampoline<F, R>(arg: *mut c_void) -> c_int
where
    F: FnOnce() -> R,
{
    // SAFETY: arg is the Box<Launch<F, R>> pointer given to rte_eal_remote_launch; the
    // launching handle does not touch it until `done` is set and the lcore is back in WAIT.
    let launch = unsafe { &mut *(arg as *mut Launch<F, R>) };
    let outcome = match launch.job.take() {
        // Unwinding out of an extern "C" function aborts; catch and hand the panic over.
        Some(job) => catch_unwind(AssertUnwindSafe(job)),
        None => Err(Box::new("closure already taken") as Box<dyn Any + Send>),
    };
    let failed = outcome.is_err();
    launch.outcome = Some(outcome);
    launch.done.store(true, Ordering::Release);
    if failed {
        -1
    } else {
        0
    }
}

/// A closure running on a worker lcore; [`LcoreJoinHandle::join`] waits for it and returns
/// its result. Dropping the handle without joining also waits (like a scoped thread), so
/// the lcore is idle again afterwards.
#[derive(Debug)]
pub struct LcoreJoinHandle<'eal, R> {
    lcore: u32,
    /// The leaked `Box<Launch<F, R>>`, type-erased over F.
    launch: *mut c_void,
    take_outcome: unsafe fn(*mut c_void) -> Option<std::thread::Result<R>>,
    joined: bool,
    /// rte_eal_wait_lcore belongs to the main lcore, and must run before EAL cleanup.
    _eal: PhantomData<&'eal Eal>,
}

/// Frees the launch box and returns the outcome.
///
/// # Safety
/// `p` is a `Box<Launch<F, R>>` leaked by `Eal::launch` whose worker has finished.
unsafe fn take_outcome<F, R>(p: *mut c_void) -> Option<std::thread::Result<R>> {
    // SAFETY: per the contract, p came from Box::into_raw and nobody else uses it now.
    let mut launch = unsafe { Box::from_raw(p as *mut Launch<F, R>) };
    if launch.done.load(Ordering::Acquire) {
        launch.outcome.take()
    } else {
        None
    }
}

impl Eal {
    /// Runs `job` on worker lcore `lcore` (`rte_eal_remote_launch`). The lcore must be an
    /// enabled worker (not the main lcore) and idle.
    pub fn launch<F, R>(&self, lcore: u32, job: F) -> Result<LcoreJoinHandle<'_, R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let workers = self.worker_lcores();
        if !workers.contains(&lcore) {
            return Err(Error::NotAWorker { lcore, workers });
        }
        if LCORE_BUSY[lcore as usize].swap(true, Ordering::AcqRel) {
            return Err(Error::LcoreBusy(lcore));
        }
        let launch = Box::into_raw(Box::new(Launch::<F, R> {
            job: Some(job),
            outcome: None,
            done: AtomicBool::new(false),
        })) as *mut c_void;
        // SAFETY: we are on the main lcore (Eal is !Send), lcore is an enabled worker, and
        // `launch` stays valid until the handle has waited for the lcore.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline::<F, R>), launch, lcore) };
        if ret < 0 {
            // SAFETY: the launch failed, so no worker holds the pointer; reclaim the box.
            drop(unsafe { Box::from_raw(launch as *mut Launch<F, R>) });
            LCORE_BUSY[lcore as usize].store(false, Ordering::Release);
            return Err(Error::Launch {
                lcore,
                reason: ffi::errno_text(ret),
            });
        }
        Ok(LcoreJoinHandle {
            lcore,
            launch,
            take_outcome: take_outcome::<F, R>,
            joined: false,
            _eal: PhantomData,
        })
    }
}

impl<R> LcoreJoinHandle<'_, R> {
    /// The lcore the closure runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// True once the closure has returned (join will not block).
    pub fn is_finished(&self) -> bool {
        // SAFETY: plain query of the lcore's state.
        unsafe { sys::rte_eal_get_lcore_state(self.lcore) == sys::rte_lcore_state_t::WAIT }
    }

    /// Waits for the closure and returns its result, or [`Error::WorkerPanicked`].
    pub fn join(mut self) -> Result<R> {
        let outcome = self.wait_and_take();
        match outcome {
            Some(Ok(r)) => Ok(r),
            Some(Err(payload)) => Err(Error::WorkerPanicked {
                lcore: self.lcore,
                message: panic_message(&*payload),
            }),
            None => Err(Error::WorkerPanicked {
                lcore: self.lcore,
                message: "no result was handed over".into(),
            }),
        }
    }

    fn wait_and_take(&mut self) -> Option<std::thread::Result<R>> {
        if self.joined {
            return None;
        }
        self.joined = true;
        // SAFETY: main lcore (the handle borrows the !Sync Eal and holds a raw pointer, so
        // it is !Send); blocks until the worker is back in WAIT,
        // after which the trampoline no longer touches the launch box.
        unsafe { sys::rte_eal_wait_lcore(self.lcore) };
        // SAFETY: the worker finished with the box (see above) and this runs once.
        let outcome = unsafe { (self.take_outcome)(self.launch) };
        LCORE_BUSY[self.lcore as usize].store(false, Ordering::Release);
        outcome
    }
}

impl<R> Drop for LcoreJoinHandle<'_, R> {
    fn drop(&mut self) {
        drop(self.wait_and_take());
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}
