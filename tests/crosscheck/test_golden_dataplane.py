"""The data plane on real DPDK devices against its offline twin.

A capture built by scapy goes through `anycast6 run` on a `net_pcap` port (EAL, mempool,
worker lcore, control thread) and through `anycast6 explain --out` (the same pipeline on
heap buffers, no DPDK). Both must send exactly the same frames, except the client's Home
Test, which the data plane hands to the control thread (return routability is pinned
there) and which only the running appliance relays; every frame sent must decode cleanly
in tshark and with our decoder, with checksums scapy agrees with.
"""

import json
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    MIP6MH_HoT,
    PadN,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

ROOT = Path(__file__).resolve().parents[2]
PORT_MAC = "02:00:00:00:00:01"
ROUTER_MAC = "02:00:00:00:00:fe"
S1, S2 = "2001:db8:100::1", "2001:db8:100::2"
HA = "2001:db8:ff::1"


def eth():
    return Ether(src=ROUTER_MAC, dst=PORT_MAC)


def traffic():
    """(what it exercises, frame) — every verdict of the pipeline at least once."""
    t = []
    for i in range(120):
        svc = S1 if i % 2 == 0 else S2
        t.append(("forward", eth() / IPv6(src=f"2001:db8:77::{i % 40 + 1:x}", dst=svc)
                  / UDP(sport=40000 + i % 9, dport=9999) / Raw(b"x" * 64)))
    t.append(("forward_hot", eth() / IPv6(src="2001:db8:77::5", dst=S1)
              / MIP6MH_HoT(index=3, cookie=b"\x11" * 8, token=b"\x22" * 8)))
    t.append(("forward_fragmented_at_1300", eth() / IPv6(src="2001:db8:77::6", dst=S1)
              / UDP(sport=5, dport=9999) / Raw(b"f" * (1280 - 48))))
    t.append(("reverse", eth() / IPv6(src="2001:db8:2::10", dst=HA)
              / IPv6(src=S1, dst="2001:db8:77::5") / UDP(sport=9999, dport=40000) / Raw(b"r" * 20)))
    t.append(("reverse_unregistered", eth() / IPv6(src="2001:db8:2::99", dst=HA)
              / IPv6(src=S1, dst="2001:db8:77::5") / UDP(sport=9999, dport=40000)))
    t.append(("ns", eth() / IPv6(src="fe80::fe", dst="ff02::1:ff00:1", hlim=255)
              / ICMPv6ND_NS(tgt=HA) / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC)))
    t.append(("echo", eth() / IPv6(src="2001:db8:77::5", dst=HA) / ICMPv6EchoRequest(id=7, seq=1, data=b"ping")))
    t.append(("hop_limit_1", eth() / IPv6(src="2001:db8:77::5", dst=S1, hlim=1) / UDP(sport=1, dport=9999)))
    t.append(("too_big", eth() / IPv6(src="2001:db8:77::5", dst=S1) / UDP(sport=2, dport=9999) / Raw(b"b" * 1400)))
    t.append(("encap_limit_0", eth() / IPv6(src="2001:db8:77::5", dst=S1)
              / IPv6ExtHdrDestOpt(options=[PadN(otype=4, optdata=b"\x00")]) / UDP(sport=3, dport=9999)))
    t.append(("not_for_us", eth() / IPv6(src="2001:db8:77::5", dst="2001:db8:55::1") / UDP(sport=4, dport=9999)))
    t.append(("malformed", Raw(bytes(eth() / IPv6(src="2001:db8:77::5", dst=S1))[:30])))
    return t


