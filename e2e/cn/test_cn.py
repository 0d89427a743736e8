"""Tests of the correspondent-node emulator: PROTOCOL §1.6 vectors, RFC 6275 §9 behaviour
against a simulated mobile node, tshark decoding and a network-namespace smoke test.

The simulated mobile node below builds its messages with scapy (scapy computes their
checksums) and its Kbm and authenticators with its own hmac/hashlib code, so the CN's
verifier is not checked against itself.
"""

import hashlib
import hmac
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HAO,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ParamProblem,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BU,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_Generic,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptNonceIndices,
)
from scapy.packet import Raw

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mip6cn  # noqa: E402
from mip6cn import CorrespondentNode, echo_application  # noqa: E402

# PROTOCOL §1.6 inputs (TAHI ct-2.1.1/mip6-mn-20/MN_mh.def, documentation prefixes).
KCN = bytes.fromhex("00112233445566778899aabbccddeeff00112233")
NONCE = bytes.fromhex("123456789abcdef0")
HOA = "2001:db8:1::100"
COA = "2001:db8:2::10"
CN = "2001:db8:3::1"
HOME_COOKIE = bytes.fromhex("0123456789abcdef")

HOME_TOKEN = "9b3568582d56e39d"
CARE_OF_TOKEN = "27534ca0e013263e"
KBM = "4734023e35a68418d8c217d7c1f543bad0df2629"
KBM_HOME_ONLY = "a2961ebb9c6204e1306645969251bd79d1d4d459"
HOT_MH = "3b020300b235000a0123456789abcdef9b3568582d56e39d"
BU_MH = "3b030500cb180001800000690404000a0014050cebbcf0131b2c9f8d6174162e"
DEREG_BU_MH = "3b0305000a980002800000000404000a0000050cab26b85fcfc5f652adeff79a"
BA_MH = "3b030600a729000000010069010400000000050cef84ecf524725e92437c113f"


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def new_cn(clock=None, **kw):
    return CorrespondentNode(CN, kcn=KCN, clock=clock or FakeClock(), **kw)


def mh_of(pkt):
    """The scapy Mobility Header layer of a raw packet."""
    p = IPv6(pkt)
    layer = p
    while layer:
        if type(layer).__name__.startswith("MIP6MH_"):
            return p, layer
        layer = layer.payload
    raise AssertionError(f"no Mobility Header in {p!r}")


def assert_scapy_checksum(pkt, layer):
    """scapy, recomputing the checksum with its own pseudo-header rules, agrees."""
    p = IPv6(pkt)
    name = "chksum" if layer is UDP else "cksum"
    sent = getattr(p[layer], name)
    setattr(p[layer], name, None)
    assert getattr(IPv6(bytes(p))[layer], name) == sent


# -- the simulated mobile node ----------------------------------------------------------------


def mn_auth(kbm, coa, cn, mh_zero_auth):
    data = mh_zero_auth[:4] + b"\0\0" + mh_zero_auth[6:-12]
    addr = lambda a: bytes(IPv6(src=a))[8:24]  # noqa: E731 - scapy packs the address
    return hmac.new(kbm, addr(coa) + addr(cn) + data, hashlib.sha1).digest()[:12]


