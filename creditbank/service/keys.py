"""Key files in ``$CREDITBANK_HOME/keys`` (mode 0600, never overwritten)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from creditbank.core.signing import Ed25519Signer, format_signer_key, parse_signer_key
from creditbank.errors import ConfigurationError, ConflictError, CreditBankError

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
