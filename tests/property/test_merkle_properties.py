"""Merkle properties against a naive RFC 6962 reference (docs/architecture.md).

* the root from ``append_leaves`` (one leaf at a time, and in random batch splits) equals the
  recursive RFC 6962 MTH for every size 0..2000;
* prove→verify holds for every ``i < n`` and ``0 < m <= n`` (exhaustive for ``n <= 64``, sampled
  up to 2000), and our proofs equal the RFC 6962 PATH/PROOF definitions;
* any flipped proof byte, wrong index, wrong size, truncated or extended path raises a
  ``CreditBankError`` (never returns silently).

Everything is deterministic: fixed leaves, Hypothesis derandomized, sampling by SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditbank.core import merkle
from creditbank.errors import CreditBankError, ProofFormatError, RootMismatchError

N_MAX = 2000
EXHAUSTIVE_MAX = 64
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)


def sha(x: bytes) -> bytes:
    return hashlib.sha256(x).digest()


# Distinct, fixed leaves.
LEAVES = [b"leaf-%d" % i for i in range(N_MAX)]
HASHES = [merkle.leaf_hash(x) for x in LEAVES]


# --- naive reference (RFC 6962 §2.1, written from the definitions) ----------------------------
def _k(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) by the recursive definition; memoized, so growing n is incremental."""
    n = hi - lo
    if n == 0:
        return sha(b"")
    if n == 1:
        return sha(b"\x00" + LEAVES[lo])
    k = _k(n)
    return sha(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi))


def ref_path(m: int, lo: int, hi: int) -> list[bytes]:
    """PATH(m, D[lo:hi]) of RFC 6962 §2.1.1 (m relative to lo)."""
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, lo, lo + k), mth(lo + k, hi)]
    return [*ref_path(m - k, lo + k, hi), mth(lo, lo + k)]


