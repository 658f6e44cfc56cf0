"""Records and learners (docs/api-records.md): post signed record entries, resolve learners, read.

* ``POST /api/v1/records`` (institution token): an atomic batch of signed entries. The body is
  parsed strictly by :func:`creditbank.service.posting.parse_post_request` (duplicate
  keys, floats, non-UTF-8, oversize → problem+json with stable codes); each entry object is
  re-encoded with JCS, which reproduces exactly the bytes its issuer signed. 201 if anything
  was appended, 200 if every entry was already in the log (idempotent re-post).
* ``POST /api/v1/learners/resolve`` (institution token): identity document + name → learner
  id and name-commitment salt; a malformed document is a 422 ``identity.*`` problem.
* ``POST /api/v1/learners/resolve-batch`` (institution token): up to 1,000 of those in one
  transaction; each result is the learner or the item's ``{"error": {"code", "detail"}}``
  (an invalid document fails only its own item; nothing is created for it).
* ``GET /api/v1/institutions/{id}/records`` (that institution's token, or its custodian's
  once it is closed): its records by ledger index, paginated.
* ``GET /api/v1/learners/{learner_id}/records`` (the learner's token or an auditor): every
  record chain with its current state, the owning institution and the current version's
  content (course, credits, grade, level, hours, dates; :mod:`creditbank.service.record_views`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from creditbank.api.deps import (
    BankDep,
    CommitterDep,
    JsonBody,
    Principal,
    PrincipalDep,
    WriteLimit,
)
from creditbank.api.routes.log import Decimal
from creditbank.api.schemas import (
    LearnerRecords,
    LearnerResolve,
    LearnerResolveBatch,
    LearnerResolved,
    LearnerResolvedBatch,
    RecordPage,
    RecordResult,
    RecordsCreate,
    RecordsPosted,
)
from creditbank.core import policy
from creditbank.core.canonical import parse_json_strict
from creditbank.core.signing import b64encode
from creditbank.errors import InvalidInputError, TooLargeError
from creditbank.service import learners, posting, record_listing
from creditbank.service.bank import Bank
from creditbank.service.ledger import AppendOutcome
from creditbank.service.record_views import content_by_index
from creditbank.service.records import ResolvedLearner

router = APIRouter(tags=["records"])

_PROBLEM: Final[dict[str, Any]] = {"content": {"application/problem+json": {}}}

def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: _PROBLEM for s in statuses}


#: what the POST routes can answer besides success: bad JSON or shape (400), no or a bad token
#: (401), another kind of token or institution (403), body too large (413), not JSON (415),
#: refused content (422), too many writes (429), database unavailable (503)
_WRITE_ERRORS: Final = _errors(400, 401, 403, 413, 415, 422, 429, 503)
_POST_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"model": RecordsPosted, "description": "every entry was already in the log"},
    **_WRITE_ERRORS,
    409: _PROBLEM,
}
_RESOLVE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    201: {"model": LearnerResolved, "description": "a new learner"},
    **_WRITE_ERRORS,
}
_LIST_ERRORS: Final = _errors(400, 401, 403, 503)
_LEARNER_ERRORS: Final = _errors(400, 401, 403, 404, 503)


def _inline_schema(model: type[Any]) -> dict[str, Any]:
    """A model's JSON Schema with its ``$defs`` inlined, for an OpenAPI ``requestBody``
    written by hand (a ``#/$defs/…`` reference would not resolve inside the OpenAPI
    document)."""
    schema: dict[str, Any] = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    out: dict[str, Any] = resolve(schema)
    return out

InstitutionIdPath = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$", description="institution id")
]
LearnerIdPath = Annotated[
    str, Path(pattern=r"^LRN-[0-9A-Z]{16,32}$", description="the bank's learner id")
]


def _institution(who: Principal, action: policy.Action) -> str:
    """The institution a token speaks for, if the policy lets it do ``action``.

    Raises:
        AuthError: ``auth.required`` without a token.
        ForbiddenError: ``auth.forbidden`` for any other kind of token.
    """
    return policy.acting_subject(who, action)


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refused as soon as it exceeds ``limit`` bytes.

    Raises:
        TooLargeError: ``input.too_large``.
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLargeError(f"request body of {length} bytes exceeds {limit}")
    chunks: list[bytes] = []
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise TooLargeError(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _post(bank: Bank, caller: str, data: bytes, submit: posting.Submit) -> list[AppendOutcome]:
    return posting.post_records(bank, caller, posting.parse_post_request(data), submit=submit)


@router.post(
    "/records",
    status_code=201,
    response_model=RecordsPosted,
    responses=_POST_RESPONSES,
    summary="Post an atomic batch of signed record entries (institution token)",
    dependencies=[JsonBody, WriteLimit],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(RecordsCreate)}},
        }
    },
)
async def post_records(
    request: Request, bank: BankDep, who: PrincipalDep, committer: CommitterDep
) -> JSONResponse:
    caller = _institution(who, policy.Action.RECORDS_POST)
    data = await _read_body(request, posting.MAX_POST_BYTES)
    outcomes = await run_in_threadpool(_post, bank, caller, data, committer.submit)
    posted = RecordsPosted(
        results=[
            RecordResult(index=o.index, leaf_hash=b64encode(o.leaf_hash), duplicate=o.duplicate)
            for o in outcomes
        ]
    )
    status = 201 if any(not o.duplicate for o in outcomes) else 200
    return JSONResponse(posted.model_dump(), status_code=status)


def _parse_resolve(data: bytes) -> LearnerResolve:
    doc = parse_json_strict(data, max_size=learners.MAX_SMALL_BODY)
    try:
        return LearnerResolve.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInputError(f"{where}: {first['msg']}", code="request.invalid") from e


@router.post(
    "/learners/resolve",
    response_model=LearnerResolved,
    responses=_RESOLVE_RESPONSES,
    summary="Map an identity document and name to the learner id and salt (institution token)",
    dependencies=[JsonBody, WriteLimit],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(LearnerResolve)}},
        }
    },
)
async def resolve_learner(request: Request, bank: BankDep, who: PrincipalDep) -> JSONResponse:
    _institution(who, policy.Action.LEARNERS_RESOLVE)
    data = await _read_body(request, learners.MAX_SMALL_BODY)
    req = _parse_resolve(data)

    def run() -> ResolvedLearner:
        return learners.resolve(
            bank,
            name=req.name,
            doc_type=req.id_type,
            number=req.id_number,
            nationality=req.nationality,
        )

    got = await run_in_threadpool(run)
    out = LearnerResolved(learner_id=got.learner_id, salt=got.salt_b64, created=got.created)
    return JSONResponse(out.model_dump(), status_code=201 if got.created else 200)


def _parse_resolve_batch(data: bytes) -> LearnerResolveBatch:
    doc = parse_json_strict(data, max_size=learners.MAX_RESOLVE_BATCH_BYTES)
    items = doc.get("learners") if isinstance(doc, dict) else None
    if isinstance(items, list) and len(items) > learners.MAX_RESOLVE_BATCH:
        raise TooLargeError(
            f"{len(items)} learners; at most {learners.MAX_RESOLVE_BATCH} per request"
        )
    try:
        return LearnerResolveBatch.model_validate(doc)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInputError(f"{where}: {first['msg']}", code="request.invalid") from e


@router.post(
    "/learners/resolve-batch",
    response_model=LearnerResolvedBatch,
    responses=_WRITE_ERRORS,
    dependencies=[JsonBody, WriteLimit],
    summary="Resolve up to 1,000 identity documents and names in one transaction "
    "(institution token); per-item errors",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(LearnerResolveBatch)}},
        }
    },
)
async def resolve_learners_batch(
    request: Request, bank: BankDep, who: PrincipalDep
) -> JSONResponse:
    _institution(who, policy.Action.LEARNERS_RESOLVE)
    data = await _read_body(request, learners.MAX_RESOLVE_BATCH_BYTES)
    req = _parse_resolve_batch(data)
    queries = [
        learners.LearnerQuery(q.name, q.id_type, q.id_number, q.nationality) for q in req.learners
    ]
    got = await run_in_threadpool(learners.resolve_batch, bank, queries)
    results: list[dict[str, Any]] = []
    for g in got:
        if isinstance(g, InvalidInputError):
            results.append({"error": {"code": g.code, "detail": g.message}})
        else:
            results.append({"learner_id": g.learner_id, "salt": g.salt_b64, "created": g.created})
    return JSONResponse({"results": results})


@router.get(
    "/institutions/{institution_id}/records",
    responses=_LIST_ERRORS,
    summary="An institution's own records by ledger index (its token; its custodian's once closed)",
)
def list_institution_records(
    institution_id: InstitutionIdPath,
    bank: BankDep,
    who: PrincipalDep,
    after: Annotated[
        int | None, Query(ge=0, description="ledger index to continue after"), Decimal
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=record_listing.MAX_PAGE), Decimal
    ] = record_listing.DEFAULT_PAGE,
) -> RecordPage:
    caller = _institution(who, policy.Action.INSTITUTION_RECORDS_LIST)
    page = record_listing.list_records(
        bank, caller, institution_id, after=-1 if after is None else after, limit=limit
    )
    return RecordPage.model_validate({"records": page.records, "next_after": page.next_after})


@router.get(
    "/learners/{learner_id}/records",
    responses=_LEARNER_ERRORS,
    summary="A learner's record chains with their current state (the learner's token or an "
    "auditor)",
)
def get_learner_records(
    learner_id: LearnerIdPath, bank: BankDep, who: PrincipalDep
) -> LearnerRecords:
    policy.authorize(
        who,
        policy.Action.LEARNER_RECORDS_READ,
        policy.LearnerData(learner_id),
        message="only the learner or an auditor reads these records",
    )
    chains = learners.learner_records(bank, learner_id)
    views = content_by_index(bank, learner_id)  # content and state (issue #10 item 5)
    return LearnerRecords.model_validate(
        {
            "learner_id": learner_id,
            "chains": [
                c.as_dict()
                | {k: views[c.current_index][k] for k in ("state", "institution", "content")}
                for c in chains
            ],
        }
    )
