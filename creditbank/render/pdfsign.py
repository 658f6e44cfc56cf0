"""PAdES B-B signatures on documents (pyHanko), their verification, and the attached credential.

* :func:`generate_demo_document_identity` makes a self-signed demo CA and a document-signing
  certificate under it (ECDSA P-256: a signature costs ~20 ms, RSA-2048 ~95 ms). The service
  writes the PEMs into the bank's home at ``creditbank init``; a real certificate is loaded
  the same way with :func:`load_document_signer`.
* :func:`sign_pdf` adds one certifying PAdES B-B signature (``ETSI.CAdES.detached``,
  SHA-256, DocMDP "no changes") in an incremental update.
* :func:`inspect_pdf_signature` reports each check; :func:`verify_pdf_signature` raises unless
  every check passes. A signature must cover the **whole file**: an incremental update
  appended after signing leaves the signed digest intact (poppler's ``pdfsig`` still says
  "valid"), so coverage is checked on its own and such a file is refused.
* :func:`extract_credential` returns the credential attached as an associated file
  (``/AF`` with ``/AFRelationship /Source``).

pyHanko and asn1crypto exceptions never leave this module: a file that is not a PDF is an
:class:`~creditbank.errors.InvalidInputError`, a failed check a
:class:`~creditbank.errors.VerificationError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic, misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.general import SigningError, ValueErrorWithMessage
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from creditbank.errors import (
    ConfigurationError,
    InvalidInputError,
    SignatureError,
    TooLargeError,
    VerificationError,
)
from creditbank.render.pdf import ATTACHMENT_NAME

#: the signature field's name
FIELD_NAME: Final = "CreditBankSignature"
#: largest PDF accepted for verification or extraction
MAX_PDF_BYTES: Final = 20 * 1024 * 1024
#: largest attached credential returned by :func:`extract_credential`
MAX_ATTACHMENT_BYTES: Final = 8 * 1024 * 1024

_PYHANKO_LOGGERS: Final = ("pyhanko", "pyhanko_certvalidator")


_T = TypeVar("_T")


def _off_the_loop(work: Callable[[], _T]) -> _T:
    """Run ``work`` (which calls pyHanko's synchronous API) here, or — when this thread runs
    an event loop — in a short-lived worker thread: pyHanko's synchronous signing and
    validation call ``asyncio.run``, which refuses to run inside a running loop. (The
    product's async routes hand signing and validation to the thread pool; this keeps any
    other caller working, at the price of blocking that loop for the call.)"""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    with ThreadPoolExecutor(1, thread_name_prefix="creditbank-pyhanko") as pool:
        return pool.submit(work).result()


# -- identities ------------------------------------------------------------------------------
def generate_demo_document_identity(
    common_name: str, now: datetime, *, validity_days: int = 3650
) -> tuple[bytes, bytes, bytes]:
    """Make a self-signed demo CA and a document-signing certificate it issues (ECDSA P-256).

    For ``creditbank init`` and tests; a production bank configures a certificate from a real
    CA instead. Keys come from the operating system's CSPRNG.

    Args:
        common_name: the bank's name for the certificates' subjects.
        now: the start of validity (timezone-aware; from the service clock).
        validity_days: how long both certificates are valid.

    Returns:
        ``(ca_cert_pem, cert_pem, key_pem)``; the key is unencrypted PKCS#8 PEM (the caller
        stores it with mode 0600).

    Raises:
        InvalidInputError: ``render.identity`` when ``now`` is naive or the name is empty.
    """
    if now.tzinfo is None or not common_name.strip():
        raise InvalidInputError(
            "a document identity needs a name and a timezone-aware time", code="render.identity"
        )
    start = now - timedelta(minutes=5)
    end = now + timedelta(days=validity_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    doc_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} Demo Document CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
        ]
    )
    doc_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} Document Signing"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    doc_cert = (
        x509.CertificateBuilder()
        .subject_name(doc_name)
        .issuer_name(ca_name)
        .public_key(doc_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(doc_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = doc_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca_cert.public_bytes(pem), doc_cert.public_bytes(pem), key_pem


def _certificates(data: bytes) -> list[asn1_x509.Certificate]:
    """Every certificate in PEM (one or more blocks) or DER ``data``."""
    try:
        if asn1_pem.detect(data):
            return [
                asn1_x509.Certificate.load(der)
                for _, _, der in asn1_pem.unarmor(data, multiple=True)
            ]
        return [asn1_x509.Certificate.load(data)]
    except (ValueError, TypeError) as e:
        raise ConfigurationError("not a certificate (PEM or DER)", code="render.certificate") from e


@dataclass(frozen=True, slots=True)
class DocumentSigner:
    """The bank's document-signing key and certificate, ready to sign (load once, reuse).

    Attributes:
        subject: the certificate subject, human readable.
    """

    subject: str
    _signer: Any
    #: the signature space (hex digits) pyHanko reserved for this signer's first signature,
    #: reused by every later one (estimating it signs a dummy CMS each time: ~1/3 of a signing)
    _reserved: list[int] = field(default_factory=list, compare=False, repr=False)

    @property
    def pyhanko_signer(self) -> Any:
        """The pyHanko signer (for callers that need pyHanko directly)."""
        return self._signer


def load_document_signer(
    cert_pem: bytes,
    key_pem: bytes,
    chain_pem: Sequence[bytes] = (),
    *,
    password: bytes | None = None,
) -> DocumentSigner:
    """Load the document certificate, its private key and the chain up to the root.

    The same material gives the same :class:`DocumentSigner` for the life of the process (at
    most :data:`_SIGNERS_KEPT` are kept), so a caller that loads the identity for every
    document (the issuance service does) keeps what the signer learnt: the signature space
    estimated once (:func:`sign_pdf`).

    Args:
        cert_pem: the document-signing certificate (PEM or DER).
        key_pem: its private key (PKCS#8 PEM or DER; ECDSA or RSA).
        chain_pem: the issuing CA certificates (PEM or DER), embedded in each signature.
        password: the key's password, if it is encrypted.

    Returns:
        A :class:`DocumentSigner`.

    Raises:
        ConfigurationError: ``render.certificate`` when a certificate or the key cannot be read,
            or the key does not belong to the certificate.
    """
    digest = hashlib.sha256()
    for part in (cert_pem, key_pem, *chain_pem, password or b""):
        digest.update(len(part).to_bytes(8, "big") + part)
    fingerprint = digest.digest()
    with _signers_lock:
        known = _signers.get(fingerprint)
    if known is not None:
        return known
    loaded = _load_document_signer(cert_pem, key_pem, chain_pem, password)
    with _signers_lock:
        if len(_signers) >= _SIGNERS_KEPT:
            _signers.pop(next(iter(_signers)))
        return _signers.setdefault(fingerprint, loaded)


#: distinct signing identities kept loaded per process
_SIGNERS_KEPT: Final = 8
_signers_lock = threading.Lock()
_signers: dict[bytes, DocumentSigner] = {}


def _load_document_signer(
    cert_pem: bytes, key_pem: bytes, chain_pem: Sequence[bytes], password: bytes | None
) -> DocumentSigner:
    cert = _certificates(cert_pem)[0]
    try:
        private = (
            serialization.load_pem_private_key(key_pem, password)
            if b"-----BEGIN" in key_pem
            else serialization.load_der_private_key(key_pem, password)
        )
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key = asn1_keys.PrivateKeyInfo.load(der)
    except (ValueError, TypeError) as e:
        raise ConfigurationError(
            "cannot read the document signing key", code="render.certificate"
        ) from e
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != cert.public_key.dump():
        raise ConfigurationError(
            "the document signing key does not match its certificate", code="render.certificate"
        )
    chain = [c for data in chain_pem for c in _certificates(data)]
    signer = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
    )
    return DocumentSigner(subject=cert.subject.human_friendly, _signer=signer)


# -- signing ----------------------------------------------------------------------------------
@contextmanager
def _quiet_pyhanko() -> Iterator[None]:
    """Keep pyHanko's own log lines (it logs every failed check) out of the service log."""
    loggers = [logging.getLogger(name) for name in _PYHANKO_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def sign_pdf(
    pdf: bytes, signer: DocumentSigner, *, reason: str = "学分银行签发 Issued by the credit bank"
) -> bytes:
    """Sign ``pdf`` with one certifying PAdES B-B signature in an incremental update.

    The signature certifies the document with DocMDP "no changes allowed", so any later
    change is visible to every validator, and pyHanko keeps the Info and XMP Producer equal
    (the renderer already wrote the Producer pyHanko writes).

    Args:
        pdf: the PDF to sign (as :func:`creditbank.render.pdf.render_pdf` made it).
        signer: the bank's document signer.
        reason: the signature's /Reason.

    Returns:
        The signed PDF.

    Raises:
        InvalidInputError: ``pdf.not_pdf`` when ``pdf`` cannot be read as a PDF.
        ConfigurationError: ``render.sign`` when pyHanko refuses the key or certificate.
    """
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=MDPPerm.NO_CHANGES,
        reason=reason,
    )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (misc.PdfError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError("not a readable PDF", code="pdf.not_pdf") from e
    try:
        with _quiet_pyhanko():
            pdf_signer = signers.PdfSigner(meta, signer.pyhanko_signer)
            reserved = signer._reserved[0] if signer._reserved else None
            out = _off_the_loop(lambda: pdf_signer.sign_pdf(writer, bytes_reserved=reserved))
    except (SigningError, ValueErrorWithMessage) as e:
        raise ConfigurationError(f"cannot sign the document: {e}", code="render.sign") from e
    signed: bytes = out.getvalue()
    if not signer._reserved:
        _remember_reserved(signer, signed[len(pdf) :])
    return signed


_BYTE_RANGE: Final = re.compile(rb"/ByteRange\s*\[\s*0\s+(\d+)\s+(\d+)\s+\d+\s*\]")


def _remember_reserved(signer: DocumentSigner, update: bytes) -> None:
    """Keep the signature space pyHanko estimated for ``signer`` (from the ``/ByteRange`` in
    the signing's incremental ``update``: the gap between the two ranges is ``<`` + the hex
    digits + ``>``).

    pyHanko sizes that space by signing a dummy CMS with the same certificates and
    attributes; the estimate carries a 50 % margin, so it fits every later signature of the
    same signer, whose size differs by at most a few bytes (the ECDSA integers)."""
    ranges = _BYTE_RANGE.findall(update)
    if ranges:
        start, end = (int(x) for x in ranges[-1])
        signer._reserved.append(end - start - 2)


# -- verification -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PdfSignatureReport:
    """What the checks of a document's signature found.

    Attributes:
        signatures: how many signatures the file holds (exactly one is accepted).
        intact: the signed byte ranges hash to the signed digest.
        valid: the signature value verifies with the signer's certificate.
        trusted: the signer's certificate chains to one of the trust roots, and every
            certificate the signature carries is byte for byte part of that chain.
        whole_file: the signature covers every byte of the file (no update appended).
        modification: pyHanko's modification level (``NONE`` when nothing was added).
        signer_subject: the signing certificate's subject.
        signing_time: the signing time the signer claimed (no timestamp in B-B).
        problems: each failed check, in words (empty when everything passed).
    """

    signatures: int
    intact: bool
    valid: bool
    trusted: bool
    whole_file: bool
    modification: str
    signer_subject: str
    signing_time: datetime | None
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems


def _reader(pdf_bytes: bytes) -> PdfFileReader:
    if not isinstance(pdf_bytes, bytes | bytearray):
        raise InvalidInputError("a PDF is bytes", code="pdf.not_pdf")
    if len(pdf_bytes) > MAX_PDF_BYTES:
        raise TooLargeError(f"a PDF may hold at most {MAX_PDF_BYTES} bytes", code="pdf.too_large")
    if not pdf_bytes.startswith(b"%PDF-"):
        raise InvalidInputError("not a PDF (no %PDF- header)", code="pdf.not_pdf")
    try:
        with _quiet_pyhanko():
            reader = PdfFileReader(io.BytesIO(bytes(pdf_bytes)), strict=False)
            reader.root  # noqa: B018 - parse the catalog now, so a broken file fails here
    except (misc.PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise InvalidInputError("not a readable PDF", code="pdf.not_pdf") from e
    return reader


def inspect_pdf_signature(pdf_bytes: bytes, trust_roots: Sequence[bytes]) -> PdfSignatureReport:
    """Check the document's signature and report every finding (failed checks do not raise).

    No network is used: certificates are validated against ``trust_roots`` only, without
    fetching revocation information.

    Args:
        pdf_bytes: the PDF file.
        trust_roots: the accepted root certificates (PEM or DER, one or more each).

    Returns:
        The report; :attr:`PdfSignatureReport.ok` is True only when exactly one signature is
        intact, valid, trusted and covers the whole file.

    Raises:
        InvalidInputError: ``pdf.not_pdf`` when the file is not a readable PDF;
            ``pdf.too_large`` when it is too large.
        ConfigurationError: ``render.certificate`` when a trust root cannot be read.
    """
    reader = _reader(pdf_bytes)
    roots = [c for data in trust_roots for c in _certificates(data)]
    try:
        with _quiet_pyhanko():
            embedded = list(reader.embedded_signatures)
    except (misc.PdfError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(
            "the PDF's signature fields cannot be read", code="pdf.not_pdf"
        ) from e
    if not embedded:
        return PdfSignatureReport(
            0, False, False, False, False, "UNKNOWN", "", None, ("the PDF is not signed",)
        )
    sig = embedded[0]
    context = ValidationContext(
        trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail"
    )
    try:
        with _quiet_pyhanko():
            status = _off_the_loop(
                lambda: validate_pdf_signature(sig, signer_validation_context=context)
            )
    except (misc.PdfError, ValueError, KeyError, TypeError) as e:
        return PdfSignatureReport(
            len(embedded),
            False,
            False,
            False,
            False,
            "UNKNOWN",
            "",
            None,
            (f"the signature cannot be read: {e}",),
        )
    whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    problems = []
    trusted = bool(status.trusted)
    if trusted and status.validation_path is not None:
        # the CMS certificate set is not signed: a changed copy of a CA certificate in it
        # still validates against the trust root; require every carried certificate to be
        # byte for byte one of the validated path, so no byte of the file goes unchecked
        path = {c.dump() for c in status.validation_path.iter_certs(include_root=True)}
        carried = [c.chosen.dump() for c in sig.signed_data["certificates"] or ()]
        if any(der not in path for der in carried):
            trusted = False
            problems.append("the signature carries a certificate outside its validated chain")
    if len(embedded) != 1:
        problems.append(f"the PDF holds {len(embedded)} signatures; exactly one is expected")
    if not status.intact:
        problems.append("the signed bytes were changed (digest mismatch)")
    if not status.valid:
        problems.append("the signature value does not verify")
    if not status.trusted:
        problems.append("the signing certificate does not chain to a trusted root")
    if not whole:
        problems.append("the signature does not cover the whole file (bytes were appended)")
    level = status.modification_level
    return PdfSignatureReport(
        signatures=len(embedded),
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=trusted,
        whole_file=whole,
        modification=level.name if level is not None else "UNKNOWN",
        signer_subject=status.signing_cert.subject.human_friendly if status.signing_cert else "",
        signing_time=status.signer_reported_dt,
        problems=tuple(problems),
    )


def verify_pdf_signature(pdf_bytes: bytes, trust_roots: Sequence[bytes]) -> PdfSignatureReport:
    """Require one intact, valid, trusted signature covering the whole file.

    Args:
        pdf_bytes: the PDF file.
        trust_roots: the accepted root certificates (PEM or DER).

    Returns:
        The report of a document that passed every check (signer, signing time).

    Raises:
        InvalidInputError: ``pdf.not_pdf`` / ``pdf.too_large`` for a file that is not a PDF.
        VerificationError: ``pdf.unsigned`` (no signature), ``pdf.not_whole_file`` (bytes
            appended after signing, or several signatures), ``pdf.untrusted`` (no chain to a
            trust root, or a certificate carried in the signature is not byte for byte part
            of the validated chain); :class:`SignatureError` ``pdf.signature`` when the
            signed bytes or the signature value do not verify.
        ConfigurationError: ``render.certificate`` when a trust root cannot be read.
    """
    report = inspect_pdf_signature(pdf_bytes, trust_roots)
    if report.signatures == 0:
        raise VerificationError("the PDF is not signed", code="pdf.unsigned")
    if not (report.intact and report.valid):
        raise SignatureError("; ".join(report.problems), code="pdf.signature")
    if not report.whole_file or report.signatures != 1:
        raise VerificationError("; ".join(report.problems), code="pdf.not_whole_file")
    if not report.trusted:
        raise VerificationError("; ".join(report.problems), code="pdf.untrusted")
    if report.problems:
        raise SignatureError("; ".join(report.problems), code="pdf.signature")
    return report


def extract_credential(pdf_bytes: bytes) -> bytes:
    """Return the credential attached to the document as its source (``credential.json``).

    Reads the catalog's ``/AF`` (associated files) for the file specification named
    ``credential.json`` with ``/AFRelationship /Source``. This reads the file as it is; a
    verifier must also require :func:`verify_pdf_signature` (whole-file coverage) so the
    attachment read is the one that was signed.

    Args:
        pdf_bytes: the PDF file.

    Returns:
        The attached credential's exact bytes.

    Raises:
        InvalidInputError: ``pdf.not_pdf`` / ``pdf.too_large`` for a file that is not a PDF.
        VerificationError: ``pdf.no_credential`` when there is no such attachment (or more
            than one).
    """
    reader = _reader(pdf_bytes)
    found: list[bytes] = []
    try:
        with _quiet_pyhanko():
            associated = reader.root.get("/AF")
            for ref in associated if isinstance(associated, generic.ArrayObject) else ():
                spec = ref.get_object()
                if not isinstance(spec, generic.DictionaryObject):
                    continue
                name = spec.get("/UF", spec.get("/F"))
                if str(spec.get("/AFRelationship")) != "/Source" or str(name) != ATTACHMENT_NAME:
                    continue
                stream = spec["/EF"]["/F"].get_object()
                if int(stream.get("/Length", 0)) > MAX_ATTACHMENT_BYTES:
                    raise InvalidInputError(
                        "the attached credential is too large", code="pdf.too_large"
                    )
                found.append(stream.data)
    except (misc.PdfError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise VerificationError(
            "the PDF's attachments cannot be read", code="pdf.no_credential"
        ) from e
    if len(found) != 1:
        raise VerificationError(
            f"the PDF must carry exactly one {ATTACHMENT_NAME} (found {len(found)})",
            code="pdf.no_credential",
        )
    return found[0]
