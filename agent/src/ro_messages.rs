//! Route optimisation on the wire, member side: the packets of return routability and of
//! correspondent registration (RFC 6275 §5.2, §6.1.3-§6.1.9, §11.6, §11.7.2), and the
//! reading of whatever a client sends back to the care-of address.
//!
//! Every packet is a complete IPv6 packet built in user space, for the same reason as the
//! home-registration BU ([`crate::messages`]): this kernel has no Mobile IPv6, so it can
//! neither add a Home Address option nor accept a Type 2 routing header.
//!
//! * HoTI: `service -> client`, reverse-tunnelled to the appliance (RFC 6275 §5.2.3,
//!   §10.4.5): outer `care-of -> appliance`, Next Header 41.
//! * CoTI: `care-of -> client`, directly.
//! * BU: `care-of -> client` with a Home Address option holding the service address,
//!   Nonce Indices and Binding Authorization Data (§11.7.2).
//!
//! The RR cryptography (Kbm, authenticator) is `anycast6_wire::rr`.

use std::net::Ipv6Addr;

use anycast6_wire::checksum::{self, proto};
use anycast6_wire::ipv6::{self, Ipv6Packet};
use anycast6_wire::ipv6ext::ExtHeaderChain;
use anycast6_wire::mobility::{
    check_receive, BeStatus, BindingAck, BindingUpdate, MhMessage, MhOptions, MhPacket, MhRepr,
    MobilityOption,
};
use anycast6_wire::rr::{self, KBM_LEN, TOKEN_LEN};

use crate::packets::{ipv6_packet, is_global_unicast, mh_packet, mh_packet_unsummed};

/// ICMPv6 Parameter Problem (RFC 4443 §3.4).
const ICMPV6_PARAMETER_PROBLEM: u8 = 4;
/// Length of the ICMPv6 error header before the invoking packet.
const ICMPV6_ERROR_HEADER_LEN: usize = 8;
/// Length of a Type 2 routing header (RFC 6275 §6.4).
const TYPE2_ROUTING_HEADER_LEN: usize = 24;

/// The Home Test Init for `client`, reverse-tunnelled through the appliance: inner packet
/// `service -> client`, outer `care_of -> home_agent` (RFC 6275 §5.2.3: the HoTI must leave
/// from the home address, and only the home agent can send it from there).
pub fn build_hoti(
    care_of: Ipv6Addr,
    home_agent: Ipv6Addr,
    service: Ipv6Addr,
    client: Ipv6Addr,
    cookie: [u8; 8],
    hop_limit: u8,
) -> anycast6_wire::Result<Vec<u8>> {
    let inner = mh_packet(
        service,
        client,
        hop_limit,
        &MhRepr {
            message: MhMessage::HomeTestInit { cookie },
            options: MhOptions::NONE,
        },
    )?;
    ipv6_packet(care_of, home_agent, proto::IPV6, hop_limit, &inner)
}

/// The Care-of Test Init for `client`, straight from the care-of address (§5.2.4).
pub fn build_coti(
    care_of: Ipv6Addr,
    client: Ipv6Addr,
    cookie: [u8; 8],
    hop_limit: u8,
) -> anycast6_wire::Result<Vec<u8>> {
    mh_packet(
        care_of,
        client,
        hop_limit,
        &MhRepr {
            message: MhMessage::CareOfTestInit { cookie },
            options: MhOptions::NONE,
        },
    )
}

/// The fields of a Binding Update to a correspondent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrespondentBu {
    pub care_of: Ipv6Addr,
    pub service: Ipv6Addr,
    pub client: Ipv6Addr,
    pub sequence: u16,
    /// 4-second units; 0 deletes the binding.
    pub lifetime: u16,
    pub home_nonce_index: u16,
    pub care_of_nonce_index: u16,
    pub kbm: [u8; KBM_LEN],
    pub hop_limit: u8,
}