class MobileNode:
    """A mobile node running return routability and sending Binding Updates (RFC 6275 §11)."""

    def __init__(self, hoa=HOA, coa=COA, cn=CN):
        self.hoa, self.coa, self.cn = hoa, coa, cn
        self.home = None  # (index, token)
        self.care_of = None

    def hoti(self, cookie=HOME_COOKIE):
        return bytes(IPv6(src=self.hoa, dst=self.cn) / MIP6MH_HoTI(cookie=cookie))

    def coti(self, cookie=b"\xab\xcd\xef\x01\x23\x45\x67\x89"):
        return bytes(IPv6(src=self.coa, dst=self.cn) / MIP6MH_CoTI(cookie=cookie))

    def take_test(self, pkt):
        p, mh = mh_of(pkt)
        assert_scapy_checksum(pkt, type(mh))
        if mh.mhtype == 3:  # MIP6MH_CoT subclasses MIP6MH_HoT
            assert p.dst == self.hoa
            self.home = (mh.index, bytes(mh.token))
        else:
            assert mh.mhtype == 4 and p.dst == self.coa
            self.care_of = (mh.index, bytes(mh.token))

    def run_rr(self, cn):
        for msg in (self.hoti(), self.coti()):
            out = cn.handle(msg)
            assert len(out) == 1
            self.take_test(out[0])

    def kbm(self, deletion):
        if deletion:
            return hashlib.sha1(self.home[1]).digest()
        return hashlib.sha1(self.home[1] + self.care_of[1]).digest()

    def bu(self, seq, lifetime=105, ack=True, from_home=False, tamper=False, alt_coa=None,
           home_registration=False, indices=None):
        deletion = lifetime == 0 or from_home
        coa_for_auth = self.hoa if from_home else (alt_coa or self.coa)
        hni = self.home[0] if self.home else 0
        coni = 0 if (from_home or not self.care_of) else self.care_of[0]
        if indices is not None:
            hni, coni = indices
        options = []
        if alt_coa:
            options.append(MIP6OptAltCoA(olen=16, acoa=alt_coa))
        options += [MIP6OptNonceIndices(olen=4, hni=hni, coni=coni),
                    MIP6OptBindingAuthData(olen=12, authenticator=0)]
        flags = ("A" if ack else "") + ("H" if home_registration else "")
        template = bytes(MIP6MH_BU(cksum=0, seq=seq, flags=flags or 0, mhtime=lifetime, options=options))
        auth = mn_auth(self.kbm(deletion), coa_for_auth, self.cn, template)
        if tamper:
            auth = bytes([auth[0] ^ 1]) + auth[1:]
        options[-1].authenticator = int.from_bytes(auth, "big")
        mh = MIP6MH_BU(seq=seq, flags=flags or 0, mhtime=lifetime, options=options)
        if from_home:
            return bytes(IPv6(src=self.hoa, dst=self.cn) / mh)
        return bytes(IPv6(src=self.coa, dst=self.cn) / IPv6ExtHdrDestOpt(options=[HAO(hoa=self.hoa)]) / mh)

    def check_ba(self, pkt, status, seq, lifetime, deletion=False, via_home=False):
        """Decode a BA, check addressing (§9.5.4), checksum and BAD (§5.2.6)."""
        p, ba = mh_of(pkt)
        assert isinstance(ba, MIP6MH_BA)
        assert (ba.status, ba.seq, ba.mhtime) == (status, seq, lifetime)
        assert p.src == self.cn
        if via_home:
            assert p.dst == self.hoa and IPv6ExtHdrRouting not in p
        else:
            assert p.dst == self.coa and p[IPv6ExtHdrRouting].type == 2
            assert p[IPv6ExtHdrRouting].addresses == [self.hoa]
        assert_scapy_checksum(pkt, MIP6MH_BA)
        raw_ba = bytes(ba)
        if status in (136, 137, 138):
            assert MIP6OptBindingAuthData not in ba and len(raw_ba) == 16
        else:
            assert raw_ba[-14:-12] == b"\x05\x0c"
            coa = self.hoa if via_home else self.coa
            assert raw_ba[-12:] == mn_auth(self.kbm(deletion), coa, self.cn, raw_ba)
        return ba


# -- PROTOCOL §1.6 vectors --------------------------------------------------------------------


def test_vector_tokens_and_kbm():
    hkt = mip6cn.home_keygen_token(KCN, HOA, NONCE)
    ckt = mip6cn.care_of_keygen_token(KCN, COA, NONCE)
    assert hkt.hex() == HOME_TOKEN
    assert ckt.hex() == CARE_OF_TOKEN
    assert mip6cn.binding_management_key(hkt, ckt).hex() == KBM
    assert mip6cn.binding_management_key(hkt).hex() == KBM_HOME_ONLY


def test_vector_hot_from_the_cn():
    cn = new_cn()
    cn.set_nonce(10, NONCE)
    (out,) = cn.handle(MobileNode().hoti())
    p, hot = mh_of(out)
    assert (p.src, p.dst) == (CN, HOA)
    assert bytes(hot).hex() == HOT_MH


def test_vector_messages_built():
    kbm = bytes.fromhex(KBM)
    bu = mip6cn.build_bu_mh(1, 105, 10, 20, kbm, COA, CN)
    assert mip6cn.with_mh_checksum(bu, HOA, CN).hex() == BU_MH  # pseudo-src = HoA from the HAO
    dereg = mip6cn.build_bu_mh(2, 0, 10, 0, bytes.fromhex(KBM_HOME_ONLY), HOA, CN)
    assert mip6cn.with_mh_checksum(dereg, HOA, CN).hex() == DEREG_BU_MH
    ba = mip6cn.build_ba_mh(0, 1, 105, kbm, COA, CN)
    assert mip6cn.with_mh_checksum(ba, CN, HOA).hex() == BA_MH  # pseudo-dst = HoA from the RH2
    hot = mip6cn.build_hot_mh(10, HOME_COOKIE, bytes.fromhex(HOME_TOKEN))
    assert mip6cn.with_mh_checksum(hot, CN, HOA).hex() == HOT_MH


