"""The independent verifier ``../shared/tools/vc-verify`` (Digital Bazaar libraries, node).

Runs only when the tool folder and ``node``/``npm`` exist (skips otherwise). The tool is copied
to a session temporary folder (``../shared`` is read-only) and ``npm ci`` runs there once.

Fixtures for any test in ``tests/interop/``:

* ``vc_verify(credential_bytes, did_doc, context_file, *, context_url=None, now=None)`` ->
  the tool's JSON verdict, running its CLI ``verify.mjs`` once (JSON-LD check on,
  ``--key-doc`` our DID document, ``--context URL=FILE`` our context; ``URL`` defaults to every
  ``@context`` entry of the credential that is neither VC 2.0 nor OB 3.0.3).
* ``vc_verify_batch([credential_bytes, ...], did_doc, context_file, *, context_url, now)`` ->
  a verdict per credential from ONE node process: a small driver written into the temporary
  copy calls the tool's own ``verifyCredentialOffline`` (the function ``verify.mjs`` calls)
  for each file, so hundreds of credentials cost one node start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from creditbank.core.credentials.context import OB_V3_CONTEXT, VC_V2_CONTEXT

#: ``../shared/tools/vc-verify`` relative to the repository root
TOOL = Path(__file__).resolve().parents[3] / "shared" / "tools" / "vc-verify"

BATCH_DRIVER = """\
import {readFileSync} from 'node:fs';
import {verifyCredentialOffline} from './node/lib/verify-core.mjs';
const spec = JSON.parse(readFileSync(0, 'utf8'));
const out = [];
for (const file of spec.files) {
  let verdict;
  try {
    verdict = await verifyCredentialOffline(JSON.parse(readFileSync(file, 'utf8')), spec.options);
  } catch (e) {
    verdict = {verified: false, errors: ['verifier: ' + e.message]};
  }
  out.push(verdict);
}
process.stdout.write(JSON.stringify(out));
"""

Verdict = dict[str, Any]
VcVerify = Callable[..., Verdict]
VcVerifyBatch = Callable[..., list[Verdict]]


def _writable(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(root) / name
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.fixture(scope="session")
def vc_verify_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private, installed copy of vc-verify (skips when the tool or node is missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (TOOL / "verify.mjs").exists() or node is None or npm is None:
        pytest.skip("../shared/tools/vc-verify or node/npm not available")
    dest = tmp_path_factory.mktemp("vc-verify") / "vc-verify"
    shutil.copytree(TOOL, dest, ignore=shutil.ignore_patterns("node_modules"))
    _writable(dest)
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=dest / "node",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm ci failed in the copy of vc-verify:\n{result.stderr[-2000:]}")
    (dest / "batch.mjs").write_text(BATCH_DRIVER, encoding="utf-8")
    return dest


def _context_args(
    credential: Mapping[str, Any], context_file: Path, context_url: str | None
) -> list[tuple[str, str]]:
    if context_url is not None:
        return [(context_url, str(context_file))]
    urls = [
        c
        for c in credential.get("@context", [])
        if isinstance(c, str) and c not in (VC_V2_CONTEXT, OB_V3_CONTEXT)
    ]
    return [(u, str(context_file)) for u in urls]


@pytest.fixture(scope="session")
def vc_verify(vc_verify_tool: Path, tmp_path_factory: pytest.TempPathFactory) -> VcVerify:
    """Verify one credential with the tool's CLI (see the module docstring)."""
    work = tmp_path_factory.mktemp("vc-verify-single")
    counter = iter(range(1 << 30))

    def run(
        credential_bytes: bytes,
        did_doc: Mapping[str, Any],
        context_file: Path,
        *,
        context_url: str | None = None,
        now: str | None = None,
    ) -> Verdict:
        n = next(counter)
        cred, key = work / f"cred-{n}.json", work / f"did-{n}.json"
        cred.write_bytes(credential_bytes)
        key.write_text(json.dumps(did_doc), encoding="utf-8")
        args = ["node", "verify.mjs", str(cred), "--key-doc", str(key)]
        try:
            parsed = json.loads(credential_bytes)
        except ValueError:
            parsed = {}
        for url, file in _context_args(parsed, context_file, context_url):
            args += ["--context", f"{url}={file}"]
        if now is not None:
            args += ["--now", now]
        proc = subprocess.run(
            args, cwd=vc_verify_tool, capture_output=True, text=True, timeout=120, check=False
        )
        verdict: Verdict = json.loads(proc.stdout)
        assert (proc.returncode == 0) == bool(verdict.get("verified")), proc.stderr
        return verdict

    return run


@pytest.fixture(scope="session")
def vc_verify_batch(
    vc_verify_tool: Path, tmp_path_factory: pytest.TempPathFactory
) -> VcVerifyBatch:
    """Verify many credentials in one node process (see the module docstring)."""
    work = tmp_path_factory.mktemp("vc-verify-batch")
    counter = iter(range(1 << 30))

    def run(
        credentials: Sequence[bytes],
        did_doc: Mapping[str, Any],
        context_file: Path,
        *,
        context_url: str,
        now: str | None = None,
    ) -> list[Verdict]:
        n = next(counter)
        key = work / f"did-{n}.json"
        key.write_text(json.dumps(did_doc), encoding="utf-8")
        files = []
        for i, data in enumerate(credentials):
            f = work / f"cred-{n}-{i}.json"
            f.write_bytes(data)
            files.append(str(f))
        options: dict[str, Any] = {
            "keyDocFiles": [str(key)],
            "extraContexts": [[context_url, str(context_file)]],
            "jsonldCheck": True,
        }
        if now is not None:
            options["now"] = now
        proc = subprocess.run(
            ["node", "batch.mjs"],
            cwd=vc_verify_tool,
            input=json.dumps({"files": files, "options": options}),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        verdicts: list[Verdict] = json.loads(proc.stdout)
        assert len(verdicts) == len(files)
        return verdicts

    return run