/// The whole IPv6 packet of a Binding Update to a correspondent (§11.7.2): `care_of ->
/// client`, Home Address option = service, H = 0, A = 1, Nonce Indices, then Binding
/// Authorization Data as the last option (§6.2.7), its authenticator over the care-of
/// address, the client's address and the MH (§5.2.6), the checksum with the home address
/// as pseudo-header source (§6.1.1).
pub fn build_correspondent_bu(p: &CorrespondentBu) -> anycast6_wire::Result<Vec<u8>> {
    let placeholder = [0u8; rr::AUTHENTICATOR_LEN];
    let options = [
        MobilityOption::NonceIndices {
            home: p.home_nonce_index,
            care_of: p.care_of_nonce_index,
        },
        MobilityOption::BindingAuthData(&placeholder),
    ];
    let repr = MhRepr {
        message: MhMessage::BindingUpdate(BindingUpdate {
            sequence: p.sequence,
            ack: true,
            home_registration: false,
            lifetime: p.lifetime,
            ..Default::default()
        }),
        options: MhOptions::List(&options),
    };
    let (mut buf, mh_at) =
        mh_packet_unsummed(p.care_of, p.client, Some(p.service), p.hop_limit, &repr)?;
    let mh = &mut buf[mh_at..];
    rr::insert_authenticator_and_fill_checksum(
        &p.kbm, &p.care_of, &p.client, mh, &p.service, &p.client,
    )?;
    Ok(buf)
}

/// What a Parameter Problem quoted of a Mobility Header this member sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedMh {
    /// Source of the quoted packet: the care-of address (CoTI, BU) or a service (HoTI).
    pub src: Ipv6Addr,
    /// Its destination: the client.
    pub client: Ipv6Addr,
    /// Home address of its Home Address option (a BU).
    pub home_address: Option<Ipv6Addr>,
    pub mh_type: u8,
    /// The cookie of a HoTI or CoTI.
    pub cookie: Option<[u8; 8]>,
    /// The sequence number of a BU.
    pub sequence: Option<u16>,
}

/// What a client sent to the care-of address (directly, or tunnelled by the appliance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromClient<'a> {
    /// A Home Test, tunnelled by the appliance (§5.2.3).
    HomeTest {
        service: Ipv6Addr,
        client: Ipv6Addr,
        nonce_index: u16,
        cookie: [u8; 8],
        token: [u8; TOKEN_LEN],
    },
    /// A Care-of Test, direct (§5.2.4).
    CareOfTest {
        client: Ipv6Addr,
        nonce_index: u16,
        cookie: [u8; 8],
        token: [u8; TOKEN_LEN],
    },
    /// A Binding Acknowledgement with its Type 2 routing header (§9.5.4); `mh` is the whole
    /// Mobility Header, for the authenticator check.
    BindingAck {
        service: Ipv6Addr,
        client: Ipv6Addr,
        ack: BindingAck,
        mh: &'a [u8],
    },
    /// A Binding Error (§6.1.9). `service` is the home address it names, or the service the
    /// tunnelled error was sent to; `None` when neither says (a status 2 about a CoTI).
    BindingError {
        service: Option<Ipv6Addr>,
        client: Ipv6Addr,
        status: BeStatus,
    },
    /// A Binding Refresh Request to a service address, tunnelled by the appliance (§9.5.5).
    RefreshRequest { service: Ipv6Addr, client: Ipv6Addr },
    /// ICMPv6 Parameter Problem about a Mobility Header we sent (§11.3.5 for code 1).
    ParameterProblem {
        client: Ipv6Addr,
        code: u8,
        pointer: u32,
        quoted: QuotedMh,
    },
    /// Any other packet of the client to a service, tunnelled by the appliance: the
    /// client is not route-optimised with us (yet).
    Tunnelled { service: Ipv6Addr, client: Ipv6Addr },
    /// Route-optimised data: `client -> care-of` with a Type 2 routing header naming a
    /// service (§9.3.2); `inner` is the same datagram with the routing header removed and
    /// the service as destination, ready for the local stack (§6.4: what a MIPv6 kernel
    /// would have made of it).
    RouteOptimisedData {
        service: Ipv6Addr,
        client: Ipv6Addr,
        inner: Vec<u8>,
    },
}

