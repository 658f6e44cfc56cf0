"""Import a dataset in the sample layout through the signed ledger path (``creditbank import``).

The layout is that of the bundled synthetic sample (``creditbank/data/sample``): every file is
imported (see :data:`STEPS`) except ``expected.json``, the oracle, which is listed as skipped.

Every outcome enters the log exactly as an institution's post would, through
:meth:`creditbank.service.ledger.Ledger.append` and its record validator:

* institutions not yet registered are registered by the bank, each with its own Ed25519 key
  created in ``$CREDITBANK_HOME/keys/institutions/<ID>.key`` (mode 0600);
* learners are resolved by the dataset's pre-hashed identity (``id_document.hash``), which
  stays out of the log like the names (docs/trust-model.md);
* each outcome becomes a ``record.posted`` (or ``record.corrected``) entry signed by its
  poster's own key: the issuing institution; the bank with ``claimed_issuer`` for a learner's
  own upload (``posted_by`` = the learner); the records custodian with ``on_behalf_of`` for a
  post made after the issuer closed. The plain ``name_on_record`` travels beside the entry
  (``extras``) into the personal-data tables;
* revocations (``revoked_at`` on a chain root) are ``record.revoked`` entries with the reason
  and ``effective_on`` = ``revoked_at``, signed by the record's owner or, once it has closed,
  its custodian; ``revoked_at`` on a correction has no effect (sample rule 10) and is skipped;
* the dataset's closures (``closed_on``) are ``institution.closed`` entries.

Events are appended in the dataset's timeline order, (claimed date, phase, id) with phases
post < revocation < closure < custodian action on the same day, so that an institution's own
posts precede its closure and its custodian's follow it; a correction or revocation never
precedes the record it names. Bodies keep the claimed dates (``achieved_on``, ``posted_at``,
``effective_on``); each entry's ``at`` is the bank clock at ingestion.

Re-running is idempotent. Records already present are re-signed (new ``at``) and re-sent; the
validator answers identical content as a duplicate of the original entry and other content as
``record.conflict``. An entry whose signer has closed since cannot be re-sent (the validator
refuses a closed institution's own posts); its body is compared with the stored projection
instead (same digest → already present, else ``record.conflict``).

Conversions (:mod:`creditbank.service.conversion`) follow the records:

* ``conversion_rules.json`` with ``programs.json`` and ``certificate_types.json`` is published
  as one bank-signed ``rules.published`` entry (validated first; skipped when equal to the
  publication in force);
* ``applications.json`` is decided in rule-0 order (``applied_on``, then id), each decision
  dated ``applied_on`` (its entry's ``at`` is the bank clock) and appended as a
  ``conversion.decided`` entry; an application already decided is not decided again;
* the voids that the dataset's revocations imply are posted as ``conversion.voided`` entries.

What each dataset id became is kept in ``dataset_refs`` (:func:`dataset_refs`); an application
id maps to its decision entry (kind ``application``, ``record_id`` = the application id).

The steps and :func:`import_dataset` are here; the dataset, the report and the references
are in ``importer_dataset``, the state the steps share in ``importer_context``, the records
step in ``importer_records``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from creditbank.errors import ConfigurationError, InvalidInputError
from creditbank.service import conversion
from creditbank.service.bank import Bank
from creditbank.service.demo import institution_key, registration_entry
from creditbank.service.importer_context import DEFAULT_BATCH, ImportContext, Pending
from creditbank.service.importer_dataset import (
    REF_APPLICATION,
    REF_LEARNER,
    DatasetRefs,
    DatasetSource,
    ImportReport,
    OutcomeRef,
    Progress,
    dataset_refs,
    open_dataset,
)
from creditbank.service.importer_records import step_records
from creditbank.service.records import resolve_learner

#: the names importers use from here
__all__ = [
    "DEFAULT_BATCH",
    "NOT_IMPORTED",
    "STEPS",
    "DatasetRefs",
    "ImportContext",
    "ImportReport",
    "ImportStep",
    "OutcomeRef",
    "Progress",
    "dataset_refs",
    "import_dataset",
    "open_dataset",
]

#: files of the layout that no step imports
NOT_IMPORTED: Final = ("expected.json",)


# -- steps ----------------------------------------------------------------------------------
def step_institutions(ctx: ImportContext) -> None:
    """Register the dataset's institutions that are not registered yet (closures come later,
    in the timeline). Keys are created in the home on first use."""
    rows = ctx.dataset.rows("institutions.json")
    ctx.institutions = {r["id"]: r for r in rows}
    registry = ctx.registry(refresh=True)
    pending = [
        Pending(
            registration_entry(ctx.bank, inst, institution_key(ctx.bank, iid)),
            None,
            "institutions_registered",
        )
        for iid, inst in ctx.institutions.items()
        if iid != ctx.bank_id and iid not in registry.institutions
    ]
    if pending:
        ctx.append("institutions", pending)
        ctx.registry(refresh=True)


def step_learners(ctx: ImportContext) -> None:
    """Resolve every learner by the dataset's pre-hashed identity (created on first use)."""
    rows = ctx.dataset.rows("learners.json")
    now = ctx.now()
    pepper = ctx.bank.pepper
    with ctx.bank.engine.begin() as conn:
        for n, row in enumerate(rows, 1):
            doc = row.get("id_document")
            prehash = doc.get("hash") if isinstance(doc, dict) else None
            if not isinstance(prehash, str):
                raise InvalidInputError(
                    f"learner {row['id']} has no id_document.hash", code="import.identity"
                )
            name = row.get("name_zh") or row.get("name_latin")
            if not isinstance(name, str):
                raise InvalidInputError(f"learner {row['id']} has no name", code="import.name")
            latin = row.get("name_latin")
            resolved = resolve_learner(
                conn,
                pepper=pepper,
                now=now,
                name=name,
                prehash=prehash,
                name_latin=latin if isinstance(latin, str) else None,
                external_ref=row["id"],
            )
            ctx.learners[row["id"]] = resolved
            ctx.learner_rows[row["id"]] = row
            if resolved.created:
                ctx.report.learners_created += 1
            else:
                ctx.report.learners_existing += 1
            ctx.report.learner_ids[row["id"]] = resolved.learner_id
            ctx.tick("learners", n, len(rows))
    ctx.remember(
        {"kind": REF_LEARNER, "ref": ref, "learner_id": r.learner_id}
        for ref, r in ctx.learners.items()
    )


