"""A UDP echo service (RFC 862) for a member: the answer names the server.

    python udpecho.py --name s1 [--port 7]

It listens on [::]:PORT and answers each datagram with ``NAME <the datagram>`` from the
address the datagram was sent to (IPV6_PKTINFO), so a member answers from the service
address whatever route the datagram took: tunnelled through the appliance, or
route-optimised and handed over by the agent. Each datagram is also printed on stdout as
one JSON line with the receive time (time.monotonic(), the clock the tests use):
``{"time", "src", "sport", "dst", "data"}``.
"""

import argparse
import ipaddress
import json
import socket
import struct
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="the server's name, first word of each answer")
    ap.add_argument("--port", type=int, default=7)
    args = ap.parse_args()

    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    sock.bind(("::", args.port))
    print(json.dumps({"time": time.monotonic(), "event": "listening", "port": args.port}), flush=True)
    while True:
        data, ancillary, _, (src, sport, *_) = sock.recvmsg(65535, socket.CMSG_SPACE(20))
        now = time.monotonic()
        dst = None
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 16:
                dst = value[:16]
        record = {"time": now, "src": src, "sport": sport,
                  "dst": str(ipaddress.IPv6Address(dst)) if dst else None,
                  "data": data[:64].decode(errors="replace")}
        print(json.dumps(record), flush=True)
        # Answer from the address the datagram was sent to; interface 0: routed as usual.
        cmsg = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, dst + struct.pack("@I", 0))] if dst else []
        try:
            sock.sendmsg([args.name.encode() + b" " + data], cmsg, 0, (src, sport))
        except OSError as exc:
            print(json.dumps({"time": time.monotonic(), "event": "send_failed", "src": src,
                              "error": str(exc)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
