//! The member side of home registration on the wire: building Binding Updates and reading
//! what the appliance sends back (Binding Acknowledgements, Binding Refresh Requests).
//!
//! Everything here is a pure function over bytes. A BU is a complete IPv6 packet, because
//! this kernel has no Mobile IPv6 support (no `CONFIG_IPV6_MIP6`) and the Home Address
//! option must be written by hand; it is sent on a raw socket with the IPv6 header
//! included.

use std::net::Ipv6Addr;

use anycast6_wire::auth;
use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;
use anycast6_wire::mobility::{
    check_receive, fill_checksum, AuthSubtype, BaStatus, BindingAck, BindingUpdate, MhMessage,
    MhOptions, MhPacket, MhRepr, MobilityOption, OptionType,
};

use crate::packets::mh_packet_unsummed;

/// IANA enterprise number for documentation and examples (RFC 5612): Vendor ID of the
/// load report option the appliance understands.
pub const LOAD_REPORT_VENDOR_ID: u32 = 32473;
/// Load report sub-type: weight, u16 big-endian.
pub const LOAD_REPORT_WEIGHT: u8 = 1;
/// Load report sub-type: load percentage, u8 0..=100.
pub const LOAD_REPORT_LOAD_PERCENT: u8 = 2;

/// An RFC 4285 MN-HA security association: Mobility SPI and shared key.
#[derive(Clone, PartialEq, Eq)]
pub struct MnHaKey {
    pub spi: u32,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for MnHaKey {
    /// The SPI only: a key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MnHaKey").field("spi", &self.spi).finish()
    }
}

/// What the member tells the appliance about its capacity (RFC 5094 vendor option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadReport {
    /// A fixed Maglev weight; 0 takes no new flows.
    Weight(u16),
    /// Load in percent (0..=100); the appliance uses weight = 101 - load.
    LoadPercent(u8),
}

/// The fields of one Binding Update to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuParams<'k> {
    pub care_of: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    /// The service (home) address, carried in the Home Address option.
    pub service: Ipv6Addr,
    pub sequence: u16,
    /// Requested lifetime in 4-second units; 0 de-registers.
    pub lifetime: u16,
    /// RFC 5648 Binding Identifier, when several members share the care-of address.
    pub bid: Option<u16>,
    pub load: Option<LoadReport>,
    /// RFC 4285 authentication and the NTP timestamp of its Replay Protection option.
    pub auth: Option<(&'k MnHaKey, u64)>,
    pub hop_limit: u8,
}

/// Builds the whole IPv6 packet of a home-registration BU: IPv6 header (care-of address to
/// home agent), Destination Options with the Home Address option, Mobility Header.
pub fn build_binding_update(p: &BuParams<'_>) -> anycast6_wire::Result<Vec<u8>> {
    let placeholder = [0u8; auth::MN_HA_AUTH_DATA_LEN];
    let load_data: [u8; 2];
    let mut options: Vec<MobilityOption<'_>> = Vec::with_capacity(4);
    if let Some(bid) = p.bid {
        // RFC 5648 §6.1: without a care-of address in the option, the packet's source is
        // the care-of address of this binding.
        options.push(MobilityOption::BindingIdentifier {
            bid,
            status: 0,
            h: false,
            bid_pri: 0,
            care_of: None,
        });
    }
    match p.load {
        Some(LoadReport::Weight(w)) => {
            load_data = w.to_be_bytes();
            options.push(MobilityOption::VendorSpecific {
                vendor_id: LOAD_REPORT_VENDOR_ID,
                sub_type: LOAD_REPORT_WEIGHT,
                data: &load_data,
            });
        }
        Some(LoadReport::LoadPercent(l)) => {
            load_data = [l.min(100), 0];
            options.push(MobilityOption::VendorSpecific {
                vendor_id: LOAD_REPORT_VENDOR_ID,
                sub_type: LOAD_REPORT_LOAD_PERCENT,
                data: &load_data[..1],
            });
        }
        None => {}
    }
    if let Some((key, timestamp)) = p.auth {
        // RFC 4285 §6: the Replay Protection option goes with the authentication option,
        // which must be the last option (§5).
        options.push(MobilityOption::ReplayProtection { timestamp });
        options.push(MobilityOption::MobilityMessageAuth {
            subtype: AuthSubtype::MnHa,
            spi: key.spi,
            auth_data: &placeholder,
        });
    }
    let repr = MhRepr {
        message: MhMessage::BindingUpdate(BindingUpdate {
            sequence: p.sequence,
            // RFC 6275 §11.7.1: a home registration sets A and H.
            ack: true,
            home_registration: true,
            lifetime: p.lifetime,
            ..Default::default()
        }),
        options: MhOptions::List(&options),
    };
    let (mut buf, mh_at) =
        mh_packet_unsummed(p.care_of, p.home_agent, Some(p.service), p.hop_limit, &repr)?;
    let mh = &mut buf[mh_at..];
    // RFC 6275 §6.1.1: with a Home Address option the pseudo-header source is the home
    // address.
    match p.auth {
        Some((key, _)) => auth::insert_mn_ha_and_fill_checksum(
            &key.key,
            &p.care_of,
            &p.service,
            mh,
            &p.service,
            &p.home_agent,
        )?,
        None => fill_checksum(&p.service, &p.home_agent, mh)?,
    }
    Ok(buf)
}