def test_vector_checksums_agree_with_scapy():
    # scapy applies the HAO pseudo-header rule only when the Destination Options header's
    # option list is exactly [HAO], i.e. on a freshly built packet (a dissected one also
    # lists the PadN), so build it rather than re-dissect it.
    bu_mh = MIP6MH_BU(bytes.fromhex(BU_MH))
    bu_mh.cksum = None
    bu = bytes(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / bu_mh)
    assert IPv6(bu)[MIP6MH_BU].cksum == 0xCB18
    ba = mip6cn.ipv6_packet(CN, COA, 135, bytes.fromhex(BA_MH), routing_home_address=HOA)
    assert_scapy_checksum(ba, MIP6MH_BA)
    assert IPv6(ba)[MIP6MH_BA].cksum == 0xA729


def test_vector_bu_verified_by_the_cn_and_ba_matches():
    """Feed the §1.6 BU (CoA -> CN with HAO) to the CN with Kcn and nonce fixed; its BA
    must be the §1.6 BA byte for byte, then the de-registration BU from home removes it."""
    cn = new_cn()
    cn.set_nonce(10, NONCE)
    cn.set_nonce(20, NONCE)
    bu = mip6cn.ipv6_packet(COA, CN, 135, bytes.fromhex(BU_MH), home_address_option=HOA)
    (ba_pkt,) = cn.handle(bu)
    p, ba = mh_of(ba_pkt)
    assert bytes(ba).hex() == BA_MH
    assert (p.dst, p[IPv6ExtHdrRouting].addresses) == (COA, [HOA])
    assert cn.bindings()[HOA]["coa"] == COA and cn.bindings()[HOA]["seq"] == 1

    dereg = mip6cn.ipv6_packet(HOA, CN, 135, bytes.fromhex(DEREG_BU_MH))
    (ba_pkt,) = cn.handle(dereg)
    mn = MobileNode()
    mn.home = (10, bytes.fromhex(HOME_TOKEN))
    mn.check_ba(ba_pkt, 0, 2, 0, deletion=True, via_home=True)
    assert cn.bindings() == {}


def test_vector_bu_with_another_kcn_is_discarded():
    cn = CorrespondentNode(CN, kcn=bytes(20), clock=FakeClock())
    cn.set_nonce(10, NONCE)
    cn.set_nonce(20, NONCE)
    bu = mip6cn.ipv6_packet(COA, CN, 135, bytes.fromhex(BU_MH), home_address_option=HOA)
    assert cn.handle(bu) == []
    assert cn.bindings() == {}
    assert cn.events[-1]["reason"] == "BU authenticator mismatch"


def test_sequence_comparison_window():
    gt = mip6cn.sequence_greater
    assert gt(16, 15) and not gt(15, 15) and not gt(0, 15)
    assert not gt(32783, 15) and not gt(65535, 15) and gt(32782, 15)
    assert gt(0, 65535) and not gt(32768, 0) and gt(32767, 0)


# -- RFC 6275 §9 behaviour --------------------------------------------------------------------


def test_full_route_optimisation_exchange():
    clock = FakeClock()
    cn = new_cn(clock)
    mn = MobileNode()
    mn.run_rr(cn)
    assert mn.home[1] == mip6cn.home_keygen_token(KCN, HOA, cn.nonce_for_index(mn.home[0]))
    assert mn.care_of[1] == mip6cn.care_of_keygen_token(KCN, COA, cn.nonce_for_index(mn.care_of[0]))
    (ba,) = cn.handle(mn.bu(seq=7))
    mn.check_ba(ba, 0, 7, 105)
    assert cn.bindings() == {HOA: {"coa": COA, "seq": 7, "expires": clock.now + 420, "errors": 0}}
    # Without the A bit an accepted BU gets no BA (§9.5.4).
    assert cn.handle(mn.bu(seq=8, ack=False)) == []
    assert cn.bindings()[HOA]["seq"] == 8


def test_cot_goes_to_the_care_of_address_and_hoti_with_hao_is_discarded():
    cn = new_cn()
    mn = MobileNode()
    (cot,) = cn.handle(mn.coti(cookie=b"12345678"))
    p, mh = mh_of(cot)
    assert isinstance(mh, MIP6MH_CoT) and p.dst == COA and bytes(mh.cookie) == b"12345678"
    hoti_hao = bytes(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
                     / MIP6MH_HoTI(cookie=HOME_COOKIE))
    assert cn.handle(hoti_hao) == []
    coti_hao = bytes(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
                     / MIP6MH_CoTI(cookie=HOME_COOKIE))
    assert cn.handle(coti_hao) == []


