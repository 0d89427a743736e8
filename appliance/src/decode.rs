//! `anycast6 decode`: one line (or one JSON object) per captured frame, decoded with
//! `anycast6-wire`, the code the appliance itself uses on the wire.
//!
//! Keys are Wireshark display-filter field names so that the output can be compared with
//! `tshark -T fields` field by field; docs/decode.md is the reference for every key and
//! for how values are shown. A frame that does not decode yields an `"error"` key, never a
//! panic, and the keys decoded before the error are kept.

use std::fmt::Write as _;
use std::io::Read;
use std::net::Ipv6Addr;
use std::path::Path;

use anycast6_wire::checksum::proto;
use anycast6_wire::ethernet::{EtherType, EthernetFrame, MacAddr};
use anycast6_wire::icmpv6::{Icmpv6Packet, Icmpv6Repr, Message};
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;
use anycast6_wire::mobility::option::MobilityOption;
use anycast6_wire::mobility::{MhMessage, MhPacket, MhRepr};
use anycast6_wire::tcp::{TcpFlags, TcpPacket, TcpRepr};
use anycast6_wire::udp::UdpPacket;
use anycast6_wire::Error;
use serde_json::{Map, Value};

/// How deep tunnels are decoded: the outer packet and one inner packet.
const MAX_TUNNEL_DEPTH: usize = 1;

/// The fields of one frame, in decoding order.
#[derive(Debug, Default)]
pub struct DecodedFrame {
    fields: Map<String, Value>,
    summary: String,
    /// `None` until a checksum is verified; then whether every verified checksum was right.
    checksum_ok: Option<bool>,
    error: Option<String>,
}

impl DecodedFrame {
    /// The one-line text form.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Why decoding stopped early, if it did.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The JSON object: `frame.number`, the decoded fields, `checksum_ok`, `summary`, `error`.
    pub fn to_json(&self, frame_number: u64) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("frame.number".into(), frame_number.into());
        out.extend(self.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(ok) = self.checksum_ok {
            out.insert("checksum_ok".into(), ok.into());
        }
        out.insert("summary".into(), self.summary.clone().into());
        if let Some(e) = &self.error {
            out.insert("error".into(), e.clone().into());
        }
        out
    }

    /// The text line: frame number, summary, and the error if any.
    pub fn to_line(&self, frame_number: u64) -> String {
        match &self.error {
            Some(e) => format!("{frame_number} {} [error: {e}]", self.summary),
            None => format!("{frame_number} {}", self.summary),
        }
    }
}

/// Decodes one Ethernet frame.
pub fn decode_frame(frame: &[u8]) -> DecodedFrame {
    let mut d = Decoder {
        out: DecodedFrame::default(),
        prefix: "",
    };
    if let Err(e) = d.ethernet(frame) {
        d.out.error = Some(e.to_string());
    }
    d.out.summary = d.out.summary.trim_end().to_string();
    d.out
}

struct Decoder {
    out: DecodedFrame,
    /// "" for the outer packet, "inner." inside an IPv6-in-IPv6 tunnel.
    prefix: &'static str,
}

impl Decoder {
    fn put(&mut self, key: &str, value: impl Into<Value>) {
        self.out
            .fields
            .insert(format!("{}{key}", self.prefix), value.into());
    }
    fn addr(&mut self, key: &str, a: Ipv6Addr) {
        self.put(key, a.to_string());
    }
    fn hex(&mut self, key: &str, bytes: &[u8]) {
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        self.put(key, s);
    }
    fn say(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = self.out.summary.write_fmt(args);
    }
    fn checksum(&mut self, layer: &str, ok: bool) {
        self.put(&format!("{layer}.checksum_ok"), ok);
        self.out.checksum_ok = Some(self.out.checksum_ok.unwrap_or(true) && ok);
        if !ok {
            self.say(format_args!("[bad {layer} checksum] "));
        }
    }

    fn ethernet(&mut self, frame: &[u8]) -> Result<(), Error> {
        let eth = EthernetFrame::new_checked(frame)?;
        self.put("eth.dst", eth.dst_addr().to_string());
        self.put("eth.src", eth.src_addr().to_string());
        if let Some(tag) = eth.vlan_tag() {
            self.put("eth.type", 0x8100u16);
            self.put("vlan.priority", tag.pcp);
            self.put("vlan.id", tag.vid);
            self.put("vlan.etype", u16::from(eth.ethertype()));
            self.say(format_args!("vlan {} ", tag.vid));
        } else {
            self.put("eth.type", u16::from(eth.ethertype()));
        }
        match eth.ethertype() {
            EtherType::Ipv6 => self.ipv6(eth.payload(), 0),
            other => {
                let src: MacAddr = eth.src_addr();
                self.say(format_args!(
                    "{src} > {} {other} (not IPv6)",
                    eth.dst_addr()
                ));
                Ok(())
            }
        }
    }

