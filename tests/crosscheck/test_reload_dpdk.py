"""Configuration reload under traffic, on real DPDK devices.

Client traffic is replayed endlessly (`net_pcap`, `infinite_rx=1`) into `anycast6 run`, and
tunnelled out through `net_null`. While it flows the test rewrites the configuration file
and sends SIGHUP three times: a valid change (a member and a service added), a file that does
not validate, and a change that needs a restart. The valid one must be applied, the other two
must change nothing and say why, and no packet may be lost: every packet received is
forwarded (rx_packets == forwarded, no drop of any reason).
"""

import json
import signal
import subprocess
import time

import pytest
from runlog import wait_for
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

SVC = "2001:db8:100::1"

BASE = """
[appliance]
tunnel_address = "2001:db8:ff::1"
[dataplane]
workers = 1
[[ports]]
name = "clients"
device = "net_pcap0,rx_pcap={traffic},infinite_rx=1,tx_pcap=/dev/null"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[[ports]]
name = "members"
device = "net_null0,no-rx=1"
mac = "02:00:00:00:00:02"
next_hop_mac = "02:00:00:00:00:fd"
[admin]
socket = ""
[[services]]
address = "2001:db8:100::1"
port = "members"
maglev_size = {maglev}
[[services.members]]
care_of = "2001:db8:2::10"
[[services.members]]
care_of = "2001:db8:2::11"
"""

ADDED = """
[[services.members]]
care_of = "2001:db8:2::12"
[[services]]
address = "2001:db8:100::2"
port = "members"
[[services.members]]
care_of = "2001:db8:2::20"
"""


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory, anycast6_bin):
    tmp = tmp_path_factory.mktemp("reload")
    traffic = tmp / "traffic.pcap"
    wrpcap(str(traffic), [
        Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:00:01")
        / IPv6(src=f"2001:db8:77::{i + 1:x}", dst=SVC) / UDP(sport=40000 + i, dport=9999) / Raw(b"x" * 64)
        for i in range(256)
    ])
    cfg = tmp / "anycast6.toml"
    cfg.write_text(BASE.format(traffic=traffic, maglev=65537))
    proc = subprocess.Popen([str(anycast6_bin), "run", "--config", str(cfg), "--duration", "6", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        log = wait_for(proc, "event=started")
        time.sleep(0.5)
        cfg.write_text(BASE.format(traffic=traffic, maglev=65537) + ADDED)
        proc.send_signal(signal.SIGHUP)
        log += wait_for(proc, "event=reload_")
        time.sleep(0.5)
        cfg.write_text(BASE.format(traffic=traffic, maglev=1000))  # not prime: invalid
        proc.send_signal(signal.SIGHUP)
        log += wait_for(proc, "event=reload_")
        time.sleep(0.5)
        cfg.write_text(BASE.format(traffic=traffic, maglev=65537).replace("workers = 1", "workers = 2"))
        proc.send_signal(signal.SIGHUP)
        log += wait_for(proc, "event=reload_")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return dict(counters=json.loads(out), log="".join(log) + err)


def test_valid_reload_applied(reloaded):
    assert "event=reload_applied" in reloaded["log"]
    assert "+service 2001:db8:100::2" in reloaded["log"]
    assert reloaded["counters"]["reloads_ok"] == 1
    assert reloaded["counters"]["snapshots_published"] >= 2


def test_invalid_reloads_change_nothing_and_say_why(reloaded):
    refused = [l for l in reloaded["log"].splitlines() if "event=reload_refused" in l]
    assert len(refused) == 2, reloaded["log"]
    assert "maglev_size" in refused[0] and "not prime" in refused[0]
    assert "dataplane" in refused[1] and "restart" in refused[1]
    assert reloaded["counters"]["reloads_failed"] == 2


def test_no_packet_lost(reloaded):
    c = reloaded["counters"]
    drops = {k: v for k, v in c.items() if k.startswith("drop_") and v}
    assert c["rx_packets"] > 100_000, c
    assert drops == {}, drops
    assert c["forwarded"] == c["rx_packets"], c
    assert c["tx_full"] == 0 and c["exception_ring_full"] == 0, c
