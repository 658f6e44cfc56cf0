"""The institution console (ADR 0010): upload and validate, list records, prepare corrections
and revocations for ``creditbank post``, see the institution's log entries. Scoped to the
operator's own institution; the browser signs nothing."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from creditbank.core import policy
from creditbank.errors import CreditBankError, InvalidInputError
from creditbank.service import console, watch
from creditbank.service.accounts import Account
from creditbank.web.portal.common import (
    CsrfDep,
    PortalRoute,
    allowed_to,
    error_text,
    get_bank,
    language,
    render,
)

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

OperatorDep = Annotated[Account, Depends(allowed_to(policy.Action.PORTAL_CONSOLE))]


def _inst(account: Account) -> str:
    assert account.institution_id is not None  # noqa: S101 - every operator has one
    return account.institution_id


def _institution_view(request: Request, iid: str) -> dict[str, Any]:
    inst = get_bank(request).ledger.registry().institutions.get(iid)
    if inst is None:
        return {"id": iid, "name": iid, "closed_on": None}
    name = inst.name_zh if language(request) == "zh" else inst.name_en
    return {"id": iid, "name": name, "closed_on": inst.closed_on}


def _int(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 15:
        raise InvalidInputError("give a whole number", code="request.invalid")
    return int(text)


@router.get("/console")
async def console_page(request: Request, account: OperatorDep) -> Response:
    iid = _inst(account)
    after = _int(request.query_params.get("after"), -1)
    records, nxt = await run_in_threadpool(
        lambda: console.list_records(get_bank(request), iid, after=after)
    )
    return render(
        request,
        "console.html.j2",
        {
            "institution": _institution_view(request, iid),
            "records": records,
            "next_after": nxt,
            "error": None,
            "max_mb": console.MAX_UPLOAD // (1024 * 1024),
        },
    )


@router.post("/console/upload", dependencies=[CsrfDep])
async def upload(request: Request, account: OperatorDep) -> Response:
    iid = _inst(account)
    form = await request.form()
    file = form.get("file")
    bank = get_bank(request)
    try:
        if not isinstance(file, UploadFile) or not file.filename:
            raise InvalidInputError("choose a file to upload", code="post.format")
        data = await file.read(console.MAX_UPLOAD + 1)
        report = await run_in_threadpool(console.validate_upload, bank, iid, file.filename, data)
    except CreditBankError as e:
        records, nxt = await run_in_threadpool(lambda: console.list_records(bank, iid))
        return render(
            request, "console.html.j2",
            {"institution": _institution_view(request, iid), "records": records,
             "next_after": nxt, "error": error_text(e, language(request)),
             "max_mb": console.MAX_UPLOAD // (1024 * 1024)},
            status=413 if e.code == "input.too_large" else 422,
        )  # fmt: skip
    return render(
        request,
        "report.html.j2",
        {
            "institution": _institution_view(request, iid),
            "report": report,
            "report_json": json.dumps(report.as_dict(), ensure_ascii=False, indent=1),
            "download": None,
        },
    )


@router.get("/console/records/{index}")
async def record_page(request: Request, index: int, account: OperatorDep) -> Response:
    iid = _inst(account)
    rec = await run_in_threadpool(console.record_detail, get_bank(request), iid, index)
    return render(
        request,
        "console_record.html.j2",
        {
            "institution": _institution_view(request, iid),
            "rec": rec,
            "today": console.today(get_bank(request)).isoformat(),
        },
    )


def _revocation_args(request: Request) -> tuple[str, str]:
    reason = request.query_params.get("reason", "")
    day = request.query_params.get("effective_on", "")
    if not reason.strip() or len(reason) > 1000:
        raise InvalidInputError("give a reason (1-1000 characters)", code="record.reason")
    try:
        dt.date.fromisoformat(day)
    except ValueError as e:
        raise InvalidInputError("effective_on is YYYY-MM-DD", code="record.effective_on") from e
    return reason, day


@router.get("/console/records/{index}/revocation")
async def revocation_page(request: Request, index: int, account: OperatorDep) -> Response:
    iid = _inst(account)
    reason, day = _revocation_args(request)
    name, _, report = await run_in_threadpool(
        console.revocation_file, get_bank(request), iid, index, reason, day
    )
    query = request.url.query
    return render(
        request,
        "report.html.j2",
        {
            "institution": _institution_view(request, iid),
            "report": report,
            "report_json": json.dumps(report.as_dict(), ensure_ascii=False, indent=1),
            "download": {"name": name, "url": f"/console/records/{index}/revocation.csv?{query}"},
        },
    )


@router.get("/console/records/{index}/revocation.csv")
async def revocation_csv(request: Request, index: int, account: OperatorDep) -> Response:
    iid = _inst(account)
    reason, day = _revocation_args(request)
    name, data, _ = await run_in_threadpool(
        console.revocation_file, get_bank(request), iid, index, reason, day
    )
    return _csv(name, data)


@router.get("/console/records/{index}/correction.csv")
async def correction_csv(request: Request, index: int, account: OperatorDep) -> Response:
    iid = _inst(account)
    name, data = await run_in_threadpool(console.correction_file, get_bank(request), iid, index)
    return _csv(name, data)


def _csv(name: str, data: bytes) -> Response:
    return Response(
        b"\xef\xbb\xbf" + data,  # a BOM, so spreadsheet programs read UTF-8
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/console/log")
async def log_page(request: Request, account: OperatorDep) -> Response:
    iid = _inst(account)
    before_text = request.query_params.get("before")
    before = _int(before_text, 0) if before_text else None
    got = await run_in_threadpool(
        lambda: console.institution_log(get_bank(request), iid, before=before)
    )
    # the log watch (``creditbank monitor``'s checks over the stored log) on the first page
    report = (
        None
        if before is not None
        else await run_in_threadpool(watch.watch_institution, get_bank(request), iid)
    )
    return render(
        request,
        "console_log.html.j2",
        {"institution": _institution_view(request, iid), "log": got, "watch": report},
    )
