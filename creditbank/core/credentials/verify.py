"""Offline verification of a bank credential: proof, evidence, log inclusion, name commitments.

No database and no network: the verifier supplies the bank's DID document (issuer key), the
log's verifier key (checkpoint signatures) and the institution key registry with validity
periods (:class:`KeyDirectory`; :class:`RegistryKeys` adapts a replayed
:class:`creditbank.core.registry.Registry`). Status (revocation after issuance) needs the
status list and is the caller's job.

:func:`check_credential` returns every check as a :class:`Check` with a stable name;
:func:`verify_credential` raises :class:`CredentialCheckError` naming the first failure.
Check names (``N`` is a ledger index, ``S`` a tree size):

* ``credential.issuer`` — the issuer is the DID document's DID and controls the proof's key;
* ``credential.proof`` — the ``eddsa-jcs-2022`` proof;
* ``credential.validity`` — ``validFrom`` ≤ now < ``validUntil`` (only when ``now`` is given);
* ``checkpoint[S].signature`` — each embedded checkpoint is signed by the log key;
* ``record[N].institution_signature`` / ``conversion[N].bank_signature`` /
  ``revocation[N].institution_signature`` / ``void[N].bank_signature`` — the entry's signature
  by a key registered for its issuer and valid at its ``at`` (custodian posts: the issuer is
  the owner's custodian; decisions and voids: the issuer is the bank);
* ``<role>[N].inclusion`` — the inclusion path leads from the entry to the checkpoint's root;
* ``record[N].name_commitment`` — name on record + salt open the signed commitment;
* ``<role>[N].facts`` — what the credential shows equals what the entry signs (and, for a
  record, the owner's names and custodian equal the registry's).
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from creditbank.core.checkpoint import Checkpoint, verify_checkpoint
from creditbank.core.credentials.did import key_from_did_document
from creditbank.core.credentials.proof import verify_credential_proof
from creditbank.core.entries import Entry, parse_entry, parse_time, verify_entry_signature
from creditbank.core.identity import verify_name_commitment
from creditbank.core.merkle import leaf_hash, verify_inclusion
from creditbank.core.registry import Registry
from creditbank.core.signing import VerifierKey
from creditbank.errors import CreditBankError, VerificationError

RECORD_TYPES: Final = frozenset({"record.posted", "record.corrected"})
ROLE_OF_TYPE: Final[Mapping[str, str]] = {
    "record.posted": "record",
    "record.corrected": "record",
    "record.revoked": "revocation",
    "conversion.decided": "conversion",
    "conversion.voided": "void",
}


@dataclass(frozen=True, slots=True)
class Check:
    """One named check and its outcome (``detail`` says why when it fails)."""

    name: str
    ok: bool
    detail: str = ""


class CredentialCheckError(VerificationError):
    """A credential failed offline verification; ``extra["checks"]`` lists every check."""

    code = "verify.credential"


class KeyDirectory(Protocol):
    """Institution keys with validity periods, the bank's id and custodians."""

    @property
    def bank_id(self) -> str: ...

    def key_for(self, issuer: str, key_id: str, at: datetime) -> bytes: ...

    def custodian_of(self, institution_id: str) -> str | None: ...

    def names_of(self, institution_id: str) -> tuple[str, str] | None: ...


class RegistryKeys:
    """:class:`KeyDirectory` over a replayed registry."""

    __slots__ = ("_registry",)

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    @property
    def bank_id(self) -> str:
        """The bank's institution id."""
        return self._registry.bank_id

    def key_for(self, issuer: str, key_id: str, at: datetime) -> bytes:
        """The issuer's key valid at ``at``.

        Raises:
            UnknownKeyError, RevokedError: as :meth:`Registry.key_for`.
        """
        return self._registry.key_for(issuer, key_id, at)

    def custodian_of(self, institution_id: str) -> str | None:
        """The custodian of a closed institution, else None."""
        inst = self._registry.institutions.get(institution_id)
        return None if inst is None else inst.custodian

    def names_of(self, institution_id: str) -> tuple[str, str] | None:
        """The registered (Chinese, English) names of an institution, None if unknown."""
        inst = self._registry.institutions.get(institution_id)
        return None if inst is None else (inst.name_zh, inst.name_en)


