//! Flow identity: which bytes of a packet name its flow, the flow hash, and the outer Flow
//! Label derived from it.
//!
//! The hash is [`FlowKey::software_hash`]: fixed, unseeded and deterministic. That is
//! deliberate. The same hash selects the Maglev slot, and Maglev only keeps ECMP across
//! several appliances consistent if every appliance (and every worker) maps a flow to the
//! same slot; a per-worker or per-process seed would break exactly that. The hash is not
//! exposed to an attacker beyond what Maglev's published table keys already give away.
//!
//! The outer Flow Label (RFC 6437, RFC 6438 for tunnels) is 20 bits of a hash of the
//! *inner transport flow* (5-tuple), whatever the service's affinity mode, so that routers
//! between the appliance and the member can spread tunnel traffic by flow; it is never 0,
//! because 0 means "no label" (RFC 6437 §2). With flow affinity the key is the 5-tuple and
//! its hash serves; with client affinity it is [`FlowKey::client_flow_hash`], the client
//! pair's hash with the ports and protocol folded in by one multiply (a second finaliser
//! per packet for the 5-tuple's own hash bought nothing a label needs).

use anycast6_wire::checksum::proto;
use anycast6_wire::icmpv6::Message;
use anycast6_wire::ipv6;

use super::affinity::FlowKey;

/// DCCP, SCTP and UDP-Lite: protocols that start with two 16-bit ports like TCP and UDP.
const DCCP: u8 = 33;
const SCTP: u8 = 132;
const UDP_LITE: u8 = 136;

/// The (source, destination) ports of a transport header, or (0, 0) for protocols without
/// ports or a header too short to hold them. Echo Request/Reply contribute their Identifier
/// as the source "port", so that separate ping sessions are separate flows.
#[inline]
pub fn ports_of(protocol: u8, upper: Option<&[u8]>) -> (u16, u16) {
    let Some(upper) = upper else {
        return (0, 0);
    };
    match protocol {
        proto::TCP | proto::UDP | DCCP | SCTP | UDP_LITE => match upper {
            [a, b, c, d, ..] => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
            _ => (0, 0),
        },
        proto::ICMPV6 => match upper {
            [t, _, _, _, a, b, ..]
                if *t == u8::from(Message::EchoRequest) || *t == u8::from(Message::EchoReply) =>
            {
                (u16::from_be_bytes([*a, *b]), 0)
            }
            _ => (0, 0),
        },
        _ => (0, 0),
    }
}

/// The 20-bit outer Flow Label for a flow hash: never 0.
#[inline]
pub fn flow_label(hash: u64) -> u32 {
    // The top bits: Maglev folds the two halves and the affinity table mixes the whole
    // word, so reusing the top 20 bits adds no correlation that matters.
    let label = (hash >> 44) as u32;
    if label == 0 {
        1
    } else {
        label
    }
}

/// The hash of a key (see the module documentation for why it is unseeded).
#[inline]
pub fn hash(key: &FlowKey) -> u64 {
    key.software_hash()
}

/// The client-side flow an ICMPv6 error addressed to a service is about (RFC 7094: errors
/// from beyond the appliance about packets a member sent from the service address reach
/// the appliance, which must hand them to the member that owns the flow).
///
/// `icmp` is the ICMPv6 message; its quote starts with the member's packet, whose source
/// must be `service` (else `None`). Returns the key parts in the client -> service
/// direction: (client address, client port, service port, protocol). Ports are taken only
/// when the quoted packet has no extension headers; otherwise they are 0.
pub fn quoted_flow(icmp: &[u8], service: &[u8; 16]) -> Option<([u8; 16], u16, u16, u8)> {
    let first = *icmp.first()?;
    if !anycast6_wire::icmpv6::is_error(first) {
        return None;
    }
    let quote = icmp.get(8..)?;
    let header = quote.get(..ipv6::HEADER_LEN)?;
    if header[0] >> 4 != 6 || header[8..24] != service[..] {
        return None;
    }
    let mut client = [0u8; 16];
    client.copy_from_slice(&header[24..40]);
    let protocol = header[6];
    let (service_port, client_port) = ports_of(protocol, quote.get(ipv6::HEADER_LEN..));
    Some((client, client_port, service_port, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(ports_of(proto::TCP, Some(&[0, 80, 1, 187, 9])), (80, 443));
        assert_eq!(ports_of(proto::UDP, Some(&[0, 80, 1])), (0, 0));
        assert_eq!(ports_of(proto::UDP, None), (0, 0));
        assert_eq!(ports_of(proto::MOBILITY, Some(&[1, 2, 3, 4])), (0, 0));
        assert_eq!(
            ports_of(proto::ICMPV6, Some(&[128, 0, 0, 0, 0x12, 0x34, 0, 1])),
            (0x1234, 0)
        );
        assert_eq!(
            ports_of(proto::ICMPV6, Some(&[1, 0, 0, 0, 0x12, 0x34, 0, 1])),
            (0, 0)
        );
    }

    #[test]
    fn labels_are_20_bits_and_never_zero() {
        assert_eq!(flow_label(0), 1);
        assert_eq!(flow_label(u64::MAX), 0xf_ffff);
        for i in 0..10_000u64 {
            let key = FlowKey::five_tuple([1; 16], i as u16, [2; 16], 80, 6);
            let l = flow_label(hash(&key));
            assert!(l != 0 && l <= 0xf_ffff);
            assert_eq!(l, flow_label(hash(&key)), "stable");
        }
    }

    #[test]
    fn quoted_flow_reads_the_members_packet() {
        let service = [0x20; 16];
        let client = [0x30; 16];
        let mut icmp = vec![1, 4, 0, 0, 0, 0, 0, 0];
        let mut quoted = vec![0x60, 0, 0, 0, 0, 20, proto::TCP, 64];
        quoted.extend_from_slice(&service);
        quoted.extend_from_slice(&client);
        quoted.extend_from_slice(&[0, 80, 0xc0, 0x01]);
        icmp.extend_from_slice(&quoted);
        assert_eq!(
            quoted_flow(&icmp, &service),
            Some((client, 0xc001, 80, proto::TCP))
        );
        assert_eq!(quoted_flow(&icmp, &client), None, "not from the service");
        icmp[0] = 128;
        assert_eq!(quoted_flow(&icmp, &service), None, "not an error");
        assert_eq!(quoted_flow(&icmp[..30], &service), None);
    }
}