/// How a received BA was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaAuth {
    /// No MN-HA option.
    None,
    /// MN-HA option with our SPI whose authenticator verified.
    Verified { timestamp: Option<u64> },
    /// MN-HA option that did not verify (wrong key, other SPI, malformed).
    Failed,
}

/// A Binding Acknowledgement addressed to this member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedBa {
    /// The service address, from the Type 2 routing header.
    pub service: Ipv6Addr,
    pub ack: BindingAck,
    /// Binding Refresh Advice in 4-second units.
    pub refresh: Option<u16>,
    pub auth: BaAuth,
}

/// What [`parse_from_home_agent`] found in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    BindingAck(ReceivedBa),
    /// A Binding Refresh Request for `service` (RFC 6275 §6.1.2), sent to the home
    /// address: either tunnelled to the care-of address or with a Type 2 routing header.
    RefreshRequest {
        service: Ipv6Addr,
    },
}

/// Why a packet was not taken (for debug counters; most traffic is simply not ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    NotIpv6,
    NotFromHomeAgent,
    NotToCareOf,
    NotMobility,
    BadChecksum,
    Malformed,
    OtherMessage,
}

/// Reads an IPv6 packet (no link-layer header) received on the care-of address. Only
/// packets from `home_agent` to `care_of` are considered. A BA must carry a Type 2 routing
/// header (RFC 6275 §9.5.4) and a checksum computed with its home address as the
/// pseudo-header destination (§6.1.1). A BRR is accepted tunnelled (inner packet from the
/// home agent to the service address) or with a Type 2 routing header.
pub fn parse_from_home_agent(
    packet: &[u8],
    care_of: Ipv6Addr,
    home_agent: Ipv6Addr,
    key: Option<&MnHaKey>,
) -> Result<Incoming, Ignored> {
    let ip = Ipv6Packet::new_checked(packet).map_err(|_| Ignored::NotIpv6)?;
    if ip.version() != 6 {
        return Err(Ignored::NotIpv6);
    }
    if ip.dst_addr() != care_of {
        return Err(Ignored::NotToCareOf);
    }
    if ip.src_addr() != home_agent {
        return Err(Ignored::NotFromHomeAgent);
    }
    let chain = ExtHeaderChain::of_packet(&ip).map_err(|_| Ignored::Malformed)?;
    let upper = chain
        .upper_layer_bytes(ip.payload())
        .ok_or(Ignored::Malformed)?;
    match chain.upper_layer {
        proto::MOBILITY => {
            let Some(service) = chain.type2_home_address else {
                return Err(Ignored::Malformed);
            };
            parse_mh(upper, home_agent, service, care_of, key)
        }
        proto::IPV6 => {
            // Only a tunnelled BRR is of interest here: RFC 6275 §9.5.5 sends it to the home
            // address, which the home agent tunnels to the care-of address (§10.4.2).
            let inner = Ipv6Packet::new_checked(upper).map_err(|_| Ignored::Malformed)?;
            if inner.src_addr() != home_agent {
                return Err(Ignored::NotFromHomeAgent);
            }
            let inner_chain = ExtHeaderChain::of_packet(&inner).map_err(|_| Ignored::Malformed)?;
            if inner_chain.upper_layer != proto::MOBILITY {
                return Err(Ignored::NotMobility);
            }
            let mh = inner_chain
                .upper_layer_bytes(inner.payload())
                .ok_or(Ignored::Malformed)?;
            let service = inner_chain.pseudo_header_dst(inner.dst_addr());
            match parse_mh(mh, home_agent, service, care_of, key)? {
                brr @ Incoming::RefreshRequest { .. } => Ok(brr),
                Incoming::BindingAck(_) => Err(Ignored::OtherMessage),
            }
        }
        _ => Err(Ignored::NotMobility),
    }
}

