"""What every portal page shares: templates, zh/en, the signed-in account, CSRF, cookies.

* **Pages** are rendered by the web layer's :class:`~creditbank.web.site.Site` (its layout,
  language rule and static files); portal templates (``templates/web/portal/``) extend
  ``portal/base.html.j2`` and say each string in both languages with ``tr(zh, en)`` beside
  each other (kept together so neither goes stale); refusals from the services are shown by
  code in both languages (:data:`MESSAGES`), else the service's English message.
* **Sessions**: the ``cb_session`` cookie (HttpOnly, SameSite=Lax, Secure over https or when
  ``CREDITBANK_PUBLIC_BASE_URL`` is https, path ``/``) holds the session token of
  :class:`creditbank.service.accounts.Accounts`; no cookie,
  or an ended session, sends a page to ``/signin?next=…`` (303).
* **CSRF** (synchronizer token, stateless): every form carries ``csrf`` =
  HMAC(form key, ``s:`` + session token) when signed in; the sign-in and sign-up forms
  (no session yet) use a random ``cb_csrf`` cookie (HttpOnly, SameSite=Strict) and
  HMAC(form key, ``a:`` + cookie) — a double-submit bound to the server's key. A POST with a
  missing or wrong token, or an ``Origin`` of another site, is refused (403 ``csrf.failed``)
  before anything runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from creditbank.core import policy
from creditbank.errors import AuthError, CreditBankError, ForbiddenError
from creditbank.service.accounts import Account, Accounts
from creditbank.service.bank import Bank
from creditbank.service.ratelimit import limiter_for
from creditbank.web.site import Site, get_site

SESSION_COOKIE: Final = "cb_session"
CSRF_COOKIE: Final = "cb_csrf"
#: where each role lands after signing in
HOME: Final[dict[str, str]] = {"worker": "/me", "operator": "/console", "admin": "/admin"}

#: refusals people meet, in both languages (code -> (zh, en))
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "auth.bad_credentials": ("账号或密码不正确。", "Wrong email/phone or password."),
    "auth.locked": ("密码错误次数过多，请稍后再试。", "Too many wrong passwords; try again later."),
    "rate.limited": ("尝试次数过多，请稍后再试。", "Too many attempts; try again later."),
    "account.exists": ("该邮箱或手机号已注册。", "An account with this email or phone exists."),
    "account.login": ("请填写邮箱或手机号（6–15 位数字）。", "Give an email or a phone number."),
    "account.password": ("密码需 10 至 256 个字符。", "A password has 10 to 256 characters."),
    "account.password_mismatch": ("两次输入的密码不一致。", "The two passwords differ."),
    "account.display_name": ("称呼最多 100 个字符。", "A display name has at most 100 characters."),
    "account.already_claimed": (
        "本账号已关联学习者身份。",
        "This account already holds its records.",
    ),
    "account.not_claimed": ("请先认领您的学习记录。", "Claim your records first."),
    "claim.failed": (
        "验证码错误或已过期，或身份信息与机构登记的不一致。",
        "The code is wrong or expired, or the details do not match what institutions posted.",
    ),
    "claim.too_many": ("待用验证码过多，请稍后再试。", "Too many codes waiting; try later."),
    "identity.format": ("证件号码格式不正确。", "The document number is malformed."),
    "identity.checksum": ("证件号码校验位不正确。", "The document number's check digit is wrong."),
    "identity.nationality": ("国籍不正确或缺失。", "The nationality is missing or wrong."),
    "identity.name": ("姓名不正确。", "The name is not valid."),
    "csrf.failed": ("表单已过期，请返回刷新后重试。", "The form expired; reload and try again."),
    "token.label": ("标签最多 200 个字符。", "A label has at most 200 characters."),
    "share_code.days": ("天数需为 1 至 1830。", "Days must be 1 to 1830."),
    "document.no_records": ("没有可出具的记录。", "There are no records to issue."),
    "post.format": ("请上传 .csv 或 .jsonl 文件。", "Upload a .csv or .jsonl file."),
    "input.too_large": ("文件过大。", "The file is too large."),
}


# -- language -------------------------------------------------------------------------------
def language(request: Request) -> str:
    """``zh`` or ``en`` by the web layer's one rule (:meth:`creditbank.web.site.Site.language`)."""
    return Site.language(request)


