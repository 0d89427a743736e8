//! Parsing and checksum costs of `anycast6-wire` on typical frames.

use std::hint::black_box;

use anycast6_bench::client_frame;
use anycast6_wire::checksum;
use anycast6_wire::ethernet::EthernetFrame;
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn wire(c: &mut Criterion) {
    let frame = client_frame(7);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ethernet_ipv6_walk", |b| {
        b.iter(|| {
            let eth = EthernetFrame::new_checked(black_box(&frame[..])).expect("eth");
            let ip = Ipv6Packet::new_checked(eth.payload()).expect("ipv6");
            black_box(ExtHeaderChain::walk(ip.next_header(), ip.payload()).expect("walk"))
        })
    });
    let ip = Ipv6Packet::new_checked(&frame[14..]).expect("ipv6");
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    g.bench_function("udp_checksum_72_bytes", |b| {
        b.iter(|| {
            black_box(checksum::verify_upper_layer(
                &src,
                &dst,
                17,
                black_box(ip.payload()),
            ))
        })
    });
    let big = vec![0xa5u8; 1460];
    g.bench_function("checksum_1460_bytes", |b| {
        b.iter(|| black_box(checksum::fold(checksum::sum(0, black_box(&big)))))
    });
    g.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
