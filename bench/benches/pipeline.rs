//! ns/packet of the data-plane pipeline on in-memory buffers, and Maglev build time.
//!
//! Each iteration restores one prebuilt client frame into its buffer (a ~120-byte copy, as
//! a NIC would have written it) and runs `Worker::process` on it: classification, affinity
//! lookup (hit after the first round), Maglev on a miss, RFC 2473 encapsulation. The
//! active-flow count is the number of distinct clients cycled through.
//!
//! `pipeline_burst` does the same through `Worker::process_burst`, 32 frames per call (the
//! runtime's RX burst): staged, with the affinity lookups prefetched. Criterion reports
//! time per burst; its throughput line gives packets per second.

use std::hint::black_box;

use anycast6::dataplane::maglev::{MaglevMember, MaglevTable};
use anycast6::dataplane::pipeline::{Tick, Verdict, BURST_STAGE};
use anycast6::dataplane::snapshot::Snapshot;
use anycast6_bench::{client_frame, restore, set_client, spec, worker_for, BurstLoop, NoFragments};
use anycast6_wire::{PacketBuf, VecBuf};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn pipeline(c: &mut Criterion) {
    let snapshot = Snapshot::build(&spec(8)).expect("snapshot");
    let mut group = c.benchmark_group("pipeline_forward");
    group.throughput(Throughput::Elements(1));
    for flows in [1_000u32, 100_000, 1_000_000] {
        // Distinct frames would take 1e6 x 126 bytes; a few thousand templates whose client
        // address is rewritten in place give the same number of distinct flows.
        let template = client_frame(0);
        let mut worker = worker_for(flows);
        let mut buf = VecBuf::from_slice_with_room(&template, 128, 2048);
        let mut i = 0u32;
        group.bench_with_input(BenchmarkId::from_parameter(flows), &flows, |b, &flows| {
            b.iter(|| {
                i = (i + 1) % flows;
                restore(&mut buf, &template);
                set_client(buf.data_mut(), i);
                let v = worker.process(
                    &snapshot,
                    &mut buf,
                    0,
                    Tick::from_millis(1),
                    &mut NoFragments,
                );
                debug_assert!(matches!(v, Verdict::Forward { .. }));
                black_box(v)
            })
        });
    }
    group.finish();
}

fn pipeline_burst(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_burst");
    group.throughput(Throughput::Elements(BURST_STAGE as u64));
    for flows in [1_000u32, 100_000, 1_000_000] {
        let mut bursts = BurstLoop::new(flows);
        group.bench_with_input(BenchmarkId::from_parameter(flows), &flows, |b, _| {
            b.iter(|| {
                let verdicts = bursts.burst();
                debug_assert!(verdicts
                    .iter()
                    .all(|v| matches!(v, Verdict::Forward { .. })));
                black_box(verdicts.len())
            })
        });
    }
    group.finish();
}

fn maglev_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("maglev_build_65537");
    group.sample_size(20);
    for n in [10usize, 100, 1000] {
        let names: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("2001:db8:2::{i:x}").into_bytes())
            .collect();
        let members: Vec<MaglevMember<'_>> = names
            .iter()
            .map(|nm| MaglevMember {
                name: nm,
                weight: 1,
            })
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &members, |b, m| {
            b.iter(|| black_box(MaglevTable::build(m, 65537).expect("table")))
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline, pipeline_burst, maglev_build);
criterion_main!(benches);
