"""The render pool: warm worker processes render and sign; errors come back as they were."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from creditbank.errors import ConfigurationError, InvalidInputError
from creditbank.render.credential_view import view_from_credential
from creditbank.render.pdfsign import (
    extract_credential,
    generate_demo_document_identity,
    verify_pdf_signature,
)
from creditbank.render.pool import RenderPool, SignerMaterial
from creditbank.render.qr import verification_url

from .samples import BASE_URL, CODE, EXPIRES, certificate_credential, encode

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
URL = verification_url(BASE_URL, CODE)


@pytest.fixture(scope="module")
def identity() -> tuple[bytes, bytes, bytes]:
    return generate_demo_document_identity("江海终身学习学分银行", NOW)


@pytest.fixture(scope="module")
def pool(identity: tuple[bytes, bytes, bytes]) -> Iterator[RenderPool]:
    ca, cert, key = identity
    with RenderPool(1, signer=SignerMaterial(cert, key, (ca,))) as p:
        p.warm()
        yield p


def test_pool_renders_and_signs(pool: RenderPool, identity: tuple[bytes, bytes, bytes]) -> None:
    creds = [certificate_credential("L01", i) for i in (0, 1)]
    jobs = [
        (view_from_credential(c, code=CODE, verify_url=URL, code_expires_on=EXPIRES), encode(c))
        for c in creds
    ]
    pdfs = pool.render_many(jobs)
    for pdf, (_, data) in zip(pdfs, jobs, strict=True):
        assert verify_pdf_signature(pdf, [identity[0]]).whole_file
        assert extract_credential(pdf) == data
    unsigned = pool.submit(*jobs[0], sign=False).result()
    assert b"/ByteRange" not in unsigned
    assert extract_credential(unsigned) == jobs[0][1]


def test_worker_errors_keep_their_class_and_code(pool: RenderPool) -> None:
    cred = certificate_credential("L01", 0, name="ᠠᠯᠲᠠᠨ")
    view = view_from_credential(cred, code=CODE, verify_url=URL, code_expires_on=EXPIRES)
    with pytest.raises(InvalidInputError) as e:
        pool.render_signed(view, encode(cred))
    assert e.value.code == "render.glyph_missing"


def test_a_pool_without_signer_refuses_to_sign() -> None:
    with pytest.raises(InvalidInputError):
        RenderPool(0)
    unsigned_pool = RenderPool(1)
    try:
        cred = certificate_credential("L01", 0)
        view = view_from_credential(cred, code=CODE, verify_url=URL, code_expires_on=EXPIRES)
        with pytest.raises(ConfigurationError) as e:
            unsigned_pool.submit(view, encode(cred), sign=True)
        assert e.value.code == "render.no_signer"
    finally:
        unsigned_pool.close()
