"""Record chains and duplicates of one learner (rules 1 and 2).

:class:`LearnerRecords` is built once per learner and then answers, for any decision date,
which chains count (canonical chains) and what their effective versions are. Building is
``O(n log n)`` in the learner's records; nothing here looks at other learners.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from creditbank.errors import InvalidInputError

from .model import Record


@dataclass(frozen=True, slots=True)
class Chain:
    """A record and all its corrections (rule 1).

    Attributes:
        root: The chain root (the record with no ``corrects``); ``dedup_key`` and
            ``revoked_at`` are read from it.
        versions: Every member, root included, sorted by (``posted_at``, id).
    """

    root: Record
    versions: tuple[Record, ...]

    @property
    def root_id(self) -> str:
        """The root id, which names the chain everywhere (``outcome_ids``)."""
        return self.root.id

    def effective(self, on: dt.date) -> Record | None:
        """Return the effective version on a date.

        Args:
            on: The decision date D.

        Returns:
            The member with the greatest (``posted_at``, id) among those posted on or
            before ``on``, or ``None`` if none is posted yet.
        """
        best: Record | None = None
        for version in self.versions:
            if version.posted_at > on:
                break
            best = version
        return best


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A chain that never counts because an earlier-posted root shares its ``dedup_key``.

    Attributes:
        chain: The non-canonical chain.
        canonical_id: Root id of the canonical chain.
    """

    chain: Chain
    canonical_id: str


@dataclass(frozen=True, slots=True, eq=False)
class LearnerRecords:
    """All records of one learner, organised into chains.

    Attributes:
        learner_id: The learner.
        chains: Canonical chains, sorted by root id.
        duplicates: Non-canonical chains (rule 2), sorted by root id.
        by_root: Canonical chains by root id.
    """

    learner_id: str
    chains: tuple[Chain, ...]
    duplicates: tuple[Duplicate, ...]
    by_root: Mapping[str, Chain]

    @classmethod
    def empty(cls, learner_id: str) -> LearnerRecords:
        """Return the records of a learner with none.

        Args:
            learner_id: The learner.

        Returns:
            An empty index.
        """
        return cls(learner_id=learner_id, chains=(), duplicates=(), by_root={})

    @classmethod
    def build(cls, learner_id: str, records: Iterable[Record]) -> LearnerRecords:
        """Group a learner's records into chains and pick the canonical ones.

        Args:
            learner_id: The learner; every record must belong to them.
            records: The learner's records, in any order.

        Returns:
            The index.

        Raises:
            InvalidInputError: A record belongs to another learner, an id repeats, a
                ``corrects`` points to no record of this learner, or corrections form a
                cycle.
        """
        by_id: dict[str, Record] = {}
        for record in records:
            if record.learner_id != learner_id:
                raise InvalidInputError(
                    f"record {record.id} belongs to {record.learner_id}, not {learner_id}",
                    code="input.learner_mismatch",
                )
            if record.id in by_id:
                raise InvalidInputError(
                    f"record id {record.id} appears twice", code="input.duplicate_id"
                )
            by_id[record.id] = record

        root_of: dict[str, str] = {}
        members: dict[str, list[Record]] = {}
        for record in by_id.values():
            root = record.id if record.corrects is None else _find_root(record, by_id, root_of)
            group = members.get(root)
            if group is None:
                members[root] = [record]
            else:
                group.append(record)
        chains = [
            Chain(
                root=by_id[root],
                versions=(ms[0],) if len(ms) == 1 else tuple(sorted(ms, key=_posting_key)),
            )
            for root, ms in members.items()
        ]

        # Rule 2: same-learner roots sharing a dedup_key; the first posted is canonical.
        canonical: dict[str, Chain] = {}
        duplicates: list[Duplicate] = []
        kept: list[Chain] = []
        chains.sort(key=lambda c: (c.root.posted_at, c.root.id))
        for chain in chains:
            key = chain.root.dedup_key
            if key is None:
                kept.append(chain)
            elif key in canonical:
                duplicates.append(Duplicate(chain=chain, canonical_id=canonical[key].root_id))
            else:
                canonical[key] = chain
                kept.append(chain)
        kept.sort(key=lambda c: c.root.id)
        duplicates.sort(key=lambda d: d.chain.root.id)
        return cls(
            learner_id=learner_id,
            chains=tuple(kept),
            duplicates=tuple(duplicates),
            by_root={c.root_id: c for c in kept},
        )


def _posting_key(record: Record) -> tuple[dt.date, str]:
    return (record.posted_at, record.id)


def _find_root(record: Record, by_id: Mapping[str, Record], root_of: dict[str, str]) -> str:
    seen: list[str] = []
    current = record
    while current.corrects is not None:
        if current.id in root_of:
            break
        seen.append(current.id)
        parent = by_id.get(current.corrects)
        if parent is None:
            raise InvalidInputError(
                f"record {current.id} corrects {current.corrects}, which is not a record "
                f"of learner {record.learner_id}",
                code="input.dangling_correction",
            )
        if parent.id in seen:
            raise InvalidInputError(
                f"records {', '.join(seen)} form a correction cycle",
                code="input.correction_cycle",
            )
        current = parent
    root = root_of.get(current.id, current.id)
    for rid in seen:
        root_of[rid] = root
    return root


def index_records(records: Iterable[Record]) -> dict[str, LearnerRecords]:
    """Index records by learner (the decision for a learner needs only their records).

    Args:
        records: Records of any learners, in any order.

    Returns:
        Per learner id, their :class:`LearnerRecords`.

    Raises:
        InvalidInputError: A record id repeats, or a learner's chains are malformed
            (see :meth:`LearnerRecords.build`).
    """
    grouped: dict[str, list[Record]] = {}
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise InvalidInputError(
                f"record id {record.id} appears twice", code="input.duplicate_id"
            )
        seen.add(record.id)
        grouped.setdefault(record.learner_id, []).append(record)
    return {lid: LearnerRecords.build(lid, recs) for lid, recs in grouped.items()}
