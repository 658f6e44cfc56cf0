"""Record bodies of ``record.posted``, ``record.corrected`` and ``record.revoked`` entries.

The wire format is defined by the JSON Schema 2020-12 files shipped in ``creditbank/schemas/``
(``schemas/`` at the repository root is a symlink to it): one file per record kind's payload,
``record-posted.v1`` (the common body, dispatching on ``kind``), ``record-correction.v1`` and
``record-revocation.v1``. :func:`validate_record_body` enforces them (writers are strict:
``additionalProperties: false`` everywhere, integers only) and adds what JSON Schema cannot
say: a date is not before another, and no date lies after ``today``, which the caller passes in
(the core has no clock).

No personal data goes into a body (docs/trust-model.md): ``learner`` is the bank's opaque id and the
name on record is bound only by ``name_commitment`` (see :mod:`creditbank.core.identity`).

The module also converts records of the bundled synthetic sample (``outcomes.json``) into
bodies: credits become integer hundredths exactly (``1.5`` → ``150``), skill certificates gain
the occupation and level of their certificate type, ``sha256:`` evidence prefixes are dropped.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

import fastjsonschema
import jsonschema.validators
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from creditbank.core.canonical import MAX_SAFE_INT
from creditbank.errors import InvalidInputError

SCHEMA_BASE_URI: Final = "https://creditbank.localhost/schemas/"
SCHEMA_FILE_RE: Final = re.compile(r"^[a-z][a-z0-9-]*\.v[1-9][0-9]*\.schema\.json$")

RECORD_KINDS: Final = (
    "academic_credit",
    "skill_certificate",
    "training_hours",
    "competition_award",
    "work_experience",
)
#: The body schema of each record entry type.
ENTRY_SCHEMAS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "record.posted": "record-posted.v1.schema.json",
        "record.corrected": "record-correction.v1.schema.json",
        "record.revoked": "record-revocation.v1.schema.json",
    }
)
#: The body schema of each bank-authored entry type (registry, rules, conversion, transcript),
#: and the code a body that does not match it is refused with.
BANK_ENTRY_SCHEMAS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "institution.registered": "institution-registered.v1.schema.json",
        "institution.key_added": "institution-key-added.v1.schema.json",
        "institution.key_revoked": "institution-key-revoked.v1.schema.json",
        "institution.closed": "institution-closed.v1.schema.json",
        "rules.published": "rules-published.v1.schema.json",
        "conversion.decided": "conversion-decided.v1.schema.json",
        "conversion.voided": "conversion-voided.v1.schema.json",
        "transcript.issued": "transcript-issued.v1.schema.json",
        "transcript.revoked": "transcript-revoked.v1.schema.json",
    }
)
BANK_SCHEMA_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "institution": "registry.schema",
        "rules": "rules.schema",
        "conversion": "conversion.schema",
        "transcript": "transcript.schema",
    }
)
#: The payload schema of each record kind.
PAYLOAD_SCHEMAS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "academic_credit": "record-academic-credit.v1.schema.json",
        "skill_certificate": "record-skill-certificate.v1.schema.json",
        "training_hours": "record-training-hours.v1.schema.json",
        "competition_award": "record-competition-award.v1.schema.json",
        "work_experience": "record-work-experience.v1.schema.json",
    }
)

_MAX_REPORTED_ERRORS: Final = 20


# --- schema loading ----------------------------------------------------------------------
@functools.cache
def _documents() -> Mapping[str, Mapping[str, Any]]:
    """Read every packaged ``*.schema.json`` once (the only files the core reads)."""
    root = resources.files("creditbank").joinpath("schemas")
    docs: dict[str, Mapping[str, Any]] = {}
    for item in root.iterdir():
        if not item.name.endswith(".schema.json"):
            continue
        doc = json.loads(item.read_text(encoding="utf-8"))
        if doc.get("$id") != SCHEMA_BASE_URI + item.name:  # pragma: no cover - packaging bug
            raise RuntimeError(f"schema {item.name} has $id {doc.get('$id')!r}")
        docs[item.name] = MappingProxyType(doc)
    wanted = set(ENTRY_SCHEMAS.values()) | set(PAYLOAD_SCHEMAS.values())
    missing = (wanted | set(BANK_ENTRY_SCHEMAS.values())) - set(docs)
    if missing:  # pragma: no cover - packaging bug
        raise RuntimeError(f"entry body schemas missing from the package: {sorted(missing)}")
    return MappingProxyType(docs)


def schema_names() -> tuple[str, ...]:
    """Names of the packaged schema files, sorted.

    Raises:
        RuntimeError: if the package lacks an entry body schema (a packaging bug).
    """
    return tuple(sorted(_documents()))


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of one packaged schema document, e.g. to publish it.

    Raises:
        InvalidInputError: if there is no schema of that name (code ``record.unknown_schema``).
    """
    doc = _documents().get(name)
    if doc is None:
        raise InvalidInputError(f"no schema named {name!r}", code="record.unknown_schema")
    copy: dict[str, Any] = json.loads(json.dumps(dict(doc)))
    return copy


