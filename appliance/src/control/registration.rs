//! Home registration (RFC 6275 §10.3) for anycast service addresses, sans I/O.
//!
//! Members register a care-of address for a service address S (their "home address") with a
//! Binding Update sent to the appliance's home-agent (tunnel) address, carrying S in a Home
//! Address option. The [`Registrar`] checks the BU, keeps the bindings, answers with a
//! Binding Acknowledgement and reports member changes as [`MemberEvent`]s. It reads no clock
//! and does no I/O: the caller passes the time ([`Now`]) and the received Mobility Header,
//! and sends what comes back.
//!
//! # Driving it
//!
//! * [`Registrar::on_mobility_header`]: an MH that reached the control thread (exception
//!   path). Returns an [`Outcome`]: what happened ([`Verdict`]), the [`Reply`] to send (a
//!   complete IPv6 packet without Ethernet header, or an ICMPv6 Parameter Problem request),
//!   member events and log lines.
//! * [`Registrar::on_timer`]: removes bindings whose lifetime ended; call it at
//!   [`Registrar::next_expiry`] (or periodically).
//! * [`Registrar::members`] / [`Registrar::service_members`]: the current bindings as
//!   [`MemberSpec`]s for the next data-plane snapshot; rebuild it whenever an
//!   [`Outcome`] or [`Registrar::on_timer`] reports a [`MemberEvent`].
//!
//! # Checks, in order
//!
//! 1. The IPv6 destination must be the home-agent address, else [`Verdict::NotForUs`].
//! 2. RFC 6275 §9.2 receive checks ([`check_receive`]): bad checksum → silent discard;
//!    unknown MH Type → Binding Error status 2; Payload Proto ≠ 59 or Header Len too short →
//!    ICMPv6 Parameter Problem code 0 ([`Reply::ParameterProblem`]).
//! 3. Other RFC 6275 messages (BRR, HoTI, BA, ...) sent to the home agent: counted, ignored.
//! 4. No Home Address option → silent discard: a home registration from a care-of address
//!    names its home address only there (RFC 6275 §11.7.1). A member is never "at home" on
//!    an anycast address, so a BU sent from S itself is not expected.
//! 5. Nonce Indices or Binding Authorization Data present → silent discard (PROTOCOL.md
//!    §1.9: a home registration must not carry them; a correspondent registration is not
//!    something the appliance accepts, see 8).
//! 6. Home address not a configured service: H=1 → **132** (not home subnet); H=0 → **129**.
//!    A service that does not accept registrations → **131** (PROTOCOL.md §1.9 step 1).
//! 7. Authentication (RFC 4285), all failures **129**: with an MN-HA Mobility Message
//!    Authentication option the SPI must be in the key table, the authenticator must
//!    verify, a Replay Protection option must be present (RFC 4285 §6), its timestamp must
//!    be within the replay window of `now` and newer than the last one accepted for that
//!    SPI. Without the option, the BU is accepted only when its source (and Alternate
//!    care-of address, if any) lies in a trusted prefix.
//! 8. H=0: the appliance is not a correspondent node for anyone. If a (home) binding
//!    exists for the key → **139** (RFC 6275 §9.5.1: the registration type may not change;
//!    only H=1 bindings are ever stored), else **129** (correspondent registrations refused
//!    by policy). 131 is kept for its RFC meaning, "H=1 to a node that is no home agent".
//! 9. De-registration (Lifetime 0 or care-of = home address, §10.3.2): no binding → **133**;
//!    sequence number not newer → **135**; else the binding is deleted, BA 0 with Lifetime 0
//!    and no Binding Refresh Advice.
//! 10. Care-of address not a global unicast address (unspecified, loopback, multicast,
//!     link-local, IPv4-mapped), a service address or the home-agent address → **174**.
//! 11. The care-of address is already a member of the service under another key (a static
//!     member, or another BID) → **128**: the data plane identifies members by (care-of,
//!     service).
//! 12. Existing binding and sequence number not newer ([`seqno::seq_gt`]) → **135** carrying
//!     the last accepted number (§9.5.1).
//! 13. New binding while the service holds its configured maximum → **130**.
//! 14. Accept: create or refresh; BA 0.
//!
//! # Care-of address and binding key
//!
//! The care-of address is the Alternate Care-of Address option when present (§6.2.5), else
//! the care-of address of a Binding Identifier option (RFC 5648 §6.1), else the IPv6
//! source. A binding is keyed by (service, care-of address), or by (service, BID) when the
//! BU carries a Binding Identifier option: a member process that owns its BID can then move
//! to a new care-of address and keep its identity (same member id and epoch, so its
//! affinity pins stay valid), and one host can register for several services from one
//! address. Within a service a care-of address belongs to one member (check 11).
//! Only the first Binding Identifier option is used (no bulk registration).
//!
//! # Binding Acknowledgement
//!
//! Sent whatever the A bit says (§10.3.1), from the home-agent address to the BU's IPv6
//! source with a Type 2 routing header carrying the home address (§9.5.4, §6.1). Its
//! checksum uses the RH2 rule (pseudo-header destination = home address). The granted
//! lifetime is `min(requested, max_lifetime_units)`; a Binding Refresh Advice of
//! `refresh_percent` of it (at least 1 unit, always below the lifetime; none when the
//! lifetime is 1 unit) accompanies every accepted registration. When the BU was
//! authenticated with MN-HA, the BA echoes its Replay Protection timestamp and carries an
//! MN-HA option with the same SPI (RFC 4285 §5.1, §6), computed over the member's care-of
//! and home addresses. No BA is sent to a source that is not unicast.
//!
//! No Duplicate Address Detection is run for the home address before accepting: S is an
//! anycast address, and RFC 4862 §5.4 forbids DAD on anycast addresses (PROTOCOL.md §1.9).
//!
//! # Load reports (RFC 5094 Vendor Specific Mobility Option)
//!
//! A BU may carry Vendor Specific options (type 19) with Vendor ID **32473** (the IANA
//! enterprise number reserved for documentation and examples, RFC 5612) that set the
//! member's weight in its service's Maglev table:
//!
//! | Sub-Type | Data | Meaning |
//! |---|---|---|
//! | 1 | u16, big-endian (2 octets) | weight; 0 = take no new flows |
//! | 2 | u8 (1 octet), 0..=100 | load in percent; weight = 101 − load |
//!
//! Sub-type 1 wins when both are present. Other vendor IDs and sub-types are ignored;
//! wrong lengths or a load above 100 are ignored and counted
//! ([`Counters::bad_load_reports`]). A weight stays until the next report; a member that
//! never reported has weight [`RegistrarConfig::default_weight`] (1).
//!
//! # Member identity
//!
//! Every binding key gets a member id when it first registers and keeps it for the life of
//! the process. The epoch starts at 1 and is bumped each time the key registers again after
//! its binding was removed (de-registration or expiry), so the data plane never revives old
//! affinity pins. A refresh keeps id and epoch.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6_wire::auth;
use anycast6_wire::checksum::proto;
use anycast6_wire::ipv6::{self, Ipv6Packet, Ipv6Repr};
use anycast6_wire::ipv6ext::{Ipv6RoutingHeader, Type2RoutingRepr};
use anycast6_wire::mobility::{
    check_receive, fill_checksum, AuthSubtype, BaStatus, BeStatus, BindingAck, BindingUpdate,
    MhMessage, MhOptions, MhPacket, MhRejection, MhRepr, MhResponse, MobilityOption, OptionType,
};
use anycast6_wire::seqno;

use crate::dataplane::snapshot::{MemberSpec, MemberStatus};

/// IANA enterprise number for documentation and examples (RFC 5612): Vendor ID of the load
/// report option.
pub const LOAD_REPORT_VENDOR_ID: u32 = 32473;
/// Load report sub-type: weight, u16 big-endian.
pub const LOAD_REPORT_WEIGHT: u8 = 1;
/// Load report sub-type: load percentage, u8 0..=100.
pub const LOAD_REPORT_LOAD_PERCENT: u8 = 2;
/// Default largest granted lifetime: 150 units of 4 s = 600 s.
pub const DEFAULT_MAX_LIFETIME_UNITS: u16 = 150;
/// Default Binding Refresh Advice: refresh after 80 % of the granted lifetime.
pub const DEFAULT_REFRESH_PERCENT: u8 = 80;
/// Hop limit of the acknowledgements and errors sent.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// RFC 6275 §6.1.7: one lifetime unit is 4 seconds.
const LIFETIME_UNIT_SECS: u64 = 4;

/// One service address as the registrar sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRegistration {
    /// The anycast service address: the home address members register.
    pub address: Ipv6Addr,
    /// Whether members may register for it (else BA 131).
    pub accept_registrations: bool,
    /// Most bindings the service holds at once (new ones beyond get BA 130).
    pub max_bindings: usize,
}

/// Registrar configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// The appliance's home-agent (tunnel) address: BUs must be sent to it, BAs come from it.
    pub home_agent: Ipv6Addr,
    pub services: Vec<ServiceRegistration>,
    /// Prefixes (address, length) whose care-of addresses may register without
    /// authentication.
    pub trusted_prefixes: Vec<(Ipv6Addr, u8)>,
    /// RFC 4285 MN-HA shared keys by Mobility SPI.
    pub keys: BTreeMap<u32, Vec<u8>>,
    /// How far a Replay Protection timestamp may be from now, either way (RFC 4285 §5.1
    /// "close enough"; default 7 s).
    pub replay_window: Duration,
    /// Largest granted lifetime in 4-second units.
    pub max_lifetime_units: u16,
    /// Binding Refresh Advice as a percentage of the granted lifetime (1..=99).
    pub refresh_percent: u8,
    /// Weight of a member that has not reported one.
    pub default_weight: u32,
    /// Hop limit of the packets sent.
    pub hop_limit: u8,
    /// (service, care-of) pairs taken by static members: a registration may not use them.
    pub reserved_care_ofs: Vec<(Ipv6Addr, Ipv6Addr)>,
}

impl RegistrarConfig {
    /// A configuration with the defaults: no services, no trusted prefixes, no keys.
    pub fn new(home_agent: Ipv6Addr) -> RegistrarConfig {
        RegistrarConfig {
            home_agent,
            services: Vec::new(),
            trusted_prefixes: Vec::new(),
            keys: BTreeMap::new(),
            replay_window: auth::DEFAULT_CLOSE_ENOUGH,
            max_lifetime_units: DEFAULT_MAX_LIFETIME_UNITS,
            refresh_percent: DEFAULT_REFRESH_PERCENT,
            default_weight: 1,
            hop_limit: DEFAULT_HOP_LIMIT,
            reserved_care_ofs: Vec::new(),
        }
    }
}

