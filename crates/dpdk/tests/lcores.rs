//! Launching closures on worker lcores and joining them. One #[test] per file: the EAL
//! initialises once per process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anycast6_dpdk::{current_lcore, Eal, EalArgs, Error};

#[test]
fn closures_run_on_workers_and_hand_back_results() {
    let eal = Eal::init(EalArgs::virtual_devices().lcores("0-1").as_slice()).expect("EAL init");
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert_eq!(eal.lcore_count(), 2);
    assert_eq!(current_lcore(), Some(0));
    assert!(eal.tsc_hz() > 0);
    assert!(eal.version().starts_with("DPDK "), "{}", eal.version());

    // A result comes back, computed on the worker.
    let counter = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&counter);
    let handle = eal
        .launch(1, move || {
            c.fetch_add(1, Ordering::Relaxed);
            (current_lcore(), (1..=100u64).sum::<u64>())
        })
        .unwrap();
    assert_eq!(handle.lcore(), 1);
    assert_eq!(handle.join().unwrap(), (Some(1), 5050));
    assert_eq!(counter.load(Ordering::Relaxed), 1);

    // The main lcore and lcores outside the list are not workers.
    assert!(matches!(
        eal.launch(0, || ()),
        Err(Error::NotAWorker { lcore: 0, .. })
    ));
    assert!(matches!(
        eal.launch(5, || ()),
        Err(Error::NotAWorker { lcore: 5, .. })
    ));

    // A busy lcore refuses a second closure instead of queueing it.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let busy = eal.launch(1, move || go_rx.recv().is_ok()).unwrap();
    assert!(matches!(eal.launch(1, || ()), Err(Error::LcoreBusy(1))));
    assert!(!busy.is_finished());
    go_tx.send(()).unwrap();
    assert!(busy.join().unwrap());

    // A panic on the worker becomes an error, and the lcore is usable afterwards.
    let err = eal
        .launch(1, || -> u32 { panic!("worker failed on purpose") })
        .unwrap()
        .join();
    match err {
        Err(Error::WorkerPanicked { lcore: 1, message }) => {
            assert!(message.contains("on purpose"), "{message}")
        }
        other => panic!("expected WorkerPanicked, got {other:?}"),
    }

    // Dropping a handle without joining waits for the closure.
    let c = Arc::clone(&counter);
    drop(eal.launch(1, move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        c.fetch_add(1, Ordering::Relaxed);
    }));
    assert_eq!(counter.load(Ordering::Relaxed), 2);

    assert_eq!(eal.launch(1, || 7).unwrap().join().unwrap(), 7);
}
