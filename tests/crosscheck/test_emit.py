"""anycast6-wire's encoders against scapy and tshark: frames emitted by
`appliance/examples/emit_corpus.rs` must decode, in both, to the values written beside them
(PROTOCOL.md's vectors where they exist), their checksums must equal the ones scapy
recomputes, and the RFC 4285 authenticator must equal the one Python's `hmac` computes."""

import hashlib
import hmac
import ipaddress
import json
import subprocess

import pytest
from scapy.layers.l2 import Ether

from fields import NOT_FROM_TSHARK, agrees_with_tshark, scapy_fields, tshark_occurrences, tshark_value


@pytest.fixture(scope="module")
def emitted(tmp_path_factory, emit_corpus_bin):
    d = tmp_path_factory.mktemp("emit")
    pcap, meta = d / "emitted.pcap", d / "emitted.json"
    subprocess.run([str(emit_corpus_bin), str(pcap), str(meta)], check=True)
    from scapy.utils import rdpcap

    frames = [bytes(p) for p in rdpcap(str(pcap))]
    entries = json.loads(meta.read_text())
    assert len(frames) == len(entries) >= 20
    return frames, entries, tshark_occurrences(pcap)


def names():
    # The names are fixed by the example; listing them here keeps test ids readable.
    return [
        "hot_vector", "bu_vector", "bu_dereg_vector", "ba_vector", "bu_home_registration_auth",
        "ba_home_registration_bra", "ba_status_135", "be_status_2", "hoti", "coti", "cot", "brr",
        "bu_alternate_coa", "icmp_ptb", "icmp_dst_unreach", "icmp_time_exceeded", "icmp_param_problem",
        "icmp_echo_reply", "nd_ns", "nd_na", "tcp_syn_probe", "tcp_rst", "udp_vlan", "tunnel_udp",
        "tunnel_udp_tel",
    ]


def test_names_match_the_emitter(emitted):
    assert [e["name"] for e in emitted[1]] == names()


@pytest.mark.parametrize("name", names())
def test_scapy_and_tshark_decode_what_we_meant(emitted, name):
    frames, entries, occ = emitted
    i = [e["name"] for e in entries].index(name)
    expect = {k: v for k, v in entries[i]["expect"].items() if not k.startswith("_")}
    sf = scapy_fields(frames[i])
    for key, value in expect.items():
        assert sf.get(key) == value, f"scapy {key}: {sf.get(key)!r}, meant {value!r}"
        base = key[len("inner."):] if key.startswith("inner.") else key
        if base in NOT_FROM_TSHARK:
            continue
        theirs = tshark_value(occ[i], key, sf)
        assert theirs is not None and agrees_with_tshark(key, value, theirs), (
            f"tshark {key}: {theirs!r}, meant {value!r}"
        )


CHECKSUM_FIELDS = ("cksum", "chksum")


@pytest.mark.parametrize("name", names())
def test_checksums_equal_scapys(emitted, name):
    """Rebuild the frame in scapy with every upper-layer checksum cleared: scapy recomputes
    them (with RFC 6275's HAO/RH2 pseudo-header rules for the MH), and the bytes must be
    ours exactly."""
    frames, entries, _ = emitted
    i = [e["name"] for e in entries].index(name)
    pkt = Ether(frames[i])
    cleared = 0
    for layer in pkt.iterpayloads():
        lname = type(layer).__name__
        if lname.startswith(("IPerror6", "UDPerror", "TCPerror", "ICMPv6Error")):
            break  # the quoted packet of an ICMPv6 error keeps its own bytes
        for f in CHECKSUM_FIELDS:
            if f in layer.fields:
                layer.fields[f] = None
                cleared += 1
    assert cleared >= 1, "no checksum to recompute"
    assert bytes(pkt) == frames[i], "scapy's checksum differs from ours"


def _mh_offset(frame):
    """Offset of the Mobility Header in an Ethernet/IPv6 frame, walking extension headers."""
    off = 14
    nh = frame[off + 6]
    off += 40
    while nh in (0, 43, 60):
        nh, off = frame[off], off + (frame[off + 1] + 1) * 8
    assert nh == 135
    return off


def test_rfc4285_authenticator_matches_python_hmac(emitted):
    """RFC 4285 §5.1: First(96, HMAC_SHA1(key, CoA | HoA | MH data)), MH data = the MH up to
    and including the SPI, with the checksum zeroed."""
    frames, entries, _ = emitted
    e = next(x for x in entries if x["name"] == "bu_home_registration_auth")
    frame = frames[entries.index(e)]
    start = _mh_offset(frame)
    mh = bytearray(frame[start:])
    mh = mh[: (mh[1] + 1) * 8]
    mh[4:6] = b"\x00\x00"
    # The authentication option is last: type 9, length 17 = subtype 1 + SPI 4 + 12.
    auth_at = len(mh) - 19
    assert mh[auth_at] == 9 and mh[auth_at + 1] == 17 and mh[auth_at + 2] == 1
    data = (
        ipaddress.IPv6Address(e["expect"]["_care_of"]).packed
        + ipaddress.IPv6Address(e["expect"]["_home"]).packed
        + bytes(mh[: auth_at + 7])
    )
    want = hmac.new(bytes.fromhex(e["expect"]["_mn_ha_key"]), data, hashlib.sha1).digest()[:12]
    assert bytes(mh[auth_at + 7 :]) == want
