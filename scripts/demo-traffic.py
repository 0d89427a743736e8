#!/usr/bin/env python3
"""Client traffic for the demo: UDP from many clients to the two services of
examples/basic.toml, plus a few packets the appliance answers or refuses.

Usage: demo-traffic.py OUT.pcap [CLIENTS] [PACKETS]
"""

import sys

from scapy.layers.inet import UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

out = sys.argv[1]
clients = int(sys.argv[2]) if len(sys.argv) > 2 else 500
packets = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
eth = dict(src="02:00:00:00:00:fe", dst="02:00:00:00:00:01")
frames = []
for i in range(packets):
    c = i % clients
    service = "2001:db8:100::1" if c % 2 == 0 else "2001:db8:100::2"
    frames.append(
        Ether(**eth)
        / IPv6(src=f"2001:db8:77:{c >> 16:x}::{c & 0xFFFF:x}", dst=service)
        / UDP(sport=40000 + (i % 13), dport=9999)
        / Raw(b"anycast6 demo payload..........................................")
    )
frames.append(Ether(**eth) / IPv6(src="2001:db8:77::5", dst="2001:db8:ff::1") / ICMPv6EchoRequest(id=1, seq=1))
frames.append(Ether(**eth) / IPv6(src="2001:db8:77::5", dst="2001:db8:100::1", hlim=1) / UDP(sport=1, dport=9999))
wrpcap(out, frames)
print(f"demo-traffic: {len(frames)} frames from {clients} clients -> {out}")
