"""did:web from the public base URL, the DID document and the key it yields."""

from __future__ import annotations

import copy

import pytest

from creditbank.core.credentials.did import (
    did_document,
    did_document_url,
    did_web,
    key_from_did_document,
    verification_method_id,
)
from creditbank.core.credentials.proof import public_key_from_multibase, public_key_multibase
from creditbank.errors import InvalidInputError, VerificationError

KEY = bytes(range(32))


@pytest.mark.parametrize(
    ("url", "did", "doc_url"),
    [
        (
            "http://127.0.0.1:8000",
            "did:web:127.0.0.1%3A8000",
            "https://127.0.0.1:8000/.well-known/did.json",
        ),
        (
            "https://bank.example/",
            "did:web:bank.example",
            "https://bank.example/.well-known/did.json",
        ),
        (
            "https://bank.example/cb/v1",
            "did:web:bank.example:cb:v1",
            "https://bank.example/cb/v1/did.json",
        ),
        (
            "https://Bank.Example:8443",
            "did:web:bank.example%3A8443",
            "https://bank.example:8443/.well-known/did.json",
        ),
    ],
)
def test_did_web(url: str, did: str, doc_url: str) -> None:
    assert did_web(url) == did
    assert did_document_url(did) == doc_url


@pytest.mark.parametrize(
    "url", ["ftp://x.example", "https://x.example/?q=1", "not a url", "https://u:p@x.example"]
)
def test_bad_base_urls(url: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        did_web(url)
    assert e.value.code == "credential.base_url"


def test_document_and_key() -> None:
    did = did_web("http://127.0.0.1:8000")
    doc = did_document(did, KEY)
    vm = verification_method_id(did)
    assert vm == "did:web:127.0.0.1%3A8000#key-1"
    (method,) = doc["verificationMethod"]
    assert method["controller"] == did
    assert method["type"] == "Multikey"
    assert method["publicKeyMultibase"].startswith("z6Mk")
    assert public_key_from_multibase(method["publicKeyMultibase"]) == KEY
    assert doc["assertionMethod"] == [vm]
    assert key_from_did_document(doc, vm) == KEY


def test_multikey_of_a_known_key() -> None:
    # the W3C vc-di-eddsa key pair (tests/vectors/vc_di_eddsa/keyPair.json)
    text = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
    assert public_key_multibase(public_key_from_multibase(text)) == text
    with pytest.raises(InvalidInputError):
        public_key_from_multibase("z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq")


def test_documents_that_do_not_authorise_the_key() -> None:
    did = "did:web:bank.example"
    vm = verification_method_id(did)
    good = did_document(did, KEY)
    cases = []
    no_assertion = copy.deepcopy(good)
    no_assertion["assertionMethod"] = []
    cases.append(no_assertion)
    other_controller = copy.deepcopy(good)
    other_controller["verificationMethod"][0]["controller"] = "did:web:evil.example"
    cases.append(other_controller)
    bad_key = copy.deepcopy(good)
    bad_key["verificationMethod"][0]["publicKeyMultibase"] = "zzz"
    cases.append(bad_key)
    no_method = copy.deepcopy(good)
    no_method["verificationMethod"] = []
    cases.append(no_method)
    for doc in cases:
        with pytest.raises(VerificationError):
            key_from_did_document(doc, vm)
    with pytest.raises(VerificationError):
        key_from_did_document(good, "did:web:evil.example#key-1")
    with pytest.raises(VerificationError):
        key_from_did_document([], vm)
