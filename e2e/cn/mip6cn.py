"""A Mobile IPv6 correspondent node (RFC 6275 §9), sans-I/O, for route-optimisation tests.

The correspondent node (CN) answers the return-routability test (HoTI/CoTI, RFC 6275 §5.2,
§9.4), verifies Binding Updates (§9.5.1), keeps a Binding Cache (§9.1, §9.5.2, §9.5.3),
sends Binding Acknowledgements and Binding Errors (§9.5.4, §9.3.3), sends data to a bound
mobile node with a Type 2 routing header (§9.3.2), accepts packets carrying a Home Address
option from a bound mobile node (§9.3.1) and deletes a binding after persistent ICMPv6
Destination Unreachable errors (§9.3.4, with UMIP's threshold of four errors).

It is deliberately independent of the appliance's Rust code: the Mobility Header messages
are built and parsed with scapy's MIP6 layers, the keygen tokens, Kbm and authenticators are
computed with the standard library's ``hmac``/``hashlib``, and the IPv6 header chain and
Internet checksums are handled here.

``CorrespondentNode.handle(packet)`` takes one raw IPv6 packet and returns the raw IPv6
packets to send in reply; nothing here touches a socket or a device (see run_cn.py for that).
Addresses in the API are text (``"2001:db8::1"``), returned in compressed canonical form.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import struct
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Optional

from scapy.layers.inet6 import (
    HAO,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BU,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptNonceIndices,
)
from scapy.packet import Raw

# IPv6 next-header values.
IPPROTO_HOPOPTS = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_MH = 135

# Mobility Header types (RFC 6275 §6.1.2-§6.1.9).
MH_BRR, MH_HOTI, MH_COTI, MH_HOT, MH_COT, MH_BU, MH_BA, MH_BE = range(8)
# Smallest Header Len per MH type (RFC 6275 §6.1.x fixed parts, §9.2 rule 4).
MH_MIN_HDRLEN = {MH_BRR: 0, MH_HOTI: 1, MH_COTI: 1, MH_HOT: 2, MH_COT: 2, MH_BU: 1, MH_BA: 1, MH_BE: 2}

HAO_OPTION_TYPE = 0xC9
BU_FLAG_A = 0x8000
BU_FLAG_H = 0x4000

# Binding Acknowledgement status codes (RFC 6275 §6.1.8).
BA_ACCEPTED = 0
BA_INSUFFICIENT_RESOURCES = 130
BA_HOME_REGISTRATION_NOT_SUPPORTED = 131
BA_SEQUENCE_OUT_OF_WINDOW = 135
BA_EXPIRED_HOME_NONCE = 136
BA_EXPIRED_CARE_OF_NONCE = 137
BA_EXPIRED_NONCES = 138
BA_REGISTRATION_TYPE_CHANGE = 139

# Binding Error status codes (RFC 6275 §6.1.9).
BE_UNKNOWN_BINDING_FOR_HAO = 1
BE_UNRECOGNIZED_MH_TYPE = 2

# RFC 6275 §12 protocol constants.
MAX_NONCE_LIFETIME = 240.0
MAX_TOKEN_LIFETIME = 210.0
MAX_RR_BINDING_LIFETIME = 420.0
# A new nonce every 30 s, keeping the last 8: a nonce handed out just before it is replaced
# stays usable for 8 * 30 - 30 = 210 s = MAX_TOKEN_LIFETIME, and none lives past 240 s.
NONCE_REGENERATION_INTERVAL = MAX_NONCE_LIFETIME / 8  # the default; see set_nonce_lifetime
NONCE_SLOTS = 8
# UMIP deletes a Binding Cache entry when its error count exceeds this, i.e. on the 4th
# Destination Unreachable (RFC 6275 §9.3.4 only says "persistent").
ICMP_ERROR_PERSISTENT_THRESHOLD = 3

KCN_LENGTH = 20
NONCE_LENGTH = 8
LIFETIME_UNIT = 4  # seconds per BU/BA lifetime unit (RFC 6275 §6.1.7)


class Malformed(ValueError):
    """The bytes are not a well-formed IPv6 packet of the kind this node processes."""


# --------------------------------------------------------------------------------------------
# Addresses, checksums and return-routability crypto
# --------------------------------------------------------------------------------------------


def canonical(address: str | bytes) -> str:
    """The compressed text form of an IPv6 address given as text or 16 raw bytes."""
    return str(ipaddress.IPv6Address(address))


def packed(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


def is_unicast_routable(address: str) -> bool:
    """RFC 6275 §9.5.1: home and care-of addresses must be unicast routable addresses."""
    a = ipaddress.IPv6Address(address)
    return not (a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local)


def internet_checksum(data: bytes) -> int:
    """The 16-bit one's complement of the one's complement sum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: str, dst: str, length: int, next_header: int) -> bytes:
    """The RFC 8200 §8.1 upper-layer checksum pseudo-header."""
    return packed(src) + packed(dst) + struct.pack("!I3xB", length, next_header)


def upper_layer_checksum(src: str, dst: str, next_header: int, message: bytes) -> int:
    """Checksum of ``message`` (its checksum field zeroed) for the given pseudo-header.

    ``src`` must be the home address when the packet carries a Home Address option and
    ``dst`` the final destination (the home address in a Type 2 routing header), per
    RFC 6275 §6.1.1 and RFC 8200 §8.1.
    """
    return internet_checksum(pseudo_header(src, dst, len(message), next_header) + message)