    fn ipv6(&mut self, bytes: &[u8], depth: usize) -> Result<(), Error> {
        let ip = Ipv6Packet::new_checked(bytes)?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        self.put("ipv6.version", ip.version());
        self.put("ipv6.tclass", ip.traffic_class());
        self.put("ipv6.flow", ip.flow_label());
        self.put("ipv6.plen", ip.payload_len());
        self.put("ipv6.nxt", ip.next_header());
        self.put("ipv6.hlim", ip.hop_limit());
        self.addr("ipv6.src", src);
        self.addr("ipv6.dst", dst);
        self.say(format_args!("{src} > {dst} "));

        let payload = ip.payload();
        let chain = ExtHeaderChain::walk(ip.next_header(), payload)?;
        if let Some(hoa) = chain.home_address {
            self.addr("ipv6.opt.mipv6.home_address", hoa);
            self.say(format_args!("[HAO {hoa}] "));
        }
        if let Some(tel) = chain.encap_limit {
            self.put("ipv6.opt.tel", tel.limit);
            self.say(format_args!("[TEL {}] ", tel.limit));
        }
        if let Some(hoa) = chain.type2_home_address {
            // The walker accepts a Type 2 header only with Segments Left 1 (RFC 6275 §6.4).
            self.put("ipv6.routing.type", 2u8);
            self.put("ipv6.routing.segleft", 1u8);
            self.addr("ipv6.routing.mipv6.home_address", hoa);
            self.say(format_args!("[RH2 {hoa}] "));
        }
        if let Some(rh) = chain.routing {
            self.put("ipv6.routing.type", rh.routing_type);
            self.put("ipv6.routing.segleft", rh.segments_left);
            self.say(format_args!(
                "[RH type {} left {}] ",
                rh.routing_type, rh.segments_left
            ));
        }
        if let Some(frag) = chain.fragment {
            self.put("ipv6.fraghdr.offset", frag.header.offset);
            self.put("ipv6.fraghdr.more", frag.header.more_fragments);
            self.put("ipv6.fraghdr.ident", frag.header.identification);
            self.say(format_args!(
                "[fragment id {:#x} off {}{}] ",
                frag.header.identification,
                frag.header.offset,
                if frag.header.more_fragments { " M" } else { "" }
            ));
        }
        let Some(upper) = chain.upper_layer_bytes(payload) else {
            self.say(format_args!(
                "(upper layer {} not in this fragment)",
                chain.upper_layer
            ));
            return Ok(());
        };
        let (psrc, pdst) = (chain.pseudo_header_src(src), chain.pseudo_header_dst(dst));
        let result = self.upper(chain.upper_layer, upper, depth, &psrc, &pdst);
        match result {
            // A first fragment holds only the start of its upper layer: what is there was
            // decoded, the rest is in later fragments.
            Err(Error::Truncated(_)) if chain.fragment.is_some_and(|f| f.header.more_fragments) => {
                self.say(format_args!("(continued in later fragments) "));
                Ok(())
            }
            other => other,
        }
    }

    fn upper(
        &mut self,
        protocol: u8,
        upper: &[u8],
        depth: usize,
        psrc: &Ipv6Addr,
        pdst: &Ipv6Addr,
    ) -> Result<(), Error> {
        let (psrc, pdst) = (*psrc, *pdst);
        match protocol {
            proto::IPV6 if depth < MAX_TUNNEL_DEPTH => {
                self.say(format_args!("IPv6-in-IPv6 [ "));
                self.prefix = "inner.";
                let r = self.ipv6(upper, depth + 1);
                let end = self.out.summary.trim_end().len();
                self.out.summary.truncate(end);
                self.say(format_args!(" ] "));
                r
            }
            proto::IPV6 => {
                self.say(format_args!("IPv6-in-IPv6 (nested tunnel not decoded)"));
                Ok(())
            }
            proto::ICMPV6 => self.icmpv6(upper, &psrc, &pdst),
            proto::UDP => self.udp(upper, &psrc, &pdst),
            proto::TCP => self.tcp(upper, &psrc, &pdst),
            proto::MOBILITY => self.mobility(upper, &psrc, &pdst),
            proto::NO_NEXT_HEADER => {
                self.say(format_args!("no next header"));
                Ok(())
            }
            other => {
                self.say(format_args!("protocol {other}"));
                Ok(())
            }
        }
    }