def message(code: str, lang: str, fallback: str) -> str:
    """A refusal in the page's language (the service's own message when not listed)."""
    pair = MESSAGES.get(code)
    if pair is None:
        return fallback
    return pair[0] if lang == "zh" else pair[1]


# -- state on the app -----------------------------------------------------------------------------
def get_bank(request: Request) -> Bank:
    """The bank the app was created with."""
    bank: Bank = request.app.state.bank
    return bank


def get_accounts(request: Request) -> Accounts:
    """The app's account service (made on first use with the development code sender, or
    set on ``app.state.accounts`` by whoever builds the app)."""
    accounts: Accounts | None = getattr(request.app.state, "accounts", None)
    if accounts is None:
        accounts = Accounts(get_bank(request))
        request.app.state.accounts = accounts
    return accounts


def client_address(request: Request) -> str:
    """The peer address (the key of per-address limits)."""
    return request.client.host if request.client is not None else "unknown"


def check_sign_in_rate(request: Request) -> None:
    """Take a token of the per-address "sign-in" limit.

    Raises:
        RateLimitedError: ``rate.limited`` (429 with Retry-After).
    """
    registry: dict[str, Any] | None = getattr(request.app.state, "rate_limiters", None)
    if registry is None:
        registry = {}
        request.app.state.rate_limiters = registry
    limiter_for(registry, "sign-in", get_bank(request).clock).check(client_address(request))


# -- sessions -------------------------------------------------------------------------------------
class SignInRequired(Exception):  # noqa: N818 - control flow to a redirect, not an error
    """Raised by :func:`current_account` when no session: answered with 303 to sign-in."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


async def optional_account(request: Request) -> Account | None:
    """The signed-in account, or None."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    accounts = get_accounts(request)
    account = await run_in_threadpool(accounts.session, token)
    request.state.account = account
    return account


async def current_account(request: Request) -> Account:
    """The signed-in account.

    Raises:
        SignInRequired: without a live session (a redirect to ``/signin``).
    """
    account = await optional_account(request)
    if account is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise SignInRequired(target)
    return account


def principal_of(account: Account) -> policy.Principal:
    """The policy's principal of a signed-in account (:func:`policy.principal_of_account`)."""
    return policy.principal_of_account(account.role, account.institution_id, account.learner_id)


def allowed_to(action: policy.Action) -> Callable[..., Any]:
    """A dependency returning the signed-in account if the policy lets it do ``action``.

    Raises:
        SignInRequired: without a session.
        ForbiddenError: ``auth.forbidden`` for an account the policy refuses.
    """

    async def dep(account: Account = Depends(current_account)) -> Account:  # noqa: B008
        policy.authorize(principal_of(account), action, message="this page is not for your account")
        return account

    return dep


def safe_next(value: str | None, default: str) -> str:
    """A local path to go to after signing in (never another site)."""
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and all(32 < ord(c) < 127 for c in value)
    ):
        return value
    return default


def secure(request: Request) -> bool:
    """Cookies are Secure when the page was served over https, or when the bank's public
    address is https (TLS ended by a proxy in front of it)."""
    if request.url.scheme == "https":
        return True
    settings = getattr(request.app.state, "settings", None) or get_bank(request).settings
    return str(settings.public_base_url).lower().startswith("https://")


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over https."""
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax",
        secure=secure(request), path="/",
    )  # fmt: skip


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=secure(request), path="/"
    )


# -- CSRF -----------------------------------------------------------------------------------------
def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("ascii", "replace"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_token(request: Request) -> str:
    """The token the page's forms carry (see the module docstring)."""
    key = get_accounts(request).form_key()
    account = getattr(request.state, "account", None)
    session = request.cookies.get(SESSION_COOKIE)
    if account is not None and session:
        return "s." + _mac(key, "s:" + session)
    seed = getattr(request.state, "csrf_seed", None) or request.cookies.get(CSRF_COOKIE)
    if not seed:
        seed = secrets.token_urlsafe(24)
        request.state.csrf_seed_new = seed
    request.state.csrf_seed = seed
    return "a." + _mac(key, "a:" + seed)


