//! The agent's Binding Updates against the appliance's own home-registration code
//! (`anycast6::control::registration::Registrar`), and its BAs back into the agent: no
//! sockets, scripted time.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use anycast6::control::registration::{
    Accepted, LeaveReason, MemberEvent, Now as RegistrarNow, ReceivedMh, Registrar,
    RegistrarConfig, Reply, ServiceRegistration, Verdict,
};
use anycast6_agent::messages::{LoadReport, MnHaKey};
use anycast6_agent::registration::{Action, Now, Phase, Registration, RegistrationConfig};
use anycast6_wire::ipv6::Ipv6Packet;
use anycast6_wire::ipv6ext::ExtHeaderChain;

const SPI: u32 = 0x1001;
const KEY: [u8; 16] = [0x5a; 16];
const T0_UNIX: u64 = 1_700_000_000;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}
fn ha() -> Ipv6Addr {
    a("2001:db8:ffff::1")
}
fn coa() -> Ipv6Addr {
    a("2001:db8:100::10")
}
fn service() -> Ipv6Addr {
    a("2001:db8:aaaa::80")
}

struct Clock {
    base: Instant,
}

impl Clock {
    fn at_ms(&self, ms: u64) -> Now {
        Now {
            mono: self.base + Duration::from_millis(ms),
            unix: Duration::from_millis(T0_UNIX * 1000 + ms),
        }
    }
    fn at(&self, s: u64) -> Now {
        self.at_ms(s * 1000)
    }
}

fn registrar_now(now: Now) -> RegistrarNow {
    RegistrarNow {
        mono: now.mono,
        unix: now.unix,
    }
}

fn registrar() -> Registrar {
    let mut c = RegistrarConfig::new(ha());
    c.services.push(ServiceRegistration {
        address: service(),
        accept_registrations: true,
        max_bindings: 8,
    });
    c.keys.insert(SPI, KEY.to_vec());
    Registrar::new(c)
}

fn agent(clock: &Clock, key: [u8; 16], initial_sequence: u16) -> Registration {
    let mut c = RegistrationConfig::new(ha(), coa(), vec![service()]);
    c.auth = Some(MnHaKey {
        spi: SPI,
        key: key.to_vec(),
    });
    c.lifetime_units = 30;
    Registration::new(c, clock.at(0), initial_sequence)
}

/// The world between the agent and the appliance: every BU the agent sends goes to the
/// registrar, every BA comes back; returns the registrar's events and the agent's logs.
#[derive(Default)]
struct Exchange {
    events: Vec<MemberEvent>,
    verdicts: Vec<Verdict>,
    agent_logs: Vec<String>,
}

fn pump(reg: &mut Registrar, agent: &mut Registration, now: Now, actions: Vec<Action>) -> Exchange {
    let mut ex = Exchange::default();
    let mut queue = actions;
    // Answers may cause further BUs (a 135 resync); keep going until quiet.
    for _ in 0..10 {
        let mut next = Vec::new();
        for action in queue {
            match action {
                Action::Log(l) => ex.agent_logs.push(l),
                Action::Deliver(_) => panic!("registration delivers no datagrams"),
                Action::Send(bu) => {
                    let ip = Ipv6Packet::new_checked(&bu[..]).unwrap();
                    let chain = ExtHeaderChain::of_packet(&ip).unwrap();
                    let rx = ReceivedMh {
                        src: ip.src_addr(),
                        dst: ip.dst_addr(),
                        home_address: chain.home_address,
                        mh: chain.upper_layer_bytes(ip.payload()).unwrap(),
                        mh_offset: 40 + chain.upper_offset,
                    };
                    let out = reg.on_mobility_header(registrar_now(now), &rx);
                    ex.events.extend(out.events.iter().copied());
                    ex.verdicts.push(out.verdict);
                    if let Some(Reply::Packet(ba)) = out.reply {
                        next.extend(agent.on_packet(now, &ba));
                    }
                }
            }
        }
        if next.is_empty() {
            break;
        }
        queue = next;
    }
    ex
}