def step_rules(ctx: ImportContext) -> None:
    """Publish ``conversion_rules.json`` with the programmes and certificate types it needs
    as one ``rules.published`` entry (validated; nothing appended if unchanged)."""
    if not ctx.dataset.has("conversion_rules.json"):
        return
    doc: dict[str, Any] = {"conversion_rules": ctx.dataset.load("conversion_rules.json")}
    for file, key in (
        ("programs.json", "programs"),
        ("certificate_types.json", "certificate_types"),
    ):
        if ctx.dataset.has(file):
            doc[key] = ctx.dataset.load(file)
    current = conversion.current_rules(ctx.bank)
    publication = conversion.parse_rules_document(
        doc, base=current.publication if current is not None else None
    )
    result = conversion.publish_rules(ctx.bank, publication)
    if result.created:
        ctx.report.rules_published += 1
        ctx.report.entries_appended += 1
    ctx.tick("rules", 1, 1)


_TARGETS: Final = {"credit_conversion": "program_id", "exam_exemption": "certificate_type_id"}


def _application_request(
    ctx: ImportContext, row: Mapping[str, Any]
) -> conversion.ApplicationRequest:
    aid = str(row["id"])
    learner = ctx.learners.get(str(row.get("learner_id")))
    if learner is None:
        raise InvalidInputError(
            f"application {aid} names unknown learner {row.get('learner_id')}",
            code="import.learner",
        )
    applied_on, target = row.get("applied_on"), _TARGETS.get(str(row.get("type")))
    value = row.get(target) if target is not None else None
    if not isinstance(applied_on, str) or not isinstance(value, str):
        raise InvalidInputError(
            f"application {aid} needs applied_on, a known type and its target",
            code="import.application",
        )
    return conversion.ApplicationRequest(
        learner_id=learner.learner_id,
        applied_on=conversion.parse_date(applied_on, f"application {aid} applied_on"),
        program_id=value if target == "program_id" else None,
        certificate_type_id=value if target == "certificate_type_id" else None,
        application_id=aid,
    )