def ref_subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) of RFC 6962 §2.1.2."""
    n = hi - lo
    if m == n:
        return [] if b else [mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, lo, lo + k, b), mth(lo + k, hi)]
    return [*ref_subproof(m - k, lo + k, hi, False), mth(lo, lo + k)]


def ref_consistency(m: int, n: int) -> list[bytes]:
    return ref_subproof(m, 0, n, True)


# --- our tree -------------------------------------------------------------------------------
@cache
def store() -> dict[merkle.NodeID, bytes]:
    app = merkle.append_leaves(0, [], HASHES)
    nodes: dict[merkle.NodeID, bytes] = {(lvl, idx): h for lvl, idx, h in app.nodes}
    assert len(nodes) == len(app.nodes)  # each node stored once
    return nodes


def fetch(ids: Sequence[merkle.NodeID]) -> Mapping[merkle.NodeID, bytes]:
    s = store()
    return {i: s[i] for i in ids}


def sample(label: str, count: int, lo: int, hi: int) -> list[int]:
    """Deterministic pseudo-random integers in [lo, hi] (SHA-256 counter mode)."""
    out = []
    for j in range(count):
        d = hashlib.sha256(f"{label}/{j}".encode()).digest()
        out.append(lo + int.from_bytes(d[:8], "big") % (hi - lo + 1))
    return out


def raises_domain_error(fn: Callable[[], object]) -> CreditBankError:
    with pytest.raises(CreditBankError) as info:
        fn()
    assert isinstance(info.value, ProofFormatError | RootMismatchError)
    return info.value


# --- roots ------------------------------------------------------------------------------------
def test_incremental_root_equals_reference_for_every_size() -> None:
    size, border = 0, tuple[bytes, ...]()
    assert merkle.fold_right(border) == mth(0, 0) == merkle.EMPTY_ROOT
    seen: dict[merkle.NodeID, bytes] = {}
    for n in range(1, N_MAX + 1):
        app = merkle.append_leaves(size, border, [HASHES[n - 1]])
        size, border = app.size, app.border
        assert size == n
        assert app.root == mth(0, n), n
        for lvl, idx, h in app.nodes:
            assert (lvl, idx) not in seen  # a node is produced once, when it completes
            seen[(lvl, idx)] = h
        assert list(border) == [seen[nid] for nid in merkle.compact_range(n)]
    assert seen == store()


@pytest.mark.parametrize("n", [*range(0, 70), 127, 128, 129, 1000, 1023, 1024, 1025, N_MAX])
def test_reference_agrees_with_root_from_leaf_hashes_and_root_at(n: int) -> None:
    assert merkle.root_from_leaf_hashes(HASHES[:n]) == mth(0, n)
    assert merkle.root_at(n, fetch) == mth(0, n)


@SETTINGS
@given(data=st.data())
def test_random_batch_splits_give_the_reference_root(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, N_MAX), label="n")
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=12), label="cuts"))
    bounds = [0, *cuts, n]
    size, border = 0, tuple[bytes, ...]()
    nodes: list[tuple[int, int, bytes]] = []
    for a, b in pairwise(bounds):
        app = merkle.append_leaves(size, border, HASHES[a:b])
        assert app.size == b
        assert app.root == mth(0, b)
        size, border = app.size, app.border
        nodes.extend(app.nodes)
    assert size == n
    # batching changes nothing: the same nodes as one big append, each exactly once
    one = merkle.append_leaves(0, [], HASHES[:n])
    assert sorted(nodes) == sorted(one.nodes)
    assert len({(lvl, idx) for lvl, idx, _ in nodes}) == len(nodes)


# --- prove then verify ------------------------------------------------------------------------
def check_inclusion(i: int, n: int) -> list[merkle.Digest]:
    proof = merkle.inclusion_proof(i, n, fetch)
    assert proof == ref_path(i, 0, n)
    merkle.verify_inclusion(i, n, HASHES[i], proof, mth(0, n))
    return proof


def check_consistency(m: int, n: int) -> list[merkle.Digest]:
    proof = merkle.consistency_proof(m, n, fetch)
    assert proof == ref_consistency(m, n)
    merkle.verify_consistency(m, n, mth(0, m), mth(0, n), proof)
    return proof


def test_prove_verify_exhaustive_small() -> None:
    for n in range(1, EXHAUSTIVE_MAX + 1):
        for i in range(n):
            check_inclusion(i, n)
        for m in range(1, n + 1):
            check_consistency(m, n)


def _large_pairs(label: str) -> list[tuple[int, int]]:
    ns = [65, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025, 1999, N_MAX]
    ns += sample(label + "/n", 300, EXHAUSTIVE_MAX + 1, N_MAX)
    pairs = []
    for j, n in enumerate(ns):
        pairs += [(0, n), (n - 1, n), (n // 2, n)]
        pairs += [(x, n) for x in sample(f"{label}/{j}", 3, 0, n - 1)]
    return pairs


def test_prove_verify_sampled_large() -> None:
    for i, n in _large_pairs("inclusion"):
        check_inclusion(i, n)
    for m, n in _large_pairs("consistency"):
        check_consistency(m + 1, n)  # 1 <= m + 1 <= n


# --- mutations always fail ----------------------------------------------------------------------
small_tree = st.integers(1, EXHAUSTIVE_MAX).flatmap(
    lambda n: st.tuples(st.integers(0, n - 1), st.just(n))
)


def test_every_flipped_byte_fails_exhaustive_small_trees() -> None:
    for n in (*range(2, 17), 21, 31, 33):
        for i in range(n):
            proof = check_inclusion(i, n)
            for e in range(len(proof)):
                for pos in range(merkle.HASH_SIZE):
                    bad = [bytearray(p) for p in proof]
                    bad[e][pos] ^= 0x01
                    raises_domain_error(
                        partial(
                            merkle.verify_inclusion,
                            i,
                            n,
                            HASHES[i],
                            [bytes(x) for x in bad],
                            mth(0, n),
                        )
                    )
        for m in range(1, n):
            proof = check_consistency(m, n)
            for e in range(len(proof)):
                for pos in range(merkle.HASH_SIZE):
                    bad = [bytearray(p) for p in proof]
                    bad[e][pos] ^= 0x80
                    raises_domain_error(
                        partial(
                            merkle.verify_consistency,
                            m,
                            n,
                            mth(0, m),
                            mth(0, n),
                            [bytes(x) for x in bad],
                        )
                    )


@SETTINGS
@given(data=st.data())
def test_flipped_byte_in_inclusion_proof_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, N_MAX), label="n")
    i = data.draw(st.integers(0, n - 1), label="i")
    proof = merkle.inclusion_proof(i, n, fetch)
    e = data.draw(st.integers(0, len(proof) - 1), label="element")
    pos = data.draw(st.integers(0, merkle.HASH_SIZE - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="mask")
    bad = [bytearray(p) for p in proof]
    bad[e][pos] ^= mask
    raises_domain_error(
        lambda: merkle.verify_inclusion(i, n, HASHES[i], [bytes(x) for x in bad], mth(0, n))
    )
    # a flipped byte in the leaf hash or in the root fails too
    leaf = bytearray(HASHES[i])
    leaf[pos] ^= mask
    raises_domain_error(lambda: merkle.verify_inclusion(i, n, bytes(leaf), proof, mth(0, n)))
    root = bytearray(mth(0, n))
    root[pos] ^= mask
    raises_domain_error(lambda: merkle.verify_inclusion(i, n, HASHES[i], proof, bytes(root)))


@SETTINGS
@given(data=st.data())
def test_flipped_byte_in_consistency_proof_or_roots_fails(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, N_MAX), label="n")
    m = data.draw(st.integers(1, n - 1), label="m")
    proof = merkle.consistency_proof(m, n, fetch)
    e = data.draw(st.integers(0, len(proof) - 1), label="element")
    pos = data.draw(st.integers(0, merkle.HASH_SIZE - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="mask")
    bad = [bytearray(p) for p in proof]
    bad[e][pos] ^= mask
    r1, r2 = mth(0, m), mth(0, n)
    raises_domain_error(lambda: merkle.verify_consistency(m, n, r1, r2, [bytes(x) for x in bad]))
    flipped1, flipped2 = bytearray(r1), bytearray(r2)
    flipped1[pos] ^= mask
    flipped2[pos] ^= mask
    raises_domain_error(lambda: merkle.verify_consistency(m, n, bytes(flipped1), r2, proof))
    raises_domain_error(lambda: merkle.verify_consistency(m, n, r1, bytes(flipped2), proof))


@SETTINGS
@given(data=st.data())
def test_wrong_index_or_size_fails_inclusion(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, N_MAX), label="n")
    i = data.draw(st.integers(0, n - 1), label="i")
    proof = merkle.inclusion_proof(i, n, fetch)
    j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="wrong index")
    raises_domain_error(lambda: merkle.verify_inclusion(j, n, HASHES[i], proof, mth(0, n)))
    # Wrong size, checked against the genuine root of that size (what a signed checkpoint
    # binds). With the *old* root a wrong size can still be self-consistent, e.g. the proof of
    # leaf 0 in a tree of 5 also "verifies" for size 6 against root(5) — no signed
    # checkpoint says (6, root(5)), so only the size/root pair a checkpoint binds is meaningful.
    n2 = data.draw(st.integers(i + 1, N_MAX).filter(lambda x: x != n), label="wrong size")
    raises_domain_error(lambda: merkle.verify_inclusion(i, n2, HASHES[i], proof, mth(0, n2)))
    # indices at or beyond the size are malformed
    k = data.draw(st.integers(n, n + 100), label="index beyond size")
    with pytest.raises(ProofFormatError):
        merkle.verify_inclusion(k, n, HASHES[i], proof, mth(0, n))


@SETTINGS
@given(data=st.data())
def test_wrong_sizes_fail_consistency(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, N_MAX), label="n")
    m = data.draw(st.integers(1, n - 1), label="m")
    proof = merkle.consistency_proof(m, n, fetch)
    m2 = data.draw(st.integers(1, n).filter(lambda x: x != m), label="wrong size1")
    raises_domain_error(lambda: merkle.verify_consistency(m2, n, mth(0, m2), mth(0, n), proof))
    n2 = data.draw(st.integers(m, N_MAX).filter(lambda x: x != n), label="wrong size2")
    raises_domain_error(lambda: merkle.verify_consistency(m, n2, mth(0, m), mth(0, n2), proof))


@SETTINGS
@given(pair=small_tree, data=st.data())
def test_truncated_or_extended_paths_fail(pair: tuple[int, int], data: st.DataObject) -> None:
    i, n = pair
    extra = data.draw(st.binary(min_size=32, max_size=32), label="extra hash")
    root = mth(0, n)
    proof: list[bytes] = list(check_inclusion(i, n))
    variants = [[*proof, extra], [extra, *proof], [*proof, proof[-1]] if proof else [extra]]
    if proof:
        variants += [proof[:-1], proof[1:]]
    for v in variants:
        raises_domain_error(partial(merkle.verify_inclusion, i, n, HASHES[i], v, root))
    m = i + 1  # 1 <= m <= n
    cproof: list[bytes] = list(check_consistency(m, n))
    cvariants = [[*cproof, extra], [extra, *cproof]]
    if cproof:
        cvariants += [cproof[:-1], cproof[1:]]
    for v in cvariants:
        raises_domain_error(partial(merkle.verify_consistency, m, n, mth(0, m), root, v))


def test_wrong_index_exhaustive_small() -> None:
    for n in range(2, 33):
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, fetch)
            for j in range(n + 2):
                if j != i:
                    raises_domain_error(
                        partial(merkle.verify_inclusion, j, n, HASHES[i], proof, mth(0, n))
                    )
