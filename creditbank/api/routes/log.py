"""The transparency-log endpoints (README.md): checkpoint, key, leaf hashes, entries, proofs.

Everything here is public except record, conversion and transcript entries (docs/trust-model.md),
which need a token the policy allows (:mod:`creditbank.core.policy`, ``ENTRY_READ``): an
auditor's, the learner's (the entry's subject), or that of an institution entitled to the
entry (its issuer, the owner named in ``on_behalf_of``, or that owner's custodian). Proofs are
served only against published checkpoint sizes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BeforeValidator
from starlette.types import Scope
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from creditbank.api.deps import ANONYMOUS, BankDep, PrincipalDep
from creditbank.api.hot import HotHandler, json_response, query_ints
from creditbank.api.reads import get_log_reads
from creditbank.core import policy
from creditbank.core.entries import MEDIA_TYPE, PRIVATE_TYPES
from creditbank.core.merkle import MAX_TREE_SIZE
from creditbank.core.signing import b64encode
from creditbank.errors import ForbiddenError, InvalidInputError
from creditbank.service.envelopes import entries_at, envelopes
from creditbank.service.log_reads import LogReads
from creditbank.service.record_listing import entry_resource

router = APIRouter(prefix="/log", tags=["log"])
#: the log's hot reads, included by the app before every other router (routes are matched in
#: order of registration, and each included router is scanned per request)
hot_router = APIRouter(prefix="/log", tags=["log"])

#: leaf hashes returned by one request at most (the ledger enforces the same bound)
MAX_LEAF_HASHES: Final = 10_000

_PROBLEM: Final[dict[str, Any]] = {"content": {"application/problem+json": {}}}
_TEXT: Final[dict[str, Any]] = {"content": {"text/plain": {}}}

_DECIMAL: Final = re.compile(r"[0-9]{1,19}")


def _decimal(value: object) -> object:
    """Accept only plain ASCII decimal digits (no sign, point, exponent, space or ``_``)."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value) is None:
        raise ValueError("must be a non-negative decimal integer below 2**63")
    return value


#: a strict non-negative integer path or query parameter
Decimal = BeforeValidator(_decimal)

IndexParam = Annotated[
    int, Query(ge=0, le=MAX_TREE_SIZE, description="leaf index (0-based)"), Decimal
]
# (Decimal goes after Query/Path, or the bounds vanish from the OpenAPI schema)
SizeParam = Annotated[
    int | None,
    Query(ge=1, le=MAX_TREE_SIZE, description="a published tree size; default the latest"),
    Decimal,
]


class LeafHashes(TypedDict):
    start: int
    end: int
    leaf_hashes: list[str]


class Envelope(TypedDict):
    index: int
    type: str | None
    issuer: str | None
    key_id: str | None
    at: str | None
    on_behalf_of: str | None
    leaf_hash: str


class Envelopes(TypedDict):
    start: int
    end: int
    envelopes: list[Envelope]


class InclusionProof(TypedDict):
    index: int
    size: int
    leaf_hash: str
    path: list[str]


class ConsistencyProof(TypedDict):
    first: int
    second: int
    path: list[str]


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={200: _TEXT, 404: _PROBLEM},
    summary="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)",
)
def get_checkpoint(bank: BankDep) -> PlainTextResponse:
    cp = bank.ledger.latest_checkpoint()
    return PlainTextResponse(cp.note, headers={"Cache-Control": "no-cache"})


@router.get(
    "/key",
    response_class=PlainTextResponse,
    responses={200: _TEXT},
    summary="The log's verifier key, name+hex8+base64 (C2SP signed-note)",
)
def get_key(bank: BankDep) -> PlainTextResponse:
    return PlainTextResponse(bank.verifier_key)


@router.get(
    "/leaf-hashes",
    responses={400: _PROBLEM},
    summary="Leaf hashes [start, end) within the latest published size (for monitors)",
)
def get_leaf_hashes(
    bank: BankDep,
    start: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE), Decimal],
    end: Annotated[int, Query(ge=1, le=MAX_TREE_SIZE), Decimal],
) -> LeafHashes:
    hashes = bank.ledger.leaf_hashes(start, end)
    return {"start": start, "end": end, "leaf_hashes": [b64encode(h) for h in hashes]}


