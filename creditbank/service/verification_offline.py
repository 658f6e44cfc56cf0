"""Verification with no database and no network: the bank's public keys in a folder.

``creditbank keys export-public DIR`` (:func:`export_public_keys`) writes:

* ``did.json`` — the issuer's DID document (the key of every credential proof);
* ``log-key.txt`` — the log's checkpoint verifier key (``origin+hex8+base64``);
* ``registry.json`` — the institution key registry: the registry entries themselves
  (``institution.*``, exact bytes), each with its inclusion proof against the signed
  checkpoint exported beside them, and a readable summary of every institution's keys and
  their validity periods. :func:`load_public_keys` checks the checkpoint's signature, each
  entry's inclusion and replays the entries (each signature, each authorisation), so the
  verifier trusts only the log key and the DID document, not the summary;
* ``document-ca.pem`` — the certificate the bank's PDF signatures chain to.

:func:`verify_file` checks a PDF or credential JSON against these keys: the PDF signature
(intact, whole file, trusted), the attached credential, its proof and every evidence check.
Status and consistency with the live log need the bank: given a :class:`LiveLog` (the CLI's
``--online URL`` fetches the public API), they are checked too; otherwise they are reported
as not checked and the verdict covers everything else.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.checkpoint import Checkpoint, verify_checkpoint
from creditbank.core.credentials.did import key_from_did_document
from creditbank.core.credentials.proof import verify_credential_proof
from creditbank.core.credentials.verify import Check, RegistryKeys, check_credential
from creditbank.core.entries import REGISTRY_TYPES, format_time, parse_entry
from creditbank.core.merkle import leaf_hash, verify_inclusion
from creditbank.core.registry import Registry, replay
from creditbank.core.signing import VerifierKey, entry_key_id, parse_verifier_key
from creditbank.core.status_list import status_of
from creditbank.errors import (
    ConfigurationError,
    CreditBankError,
    StorageError,
    VerificationError,
)
from creditbank.service.bank import Bank
from creditbank.service.issuance import issuer_did_document
from creditbank.service.verification_checks import (
    consistency_check,
    embedded_checkpoints,
    parse_credential,
    read_upload,
)
from creditbank.service.verification_report import (
    INVALID,
    REVOKED,
    VALID,
    PhaseTimer,
    VerificationReport,
)
from creditbank.storage.tables import entries_t

DID_FILE: Final = "did.json"
LOG_KEY_FILE: Final = "log-key.txt"
REGISTRY_FILE: Final = "registry.json"
CA_FILE: Final = "document-ca.pem"
PUBLIC_FILES: Final = (DID_FILE, LOG_KEY_FILE, REGISTRY_FILE, CA_FILE)
#: registry.json format version
REGISTRY_FORMAT: Final = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _summary(registry: Registry) -> list[dict[str, Any]]:
    out = []
    for inst in sorted(registry.institutions.values(), key=lambda i: i.institution_id):
        out.append(
            {
                "institution_id": inst.institution_id,
                "kind": inst.kind,
                "name_zh": inst.name_zh,
                "name_en": inst.name_en,
                "closed_on": None if inst.closed_on is None else inst.closed_on.isoformat(),
                "custodian": inst.custodian,
                "keys": [
                    {
                        "key_id": k.key_id,
                        "public_key": _b64(k.public),
                        "valid_from": format_time(k.added_at),
                        "valid_until": None if k.revoked_at is None else format_time(k.revoked_at),
                    }
                    for k in sorted(inst.keys.values(), key=lambda k: k.added_at)
                ],
            }
        )
    return out


def export_public_keys(bank: Bank, out: Path) -> list[Path]:
    """Write the bank's public verification material into ``out`` (created if missing;
    existing files of these names are replaced).

    Returns:
        The files written.

    Raises:
        StorageError: if the database is unavailable.
        NotFoundError: ``log.no_checkpoint`` before the first checkpoint.
        ConfigurationError: if the document CA cannot be read, or ``out`` is not writable.
    """
    from creditbank.service.keys import document_trust_roots

    roots = document_trust_roots(bank.settings)
    cp = bank.ledger.latest_checkpoint()
    try:
        with bank.engine.connect() as conn:
            rows = conn.execute(
                select(entries_t.c.idx, entries_t.c.data)
                .where(entries_t.c.type.in_(sorted(REGISTRY_TYPES)))
                .where(entries_t.c.idx < cp.size)
                .order_by(entries_t.c.idx)
            ).all()
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read the registry: {type(e).__name__}") from e
    entries = []
    for idx, data in rows:
        _, path = bank.ledger.inclusion_proof(int(idx), cp.size)
        entries.append(
            {
                "index": int(idx),
                "entry": _b64(bytes(data)),
                "inclusion_path": [_b64(h) for h in path],
            }
        )
    registry = replay(bank.settings.bank_id, [parse_entry(bytes(d)) for _, d in rows])
    document = {
        "format": REGISTRY_FORMAT,
        "bank_id": bank.settings.bank_id,
        "checkpoint": cp.note,
        "entries": entries,
        "institutions": _summary(registry),
    }
    files = {
        DID_FILE: json.dumps(issuer_did_document(bank), indent=2, ensure_ascii=False) + "\n",
        LOG_KEY_FILE: bank.verifier_key + "\n",
        REGISTRY_FILE: json.dumps(document, indent=1, ensure_ascii=False) + "\n",
        CA_FILE: b"".join(roots).decode("ascii"),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in files.items():
            target = out / name
            tmp = out / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
            written.append(target)
    except OSError as e:
        raise ConfigurationError(f"cannot write {out}: {e.strerror}") from e
    return written


@dataclass(frozen=True, slots=True)
class PublicKeys:
    """The bank's public material, checked: DID document, log key, replayed registry, CA."""

    did_document: dict[str, Any]
    log_key: VerifierKey
    registry: Registry
    checkpoint: Checkpoint
    trust_roots: tuple[bytes, ...]

    @property
    def keys(self) -> RegistryKeys:
        """The registry as the credential checks read it."""
        return RegistryKeys(self.registry)


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except OSError as e:
        raise ConfigurationError(
            f"{folder / name}: {e.strerror} (write it with `creditbank keys export-public`)",
            code="verify.keys",
        ) from e


