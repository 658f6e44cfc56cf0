"""Key files in ``$CREDITBANK_HOME/keys`` (mode 0600, never overwritten).

The file I/O (exclusive create, fsync, modes, refusal of keys others may read) is
:mod:`creditbank.keyfiles`, shared with the signing client; this module knows the home's
layout: which files, which names, and that the keys directory is created (mode 0700).
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from creditbank import keyfiles
from creditbank.config import Settings
from creditbank.core.signing import Ed25519Signer
from creditbank.errors import ConfigurationError, ConflictError
from creditbank.keyfiles import load_key_file

if TYPE_CHECKING:
    from creditbank.render.pdfsign import DocumentSigner

LOG_KEY = "log.key"
ISSUER_KEY = "issuer.key"
PEPPER = "pepper"


def _keys_dir(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)


def generate_key_file(path: Path, name: str) -> Ed25519Signer:
    """Create a new Ed25519 key file (``PRIVATE+KEY+name+…``) with mode 0600, creating its
    directory (mode 0700) if needed.

    Raises:
        ConflictError: if the file already exists (keys are never overwritten).
        InvalidInputError: ``key.bad_name`` if ``name`` cannot name a key.
    """
    _keys_dir(path)
    return keyfiles.generate_key_file(path, name)


def load_or_create_secret(path: Path, size: int = 32) -> bytes:
    """Read a hex secret file, creating it (mode 0600) with ``size`` random bytes if missing.

    Raises:
        ConfigurationError: if the file is unreadable, too open or malformed.
    """
    if not path.exists():
        _keys_dir(path)
        # made meanwhile by another process: read theirs
        with contextlib.suppress(ConflictError):
            keyfiles.create_file(path, (secrets.token_hex(size) + "\n").encode(), what="secret")
    try:
        text = keyfiles.read_private(path, what="secret").decode("ascii").strip()
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"secret {path} is not hex") from e
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
    # another process making them meanwhile gets ConflictError: keep theirs
    keyfiles.create_file(paths[2], key)
    keyfiles.create_file(paths[0], ca, mode=0o644, what="certificate")
    keyfiles.create_file(paths[1], cert, mode=0o644, what="certificate")
    return True


def _read(path: Path, *, secret: bool) -> bytes:
    if secret:
        return keyfiles.read_private(path)
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigurationError(f"cannot read {path}: {e.strerror}") from e


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


__all__ = [
    "DOCUMENT_CA",
    "DOCUMENT_CERT",
    "DOCUMENT_KEY",
    "ISSUER_KEY",
    "LOG_KEY",
    "PEPPER",
    "document_identity_files",
    "document_trust_roots",
    "ensure_document_identity",
    "generate_key_file",
    "load_document_identity",
    "load_key_file",
    "load_or_create_secret",
]