    fn udp(&mut self, bytes: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<(), Error> {
        let udp = UdpPacket::new_checked(bytes)?;
        self.put("udp.srcport", udp.src_port());
        self.put("udp.dstport", udp.dst_port());
        self.put("udp.length", udp.length());
        self.put("udp.checksum", udp.checksum());
        self.say(format_args!(
            "UDP {} > {} len={} ",
            udp.src_port(),
            udp.dst_port(),
            udp.length()
        ));
        self.checksum("udp", udp.verify_checksum(src, dst));
        Ok(())
    }

    fn tcp(&mut self, bytes: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<(), Error> {
        let tcp = TcpPacket::new_checked(bytes)?;
        let flags = tcp.flags();
        self.put("tcp.srcport", tcp.src_port());
        self.put("tcp.dstport", tcp.dst_port());
        self.put("tcp.seq_raw", tcp.seq_number());
        self.put("tcp.ack_raw", tcp.ack_number());
        self.put("tcp.flags", flags.bits());
        self.put("tcp.flags.syn", flags.contains(TcpFlags::SYN));
        self.put("tcp.flags.ack", flags.contains(TcpFlags::ACK));
        self.put("tcp.flags.reset", flags.contains(TcpFlags::RST));
        self.put("tcp.flags.fin", flags.contains(TcpFlags::FIN));
        self.put("tcp.window_size_value", tcp.window_len());
        self.put("tcp.checksum", tcp.checksum());
        self.say(format_args!(
            "TCP {} > {} [{flags}] seq={} ack={} win={} ",
            tcp.src_port(),
            tcp.dst_port(),
            tcp.seq_number(),
            tcp.ack_number(),
            tcp.window_len()
        ));
        let ok = tcp.verify_checksum(src, dst);
        self.checksum("tcp", ok);
        if ok {
            // Options are validated together with the checksum by the repr.
            let repr = TcpRepr::parse(&tcp, src, dst)?;
            if let Some(mss) = repr.max_seg_size {
                self.put("tcp.options.mss_val", mss);
                self.say(format_args!("mss={mss} "));
            }
        }
        Ok(())
    }

    fn icmpv6(&mut self, bytes: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<(), Error> {
        let icmp = Icmpv6Packet::new_checked(bytes)?;
        let msg_type = icmp.msg_type();
        self.put("icmpv6.type", u8::from(msg_type));
        self.put("icmpv6.code", icmp.msg_code());
        self.put("icmpv6.checksum", icmp.checksum());
        self.say(format_args!("ICMPv6 {msg_type} code {} ", icmp.msg_code()));
        match msg_type {
            Message::PacketTooBig => {
                self.put("icmpv6.mtu", icmp.mtu());
                self.say(format_args!("mtu={} ", icmp.mtu()));
            }
            Message::ParamProblem => {
                self.put("icmpv6.pointer", icmp.pointer());
                self.say(format_args!("pointer={} ", icmp.pointer()));
            }
            Message::EchoRequest | Message::EchoReply => {
                self.put("icmpv6.echo.identifier", icmp.echo_ident());
                self.put("icmpv6.echo.sequence_number", icmp.echo_seq_no());
                self.say(format_args!(
                    "id={:#x} seq={} ",
                    icmp.echo_ident(),
                    icmp.echo_seq_no()
                ));
            }
            _ => {}
        }
        let ok = icmp.verify_checksum(src, dst);
        self.checksum("icmpv6", ok);
        if !ok {
            return Ok(());
        }
        // Neighbor Discovery bodies are validated by the repr (RFC 4861 §7.1).
        match Icmpv6Repr::parse(&icmp, src, dst)? {
            Icmpv6Repr::NeighborSolicit {
                target,
                source_lladdr,
            } => {
                self.addr("icmpv6.nd.ns.target_address", target);
                self.say(format_args!("who-has {target} "));
                if let Some(mac) = source_lladdr {
                    self.put("icmpv6.opt.linkaddr", MacAddr(mac).to_string());
                    self.say(format_args!("from {} ", MacAddr(mac)));
                }
            }
            Icmpv6Repr::NeighborAdvert {
                router,
                solicited,
                override_,
                target,
                target_lladdr,
            } => {
                self.addr("icmpv6.nd.na.target_address", target);
                self.put("icmpv6.nd.na.flag.r", router);
                self.put("icmpv6.nd.na.flag.s", solicited);
                self.put("icmpv6.nd.na.flag.o", override_);
                self.say(format_args!("{target} "));
                if let Some(mac) = target_lladdr {
                    self.put("icmpv6.opt.linkaddr", MacAddr(mac).to_string());
                    self.say(format_args!("is-at {} ", MacAddr(mac)));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn mobility(&mut self, bytes: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<(), Error> {
        let mh = MhPacket::new_checked(bytes)?;
        self.put("mip6.proto", mh.payload_proto());
        self.put("mip6.hlen", mh.header_len());
        self.put("mip6.mhtype", u8::from(mh.mh_type()));
        self.put("mip6.csum", mh.checksum());
        self.say(format_args!("MH "));
        self.checksum("mip6", mh.verify_checksum(src, dst));
        let repr = MhRepr::parse(&mh)?;
        match repr.message {
            MhMessage::BindingRefreshRequest => self.say(format_args!("BRR ")),
            MhMessage::HomeTestInit { cookie } => {
                self.hex("mip6.hoti.cookie", &cookie);
                self.say(format_args!("HoTI "));
            }
            MhMessage::CareOfTestInit { cookie } => {
                self.hex("mip6.coti.cookie", &cookie);
                self.say(format_args!("CoTI "));
            }
            MhMessage::HomeTest {
                home_nonce_index,
                cookie,
                keygen_token,
            } => {
                self.put("mip6.hot.nindex", home_nonce_index);
                self.hex("mip6.hot.cookie", &cookie);
                self.hex("mip6.hot.token", &keygen_token);
                self.say(format_args!("HoT index={home_nonce_index} "));
            }
            MhMessage::CareOfTest {
                care_of_nonce_index,
                cookie,
                keygen_token,
            } => {
                self.put("mip6.cot.nindex", care_of_nonce_index);
                self.hex("mip6.cot.cookie", &cookie);
                self.hex("mip6.cot.token", &keygen_token);
                self.say(format_args!("CoT index={care_of_nonce_index} "));
            }
            MhMessage::BindingUpdate(bu) => {
                self.put("mip6.bu.seqnr", bu.sequence);
                self.put("mip6.bu.a_flag", bu.ack);
                self.put("mip6.bu.h_flag", bu.home_registration);
                self.put("mip6.bu.l_flag", bu.link_local);
                self.put("mip6.bu.k_flag", bu.key_mgmt);
                self.put("mip6.bu.lifetime", bu.lifetime);
                self.say(format_args!("BU seq={}", bu.sequence));
                for (set, name) in [
                    (bu.ack, "A"),
                    (bu.home_registration, "H"),
                    (bu.link_local, "L"),
                    (bu.key_mgmt, "K"),
                ] {
                    if set {
                        self.say(format_args!(" {name}"));
                    }
                }
                self.say(format_args!(
                    " lifetime={} ({} s) ",
                    bu.lifetime,
                    bu.lifetime_secs()
                ));
            }
            MhMessage::BindingAck(ba) => {
                self.put("mip6.ba.status", u8::from(ba.status));
                self.put("mip6.ba.k_flag", ba.key_mgmt);
                self.put("mip6.ba.seqnr", ba.sequence);
                self.put("mip6.ba.lifetime", ba.lifetime);
                self.say(format_args!(
                    "BA status={} seq={} lifetime={} ({} s) ",
                    u8::from(ba.status),
                    ba.sequence,
                    ba.lifetime,
                    ba.lifetime_secs()
                ));
            }
            MhMessage::BindingError {
                status,
                home_address,
            } => {
                self.put("mip6.be.status", u8::from(status));
                self.addr("mip6.be.haddr", home_address);
                self.say(format_args!(
                    "BE status={} home={home_address} ",
                    u8::from(status)
                ));
            }
            MhMessage::Unknown { mh_type, .. } => {
                self.say(format_args!("unknown type {mh_type} "));
            }
        }
        for option in repr.options.iter() {
            self.mobility_option(option?);
        }
        Ok(())
    }

    fn mobility_option(&mut self, option: MobilityOption<'_>) {
        match option {
            MobilityOption::Pad1 | MobilityOption::PadN(_) => {}
            MobilityOption::BindingRefreshAdvice { interval } => {
                self.put("mip6.bra.interval", interval);
                self.say(format_args!("BRA({interval}) "));
            }
            MobilityOption::AlternateCareOf(addr) => {
                self.addr("mip6.acoa.acoa", addr);
                self.say(format_args!("ACoA({addr}) "));
            }
            MobilityOption::NonceIndices { home, care_of } => {
                self.put("mip6.ni.hni", home);
                self.put("mip6.ni.cni", care_of);
                self.say(format_args!("NI({home},{care_of}) "));
            }
            MobilityOption::BindingAuthData(auth) => {
                self.hex("mip6.bad.auth", auth);
                self.say(format_args!("BAD "));
            }
            MobilityOption::MobilityMessageAuth {
                subtype,
                spi,
                auth_data,
            } => {
                self.put("mip6.auth.subtype", u8::from(subtype));
                self.put("mip6.auth.mobility_spi", spi);
                self.hex("mip6.auth.auth_data", auth_data);
                self.say(format_args!("AUTH(spi={spi}) "));
            }
            MobilityOption::ReplayProtection { timestamp } => {
                self.hex("mip6.mseg_id.timestamp", &timestamp.to_be_bytes());
                self.say(format_args!("REPLAY({timestamp:#x}) "));
            }
            MobilityOption::VendorSpecific {
                vendor_id,
                sub_type,
                ..
            } => {
                self.put("mip6.vsm.vendorId", vendor_id);
                self.put("mip6.vsm.subtype", sub_type);
                self.say(format_args!("VSM(vendor={vendor_id},sub={sub_type}) "));
            }
            MobilityOption::BindingIdentifier {
                bid,
                status,
                h,
                care_of,
                ..
            } => {
                self.put("mip6.bi.bid", bid);
                self.put("mip6.bi.status", status);
                self.put("mip6.bi.h_flag", h);
                if let Some(coa) = care_of {
                    self.addr("mip6.bi.coa_ipv6", coa);
                }
                self.say(format_args!("BID({bid}) "));
            }
            MobilityOption::Unknown { type_, .. } => {
                self.say(format_args!("option({type_}) "));
            }
        }
    }
}

/// Why a capture could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a pcap or pcapng capture: {reason}")]
    Format { path: String, reason: String },
    #[error("{path}: link type {link} is not Ethernet; only Ethernet captures are decoded")]
    LinkType { path: String, link: String },
}

/// Reads every frame of a pcap or pcapng file (Ethernet link type) into memory.
pub fn read_capture(path: &Path) -> Result<Vec<Vec<u8>>, CaptureError> {
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use pcap_file::DataLink;

    let p = path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| CaptureError::Io {
            path: p.clone(),
            source,
        })?;
    let format = |e: pcap_file::PcapError| CaptureError::Format {
        path: p.clone(),
        reason: e.to_string(),
    };
    let mut frames = Vec::new();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut reader = PcapNgReader::new(&bytes[..]).map_err(format)?;
        while let Some(block) = reader.next_block() {
            match block.map_err(format)? {
                Block::InterfaceDescription(idb) if idb.linktype != DataLink::ETHERNET => {
                    return Err(CaptureError::LinkType {
                        path: p,
                        link: format!("{:?}", idb.linktype),
                    })
                }
                Block::EnhancedPacket(epb) => frames.push(epb.data.into_owned()),
                Block::SimplePacket(spb) => frames.push(spb.data.into_owned()),
                _ => {}
            }
        }
    } else {
        let mut reader = PcapReader::new(&bytes[..]).map_err(format)?;
        let link = reader.header().datalink;
        if link != DataLink::ETHERNET {
            return Err(CaptureError::LinkType {
                path: p,
                link: format!("{link:?}"),
            });
        }
        while let Some(pkt) = reader.next_packet() {
            frames.push(pkt.map_err(format)?.data.into_owned());
        }
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arbitrary_bytes_never_panic_and_short_frames_report_an_error() {
        for len in 0..64 {
            let frame: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let d = decode_frame(&frame);
            if len < 14 {
                assert!(d.error().is_some(), "len {len}");
            }
        }
    }
}
