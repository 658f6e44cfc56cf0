"""What each entry implies: its derived envelope columns and its projection rows.

One definition serves the append and the replay (ADR 0007): the append
(:class:`creditbank.service.records.RecordValidator`, under the ledger lock, in the append's
transaction) writes the rows built here for each new entry; :class:`Replay` feeds the log in
index order and says what every entry implies, for the audit and the rebuild
(:mod:`creditbank.service.projection`).

A ledger-only bank (``validate_records=False``) writes no record or conversion projections;
for it only the envelope columns are derived, and an entry's ``subject`` is its body's
``learner``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import Table

from creditbank.core import merkle
from creditbank.core.canonical import canonicalize
from creditbank.core.entries import REGISTRY_TYPES
from creditbank.core.rules.decision_entries import CONVERSION_TYPES, DECIDED, VOIDED
from creditbank.core.rules.publication import RULES_PUBLISHED
from creditbank.storage.tables import (
    conversion_decisions_t,
    conversion_voids_t,
    records_t,
    revocations_t,
    rule_publications_t,
)

RECORD_TYPES: Final = frozenset({"record.posted", "record.corrected", "record.revoked"})
TRANSCRIPT_ISSUED: Final = "transcript.issued"
TRANSCRIPT_REVOKED: Final = "transcript.revoked"

#: the projection tables, each keyed by ``entry_idx``, in the order they are reported
PROJECTION_TABLES: Final[tuple[Table, ...]] = (
    records_t,
    revocations_t,
    rule_publications_t,
    conversion_decisions_t,
    conversion_voids_t,
)


# -- row builders (shared by the append and the replay) -----------------------------------------
def body_digest(body: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical body (how a record or revocation recognises a re-post)."""
    return hashlib.sha256(canonicalize(dict(body))).digest()


def raw_body_digest(data: bytes) -> bytes | None:
    """:func:`body_digest` of a stored entry, from its bytes: an entry is canonical JSON with
    its members in order ``at, body, issuer, …``, and JCS writes a member's value exactly as
    it would alone, so the body's canonical bytes are the slice between ``"body":`` and the
    top-level ``,"issuer":`` (the last one: no later member can hold that text). None if
    the bytes are not shaped so (the caller canonicalizes instead)."""
    start = data.find(b',"body":{')
    end = data.rfind(b'},"issuer":"')
    if start < 0 or end < start:
        return None
    return hashlib.sha256(data[start + 8 : end + 1]).digest()


def record_owner(issuer: str, body: Mapping[str, Any]) -> str:
    """The institution a record entry belongs to: ``on_behalf_of`` or its signer."""
    return str(body.get("on_behalf_of") or issuer)


def record_row(
    idx: int,
    type_: str,
    issuer: str,
    at: str,
    body: Mapping[str, Any],
    chain_root: str,
    digest: bytes | None = None,
) -> dict[str, Any]:
    """The ``records`` row of a ``record.posted`` / ``record.corrected`` entry (``digest``:
    the body's, if already known)."""
    return {
        "entry_idx": idx,
        "owner": record_owner(issuer, body),
        "posted_by": issuer,
        "record_id": str(body["record_id"]),
        "entry_type": type_,
        "learner_id": str(body["learner"]),
        "kind": str(body["kind"]),
        "dedup_key": str(body["dedup_key"]),
        "corrects": body.get("corrects"),
        "chain_root": chain_root,
        "achieved_on": str(body["achieved_on"]),
        "posted_at": str(body.get("posted_at") or at[:10]),
        "digest": digest if digest is not None else body_digest(body),
    }


def revocation_row(idx: int, issuer: str, body: Mapping[str, Any], root: str) -> dict[str, Any]:
    """The ``record_revocations`` row of a ``record.revoked`` entry whose chain root is
    ``root`` (the revocation is recorded on the root, whichever version it names)."""
    return {
        "entry_idx": idx,
        "owner": record_owner(issuer, body),
        "record_id": root,
        "reason": str(body["reason"]),
        "effective_on": str(body["effective_on"]),
        "digest": body_digest({**body, "record_id": root}),
    }


def conversion_row(
    idx: int, type_: str, at: str, body: Mapping[str, Any]
) -> tuple[Table, dict[str, Any]]:
    """The projection row of a bank-authored ``rules.published`` / ``conversion.*`` entry.

    Raises:
        KeyError: ``type_`` is not a conversion type (a programming error).
    """
    if type_ == RULES_PUBLISHED:
        return rule_publications_t, {
            "entry_idx": idx,
            "digest": body_digest(body),
            "rule_count": len(body["rules"]),
            "published_at": at,
        }
    if type_ == DECIDED:
        return conversion_decisions_t, {
            "entry_idx": idx,
            "application_id": str(body["application_id"]),
            "learner_id": str(body["learner"]),
            "app_type": str(body["type"]),
            "program_id": body.get("program_id"),
            "certificate_type_id": body.get("certificate_type_id"),
            "applied_on": str(body["applied_on"]),
            "rules_idx": int(body["rules_entry"]),
            "credits_centi": int(body["credits_centi"]),
            "grant_count": len(body["grants"]),
            "decided_at": at,
        }
    if type_ == VOIDED:
        return conversion_voids_t, {
            "entry_idx": idx,
            "decision_idx": int(body["decision_entry"]),
            "grant_no": int(body["grant_no"]),
            "learner_id": str(body["learner"]),
            "voided_at": str(body["voided_at"]),
            "revocation_idx": int(body["revocation_entry"]),
        }
    raise KeyError(type_)