/// The time, as the caller's clocks give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: binding lifetimes.
    pub mono: Instant,
    /// Wall-clock time since the Unix epoch: Replay Protection timestamps (RFC 4285 §6).
    pub unix: Duration,
}

/// A Mobility Header that reached the control thread, with what the caller learned from the
/// IPv6 header and extension headers before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedMh<'a> {
    /// IPv6 source (the care-of address of a BU).
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// Address of the Home Address option, if the packet had one.
    pub home_address: Option<Ipv6Addr>,
    /// The Mobility Header and anything after it (the view stops at its Header Len).
    pub mh: &'a [u8],
    /// Offset of the MH from the first octet of the IPv6 header, for the ICMPv6 Pointer.
    pub mh_offset: usize,
}

/// What identifies a binding within a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindingIdent {
    /// No Binding Identifier option: the care-of address.
    CareOf(Ipv6Addr),
    /// RFC 5648 Binding Identifier.
    Bid(u16),
}

/// The key of a binding: service address and identity within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BindingKey {
    pub service: Ipv6Addr,
    pub ident: BindingIdent,
}

/// Why a member left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// Lifetime-0 BU (or care-of = home address).
    Deregistered,
    /// Its lifetime ran out.
    Expired,
    /// A configuration reload removed its service or closed it to registrations.
    Withdrawn,
}

/// One live binding, as the admin interface shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingInfo {
    pub service: Ipv6Addr,
    pub ident: BindingIdent,
    pub care_of: Ipv6Addr,
    pub id: u32,
    pub epoch: u32,
    /// Last accepted sequence number.
    pub sequence: u16,
    pub weight: u32,
    /// Lifetime granted by the last accepted BU.
    pub granted: Duration,
    /// Lifetime left.
    pub left: Duration,
    /// Time since this incarnation first registered.
    pub age: Duration,
    pub refreshes: u64,
    /// MN-HA SPI it authenticated with; `None`: trusted prefix.
    pub spi: Option<u32>,
}

/// A change in the member set, for the rest of the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberEvent {
    Joined {
        service: Ipv6Addr,
        care_of: Ipv6Addr,
        id: u32,
        epoch: u32,
        weight: u32,
        lifetime: Duration,
    },
    /// A renewal; `care_of` may differ from before for a BID-keyed binding.
    Refreshed {
        service: Ipv6Addr,
        care_of: Ipv6Addr,
        id: u32,
        epoch: u32,
        lifetime: Duration,
    },
    Left {
        service: Ipv6Addr,
        care_of: Ipv6Addr,
        id: u32,
        epoch: u32,
        reason: LeaveReason,
    },
    WeightChanged {
        service: Ipv6Addr,
        id: u32,
        epoch: u32,
        old: u32,
        new: u32,
    },
}

impl fmt::Display for MemberEvent {
    /// One structured log line (`key=value` pairs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberEvent::Joined {
                service,
                care_of,
                id,
                epoch,
                weight,
                lifetime,
            } => write!(
                f,
                "event=member_joined service={service} care_of={care_of} id={id} epoch={epoch} \
                 weight={weight} lifetime_s={}",
                lifetime.as_secs()
            ),
            MemberEvent::Refreshed {
                service,
                care_of,
                id,
                epoch,
                lifetime,
            } => write!(
                f,
                "event=member_refreshed service={service} care_of={care_of} id={id} \
                 epoch={epoch} lifetime_s={}",
                lifetime.as_secs()
            ),
            MemberEvent::Left {
                service,
                care_of,
                id,
                epoch,
                reason,
            } => write!(
                f,
                "event=member_left service={service} care_of={care_of} id={id} epoch={epoch} \
                 reason={}",
                match reason {
                    LeaveReason::Deregistered => "deregistered",
                    LeaveReason::Expired => "expired",
                    LeaveReason::Withdrawn => "withdrawn",
                }
            ),
            MemberEvent::WeightChanged {
                service,
                id,
                epoch,
                old,
                new,
            } => write!(
                f,
                "event=member_weight service={service} id={id} epoch={epoch} old={old} new={new}"
            ),
        }
    }
}

/// Why an MH was dropped without any reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiscardReason {
    /// Shorter than its Header Len claims, or under 8 octets.
    Truncated,
    /// RFC 6275 §9.2: checksum does not verify.
    BadChecksum,
    /// Passed §9.2 but does not parse (for example a malformed option).
    Malformed,
    /// A known MH type other than BU: the home agent has nothing to do with it.
    NotBindingUpdate,
    /// BU without a Home Address option.
    NoHomeAddressOption,
    /// BU with Nonce Indices or Binding Authorization Data.
    CorrespondentOptions,
}

/// Why RFC 4285 authentication failed (all answered with BA 129).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthFailure {
    UnknownSpi(u32),
    /// MN-AAA authentication (RFC 4285 §5.2) is not supported.
    MnAaa,
    /// The authenticator does not verify, or the option is not the last one.
    BadAuthenticator,
    MissingReplayProtection,
    /// The timestamp is further from now than the replay window.
    TimestampOutsideWindow,
    /// The timestamp is not newer than the last one accepted for the SPI.
    TimestampReplayed,
    /// No MN-HA option and the care-of address is not in a trusted prefix.
    Untrusted,
}

/// Why a BU was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// 131: the service does not accept registrations.
    RegistrationsDisabled,
    /// 132: the home address is not a service.
    NotAService,
    /// 129: authentication failed.
    Auth(AuthFailure),
    /// 129: a correspondent registration (H=0).
    CorrespondentRegistration,
    /// 139: H=0 for a key that holds a home registration.
    RegistrationTypeChange,
    /// 133: de-registration of an unknown binding.
    NoBinding,
    /// 135: sequence number not newer than `last`.
    SequenceOutOfWindow { last: u16 },
    /// 174: invalid care-of address.
    InvalidCareOf(Ipv6Addr),
    /// 130: the service holds its maximum of bindings.
    BindingLimit,
    /// 128: another member of the service (static, or registered under another key) has
    /// this care-of address; the data plane tells members apart by (care-of, service).
    CareOfInUse(Ipv6Addr),
}

impl RejectReason {
    /// The BA status RFC 6275 / PROTOCOL.md §1.9 give this reason.
    pub fn status(&self) -> BaStatus {
        match self {
            RejectReason::RegistrationsDisabled => BaStatus::HomeRegistrationNotSupported,
            RejectReason::NotAService => BaStatus::NotHomeSubnet,
            RejectReason::Auth(_) | RejectReason::CorrespondentRegistration => {
                BaStatus::AdministrativelyProhibited
            }
            RejectReason::RegistrationTypeChange => BaStatus::RegistrationTypeChangeDisallowed,
            RejectReason::NoBinding => BaStatus::NotHomeAgentForThisMobileNode,
            RejectReason::SequenceOutOfWindow { .. } => BaStatus::SequenceNumberOutOfWindow,
            RejectReason::InvalidCareOf(_) => BaStatus::InvalidCareOf,
            RejectReason::BindingLimit => BaStatus::InsufficientResources,
            RejectReason::CareOfInUse(_) => BaStatus::ReasonUnspecified,
        }
    }
}

/// What an accepted BU did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accepted {
    Registered,
    Refreshed,
    Deregistered,
}

/// What happened to a received MH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Not addressed to the home-agent address.
    NotForUs,
    /// Dropped without a reply.
    Discarded(DiscardReason),
    /// Unknown MH type: answered with a Binding Error.
    BindingError(BeStatus),
    /// Bad Payload Proto or Header Len: the caller should send ICMPv6 Parameter Problem.
    ParameterProblem,
    /// BU accepted: BA status 0.
    Accepted(Accepted),
    /// BU refused: BA with `reason.status()`.
    Rejected(RejectReason),
}

/// What to send in answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A complete IPv6 packet (no Ethernet header): a BA or a Binding Error.
    Packet(Vec<u8>),
    /// Send ICMPv6 Parameter Problem (RFC 4443 §3.4) about the received packet to `to`,
    /// subject to the ICMPv6 error rate limit. `pointer` counts from the IPv6 header.
    ParameterProblem {
        to: Ipv6Addr,
        code: u8,
        pointer: u32,
    },
}

/// The result of [`Registrar::on_mobility_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub reply: Option<Reply>,
    pub events: Vec<MemberEvent>,
    /// Structured log lines: one per state change and one per refusal or discard.
    pub log: Vec<String>,
}

impl Outcome {
    fn new(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            reply: None,
            events: Vec::new(),
            log: Vec::new(),
        }
    }

    /// The BA status sent or due (`None` when the MH got no BA).
    pub fn ba_status(&self) -> Option<BaStatus> {
        match self.verdict {
            Verdict::Accepted(_) => Some(BaStatus::Accepted),
            Verdict::Rejected(reason) => Some(reason.status()),
            _ => None,
        }
    }
}

/// Counters, for the management interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// BAs produced, by status.
    pub ba_by_status: BTreeMap<u8, u64>,
    pub discards: BTreeMap<DiscardReason, u64>,
    pub auth_failures: BTreeMap<AuthFailure, u64>,
    pub binding_errors: u64,
    pub parameter_problems: u64,
    pub not_for_us: u64,
    pub bad_load_reports: u64,
    /// BAs that could not be addressed (source not unicast).
    pub ba_unsendable: u64,
    pub expired: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    care_of: Ipv6Addr,
    /// Always true: only home registrations are stored; kept for the §9.5.1 check.
    home_registration: bool,
    last_sequence: u16,
    expires: Instant,
    weight: u32,
    /// The lifetime granted by the last accepted BU.
    granted: Duration,
    /// When this incarnation first registered.
    registered: Instant,
    /// Accepted renewals since then.
    refreshes: u64,
    /// MN-HA SPI of the last accepted BU; `None`: accepted from a trusted prefix.
    spi: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyRecord {
    id: u32,
    epoch: u32,
    binding: Option<Binding>,
    /// Sequence number and time of the de-registration that ended the last binding: a
    /// delayed BU older than it must not bring the binding back (RFC 6275 §10.3.2, §12
    /// MAX_DELETE_BCE_TIMEOUT).
    deleted: Option<(u16, Instant)>,
}

/// RFC 6275 §12: how long a de-registered entry's sequence number is remembered.
pub const MAX_DELETE_BCE_TIMEOUT: Duration = Duration::from_secs(10);

/// The MN-HA security association a BU was authenticated with, to authenticate the BA.
#[derive(Debug, Clone, Copy)]
struct Authenticated {
    spi: u32,
    timestamp: u64,
}

