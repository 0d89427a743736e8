"""Field extraction by two independent decoders, keyed by Wireshark display-filter names.

`scapy_fields` walks scapy's dissection of a frame; `tshark_fields` asks tshark. Both return
{key: value} in the conventions `anycast6 decode --json` uses (docs/decode.md): numbers as
ints, addresses in RFC 5952 text, flags as bools, byte strings as lowercase hex. Keys of the
inner packet of an IPv6-in-IPv6 tunnel carry the prefix "inner.".
"""

import ipaddress
import json
import subprocess

# Every key anycast6 decodes, with its JSON kind. tshark is asked for exactly these.
KINDS = {
    "eth.dst": "mac", "eth.src": "mac", "eth.type": "int",
    "vlan.id": "int", "vlan.priority": "int", "vlan.etype": "int",
    "ipv6.version": "int", "ipv6.tclass": "int", "ipv6.flow": "int", "ipv6.plen": "int",
    "ipv6.nxt": "int", "ipv6.hlim": "int", "ipv6.src": "addr", "ipv6.dst": "addr",
    "ipv6.opt.mipv6.home_address": "addr", "ipv6.routing.mipv6.home_address": "addr",
    "ipv6.routing.type": "int", "ipv6.routing.segleft": "int", "ipv6.opt.tel": "int",
    "ipv6.fraghdr.offset": "int", "ipv6.fraghdr.more": "bool", "ipv6.fraghdr.ident": "int",
    "icmpv6.type": "int", "icmpv6.code": "int", "icmpv6.checksum": "int", "icmpv6.mtu": "int",
    "icmpv6.pointer": "int", "icmpv6.echo.identifier": "int", "icmpv6.echo.sequence_number": "int",
    "icmpv6.nd.ns.target_address": "addr", "icmpv6.nd.na.target_address": "addr",
    "icmpv6.nd.na.flag.r": "bool", "icmpv6.nd.na.flag.s": "bool", "icmpv6.nd.na.flag.o": "bool",
    "icmpv6.opt.linkaddr": "mac",
    "udp.srcport": "int", "udp.dstport": "int", "udp.length": "int", "udp.checksum": "int",
    "tcp.srcport": "int", "tcp.dstport": "int", "tcp.seq_raw": "int", "tcp.ack_raw": "int",
    "tcp.flags": "int", "tcp.flags.syn": "bool", "tcp.flags.ack": "bool", "tcp.flags.reset": "bool",
    "tcp.flags.fin": "bool", "tcp.window_size_value": "int", "tcp.checksum": "int",
    "tcp.options.mss_val": "int",
    "mip6.proto": "int", "mip6.hlen": "int", "mip6.mhtype": "int", "mip6.csum": "int",
    "mip6.hoti.cookie": "hex", "mip6.coti.cookie": "hex",
    "mip6.hot.nindex": "int", "mip6.hot.cookie": "hex", "mip6.hot.token": "hex",
    "mip6.cot.nindex": "int", "mip6.cot.cookie": "hex", "mip6.cot.token": "hex",
    "mip6.bu.seqnr": "int", "mip6.bu.a_flag": "bool", "mip6.bu.h_flag": "bool",
    "mip6.bu.l_flag": "bool", "mip6.bu.k_flag": "bool", "mip6.bu.lifetime": "int",
    "mip6.ba.status": "int", "mip6.ba.k_flag": "bool", "mip6.ba.seqnr": "int", "mip6.ba.lifetime": "int",
    "mip6.be.status": "int", "mip6.be.haddr": "addr",
    "mip6.bra.interval": "int", "mip6.acoa.acoa": "addr", "mip6.ni.hni": "int", "mip6.ni.cni": "int",
    "mip6.bad.auth": "hex",
    "mip6.auth.subtype": "int", "mip6.auth.mobility_spi": "int", "mip6.auth.auth_data": "hex",
    "mip6.mseg_id.timestamp": "hex",
    "mip6.vsm.vendorId": "int", "mip6.vsm.subtype": "int",
    "mip6.bi.bid": "int", "mip6.bi.status": "int", "mip6.bi.h_flag": "bool", "mip6.bi.coa_ipv6": "addr",
}

