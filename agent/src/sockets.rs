//! The agent's sockets. This kernel has no Mobile IPv6 (`CONFIG_IPV6_MIP6` is off), which
//! decides how Mobility Header traffic can be sent and received:
//!
//! * A BU carries a Home Address destination option the kernel cannot emit, so the whole
//!   IPv6 packet is built in user space and sent on `socket(AF_INET6, SOCK_RAW,
//!   IPPROTO_RAW)`, which on Linux implies `IPV6_HDRINCL`.
//! * A BA carries a Type 2 routing header with Segments Left 1, which a kernel without
//!   MIP6 rejects (ICMPv6 Parameter Problem) before any raw IPv6 socket sees it, so it is
//!   read on an `AF_PACKET` socket (`SOCK_DGRAM`, `ETH_P_IPV6`: no link-layer header)
//!   with a classic BPF filter that keeps only packets to the care-of address that carry
//!   a routing header or tunnel a Mobility Header (a Binding Refresh Request).
//!
//! Both were checked in network namespaces on this kernel (see the crate's namespace test).

use std::io::Read;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};

/// `ETH_P_IPV6`.
const ETH_P_IPV6: u16 = 0x86dd;

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_LD_B_ABS: u16 = 0x30;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;

/// What a receive socket keeps, besides the destination check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveFilter {
    /// Next header Routing (a BA with its Type 2 routing header), or IPv6-in-IPv6 whose
    /// inner next header is Mobility (a tunnelled BRR).
    Mobility,
    /// IPv6-in-IPv6, directly or after a Destination Options header (a Tunnel
    /// Encapsulation Limit): the traffic the TUN decapsulator handles.
    Tunnel,
    /// With route optimisation: everything [`Mobility`](Self::Mobility) keeps, plus every
    /// tunnelled packet (a client's first packet starts return routability; a HoT arrives
    /// tunnelled), Mobility Headers sent straight to the care-of address (CoT, BE) and
    /// ICMPv6 Parameter Problems (a legacy client's answer to our CoTI). Route-optimised
    /// data carries a Type 2 routing header, so Next Header Routing covers it.
    RouteOptimisation,
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl BpfInsn {
    const fn new(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
        BpfInsn { code, jt, jf, k }
    }
}

/// The classic BPF program: destination address = `care_of`, then the [`ReceiveFilter`]
/// test. Offsets count from the IPv6 header (SOCK_DGRAM packet sockets run the filter on
/// the network header).
pub fn bpf_program(care_of: Ipv6Addr, filter: ReceiveFilter) -> Vec<BpfInsn> {
    const ACCEPT: u32 = 0x0004_0000;
    let o = care_of.octets();
    let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
    let mut p = Vec::new();
    // Jumps are relative to the next instruction; the accept and drop returns are the last
    // two instructions, so their offsets are computed from the final length below.
    let tail = match filter {
        ReceiveFilter::Mobility => 5,
        ReceiveFilter::Tunnel => 3,
        ReceiveFilter::RouteOptimisation => 8,
    };
    let body = 8 + tail;
    let to_drop = |idx: usize| (body + 1 - (idx + 1)) as u8;
    let to_accept = |idx: usize| (body - (idx + 1)) as u8;
    for (n, at) in [24u32, 28, 32, 36].into_iter().enumerate() {
        p.push(BpfInsn::new(BPF_LD_W_ABS, 0, 0, at));
        let idx = p.len();
        p.push(BpfInsn::new(BPF_JEQ_K, 0, to_drop(idx), word(n * 4)));
    }
    // Next Header of the fixed header.
    p.push(BpfInsn::new(BPF_LD_B_ABS, 0, 0, 6));
    match filter {
        ReceiveFilter::Mobility => {
            let idx = p.len();
            p.push(BpfInsn::new(BPF_JEQ_K, to_accept(idx), 0, 43));
            let idx = p.len();
            p.push(BpfInsn::new(BPF_JEQ_K, 0, to_drop(idx), 41));
            // Next Header of the inner IPv6 header.
            p.push(BpfInsn::new(BPF_LD_B_ABS, 0, 0, 46));
            let idx = p.len();
            p.push(BpfInsn::new(BPF_JEQ_K, to_accept(idx), to_drop(idx), 135));
        }
        ReceiveFilter::Tunnel => {
            let idx = p.len();
            p.push(BpfInsn::new(BPF_JEQ_K, to_accept(idx), 0, 41));
            let idx = p.len();
            p.push(BpfInsn::new(BPF_JEQ_K, to_accept(idx), to_drop(idx), 60));
        }
        ReceiveFilter::RouteOptimisation => {
            for nh in [43, 135, 41, 60] {
                let idx = p.len();
                p.push(BpfInsn::new(BPF_JEQ_K, to_accept(idx), 0, nh));
            }
            let idx = p.len();
            p.push(BpfInsn::new(BPF_JEQ_K, 0, to_drop(idx), 58));
            // ICMPv6 type, right after the fixed header: Parameter Problem only (the
            // appliance's echo health checks need not wake the agent).
            p.push(BpfInsn::new(BPF_LD_B_ABS, 0, 0, 40));
            let idx = p.len();
            p.push(BpfInsn::new(BPF_JEQ_K, to_accept(idx), to_drop(idx), 4));
        }
    }
    debug_assert_eq!(p.len(), body);
    p.push(BpfInsn::new(BPF_RET_K, 0, 0, ACCEPT));
    p.push(BpfInsn::new(BPF_RET_K, 0, 0, 0));
    p
}

