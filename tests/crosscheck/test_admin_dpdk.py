"""The admin socket, `anycast6 ctl` and the Prometheus endpoint against a running appliance.

`anycast6 run` forwards endless client traffic (`net_pcap` with `infinite_rx=1` into
`net_null`) while the test drives it with the real `anycast6 ctl` binary and scrapes
`/metrics` over HTTP: every command answers, drain/undrain change what the data plane uses,
errors are errors (exit status 1, a reason), and the per-member counters move.
"""

import json
import os
import subprocess
import time
import urllib.request

import pytest
from runlog import ctl_for, start_with_metrics, stop
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

SVC = "2001:db8:100::1"
M10, M11 = "2001:db8:2::10", "2001:db8:2::11"

CONFIG = """
[appliance]
tunnel_address = "2001:db8:ff::1"
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
[[services]]
address = "2001:db8:100::1"
affinity = "flow"
port = "members"
drain_timeout = 60
[[services.members]]
care_of = "2001:db8:2::10"
[[services.members]]
care_of = "2001:db8:2::11"
[registration]
trusted_prefixes = ["2001:db8:3::/64"]
[admin]
socket = "{socket}"
metrics = "127.0.0.1:0"
"""


@pytest.fixture(scope="module")
def appliance(tmp_path_factory, anycast6_bin):
    tmp = tmp_path_factory.mktemp("admin")
    traffic = tmp / "traffic.pcap"
    wrpcap(str(traffic), [
        Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:00:01")
        / IPv6(src=f"2001:db8:77::{i + 1:x}", dst=SVC) / UDP(sport=40000 + i, dport=9999) / Raw(b"x" * 64)
        for i in range(512)
    ])
    socket = tmp / "run" / "admin.sock"
    cfg = tmp / "anycast6.toml"
    cfg.write_text(CONFIG.format(traffic=traffic, socket=socket))
    proc, metrics = start_with_metrics(anycast6_bin, cfg, 30)
    time.sleep(1.0)  # let traffic and the per-member counters (published every 100 ms) flow
    yield dict(ctl=ctl_for(anycast6_bin, socket), socket=socket, metrics=metrics, proc=proc)
    stop(proc)
    assert not socket.exists(), "the socket is removed on exit"


def test_socket_is_owner_only(appliance):
    assert oct(os.stat(appliance["socket"]).st_mode & 0o777) == "0o600"


def test_status(appliance):
    r = appliance["ctl"]("status")
    assert r.stdout.startswith("anycast6 ")
    assert "PORT" in r.stdout and "clients" in r.stdout
    d = json.loads(appliance["ctl"]("--json", "status").stdout)
    assert d["workers"] == 1 and d["members"] == 2 and d["rx_packets"] > 0


def test_services_and_members_move(appliance):
    services = json.loads(appliance["ctl"]("--json", "services").stdout)
    assert services[0]["address"] == SVC and services[0]["members_active"] == 2
    members = json.loads(appliance["ctl"]("--json", "members").stdout)
    assert {m["care_of"] for m in members} == {M10, M11}
    assert all(m["state"] == "active" and m["health"] == "unchecked" for m in members)
    assert all(m["packets"] > 0 and m["flows"] > 0 for m in members), members
    table = appliance["ctl"]("members", "--service", SVC).stdout
    assert table.splitlines()[0].split()[:3] == ["SERVICE", "CARE-OF", "ID.EPOCH"]


def test_drain_and_undrain(appliance):
    ctl = appliance["ctl"]
    generation = json.loads(ctl("--json", "status").stdout)["snapshot_generation"]
    msg = ctl("drain", SVC, M10).stdout
    assert "draining member 2001:db8:2::10" in msg
    state = {m["care_of"]: m for m in json.loads(ctl("--json", "members").stdout)}
    assert state[M10]["state"] == "draining" and state[M10]["drain_left_s"] <= 60
    assert state[M11]["state"] == "active"
    # The drain reached the data plane as a new snapshot.
    assert json.loads(ctl("--json", "status").stdout)["snapshot_generation"] == generation + 1
    ctl("undrain", SVC, M10)
    state = {m["care_of"]: m for m in json.loads(ctl("--json", "members").stdout)}
    assert state[M10]["state"] == "active"
    r = ctl("undrain", SVC, M10, check=False)
    assert r.returncode == 1 and "not draining" in r.stderr
    r = ctl("drain", SVC, "2001:db8:2::99", check=False)
    assert r.returncode == 1 and "has no member" in r.stderr


def test_bindings_stats_reload(appliance):
    ctl = appliance["ctl"]
    assert json.loads(ctl("--json", "bindings").stdout) == {"home": [], "route_optimised": []}
    stats = json.loads(ctl("--json", "stats").stdout)
    assert stats["dataplane"]["rx_packets"] > 0
    assert len(stats["workers"][0]["burst_sizes"]) == 33
    assert sum(stats["workers"][0]["burst_sizes"]) > 0
    assert "BURST-P50" in ctl("stats").stdout
    assert "reloaded" in ctl("reload").stdout


def test_metrics_endpoint(appliance):
    body = urllib.request.urlopen(f"http://{appliance['metrics']}/metrics", timeout=10).read().decode()
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            samples[series] = float(value)
    key = f'anycast6_member_packets_total{{service="{SVC}",care_of="{M10}",id="2147483648"}}'
    assert samples.get(key, 0) > 0, [k for k in samples if "member_packets" in k]
    assert samples['anycast6_dataplane_total{counter="rx_packets"}'] > 0
    assert samples['anycast6_worker_rx_burst_size_count{worker="0"}'] > 0
    assert f'anycast6_service_members{{service="{SVC}",state="active"}}' in samples
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://{appliance['metrics']}/nothing", timeout=10)


def test_second_appliance_on_the_same_socket_is_refused(appliance, anycast6_bin, tmp_path):
    cfg = tmp_path / "second.toml"
    cfg.write_text(f"""
[appliance]
tunnel_address = "2001:db8:ff::1"
[[ports]]
name = "p"
device = "net_null1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[[services]]
address = "{SVC}"
[[services.members]]
care_of = "{M10}"
[admin]
socket = "{appliance['socket']}"
""")
    r = subprocess.run([str(anycast6_bin), "run", "--config", str(cfg), "--duration", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "another appliance is answering" in r.stderr