fn parse_mh(
    mh: &[u8],
    home_agent: Ipv6Addr,
    service: Ipv6Addr,
    care_of: Ipv6Addr,
    key: Option<&MnHaKey>,
) -> Result<Incoming, Ignored> {
    let packet = MhPacket::new_checked(mh).map_err(|_| Ignored::Malformed)?;
    // RFC 6275 §9.2: a bad checksum is silently discarded.
    check_receive(&packet, &home_agent, &service).map_err(|_| Ignored::BadChecksum)?;
    let repr = MhRepr::parse(&packet).map_err(|_| Ignored::Malformed)?;
    match repr.message {
        MhMessage::BindingRefreshRequest => Ok(Incoming::RefreshRequest { service }),
        MhMessage::BindingAck(ack) => {
            let auth = match repr.find_option(OptionType::MobilityMessageAuth) {
                None => BaAuth::None,
                Some(MobilityOption::MobilityMessageAuth {
                    subtype: AuthSubtype::MnHa,
                    spi,
                    ..
                }) => match key {
                    // RFC 4285 §5.1: the BA's authenticator covers the mobile node's
                    // care-of and home addresses.
                    Some(k) if k.spi == spi => {
                        match auth::verify_mn_ha(&k.key, &care_of, &service, packet.as_bytes()) {
                            Ok(true) => BaAuth::Verified {
                                timestamp: match repr.find_option(OptionType::ReplayProtection) {
                                    Some(MobilityOption::ReplayProtection { timestamp }) => {
                                        Some(timestamp)
                                    }
                                    _ => None,
                                },
                            },
                            _ => BaAuth::Failed,
                        }
                    }
                    _ => BaAuth::Failed,
                },
                Some(_) => BaAuth::Failed,
            };
            Ok(Incoming::BindingAck(ReceivedBa {
                service,
                ack,
                refresh: repr.binding_refresh_advice(),
                auth,
            }))
        }
        _ => Err(Ignored::OtherMessage),
    }
}

