"""End to end: real Linux clients and servers, the appliance on net_af_packet, agents.

The topology (e2e/topology.py) is built by the test itself in network namespaces: a client,
a router, the appliance, and four servers, each with an HTTP server on [::]:80 and the
service address on `lo`. Servers 0-2 run an authenticated anycast6-agent; server 3 is used
for agents that must be refused. The scenarios run in order on one topology and print what
they measured; everything is torn down at the end, also when a scenario fails.

Run as root: `.venv/bin/python -m pytest -q -s e2e` (scripts/test does).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import topology  # noqa: E402
from topology import APPLIANCE_ADDR, SERVICE, TUNNEL, Topology, care_of, sh  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPI = 256
KEY = "000102030405060708090a0b0c0d0e0f10111213"
HEALTH = dict(interval_ms=200, timeout_ms=150, fall=3, rise=2)

pytestmark = pytest.mark.skipif(not topology.have_root_and_tools(),
                                reason="needs root, iproute2 and ethtool for network namespaces")


def binaries():
    """The release binaries, built from this checkout (or ANYCAST6_BIN / ANYCAST6_AGENT_BIN)."""
    if os.environ.get("ANYCAST6_BIN") and os.environ.get("ANYCAST6_AGENT_BIN"):
        return Path(os.environ["ANYCAST6_BIN"]), Path(os.environ["ANYCAST6_AGENT_BIN"])
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "anycast6", "-p", "anycast6-agent"],
                   cwd=ROOT, check=True)
    meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                     check=True, capture_output=True, text=True).stdout)
    target = Path(meta["target_directory"]) / "release"
    return target / "anycast6", target / "anycast6-agent"


APPLIANCE_CONFIG = """
[appliance]
tunnel_address = "{tunnel}"
addresses = ["{addr}"]
[[ports]]
name = "uplink"
device = "net_af_packet0,iface=lb0"
next_hop = "fe80::1"
[[services]]
address = "{service}"
affinity = "flow"
drain_timeout = 30
[services.health]
kind = "tcp"
port = 80
interval_ms = {interval_ms}
timeout_ms = {timeout_ms}
rise = {rise}
fall = {fall}
[registration]
key_file = "{keys}"
max_lifetime = 120
[admin]
socket = "{socket}"
"""


class E2E:
    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.appliance_bin, self.agent_bin = binaries()
        self.topo = Topology(self.workdir, servers=4)
        self.keys = self.workdir / "keys.toml"
        self.keys.write_text(f'[[keys]]\nspi = {SPI}\nkey = "{KEY}"\n')
        os.chmod(self.keys, 0o600)
        self.socket = self.workdir / "admin.sock"

    def start(self):
        self.topo.up()
        cfg = self.workdir / "anycast6.toml"
        cfg.write_text(APPLIANCE_CONFIG.format(tunnel=TUNNEL, addr=APPLIANCE_ADDR, service=SERVICE,
                                               keys=self.keys, socket=self.socket, **HEALTH))
        self.topo.start("appliance", "lb", [self.appliance_bin, "run", "--config", cfg])
        self.log = self.topo.logs["appliance"]
        self.log.wait_for(lambda l: "event=started" in l, 60)
        for i in range(4):
            self.topo.start_http(i)
        for i in range(4):
            self.wait_listening(i)
        for i in range(3):
            self.start_agent(i)
        for i in range(3):
            self.log.wait_for(lambda l, i=i: "event=member_joined" in l and care_of(i) in l, 30)
        self.wait_members_active(3)

    def mark(self):
        """The index of the appliance's next log line: wait_for(start=mark) sees only newer ones."""
        with self.log.cond:
            return len(self.log.lines)

    def wait_listening(self, i, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ":80 " in self.topo.ns_run(f"s{i}", "ss", "-Hltn").stdout:
                return
            time.sleep(0.05)
        raise TimeoutError(f"no HTTP server listening on s{i}")

    def wait_members_active(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            members = self.members()
            if sum(1 for m in members.values() if m["state"] == "active") == n:
                return members
            time.sleep(0.1)
        raise TimeoutError(f"not {n} active members: {self.members()}")

    def start_agent(self, i, key_file=None, spi=SPI, extra=()):
        args = [self.agent_bin, "run", "--appliance", TUNNEL, "--care-of", care_of(i), "--service", SERVICE,
                "--interface", "e0", "--lifetime", "60", "--delivery", "seg6local",
                "--state-file", self.workdir / f"agent{i}.json", "--load-source", "fixed", "--weight", "100",
                "--drain-linger", "3",
                *extra]
        if key_file is not False:
            args += ["--spi", str(spi), "--key-file", key_file or self.keys]
        return self.topo.start(f"agent{i}", f"s{i}", args)

    def ctl(self, *args):
        r = sh(self.appliance_bin, "ctl", "--socket", self.socket, "--json", *args)
        return json.loads(r.stdout)

    def members(self):
        return {m["care_of"]: m for m in self.ctl("members")}

    def load(self, *args, timeout=120):
        """Runs httpload.py in the client namespace; returns its records."""
        r = self.topo.ns_run("client", sys.executable, ROOT / "e2e" / "httpload.py",
                             "--url", f"http://[{SERVICE}]/", *args, timeout=timeout)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def load_async(self, *args):
        return subprocess.Popen(["ip", "netns", "exec", self.topo.ns("client"), sys.executable,
                                 str(ROOT / "e2e" / "httpload.py"), "--url", f"http://[{SERVICE}]/", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def served_since(self, i, since):
        """Requests server i logged (http.server writes one stderr line per request) since `since`."""
        log = self.topo.logs.get(f"http{i}")
        if not log:
            return 0
        with log.cond:
            return sum(1 for t, l in log.lines if t >= since and '"GET /' in l)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    env = E2E(tmp_path_factory.mktemp("e2e"))
    try:
        env.start()
        yield env
    finally:
        if "appliance" in env.topo.logs:
            tail = env.topo.logs["appliance"].text().splitlines()[-40:]
            print("\n--- appliance log (tail) ---\n" + "\n".join(tail))
        env.topo.down()


HISTORY = []


def records(proc):
    out, _ = proc.communicate(timeout=180)
    recs = [json.loads(l) for l in out.splitlines() if l.strip()]
    HISTORY.extend(recs)
    return recs


def test_1_requests_spread_over_the_three_servers(e2e):
    recs = e2e.load("--count", "1000", "--rate", "400")
    HISTORY.extend(recs)
    failed = [r for r in recs if not r["ok"]]
    per = {f"s{i}": sum(1 for r in recs if r["server"] == f"s{i}") for i in range(3)}
    print(f"\n1000 requests: {len(failed)} failed, per server {per}")
    assert len(recs) == 1000 and not failed, failed[:5]
    for s, n in per.items():
        assert 1000 / 3 * 0.85 <= n <= 1000 / 3 * 1.15, per


def test_2_killed_server_is_detected_and_avoided(e2e):
    proc = e2e.load_async("--seconds", "8", "--rate", "100", "--timeout", "1")
    time.sleep(2)
    mark = e2e.mark()
    killed = time.monotonic()
    e2e.topo.stop("agent0", signal.SIGKILL)
    e2e.topo.stop("http0", signal.SIGKILL)
    t, line, _ = e2e.log.wait_for(lambda l: "event=member_down" in l and care_of(0) in l, 15, mark)
    detection = t - killed
    recs = records(proc)
    failed = [r for r in recs if not r["ok"]]
    after = [r for r in recs if r["start"] >= t]
    failed_after = [r for r in after if not r["ok"]]
    print(f"\nkill: detection {detection * 1000:.0f} ms ({line.split('reason=')[-1]}); "
          f"{len(recs)} requests, {len(failed)} failed, {len(after)} started after detection, "
          f"{len(failed_after)} of them failed")
    assert after and not failed_after, failed_after[:5]
    assert not any(r["server"] == "s0" for r in after)


def test_3_sigterm_drains_without_failures(e2e):
    proc = e2e.load_async("--seconds", "6", "--rate", "100")
    time.sleep(2)
    mark = e2e.mark()
    e2e.topo.stop("agent1", signal.SIGTERM)
    t, _, _ = e2e.log.wait_for(lambda l: "event=member_draining" in l and care_of(1) in l, 15, mark)
    recs = records(proc)
    failed = [r for r in recs if not r["ok"]]
    later = [r for r in recs if r["start"] >= t + 0.2]
    print(f"\ndrain: {len(recs)} requests, {len(failed)} failed; after the drain BA "
          f"{sum(1 for r in later if r['server'] == 's1')} of {len(later)} reached s1; "
          f"agent exit status {e2e.topo.procs['agent1'].returncode}")
    to_s1 = [(round(r["start"] - t, 2), r.get("port")) for r in later if r["server"] == "s1"]
    earlier = {r.get("port"): r["server"] for r in HISTORY if r["start"] < t - 0.5}
    diag = [(round(r["start"] - t, 2), r.get("port"), earlier.get(r.get("port"))) for r in failed]
    assert not failed, (diag, to_s1[:10])
    assert later and not to_s1, to_s1[:10]
    assert e2e.served_since(1, t + 0.5) == 0
    assert e2e.topo.procs["agent1"].returncode == 0


def test_4_returning_server_gets_new_connections_and_others_keep_theirs(e2e):
    proc = e2e.load_async("--seconds", "8", "--rate", "50", "--hold", "4")
    time.sleep(2)
    mark = e2e.mark()
    e2e.topo.start_http(0)
    e2e.wait_listening(0)
    e2e.start_agent(0)
    # Its old binding may still be alive (SIGKILL sent no de-registration): then the new
    # agent's BU refreshes it and the member comes back when its health checks pass.
    t, line, _ = e2e.log.wait_for(
        lambda l: ("event=member_joined" in l or "event=member_up" in l) and care_of(0) in l, 20, mark
    )
    recs = records(proc)
    held = [r for r in recs if "held" in r]
    fresh_after = [r for r in recs if "held" not in r and r["start"] >= t + 0.5]
    by_conn, ports = {}, {}
    for r in held:
        by_conn.setdefault(r["held"], set()).add(r["server"])
        ports.setdefault(r["held"], set()).add(r["port"])
    print(f"\nreturn: {line.split('event=')[1].split()[0]}; {sum(1 for r in fresh_after if r['server'] == 's0')} of {len(fresh_after)} new "
          f"connections after it went to s0; held connections and their servers: {by_conn}")
    assert all(r["ok"] for r in held), [r for r in held if not r["ok"]][:3]
    assert all(len(p) == 1 for p in ports.values()), f"a held connection was reopened: {ports}"
    assert all(len(s) == 1 for s in by_conn.values()), by_conn
    assert any(r["server"] == "s0" for r in fresh_after)
    assert all(r["ok"] for r in fresh_after)


def test_5_unauthenticated_and_wrongly_keyed_agents_are_refused(e2e):
    bad_keys = e2e.workdir / "bad-keys.toml"
    bad_keys.write_text(f'[[keys]]\nspi = {SPI}\nkey = "{"ab" * 20}"\n')
    os.chmod(bad_keys, 0o600)
    for label, key_file in (("unauthenticated", False), ("wrong key", bad_keys)):
        mark = e2e.mark()
        e2e.start_agent(3, key_file=key_file)
        t, line, _ = e2e.log.wait_for(lambda l: "event=bu_rejected" in l and care_of(3) in l, 15, mark)
        agent_log = e2e.topo.logs["agent3"]
        agent_log.wait_for(lambda l: "129" in l, 10)
        e2e.topo.stop("agent3", signal.SIGKILL)
        print(f"\n{label}: {line.split('event=')[-1]}")
        assert "status=129" in line
    since = time.monotonic()
    recs = e2e.load("--count", "200", "--rate", "200")
    assert all(r["ok"] for r in recs)
    assert not any(r["server"] == "s3" for r in recs)
    assert e2e.served_since(3, since) == 0
    assert care_of(3) not in e2e.members()
