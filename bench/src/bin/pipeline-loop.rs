//! `pipeline-loop FLOWS BURSTS`: `Worker::process_burst` BURSTS times over 32 in-memory
//! client frames that cycle through FLOWS clients (the loop of the criterion bench
//! `pipeline_burst`, without criterion), for instruction counts:
//! `bench/count-instructions.sh` runs it under cachegrind with 0 and with BURSTS bursts and
//! divides the difference by the packets. The frame restore between bursts (about 85
//! instructions per packet) is part of the count.

use std::hint::black_box;

use anycast6::dataplane::pipeline::{Verdict, BURST_STAGE};
use anycast6_bench::BurstLoop;
use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flows, bursts] = args.as_slice() else {
        bail!("usage: pipeline-loop FLOWS BURSTS");
    };
    let flows: u32 = flows.parse().context("FLOWS")?;
    let bursts: u64 = bursts.parse().context("BURSTS")?;
    if flows == 0 {
        bail!("FLOWS must be at least 1");
    }
    let mut bursts_loop = BurstLoop::new(flows);
    let mut forwarded = 0u64;
    for _ in 0..bursts {
        let verdicts = black_box(bursts_loop.burst());
        forwarded += verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Forward { .. }))
            .count() as u64;
    }
    if forwarded != bursts * BURST_STAGE as u64 {
        bail!(
            "forwarded {forwarded} of {} packets",
            bursts * BURST_STAGE as u64
        );
    }
    println!("{forwarded}");
    Ok(())
}