def checksum_ok(src: str, dst: str, next_header: int, message: bytes) -> bool:
    """True when ``message``, checksum field included, sums to zero with the pseudo-header."""
    return upper_layer_checksum(src, dst, next_header, message) == 0


def with_mh_checksum(mh: bytes, src: str, dst: str) -> bytes:
    """The Mobility Header ``mh`` with its checksum (RFC 6275 §6.1.1) filled in."""
    zeroed = mh[:4] + b"\x00\x00" + mh[6:]
    return zeroed[:4] + struct.pack("!H", upper_layer_checksum(src, dst, IPPROTO_MH, zeroed)) + zeroed[6:]


def home_keygen_token(kcn: bytes, home_address: str, nonce: bytes) -> bytes:
    """RFC 6275 §5.2.5: First(64, HMAC_SHA1(Kcn, home address | nonce | 0))."""
    return hmac.new(kcn, packed(home_address) + nonce + b"\x00", hashlib.sha1).digest()[:8]


def care_of_keygen_token(kcn: bytes, care_of_address: str, nonce: bytes) -> bytes:
    """RFC 6275 §5.2.5: First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1))."""
    return hmac.new(kcn, packed(care_of_address) + nonce + b"\x01", hashlib.sha1).digest()[:8]


def binding_management_key(home_token: bytes, care_of_token: Optional[bytes] = None) -> bytes:
    """RFC 6275 §5.2.5: Kbm = SHA1(home keygen token | care-of keygen token).

    For a deletion (lifetime 0 or care-of == home address, §5.2.5 last paragraphs) only the
    home keygen token is used: pass ``care_of_token=None``.
    """
    return hashlib.sha1(home_token + (care_of_token or b"")).digest()


def authenticator(kbm: bytes, care_of_address: str, correspondent: str, mh_data: bytes) -> bytes:
    """RFC 6275 §5.2.6: First(96, HMAC_SHA1(Kbm, care-of address | correspondent | MH data)).

    ``mh_data`` is the Mobility Header up to, not including, the 12 authenticator octets,
    with the checksum field zero.
    """
    zeroed = mh_data[:4] + b"\x00\x00" + mh_data[6:]
    message = packed(care_of_address) + packed(correspondent) + zeroed
    return hmac.new(kbm, message, hashlib.sha1).digest()[:12]


def sequence_greater(new: int, last: int) -> bool:
    """RFC 6275 §9.5.1: ``new`` is newer than ``last`` modulo 2**16 (UMIP MIP6_SEQ_GT).

    A difference of exactly 32768 is not newer.
    """
    diff = (new - last) & 0xFFFF
    return 0 < diff < 0x8000


# --------------------------------------------------------------------------------------------
# Mobility Header builders (scapy layers; checksum field left 0 unless stated)
# --------------------------------------------------------------------------------------------


def _bad_option() -> MIP6OptBindingAuthData:
    # scapy defaults olen to 16; RFC 6275 §6.2.7 gives 12 for the return-routability BAD.
    return MIP6OptBindingAuthData(olen=12, authenticator=0)


def _sign(mh: bytes, kbm: bytes, care_of_address: str, correspondent: str) -> bytes:
    """Fill the trailing BAD option's authenticator (RFC 6275 §5.2.6, §6.2.7)."""
    head = mh[:-12]
    return head + authenticator(kbm, care_of_address, correspondent, head)


def build_hot_mh(nonce_index: int, cookie: bytes, token: bytes) -> bytes:
    """Home Test (RFC 6275 §6.1.5), checksum 0."""
    return bytes(MIP6MH_HoT(cksum=0, index=nonce_index, cookie=cookie, token=token))


def build_cot_mh(nonce_index: int, cookie: bytes, token: bytes) -> bytes:
    """Care-of Test (RFC 6275 §6.1.6), checksum 0."""
    return bytes(MIP6MH_CoT(cksum=0, index=nonce_index, cookie=cookie, token=token))


def build_hoti_mh(cookie: bytes) -> bytes:
    """Home Test Init (RFC 6275 §6.1.3), checksum 0."""
    return bytes(MIP6MH_HoTI(cksum=0, cookie=cookie))


def build_coti_mh(cookie: bytes) -> bytes:
    """Care-of Test Init (RFC 6275 §6.1.4), checksum 0."""
    return bytes(MIP6MH_CoTI(cksum=0, cookie=cookie))


def build_ba_mh(
    status: int,
    sequence: int,
    lifetime_units: int,
    kbm: Optional[bytes] = None,
    care_of_address: Optional[str] = None,
    correspondent: Optional[str] = None,
) -> bytes:
    """Binding Acknowledgement (RFC 6275 §6.1.8), checksum 0.

    With ``kbm`` it carries a Binding Authorization Data option computed over
    ``care_of_address`` and ``correspondent`` (§5.2.6, §9.5.4); without, no options.
    """
    options = [_bad_option()] if kbm is not None else []
    mh = bytes(MIP6MH_BA(cksum=0, status=status, flags=0, res2=0, seq=sequence,
                         mhtime=lifetime_units, options=options))
    if kbm is not None:
        mh = _sign(mh, kbm, care_of_address, correspondent)
    return mh