fn phase(agent: &Registration, now: Now) -> Phase {
    agent.status(now)[0].phase
}

#[test]
fn register_refresh_report_load_and_drain() {
    let clock = Clock {
        base: Instant::now(),
    };
    let mut reg = registrar();
    let mut agent = agent(&clock, KEY, 7);
    agent.set_load(clock.at(0), Some(LoadReport::Weight(40)));

    // Registration with RFC 4285 authentication.
    let t = clock.at(0);
    let actions = agent.on_timer(t);
    let ex = pump(&mut reg, &mut agent, t, actions);
    assert_eq!(ex.verdicts, [Verdict::Accepted(Accepted::Registered)]);
    assert!(matches!(
        ex.events[..],
        [MemberEvent::Joined { service: s, care_of: c, weight: 40, lifetime, .. }]
            if s == service() && c == coa() && lifetime == Duration::from_secs(120)
    ));
    assert_eq!(phase(&agent, t), Phase::Registered);
    let st = &agent.status(t)[0];
    assert_eq!(st.granted_s, Some(120));
    let last = st.last_ba.as_ref().unwrap();
    assert_eq!(last.status, 0);
    assert!(
        last.authenticated,
        "the appliance's BA is MN-HA authenticated"
    );
    assert_eq!(reg.members(&service())[0].weight, 40);

    // Refresh at the appliance's Binding Refresh Advice (80 % of 30 units = 24 units).
    let refresh_at = agent.next_timer().unwrap();
    assert_eq!(refresh_at, clock.at(96).mono);
    let t = clock.at(96);
    let actions = agent.on_timer(t);
    let ex = pump(&mut reg, &mut agent, t, actions);
    assert_eq!(ex.verdicts, [Verdict::Accepted(Accepted::Refreshed)]);
    assert!(matches!(ex.events[..], [MemberEvent::Refreshed { .. }]));
    assert_eq!(phase(&agent, t), Phase::Registered);
    assert_eq!(agent.status(t)[0].lifetime_left_s, Some(120));

    // A load report moves the member's weight (weight = 101 - load percent).
    let t = clock.at(110);
    let actions = agent.set_load(t, Some(LoadReport::LoadPercent(30)));
    let ex = pump(&mut reg, &mut agent, t, actions);
    assert!(
        ex.events.iter().any(|e| matches!(
            e,
            MemberEvent::WeightChanged {
                old: 40,
                new: 71,
                ..
            }
        )),
        "{:?}",
        ex.events
    );
    assert_eq!(reg.members(&service())[0].weight, 71);

    // SIGTERM: lifetime-0 BU, BA, member gone.
    let t = clock.at(120);
    let actions = agent.drain(t);
    let ex = pump(&mut reg, &mut agent, t, actions);
    assert_eq!(ex.verdicts, [Verdict::Accepted(Accepted::Deregistered)]);
    assert!(matches!(
        ex.events[..],
        [MemberEvent::Left {
            reason: LeaveReason::Deregistered,
            ..
        }]
    ));
    assert!(agent.is_drained());
    assert!(reg.members(&service()).is_empty());
}

#[test]
fn wrong_key_is_refused_with_129_in_words() {
    let clock = Clock {
        base: Instant::now(),
    };
    let mut reg = registrar();
    let mut agent = agent(&clock, [0x11; 16], 1);
    let t = clock.at(0);
    let actions = agent.on_timer(t);
    let ex = pump(&mut reg, &mut agent, t, actions);
    assert!(matches!(ex.verdicts[..], [Verdict::Rejected(_)]));
    assert!(ex.events.is_empty());
    assert!(
        ex.agent_logs.iter().any(
            |l| l.contains("status=129") && l.contains("meaning=\"administratively prohibited")
        ),
        "{:?}",
        ex.agent_logs
    );
    assert_eq!(phase(&agent, t), Phase::Rejected);
    assert!(reg.members(&service()).is_empty());
    // The retry goes out after the back-off and is refused again; nothing joins.
    let t = clock.at_ms(1_500);
    let actions = agent.on_timer(t);
    let ex = pump(&mut reg, &mut agent, t, actions);
    assert_eq!(ex.verdicts.len(), 1);
    assert!(ex.events.is_empty());
}

