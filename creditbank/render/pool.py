"""A pool of warm rendering processes: render + sign documents in parallel.

Rendering is CPU bound and WeasyPrint holds the GIL, so threads do not help (two threads are
slower than one); separate processes do. Each worker process is started with ``spawn`` (or
``forkserver``; never ``fork`` from a threaded server), resolves the document fonts, loads
the bank's document signer once, and renders one small document to warm Pango, fontconfig and
WeasyPrint's stylesheet caches, so the first real document is as fast as the rest.

Typical use by the issuance service::

    with RenderPool(2, signer=SignerMaterial(cert_pem, key_pem, (ca_pem,))) as pool:
        signed_pdf = pool.render_signed(view, credential_bytes)

Each worker holds ~200 MB of memory (fonts and caches).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Final, Literal

from creditbank.errors import ConfigurationError, InvalidInputError
from creditbank.render.fonts import require_fonts
from creditbank.render.pdf import render_pdf
from creditbank.render.pdfsign import DocumentSigner, load_document_signer, sign_pdf
from creditbank.render.qr import qr_svg
from creditbank.render.views import (
    CertificateView,
    DocumentView,
    Fact,
    InstitutionHeading,
    IssuerLine,
    RecordRow,
    VerificationBlock,
)

StartMethod = Literal["spawn", "forkserver"]

_WARM_URL: Final = "http://127.0.0.1/v/0000-0000-0000-0000"


@dataclass(frozen=True, slots=True)
class SignerMaterial:
    """What a worker needs to load the document signer (bytes, so it pickles).

    Attributes:
        cert_pem: the document-signing certificate.
        key_pem: its private key.
        chain_pem: the issuing CA certificates.
    """

    cert_pem: bytes
    key_pem: bytes
    chain_pem: tuple[bytes, ...] = ()


_signer: DocumentSigner | None = None


def warmup_view() -> CertificateView:
    """A small bilingual certificate used to warm a worker (fonts, Pango, stylesheets).

    Returns:
        The view.

    Raises:
        Nothing: the values are fixed and valid.
    """
    day = date(2000, 1, 1)
    return CertificateView(
        holder_name="预热 Warm-up",
        learner_id="LRN-0000000000000000",
        issued_on=day,
        issuer=IssuerLine("学分银行", "Credit Bank", "did:web:localhost"),
        credential_id="urn:uuid:00000000-0000-0000-0000-000000000000",
        verification=VerificationBlock("0000-0000-0000-0000", _WARM_URL, qr_svg(_WARM_URL), day),
        institution=InstitutionHeading("学院", "College", "INS-0"),
        kind="academic_credit",
        record=RecordRow(
            title_zh="课程",
            title_en="Course",
            achieved_on=day,
            state="current",
            ledger_index=0,
            facts=(Fact("学分", "Credits", "1"),),
        ),
    )


def _init_worker(material: SignerMaterial | None) -> None:
    """Worker start: fonts, signer, one warm-up render."""
    global _signer  # one signer per worker process
    require_fonts()
    if material is not None:
        _signer = load_document_signer(material.cert_pem, material.key_pem, material.chain_pem)
    render_pdf(warmup_view(), b"{}")


def _render(view: DocumentView, credential: bytes, sign: bool) -> bytes:
    pdf = render_pdf(view, credential)
    if not sign:
        return pdf
    if _signer is None:
        raise ConfigurationError("this render pool has no document signer", code="render.no_signer")
    return sign_pdf(pdf, _signer)


class RenderPool:
    """N warm worker processes that render (and sign) documents.

    Args:
        workers: number of processes (one per free CPU core is right; ~200 MB each).
        signer: the document signer's material, loaded once in every worker; None for a
            pool that only renders.
        start_method: ``spawn`` (default) or ``forkserver``.

    Raises:
        InvalidInputError: ``render.pool`` when ``workers`` is below 1.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        signer: SignerMaterial | None = None,
        start_method: StartMethod = "spawn",
    ) -> None:
        if workers < 1:
            raise InvalidInputError("a render pool needs at least one worker", code="render.pool")
        self.workers = workers
        self._has_signer = signer is not None
        context = multiprocessing.get_context(start_method)
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(signer,),
        )

    def warm(self) -> None:
        """Start every worker now and wait until each has rendered its warm-up document.

        Raises:
            ConfigurationError: ``render.pool`` when a worker fails to start (fonts missing,
                bad signer material).
        """
        futures = [
            self._executor.submit(_render, warmup_view(), b"{}", False) for _ in range(self.workers)
        ]
        for future in futures:
            self._result(future)

    def submit(self, view: DocumentView, credential: bytes, *, sign: bool = True) -> Future[bytes]:
        """Queue one document; the future yields the (signed) PDF bytes.

        Args:
            view: what the document shows.
            credential: the credential bytes to attach.
            sign: sign with the pool's document signer (True) or return the unsigned PDF.

        Returns:
            A future of the PDF bytes; its exception is the worker's CreditBankError.

        Raises:
            ConfigurationError: ``render.no_signer`` when ``sign`` is asked of a pool without
                a signer.
        """
        if sign and not self._has_signer:
            raise ConfigurationError(
                "this render pool has no document signer", code="render.no_signer"
            )
        return self._executor.submit(_render, view, credential, sign)

    @staticmethod
    def _result(future: Future[bytes]) -> bytes:
        try:
            return future.result()
        except BrokenProcessPool as e:
            raise ConfigurationError(
                f"a render worker died or failed to start: {e}", code="render.pool"
            ) from e

    def render_signed(self, view: DocumentView, credential: bytes) -> bytes:
        """Render and sign one document in a worker and wait for it.

        Args:
            view: what the document shows.
            credential: the credential bytes to attach.

        Returns:
            The signed PDF.

        Raises:
            CreditBankError: whatever :func:`render_pdf` or :func:`sign_pdf` raised in the
                worker; ``render.pool`` when a worker died.
        """
        return self._result(self.submit(view, credential, sign=True))

    def render_many(
        self, jobs: Sequence[tuple[DocumentView, bytes]], *, sign: bool = True
    ) -> list[bytes]:
        """Render (and sign) several documents across the workers, results in job order.

        Args:
            jobs: ``(view, credential)`` pairs.
            sign: sign each document.

        Returns:
            The PDFs, in the order of ``jobs``.

        Raises:
            CreditBankError: the first worker error, in job order.
        """
        futures = [self.submit(view, cred, sign=sign) for view, cred in jobs]
        return [self._result(f) for f in futures]

    def close(self) -> None:
        """Stop the workers (waits for queued documents)."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