def build_bu_mh(
    sequence: int,
    lifetime_units: int,
    home_nonce_index: int,
    care_of_nonce_index: int,
    kbm: bytes,
    care_of_address: str,
    correspondent: str,
    ack: bool = True,
    home_registration: bool = False,
    alternate_care_of: Optional[str] = None,
) -> bytes:
    """Binding Update to a correspondent (RFC 6275 §6.1.7, §11.7.2), checksum 0.

    Options: Alternate Care-of Address (if given), Nonce Indices, BAD (last).
    ``care_of_address`` is the address the authenticator covers: the Alternate CoA if
    given, else the source address (the home address for a BU sent from home).
    """
    flags = ("A" if ack else "") + ("H" if home_registration else "")
    options = []
    if alternate_care_of is not None:
        options.append(MIP6OptAltCoA(olen=16, acoa=alternate_care_of))
    options.append(MIP6OptNonceIndices(olen=4, hni=home_nonce_index, coni=care_of_nonce_index))
    options.append(_bad_option())
    mh = bytes(MIP6MH_BU(cksum=0, seq=sequence, flags=flags or 0, reserved=0,
                         mhtime=lifetime_units, options=options))
    return _sign(mh, kbm, care_of_address, correspondent)


def build_be_mh(status: int, home_address: str) -> bytes:
    """Binding Error (RFC 6275 §6.1.9), checksum 0."""
    return bytes(MIP6MH_BE(cksum=0, status=status, ha=home_address))


def ipv6_packet(
    src: str,
    dst: str,
    next_header: int,
    payload: bytes,
    routing_home_address: Optional[str] = None,
    home_address_option: Optional[str] = None,
    hop_limit: int = 64,
) -> bytes:
    """An IPv6 packet, optionally with a Type 2 routing header (RFC 6275 §6.4) and/or a
    Destination Options header holding a Home Address option (§6.3), in the order of
    RFC 8200 §4.1 (routing header before the destination options). The payload's own
    checksum is not touched."""
    headers = []
    if routing_home_address is not None:
        headers.append(IPv6ExtHdrRouting(type=2, segleft=1, addresses=[routing_home_address]))
    if home_address_option is not None:
        headers.append(IPv6ExtHdrDestOpt(options=[HAO(hoa=home_address_option)]))
    next_headers = [IPPROTO_ROUTING if isinstance(h, IPv6ExtHdrRouting) else IPPROTO_DSTOPTS
                    for h in headers] + [next_header]
    pkt = IPv6(src=src, dst=dst, hlim=hop_limit, nh=next_headers[0])
    for header, nh in zip(headers, next_headers[1:]):
        header.nh = nh
        pkt = pkt / header
    return bytes(pkt / Raw(payload))


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@dataclass
class ParsedPacket:
    """The parts of an IPv6 packet's header chain this node acts on."""

    data: bytes  # trimmed to the IPv6 payload length
    src: str
    dst: str
    home_address: Optional[str]  # from a Home Address option
    routing: list[tuple[int, int, bytes]]  # (routing type, segments left, header bytes)
    fragmented: bool
    upper_proto: int
    upper_offset: int

    @property
    def upper(self) -> bytes:
        return self.data[self.upper_offset:]


def _parse_destination_options(header: bytes) -> Optional[str]:
    """The Home Address option's address in a Destination Options header, if any."""
    home = None
    pos = 2
    while pos < len(header):
        opt_type = header[pos]
        if opt_type == 0:  # Pad1
            pos += 1
            continue
        if pos + 2 > len(header):
            raise Malformed("truncated destination option")
        opt_len = header[pos + 1]
        if pos + 2 + opt_len > len(header):
            raise Malformed("destination option overruns its header")
        if opt_type == HAO_OPTION_TYPE:
            if opt_len != 16:
                raise Malformed("Home Address option length is not 16")
            if home is not None:
                raise Malformed("more than one Home Address option")
            home = canonical(header[pos + 2:pos + 18])
        pos += 2 + opt_len
    return home


def parse_packet(packet: bytes) -> ParsedPacket:
    """Walk an IPv6 packet's extension headers (RFC 8200 §4) up to the upper-layer header."""
    if len(packet) < 40 or packet[0] >> 4 != 6:
        raise Malformed("not an IPv6 packet")
    payload_length = struct.unpack("!H", packet[4:6])[0]
    if 40 + payload_length > len(packet):
        raise Malformed("truncated IPv6 packet")
    data = bytes(packet[:40 + payload_length])
    nh = data[6]
    off = 40
    home = None
    routing = []
    fragmented = False
    while nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT):
        if nh == IPPROTO_HOPOPTS and off != 40:
            raise Malformed("Hop-by-Hop Options header not first")
        if off + 8 > len(data):
            raise Malformed("truncated extension header")
        length = 8 if nh == IPPROTO_FRAGMENT else (data[off + 1] + 1) * 8
        if off + length > len(data):
            raise Malformed("extension header overruns the packet")
        header = data[off:off + length]
        if nh == IPPROTO_DSTOPTS:
            found = _parse_destination_options(header)
            if found is not None:
                if home is not None:
                    raise Malformed("more than one Home Address option")
                home = found
        elif nh == IPPROTO_ROUTING:
            routing.append((header[2], header[3], header))
        elif nh == IPPROTO_FRAGMENT:
            fragmented = True
        nh = header[0]
        off += length
        if fragmented:
            break
    return ParsedPacket(data, canonical(data[8:24]), canonical(data[24:40]), home, routing,
                        fragmented, nh, off)


