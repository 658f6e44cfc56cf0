"""The verification pages for employers: ``GET /v/{code}`` and ``/verify`` (upload).

* ``GET /v/{code}``: ONE large verdict (VALID / REVOKED / CODE EXPIRED / CODE REVOKED /
  NOT FOUND / NOT VALID), then — for a code that opens a document — what was revoked, when and
  why, the document's contents as the bank holds them (the holder's name, each record with
  its institution, state and name as on the record, the custodian of a closed institution,
  conversions with their explanations, totals), then every check performed with ✓/✗ and its
  detail. Codes are read as people type them (any case, hyphens optional, Crockford
  confusables): the service normalises them. Lookups share the ``code-lookups`` rate limit
  with the API (429 page with Retry-After).
* ``GET /verify``: a form to upload a PDF or credential JSON; ``POST /verify`` verifies the
  upload and shows the same report. An upload writes nothing, so the form carries no CSRF
  token; a POST whose ``Origin`` is another site is still refused (403). Uploads have their
  own per-address limit, ``uploads``, shared with ``POST /api/v1/verify`` (429 with
  Retry-After): each costs a PAdES validation, far more than a code lookup.

No script, no inline style, no third-party request: the site's CSP holds.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Scope

from creditbank.errors import ForbiddenError, InvalidInputError, RateLimitedError, TooLargeError
from creditbank.service.ratelimit import limiter_for
from creditbank.service.verification import (
    MAX_UPLOAD_BYTES,
    VerificationReport,
    Verifier,
    check_label,
)
from creditbank.service.verification import app_verifier as get_verifier
from creditbank.web.catalogue import MESSAGES
from creditbank.web.ratelimit import TAKEN, client_address, rate_limit
from creditbank.web.site import Site, SiteDep

router = APIRouter(include_in_schema=False)

#: the verdict's look (site.css classes) per status
VERDICT_CLASS: Final[dict[str, str]] = {
    "VALID": "valid",
    "REVOKED": "revoked",
    "INVALID": "revoked",
    "CODE_EXPIRED": "expired",
    "CODE_REVOKED": "expired",
    "NOT_FOUND": "notfound",
}
#: the verdict's English token, shown on every page under the word in the page language
VERDICT_TOKEN: Final[dict[str, str]] = {
    "VALID": "VALID",
    "REVOKED": "REVOKED",
    "INVALID": "NOT VALID",
    "CODE_EXPIRED": "CODE EXPIRED",
    "CODE_REVOKED": "CODE REVOKED",
    "NOT_FOUND": "NOT FOUND",
}

#: the strings of these pages (merged into the site's catalogue when this module loads)
VERIFY_MESSAGES: Final[dict[str, dict[str, str]]] = {
    "v.title": {"zh": "验证结果", "en": "Verification result"},
    "v.upload.title": {"zh": "上传文件验证", "en": "Verify a file"},
    "v.verdict.VALID": {"zh": "有效", "en": "VALID"},
    "v.verdict.REVOKED": {"zh": "已撤销", "en": "REVOKED"},
    "v.verdict.INVALID": {"zh": "无效", "en": "NOT VALID"},
    "v.verdict.CODE_EXPIRED": {"zh": "验证码已过期", "en": "CODE EXPIRED"},
    "v.verdict.CODE_REVOKED": {"zh": "验证码已停用", "en": "CODE REVOKED"},
    "v.verdict.NOT_FOUND": {"zh": "未找到", "en": "NOT FOUND"},
    "v.says.VALID": {
        "zh": "这份文件由学分银行签发，内容未被改动，且未被撤销。以下每一项检查均已通过。",
        "en": "The bank issued this document, it is unaltered and it has not been revoked. "
        "Every check below passed.",
    },
    "v.says.REVOKED": {
        "zh": "这份文件是真实的，但其中内容已被撤销，不能再作为有效证明。",
        "en": "This document is genuine, but something in it has been revoked: it no longer "
        "proves what it shows.",
    },
    "v.says.INVALID": {
        "zh": "这份文件未通过验证：至少一项检查失败（见下方标记 ✗ 的项目）。",
        "en": "This document did not verify: at least one check failed (marked ✗ below).",
    },
    "v.says.CODE_EXPIRED": {
        "zh": "此验证码已过期。请向持有人索取新的验证码。",
        "en": "This verification code has expired. Ask the holder for a new code.",
    },
    "v.says.CODE_REVOKED": {
        "zh": "持有人已停用此验证码。请向持有人索取新的验证码。",
        "en": "The holder revoked this verification code. Ask the holder for a new code.",
    },
    "v.says.NOT_FOUND": {
        "zh": "没有这个验证码。请核对输入（字母不区分大小写，连字符可省略）。",
        "en": "There is no such verification code. Check what you typed (any case, hyphens "
        "optional).",
    },
    "v.malformed": {
        "zh": "这不是一个验证码：验证码为 16 位数字和字母（XXXX-XXXX-XXXX-XXXX）。",
        "en": "This is not a verification code: a code has 16 letters and digits "
        "(XXXX-XXXX-XXXX-XXXX).",
    },
    "v.revoked.heading": {"zh": "撤销情况", "en": "What was revoked"},
    "v.revoked.learner": {"zh": "持有人撤回了这份文件", "en": "The holder withdrew this document"},
    "v.revoked.bank": {"zh": "学分银行撤回了这份文件", "en": "The bank withdrew this document"},
    "v.revoked.record": {"zh": "记录被发证机构撤销", "en": "A record was revoked by its issuer"},
    "v.revoked.basis": {
        "zh": "学分认定所依据的记录被撤销",
        "en": "A record a credit grant rests on was revoked",
    },
    "v.revoked.grant": {"zh": "一项学分认定被作废", "en": "A credit grant was voided"},
    "v.revoked.decision": {"zh": "学分转换决定被作废", "en": "A conversion decision was voided"},
    "v.revoked.erased": {
        "zh": "持有人的个人信息已被删除",
        "en": "The holder's personal data was erased",
    },
    "v.revoked.when": {"zh": "日期", "en": "On"},
    "v.revoked.why": {"zh": "原因", "en": "Reason"},
    "v.doc.heading": {
        "zh": "文件内容（以学分银行所存为准）",
        "en": "The document, as the bank holds it",
    },
    "v.doc.transcript": {"zh": "学习成果记录（成绩单）", "en": "Learning transcript"},
    "v.doc.certificate": {"zh": "证书", "en": "Certificate"},
    "v.doc.holder": {"zh": "持有人", "en": "Holder"},
    "v.doc.id": {"zh": "文件编号", "en": "Document"},
    "v.doc.issued": {"zh": "签发时间", "en": "Issued"},
    "v.doc.code_until": {"zh": "验证码有效期至", "en": "Code valid until"},
    "v.doc.subset": {
        "zh": "本成绩单只包含持有人选择的部分记录。",
        "en": "This transcript shows only the records its holder chose.",
    },
    "v.records.heading": {"zh": "学习记录", "en": "Records"},
    "v.records.none": {"zh": "没有记录。", "en": "No records."},
    "v.records.custodian": {
        "zh": "该机构已关闭，记录由 {name} 保管",
        "en": "This institution has closed; its records are kept by {name}",
    },
    "v.records.name_on_record": {"zh": "记录上的姓名", "en": "Name as on the record"},
    "v.records.achieved": {"zh": "取得日期", "en": "Achieved"},
    "v.records.credits": {"zh": "{n} 学分", "en": "{n} credits"},
    "v.records.hours": {"zh": "{n} 学时", "en": "{n} hours"},
    "v.records.grade": {"zh": "成绩 {n}", "en": "Grade {n}"},
    "v.state.current": {"zh": "有效", "en": "current"},
    "v.state.corrected": {"zh": "已更正", "en": "corrected"},
    "v.state.revoked": {"zh": "已撤销", "en": "revoked"},
    "v.state.expired": {"zh": "已过期", "en": "expired"},
    "v.state.revoked_on": {"zh": "{on} 撤销：{why}", "en": "revoked on {on}: {why}"},
    "v.kind.academic_credit": {"zh": "课程学分", "en": "Course credit"},
    "v.kind.skill_certificate": {"zh": "技能证书", "en": "Skill certificate"},
    "v.kind.training_hours": {"zh": "培训学时", "en": "Training"},
    "v.kind.competition_award": {"zh": "竞赛获奖", "en": "Award"},
    "v.kind.work_experience": {"zh": "工作经历", "en": "Work experience"},
    "v.conv.heading": {"zh": "学分认定与转换", "en": "Credit recognition"},
    "v.conv.applied": {"zh": "申请日期", "en": "Applied"},
    "v.conv.grant_voided": {"zh": "{on} 作废：{why}", "en": "voided on {on}: {why}"},
    "v.conv.total": {
        "zh": "{program}：已认定 {granted} 学分，上限 {cap} 学分，尚余 {left} 学分",
        "en": "{program}: {granted} credits recognised of at most {cap}; {left} left",
    },
    "v.checks.heading": {"zh": "已执行的检查", "en": "Every check performed"},
    "v.checks.summary": {
        "zh": "共 {n} 项检查，{failed} 项未通过。",
        "en": "{n} checks, {failed} failed.",
    },
    "v.upload.help": {
        "zh": "选择学分银行签发的 PDF 成绩单或证书，或其中附带的 credential.json 文件。"
        "文件只用于本次验证，不会被保存。",
        "en": "Choose a transcript or certificate PDF issued by the bank, or the "
        "credential.json it carries. The file is used for this check only and is not kept.",
    },
    "v.upload.label": {"zh": "文件（PDF 或 JSON）", "en": "File (PDF or JSON)"},
    "v.upload.submit": {"zh": "上传并验证", "en": "Upload and verify"},
    "v.upload.link": {"zh": "或上传 PDF / JSON 文件验证", "en": "Or verify a PDF / JSON file"},
    "v.upload.error": {
        "zh": "无法验证这个文件：请上传学分银行签发的 PDF 或 credential.json。",
        "en": "This file cannot be verified: upload a PDF or credential.json issued by the bank.",
    },
    "v.another": {"zh": "验证另一个验证码", "en": "Verify another code"},
}
MESSAGES.update(VERIFY_MESSAGES)


# -- what the template shows ---------------------------------------------------------------------
@dataclass
class RecordLine:
    """One record as the page shows it."""

    title: str
    kind: str
    achieved_on: str
    state: str
    revoked_on: str | None
    revocation_reason: str | None
    name_on_record: str | None
    facts: list[tuple[str, Any]]
    entry_index: Any

    @property
    def kind_key(self) -> str | None:
        """The catalogue key of the record's kind (None for a kind it does not name)."""
        key = f"v.kind.{self.kind}"
        return key if key in MESSAGES else None