/// Where and how to send a BA.
#[derive(Debug, Clone, Copy)]
struct BaContext {
    to: Ipv6Addr,
    home: Ipv6Addr,
    care_of: Ipv6Addr,
    sequence: u16,
    auth: Option<Authenticated>,
}

/// The home-registration state machine (see the module documentation).
#[derive(Debug, Clone)]
pub struct Registrar {
    config: RegistrarConfig,
    records: BTreeMap<BindingKey, KeyRecord>,
    /// Last accepted Replay Protection timestamp per SPI.
    last_timestamp: BTreeMap<u32, u64>,
    next_id: u32,
    counters: Counters,
}

/// True for a global unicast address a tunnel may be sent to.
fn is_global_unicast(a: &Ipv6Addr) -> bool {
    let o = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        // fe80::/10 link-local
        || (o[0] == 0xfe && o[1] & 0xc0 == 0x80)
        // ::ffff:0:0/96 IPv4-mapped
        || a.to_ipv4_mapped().is_some())
}

fn in_prefix(addr: &Ipv6Addr, prefix: &Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - len);
    (u128::from(*addr) & mask) == (u128::from(*prefix) & mask)
}

/// `a` is newer than `b`, NTP timestamps compared modulo 2^64 (era-safe).
fn timestamp_newer(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

fn lifetime_duration(units: u16) -> Duration {
    Duration::from_secs(u64::from(units) * LIFETIME_UNIT_SECS)
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Registrar {
        Registrar {
            config,
            records: BTreeMap::new(),
            last_timestamp: BTreeMap::new(),
            next_id: 1,
            counters: Counters::default(),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Number of live bindings.
    pub fn binding_count(&self) -> usize {
        self.records
            .values()
            .filter(|r| r.binding.is_some())
            .count()
    }

    /// Handles a Mobility Header received by the control thread.
    pub fn on_mobility_header(&mut self, now: Now, rx: &ReceivedMh<'_>) -> Outcome {
        if rx.dst != self.config.home_agent {
            self.counters.not_for_us += 1;
            return Outcome::new(Verdict::NotForUs);
        }
        let Ok(packet) = MhPacket::new_checked(rx.mh) else {
            return self.discard(DiscardReason::Truncated, rx);
        };
        // RFC 6275 §6.1.1: the HAO's home address is the pseudo-header source.
        let pseudo_src = rx.home_address.unwrap_or(rx.src);
        match check_receive(&packet, &pseudo_src, &rx.dst) {
            Ok(_) => {}
            Err(rejection) => return self.receive_rejection(rejection, rx),
        }
        let Ok(repr) = MhRepr::parse(&packet) else {
            return self.discard(DiscardReason::Malformed, rx);
        };
        let MhMessage::BindingUpdate(bu) = repr.message else {
            return self.discard(DiscardReason::NotBindingUpdate, rx);
        };
        let Some(home) = rx.home_address else {
            return self.discard(DiscardReason::NoHomeAddressOption, rx);
        };
        if repr.nonce_indices().is_some() || repr.binding_auth_data().is_some() {
            return self.discard(DiscardReason::CorrespondentOptions, rx);
        }
        let bid = repr.options.iter().find_map(|o| match o {
            Ok(MobilityOption::BindingIdentifier { bid, care_of, .. }) => Some((bid, care_of)),
            _ => None,
        });
        let care_of = repr
            .alternate_care_of()
            .or(bid.and_then(|(_, c)| c))
            .unwrap_or(rx.src);
        let mut ctx = BaContext {
            to: rx.src,
            home,
            care_of,
            sequence: bu.sequence,
            auth: None,
        };

        let service = self
            .config
            .services
            .iter()
            .find(|s| s.address == home)
            .cloned();
        let Some(service) = service else {
            let reason = if bu.home_registration {
                RejectReason::NotAService
            } else {
                RejectReason::CorrespondentRegistration
            };
            return self.reject(reason, &ctx);
        };
        if bu.home_registration && !service.accept_registrations {
            return self.reject(RejectReason::RegistrationsDisabled, &ctx);
        }
        match self.authenticate(now, &repr, rx.src, packet.as_bytes(), care_of, home) {
            Ok(auth) => ctx.auth = auth,
            Err(failure) => {
                *self.counters.auth_failures.entry(failure).or_default() += 1;
                return self.reject(RejectReason::Auth(failure), &ctx);
            }
        }

        let key = BindingKey {
            service: home,
            ident: match bid {
                Some((bid, _)) => BindingIdent::Bid(bid),
                // RFC 6275 §10.3.2: a de-registration may name the home address as its
                // care-of address; the binding it ends is the one of its sender.
                None if care_of == home => BindingIdent::CareOf(rx.src),
                None => BindingIdent::CareOf(care_of),
            },
        };
        let existing = self.records.get(&key).and_then(|r| r.binding);
        if let Some(b) = existing {
            if b.home_registration != bu.home_registration {
                return self.reject(RejectReason::RegistrationTypeChange, &ctx);
            }
        }
        if !bu.home_registration {
            return self.reject(RejectReason::CorrespondentRegistration, &ctx);
        }

        if bu.lifetime == 0 || care_of == home {
            return self.deregister(now.mono, key, existing, &bu, &ctx);
        }
        if existing.is_none() {
            let recently_deleted = self
                .records
                .get(&key)
                .and_then(|r| r.deleted)
                .filter(|(_, at)| now.mono.saturating_duration_since(*at) < MAX_DELETE_BCE_TIMEOUT);
            if let Some((last, _)) = recently_deleted {
                if !seqno::seq_gt(bu.sequence, last) {
                    return self.reject(RejectReason::SequenceOutOfWindow { last }, &ctx);
                }
            }
        }
        if !is_global_unicast(&care_of)
            || care_of == self.config.home_agent
            || self.config.services.iter().any(|s| s.address == care_of)
        {
            return self.reject(RejectReason::InvalidCareOf(care_of), &ctx);
        }
        let taken_by_static = self.config.reserved_care_ofs.contains(&(home, care_of));
        let taken_by_other_key = self.records.iter().any(|(k, r)| {
            k.service == home && *k != key && r.binding.is_some_and(|b| b.care_of == care_of)
        });
        if taken_by_static || taken_by_other_key {
            return self.reject(RejectReason::CareOfInUse(care_of), &ctx);
        }
        if let Some(b) = existing {
            if !seqno::seq_gt(bu.sequence, b.last_sequence) {
                return self.reject(
                    RejectReason::SequenceOutOfWindow {
                        last: b.last_sequence,
                    },
                    &ctx,
                );
            }
        } else {
            let in_service = self
                .records
                .iter()
                .filter(|(k, r)| k.service == home && r.binding.is_some())
                .count();
            if in_service >= service.max_bindings {
                return self.reject(RejectReason::BindingLimit, &ctx);
            }
        }
        let reported = self.load_report(&repr);
        self.register(now, key, existing, &bu, reported, &ctx)
    }

    /// Removes the bindings whose lifetime has ended at `now` and reports them.
    pub fn on_timer(&mut self, now: Instant) -> Vec<MemberEvent> {
        let mut events = Vec::new();
        for (key, record) in self.records.iter_mut() {
            if let Some(b) = record.binding {
                if b.expires <= now {
                    record.binding = None;
                    events.push(MemberEvent::Left {
                        service: key.service,
                        care_of: b.care_of,
                        id: record.id,
                        epoch: record.epoch,
                        reason: LeaveReason::Expired,
                    });
                }
            }
        }
        self.counters.expired += events.len() as u64;
        events
    }

    /// When the next binding expires (the time for the next [`on_timer`](Self::on_timer)).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.records
            .values()
            .filter_map(|r| r.binding.map(|b| b.expires))
            .min()
    }

    /// Applies a new configuration (a reload). Bindings of services that are gone or no
    /// longer accept registrations, and bindings whose care-of address became a static
    /// member's, are removed and reported as
    /// [`LeaveReason::Withdrawn`]; the others keep their state, including sequence numbers
    /// and replay timestamps. A lower `max_lifetime_units` applies from the next renewal.
    pub fn reconfigure(&mut self, config: RegistrarConfig) -> Vec<MemberEvent> {
        let mut events = Vec::new();
        for (key, record) in self.records.iter_mut() {
            let still_served = config
                .services
                .iter()
                .any(|s| s.address == key.service && s.accept_registrations);
            // A static member added with the binding's care-of address takes its place.
            let now_static = record
                .binding
                .is_some_and(|b| config.reserved_care_ofs.contains(&(key.service, b.care_of)));
            if still_served && !now_static {
                continue;
            }
            if let Some(b) = record.binding.take() {
                events.push(MemberEvent::Left {
                    service: key.service,
                    care_of: b.care_of,
                    id: record.id,
                    epoch: record.epoch,
                    reason: LeaveReason::Withdrawn,
                });
            }
        }
        // Keys the new file no longer names are forgotten, with their replay state.
        self.last_timestamp
            .retain(|spi, _| config.keys.contains_key(spi));
        self.config = config;
        events
    }

    /// Every live binding, for the admin interface.
    pub fn bindings(&self, now: Instant) -> Vec<BindingInfo> {
        self.records
            .iter()
            .filter_map(|(key, r)| {
                r.binding.map(|b| BindingInfo {
                    service: key.service,
                    ident: key.ident,
                    care_of: b.care_of,
                    id: r.id,
                    epoch: r.epoch,
                    sequence: b.last_sequence,
                    weight: b.weight,
                    granted: b.granted,
                    left: b.expires.saturating_duration_since(now),
                    age: now.saturating_duration_since(b.registered),
                    refreshes: b.refreshes,
                    spi: b.spi,
                })
            })
            .collect()
    }

    /// The current members of a service, in id order, all [`MemberStatus::Active`]
    /// (health checks and admin drain are applied by whoever builds the snapshot).
    pub fn members(&self, service: &Ipv6Addr) -> Vec<MemberSpec> {
        let mut out: Vec<MemberSpec> = self
            .records
            .iter()
            .filter(|(k, _)| k.service == *service)
            .filter_map(|(_, r)| {
                r.binding.map(|b| MemberSpec {
                    id: r.id,
                    epoch: r.epoch,
                    care_of: b.care_of,
                    weight: b.weight,
                    status: MemberStatus::Active,
                    mac: None,
                    // Slots are the control plane's to assign across all services.
                    stats_slot: 0,
                })
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    /// [`members`](Self::members) of every configured service, in configuration order.
    pub fn service_members(&self) -> Vec<(Ipv6Addr, Vec<MemberSpec>)> {
        self.config
            .services
            .iter()
            .map(|s| (s.address, self.members(&s.address)))
            .collect()
    }

    fn discard(&mut self, reason: DiscardReason, rx: &ReceivedMh<'_>) -> Outcome {
        *self.counters.discards.entry(reason).or_default() += 1;
        let mut out = Outcome::new(Verdict::Discarded(reason));
        out.log.push(format!(
            "event=mh_discarded reason={reason:?} src={} home={}",
            rx.src,
            rx.home_address.unwrap_or(Ipv6Addr::UNSPECIFIED)
        ));
        out
    }

    fn receive_rejection(&mut self, rejection: MhRejection, rx: &ReceivedMh<'_>) -> Outcome {
        match rejection.response() {
            MhResponse::SilentDiscard => self.discard(DiscardReason::BadChecksum, rx),
            MhResponse::BindingError(status) => {
                self.counters.binding_errors += 1;
                let mut out = Outcome::new(Verdict::BindingError(status));
                out.log.push(format!(
                    "event=binding_error status={} src={} reason={rejection:?}",
                    u8::from(status),
                    rx.src
                ));
                // RFC 6275 §9.3.3: to the source of the offending packet, only if unicast;
                // Home Address = the HAO's address or ::.
                if is_global_unicast(&rx.src) || is_link_local(&rx.src) {
                    let home = rx.home_address.unwrap_or(Ipv6Addr::UNSPECIFIED);
                    out.reply = self
                        .binding_error_packet(rx.src, status, home)
                        .map(Reply::Packet);
                }
                out
            }
            MhResponse::ParameterProblem {
                code,
                pointer_in_mh,
            } => {
                self.counters.parameter_problems += 1;
                let mut out = Outcome::new(Verdict::ParameterProblem);
                let pointer = u32::try_from(rx.mh_offset)
                    .unwrap_or(u32::MAX)
                    .saturating_add(pointer_in_mh);
                out.log.push(format!(
                    "event=mh_parameter_problem src={} pointer={pointer} reason={rejection:?}",
                    rx.src
                ));
                out.reply = Some(Reply::ParameterProblem {
                    to: rx.src,
                    code,
                    pointer,
                });
                out
            }
        }
    }

    /// RFC 4285 authentication, or the trusted-prefix rule. `Ok(Some)` when authenticated
    /// with MN-HA (the BA is then authenticated too).
    fn authenticate(
        &mut self,
        now: Now,
        repr: &MhRepr<'_>,
        src: Ipv6Addr,
        mh: &[u8],
        care_of: Ipv6Addr,
        home: Ipv6Addr,
    ) -> Result<Option<Authenticated>, AuthFailure> {
        let auth_option = repr.find_option(OptionType::MobilityMessageAuth);
        let Some(MobilityOption::MobilityMessageAuth { subtype, spi, .. }) = auth_option else {
            let trusted = |a: &Ipv6Addr| {
                self.config
                    .trusted_prefixes
                    .iter()
                    .any(|(p, len)| in_prefix(a, p, *len))
            };
            // The source is where the packet came from; an Alternate CoA is only a claim,
            // so it must be trusted as well.
            return if trusted(&src) && trusted(&care_of) {
                Ok(None)
            } else {
                Err(AuthFailure::Untrusted)
            };
        };
        if subtype != AuthSubtype::MnHa {
            return Err(AuthFailure::MnAaa);
        }
        let key = self
            .config
            .keys
            .get(&spi)
            .ok_or(AuthFailure::UnknownSpi(spi))?;
        match auth::verify_mn_ha(key, &care_of, &home, mh) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(AuthFailure::BadAuthenticator),
        }
        let Some(MobilityOption::ReplayProtection { timestamp }) =
            repr.find_option(OptionType::ReplayProtection)
        else {
            return Err(AuthFailure::MissingReplayProtection);
        };
        let ntp_now = auth::ntp_from_unix(now.unix);
        if !auth::timestamp_acceptable(timestamp, ntp_now, self.config.replay_window) {
            return Err(AuthFailure::TimestampOutsideWindow);
        }
        if let Some(&last) = self.last_timestamp.get(&spi) {
            if !timestamp_newer(timestamp, last) {
                return Err(AuthFailure::TimestampReplayed);
            }
        }
        self.last_timestamp.insert(spi, timestamp);
        Ok(Some(Authenticated { spi, timestamp }))
    }

    /// The weight a BU's load report asks for, if it carries a valid one.
    fn load_report(&mut self, repr: &MhRepr<'_>) -> Option<u32> {
        let mut weight = None;
        let mut from_load = None;
        for opt in repr.options.iter().flatten() {
            let MobilityOption::VendorSpecific {
                vendor_id: LOAD_REPORT_VENDOR_ID,
                sub_type,
                data,
            } = opt
            else {
                continue;
            };
            match (sub_type, data) {
                (LOAD_REPORT_WEIGHT, &[hi, lo]) => {
                    weight = Some(u32::from(u16::from_be_bytes([hi, lo])));
                }
                (LOAD_REPORT_LOAD_PERCENT, &[load]) if load <= 100 => {
                    from_load = Some(101 - u32::from(load));
                }
                (LOAD_REPORT_WEIGHT | LOAD_REPORT_LOAD_PERCENT, _) => {
                    self.counters.bad_load_reports += 1;
                }
                _ => {}
            }
        }
        weight.or(from_load)
    }

    fn deregister(
        &mut self,
        now: Instant,
        key: BindingKey,
        existing: Option<Binding>,
        bu: &BindingUpdate,
        ctx: &BaContext,
    ) -> Outcome {
        let Some(b) = existing else {
            return self.reject(RejectReason::NoBinding, ctx);
        };
        if !seqno::seq_gt(bu.sequence, b.last_sequence) {
            return self.reject(
                RejectReason::SequenceOutOfWindow {
                    last: b.last_sequence,
                },
                ctx,
            );
        }
        let Some(record) = self.records.get_mut(&key) else {
            return self.reject(RejectReason::NoBinding, ctx);
        };
        record.binding = None;
        record.deleted = Some((bu.sequence, now));
        let event = MemberEvent::Left {
            service: key.service,
            care_of: b.care_of,
            id: record.id,
            epoch: record.epoch,
            reason: LeaveReason::Deregistered,
        };
        let mut out = Outcome::new(Verdict::Accepted(Accepted::Deregistered));
        out.log.push(event.to_string());
        out.events.push(event);
        // §10.3.2: status 0, Sequence copied, Lifetime 0, no Binding Refresh Advice.
        out.reply = self.ba(BaStatus::Accepted, 0, None, ctx);
        out
    }

    fn register(
        &mut self,
        now: Now,
        key: BindingKey,
        existing: Option<Binding>,
        bu: &BindingUpdate,
        reported_weight: Option<u32>,
        ctx: &BaContext,
    ) -> Outcome {
        let granted = bu.lifetime.min(self.config.max_lifetime_units);
        let lifetime = lifetime_duration(granted);
        let default_weight = self.config.default_weight;
        let record = match self.records.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                e.insert(KeyRecord {
                    id,
                    epoch: 0,
                    binding: None,
                    deleted: None,
                })
            }
        };
        let mut out;
        let weight;
        match existing {
            Some(old) => {
                weight = reported_weight.unwrap_or(old.weight);
                out = Outcome::new(Verdict::Accepted(Accepted::Refreshed));
                let refreshed = MemberEvent::Refreshed {
                    service: key.service,
                    care_of: ctx.care_of,
                    id: record.id,
                    epoch: record.epoch,
                    lifetime,
                };
                out.log.push(refreshed.to_string());
                out.events.push(refreshed);
                if weight != old.weight {
                    let changed = MemberEvent::WeightChanged {
                        service: key.service,
                        id: record.id,
                        epoch: record.epoch,
                        old: old.weight,
                        new: weight,
                    };
                    out.log.push(changed.to_string());
                    out.events.push(changed);
                }
            }
            None => {
                weight = reported_weight.unwrap_or(default_weight);
                record.epoch = record.epoch.wrapping_add(1);
                out = Outcome::new(Verdict::Accepted(Accepted::Registered));
                let joined = MemberEvent::Joined {
                    service: key.service,
                    care_of: ctx.care_of,
                    id: record.id,
                    epoch: record.epoch,
                    weight,
                    lifetime,
                };
                out.log.push(joined.to_string());
                out.events.push(joined);
            }
        }
        // RFC 4862 §5.4: no DAD for the home address, it is an anycast address.
        record.binding = Some(Binding {
            care_of: ctx.care_of,
            home_registration: true,
            last_sequence: bu.sequence,
            expires: now.mono + lifetime,
            weight,
            granted: lifetime,
            registered: existing.map_or(now.mono, |b| b.registered),
            refreshes: existing.map_or(0, |b| b.refreshes + 1),
            spi: ctx.auth.map(|a| a.spi),
        });
        let refresh = self.refresh_advice(granted);
        out.reply = self.ba(BaStatus::Accepted, granted, refresh, ctx);
        out
    }

    /// RFC 6275 §6.2.4: the refresh interval must be smaller than the lifetime.
    fn refresh_advice(&self, granted: u16) -> Option<u16> {
        if granted < 2 {
            return None;
        }
        let percent = u32::from(self.config.refresh_percent.clamp(1, 99));
        let interval = (u32::from(granted) * percent / 100).clamp(1, u32::from(granted) - 1);
        u16::try_from(interval).ok()
    }

    fn reject(&mut self, reason: RejectReason, ctx: &BaContext) -> Outcome {
        let mut out = Outcome::new(Verdict::Rejected(reason));
        let status = reason.status();
        out.log.push(format!(
            "event=bu_rejected status={} reason={reason:?} home={} care_of={} src={} seq={}",
            u8::from(status),
            ctx.home,
            ctx.care_of,
            ctx.to,
            ctx.sequence
        ));
        // RFC 6275 §6.1.8 / §9.5.1: a 135 carries the last accepted sequence number; the
        // lifetime of a rejection is meaningless and sent as 0.
        let sequence = match reason {
            RejectReason::SequenceOutOfWindow { last } => last,
            _ => ctx.sequence,
        };
        out.reply = self.ba(status, 0, None, &BaContext { sequence, ..*ctx });
        out
    }

    /// Builds and counts a BA; `None` (counted) when it cannot be sent.
    fn ba(
        &mut self,
        status: BaStatus,
        lifetime: u16,
        refresh: Option<u16>,
        ctx: &BaContext,
    ) -> Option<Reply> {
        *self
            .counters
            .ba_by_status
            .entry(u8::from(status))
            .or_default() += 1;
        // RFC 6275 §9.5.4: no BA to a source that is not a unicast address.
        if !(is_global_unicast(&ctx.to) || is_link_local(&ctx.to)) {
            self.counters.ba_unsendable += 1;
            return None;
        }
        match self.ba_packet(status, lifetime, refresh, ctx) {
            Some(p) => Some(Reply::Packet(p)),
            None => {
                self.counters.ba_unsendable += 1;
                None
            }
        }
    }

    /// IPv6 header + Type 2 routing header (home address) + BA, checksum with the RH2 rule.
    fn ba_packet(
        &self,
        status: BaStatus,
        lifetime: u16,
        refresh: Option<u16>,
        ctx: &BaContext,
    ) -> Option<Vec<u8>> {
        let placeholder = [0u8; auth::MN_HA_AUTH_DATA_LEN];
        let mut options = Vec::with_capacity(3);
        if let Some(interval) = refresh {
            options.push(MobilityOption::BindingRefreshAdvice { interval });
        }
        let key = match ctx.auth {
            Some(a) => {
                options.push(MobilityOption::ReplayProtection {
                    timestamp: a.timestamp,
                });
                options.push(MobilityOption::MobilityMessageAuth {
                    subtype: AuthSubtype::MnHa,
                    spi: a.spi,
                    auth_data: &placeholder,
                });
                self.config.keys.get(&a.spi)
            }
            None => None,
        };
        let repr = MhRepr {
            message: MhMessage::BindingAck(BindingAck {
                status,
                key_mgmt: false,
                other_flags: 0,
                sequence: ctx.sequence,
                lifetime,
            }),
            options: MhOptions::List(&options),
        };
        let mh_len = repr.buffer_len().ok()?;
        let mh_at = ipv6::HEADER_LEN + Type2RoutingRepr::HEADER_LEN;
        let mut buf = vec![0u8; mh_at + mh_len];
        let ip = Ipv6Repr {
            src: self.config.home_agent,
            dst: ctx.to,
            next_header: proto::ROUTING,
            payload_len: Type2RoutingRepr::HEADER_LEN + mh_len,
            hop_limit: self.config.hop_limit,
            traffic_class: 0,
            flow_label: 0,
        };
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..])).ok()?;
        Type2RoutingRepr {
            next_header: proto::MOBILITY,
            home_address: ctx.home,
        }
        .emit(&mut Ipv6RoutingHeader::new_unchecked(
            &mut buf[ipv6::HEADER_LEN..mh_at],
        ))
        .ok()?;
        let mh = &mut buf[mh_at..];
        repr.emit(&mut MhPacket::new_unchecked(&mut *mh)).ok()?;
        // §6.1.1 with §6.4: the pseudo-header destination is the RH2's home address.
        match key {
            Some(key) => auth::insert_mn_ha_and_fill_checksum(
                key,
                &ctx.care_of,
                &ctx.home,
                mh,
                &self.config.home_agent,
                &ctx.home,
            )
            .ok()?,
            None => fill_checksum(&self.config.home_agent, &ctx.home, mh).ok()?,
        }
        Some(buf)
    }

    /// IPv6 header + Binding Error (no routing header, §6.1).
    fn binding_error_packet(
        &self,
        to: Ipv6Addr,
        status: BeStatus,
        home: Ipv6Addr,
    ) -> Option<Vec<u8>> {
        let repr = MhRepr {
            message: MhMessage::BindingError {
                status,
                home_address: home,
            },
            options: MhOptions::NONE,
        };
        let mh_len = repr.buffer_len().ok()?;
        let mut buf = vec![0u8; ipv6::HEADER_LEN + mh_len];
        let ip = Ipv6Repr {
            src: self.config.home_agent,
            dst: to,
            next_header: proto::MOBILITY,
            payload_len: mh_len,
            hop_limit: self.config.hop_limit,
            traffic_class: 0,
            flow_label: 0,
        };
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..])).ok()?;
        let mh = &mut buf[ipv6::HEADER_LEN..];
        repr.emit(&mut MhPacket::new_unchecked(&mut *mh)).ok()?;
        fill_checksum(&self.config.home_agent, &to, mh).ok()?;
        Some(buf)
    }
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    let o = a.octets();
    o[0] == 0xfe && o[1] & 0xc0 == 0x80
}