def test_sequence_window_and_135_carries_the_last_number():
    cn = new_cn()
    mn = MobileNode()
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=100))
    for stale in (100, 99, 15, 100 + 32768, 100 + 32769):
        (ba,) = cn.handle(mn.bu(seq=stale, ack=False))  # 135 is sent whatever A says
        mn.check_ba(ba, 135, 100, 0)
    assert cn.bindings()[HOA]["seq"] == 100
    (ba,) = cn.handle(mn.bu(seq=101))
    mn.check_ba(ba, 0, 101, 105)
    # Wrap-around: 65535 then 0.
    for seq in (30000, 60000, 65535):
        cn.handle(mn.bu(seq=seq))
    assert cn.bindings()[HOA]["seq"] == 65535
    (ba,) = cn.handle(mn.bu(seq=0))
    mn.check_ba(ba, 0, 0, 105)


def test_wrong_authenticator_is_silently_discarded():
    cn = new_cn()
    mn = MobileNode()
    mn.run_rr(cn)
    assert cn.handle(mn.bu(seq=1, tamper=True)) == []
    assert cn.bindings() == {}
    # Also after a binding exists: no BA, binding unchanged, even with a stale sequence number.
    cn.handle(mn.bu(seq=5))
    assert cn.handle(mn.bu(seq=3, tamper=True)) == []
    assert cn.handle(mn.bu(seq=6, lifetime=0, tamper=True)) == []
    assert cn.bindings()[HOA]["seq"] == 5


@pytest.mark.parametrize("stale,status", [("home", 136), ("care_of", 137), ("both", 138)])
def test_expired_nonces(stale, status):
    clock = FakeClock()
    cn = new_cn(clock)
    mn = MobileNode()
    first, second = {"home": (mn.hoti, mn.coti), "care_of": (mn.coti, mn.hoti),
                     "both": (mn.hoti, mn.coti)}[stale]
    mn.take_test(cn.handle(first())[0])
    if stale == "both":
        mn.take_test(cn.handle(second())[0])
    clock.advance(mip6cn.MAX_NONCE_LIFETIME + 1)
    if stale != "both":
        mn.take_test(cn.handle(second())[0])
    (ba,) = cn.handle(mn.bu(seq=1, ack=False))
    mn.check_ba(ba, status, 1, 0)
    assert cn.bindings() == {}


def test_unknown_nonce_index_and_rotation():
    clock = FakeClock()
    cn = new_cn(clock)
    index0, _ = cn.current_nonce()
    clock.advance(29)
    assert cn.current_nonce()[0] == index0
    clock.advance(1)
    index1, _ = cn.current_nonce()
    assert index1 == (index0 + 1) & 0xFFFF
    # A nonce handed out just before rotation stays usable for MAX_TOKEN_LIFETIME.
    clock.advance(mip6cn.MAX_TOKEN_LIFETIME - 1)
    assert cn.nonce_for_index(index0) is not None
    clock.advance(mip6cn.MAX_NONCE_LIFETIME - mip6cn.MAX_TOKEN_LIFETIME)
    assert cn.nonce_for_index(index0) is None and cn.nonce_for_index(index1) is not None
    for _ in range(10):
        clock.advance(30)
        cn.current_nonce()
    assert len(cn._nonces) == mip6cn.NONCE_SLOTS
    mn = MobileNode()
    mn.run_rr(cn)
    unused = (mn.home[0] + 100) & 0xFFFF
    (ba,) = cn.handle(mn.bu(seq=1, indices=(unused, mn.care_of[0])))
    mn.check_ba(ba, 136, 1, 0)


def test_short_nonce_lifetime_expires_tokens_in_seconds():
    clock = FakeClock()
    cn = new_cn(clock, nonce_lifetime=4)
    index0, _ = cn.current_nonce()
    clock.advance(0.49)
    assert cn.current_nonce()[0] == index0
    clock.advance(0.01)
    assert cn.current_nonce()[0] == (index0 + 1) & 0xFFFF
    mn = MobileNode()
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=1))
    assert HOA in cn.bindings()
    # The binding outlives the nonces; a deletion with the old home index is refused as
    # expired (§9.5.1), a fresh HoT makes it acceptable again.
    clock.advance(4)
    (ba,) = cn.handle(mn.bu(seq=2, lifetime=0, from_home=True))
    mn.check_ba(ba, 136, 2, 0, via_home=True)
    assert HOA in cn.bindings()
    mn.take_test(cn.handle(mn.hoti())[0])
    (ba,) = cn.handle(mn.bu(seq=2, lifetime=0, from_home=True))
    mn.check_ba(ba, 0, 2, 0, deletion=True, via_home=True)
    assert cn.bindings() == {}
    # Back to the RFC value at run time.
    cn.set_nonce_lifetime(mip6cn.MAX_NONCE_LIFETIME)
    assert cn.nonce_regeneration_interval == mip6cn.NONCE_REGENERATION_INTERVAL == 30
    with pytest.raises(ValueError):
        cn.set_nonce_lifetime(0)