/// The meaning of a BA status in words (RFC 6275 §6.1.8, with what the appliance uses each
/// code for).
pub fn ba_status_words(status: BaStatus) -> &'static str {
    match u8::from(status) {
        0 => "binding update accepted",
        1 => "accepted but prefix discovery necessary",
        128 => {
            "reason unspecified (also: another member holds this care-of address for the service)"
        }
        129 => "administratively prohibited (authentication failed or registration not allowed)",
        130 => "insufficient resources (the service holds its maximum of members)",
        131 => "home registration not supported (service closed to registrations)",
        132 => "not home subnet (not a service address of this appliance)",
        133 => "not home agent for this mobile node (no binding to remove)",
        134 => "duplicate address detection failed",
        135 => "sequence number out of window",
        136 => "expired home nonce index",
        137 => "expired care-of nonce index",
        138 => "expired nonces",
        139 => "registration type change disallowed",
        174 => "invalid care-of address",
        s if s < 128 => "accepted (unknown status)",
        _ => "rejected (unknown status)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{a, coa, ha, mh_bytes, svc, with_type2};

    fn params(key: Option<(&MnHaKey, u64)>) -> BuParams<'_> {
        BuParams {
            care_of: coa(),
            home_agent: ha(),
            service: svc(),
            sequence: 7,
            lifetime: 150,
            bid: Some(3),
            load: Some(LoadReport::Weight(300)),
            auth: key,
            hop_limit: 64,
        }
    }

    #[test]
    fn binding_update_layout_and_checksum() {
        let key = MnHaKey {
            spi: 256,
            key: vec![0x42; 16],
        };
        let p = params(Some((&key, 0x1234_5678_9abc_def0)));
        let pkt = build_binding_update(&p).unwrap();
        let ip = Ipv6Packet::new_checked(&pkt[..]).unwrap();
        assert_eq!(ip.src_addr(), p.care_of);
        assert_eq!(ip.dst_addr(), p.home_agent);
        assert_eq!(usize::from(ip.payload_len()) + 40, pkt.len());
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        assert_eq!(chain.home_address, Some(p.service));
        assert_eq!(chain.upper_layer, proto::MOBILITY);
        let mh = chain.upper_layer_bytes(ip.payload()).unwrap();
        assert_eq!(mh.len() % 8, 0);
        let packet = MhPacket::new_checked(mh).unwrap();
        assert!(packet.verify_checksum(&p.service, &p.home_agent));
        assert!(!packet.verify_checksum(&p.care_of, &p.home_agent));
        assert!(auth::verify_mn_ha(&key.key, &p.care_of, &p.service, mh).unwrap());
        let repr = MhRepr::parse(&packet).unwrap();
        let MhMessage::BindingUpdate(bu) = repr.message else {
            panic!("not a BU");
        };
        assert!(bu.ack && bu.home_registration);
        assert_eq!((bu.sequence, bu.lifetime), (7, 150));
        assert_eq!(
            repr.find_option(OptionType::ReplayProtection),
            Some(MobilityOption::ReplayProtection {
                timestamp: 0x1234_5678_9abc_def0
            })
        );
        let vendor: Vec<_> = repr
            .options
            .iter()
            .flatten()
            .filter_map(|o| match o {
                MobilityOption::VendorSpecific {
                    vendor_id,
                    sub_type,
                    data,
                } => Some((vendor_id, sub_type, data.to_vec())),
                _ => None,
            })
            .collect();
        assert_eq!(vendor, [(32473, 1, vec![0x01, 0x2c])]);
        assert!(repr.options.iter().flatten().any(|o| matches!(
            o,
            MobilityOption::BindingIdentifier {
                bid: 3,
                care_of: None,
                ..
            }
        )));
    }

    #[test]
    fn unauthenticated_bu_with_load_percent() {
        let mut p = params(None);
        p.load = Some(LoadReport::LoadPercent(42));
        p.bid = None;
        let pkt = build_binding_update(&p).unwrap();
        let ip = Ipv6Packet::new_checked(&pkt[..]).unwrap();
        let chain = ExtHeaderChain::of_packet(&ip).unwrap();
        let mh = chain.upper_layer_bytes(ip.payload()).unwrap();
        let packet = MhPacket::new_checked(mh).unwrap();
        assert!(packet.verify_checksum(&p.service, &p.home_agent));
        let repr = MhRepr::parse(&packet).unwrap();
        assert_eq!(repr.find_option(OptionType::MobilityMessageAuth), None);
        assert!(repr.options.iter().flatten().any(|o| o
            == MobilityOption::VendorSpecific {
                vendor_id: 32473,
                sub_type: 2,
                data: &[42]
            }));
    }

    /// A BA as the home agent sends it: IPv6 + RH2(service) + MH.
    fn ba_packet(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        service: Ipv6Addr,
        status: u8,
        seq: u16,
        corrupt: bool,
    ) -> Vec<u8> {
        let opts = [MobilityOption::BindingRefreshAdvice { interval: 8 }];
        let repr = MhRepr {
            message: MhMessage::BindingAck(BindingAck {
                status: BaStatus::from(status),
                key_mgmt: false,
                other_flags: 0,
                sequence: seq,
                lifetime: 10,
            }),
            options: MhOptions::List(&opts),
        };
        let mut mh = mh_bytes(&repr);
        fill_checksum(&src, &service, &mut mh).unwrap();
        let mut buf = with_type2(src, dst, service, proto::MOBILITY, 64, &mh);
        if corrupt {
            let last = buf.len() - 1;
            buf[last] ^= 1;
        }
        buf
    }

    #[test]
    fn binding_ack_parsed_and_filtered() {
        let (ha, coa, s) = (ha(), coa(), svc());
        let ba = ba_packet(ha, coa, s, 0, 9, false);
        let Ok(Incoming::BindingAck(got)) = parse_from_home_agent(&ba, coa, ha, None) else {
            panic!("BA not parsed");
        };
        assert_eq!(got.service, s);
        assert_eq!(got.ack.sequence, 9);
        assert_eq!(got.refresh, Some(8));
        assert_eq!(got.auth, BaAuth::None);
        assert_eq!(
            parse_from_home_agent(&ba, a("2001:db8:100::11"), ha, None),
            Err(Ignored::NotToCareOf)
        );
        assert_eq!(
            parse_from_home_agent(&ba, coa, a("2001:db8:ffff::2"), None),
            Err(Ignored::NotFromHomeAgent)
        );
        let bad = ba_packet(ha, coa, s, 0, 9, true);
        assert_eq!(
            parse_from_home_agent(&bad, coa, ha, None),
            Err(Ignored::BadChecksum)
        );
        // Every truncation is an Err, never a panic.
        for n in 0..ba.len() {
            assert!(parse_from_home_agent(&ba[..n], coa, ha, None).is_err());
        }
    }

    #[test]
    fn status_words() {
        assert_eq!(
            ba_status_words(BaStatus::from(0)),
            "binding update accepted"
        );
        assert!(ba_status_words(BaStatus::from(129)).starts_with("administratively prohibited"));
        assert_eq!(
            ba_status_words(BaStatus::from(135)),
            "sequence number out of window"
        );
        assert_eq!(
            ba_status_words(BaStatus::from(200)),
            "rejected (unknown status)"
        );
    }

    proptest::proptest! {
        /// No input makes the parser panic, including corrupted real BAs and BRRs.
        #[test]
        fn parser_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            flips in proptest::collection::vec((0usize..120, proptest::prelude::any::<u8>()), 0..6),
        ) {
            let (ha, coa) = (ha(), coa());
            let key = MnHaKey { spi: 256, key: vec![1; 16] };
            let _ = parse_from_home_agent(&bytes, coa, ha, Some(&key));
            let mut ba = ba_packet(ha, coa, svc(), 0, 1, false);
            for (at, x) in flips {
                let n = ba.len();
                ba[at % n] ^= x;
            }
            let _ = parse_from_home_agent(&ba, coa, ha, Some(&key));
            let _ = parse_from_home_agent(&ba, coa, ha, None);
        }
    }
}
