"""Key files: one implementation (creditbank.keyfiles) behind the signing client and the bank's
home. Both write with fsync of the file and of its directory, create mode 0600 whatever the
umask, never overwrite, and refuse a key that its group or others may read."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from creditbank import keyfiles
from creditbank.client import poster
from creditbank.core.signing import Ed25519Signer
from creditbank.errors import ConfigurationError, ConflictError, InvalidInputError
from creditbank.service import keys as home_keys

NAME = "INS-KEYS"
#: the two ways a key file is made: by an institution's client, and in the bank's home
GENERATORS: dict[str, Callable[[Path, str], Ed25519Signer]] = {
    "client": poster.generate_key_file,
    "home": home_keys.generate_key_file,
}
LOADERS: dict[str, Callable[[Path], tuple[str, Ed25519Signer]]] = {
    "client": poster.load_key_file,
    "home": home_keys.load_key_file,
}


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on the OS: record what each ``os.fsync`` call was given ("file" or "dir")."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    before = os.umask(0o022)
    os.umask(before)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_client_and_home_share_one_implementation() -> None:
    assert poster.load_key_file is keyfiles.load_key_file
    assert poster.generate_key_file is keyfiles.generate_key_file
    assert home_keys.load_key_file is keyfiles.load_key_file


@pytest.mark.parametrize("who", sorted(GENERATORS))
def test_both_callers_fsync_the_key_and_its_directory(
    who: str, tmp_path: Path, fsyncs: list[str]
) -> None:
    path = tmp_path / "ins.key"
    GENERATORS[who](path, NAME)
    assert fsyncs == ["file", "dir"]  # the bytes first, then the name in the directory
    assert path.read_text(encoding="ascii").startswith(f"PRIVATE+KEY+{NAME}+")


@pytest.mark.parametrize("who", sorted(GENERATORS))
@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_keys_are_created_0600_whatever_the_umask(
    who: str, mask: int, tmp_path: Path, umask: Callable[[int], None]
) -> None:
    path = tmp_path / "ins.key"
    umask(mask)
    GENERATORS[who](path, NAME)
    umask(0o022)
    assert _mode(path) == 0o600


def test_the_home_creates_its_keys_directory_0700(tmp_path: Path) -> None:
    path = tmp_path / "home" / "keys" / "institutions" / "ins.key"
    home_keys.generate_key_file(path, NAME)
    assert _mode(path.parent) == 0o700
    assert _mode(path) == 0o600


def test_the_client_writes_only_into_an_existing_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "ins.key"
    with pytest.raises(ConfigurationError, match="cannot create key file"):
        poster.generate_key_file(path, NAME)
    assert not path.parent.exists()


@pytest.mark.parametrize("writer", sorted(GENERATORS))
@pytest.mark.parametrize("reader", sorted(LOADERS))
def test_round_trip(writer: str, reader: str, tmp_path: Path) -> None:
    path = tmp_path / "ins.key"
    signer = GENERATORS[writer](path, NAME)
    name, loaded = LOADERS[reader](path)
    assert name == NAME
    assert loaded.public_bytes == signer.public_bytes
    assert loaded.seed == signer.seed


@pytest.mark.parametrize("who", sorted(GENERATORS))
def test_a_key_is_never_overwritten(who: str, tmp_path: Path) -> None:
    path = tmp_path / "ins.key"
    GENERATORS[who](path, NAME)
    before = path.read_bytes()
    with pytest.raises(ConflictError) as err:
        GENERATORS[who](path, NAME)
    assert err.value.code == "key.exists"
    assert "refusing to overwrite" in str(err.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("who", sorted(GENERATORS))
def test_a_bad_name_writes_nothing(who: str, tmp_path: Path) -> None:
    path = tmp_path / "ins.key"
    with pytest.raises(InvalidInputError):
        GENERATORS[who](path, "bad name with spaces")
    assert not path.exists()


@pytest.mark.parametrize("who", sorted(LOADERS))
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606, 0o700, 0o610])
def test_keys_others_may_read_are_refused(who: str, mode: int, tmp_path: Path) -> None:
    path = tmp_path / "ins.key"
    keyfiles.generate_key_file(path, NAME)
    os.chmod(path, mode)
    if not mode & 0o077:  # 0o700: the owner's own bits are not a leak
        assert LOADERS[who](path)[0] == NAME
        return
    with pytest.raises(ConfigurationError, match="readable by others") as err:
        LOADERS[who](path)
    assert err.value.code == "key.mode"
    assert f"mode {mode:o}" in str(err.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(mode: int, tmp_path: Path) -> None:
    path = tmp_path / "ins.key"
    signer = keyfiles.generate_key_file(path, NAME)
    os.chmod(path, mode)
    assert keyfiles.load_key_file(path)[1].public_bytes == signer.public_bytes


@pytest.mark.parametrize("who", sorted(LOADERS))
def test_unreadable_and_malformed_keys_are_refused(who: str, tmp_path: Path) -> None:
    load = LOADERS[who]
    with pytest.raises(ConfigurationError, match="cannot read key file") as err:
        load(tmp_path / "missing.key")
    assert err.value.code == "key.read"
    bad = tmp_path / "bad.key"
    bad.write_text("PRIVATE+KEY+x+00000000+AAAA\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigurationError, match="malformed") as err:
        load(bad)
    assert err.value.code == "key.read"
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe")
    os.chmod(binary, 0o600)
    with pytest.raises(ConfigurationError, match="not ASCII"):
        load(binary)


def test_the_home_secret_is_private_durable_and_kept(tmp_path: Path, fsyncs: list[str]) -> None:
    path = tmp_path / "keys" / "pepper"
    first = home_keys.load_or_create_secret(path)
    assert fsyncs == ["file", "dir"]
    assert len(first) == 32
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert home_keys.load_or_create_secret(path) == first  # read back, never replaced
    os.chmod(path, 0o640)
    with pytest.raises(ConfigurationError, match=r"secret .* is readable by others"):
        home_keys.load_or_create_secret(path)


def test_create_file_keeps_a_public_mode_when_asked(tmp_path: Path, fsyncs: list[str]) -> None:
    path = tmp_path / "ca.pem"
    keyfiles.create_file(path, b"-----BEGIN CERTIFICATE-----\n", mode=0o644, what="certificate")
    assert _mode(path) == 0o644
    assert fsyncs == ["file", "dir"]
    with pytest.raises(ConflictError, match="existing certificate"):
        keyfiles.create_file(path, b"other", mode=0o644, what="certificate")