/// Why a packet was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotTaken {
    Malformed,
    NotToCareOf,
    /// Not for one of our services, or not from a client (the appliance's own messages
    /// are [`crate::messages`]'s business).
    NotOurs,
    BadChecksum,
    /// A message a member does not act on (HoTI, BU, ...).
    OtherMessage,
}

/// Reads an IPv6 packet (no link-layer header) received for the care-of address.
pub fn parse_from_client<'a>(
    packet: &'a [u8],
    care_of: Ipv6Addr,
    home_agent: Ipv6Addr,
    services: &[Ipv6Addr],
) -> Result<FromClient<'a>, NotTaken> {
    let ip = Ipv6Packet::new_checked(packet).map_err(|_| NotTaken::Malformed)?;
    if ip.version() != 6 {
        return Err(NotTaken::Malformed);
    }
    if ip.dst_addr() != care_of {
        return Err(NotTaken::NotToCareOf);
    }
    let packet = packet.get(..ip.total_len()).ok_or(NotTaken::Malformed)?;
    let chain = ExtHeaderChain::of_packet(&ip).map_err(|_| NotTaken::Malformed)?;
    let src = ip.src_addr();
    let upper = chain.upper_layer_bytes(&packet[ipv6::HEADER_LEN..]);
    if let Some(service) = chain.type2_home_address {
        if !services.contains(&service) {
            return Err(NotTaken::NotOurs);
        }
        if chain.upper_layer == proto::MOBILITY {
            let mh = upper.ok_or(NotTaken::Malformed)?;
            return match parse_mh(mh, src, service)? {
                MhMessage::BindingAck(ack) => Ok(FromClient::BindingAck {
                    service,
                    client: src,
                    ack,
                    mh,
                }),
                _ => Err(NotTaken::OtherMessage),
            };
        }
        let inner = strip_type2(packet).ok_or(NotTaken::Malformed)?;
        return Ok(FromClient::RouteOptimisedData {
            service,
            client: src,
            inner,
        });
    }
    match chain.upper_layer {
        proto::IPV6 if src == home_agent => {
            let inner = upper.ok_or(NotTaken::Malformed)?;
            parse_tunnelled(inner, care_of, services)
        }
        proto::MOBILITY => {
            let mh = upper.ok_or(NotTaken::Malformed)?;
            match parse_mh(mh, src, care_of)? {
                MhMessage::CareOfTest {
                    care_of_nonce_index,
                    cookie,
                    keygen_token,
                } => Ok(FromClient::CareOfTest {
                    client: src,
                    nonce_index: care_of_nonce_index,
                    cookie,
                    token: keygen_token,
                }),
                MhMessage::BindingError {
                    status,
                    home_address,
                } => Ok(FromClient::BindingError {
                    service: services.contains(&home_address).then_some(home_address),
                    client: src,
                    status,
                }),
                _ => Err(NotTaken::OtherMessage),
            }
        }
        proto::ICMPV6 => {
            let icmp = upper.ok_or(NotTaken::Malformed)?;
            parse_parameter_problem(icmp, src, care_of, care_of, services)
        }
        _ => Err(NotTaken::NotOurs),
    }
}