def load_public_keys(folder: Path) -> PublicKeys:
    """Read and check the folder :func:`export_public_keys` wrote.

    Raises:
        ConfigurationError: ``verify.keys`` when a file is missing or malformed.
        VerificationError: ``verify.registry`` when the registry's checkpoint, an entry's
            inclusion or an entry's signature does not verify, or the DID document's key is
            not the bank's registered key.
    """

    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(f"{folder}: {why}", code="verify.keys")

    try:
        did = json.loads(_read(folder, DID_FILE))
        log_key = parse_verifier_key(_read(folder, LOG_KEY_FILE).decode("ascii").strip())
        doc = json.loads(_read(folder, REGISTRY_FILE))
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(f"not the format `keys export-public` writes ({e})") from e
    except CreditBankError as e:
        if isinstance(e, ConfigurationError):
            raise
        raise bad(f"{LOG_KEY_FILE}: {e}") from e
    roots = _read(folder, CA_FILE)
    if not isinstance(did, dict) or not isinstance(doc, dict) or doc.get("format") != 1:
        raise bad(f"{DID_FILE} or {REGISTRY_FILE} is not what `keys export-public` writes")

    def failed(why: str) -> VerificationError:
        return VerificationError(f"the key registry does not verify: {why}", code="verify.registry")

    try:
        cp = verify_checkpoint(str(doc.get("checkpoint")), log_key)
        entries = []
        for item in doc.get("entries") or []:
            raw = base64.b64decode(item["entry"], validate=True)
            path = [base64.b64decode(h, validate=True) for h in item["inclusion_path"]]
            verify_inclusion(int(item["index"]), cp.size, leaf_hash(raw), path, cp.root)
            entries.append(parse_entry(raw))
        registry = replay(str(doc.get("bank_id")), entries)
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"{REGISTRY_FILE} is malformed ({e})") from e
    except CreditBankError as e:
        raise failed(str(e)) from e
    vms = [m for m in did.get("verificationMethod") or [] if isinstance(m, dict)]
    try:
        did_key = key_from_did_document(did, str(vms[0].get("id"))) if vms else b""
    except CreditBankError as e:
        raise failed(f"the DID document: {e}") from e
    bank = registry.institutions.get(registry.bank_id)
    if bank is None or entry_key_id(did_key) not in bank.keys:
        raise failed("the DID document's key is not a registered key of the bank")
    return PublicKeys(did, log_key, registry, cp, (roots,))