#[cfg(test)]
mod tests {
    use super::*;
    use anycast6_wire::ipv6ext::ExtHeaderChain;
    use anycast6_wire::mobility::verify_checksum;

    const KEY: &[u8] = &[0x42; 16];
    const SPI: u32 = 0x1001;
    const T0_UNIX: u64 = 1_700_000_000;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn ha() -> Ipv6Addr {
        a("2001:db8:ffff::1")
    }
    fn s1() -> Ipv6Addr {
        a("2001:db8:aaaa::80")
    }
    fn s2() -> Ipv6Addr {
        a("2001:db8:aaaa::443")
    }
    fn s_off() -> Ipv6Addr {
        a("2001:db8:aaaa::25")
    }
    /// In the trusted prefix.
    fn coa1() -> Ipv6Addr {
        a("2001:db8:100::10")
    }
    fn coa2() -> Ipv6Addr {
        a("2001:db8:100::20")
    }
    /// Outside every trusted prefix.
    fn far() -> Ipv6Addr {
        a("2001:db8:9999::1")
    }

    fn config() -> RegistrarConfig {
        let mut c = RegistrarConfig::new(ha());
        for (address, accept) in [(s1(), true), (s2(), true), (s_off(), false)] {
            c.services.push(ServiceRegistration {
                address,
                accept_registrations: accept,
                max_bindings: 8,
            });
        }
        c.trusted_prefixes.push((a("2001:db8:100::"), 48));
        c.keys.insert(SPI, KEY.to_vec());
        c
    }

