"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and their verification.

Storage model: a *node* is the hash of a complete subtree, addressed by ``(level, index)``;
it covers leaves ``[index * 2**level, (index + 1) * 2**level)``. Level 0 holds leaf hashes.
Every complete subtree is stored once, when it completes, so a tree of ``n`` leaves holds
about ``2n`` nodes and nothing is ever rewritten.

Proof generation is split into a pure *plan* (which nodes are needed) and a pure *assembly*
(combine the fetched nodes), so a caller reads the O(log n) nodes a proof needs in one batch
and never touches the other leaves. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NewType

from creditbank.errors import InvalidInputError, ProofFormatError, RootMismatchError

Digest = NewType("Digest", bytes)
LeafIndex = NewType("LeafIndex", int)
TreeSize = NewType("TreeSize", int)
NodeID = tuple[int, int]  # (level, index)

HASH_SIZE = 32
#: A proof never needs more than 2 * 64 hashes for any tree of at most 2**64 leaves.
MAX_PROOF_HASHES = 128
MAX_TREE_SIZE = 2**63 - 1

EMPTY_ROOT = Digest(hashlib.sha256(b"").digest())

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> Digest:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return Digest(_sha256(b"\x00" + data).digest())


def node_hash(left: bytes, right: bytes) -> Digest:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return Digest(_sha256(b"\x01" + left + right).digest())


def node_key(level: int, index: int) -> int:
    """Pack a node address into one integer (storage key): ``level << 48 | index``."""
    return (level << 48) | index


def _largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int) -> None:
    if type(size) is not int or not 0 <= size <= MAX_TREE_SIZE:
        raise InvalidInputError(f"tree size out of range: {size!r}", code="merkle.bad_size")


# --- naive reference ---------------------------------------------------------------------
def root_from_leaf_hashes(hashes: Sequence[bytes]) -> Digest:
    """Compute the root of a tree from all its leaf hashes (O(n) time, O(log n) memory).

    Raises:
        InvalidInputError: if a hash is not 32 bytes.
    """
    stack: list[tuple[int, bytes]] = []  # (level, hash), a compact range
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise InvalidInputError("leaf hash must be 32 bytes", code="merkle.bad_hash")
        level, cur = 0, h
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            cur = node_hash(left, cur)
            level += 1
        stack.append((level, cur))
    if not stack:
        return EMPTY_ROOT
    acc = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        acc = node_hash(h, acc)
    return Digest(acc)


# --- compact ranges and appends ----------------------------------------------------------
def range_nodes(begin: int, end: int) -> list[NodeID]:
    """Decompose leaves ``[begin, end)`` into maximal aligned complete subtrees, left to right.

    Raises:
        InvalidInputError: if the range is empty or reversed.
    """
    if not 0 <= begin < end:
        raise InvalidInputError(f"bad range [{begin}, {end})", code="merkle.bad_range")
    n = end - begin
    if not n & (n - 1) and not begin & (n - 1):
        # one aligned complete subtree: every range of an inclusion proof but the rightmost
        level = n.bit_length() - 1
        return [(level, begin >> level)]
    out: list[NodeID] = []
    pos = begin
    while pos < end:
        # largest power of two that is aligned at pos and fits in the range
        align = (pos & -pos).bit_length() - 1 if pos else 64
        fit = (end - pos).bit_length() - 1
        level = min(align, fit)
        out.append((level, pos >> level))
        pos += 1 << level
    return out


def compact_range(size: int) -> list[NodeID]:
    """The nodes whose hashes summarise a tree of ``size`` leaves (one per set bit)."""
    _check_size(size)
    return range_nodes(0, size) if size else []


