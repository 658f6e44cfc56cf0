"""The institution console's use cases (docs/portals.md, ADR 0010).

The institution's signing key never reaches the bank, so the console signs nothing and posts
nothing itself (ADR 0010): an operator uploads a CSV or JSONL and the console runs **the same
validator as the signing client** (:func:`creditbank.client.csvformat.parse_file`, the code
``creditbank post`` runs first), adds what only the bank knows (a record already in the log,
a correction or revocation whose target does not exist or is already revoked) and shows a
per-row report with the exact ``creditbank post`` command that signs and posts the file at
the institution. Corrections and revocations are signed entries too: the console writes the
CSV of a revocation (complete) or of a correction (prefilled from the record, the learner's
identity left to the operator, who has it) for the same command.

Everything is scoped to the operator's own institution (and the closed institutions it is
custodian of); another institution's record is "not found".
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from creditbank.client.csvformat import (
    COMMON_COLUMNS,
    KIND_COLUMNS,
    REVOCATION_COLUMNS,
    RowError,
    parse_file,
)
from creditbank.core import policy
from creditbank.errors import InvalidInputError, NotFoundError, StorageError, TooLargeError
from creditbank.service import record_listing
from creditbank.service.bank import Bank
from creditbank.service.conversion import current_rules
from creditbank.service.gather import _Catalog
from creditbank.service.record_views import content_of
from creditbank.storage import console_repo
from creditbank.storage import conversion_repo as cr
from creditbank.storage import records_repo as rr

#: largest file the console validates (the CLI takes any size)
MAX_UPLOAD: Final = 8 * 1024 * 1024
#: rows of the report shown per page of the console
PAGE: Final = 50
_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")
_RECORD_TYPE: Final = {
    "record.posted": "record",
    "record.corrected": "correction",
    "record.revoked": "revocation",
}


@dataclass(frozen=True, slots=True)
class RowReport:
    """One row of an uploaded file. ``status``: ``ready`` (will be signed and posted),
    ``in_log`` (the record id is already in the log: posting it again is a no-op if it is
    the same record, a ``record.conflict`` if not) or ``invalid`` (never sent)."""

    row: int
    record_id: str | None
    what: str
    status: str
    code: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class UploadReport:
    """The whole report of one uploaded file."""

    filename: str
    institution_id: str
    rows: list[RowReport] = field(default_factory=list)
    command: str = ""

    @property
    def total(self) -> int:
        return len(self.rows)

    def count(self, status: str) -> int:
        """How many rows have ``status``."""
        return sum(1 for r in self.rows if r.status == status)

    @property
    def problems(self) -> list[RowReport]:
        """The rows that are not ready, in row order."""
        return [r for r in self.rows if r.status != "ready"]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON (the console offers it for download)."""
        return {
            "file": self.filename,
            "institution": self.institution_id,
            "rows": self.total,
            "ready": self.count("ready"),
            "in_log": self.count("in_log"),
            "invalid": self.count("invalid"),
            "command": self.command,
            "problems": [
                {"row": r.row, "record_id": r.record_id, "status": r.status, "code": r.code,
                 "detail": r.detail}
                for r in self.problems
            ],
        }  # fmt: skip


def safe_filename(name: str) -> str:
    """The base name of an uploaded file with only ``A-Z a-z 0-9 . _ -`` kept.

    Raises:
        InvalidInputError: ``post.format`` unless it ends in .csv, .jsonl or .ndjson.
    """
    base = _SAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip("._") or "upload"
    if not base.lower().endswith((".csv", ".jsonl", ".ndjson")):
        raise InvalidInputError(
            "upload a .csv or .jsonl file (docs/csv-format.md)", code="post.format"
        )
    return base[-100:]


def post_command(bank: Bank, institution_id: str, filename: str) -> str:
    """The command that signs and posts ``filename`` at the institution."""
    return (
        f"creditbank post {filename} --institution {institution_id} "
        f"--key {institution_id.lower()}.key --url {bank.settings.public_base_url}"
    )


def _owners(bank: Bank, institution_id: str) -> set[str]:
    """The institution and the closed institutions it is custodian of."""
    registry = bank.ledger.registry()
    return {institution_id} | {
        iid
        for iid, inst in registry.institutions.items()
        if inst.closed_on is not None and inst.custodian == institution_id
    }


