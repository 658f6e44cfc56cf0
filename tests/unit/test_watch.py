"""The pure checks shared by ``creditbank monitor`` and the console's Log watch
(creditbank/core/watch.py): the stored checkpoint history."""

from __future__ import annotations

from creditbank.core import merkle
from creditbank.core.checkpoint import Checkpoint, sign_checkpoint
from creditbank.core.signing import Ed25519Signer, format_verifier_key, parse_verifier_key
from creditbank.core.watch import check_checkpoints

ORIGIN = "bank.example/log"
LOG = Ed25519Signer.from_seed(bytes(range(32)))
OTHER = Ed25519Signer.from_seed(bytes(range(100, 132)))
LEAVES = [merkle.leaf_hash(bytes([i])) for i in range(5)]


def root_of(size: int) -> bytes:
    return merkle.root_from_leaf_hashes(LEAVES[:size])


def note(size: int, signer: Ed25519Signer = LOG, root: bytes | None = None) -> str:
    cp = Checkpoint(ORIGIN, size, root_of(size) if root is None else root)
    return sign_checkpoint(cp, ORIGIN, signer)


VERIFIER = parse_verifier_key(format_verifier_key(ORIGIN, LOG.public_bytes))


def test_a_consistent_history_has_no_alert() -> None:
    assert check_checkpoints([(2, note(2)), (3, note(3)), (5, note(5))], VERIFIER, root_of) == []


def test_bad_signature_wrong_size_and_rewritten_root_are_alerts() -> None:
    history = [
        (1, note(1)),
        (2, note(2, OTHER)),
        (3, note(4)),
        (5, note(5, root=root_of(4))),
    ]
    got = [(a.size, a.code) for a in check_checkpoints(history, VERIFIER, root_of)]
    assert got == [
        (2, "checkpoint.signature"),
        (3, "checkpoint.rollback"),
        (5, "log.inconsistent"),
    ]