def fold_right(hashes: Sequence[bytes]) -> Digest:
    """Hash a left-to-right list of decreasing complete subtrees into their RFC 9162 root."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return Digest(acc)


@dataclass(frozen=True, slots=True)
class Appended:
    """Result of :func:`append_leaves`: the nodes to store and the new tree head."""

    size: int
    root: Digest
    nodes: tuple[tuple[int, int, Digest], ...]  # (level, index, hash), each stored once
    border: tuple[Digest, ...]  # hashes of compact_range(size), left to right


def append_leaves(size: int, border: Sequence[bytes], leaf_hashes: Iterable[bytes]) -> Appended:
    """Append leaves to a tree of ``size`` whose compact range hashes are ``border``.

    Returns every node (leaves included) that becomes complete, and the new root.

    Raises:
        InvalidInputError: if ``border`` does not match ``size`` or a hash has the wrong size.
    """
    ids = compact_range(size)
    if len(ids) != len(border):
        raise InvalidInputError("border does not match tree size", code="merkle.bad_border")
    stack: list[tuple[int, int, bytes]] = [
        (lvl, idx, h) for (lvl, idx), h in zip(ids, border, strict=True)
    ]
    nodes: list[tuple[int, int, Digest]] = []
    n = size
    for h in leaf_hashes:
        if len(h) != HASH_SIZE:
            raise InvalidInputError("leaf hash must be 32 bytes", code="merkle.bad_hash")
        level, index, cur = 0, n, Digest(bytes(h))
        nodes.append((0, index, cur))
        while stack and stack[-1][0] == level:
            _, _, left = stack.pop()
            cur = node_hash(left, cur)
            level += 1
            index >>= 1
            nodes.append((level, index, cur))
        stack.append((level, index, cur))
        n += 1
    hashes = tuple(Digest(bytes(h)) for _, _, h in stack)
    return Appended(size=n, root=fold_right(hashes), nodes=tuple(nodes), border=hashes)


# --- proof plans ---------------------------------------------------------------------------
# A plan is a list of ranges; each proof element is the RFC 9162 MTH of one range.


def inclusion_plan(index: int, size: int) -> list[tuple[int, int]]:
    """Ranges whose subtree hashes form the inclusion proof of ``index`` in ``size``.

    Raises:
        InvalidInputError: unless ``0 <= index < size``.
    """
    _check_size(size)
    if type(index) is not int or not 0 <= index < size:
        raise InvalidInputError(
            f"index {index} is not in a tree of size {size}", code="merkle.bad_index"
        )
    out: list[tuple[int, int]] = []
    begin, end, m = 0, size, index
    while end - begin > 1:
        k = _largest_power_of_two_below(end - begin)
        if m - begin < k:
            out.append((begin + k, end))
            end = begin + k
        else:
            out.append((begin, begin + k))
            begin += k
    out.reverse()  # RFC 9162 lists the path from the leaf upwards
    return out


def consistency_plan(first: int, second: int) -> list[tuple[int, int]]:
    """Ranges whose subtree hashes form the consistency proof from ``first`` to ``second``.

    Raises:
        InvalidInputError: unless ``0 < first <= second``.
    """
    _check_size(first)
    _check_size(second)
    if not 0 < first <= second:
        raise InvalidInputError(
            f"no consistency proof from size {first} to size {second}",
            code="merkle.bad_consistency_sizes",
        )
    out: list[tuple[int, int]] = []
    begin, end, m, complete = 0, second, first, True
    while True:
        n = end - begin
        if m == n:
            if not complete:
                out.append((begin, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            out.append((begin + k, end))
            end = begin + k
        else:
            out.append((begin, begin + k))
            begin += k
            m -= k
            complete = False
    out.reverse()
    return out


def plan_nodes(plan: Sequence[tuple[int, int]]) -> list[NodeID]:
    """Every stored node a plan needs, without duplicates, in a stable order."""
    return groups_nodes(plan_groups(plan))


def plan_groups(plan: Sequence[tuple[int, int]]) -> list[list[NodeID]]:
    """The stored nodes of each range of ``plan`` (:func:`range_nodes` of each), computed once
    for both the fetch (:func:`groups_nodes`) and the fold (:func:`assemble_groups`)."""
    return [range_nodes(b, e) for b, e in plan]


def groups_nodes(groups: Sequence[Sequence[NodeID]]) -> list[NodeID]:
    """Every node of ``groups``, without duplicates, in a stable order."""
    seen: dict[NodeID, None] = {}
    for group in groups:
        for nid in group:
            seen.setdefault(nid)
    return list(seen)


def assemble(plan: Sequence[tuple[int, int]], nodes: Mapping[NodeID, bytes]) -> list[Digest]:
    """Combine fetched nodes into the proof hashes of ``plan``.

    Raises:
        KeyError: if a needed node is missing (a storage bug; never caught).
    """
    return assemble_groups(plan_groups(plan), nodes)


def assemble_groups(
    groups: Sequence[Sequence[NodeID]], nodes: Mapping[NodeID, bytes]
) -> list[Digest]:
    """:func:`assemble` over :func:`plan_groups` already computed.

    Raises:
        KeyError: if a needed node is missing (a storage bug; never caught).
    """
    return [
        Digest(nodes[group[0]]) if len(group) == 1 else fold_right([nodes[nid] for nid in group])
        for group in groups
    ]


def inclusion_proof(
    index: int, size: int, fetch: Callable[[Sequence[NodeID]], Mapping[NodeID, bytes]]
) -> list[Digest]:
    """Build an inclusion proof, reading the O(log n) nodes it needs with one ``fetch``.

    Raises:
        InvalidInputError: unless ``0 <= index < size``.
    """
    plan = inclusion_plan(index, size)
    return assemble(plan, fetch(plan_nodes(plan)))


def consistency_proof(
    first: int, second: int, fetch: Callable[[Sequence[NodeID]], Mapping[NodeID, bytes]]
) -> list[Digest]:
    """Build a consistency proof, reading the O(log n) nodes it needs with one ``fetch``.

    Raises:
        InvalidInputError: unless ``0 < first <= second``.
    """
    plan = consistency_plan(first, second)
    return assemble(plan, fetch(plan_nodes(plan)))


def root_at(size: int, fetch: Callable[[Sequence[NodeID]], Mapping[NodeID, bytes]]) -> Digest:
    """The root of the tree's first ``size`` leaves from stored nodes (O(log n) reads)."""
    ids = compact_range(size)
    if not ids:
        return EMPTY_ROOT
    got = fetch(ids)
    return fold_right([got[i] for i in ids])


