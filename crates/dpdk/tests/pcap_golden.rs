//! `net_pcap`: the golden capture in, the same frames out, byte for byte.
//! One #[test] per file: one EAL per process.
//!
//! testpmd needs `--no-flush-rx` here because it drains RX queues before forwarding, which
//! on a pcap port reads (and drops) the file. `Port` never drains, so every frame of the
//! file reaches `rx_burst`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anycast6_dpdk::{Eal, EalArgs, MbufBurst, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};
use pcap_file::pcap::PcapReader;

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut reader = PcapReader::new(File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        out.push(packet.unwrap().data.into_owned());
    }
    out
}

#[test]
fn pcap_in_equals_pcap_out() {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ipv6-udp-mixed.pcap");
    let expected = frames(&golden);
    assert_eq!(expected.len(), 300);
    let out = std::env::temp_dir().join(format!("anycast6-pcap-out-{}.pcap", std::process::id()));
    let _ = std::fs::remove_file(&out);

    let eal = Eal::init(EalArgs::virtual_devices().lcores("0").as_slice()).expect("EAL init");
    let pool = Arc::new(Mempool::new(&eal, "pcap_pool", 2047, 64, DEFAULT_DATA_ROOM).unwrap());
    let device = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        golden.display(),
        out.display()
    );
    let mut port = Port::open(&eal, &device).unwrap();
    assert_eq!(port.info().unwrap().driver, "net_pcap");
    let mut queues = port.configure(&pool, &PortConfig::default()).unwrap();
    port.start().unwrap();

    let mut burst = MbufBurst::<32>::new();
    let mut forwarded = 0usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    while forwarded < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {forwarded} frames came through"
        );
        queues.rx[0].rx_burst(&mut burst);
        forwarded += queues.tx[0].tx_burst(&mut burst);
    }
    // The file is exhausted: nothing more arrives.
    assert_eq!(queues.rx[0].rx_burst(&mut burst), 0);
    let stats = port.stats().unwrap();
    assert_eq!((stats.ipackets, stats.opackets), (300, 300));

    // Closing the port closes the pcap dumper, which flushes the output file.
    drop((queues, port));
    let got = frames(&out);
    let _ = std::fs::remove_file(&out);
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "frame {i} differs");
    }
    assert_eq!(pool.in_use(), 0);
}
