"""The demo document identity (CA + signing certificate) and loading a signer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from creditbank.errors import ConfigurationError, InvalidInputError
from creditbank.render.pdfsign import generate_demo_document_identity, load_document_signer

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def test_demo_identity_is_a_p256_ca_and_a_signing_certificate() -> None:
    ca_pem, cert_pem, key_pem = generate_demo_document_identity("江海终身学习学分银行", NOW)
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.content_commitment
    assert cert.issuer == ca.subject
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    cert.verify_directly_issued_by(ca)
    assert cert.not_valid_before_utc <= NOW < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - NOW >= timedelta(days=3650)
    signer = load_document_signer(cert_pem, key_pem, [ca_pem])
    assert "江海终身学习学分银行 Document Signing" in signer.subject
    assert b"PRIVATE KEY" in key_pem


def test_naive_time_or_empty_name_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        generate_demo_document_identity("Bank", datetime(2025, 3, 1))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(InvalidInputError):
        generate_demo_document_identity(" ", NOW)


def test_a_key_that_does_not_match_its_certificate_is_refused() -> None:
    _, cert_a, _ = generate_demo_document_identity("Bank A", NOW)
    _, _, key_b = generate_demo_document_identity("Bank B", NOW)
    with pytest.raises(ConfigurationError) as e:
        load_document_signer(cert_a, key_b)
    assert e.value.code == "render.certificate"
    with pytest.raises(ConfigurationError):
        load_document_signer(b"not a certificate", key_b)
