//! Writes the client traffic of the data-plane benchmark (bench/run-dataplane.sh): one
//! Ethernet/IPv6/UDP frame with a 64-byte payload per client, `CLIENTS` distinct client
//! addresses, all to the service 2001:db8:100::1 and to the port MAC 02:00:00:00:00:01
//! ([`anycast6_bench::client_frame`]).
//!
//! `gen-clients-pcap OUT CLIENTS [FILES]`
//!
//! With FILES = n > 1 it writes OUT.0 .. OUT.(n-1), client i going to file i mod n: one
//! file per RX queue of a multi-queue `net_pcap` device (one `rx_pcap=` per queue), which
//! stands in for a NIC's RSS spreading clients over workers.

use std::fs::File;
use std::io::BufWriter;
use std::time::Duration;

use anycast6_bench::client_frame;
use anyhow::{bail, Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (out, clients, files) = match &args[1..] {
        [out, clients] => (out, clients, "1"),
        [out, clients, files] => (out, clients, files.as_str()),
        _ => bail!("usage: gen-clients-pcap OUT.pcap CLIENTS [FILES]"),
    };
    // Accepts 1e6-style figures as well as plain integers.
    let clients = clients
        .parse::<u32>()
        .or_else(|_| clients.parse::<f64>().map(|f| f as u32))
        .with_context(|| format!("CLIENTS {clients:?} is not a number"))?;
    let files: u32 = files
        .parse()
        .with_context(|| format!("FILES {files:?} is not a number"))?;
    if clients == 0 || files == 0 || files > clients {
        bail!("need 0 < FILES <= CLIENTS (got {files} and {clients})");
    }
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut writers = (0..files)
        .map(|n| {
            let path = if files == 1 {
                out.clone()
            } else {
                format!("{out}.{n}")
            };
            let f = File::create(&path).with_context(|| format!("creating {path}"))?;
            Ok(PcapWriter::with_header(BufWriter::new(f), header)?)
        })
        .collect::<Result<Vec<_>>>()?;
    for i in 0..clients {
        let frame = client_frame(i);
        // Fixed timestamps keep the files byte-for-byte reproducible.
        let packet = PcapPacket::new(
            Duration::from_micros(u64::from(i)),
            frame.len() as u32,
            &frame,
        );
        writers[(i % files) as usize].write_packet(&packet)?;
    }
    Ok(())
}
