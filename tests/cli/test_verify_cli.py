"""``creditbank keys export-public`` and ``creditbank verify``: offline (no network, no
database: run under ``unshare -n`` with no home), ``--online`` against a served bank, and
codes and URLs asked of the bank. Exit 0 only when verified, 1 when not, 2 for bad input.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from verify_world import World, build_world

from creditbank.api.app import create_app
from creditbank.cli.main import main

CREDITBANK = Path(sys.executable).parent / "creditbank"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("verify-cli") / "home")


@pytest.fixture(scope="module")
def keys_dir(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("public") / "keys"
    assert main(["--home", str(world.bank.settings.home), "keys", "export-public", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def files(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("docs")
    out = {}
    for lid in ("L01", "L03"):
        out[f"{lid}.pdf"] = folder / f"{lid}.pdf"
        out[f"{lid}.pdf"].write_bytes(world.issued[lid].pdf)
        out[f"{lid}.json"] = folder / f"{lid}.json"
        out[f"{lid}.json"].write_bytes(world.issued[lid].credential)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CREDITBANK_")}


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[str]:
    """The API over the world's bank, served by uvicorn on a free port in a thread (the
    world's fixed clock stays the bank's clock)."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(world.bank.settings, bank=world.bank), host="127.0.0.1", port=port,
        log_level="warning", lifespan="on",
    )  # fmt: skip
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not srv.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        yield base
    finally:
        srv.should_exit = True
        thread.join(timeout=20)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    got = capsys.readouterr()
    return code, got.out, got.err


# -- export ------------------------------------------------------------------------------------
def test_export_writes_the_public_material(world: World, keys_dir: Path) -> None:
    assert sorted(p.name for p in keys_dir.iterdir()) == [
        "did.json",
        "document-ca.pem",
        "log-key.txt",
        "registry.json",
    ]
    assert (keys_dir / "log-key.txt").read_text().strip() == world.bank.verifier_key
    registry = json.loads((keys_dir / "registry.json").read_text())
    assert registry["entries"][0]["index"] == 0  # the genesis entry
    ids = {i["institution_id"] for i in registry["institutions"]}
    assert "BANK" in ids
    assert len(ids) > 3
    for inst in registry["institutions"]:
        for key in inst["keys"]:
            assert key["valid_from"].endswith("Z")
    assert "PRIVATE" not in "".join(p.read_text() for p in keys_dir.iterdir())


