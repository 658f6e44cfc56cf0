"""W3C Bitstring Status List: bits, encoding, the status-list credential."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import pytest
from credential_fixtures import BASE_URL, World, make_world

from creditbank.core.credentials.proof import ProofError, verify_credential_proof
from creditbank.core.status_list import (
    MIN_BITS,
    StatusList,
    StatusListEntry,
    build_status_list_credential,
    decode_bits,
    encode_bits,
    parse_status_entry,
    status_of,
)
from creditbank.errors import InvalidInputError

#: the all-clear 16 KiB list as printed in the W3C Bitstring Status List v1.0 examples
SPEC_EMPTY = "uH4sIAAAAAAAAA-3BMQEAAADCoPVPbQwfoAAAAAAAAAAAAAAAAAAAAIC3AYbSVKsAQAAA"
LIST_URL = f"{BASE_URL}/api/v1/status/1"


def test_the_spec_example_decodes_to_131072_clear_bits() -> None:
    bits = StatusList.decode(SPEC_EMPTY)
    assert bits.size == MIN_BITS
    assert bits.set_indices() == []
    assert bits == StatusList()


def test_bit_zero_is_the_most_significant_bit_of_the_first_byte() -> None:
    sl = StatusList()
    sl.set(0)
    sl.set(9)
    sl.set(MIN_BITS - 1)
    raw = sl.to_bytes()
    assert raw[0] == 0x80
    assert raw[1] == 0x40
    assert raw[-1] == 0x01
    assert sl.set_indices() == [0, 9, MIN_BITS - 1]
    assert gzip.decompress(base64.urlsafe_b64decode(sl.encode()[1:] + "==")) == raw


def test_set_get_clear_round_trip() -> None:
    sl = StatusList.with_set([5, 94567])
    assert sl.get(94567)
    assert not sl.get(94566)
    sl.set(94567, False)
    assert not sl.get(94567)
    again = StatusList.decode(sl.encode())
    assert again.set_indices() == [5]
    assert sl.encode() == again.encode()  # deterministic GZIP (mtime 0)
    assert sl.encode().startswith("u")
    assert "=" not in sl.encode()


@pytest.mark.parametrize("index", [-1, MIN_BITS, True])
def test_out_of_range_index(index: Any) -> None:
    with pytest.raises(InvalidInputError) as e:
        StatusList().get(index)
    assert e.value.code == "status_list.index"


@pytest.mark.parametrize(
    "encoded",
    [
        "H4sIAAAAAAAAA",  # no multibase prefix
        "u!!!",
        "u" + base64.urlsafe_b64encode(b"not gzip").decode().rstrip("="),
        encode_bits(bytes(100)),  # too short
        "u"
        + base64.urlsafe_b64encode(gzip.compress(bytes(MIN_BITS // 8), mtime=0) + b"x").decode(),
        "u" + base64.urlsafe_b64encode(gzip.compress(bytes(1 << 24), mtime=0)).decode().rstrip("="),
    ],
)
def test_bad_encoded_lists_are_refused(encoded: str) -> None:
    with pytest.raises(InvalidInputError):
        decode_bits(encoded)


def test_sizes() -> None:
    with pytest.raises(InvalidInputError):
        StatusList(MIN_BITS - 8)
    with pytest.raises(InvalidInputError):
        StatusList(MIN_BITS + 1)
    assert StatusList(2 * MIN_BITS).size == 2 * MIN_BITS


def test_entry_round_trip() -> None:
    entry = StatusListEntry(LIST_URL, 94567)
    assert parse_status_entry(entry.to_json()) == entry
    for bad in ({**entry.to_json(), "statusListIndex": "094567"}, {**entry.to_json(), "type": "X"}):
        with pytest.raises(InvalidInputError):
            parse_status_entry(bad)
    with pytest.raises(InvalidInputError):
        StatusListEntry(LIST_URL, 1, "expiry")


@pytest.fixture(scope="module")
def world() -> World:
    return make_world()


def test_status_list_credential_signed_and_read(world: World) -> None:
    sl = StatusList.with_set([4242])
    doc = build_status_list_credential(
        sl, list_credential_url=LIST_URL, issuer=world.issuer.did, valid_from="2025-09-01T08:00:00Z"
    )
    assert doc["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert doc["credentialSubject"]["type"] == "BitstringStatusList"
    signed = world.sign(doc)
    verify_credential_proof(signed, world.bank_signer.public_bytes)
    revoked_cert = world.certificate_credential(world.certificate_record)  # index 4242
    current = world.transcript_credential()  # index 94567
    assert status_of(revoked_cert["credentialStatus"], signed) is True
    assert status_of(current["credentialStatus"], signed) is False
    flipped = dict(signed)
    flipped["credentialSubject"] = {
        **signed["credentialSubject"],
        "encodedList": StatusList().encode(),
    }
    with pytest.raises(ProofError):
        verify_credential_proof(flipped, world.bank_signer.public_bytes)
    other = {**signed, "id": f"{BASE_URL}/api/v1/status/2"}
    with pytest.raises(InvalidInputError) as e:
        status_of(current["credentialStatus"], other)
    assert e.value.code == "status_list.mismatch"