def _same_origin(request: Request) -> bool:
    """False only for an ``Origin`` naming another site. Absent or ``null`` (what browsers
    send under the pages' ``Referrer-Policy: no-referrer``) leaves it to the token."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return hmac.compare_digest(origin.encode(), own.encode())


async def csrf_protect(request: Request) -> None:
    """The CSRF check of every state-changing form (a dependency of each POST route).

    Raises:
        ForbiddenError: ``csrf.failed``.
    """
    failed = ForbiddenError(
        "the form's security token is missing or wrong; reload the page", code="csrf.failed"
    )
    if not _same_origin(request):
        raise failed
    try:
        form = await request.form()
    except Exception as e:  # a malformed body is a refused form, never a 500
        raise failed from e
    given = form.get("csrf")
    if not isinstance(given, str) or len(given) > 100:
        raise failed
    key = get_accounts(request).form_key()
    session = request.cookies.get(SESSION_COOKIE)
    seed = request.cookies.get(CSRF_COOKIE)
    expected = []
    if session:
        expected.append("s." + _mac(key, "s:" + session))
    if seed:
        expected.append("a." + _mac(key, "a:" + seed))
    if not any(hmac.compare_digest(given.encode(), e.encode()) for e in expected):
        raise failed


CsrfDep = Depends(csrf_protect)


# -- rendering ------------------------------------------------------------------------------------
def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Fill ``portal/<template>`` through the web layer's :class:`Site` (its layout, language
    rule and static files) with the portal's context: ``tr(zh, en)``, ``account``, ``csrf``,
    ``msg(code)``. Pages are personal, so never cached.
    """
    site = get_site(request)
    lang = site.language(request)
    account = getattr(request.state, "account", None)

    def tr(zh: str, en: str) -> str:
        return zh if lang == "zh" else en

    values: dict[str, Any] = {
        "tr": tr,
        "account": account,
        "csrf": csrf_token(request),
        "msg": lambda code, fallback="": message(code, lang, fallback),
        "day": lambda v: str(v)[:10] if v else "",
        "minute": lambda v: str(v)[:16].replace("T", " ") if v else "",
    }
    values.update(context or {})
    response = site.render(request, "portal/" + template, status=status, headers=headers, **values)
    response.headers["Cache-Control"] = "no-store"
    new_seed = getattr(request.state, "csrf_seed_new", None)
    if new_seed:
        response.set_cookie(
            CSRF_COOKIE, new_seed, httponly=True, samesite="strict", secure=secure(request),
            path="/",
        )  # fmt: skip
    return response


def error_text(e: CreditBankError, lang: str) -> str:
    """A refusal shown inside a form: the localized message, else the service's message."""
    return message(e.code, lang, e.message)


def redirect(url: str) -> RedirectResponse:
    """303 See Other (after a POST, the browser GETs ``url``)."""
    return RedirectResponse(url, status_code=303)


def sign_in_redirect(next_url: str) -> RedirectResponse:
    """303 to the sign-in page, coming back to ``next_url`` afterwards."""
    return redirect("/signin?next=" + quote(next_url, safe="/"))


class PortalRoute(APIRoute):
    """The route class of portal pages: a page that needs a session answers 303 to
    ``/signin?next=…`` when there is none (:class:`SignInRequired`)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except SignInRequired as e:
                return sign_in_redirect(e.next_url)
            return response

        return handle


__all__ = [
    "HOME",
    "AuthError",
    "CsrfDep",
    "PortalRoute",
    "SignInRequired",
    "allowed_to",
    "check_sign_in_rate",
    "current_account",
    "error_text",
    "get_accounts",
    "get_bank",
    "language",
    "optional_account",
    "principal_of",
    "redirect",
    "render",
    "safe_next",
    "set_session_cookie",
    "sign_in_redirect",
]
