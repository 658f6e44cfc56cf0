"""Edge cases of creditbank.core.merkle: bad sizes, indices and proof shapes, with codes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import pytest

from creditbank.core import merkle
from creditbank.errors import (
    InvalidInputError,
    ProofFormatError,
    RootMismatchError,
    VerificationError,
)

LEAVES = [merkle.leaf_hash(b"%d" % i) for i in range(16)]
H = b"\x11" * 32


def store(n: int) -> dict[merkle.NodeID, bytes]:
    return {(lvl, idx): h for lvl, idx, h in merkle.append_leaves(0, [], LEAVES[:n]).nodes}


def fetcher(n: int):  # type: ignore[no-untyped-def]  # a test helper returning a closure
    s = store(n)

    def fetch(ids: Sequence[merkle.NodeID]) -> Mapping[merkle.NodeID, bytes]:
        return {i: s[i] for i in ids}

    return fetch


def root(n: int) -> bytes:
    return merkle.root_from_leaf_hashes(LEAVES[:n])


# --- hashing ----------------------------------------------------------------------------------
def test_hash_domain_separation() -> None:
    assert hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert merkle.leaf_hash(b"ab") == hashlib.sha256(b"\x00ab").digest()
    assert merkle.node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert merkle.leaf_hash(b"\x01" + H + H) != merkle.node_hash(H, H)


def test_node_key_packs_level_and_index() -> None:
    assert merkle.node_key(0, 5) == 5
    assert merkle.node_key(3, 1) == (3 << 48) | 1
    assert merkle.node_key(1, 0) != merkle.node_key(0, 1 << 47)


# --- bad sizes and indices: InvalidInputError with a code -------------------------------------
@pytest.mark.parametrize("size", [-1, merkle.MAX_TREE_SIZE + 1, True, 1.0, "3", None])
def test_bad_sizes(size: object) -> None:
    with pytest.raises(InvalidInputError) as e:
        merkle.compact_range(size)  # type: ignore[arg-type]
    assert e.value.code == "merkle.bad_size"
    with pytest.raises(InvalidInputError) as e:
        merkle.inclusion_plan(0, size)  # type: ignore[arg-type]
    assert e.value.code == "merkle.bad_size"
    with pytest.raises(InvalidInputError) as e:
        merkle.consistency_plan(1, size)  # type: ignore[arg-type]
    assert e.value.code == "merkle.bad_size"


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (6, 5), (-1, 5), (True, 5), (1.0, 5)])
def test_bad_inclusion_index(index: object, size: int) -> None:
    with pytest.raises(InvalidInputError) as e:
        merkle.inclusion_plan(index, size)  # type: ignore[arg-type]
    assert e.value.code == "merkle.bad_index"
    with pytest.raises(InvalidInputError) as e:
        merkle.inclusion_proof(index, size, fetcher(16))  # type: ignore[arg-type]
    assert e.value.code == "merkle.bad_index"


@pytest.mark.parametrize(("first", "second"), [(0, 0), (0, 5), (6, 5), (2, 1)])
def test_bad_consistency_sizes(first: int, second: int) -> None:
    with pytest.raises(InvalidInputError) as e:
        merkle.consistency_plan(first, second)
    assert e.value.code == "merkle.bad_consistency_sizes"
    with pytest.raises(InvalidInputError) as e:
        merkle.consistency_proof(first, second, fetcher(16))
    assert e.value.code == "merkle.bad_consistency_sizes"


@pytest.mark.parametrize(("begin", "end"), [(0, 0), (3, 3), (4, 2), (-1, 2)])
def test_bad_ranges(begin: int, end: int) -> None:
    with pytest.raises(InvalidInputError) as e:
        merkle.range_nodes(begin, end)
    assert e.value.code == "merkle.bad_range"


def test_append_rejects_bad_border_and_hashes() -> None:
    with pytest.raises(InvalidInputError) as e:
        merkle.append_leaves(3, [H], [H])  # size 3 has two border nodes
    assert e.value.code == "merkle.bad_border"
    with pytest.raises(InvalidInputError) as e:
        merkle.append_leaves(0, [], [b"short"])
    assert e.value.code == "merkle.bad_hash"
    with pytest.raises(InvalidInputError) as e:
        merkle.root_from_leaf_hashes([H, H + b"x"])
    assert e.value.code == "merkle.bad_hash"


# --- shapes -----------------------------------------------------------------------------------
def test_compact_range_and_ranges() -> None:
    assert merkle.compact_range(0) == []
    assert merkle.compact_range(1) == [(0, 0)]
    assert merkle.compact_range(7) == [(2, 0), (1, 2), (0, 6)]
    assert merkle.compact_range(8) == [(3, 0)]
    assert merkle.range_nodes(3, 8) == [(0, 3), (2, 1)]
    assert merkle.range_nodes(5, 6) == [(0, 5)]
    # the largest size is representable
    big = merkle.compact_range(merkle.MAX_TREE_SIZE)
    assert len(big) == 63
    assert big[0] == (62, 0)


def test_plans_for_known_sizes() -> None:
    assert merkle.inclusion_plan(0, 1) == []
    assert merkle.inclusion_plan(5, 8) == [(4, 5), (6, 8), (0, 4)]
    assert merkle.consistency_plan(3, 8) == [(2, 3), (3, 4), (0, 2), (4, 8)]
    assert merkle.consistency_plan(4, 8) == [(4, 8)]
    assert merkle.consistency_plan(8, 8) == []
    deep = merkle.inclusion_plan(merkle.MAX_TREE_SIZE - 1, merkle.MAX_TREE_SIZE)
    assert len(deep) == 62


def test_plan_nodes_dedupes_and_assemble_needs_every_node() -> None:
    plan = merkle.consistency_plan(3, 7)
    nodes = merkle.plan_nodes(plan)
    assert len(nodes) == len(set(nodes))
    with pytest.raises(KeyError):  # a storage bug: loud, never a domain error
        merkle.assemble(plan, {})


def test_empty_and_single_trees() -> None:
    assert merkle.append_leaves(0, [], []).root == merkle.EMPTY_ROOT
    assert merkle.root_at(0, fetcher(0)) == merkle.EMPTY_ROOT
    one = merkle.append_leaves(0, [], [LEAVES[0]])
    assert one.root == LEAVES[0]
    assert one.nodes == ((0, 0, LEAVES[0]),)
    merkle.verify_inclusion(0, 1, LEAVES[0], [], LEAVES[0])


def test_append_continues_from_a_border() -> None:
    first = merkle.append_leaves(0, [], LEAVES[:5])
    second = merkle.append_leaves(first.size, first.border, LEAVES[5:11])
    assert second.size == 11
    assert second.root == root(11)
    assert {(lvl, idx) for lvl, idx, _ in first.nodes}.isdisjoint(
        {(lvl, idx) for lvl, idx, _ in second.nodes}
    )


# --- verification: ProofFormatError vs RootMismatchError --------------------------------------
def test_inclusion_proof_element_not_32_bytes() -> None:
    proof = merkle.inclusion_proof(2, 5, fetcher(5))
    for bad in (proof[0][:31], proof[0] + b"\x00", b"", proof[0].hex()):
        with pytest.raises(ProofFormatError):
            merkle.verify_inclusion(2, 5, LEAVES[2], [bad, *proof[1:]], root(5))  # type: ignore[list-item]
    assert ProofFormatError.code == "verify.proof_format"


def test_inclusion_leaf_not_32_bytes() -> None:
    with pytest.raises(ProofFormatError):
        merkle.verify_inclusion(0, 1, b"\x00" * 31, [], root(1))


def test_inclusion_too_long_and_too_short() -> None:
    proof = merkle.inclusion_proof(2, 5, fetcher(5))
    with pytest.raises(ProofFormatError, match="too long"):
        merkle.verify_inclusion(2, 5, LEAVES[2], [*proof, H], root(5))
    with pytest.raises(ProofFormatError, match="too short"):
        merkle.verify_inclusion(2, 5, LEAVES[2], proof[:-1], root(5))
    with pytest.raises(ProofFormatError, match="at most"):
        merkle.verify_inclusion(2, 5, LEAVES[2], [H] * (merkle.MAX_PROOF_HASHES + 1), root(5))
    with pytest.raises(ProofFormatError, match="too long"):
        merkle.verify_inclusion(0, 1, LEAVES[0], [H], root(1))


@pytest.mark.parametrize(
    ("index", "size"), [(5, 5), (-1, 5), (0, 0), (0, merkle.MAX_TREE_SIZE + 1)]
)
def test_inclusion_impossible_index_or_size(index: int, size: int) -> None:
    with pytest.raises(ProofFormatError):
        merkle.verify_inclusion(index, size, LEAVES[0], [], root(1))


@pytest.mark.parametrize(("index", "size"), [(True, 2), (0, 2.0), ("0", 2), (0, None)])
def test_inclusion_non_integer_index_or_size(index: object, size: object) -> None:
    proof = merkle.inclusion_proof(0, 2, fetcher(2))
    with pytest.raises(ProofFormatError):
        merkle.verify_inclusion(index, size, LEAVES[0], proof, root(2))  # type: ignore[arg-type]


def test_inclusion_wrong_root_is_root_mismatch() -> None:
    proof = merkle.inclusion_proof(3, 7, fetcher(7))
    merkle.verify_inclusion(3, 7, LEAVES[3], proof, root(7))
    with pytest.raises(RootMismatchError) as e:
        merkle.verify_inclusion(3, 7, LEAVES[3], proof, root(6))
    assert e.value.code == "verify.root_mismatch"
    assert isinstance(e.value, VerificationError)
    with pytest.raises(RootMismatchError):
        merkle.verify_inclusion(3, 7, LEAVES[3], proof, b"short root")


def test_consistency_shapes() -> None:
    proof = merkle.consistency_proof(3, 7, fetcher(7))
    merkle.verify_consistency(3, 7, root(3), root(7), proof)
    with pytest.raises(ProofFormatError, match="empty"):
        merkle.verify_consistency(3, 7, root(3), root(7), [])
    with pytest.raises(ProofFormatError, match="too long"):
        merkle.verify_consistency(3, 7, root(3), root(7), [*proof, H, H, H])
    with pytest.raises(ProofFormatError, match="too short"):
        merkle.verify_consistency(3, 7, root(3), root(7), proof[:-1])
    with pytest.raises(ProofFormatError):
        merkle.verify_consistency(3, 7, root(3), root(7), [proof[0][:16], *proof[1:]])
    with pytest.raises(ProofFormatError, match="at most"):
        merkle.verify_consistency(3, 7, root(3), root(7), [H] * (merkle.MAX_PROOF_HASHES + 1))
    with pytest.raises(RootMismatchError, match="size 3"):
        merkle.verify_consistency(3, 7, root(2), root(7), proof)
    with pytest.raises(RootMismatchError, match="size 7"):
        merkle.verify_consistency(3, 7, root(3), root(6), proof)


def test_consistency_equal_sizes() -> None:
    merkle.verify_consistency(5, 5, root(5), root(5), [])
    with pytest.raises(ProofFormatError, match="must be empty"):
        merkle.verify_consistency(5, 5, root(5), root(5), [H])
    with pytest.raises(RootMismatchError):
        merkle.verify_consistency(5, 5, root(5), root(4), [])


@pytest.mark.parametrize(
    ("first", "second"),
    [(0, 0), (0, 3), (4, 3), (-1, 3), (1, merkle.MAX_TREE_SIZE + 1)],
)
def test_consistency_impossible_sizes(first: int, second: int) -> None:
    with pytest.raises(ProofFormatError):
        merkle.verify_consistency(first, second, H, H, [H])


@pytest.mark.parametrize(("first", "second"), [(True, 2), (1, 2.0), ("1", 2), (None, 2)])
def test_consistency_non_integer_sizes(first: object, second: object) -> None:
    proof = merkle.consistency_proof(1, 2, fetcher(2))
    with pytest.raises(ProofFormatError):
        merkle.verify_consistency(first, second, root(1), root(2), proof)  # type: ignore[arg-type]


def test_power_of_two_first_size_uses_first_root() -> None:
    proof = merkle.consistency_proof(4, 7, fetcher(7))
    merkle.verify_consistency(4, 7, root(4), root(7), proof)
    with pytest.raises(RootMismatchError):
        merkle.verify_consistency(4, 7, H, root(7), proof)


def _range_nodes_reference(begin: int, end: int) -> list[tuple[int, int]]:
    """The decomposition by its definition: greedily the largest aligned subtree that fits."""
    out = []
    pos = begin
    while pos < end:
        level = 0
        while pos % (1 << (level + 1)) == 0 and pos + (1 << (level + 1)) <= end:
            level += 1
        out.append((level, pos >> level))
        pos += 1 << level
    return out


def test_range_nodes_equals_the_greedy_definition_for_every_small_range() -> None:
    for begin in range(0, 70):
        for end in range(begin + 1, 140):
            assert merkle.range_nodes(begin, end) == _range_nodes_reference(begin, end)
    big = 1 << 40
    assert merkle.range_nodes(big, 2 * big) == [(40, 1)]
    assert merkle.range_nodes(big, 2 * big + 3) == [(40, 1), (1, big), (0, 2 * big + 2)]


def test_plan_groups_fetch_and_fold_like_the_plan() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(37)]

    def fetch(ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return {
            (lv, i): merkle.root_from_leaf_hashes(leaves[i << lv : (i + 1) << lv]) for lv, i in ids
        }

    for size in (1, 2, 5, 16, 37):
        for index in range(size):
            plan = merkle.inclusion_plan(index, size)
            groups = merkle.plan_groups(plan)
            assert merkle.groups_nodes(groups) == merkle.plan_nodes(plan)
            fetched = fetch(merkle.groups_nodes(groups))
            proof = merkle.assemble_groups(groups, fetched)
            assert proof == merkle.assemble(plan, fetched)
            root = merkle.root_from_leaf_hashes(leaves[:size])
            merkle.verify_inclusion(index, size, leaves[index], proof, root)
