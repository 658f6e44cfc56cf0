"""Row formats of ``creditbank post``: CSV and JSONL files of records, corrections, revocations.

One row is one ledger entry an institution signs:

* a **record** (``record.posted``): ``record_id``, ``kind``, the learner's name and identity
  document, ``achieved_on`` and the columns of its kind;
* a **correction** (``record.corrected``): the same plus ``corrects`` (the ``record_id`` it
  replaces) — a complete new version, under its own ``record_id``;
* a **revocation** (``record.revoked``): ``record_id`` (of the record revoked),
  ``revoke_reason`` and ``revoke_effective_on``; every other column is ignored, so a revoked
  record's exported row can be posted as it stands with the two columns filled in.

The column list of every kind is :data:`KIND_COLUMNS`; docs/csv-format.md explains each.
Rows are validated here, before anything is sent: values are converted (credits exactly to
integer hundredths, integers strictly), the identity document is checked
(:func:`creditbank.core.identity.normalize_identity`) and the body is checked against its JSON
Schema (:func:`creditbank.core.records.validate_record_body`) with placeholders for the two
fields only the bank can supply (the learner id and the name commitment's salt). A row that
fails is reported as a :class:`RowError`; it is never sent.

Row numbers are those a spreadsheet shows: the CSV header is row 1, so the first record is
row 2; in JSONL a row's number is its line number. Messages never repeat a name or an
identity number.
"""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from itertools import repeat
from pathlib import Path
from typing import Any, Final

from creditbank.core.canonical import canonicalize
from creditbank.core.identity import (
    DOC_TYPES,
    MAX_NAME_LENGTH,  # noqa: F401 - re-exported for the client's callers
    IdentityDoc,
    check_person_name,
    name_commitment,
    normalize_identity,
)
from creditbank.core.records import (
    RECORD_KINDS,
    complete_payload,
    credits_to_centi,
    validate_record_body,
)
from creditbank.errors import CreditBankError, InvalidInputError

#: columns every record row may carry (``*`` in the docs: required)
COMMON_COLUMNS: Final = (
    "record_id",
    "kind",
    "learner_name",
    "id_type",
    "id_number",
    "nationality",
    "achieved_on",
    "dedup_key",
    "evidence_sha256",
    "corrects",
    "posted_at",
    "on_behalf_of",
)
REVOCATION_COLUMNS: Final = ("revoke_reason", "revoke_effective_on")
#: the payload columns of each kind: (column, required)
KIND_COLUMNS: Final[Mapping[str, tuple[tuple[str, bool], ...]]] = {
    "academic_credit": (
        ("course_id", True),
        ("credits", True),
        ("grade", True),
        ("term", True),
        ("course_name_zh", False),
    ),
    "skill_certificate": (
        ("certificate_type_id", True),
        ("occupation", True),
        ("level", False),
        ("level_label_zh", True),
        ("certificate_no", True),
        ("issued_on", False),
        ("expires_on", False),
    ),
    "training_hours": (
        ("training_program_id", True),
        ("hours", True),
        ("cohort", True),
        ("training_name_zh", False),
    ),
    "competition_award": (
        ("competition", True),
        ("tier", True),
        ("rank", True),
        ("field", True),
    ),
    "work_experience": (
        ("occupation_key", True),
        ("employer", True),
        ("start_on", True),
        ("end_on", True),
        ("duration_months", True),
        ("verified_by", False),
    ),
}
_PAYLOAD_COLUMNS: Final = frozenset(c for cols in KIND_COLUMNS.values() for c, _ in cols)
ALL_COLUMNS: Final = frozenset(COMMON_COLUMNS) | frozenset(REVOCATION_COLUMNS) | _PAYLOAD_COLUMNS
#: columns read as integers (``level`` may also be empty: an unlevelled permit)
_INT_COLUMNS: Final = frozenset({"grade", "hours", "rank", "duration_months", "level"})
#: columns holding dates or codes: surrounding blanks are dropped (never from free text)
_STRIPPED_COLUMNS: Final = frozenset(
    {
        "record_id",
        "kind",
        "id_type",
        "id_number",
        "nationality",
        "achieved_on",
        "evidence_sha256",
        "corrects",
        "posted_at",
        "on_behalf_of",
        "revoke_effective_on",
        "course_id",
        "term",
        "certificate_type_id",
        "occupation",
        "issued_on",
        "expires_on",
        "training_program_id",
        "cohort",
        "tier",
        "field",
        "occupation_key",
        "start_on",
        "end_on",
        "verified_by",
    }
)