/// A raw socket that sends complete IPv6 packets (header included).
#[derive(Debug)]
pub struct RawSender {
    socket: Socket,
}

impl RawSender {
    pub fn open() -> std::io::Result<RawSender> {
        let socket = Socket::new(
            Domain::IPV6,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        Ok(RawSender { socket })
    }

    /// Sends a packet to the destination written in its IPv6 header.
    pub fn send(&self, packet: &[u8]) -> std::io::Result<usize> {
        let dst: [u8; 16] = packet
            .get(24..40)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| std::io::Error::other("packet shorter than an IPv6 header"))?;
        let to = SockAddr::from(SocketAddrV6::new(Ipv6Addr::from(dst), 0, 0, 0));
        self.socket.send_to(packet, &to)
    }
}

/// An `AF_PACKET` socket that reads IPv6 packets (without link-layer header) sent to the
/// care-of address on any interface.
#[derive(Debug)]
pub struct PacketReceiver {
    socket: Socket,
}

impl PacketReceiver {
    pub fn open(care_of: Ipv6Addr, filter: ReceiveFilter) -> std::io::Result<PacketReceiver> {
        let socket = Socket::new(
            Domain::PACKET,
            Type::DGRAM,
            Some(Protocol::from(i32::from(ETH_P_IPV6.to_be()))),
        )?;
        let program: Vec<SockFilter> = bpf_program(care_of, filter)
            .into_iter()
            .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
            .collect();
        socket.attach_filter(&program)?;
        // Packets queued before the filter was attached are not filtered; drop them.
        socket.set_nonblocking(true)?;
        let mut scratch = [0u8; 2048];
        while (&socket).read(&mut scratch).is_ok() {}
        socket.set_nonblocking(false)?;
        Ok(PacketReceiver { socket })
    }

    /// Waits up to `timeout` for a packet; `Ok(None)` when none came.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> std::io::Result<Option<usize>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match (&self.socket).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A raw IPv6 socket for one protocol. Its only job is to exist: with a raw socket for
/// the protocol open, the kernel hands packets of that protocol to it instead of answering
/// "unknown next header" with ICMPv6 Parameter Problem, while the agent reads the same
/// packets on its packet socket. Protocol 41 for the TUN decapsulator; protocol 135
/// (Mobility Header) with route optimisation, since a kernel without Mobile IPv6 would
/// otherwise answer every CoT, and every HoT it decapsulates, with an error to the client.
/// Reading it just keeps its queue short.
#[derive(Debug)]
pub struct ProtocolSink {
    socket: Socket,
}

impl ProtocolSink {
    /// The sink for IPv6-in-IPv6 (protocol 41).
    pub fn open() -> std::io::Result<ProtocolSink> {
        Self::for_protocol(libc::IPPROTO_IPV6)
    }

    /// The sink for `protocol`.
    pub fn for_protocol(protocol: i32) -> std::io::Result<ProtocolSink> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(protocol)))?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(ProtocolSink { socket })
    }

    /// Reads and discards one queued packet (waits at most 200 ms).
    pub fn discard_one(&self) {
        let mut buf = [0u8; 2048];
        let _ = (&self.socket).read(&mut buf);
    }
}