class LiveLog(Protocol):
    """The bank's live public log and status lists (the CLI fetches them over HTTP)."""

    def checkpoint(self) -> str:
        """The latest signed checkpoint (note text)."""
        ...

    def consistency(self, first: int, second: int) -> Sequence[bytes]:
        """A consistency proof between two published sizes."""
        ...

    def status_list(self, url: str) -> bytes:
        """The status list credential at ``url`` (JSON bytes)."""
        ...


def _status_check(
    credential: Mapping[str, Any], keys: PublicKeys, live: LiveLog
) -> tuple[Check, bool]:
    """The ``status`` check and whether the bit is set (a verified list says so)."""
    status = credential.get("credentialStatus")
    if not isinstance(status, Mapping):
        return Check("status", False, "the credential names no status list"), False
    url = status.get("statusListCredential")
    try:
        listed = parse_credential(live.status_list(str(url)))
        issuer = listed.get("issuer")
        issuer_id = issuer.get("id") if isinstance(issuer, Mapping) else issuer
        proof = listed.get("proof")
        vm = proof.get("verificationMethod") if isinstance(proof, Mapping) else None
        if issuer_id != keys.did_document.get("id") or not isinstance(vm, str):
            return Check("status", False, "the status list is not the bank's"), False
        verify_credential_proof(
            listed, key_from_did_document(keys.did_document, vm), verification_method=vm
        )
        revoked = status_of(status, listed)
    except CreditBankError as e:
        return Check("status", False, f"the status list does not verify: {e}"), False
    where = f"status list {url}, bit {status.get('statusListIndex')}"
    if revoked:
        return Check("status", False, f"{where}: set — the document is revoked"), True
    return Check("status", True, f"{where}: not set"), False


def verify_file(
    data: bytes, keys: PublicKeys, *, live: LiveLog | None = None, media_type: str | None = None
) -> VerificationReport:
    """Verify a PDF or credential JSON with the exported keys; status and live consistency
    only with ``live``.

    Raises:
        InvalidInputError: when the file is neither a readable PDF nor a JSON object.
        CreditBankError: as ``live``'s methods raise (network or HTTP failures).
    """
    timer = PhaseTimer()
    checks: list[Check] = []
    _kind, credential = read_upload(data, media_type, lambda: keys.trust_roots, timer, checks)
    if credential is None:
        return VerificationReport(False, INVALID, checks, timings=timer.timings)
    with timer("credential"):
        checks.extend(
            check_credential(
                credential, did_document=keys.did_document, keys=keys.keys, log_key=keys.log_key
            )
        )
    live_size = None
    revoked = False
    if live is not None:
        with timer("consistency"):
            try:
                head = verify_checkpoint(live.checkpoint(), keys.log_key)
            except VerificationError as e:
                checks.append(Check("log.checkpoint", False, f"the live checkpoint: {e}"))
            else:
                live_size = head.size
                for cp in embedded_checkpoints(credential, keys.log_key):
                    checks.append(consistency_check(cp, head.size, head.root, live.consistency))
        with timer("status"):
            status, revoked = _status_check(credential, keys, live)
            checks.append(status)
    failed = any(not c.ok for c in checks if not (revoked and c.name == "status"))
    verdict = INVALID if failed else (REVOKED if revoked else VALID)
    return VerificationReport(
        verdict == VALID,
        verdict,
        checks,
        credential=credential,
        live_size=live_size,
        timings=timer.timings,
    )
