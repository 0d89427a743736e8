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
use anycast6::dataplane::pipeline::{ExtraTx, Tick, Verdict, Worker, WorkerConfig, BURST_STAGE};
use anycast6::dataplane::snapshot::{IcmpRateSpec, Snapshot};
use anycast6_bench::{client_frame, spec};
use anycast6_wire::{PacketBuf, VecBuf};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

struct NoFragments;

impl ExtraTx<VecBuf> for NoFragments {
    fn alloc(&mut self) -> Option<VecBuf> {
        None
    }
    fn send_after(&mut self, _port: u16, _buf: VecBuf) {}
}

/// Puts `template` back into `buf` at the original headroom, without allocating.
fn restore(buf: &mut VecBuf, template: &[u8]) {
    let h = buf.headroom();
    if h < 128 {
        buf.adj(128 - h).expect("shrink front");
    } else if h > 128 {
        buf.prepend(h - 128).expect("grow front");
    }
    buf.set_len(template.len()).expect("length");
    buf.data_mut().copy_from_slice(template);
}

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
                // Client address low 32 bits = flow number (UDP checksum is not checked on
                // the forward path).
                buf.data_mut()[14 + 8 + 12..14 + 8 + 16].copy_from_slice(&i.to_be_bytes());
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

fn worker_for(flows: u32) -> Worker {
    Worker::new(
        WorkerConfig {
            id: 0,
            affinity_capacity: (flows as usize * 4 / 3).next_power_of_two(),
            affinity_idle_timeout: 300,
            icmp_rate: IcmpRateSpec::default(),
        },
        Tick::from_millis(0),
    )
    .expect("worker")
}

fn pipeline_burst(c: &mut Criterion) {
    let snapshot = Snapshot::build(&spec(8)).expect("snapshot");
    let mut group = c.benchmark_group("pipeline_burst");
    group.throughput(Throughput::Elements(BURST_STAGE as u64));
    for flows in [1_000u32, 100_000, 1_000_000] {
        let template = client_frame(0);
        let mut worker = worker_for(flows);
        let mut bufs: Vec<VecBuf> = (0..BURST_STAGE)
            .map(|_| VecBuf::from_slice_with_room(&template, 128, 2048))
            .collect();
        let mut verdicts = [Verdict::Exception; BURST_STAGE];
        let mut i = 0u32;
        group.bench_with_input(BenchmarkId::from_parameter(flows), &flows, |b, &flows| {
            b.iter(|| {
                for buf in bufs.iter_mut() {
                    i = (i + 1) % flows;
                    restore(buf, &template);
                    buf.data_mut()[14 + 8 + 12..14 + 8 + 16].copy_from_slice(&i.to_be_bytes());
                }
                let n = worker.process_burst(
                    &snapshot,
                    &mut bufs,
                    0,
                    Tick::from_millis(1),
                    &mut NoFragments,
                    &mut verdicts,
                );
                debug_assert!(verdicts[..n]
                    .iter()
                    .all(|v| matches!(v, Verdict::Forward { .. })));
                black_box(n)
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