@router.get(
    "/envelopes",
    responses={400: _PROBLEM},
    summary="Entry envelopes [start, end): type, issuer, key_id, at, on_behalf_of, leaf hash "
    "(no body, no subject; for monitors)",
)
def get_envelopes(
    bank: BankDep,
    start: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE), Decimal],
    end: Annotated[int, Query(ge=1, le=MAX_TREE_SIZE), Decimal],
) -> Envelopes:
    # public and metadata-only (docs/monitor.md): read from the stored bytes, at most
    # 1,000 per request (service.envelopes.MAX_ENVELOPES), within the published size
    items: list[Any] = envelopes(bank, start, end)
    return {"start": start, "end": end, "envelopes": items}


@router.get(
    "/entries/{index}",
    response_class=Response,
    responses={
        200: {"content": {MEDIA_TYPE: {}}, "description": "the exact stored entry bytes"},
        401: _PROBLEM,
        403: _PROBLEM,
        404: _PROBLEM,
    },
    summary="One entry's exact bytes; record, conversion and transcript entries need a token",
)
def get_entry(
    index: Annotated[int, Path(ge=0, le=MAX_TREE_SIZE), Decimal],
    bank: BankDep,
    who: PrincipalDep,
) -> Response:
    row = bank.ledger.entry(index)
    entry = policy.LogEntry(row.type, row.subject)
    if row.type in PRIVATE_TYPES and policy.reads_institutions(who):
        registry = bank.ledger.registry()
        entry = entry_resource(registry, row.type, row.issuer, row.subject, bytes(row.data))
    if not policy.allows(who, policy.Action.ENTRY_READ, entry):
        raise ForbiddenError(
            f"entry {index} is not public; reading it needs an authorised token",
            code="auth.forbidden",
        )
    public = policy.allows(ANONYMOUS, policy.Action.ENTRY_READ, entry)
    cache = "public, max-age=31536000, immutable" if public else "private, no-store"
    return Response(bytes(row.data), media_type=MEDIA_TYPE, headers={"Cache-Control": cache})


class BatchEntry(TypedDict):
    index: int
    status: int
    entry: str | None


class BatchEntries(TypedDict):
    entries: list[BatchEntry]


@router.get(
    "/entry-batch",
    responses={400: _PROBLEM, 401: _PROBLEM},
    summary="Up to 100 entries' exact bytes (base64) in one request; per index the status "
    "GET /entries/{index} would answer (200, 403, 404)",
)
def get_entry_batch(
    bank: BankDep,
    who: PrincipalDep,
    index: Annotated[list[str], Query(description="leaf indexes (repeat the parameter)")],
) -> BatchEntries:
    # for monitors reading the entries in their institution's name (docs/monitor.md): the
    # same decision per entry as get_entry, with one registry snapshot for the batch
    wanted: list[int] = []
    for text in index:
        if _DECIMAL.fullmatch(text) is None or int(text) > MAX_TREE_SIZE:
            raise InvalidInputError(
                "index must be a non-negative decimal integer below 2**63", code="log.bad_batch"
            )
        wanted.append(int(text))
    rows, registry = entries_at(bank, wanted)
    out: list[BatchEntry] = []
    for i in sorted(set(wanted)):
        row = rows.get(i)
        if row is None:
            out.append({"index": i, "status": 404, "entry": None})
            continue
        entry = policy.LogEntry(row.type, row.subject)
        if row.type in PRIVATE_TYPES and policy.reads_institutions(who):
            entry = entry_resource(registry, row.type, row.issuer, row.subject, bytes(row.data))
        if not policy.allows(who, policy.Action.ENTRY_READ, entry):
            out.append({"index": i, "status": 403, "entry": None})
            continue
        out.append({"index": i, "status": 200, "entry": b64encode(bytes(row.data))})
    return {"entries": out}


