"""The conversion report as of a date: the structure of ``sample/expected.json``.

Built from what the bank stores, never recomputed: the ``conversion.decided`` entries, the
record projections and entry bodies, and the catalogue of the publication in force; printed
with an imported dataset's own ids where it was imported.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from creditbank.core.rules import Catalog, build_report
from creditbank.core.rules.decision_entries import LearnerData
from creditbank.errors import NotFoundError
from creditbank.service.bank import Bank
from creditbank.service.conversion.learners import load_learners
from creditbank.service.conversion.projections import ensure_synced
from creditbank.service.conversion.publishing import current_rules
from creditbank.storage import conversion_repo as repo

_NATURAL = re.compile(r"(\d+)")


def _natural(text: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in _NATURAL.split(text))


@dataclass(frozen=True, slots=True)
class _Ids:
    """How bank ids print in a report: a dataset's own ids where it was imported."""

    learners: Mapping[str, str]  # bank learner id -> printed id
    records: Mapping[tuple[str, str], str]  # (owner, record id) -> printed id
    applications: Mapping[str, str]  # application id -> printed id


def _dataset_ids(conn: Connection, dataset: str) -> tuple[list[str], _Ids]:
    learners: dict[str, str] = {}
    records: dict[tuple[str, str], str] = {}
    applications: dict[str, str] = {}
    for r in repo.dataset_ref_rows(conn, dataset):
        if r.kind == "learner":
            learners[str(r.learner_id)] = str(r.ref)
        elif r.kind == "record":
            records[(str(r.owner), str(r.record_id))] = str(r.ref)
        elif r.kind == "application":
            applications[str(r.record_id)] = str(r.ref)
    if not learners:
        raise NotFoundError(f"no dataset named {dataset} was imported", code="report.dataset")
    order = sorted(learners, key=lambda lid: _natural(learners[lid]))
    return order, _Ids(learners, records, applications)


def conversion_report(
    bank: Bank,
    as_of: dt.date,
    *,
    dataset: str | None = None,
    explanations: bool = False,
) -> dict[str, Any]:
    """The conversion report as of a date: the structure of ``sample/expected.json``.

    Built from what the bank stores: the ``conversion.decided`` entries (each grant as decided,
    never recomputed), the record projections and entry bodies (revocations decide status and
    ``voided_at``, rule 10) and the catalogue of the publication in force (native credits).

    Args:
        dataset: print that imported dataset's learners with its own learner, outcome and
            application ids (learners in natural order of their ids); ``None``: the only
            dataset imported if there is exactly one, else every learner with bank ids;
            ``""``: every learner with bank ids.
        explanations: add the zh/en explanations to grants and exam exemptions.

    Raises:
        NotFoundError: ``report.dataset`` for a dataset that was never imported.
    """
    ensure_synced(bank)
    ruleset = current_rules(bank)
    catalog = ruleset.catalog if ruleset is not None else Catalog.build()
    with bank.engine.connect() as conn:
        if dataset is None:
            names = repo.dataset_names(conn)
            dataset = names[0] if len(names) == 1 else ""
        if dataset:
            learner_ids, ids = _dataset_ids(conn, dataset)
        else:
            learner_ids = sorted(repo.all_learner_ids(conn))
            ids = _Ids({}, {}, {})
        data = load_learners(conn, learner_ids)
    decisions = [sd.decision for lid in learner_ids for sd in data[lid].decisions]
    report = build_report(
        as_of,
        learner_ids,
        decisions,
        {lid: ld.records for lid, ld in data.items()},
        catalog,
        include_explanations=explanations,
    )
    for entry in report["learners"]:
        _rename(entry, data[entry["learner_id"]], ids)
    return report


def _rename(entry: dict[str, Any], ld: LearnerData, ids: _Ids) -> None:
    """Replace bank ids by printed ids in one learner's report entry."""

    def record(eid: str | None) -> str | None:
        if eid is None:
            return None
        ref = ld.ref_by_eid.get(eid)
        if ref is None:
            return eid
        return ids.records.get((ref.owner, ref.record_id), eid)

    learner = ids.learners.get(ld.learner_id, ld.learner_id)
    entry["learner_id"] = learner
    for app in entry["applications"]:
        app["application_id"] = ids.applications.get(app["application_id"], app["application_id"])
        if "learner_id" in app:
            app["learner_id"] = learner
        if "basis_outcome_id" in app:
            app["basis_outcome_id"] = record(app["basis_outcome_id"])
        for g in app.get("grants", ()):
            g["learner_id"] = learner
            g["application_id"] = app["application_id"]
            g["outcome_ids"] = [record(o) for o in g["outcome_ids"]]
            g["effective_version_ids"] = [record(o) for o in g["effective_version_ids"]]