#[test]
fn restarted_agent_resyncs_its_sequence_number() {
    let clock = Clock {
        base: Instant::now(),
    };
    let mut reg = registrar();
    // An earlier incarnation registered with high sequence numbers and was killed.
    let mut old = agent(&clock, KEY, 10_000);
    let t = clock.at(0);
    let actions = old.on_timer(t);
    pump(&mut reg, &mut old, t, actions);
    assert_eq!(reg.members(&service()).len(), 1);

    let mut new = agent(&clock, KEY, 3);
    let t = clock.at(5);
    let actions = new.on_timer(t);
    let ex = pump(&mut reg, &mut new, t, actions);
    // 3 is not newer than 10000 (RFC 6275 §9.5.1, modulo 2^16) → 135 carrying 10000 →
    // the agent continues at 10001.
    assert!(ex
        .agent_logs
        .iter()
        .any(|l| l.contains("status=135") && l.contains("sequence number out of window")));
    assert_eq!(ex.verdicts.len(), 2);
    assert_eq!(ex.verdicts[1], Verdict::Accepted(Accepted::Refreshed));
    assert_eq!(phase(&new, t), Phase::Registered);
    assert_eq!(new.status(t)[0].sequence, 10_001);
}

fn bid_agent(clock: &Clock, care_of: Ipv6Addr, bid: u16, initial_sequence: u16) -> Registration {
    let mut c = RegistrationConfig::new(ha(), care_of, vec![service()]);
    c.auth = Some(MnHaKey {
        spi: SPI,
        key: KEY.to_vec(),
    });
    c.bid = Some(bid);
    Registration::new(c, clock.at(0), initial_sequence)
}

#[test]
fn binding_identifier_keeps_the_member_across_a_care_of_change() {
    let clock = Clock {
        base: Instant::now(),
    };
    let mut reg = registrar();
    let mut first = bid_agent(&clock, coa(), 1, 100);
    let t = clock.at(0);
    let actions = first.on_timer(t);
    let ex = pump(&mut reg, &mut first, t, actions);
    let Some(MemberEvent::Joined { id, epoch, .. }) = ex.events.first().copied() else {
        panic!("no join: {:?}", ex.verdicts);
    };

    // The same member (BID 1) comes back from another address: same id and epoch, new
    // care-of address (RFC 5648: the BID, not the address, names the binding).
    let moved = a("2001:db8:100::20");
    let mut second = bid_agent(&clock, moved, 1, 101);
    let t = clock.at(2);
    let actions = second.on_timer(t);
    let ex = pump(&mut reg, &mut second, t, actions);
    assert!(
        matches!(
            ex.events[..],
            [MemberEvent::Refreshed { care_of, id: i, epoch: e, .. }]
                if care_of == moved && i == id && e == epoch
        ),
        "{:?}",
        ex.events
    );
    assert_eq!(reg.members(&service()).len(), 1);
    assert_eq!(reg.members(&service())[0].care_of, moved);

    // Another BID on the same care-of address and service: the data plane tells members
    // apart by (service, care-of), so the appliance refuses it with 128, which the agent
    // logs in words.
    let mut third = bid_agent(&clock, moved, 2, 1);
    let t = clock.at(4);
    let actions = third.on_timer(t);
    let ex = pump(&mut reg, &mut third, t, actions);
    assert!(ex.events.is_empty());
    assert!(
        ex.agent_logs
            .iter()
            .any(|l| l.contains("status=128") && l.contains("meaning=\"reason unspecified")),
        "{:?}",
        ex.agent_logs
    );
    assert_eq!(phase(&third, t), Phase::Rejected);
}