def _digest_bytes(text_digest: object) -> bytes:
    """``sha256:<hex>`` (the digest format of ``transcript.issued``) as the 32 stored bytes."""
    return bytes.fromhex(str(text_digest).removeprefix("sha256:"))


def document_row(idx: int, at: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The derivable columns of the ``documents`` row of a ``transcript.issued`` entry (its
    revocation columns are set by a later ``transcript.revoked``; ``valid_until`` and the
    items and bytes are side data of the issuance, not in the entry)."""
    return {
        "entry_idx": idx,
        "doc_id": str(body["document_id"]),
        "learner_id": str(body["learner"]),
        "kind": str(body["kind"]),
        "status_list": int(body["status_list"]),
        "status_index": int(body["status_index"]),
        "credential_digest": _digest_bytes(body["credential_digest"]),
        "pdf_digest": _digest_bytes(body["pdf_digest"]),
        "checkpoint_size": int(body["checkpoint_size"]),
        "item_count": int(body["items"]),
        "issued_at": at,
        "revoked_at": None,
        "revoked_reason": None,
        "revoked_by": None,
        "revocation_idx": None,
    }


def default_subject(body: Mapping[str, Any]) -> str | None:
    """The learner an entry is about, as its body names it (null: a public entry)."""
    learner = body.get("learner")
    return learner if isinstance(learner, str) else None


# -- the replay ---------------------------------------------------------------------------------
@dataclass
class Expected:
    """What one entry implies: its envelope columns and its projection rows."""

    columns: dict[str, Any]
    rows: list[tuple[Table, dict[str, Any]]] = field(default_factory=list)


class Replay:
    """Feeds entries in index order and says what each implies (see the module docstring).

    Only entries the ledger admitted are in the log, so the replay follows the admission
    rules' outcome without re-judging them: a correction's chain root is its target's, a
    revocation is recorded on its target's chain root and is about the target's learner.
    """

    def __init__(self, bank_id: str, *, validated: bool = True) -> None:
        self.bank_id = bank_id
        self.validated = validated
        #: "owner\\0record_id" -> (chain root, learner)
        self._records: dict[str, tuple[str, str]] = {}
        self.registry_count = 0
        #: issued entry index -> the derivable columns of its ``documents`` row (documents
        #: change when revoked, so they are compared once the whole log is read)
        self.documents: dict[int, dict[str, Any]] = {}

    def feed(self, idx: int, data: bytes, *, leaf: bool = True) -> Expected:
        """What the entry ``data`` at ``idx`` implies (its leaf hash only with ``leaf``).

        Raises:
            ValueError: the stored bytes are not an entry object (the log audit names it).
        """
        obj = orjson.loads(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict):
            raise ValueError(f"entry {idx} is not an entry object")
        type_, issuer, at, body = str(obj["type"]), str(obj["issuer"]), str(obj["at"]), obj["body"]
        columns: dict[str, Any] = {
            "leaf_hash": merkle.leaf_hash(data) if leaf else None,
            "type": type_,
            "issuer": issuer,
            "key_id": str(obj["key_id"]),
            "at": at,
            "subject": default_subject(body),
        }
        out = Expected(columns)
        if type_ in REGISTRY_TYPES:
            self.registry_count += 1
        if not self.validated:
            return out
        if type_ in RECORD_TYPES:
            owner = record_owner(issuer, body)
            if type_ == "record.revoked":
                target = self._records.get(f"{owner}\0{body.get('record_id')}")
                if target is not None:
                    root, learner = target
                    columns["subject"] = learner
                    out.rows.append((revocations_t, revocation_row(idx, issuer, body, root)))
                return out
            root = str(body["record_id"])
            if type_ == "record.corrected":
                target = self._records.get(f"{owner}\0{body.get('corrects')}")
                if target is not None:
                    root = target[0]
            self._records[f"{owner}\0{body['record_id']}"] = (root, str(body["learner"]))
            digest = raw_body_digest(data)
            out.rows.append((records_t, record_row(idx, type_, issuer, at, body, root, digest)))
        elif type_ in CONVERSION_TYPES and issuer == self.bank_id:
            out.rows.append(conversion_row(idx, type_, at, body))
        elif type_ == TRANSCRIPT_ISSUED and issuer == self.bank_id:
            self.documents[idx] = document_row(idx, at, body)
        elif type_ == TRANSCRIPT_REVOKED and issuer == self.bank_id:
            doc = self.documents.get(int(body["issued_entry"]))
            if doc is not None and doc["revoked_at"] is None:
                doc.update(
                    revoked_at=at,
                    revoked_reason=str(body["reason"]),
                    revoked_by=str(body["revoked_by"]),
                    revocation_idx=idx,
                )
        return out


__all__ = [
    "CONVERSION_TYPES",
    "DECIDED",
    "PROJECTION_TABLES",
    "RECORD_TYPES",
    "RULES_PUBLISHED",
    "VOIDED",
    "Expected",
    "Replay",
    "body_digest",
    "conversion_row",
    "default_subject",
    "document_row",
    "raw_body_digest",
    "record_owner",
    "record_row",
    "revocation_row",
]
