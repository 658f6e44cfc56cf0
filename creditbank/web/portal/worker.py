"""The worker portal: claim, records, conversions, what-if, apply, documents, share codes,
erasure. Every page acts for the signed-in worker's own learner id only; ids in paths
(documents, share codes) of anyone else are "not found"."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from creditbank.core import policy
from creditbank.errors import (
    ConflictError,
    CreditBankError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)
from creditbank.service import conversion, issuance, share_codes
from creditbank.service.accounts import Account
from creditbank.service.record_views import catalogue_names, learner_record_views
from creditbank.service.verification import app_verifier
from creditbank.web.portal.auth import form_fields
from creditbank.web.portal.common import (
    SESSION_COOKIE,
    CsrfDep,
    PortalRoute,
    allowed_to,
    clear_session_cookie,
    error_text,
    get_accounts,
    get_bank,
    language,
    redirect,
    render,
)

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

WorkerDep = Annotated[Account, Depends(allowed_to(policy.Action.PORTAL_WORKER))]

#: the states a record can show, in both languages
STATES: dict[str, tuple[str, str]] = {
    "current": ("有效", "current"),
    "corrected": ("已更正", "corrected"),
    "revoked": ("已撤销", "revoked"),
    "duplicate": ("重复", "duplicate"),
    "expired": ("已过期", "expired"),
}


def _programs(request: Request) -> list[dict[str, Any]]:
    rules = conversion.current_rules(get_bank(request))
    if rules is None:
        return []
    return [
        {"id": p.id, "name_zh": p.name_zh, "name_en": p.name_en, "institution": p.institution_id}
        for p in sorted(rules.publication.degree_programs, key=lambda p: p.id)
    ]


# -- claim ----------------------------------------------------------------------------------------
@router.get("/me/claim")
async def claim_page(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is not None:
        return redirect("/me")
    return render(request, "claim.html.j2", {"step": "details", "error": None, "values": {}})


@router.post("/me/claim", dependencies=[CsrfDep])
async def claim_start(request: Request, account: WorkerDep) -> Response:
    f = await form_fields(request)
    values = {k: f.get(k, "") for k in ("name", "id_type", "id_number", "nationality")}
    try:
        code_id = await run_in_threadpool(
            get_accounts(request).start_claim,
            account,
            name=values["name"],
            doc_type=values["id_type"] or "resident_id",
            number=values["id_number"],
            nationality=values["nationality"] or None,
        )
    except RateLimitedError as e:
        return render(
            request, "claim.html.j2",
            {"step": "details", "error": error_text(e, language(request)), "values": values},
            status=429, headers={"Retry-After": str(e.retry_after)},
        )  # fmt: skip
    except CreditBankError as e:
        status = 409 if e.code == "account.already_claimed" else 422
        return render(
            request, "claim.html.j2",
            {"step": "details", "error": error_text(e, language(request)), "values": values},
            status=status,
        )  # fmt: skip
    return render(
        request, "claim.html.j2",
        {"step": "code", "error": None, "values": {}, "code_id": code_id, "to": account.login},
    )  # fmt: skip


@router.post("/me/claim/code", dependencies=[CsrfDep])
async def claim_finish(request: Request, account: WorkerDep) -> Response:
    f = await form_fields(request)
    code_id = f.get("code_id", "")
    try:
        await run_in_threadpool(
            get_accounts(request).finish_claim, account, code_id, f.get("code", "")
        )
    except CreditBankError as e:
        return render(
            request, "claim.html.j2",
            {"step": "code", "error": error_text(e, language(request)), "values": {},
             "code_id": code_id, "to": account.login},
            status=401 if e.code == "claim.failed" else 409,
        )  # fmt: skip
    return redirect("/me?claimed=1")


# -- records --------------------------------------------------------------------------------------
@router.get("/me")
async def records_page(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    records = await run_in_threadpool(learner_record_views, get_bank(request), account.learner_id)
    return render(
        request,
        "records.html.j2",
        {
            "records": records,
            "states": STATES,
            "claimed": request.query_params.get("claimed") == "1",
        },
    )


# -- conversions ----------------------------------------------------------------------------------
@router.get("/me/conversions")
async def conversions_page(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    bank = get_bank(request)
    apps = await run_in_threadpool(conversion.list_applications, bank, account.learner_id)
    programs = await run_in_threadpool(_programs, request)
    names = await run_in_threadpool(catalogue_names, bank)
    return render(
        request,
        "conversions.html.j2",
        {"applications": apps, "programs": programs, "names": names},
    )


def _program_name(programs: list[dict[str, Any]], pid: str, lang: str) -> str:
    for p in programs:
        if p["id"] == pid:
            return str(p["name_zh"] if lang == "zh" else p["name_en"])
    return pid


@router.get("/me/what-if")
async def what_if_page(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    bank = get_bank(request)
    program = request.query_params.get("program", "")
    programs = await run_in_threadpool(_programs, request)
    if program not in {p["id"] for p in programs}:
        raise InvalidInputError("choose a programme from the list", code="conversion.program")
    preview = await run_in_threadpool(
        conversion.what_if, bank, account.learner_id, program_id=program
    )
    apps = await run_in_threadpool(conversion.list_applications, bank, account.learner_id)
    before = [a for a in apps if a.get("program_id") == program]
    return render(
        request,
        "whatif.html.j2",
        {
            "preview": preview,
            "program": program,
            "program_name": _program_name(programs, program, language(request)),
            "previous": before,
            "names": await run_in_threadpool(catalogue_names, bank),
        },
    )


@router.post("/me/apply", dependencies=[CsrfDep])
async def apply(request: Request, account: WorkerDep) -> Response:
    learner_id = account.learner_id
    if learner_id is None:
        return redirect("/me/claim")
    f = await form_fields(request)
    program = f.get("program", "")
    bank = get_bank(request)
    programs = await run_in_threadpool(_programs, request)
    if program not in {p["id"] for p in programs}:
        raise InvalidInputError("choose a programme from the list", code="conversion.program")
    if f.get("confirm") != "yes":
        preview = await run_in_threadpool(conversion.what_if, bank, learner_id, program_id=program)
        if not preview["grants"]:
            apps = await run_in_threadpool(conversion.list_applications, bank, learner_id)
            return render(
                request,
                "apply_confirm.html.j2",
                {
                    "preview": preview,
                    "program": program,
                    "program_name": _program_name(programs, program, language(request)),
                    "previous": [a for a in apps if a.get("program_id") == program],
                },
            )
    view = await run_in_threadpool(conversion.apply, bank, learner_id, program_id=program)
    return redirect(f"/me/conversions#{view['application_id']}")


# -- documents ------------------------------------------------------------------------------------
def _documents_context(request: Request, learner_id: str) -> dict[str, Any]:
    bank = get_bank(request)
    return {
        "documents": issuance.list_documents(bank, learner_id),
        "records": learner_record_views(bank, learner_id),
        "applications": conversion.list_applications(bank, learner_id),
        "names": catalogue_names(bank),
        "states": STATES,
        "issued": None,
        "error": None,
    }


@router.get("/me/documents")
async def documents_page(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    ctx = await run_in_threadpool(_documents_context, request, account.learner_id)
    return render(request, "documents.html.j2", ctx)


def _indices(values: list[str]) -> list[int]:
    out = []
    for v in values:
        if not v.isdigit() or len(v) > 15:
            raise InvalidInputError("record indices are integers", code="document.record_index")
        out.append(int(v))
    return out


@router.post("/me/documents/transcript", dependencies=[CsrfDep])
async def issue_transcript(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    learner_id = account.learner_id
    form = await request.form()
    chosen = [v for v in form.getlist("record") if isinstance(v, str)]
    subset = form.get("scope") == "chosen"
    bank = get_bank(request)
    try:
        indices = _indices(chosen) if subset else None
        got = await run_in_threadpool(issuance.issue_transcript, bank, learner_id, indices)
    except CreditBankError as e:
        ctx = await run_in_threadpool(_documents_context, request, learner_id)
        ctx["error"] = error_text(e, language(request))
        return render(request, "documents.html.j2", ctx, status=_status(e))
    return render(request, "issued.html.j2", {"issued": got.summary()}, status=201)


@router.post("/me/documents/certificate", dependencies=[CsrfDep])
async def issue_certificate(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    learner_id = account.learner_id
    f = await form_fields(request)
    subject = f.get("subject", "")
    bank = get_bank(request)
    try:
        kind, _, number = subject.partition(":")
        if kind not in ("record", "decision") or not number.isdigit() or len(number) > 15:
            raise InvalidInputError(
                "choose one record or one conversion", code="document.certificate_subject"
            )
        which = int(number)
        got = await run_in_threadpool(
            lambda: issuance.issue_certificate(
                bank,
                learner_id,
                record=which if kind == "record" else None,
                decision=which if kind == "decision" else None,
            )
        )
    except CreditBankError as e:
        ctx = await run_in_threadpool(_documents_context, request, learner_id)
        ctx["error"] = error_text(e, language(request))
        return render(request, "documents.html.j2", ctx, status=_status(e))
    return render(request, "issued.html.j2", {"issued": got.summary()}, status=201)


def _status(e: CreditBankError) -> int:
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, ConflictError):
        return 409
    return 422


def _download(request: Request, account: Account, doc_id: str, which: str) -> Response:
    learner_id = account.learner_id or ""
    data = issuance.document_bytes(get_bank(request), doc_id, which, learner_id=learner_id)  # type: ignore[arg-type]
    media = "application/pdf" if which == "pdf" else "application/vc+ld+json"
    ext = "pdf" if which == "pdf" else "json"
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{doc_id}.{ext}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/me/documents/{doc_id}/pdf")
async def download_pdf(request: Request, doc_id: str, account: WorkerDep) -> Response:
    return await run_in_threadpool(_download, request, account, doc_id, "pdf")


@router.get("/me/documents/{doc_id}/json")
async def download_json(request: Request, doc_id: str, account: WorkerDep) -> Response:
    return await run_in_threadpool(_download, request, account, doc_id, "json")


# -- share codes ----------------------------------------------------------------------------------
def _codes_context(request: Request, learner_id: str) -> dict[str, Any]:
    bank = get_bank(request)
    # the verifications this process has buffered are written first, so the holder sees a
    # scan made a moment ago (other processes write theirs within a second)
    app_verifier(request).counts.flush()
    return {
        "codes": share_codes.list_share_codes(bank, learner_id),
        "documents": [
            d for d in issuance.list_documents(bank, learner_id) if d["status"] == "valid"
        ],
        "new_code": None,
        "error": None,
        "base_url": bank.settings.public_base_url.rstrip("/"),
    }


@router.get("/me/share-codes")
async def codes_page(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    ctx = await run_in_threadpool(_codes_context, request, account.learner_id)
    return render(request, "share_codes.html.j2", ctx)


def _days(text: str | None) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 5:
        raise InvalidInputError("days must be a whole number", code="share_code.days")
    return int(text)


@router.post("/me/share-codes", dependencies=[CsrfDep])
async def create_code(request: Request, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    learner_id = account.learner_id
    f = await form_fields(request)
    bank = get_bank(request)
    try:
        days = _days(f.get("days"))
        made = await run_in_threadpool(
            lambda: share_codes.create_share_code(bank, learner_id, f.get("doc_id", ""), days=days)
        )
    except CreditBankError as e:
        ctx = await run_in_threadpool(_codes_context, request, learner_id)
        ctx["error"] = error_text(e, language(request))
        return render(request, "share_codes.html.j2", ctx, status=_status(e))
    ctx = await run_in_threadpool(_codes_context, request, learner_id)
    ctx["new_code"] = {"display": made.display, "code_id": made.code_id, "expires": made.expires_at}
    return render(request, "share_codes.html.j2", ctx, status=201)


@router.post("/me/share-codes/{code_id}/extend", dependencies=[CsrfDep])
async def extend_code(request: Request, code_id: str, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    learner_id = account.learner_id
    f = await form_fields(request)
    bank = get_bank(request)
    days = _days(f.get("days")) or share_codes.DEFAULT_TTL_DAYS
    await run_in_threadpool(share_codes.extend_share_code, bank, learner_id, code_id, days)
    return redirect("/me/share-codes")


@router.post("/me/share-codes/{code_id}/revoke", dependencies=[CsrfDep])
async def revoke_code(request: Request, code_id: str, account: WorkerDep) -> Response:
    if account.learner_id is None:
        return redirect("/me/claim")
    await run_in_threadpool(
        share_codes.revoke_share_code, get_bank(request), account.learner_id, code_id
    )
    return redirect("/me/share-codes")


# -- erasure --------------------------------------------------------------------------------------
@router.get("/me/erase")
async def erase_page(request: Request, account: WorkerDep) -> Response:
    return render(request, "erase.html.j2", {"error": None})


@router.post("/me/erase", dependencies=[CsrfDep])
async def erase(request: Request, account: WorkerDep) -> Response:
    f = await form_fields(request)
    if f.get("confirm") != "yes":
        return render(
            request, "erase.html.j2",
            {"error": "请勾选确认。" if language(request) == "zh" else "Tick the box to confirm."},
            status=422,
        )  # fmt: skip
    try:
        await run_in_threadpool(get_accounts(request).erase_worker, account, f.get("password", ""))
    except CreditBankError as e:
        return render(
            request, "erase.html.j2", {"error": error_text(e, language(request))}, status=401
        )
    await run_in_threadpool(get_accounts(request).sign_out, request.cookies.get(SESSION_COOKIE))
    response = render(request, "erased.html.j2", {})
    clear_session_cookie(response, request)
    return response
