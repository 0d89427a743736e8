"""Home registration through real DPDK devices, checked by scapy and Python's hmac.

Binding Updates built by scapy (the RFC 4285 MN-HA authenticator computed here with
`hmac`, independently of our Rust code) are replayed into `anycast6 run` on a `net_pcap`
port. The Binding Acknowledgements the appliance sends are decoded by scapy and checked
field by field: addressing (RFC 6275 §9.5.4: to the BU's source, Type 2 routing header with
the home address), status, sequence number, lifetime, Binding Refresh Advice, checksum
(recomputed by scapy), and for authenticated BUs the echoed Replay Protection timestamp and
the BA's own MN-HA authenticator (RFC 4285 §5.1, §6).
"""

import hashlib
import hmac
import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from scapy.layers.inet6 import (
    HAO,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_BA,
    MIP6MH_BU,
    MIP6OptBRAdvice,
    MIP6OptMsgAuth,
    MIP6OptReplayProtection,
)
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

PORT_MAC = "02:00:00:00:00:01"
ROUTER_MAC = "02:00:00:00:00:fe"
HA = "2001:db8:ff::1"
SVC = "2001:db8:100::1"
CLOSED = "2001:db8:100::2"
TRUSTED = "2001:db8:3::"
SPI = 256
KEY = bytes(range(1, 21))
MAX_LIFETIME_UNITS = 40  # max_lifetime = 160 s
NTP_EPOCH_OFFSET = 2208988800


def ntp_now(offset=0.0):
    t = time.time() + offset + NTP_EPOCH_OFFSET
    return (int(t) << 32) | int((t % 1) * (1 << 32))


def mh_of(pkt):
    for layer in (MIP6MH_BU, MIP6MH_BA):
        if layer in pkt:
            return pkt[layer]
    raise AssertionError("no mobility header")


def mn_ha_authenticator(key, coa, hoa, mh_bytes):
    """RFC 4285 §5.1: First(96, HMAC_SHA1(key, CoA | HoA | MH data)); MH data is the MH up
    to and including the SPI, with the checksum field zero."""
    data = bytearray(mh_bytes)
    data[4:6] = b"\x00\x00"
    assert data[-19] == 9 and data[-18] == 17, "the authentication option must be last"
    covered = bytes(data[:-12])
    return hmac.new(key, ipaddress.IPv6Address(coa).packed + ipaddress.IPv6Address(hoa).packed
                    + covered, hashlib.sha1).digest()[:12]


def bu(coa, hoa=SVC, seq=1, lifetime=10, key=None, spi=SPI, timestamp=None, home=True):
    """An Ethernet frame carrying a home-registration BU from `coa` for `hoa`."""
    flags = "AH" if home else "A"
    options = []
    if key is not None:
        options.append(MIP6OptReplayProtection(timestamp=ntp_now() if timestamp is None else timestamp))
        options.append(MIP6OptMsgAuth(subtype=1, mspi=spi, authdata=b"\x00" * 12))
    mh = MIP6MH_BU(seq=seq, flags=flags, mhtime=lifetime, options=options)
    if key is not None:
        raw = bytes(MIP6MH_BU(bytes(mh)))  # lengths and padding resolved
        auth = mn_ha_authenticator(key, coa, hoa, raw)
        mh = MIP6MH_BU(raw[:-12] + auth)
        mh.cksum = None
    return (Ether(src=ROUTER_MAC, dst=PORT_MAC)
            / IPv6(src=coa, dst=HA)
            / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)])
            / mh)


def cases():
    """(name, frame, expected BA fields). Order matters: the appliance keeps state."""
    t = ntp_now()
    c = [
        ("trusted_register", bu(TRUSTED + "10", seq=100, lifetime=10),
         dict(status=0, seq=100, lifetime=10, refresh=8)),
        ("trusted_lifetime_capped", bu(TRUSTED + "11", seq=1, lifetime=1000),
         dict(status=0, seq=1, lifetime=MAX_LIFETIME_UNITS, refresh=32)),
        ("sequence_out_of_window_135", bu(TRUSTED + "10", seq=99, lifetime=10),
         dict(status=135, seq=100)),
        ("refresh_accepted", bu(TRUSTED + "10", seq=101, lifetime=10),
         dict(status=0, seq=101, lifetime=10)),
        ("not_home_subnet_132", bu(TRUSTED + "12", hoa="2001:db8:100::9"),
         dict(status=132)),
        ("registration_closed_131", bu(TRUSTED + "12", hoa=CLOSED),
         dict(status=131)),
        ("untrusted_without_auth_129", bu("2001:db8:9::1"),
         dict(status=129)),
        ("authenticated_register", bu("2001:db8:9::2", seq=7, key=KEY, timestamp=t),
         dict(status=0, seq=7, lifetime=10, auth=True, timestamp=t)),
        ("replayed_timestamp_129", bu("2001:db8:9::2", seq=8, key=KEY, timestamp=t),
         dict(status=129)),
        ("wrong_key_129", bu("2001:db8:9::3", key=b"\x55" * 20),
         dict(status=129)),
        ("unknown_spi_129", bu("2001:db8:9::4", key=KEY, spi=999),
         dict(status=129)),
        ("stale_timestamp_129", bu("2001:db8:9::5", key=KEY, timestamp=ntp_now(-3600)),
         dict(status=129)),
        ("deregister_unknown_133", bu(TRUSTED + "13", seq=5, lifetime=0),
         dict(status=133)),
        ("deregister", bu(TRUSTED + "11", seq=2, lifetime=0),
         dict(status=0, seq=2, lifetime=0)),
    ]
    return c


