"""Run the correspondent-node emulator (mip6cn.CorrespondentNode) on a TUN device.

Run it inside the network namespace that should hold the correspondent node, as root:

    python run_cn.py --address 2001:db8:3::1 [--ifname cn0] [--route 2001:db8:3::/64]
                     [--kcn HEX40] [--echo-port 7] [--control /run/cn.sock]
                     [--nonce-lifetime 240]

It creates the TUN device (IFF_TUN | IFF_NO_PI), brings it up and routes the CN address
(and any --route prefix) to it. The address is routed, not assigned: if the kernel owned
it, the kernel would consume the packets itself and the emulator would never see them.
Packets the kernel routes to the device go through ``CorrespondentNode.handle``; replies
are written back, so the kernel delivers or forwards them like packets that arrived on
the device. A UDP echo service (and ICMPv6 Echo) runs on the CN address.

The control socket can also start a UDP stream from the CN to a (home) address at a fixed
rate: each datagram is sent with ``send_data``, so it goes to the care-of address with a
Type 2 routing header while a binding exists, and each answer is recorded with where it
came from (end-to-end tests use it to see which server answers and by which route).

Every core event is printed on stdout as one JSON object per line; the first line is
``{"event": "ready", ...}``. See README.md for the control socket's line protocol.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mip6cn import (  # noqa: E402
    IPPROTO_UDP,
    MAX_NONCE_LIFETIME,
    CorrespondentNode,
    Delivery,
    canonical,
    echo_application,
    udp_datagram,
)

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name: str) -> tuple[int, str]:
    """Create (or attach to) the TUN device ``name``; return its fd and actual name."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
    result = fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd, result[:16].rstrip(b"\x00").decode()


def emit(record: dict) -> None:
    print(json.dumps(record, default=str), flush=True)


class UdpStream:
    """Datagrams ``seq=N`` from the CN to ``home``:``dport`` every 1/``rate`` s.

    Sent with ``CorrespondentNode.send_data``, so the Binding Cache decides the route. The
    answers (whatever the peer sends back to ``sport``) are matched by their ``seq=N``.
    """

    def __init__(self, cn: CorrespondentNode, home: str, dport: int, rate: float, sport: int):
        if not 0 < rate <= 1000:
            raise ValueError("rate must be in (0, 1000] datagrams per second")
        if not (0 < dport < 65536 and 0 < sport < 65536):
            raise ValueError("ports must be in 1..65535")
        self.cn = cn
        self.home = canonical(home)
        self.dport = dport
        self.sport = sport
        self.interval = 1.0 / rate
        self.next_seq = 0
        self.next_time = time.monotonic()
        self.sent = 0
        self.answered = 0

    def due(self, now: float) -> bool:
        return now >= self.next_time

    def timeout(self, now: float) -> float:
        return max(0.0, self.next_time - now)

    def send(self, now: float) -> bytes:
        seq = self.next_seq
        self.next_seq += 1
        # Keep the schedule (no drift), but never send a burst after a stall.
        self.next_time = max(self.next_time + self.interval, now)
        pkt = self.cn.send_data(self.home, udp_datagram(self.sport, self.dport, f"seq={seq}".encode()),
                                IPPROTO_UDP)
        entry = self.cn.binding(self.home)
        self.sent += 1
        self.cn.record("stream_sent", seq=seq, home_address=self.home,
                     care_of_address=entry.care_of_address if entry else None)
        return pkt

    def answer(self, delivery: Delivery) -> bool:
        """Record ``delivery`` if it answers this stream; True if it did."""
        if delivery.proto != IPPROTO_UDP or len(delivery.payload) < 8 or delivery.source != self.home:
            return False
        sport, dport = struct.unpack("!HH", delivery.payload[:4])
        if sport != self.dport or dport != self.sport:
            return False
        text = delivery.payload[8:].decode(errors="replace")
        seq = None
        words = text.split()
        for word in words:
            if word.startswith("seq="):
                try:
                    seq = int(word[4:])
                except ValueError:
                    seq = None
        self.answered += 1
        # The answering server names itself in the first word (e2e/udpecho.py does).
        self.cn.record("stream_answer", seq=seq, source=delivery.source, server=words[0] if words else "",
                     care_of_address=delivery.care_of_address)
        return True

    def summary(self) -> dict:
        return {"home_address": self.home, "dport": self.dport, "sport": self.sport,
                "rate": 1.0 / self.interval, "sent": self.sent, "answered": self.answered}


def stream_application(base, streams: dict):
    """``base`` (the echo service) plus recording of answers to the streams in ``streams``:
    the running ones and the stopped ones, whose last answers may still be on their way."""

    def app(cn: CorrespondentNode, delivery: Delivery) -> list[tuple[int, bytes]]:
        for stream in list(streams.values()):
            if stream.answer(delivery):
                return []
        return base(cn, delivery)

    return app


