"""The bundled sample dataset is the one the oracle was written for: its bytes are pinned.

``creditbank/data/sample`` is a byte-for-byte copy of the project's shared synthetic dataset
(copied 2026-11-22). If it is re-copied, update these digests; the oracle test
(``tests/unit/test_rules_oracle.py``) must still pass unchanged.
"""

from __future__ import annotations

import hashlib

import pytest
from sample_data import SAMPLE

DIGESTS = {
    "README.md": "f648baa77d6c75daf4b475cc6c77b5994b12a15f98c01746291257743daaf80d",
    "applications.json": "378454a8578706944bf04122af59e65b5a8a7fd4dc5ec64920a5884cb2734274",
    "certificate_types.json": "19a3e00a5451203b887cf2ad51b77f39f972631d1134cff9eaf997ea39b03305",
    "conversion_rules.json": "7ba9cb5bee5c26dce5d7b7405b76302ec78d2f8289e3cf685d1c44c85989f598",
    "expected.json": "4f5db3d0e5178198e7ae41ce811a316498f5bb3dbfb8edf5b2d20c0d1af06cf6",
    "institutions.json": "8d43bb018899255fb8126c6b0ccb08905b3b747e978da3ec8c433a129f660937",
    "learners.json": "9a0090b11acecfefd14d615e019661d922f15c6f9afda19940e1abd205ec07a9",
    "outcomes.json": "bad512e614db1f36b7e7050b08dcf30e859da776d85d8db4e11c37ae01ec945f",
    "programs.json": "112dff5e9b637f82e2e86e74d05cd2c82e10506445198780ac8209635009531f",
}


def test_the_sample_holds_exactly_the_pinned_files() -> None:
    present = {p.name for p in SAMPLE.iterdir()} - {"PROVENANCE.md"}
    assert present == set(DIGESTS)


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_sample_file_bytes_are_unchanged(name: str) -> None:
    assert hashlib.sha256((SAMPLE / name).read_bytes()).hexdigest() == DIGESTS[name]
