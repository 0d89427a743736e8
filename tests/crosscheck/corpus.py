"""A corpus of packets built by scapy, independently of anycast6's Rust code.

Every Mobility Header type and option, the Home Address option, the Type 2 routing header,
the Tunnel Encapsulation Limit, IPv6-in-IPv6 tunnels, ICMPv6 errors, echo and Neighbor
Discovery, UDP and TCP, plus malformed frames. Addresses are from the documentation prefix.
"""

from scapy.layers.inet6 import (
    HAO,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_Generic,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptNonceIndices,
    PadN,
)
from scapy.layers.inet import TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

HOA = "2001:db8:1::100"
COA = "2001:db8:2::10"
CN = "2001:db8:3::1"
HA = "2001:db8:ff::1"
CLIENT = "2001:db8:77::5"
SERVICE = "2001:db8:100::1"
MAC_A = "02:00:00:00:00:01"
MAC_B = "02:00:00:00:00:02"


def eth():
    return Ether(src=MAC_A, dst=MAC_B)


def auth(hexstr):
    # scapy models the 96-bit authenticator as an integer field.
    return MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(bytes.fromhex(hexstr), "big"))


def nonce_indices(home, care_of):
    # scapy's default olen for Nonce Indices is 16, which is wrong (RFC 6275 §6.2.6: 4).
    return MIP6OptNonceIndices(olen=4, hni=home, coni=care_of)


def tel(limit):
    # Tunnel Encapsulation Limit, RFC 2473 §5.1: option type 4, length 1; scapy has no class.
    return PadN(otype=4, optdata=bytes([limit]))


def vendor_specific(vendor_id, sub_type, data):
    """RFC 5094 Vendor Specific mobility option (type 19), as raw bytes."""
    body = vendor_id.to_bytes(4, "big") + bytes([sub_type]) + data
    return bytes([19, len(body)]) + body


def mn_ha_auth(spi, authenticator):
    """RFC 4285 Mobility Message Authentication option (type 9), subtype 1 (MN-HA)."""
    body = bytes([1]) + spi.to_bytes(4, "big") + authenticator
    return bytes([9, len(body)]) + body


def replay_protection(timestamp):
    """RFC 4285 Mobility Message Replay Protection option (type 10), 64-bit timestamp."""
    return bytes([10, 8]) + timestamp.to_bytes(8, "big")


def binding_identifier(bid, status, h, coa=None):
    """RFC 5648 Binding Identifier option (type 35)."""
    import ipaddress

    body = bid.to_bytes(2, "big") + bytes([status, 0x80 if h else 0])
    if coa:
        body += ipaddress.IPv6Address(coa).packed
    return bytes([35, len(body)]) + body


def raw_mh(mh_type, body, src, dst, hao=None):
    """A Mobility Header whose options scapy cannot build, checksummed by scapy's own helper."""
    from scapy.layers.inet6 import in6_chksum

    fixed = bytearray([59, 0, mh_type, 0, 0, 0]) + body
    while len(fixed) % 8:
        fixed += b"\x00"
    fixed[1] = len(fixed) // 8 - 1
    pkt = IPv6(src=src, dst=dst)
    if hao:
        pkt = pkt / IPv6ExtHdrDestOpt(options=[HAO(hoa=hao)])
        pseudo = IPv6(src=hao, dst=dst)
    else:
        pseudo = IPv6(src=src, dst=dst)
    csum = in6_chksum(135, pseudo, bytes(fixed))
    fixed[4:6] = csum.to_bytes(2, "big")
    pkt.lastlayer().nh = 135
    return pkt / Raw(bytes(fixed))


def mh_with_padded_options(mh_type, fixed_after_csum, options_bytes, src, dst, hao=None):
    """Fixed part + hand-laid options (caller is responsible for alignment)."""
    return raw_mh(mh_type, fixed_after_csum + options_bytes, src, dst, hao)


