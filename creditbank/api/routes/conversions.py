"""Conversions (docs/conversion-service.md): a learner applies, reads decisions and previews.

* ``POST /api/v1/me/applications`` (learner token): ``{"program_id"}`` for a credit conversion
  or ``{"certificate_type_id"}`` for an exam exemption, decided today and recorded as a
  ``conversion.decided`` ledger entry; 201 with the decision and its explanations. With an
  ``Idempotency-Key`` header a retry is answered 200 with the original decision
  (``Idempotent-Replayed: true``); the same key for another target is a 422. Applications are
  rate-limited per learner (429 with ``Retry-After``): a repeated application stays a
  legitimate decision, only its rate is limited.
* ``GET /api/v1/me/applications`` and ``GET /api/v1/me/applications/{id}`` (learner token):
  the learner's own decisions with grant status (voids) and zh/en explanations; another
  learner's application is answered 404, as if it did not exist.
* ``GET /api/v1/me/what-if?program_id=…`` (or ``certificate_type_id``): what an application
  would get today; nothing is recorded.
* ``GET /api/v1/rules``: the rule set in force (public, like every bank-authored entry).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import JSONResponse

from creditbank.api.deps import BankDep, JsonBody, Principal, PrincipalDep, WriteLimit
from creditbank.api.schemas import ApplicationCreate, ApplicationList, ApplicationOut
from creditbank.core import policy
from creditbank.errors import NotFoundError
from creditbank.service import conversion

router = APIRouter(tags=["conversions"])

_PROBLEM: Final[dict[str, Any]] = {"content": {"application/problem+json": {}}}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    s: _PROBLEM for s in (400, 401, 403, 404, 409, 422, 503)
}
_READ_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    s: _PROBLEM for s in (400, 401, 403, 404, 503)
}
_APPLY_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "model": ApplicationOut,
        "description": "a retry with the same Idempotency-Key: the original decision",
    },
    **{s: _PROBLEM for s in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)},
}
#: an ``Idempotency-Key``: 1-200 visible ASCII characters
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="a retry with the same key returns the original decision",
    ),
]
IdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$", description="application id")
]
TargetQuery = Annotated[str | None, Query(min_length=1, max_length=64)]


def _learner(who: Principal, action: policy.Action) -> str:
    """The learner a token speaks for, if the policy lets it do ``action``.

    Raises:
        AuthError: ``auth.required`` without a token.
        ForbiddenError: ``auth.forbidden`` for any other kind of token.
    """
    return policy.acting_subject(who, action)


@router.post(
    "/me/applications",
    status_code=201,
    response_model=ApplicationOut,
    responses=_APPLY_RESPONSES,
    summary="Apply for credit conversion (program_id) or an exam exemption (learner token)",
    dependencies=[JsonBody, WriteLimit],
)
def create_application(
    req: ApplicationCreate,
    bank: BankDep,
    who: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    learner = _learner(who, policy.Action.CONVERSION_APPLY)
    view, created = conversion.submit_application(
        bank,
        learner,
        program_id=req.program_id,
        certificate_type_id=req.certificate_type_id,
        idempotency_key=idempotency_key,
    )
    body = ApplicationOut.model_validate(view).model_dump(mode="json")
    headers = None if created else {"Idempotent-Replayed": "true"}
    return JSONResponse(body, status_code=201 if created else 200, headers=headers)


@router.get(
    "/me/applications",
    response_model=ApplicationList,
    responses=_READ_ERRORS,
    summary="The learner's decided applications, with explanations (learner token)",
)
def list_applications(bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who, policy.Action.CONVERSION_READ)
    return {"applications": conversion.list_applications(bank, learner)}


@router.get(
    "/me/applications/{application_id}",
    response_model=ApplicationOut,
    responses=_READ_ERRORS,
    summary="One of the learner's applications: grants, status, zh/en explanations",
)
def get_application(application_id: IdPath, bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who, policy.Action.CONVERSION_READ)
    return conversion.application_view(bank, application_id, learner_id=learner)


@router.get(
    "/me/what-if",
    response_model=ApplicationOut,
    responses=_ERRORS,
    summary="Preview what an application would grant today; records nothing (learner token)",
)
def what_if(
    bank: BankDep,
    who: PrincipalDep,
    program_id: TargetQuery = None,
    certificate_type_id: TargetQuery = None,
) -> dict[str, Any]:
    learner = _learner(who, policy.Action.CONVERSION_PREVIEW)
    return conversion.what_if(
        bank, learner, program_id=program_id, certificate_type_id=certificate_type_id
    )


@router.get(
    "/rules",
    responses={s: _PROBLEM for s in (404, 503)},
    summary="The conversion rules in force and the catalogue they use (public)",
)
def get_rules(bank: BankDep) -> dict[str, Any]:
    ruleset = conversion.current_rules(bank)
    if ruleset is None:
        raise NotFoundError("no rules are published yet", code="conversion.no_rules")
    return {
        "entry_index": ruleset.entry_index,
        "published_at": ruleset.published_at,
        **ruleset.publication.body(),
    }
