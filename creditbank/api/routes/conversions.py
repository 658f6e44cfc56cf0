"""Conversions (DESIGN.md §3, §5): a learner applies, reads decisions and previews.

* ``POST /api/v1/me/applications`` (learner token): ``{"program_id"}`` for a credit conversion
  or ``{"certificate_type_id"}`` for an exam exemption, decided today and recorded as a
  ``conversion.decided`` ledger entry; 201 with the decision and its explanations.
* ``GET /api/v1/me/applications`` and ``GET /api/v1/me/applications/{id}`` (learner token):
  the learner's own decisions with grant status (voids) and zh/en explanations; another
  learner's application is answered 404, as if it did not exist.
* ``GET /api/v1/me/what-if?program_id=…`` (or ``certificate_type_id``): what an application
  would get today; nothing is recorded.
* ``GET /api/v1/rules``: the rule set in force (public, like every bank-authored entry).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query

from creditbank.api.deps import BankDep, Principal, PrincipalDep
from creditbank.api.schemas import ApplicationCreate, ApplicationList, ApplicationOut
from creditbank.errors import AuthError, ForbiddenError, NotFoundError
from creditbank.service import conversion

router = APIRouter(tags=["conversions"])

_PROBLEM: Final[dict[str, Any]] = {"content": {"application/problem+json": {}}}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    s: _PROBLEM for s in (400, 401, 403, 404, 409, 422, 503)
}
IdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$", description="application id")
]
TargetQuery = Annotated[str | None, Query(min_length=1, max_length=64)]


def _learner(who: Principal) -> str:
    """The learner a token speaks for.

    Raises:
        AuthError: ``auth.required`` without a token.
        ForbiddenError: ``auth.forbidden`` for any other kind of token.
    """
    if who.role == "anonymous":
        raise AuthError("this needs a learner token", code="auth.required")
    if who.role != "learner" or who.subject is None:
        raise ForbiddenError(f"a {who.role} token cannot do this", code="auth.forbidden")
    return who.subject


@router.post(
    "/me/applications",
    status_code=201,
    response_model=ApplicationOut,
    responses=_ERRORS,
    summary="Apply for credit conversion (program_id) or an exam exemption (learner token)",
)
def create_application(req: ApplicationCreate, bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    learner = _learner(who)
    return conversion.apply(
        bank, learner, program_id=req.program_id, certificate_type_id=req.certificate_type_id
    )


@router.get(
    "/me/applications",
    response_model=ApplicationList,
    responses=_ERRORS,
    summary="The learner's decided applications, with explanations (learner token)",
)
def list_applications(bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    return {"applications": conversion.list_applications(bank, _learner(who))}


@router.get(
    "/me/applications/{application_id}",
    response_model=ApplicationOut,
    responses=_ERRORS,
    summary="One of the learner's applications: grants, status, zh/en explanations",
)
def get_application(application_id: IdPath, bank: BankDep, who: PrincipalDep) -> dict[str, Any]:
    return conversion.application_view(bank, application_id, learner_id=_learner(who))


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
    return conversion.what_if(
        bank, _learner(who), program_id=program_id, certificate_type_id=certificate_type_id
    )


@router.get(
    "/rules",
    responses=_ERRORS,
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