def corpus():
    """(name, packet) pairs. Well-formed first, then malformed ones whose name starts 'bad_'."""
    e = eth
    c = []
    # --- Mobility Header, every type --------------------------------------------------------
    c.append(("brr", e() / IPv6(src=CN, dst=HOA) / MIP6MH_BRR()))
    c.append(("hoti", e() / IPv6(src=HOA, dst=CN) / MIP6MH_HoTI(cookie=bytes.fromhex("0123456789abcdef"))))
    c.append(("coti", e() / IPv6(src=COA, dst=CN) / MIP6MH_CoTI(cookie=bytes.fromhex("abcdef0123456789"))))
    c.append(
        (
            "hot_vector",
            e() / IPv6(src=CN, dst=HOA) / MIP6MH_HoT(index=10, cookie=bytes.fromhex("0123456789abcdef"), token=bytes.fromhex("9b3568582d56e39d")),
        )
    )
    c.append(
        (
            "cot",
            e() / IPv6(src=CN, dst=COA) / MIP6MH_CoT(index=20, cookie=bytes.fromhex("abcdef0123456789"), token=bytes.fromhex("27534ca0e013263e")),
        )
    )
    c.append(
        (
            "bu_vector_hao_ni_bad",
            e()
            / IPv6(src=COA, dst=CN)
            / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
            / MIP6MH_BU(seq=1, flags="A", mhtime=105, options=[nonce_indices(10, 20), auth("ebbcf0131b2c9f8d6174162e")]),
        )
    )
    c.append(
        (
            "bu_dereg_from_home",
            e()
            / IPv6(src=HOA, dst=CN)
            / MIP6MH_BU(seq=2, flags="A", mhtime=0, options=[nonce_indices(10, 0), auth("ab26b85fcfc5f652adeff79a")]),
        )
    )
    c.append(
        (
            "bu_home_registration",
            e()
            / IPv6(src=COA, dst=HA)
            / IPv6ExtHdrDestOpt(options=[HAO(hoa=SERVICE)])
            / MIP6MH_BU(seq=7, flags="AH", mhtime=150),
        )
    )
    c.append(
        (
            "bu_alt_coa",
            e()
            / IPv6(src=COA, dst=HA)
            / IPv6ExtHdrDestOpt(options=[HAO(hoa=SERVICE)])
            / MIP6MH_BU(seq=8, flags="AHK", mhtime=30, options=[MIP6OptAltCoA(acoa="2001:db8:2::99")]),
        )
    )
    c.append(
        (
            "ba_from_cn_rh2_bad",
            e()
            / IPv6(src=CN, dst=COA)
            / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA])
            / MIP6MH_BA(status=0, seq=1, mhtime=105, options=[auth("ef84ecf524725e92437c113f")]),
        )
    )
    c.append(
        (
            "ba_home_reg_bra",
            e()
            / IPv6(src=HA, dst=COA)
            / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[SERVICE])
            / MIP6MH_BA(status=0, seq=7, mhtime=150, options=[MIP6OptBRAdvice(rinter=120)]),
        )
    )
    for status in (129, 135, 174):
        c.append(
            (
                f"ba_status_{status}",
                e()
                / IPv6(src=HA, dst=COA)
                / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[SERVICE])
                / MIP6MH_BA(status=status, seq=3, mhtime=0),
            )
        )
    c.append(("be_status1", e() / IPv6(src=CN, dst=COA) / MIP6MH_BE(status=1, ha=HOA)))
    c.append(("be_status2", e() / IPv6(src=CN, dst=COA) / MIP6MH_BE(status=2, ha="::")))
    c.append(("mh_unknown_type", e() / IPv6(src=CN, dst=HA) / MIP6MH_Generic(mhtype=42, msg=b"\x00" * 10)))
    # RFC 4285 authentication + replay protection, RFC 5094 vendor option, RFC 5648 BID.
    # BU fixed part after the checksum: seq 9, flags A|H, lifetime 100.
    bu_fixed = bytes([0x00, 0x09, 0xC0, 0x00, 0x00, 0x64])
    opts = (
        # BID (type 35, 8n+... no strict alignment in RFC 5648 for the short form) at offset 12.
        binding_identifier(3, 0, False)
        # Vendor specific at offset 18 (RFC 5094: 4n+2 alignment): 2 + 4 + 1 + 3 = 10 bytes.
        + vendor_specific(0x0000_7F3D, 1, bytes([0, 0, 5]))
        # PadN to put the replay protection option at 8n+2: offset 28 -> PadN(6) -> 34.
        + bytes([1, 4, 0, 0, 0, 0])
        + replay_protection(0xEB0A_1B2C_8000_0000)
        # Authentication option last (RFC 4285 §5.1), 19 bytes at offset 45 (4n+1) so that
        # the MH ends on an 8-octet boundary with no padding after it.
        + bytes([0])
        + mn_ha_auth(0x100, bytes.fromhex("00112233445566778899aabb"))
    )
    c.append(("bu_bid_vsm_replay_auth", e() / mh_with_padded_options(5, bu_fixed, opts, COA, HA, hao=SERVICE)))
    c.append(
        (
            "bu_bid_with_coa",
            e()
            / mh_with_padded_options(
                5, bu_fixed, bytes([1, 2, 0, 0]) + binding_identifier(4, 0, True, coa=COA), COA, HA, hao=SERVICE
            ),
        )
    )
    # --- Tunnels ------------------------------------------------------------------------------
    c.append(
        (
            "tunnel_udp",
            e()
            / IPv6(src=HA, dst=COA, fl=0x12345, tc=0x28)
            / IPv6(src=CLIENT, dst=SERVICE, hlim=63, tc=0x28)
            / UDP(sport=40000, dport=9999)
            / Raw(b"x" * 16),
        )
    )
    c.append(
        (
            "tunnel_tel_tcp",
            e()
            / IPv6(src=HA, dst=COA)
            / IPv6ExtHdrDestOpt(options=[tel(3)])
            / IPv6(src=CLIENT, dst=SERVICE, hlim=63)
            / TCP(sport=40001, dport=80, flags="S", seq=1000, window=64240, options=[("MSS", 1440)]),
        )
    )
    c.append(
        (
            "reverse_tunnel_hoti",
            e()
            / IPv6(src=COA, dst=HA)
            / IPv6(src=SERVICE, dst=CLIENT)
            / MIP6MH_HoTI(cookie=bytes.fromhex("1122334455667788")),
        )
    )
    c.append(
        (
            "tunnel_hot_to_service",
            e()
            / IPv6(src=HA, dst=COA)
            / IPv6(src=CLIENT, dst=SERVICE, hlim=63)
            / MIP6MH_HoT(index=3, cookie=bytes.fromhex("1122334455667788"), token=bytes.fromhex("0102030405060708")),
        )
    )
    # --- ICMPv6 -------------------------------------------------------------------------------
    invoking = IPv6(src=CLIENT, dst=SERVICE) / UDP(sport=1, dport=2) / Raw(b"q" * 20)
    c.append(("icmp_dst_unreach", e() / IPv6(src=HA, dst=CLIENT) / ICMPv6DestUnreach(code=3) / invoking))
    c.append(("icmp_ptb", e() / IPv6(src=HA, dst=CLIENT) / ICMPv6PacketTooBig(mtu=1460) / invoking))
    c.append(("icmp_time_exceeded", e() / IPv6(src=HA, dst=CLIENT) / ICMPv6TimeExceeded(code=0) / invoking))
    c.append(("icmp_param_problem", e() / IPv6(src=HA, dst=CLIENT) / ICMPv6ParamProblem(code=0, ptr=42) / invoking))
    c.append(("icmp_echo_request", e() / IPv6(src=CLIENT, dst=HA) / ICMPv6EchoRequest(id=0x1234, seq=7, data=b"ping")))
    c.append(("icmp_echo_reply", e() / IPv6(src=HA, dst=CLIENT) / ICMPv6EchoReply(id=0x1234, seq=7, data=b"ping")))
    c.append(
        (
            "nd_ns",
            e()
            / IPv6(src="fe80::1", dst="ff02::1:ff00:1", hlim=255)
            / ICMPv6ND_NS(tgt=HA)
            / ICMPv6NDOptSrcLLAddr(lladdr=MAC_A),
        )
    )
    c.append(
        (
            "nd_na",
            e()
            / IPv6(src=HA, dst="fe80::1", hlim=255)
            / ICMPv6ND_NA(tgt=HA, R=1, S=1, O=1)
            / ICMPv6NDOptDstLLAddr(lladdr=MAC_B),
        )
    )
    # --- Other extension headers, VLAN, plain L4 ----------------------------------------------
    c.append(
        (
            "vlan_udp",
            Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=100, prio=5) / IPv6(src=CLIENT, dst=SERVICE) / UDP(sport=5, dport=6),
        )
    )
    c.append(
        (
            "hbh_dstopt_udp",
            e()
            / IPv6(src=CLIENT, dst=SERVICE)
            / IPv6ExtHdrHopByHop()
            / IPv6ExtHdrDestOpt()
            / UDP(sport=7, dport=8)
            / Raw(b"abc"),
        )
    )
    c.append(
        (
            "first_fragment_udp",
            e() / IPv6(src=CLIENT, dst=SERVICE) / IPv6ExtHdrFragment(id=0xABCD, m=1, offset=0) / UDP(sport=9, dport=10),
        )
    )
    c.append(
        (
            "tcp_syn_ack",
            e() / IPv6(src=COA, dst=HA) / TCP(sport=80, dport=33000, flags="SA", seq=5, ack=1001, window=1000),
        )
    )
    c.append(("tcp_rst", e() / IPv6(src=COA, dst=HA) / TCP(sport=80, dport=33001, flags="R", seq=77)))
    # --- Malformed ----------------------------------------------------------------------------
    good_bu = bytes(
        e()
        / IPv6(src=COA, dst=HA)
        / IPv6ExtHdrDestOpt(options=[HAO(hoa=SERVICE)])
        / MIP6MH_BU(seq=7, flags="AH", mhtime=150)
    )
    c.append(("bad_truncated_ipv6", Raw(good_bu[:30])))
    c.append(("bad_truncated_mh", Raw(good_bu[: len(good_bu) - 6])))
    bad_csum = bytearray(good_bu)
    bad_csum[-12] ^= 0xFF  # MH checksum high byte (MH is the last 16 bytes; checksum at +4)
    c.append(("bad_mh_checksum", Raw(bytes(bad_csum))))
    bad_ver = bytearray(good_bu)
    bad_ver[14] = 0x40
    c.append(("bad_ip_version", Raw(bytes(bad_ver))))
    c.append(
        (
            "bad_rh2_segleft",
            e() / IPv6(src=CN, dst=COA) / IPv6ExtHdrRouting(type=2, segleft=0, addresses=[HOA]) / MIP6MH_BA(),
        )
    )
    c.append(("bad_udp_checksum", e() / IPv6(src=CLIENT, dst=SERVICE) / UDP(sport=1, dport=2, chksum=0x1234) / Raw(b"z")))
    return c
