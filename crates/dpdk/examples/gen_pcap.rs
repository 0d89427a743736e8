//! Writes a pcap of Ethernet/IPv6/UDP frames numbered 0..COUNT, for the net_pcap golden
//! test and the forwarding benchmark.
//!
//! `cargo run -p anycast6-dpdk --example gen_pcap -- OUT.pcap COUNT PAYLOAD`
//! PAYLOAD is the UDP payload size in bytes (>= 8), or `mixed` for sizes from a 70-byte
//! frame to a full 1514-byte frame.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs::File;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, out, count, payload] = &args[..] else {
        return Err("usage: gen_pcap OUT.pcap COUNT PAYLOAD|mixed".into());
    };
    let count: u64 = count.parse()?;
    let payload_of = |seq: u64| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(match payload.as_str() {
            // 8..=1452 bytes of UDP payload: frames of 70..=1514 bytes.
            "mixed" => 8 + (seq as usize * 97) % 1445,
            n => n.parse::<usize>()?.max(8),
        })
    };
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(File::create(out)?, header)?;
    for seq in 0..count {
        let frame = common::ipv6_udp_frame(seq, payload_of(seq)?);
        // Fixed timestamps keep the file byte-for-byte reproducible.
        let packet = PcapPacket::new(Duration::from_micros(seq), frame.len() as u32, &frame);
        writer.write_packet(&packet)?;
    }
    Ok(())
}
