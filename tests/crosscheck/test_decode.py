"""`anycast6 decode --json` against two independent decoders, scapy and tshark, on a corpus
of packets that scapy builds (corpus.py)."""

import pytest
from scapy.utils import wrpcap

from corpus import corpus
from fields import (
    KINDS,
    OWN_KEYS,
    after_fragment_header,
    agrees_with_tshark,
    decode_json,
    scapy_fields,
    tshark_occurrences,
    tshark_value,
)

CORPUS = corpus()


@pytest.fixture(scope="module")
def decoded(tmp_path_factory, anycast6_bin):
    pcap = tmp_path_factory.mktemp("decode") / "corpus.pcap"
    wrpcap(str(pcap), [p for _, p in CORPUS])
    ours = decode_json(anycast6_bin, pcap)
    assert len(ours) == len(CORPUS), "one JSON line per frame"
    return ours, tshark_occurrences(pcap)


def well_formed():
    return [(i, n) for i, (n, _) in enumerate(CORPUS) if not n.startswith("bad_")]


def malformed():
    return [(i, n) for i, (n, _) in enumerate(CORPUS) if n.startswith("bad_")]


def test_scapy_and_tshark_agree_on_the_corpus(decoded):
    """The two references agree with each other, so a disagreement with ours is ours."""
    _, occ = decoded
    for i, name in well_formed():
        sf = scapy_fields(bytes(CORPUS[i][1]))
        for key, value in sf.items():
            theirs = tshark_value(occ[i], key, sf)
            if theirs is None:
                continue
            assert agrees_with_tshark(key, value, theirs), f"{name}: {key}: scapy {value!r} tshark {theirs!r}"


@pytest.mark.parametrize("index,name", well_formed(), ids=[n for _, n in well_formed()])
def test_decode_agrees_with_scapy_and_tshark(decoded, index, name):
    ours_all, occ = decoded
    ours = ours_all[index]
    assert "error" not in ours, f"{name}: unexpected error {ours.get('error')}"
    assert ours["frame.number"] == index + 1
    assert ours["checksum_ok"] is True, f"{name}: a checksum did not verify"
    # Every field scapy sees, we see, with the same value.
    expected = scapy_fields(bytes(CORPUS[index][1]))
    for key, value in expected.items():
        assert key in ours, f"{name}: we do not decode {key} (scapy: {value!r})"
        assert ours[key] == value, f"{name}: {key}: ours {ours[key]!r}, scapy {value!r}"
    # Every field we decode that tshark knows, tshark decodes to the same value.
    compared = 0
    for key, value in ours.items():
        base = key[len("inner."):] if key.startswith("inner.") else key
        if key in OWN_KEYS or base.endswith("checksum_ok") or base not in KINDS:
            continue
        theirs = tshark_value(occ[index], key, ours)
        if theirs is None:
            assert base == "mip6.mseg_id.timestamp" or after_fragment_header(base, ours), (
                f"{name}: tshark does not decode {key} (ours {value!r})"
            )
            continue
        assert agrees_with_tshark(key, value, theirs), f"{name}: {key}: ours {value!r}, tshark {theirs!r}"
        compared += 1
    assert compared >= 8, f"{name}: only {compared} fields compared with tshark"


@pytest.mark.parametrize("index,name", malformed(), ids=[n for _, n in malformed()])
def test_decode_reports_malformed_frames(decoded, index, name):
    ours = decoded[0][index]
    assert ours["frame.number"] == index + 1
    if name in ("bad_mh_checksum", "bad_udp_checksum"):
        # A wrong checksum is a verdict, not a parse failure: fields still decode.
        assert ours["checksum_ok"] is False
    else:
        assert isinstance(ours.get("error"), str) and ours["error"], f"{name}: no error reported: {ours}"


def test_every_decoded_key_is_documented():
    """docs/decode.md lists every key the decoder can emit."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "decode.md").read_text()
    missing = [k for k in KINDS if f"`{k}`" not in doc]
    assert not missing, f"undocumented keys: {missing}"