def quoted_routing_home_address(quoted: bytes) -> tuple[Optional[str], Optional[str], Optional[str]]:
    """(source, destination, RH2 home address) of a packet quoted in an ICMPv6 error.

    The quote may be truncated (RFC 4443 §2.4(c)), so anything missing is None.
    """
    if len(quoted) < 40 or quoted[0] >> 4 != 6:
        return None, None, None
    src, dst = canonical(quoted[8:24]), canonical(quoted[24:40])
    nh, off = quoted[6], 40
    while nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS) and off + 8 <= len(quoted):
        length = (quoted[off + 1] + 1) * 8
        if nh == IPPROTO_ROUTING and quoted[off + 2] == 2 and length == 24 and off + 24 <= len(quoted):
            return src, dst, canonical(quoted[off + 8:off + 24])
        nh, off = quoted[off], off + length
    return src, dst, None


_MH_CLASSES = {MH_HOTI: MIP6MH_HoTI, MH_COTI: MIP6MH_CoTI, MH_BU: MIP6MH_BU}
# RFC 6275 §6.2.x option data lengths for the options a CN acts on.
_OPTION_LENGTHS = {MIP6OptAltCoA: 16, MIP6OptNonceIndices: 4, MIP6OptBindingAuthData: 12,
                   MIP6OptBRAdvice: 2}


@dataclass
class BindingUpdateFields:
    sequence: int
    flags: int
    lifetime_units: int
    nonce_indices: Optional[tuple[int, int]]
    alternate_care_of: Optional[str]
    has_bad: bool
    bad_last: bool


def parse_binding_update(mh: bytes) -> BindingUpdateFields:
    """Decode a BU's fields and options (RFC 6275 §6.1.7, §6.2) with scapy."""
    try:
        bu = MIP6MH_BU(mh)
    except Exception as exc:  # scapy raises assorted errors on bad option framing
        raise Malformed(f"undecodable Binding Update: {exc}") from exc
    if bytes(bu.payload):
        raise Malformed("bytes after the Binding Update options")
    nonce_indices = None
    alternate = None
    has_bad = False
    options = list(bu.options)
    for opt in options:
        want = _OPTION_LENGTHS.get(type(opt))
        if want is not None and opt.olen != want:
            raise Malformed(f"{type(opt).__name__} length {opt.olen} instead of {want}")
        if isinstance(opt, MIP6OptNonceIndices) and nonce_indices is None:
            nonce_indices = (opt.hni, opt.coni)
        elif isinstance(opt, MIP6OptAltCoA) and alternate is None:
            alternate = canonical(opt.acoa)
        elif isinstance(opt, MIP6OptBindingAuthData):
            has_bad = True
        # Padding and any other option are skipped (RFC 6275 §6.2.1).
    # RFC 6275 §6.2.7: the BAD option is the last option; the MH then ends with its 12
    # authenticator octets, which the raw bytes must confirm.
    bad_last = (bool(options) and isinstance(options[-1], MIP6OptBindingAuthData)
                and len(mh) >= 26 and mh[-14] == 5 and mh[-13] == 12)
    flags = struct.unpack("!H", mh[8:10])[0]
    return BindingUpdateFields(bu.seq, flags, bu.mhtime, nonce_indices, alternate, has_bad, bad_last)


# --------------------------------------------------------------------------------------------
# The correspondent node
# --------------------------------------------------------------------------------------------


@dataclass
class BindingCacheEntry:
    """RFC 6275 §9.1 Binding Cache entry of a correspondent registration."""

    home_address: str
    care_of_address: str
    sequence: int
    expires: float
    errors: int = 0  # ICMPv6 Destination Unreachable count (§9.3.4)
    last_used: float = 0.0


@dataclass
class Delivery:
    """A packet handed to the application: ``source`` is the home address when the packet
    carried an accepted Home Address option (RFC 6275 §9.3.1)."""

    source: str
    destination: str
    proto: int
    payload: bytes
    care_of_address: Optional[str] = None


class TokenBucket:
    """RFC 4443 §2.4(f) style rate limiter (also used for Binding Errors, §9.3.3)."""

    def __init__(self, burst: int, per_second: float, now: float):
        self.burst = burst
        self.rate = per_second
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


Application = Callable[["CorrespondentNode", Delivery], list[tuple[int, bytes]]]