def test_lifetime_is_capped_and_the_binding_expires():
    clock = FakeClock()
    cn = new_cn(clock)
    mn = MobileNode()
    mn.run_rr(cn)
    (ba,) = cn.handle(mn.bu(seq=1, lifetime=0xFFFF))
    mn.check_ba(ba, 0, 1, 105)
    clock.advance(419)
    assert HOA in cn.bindings()
    clock.advance(1)
    assert cn.bindings() == {}
    assert any(e["event"] == "binding_expired" for e in cn.events)


def test_deletion_from_home_removes_the_binding():
    cn = new_cn()
    mn = MobileNode()
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=1))
    assert HOA in cn.bindings()
    # §11.5.4: from the home address, no HAO, lifetime 0, Kbm = SHA1(home token), care-of
    # index 0 (ignored by the CN).
    (ba,) = cn.handle(mn.bu(seq=2, lifetime=0, from_home=True))
    mn.check_ba(ba, 0, 2, 0, deletion=True, via_home=True)
    assert cn.bindings() == {}


def test_deletion_from_the_care_of_address_with_lifetime_zero():
    clock = FakeClock()
    cn = new_cn(clock)
    mn = MobileNode()
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=1))
    # The care-of nonce is not needed for a deletion: let it expire, refresh only the home one.
    clock.advance(mip6cn.MAX_NONCE_LIFETIME + 1)
    mn.take_test(cn.handle(mn.hoti())[0])
    (ba,) = cn.handle(mn.bu(seq=2, lifetime=0))
    mn.check_ba(ba, 0, 2, 0, deletion=True)
    assert cn.bindings() == {}


def test_alternate_care_of_address():
    cn = new_cn()
    mn = MobileNode()
    alt = "2001:db8:2::99"
    mn.take_test(cn.handle(mn.hoti())[0])
    (cot,) = cn.handle(bytes(IPv6(src=alt, dst=CN) / MIP6MH_CoTI(cookie=b"c" * 8)))
    _, mh = mh_of(cot)
    mn.care_of = (mh.index, bytes(mh.token))
    (ba,) = cn.handle(mn.bu(seq=1, alt_coa=alt))
    assert cn.bindings()[HOA]["coa"] == alt
    # The BA still goes to the BU's source (§9.5.4) and its BAD covers the alternate CoA.
    p, ba_mh = mh_of(ba)
    assert p.dst == COA and ba_mh.status == 0
    assert bytes(ba_mh)[-12:] == mn_auth(mn.kbm(False), alt, CN, bytes(ba_mh))


def test_home_registration_is_refused():
    cn = new_cn()
    mn = MobileNode()
    home_reg = bytes(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
                     / MIP6MH_BU(seq=1, flags="AH", mhtime=10))
    (ba,) = cn.handle(home_reg)
    _, ba_mh = mh_of(ba)
    assert ba_mh.status == 131 and MIP6OptBindingAuthData not in ba_mh
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=1))
    (ba,) = cn.handle(home_reg)
    assert mh_of(ba)[1].status == 139
    # H=1 with Nonce Indices is dropped (TAHI CN 5-3-x, UMIP).
    mn2 = MobileNode(hoa="2001:db8:1::200")
    mn2.run_rr(cn)
    assert cn.handle(mn2.bu(seq=1, home_registration=True)) == []


def test_four_destination_unreachables_delete_the_binding():
    cn = new_cn()
    mn = MobileNode()
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=1))
    data = cn.send_data(HOA, mip6cn.udp_datagram(7, 5000, b"x" * 40), 17)

    def unreachable(quoted, code=3, src="2001:db8:a::2"):
        return bytes(IPv6(src=src, dst=CN) / ICMPv6DestUnreach(code=code) / Raw(quoted))

    # A quote naming another CoA or no RH2 does not count.
    other = mip6cn.ipv6_packet(CN, "2001:db8:2::77", 17, b"\0" * 8, routing_home_address=HOA)
    assert cn.handle(unreachable(other)) == []
    assert cn.handle(unreachable(mip6cn.ipv6_packet(CN, HOA, 17, b"\0" * 8))) == []
    for n in (1, 2, 3):
        assert cn.handle(unreachable(data[:64], code=n % 2 * 2 + 1)) == []
        assert cn.bindings()[HOA]["errors"] == n
    # An accepted BU resets the count.
    cn.handle(mn.bu(seq=2))
    assert cn.bindings()[HOA]["errors"] == 0
    for n in (1, 2, 3):
        cn.handle(unreachable(data))
    assert HOA in cn.bindings()
    cn.handle(unreachable(data))
    assert cn.bindings() == {}
    assert cn.events[-1]["event"] == "binding_deleted"
    # With the binding gone, data goes to the home address again.
    assert IPv6(cn.send_data(HOA, mip6cn.udp_datagram(7, 5000, b"y"), 17)).dst == HOA