@dataclass
class InstitutionBlock:
    """The records of one institution (with its custodian, if closed)."""

    name: str
    custodian: str | None
    records: list[RecordLine] = field(default_factory=list)


def _pick(obj: Mapping[str, Any], base: str, lang: str) -> str:
    zh, en = obj.get(base + "Zh"), obj.get(base + "En")
    first, second = (zh, en) if lang == "zh" else (en, zh)
    return str(first or second or "")


def _num(centi: Any) -> str:
    if not isinstance(centi, int):
        return "?"
    whole, part = divmod(centi, 100)
    return str(whole) if part == 0 else f"{centi / 100:.2f}".rstrip("0")


def _facts(payload: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if not isinstance(payload, Mapping):
        return out
    if isinstance(payload.get("credits_centi"), int):
        out.append(("v.records.credits", _num(payload["credits_centi"])))
    if isinstance(payload.get("hours"), int):
        out.append(("v.records.hours", payload["hours"]))
    if payload.get("grade") is not None:
        out.append(("v.records.grade", payload["grade"]))
    return out


def institution_blocks(
    subject: Mapping[str, Any],
    lang: str,
    revoked_now: Mapping[str, tuple[str, str]] | None = None,
) -> list[InstitutionBlock]:
    """The records grouped by institution, in credential order; a record revoked since the
    document was issued (``revoked_now``: ``owner/record_id`` -> (date, reason)) is shown
    revoked."""
    revoked_now = revoked_now or {}
    blocks: dict[str, InstitutionBlock] = {}
    for rec in subject.get("records") or []:
        if not isinstance(rec, Mapping):
            continue
        key = str(rec.get("institutionId"))
        block = blocks.get(key)
        if block is None:
            custodian = _pick(rec, "custodianName", lang) if rec.get("custodianId") else None
            block = blocks[key] = InstitutionBlock(_pick(rec, "institutionName", lang), custodian)
        since = revoked_now.get(f"{rec.get('institutionId')}/{rec.get('recordId')}")
        block.records.append(
            RecordLine(
                title=" · ".join(
                    x for x in (_pick(rec, "title", lang), _pick(rec, "subtitle", lang)) if x
                )
                or str(rec.get("recordId")),
                kind=str(rec.get("kind")),
                achieved_on=str(rec.get("achievedOn", "")),
                state="revoked" if since else str(rec.get("state", "current")),
                revoked_on=since[0] if since else rec.get("revokedOn"),
                revocation_reason=since[1] if since else rec.get("revocationReason"),
                name_on_record=rec.get("nameOnRecord") if rec.get("nameDiffers") else None,
                facts=_facts(rec.get("payload")),
                entry_index=rec.get("entryIndex"),
            )
        )
    return list(blocks.values())


def _revocation_lines(
    report: VerificationReport, subject: Mapping[str, Any], lang: str
) -> list[dict[str, str]]:
    titles = {}
    for rec in subject.get("records") or []:
        if isinstance(rec, Mapping):
            titles[f"{rec.get('institutionId')}/{rec.get('recordId')}"] = _pick(rec, "title", lang)
    lines = []
    for r in report.revocations:
        subject_title = titles.get(r.detail or "", "") if r.what in ("record", "basis") else ""
        lines.append(
            {
                "what": f"v.revoked.{r.what}" if f"v.revoked.{r.what}" in MESSAGES else "",
                "raw_what": r.what,
                "title": subject_title,
                "at": r.at[:10],
                "reason": r.reason,
            }
        )
    return lines


def page_values(report: VerificationReport, lang: str) -> dict[str, Any]:
    """Everything ``verify_result.html.j2`` shows, from a report."""
    cred = report.credential or {}
    subject = cred.get("credentialSubject")
    subject = subject if isinstance(subject, Mapping) else {}
    types = cred.get("type") if isinstance(cred.get("type"), list) else []
    failed = [c for c in report.checks if not c.ok]
    return {
        "report": report,
        "verdict": report.status,
        "verdict_class": VERDICT_CLASS.get(report.status, "notfound"),
        "verdict_token": VERDICT_TOKEN.get(report.status, report.status),
        "revocations": _revocation_lines(report, subject, lang),
        "has_document": bool(cred),
        "kind": "certificate" if "CreditBankCertificate" in (types or []) else "transcript",
        "holder": subject.get("name"),
        "learner_id": subject.get("learnerId"),
        "complete": subject.get("complete", True),
        "blocks": institution_blocks(
            subject,
            lang,
            {
                r.detail: (r.at[:10], r.reason)
                for r in report.revocations
                if r.what == "record" and r.detail
            },
        ),
        "conversions": [c for c in subject.get("conversions") or [] if isinstance(c, Mapping)],
        "totals": [t for t in subject.get("totals") or [] if isinstance(t, Mapping)],
        "pick": lambda obj, base: _pick(obj, base, lang),
        "num": _num,
        "checks": [
            {"name": c.name, "ok": c.ok, "label": check_label(c.name, lang), "detail": c.detail}
            for c in report.checks
        ],
        "failed_count": len(failed),
    }


#: rendered fragments, keyed by what they show (a by-code page's document section and
#: checks repeat on every request for one document until its state changes)
_FRAGMENTS: dict[tuple[Any, ...], Markup] = {}
_FRAGMENTS_LOCK = threading.Lock()
MAX_FRAGMENTS: Final = 4096


#: what a check contributes to the key of a remembered fragment or page
_CHECK_KEY: Final = operator.attrgetter("name", "ok", "detail")


def _fragment(
    site: Site,
    template: str,
    key: tuple[Any, ...] | None,
    ctx: Callable[[], Mapping[str, Any]],
) -> Markup:
    """Render ``template`` with ``ctx()``; remembered under ``key`` (None: never)."""
    if key is not None:
        hit = _FRAGMENTS.get(key)
        if hit is not None:
            return hit
    html = Markup(site.env.get_template(template).render(ctx()))  # noqa: S704 - autoescaped output
    if key is not None:
        with _FRAGMENTS_LOCK:
            if len(_FRAGMENTS) >= MAX_FRAGMENTS:
                _FRAGMENTS.clear()
            _FRAGMENTS[key] = html
    return html


def _render(
    request: Request, site: Site, report: VerificationReport | None, *, status: int = 200,
    by_code: bool = False, **extra: Any,
) -> Response:  # fmt: skip
    lang = site.language(request)
    values: dict[str, Any] = {}
    if report is not None:

        def full() -> Mapping[str, Any]:
            return site.context(request, lang) | page_values(report, lang)

        checks_key = ("checks", lang, tuple(map(_CHECK_KEY, report.checks)))
        doc_key = None
        if by_code and report.document is not None:  # the stored credential: fixed per doc
            doc_key = (
                "doc", lang, report.document.doc_id,
                None if report.code is None else report.code.expires_at,
                tuple((r.what, r.detail, r.at, r.reason) for r in report.revocations),
            )  # fmt: skip
        page_key = None
        if doc_key is not None and not extra and "lang" not in request.query_params:
            # the whole page is a function of these (and of the site's fixed static URLs)
            page_key = ("page", request.url.path, request.url.query, report.status,
                        checks_key, doc_key)  # fmt: skip
            hit = _FRAGMENTS.get(page_key)
            if hit is not None:
                return _html_page(str(hit), status)
        cred = report.credential or {}
        subject = cred.get("credentialSubject")
        subject = subject if isinstance(subject, Mapping) else {}
        values = {
            "report": report,
            "verdict": report.status,
            "verdict_class": VERDICT_CLASS.get(report.status, "notfound"),
            "verdict_token": VERDICT_TOKEN.get(report.status, report.status),
            "revocations": _revocation_lines(report, subject, lang),
        }
        values["checks_html"] = _fragment(site, "verify_checks.html.j2", checks_key, full)
        values["document_html"] = _fragment(site, "verify_document.html.j2", doc_key, full)
        if page_key is not None:
            response = site.render(
                request, "verify_result.html.j2", status=status, title_key="v.title",
                malformed=False, upload=False, **values,
            )  # fmt: skip
            with _FRAGMENTS_LOCK:
                if len(_FRAGMENTS) >= MAX_FRAGMENTS:
                    _FRAGMENTS.clear()
                _FRAGMENTS[page_key] = Markup(bytes(response.body).decode())  # noqa: S704 - rendered page
            return response
    values.update(extra)
    return site.render(
        request,
        "verify_result.html.j2",
        status=status,
        title_key="v.title",
        malformed=values.pop("malformed", False),
        upload=values.pop("upload", False),
        **values,
    )


def _html_page(html: str, status: int) -> Response:
    """A remembered page, with the headers :meth:`Site.render` gives (no language cookie:
    pages answering ``?lang=`` are never remembered)."""
    response = HTMLResponse(html, status_code=status)
    response.headers["Vary"] = "Accept, Accept-Language, Cookie"
    response.headers["Cache-Control"] = "no-cache"
    return response


# -- routes ------------------------------------------------------------------------------------
@router.get("/v/{code}", dependencies=[Depends(rate_limit("code-lookups"))])
async def verify_code_page(code: str, request: Request) -> Response:
    """The verdict page of a verification code (what the QR code opens).

    The serving path (docs/verification.md, "Serving path"): on the event loop, no thread
    hop — the code's row and the document's status causes are read per request on driver
    connections, the document's checks and rendered section come from caches, the count goes
    to the verifier's in-memory buffer. Only a document's first request (its checks not
    computed yet) runs in a worker thread. (No ``SiteDep``: a sync dependency would hop to
    the thread pool on every request.) Most requests do not even get here: the app's door
    answers them with the same code (:func:`hot_code_page`).

    Raises:
        RateLimitedError: ``rate.limited`` past the ``code-lookups`` limit (429 page).
        StorageError: if the database is unavailable (503 page).
    """
    return await _code_page(request, code)


async def _code_page(request: Request, code: str) -> Response:
    """The page of ``code`` after the rate limit (the route's body, shared with the door).

    Raises:
        StorageError: if the database is unavailable.
    """
    site: Site = request.app.state.site
    verifier = get_verifier(request)
    text = code[:64] if len(code) > 64 else code
    try:
        report = await verifier.aby_code_fast(text)
        if report is None:  # the document's first request: its checks take tens of ms
            report = await run_in_threadpool(_by_code_cold, verifier, text)
    except InvalidInputError:
        return site.render(
            request, "verify_result.html.j2", status=400, title_key="v.title", malformed=True,
            upload=False, typed=code[:64],
        )  # fmt: skip
    return _render(request, site, report, by_code=True)


#: where the door (:func:`hot_code_page`) answers: ``/v/{code}`` has one path segment
CODE_PREFIX: Final = "/v/"


async def hot_code_page(scope: Scope) -> Response | None:
    """``GET /v/{code}`` at the app's door (``creditbank/api/hot.py``): the route's answer
    without the framework's routing, dependency solving and middleware.

    A rate-limited caller is passed on before anything is taken (a refused check takes no
    token; the route answers 429). Once the token is taken, the scope says so
    (:data:`creditbank.web.ratelimit.TAKEN`), so that when this door passes the request on
    after all (the database down, a bug), the route's dependency does not take a second one.
    """
    code = scope["path"][len(CODE_PREFIX) :]
    if not code or "/" in code:
        return None
    request = Request(scope)
    state = request.app.state
    limiter = limiter_for(state.rate_limiters, "code-lookups", state.bank.clock)
    try:
        limiter.check(client_address(request))
    except RateLimitedError:
        return None
    scope[TAKEN] = "code-lookups"
    try:
        return await _code_page(request, code)
    except Exception:  # the route answers it (its error page), without a second token
        return None


def _by_code_cold(verifier: Verifier, text: str) -> VerificationReport:
    """:meth:`Verifier.by_code_fast` computing what is not cached (in a worker thread).

    Raises:
        InvalidInputError: ``code.malformed``.
        StorageError: if the database is unavailable.
    """
    report = verifier.by_code_fast(text, cold=True)
    if report is None:  # cold=True always answers; kept explicit for the type checker
        return verifier.by_code(text)
    return report


@router.get("/verify")
async def upload_form(request: Request, site: SiteDep) -> Response:
    """The upload form."""
    return site.render(request, "verify_upload.html.j2", title_key="v.upload.title", error=False)


def _same_origin(request: Request) -> bool:
    """False when the request says it comes from another site's page: ``Sec-Fetch-Site``
    ``cross-site``, or an ``Origin`` naming another origin. The site's ``no-referrer`` policy
    makes browsers send ``Origin: null`` on their own same-origin form posts, so ``null`` (or
    no ``Origin``: not a browser) is judged by ``Sec-Fetch-Site`` alone."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.rstrip("/") == own


@router.post("/verify", dependencies=[Depends(rate_limit("uploads"))])
async def upload_verify(request: Request, site: SiteDep) -> Response:
    """Verify an uploaded PDF or credential JSON and show the report (nothing is written).

    Raises:
        ForbiddenError: ``csrf.origin`` for a POST from another site's page.
        TooLargeError: ``verify.too_large`` beyond the upload limit.
        RateLimitedError: ``rate.limited`` (429 page, ``Retry-After``) past the ``uploads``
            limit of the caller's address (shared with ``POST /api/v1/verify``).
    """
    if not _same_origin(request):
        raise ForbiddenError("this form only accepts uploads from the bank's own page",
                             code="csrf.origin")  # fmt: skip
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 64 * 1024:
        raise TooLargeError(
            f"an upload may hold at most {MAX_UPLOAD_BYTES} bytes", code="verify.too_large"
        )
    data, media = b"", None
    try:
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if isinstance(upload, UploadFile):
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            media = upload.content_type
        await form.close()
    except Exception:  # an unreadable form is shown as an unusable upload, below
        data = b""
    if len(data) > MAX_UPLOAD_BYTES:
        raise TooLargeError(
            f"an upload may hold at most {MAX_UPLOAD_BYTES} bytes", code="verify.too_large"
        )
    try:
        report = await run_in_threadpool(get_verifier(request).by_upload, data, media)
    except InvalidInputError:
        return site.render(
            request, "verify_upload.html.j2", status=400, title_key="v.upload.title", error=True
        )
    return _render(request, site, report, upload=True)


__all__: Sequence[str] = ["VERIFY_MESSAGES", "page_values", "router"]