class ControlServer:
    """A line protocol on a Unix stream socket; each command gets one JSON line back."""

    def __init__(self, path: str, cn: CorrespondentNode, tun_fd: int, streams: dict, answering: dict):
        self.path = path
        self.cn = cn
        self.tun_fd = tun_fd
        # Streams that send; `answering` also keeps the stopped ones (until their source
        # port is reused), so that an answer arriving after stream-stop is still recorded.
        self.streams = streams
        self.answering = answering
        if os.path.exists(path):
            os.unlink(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        self.clients: dict[socket.socket, bytes] = {}
        self.stop = False

    def sockets(self) -> list[socket.socket]:
        return [self.listener, *self.clients]

    def readable(self, sock: socket.socket) -> None:
        if sock is self.listener:
            conn, _ = self.listener.accept()
            self.clients[conn] = b""
            return
        data = sock.recv(4096)
        if not data:
            self.clients.pop(sock, None)
            sock.close()
            return
        buf = self.clients[sock] + data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            reply = self.command(line.decode(errors="replace").strip())
            sock.sendall((json.dumps(reply, default=str) + "\n").encode())
        self.clients[sock] = buf

    def command(self, line: str) -> dict:
        words = line.split()
        if not words:
            return {"ok": False, "error": "empty command"}
        cmd, args = words[0], words[1:]
        try:
            if cmd == "ping":
                return {"ok": True}
            if cmd == "bindings":
                return {"ok": True, "bindings": self.cn.bindings()}
            if cmd == "events":
                return {"ok": True, "events": self.cn.events[int(args[0]) if args else 0:]}
            if cmd == "send-udp" and len(args) == 4:
                home, sport, dport, text = args[0], int(args[1]), int(args[2]), args[3]
                pkt = self.cn.send_data(home, udp_datagram(sport, dport, text.encode()), IPPROTO_UDP)
                os.write(self.tun_fd, pkt)
                return {"ok": True, "length": len(pkt)}
            if cmd == "nonce":
                index, _ = self.cn.current_nonce()
                return {"ok": True, "index": index, "lifetime": self.cn.nonce_lifetime}
            if cmd == "nonce-lifetime" and len(args) == 1:
                self.cn.set_nonce_lifetime(float(args[0]))
                return {"ok": True, "lifetime": self.cn.nonce_lifetime}
            if cmd == "stream" and len(args) in (3, 4):
                sport = int(args[3]) if len(args) == 4 else 40000 + len(self.streams)
                if sport in self.streams:
                    return {"ok": False, "error": f"a stream from port {sport} is running"}
                stream = UdpStream(self.cn, args[0], int(args[1]), float(args[2]), sport)
                self.streams[sport] = stream
                self.answering[sport] = stream
                return {"ok": True, **stream.summary()}
            if cmd == "stream-stop" and len(args) <= 1:
                if args:
                    stopped = [self.streams.pop(int(args[0]))]
                else:
                    stopped = list(self.streams.values())
                    self.streams.clear()
                return {"ok": True, "streams": [s.summary() for s in stopped]}
            if cmd == "streams":
                return {"ok": True, "streams": [s.summary() for s in self.streams.values()]}
            if cmd == "quit":
                self.stop = True
                return {"ok": True}
        except (ValueError, IndexError, KeyError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": f"unknown command {line!r}"}

    def close(self) -> None:
        for s in self.sockets():
            s.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True, help="the correspondent node's IPv6 address")
    ap.add_argument("--ifname", default="cn0", help="TUN device name")
    ap.add_argument("--route", action="append", default=[], help="extra prefix to route to the device")
    ap.add_argument("--kcn", help="Kcn as 40 hex digits (random by default)")
    ap.add_argument("--echo-port", type=int, default=7, help="UDP echo port")
    ap.add_argument("--control", help="Unix socket path for the control line protocol")
    ap.add_argument("--nonce-lifetime", type=float, default=MAX_NONCE_LIFETIME,
                    help="seconds a nonce is accepted (RFC 6275: 240); tests shorten it")
    args = ap.parse_args()

    fd, ifname = open_tun(args.ifname)
    subprocess.run(["ip", "link", "set", "dev", ifname, "up"], check=True)
    for prefix in [f"{args.address}/128", *args.route]:
        subprocess.run(["ip", "-6", "route", "replace", prefix, "dev", ifname], check=True)

    streams: dict[int, UdpStream] = {}
    answering: dict[int, UdpStream] = {}
    cn = CorrespondentNode(args.address, kcn=bytes.fromhex(args.kcn) if args.kcn else None,
                           application=stream_application(echo_application(args.echo_port), answering),
                           on_event=emit, nonce_lifetime=args.nonce_lifetime)
    control = ControlServer(args.control, cn, fd, streams, answering) if args.control else None

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    emit({"time": time.monotonic(), "event": "ready", "address": cn.address, "ifname": ifname,
          "control": args.control})
    try:
        while not stopping and not (control and control.stop):
            watched = [fd, *(control.sockets() if control else [])]
            now = time.monotonic()
            wait = min([1.0, *(s.timeout(now) for s in streams.values())])
            try:
                ready, _, _ = select.select(watched, [], [], wait)
            except InterruptedError:
                continue
            now = time.monotonic()
            for stream in list(streams.values()):
                if stream.due(now):
                    os.write(fd, stream.send(now))
            for r in ready:
                if r == fd:
                    packet = os.read(fd, 65535)
                    for reply in cn.handle(packet):
                        os.write(fd, reply)
                elif control:
                    control.readable(r)
            cn.expire()
    finally:
        if control:
            control.close()
        os.close(fd)  # a non-persistent TUN device and its routes disappear with the fd
    emit({"time": time.monotonic(), "event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
