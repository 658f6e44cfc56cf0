"""The bank's ``did:web`` identifier, its DID document and the verification method id.

``did:web`` (W3C CCG DID Method Web): the host of the public base URL, with a port's ``:``
percent-encoded, then each path segment after ``:``. ``http://127.0.0.1:8000`` →
``did:web:127.0.0.1%3A8000``; ``https://bank.example/cb`` → ``did:web:bank.example:cb``. The
document is served at ``/.well-known/did.json`` (no path) or ``/<path>/did.json``.

The DID document lists one Ed25519 ``Multikey`` verification method ``<did>#key-1``, whose
controller is the DID itself, referenced from ``assertionMethod`` (credentials) and
``authentication``. A credential's ``issuer`` is the DID (vc-verify checks issuer == controller).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

from creditbank.core.credentials.proof import public_key_from_multibase, public_key_multibase
from creditbank.errors import InvalidInputError, VerificationError

DID_CONTEXT: Final = "https://www.w3.org/ns/did/v1"
MULTIKEY_CONTEXT: Final = "https://w3id.org/security/multikey/v1"
KEY_FRAGMENT: Final = "key-1"


def _split(public_base_url: str) -> tuple[str, list[str]]:
    parts = urlsplit(public_base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(
            f"public base URL {public_base_url!r} is not an http(s) URL", code="credential.base_url"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInputError(
            "public base URL must not carry a query, fragment or credentials",
            code="credential.base_url",
        )
    host = parts.hostname
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    segments = [s for s in parts.path.split("/") if s]
    return host, segments


def did_web(public_base_url: str) -> str:
    """The ``did:web`` of the bank served at ``public_base_url``.

    Raises:
        InvalidInputError: ``credential.base_url`` if the URL is not a plain http(s) URL.
    """
    host, segments = _split(public_base_url)
    return ":".join(["did:web", quote(host, safe="")] + [quote(s, safe="") for s in segments])


def did_document_url(did: str, *, scheme: str = "https") -> str:
    """Where a resolver fetches the DID document of a ``did:web``.

    Raises:
        InvalidInputError: ``credential.did`` if ``did`` is not a ``did:web``.
    """
    if not did.startswith("did:web:") or len(did) <= len("did:web:"):
        raise InvalidInputError(f"{did!r} is not a did:web", code="credential.did")
    host, *segments = did[len("did:web:") :].split(":")
    path = "/".join(unquote(s) for s in segments) if segments else ".well-known"
    return f"{scheme}://{unquote(host)}/{path}/did.json"


def verification_method_id(did: str) -> str:
    """The id of the bank's credential key: ``<did>#key-1``."""
    return f"{did}#{KEY_FRAGMENT}"


def did_document(did: str, public_key: bytes) -> dict[str, Any]:
    """The DID document of the bank's issuer key (Multikey, ``z6Mk…``).

    Raises:
        InvalidInputError: ``key.bad_public`` unless ``public_key`` is 32 bytes.
    """
    vm = verification_method_id(did)
    return {
        "@context": [DID_CONTEXT, MULTIKEY_CONTEXT],
        "id": did,
        "verificationMethod": [
            {
                "id": vm,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": public_key_multibase(public_key),
            }
        ],
        "assertionMethod": [vm],
        "authentication": [vm],
    }


def key_from_did_document(document: Any, verification_method: str) -> bytes:
    """The raw Ed25519 key a DID document gives for an assertion method.

    The method must be listed in ``assertionMethod`` and its controller must be the document's
    DID (the part of the method id before ``#``).

    Raises:
        VerificationError: ``verify.did_document`` if the document does not authorise the
            method for assertions or does not carry an Ed25519 Multikey for it.
    """

    def fail(why: str) -> VerificationError:
        return VerificationError(why, code="verify.did_document")

    if not isinstance(document, dict):
        raise fail("the DID document is not an object")
    did = document.get("id")
    if not isinstance(did, str) or verification_method.split("#", 1)[0] != did:
        raise fail("the verification method does not belong to this DID document")
    assertion = document.get("assertionMethod")
    if not isinstance(assertion, list) or not any(
        a == verification_method or (isinstance(a, dict) and a.get("id") == verification_method)
        for a in assertion
    ):
        raise fail("the key is not an assertion method of the DID")
    methods = [m for m in document.get("verificationMethod") or [] if isinstance(m, dict)]
    methods += [a for a in assertion if isinstance(a, dict)]
    for m in methods:
        if m.get("id") != verification_method:
            continue
        if m.get("controller") != did or m.get("type") != "Multikey":
            raise fail("the verification method is not a Multikey controlled by the DID")
        try:
            return public_key_from_multibase(str(m.get("publicKeyMultibase")))
        except InvalidInputError as e:
            raise fail("the verification method holds no Ed25519 key") from e
    raise fail("the DID document has no such verification method")