    struct Clock {
        base: Instant,
    }
    impl Clock {
        fn new() -> Clock {
            Clock {
                base: Instant::now(),
            }
        }
        fn at(&self, secs: u64) -> Now {
            Now {
                mono: self.base + Duration::from_secs(secs),
                unix: Duration::from_secs(T0_UNIX + secs),
            }
        }
    }

    fn ts(secs: u64) -> u64 {
        auth::ntp_timestamp(T0_UNIX + secs, 0)
    }

    /// A BU as a member emits it: MH only, checksum with pseudo-source = home address.
    /// `mn_ha`: (key, SPI, care-of used for the authenticator).
    fn bu_mh(
        seq: u16,
        home_registration: bool,
        lifetime: u16,
        home: Ipv6Addr,
        extra: &[MobilityOption<'_>],
        mn_ha: Option<(&[u8], u32, Ipv6Addr)>,
    ) -> Vec<u8> {
        let placeholder = [0u8; auth::MN_HA_AUTH_DATA_LEN];
        let mut opts: Vec<MobilityOption<'_>> = extra.to_vec();
        if let Some((_, spi, _)) = mn_ha {
            opts.push(MobilityOption::MobilityMessageAuth {
                subtype: AuthSubtype::MnHa,
                spi,
                auth_data: &placeholder,
            });
        }
        let repr = MhRepr {
            message: MhMessage::BindingUpdate(BindingUpdate {
                sequence: seq,
                ack: true,
                home_registration,
                lifetime,
                ..Default::default()
            }),
            options: MhOptions::List(&opts),
        };
        let mut buf = vec![0u8; repr.buffer_len().unwrap()];
        repr.emit(&mut MhPacket::new_unchecked(&mut buf)).unwrap();
        match mn_ha {
            Some((key, _, coa)) => {
                auth::insert_mn_ha_and_fill_checksum(key, &coa, &home, &mut buf, &home, &ha())
                    .unwrap()
            }
            None => fill_checksum(&home, &ha(), &mut buf).unwrap(),
        }
        buf
    }

    fn plain_bu(seq: u16, lifetime: u16, home: Ipv6Addr) -> Vec<u8> {
        bu_mh(seq, true, lifetime, home, &[], None)
    }

    fn auth_bu(seq: u16, lifetime: u16, home: Ipv6Addr, coa: Ipv6Addr, t: u64) -> Vec<u8> {
        bu_mh(
            seq,
            true,
            lifetime,
            home,
            &[MobilityOption::ReplayProtection { timestamp: ts(t) }],
            Some((KEY, SPI, coa)),
        )
    }

    fn rx(src: Ipv6Addr, home: Option<Ipv6Addr>, mh: &[u8]) -> ReceivedMh<'_> {
        ReceivedMh {
            src,
            dst: ha(),
            home_address: home,
            mh,
            // IPv6 header + 24-octet Destination Options header with the HAO.
            mh_offset: 64,
        }
    }

    struct ParsedBa {
        dst: Ipv6Addr,
        home: Ipv6Addr,
        ack: BindingAck,
        refresh: Option<u16>,
        replay: Option<u64>,
        mh: Vec<u8>,
    }