/// The inner packet of an IPv6-in-IPv6 packet from the appliance.
fn parse_tunnelled<'a>(
    inner: &'a [u8],
    care_of: Ipv6Addr,
    services: &[Ipv6Addr],
) -> Result<FromClient<'a>, NotTaken> {
    let ip = Ipv6Packet::new_checked(inner).map_err(|_| NotTaken::Malformed)?;
    if ip.version() != 6 {
        return Err(NotTaken::Malformed);
    }
    let (client, service) = (ip.src_addr(), ip.dst_addr());
    if !services.contains(&service) || !is_global_unicast(client) {
        return Err(NotTaken::NotOurs);
    }
    let chain = ExtHeaderChain::of_packet(&ip).map_err(|_| NotTaken::Malformed)?;
    let payload = inner
        .get(ipv6::HEADER_LEN..ip.total_len())
        .ok_or(NotTaken::Malformed)?;
    let upper = chain.upper_layer_bytes(payload);
    match (chain.upper_layer, upper) {
        (proto::MOBILITY, Some(mh)) => match parse_mh(mh, client, service)? {
            MhMessage::HomeTest {
                home_nonce_index,
                cookie,
                keygen_token,
            } => Ok(FromClient::HomeTest {
                service,
                client,
                nonce_index: home_nonce_index,
                cookie,
                token: keygen_token,
            }),
            MhMessage::BindingRefreshRequest => Ok(FromClient::RefreshRequest { service, client }),
            MhMessage::BindingError { status, .. } => Ok(FromClient::BindingError {
                service: Some(service),
                client,
                status,
            }),
            _ => Err(NotTaken::OtherMessage),
        },
        (proto::ICMPV6, Some(icmp)) if icmp.first() == Some(&ICMPV6_PARAMETER_PROBLEM) => {
            parse_parameter_problem(icmp, client, service, care_of, services)
        }
        _ => Ok(FromClient::Tunnelled { service, client }),
    }
}

/// Checks and parses a Mobility Header from `src` to `dst` (pseudo-header addresses).
fn parse_mh(mh: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Result<MhMessage<'_>, NotTaken> {
    let packet = MhPacket::new_checked(mh).map_err(|_| NotTaken::Malformed)?;
    // RFC 6275 §9.2: a bad checksum is silently discarded.
    check_receive(&packet, &src, &dst).map_err(|_| NotTaken::BadChecksum)?;
    let repr = MhRepr::parse(&packet).map_err(|_| NotTaken::Malformed)?;
    Ok(repr.message)
}

/// An ICMPv6 Parameter Problem from `src` to `dst` that quotes a Mobility Header sent by
/// this member (from the care-of address or a service address) to `src`.
fn parse_parameter_problem<'a>(
    icmp: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    care_of: Ipv6Addr,
    services: &[Ipv6Addr],
) -> Result<FromClient<'a>, NotTaken> {
    if icmp.len() < ICMPV6_ERROR_HEADER_LEN + ipv6::HEADER_LEN {
        return Err(NotTaken::Malformed);
    }
    if icmp[0] != ICMPV6_PARAMETER_PROBLEM {
        return Err(NotTaken::NotOurs);
    }
    if !checksum::verify_upper_layer(&src, &dst, proto::ICMPV6, icmp) {
        return Err(NotTaken::BadChecksum);
    }
    let code = icmp[1];
    let pointer = u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]);
    let quoted = &icmp[ICMPV6_ERROR_HEADER_LEN..];
    // The quote may be cut short (RFC 4443 §2.4 (c)), so its header is read field by field
    // rather than through a length-checked packet view.
    let addr = |at: usize| {
        let mut o = [0u8; 16];
        o.copy_from_slice(&quoted[at..at + 16]);
        Ipv6Addr::from(o)
    };
    let (q_src, q_dst) = (addr(8), addr(24));
    if q_dst != src || !(q_src == care_of || services.contains(&q_src)) {
        return Err(NotTaken::NotOurs);
    }
    let chain = ExtHeaderChain::walk(quoted[6], &quoted[ipv6::HEADER_LEN..])
        .map_err(|_| NotTaken::Malformed)?;
    if chain.upper_layer != proto::MOBILITY {
        return Err(NotTaken::NotOurs);
    }
    let mh = chain
        .upper_layer_bytes(&quoted[ipv6::HEADER_LEN..])
        .ok_or(NotTaken::Malformed)?;
    let mh_type = *mh.get(2).ok_or(NotTaken::Malformed)?;
    let cookie = mh.get(8..16).map(|c| {
        let mut o = [0u8; 8];
        o.copy_from_slice(c);
        o
    });
    let sequence = mh.get(6..8).map(|s| u16::from_be_bytes([s[0], s[1]]));
    let (cookie, sequence) = match mh_type {
        1 | 2 => (Some(cookie.ok_or(NotTaken::Malformed)?), None),
        5 => (None, Some(sequence.ok_or(NotTaken::Malformed)?)),
        _ => return Err(NotTaken::NotOurs),
    };
    Ok(FromClient::ParameterProblem {
        client: src,
        code,
        pointer,
        quoted: QuotedMh {
            src: q_src,
            client: q_dst,
            home_address: chain.home_address,
            mh_type,
            cookie,
            sequence,
        },
    })
}

