"""Run the correspondent-node emulator (mip6cn.CorrespondentNode) on a TUN device.

Run it inside the network namespace that should hold the correspondent node, as root:

    python run_cn.py --address 2001:db8:3::1 [--ifname cn0] [--route 2001:db8:3::/64]
                     [--kcn HEX40] [--echo-port 7] [--control /run/cn.sock]

It creates the TUN device (IFF_TUN | IFF_NO_PI), brings it up and routes the CN address
(and any --route prefix) to it. The address is routed, not assigned: if the kernel owned
it, the kernel would consume the packets itself and the emulator would never see them.
Packets the kernel routes to the device go through ``CorrespondentNode.handle``; replies
are written back, so the kernel delivers or forwards them like packets that arrived on
the device. A UDP echo service (and ICMPv6 Echo) runs on the CN address.

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
    CorrespondentNode,
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


class ControlServer:
    """A line protocol on a Unix stream socket; each command gets one JSON line back."""

    def __init__(self, path: str, cn: CorrespondentNode, tun_fd: int):
        self.path = path
        self.cn = cn
        self.tun_fd = tun_fd
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
            if cmd == "quit":
                self.stop = True
                return {"ok": True}
        except (ValueError, IndexError) as exc:
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
    args = ap.parse_args()

    fd, ifname = open_tun(args.ifname)
    subprocess.run(["ip", "link", "set", "dev", ifname, "up"], check=True)
    for prefix in [f"{args.address}/128", *args.route]:
        subprocess.run(["ip", "-6", "route", "replace", prefix, "dev", ifname], check=True)

    cn = CorrespondentNode(args.address, kcn=bytes.fromhex(args.kcn) if args.kcn else None,
                           application=echo_application(args.echo_port), on_event=emit)
    control = ControlServer(args.control, cn, fd) if args.control else None

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    emit({"time": time.monotonic(), "event": "ready", "address": cn.address, "ifname": ifname,
          "control": args.control})
    try:
        while not stopping and not (control and control.stop):
            watched = [fd, *(control.sockets() if control else [])]
            try:
                ready, _, _ = select.select(watched, [], [], 1.0)
            except InterruptedError:
                continue
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