def config(tmp: Path, rx: Path, tx: Path) -> Path:
    text = (ROOT / "examples" / "basic.toml").read_text()
    text = text.replace("/tmp/anycast6-in.pcap", str(rx)).replace("/tmp/anycast6-out.pcap", str(tx))
    # A 1300-byte link: a 1280-byte client packet must leave as two outer fragments
    # (RFC 2473 §7.1 (b)), a 1300-byte one gets Packet Too Big.
    text = text.replace("mtu = 1500", "mtu = 1300")
    path = tmp / "golden.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def golden(tmp_path_factory, anycast6_bin):
    tmp = tmp_path_factory.mktemp("golden")
    rx, tx, offline = tmp / "in.pcap", tmp / "dpdk-out.pcap", tmp / "explain-out.pcap"
    t = traffic()
    wrpcap(str(rx), [p for _, p in t])
    cfg = config(tmp, rx, tx)
    explained = subprocess.run(
        [str(anycast6_bin), "explain", "--json", "--config", str(cfg), "--out", str(offline), str(rx)],
        check=True, capture_output=True, text=True,
    ).stdout
    run = subprocess.run(
        [str(anycast6_bin), "run", "--config", str(cfg), "--duration", "2", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    counters = json.loads(run.stdout)
    return {
        "names": [n for n, _ in t],
        "frames": t,
        "explain": [json.loads(line) for line in explained.splitlines()],
        "counters": counters,
        "dpdk": [bytes(p) for p in rdpcap(str(tx))],
        "offline": [bytes(p) for p in rdpcap(str(offline))],
        "tx": tx,
        "anycast6": anycast6_bin,
    }


MEMBERS_S1 = {"2001:db8:2::10", "2001:db8:2::11", "2001:db8:2::12"}


def relayed_mobility(frames):
    """The frames that are a Mobility Header tunnelled to a member (the control thread's)."""
    out = []
    for f in frames:
        p = Ether(f)
        if p.haslayer(IPv6) and p[IPv6].nh == 41 and isinstance(p[IPv6].payload, IPv6) \
                and p[IPv6].payload.nh == 135:
            out.append(f)
    return out


def test_dpdk_sends_exactly_what_explain_says(golden):
    assert golden["offline"], "explain produced no output"
    relayed = relayed_mobility(golden["dpdk"])
    rest = [f for f in golden["dpdk"] if f not in relayed]
    assert sorted(rest) == sorted(golden["offline"])
    # The HoT (unknown cookie: no member's HoTI seen) went once to one of S1's members,
    # tunnelled from the tunnel address with the inner hop limit decremented and the
    # Mobility Header intact.
    assert len(relayed) == 1, relayed
    outer = Ether(relayed[0])[IPv6]
    assert outer.src == HA and outer.dst in MEMBERS_S1
    hot = dict(golden["frames"])["forward_hot"]
    inner = bytes(outer.payload)
    sent = bytes(hot[IPv6])
    assert inner[:7] == sent[:7] and inner[7] == sent[7] - 1 and inner[8:] == sent[8:]


def test_verdicts_are_the_expected_ones(golden):
    by_name = dict(zip(golden["names"], golden["explain"]))
    assert all(by_name[n]["verdict"] == "forward" for n in golden["names"] if n == "forward")
    expect = {
        "forward_hot": ("local", "mobility_header"),
        "forward_fragmented_at_1300": ("forward", None),
        "reverse": ("reverse", None),
        "reverse_unregistered": ("drop", "reverse_unregistered"),
        "ns": ("local", "answered"),
        "echo": ("local", "answered"),
        "hop_limit_1": ("drop", "hop_limit_exceeded"),
        "too_big": ("drop", "too_big"),
        "encap_limit_0": ("drop", "encap_limit_exceeded"),
        "not_for_us": ("drop", "not_for_us"),
        "malformed": ("drop", "malformed_ipv6"),
    }
    for name, (verdict, reason) in expect.items():
        got = by_name[name]
        assert (got["verdict"], got["reason"] if reason else None) == (verdict, reason), (name, got)
    assert by_name["forward_fragmented_at_1300"]["output_frames"] == 2
    members = {e["member"] for e, n in zip(golden["explain"], golden["names"]) if n == "forward"}
    assert len(members) == 5, f"traffic should reach all five members, got {members}"


def test_dpdk_counters_match_the_traffic(golden):
    c = golden["counters"]
    n = len(golden["names"])
    assert c["rx_packets"] == n
    assert c["forwarded"] == 121 and c["reversed"] == 1 and c["exceptions"] == 3
    drops = sum(v for k, v in c.items() if k.startswith("drop_"))
    assert c["rx_packets"] == c["forwarded"] + c["reversed"] + c["exceptions"] + drops
    assert c["control_replies"] == 2
    # Every forwarded packet looked its flow up once; the table had room for all of them.
    assert c["affinity_hits"] + c["affinity_misses"] >= c["forwarded"] > 0
    assert c["affinity_misses"] > 0 and c["affinity_evictions"] == 0
    assert c["port.uplink"]["opackets"] == len(golden["dpdk"])


def test_output_decodes_cleanly(golden):
    # tshark: no malformed frame, no expert error.
    out = subprocess.run(["tshark", "-r", str(golden["tx"]), "-Y", "_ws.malformed || _ws.expert.severity == error",
                          "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"tshark flags frames {out.split()}"
    # Our decoder: no error, every verified checksum right.
    decoded = subprocess.run([str(golden["anycast6"]), "decode", "--json", str(golden["tx"])],
                             capture_output=True, text=True, check=True).stdout
    for line in decoded.splitlines():
        d = json.loads(line)
        assert "error" not in d, d
        assert d.get("checksum_ok", True) is True, d


def test_output_checksums_equal_scapys(golden):
    """Rebuild every unfragmented output frame in scapy with its checksums cleared."""
    checked = 0
    for frame in golden["dpdk"]:
        pkt = Ether(frame)
        if pkt.haslayer("IPv6ExtHdrFragment"):
            continue
        for layer in pkt.iterpayloads():
            if type(layer).__name__.startswith(("IPerror6", "UDPerror", "TCPerror")):
                break
            for f in ("cksum", "chksum"):
                if f in layer.fields:
                    layer.fields[f] = None
        assert bytes(pkt) == frame
        checked += 1
    assert checked >= 120
