"""The end-to-end topology: network namespaces, veth pairs, real Linux clients and servers.

    client ns                 router ns                     lb ns
    c0 2001:db8:c::2/64 --- rc 2001:db8:c::1/64
    [cnN: emulated CNs,       ra fe80::1, 2001:db8:a::1 --- lb0 (no kernel IPv6; DPDK
     2001:db8:3::N]                                           net_af_packet: the appliance)
                              br-s 2001:db8:2::1/64
                               |-- rs0 --- s1 e0 2001:db8:2::10/64 (care-of)
                               |-- rs1 --- s2 e0 2001:db8:2::11/64
                               |-- rs2 --- s3 e0 2001:db8:2::12/64
                               '-- rl1 --- lb1 (servers_port=True: the appliance's second
                                                port, on the servers' link)

The router forwards between the client, the appliance and the servers' segment; the service
prefix 2001:db8:100::/64 and the tunnel address 2001:db8:ff::1 are routed to the appliance
(2001:db8:a::2, which it answers Neighbor Discovery for). Each server runs an HTTP server
listening on [::]:80 and, unless a test says otherwise, an anycast6 agent, which puts the
service address on `lo` and sets up decapsulation: the kernel's `seg6local End.DT6` here
(this kernel has no ip6tnl); see docs/deployment.md.

Replies leave the servers straight from the service address to the client through the
router (direct server return): only client-to-service traffic crosses the appliance.

veth pairs hand packets between namespaces with their transport checksums not yet computed
(checksum offload); DPDK's af_packet driver does not complete them, so the client and the
servers turn transmit checksum offload off (`ethtool -K IF tx off`). A physical NIC puts
complete checksums on the wire and needs nothing of the sort.

For route optimisation (e2e/test_ro.py) the client namespace also forwards: the prefix
2001:db8:3::/64 is routed to it, and each correspondent-node emulator (e2e/cn/run_cn.py)
takes one address of it on its own TUN device. With `servers_port=True` the appliance gets
a second port, lb1, on the servers' bridge, so it can claim a dead member's care-of address
by proxy Neighbor Discovery. A member "dies" with `member_link(i, False)`: its interface
goes down (its addresses stay, `keep_addr_on_down`) and health checks see it fail.
"""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

SERVICE = "2001:db8:100::1"
TUNNEL = "2001:db8:ff::1"
APPLIANCE_ADDR = "2001:db8:a::2"
CLIENT = "2001:db8:c::2"
# Routed to the client namespace; correspondent-node emulators take addresses from it.
CN_PREFIX = "2001:db8:3::/64"
SERVERS_ROUTER = "2001:db8:2::1"


def cn_address(n):
    return f"2001:db8:3::{n}"


def care_of(i):
    return f"2001:db8:2::1{i}"


def sh(*args, check=True, **kw):
    return subprocess.run([str(a) for a in args], check=check, capture_output=True, text=True, **kw)


class LogReader:
    """Reads a process's stream in a thread, stamping each line with time.monotonic()."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        for line in iter(stream.readline, ""):
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()

    def wait_for(self, predicate, timeout, start=0):
        """Waits for a line (index >= start) matching `predicate`; returns (time, line, index)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.lines)):
                    t, line = self.lines[i]
                    if predicate(line):
                        return t, line, i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching line; last lines:\n" + "\n".join(l for _, l in self.lines[-30:]))
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return "\n".join(l for _, l in self.lines)