RECORD_POSTED: Final = "record.posted"
RECORD_CORRECTED: Final = "record.corrected"
RECORD_REVOKED: Final = "record.revoked"

_PLACEHOLDER_LEARNER: Final = "LRN-" + "0" * 20
_PLACEHOLDER_SALT: Final = bytes(16)
_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL_RE: Final = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_SHA256_RE: Final = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})")
MAX_FILE_ROWS: Final = 10_000_000
#: rows validated per task, and the smallest file worth validating in worker processes
PARSE_CHUNK: Final = 2_000
PARALLEL_MIN_ROWS: Final = 8_000


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one input row was not posted. ``row`` is the number a spreadsheet shows."""

    row: int
    record_id: str | None
    code: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "record_id": self.record_id,
            "code": self.code,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Row:
    """One valid input row, ready to be completed with the learner and signed.

    ``body`` lacks ``learner`` and ``name_commitment`` for records and corrections (the bank's
    learner resolution supplies them); for a revocation it is the complete body. ``digest``
    identifies the row's content (the signed body but for the bank's fields, the identity
    document and the name), so that a re-run notices a row changed after it was posted;
    ``source`` identifies the row's text (:func:`source_digest`), so that a re-run skips an
    unchanged acknowledged row without validating it again.
    """

    row: int
    record_id: str
    entry_type: str
    body: Mapping[str, Any]
    identity: IdentityDoc | None
    name: str | None
    digest: str
    source: str = ""

    @property
    def journal_key(self) -> str:
        """``record:<id>`` for records and corrections, ``revocation:<id>`` for revocations."""
        prefix = "revocation" if self.entry_type == RECORD_REVOKED else "record"
        return f"{prefix}:{self.record_id}"

    def complete_body(self, learner: str, salt: bytes) -> dict[str, Any]:
        """The body to sign: with the bank's learner id and the name commitment.

        Raises:
            InvalidInputError: ``identity.salt`` if the salt is not 16 bytes.
        """
        if self.entry_type == RECORD_REVOKED:
            return dict(self.body)
        assert self.name is not None  # noqa: S101 - set for every record row by parse_row
        return {
            **self.body,
            "learner": learner,
            "name_commitment": name_commitment(salt, self.name),
        }


class _BadRowError(Exception):
    """Raised inside :func:`parse_row`; becomes a :class:`RowError`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# --- reading files --------------------------------------------------------------------------
def file_format(path: Path) -> str:
    """``csv`` or ``jsonl``, from the file name.

    Raises:
        InvalidInputError: ``post.format`` for any other extension.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise InvalidInputError(f"{path.name}: want a .csv or .jsonl file", code="post.format")


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row number, fields)`` of a CSV (UTF-8, optional BOM) or JSONL file.

    CSV values are text, an empty cell meaning "not given". JSONL values may also be JSON
    numbers (read exactly, as integers or decimals) or ``null``; a line that is not a JSON
    object is yielded as ``{"__error__": message}``.

    Raises:
        InvalidInputError: ``post.format`` if the file is not UTF-8, has no header, repeats
            a column or names an unknown one, or is too long; ``post.read`` if it cannot be read.
    """
    fmt = file_format(path)
    try:
        handle = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror}", code="post.read") from e
    with handle:
        try:
            if fmt == "csv":
                yield from _read_csv(path, handle)
            else:
                yield from _read_jsonl(handle)
        except UnicodeDecodeError as e:
            raise InvalidInputError(f"{path.name} is not UTF-8 text", code="post.format") from e