def _for_validation(doc: Mapping[str, Any]) -> dict[str, Any]:
    # jsonschema picks the validator class of a referenced document by its "$schema"
    # (``evolve`` → ``validator_for``), which would swap our strict class for the stock one
    # inside every payload schema. All our files are Draft 2020-12 (a test checks it), so the
    # in-memory copies used for validation drop "$schema" and the dialect is set explicitly.
    return {k: v for k, v in doc.items() if k != "$schema"}


@functools.cache
def _registry() -> Registry[Any]:
    resources_ = [
        (SCHEMA_BASE_URI + name, DRAFT202012.create_resource(_for_validation(doc)))
        for name, doc in _documents().items()
    ]
    registry: Registry[Any] = Registry().with_resources(resources_)
    return registry.crawl()


def _is_integer(checker: object, instance: object) -> bool:
    # Draft 2020-12 counts 2.0 as an integer; we never accept a float (JCS, exact credits).
    return isinstance(instance, int) and not isinstance(instance, bool)


@functools.cache
def _compiled_pattern(pattern: str) -> re.Pattern[str]:
    # ECMA-262 ``$`` (no multiline flag) matches only at the very end; Python's also matches
    # before a final newline, which would let "LRN-…\n" through. Anchor as ECMA does.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    validator: Any, pattern: str, instance: object, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _compiled_pattern(pattern).search(instance):
        yield ValidationError(f"does not match {pattern}")