@dataclass(slots=True)
class _Item:
    """One parsed evidence item."""

    index: int
    entry: Entry
    tree_size: int
    path: list[bytes]
    checkpoint: str
    name_on_record: str | None
    salt: bytes | None


class _Bad(Exception):  # noqa: N818 - internal control flow, turned into a failed Check
    pass


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise _Bad(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise _Bad(f"{what} is not base64") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise _Bad(f"{what} is not canonical base64")
    return raw


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _Bad(f"{what} is not a non-negative integer")
    return value


def _parse_item(obj: Any) -> _Item:
    if not isinstance(obj, Mapping):
        raise _Bad("evidence item is not an object")
    types = obj.get("type")
    if not isinstance(types, list) or "LedgerEvidence" not in types:
        raise _Bad("evidence item is not LedgerEvidence")
    index = _int(obj.get("entryIndex"), "entryIndex")
    try:
        entry = parse_entry(_b64(obj.get("entry"), "entry"))
    except CreditBankError as e:
        raise _Bad(f"entry bytes: {e}") from e
    path_in = obj.get("inclusionPath")
    if not isinstance(path_in, list):
        raise _Bad("inclusionPath is not a list")
    checkpoint = obj.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise _Bad("checkpoint is not text")
    name = obj.get("nameOnRecord")
    salt_text = obj.get("salt")
    if name is not None and not isinstance(name, str):
        raise _Bad("nameOnRecord is not text")
    return _Item(
        index,
        entry,
        _int(obj.get("treeSize"), "treeSize"),
        [_b64(h, "inclusion path hash") for h in path_in],
        checkpoint,
        name,
        None if salt_text is None else _b64(salt_text, "salt"),
    )


def _run(checks: list[Check], name: str, fn: Callable[..., Any], *args: Any) -> bool:
    try:
        fn(*args)
    except (_Bad, CreditBankError) as e:
        checks.append(Check(name, False, str(e)))
        return False
    checks.append(Check(name, True))
    return True


def _same(what: str, shown: Any, signed: Any) -> None:
    if shown != signed or type(shown) is not type(signed):
        raise _Bad(f"{what}: shown {shown!r}, signed {signed!r}")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _registry_facts(rec: Mapping[str, Any], owner: Any, keys: KeyDirectory) -> None:
    names = keys.names_of(owner) if isinstance(owner, str) else None
    if names is not None:
        _same("institutionNameZh", rec.get("institutionNameZh"), names[0])
        _same("institutionNameEn", rec.get("institutionNameEn"), names[1])
    custodian = keys.custodian_of(owner) if isinstance(owner, str) else None
    _same("custodianId", rec.get("custodianId"), custodian)
    if custodian is not None:
        cnames = keys.names_of(custodian)
        if cnames is not None:
            _same("custodianNameZh", rec.get("custodianNameZh"), cnames[0])
            _same("custodianNameEn", rec.get("custodianNameEn"), cnames[1])


def _record_facts(
    rec: Mapping[str, Any],
    item: _Item,
    learner: Any,
    holder_name: Any,
    items: Mapping[int, _Item],
    keys: KeyDirectory,
) -> None:
    body = item.entry.body
    if item.entry.type not in RECORD_TYPES:
        raise _Bad(f"entry is a {item.entry.type}, not a record")
    _same("recordId", rec.get("recordId"), body.get("record_id"))
    _same("kind", rec.get("kind"), body.get("kind"))
    _same("achievedOn", rec.get("achievedOn"), body.get("achieved_on"))
    _same("payload", rec.get("payload"), body.get("payload"))
    owner = body.get("on_behalf_of") or item.entry.issuer
    _same("institutionId", rec.get("institutionId"), owner)
    _registry_facts(rec, owner, keys)
    _same("learner", learner, body.get("learner"))
    _same("nameOnRecord", rec.get("nameOnRecord"), item.name_on_record)
    if isinstance(holder_name, str) and isinstance(item.name_on_record, str):
        _same("nameDiffers", rec.get("nameDiffers"), _nfc(holder_name) != _nfc(item.name_on_record))
    rev_idx = rec.get("revocationEntryIndex")
    if rev_idx is not None:
        rev = items.get(rev_idx)
        if rev is None or rev.entry.type != "record.revoked":
            raise _Bad("revocationEntryIndex names no record.revoked evidence")
        rb = rev.entry.body
        owner = body.get("on_behalf_of") or item.entry.issuer
        _same("revoked record", rec.get("recordId"), rb.get("record_id"))
        _same("revocation owner", owner, rb.get("on_behalf_of") or rev.entry.issuer)
        _same("revokedOn", rec.get("revokedOn"), rb.get("effective_on"))
        _same("revocationReason", rec.get("revocationReason"), rb.get("reason"))
        _same("state", rec.get("state"), "revoked")


def _void_facts(
    void: Any, decision_idx: int, grant_no: int | None, items: Mapping[int, _Item]
) -> None:
    if void is None:
        return
    if not isinstance(void, Mapping):
        raise _Bad("voided is not an object")
    void_idx = void.get("voidEntryIndex")
    ev = items.get(void_idx) if type(void_idx) is int else None
    if ev is None:  # the bank states the void; its entry is optional evidence
        return
    if ev.entry.type != "conversion.voided":
        raise _Bad("voidEntryIndex names no conversion.voided evidence")
    vb = ev.entry.body
    _same("void decision", decision_idx, vb.get("decision_entry"))
    if grant_no is not None:  # an exam exemption's void names the decision only
        _same("void grant", grant_no, vb.get("grant_no"))
    _same("voidedOn", void.get("voidedOn"), vb.get("voided_at"))
    _same("voidReason", void.get("voidReason"), vb.get("reason"))


def _conversion_facts(
    conv: Mapping[str, Any], item: _Item, learner: Any, items: Mapping[int, _Item]
) -> None:
    body = item.entry.body
    if item.entry.type != "conversion.decided":
        raise _Bad(f"entry is a {item.entry.type}, not a decision")
    _same("learner", learner, body.get("learner"))
    pairs = (
        ("applicationId", "application_id"),
        ("conversionType", "type"),
        ("appliedOn", "applied_on"),
        ("decisionReason", "reason"),
        ("creditsCenti", "credits_centi"),
        ("explanationZh", "explanation_zh"),
        ("explanationEn", "explanation_en"),
    )
    for shown, signed in pairs:
        _same(shown, conv.get(shown), body.get(signed))
    _same(
        "programId",
        conv.get("programId"),
        body.get("program_id") or body.get("certificate_type_id"),
    )
    grants = conv.get("grants")
    signed_grants = body.get("grants")
    if not isinstance(grants, list) or not isinstance(signed_grants, list):
        raise _Bad("grants missing")
    _same("grant count", len(grants), len(signed_grants))
    for n, (g, s) in enumerate(zip(grants, signed_grants, strict=True)):
        if not isinstance(g, Mapping):
            raise _Bad(f"grant {n} is not an object")
        _same(f"grant {n} grantNo", g.get("grantNo"), n)
        for shown, signed in (
            ("ruleKey", "rule_key"),
            ("ruleVersion", "rule_version"),
            ("mode", "mode"),
            ("creditsCenti", "credits_centi"),
            ("explanationZh", "explanation_zh"),
            ("explanationEn", "explanation_en"),
            ("targetCourseId", "target_course_id"),
        ):
            _same(f"grant {n} {shown}", g.get(shown), s.get(signed))
        _same(
            f"grant {n} sourceEntries", g.get("sourceEntries"), [x["entry"] for x in s["sources"]]
        )
        _void_facts(g.get("voided"), item.index, n, items)
    exam, signed_exam = conv.get("exam"), body.get("exam")
    _same("exam present", exam is None, signed_exam is None)
    if isinstance(exam, Mapping) and isinstance(signed_exam, Mapping):
        for shown, signed in (
            ("certificateTypeId", "certificate_type_id"),
            ("granted", "granted"),
            ("examPart", "exam_part"),
            ("ruleKey", "rule_key"),
            ("ruleVersion", "rule_version"),
        ):
            _same(f"exam {shown}", exam.get(shown), signed_exam.get(signed))
        basis = signed_exam.get("basis")
        _same("exam basisEntry", exam.get("basisEntry"), None if basis is None else basis["entry"])
        _void_facts(exam.get("voided"), item.index, None, items)


def _signature(item: _Item, keys: KeyDirectory, role: str) -> None:
    entry = item.entry
    public = keys.key_for(entry.issuer, entry.key_id, parse_time(entry.at))
    verify_entry_signature(entry, public)
    if role in ("conversion", "void"):
        if entry.issuer != keys.bank_id:
            raise _Bad(f"a {entry.type} entry must be signed by the bank, not {entry.issuer}")
        return
    ward = entry.body.get("on_behalf_of")
    if ward is not None and keys.custodian_of(ward) != entry.issuer:
        raise _Bad(f"{entry.issuer} is not the custodian of {ward}")


def _inclusion(item: _Item, checkpoints: Mapping[str, Checkpoint | None]) -> None:
    cp = checkpoints.get(item.checkpoint)
    if cp is None:
        raise _Bad("its checkpoint is not verified")
    if item.tree_size != cp.size:
        raise _Bad(f"tree size {item.tree_size} is not the checkpoint's {cp.size}")
    verify_inclusion(item.index, cp.size, leaf_hash(item.entry.raw), item.path, cp.root)


def _credential_key(doc: Mapping[str, Any], did_document: Mapping[str, Any]) -> tuple[bytes, str]:
    issuer = doc.get("issuer")
    issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
    proof = doc.get("proof")
    vm = proof.get("verificationMethod") if isinstance(proof, Mapping) else None
    if not isinstance(vm, str):
        raise _Bad("the proof names no verification method")
    if issuer_id != did_document.get("id") or vm.split("#", 1)[0] != issuer_id:
        raise _Bad("the issuer is not the DID that controls the proof's key")
    return key_from_did_document(dict(did_document), vm), vm


def check_credential(
    document: Mapping[str, Any],
    *,
    did_document: Mapping[str, Any],
    keys: KeyDirectory,
    log_key: VerifierKey,
    now: datetime | None = None,
) -> list[Check]:
    """Every offline check of a credential, in a stable order (see the module docstring).

    Args:
        document: the secured credential (parsed JSON).
        did_document: the bank's DID document (trusted, e.g. from ``keys export-public``).
        keys: the institution key registry.
        log_key: the log's checkpoint verifier key.
        now: if given, the validity period is checked at this instant.

    Returns:
        The checks; the credential verifies iff every ``ok`` is True.
    """
    checks: list[Check] = []
    found: list[tuple[bytes, str]] = []
    if _run(
        checks, "credential.issuer", lambda: found.append(_credential_key(document, did_document))
    ):
        key, vm = found[0]
        _run(
            checks,
            "credential.proof",
            lambda: verify_credential_proof(document, key, verification_method=vm),
        )
    else:
        checks.append(Check("credential.proof", False, "no trusted key for the proof"))
    if now is not None:
        _run(checks, "credential.validity", lambda: _validity(document, now))

    items: dict[int, _Item] = {}
    raw_evidence = document.get("evidence")
    for pos, obj in enumerate(raw_evidence if isinstance(raw_evidence, list) else []):
        try:
            item = _parse_item(obj)
        except _Bad as e:
            checks.append(Check(f"evidence[{pos}].format", False, str(e)))
            continue
        if item.index in items:
            checks.append(Check(f"evidence[{pos}].format", False, "entry index appears twice"))
            continue
        items[item.index] = item

    checkpoints: dict[str, Checkpoint | None] = {}
    for item in items.values():
        if item.checkpoint in checkpoints:
            continue
        got: list[Checkpoint] = []
        name = f"checkpoint[{item.tree_size}].signature"
        text = item.checkpoint
        _run(checks, name, _checkpoint, text, log_key, got)
        checkpoints[text] = got[0] if got else None

    subject = document.get("credentialSubject")
    subject = subject if isinstance(subject, Mapping) else {}
    learner, holder_name = subject.get("learnerId"), subject.get("name")
    shown_records = {
        r.get("entryIndex"): r for r in subject.get("records") or [] if isinstance(r, Mapping)
    }
    shown_conversions = {
        c.get("entryIndex"): c for c in subject.get("conversions") or [] if isinstance(c, Mapping)
    }
    for idx in sorted(set(shown_records) - set(items), key=str):
        checks.append(Check(f"record[{idx}].evidence", False, "no evidence for this record"))
    for idx in sorted(set(shown_conversions) - set(items), key=str):
        checks.append(Check(f"conversion[{idx}].evidence", False, "no evidence for this decision"))

    for idx in sorted(items):
        item = items[idx]
        role = ROLE_OF_TYPE.get(item.entry.type, "entry")
        prefix = f"{role}[{idx}]"
        sig_name = "bank_signature" if role in ("conversion", "void") else "institution_signature"
        _run(checks, f"{prefix}.{sig_name}", _signature, item, keys, role)
        _run(checks, f"{prefix}.inclusion", _inclusion, item, checkpoints)
        if role == "record":
            _run(checks, f"{prefix}.name_commitment", _commitment, item)
            rec = shown_records.get(idx)
            if rec is not None:
                _run(
                    checks,
                    f"{prefix}.facts",
                    _record_facts,
                    rec,
                    item,
                    learner,
                    holder_name,
                    items,
                    keys,
                )
        elif role == "conversion" and idx in shown_conversions:
            conv = shown_conversions[idx]
            _run(
                checks,
                f"{prefix}.facts",
                _conversion_facts,
                conv,
                item,
                learner,
                items,
            )
        elif role in ("revocation", "void"):
            _run(checks, f"{prefix}.facts", _side_facts, item, learner, items)
    return checks


def _checkpoint(text: str, log_key: VerifierKey, out: list[Checkpoint]) -> None:
    out.append(verify_checkpoint(text, log_key))


def _commitment(item: _Item) -> None:
    if item.name_on_record is None or item.salt is None:
        raise _Bad("the record's evidence discloses no name and salt")
    verify_name_commitment(
        item.salt, item.name_on_record, str(item.entry.body.get("name_commitment"))
    )


def _side_facts(item: _Item, learner: Any, items: Mapping[int, _Item]) -> None:
    body = item.entry.body
    if item.entry.type == "conversion.voided":
        _same("learner", learner, body.get("learner"))
        return
    # a revocation names a record by id; it must revoke a record shown with its evidence
    owner = body.get("on_behalf_of") or item.entry.issuer
    for other in items.values():
        if other.entry.type in RECORD_TYPES:
            ob = other.entry.body
            if (
                ob.get("record_id") == body.get("record_id")
                and (ob.get("on_behalf_of") or other.entry.issuer) == owner
            ):
                return
    raise _Bad("the revocation revokes no record in this credential")


def _validity(document: Mapping[str, Any], now: datetime) -> None:
    start, end = document.get("validFrom"), document.get("validUntil")
    if not isinstance(start, str):
        raise _Bad("no validFrom")
    if now < parse_time(start):
        raise _Bad("not yet valid")
    if end is not None and (not isinstance(end, str) or now >= parse_time(end)):
        raise _Bad("expired")


def verify_credential(
    document: Mapping[str, Any],
    *,
    did_document: Mapping[str, Any],
    keys: KeyDirectory,
    log_key: VerifierKey,
    now: datetime | None = None,
) -> list[Check]:
    """:func:`check_credential`, raising unless every check passes.

    Returns:
        The checks (all passed).

    Raises:
        CredentialCheckError: naming the first failed check; ``extra["checks"]`` holds all.
    """
    checks = check_credential(
        document, did_document=did_document, keys=keys, log_key=log_key, now=now
    )
    failed = [c for c in checks if not c.ok]
    if failed:
        first = failed[0]
        raise CredentialCheckError(
            f"{first.name} failed: {first.detail}", failed=[c.name for c in failed], checks=checks
        )
    return checks


def failed_checks(checks: Sequence[Check]) -> list[str]:
    """The names of the failed checks."""
    return [c.name for c in checks if not c.ok]