class Topology:
    def __init__(self, workdir: Path, servers=3, prefix=None, servers_port=False):
        self.prefix = prefix or f"a6e{os.getpid() % 10000}"
        self.workdir = Path(workdir)
        self.servers = servers
        self.servers_port = servers_port
        self.procs = {}
        self.logs = {}
        self.outs = {}

    def ns(self, name):
        return f"{self.prefix}-{name}"

    def names(self):
        return ["client", "router", "lb"] + [f"s{i}" for i in range(self.servers)]

    def ip(self, ns, *args, check=True):
        return sh("ip", "-n", self.ns(ns), *args, check=check)

    def ns_run(self, ns, *args, check=True, **kw):
        return sh("ip", "netns", "exec", self.ns(ns), *args, check=check, **kw)

    def up(self):
        self.down()
        for n in self.names():
            sh("ip", "netns", "add", self.ns(n))
            self.ip(n, "link", "set", "lo", "up")
        self.ns_run("router", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        # Client.
        sh("ip", "link", "add", "c0", "netns", self.ns("client"), "type", "veth", "peer", "name", "rc",
           "netns", self.ns("router"))
        self.ip("client", "addr", "add", f"{CLIENT}/64", "dev", "c0", "nodad")
        self.ip("client", "link", "set", "c0", "up")
        self.ip("client", "-6", "route", "add", "default", "via", "2001:db8:c::1")
        self.ns_run("client", "ethtool", "-K", "c0", "tx", "off")
        self.ip("router", "addr", "add", "2001:db8:c::1/64", "dev", "rc", "nodad")
        self.ip("router", "link", "set", "rc", "up")
        # Correspondent-node emulators live behind the client's kernel, which forwards to
        # their TUN devices; an address no emulator holds is unreachable, not looped back.
        self.ip("router", "-6", "route", "add", CN_PREFIX, "via", CLIENT, "dev", "rc")
        self.ns_run("client", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        self.ip("client", "-6", "route", "add", "unreachable", CN_PREFIX)
        # The appliance's link: no kernel IPv6 on lb0, DPDK owns it.
        sh("ip", "link", "add", "lb0", "netns", self.ns("lb"), "type", "veth", "peer", "name", "ra",
           "netns", self.ns("router"))
        self.ns_run("lb", "sysctl", "-qw", "net.ipv6.conf.lb0.disable_ipv6=1")
        self.ip("lb", "link", "set", "lb0", "up")
        self.ip("router", "addr", "add", "fe80::1/64", "dev", "ra", "nodad")
        self.ip("router", "addr", "add", "2001:db8:a::1/64", "dev", "ra", "nodad")
        self.ip("router", "link", "set", "ra", "up")
        self.ip("router", "-6", "route", "add", "2001:db8:100::/64", "via", APPLIANCE_ADDR, "dev", "ra")
        self.ip("router", "-6", "route", "add", "2001:db8:ff::/64", "via", APPLIANCE_ADDR, "dev", "ra")
        # Servers.
        self.ip("router", "link", "add", "br-s", "type", "bridge")
        self.ip("router", "link", "set", "br-s", "up")
        self.ip("router", "addr", "add", f"{SERVERS_ROUTER}/64", "dev", "br-s", "nodad")
        for i in range(self.servers):
            s = f"s{i}"
            sh("ip", "link", "add", "e0", "netns", self.ns(s), "type", "veth", "peer", "name", f"rs{i}",
               "netns", self.ns("router"))
            self.ip("router", "link", "set", f"rs{i}", "master", "br-s", "up")
            # A member that "dies" by link down keeps its address for when it comes back.
            self.ns_run(s, "sysctl", "-qw", "net.ipv6.conf.e0.keep_addr_on_down=1")
            self.ip(s, "addr", "add", f"{care_of(i)}/64", "dev", "e0", "nodad")
            self.ip(s, "link", "set", "e0", "up")
            self.ip(s, "-6", "route", "add", "default", "via", SERVERS_ROUTER)
            self.ns_run(s, "ethtool", "-K", "e0", "tx", "off")
        if self.servers_port:
            sh("ip", "link", "add", "lb1", "netns", self.ns("lb"), "type", "veth", "peer", "name", "rl1",
               "netns", self.ns("router"))
            self.ns_run("lb", "sysctl", "-qw", "net.ipv6.conf.lb1.disable_ipv6=1")
            self.ip("lb", "link", "set", "lb1", "up")
            self.ip("router", "link", "set", "rl1", "master", "br-s", "up")
        return self

    def member_link(self, i, up):
        """Takes server i's only interface down (the member dies) or up again."""
        s = f"s{i}"
        self.ip(s, "link", "set", "e0", "up" if up else "down")
        if up:
            # Link down removed the routes through e0 (the address stayed).
            self.ip(s, "addr", "replace", f"{care_of(i)}/64", "dev", "e0", "nodad")
            self.ip(s, "-6", "route", "replace", "default", "via", SERVERS_ROUTER, "dev", "e0")

    def lb_mac(self, port="lb0"):
        out = self.ip("lb", "-br", "link", "show", port).stdout.split()
        return out[2]

    def start(self, key, ns, args, env=None):
        """Starts a long-running process in a namespace; its stderr (logs[key]) and stdout
        (outs[key]) are read line by line."""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(ns)] + [str(a) for a in args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env, start_new_session=True)
        self.procs[key] = p
        self.logs[key] = LogReader(p.stderr)
        self.outs[key] = LogReader(p.stdout)
        return p

    def send_signal(self, key, sig):
        p = self.procs.get(key)
        if p and p.poll() is None:
            os.killpg(p.pid, sig)

    def stop(self, key, sig=signal.SIGTERM, timeout=10):
        p = self.procs.get(key)
        if not p:
            return None
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        return p.returncode

    def start_http(self, i):
        root = self.workdir / f"www{i}"
        root.mkdir(parents=True, exist_ok=True)
        (root / "index.html").write_text(f"s{i}\n")
        # HTTP/1.1: keep-alive connections stay open (the default HTTP/1.0 closes each one).
        return self.start(f"http{i}", f"s{i}", ["python3", "-m", "http.server", "--protocol", "HTTP/1.1",
                                                 "--bind", "::", "-d", root, "80"])

    def down(self):
        for key in list(self.procs):
            self.stop(key, signal.SIGKILL, timeout=5)
        for n in self.names():
            subprocess.run(["ip", "netns", "del", self.ns(n)], capture_output=True)


def have_root_and_tools():
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("ip", "ethtool"))