class CorrespondentNode:
    """A route-optimising correspondent node with one address.

    ``handle`` consumes raw IPv6 packets addressed to ``address`` and returns raw IPv6
    packets to send; ``send_data`` builds a packet to a (possibly bound) home address.
    ``application``, if given, is called with each ``Delivery`` and returns
    ``(next_header, upper-layer bytes)`` replies, sent back to the delivery's source with
    ``send_data``. ``clock`` returns seconds (monotonic); tests pass a fake one.
    """

    def __init__(
        self,
        address: str,
        kcn: Optional[bytes] = None,
        clock: Callable[[], float] = time.monotonic,
        application: Optional[Application] = None,
        max_bindings: int = 1024,
        error_burst: int = 10,
        errors_per_second: float = 10.0,
        on_event: Optional[Callable[[dict], None]] = None,
        nonce_lifetime: float = MAX_NONCE_LIFETIME,
    ):
        self.address = canonical(address)
        if kcn is None:
            kcn = secrets.token_bytes(KCN_LENGTH)
        if len(kcn) != KCN_LENGTH:
            raise ValueError("Kcn must be 20 octets (RFC 6275 §5.2.1)")
        self.kcn = bytes(kcn)
        self.clock = clock
        self.application = application
        self.max_bindings = max_bindings
        self.on_event = on_event
        self.events: list[dict] = []
        self.delivered: deque[Delivery] = deque(maxlen=1024)
        self._bindings: dict[str, BindingCacheEntry] = {}
        # index -> (nonce, creation time), oldest first.
        self._nonces: OrderedDict[int, tuple[bytes, float]] = OrderedDict()
        self._next_nonce_index = secrets.randbelow(0x10000)
        self.set_nonce_lifetime(nonce_lifetime)
        now = clock()
        self._be_bucket = TokenBucket(error_burst, errors_per_second, now)
        self._icmp_bucket = TokenBucket(error_burst, errors_per_second, now)

    # -- events and the Binding Cache -------------------------------------------------------

    def _log(self, event: str, **fields) -> None:
        record = {"time": self.clock(), "event": event, **fields}
        self.events.append(record)
        if self.on_event is not None:
            self.on_event(record)

    def record(self, event: str, **fields) -> None:
        """Add an event of the code driving this node (run_cn.py's UDP stream) to the log."""
        self._log(event, **fields)

    def expire(self) -> None:
        """Drop Binding Cache entries whose lifetime has run out (RFC 6275 §9.5.2)."""
        now = self.clock()
        for hoa in [h for h, e in self._bindings.items() if e.expires <= now]:
            del self._bindings[hoa]
            self._log("binding_expired", home_address=hoa)

    def binding(self, home_address: str) -> Optional[BindingCacheEntry]:
        self.expire()
        return self._bindings.get(canonical(home_address))

    def bindings(self) -> dict[str, dict]:
        """The Binding Cache: home address -> {coa, seq, expires, errors}."""
        self.expire()
        return {h: {"coa": e.care_of_address, "seq": e.sequence, "expires": e.expires,
                    "errors": e.errors} for h, e in self._bindings.items()}

    def delete_binding(self, home_address: str, reason: str) -> bool:
        entry = self._bindings.pop(canonical(home_address), None)
        if entry is not None:
            self._log("binding_deleted", home_address=entry.home_address,
                      care_of_address=entry.care_of_address, reason=reason)
        return entry is not None

    # -- nonces (RFC 6275 §5.2.2, §9.4) -----------------------------------------------------

    def set_nonce_lifetime(self, seconds: float) -> None:
        """How long a nonce is accepted (MAX_NONCE_LIFETIME by default).

        Tests shorten it to make a token expire in seconds; the regeneration interval
        scales with it (lifetime / NONCE_SLOTS) so the 8 kept slots still cover it, just
        as 30 s * 8 covers 240 s.
        """
        if not seconds > 0:
            raise ValueError("the nonce lifetime must be positive")
        self.nonce_lifetime = float(seconds)
        self.nonce_regeneration_interval = self.nonce_lifetime / NONCE_SLOTS

    def current_nonce(self) -> tuple[int, bytes]:
        """The nonce handed out now, regenerated every ``nonce_regeneration_interval``."""
        now = self.clock()
        if self._nonces:
            index = next(reversed(self._nonces))
            nonce, created = self._nonces[index]
            if now - created < self.nonce_regeneration_interval:
                return index, nonce
        index = self._next_nonce_index
        self._next_nonce_index = (index + 1) & 0xFFFF
        return index, self.set_nonce(index, secrets.token_bytes(NONCE_LENGTH))

    def set_nonce(self, index: int, nonce: bytes) -> bytes:
        """Install ``nonce`` under ``index`` as the current nonce (tests and vectors)."""
        self._nonces.pop(index, None)
        self._nonces[index] = (bytes(nonce), self.clock())
        while len(self._nonces) > NONCE_SLOTS:
            self._nonces.popitem(last=False)
        return bytes(nonce)

    def nonce_for_index(self, index: int) -> Optional[bytes]:
        """The nonce for ``index`` if it is still valid (younger than ``nonce_lifetime``)."""
        found = self._nonces.get(index)
        if found is None or self.clock() - found[1] >= self.nonce_lifetime:
            return None
        return found[0]

    # -- input ------------------------------------------------------------------------------

    def handle(self, packet: bytes) -> list[bytes]:
        """Process one raw IPv6 packet; return the raw IPv6 packets to send in reply."""
        self.expire()
        try:
            p = parse_packet(packet)
        except Malformed as exc:
            self._log("drop", reason=str(exc))
            return []
        if p.dst != self.address:
            self._log("drop", reason="not addressed to this node", dst=p.dst)
            return []
        if p.fragmented:
            self._log("drop", reason="fragments are not reassembled", src=p.src)
            return []
        if any(segleft != 0 for _, segleft, _ in p.routing):
            # RFC 8200 §4.4: a routing header with segments left would make us forward.
            self._log("drop", reason="routing header with segments left", src=p.src)
            return []
        try:
            if p.upper_proto == IPPROTO_MH:
                return self._handle_mh(p)
            return self._handle_data(p)
        except Malformed as exc:
            self._log("drop", reason=str(exc), src=p.src)
            return []

    def _hao_accepted(self, p: ParsedPacket) -> bool:
        """RFC 6275 §9.3.1: a Home Address option needs a binding for it from this CoA."""
        entry = self._bindings.get(p.home_address)
        if entry is not None and entry.care_of_address == p.src:
            entry.last_used = self.clock()
            return True
        return False

    def _handle_data(self, p: ParsedPacket) -> list[bytes]:
        source = p.src
        if p.home_address is not None:
            if not self._hao_accepted(p):
                self._log("drop", reason="no binding for the Home Address option",
                          src=p.src, home_address=p.home_address)
                return self._binding_error(p, BE_UNKNOWN_BINDING_FOR_HAO)
            source = p.home_address
        payload = p.upper
        if p.upper_proto in (IPPROTO_ICMPV6, IPPROTO_UDP, IPPROTO_TCP):
            if not checksum_ok(source, self.address, p.upper_proto, payload):
                self._log("drop", reason="bad upper-layer checksum", src=p.src, proto=p.upper_proto)
                return []
        if p.upper_proto == IPPROTO_ICMPV6 and len(payload) >= 8 and payload[0] == 1:
            return self._destination_unreachable(p)
        delivery = Delivery(source, self.address, p.upper_proto, payload,
                            p.src if p.home_address is not None else None)
        self.delivered.append(delivery)
        self._log("deliver", src=source, care_of_address=delivery.care_of_address,
                  proto=p.upper_proto, length=len(payload))
        out = []
        if self.application is not None:
            for proto, reply in self.application(self, delivery):
                out.append(self.send_data(source, reply, proto))
        return out

    def _destination_unreachable(self, p: ParsedPacket) -> list[bytes]:
        """RFC 6275 §9.3.4: count Destination Unreachable errors per binding (found from
        the quoted packet's destination and RH2 home address); delete on the 4th."""
        quoted_src, quoted_dst, home = quoted_routing_home_address(p.upper[8:])
        entry = self._bindings.get(home) if home is not None else None
        if quoted_src != self.address or entry is None or entry.care_of_address != quoted_dst:
            self._log("icmp_unreachable_ignored", src=p.src, quoted_dst=quoted_dst, home_address=home)
            return []
        entry.errors += 1
        self._log("icmp_unreachable", src=p.src, home_address=home, care_of_address=quoted_dst,
                  code=p.upper[1], errors=entry.errors)
        if entry.errors > ICMP_ERROR_PERSISTENT_THRESHOLD:
            self.delete_binding(home, "persistent ICMPv6 Destination Unreachable")
        return []

    def _handle_mh(self, p: ParsedPacket) -> list[bytes]:
        """RFC 6275 §9.2 Mobility Header receive checks, then per-type processing."""
        mh = p.upper
        if len(mh) < 8:
            raise Malformed("Mobility Header shorter than 8 octets")
        total = (mh[1] + 1) * 8
        if len(mh) < total:
            raise Malformed("Mobility Header overruns the packet")
        mh = mh[:total]
        checksum_src = p.home_address or p.src
        if not checksum_ok(checksum_src, self.address, IPPROTO_MH, mh):
            self._log("drop", reason="bad Mobility Header checksum", src=p.src)
            return []
        mh_type = mh[2]
        if mh_type not in MH_MIN_HDRLEN:
            self._log("drop", reason="unknown MH type", mh_type=mh_type, src=p.src)
            return self._binding_error(p, BE_UNRECOGNIZED_MH_TYPE)
        if mh[0] != IPPROTO_NONE:
            self._log("drop", reason="MH payload proto is not 59", src=p.src)
            return self._parameter_problem(p, p.upper_offset)
        if mh[1] < MH_MIN_HDRLEN[mh_type]:
            self._log("drop", reason="MH header length too small", mh_type=mh_type, src=p.src)
            return self._parameter_problem(p, p.upper_offset + 1)
        if mh_type in (MH_HOTI, MH_COTI):
            return self._test_init(p, mh)
        if mh_type == MH_BU:
            return self._binding_update(p, mh)
        if p.home_address is not None and not self._hao_accepted(p):
            # RFC 6275 §9.3.1: only a BU may carry an HAO without a matching binding.
            self._log("drop", reason="no binding for the Home Address option",
                      src=p.src, home_address=p.home_address)
            return self._binding_error(p, BE_UNKNOWN_BINDING_FOR_HAO)
        self._log("mh_ignored", mh_type=mh_type, src=p.src)
        return []

    def _test_init(self, p: ParsedPacket, mh: bytes) -> list[bytes]:
        """RFC 6275 §9.4.1/§9.4.2: answer HoTI with HoT to the home address and CoTI with CoT
        to the care-of address, statelessly; discard either when it carries an HAO."""
        kind = "HoTI" if mh[2] == MH_HOTI else "CoTI"
        if p.home_address is not None:
            self._log("drop", reason=f"{kind} with a Home Address option", src=p.src)
            return []
        if not is_unicast_routable(p.src):
            self._log("drop", reason=f"{kind} from a non-unicast source", src=p.src)
            return []
        cookie = mh[8:16]
        index, nonce = self.current_nonce()
        if kind == "HoTI":
            reply = build_hot_mh(index, cookie, home_keygen_token(self.kcn, p.src, nonce))
        else:
            reply = build_cot_mh(index, cookie, care_of_keygen_token(self.kcn, p.src, nonce))
        reply = with_mh_checksum(reply, self.address, p.src)
        self._log("hot_sent" if kind == "HoTI" else "cot_sent", dst=p.src, nonce_index=index,
                  cookie=cookie.hex())
        return [ipv6_packet(self.address, p.src, IPPROTO_MH, reply)]

    def _binding_update(self, p: ParsedPacket, mh: bytes) -> list[bytes]:
        """RFC 6275 §9.5.1-§9.5.4: verify a Binding Update and update the Binding Cache."""
        home = p.home_address or p.src
        if not is_unicast_routable(home):
            self._log("drop", reason="home address is not unicast routable", home_address=home)
            return []
        bu = parse_binding_update(mh)
        seq = bu.sequence
        if bu.flags & BU_FLAG_H:
            if bu.nonce_indices is not None:
                self._log("drop", reason="home registration BU with Nonce Indices", home_address=home)
                return []
            status = (BA_REGISTRATION_TYPE_CHANGE if home in self._bindings
                      else BA_HOME_REGISTRATION_NOT_SUPPORTED)
            return [self._binding_ack(p, home, status, seq, 0, None, None)]
        if bu.nonce_indices is None or not bu.has_bad or not bu.bad_last:
            self._log("drop", reason="BU without Nonce Indices and a last BAD option", home_address=home)
            return []
        care_of = bu.alternate_care_of or p.src
        if not is_unicast_routable(care_of):
            self._log("drop", reason="care-of address is not unicast routable", care_of_address=care_of)
            return []
        deletion = bu.lifetime_units == 0 or care_of == home
        home_index, care_of_index = bu.nonce_indices
        home_nonce = self.nonce_for_index(home_index)
        # §5.2.5/§9.5.1: a deletion uses the home keygen token only; the care-of index is ignored.
        care_of_nonce = None if deletion else self.nonce_for_index(care_of_index)
        status = None
        if home_nonce is None and (deletion or care_of_nonce is None):
            status = BA_EXPIRED_HOME_NONCE if deletion else BA_EXPIRED_NONCES
        elif home_nonce is None:
            status = BA_EXPIRED_HOME_NONCE
        elif not deletion and care_of_nonce is None:
            status = BA_EXPIRED_CARE_OF_NONCE
        if status is not None:
            self._log("bu_rejected", src=p.src, home_address=home, status=status, seq=seq)
            # §9.5.4: sent whatever the A bit says, and without BAD.
            return [self._binding_ack(p, home, status, seq, 0, None, care_of)]
        home_token = home_keygen_token(self.kcn, home, home_nonce)
        care_of_token = None if deletion else care_of_keygen_token(self.kcn, care_of, care_of_nonce)
        kbm = binding_management_key(home_token, care_of_token)
        expected = authenticator(kbm, care_of, self.address, mh[:-12])
        if not hmac.compare_digest(expected, mh[-12:]):
            self._log("drop", reason="BU authenticator mismatch", src=p.src, home_address=home, seq=seq)
            return []
        entry = self._bindings.get(home)
        if entry is not None and not sequence_greater(seq, entry.sequence):
            self._log("bu_rejected", src=p.src, home_address=home, status=BA_SEQUENCE_OUT_OF_WINDOW,
                      seq=seq, last=entry.sequence)
            return [self._binding_ack(p, home, BA_SEQUENCE_OUT_OF_WINDOW, entry.sequence, 0, kbm, care_of)]
        ack = bool(bu.flags & BU_FLAG_A)
        if deletion:
            # §9.5.3: delete any binding and create none.
            self.delete_binding(home, "deregistration BU")
            self._log("bu_accepted", src=p.src, home_address=home, care_of_address=care_of, seq=seq,
                      lifetime=0)
            return [self._binding_ack(p, home, BA_ACCEPTED, seq, 0, kbm, care_of)] if ack else []
        if entry is None and len(self._bindings) >= self.max_bindings:
            self._log("bu_rejected", src=p.src, home_address=home, status=BA_INSUFFICIENT_RESOURCES,
                      seq=seq)
            return [self._binding_ack(p, home, BA_INSUFFICIENT_RESOURCES, seq, 0, kbm, care_of)]
        granted = min(bu.lifetime_units, int(MAX_RR_BINDING_LIFETIME) // LIFETIME_UNIT)
        now = self.clock()
        self._bindings[home] = BindingCacheEntry(home, care_of, seq, now + granted * LIFETIME_UNIT,
                                                 errors=0, last_used=now)
        self._log("bu_accepted", src=p.src, home_address=home, care_of_address=care_of, seq=seq,
                  lifetime=granted * LIFETIME_UNIT)
        return [self._binding_ack(p, home, BA_ACCEPTED, seq, granted, kbm, care_of)] if ack else []

    # -- output -----------------------------------------------------------------------------

    def _binding_ack(self, p: ParsedPacket, home: str, status: int, seq: int, lifetime: int,
                     kbm: Optional[bytes], care_of: Optional[str]) -> bytes:
        """RFC 6275 §9.5.4: BA to the BU's source, with an RH2 holding the home address
        unless the BU came from the home address itself."""
        mh = build_ba_mh(status, seq, lifetime, kbm, care_of, self.address)
        # The checksum's pseudo-header uses the final destination: the home address (§6.1.1).
        mh = with_mh_checksum(mh, self.address, home)
        via = home if p.home_address is not None else None
        self._log("ba_sent", dst=p.src, home_address=home, status=status, seq=seq,
                  lifetime=lifetime * LIFETIME_UNIT, authenticated=kbm is not None)
        return ipv6_packet(self.address, p.src, IPPROTO_MH, mh, routing_home_address=via)

    def _binding_error(self, p: ParsedPacket, status: int) -> list[bytes]:
        """RFC 6275 §9.3.3: rate-limited Binding Error to the packet's source."""
        if not self._be_bucket.take(self.clock()):
            self._log("be_rate_limited", dst=p.src, status=status)
            return []
        mh = build_be_mh(status, p.home_address or "::")
        mh = with_mh_checksum(mh, self.address, p.src)
        self._log("be_sent", dst=p.src, status=status, home_address=p.home_address or "::")
        return [ipv6_packet(self.address, p.src, IPPROTO_MH, mh)]

    def _parameter_problem(self, p: ParsedPacket, pointer: int) -> list[bytes]:
        """RFC 6275 §9.2 / RFC 4443 §3.4: Parameter Problem code 0 to the source address."""
        if not is_unicast_routable(p.src) or not self._icmp_bucket.take(self.clock()):
            return []
        # RFC 4443 §2.4(c): as much of the invoking packet as fits in 1280 octets.
        quoted = p.data[:1280 - 40 - 8]
        icmp = struct.pack("!BBHI", 4, 0, 0, pointer) + quoted
        cs = upper_layer_checksum(self.address, p.src, IPPROTO_ICMPV6, icmp)
        icmp = icmp[:2] + struct.pack("!H", cs) + icmp[4:]
        self._log("icmp_parameter_problem_sent", dst=p.src, pointer=pointer)
        return [ipv6_packet(self.address, p.src, IPPROTO_ICMPV6, icmp)]

    def send_data(self, dst_home: str, payload_l4: bytes, proto: int) -> bytes:
        """A packet from this node to ``dst_home`` (RFC 6275 §9.3.2).

        With a Binding Cache entry: Dst = care-of address and a Type 2 routing header
        holding the home address; otherwise Dst = the home address. For UDP, TCP and
        ICMPv6 the transport checksum is (re)computed with the home address as the final
        destination, so callers may leave it 0.
        """
        home = canonical(dst_home)
        self.expire()
        entry = self._bindings.get(home)
        l4 = bytearray(payload_l4)
        offset = {IPPROTO_UDP: 6, IPPROTO_TCP: 16, IPPROTO_ICMPV6: 2}.get(proto)
        if offset is not None:
            if len(l4) < offset + 2:
                raise ValueError("upper-layer payload too short for its checksum field")
            l4[offset:offset + 2] = b"\x00\x00"
            cs = upper_layer_checksum(self.address, home, proto, bytes(l4))
            if proto == IPPROTO_UDP and cs == 0:
                cs = 0xFFFF  # RFC 8200 §8.1: a computed UDP checksum of 0 is sent as 0xFFFF
            l4[offset:offset + 2] = struct.pack("!H", cs)
        if entry is not None:
            entry.last_used = self.clock()
            self._log("data_sent", dst=entry.care_of_address, home_address=home, proto=proto,
                      routing_header=True)
            return ipv6_packet(self.address, entry.care_of_address, proto, bytes(l4),
                               routing_home_address=home)
        self._log("data_sent", dst=home, home_address=home, proto=proto, routing_header=False)
        return ipv6_packet(self.address, home, proto, bytes(l4))


def echo_application(udp_port: int = 7) -> Application:
    """An application that echoes UDP datagrams sent to ``udp_port`` (RFC 862) and answers
    ICMPv6 Echo Requests (RFC 4443 §4.2); replies go to the (home) source address."""

    def app(cn: CorrespondentNode, d: Delivery) -> list[tuple[int, bytes]]:
        if d.proto == IPPROTO_UDP and len(d.payload) >= 8:
            sport, dport = struct.unpack("!HH", d.payload[:4])
            if dport == udp_port:
                data = d.payload[8:]
                return [(IPPROTO_UDP, struct.pack("!HHHH", dport, sport, 8 + len(data), 0) + data)]
        if d.proto == IPPROTO_ICMPV6 and len(d.payload) >= 8 and d.payload[0] == 128:
            return [(IPPROTO_ICMPV6, b"\x81\x00\x00\x00" + d.payload[4:])]
        return []

    return app


def udp_datagram(sport: int, dport: int, data: bytes) -> bytes:
    """A UDP header and payload with checksum 0 (``send_data`` fills it in)."""
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