_StrictValidator: Any = jsonschema.validators.extend(
    Draft202012Validator,
    validators={"pattern": _pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@functools.cache
def _validator(name: str) -> Any:
    """The compiled, cached validator of one schema."""
    doc = _documents()[name]
    Draft202012Validator.check_schema(dict(doc))
    return _StrictValidator(
        _for_validation(doc),
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


# --- fast path ---------------------------------------------------------------------------
# jsonschema resolves every $ref and if/then on each call (~0.5 ms per body). For the common
# case, a valid body, the same schema — with every $ref inlined — is compiled to Python by
# fastjsonschema (~20x faster). A body the fast validator refuses, or one holding a float
# (fastjsonschema counts 2.0 as an integer), goes to the jsonschema path, which is
# authoritative and words the error. Tests keep the two in agreement on every sample body and
# every bad-input case.
def _inline(node: Any, resolver: Any, depth: int = 0) -> Any:
    if depth > 50:
        raise RuntimeError("schema references nest too deeply")
    if isinstance(node, dict):
        out = {
            k: _inline(v, resolver, depth + 1)
            for k, v in node.items()
            if k not in ("$ref", "$defs", "$schema", "$id")
        }
        ref = node.get("$ref")
        if isinstance(ref, str):
            resolved = resolver.lookup(ref)
            target = _inline(resolved.contents, resolved.resolver, depth + 1)
            if not out:
                return target
            return {"allOf": [target, out]}
        return out
    if isinstance(node, list):
        return [_inline(v, resolver, depth + 1) for v in node]
    return node


def _check_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


@functools.cache
def _fast_validator(name: str) -> Any:
    """The schema with every $ref inlined, compiled by fastjsonschema."""
    resolver = _registry().resolver(base_uri=SCHEMA_BASE_URI + name)
    flat = _inline(_for_validation(_documents()[name]), resolver)
    return fastjsonschema.compile(flat, formats={"date": _check_date}, use_default=False)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def fast_accepts(entry_type: str, body: Mapping[str, Any]) -> bool:
    """True if the compiled fast validator accepts the body (no wording, no semantics)."""
    name = ENTRY_SCHEMAS.get(entry_type) or BANK_ENTRY_SCHEMAS.get(entry_type)
    if name is None or _has_float(body):
        return False
    try:
        _fast_validator(name)(dict(body))
    except fastjsonschema.JsonSchemaException:
        return False
    return True


# --- validation --------------------------------------------------------------------------
def _describe(error: ValidationError) -> str:
    """Say what is wrong without echoing the offending value (it may be personal data)."""
    v, want = error.validator, error.validator_value
    if v in ("required", "additionalProperties", "dependentRequired"):
        return str(error.message)
    simple = {
        "type": f"must be of type {want}",
        "pattern": f"must match {want}",
        "format": f"must be a valid {want}",
        "enum": f"must be one of {want}",
        "const": f"must be {want!r}",
        "minimum": f"must be at least {want}",
        "maximum": f"must be at most {want}",
        "minLength": f"must be at least {want} characters long",
        "maxLength": f"must be at most {want} characters long",
    }
    return simple.get(str(v), f"fails the {v} constraint")


def _error_code(error: ValidationError) -> str:
    path = list(error.absolute_path)
    if path == ["payload", "credits_centi"]:
        return "record.credits"
    if path == ["payload", "level"] and error.validator in ("minimum", "maximum"):
        return "record.level_range"
    return "record.schema"


def _error_key(error: ValidationError) -> tuple[tuple[str, ...], str]:
    return tuple(str(p) for p in error.absolute_path), str(error.validator)


def _date(text: str) -> date:
    # Only called on schema-checked values: the "date" format has already parsed them.
    return date.fromisoformat(text)


def validate_record_body(entry_type: str, body: Mapping[str, Any], *, today: date) -> None:
    """Check a record entry body against its schema and the rules schemas cannot express.

    Beyond the schema: ``expires_on`` is not before ``issued_on``; ``end_on`` is not before
    ``start_on``; a correction does not correct itself; and no date except ``expires_on`` is
    after ``today`` (``achieved_on``, ``posted_at``, ``issued_on``, ``start_on``, ``end_on``,
    ``effective_on``). Pass ``date.max`` as ``today`` to skip the last check deliberately.

    Args:
        entry_type: ``record.posted``, ``record.corrected`` or ``record.revoked``.
        body: the entry's ``body`` object.
        today: the date the body is judged on (the service's clock, or the entry's ``at``).

    Raises:
        InvalidInputError: with ``code`` ``record.entry_type`` (not a record entry type),
            ``record.schema`` (schema violation; the message names the JSON path),
            ``record.credits`` (``credits_centi`` not an integer ≥ 0 in range),
            ``record.level_range`` (``level`` outside 1–5), ``record.expiry_before_issue``,
            ``record.end_before_start``, ``record.self_correction`` or
            ``record.future_date``. ``extra["path"]`` holds the JSON path and
            ``extra["errors"]`` every schema violation found (up to 20).
    """
    schema_name = ENTRY_SCHEMAS.get(entry_type)
    if schema_name is None:
        raise InvalidInputError(
            f"{entry_type!r} is not a record entry type", code="record.entry_type"
        )
    if not isinstance(body, Mapping):
        raise InvalidInputError(
            "record body invalid at $: must be of type object", code="record.schema", path="$"
        )
    instance = dict(body)
    if fast_accepts(entry_type, instance):
        _check_semantics(entry_type, instance, today)
        return
    _refuse_violations(schema_name, instance, "record", _error_code)
    _check_semantics(entry_type, instance, today)


def validate_bank_body(entry_type: str, body: Mapping[str, Any]) -> None:
    """Check the body of a bank-authored entry against its schema (:data:`BANK_ENTRY_SCHEMAS`).

    The same machinery as :func:`validate_record_body` (strict integers, ECMA anchors, the
    compiled fast path for valid bodies). Only the shape is checked here: what needs state (a
    key id derived from its public key, a registered custodian, rules that fit the catalogue)
    stays with the registry and the conversion service.

    Raises:
        InvalidInputError: ``registry.schema`` (``institution.*``), ``rules.schema``
            (``rules.published``) or ``conversion.schema`` (``conversion.*``) if the body does
            not match; the message names the JSON path, ``extra["path"]`` holds it and
            ``extra["errors"]`` every violation found (up to 20). ``entry.no_schema`` if
            ``entry_type`` is not a bank-authored type with a schema.
    """
    schema_name = BANK_ENTRY_SCHEMAS.get(entry_type)
    if schema_name is None:
        raise InvalidInputError(
            f"{entry_type!r} is not a bank-authored entry type with a schema",
            code="entry.no_schema",
        )
    code = BANK_SCHEMA_CODES[entry_type.split(".", 1)[0]]
    if not isinstance(body, Mapping):
        raise InvalidInputError(
            f"{entry_type} body invalid at $: must be of type object", code=code, path="$"
        )
    instance = dict(body)
    if fast_accepts(entry_type, instance):
        return
    _refuse_violations(schema_name, instance, entry_type, lambda _: code)


def _refuse_violations(
    schema_name: str,
    instance: Mapping[str, Any],
    what: str,
    code_of: Callable[[ValidationError], str],
) -> None:
    """Raise if ``instance`` breaks the schema: the message names the best-matching violation
    (``{what} body invalid at {path}: …``), ``errors`` lists the first
    :data:`_MAX_REPORTED_ERRORS` in path order, each with its ``code_of`` code.

    Raises:
        InvalidInputError: ``code_of`` the best-matching violation.
    """
    errors = sorted(_validator(schema_name).iter_errors(instance), key=_error_key)
    if errors:
        primary = best_match(errors)
        raise InvalidInputError(
            f"{what} body invalid at {primary.json_path}: {_describe(primary)}",
            code=code_of(primary),
            path=primary.json_path,
            errors=[
                {"path": e.json_path, "code": code_of(e), "message": _describe(e)}
                for e in errors[:_MAX_REPORTED_ERRORS]
            ],
        )


def _check_semantics(entry_type: str, body: Mapping[str, Any], today: date) -> None:
    dated: list[tuple[str, date]] = []
    if entry_type == "record.revoked":
        dated.append(("$.effective_on", _date(body["effective_on"])))
    else:
        if entry_type == "record.corrected" and body["corrects"] == body["record_id"]:
            raise InvalidInputError(
                "$.corrects: a record cannot correct itself",
                code="record.self_correction",
                path="$.corrects",
            )
        dated.append(("$.achieved_on", _date(body["achieved_on"])))
        if "posted_at" in body:
            dated.append(("$.posted_at", _date(body["posted_at"])))
        payload = body["payload"]
        if body["kind"] == "skill_certificate":
            issued = _date(payload["issued_on"])
            dated.append(("$.payload.issued_on", issued))
            expires = payload["expires_on"]
            if expires is not None and _date(expires) < issued:
                raise InvalidInputError(
                    f"$.payload.expires_on: {expires} is before issued_on {payload['issued_on']}",
                    code="record.expiry_before_issue",
                    path="$.payload.expires_on",
                )
        elif body["kind"] == "work_experience":
            start, end = _date(payload["start_on"]), _date(payload["end_on"])
            if end < start:
                raise InvalidInputError(
                    f"$.payload.end_on: {end} is before start_on {start}",
                    code="record.end_before_start",
                    path="$.payload.end_on",
                )
            dated += [("$.payload.start_on", start), ("$.payload.end_on", end)]
    for path, day in dated:
        if day > today:
            raise InvalidInputError(
                f"{path}: {day.isoformat()} is after today ({today.isoformat()})",
                code="record.future_date",
                path=path,
            )


# --- the bundled sample's records ----------------------------------------------------------
def credits_to_centi(credits: object) -> int:
    """Convert a credit amount (``4``, ``1.5``, ``Decimal("0.25")``) to integer hundredths.

    Floats are read through their shortest decimal representation, so ``1.5`` is 150 and
    ``0.1`` is 10; an amount that is not a whole number of hundredths is refused, never rounded.

    Raises:
        InvalidInputError: ``record.credits`` if the value is not a finite non-negative number
            (booleans and strings are not numbers) or not exact in hundredths.
    """
    if isinstance(credits, bool) or not isinstance(credits, int | float | Decimal):
        raise InvalidInputError("credits must be a number", code="record.credits")
    if isinstance(credits, float) and not math.isfinite(credits):
        raise InvalidInputError("credits must be finite", code="record.credits")
    try:
        amount = Decimal(str(credits)) if isinstance(credits, float) else Decimal(credits)
        centi = amount * 100
        exact = amount.is_finite() and centi == centi.to_integral_value()
    except InvalidOperation as e:  # pragma: no cover - Decimal traps on exotic contexts only
        raise InvalidInputError("credits must be a number", code="record.credits") from e
    if not exact:
        raise InvalidInputError(
            f"credits {credits} are not a whole number of hundredths", code="record.credits"
        )
    if centi < 0 or centi > MAX_SAFE_INT:
        raise InvalidInputError(f"credits {credits} out of range", code="record.credits")
    return int(centi)


def _sample_field(mapping: object, key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise InvalidInputError(f"sample record lacks {where}{key}", code="record.sample")
    return mapping[key]


def complete_payload(kind: str, payload: dict[str, Any], *, achieved_on: str) -> dict[str, Any]:
    """Fill in what a v1 payload takes from its record when the poster leaves it out (the one
    rule for every way records come in: the sample import, the client's CSV): a skill
    certificate is issued on the day it was achieved and does not expire. ``payload`` is
    completed in place and returned.
    """
    if kind == "skill_certificate":
        payload.setdefault("issued_on", achieved_on)
        payload.setdefault("expires_on", None)
    return payload


def payload_from_sample(
    outcome: Mapping[str, Any],
    *,
    certificate_types: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Convert a sample outcome's ``payload`` into the v1 payload of its kind.

    academic_credit: ``credits`` becomes ``credits_centi`` (exact integer hundredths).
    skill_certificate: ``occupation``, ``level`` and ``level_label_zh`` come from the
    certificate type (``certificate_types`` keyed by id, as in ``certificate_types.json``);
    ``issued_on`` is the outcome's ``achieved_on``. Other kinds already have the v1 shape.
    Every field of the sample payload is kept, so a field v1 does not know fails validation
    rather than vanishing. The result is not validated here; see :func:`validate_record_body`.

    Raises:
        InvalidInputError: ``record.sample`` (a field is missing), ``record.schema`` (unknown
            kind), ``record.certificate_type`` (type not in ``certificate_types``) or
            ``record.credits`` (see :func:`credits_to_centi`).
    """
    kind = _sample_field(outcome, "kind", "")
    payload = _sample_field(outcome, "payload", "")
    if not isinstance(payload, Mapping):
        raise InvalidInputError("sample payload must be an object", code="record.sample")
    out = dict(payload)
    if kind == "academic_credit":
        out["credits_centi"] = credits_to_centi(_sample_field(payload, "credits", "payload."))
        del out["credits"]
    elif kind == "skill_certificate":
        type_id = _sample_field(payload, "certificate_type_id", "payload.")
        ctype = (certificate_types or {}).get(type_id) if isinstance(type_id, str) else None
        if ctype is None:
            raise InvalidInputError(
                f"unknown certificate type {type_id!r}", code="record.certificate_type"
            )
        out.setdefault("occupation", _sample_field(ctype, "occupation_key", "type."))
        out.setdefault("level", _sample_field(ctype, "level", "type."))
        out.setdefault("level_label_zh", _sample_field(ctype, "level_label_zh", "type."))
        complete_payload(kind, out, achieved_on=_sample_field(outcome, "achieved_on", ""))
    elif kind not in RECORD_KINDS:
        raise InvalidInputError(f"unknown record kind {kind!r}", code="record.schema")
    return out


def record_entry_type_from_sample(outcome: Mapping[str, Any]) -> str:
    """``record.corrected`` for a sample outcome that corrects another, else ``record.posted``.

    Raises:
        InvalidInputError: ``record.sample`` if ``outcome`` is not a mapping.
    """
    if not isinstance(outcome, Mapping):
        raise InvalidInputError("sample record must be an object", code="record.sample")
    return "record.corrected" if outcome.get("corrects") is not None else "record.posted"


def record_body_from_sample(
    outcome: Mapping[str, Any],
    *,
    learner: str,
    name_commitment: str,
    certificate_types: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the ``record.posted`` / ``record.corrected`` body for one sample outcome.

    ``record_id`` is the outcome's ``id``; ``posted_at`` its claimed posting date;
    ``corrects`` is set for corrections (see :func:`record_entry_type_from_sample`);
    ``on_behalf_of`` is the issuer when someone other than the issuer or the learner posted it
    (a custodian posting for a closed institution). The sample's ``learner_id``,
    ``name_on_record``, ``issuer_id``, ``posted_by``, ``note`` and revocation fields stay out
    of the body: the learner is ``learner`` (the bank's opaque id) and the name is bound by
    ``name_commitment`` (:func:`creditbank.core.identity.name_commitment`). Not validated here.

    Raises:
        InvalidInputError: as :func:`payload_from_sample`, or ``record.sample`` if a required
            outcome field is missing.
    """
    body: dict[str, Any] = {
        "record_id": _sample_field(outcome, "id", ""),
        "dedup_key": _sample_field(outcome, "dedup_key", ""),
        "kind": _sample_field(outcome, "kind", ""),
        "learner": learner,
        "achieved_on": _sample_field(outcome, "achieved_on", ""),
        "name_commitment": name_commitment,
        "payload": payload_from_sample(outcome, certificate_types=certificate_types),
    }
    evidence = outcome.get("evidence")
    if evidence is not None:
        digest = _sample_field(evidence, "sha256", "evidence.")
        if isinstance(digest, str) and digest.startswith("sha256:"):
            digest = digest[len("sha256:") :]
        body["evidence"] = {"sha256": digest}
    if outcome.get("posted_at") is not None:
        body["posted_at"] = outcome["posted_at"]
    posted_by, issuer = outcome.get("posted_by"), outcome.get("issuer_id")
    if posted_by is not None and posted_by not in (issuer, outcome.get("learner_id")):
        body["on_behalf_of"] = issuer
    if outcome.get("corrects") is not None:
        body["corrects"] = outcome["corrects"]
    return body


def revocation_body_from_sample(
    outcome: Mapping[str, Any], *, on_behalf_of: str | None = None
) -> dict[str, Any] | None:
    """The ``record.revoked`` body for a sample outcome with ``revoked_at``, else ``None``.

    ``effective_on`` is ``revoked_at`` (the sample's revocations take effect the day they are
    recorded); pass ``on_behalf_of`` when a custodian revokes for a closed institution.

    Raises:
        InvalidInputError: ``record.sample`` if ``outcome`` is not a mapping or lacks ``id``
            or ``revocation_reason``.
    """
    if not isinstance(outcome, Mapping):
        raise InvalidInputError("sample record must be an object", code="record.sample")
    revoked_at = outcome.get("revoked_at")
    if revoked_at is None:
        return None
    body: dict[str, Any] = {
        "record_id": _sample_field(outcome, "id", ""),
        "reason": _sample_field(outcome, "revocation_reason", ""),
        "effective_on": revoked_at,
    }
    if on_behalf_of is not None:
        body["on_behalf_of"] = on_behalf_of
    return body
