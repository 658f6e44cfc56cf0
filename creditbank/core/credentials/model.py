"""The content model of transcripts and certificates: what a document holds, nothing else.

The issuance service gathers these from the database (records, decisions, voids, names, salts,
proofs) and hands them to the builders in :mod:`creditbank.core.credentials.build`, which turn
them into a W3C Verifiable Credential. The model is pure data: frozen, slotted dataclasses with
no I/O, built and compared by value.

Source of truth: every fact a ledger entry signs (credits, grade, level, hours, dates, rule keys,
explanations…) is read by the builder from the entry bytes in the item's evidence, never from a
second copy; the model carries only what the entry cannot (display names of institutions,
courses and programmes, the record's state as of issuance, the disclosed name on record and its
salt, and the proof material). :attr:`RecordItem.body` and :attr:`ConversionItem.body` give the
signed body for display code that wants it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from creditbank.errors import InvalidInputError

RecordKind = Literal[
    "academic_credit", "skill_certificate", "training_hours", "competition_award", "work_experience"
]
RecordState = Literal["current", "corrected", "revoked", "expired"]
ConversionType = Literal["credit_conversion", "exam_exemption"]

RECORD_STATES: Final = ("current", "corrected", "revoked", "expired")
SALT_SIZE: Final = 16
HASH_SIZE: Final = 32


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message, code="credential.content")


def _entry_body(entry: bytes) -> Mapping[str, Any]:
    try:
        obj = json.loads(entry)
    except ValueError as e:
        raise InvalidInputError("evidence entry is not JSON", code="credential.content") from e
    body = obj.get("body") if isinstance(obj, dict) else None
    if not isinstance(body, dict):
        raise InvalidInputError("evidence entry has no body object", code="credential.content")
    return body


@dataclass(frozen=True, slots=True)
class Holder:
    """The learner a document is issued to.

    Attributes:
        learner_id: the bank's opaque id (``LRN-…``), as in the entries' ``learner``.
        name: the name as registered with the bank (NFC), shown and put in the credential
            exactly as it is.
        salt: the learner's 16-byte name salt (opens every ``name_commitment``).
    """

    learner_id: str
    name: str
    salt: bytes

    def __post_init__(self) -> None:
        _need(bool(self.learner_id), "holder needs a learner id")
        _need(bool(self.name), "holder needs a name")
        _need(len(self.salt) == SALT_SIZE, "salt must be 16 bytes")


@dataclass(frozen=True, slots=True)
class LedgerEvidence:
    """A signed ledger entry and its proof of inclusion in the log.

    Attributes:
        entry: the exact stored entry bytes (canonical JSON, signed by its issuer).
        leaf_index: the entry's index in the log.
        tree_size: the size of the tree the inclusion path is against (= the checkpoint's).
        inclusion_path: RFC 9162 inclusion proof, 32-byte hashes, leaf to root.
        checkpoint: the signed note text (C2SP tlog-checkpoint) of size ``tree_size``.
    """

    entry: bytes
    leaf_index: int
    tree_size: int
    inclusion_path: tuple[bytes, ...]
    checkpoint: str

    def __post_init__(self) -> None:
        _need(bool(self.entry), "evidence needs entry bytes")
        _need(0 <= self.leaf_index < self.tree_size, "leaf index must lie inside the tree")
        _need(all(len(h) == HASH_SIZE for h in self.inclusion_path), "path hashes are 32 bytes")
        _need(bool(self.checkpoint), "evidence needs a checkpoint")

    @property
    def body(self) -> Mapping[str, Any]:
        """The entry's signed ``body`` (parsed on each call).

        Raises:
            InvalidInputError: ``credential.content`` if the entry has no body object.
        """
        return _entry_body(self.entry)


@dataclass(frozen=True, slots=True)
class RecordEvidence(LedgerEvidence):
    """A record entry's evidence plus the disclosure that opens its ``name_commitment``.

    Attributes:
        name_on_record: the name as the institution wrote it (NFC), committed in the entry.
        salt: the learner's 16-byte salt.
    """

    name_on_record: str = ""
    salt: bytes = b""

    def __post_init__(self) -> None:
        LedgerEvidence.__post_init__(self)
        _need(bool(self.name_on_record), "record evidence needs the name on record")
        _need(len(self.salt) == SALT_SIZE, "record evidence needs the 16-byte salt")


@dataclass(frozen=True, slots=True)
class InstitutionRef:
    """An institution as a document names it (ids as registered, names from the registry)."""

    institution_id: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class RecordItem:
    """One learning outcome as shown on a document: the current version of a record chain.

    Attributes:
        entry_idx: ledger index of the version shown (``evidence.leaf_index``).
        institution: the record's owner (``on_behalf_of`` when a custodian posted it, else the
            entry's issuer).
        custodian: the custodian of a closed owner, else None.
        kind: the record kind (as in the entry body).
        record_id: the institution's record id of the version shown.
        achieved_on: the body's ``achieved_on``.
        title_zh: course / certificate / training / competition / occupation name in Chinese.
        title_en: the same in English where known.
        subtitle_zh: a second display line where useful (e.g. level label ``三级/高级工``).
        subtitle_en: the same in English where known.
        state: ``current``; ``corrected`` (the shown version corrects an earlier one);
            ``revoked``; ``expired`` (a certificate past its ``expires_on`` at issuance).
        revoked_on: the revocation's effective date when revoked.
        revocation_reason: the revocation's reason when revoked.
        revocation: the ``record.revoked`` entry and its proof when revoked (optional).
        evidence: the shown version's entry, its inclusion proof, checkpoint and the disclosed
            name on record with the salt (a document shows "name as on source record" when
            ``evidence.name_on_record`` differs from the holder's name).
    """

    entry_idx: int
    institution: InstitutionRef
    custodian: InstitutionRef | None
    kind: RecordKind
    record_id: str
    achieved_on: date
    title_zh: str | None
    title_en: str | None
    state: RecordState
    evidence: RecordEvidence
    subtitle_zh: str | None = None
    subtitle_en: str | None = None
    revoked_on: date | None = None
    revocation_reason: str | None = None
    revocation: LedgerEvidence | None = None

    def __post_init__(self) -> None:
        _need(self.state in RECORD_STATES, f"unknown record state {self.state!r}")
        _need(self.entry_idx == self.evidence.leaf_index, "entry_idx must equal the leaf index")
        revoked = self.state == "revoked"
        _need(
            revoked == (self.revoked_on is not None) and revoked == bool(self.revocation_reason),
            "a revoked record needs revoked_on and a reason, and only a revoked one",
        )

    @property
    def body(self) -> Mapping[str, Any]:
        """The signed body of the version shown.

        Raises:
            InvalidInputError: ``credential.content`` if the entry has no body object.
        """
        return self.evidence.body


@dataclass(frozen=True, slots=True)
class CourseRef:
    """A programme course (a grant's target) with its display names."""

    course_id: str
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class ProgramRef:
    """A degree programme (or certificate type, for exam exemptions) with display names."""

    program_id: str
    name_zh: str
    name_en: str
    institution: InstitutionRef | None = None


@dataclass(frozen=True, slots=True)
class Voided:
    """A grant or exemption voided after its decision (``conversion.voided``)."""

    on: date
    reason: str
    entry_idx: int
    evidence: LedgerEvidence | None = None


@dataclass(frozen=True, slots=True)
class GrantItem:
    """One grant of a decision (credits or a course exemption), as the decision body signs it.

    Attributes:
        grant_no: position in the decision body's ``grants``.
        rule_key: the rule's key; rule_version: its version.
        mode: ``course_exemption | elective_fixed | elective_by_tier | hours_to_credits``.
        credits_centi: credits granted (hundredths).
        target_course: the course exempted / credited, with names, or None (electives).
        source_entries: ledger indices of the source records (the versions used).
        explanation_zh / explanation_en: the signed explanations.
        voided: when and why the grant was voided, else None.
    """

    grant_no: int
    rule_key: str
    rule_version: int
    mode: str
    credits_centi: int
    target_course: CourseRef | None
    source_entries: tuple[int, ...]
    explanation_zh: str
    explanation_en: str
    voided: Voided | None = None


@dataclass(frozen=True, slots=True)
class ExamExemptionItem:
    """The exam part exempted by an ``exam_exemption`` decision (its ``exam`` member)."""

    certificate_type_id: str
    granted: bool
    exam_part: str | None
    rule_key: str | None
    rule_version: int | None
    basis_entry: int | None
    voided: Voided | None = None


@dataclass(frozen=True, slots=True)
class ConversionItem:
    """One decided application (``conversion.decided``): its grants and explanations.

    Attributes:
        entry_idx: ledger index of the decision entry (``evidence.leaf_index``).
        application_id: the application's id.
        type: ``credit_conversion`` or ``exam_exemption``.
        program: the programme (credit conversion) or certificate type (exam exemption).
        applied_on: the application date.
        reason: the decision's overall reason code.
        credits_centi: total credits granted by the decision (hundredths).
        explanation_zh / explanation_en: the decision's signed explanations.
        grants: each grant, in body order.
        exam: the exam exemption, for ``exam_exemption`` decisions.
        evidence: the bank-signed decision entry with its inclusion proof and checkpoint.
    """

    entry_idx: int
    application_id: str
    type: ConversionType
    program: ProgramRef
    applied_on: date
    reason: str
    credits_centi: int
    explanation_zh: str
    explanation_en: str
    grants: tuple[GrantItem, ...]
    evidence: LedgerEvidence
    exam: ExamExemptionItem | None = None

    def __post_init__(self) -> None:
        _need(self.entry_idx == self.evidence.leaf_index, "entry_idx must equal the leaf index")
        _need(self.type in ("credit_conversion", "exam_exemption"), "unknown conversion type")

    @property
    def body(self) -> Mapping[str, Any]:
        """The signed decision body.

        Raises:
            InvalidInputError: ``credential.content`` if the entry has no body object.
        """
        return self.evidence.body


@dataclass(frozen=True, slots=True)
class ProgramTotal:
    """Converted credits of one programme and the room left under its cap (hundredths)."""

    program: ProgramRef
    granted_centi: int
    cap_centi: int
    room_left_centi: int

    def __post_init__(self) -> None:
        _need(self.granted_centi >= 0 and self.cap_centi >= 0, "totals are not negative")
        _need(self.room_left_centi >= 0, "room left is not negative")


@dataclass(frozen=True, slots=True)
class TranscriptContent:
    """A transcript: all of a learner's records (or a chosen subset) and conversions.

    Attributes:
        holder: the learner.
        records: the records shown, in display order.
        conversions: the decided applications shown.
        totals: converted credits per programme with caps.
        complete: True for "all records", False for a subset the worker chose.
    """

    holder: Holder
    records: tuple[RecordItem, ...]
    conversions: tuple[ConversionItem, ...] = ()
    totals: tuple[ProgramTotal, ...] = ()
    complete: bool = True

    def __post_init__(self) -> None:
        _need(bool(self.records) or bool(self.conversions), "a transcript needs content")
        idx = [r.entry_idx for r in self.records]
        _need(len(idx) == len(set(idx)), "a record appears twice")


@dataclass(frozen=True, slots=True)
class CertificateContent:
    """A certificate: one record or one conversion decision, never both."""

    holder: Holder
    record: RecordItem | None = None
    conversion: ConversionItem | None = None

    def __post_init__(self) -> None:
        _need(
            (self.record is None) != (self.conversion is None),
            "a certificate holds exactly one record or one conversion",
        )


@dataclass(frozen=True, slots=True)
class IssuerProfile:
    """The bank as issuer: its DID (``did:web:…``) and display names."""

    did: str
    name_zh: str
    name_en: str
    url: str