# --- verification ----------------------------------------------------------------------------
def _check_proof(proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofFormatError(f"proof has {len(proof)} hashes; at most {MAX_PROOF_HASHES}")
    for p in proof:
        if type(p) not in (bytes, bytearray) or len(p) != HASH_SIZE:
            raise ProofFormatError("every proof hash must be exactly 32 bytes")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> Digest:
    """Recompute the root implied by an inclusion proof (RFC 9162 §2.1.3.2).

    Raises:
        ProofFormatError: if the index, size or proof shape is impossible.
    """
    _check_proof(proof)
    if len(leaf) != HASH_SIZE:
        raise ProofFormatError("leaf hash must be exactly 32 bytes")
    if type(index) is not int or type(size) is not int:  # wire data: never a TypeError
        raise ProofFormatError("index and tree size must be integers")
    if not 0 <= index < size or size > MAX_TREE_SIZE:
        raise ProofFormatError(f"index {index} is beyond tree size {size}")
    fn, sn = index, size - 1
    r = bytes(leaf)
    for p in proof:
        if sn == 0:
            raise ProofFormatError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofFormatError("inclusion proof is too short")
    return Digest(r)


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that ``leaf`` (a leaf hash) is at ``index`` in the tree ``(size, root)``.

    Raises:
        ProofFormatError: if the proof cannot be a proof for these parameters.
        RootMismatchError: if the proof leads to another root.
    """
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise RootMismatchError(
            f"inclusion proof for index {index} does not lead to the root of size {size}"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify that the tree ``(second, second_root)`` extends ``(first, first_root)``.

    Follows RFC 9162 §2.1.4.2; equal sizes need an empty proof and equal roots.

    Raises:
        ProofFormatError: if sizes or proof shape are impossible.
        RootMismatchError: if the proof does not reconcile the two roots.
    """
    _check_proof(proof)
    if type(first) is not int or type(second) is not int:  # wire data: never a TypeError
        raise ProofFormatError("tree sizes must be integers")
    if first < 1 or first > second or second > MAX_TREE_SIZE:
        raise ProofFormatError(f"no consistency proof from size {first} to size {second}")
    if first == second:
        if proof:
            raise ProofFormatError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise RootMismatchError("equal sizes with different roots")
        return
    if not proof:
        raise ProofFormatError("empty consistency proof")
    path = list(proof)
    if first & (first - 1) == 0:  # exact power of two: the old root is a node of the new tree
        path.insert(0, bytes(first_root))
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofFormatError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofFormatError("consistency proof is too short")
    if fr != first_root:
        raise RootMismatchError(f"consistency proof does not reproduce the root of size {first}")
    if sr != second_root:
        raise RootMismatchError(f"consistency proof does not reproduce the root of size {second}")
