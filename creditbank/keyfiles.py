"""Key files on disk: the one implementation of writing and reading private key material.

Used by the bank's home (:mod:`creditbank.service.keys`: the log and issuer keys, the pepper,
the document-signing key) and by the institution's signing client
(:mod:`creditbank.client.poster`), which must not import the service layer; it sits at package
level, like :mod:`creditbank.errors`, because :mod:`creditbank.core` does no I/O.

The rules, in one place:

* a file is created exclusively (``O_EXCL``): a key is never overwritten;
* private files get mode 0600 (set explicitly, whatever the umask);
* the bytes are fsynced, then the directory, so a key reported as created survives a crash;
* a private file that its group or others may read is refused when it is read.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from creditbank.core.signing import Ed25519Signer, format_signer_key, parse_signer_key
from creditbank.errors import ConfigurationError, ConflictError, CreditBankError

#: the mode of a private file (key, secret)
PRIVATE_MODE: Final = 0o600
#: the bits that make a private file readable (or writable) by its group or others
OPEN_BITS: Final = 0o077


def fsync_dir(directory: Path) -> None:
    """Make the names in ``directory`` durable (where the platform allows fsync of a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not possible on every platform
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_file(path: Path, data: bytes, *, mode: int = PRIVATE_MODE, what: str = "key") -> None:
    """Create ``path`` holding ``data`` with ``mode``; never overwrites. The file and then its
    directory are fsynced before this returns.

    Raises:
        ConflictError: ``key.exists`` if the file exists.
        ConfigurationError: if it cannot be created or written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as e:
        raise ConflictError(
            f"refusing to overwrite existing {what} {path}", code="key.exists"
        ) from e
    except OSError as e:
        raise ConfigurationError(f"cannot create {what} file {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, mode)  # the umask may have narrowed the mode given to open()
    except OSError as e:
        raise ConfigurationError(f"cannot write {what} file {path}: {e.strerror}") from e
    fsync_dir(path.parent)


def read_private(path: Path, *, what: str = "key file") -> bytes:
    """The bytes of a private file, refused if its group or others may read it.

    Raises:
        ConfigurationError: ``key.read`` if it is missing or unreadable, ``key.mode`` if it
            is readable by others.
    """
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as e:
        raise ConfigurationError(
            f"cannot read {what} {path}: {e.strerror}", code="key.read"
        ) from e
    if mode & OPEN_BITS:
        raise ConfigurationError(
            f"{what} {path} is readable by others (mode {mode:o}); chmod 600 it",
            code="key.mode",
        )
    return data


def generate_key_file(path: Path, name: str) -> Ed25519Signer:
    """Create an Ed25519 key file ``PRIVATE+KEY+<name>+…`` (mode 0600) in an existing directory.

    Raises:
        ConflictError: ``key.exists`` if the file exists (a key is never overwritten).
        InvalidInputError: ``key.bad_name`` if ``name`` cannot name a key (nothing is written).
        ConfigurationError: if the file cannot be written.
    """
    signer = Ed25519Signer.from_seed(secrets.token_bytes(32))
    text = format_signer_key(name, signer.seed) + "\n"  # checks the name before any write
    create_file(path, text.encode("ascii"))
    return signer


def load_key_file(path: Path) -> tuple[str, Ed25519Signer]:
    """Read a ``PRIVATE+KEY`` file; returns the key's name and its signer.

    Raises:
        ConfigurationError: ``key.read`` if the file is missing, unreadable, not ASCII or
            malformed; ``key.mode`` if it is readable by others.
    """
    data = read_private(path)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise ConfigurationError(f"cannot read key file {path}: not ASCII", code="key.read") from e
    try:
        return parse_signer_key(text)
    except CreditBankError as e:
        raise ConfigurationError(f"key file {path} is malformed: {e}", code="key.read") from e


__all__ = [
    "OPEN_BITS",
    "PRIVATE_MODE",
    "create_file",
    "fsync_dir",
    "generate_key_file",
    "load_key_file",
    "read_private",
]
