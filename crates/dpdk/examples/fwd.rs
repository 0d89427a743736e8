//! Minimal forwarding loop on one worker lcore, for comparison with
//! `dpdk-testpmd --forward-mode=io` (see `bench/fwd-vs-testpmd.sh`).
//!
//! Like testpmd's default paired topology it forwards port 0 -> port 1 and port 1 -> port 0
//! from a single lcore; every second the main lcore prints port 1's TX rate, and at the end
//! the median of those samples (the first one, which includes start-up, is left out; the
//! median, so that a second lost to another process on a shared machine does not count).
//!
//! `fwd [--seconds S] [--huge] --port0 DEVARGS --port1 DEVARGS`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast6_dpdk::{Eal, EalArgs, MbufBurst, Mempool, Port, PortConfig, RxQueue, TxQueue};

struct Options {
    seconds: u64,
    huge: bool,
    port0: String,
    port1: String,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        seconds: 10,
        huge: false,
        port0: String::new(),
        port1: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--huge" => o.huge = true,
            "--port0" => o.port0 = value()?,
            "--port1" => o.port1 = value()?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.port0.is_empty() || o.port1.is_empty() {
        return Err("usage: fwd [--seconds S] [--huge] --port0 DEVARGS --port1 DEVARGS".into());
    }
    Ok(o)
}

/// Forwarding counters of the worker.
#[derive(Debug, Default)]
struct Counts {
    rx: u64,
    tx: u64,
    dropped: u64,
}

fn forward(streams: &mut [(RxQueue, TxQueue); 2], stop: &AtomicBool) -> Counts {
    let mut counts = Counts::default();
    let mut burst = MbufBurst::<32>::new();
    while !stop.load(Ordering::Relaxed) {
        for (rx, tx) in streams.iter_mut() {
            let got = rx.rx_burst(&mut burst);
            if got == 0 {
                continue;
            }
            counts.rx += got as u64;
            counts.tx += tx.tx_burst(&mut burst) as u64;
            // What the TX queue did not take is dropped, as testpmd's io mode does.
            counts.dropped += burst.len() as u64;
            burst.clear();
        }
    }
    counts
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_options()?;
    let base = if o.huge {
        EalArgs::virtual_devices_in_memory()
    } else {
        EalArgs::virtual_devices()
    };
    // Main lcore 0 samples statistics; lcore 1 forwards (testpmd: -l 0,1, one fwd core).
    let eal = Eal::init(base.lcores("0,1").log_level("warning").as_slice())?;
    let worker = *eal.worker_lcores().first().ok_or("needs a worker lcore")?;
    let pool = Arc::new(Mempool::new(
        &eal,
        "fwd_pool",
        16383,
        256,
        anycast6_dpdk::DEFAULT_DATA_ROOM,
    )?);
    let mut ports = [Port::open(&eal, &o.port0)?, Port::open(&eal, &o.port1)?];
    let mut queues = Vec::new();
    for port in &mut ports {
        let q = port.configure(&pool, &PortConfig::default())?;
        port.start()?;
        queues.push(q);
    }
    let q1 = queues.pop().unwrap();
    let q0 = queues.pop().unwrap();
    let [rx0] = <[RxQueue; 1]>::try_from(q0.rx).unwrap();
    let [tx0] = <[TxQueue; 1]>::try_from(q0.tx).unwrap();
    let [rx1] = <[RxQueue; 1]>::try_from(q1.rx).unwrap();
    let [tx1] = <[TxQueue; 1]>::try_from(q1.tx).unwrap();
    let mut streams = [(rx0, tx1), (rx1, tx0)];

    let stop = Arc::new(AtomicBool::new(false));
    let worker_stop = Arc::clone(&stop);
    for p in &ports {
        p.reset_stats()?;
    }
    let handle = eal.launch(worker, move || forward(&mut streams, &worker_stop))?;

    let mut samples = Vec::new();
    let mut last = (Instant::now(), ports[1].stats()?.opackets);
    for _ in 0..o.seconds {
        std::thread::sleep(Duration::from_secs(1));
        let now = (Instant::now(), ports[1].stats()?.opackets);
        let pps = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64();
        println!("port 1 Tx-pps: {pps:.0}");
        samples.push(pps);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let counts = handle.join()?;
    let mut steady = if samples.len() > 1 {
        samples[1..].to_vec()
    } else {
        samples
    };
    steady.sort_by(f64::total_cmp);
    let median = match steady.len() {
        0 => 0.0,
        n if n % 2 == 1 => steady[n / 2],
        n => (steady[n / 2 - 1] + steady[n / 2]) / 2.0,
    };
    println!(
        "worker lcore {worker}: rx {} tx {} dropped {}",
        counts.rx, counts.tx, counts.dropped
    );
    println!("RESULT fwd Mpps {:.3}", median / 1e6);
    Ok(())
}
