"""A dataset in the sample layout (:func:`open_dataset`), what an import of it did
(:class:`ImportReport`), and what its ids became (:func:`dataset_refs`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, select

from creditbank.errors import InvalidInputError
from creditbank.storage.tables import dataset_refs_t

#: ``dataset_refs.kind`` values
REF_LEARNER: Final = "learner"
REF_RECORD: Final = "record"
REF_REVOCATION: Final = "revocation"
REF_APPLICATION: Final = "application"

#: ``progress(step, done, total)``
Progress = Callable[[str, int, int], None]
DatasetSource = str | os.PathLike[str] | Traversable


# -- results --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutcomeRef:
    """Where one dataset outcome (or its revocation) sits: the record's owner and id and the
    index of the entry that first recorded it."""

    learner_id: str
    owner: str
    record_id: str
    entry_index: int


@dataclass
class ImportReport:
    """What one import did. Counts are of entries appended now; ``duplicates`` counts the
    records and revocations that were already in the log (re-posts answered as duplicates)."""

    dataset: str
    institutions_registered: int = 0
    institutions_closed: int = 0
    learners_created: int = 0
    learners_existing: int = 0
    records_posted: int = 0
    corrections_posted: int = 0
    revocations_posted: int = 0
    duplicates: int = 0
    entries_appended: int = 0
    rules_published: int = 0
    applications_decided: int = 0
    applications_existing: int = 0
    voids_posted: int = 0
    checkpoint_size: int | None = None
    seconds: float = 0.0
    skipped_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: dataset learner id → the bank's learner id
    learner_ids: dict[str, str] = field(default_factory=dict)
    #: outcome id → its record entry
    records: dict[str, OutcomeRef] = field(default_factory=dict)
    #: outcome id → its revocation entry
    revocations: dict[str, OutcomeRef] = field(default_factory=dict)
    #: application id → its conversion.decided entry
    applications: dict[str, int] = field(default_factory=dict)

    @property
    def learners(self) -> int:
        return self.learners_created + self.learners_existing


# -- the dataset ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """A directory (or package resource directory) in the sample layout."""

    root: Traversable
    name: str

    def has(self, file: str) -> bool:
        return self.root.joinpath(file).is_file()

    def load(self, file: str) -> Any:
        """Parse one JSON file of the dataset.

        Raises:
            InvalidInputError: ``import.missing_file`` or ``import.bad_json``.
        """
        item = self.root.joinpath(file)
        if not item.is_file():
            raise InvalidInputError(
                f"dataset {self.name} has no {file}", code="import.missing_file"
            )
        try:
            return json.loads(item.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInputError(
                f"{file} of dataset {self.name} is not UTF-8 JSON: {e}", code="import.bad_json"
            ) from e

    def rows(self, file: str) -> list[dict[str, Any]]:
        """A JSON array of objects with unique string ``id`` members.

        Raises:
            InvalidInputError: ``import.bad_rows`` (or as :meth:`load`).
        """
        data = self.load(file)
        if not isinstance(data, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) and r["id"] for r in data
        ):
            raise InvalidInputError(
                f"{file} must be an array of objects with an id", code="import.bad_rows"
            )
        ids = [r["id"] for r in data]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidInputError(f"{file}: id {dup} appears twice", code="import.bad_rows")
        return data


def open_dataset(source: DatasetSource, name: str | None = None) -> Dataset:
    """A dataset from a directory path or an ``importlib.resources`` directory.

    ``name`` labels its references in ``dataset_refs``; default: the directory's name.

    Raises:
        InvalidInputError: ``import.not_a_dataset`` if it is not a directory with
            ``outcomes.json``; ``import.name`` for a bad label.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source).resolve()
        root: Traversable = path
        default_name = path.name
    else:
        root, default_name = source, source.name
    label = default_name if name is None else name
    if not label or len(label) > 64:
        raise InvalidInputError("dataset name must be 1-64 characters", code="import.name")
    if not root.is_dir() or not root.joinpath("outcomes.json").is_file():
        raise InvalidInputError(
            f"{source} is not a dataset directory (no outcomes.json)", code="import.not_a_dataset"
        )
    return Dataset(root, label)


# -- references -----------------------------------------------------------------------------
@dataclass
class DatasetRefs:
    """What a dataset's ids became (read back from ``dataset_refs``)."""

    learner_ids: dict[str, str] = field(default_factory=dict)
    records: dict[str, OutcomeRef] = field(default_factory=dict)
    revocations: dict[str, OutcomeRef] = field(default_factory=dict)
    #: application id → its conversion.decided entry
    applications: dict[str, int] = field(default_factory=dict)


def dataset_refs(engine: Engine, dataset: str) -> DatasetRefs:
    """The learner, outcome and application references of an imported dataset (by name)."""
    out = DatasetRefs()
    with engine.connect() as conn:
        rows = conn.execute(select(dataset_refs_t).where(dataset_refs_t.c.dataset == dataset))
        for r in rows:
            if r.kind == REF_LEARNER:
                out.learner_ids[str(r.ref)] = str(r.learner_id)
                continue
            if r.kind == REF_APPLICATION:
                out.applications[str(r.ref)] = int(r.entry_idx)
                continue
            ref = OutcomeRef(str(r.learner_id), str(r.owner), str(r.record_id), int(r.entry_idx))
            (out.records if r.kind == REF_RECORD else out.revocations)[str(r.ref)] = ref
    return out
