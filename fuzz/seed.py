#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Seeds come from two places:

* the scapy-built frames of tests/crosscheck/corpus.py (well-formed and malformed), cut at
  each layer a target starts from: whole frames for `ethernet` and `decode`, the IPv6 packet
  for `ipv6` and `tunnel`, the upper-layer message for `icmpv6`, `udp_tcp` and `mobility`;
* a few byte strings from the anycast6-wire unit tests (the IPv6 sample with Ethernet
  padding, the tunnel tests' client SYN with and without a Tunnel Encapsulation Limit,
  the Binding Acknowledgement without a trailing authenticator).

File names are the SHA-1 of the content, as libFuzzer names its own corpus entries, so
re-running the script adds nothing twice and never clobbers what fuzzing found.

Run from the repository root with the venv that has scapy:
    .venv/bin/python fuzz/seed.py
"""

import hashlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "crosscheck"))

from corpus import corpus  # noqa: E402  (path set up above)

CORPUS = ROOT / "fuzz" / "corpus"

HOP_BY_HOP, ROUTING, FRAGMENT, DEST_OPTS = 0, 43, 44, 60
TCP, UDP, IPV6, ICMPV6, MOBILITY = 6, 17, 41, 58, 135

# Selector octets the targets read first (see fuzz/targets/src/lib.rs).
ICMPV6_SELECTORS = (0, 1, 2)  # documentation pair, DAD (:: -> solicited-node), link-local -> all-nodes
TUNNEL_SELECTORS = (0x10, 0x13, 0x15)  # copy TC/no limit, fixed TC/limit 0, copy TC/limit 4


def put(target, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def ipv6_of_frame(frame):
    """The bytes after the Ethernet header (and one 802.1Q tag), if the EtherType is IPv6."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    at = 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype = int.from_bytes(frame[16:18], "big")
        at = 18
    return frame[at:] if ethertype == 0x86DD else None


def upper_layer(packet):
    """(protocol, bytes) of the header after the IPv6 extension headers, or None."""
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return None
    payload = packet[40 : 40 + int.from_bytes(packet[4:6], "big")]
    next_header, at = packet[6], 0
    while next_header in (HOP_BY_HOP, ROUTING, DEST_OPTS, FRAGMENT):
        if at + 8 > len(payload):
            return None
        length = 8 if next_header == FRAGMENT else (payload[at + 1] + 1) * 8
        next_header, at = payload[at], at + length
    return next_header, payload[at:]


def seed_frame(frame):
    put("ethernet", frame)
    put("decode", frame)
    packet = ipv6_of_frame(frame)
    if packet is None:
        return
    put("ipv6", packet)
    for selector in TUNNEL_SELECTORS:
        put("tunnel", bytes([selector]) + packet)
    found = upper_layer(packet)
    if found is None:
        return
    proto, upper = found
    if proto == IPV6:
        # A tunnel packet: seed from the inner packet too.
        seed_frame(frame[: len(frame) - len(packet)] + upper)
    elif proto == ICMPV6:
        for selector in ICMPV6_SELECTORS:
            put("icmpv6", bytes([selector]) + upper)
    elif proto in (TCP, UDP):
        put("udp_tcp", upper)
    elif proto == MOBILITY:
        put("mobility", upper)


def wire_test_seeds():
    """Byte strings from the anycast6-wire unit tests."""
    a = bytes.fromhex("20010db8000000000000000000000001")
    b = bytes.fromhex("20010db8000000000000000000000002")
    # ipv6.rs sample(): UDP, TC 0xb8, flow 0x12345, then 4 octets of Ethernet padding.
    put("ipv6", bytes([0x6B, 0x81, 0x23, 0x45, 0, 8, UDP, 64]) + a + b + bytes.fromhex("04d2003500080000") + bytes(4))
    client = bytes.fromhex("20010db8000c00000000000000000001")
    service = bytes.fromhex("20010db8000500000000000000000053")
    syn = bytes.fromhex("c3500050000000010000000050 02faf000000000".replace(" ", ""))
    # tunnel.rs client_syn() and client_with_tel(limit) for limits 0, 1 and 4.
    plain = bytes([0x62, 0xA5, 0x43, 0x21, 0, 0x14, TCP, 63]) + client + service + syn
    for selector in TUNNEL_SELECTORS:
        put("tunnel", bytes([selector]) + plain)
    for limit in (0, 1, 4):
        tel = bytes([0x60, 0, 0, 0, 0, 0x1C, DEST_OPTS, 63]) + client + service
        tel += bytes([TCP, 0, 0x04, 0x01, limit, 0x01, 0x01, 0x00]) + syn
        put("tunnel", bytes([0x14]) + tel)
        put("ipv6", tel)
    put("udp_tcp", syn)
    # rr.rs authenticator_requires_bad_last(): a BA with no authenticator.
    put("mobility", bytes([0x3B, 1, 6, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 0, 0]))


def main():
    for _name, packet in corpus():
        seed_frame(bytes(packet))
    wire_test_seeds()
    for directory in sorted(CORPUS.iterdir()):
        print(f"{directory.name}: {sum(1 for _ in directory.iterdir())} seeds")


if __name__ == "__main__":
    main()