def validate_upload(bank: Bank, institution_id: str, filename: str, data: bytes) -> UploadReport:
    """Validate an uploaded CSV/JSONL as ``creditbank post`` would, plus the log's state.

    Raises:
        InvalidInputError: ``post.format`` for a file that cannot be read as a whole (not
            UTF-8, no header, an unknown column, a wrong extension).
        TooLargeError: over :data:`MAX_UPLOAD` bytes.
        StorageError: if the database is unavailable.
    """
    name = safe_filename(filename)
    if len(data) > MAX_UPLOAD:
        raise TooLargeError(f"{name} has {len(data)} bytes; the console takes {MAX_UPLOAD}")
    today = bank.clock.now().date()
    with tempfile.TemporaryDirectory(prefix="cb-console-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        parsed = parse_file(path, issuer=institution_id, today=today)
    owners = _owners(bank, institution_id)
    rows: list[RowReport] = [_error(e) for e in parsed.errors]
    try:
        with bank.engine.connect() as conn:
            for r in parsed.rows:
                rows.append(_check(conn, r, institution_id, owners))
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e
    rows.sort(key=lambda r: r.row)
    return UploadReport(name, institution_id, rows, post_command(bank, institution_id, name))


def _error(e: RowError) -> RowReport:
    return RowReport(e.row, e.record_id, "row", "invalid", e.code, e.detail)


def _check(conn: Any, r: Any, institution_id: str, owners: set[str]) -> RowReport:
    what = _RECORD_TYPE.get(r.entry_type, r.entry_type)
    owner = str(r.body.get("on_behalf_of") or institution_id)
    if owner not in owners:
        return RowReport(
            r.row, r.record_id, what, "invalid", "record.not_custodian",
            f"{institution_id} is not the custodian of {owner}",
        )  # fmt: skip
    if what == "revocation":
        target = rr.get_record(conn, owner, r.record_id)
        if target is None:
            return RowReport(
                r.row, r.record_id, what, "invalid", "record.unknown_target",
                f"record {r.record_id} of {owner} is not in the log",
            )  # fmt: skip
        revs = rr.revocations_for(conn, {(owner, str(target.chain_root))})
        if revs:
            return RowReport(
                r.row, r.record_id, what, "in_log", "record.already_revoked",
                "this record is already revoked",
            )  # fmt: skip
        return RowReport(r.row, r.record_id, what, "ready")
    if console_repo.record_exists(conn, owner, r.record_id) is not None:
        return RowReport(
            r.row, r.record_id, what, "in_log", "record.in_log",
            f"record {r.record_id} is already in the log (posting it again changes nothing"
            " if it is the same; give a correction a new record_id)",
        )  # fmt: skip
    corrects = r.body.get("corrects")
    if corrects is not None and rr.get_record(conn, owner, str(corrects)) is None:
        return RowReport(
            r.row, r.record_id, what, "invalid", "record.unknown_target",
            f"it corrects {corrects}, which is not a record of {owner} in the log",
        )  # fmt: skip
    return RowReport(r.row, r.record_id, what, "ready")


# -- records --------------------------------------------------------------------------------------
def list_records(
    bank: Bank, institution_id: str, *, after: int = -1, limit: int = PAGE
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the institution's records with their content, and where the next starts.

    Raises:
        StorageError: if the database is unavailable.
    """
    page = record_listing.list_records(
        bank, institution_id, institution_id, after=after, limit=limit
    )
    catalog = _Catalog.of(current_rules(bank))
    try:
        with bank.engine.connect() as conn:
            data = cr.entry_data(conn, [r["index"] for r in page.records])
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e
    out = []
    for r in page.records:
        body = json.loads(data[r["index"]]).get("body") or {}
        out.append(r | {"content": content_of(body, catalog)})
    return out, page.next_after


def record_detail(bank: Bank, institution_id: str, index: int) -> dict[str, Any]:
    """One record version of the institution (or of a ward it is custodian of), by index.

    Raises:
        NotFoundError: ``record.not_found`` for an index that is not such a record (another
            institution's included).
        StorageError: if the database is unavailable.
    """
    missing = NotFoundError(f"no record at index {index}", code="record.not_found")
    registry = bank.ledger.registry()
    operator = policy.Principal("operator", institution_id)
    try:
        with bank.engine.connect() as conn:
            row = console_repo.record_by_index(conn, index)
            if row is None or not policy.allows(
                operator,
                policy.Action.INSTITUTION_RECORDS_LIST,
                record_listing.records_resource(registry, str(row.owner)),
            ):
                raise missing
            raw = cr.entry_data(conn, [index])[index]
            chain = [
                int(r.entry_idx)
                for r in rr.records_of_learner(conn, str(row.learner_id))
                if str(r.owner) == str(row.owner) and str(r.chain_root) == str(row.chain_root)
            ]
            revs = rr.revocations_for(conn, {(str(row.owner), str(row.chain_root))})
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e
    entry = json.loads(raw)
    body = entry.get("body") or {}
    rev = revs.get((str(row.owner), str(row.chain_root)))
    return {
        "index": index,
        "owner": str(row.owner),
        "record_id": str(row.record_id),
        "type": str(row.entry_type),
        "learner": str(row.learner_id),
        "chain_root": str(row.chain_root),
        "versions": chain,
        "latest": max(chain) == index if chain else True,
        "revoked": rev is not None,
        "revoked_on": str(rev.effective_on) if rev is not None else None,
        "revocation_reason": str(rev.reason) if rev is not None else None,
        "signed_by": entry.get("issuer"),
        "key_id": entry.get("key_id"),
        "at": entry.get("at"),
        "body": body,
        "content": content_of(body, _Catalog.of(current_rules(bank))),
    }


def _csv(header: list[str], row: dict[str, str]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerow(row)
    return buf.getvalue().encode("utf-8")


def revocation_file(
    bank: Bank, institution_id: str, index: int, reason: str, effective_on: str
) -> tuple[str, bytes, UploadReport]:
    """The one-row CSV revoking the record at ``index``, validated like an upload.

    Raises:
        NotFoundError: ``record.not_found``.
        StorageError: if the database is unavailable.
    """
    rec = record_detail(bank, institution_id, index)
    row = {
        "record_id": rec["record_id"],
        "revoke_reason": reason.strip(),
        "revoke_effective_on": effective_on.strip(),
    }
    header = ["record_id", *REVOCATION_COLUMNS]
    if rec["owner"] != institution_id:
        row["on_behalf_of"] = rec["owner"]
        header.append("on_behalf_of")
    name = f"revoke-{rec['record_id']}.csv"
    data = _csv(header, row)
    return name, data, validate_upload(bank, institution_id, name, data)


def _column_value(column: str, payload: dict[str, Any]) -> str:
    if column == "credits":
        centi = payload.get("credits_centi")
        if isinstance(centi, int):
            return str(centi // 100) if centi % 100 == 0 else f"{centi / 100:g}"
        return ""
    value = payload.get(column)
    return "" if value is None else str(value)


def correction_file(bank: Bank, institution_id: str, index: int) -> tuple[str, bytes]:
    """A one-row CSV correcting the record at ``index``: every field prefilled from the
    record, ``corrects`` set, a new ``record_id`` suggested; the learner's name and identity
    document are left for the operator to fill in (the bank does not keep the number).

    Raises:
        NotFoundError: ``record.not_found``.
        StorageError: if the database is unavailable.
    """
    rec = record_detail(bank, institution_id, index)
    body = rec["body"]
    kind = str(body.get("kind", ""))
    payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
    assert isinstance(payload, dict)  # noqa: S101 - narrowed above
    n = len(rec["versions"])
    row: dict[str, str] = {
        "record_id": f"{rec['record_id']}-C{n}"[:128],
        "kind": kind,
        "learner_name": "",
        "id_type": "",
        "id_number": "",
        "nationality": "",
        "achieved_on": str(body.get("achieved_on", "")),
        "dedup_key": str(body.get("dedup_key", "")),
        "evidence_sha256": str((body.get("evidence") or {}).get("sha256", ""))
        if isinstance(body.get("evidence"), dict)
        else "",
        "corrects": rec["record_id"],
        "posted_at": "",
        "on_behalf_of": str(body.get("on_behalf_of", "")),
    }
    columns = [c for c, _ in KIND_COLUMNS.get(kind, ())]
    for c in columns:
        row[c] = _column_value(c, payload)
    return f"correct-{rec['record_id']}.csv", _csv([*COMMON_COLUMNS, *columns], row)


# -- the institution's log entries ----------------------------------------------------------------
def institution_log(
    bank: Bank, institution_id: str, *, before: int | None = None, limit: int = PAGE
) -> dict[str, Any]:
    """The entries the institution signed (newest first, with whether the signing key is one
    of its registered keys) and the bank's registry entries about it.

    Raises:
        StorageError: if the database is unavailable.
    """
    registry = bank.ledger.registry()
    inst = registry.institutions.get(institution_id)
    keys = inst.keys if inst is not None else {}
    try:
        with bank.engine.connect() as conn:
            rows = console_repo.entries_signed_by(conn, institution_id, before=before, limit=limit)
            reg = console_repo.registry_entries_of(conn, bank.settings.bank_id)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the log: {type(e).__name__}") from e
    entries = [
        {
            "index": int(r.idx),
            "type": str(r.type),
            "at": str(r.at),
            "ingested_at": str(r.ingested_at),
            "key_id": str(r.key_id),
            "key_registered": str(r.key_id) in keys,
        }
        for r in rows
    ]
    registry_entries = []
    for r in reg:
        body = json.loads(bytes(r.data)).get("body") or {}
        if body.get("institution_id") == institution_id:
            registry_entries.append({"index": int(r.idx), "type": str(r.type), "at": str(r.at)})
    nxt = entries[-1]["index"] if len(entries) == limit else None
    return {
        "institution_id": institution_id,
        "keys": [
            {
                "key_id": kid,
                "added_at": ks.added_at.isoformat(),
                "revoked_at": ks.revoked_at.isoformat() if ks.revoked_at else None,
            }
            for kid, ks in keys.items()
        ],
        "entries": entries,
        "registry": registry_entries,
        "next_before": nxt,
        "size": bank.ledger.head().size,
    }


def today(bank: Bank) -> dt.date:
    """The bank's date (a form's default revocation day)."""
    return bank.clock.now().date()
