"""Signing up, in and out; the account page with the user's own API tokens; the admin page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from creditbank.core import policy
from creditbank.errors import AuthError, CreditBankError, RateLimitedError
from creditbank.service.accounts import Account
from creditbank.web.portal.common import (
    HOME,
    SESSION_COOKIE,
    CsrfDep,
    PortalRoute,
    allowed_to,
    check_sign_in_rate,
    clear_session_cookie,
    error_text,
    get_accounts,
    get_bank,
    language,
    optional_account,
    redirect,
    render,
    safe_next,
    set_session_cookie,
)

router = APIRouter(route_class=PortalRoute, include_in_schema=False)

AccountDep = Annotated[Account, Depends(allowed_to(policy.Action.ACCOUNT_MANAGE))]
AdminDep = Annotated[Account, Depends(allowed_to(policy.Action.PORTAL_ADMIN))]


async def form_fields(request: Request) -> dict[str, str]:
    """The text fields of a submitted form (files left out)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    account = await optional_account(request)
    nxt = safe_next(request.query_params.get("next"), "")
    if account is not None:
        return redirect(nxt or HOME[account.role])
    return render(request, "signin.html.j2", {"next": nxt, "error": None, "login": ""})


@router.post("/signin", dependencies=[CsrfDep])
async def signin(request: Request) -> Response:
    f = await form_fields(request)
    nxt = safe_next(f.get("next"), "")
    lang = language(request)
    try:
        check_sign_in_rate(request)
        signed = await run_in_threadpool(
            get_accounts(request).sign_in, f.get("login", ""), f.get("password", "")
        )
    except RateLimitedError as e:
        return render(
            request, "signin.html.j2",
            {"next": nxt, "error": error_text(e, lang), "login": f.get("login", "")},
            status=429, headers={"Retry-After": str(e.retry_after)},
        )  # fmt: skip
    except AuthError as e:
        return render(
            request, "signin.html.j2",
            {"next": nxt, "error": error_text(e, lang), "login": f.get("login", "")},
            status=401,
        )  # fmt: skip
    response = redirect(nxt or HOME[signed.account.role])
    ttl = int(get_accounts(request).session_ttl.total_seconds())
    set_session_cookie(response, request, signed.token, ttl)
    return response


@router.post("/signout", dependencies=[CsrfDep])
async def signout(request: Request) -> Response:
    await run_in_threadpool(get_accounts(request).sign_out, request.cookies.get(SESSION_COOKIE))
    response = redirect("/signin")
    clear_session_cookie(response, request)
    return response


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    account = await optional_account(request)
    if account is not None:
        return redirect(HOME[account.role])
    return render(request, "signup.html.j2", {"error": None, "values": {}})


@router.post("/signup", dependencies=[CsrfDep])
async def signup(request: Request) -> Response:
    f = await form_fields(request)
    lang = language(request)
    values = {"login": f.get("login", ""), "display_name": f.get("display_name", "")}
    accounts = get_accounts(request)
    try:
        check_sign_in_rate(request)
        if f.get("password", "") != f.get("password2", ""):
            raise AuthError("the passwords differ", code="account.password_mismatch")
        await run_in_threadpool(
            accounts.sign_up_worker,
            f.get("login", ""),
            f.get("password", ""),
            f.get("display_name") or None,
        )
        signed = await run_in_threadpool(accounts.sign_in, f.get("login", ""), f["password"])
    except RateLimitedError as e:
        return render(
            request, "signup.html.j2", {"error": error_text(e, lang), "values": values},
            status=429, headers={"Retry-After": str(e.retry_after)},
        )  # fmt: skip
    except CreditBankError as e:
        status = 409 if e.code == "account.exists" else 422
        return render(
            request, "signup.html.j2", {"error": error_text(e, lang), "values": values},
            status=status,
        )  # fmt: skip
    response = redirect("/me/claim")
    set_session_cookie(response, request, signed.token, int(accounts.session_ttl.total_seconds()))
    return response


# -- the account page: own API tokens -------------------------------------------------------------
def _account_page(request: Request, account: Account, **extra: Any) -> Response:
    status = int(extra.pop("status", 200))
    tokens = get_accounts(request).list_tokens(account)
    ctx: dict[str, Any] = {"tokens": tokens, "new_token": None, "error": None}
    ctx.update(extra)
    return render(request, "account.html.j2", ctx, status=status)


@router.get("/account")
async def account_page(request: Request, account: AccountDep) -> Response:
    return await run_in_threadpool(_account_page, request, account)


@router.post("/account/tokens", dependencies=[CsrfDep])
async def create_token(request: Request, account: AccountDep) -> Response:
    f = await form_fields(request)
    try:
        made = await run_in_threadpool(
            get_accounts(request).create_token, account, f.get("label") or None
        )
    except CreditBankError as e:
        text = error_text(e, language(request))
        return await run_in_threadpool(
            lambda: _account_page(request, account, error=text, status=409)
        )
    return await run_in_threadpool(lambda: _account_page(request, account, new_token=made))


@router.post("/account/tokens/{token_id}/revoke", dependencies=[CsrfDep])
async def revoke_token(request: Request, token_id: str, account: AccountDep) -> Response:
    await run_in_threadpool(get_accounts(request).revoke_token, account, token_id)
    return redirect("/account")


# -- admin ----------------------------------------------------------------------------------------
@router.get("/admin")
async def admin_page(request: Request, account: AdminDep) -> Response:
    accounts = get_accounts(request)
    bank = get_bank(request)

    def gather() -> dict[str, Any]:
        registry = bank.ledger.registry()
        return {
            "operators": accounts.of_role("operator"),
            "admins": accounts.of_role("admin"),
            "workers": accounts.of_role("worker"),
            "institutions": sorted(registry.institutions.values(), key=lambda i: i.institution_id),
            "size": bank.ledger.head().size,
        }

    return render(request, "admin.html.j2", await run_in_threadpool(gather))