    /// Parses a BA packet back with the wire crate, checking addressing and the checksum
    /// with the RH2 rule.
    fn parse_ba(reply: &Option<Reply>) -> ParsedBa {
        let Some(Reply::Packet(p)) = reply else {
            panic!("no BA packet: {reply:?}");
        };
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.src_addr(), ha());
        assert_eq!(usize::from(ip.payload_len()) + 40, p.len());
        let chain = ExtHeaderChain::walk(ip.next_header(), ip.payload()).unwrap();
        assert_eq!(chain.upper_layer, proto::MOBILITY);
        let home = chain
            .type2_home_address
            .expect("BA without a Type 2 routing header");
        assert_eq!(chain.home_address, None);
        let mh = chain.upper_layer_bytes(ip.payload()).unwrap();
        assert!(verify_checksum(
            &ip.src_addr(),
            &chain.pseudo_header_dst(ip.dst_addr()),
            mh
        ));
        // And not with the plain destination: the RH2 rule really applies.
        assert!(!verify_checksum(&ip.src_addr(), &ip.dst_addr(), mh));
        let packet = MhPacket::new_checked(mh).unwrap();
        let repr = MhRepr::parse(&packet).unwrap();
        let MhMessage::BindingAck(ack) = repr.message else {
            panic!("not a BA: {repr:?}");
        };
        let replay = match repr.find_option(OptionType::ReplayProtection) {
            Some(MobilityOption::ReplayProtection { timestamp }) => Some(timestamp),
            _ => None,
        };
        ParsedBa {
            dst: ip.dst_addr(),
            home,
            ack,
            refresh: repr.binding_refresh_advice(),
            replay,
            mh: mh.to_vec(),
        }
    }

    fn status(out: &Outcome) -> u8 {
        u8::from(out.ba_status().expect("no BA status"))
    }

    #[test]
    fn accepted_registration_and_ba_round_trip() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let mh = plain_bu(7, 1000, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Registered));
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.dst, coa1());
        assert_eq!(ba.home, s1());
        assert_eq!(ba.ack.status, BaStatus::Accepted);
        assert_eq!(ba.ack.sequence, 7);
        assert_eq!(ba.ack.lifetime, DEFAULT_MAX_LIFETIME_UNITS, "capped at 150");
        assert_eq!(ba.refresh, Some(120), "80 % of 150");
        assert_eq!(ba.replay, None);
        assert_eq!(
            out.events,
            [MemberEvent::Joined {
                service: s1(),
                care_of: coa1(),
                id: 1,
                epoch: 1,
                weight: 1,
                lifetime: Duration::from_secs(600),
            }]
        );
        assert_eq!(out.log.len(), 1);
        assert!(out.log[0].starts_with("event=member_joined service=2001:db8:aaaa::80"));
        assert_eq!(
            r.members(&s1()),
            [MemberSpec {
                id: 1,
                epoch: 1,
                care_of: coa1(),
                weight: 1,
                status: MemberStatus::Active,
                mac: None,
                stats_slot: 0,
            }]
        );
        assert!(r.members(&s2()).is_empty());
        let all = r.service_members();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].1.len(), 1);
        assert_eq!(r.counters().ba_by_status.get(&0), Some(&1));
        assert_eq!(r.next_expiry(), Some(clock.at(600).mono));
    }

    #[test]
    fn lifetime_below_the_cap_and_refresh_advice() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let mh = plain_bu(1, 10, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.ack.lifetime, 10);
        assert_eq!(ba.refresh, Some(8));
        // One unit: no interval below the lifetime exists, so no advice.
        let mh = plain_bu(1, 1, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(coa2(), Some(s1()), &mh));
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.ack.lifetime, 1);
        assert_eq!(ba.refresh, None);
        // Two units: advice 1.
        let mh = plain_bu(2, 2, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(coa2(), Some(s1()), &mh));
        assert_eq!(parse_ba(&out.reply).refresh, Some(1));
    }

    #[test]
    fn authenticated_registration_gets_an_authenticated_ba() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let mh = auth_bu(3, 100, s1(), far(), 0);
        let out = r.on_mobility_header(clock.at(0), &rx(far(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Registered));
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.dst, far());
        assert_eq!(ba.ack.lifetime, 100);
        assert_eq!(ba.replay, Some(ts(0)), "timestamp echoed");
        assert!(auth::verify_mn_ha(KEY, &far(), &s1(), &ba.mh).unwrap());
        assert!(!auth::verify_mn_ha(&[0x43; 16], &far(), &s1(), &ba.mh).unwrap());
        // A later, fresh BU refreshes.
        let mh = auth_bu(4, 100, s1(), far(), 2);
        let out = r.on_mobility_header(clock.at(2), &rx(far(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Refreshed));
    }

    fn auth_rejection(out: &Outcome) -> AuthFailure {
        match out.verdict {
            Verdict::Rejected(RejectReason::Auth(f)) => {
                assert_eq!(status(out), 129);
                let ba = parse_ba(&out.reply);
                assert_eq!(ba.ack.status, BaStatus::AdministrativelyProhibited);
                assert_eq!(ba.ack.lifetime, 0);
                assert_eq!(ba.refresh, None);
                f
            }
            other => panic!("expected an authentication failure, got {other:?}"),
        }
    }

    #[test]
    fn authentication_failures_are_129() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let now = clock.at(100);

        let unknown_spi = bu_mh(
            1,
            true,
            10,
            s1(),
            &[MobilityOption::ReplayProtection { timestamp: ts(100) }],
            Some((KEY, 0x2002, far())),
        );
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &unknown_spi));
        assert_eq!(auth_rejection(&out), AuthFailure::UnknownSpi(0x2002));

        let bad_key = bu_mh(
            1,
            true,
            10,
            s1(),
            &[MobilityOption::ReplayProtection { timestamp: ts(100) }],
            Some((&[0x43; 16], SPI, far())),
        );
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &bad_key));
        assert_eq!(auth_rejection(&out), AuthFailure::BadAuthenticator);

        // Authenticated for another care-of address than the one it came from.
        let wrong_coa = auth_bu(1, 10, s1(), coa2(), 100);
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &wrong_coa));
        assert_eq!(auth_rejection(&out), AuthFailure::BadAuthenticator);

        let no_replay = bu_mh(1, true, 10, s1(), &[], Some((KEY, SPI, far())));
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &no_replay));
        assert_eq!(auth_rejection(&out), AuthFailure::MissingReplayProtection);

        let stale = auth_bu(1, 10, s1(), far(), 92);
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &stale));
        assert_eq!(auth_rejection(&out), AuthFailure::TimestampOutsideWindow);
        let future = auth_bu(1, 10, s1(), far(), 108);
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &future));
        assert_eq!(auth_rejection(&out), AuthFailure::TimestampOutsideWindow);

        // Within the window (7 s): accepted once, then the same message is a replay.
        let fresh = auth_bu(1, 10, s1(), far(), 95);
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &fresh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Registered));
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &fresh));
        assert_eq!(auth_rejection(&out), AuthFailure::TimestampReplayed);
        // An older timestamp, still in the window, is a replay too.
        let older = auth_bu(2, 10, s1(), far(), 94);
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &older));
        assert_eq!(auth_rejection(&out), AuthFailure::TimestampReplayed);

        // Unauthenticated from outside the trusted prefixes.
        let plain = plain_bu(1, 10, s1());
        let out = r.on_mobility_header(now, &rx(far(), Some(s1()), &plain));
        assert_eq!(auth_rejection(&out), AuthFailure::Untrusted);
        // From a trusted source but naming an untrusted Alternate CoA.
        let alt = bu_mh(
            1,
            true,
            10,
            s1(),
            &[MobilityOption::AlternateCareOf(far())],
            None,
        );
        let out = r.on_mobility_header(now, &rx(coa1(), Some(s1()), &alt));
        assert_eq!(auth_rejection(&out), AuthFailure::Untrusted);

        assert_eq!(r.counters().ba_by_status.get(&129), Some(&10));
        assert_eq!(
            r.counters()
                .auth_failures
                .get(&AuthFailure::TimestampReplayed),
            Some(&2)
        );
        assert_eq!(r.binding_count(), 1);
    }

    #[test]
    fn binding_limit_is_130() {
        let clock = Clock::new();
        let mut c = config();
        c.services[0].max_bindings = 1;
        let mut r = Registrar::new(c);
        let mh = plain_bu(1, 10, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(status(&out), 0);
        let out = r.on_mobility_header(clock.at(0), &rx(coa2(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Rejected(RejectReason::BindingLimit));
        assert_eq!(
            parse_ba(&out.reply).ack.status,
            BaStatus::InsufficientResources
        );
        // A refresh of the existing binding is not a new one.
        let mh = plain_bu(2, 10, s1());
        let out = r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Refreshed));
        // Other services are counted apart.
        let mh = plain_bu(1, 10, s2());
        let out = r.on_mobility_header(clock.at(1), &rx(coa2(), Some(s2()), &mh));
        assert_eq!(status(&out), 0);
    }

    #[test]
    fn h_flag_handling_131_129_139() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        // A service closed to registrations: 131.
        let mh = plain_bu(1, 10, s_off());
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s_off()), &mh));
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::RegistrationsDisabled)
        );
        assert_eq!(status(&out), 131);
        // H=0 (a correspondent registration) without any binding: 129.
        let h0 = bu_mh(1, false, 10, s1(), &[], None);
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &h0));
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::CorrespondentRegistration)
        );
        assert_eq!(
            parse_ba(&out.reply).ack.status,
            BaStatus::AdministrativelyProhibited
        );
        // H=0 to an address that is no service at all: 129 too (not 132, a home-link matter).
        let h0_other = bu_mh(1, false, 10, far(), &[], None);
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(far()), &h0_other));
        assert_eq!(status(&out), 129);
        // H=0 for a key holding a home registration: 139, and the binding is unchanged.
        let mh = plain_bu(1, 10, s1());
        r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
        let h0 = bu_mh(2, false, 10, s1(), &[], None);
        let out = r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s1()), &h0));
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::RegistrationTypeChange)
        );
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.ack.status, BaStatus::RegistrationTypeChangeDisallowed);
        assert_eq!(ba.ack.sequence, 2);
        assert_eq!(r.members(&s1()).len(), 1);
        // The failed H=0 did not consume the sequence number.
        let mh = plain_bu(2, 10, s1());
        let out = r.on_mobility_header(clock.at(2), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Refreshed));
    }

    #[test]
    fn not_a_service_is_132() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let mh = plain_bu(1, 10, far());
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(far()), &mh));
        assert_eq!(out.verdict, Verdict::Rejected(RejectReason::NotAService));
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.ack.status, BaStatus::NotHomeSubnet);
        assert_eq!(ba.home, far());
        assert_eq!(ba.dst, coa1());
    }

    #[test]
    fn deregistration_of_unknown_binding_is_133() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let mh = plain_bu(1, 0, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Rejected(RejectReason::NoBinding));
        assert_eq!(
            parse_ba(&out.reply).ack.status,
            BaStatus::NotHomeAgentForThisMobileNode
        );
        assert!(out.events.is_empty());
    }

    fn register(r: &mut Registrar, now: Now, seq: u16) -> Outcome {
        let mh = plain_bu(seq, 10, s1());
        r.on_mobility_header(now, &rx(coa1(), Some(s1()), &mh))
    }

    #[test]
    fn sequence_numbers_135() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        assert_eq!(status(&register(&mut r, clock.at(0), 100)), 0);
        for old in [100, 99, 0, 100u16.wrapping_add(32768)] {
            let out = register(&mut r, clock.at(1), old);
            assert_eq!(
                out.verdict,
                Verdict::Rejected(RejectReason::SequenceOutOfWindow { last: 100 }),
                "{old}"
            );
            let ba = parse_ba(&out.reply);
            assert_eq!(ba.ack.status, BaStatus::SequenceNumberOutOfWindow);
            assert_eq!(ba.ack.sequence, 100, "carries the last accepted number");
        }
        // 32767 ahead is newer.
        assert_eq!(status(&register(&mut r, clock.at(2), 100 + 32767)), 0);
        // Wrap-around: 65535 then 0.
        let mut r = Registrar::new(config());
        assert_eq!(status(&register(&mut r, clock.at(0), 65535)), 0);
        let out = register(&mut r, clock.at(1), 0);
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Refreshed));
        assert_eq!(parse_ba(&out.reply).ack.sequence, 0);
        let out = register(&mut r, clock.at(2), 65535);
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::SequenceOutOfWindow { last: 0 })
        );
        // De-registration is subject to the same check.
        let mh = plain_bu(0, 0, s1());
        let out = r.on_mobility_header(clock.at(3), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(status(&out), 135);
        assert_eq!(r.binding_count(), 1);
        let mh = plain_bu(1, 0, s1());
        let out = r.on_mobility_header(clock.at(3), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Deregistered));
        // Within MAX_DELETE_BCE_TIMEOUT the de-registration's number still counts (§12);
        // after it, any sequence number is accepted (no entry, §9.5.1).
        assert_eq!(status(&register(&mut r, clock.at(4), 40000)), 135);
        assert_eq!(status(&register(&mut r, clock.at(14), 40000)), 0);
    }

    #[test]
    fn invalid_care_of_is_174() {
        let clock = Clock::new();
        let mut c = config();
        // Trust everything so that only the care-of check can refuse.
        c.trusted_prefixes.push((Ipv6Addr::UNSPECIFIED, 0));
        let mut r = Registrar::new(c);
        for bad in [
            a("fe80::1"),
            a("ff02::1"),
            a("::1"),
            a("::ffff:192.0.2.1"),
            ha(),
            s2(),
        ] {
            let mh = bu_mh(
                1,
                true,
                10,
                s1(),
                &[MobilityOption::AlternateCareOf(bad)],
                None,
            );
            let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
            assert_eq!(
                out.verdict,
                Verdict::Rejected(RejectReason::InvalidCareOf(bad)),
                "{bad}"
            );
            let ba = parse_ba(&out.reply);
            assert_eq!(ba.ack.status, BaStatus::InvalidCareOf);
            assert_eq!(ba.dst, coa1(), "the BA goes to the BU's source");
        }
        assert_eq!(r.binding_count(), 0);
        // A good Alternate CoA becomes the member's care-of address.
        let mh = bu_mh(
            1,
            true,
            10,
            s1(),
            &[MobilityOption::AlternateCareOf(coa2())],
            None,
        );
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(status(&out), 0);
        assert_eq!(parse_ba(&out.reply).dst, coa1());
        assert_eq!(r.members(&s1())[0].care_of, coa2());
    }

    #[test]
    fn silent_discards() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let now = clock.at(0);
        let mut bad = plain_bu(1, 10, s1());
        bad[11] ^= 1;
        let out = r.on_mobility_header(now, &rx(coa1(), Some(s1()), &bad));
        assert_eq!(out.verdict, Verdict::Discarded(DiscardReason::BadChecksum));
        assert_eq!(out.reply, None);
        // The checksum must use the HAO's address: the right bytes without the HAO fail.
        let good = plain_bu(1, 10, s1());
        let out = r.on_mobility_header(now, &rx(coa1(), None, &good));
        assert_eq!(out.verdict, Verdict::Discarded(DiscardReason::BadChecksum));
        // No HAO (checksum made for the source address).
        let no_hao = {
            let mut m = good.clone();
            fill_checksum(&coa1(), &ha(), &mut m).unwrap();
            m
        };
        let out = r.on_mobility_header(now, &rx(coa1(), None, &no_hao));
        assert_eq!(
            out.verdict,
            Verdict::Discarded(DiscardReason::NoHomeAddressOption)
        );
        let ni = bu_mh(
            1,
            true,
            10,
            s1(),
            &[MobilityOption::NonceIndices {
                home: 1,
                care_of: 2,
            }],
            None,
        );
        let out = r.on_mobility_header(now, &rx(coa1(), Some(s1()), &ni));
        assert_eq!(
            out.verdict,
            Verdict::Discarded(DiscardReason::CorrespondentOptions)
        );
        let bad_auth = [7u8; 12];
        let bad_opt = bu_mh(
            1,
            true,
            10,
            s1(),
            &[MobilityOption::BindingAuthData(&bad_auth)],
            None,
        );
        let out = r.on_mobility_header(now, &rx(coa1(), Some(s1()), &bad_opt));
        assert_eq!(
            out.verdict,
            Verdict::Discarded(DiscardReason::CorrespondentOptions)
        );
        assert_eq!(out.reply, None);
        let out = r.on_mobility_header(now, &rx(coa1(), Some(s1()), &good[..7]));
        assert_eq!(out.verdict, Verdict::Discarded(DiscardReason::Truncated));
        // Another known type sent to the home agent.
        let brr = MhRepr {
            message: MhMessage::BindingRefreshRequest,
            options: MhOptions::NONE,
        };
        let mut m = vec![0u8; brr.buffer_len().unwrap()];
        brr.emit(&mut MhPacket::new_unchecked(&mut m)).unwrap();
        fill_checksum(&coa1(), &ha(), &mut m).unwrap();
        let out = r.on_mobility_header(now, &rx(coa1(), None, &m));
        assert_eq!(
            out.verdict,
            Verdict::Discarded(DiscardReason::NotBindingUpdate)
        );
        // Not addressed to the home agent.
        let mut other = rx(coa1(), Some(s1()), &good);
        other.dst = s1();
        assert_eq!(r.on_mobility_header(now, &other).verdict, Verdict::NotForUs);

        let c = r.counters();
        assert_eq!(c.discards.get(&DiscardReason::BadChecksum), Some(&2));
        assert_eq!(
            c.discards.get(&DiscardReason::CorrespondentOptions),
            Some(&2)
        );
        assert_eq!(c.not_for_us, 1);
        assert!(c.ba_by_status.is_empty());
        assert_eq!(r.binding_count(), 0);
    }

    #[test]
    fn unknown_type_gets_binding_error_2() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let data = [0u8; 10];
        let unknown = MhRepr {
            message: MhMessage::Unknown {
                mh_type: 8,
                data: &data,
            },
            options: MhOptions::NONE,
        };
        let mut m = vec![0u8; unknown.buffer_len().unwrap()];
        unknown.emit(&mut MhPacket::new_unchecked(&mut m)).unwrap();
        fill_checksum(&s1(), &ha(), &mut m).unwrap();
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &m));
        assert_eq!(
            out.verdict,
            Verdict::BindingError(BeStatus::UnrecognizedMhType)
        );
        let Some(Reply::Packet(p)) = &out.reply else {
            panic!("no Binding Error");
        };
        let ip = Ipv6Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.src_addr(), ha());
        assert_eq!(ip.dst_addr(), coa1());
        assert_eq!(
            ip.next_header(),
            proto::MOBILITY,
            "no routing header on a BE"
        );
        let mh = MhPacket::new_checked(ip.payload()).unwrap();
        assert!(mh.verify_checksum(&ha(), &coa1()));
        let repr = MhRepr::parse(&mh).unwrap();
        assert_eq!(
            repr.message,
            MhMessage::BindingError {
                status: BeStatus::UnrecognizedMhType,
                home_address: s1(),
            }
        );
        assert_eq!(r.counters().binding_errors, 1);
    }

    #[test]
    fn parameter_problems_point_into_the_packet() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let mut m = plain_bu(1, 10, s1());
        m[0] = proto::TCP;
        fill_checksum(&s1(), &ha(), &mut m).unwrap();
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &m));
        assert_eq!(out.verdict, Verdict::ParameterProblem);
        assert_eq!(
            out.reply,
            Some(Reply::ParameterProblem {
                to: coa1(),
                code: 0,
                pointer: 64,
            })
        );
        // A BU needs Header Len >= 1.
        let mut short = plain_bu(1, 10, s1())[..8].to_vec();
        short[1] = 0;
        fill_checksum(&s1(), &ha(), &mut short).unwrap();
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &short));
        assert_eq!(
            out.reply,
            Some(Reply::ParameterProblem {
                to: coa1(),
                code: 0,
                pointer: 65,
            })
        );
        assert_eq!(r.counters().parameter_problems, 2);
    }

    #[test]
    fn expiry_renewal_and_epochs() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let out = register(&mut r, clock.at(0), 1);
        let MemberEvent::Joined { id, epoch, .. } = out.events[0] else {
            panic!("{:?}", out.events);
        };
        assert_eq!((id, epoch), (1, 1));
        // Renewal at 30 s: same id and epoch, lifetime restarts (40 s from now).
        let out = register(&mut r, clock.at(30), 2);
        assert_eq!(
            out.events,
            [MemberEvent::Refreshed {
                service: s1(),
                care_of: coa1(),
                id: 1,
                epoch: 1,
                lifetime: Duration::from_secs(40),
            }]
        );
        assert!(r.on_timer(clock.at(40).mono).is_empty());
        assert!(r.on_timer(clock.at(69).mono).is_empty());
        assert_eq!(r.next_expiry(), Some(clock.at(70).mono));
        let gone = r.on_timer(clock.at(70).mono);
        assert_eq!(
            gone,
            [MemberEvent::Left {
                service: s1(),
                care_of: coa1(),
                id: 1,
                epoch: 1,
                reason: LeaveReason::Expired,
            }]
        );
        assert!(r.members(&s1()).is_empty());
        assert_eq!(r.next_expiry(), None);
        assert_eq!(r.counters().expired, 1);
        // Another member meanwhile gets a new id.
        let mh = plain_bu(1, 10, s1());
        let out = r.on_mobility_header(clock.at(71), &rx(coa2(), Some(s1()), &mh));
        assert!(matches!(
            out.events[0],
            MemberEvent::Joined {
                id: 2,
                epoch: 1,
                ..
            }
        ));
        // Re-registration after expiry: same id, epoch bumped.
        let out = register(&mut r, clock.at(72), 1);
        assert!(matches!(
            out.events[0],
            MemberEvent::Joined {
                id: 1,
                epoch: 2,
                ..
            }
        ));
        // De-registration, then again: epoch 3.
        let mh = plain_bu(2, 0, s1());
        let out = r.on_mobility_header(clock.at(73), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Deregistered));
        let out = register(&mut r, clock.at(74), 3);
        assert!(matches!(
            out.events[0],
            MemberEvent::Joined {
                id: 1,
                epoch: 3,
                ..
            }
        ));
        let ids: Vec<_> = r.members(&s1()).iter().map(|m| (m.id, m.epoch)).collect();
        assert_eq!(ids, [(1, 3), (2, 1)]);
    }

    #[test]
    fn deregistration() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        register(&mut r, clock.at(0), 1);
        let mh = plain_bu(2, 0, s1());
        let out = r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Deregistered));
        assert_eq!(
            out.events,
            [MemberEvent::Left {
                service: s1(),
                care_of: coa1(),
                id: 1,
                epoch: 1,
                reason: LeaveReason::Deregistered,
            }]
        );
        assert!(out.log[0].contains("reason=deregistered"));
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.ack.status, BaStatus::Accepted);
        assert_eq!(ba.ack.sequence, 2);
        assert_eq!(ba.ack.lifetime, 0);
        assert_eq!(ba.refresh, None);
        assert!(r.members(&s1()).is_empty());
        assert!(r.on_timer(clock.at(100).mono).is_empty());

        // Care-of address = home address (via Alternate CoA) also de-registers (§10.3.2).
        let mut c = config();
        c.trusted_prefixes.push((s1(), 128));
        let mut r = Registrar::new(c);
        register(&mut r, clock.at(0), 1);
        // That ends the binding of its sender (keyed by its source address).
        let mh = bu_mh(
            2,
            true,
            10,
            s1(),
            &[MobilityOption::AlternateCareOf(s1())],
            None,
        );
        let out = r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Deregistered));
        assert!(r.members(&s1()).is_empty());
        // With a Binding Identifier the key does not depend on the care-of address.
        let bid = |care_of| MobilityOption::BindingIdentifier {
            bid: 9,
            status: 0,
            h: false,
            bid_pri: 0,
            care_of,
        };
        let mh = bu_mh(1, true, 10, s1(), &[bid(None)], None);
        let out = r.on_mobility_header(clock.at(1), &rx(coa2(), Some(s1()), &mh));
        assert_eq!(status(&out), 0);
        let mh = bu_mh(
            2,
            true,
            10,
            s1(),
            &[bid(None), MobilityOption::AlternateCareOf(s1())],
            None,
        );
        let out = r.on_mobility_header(clock.at(2), &rx(coa2(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Deregistered));
        assert_eq!(parse_ba(&out.reply).ack.lifetime, 0);
    }

    #[test]
    fn binding_identifier_keys_members() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let bid = |bid, care_of| MobilityOption::BindingIdentifier {
            bid,
            status: 0,
            h: false,
            bid_pri: 0,
            care_of,
        };
        let coa3 = a("2001:db8:100::30");
        let one = bu_mh(1, true, 10, s1(), &[bid(1, None)], None);
        let two = bu_mh(1, true, 10, s1(), &[bid(2, None)], None);
        let out1 = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &one));
        let out2 = r.on_mobility_header(clock.at(0), &rx(coa2(), Some(s1()), &two));
        assert_eq!(out1.verdict, Verdict::Accepted(Accepted::Registered));
        assert_eq!(out2.verdict, Verdict::Accepted(Accepted::Registered));
        let members = r.members(&s1());
        assert_eq!(members.len(), 2);
        assert_ne!(members[0].id, members[1].id);
        // BID 1 moves to another care-of address (from the BID option): same member.
        let moved = bu_mh(2, true, 10, s1(), &[bid(1, Some(coa3))], None);
        let out = r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s1()), &moved));
        assert_eq!(
            out.events,
            [MemberEvent::Refreshed {
                service: s1(),
                care_of: coa3,
                id: members[0].id,
                epoch: 1,
                lifetime: Duration::from_secs(40),
            }]
        );
        assert_eq!(r.members(&s1())[0].care_of, coa3);
        // A BU without BID from the address BID 1 left is a third binding.
        let out = register(&mut r, clock.at(1), 1);
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Registered));
        assert_eq!(r.members(&s1()).len(), 3);
        // One host may register for several services under BIDs from one address.
        let other = bu_mh(1, true, 10, s2(), &[bid(1, None)], None);
        let out = r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s2()), &other));
        assert_eq!(status(&out), 0);
    }

    fn vendor(sub_type: u8, data: &[u8]) -> MobilityOption<'_> {
        MobilityOption::VendorSpecific {
            vendor_id: LOAD_REPORT_VENDOR_ID,
            sub_type,
            data,
        }
    }

    #[test]
    fn load_reports_set_the_weight() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let w = 500u16.to_be_bytes();
        let mh = bu_mh(1, true, 10, s1(), &[vendor(LOAD_REPORT_WEIGHT, &w)], None);
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &mh));
        assert!(matches!(
            out.events[0],
            MemberEvent::Joined { weight: 500, .. }
        ));
        assert_eq!(r.members(&s1())[0].weight, 500);
        // A refresh without a report keeps the weight.
        let out = register(&mut r, clock.at(1), 2);
        assert_eq!(out.events.len(), 1);
        assert_eq!(r.members(&s1())[0].weight, 500);
        // Load 30 % -> weight 71.
        let load = [30u8];
        let mh = bu_mh(
            3,
            true,
            10,
            s1(),
            &[vendor(LOAD_REPORT_LOAD_PERCENT, &load)],
            None,
        );
        let out = r.on_mobility_header(clock.at(2), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(
            out.events[1],
            MemberEvent::WeightChanged {
                service: s1(),
                id: 1,
                epoch: 1,
                old: 500,
                new: 71,
            }
        );
        assert!(out.log[1].starts_with("event=member_weight"));
        // Sub-type 1 wins over sub-type 2; weight 0 is allowed (no new flows).
        let zero = 0u16.to_be_bytes();
        let mh = bu_mh(
            4,
            true,
            10,
            s1(),
            &[
                vendor(LOAD_REPORT_LOAD_PERCENT, &load),
                vendor(LOAD_REPORT_WEIGHT, &zero),
            ],
            None,
        );
        r.on_mobility_header(clock.at(3), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(r.members(&s1())[0].weight, 0);
        // Malformed reports and other vendors are ignored.
        let too_loaded = [101u8];
        let long = [0u8; 3];
        let other_vendor = [9u8, 9];
        let mh = bu_mh(
            5,
            true,
            10,
            s1(),
            &[
                vendor(LOAD_REPORT_LOAD_PERCENT, &too_loaded),
                vendor(LOAD_REPORT_WEIGHT, &long),
                MobilityOption::VendorSpecific {
                    vendor_id: 1,
                    sub_type: LOAD_REPORT_WEIGHT,
                    data: &other_vendor,
                },
            ],
            None,
        );
        let out = r.on_mobility_header(clock.at(4), &rx(coa1(), Some(s1()), &mh));
        assert_eq!(out.verdict, Verdict::Accepted(Accepted::Refreshed));
        assert_eq!(r.members(&s1())[0].weight, 0);
        assert_eq!(r.counters().bad_load_reports, 2);
    }

    #[test]
    fn authenticated_load_report_and_rejection_ba_is_authenticated() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        let w = 7u16.to_be_bytes();
        let mh = bu_mh(
            5,
            true,
            10,
            s1(),
            &[
                vendor(LOAD_REPORT_WEIGHT, &w),
                MobilityOption::ReplayProtection { timestamp: ts(0) },
            ],
            Some((KEY, SPI, far())),
        );
        let out = r.on_mobility_header(clock.at(0), &rx(far(), Some(s1()), &mh));
        assert!(matches!(
            out.events[0],
            MemberEvent::Joined { weight: 7, .. }
        ));
        // Same sequence number, fresh timestamp: 135, authenticated.
        let mh = auth_bu(5, 10, s1(), far(), 1);
        let out = r.on_mobility_header(clock.at(1), &rx(far(), Some(s1()), &mh));
        assert_eq!(status(&out), 135);
        let ba = parse_ba(&out.reply);
        assert_eq!(ba.ack.sequence, 5);
        assert_eq!(ba.replay, Some(ts(1)));
        assert!(auth::verify_mn_ha(KEY, &far(), &s1(), &ba.mh).unwrap());
    }

    #[test]
    fn delayed_bu_after_deregistration_is_135_for_ten_seconds() {
        let clock = Clock::new();
        let mut r = Registrar::new(config());
        assert_eq!(status(&register(&mut r, clock.at(0), 10)), 0);
        let dereg = plain_bu(12, 0, s1());
        assert_eq!(
            status(&r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s1()), &dereg))),
            0
        );
        // A refresh sent before the de-registration, delivered after it.
        let out = register(&mut r, clock.at(2), 11);
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::SequenceOutOfWindow { last: 12 })
        );
        assert!(r.members(&s1()).is_empty());
        // A newer one registers again.
        assert_eq!(status(&register(&mut r, clock.at(3), 13)), 0);
        // After MAX_DELETE_BCE_TIMEOUT the old number is forgotten.
        let dereg = plain_bu(14, 0, s1());
        r.on_mobility_header(clock.at(4), &rx(coa1(), Some(s1()), &dereg));
        assert_eq!(status(&register(&mut r, clock.at(15), 1)), 0);
    }

    #[test]
    fn care_of_in_use_is_128() {
        let clock = Clock::new();
        let mut c = config();
        c.reserved_care_ofs.push((s1(), coa2()));
        let mut r = Registrar::new(c);
        // A static member's care-of address.
        let mh = plain_bu(1, 10, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(coa2(), Some(s1()), &mh));
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::CareOfInUse(coa2()))
        );
        assert_eq!(parse_ba(&out.reply).ack.status, BaStatus::ReasonUnspecified);
        // The same care-of for another service is fine.
        let mh = plain_bu(1, 10, s2());
        assert_eq!(
            status(&r.on_mobility_header(clock.at(0), &rx(coa2(), Some(s2()), &mh))),
            0
        );
        // Two BIDs from one care-of for one service: the second is refused.
        let with_bid = |bid: u16, seq: u16| {
            bu_mh(
                seq,
                true,
                10,
                s1(),
                &[MobilityOption::BindingIdentifier {
                    bid,
                    status: 0,
                    h: false,
                    bid_pri: 0,
                    care_of: None,
                }],
                None,
            )
        };
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &with_bid(1, 1)));
        assert_eq!(status(&out), 0);
        let out = r.on_mobility_header(clock.at(0), &rx(coa1(), Some(s1()), &with_bid(2, 1)));
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::CareOfInUse(coa1()))
        );
        // A refresh of the first is not a conflict with itself.
        let out = r.on_mobility_header(clock.at(1), &rx(coa1(), Some(s1()), &with_bid(1, 2)));
        assert_eq!(status(&out), 0);
        // A reload that makes coa1 a static member withdraws the binding.
        let mut c = r.config().clone();
        c.reserved_care_ofs.push((s1(), coa1()));
        let events = r.reconfigure(c);
        assert!(matches!(
            events[..],
            [MemberEvent::Left { care_of, reason: LeaveReason::Withdrawn, .. }] if care_of == coa1()
        ));
    }

    #[test]
    fn no_ba_to_a_multicast_source() {
        let clock = Clock::new();
        let mut c = config();
        c.trusted_prefixes.push((Ipv6Addr::UNSPECIFIED, 0));
        let mut r = Registrar::new(c);
        let mh = plain_bu(1, 10, s1());
        let out = r.on_mobility_header(clock.at(0), &rx(a("ff05::1"), Some(s1()), &mh));
        assert_eq!(
            out.verdict,
            Verdict::Rejected(RejectReason::InvalidCareOf(a("ff05::1")))
        );
        assert_eq!(out.reply, None);
        assert_eq!(r.counters().ba_unsendable, 1);
    }
}