# tshark shows these in a form that cannot be compared as a value (the RFC 4285 timestamp
# as a calendar date); scapy still checks them.
NOT_FROM_TSHARK = {"mip6.mseg_id.timestamp"}

# Wireshark 4.0 files the Care-of Test's keygen token under the Home Test's field name.
TSHARK_ALIASES = {"mip6.cot.token": "mip6.hot.token"}

# tshark 4.0.17 shows only the first (option length - 7) octets of the RFC 4285 authenticator
# (10 of 12 for HMAC-SHA1-96), so its value is compared as a prefix; scapy checks it whole.
TSHARK_PREFIX_ONLY = {"mip6.auth.auth_data"}

# Keys that are ours alone (tshark has no such field).
OWN_KEYS = {"frame.number", "error", "checksum_ok", "summary"}


def normalise(kind, text):
    """A tshark -T fields string to the JSON convention."""
    if kind == "int":
        return int(text, 0)
    if kind == "bool":
        return text in ("1", "True", "true")
    if kind == "addr":
        return str(ipaddress.IPv6Address(text))
    if kind == "mac":
        return text.lower()
    if kind == "hex":
        text = text.lower()
        return text[2:] if text.startswith("0x") else text.replace(":", "")
    raise ValueError(kind)


def tshark_occurrences(pcap):
    """Per frame: {key: [values in occurrence order]} as tshark decodes them."""
    keys = sorted(set(KINDS) - NOT_FROM_TSHARK - set(TSHARK_ALIASES))
    # No decoded value contains a tab or a '|', so they separate columns and occurrences.
    cmd = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
           "-E", "separator=/t", "-e", "frame.number"]
    for k in keys:
        cmd += ["-e", k]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    frames = []
    for line in out.splitlines():
        cols = line.split("\t")
        d = {}
        for k, v in zip(keys, cols[1:]):
            if v != "":
                d[k] = [normalise(KINDS[k], x) for x in v.split("|")]
        # Alias targets hold values of both keys; they are compared under either name.
        frames.append(d)
    return frames


def tshark_value(occ, key, ours):
    """The tshark value matching `key` of our decode. An `inner.` key is the next occurrence
    after the outer one when the outer layer also has the field, else the first."""
    if key.startswith("inner."):
        base = key[len("inner."):]
        index = 1 if base in ours else 0
    else:
        base, index = key, 0
    if base in NOT_FROM_TSHARK:
        return None
    base = TSHARK_ALIASES.get(base, base)
    values = occ.get(base, [])
    return values[index] if index < len(values) else None


