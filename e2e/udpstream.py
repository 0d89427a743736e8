"""A plain Linux UDP client: datagrams ``seq=N`` to ADDRESS:PORT at a fixed rate.

    python udpstream.py --address 2001:db8:100::1 [--port 7] [--rate 20] [--seconds 5]
                        [--flows 1]

With --flows N the datagrams go round-robin over N sockets (N source ports, so N flows for
the load balancer). When the run ends it prints one JSON line per datagram:
``{"seq", "flow", "sent", "answered", "server", "from"}`` (answer time, first word of the
answer, i.e. the server's name with e2e/udpecho.py, and the answer's source address); the
last three are null when no answer came within --timeout of the end. The kernel's own
stack sends and receives, so nothing here speaks Mobile IPv6: the namespace is a legacy
client.
"""

import argparse
import json
import select
import socket
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True)
    ap.add_argument("--port", type=int, default=7)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--flows", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1.0, help="how long answers are awaited after the end")
    args = ap.parse_args()

    socks = []
    for _ in range(max(1, args.flows)):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.connect((args.address, args.port))
        socks.append(s)
    records = {}
    interval = 1.0 / args.rate
    start = time.monotonic()
    end = start + args.seconds
    next_send = start
    seq = 0
    while True:
        now = time.monotonic()
        if now >= end + args.timeout:
            break
        if next_send <= now < end:
            flow = seq % len(socks)
            socks[flow].send(f"seq={seq}".encode())
            records[seq] = {"seq": seq, "flow": flow, "sent": now, "answered": None, "server": None,
                            "from": None}
            seq += 1
            next_send += interval
        deadline = next_send if now < end else end + args.timeout
        ready, _, _ = select.select(socks, [], [], max(0.0, deadline - now))
        for s in ready:
            try:
                data, peer = s.recvfrom(65535)
            except ConnectionRefusedError:
                continue  # an ICMPv6 error for an earlier datagram: that one stays unanswered
            words = data.decode(errors="replace").split()
            for word in words[1:]:
                if word.startswith("seq=") and word[4:].isdigit() and int(word[4:]) in records:
                    records[int(word[4:])].update(answered=time.monotonic(), server=words[0],
                                                  **{"from": peer[0]})
    for r in records.values():
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
