"""An idle appliance still lets go of replaced snapshots.

A worker takes the newest snapshot after each RX burst; when nothing arrives it must take
it anyway, or it keeps reporting its old generation and the control thread can never free
what it replaced (docs/architecture.md, the RCU scheme). The test runs `anycast6 run` with
no traffic at all (`net_null` with `no-rx=1` on both ports), publishes 20 snapshots
through `anycast6 ctl drain`/`undrain`, and reads `snapshots_retained` from `ctl status`
and from `/metrics`.
"""

import json
import time
import urllib.request

import pytest
from runlog import ctl_for, start_with_metrics, stop

SVC = "2001:db8:100::1"
M10 = "2001:db8:2::10"
ROUNDS = 10

CONFIG = """
[appliance]
tunnel_address = "2001:db8:ff::1"
[[ports]]
name = "clients"
device = "net_null0,no-rx=1"
mac = "02:00:00:00:00:01"
next_hop_mac = "02:00:00:00:00:fe"
[[ports]]
name = "members"
device = "net_null1,no-rx=1"
mac = "02:00:00:00:00:02"
next_hop_mac = "02:00:00:00:00:fd"
[[services]]
address = "2001:db8:100::1"
port = "members"
[[services.members]]
care_of = "2001:db8:2::10"
[[services.members]]
care_of = "2001:db8:2::11"
[admin]
socket = "{socket}"
metrics = "127.0.0.1:0"
"""


@pytest.fixture(scope="module")
def idle(tmp_path_factory, anycast6_bin):
    tmp = tmp_path_factory.mktemp("idle")
    socket = tmp / "admin.sock"
    cfg = tmp / "anycast6.toml"
    cfg.write_text(CONFIG.format(socket=socket))
    proc, metrics = start_with_metrics(anycast6_bin, cfg, 60)
    yield dict(ctl=ctl_for(anycast6_bin, socket), metrics=metrics)
    stop(proc)


def status(ctl):
    return json.loads(ctl("--json", "status").stdout)


def test_idle_workers_release_replaced_snapshots(idle):
    ctl = idle["ctl"]
    before = status(ctl)
    assert before["rx_packets"] == 0
    for _ in range(ROUNDS):
        ctl("drain", SVC, M10)
        ctl("undrain", SVC, M10)
    assert status(ctl)["snapshot_generation"] == before["snapshot_generation"] + 2 * ROUNDS
    # The control thread reclaims once per loop; the idle worker reports within a poll.
    deadline = time.time() + 5
    while (retained := status(ctl)["snapshots_retained"]) > 0 and time.time() < deadline:
        time.sleep(0.05)
    assert retained == 0, f"{retained} of {2 * ROUNDS} replaced snapshots still kept"
    text = urllib.request.urlopen(f"http://{idle['metrics']}/metrics", timeout=10).read().decode()
    samples = [l for l in text.splitlines() if l.startswith("anycast6_snapshots_retained ")]
    assert samples == ["anycast6_snapshots_retained 0"], samples
    assert status(ctl)["rx_packets"] == 0