# -- offline ------------------------------------------------------------------------------------
def test_genuine_pdf_verifies_with_no_network_and_no_database(
    keys_dir: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {probe.stderr.decode().strip()}")
    cwd = tmp_path / "empty"
    cwd.mkdir()
    done = subprocess.run(
        ["unshare", "-n", str(CREDITBANK), "verify", str(files["L01.pdf"]), "--keys",
         str(keys_dir)],
        env=_clean_env(), cwd=cwd, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr.decode())
    assert out.startswith("VALID: verified")
    for name in ("pdf.signature", "pdf.whole_file", "pdf.trusted", "credential.proof"):
        assert f"ok   {name}:" in out
    assert ".institution_signature" in out
    assert ".name_commitment" in out
    assert "FAIL" not in out
    assert list(cwd.iterdir()) == []  # no home, no database was created


def test_offline_json_and_report_as_json(
    capsys: pytest.CaptureFixture[str], keys_dir: Path, files: dict[str, Path]
) -> None:
    code, out, _ = run_cli(capsys, "verify", str(files["L03.json"]), "--keys", str(keys_dir),
                           "--json")  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert (report["verified"], report["status"]) == (True, "VALID")
    assert all(c["ok"] for c in report["checks"])


def test_a_changed_byte_fails_with_exit_1(
    capsys: pytest.CaptureFixture[str], keys_dir: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    data = bytearray(files["L01.pdf"].read_bytes())
    at = data.index(b"stream\n", len(data) // 4) + 40
    data[at] ^= 0x01
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(data))
    code, out, _ = run_cli(capsys, "verify", str(bad), "--keys", str(keys_dir))
    assert code == 1
    assert out.startswith("INVALID: NOT verified")
    assert "FAIL pdf.signature" in out


def test_a_tampered_key_registry_is_refused(
    capsys: pytest.CaptureFixture[str], keys_dir: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    forged = tmp_path / "keys"
    shutil.copytree(keys_dir, forged)
    doc = json.loads((forged / "registry.json").read_text())
    raw = bytearray(base64.b64decode(doc["entries"][1]["entry"]))
    raw[raw.index(b'"name_en":"') + 11] ^= 0x01
    doc["entries"][1]["entry"] = base64.b64encode(bytes(raw)).decode()
    (forged / "registry.json").write_text(json.dumps(doc))
    code, _, err = run_cli(capsys, "verify", str(files["L01.pdf"]), "--keys", str(forged))
    assert code == 1
    assert err.startswith("error: the key registry does not verify")
    assert err.rstrip().endswith("[verify.registry]")


def test_bad_input_is_one_line_and_exit_1_or_2(
    capsys: pytest.CaptureFixture[str], keys_dir: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    """Usage (no --keys, a missing file) exits 2; a refused code or file exits 1."""
    cases = [
        (["verify", str(files["L01.pdf"])], "verify.keys", 2),
        (["verify", str(files["L01.pdf"]), "--keys", str(tmp_path / "none")], "verify.keys", 2),
        (["verify", str(tmp_path / "missing.pdf"), "--keys", str(keys_dir)], "verify.no_file", 2),
        (["verify", "not-a-code"], "code.malformed", 1),
        (["verify", "http://127.0.0.1:1/elsewhere"], "code.malformed", 1),
    ]
    text = tmp_path / "note.txt"
    text.write_text("hello")
    cases.append((["verify", str(text), "--keys", str(keys_dir)], "verify.unsupported", 1))
    for args, want, exit_code in cases:
        code, out, err = run_cli(capsys, *args)
        assert code == exit_code, (args, err)
        assert out == ""
        assert err.count("\n") == 1
        assert err.startswith("error: ")
        assert err.rstrip().endswith(f"[{want}]"), err


# -- online and by code -----------------------------------------------------------------------
def test_online_adds_status_and_live_consistency(
    capsys: pytest.CaptureFixture[str],
    world: World,
    server: str,
    keys_dir: Path,
    files: dict[str, Path],
) -> None:
    code, out, _ = run_cli(capsys, "verify", str(files["L03.pdf"]), "--keys", str(keys_dir),
                           "--online", server)  # fmt: skip
    assert code == 0, out
    size = json.loads(files["L03.json"].read_bytes())["evidence"][0]["treeSize"]
    assert f"ok   checkpoint[{size}].consistency:" in out
    assert "ok   status:" in out
    world.revoke_record("L03", reason="posted for the wrong learner")
    code, out, _ = run_cli(capsys, "verify", str(files["L03.pdf"]), "--keys", str(keys_dir),
                           "--online", server)  # fmt: skip
    assert code == 1
    assert out.startswith("REVOKED: NOT verified")
    assert "FAIL status:" in out
    # offline, the same file still checks: everything but status
    code, _, _ = run_cli(capsys, "verify", str(files["L03.pdf"]), "--keys", str(keys_dir))
    assert code == 0


def test_codes_and_urls_ask_the_bank(
    capsys: pytest.CaptureFixture[str], world: World, server: str
) -> None:
    issued = world.issued["L01"]
    code, out, _ = run_cli(capsys, "verify", issued.code.lower(), "--url", server)
    assert code == 0, out
    assert out.startswith("VALID: verified")
    assert "ok   code:" in out
    url = issued.verify_url.replace("http://127.0.0.1:8000", server)
    code, out, _ = run_cli(capsys, "verify", url, "--json")
    assert code == 0
    assert json.loads(out)["document"]["id"] == issued.doc_id
    code, out, _ = run_cli(capsys, "verify", "0000-0000-0000-0000", "--url", server)
    assert code == 1
    assert out.startswith("NOT_FOUND: NOT verified")


def test_an_unreachable_bank_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "verify", "0000-0000-0000-0000", "--url",
                             f"http://127.0.0.1:{_free_port()}")  # fmt: skip
    assert code == 1
    assert err.rstrip().endswith("[verify.unreachable]")