def step_applications(ctx: ImportContext) -> None:
    """Decide ``applications.json`` in rule-0 order (``applied_on``, then id), each on its
    ``applied_on``; applications decided by an earlier import are answered from the log."""
    if not ctx.dataset.has("applications.json"):
        return
    rows = ctx.dataset.rows("applications.json")
    requests = sorted(
        (_application_request(ctx, r) for r in rows),
        key=lambda q: (q.applied_on, q.application_id or ""),
    )
    decided = conversion.decide_applications(ctx.bank, requests, batch_size=ctx.batch_size)
    refs = []
    for d in decided:
        if d.created:
            ctx.report.applications_decided += 1
            ctx.report.entries_appended += 1
        else:
            ctx.report.applications_existing += 1
        ctx.report.applications[d.application_id] = d.entry_index
        refs.append(
            {
                "kind": REF_APPLICATION,
                "ref": d.application_id,
                "learner_id": d.learner_id,
                "owner": None,
                "record_id": d.application_id,
                "entry_idx": d.entry_index,
            }
        )
    ctx.remember(refs)
    ctx.tick("applications", len(decided), len(rows))


def step_voids(ctx: ImportContext) -> None:
    """Post the ``conversion.voided`` entries the revocations imply (idempotent): the
    dataset's own decisions, and earlier decisions its revocations void."""
    if not ctx.learners:
        return
    posted = conversion.reconcile_voids(ctx.bank, {r.learner_id for r in ctx.learners.values()})
    ctx.report.voids_posted += posted
    ctx.report.entries_appended += posted


def step_checkpoint(ctx: ImportContext) -> None:
    """Publish a checkpoint covering everything appended."""
    ctx.bank.ledger.publish()
    ctx.report.checkpoint_size = ctx.bank.ledger.latest_checkpoint().size


#: One step: reads the dataset through the context and appends through ``ctx.append``.
ImportStep = Callable[[ImportContext], None]

#: The import, in order.
STEPS: list[tuple[str, ImportStep]] = [
    ("institutions", step_institutions),
    ("learners", step_learners),
    ("records", step_records),
    ("rules", step_rules),
    ("applications", step_applications),
    ("voids", step_voids),
    ("checkpoint", step_checkpoint),
]


def import_dataset(
    bank: Bank,
    source: DatasetSource,
    *,
    name: str | None = None,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH,
    steps: Sequence[tuple[str, ImportStep]] | None = None,
) -> ImportReport:
    """Import a dataset in the sample layout (see the module docstring); idempotent.

    Args:
        bank: an open bank that validates records (the product mode).
        source: the dataset directory (a path, or an ``importlib.resources`` directory such
            as ``resources.files("creditbank.data.sample")``).
        name: label of the dataset's references in ``dataset_refs`` (default: directory name).
        progress: called as ``progress(step, done, total)``.
        batch_size: entries per ledger append.
        steps: the steps to run (default :data:`STEPS`).

    Raises:
        InvalidInputError: the dataset is malformed (``import.*``), or an entry fails its
            schema (the record codes, naming the outcome).
        BatchRejected: the ledger refused a batch (items name the outcome); the batches
            before it stay appended and a re-run continues after them.
        ConflictError: ``record.conflict`` if a record already in the log has other content.
        ConfigurationError: the home lacks an institution's key, or the bank does not
            validate records.
    """
    if bank.ledger.validator is None:
        raise ConfigurationError(
            "import needs a bank that validates records", code="import.ledger_only"
        )
    if batch_size < 1:
        raise InvalidInputError("batch_size must be at least 1", code="import.batch_size")
    started = time.monotonic()
    dataset = open_dataset(source, name)
    report = ImportReport(dataset.name)
    report.skipped_files = [f for f in NOT_IMPORTED if dataset.has(f)]
    ctx = ImportContext(bank, dataset, report, progress=progress, batch_size=batch_size)
    for _step_name, step in steps if steps is not None else STEPS:
        step(ctx)
    report.seconds = time.monotonic() - started
    return report