/// The datagram of a route-optimised packet as a Mobile IPv6 kernel would hand it to the
/// upper layer (RFC 6275 §6.4, §9.3.2): the Type 2 routing header removed and its home
/// address made the destination. The upper-layer checksum already covers the home address
/// (§6.1.1 / RFC 8200 §8.1: final destination), so it stays valid. `None` when the header
/// chain before the routing header cannot be walked.
pub fn strip_type2(packet: &[u8]) -> Option<Vec<u8>> {
    let total = Ipv6Packet::new_checked(packet).ok()?.total_len();
    let packet = packet.get(..total)?;
    // Offset of the Next Header octet that names the current header.
    let mut next_header_at = 6;
    let mut at = ipv6::HEADER_LEN;
    for _ in 0..anycast6_wire::ipv6ext::MAX_EXT_HEADERS {
        let next_header = packet[next_header_at];
        if !matches!(
            next_header,
            proto::HOP_BY_HOP | proto::DEST_OPTS | proto::ROUTING
        ) {
            return None;
        }
        let header = packet.get(at..at + 8)?;
        let len = (usize::from(header[1]) + 1) * 8;
        if next_header == proto::ROUTING && header[2] == 2 {
            if len != TYPE2_ROUTING_HEADER_LEN || packet.len() < at + len {
                return None;
            }
            let mut home = [0u8; 16];
            home.copy_from_slice(&packet[at + 8..at + 24]);
            let mut out = Vec::with_capacity(packet.len() - len);
            out.extend_from_slice(&packet[..at]);
            out.extend_from_slice(&packet[at + len..]);
            out[next_header_at] = header[0];
            let payload_len = u16::try_from(out.len() - ipv6::HEADER_LEN).ok()?;
            out[4..6].copy_from_slice(&payload_len.to_be_bytes());
            out[24..40].copy_from_slice(&home);
            return Some(out);
        }
        next_header_at = at;
        at += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{a, hex, parameter_problem, tunnel, with_type2};
    use anycast6_wire::mobility::BaStatus;
    use anycast6_wire::udp::{UdpPacket, UdpRepr};

    // PROTOCOL.md §1.6.
    const KCN: [u8; 20] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff, 0x00, 0x11, 0x22, 0x33,
    ];
    const NONCE: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0];
    fn hoa() -> Ipv6Addr {
        a("2001:db8:1::100")
    }
    fn coa() -> Ipv6Addr {
        a("2001:db8:2::10")
    }
    fn cn() -> Ipv6Addr {
        a("2001:db8:3::1")
    }
    fn ha() -> Ipv6Addr {
        a("2001:db8:1::1")
    }

    fn tokens() -> ([u8; 8], [u8; 8]) {
        (
            rr::home_keygen_token(&KCN, &hoa(), &NONCE),
            rr::care_of_keygen_token(&KCN, &coa(), &NONCE),
        )
    }

    fn mh_of(packet: &[u8]) -> Vec<u8> {
        let ip = Ipv6Packet::new_checked(packet).unwrap();
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        chain.upper_layer_bytes(ip.payload()).unwrap().to_vec()
    }

    #[test]
    fn bu_matches_protocol_vector() {
        let (ht, ct) = tokens();
        let pkt = build_correspondent_bu(&CorrespondentBu {
            care_of: coa(),
            service: hoa(),
            client: cn(),
            sequence: 1,
            lifetime: 105,
            home_nonce_index: 10,
            care_of_nonce_index: 20,
            kbm: rr::kbm(&ht, &ct),
            hop_limit: 64,
        })
        .unwrap();
        assert_eq!(
            mh_of(&pkt),
            hex("3b030500 cb18 0001 8000 0069 0404 000a 0014 050c ebbcf0131b2c9f8d6174162e")
        );
        let ip = Ipv6Packet::new_checked(&pkt[..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (coa(), cn()));
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        assert_eq!(chain.home_address, Some(hoa()));
    }

    #[test]
    fn deregistration_bu_matches_protocol_vector() {
        // The §1.6 vector is sent from home; with the home address as "care-of" the MH and
        // its checksum are the same bytes (the HAO makes the pseudo-header source the home
        // address either way).
        let (ht, _) = tokens();
        let pkt = build_correspondent_bu(&CorrespondentBu {
            care_of: hoa(),
            service: hoa(),
            client: cn(),
            sequence: 2,
            lifetime: 0,
            home_nonce_index: 10,
            care_of_nonce_index: 0,
            kbm: rr::kbm_home_only(&ht),
            hop_limit: 64,
        })
        .unwrap();
        assert_eq!(
            mh_of(&pkt),
            hex("3b030500 0a98 0002 8000 0000 0404 000a 0000 050c ab26b85fcfc5f652adeff79a")
        );
    }

    /// `src -> dst` carrying `mh`, with a Type 2 routing header when `rh2` is given.
    fn with_mh(src: Ipv6Addr, dst: Ipv6Addr, rh2: Option<Ipv6Addr>, mh: &[u8]) -> Vec<u8> {
        match rh2 {
            Some(home) => with_type2(src, dst, home, proto::MOBILITY, 64, mh),
            None => ipv6_packet(src, dst, proto::MOBILITY, 64, mh).unwrap(),
        }
    }

    #[test]
    fn ba_vector_parsed_and_authenticated() {
        let (ht, ct) = tokens();
        let mh = hex("3b030600 a729 00 00 0001 0069 010400000000 050c ef84ecf524725e92437c113f");
        let pkt = with_mh(cn(), coa(), Some(hoa()), &mh);
        let got = parse_from_client(&pkt, coa(), ha(), &[hoa()]).unwrap();
        let FromClient::BindingAck {
            service,
            client,
            ack,
            mh,
        } = got
        else {
            panic!("not a BA: {got:?}");
        };
        assert_eq!((service, client), (hoa(), cn()));
        assert_eq!(ack.status, BaStatus::from(0));
        assert_eq!((ack.sequence, ack.lifetime), (1, 105));
        assert!(rr::verify_authenticator(&rr::kbm(&ht, &ct), &coa(), &cn(), mh).unwrap());
        assert!(!rr::verify_authenticator(&rr::kbm_home_only(&ht), &coa(), &cn(), mh).unwrap());
        // Not for one of our services; corrupted checksum.
        assert_eq!(
            parse_from_client(&pkt, coa(), ha(), &[a("2001:db8:1::200")]),
            Err(NotTaken::NotOurs)
        );
        let mut bad = pkt.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            parse_from_client(&bad, coa(), ha(), &[hoa()]),
            Err(NotTaken::BadChecksum)
        );
    }

    #[test]
    fn hot_vector_tunnelled_by_the_appliance() {
        let mh = hex("3b020300 b235 000a 0123456789abcdef 9b3568582d56e39d");
        let inner = with_mh(cn(), hoa(), None, &mh);
        let pkt = tunnel(ha(), coa(), &inner);
        assert_eq!(
            parse_from_client(&pkt, coa(), ha(), &[hoa()]),
            Ok(FromClient::HomeTest {
                service: hoa(),
                client: cn(),
                nonce_index: 10,
                cookie: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
                token: tokens().0,
            })
        );
        // Tunnelled by anyone but the appliance: not taken.
        let forged = tunnel(a("2001:db8:6::6"), coa(), &inner);
        assert_eq!(
            parse_from_client(&forged, coa(), ha(), &[hoa()]),
            Err(NotTaken::NotOurs)
        );
    }

    #[test]
    fn hoti_and_coti_layouts() {
        let cookie = [1, 2, 3, 4, 5, 6, 7, 8];
        let hoti = build_hoti(coa(), ha(), hoa(), cn(), cookie, 64).unwrap();
        let outer = Ipv6Packet::new_checked(&hoti[..]).unwrap();
        assert_eq!((outer.src_addr(), outer.dst_addr()), (coa(), ha()));
        assert_eq!(outer.next_header(), proto::IPV6);
        let inner = Ipv6Packet::new_checked(outer.payload()).unwrap();
        assert_eq!((inner.src_addr(), inner.dst_addr()), (hoa(), cn()));
        let mh = MhPacket::new_checked(inner.payload()).unwrap();
        assert!(mh.verify_checksum(&hoa(), &cn()));
        assert_eq!(
            MhRepr::parse(&mh).unwrap().message,
            MhMessage::HomeTestInit { cookie }
        );
        let coti = build_coti(coa(), cn(), cookie, 64).unwrap();
        let ip = Ipv6Packet::new_checked(&coti[..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (coa(), cn()));
        let mh = MhPacket::new_checked(ip.payload()).unwrap();
        assert!(mh.verify_checksum(&coa(), &cn()));
        assert_eq!(mh.total_len(), 16);
        assert_eq!(
            MhRepr::parse(&mh).unwrap().message,
            MhMessage::CareOfTestInit { cookie }
        );
    }

    #[test]
    fn cot_and_binding_error() {
        let repr = MhRepr {
            message: MhMessage::CareOfTest {
                care_of_nonce_index: 20,
                cookie: [9; 8],
                keygen_token: tokens().1,
            },
            options: MhOptions::NONE,
        };
        let cot = mh_packet(cn(), coa(), 64, &repr).unwrap();
        assert_eq!(
            parse_from_client(&cot, coa(), ha(), &[hoa()]),
            Ok(FromClient::CareOfTest {
                client: cn(),
                nonce_index: 20,
                cookie: [9; 8],
                token: tokens().1,
            })
        );
        let be = mh_packet(
            cn(),
            coa(),
            64,
            &MhRepr {
                message: MhMessage::BindingError {
                    status: BeStatus::UnknownBindingForHomeAddress,
                    home_address: hoa(),
                },
                options: MhOptions::NONE,
            },
        )
        .unwrap();
        assert_eq!(
            parse_from_client(&be, coa(), ha(), &[hoa()]),
            Ok(FromClient::BindingError {
                service: Some(hoa()),
                client: cn(),
                status: BeStatus::UnknownBindingForHomeAddress,
            })
        );
    }

    #[test]
    fn parameter_problem_about_our_coti_and_hoti() {
        let cookie = [7; 8];
        let coti = build_coti(coa(), cn(), cookie, 64).unwrap();
        let pp = parameter_problem(cn(), coa(), 1, &coti);
        let got = parse_from_client(&pp, coa(), ha(), &[hoa()]).unwrap();
        assert_eq!(
            got,
            FromClient::ParameterProblem {
                client: cn(),
                code: 1,
                pointer: 6,
                quoted: QuotedMh {
                    src: coa(),
                    client: cn(),
                    home_address: None,
                    mh_type: 2,
                    cookie: Some(cookie),
                    sequence: None,
                },
            }
        );
        // The HoTI's error goes to the service address and comes back tunnelled.
        let hoti = build_hoti(coa(), ha(), hoa(), cn(), cookie, 64).unwrap();
        let pp = parameter_problem(cn(), hoa(), 1, &hoti[40..]);
        let tunnelled = tunnel(ha(), coa(), &pp);
        let got = parse_from_client(&tunnelled, coa(), ha(), &[hoa()]).unwrap();
        assert!(matches!(
            got,
            FromClient::ParameterProblem {
                code: 1,
                quoted: QuotedMh { mh_type: 1, src, .. },
                ..
            } if src == hoa()
        ));
        // A quote of someone else's packet, a bad checksum, a cut-short quote.
        let other = build_coti(a("2001:db8:2::99"), cn(), cookie, 64).unwrap();
        assert_eq!(
            parse_from_client(
                &parameter_problem(cn(), coa(), 1, &other),
                coa(),
                ha(),
                &[hoa()]
            ),
            Err(NotTaken::NotOurs)
        );
        let mut bad = parameter_problem(cn(), coa(), 1, &coti);
        bad[45] ^= 1;
        assert_eq!(
            parse_from_client(&bad, coa(), ha(), &[hoa()]),
            Err(NotTaken::BadChecksum)
        );
        for n in 0..coti.len() {
            let _ = parse_from_client(
                &parameter_problem(cn(), coa(), 1, &coti[..n]),
                coa(),
                ha(),
                &[hoa()],
            );
        }
    }

    fn udp_with_rh2(home: Ipv6Addr) -> Vec<u8> {
        let payload = b"route-optimised";
        let mut udp = vec![0u8; 8 + payload.len()];
        // RFC 8200 §8.1: the checksum uses the final destination, the home address.
        UdpRepr {
            src_port: 4000,
            dst_port: 7,
        }
        .emit(
            &mut UdpPacket::new_unchecked(&mut udp[..]),
            &cn(),
            &home,
            payload,
        )
        .unwrap();
        with_type2(cn(), coa(), home, proto::UDP, 61, &udp)
    }

    #[test]
    fn route_optimised_data_becomes_a_plain_datagram_to_the_service() {
        let pkt = udp_with_rh2(hoa());
        let Ok(FromClient::RouteOptimisedData {
            service,
            client,
            inner,
        }) = parse_from_client(&pkt, coa(), ha(), &[hoa()])
        else {
            panic!("not taken as data");
        };
        assert_eq!((service, client), (hoa(), cn()));
        let ip = Ipv6Packet::new_checked(&inner[..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (cn(), hoa()));
        assert_eq!(ip.next_header(), proto::UDP);
        assert_eq!(ip.hop_limit(), 61);
        assert_eq!(inner.len(), pkt.len() - 24);
        assert!(checksum::verify_upper_layer(
            &cn(),
            &hoa(),
            proto::UDP,
            ip.payload()
        ));
        // A home address that is not ours is not delivered.
        assert_eq!(
            parse_from_client(&udp_with_rh2(a("2001:db8:1::7")), coa(), ha(), &[hoa()]),
            Err(NotTaken::NotOurs)
        );
    }

    #[test]
    fn tunnelled_client_traffic() {
        let inner = udp_with_rh2(hoa());
        // Re-address the datagram as the appliance would tunnel it: client -> service.
        let mut plain = strip_type2(&inner).unwrap();
        plain[7] = 63;
        let pkt = tunnel(ha(), coa(), &plain);
        assert_eq!(
            parse_from_client(&pkt, coa(), ha(), &[hoa()]),
            Ok(FromClient::Tunnelled {
                service: hoa(),
                client: cn()
            })
        );
    }

    proptest::proptest! {
        /// No input bytes make the parser panic, including mutated real packets.
        #[test]
        fn parser_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            flips in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 0..6),
            pick in 0usize..4,
        ) {
            let _ = parse_from_client(&bytes, coa(), ha(), &[hoa()]);
            let _ = strip_type2(&bytes);
            let cookie = [7; 8];
            let mut pkt = match pick {
                0 => udp_with_rh2(hoa()),
                1 => parameter_problem(cn(), coa(), 1, &build_coti(coa(), cn(), cookie, 64).unwrap()),
                2 => tunnel(ha(), coa(), &with_mh(cn(), hoa(), None,
                        &hex("3b020300 b235 000a 0123456789abcdef 9b3568582d56e39d"))),
                _ => with_mh(cn(), coa(), Some(hoa()),
                        &hex("3b030600 a729 00 00 0001 0069 010400000000 050c ef84ecf524725e92437c113f")),
            };
            for (at, x) in flips {
                let n = pkt.len();
                pkt[at % n] ^= x;
            }
            let _ = parse_from_client(&pkt, coa(), ha(), &[hoa()]);
            let _ = strip_type2(&pkt);
        }
    }
}
