"""Conversion as a bank service: published rules, applications, decisions, voids, report.

The pure engine (:mod:`creditbank.core.rules`) decides; this package feeds it from the log and
writes what it decided back into the log (docs/conversion-service.md). One module per job:

==================  =========================================================================
``publishing``      publish a rule set (``rules.published``); the rule set in force
``decisions``       decide applications (``conversion.decided``); idempotent submissions
``voids``           void the grants a revocation voids (``conversion.voided``, rule 10)
``views``           application views with explanations; what-if previews
``report``          the conversion report (the structure of ``sample/expected.json``)
``learners``        a learner's records, decisions and voids read from the log
``requests``        what an application is, checked; input dates
``projections``     complete the conversion projections from the log
``lock``            the conversion lock; batched appends under it
==================  =========================================================================

The entry bodies are pure codecs in core: :mod:`creditbank.core.rules.publication`
(``rules.published``, rules files) and :mod:`creditbank.core.rules.decision_entries`
(``conversion.decided``, the engine's records read from record entries).

Writes are serialised by one conversion lock held across read → decide → append, so two
decisions never see the same state. Projections (``rule_publications``,
``conversion_decisions``, ``conversion_voids``) are written by the append, in the append's
transaction (ADR 0007): a decision is either in the log and its projection, or in neither, so
an error answer never hides a written decision.

Callers use ``conversion.X``: the names below are re-exported here.
"""

from __future__ import annotations

from creditbank.core.rules.decision_entries import LearnerData, decision_body
from creditbank.core.rules.publication import (
    Publication,
    parse_rules_document,
    rule_from_wire,
    rule_to_wire,
)
from creditbank.service.conversion.decisions import (
    Decided,
    apply,
    decide_applications,
    idempotent_application_id,
    replay_application,
    submit_application,
)
from creditbank.service.conversion.learners import load_learners, resolve_learner_ref
from creditbank.service.conversion.lock import conversion_lock
from creditbank.service.conversion.projections import ensure_synced
from creditbank.service.conversion.publishing import (
    PublishResult,
    RuleSet,
    current_rules,
    publish_rules,
)
from creditbank.service.conversion.report import conversion_report
from creditbank.service.conversion.requests import ApplicationRequest, parse_date
from creditbank.service.conversion.views import (
    application_view,
    body_view,
    list_applications,
    what_if,
)
from creditbank.service.conversion.voids import (
    after_records_posted,
    on_records_appended,
    reconcile_voids,
)

__all__ = [
    "ApplicationRequest",
    "Decided",
    "LearnerData",
    "Publication",
    "PublishResult",
    "RuleSet",
    "after_records_posted",
    "application_view",
    "apply",
    "body_view",
    "conversion_lock",
    "conversion_report",
    "current_rules",
    "decide_applications",
    "decision_body",
    "ensure_synced",
    "idempotent_application_id",
    "list_applications",
    "load_learners",
    "on_records_appended",
    "parse_date",
    "parse_rules_document",
    "publish_rules",
    "reconcile_voids",
    "replay_application",
    "resolve_learner_ref",
    "rule_from_wire",
    "rule_to_wire",
    "submit_application",
    "what_if",
]