def decode_json(binary, pcap):
    out = subprocess.run([str(binary), "decode", "--json", str(pcap)], check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def _hex(b):
    if isinstance(b, int):
        raise TypeError("expected bytes")
    return bytes(b).hex()


def scapy_fields(frame_bytes):
    """Dissect with scapy and map its fields to the decode keys."""
    from scapy.layers import inet6 as s6
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    out = {}
    pkt = Ether(frame_bytes)
    ipv6_seen = 0
    prefix = ""

    def put(k, v):
        out[prefix + k] = v

    for layer in pkt.iterpayloads():
        name = type(layer).__name__
        if isinstance(layer, Ether):
            put("eth.dst", layer.dst.lower())
            put("eth.src", layer.src.lower())
            put("eth.type", layer.type)
        elif isinstance(layer, Dot1Q):
            put("vlan.id", layer.vlan)
            put("vlan.priority", layer.prio)
            put("vlan.etype", layer.type)
        elif name == "IPv6":
            ipv6_seen += 1
            if ipv6_seen == 2:
                prefix = "inner."
            elif ipv6_seen > 2:
                break
            put("ipv6.version", layer.version)
            put("ipv6.tclass", layer.tc)
            put("ipv6.flow", layer.fl)
            put("ipv6.plen", layer.plen)
            put("ipv6.nxt", layer.nh)
            put("ipv6.hlim", layer.hlim)
            put("ipv6.src", str(ipaddress.IPv6Address(layer.src)))
            put("ipv6.dst", str(ipaddress.IPv6Address(layer.dst)))
        elif name in ("IPv6ExtHdrDestOpt", "IPv6ExtHdrHopByHop"):
            for o in layer.options:
                if type(o).__name__ == "HAO":
                    put("ipv6.opt.mipv6.home_address", str(ipaddress.IPv6Address(o.hoa)))
                elif getattr(o, "otype", None) == 4:
                    put("ipv6.opt.tel", o.optdata[0])
        elif name == "IPv6ExtHdrRouting":
            put("ipv6.routing.type", layer.type)
            put("ipv6.routing.segleft", layer.segleft)
            if layer.type == 2 and layer.addresses:
                put("ipv6.routing.mipv6.home_address", str(ipaddress.IPv6Address(layer.addresses[0])))
        elif name == "IPv6ExtHdrFragment":
            put("ipv6.fraghdr.offset", layer.offset)
            put("ipv6.fraghdr.more", bool(layer.m))
            put("ipv6.fraghdr.ident", layer.id)
        elif isinstance(layer, UDP):
            put("udp.srcport", layer.sport)
            put("udp.dstport", layer.dport)
            put("udp.length", layer.len)
            put("udp.checksum", layer.chksum)
            break
        elif isinstance(layer, TCP):
            put("tcp.srcport", layer.sport)
            put("tcp.dstport", layer.dport)
            put("tcp.seq_raw", layer.seq)
            put("tcp.ack_raw", layer.ack)
            flags = int(layer.flags)
            put("tcp.flags", flags)
            put("tcp.flags.syn", bool(flags & 0x02))
            put("tcp.flags.ack", bool(flags & 0x10))
            put("tcp.flags.reset", bool(flags & 0x04))
            put("tcp.flags.fin", bool(flags & 0x01))
            put("tcp.window_size_value", layer.window)
            put("tcp.checksum", layer.chksum)
            for k, v in layer.options:
                if k == "MSS":
                    put("tcp.options.mss_val", v)
            break
        elif name.startswith("ICMPv6"):
            put("icmpv6.type", layer.type)
            put("icmpv6.code", layer.code)
            put("icmpv6.checksum", layer.cksum)
            if name == "ICMPv6PacketTooBig":
                put("icmpv6.mtu", layer.mtu)
            elif name == "ICMPv6ParamProblem":
                put("icmpv6.pointer", layer.ptr)
            elif name in ("ICMPv6EchoRequest", "ICMPv6EchoReply"):
                put("icmpv6.echo.identifier", layer.id)
                put("icmpv6.echo.sequence_number", layer.seq)
            elif name == "ICMPv6ND_NS":
                put("icmpv6.nd.ns.target_address", str(ipaddress.IPv6Address(layer.tgt)))
            elif name == "ICMPv6ND_NA":
                put("icmpv6.nd.na.target_address", str(ipaddress.IPv6Address(layer.tgt)))
                put("icmpv6.nd.na.flag.r", bool(layer.R))
                put("icmpv6.nd.na.flag.s", bool(layer.S))
                put("icmpv6.nd.na.flag.o", bool(layer.O))
            # Link-layer address options follow as their own layers.
            for o in layer.iterpayloads():
                if type(o).__name__ in ("ICMPv6NDOptSrcLLAddr", "ICMPv6NDOptDstLLAddr"):
                    put("icmpv6.opt.linkaddr", o.lladdr.lower())
            break
        elif name.startswith("MIP6MH_"):
            put("mip6.proto", layer.nh)
            put("mip6.hlen", layer.len)
            put("mip6.mhtype", layer.mhtype)
            put("mip6.csum", layer.cksum)
            if name == "MIP6MH_HoTI":
                put("mip6.hoti.cookie", _hex(layer.cookie))
            elif name == "MIP6MH_CoTI":
                put("mip6.coti.cookie", _hex(layer.cookie))
            elif name == "MIP6MH_HoT":
                put("mip6.hot.nindex", layer.index)
                put("mip6.hot.cookie", _hex(layer.cookie))
                put("mip6.hot.token", _hex(layer.token))
            elif name == "MIP6MH_CoT":
                put("mip6.cot.nindex", layer.index)
                put("mip6.cot.cookie", _hex(layer.cookie))
                put("mip6.cot.token", _hex(layer.token))
            elif name == "MIP6MH_BU":
                flags = int(layer.flags)  # scapy: 7-bit "PRMKLHA", A is the MSB
                put("mip6.bu.seqnr", layer.seq)
                put("mip6.bu.a_flag", bool(flags & 0x40))
                put("mip6.bu.h_flag", bool(flags & 0x20))
                put("mip6.bu.l_flag", bool(flags & 0x10))
                put("mip6.bu.k_flag", bool(flags & 0x08))
                put("mip6.bu.lifetime", layer.mhtime)
            elif name == "MIP6MH_BA":
                put("mip6.ba.status", layer.status)
                put("mip6.ba.k_flag", bool(int(layer.flags) & 0x04))
                put("mip6.ba.seqnr", layer.seq)
                put("mip6.ba.lifetime", layer.mhtime)
            elif name == "MIP6MH_BE":
                put("mip6.be.status", layer.status)
                put("mip6.be.haddr", str(ipaddress.IPv6Address(layer.ha)))
            for o in getattr(layer, "options", []) or []:
                _scapy_mobility_option(o, put)
            break
    return out


def _scapy_mobility_option(o, put):
    n = type(o).__name__
    if n == "MIP6OptBRAdvice":
        put("mip6.bra.interval", o.rinter)
    elif n == "MIP6OptAltCoA":
        put("mip6.acoa.acoa", str(ipaddress.IPv6Address(o.acoa)))
    elif n == "MIP6OptNonceIndices":
        put("mip6.ni.hni", o.hni)
        put("mip6.ni.cni", o.coni)
    elif n == "MIP6OptBindingAuthData":
        put("mip6.bad.auth", o.authenticator.to_bytes(12, "big").hex())
    elif n == "MIP6OptMsgAuth":
        put("mip6.auth.subtype", o.subtype)
        put("mip6.auth.mobility_spi", o.mspi)
        put("mip6.auth.auth_data", bytes(o.authdata).hex())
    elif n == "MIP6OptReplayProtection":
        put("mip6.mseg_id.timestamp", o.timestamp.to_bytes(8, "big").hex())
    elif n == "MIP6OptUnknown" and o.otype == 19:
        d = bytes(o.odata)
        put("mip6.vsm.vendorId", int.from_bytes(d[0:4], "big"))
        put("mip6.vsm.subtype", d[4])
    elif n == "MIP6OptUnknown" and o.otype == 35:
        d = bytes(o.odata)
        put("mip6.bi.bid", int.from_bytes(d[0:2], "big"))
        put("mip6.bi.status", d[2])
        put("mip6.bi.h_flag", bool(d[3] & 0x80))
        if len(d) >= 20:
            put("mip6.bi.coa_ipv6", str(ipaddress.IPv6Address(d[4:20])))


def agrees_with_tshark(key, ours, theirs):
    base = key[len("inner."):] if key.startswith("inner.") else key
    if base in TSHARK_PREFIX_ONLY and isinstance(ours, str) and isinstance(theirs, str):
        return len(theirs) >= 8 and ours.startswith(theirs)
    return ours == theirs


def after_fragment_header(key, fields):
    """tshark does not dissect the upper layer of a fragment without reassembly."""
    return "ipv6.fraghdr.offset" in fields and key.split(".")[0] in ("udp", "tcp", "icmpv6", "mip6")