/// The name of the interface that holds `addr`, from /proc/net/if_inet6.
pub fn interface_of(addr: Ipv6Addr) -> Option<String> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    interface_in_if_inet6(&text, addr)
}

/// Parses /proc/net/if_inet6 lines: `address ifindex prefixlen scope flags name`.
pub fn interface_in_if_inet6(text: &str, addr: Ipv6Addr) -> Option<String> {
    let hex = addr
        .octets()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() == 6 && fields[0] == hex).then(|| fields[5].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small classic-BPF interpreter for the opcodes the program uses, so the jump
    /// offsets are checked without a kernel.
    fn run(prog: &[BpfInsn], pkt: &[u8]) -> u32 {
        let mut pc = 0;
        let mut acc: u32 = 0;
        loop {
            let BpfInsn { code, jt, jf, k } = prog[pc];
            pc += 1;
            match code {
                BPF_LD_W_ABS => {
                    let k = k as usize;
                    let Some(b) = pkt.get(k..k + 4) else { return 0 };
                    acc = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                BPF_LD_B_ABS => {
                    let Some(&b) = pkt.get(k as usize) else {
                        return 0;
                    };
                    acc = u32::from(b);
                }
                BPF_JEQ_K => pc += usize::from(if acc == k { jt } else { jf }),
                BPF_RET_K => return k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn packet(dst: Ipv6Addr, nh: u8, inner_nh: u8) -> Vec<u8> {
        let mut p = vec![0u8; 80];
        p[0] = 0x60;
        p[6] = nh;
        p[24..40].copy_from_slice(&dst.octets());
        p[40] = 0x60;
        p[46] = inner_nh;
        p
    }

    #[test]
    fn filter_programs() {
        let coa: Ipv6Addr = "2001:db8:100::10".parse().unwrap();
        let other: Ipv6Addr = "2001:db8:100::11".parse().unwrap();
        let m = bpf_program(coa, ReceiveFilter::Mobility);
        assert!(run(&m, &packet(coa, 43, 0)) > 0, "BA with RH2");
        assert!(run(&m, &packet(coa, 41, 135)) > 0, "tunnelled BRR");
        assert_eq!(run(&m, &packet(coa, 41, 6)), 0, "tunnelled TCP");
        assert_eq!(run(&m, &packet(coa, 58, 0)), 0, "ICMPv6");
        assert_eq!(run(&m, &packet(other, 43, 0)), 0, "other destination");
        assert_eq!(run(&m, &[0u8; 10]), 0, "runt");
        let t = bpf_program(coa, ReceiveFilter::Tunnel);
        assert!(run(&t, &packet(coa, 41, 6)) > 0);
        assert!(run(&t, &packet(coa, 60, 6)) > 0);
        assert_eq!(run(&t, &packet(coa, 43, 0)), 0);
        assert_eq!(run(&t, &packet(other, 41, 6)), 0);
        let r = bpf_program(coa, ReceiveFilter::RouteOptimisation);
        for nh in [43, 135, 41, 60] {
            assert!(run(&r, &packet(coa, nh, 6)) > 0, "next header {nh}");
            assert_eq!(run(&r, &packet(other, nh, 6)), 0, "other destination");
        }
        let mut pp = packet(coa, 58, 0);
        pp[40] = 4;
        assert!(run(&r, &pp) > 0, "Parameter Problem");
        pp[40] = 128;
        assert_eq!(run(&r, &pp), 0, "echo request");
        assert_eq!(run(&r, &packet(coa, 6, 0)), 0, "TCP");
        assert_eq!(run(&r, &[0u8; 39]), 0, "runt");
    }

    #[test]
    fn if_inet6_lookup() {
        let text = "20010db8010000000000000000000010 02 40 00 80     eth0\n\
                    00000000000000000000000000000001 01 80 10 80       lo\n";
        let coa: Ipv6Addr = "2001:db8:100::10".parse().unwrap();
        assert_eq!(interface_in_if_inet6(text, coa).as_deref(), Some("eth0"));
        assert_eq!(
            interface_in_if_inet6(text, Ipv6Addr::LOCALHOST).as_deref(),
            Some("lo")
        );
        assert_eq!(
            interface_in_if_inet6(text, "2001:db8::1".parse().unwrap()),
            None
        );
    }
}
