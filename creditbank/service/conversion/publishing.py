"""Publishing conversion rules, and the rule set in force.

A publication (:class:`~creditbank.core.rules.publication.Publication`) is validated with
:func:`~creditbank.core.rules.validate_rules`, must keep every version published before
unchanged except its ``effective_to``, and becomes one bank-signed ``rules.published`` entry.
The latest publication is the one in force (:func:`current_rules`), its catalogue completed
with the institutions of the registry.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from creditbank.core.canonical import canonicalize
from creditbank.core.registry import Registry
from creditbank.core.rules import Catalog, Institution, RuleBook, validate_rules
from creditbank.core.rules.decision_entries import BODY_BUDGET
from creditbank.core.rules.publication import RULES_PUBLISHED, Publication, rule_to_wire
from creditbank.errors import InvalidInputError, RuleError
from creditbank.service.bank import Bank
from creditbank.service.conversion.lock import conversion_lock
from creditbank.service.conversion.projections import sync
from creditbank.storage import conversion_repo as repo


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """A publication read back from the log, validated and indexed for the engine."""

    entry_index: int
    published_at: str
    publication: Publication
    book: RuleBook
    catalog: Catalog


def _catalog(pub: Publication, registry: Registry) -> Catalog:
    institutions = [
        Institution(
            id=s.institution_id,
            kind=s.kind,
            status="closed" if s.closed_on is not None else "active",
            closed_on=s.closed_on,
            records_custodian=s.custodian,
            name_zh=s.name_zh,
            name_en=s.name_en,
        )
        for s in registry.institutions.values()
    ]
    return Catalog.build(
        institutions=institutions,
        certificate_types=pub.certificate_types,
        degree_programs=pub.degree_programs,
        source_programs=pub.source_programs,
        training_programs=pub.training_programs,
    )


_RULESETS: dict[tuple[str, int, int], RuleSet] = {}
_RULESETS_GUARD = threading.Lock()


def current_rules(bank: Bank) -> RuleSet | None:
    """The latest publication (``None`` if none), cached per publication and registry state."""
    with bank.engine.connect() as conn:
        row = repo.latest_publication(conn)
        if row is None:
            return None
        idx = int(row.entry_idx)
    registry_count = bank.ledger.head().registry_count
    key = (bank.settings.db_url, idx, registry_count)
    with _RULESETS_GUARD:
        found = _RULESETS.get(key)
    if found is not None:
        return found
    with bank.engine.connect() as conn:
        data = repo.entry_data(conn, [idx])[idx]
    entry = json.loads(data)
    pub = Publication.from_body(entry["body"])
    catalog = _catalog(pub, bank.ledger.registry())
    ruleset = RuleSet(idx, str(entry["at"]), pub, validate_rules(pub.rules, catalog), catalog)
    with _RULESETS_GUARD:
        if len(_RULESETS) > 32:
            _RULESETS.clear()
        _RULESETS[key] = ruleset
    return ruleset


def require_rules(bank: Bank) -> RuleSet:
    ruleset = current_rules(bank)
    if ruleset is None:
        raise RuleError("no conversion rules are published yet", code="conversion.no_rules")
    return ruleset


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Where a publication sits; ``created`` is false when it equalled the one in force."""

    entry_index: int
    created: bool
    rule_versions: int
    rule_keys: int


def _compatible(old: Publication, new: Publication) -> None:
    """A new publication keeps every published version, changed at most in ``effective_to``.

    Raises:
        RuleError: ``rules.version_removed`` / ``rules.version_changed`` /
            ``rules.program_removed``.
    """
    by_key = {(r.rule_key, r.version): r for r in new.rules}
    for r in old.rules:
        now = by_key.get((r.rule_key, r.version))
        if now is None:
            raise RuleError(
                f"rule {r.rule_key} v{r.version} was published before and cannot be dropped; "
                "end it with effective_to instead",
                code="rules.version_removed",
            )
        a, b = rule_to_wire(r), rule_to_wire(now)
        a.pop("effective_to")
        b.pop("effective_to")
        if a != b:
            raise RuleError(
                f"rule {r.rule_key} v{r.version} was published before with other content; "
                "publish a new version instead (only effective_to may change)",
                code="rules.version_changed",
            )
    programs = {p.id for p in new.degree_programs}
    for p in old.degree_programs:
        if p.id not in programs:
            raise RuleError(
                f"degree programme {p.id} was published before and cannot be dropped",
                code="rules.program_removed",
            )


def publish_rules(bank: Bank, publication: Publication) -> PublishResult:
    """Validate and publish a rule set as a bank-signed ``rules.published`` entry.

    Idempotent: a publication equal to the one in force is not appended again.

    Raises:
        RuleValidationError: the rules are invalid (every problem listed; code of the first).
        RuleError: ``rules.unknown_institution`` (a programme's institution is not
            registered), ``rules.version_removed`` / ``rules.version_changed`` /
            ``rules.program_removed`` (incompatible with the publication in force).
        InvalidInputError: ``rules.too_large`` when the entry would exceed the entry size.
    """
    with conversion_lock(bank):
        sync(bank)
        registry = bank.ledger.registry()
        catalog = _catalog(publication, registry)
        validate_rules(publication.rules, catalog)
        owners = [(p.id, p.institution_id) for p in publication.degree_programs]
        owners += [(p.id, p.institution_id) for p in publication.source_programs]
        for pid, institution_id in owners:
            if institution_id not in registry.institutions:
                raise RuleError(
                    f"programme {pid} names institution {institution_id}, which is not registered",
                    code="rules.unknown_institution",
                )
        body = publication.body()
        digest = hashlib.sha256(canonicalize(body)).digest()
        keys = len({r.rule_key for r in publication.rules})
        current = current_rules(bank)
        if current is not None:
            with bank.engine.connect() as conn:
                latest = repo.latest_publication(conn)
            if latest is not None and bytes(latest.digest) == digest:
                return PublishResult(int(latest.entry_idx), False, len(publication.rules), keys)
            _compatible(current.publication, publication)
        if len(canonicalize(body)) > BODY_BUDGET:
            raise InvalidInputError(
                f"the rule set is too large for one entry ({BODY_BUDGET} bytes)",
                code="rules.too_large",
            )
        (out,) = bank.ledger.append([bank.bank_entry(RULES_PUBLISHED, body)])
        sync(bank)
        return PublishResult(out.index, not out.duplicate, len(publication.rules), keys)