def test_data_to_a_bound_mobile_node_carries_rh2():
    cn = new_cn()
    direct = IPv6(cn.send_data(HOA, mip6cn.udp_datagram(7, 5000, b"hi"), 17))
    assert direct.dst == HOA and IPv6ExtHdrRouting not in direct
    mn = MobileNode()
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=1))
    pkt = cn.send_data(HOA, mip6cn.udp_datagram(7, 5000, b"hi"), 17)
    p = IPv6(pkt)
    assert p.dst == COA and p[IPv6ExtHdrRouting].type == 2 and p[IPv6ExtHdrRouting].segleft == 1
    assert p[IPv6ExtHdrRouting].addresses == [HOA] and bytes(p[UDP].payload) == b"hi"
    assert_scapy_checksum(pkt, UDP)  # pseudo-header destination = the home address


def test_hao_packets_accepted_or_answered_with_binding_error():
    cn = new_cn(application=echo_application(7))
    mn = MobileNode()

    def udp_from_coa(src=COA, data=b"ping"):
        return bytes(IPv6(src=src, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
                     / UDP(sport=4000, dport=7) / data)

    # No binding: dropped, Binding Error status 1 to the source, Home Address = the HAO's.
    (be,) = cn.handle(udp_from_coa())
    p, mh = mh_of(be)
    assert isinstance(mh, MIP6MH_BE) and mh.status == 1 and mh.ha == HOA
    assert p.dst == COA and IPv6ExtHdrRouting not in p
    assert_scapy_checksum(be, MIP6MH_BE)
    assert not cn.delivered
    mn.run_rr(cn)
    cn.handle(mn.bu(seq=1))
    # Bound: delivered as coming from the HoA; the echo goes to the CoA with an RH2.
    (echo,) = cn.handle(udp_from_coa(data=b"hello"))
    assert cn.delivered[-1].source == HOA and cn.delivered[-1].care_of_address == COA
    e = IPv6(echo)
    assert e.dst == COA and e[IPv6ExtHdrRouting].addresses == [HOA]
    assert bytes(e[UDP].payload) == b"hello" and (e[UDP].sport, e[UDP].dport) == (7, 4000)
    assert_scapy_checksum(echo, UDP)
    # From a different care-of address: rejected with BE 1.
    (be,) = cn.handle(udp_from_coa(src="2001:db8:2::55"))
    assert mh_of(be)[1].status == 1 and IPv6(be).dst == "2001:db8:2::55"


def test_binding_errors_are_rate_limited():
    clock = FakeClock()
    cn = new_cn(clock, error_burst=3, errors_per_second=1.0)
    pkt = bytes(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
                / UDP(sport=1, dport=7) / b"x")
    assert [len(cn.handle(pkt)) for _ in range(5)] == [1, 1, 1, 0, 0]
    clock.advance(1)
    assert len(cn.handle(pkt)) == 1


def test_unknown_mh_type_and_bad_payload_proto():
    cn = new_cn()
    unknown = bytes(IPv6(src=COA, dst=CN) / MIP6MH_Generic(mhtype=42, msg=b"\0" * 10))
    (be,) = cn.handle(unknown)
    assert mh_of(be)[1].status == 2 and mh_of(be)[1].ha == "::"
    hoti = IPv6(src=HOA, dst=CN) / MIP6MH_HoTI(nh=6, cookie=HOME_COOKIE)
    (pp,) = cn.handle(bytes(hoti))
    p = IPv6(pp)
    assert p[ICMPv6ParamProblem].code == 0 and p[ICMPv6ParamProblem].ptr == 40
    # A bad checksum is silently discarded.
    bad = bytearray(MobileNode().hoti())
    bad[44] ^= 0xFF
    assert cn.handle(bytes(bad)) == []


def test_icmp_echo_and_udp_echo_without_binding():
    cn = new_cn(application=echo_application(7))
    (reply,) = cn.handle(bytes(IPv6(src=HOA, dst=CN) / ICMPv6EchoRequest(id=5, seq=9, data=b"abc")))
    p = IPv6(reply)
    assert p.dst == HOA and p[ICMPv6EchoReply].id == 5 and bytes(p[ICMPv6EchoReply].data) == b"abc"
    assert_scapy_checksum(reply, ICMPv6EchoReply)
    (reply,) = cn.handle(bytes(IPv6(src=HOA, dst=CN) / UDP(sport=999, dport=7) / b"z"))
    assert IPv6(reply)[UDP].dport == 999
    assert cn.handle(bytes(IPv6(src=HOA, dst="2001:db8:3::2") / UDP(sport=999, dport=7) / b"z")) == []


def fix_mh_checksum(pkt):
    """Recompute the Mobility Header checksum of a (mutated) packet when it parses."""
    try:
        p = mip6cn.parse_packet(pkt)
    except mip6cn.Malformed:
        return pkt
    mh = p.upper
    if p.upper_proto != 135 or len(mh) < 8:
        return pkt
    fixed = mip6cn.with_mh_checksum(mh, p.home_address or p.src, p.dst)
    return p.data[:p.upper_offset] + fixed


def test_arbitrary_bytes_never_raise():
    rng = random.Random(6275)
    cn = new_cn(application=echo_application(7))
    mn = MobileNode()
    mn.run_rr(cn)
    seeds = [mn.hoti(), mn.coti(), mn.bu(seq=1), mn.bu(seq=2, from_home=True, lifetime=0),
             bytes(IPv6(src=COA, dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / UDP() / b"x")]
    for _ in range(4000):
        pkt = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(pkt))
            pkt[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            pkt = pkt[:rng.randrange(len(pkt))]
        if rng.random() < 0.5 and len(pkt) >= 40:
            pkt[4:6] = struct.pack("!H", max(0, len(pkt) - 40))  # keep the length consistent
            pkt[24:40] = bytes(IPv6(dst=CN))[24:40]
        if rng.random() < 0.7:
            pkt = bytearray(fix_mh_checksum(bytes(pkt)))  # reach past the checksum check
        for out in cn.handle(bytes(pkt)):
            assert IPv6(out).src == CN
    for n in range(0, 80):
        cn.handle(bytes(rng.randrange(256) for _ in range(n)))


# -- tshark -----------------------------------------------------------------------------------


def write_pcap(path, packets):
    """A pcap file with LINKTYPE_RAW (101) records."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for i, pkt in enumerate(packets):
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(pkt), len(pkt)) + pkt)


def walk(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_emitted_packets_decode_cleanly_in_tshark(tmp_path):
    clock = FakeClock()
    cn = new_cn(clock, application=echo_application(7))
    mn = MobileNode()
    hot, = cn.handle(mn.hoti())
    cot, = cn.handle(mn.coti())
    mn.take_test(hot)
    mn.take_test(cot)
    ba, = cn.handle(mn.bu(seq=1))
    ba135, = cn.handle(mn.bu(seq=1))
    be, = cn.handle(bytes(IPv6(src="2001:db8:2::55", dst=CN) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
                          / UDP(sport=4000, dport=7) / b"x"))
    data = cn.send_data(HOA, mip6cn.udp_datagram(7, 4000, b"data"), 17)
    clock.advance(300)
    ba138, = cn.handle(mn.bu(seq=2))
    packets = [hot, cot, ba, ba135, be, data, ba138]
    pcap = tmp_path / "cn.pcap"
    write_pcap(pcap, packets)
    res = subprocess.run(["tshark", "-r", str(pcap), "-T", "json"], capture_output=True, text=True,
                         check=True)
    assert "_ws.malformed" not in res.stdout and "_ws.expert" not in res.stdout
    frames = [f["_source"]["layers"] for f in json.loads(res.stdout)]
    assert len(frames) == len(packets)
    fields = [dict(walk(f)) for f in frames]
    assert [f.get("mip6.mhtype") for f in fields] == ["3", "4", "6", "6", "7", None, "6"]
    assert fields[0]["mip6.hot.cookie"] == "0x" + HOME_COOKIE.hex()
    assert fields[2]["mip6.ba.status"] == "0" and fields[2]["mip6.ba.lifetime"] == "105"
    assert fields[2]["ipv6.routing.mipv6.home_address"] == HOA
    assert fields[2]["mip6.bad.auth"].replace(":", "") == bytes(IPv6(ba)[MIP6MH_BA])[-12:].hex()
    assert (fields[3]["mip6.ba.status"], fields[3]["mip6.ba.seqnr"]) == ("135", "1")
    assert fields[4]["mip6.be.status"] == "1" and fields[4]["mip6.be.haddr"] == HOA
    assert fields[5]["ipv6.routing.mipv6.home_address"] == HOA and fields[5]["udp.dstport"] == "4000"
    assert fields[6]["mip6.ba.status"] == "138" and "mip6.bad.auth" not in fields[6]


# -- network namespace smoke test -------------------------------------------------------------

CLIENT = r"""
import json, socket, sys
from scapy.layers.inet6 import IPv6, MIP6MH_HoTI, MIP6MH_HoT
hoa, cn = sys.argv[1], sys.argv[2]
mh = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
mh.bind((hoa, 0))
mh.settimeout(5)
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
raw.sendto(bytes(IPv6(src=hoa, dst=cn) / MIP6MH_HoTI(cookie=b"smoketst")), (cn, 0))
data, addr = mh.recvfrom(2048)
udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp.bind((hoa, 0))
udp.settimeout(5)
udp.sendto(b"echo me", (cn, 7))
echo, echo_from = udp.recvfrom(2048)
print(json.dumps({"hot": data.hex(), "from": addr[0], "echo": echo.decode(), "echo_from": echo_from[0]}))
"""


def test_namespace_smoke(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace and a TUN device")
    if shutil.which("ip") is None or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs iproute2 and /dev/net/tun")
    ns = f"cntest{os.getpid()}"
    sock = tmp_path / "control.sock"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{HOA}/128", "dev", "lo"], check=True)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).parent / "run_cn.py"),
             "--address", CN, "--ifname", "cn0", "--kcn", KCN.hex(), "--control", str(sock)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["ifname"] == "cn0"
        res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, HOA, CN],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        hot = MIP6MH_HoT(bytes.fromhex(out["hot"]))
        assert out["from"] == CN and bytes(hot.cookie) == b"smoketst"
        # The token is the CN's, for its current nonce: check it through the control socket.
        import socket as socket_mod

        ctl = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM)
        ctl.connect(str(sock))
        ctl.sendall(b"events\n")
        events = json.loads(ctl.makefile().readline())["events"]
        ctl.close()
        sent = [e for e in events if e["event"] == "hot_sent"]
        assert sent and sent[0]["nonce_index"] == hot.index and sent[0]["dst"] == HOA
        assert out["echo"] == "echo me" and out["echo_from"] == CN
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_namespace_stream_and_nonce_commands(tmp_path):
    """run_cn.py's UDP stream against e2e/udpecho.py in one namespace: every datagram is
    answered, the answers name the server, and the nonce commands work."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace and a TUN device")
    if shutil.which("ip") is None or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs iproute2 and /dev/net/tun")
    import socket as socket_mod

    ns = f"cnstream{os.getpid()}"
    sock = tmp_path / "control.sock"

    def cmd(line):
        with socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_STREAM) as c:
            c.connect(str(sock))
            c.sendall(line.encode() + b"\n")
            return json.loads(c.makefile().readline())

    subprocess.run(["ip", "netns", "add", ns], check=True)
    procs = []
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{HOA}/128", "dev", "lo"], check=True)
        echo = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                 str(Path(__file__).parents[1] / "udpecho.py"), "--name", "srv", "--port", "7"],
                                stdout=subprocess.PIPE, text=True)
        procs.append(echo)
        assert json.loads(echo.stdout.readline())["event"] == "listening"
        cn = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).parent / "run_cn.py"),
                               "--address", CN, "--ifname", "cn0", "--control", str(sock),
                               "--nonce-lifetime", "8"],
                              stdout=subprocess.PIPE, text=True)
        procs.append(cn)
        assert json.loads(cn.stdout.readline())["event"] == "ready"
        assert cmd("nonce")["lifetime"] == 8.0
        assert cmd("nonce-lifetime 0")["ok"] is False
        assert cmd(f"stream {HOA} 7 50 41234")["ok"]
        assert cmd(f"stream {HOA} 7 50 41234")["ok"] is False  # one stream per source port
        time.sleep(1.0)
        (summary,) = cmd("stream-stop")["streams"]
        # The echo of the last datagram sent may still be on its way when the stream stops:
        # wait (bounded) for the answers to catch up instead of a fixed pause.
        deadline = time.monotonic() + 5.0
        while True:
            events = cmd("events")["events"]
            sent = [e for e in events if e["event"] == "stream_sent"]
            answers = [e for e in events if e["event"] == "stream_answer"]
            if len(answers) >= len(sent) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert summary["sent"] == len(sent) and 40 <= len(sent) <= 60, summary
        assert all(e["care_of_address"] is None for e in sent)  # no binding: straight to the HoA
        assert sorted(e["seq"] for e in answers) == [e["seq"] for e in sent]
        assert all(e["server"] == "srv" and e["source"] == HOA for e in answers)
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
