"""A learner's records with their content and state, for people (the worker portal) and for
``GET /api/v1/learners/{id}/records`` (issue #10 item 5).

Each correction chain is shown by its current version: what the signed entry says (course,
credits, grade, level, hours, dates, issuer) and one state — ``revoked``, ``duplicate``
(another chain of the learner holds the same achievement and counts), ``expired`` (a skill
certificate past its ``expires_on``), ``corrected`` (a later version replaced the first) or
``current``. Display names come from the rules publication in force (the same catalogue the
documents use) and from the registry. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

from sqlalchemy.exc import SQLAlchemyError

from creditbank.core.registry import Registry
from creditbank.errors import StorageError
from creditbank.service.bank import Bank
from creditbank.service.conversion import current_rules
from creditbank.service.gather import _Catalog, _titles
from creditbank.service.records import ChainState, learner_chains
from creditbank.storage import conversion_repo as cr

#: payload fields shown as they are, by kind (credits and hours become numbers)
CONTENT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "academic_credit": ("course_id", "course_name_zh", "grade", "term"),
    "skill_certificate": (
        "certificate_type_id",
        "occupation",
        "level",
        "level_label_zh",
        "certificate_no",
        "issued_on",
        "expires_on",
    ),
    "training_hours": ("training_program_id", "training_name_zh", "cohort"),
    "competition_award": ("competition", "tier", "rank", "field"),
    "work_experience": (
        "occupation_key",
        "employer",
        "start_on",
        "end_on",
        "duration_months",
        "verified_by",
    ),
}


def _number(centi: Any) -> int | float | None:
    if not isinstance(centi, int) or isinstance(centi, bool):
        return None
    return centi // 100 if centi % 100 == 0 else centi / 100


def _state(ch: ChainState, kind: str, payload: dict[str, Any], today: dt.date) -> str:
    if ch.revoked:
        return "revoked"
    if ch.duplicate_of is not None:
        return "duplicate"
    expires = payload.get("expires_on")
    if kind == "skill_certificate" and isinstance(expires, str) and expires < today.isoformat():
        return "expired"
    if ch.current_index != ch.root_index:
        return "corrected"
    return "current"


def _institution(registry: Registry, iid: str) -> dict[str, Any]:
    inst = registry.institutions.get(iid)
    if inst is None:
        return {"id": iid, "name_zh": iid, "name_en": iid, "closed_on": None, "custodian": None}
    return {
        "id": iid,
        "name_zh": inst.name_zh,
        "name_en": inst.name_en,
        "closed_on": inst.closed_on.isoformat() if inst.closed_on else None,
        "custodian": inst.custodian,
    }


def content_of(body: dict[str, Any], catalog: _Catalog) -> dict[str, Any]:
    """The shown content of a record entry body (kind-specific fields, numbers, titles)."""
    kind = str(body.get("kind", ""))
    raw_payload = body.get("payload")
    payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
    t_zh, t_en, s_zh, s_en = _titles(kind, payload, catalog)
    out: dict[str, Any] = {
        "kind": kind,
        "title_zh": t_zh,
        "title_en": t_en,
        "subtitle_zh": s_zh,
        "subtitle_en": s_en,
        "achieved_on": body.get("achieved_on"),
        "posted_at": body.get("posted_at"),
        "credits": _number(payload.get("credits_centi")),
        "hours": payload.get("hours") if kind == "training_hours" else None,
    }
    for name in CONTENT_FIELDS.get(kind, ()):
        if name in payload:
            out[name] = payload[name]
    return out


def learner_record_views(bank: Bank, learner_id: str) -> list[dict[str, Any]]:
    """Every record chain of the learner, oldest first, with content, state and issuer.

    Each item: ``owner``, ``record_id`` (the chain's first), ``current_record_id``,
    ``current_index``, ``versions``, ``state``, ``revoked_on``, ``revocation_reason``,
    ``duplicate_of``, ``institution`` ({id, name_zh, name_en, closed_on, custodian}),
    ``posted_by`` (the signer of the current version) and ``content``.

    Raises:
        StorageError: if the database is unavailable.
    """
    today = bank.clock.now().date()
    try:
        with bank.engine.connect() as conn:
            chains = learner_chains(conn, learner_id)
            data = cr.entry_data(conn, [c.current_index for c in chains])
    except SQLAlchemyError as e:
        raise StorageError(f"cannot read records: {type(e).__name__}") from e
    registry = bank.ledger.registry()
    catalog = _Catalog.of(current_rules(bank))
    out = []
    for ch in chains:
        entry = json.loads(data[ch.current_index])
        body = entry.get("body") or {}
        content = content_of(body, catalog)
        raw_payload = body.get("payload")
        payload: dict[str, Any] = raw_payload if isinstance(raw_payload, dict) else {}
        out.append(
            {
                "owner": ch.owner,
                "record_id": ch.root_record_id,
                "current_record_id": ch.current_record_id,
                "current_index": ch.current_index,
                "versions": list(ch.versions),
                "state": _state(ch, ch.kind, payload, today),
                "revoked_on": ch.revoked_on,
                "revocation_reason": ch.revocation_reason,
                "duplicate_of": ch.duplicate_of,
                "institution": _institution(registry, ch.owner),
                "posted_by": str(entry.get("issuer", "")),
                "content": content,
            }
        )
    return out


def content_by_index(bank: Bank, learner_id: str) -> dict[int, dict[str, Any]]:
    """``{current_index: view}`` of :func:`learner_record_views` (for the records API).

    Raises:
        StorageError: if the database is unavailable.
    """
    return {v["current_index"]: v for v in learner_record_views(bank, learner_id)}


def catalogue_names(bank: Bank) -> dict[str, dict[str, tuple[str, str]]]:
    """Display names of programmes and courses in the rules in force: ``{"programs": {id:
    (zh, en)}, "courses": {id: (zh, en)}}`` (empty without a publication)."""
    cat = _Catalog.of(current_rules(bank))
    return {
        "programs": {pid: (v[0], v[1]) for pid, v in cat.programs.items()},
        "courses": dict(cat.courses),
    }