def _read_csv(path: Path, handle: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInputError(f"{path.name} is empty", code="post.format") from None
    except csv.Error as e:
        raise InvalidInputError(f"{path.name}: bad CSV header: {e}", code="post.format") from e
    columns = [c.strip() for c in header]
    unknown = [c for c in columns if c not in ALL_COLUMNS]
    if unknown:
        raise InvalidInputError(
            f"{path.name}: unknown column(s) {', '.join(map(repr, unknown))}; "
            "see docs/csv-format.md",
            code="post.format",
        )
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise InvalidInputError(
            f"{path.name}: repeated column(s) {', '.join(dupes)}", code="post.format"
        )
    if "record_id" not in columns:
        raise InvalidInputError(f"{path.name}: no record_id column", code="post.format")
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InvalidInputError(
                f"{path.name}: row {number + 1}: bad CSV: {e}", code="post.format"
            ) from e
        number += 1
        if number > MAX_FILE_ROWS:
            raise InvalidInputError(
                f"{path.name}: more than {MAX_FILE_ROWS} rows", code="post.format"
            )
        if not cells or all(not c.strip() for c in cells):
            continue  # blank line
        if len(cells) != len(columns):
            yield (
                number,
                {"__error__": f"has {len(cells)} cells, the header {len(columns)} columns"},
            )
            continue
        yield number, {c: v for c, v in zip(columns, cells, strict=True) if v != ""}


def _read_jsonl(handle: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(handle, start=1):
        if number > MAX_FILE_ROWS:
            raise InvalidInputError(f"more than {MAX_FILE_ROWS} lines", code="post.format")
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_float=Decimal, object_pairs_hook=_no_duplicate_keys)
        except (ValueError, _DuplicateKeyError) as e:
            detail = str(e) if isinstance(e, _DuplicateKeyError) else "is not valid JSON"
            yield number, {"__error__": detail}
            continue
        if not isinstance(obj, dict):
            yield number, {"__error__": "is not a JSON object"}
            continue
        yield number, {k: v for k, v in obj.items() if v is not None and v != ""}


class _DuplicateKeyError(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKeyError(f"repeats the key {k!r}")
        out[k] = v
    return out


# --- parsing one row -----------------------------------------------------------------------
def row_key(fields: Mapping[str, Any]) -> str | None:
    """The journal key a row would have (see :attr:`Row.journal_key`), read cheaply from its
    fields without validating them; ``None`` without a usable ``record_id``."""
    rid = fields.get("record_id")
    if not isinstance(rid, str) or not rid.strip():
        return None
    revocation = any(
        isinstance(fields.get(c), str | int | Decimal) and str(fields.get(c)).strip()
        for c in REVOCATION_COLUMNS
    )
    return f"{'revocation' if revocation else 'record'}:{rid.strip()}"


def source_digest(fields: Mapping[str, Any]) -> str:
    """A digest of a row's given values (empty ones left out), whatever the file format."""
    given = sorted((str(k), str(v)) for k, v in fields.items() if v is not None and v != "")
    data = json.dumps(given, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]


def parse_row(
    number: int, fields: Mapping[str, Any], *, issuer: str, today: date
) -> Row | RowError:
    """Turn one input row into a :class:`Row`, or say why it cannot be posted.

    Args:
        number: the row number to report.
        fields: column → value; absent or empty columns are "not given".
        issuer: the posting institution (it names default ``dedup_key`` values).
        today: dates after it are refused, as the bank would (its clock, in UTC).

    Returns:
        The row, or a :class:`RowError` with a stable code: ``row.format`` (unreadable row),
        ``row.unknown_column``, ``row.required``, ``row.foreign_column`` (a column of another
        kind is filled in), ``row.integer``, ``row.kind``, ``record.credits``,
        ``identity.format|checksum|nationality|name``, or a code of
        :func:`~creditbank.core.records.validate_record_body` (``record.schema``,
        ``record.level_range``, ``record.future_date``, ``record.expiry_before_issue``, …).
    """
    fields = {k: v for k, v in fields.items() if v is not None and v != ""}
    rid = fields.get("record_id")
    record_id = rid.strip() if isinstance(rid, str) else None
    try:
        row = _parse(number, fields, issuer=issuer, today=today)
        row = replace(row, source=source_digest(fields))
    except _BadRowError as p:
        return RowError(number, record_id or None, p.code, p.detail)
    except CreditBankError as e:
        return RowError(number, record_id or None, e.code, e.message)
    return row


def _text(fields: Mapping[str, Any], column: str) -> str | None:
    value = fields.get(column)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _BadRowError("record.schema", f"column {column}: must be text")
    text = value if isinstance(value, str) else str(value)
    if column in _STRIPPED_COLUMNS:
        text = text.strip()
    return text or None


def _required(fields: Mapping[str, Any], column: str, why: str = "") -> str:
    value = _text(fields, column)
    if value is None:
        raise _BadRowError("row.required", f"column {column} is required{why}")
    return value


def _integer(fields: Mapping[str, Any], column: str) -> int | None:
    value = fields.get(column)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    if isinstance(value, str) and not value.strip():
        return None
    raise _BadRowError("row.integer", f"column {column}: must be a whole number")


def _credits(fields: Mapping[str, Any]) -> int:
    value = fields.get("credits")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _BadRowError("row.required", "column credits is required")
    amount: Decimal | int
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_RE.fullmatch(text):
            raise _BadRowError(
                "record.credits", "column credits: must be a decimal number such as 4 or 1.5"
            )
        amount = Decimal(text)
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        amount = value
    else:
        raise _BadRowError("record.credits", "column credits: must be a number")
    try:
        if amount < 0:
            raise _BadRowError("record.credits", "column credits: must not be negative")
    except InvalidOperation as e:  # pragma: no cover - Decimal NaN cannot come from the regex
        raise _BadRowError("record.credits", "column credits: must be a number") from e
    try:
        return credits_to_centi(amount)
    except InvalidInputError as e:
        raise _BadRowError("record.credits", f"column credits: {e.message}") from e


def _parse(number: int, fields: Mapping[str, Any], *, issuer: str, today: date) -> Row:
    if "__error__" in fields:
        raise _BadRowError("row.format", f"row {fields['__error__']}")
    unknown = sorted(k for k in fields if k not in ALL_COLUMNS)
    if unknown:
        raise _BadRowError("row.unknown_column", f"unknown column(s) {', '.join(unknown)}")
    record_id = _required(fields, "record_id")
    on_behalf_of = _text(fields, "on_behalf_of")
    reason = _text(fields, "revoke_reason")
    if reason is not None or _text(fields, "revoke_effective_on") is not None:
        return _revocation(number, fields, record_id, reason, on_behalf_of, today)

    kind = _required(fields, "kind")
    if kind not in RECORD_KINDS:
        raise _BadRowError("row.kind", f"kind must be one of {', '.join(RECORD_KINDS)}")
    own = {c for c, _ in KIND_COLUMNS[kind]}
    foreign = sorted(
        c
        for c, v in fields.items()
        if c in _PAYLOAD_COLUMNS and c not in own and not (isinstance(v, str) and not v.strip())
    )
    if foreign:
        raise _BadRowError(
            "row.foreign_column", f"column(s) {', '.join(foreign)} do not belong to kind {kind}"
        )

    name = fields.get("learner_name")
    if not isinstance(name, str) or not name.strip():
        raise _BadRowError("identity.name", "column learner_name is required")
    try:  # the bank's own rule (NFC; no control, bidi or unassigned characters; length)
        check_person_name(name, "column learner_name")
    except InvalidInputError as e:
        raise _BadRowError("identity.name", e.message) from e
    id_type = _required(fields, "id_type")
    if id_type not in DOC_TYPES:
        raise _BadRowError(
            "identity.format", f"id_type must be one of {', '.join(sorted(DOC_TYPES))}"
        )
    id_number = _required(fields, "id_number")
    identity = normalize_identity(id_type, id_number, _text(fields, "nationality"), today=today)

    payload = _payload(kind, fields, issuer)
    achieved_on = _text(fields, "achieved_on")
    if achieved_on is None and kind == "work_experience":
        achieved_on = payload["end_on"]
    if achieved_on is None:
        raise _BadRowError("row.required", "column achieved_on is required")
    complete_payload(kind, payload, achieved_on=achieved_on)

    owner = on_behalf_of or issuer
    dedup_key = _text(fields, "dedup_key") or default_dedup_key(kind, owner, achieved_on, payload)
    body: dict[str, Any] = {
        "record_id": record_id,
        "dedup_key": dedup_key,
        "kind": kind,
        "achieved_on": achieved_on,
        "payload": payload,
    }
    evidence = _text(fields, "evidence_sha256")
    if evidence is not None:
        m = _SHA256_RE.fullmatch(evidence)
        if m is None:
            raise _BadRowError(
                "record.schema", "column evidence_sha256: must be 64 hex digits (sha256: allowed)"
            )
        body["evidence"] = {"sha256": m.group(1).lower()}
    for column in ("posted_at", "on_behalf_of", "corrects"):
        value = _text(fields, column)
        if value is not None:
            body[column] = value
    entry_type = RECORD_CORRECTED if "corrects" in body else RECORD_POSTED

    check = {
        **body,
        "learner": _PLACEHOLDER_LEARNER,
        "name_commitment": name_commitment(_PLACEHOLDER_SALT, name),
    }
    validate_record_body(entry_type, check, today=today)
    digest = _digest(entry_type, body, identity, name)
    return Row(number, record_id, entry_type, body, identity, name, digest)


def _revocation(
    number: int,
    fields: Mapping[str, Any],
    record_id: str,
    reason: str | None,
    on_behalf_of: str | None,
    today: date,
) -> Row:
    if reason is None or not reason.strip():
        raise _BadRowError("row.required", "column revoke_reason is required for a revocation")
    effective_on = _required(fields, "revoke_effective_on", " for a revocation")
    body: dict[str, Any] = {"record_id": record_id, "reason": reason, "effective_on": effective_on}
    if on_behalf_of is not None:
        body["on_behalf_of"] = on_behalf_of
    validate_record_body(RECORD_REVOKED, body, today=today)
    return Row(number, record_id, RECORD_REVOKED, body, None, None, _digest(RECORD_REVOKED, body))


def _payload(kind: str, fields: Mapping[str, Any], issuer: str) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for column, required in KIND_COLUMNS[kind]:
        if column == "credits":
            payload["credits_centi"] = _credits(fields)
            continue
        value: Any = _integer(fields, column) if column in _INT_COLUMNS else _text(fields, column)
        if value is None and required:
            raise _BadRowError("row.required", f"column {column} is required for kind {kind}")
        if value is not None:
            payload[column] = value
    if kind == "skill_certificate":
        payload.setdefault("level", None)  # an unlevelled operating permit
    if kind == "work_experience":
        payload.setdefault("verified_by", issuer)
    return payload


def default_dedup_key(kind: str, owner: str, achieved_on: str, payload: Mapping[str, Any]) -> str:
    """The ``dedup_key`` used when a row gives none (the bundled sample's conventions).

    ``course:<owner>:<course_id>:<term>``, ``cert:<occupation>:<certificate_no>``,
    ``training:<owner>:<training_program_id>:<cohort>``,
    ``award:<competition>:<year achieved>:<rank>``,
    ``work:<employer>:<occupation_key>:<start_on>``.
    """
    if kind == "academic_credit":
        return f"course:{owner}:{payload['course_id']}:{payload['term']}"
    if kind == "skill_certificate":
        return f"cert:{payload['occupation']}:{payload['certificate_no']}"
    if kind == "training_hours":
        return f"training:{owner}:{payload['training_program_id']}:{payload['cohort']}"
    if kind == "competition_award":
        return f"award:{payload['competition']}:{achieved_on[:4]}:{payload['rank']}"
    return f"work:{payload['employer']}:{payload['occupation_key']}:{payload['start_on']}"


def _digest(
    entry_type: str,
    body: Mapping[str, Any],
    identity: IdentityDoc | None = None,
    name: str | None = None,
) -> str:
    doc: dict[str, Any] = {"type": entry_type, "body": dict(body)}
    if identity is not None:
        doc["identity"] = [identity.doc_type, identity.nationality, identity.number, name]
    return hashlib.sha256(canonicalize(doc)).hexdigest()[:32]


def _parse_chunk(
    items: list[tuple[int, dict[str, Any]]], issuer: str, today: date
) -> list[Row | RowError]:
    return [parse_row(number, fields, issuer=issuer, today=today) for number, fields in items]


def _parse_parallel(
    chunks: list[list[tuple[int, dict[str, Any]]]],
    issuer: str,
    today: date,
    workers: int,
) -> Iterator[list[Row | RowError]]:
    """Validate chunks in worker processes, yielding each chunk's result in order; serially if
    the pool cannot run (e.g. no importable ``__main__`` for spawned workers)."""
    done = 0
    context = multiprocessing.get_context("spawn")  # never fork a threaded process
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for result in pool.map(_parse_chunk, chunks, repeat(issuer), repeat(today)):
                done += 1
                yield result
    except BrokenProcessPool:
        for chunk in chunks[done:]:
            yield _parse_chunk(chunk, issuer, today)


@dataclass
class ParsedFile:
    """The rows of a file: valid ones, invalid ones, and acknowledged ones left unread.

    ``known`` rows are those a journal says were acknowledged with the same text: they are
    neither validated again nor posted, as ``(row number, journal key)``.
    """

    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    known: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class ParseStream:
    """A file read and waiting to be validated chunk by chunk (:func:`stream_file`).

    ``total`` rows are to be validated, ``known`` rows were skipped as acknowledged. Iterating
    validates the rows in file order and yields one :class:`ParsedFile` per chunk (each with the
    chunk's valid rows, errors and known rows, in row order); a ``record_id`` given twice makes
    the later row a ``row.duplicate`` error, across chunks too.
    """

    items: list[tuple[int, dict[str, Any]]]
    skipped: dict[int, str]
    issuer: str
    today: date
    workers: int = 1
    chunk: int = PARSE_CHUNK
    progress: Callable[[int, int], None] | None = None

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def known(self) -> int:
        return len(self.skipped)

    def __iter__(self) -> Iterator[ParsedFile]:
        items, size = self.items, max(1, self.chunk)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        if self.workers > 1 and len(items) >= PARALLEL_MIN_ROWS:
            results: Iterator[list[Row | RowError]] = _parse_parallel(
                chunks, self.issuer, self.today, self.workers
            )
        else:
            results = (_parse_chunk(c, self.issuer, self.today) for c in chunks)
        skipped = sorted(self.skipped.items())
        seen: dict[str, int] = {}
        at = 0  # skipped rows merged so far
        for n, parsed in enumerate(results):
            if self.progress is not None:
                self.progress(len(chunks[n]), len(items))
            last = n == len(chunks) - 1
            upto = len(skipped) if last else at
            if not last:
                top = chunks[n][-1][0]
                while upto < len(skipped) and skipped[upto][0] < top:
                    upto += 1
            ordered: list[tuple[int, Row | RowError | str]] = [(r.row, r) for r in parsed]
            ordered += skipped[at:upto]
            at = upto
            ordered.sort(key=lambda t: t[0])
            yield _dedup(ordered, seen)
        if not chunks and skipped:
            yield _dedup(list(skipped), seen)


def _dedup(ordered: list[tuple[int, Row | RowError | str]], seen: dict[str, int]) -> ParsedFile:
    out = ParsedFile()
    for number, item in ordered:
        if isinstance(item, RowError):
            out.errors.append(item)
            continue
        key = item if isinstance(item, str) else item.journal_key
        first = seen.setdefault(key, number)
        if first != number:
            rid = key.split(":", 1)[1]
            what = "a revocation of" if key.startswith("revocation:") else "record_id"
            out.errors.append(
                RowError(
                    number, rid, "row.duplicate", f"{what} {rid} is already given in row {first}"
                )
            )
            continue
        if isinstance(item, str):
            out.known.append((number, item))
        else:
            out.rows.append(item)
    return out


def stream_file(
    path: Path,
    *,
    issuer: str,
    today: date,
    workers: int = 1,
    known: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = PARSE_CHUNK,
) -> ParseStream:
    """Read a file (rows the journal acknowledged with the same text set aside unvalidated)
    and return the stream that validates the rest chunk by chunk; see :class:`ParseStream`
    and :func:`parse_file`. ``progress(0, total)`` is called once the file is read.

    Raises:
        InvalidInputError: see :func:`read_rows` (a problem with the file as a whole).
    """
    items: list[tuple[int, dict[str, Any]]] = []
    skipped: dict[int, str] = {}
    for number, fields in read_rows(path):
        key = row_key(fields) if known else None
        if key is not None and known is not None and known.get(key) == source_digest(fields):
            skipped[number] = key
        else:
            items.append((number, fields))
    if progress is not None:
        progress(0, len(items))
    return ParseStream(items, skipped, issuer, today, workers, chunk, progress)


def parse_file(
    path: Path,
    *,
    issuer: str,
    today: date,
    workers: int = 1,
    known: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ParsedFile:
    """Read and validate every row of a file, in file order.

    A ``record_id`` given twice (two records, or two revocations of one record) makes the
    later rows ``row.duplicate`` errors. Schema validation costs about a quarter of a
    millisecond a row, so with ``workers`` > 1 files of :data:`PARALLEL_MIN_ROWS` rows or more
    are validated in that many worker processes. ``known`` maps journal keys to
    :func:`source_digest` values: rows that match are not validated (``ParsedFile.known``).
    ``progress(n, total)`` is called once the file is read (``n`` = 0) and as each ``n`` more
    rows are validated.

    Raises:
        InvalidInputError: see :func:`read_rows` (a problem with the file as a whole).
    """
    out = ParsedFile()
    for part in stream_file(
        path, issuer=issuer, today=today, workers=workers, known=known, progress=progress
    ):
        out.rows.extend(part.rows)
        out.errors.extend(part.errors)
        out.known.extend(part.known)
    return out


__all__ = [
    "ALL_COLUMNS",
    "COMMON_COLUMNS",
    "KIND_COLUMNS",
    "REVOCATION_COLUMNS",
    "ParseStream",
    "ParsedFile",
    "Row",
    "RowError",
    "default_dedup_key",
    "file_format",
    "parse_file",
    "parse_row",
    "read_rows",
    "row_key",
    "source_digest",
    "stream_file",
]