def _query_int(request: Request, name: str, low: int) -> int | None:
    """An optional strict decimal query parameter in ``[low, MAX_TREE_SIZE]`` (the rules of
    :data:`Decimal` and ``Query(ge=low, le=MAX_TREE_SIZE)``); None when absent.

    Raises:
        InvalidInputError: ``request.invalid`` for a malformed or out-of-range value.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if _DECIMAL.fullmatch(raw) is None:
        raise InvalidInputError(
            f"query.{name}: must be a non-negative decimal integer below 2**63",
            code="request.invalid",
        )
    value = int(raw)
    if not low <= value <= MAX_TREE_SIZE:
        raise InvalidInputError(
            f"query.{name}: must be between {low} and {MAX_TREE_SIZE}", code="request.invalid"
        )
    return value


def _int_param(name: str, low: int, description: str, *, required: bool) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": low, "maximum": MAX_TREE_SIZE}
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


@hot_router.get(
    "/proofs/inclusion",
    response_model=InclusionProof,
    responses={400: _PROBLEM, 404: _PROBLEM},
    summary="Inclusion proof of a leaf against a published tree size",
    openapi_extra={
        "parameters": [
            _int_param("index", 0, "leaf index (0-based)", required=True),
            _int_param("size", 1, "a published tree size; default the latest", required=False),
        ]
    },
)
async def get_inclusion_proof(request: Request) -> Response:
    # A hot read (docs/benchmarks.md, "Serving path"): async, no thread hop (inline on
    # SQLite, an asyncio connection on PostgreSQL), no SQLAlchemy, parameters parsed here
    # rather than by FastAPI's per-request validation (documented through openapi_extra), no
    # response re-validation. The same answers and error codes as Ledger.inclusion_proof and
    # the declared-parameter routes.
    reads = get_log_reads(request)  # not a dependency: FastAPI solving one costs more
    index = _query_int(request, "index", 0)
    if index is None:
        raise InvalidInputError("query.index: field required", code="request.invalid")
    size = _query_int(request, "size", 1)
    if size is None:
        size = await reads.alatest_published_size()
    return Response(await _inclusion_body(reads, index, size), media_type="application/json")


async def _inclusion_body(reads: LogReads, index: int, size: int) -> bytes:
    """The JSON of an inclusion proof (one builder for the route and the hot path).

    Raises:
        InvalidInputError: if ``size`` is not published or ``index`` is outside it.
    """
    leaf, path = await reads.ainclusion_proof(index, size)
    body: InclusionProof = {
        "index": index,
        "size": size,
        "leaf_hash": b64encode(leaf),
        "path": [b64encode(h) for h in path],
    }
    return orjson.dumps(body)


def hot_inclusion_proof(reads: LogReads) -> HotHandler:
    """The inclusion proof at the app's door (:mod:`creditbank.api.hot`): plain ``index`` and
    optional ``size`` in range, a published size; anything else goes on to the route above."""

    async def answer(scope: Scope) -> Response | None:
        got = query_ints(scope["query_string"], (b"index", b"size"))
        if got is None or b"index" not in got or got[b"index"] > MAX_TREE_SIZE:
            return None
        size = got.get(b"size")
        if size is not None and not 1 <= size <= MAX_TREE_SIZE:
            return None
        try:
            if size is None:
                size = await reads.alatest_published_size()
            return json_response(await _inclusion_body(reads, got[b"index"], size))
        except Exception:  # the route answers every refusal and failure
            return None

    return answer


@router.get(
    "/proofs/consistency",
    responses={400: _PROBLEM, 404: _PROBLEM},
    summary="Consistency proof between two published tree sizes",
)
def get_consistency_proof(
    bank: BankDep,
    first: Annotated[int, Query(ge=1, le=MAX_TREE_SIZE), Decimal],
    second: SizeParam = None,
) -> ConsistencyProof:
    if second is None:
        second = bank.ledger.latest_checkpoint().size
    path = bank.ledger.consistency_proof(first, second)
    return {"first": first, "second": second, "path": [b64encode(h) for h in path]}