CONFIG = """
[appliance]
tunnel_address = "{ha}"
[[ports]]
name = "uplink"
device = "net_pcap0,rx_pcap={rx},tx_pcap={tx}"
mac = "{port_mac}"
next_hop = "fe80::1"
next_hop_mac = "{router_mac}"
[[services]]
address = "{svc}"
[[services.members]]
care_of = "2001:db8:2::10"
[[services]]
address = "{closed}"
accept_registrations = false
[registration]
trusted_prefixes = ["2001:db8:3::/64"]
key_file = "{keys}"
max_lifetime = 160
[admin]
socket = ""
"""


@pytest.fixture(scope="module")
def exchange(tmp_path_factory, anycast6_bin):
    tmp = tmp_path_factory.mktemp("registration")
    keys = tmp / "keys.toml"
    keys.write_text(f'[[keys]]\nspi = {SPI}\nkey = "{KEY.hex()}"\n')
    os.chmod(keys, 0o600)
    rx, tx = tmp / "in.pcap", tmp / "out.pcap"
    c = cases()
    wrpcap(str(rx), [frame for _, frame, _ in c])
    cfg = tmp / "anycast6.toml"
    cfg.write_text(CONFIG.format(ha=HA, rx=rx, tx=tx, port_mac=PORT_MAC, router_mac=ROUTER_MAC,
                                 svc=SVC, closed=CLOSED, keys=keys))
    run = subprocess.run([str(anycast6_bin), "run", "--config", str(cfg), "--duration", "2", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = [p for p in rdpcap(str(tx)) if MIP6MH_BA in p]
    return dict(cases=c, bas=out, counters=json.loads(run.stdout), stderr=run.stderr)


def test_one_ba_per_bu_in_order(exchange):
    # A BA is sent whatever the A bit says (RFC 6275 §10.3.1); the control thread answers
    # in arrival order.
    assert len(exchange["bas"]) == len(exchange["cases"]), exchange["stderr"]


@pytest.mark.parametrize("index", range(len(cases())))
def test_ba_fields(exchange, index):
    name, frame, want = exchange["cases"][index]
    ba_pkt = exchange["bas"][index]
    coa = frame[IPv6].src
    hoa = frame[HAO].hoa
    # Addressing: from the home agent address to the BU's source, through the router that
    # delivered it, with the home address in a Type 2 routing header (§9.5.4, §6.4).
    assert ba_pkt[Ether].src == PORT_MAC and ba_pkt[Ether].dst == ROUTER_MAC
    assert ba_pkt[IPv6].src == HA and ba_pkt[IPv6].dst == coa, name
    rh = ba_pkt[IPv6ExtHdrRouting]
    assert rh.type == 2 and rh.segleft == 1 and rh.addresses == [hoa], name
    ba = ba_pkt[MIP6MH_BA]
    assert ba.status == want["status"], f"{name}: status {ba.status}"
    if "seq" in want:
        assert ba.seq == want["seq"], name
    if "lifetime" in want:
        assert ba.mhtime == want["lifetime"], name
    if "refresh" in want:
        advice = [o for o in ba.options if isinstance(o, MIP6OptBRAdvice)]
        assert advice and advice[0].rinter == want["refresh"], name
    # Checksum: scapy recomputes it (pseudo-header destination = the home address, RH2 rule).
    sent = ba.cksum
    again = IPv6(bytes(ba_pkt[IPv6]))
    del again[MIP6MH_BA].cksum
    assert IPv6(bytes(again))[MIP6MH_BA].cksum == sent, name
    if want.get("auth"):
        replay = [o for o in ba.options if isinstance(o, MIP6OptReplayProtection)]
        assert replay and replay[0].timestamp == want["timestamp"], "timestamp echoed (RFC 4285 §6)"
        raw = bytes(ba)[: (bytes(ba)[1] + 1) * 8]
        assert raw[-19] == 9 and int.from_bytes(raw[-16:-12], "big") == SPI
        assert raw[-12:] == mn_ha_authenticator(KEY, coa, hoa, raw), "BA MN-HA authenticator"


def test_registration_counters(exchange):
    c = exchange["counters"]
    assert c["ba_sent"] == len(exchange["cases"])
    assert "event=member_joined" in exchange["stderr"]
    assert "event=member_draining" in exchange["stderr"], "lifetime 0 drains the member"
