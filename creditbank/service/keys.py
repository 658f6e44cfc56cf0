"""Key files in ``$CREDITBANK_HOME/keys`` (mode 0600, never overwritten)."""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from creditbank.config import Settings
from creditbank.core.signing import Ed25519Signer, format_signer_key, parse_signer_key
from creditbank.errors import ConfigurationError, ConflictError, CreditBankError

if TYPE_CHECKING:
    from creditbank.render.pdfsign import DocumentSigner

LOG_KEY = "log.key"
ISSUER_KEY = "issuer.key"
PEPPER = "pepper"


def generate_key_file(path: Path, name: str) -> Ed25519Signer:
    """Create a new Ed25519 key file (``PRIVATE+KEY+name+…``) with mode 0600.

    Raises:
        ConflictError: if the file already exists (keys are never overwritten).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = Ed25519Signer.from_seed(secrets.token_bytes(32))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as e:
        raise ConflictError(f"refusing to overwrite existing key {path}", code="keys.exists") from e
    with os.fdopen(fd, "w") as f:
        f.write(format_signer_key(name, signer.seed) + "\n")
    os.chmod(path, 0o600)
    return signer


def load_key_file(path: Path) -> tuple[str, Ed25519Signer]:
    """Read a key file; returns its key name and signer.

    Raises:
        ConfigurationError: if the file is missing, unreadable, too open or malformed.
    """
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text()
    except OSError as e:
        raise ConfigurationError(f"cannot read key file {path}: {e.strerror}") from e
    if mode & 0o077:
        raise ConfigurationError(f"key file {path} is readable by others (mode {mode:o})")
    try:
        return parse_signer_key(text)
    except CreditBankError as e:
        raise ConfigurationError(f"key file {path} is malformed: {e}") from e


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """Read a hex secret file, creating it (mode 0600) with ``size`` random bytes if missing.

    Raises:
        ConfigurationError: if the file is unreadable, too open or malformed.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(size) + "\n")
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text().strip()
    except OSError as e:
        raise ConfigurationError(f"cannot read secret {path}: {e.strerror}") from e
    if mode & 0o077:
        raise ConfigurationError(f"secret {path} is readable by others (mode {mode:o})")
    try:
        value = bytes.fromhex(text)
    except ValueError as e:
        raise ConfigurationError(f"secret {path} is not hex") from e
    if len(value) < 16:
        raise ConfigurationError(f"secret {path} is too short")
    return value


# -- the document-signing identity (PAdES signatures on transcripts and certificates) ----------
DOCUMENT_CA = "document-ca.pem"
DOCUMENT_CERT = "document.pem"
DOCUMENT_KEY = "document.key"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def ensure_document_identity(settings: Settings, now: datetime) -> bool:
    """Create the demo document-signing CA and certificate in ``keys/`` if they are missing
    (``document-ca.pem``, ``document.pem``, ``document.key`` mode 0600); never overwrites.
    Nothing is created when a real certificate is configured. Returns True if it created them.

    Raises:
        ConfigurationError: if only some of the three files exist (a damaged home).
    """
    if settings.document_cert is not None:
        return False
    keys = settings.keys_dir
    paths = [keys / DOCUMENT_CA, keys / DOCUMENT_CERT, keys / DOCUMENT_KEY]
    present = [p.exists() for p in paths]
    if all(present):
        return False
    if any(present):
        raise ConfigurationError(
            f"the document identity in {keys} is incomplete: "
            f"{', '.join(p.name for p, ok in zip(paths, present, strict=True) if not ok)} missing;"
            " restore it, or move the others away to create a new demo identity"
        )
    from creditbank.render.pdfsign import generate_demo_document_identity

    ca, cert, key = generate_demo_document_identity(settings.bank_name_en, now)
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        _write_new(paths[2], key, 0o600)
        _write_new(paths[0], ca, 0o644)
        _write_new(paths[1], cert, 0o644)
    except FileExistsError as e:  # another process made them meanwhile: keep theirs
        raise ConflictError(f"refusing to overwrite {e.filename}", code="keys.exists") from e
    return True


def _read(path: Path, *, secret: bool) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e.strerror}") from e
    if secret and mode & 0o077:
        raise ConfigurationError(f"key file {path} is readable by others (mode {mode:o})")
    return data


def document_identity_files(settings: Settings) -> tuple[Path, Path, Path | None]:
    """(certificate, key, chain or None): the configured ones, else the demo ones in keys/."""
    if settings.document_cert is not None:
        if settings.document_key is None:
            raise ConfigurationError("CREDITBANK_DOCUMENT_CERT needs CREDITBANK_DOCUMENT_KEY")
        return settings.document_cert, settings.document_key, settings.document_chain
    keys = settings.keys_dir
    return keys / DOCUMENT_CERT, keys / DOCUMENT_KEY, keys / DOCUMENT_CA


def load_document_identity(settings: Settings, now: datetime | None = None) -> DocumentSigner:
    """The bank's document signer. An older home without the demo files gets them on first
    use (when ``now`` is given), so it keeps working.

    Raises:
        ConfigurationError: if the certificate or key cannot be read or do not match.
    """
    if now is not None:
        with contextlib.suppress(ConflictError):  # made meanwhile by another process: use it
            ensure_document_identity(settings, now)
    from creditbank.render.pdfsign import load_document_signer

    cert, key, chain = document_identity_files(settings)
    return load_document_signer(
        _read(cert, secret=False),
        _read(key, secret=True),
        [_read(chain, secret=False)] if chain is not None else [],
    )


def document_trust_roots(settings: Settings) -> list[bytes]:
    """The certificates a verifier of the bank's PDFs trusts (the chain's root, PEM).

    Raises:
        ConfigurationError: if no chain is configured or it cannot be read.
    """
    _, _, chain = document_identity_files(settings)
    if chain is None:
        raise ConfigurationError("no document certificate chain (CREDITBANK_DOCUMENT_CHAIN)")
    return [_read(chain, secret=False)]
