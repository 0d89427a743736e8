"""Health checks under traffic, through a real DPDK port (net_af_packet on a veth pair).

The appliance runs in a network namespace on one end of a veth pair; this test sits on the
other end with a raw socket and plays both the clients and three members: it sends client
flows to the service, sees which member each flow is tunnelled to, and answers the
appliance's ICMPv6 echo probes for the members that are alive. Then one member stops
answering. Checked: the appliance reports it down (the measured detection time is printed),
afterwards no new flow is tunnelled to it, the established flows of the other members stay
where they were, and the dead member's flows are re-placed on live members.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.sendrecv import conf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "e2e"))
from topology import LogReader  # noqa: E402

SVC = "2001:db8:100::1"
TUNNEL = "2001:db8:ff::1"
MEMBERS = ["2001:db8:2::10", "2001:db8:2::11", "2001:db8:2::12"]
DEAD = MEMBERS[1]
LB_MAC, EMU_MAC = "02:00:00:00:00:01", "02:00:00:00:00:fe"
INTERVAL_MS, TIMEOUT_MS, FALL = 100, 80, 3

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root and iproute2 for a network namespace")

CONFIG = f"""
[appliance]
tunnel_address = "{TUNNEL}"
[[ports]]
name = "uplink"
device = "net_af_packet0,iface=lb0"
mac = "{LB_MAC}"
next_hop_mac = "{EMU_MAC}"
[[services]]
address = "{SVC}"
affinity = "flow"
[services.health]
kind = "echo"
interval_ms = {INTERVAL_MS}
timeout_ms = {TIMEOUT_MS}
rise = 2
fall = {FALL}
""" + "".join(f'[[services.members]]\ncare_of = "{m}"\n' for m in MEMBERS) + """
[admin]
socket = ""
"""


class Emulator:
    """Clients and members on the far end of the veth pair."""

    def __init__(self, iface):
        self.sock = conf.L2socket(iface=iface)
        self.alive = set(MEMBERS)
        self.placed = {}  # client source port -> list of (time, member care-of)
        self.lock = threading.Lock()
        self.stop = False
        self.probes_answered = {m: 0 for m in MEMBERS}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                pkt = self.sock.recv()
            except OSError:  # the veth went away at the end of the test
                return
            if pkt is None or IPv6 not in pkt:
                continue
            ip = pkt[IPv6]
            if ip.nh == 41 and ip.src == TUNNEL and ip.dst in MEMBERS:
                inner = ip.payload
                if isinstance(inner, IPv6) and UDP in inner and inner.dst == SVC:
                    with self.lock:
                        self.placed.setdefault(inner[UDP].sport, []).append((time.monotonic(), ip.dst))
            elif ICMPv6EchoRequest in pkt and ip.src == TUNNEL and ip.dst in MEMBERS:
                if ip.dst in self.alive:
                    req = pkt[ICMPv6EchoRequest]
                    self.sock.send(Ether(src=EMU_MAC, dst=LB_MAC) / IPv6(src=ip.dst, dst=ip.src)
                                   / ICMPv6EchoReply(id=req.id, seq=req.seq, data=req.data))
                    self.probes_answered[ip.dst] += 1

    def send_flows(self, ports):
        for sport in ports:
            self.sock.send(Ether(src=EMU_MAC, dst=LB_MAC)
                           / IPv6(src="2001:db8:77::1", dst=SVC) / UDP(sport=sport, dport=9999) / Raw(b"x" * 32))

    def member_of(self, sport, after=0.0):
        with self.lock:
            seen = [m for t, m in self.placed.get(sport, []) if t >= after]
        return seen[-1] if seen else None

    def members_since(self, sport, after):
        with self.lock:
            return {m for t, m in self.placed.get(sport, []) if t >= after}


@pytest.fixture(scope="module")
def run(tmp_path_factory, anycast6_bin):
    tmp = tmp_path_factory.mktemp("health")
    ns = f"a6h{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "link", "add", "emu0", "type", "veth", "peer", "name", "lb0", "netns", ns], check=True)
        for cmd in (["ip", "link", "set", "emu0", "address", EMU_MAC],
                    ["sysctl", "-qw", "net.ipv6.conf.emu0.disable_ipv6=1"],
                    ["ip", "link", "set", "emu0", "up"],
                    ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.lb0.disable_ipv6=1"],
                    ["ip", "-n", ns, "link", "set", "lb0", "address", LB_MAC],
                    ["ip", "-n", ns, "link", "set", "lb0", "up"]):
            subprocess.run(cmd, check=True)
        cfg = tmp / "anycast6.toml"
        cfg.write_text(CONFIG)
        emu = Emulator("emu0")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, str(anycast6_bin), "run", "--config", str(cfg),
                                 "--duration", "40", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        log = LogReader(proc.stderr)
        try:
            log.wait_for(lambda l: "event=started" in l, 30)
            time.sleep(0.5)  # a few probe rounds: everyone up
            established = list(range(1000, 1060))
            for _ in range(5):
                emu.send_flows(established)
                time.sleep(0.05)
            time.sleep(0.2)
            before = {p: emu.member_of(p) for p in established}
            # The member dies: it stops answering probes (its traffic is still counted
            # here, to see what the appliance sends it).
            died = time.monotonic()
            emu.alive.discard(DEAD)
            new_ports = iter(range(2000, 60000))
            stop_traffic = threading.Event()

            def traffic():
                while not stop_traffic.is_set():
                    emu.send_flows(established + [next(new_ports) for _ in range(5)])
                    time.sleep(0.05)

            t = threading.Thread(target=traffic, daemon=True)
            t.start()
            down_at, line, _ = log.wait_for(lambda l: "event=member_down" in l and DEAD in l, 20)
            time.sleep(0.3)  # the new snapshot is in use
            settled = time.monotonic()
            time.sleep(0.7)
            stop_traffic.set()
            t.join()
            after_ports = [p for p in range(2000, 60000) if emu.members_since(p, settled)]
            result = dict(before=before, died=died, down_at=down_at, settled=settled, emu=emu,
                          established=established, after_ports=after_ports, down_line=line)
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=60)
            emu.stop = True
        result["returncode"] = proc.returncode
        result["log"] = log.text()
        yield result
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", "emu0"], capture_output=True)


def test_member_is_detected_down(run):
    assert run["returncode"] == 0, run["log"]
    detection = run["down_at"] - run["died"]
    bound = (INTERVAL_MS * FALL + INTERVAL_MS) / 1000
    print(f"\ndetection time {detection * 1000:.0f} ms (bound interval x fall + interval = {bound * 1000:.0f} ms)")
    assert "reason=timeout" in run["down_line"]
    assert run["emu"].probes_answered[MEMBERS[0]] > 0


def test_all_three_members_had_flows_before(run):
    assert set(run["before"].values()) == set(MEMBERS), run["before"]


def test_no_new_flow_goes_to_the_dead_member(run):
    emu = run["emu"]
    assert len(run["after_ports"]) >= 20
    for p in run["after_ports"]:
        assert emu.members_since(p, run["settled"]) <= set(MEMBERS) - {DEAD}, p


def test_established_flows_of_live_members_stay(run):
    emu = run["emu"]
    for p, member in run["before"].items():
        now = emu.members_since(p, run["settled"])
        if member != DEAD:
            assert now == {member}, (p, member, now)
        else:
            # Re-placed on a live member.
            assert now and DEAD not in now, (p, now)
