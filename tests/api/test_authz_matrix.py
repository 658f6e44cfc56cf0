"""The authorization matrix: every route of the assembled app (API and pages) × six callers —
anonymous, worker X, worker Y, the operator of institution A (INS-EU), the operator of
institution B (INS-COL) and a bank admin.

* Routes are enumerated from the app itself: a route without a row in :data:`POLICY` (or a
  row for a route that no longer exists) fails :func:`test_every_route_has_a_policy_row`.
* Each row names a concrete target that belongs to X or to A (X's document, share code,
  record entry, learner id; A's records and signed entries) or a guessed id, which callers
  are allowed, and for the others checks that they are refused (401/403/404, or a redirect to
  sign in) and that nothing of X's appears in what they get.
* A refused write is sent with a well-formed body (so only authorization stands in its way)
  and must change nothing: the log size and every table's row count are compared.
* :func:`test_every_state_changing_form_needs_its_csrf_token`: every POST page route, sent
  by a caller who may use it, without the token is 403 ``csrf.failed``.

Callers use the API with their own bearer tokens (made on their account page's service:
learner, institution and auditor tokens) and the pages with their session cookies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from portal_fixtures import PASSWORD, PortalWorld, make_portal_world
from sqlalchemy import func, inspect, select, table
from starlette.testclient import TestClient

from creditbank.asgi import create_app
from creditbank.core.entries import build_entry, sign_entry
from creditbank.core.signing import entry_key_id
from creditbank.service import conversion, share_codes
from creditbank.service.demo import institution_key
from creditbank.storage.tables import entries_t

ROLES = ("anon", "X", "Y", "A", "B", "admin")
SIGNED_IN = ROLES[1:]
#: a document id and learner id nobody has (guessed)
GUESS_DOC = "DOC-0123456789ABCDEFGHJKMNPQRS"
GUESS_LEARNER = "LRN-0123456789ABCDEFGHJK"
GUESS_CODE_ID = "SC-0123456789ABC"


@dataclass
class Ctx:
    """The world and what each caller holds."""

    world: PortalWorld
    client: TestClient
    bearer: dict[str, str] = field(default_factory=dict)
    session: dict[str, str] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)
    anon_csrf: tuple[str, str] = ("", "")
    x_spare_code_id: str = ""
    x_token_id: str = ""
    x_application: str = ""
    a_entry: dict[str, Any] = field(default_factory=dict)
    a_new_revocation: dict[str, Any] = field(default_factory=dict)

    @property
    def x(self) -> str:
        return self.world.people["X"].learner_id

    def markers(self) -> list[str]:
        """What must never reach a caller who may not see X's data."""
        return [self.x, self.world.people["X"].name, "EU-X-1", self.world.x_doc]


@dataclass(frozen=True)
class Row:
    """One route's policy. ``allow``: callers that may use it on the target (their answer
    must be neither a refusal nor a sign-in redirect); ``own``: callers that get an answer
    about themselves (allowed, but nothing of X may appear); everyone else is refused.
    ``public``: anyone may. ``body``/``deny_body`` build the request body for allowed and for
    refused callers (a well-formed body for the refused, so only authorization stops it)."""

    method: str
    route: str
    target: Callable[[Ctx], str]
    allow: frozenset[str] = frozenset()
    own: frozenset[str] = frozenset()
    public: bool = False
    body: Callable[[Ctx], dict[str, Any]] | None = None
    deny_body: Callable[[Ctx], dict[str, Any]] | None = None
    #: statuses an allowed caller may get besides success (e.g. a refused claim code)
    allowed_statuses: frozenset[int] = frozenset()
    #: False for a form that changes nothing (verifying an upload): no CSRF token needed
    changes_state: bool = True
    #: everyone gets an answer, filtered: those not allowed see nothing of X in it
    filtered: bool = False

    @property
    def page(self) -> bool:
        return not self.route.startswith(("/api/", "/.well-known", "/contexts", "/openapi"))


def row(
    method: str, route: str, target: str | Callable[[Ctx], str] | None = None, **kw: Any
) -> Row:
    tgt: Callable[[Ctx], str]
    if target is None:
        tgt = lambda c: route  # noqa: E731
    elif isinstance(target, str):
        fixed = target
        tgt = lambda c: fixed  # noqa: E731
    else:
        tgt = target
    for key in ("allow", "own"):
        if key in kw:
            kw[key] = frozenset(kw[key])
    if "allowed_statuses" in kw:
        kw["allowed_statuses"] = frozenset(kw["allowed_statuses"])
    return Row(method, route, tgt, **kw)


WORKERS = ("X", "Y")
ANY_SIGNED_IN = SIGNED_IN


def _form(**values: str) -> Callable[[Ctx], dict[str, Any]]:
    return lambda c: {"data": dict(values)}


def _json(value: Any) -> Callable[[Ctx], dict[str, Any]]:
    return lambda c: {"json": value(c) if callable(value) else value}


POLICY: list[Row] = [
    # -- public pages and documents ------------------------------------------------------------
    row("GET", "/", public=True),
    row("GET", "/v", "/v?code=0000-0000-0000-0000", public=True),
    row("GET", "/v/{code}", lambda c: f"/v/{c.world.x_code}", public=True),
    row("GET", "/verify", public=True),
    row(
        "POST",
        "/verify",
        public=True,
        body=lambda c: {"files": {"file": ("a.json", b"{}")}},
        changes_state=False,
    ),
    row("GET", "/static/{name}", "/static/portal.css", public=True),
    row("GET", "/docs", public=True),
    row("GET", "/docs/assets/{name}", "/docs/assets/swagger-ui.css", public=True),
    row("GET", "/openapi.json", public=True),
    row("GET", "/healthz", public=True),
    row("GET", "/.well-known/did.json", public=True),
    row("GET", "/contexts/creditbank/v1", public=True),
    row("GET", "/signin", public=True),
    row("GET", "/signup", public=True),
    row(
        "POST",
        "/signin",
        public=True,
        body=_form(login="nobody@example.com", password="wrong-password"),  # noqa: S106
        allowed_statuses={401},
    ),
    row("POST", "/signup", public=True, body=_form(login="bad", password="x", password2="y")),  # noqa: S106
    row("POST", "/signout", allow=SIGNED_IN, body=_form(), allowed_statuses={303}),
    # -- account pages -------------------------------------------------------------------------
    row("GET", "/account", own=SIGNED_IN),
    row("POST", "/account/tokens", own=SIGNED_IN, body=_form(label="x" * 300)),
    row(
        "POST",
        "/account/tokens/{token_id}/revoke",
        lambda c: f"/account/tokens/{c.x_token_id}/revoke",
        allow={"X"},
        body=_form(),
        deny_body=_form(),
    ),
    row("GET", "/admin", allow={"admin"}),
    # -- worker pages --------------------------------------------------------------------------
    row("GET", "/me", allow={"X"}, own={"Y"}),
    row("GET", "/me/claim", allow={"X"}, own={"Y"}, allowed_statuses={303}),  # claimed: to /me
    row(
        "POST",
        "/me/claim",
        allow={"X"},
        own={"Y"},
        body=_form(name="赵小林", id_type="resident_id", id_number="1"),
    ),
    row(
        "POST",
        "/me/claim/code",
        allow={"X"},
        own={"Y"},
        body=_form(code_id="OTC-X", code="1"),
        allowed_statuses={401},
    ),
    row("GET", "/me/conversions", allow={"X"}, own={"Y"}),
    row("GET", "/me/what-if", "/me/what-if?program=P-OU-LOG", allow={"X"}, own={"Y"}),
    row("POST", "/me/apply", allow={"X"}, own={"Y"}, body=_form(program="NOPE")),
    row("GET", "/me/documents", allow={"X"}, own={"Y"}),
    row("POST", "/me/documents/transcript", allow={"X"}, own={"Y"}, body=_form(scope="chosen")),
    row("POST", "/me/documents/certificate", allow={"X"}, own={"Y"}, body=_form(subject="x")),
    row(
        "GET",
        "/me/documents/{doc_id}/pdf",
        lambda c: f"/me/documents/{c.world.x_doc}/pdf",
        allow={"X"},
    ),
    row(
        "GET",
        "/me/documents/{doc_id}/json",
        lambda c: f"/me/documents/{c.world.x_doc}/json",
        allow={"X"},
    ),
    row("GET", "/me/share-codes", allow={"X"}, own={"Y"}),
    row(
        "POST",
        "/me/share-codes",
        allow={"X"},
        body=lambda c: {"data": {"doc_id": c.world.x_doc, "days": "0"}},
        deny_body=lambda c: {"data": {"doc_id": c.world.x_doc, "days": "30"}},
    ),
    row(
        "POST",
        "/me/share-codes/{code_id}/extend",
        lambda c: f"/me/share-codes/{c.x_spare_code_id}/extend",
        allow={"X"},
        body=_form(days="30"),
        deny_body=_form(days="30"),
    ),
    row(
        "POST",
        "/me/share-codes/{code_id}/revoke",
        lambda c: f"/me/share-codes/{c.x_spare_code_id}/revoke",
        allow={"X"},
        body=_form(),
        deny_body=_form(),
    ),
    row("GET", "/me/erase", allow={"X"}, own={"Y"}),
    row(
        "POST",
        "/me/erase",
        allow={"X"},
        own={"Y"},
        body=_form(password=PASSWORD),
        deny_body=_form(password=PASSWORD, confirm="yes"),
    ),
    # -- the console ---------------------------------------------------------------------------
    row("GET", "/console", allow={"A"}, own={"B"}),
    row("POST", "/console/upload", allow={"A"}, own={"B"}, body=_form()),
    row("GET", "/console/log", allow={"A"}, own={"B"}),
    row(
        "GET",
        "/console/records/{index}",
        lambda c: f"/console/records/{c.world.records['X'][0]}",
        allow={"A"},
    ),
    row(
        "GET",
        "/console/records/{index}/correction.csv",
        lambda c: f"/console/records/{c.world.records['X'][0]}/correction.csv",
        allow={"A"},
    ),
    row(
        "GET",
        "/console/records/{index}/revocation",
        lambda c: (
            f"/console/records/{c.world.records['X'][0]}/revocation?reason=x&effective_on=2026-01-15"
        ),
        allow={"A"},
    ),
    row(
        "GET",
        "/console/records/{index}/revocation.csv",
        lambda c: (
            f"/console/records/{c.world.records['X'][0]}/revocation.csv?reason=x&effective_on=2026-01-15"
        ),
        allow={"A"},
    ),
    # -- the log API -----------------------------------------------------------------------------
    row("GET", "/api/v1/log/checkpoint", public=True),
    row("GET", "/api/v1/log/key", public=True),
    row("GET", "/api/v1/log/leaf-hashes", "/api/v1/log/leaf-hashes?start=0&end=2", public=True),
    row("GET", "/api/v1/log/envelopes", "/api/v1/log/envelopes?start=0&end=2", public=True),
    row(
        "GET",
        "/api/v1/log/proofs/inclusion",
        "/api/v1/log/proofs/inclusion?index=0&size=1",
        public=True,
    ),
    row(
        "GET",
        "/api/v1/log/proofs/consistency",
        "/api/v1/log/proofs/consistency?first=1&second=1",
        public=True,
    ),
    row(
        "GET",
        "/api/v1/log/entries/{index}",
        lambda c: f"/api/v1/log/entries/{c.world.records['X'][0]}",
        allow={"X", "A", "admin"},
    ),
    row(
        "GET",
        "/api/v1/log/entry-batch",
        lambda c: f"/api/v1/log/entry-batch?index=0&index={c.world.records['X'][0]}",
        allow={"X", "A", "admin"},
        filtered=True,
    ),
    row("GET", "/api/v1/rules", public=True),
    row("GET", "/api/v1/status/{list_id}", "/api/v1/status/1", public=True),
    row("GET", "/api/v1/verify/{code}", lambda c: f"/api/v1/verify/{c.world.x_code}", public=True),
    row("POST", "/api/v1/verify", public=True, body=_json({})),
    # -- records API -------------------------------------------------------------------------------
    row(
        "POST",
        "/api/v1/records",
        allow={"A"},
        body=lambda c: {"json": {"entries": [c.a_entry]}},  # a re-post of A's own entry: no change
        deny_body=lambda c: {"json": {"entries": [c.a_new_revocation]}},
    ),  # A-signed, new
    row(
        "POST",
        "/api/v1/learners/resolve",
        allow={"A", "B"},
        body=_json({"name": ""}),
        deny_body=_json({"name": "赵小林", "id_type": "resident_id", "id_number": "1"}),
    ),
    row(
        "POST",
        "/api/v1/learners/resolve-batch",
        allow={"A", "B"},
        body=_json({"learners": "x"}),
        deny_body=_json({"learners": []}),
    ),
    row(
        "GET",
        "/api/v1/institutions/{institution_id}/records",
        "/api/v1/institutions/INS-EU/records",
        allow={"A"},
    ),
    row(
        "GET",
        "/api/v1/learners/{learner_id}/records",
        lambda c: f"/api/v1/learners/{c.x}/records",
        allow={"X", "admin"},
    ),
    # -- the learner's own API ---------------------------------------------------------------------
    row("GET", "/api/v1/me/applications", allow={"X"}, own={"Y"}),
    row(
        "POST",
        "/api/v1/me/applications",
        allow={"X"},
        own={"Y"},
        body=_json({"program_id": 1}),
        deny_body=_json({"program_id": "P-OU-LOG"}),
    ),
    row(
        "GET",
        "/api/v1/me/applications/{application_id}",
        lambda c: f"/api/v1/me/applications/{c.x_application}",
        allow={"X"},
    ),
    row(
        "GET",
        "/api/v1/me/what-if",
        "/api/v1/me/what-if?program_id=P-OU-LOG",
        allow={"X"},
        own={"Y"},
    ),
    row(
        "POST",
        "/api/v1/me/transcripts",
        allow={"X"},
        own={"Y"},
        body=_json({"records": "x"}),
        deny_body=_json({"records": [1]}),
    ),
    row("GET", "/api/v1/me/transcripts", allow={"X"}, own={"Y"}),
    row(
        "POST",
        "/api/v1/me/certificates",
        allow={"X"},
        own={"Y"},
        body=_json({}),
        deny_body=_json({"record": 1}),
    ),
    row(
        "POST",
        "/api/v1/me/transcripts/{doc_id}/revoke",
        lambda c: f"/api/v1/me/transcripts/{c.world.x_doc}/revoke",
        allow={"X"},
        body=_json({"reason": ""}),
        deny_body=_json({"reason": "stolen"}),
    ),
    row("GET", "/api/v1/me/share-codes", allow={"X"}, own={"Y"}),
    row(
        "POST",
        "/api/v1/me/share-codes",
        allow={"X"},
        body=lambda c: {"json": {"document_id": c.world.x_doc, "days": 0}},
        deny_body=lambda c: {"json": {"document_id": c.world.x_doc, "days": 30}},
    ),
    row(
        "POST",
        "/api/v1/me/share-codes/{code_id}/extend",
        lambda c: f"/api/v1/me/share-codes/{c.x_spare_code_id}/extend",
        allow={"X"},
        body=_json({"days": 30}),
        deny_body=_json({"days": 30}),
    ),
    row(
        "POST",
        "/api/v1/me/share-codes/{code_id}/revoke",
        lambda c: f"/api/v1/me/share-codes/{c.x_spare_code_id}/revoke",
        allow={"X"},
        body=_json({}),
        deny_body=_json({}),
    ),
    row(
        "GET",
        "/api/v1/transcripts/{doc_id}",
        lambda c: f"/api/v1/transcripts/{c.world.x_doc}",
        allow={"X", "admin"},
    ),
    row(
        "GET",
        "/api/v1/transcripts/{doc_id}.pdf",
        lambda c: f"/api/v1/transcripts/{c.world.x_doc}.pdf",
        allow={"X", "admin"},
    ),
    row(
        "GET",
        "/api/v1/transcripts/{doc_id}.json",
        lambda c: f"/api/v1/transcripts/{c.world.x_doc}.json",
        allow={"X", "admin"},
    ),
]

#: guessed ids: refused for everyone but public routes (no oracle)
GUESSES: list[tuple[str, str, frozenset[str]]] = [
    ("GET", f"/me/documents/{GUESS_DOC}/pdf", frozenset({"X", "Y"})),
    ("GET", f"/api/v1/transcripts/{GUESS_DOC}.pdf", frozenset({"X", "Y", "admin"})),
    ("GET", f"/api/v1/transcripts/{GUESS_DOC}", frozenset({"X", "Y", "admin"})),
    ("GET", f"/api/v1/learners/{GUESS_LEARNER}/records", frozenset({"admin"})),
    ("GET", "/console/records/999999", frozenset({"A", "B"})),
    ("POST", f"/me/share-codes/{GUESS_CODE_ID}/revoke", frozenset({"X", "Y"})),
    ("POST", f"/api/v1/me/share-codes/{GUESS_CODE_ID}/revoke", frozenset({"X", "Y"})),
    ("POST", "/account/tokens/0123456789abcdef/revoke", frozenset(SIGNED_IN)),
]


# -- the world ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    world = make_portal_world(tmp_path_factory.mktemp("authz") / "home")
    app = create_app(world.bank.settings, bank=world.bank)
    app.state.accounts = world.accounts
    try:
        with TestClient(app) as client:
            c = Ctx(world, client)
            _prepare(c)
            yield c
    finally:
        world.close()


def _prepare(c: Ctx) -> None:
    w = c.world
    for who in SIGNED_IN:
        acc = w.accounts.get(w.logins[who].account_id)
        c.bearer[who] = w.accounts.create_token(acc, "matrix").token
    _sessions(c)
    form = c.client.get("/signin")
    c.anon_csrf = (form.cookies.get("cb_csrf") or "", _csrf(form.text))
    c.client.cookies.clear()
    x = w.accounts.get(w.logins["X"].account_id)
    c.x_token_id = w.accounts.create_token(x, "to revoke").token_id
    spare = share_codes.create_share_code(w.bank, c.x, w.x_doc, days=30)
    c.x_spare_code_id = spare.code_id
    c.x_application = conversion.apply(w.bank, c.x, program_id="P-OU-LOG")["application_id"]
    with w.bank.engine.connect() as conn:
        data = conn.execute(
            select(entries_t.c.data).where(entries_t.c.idx == w.records["X"][0])
        ).scalar_one()
    c.a_entry = json.loads(bytes(data))
    signer = institution_key(w.bank, "INS-EU")
    body = {"record_id": "EU-X-1", "reason": "forged by another", "effective_on": "2026-01-15"}
    unsigned = build_entry(
        "record.revoked", "INS-EU", entry_key_id(signer.public_bytes), w.bank.clock.now(), body
    )
    c.a_new_revocation = json.loads(sign_entry(unsigned, signer))


def _sessions(c: Ctx) -> None:
    """A live session and its form token for every signed-in caller."""
    w = c.world
    for who in SIGNED_IN:
        c.session[who] = w.accounts.sign_in(w.logins[who].login, PASSWORD).token
        c.client.cookies.clear()
        c.client.cookies.set("cb_session", c.session[who])
        c.csrf[who] = _csrf(c.client.get("/account").text)
    c.client.cookies.clear()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m is not None, html[:300]
    return m.group(1)


# -- requests -------------------------------------------------------------------------------------
def send(
    c: Ctx,
    method: str,
    path: str,
    who: str,
    *,
    page: bool,
    body: dict[str, Any] | None,
    csrf: bool = True,
) -> Any:
    c.client.cookies.clear()
    headers = {"Accept": "application/json"}
    kwargs: dict[str, Any] = dict(body or {})
    if page:
        if who != "anon":
            c.client.cookies.set("cb_session", c.session[who])
        if method == "POST":
            data = dict(kwargs.pop("data", {}))
            if csrf:
                if who == "anon":
                    c.client.cookies.set("cb_csrf", c.anon_csrf[0])
                    data["csrf"] = c.anon_csrf[1]
                else:
                    data["csrf"] = c.csrf[who]
            kwargs["data"] = data
    elif who != "anon":
        headers["Authorization"] = f"Bearer {c.bearer[who]}"
    return c.client.request(method, path, headers=headers, follow_redirects=False, **kwargs)


def refused(resp: Any) -> bool:
    if resp.status_code in (401, 403, 404):
        return True
    return resp.status_code == 303 and resp.headers.get("location", "").startswith("/signin")


def state(c: Ctx) -> dict[str, int]:
    """The log size and every table's row count (a refused write must change none)."""
    engine = c.world.bank.engine
    names = inspect(engine).get_table_names()
    with engine.connect() as conn:
        counts = {
            n: int(conn.execute(select(func.count()).select_from(table(n))).scalar_one())
            for n in names
            if n not in ("account_sessions",)
        }
    counts["log"] = c.world.bank.ledger.head().size
    return counts


# -- the tests ------------------------------------------------------------------------------------
def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path template) the app answers (HEAD aside), nested routers included."""
    out: set[tuple[str, str]] = set()
    for r in app.routes:
        contexts = getattr(r, "effective_route_contexts", None)
        if contexts is not None:
            for ctx_ in contexts():
                out |= {(m, ctx_.path) for m in ctx_.methods if m != "HEAD"}
        elif getattr(r, "methods", None):
            out |= {(m, r.path) for m in r.methods if m != "HEAD"}
    return out


def test_every_route_has_a_policy_row(ctx: Ctx) -> None:
    routes = app_routes(ctx.client.app)
    rows = {(r.method, r.route) for r in POLICY}
    assert sorted(routes - rows) == [], "routes without a policy row"
    assert sorted(rows - routes) == [], "policy rows for routes that do not exist"
    assert len(POLICY) == len(rows), "a route with two rows"


@pytest.mark.parametrize("policy", POLICY, ids=lambda r: f"{r.method} {r.route}")
def test_route_by_role(ctx: Ctx, policy: Row) -> None:
    path = policy.target(ctx)
    for who in ROLES:
        allowed = policy.public or who in policy.allow or who in policy.own
        make = policy.body if allowed or policy.deny_body is None else policy.deny_body
        before = None if allowed or policy.method == "GET" else state(ctx)
        body = make(ctx) if make else None
        resp = send(ctx, policy.method, path, who, page=policy.page, body=body)
        sent = path + repr(body)  # what the caller already knows (an error may repeat it)
        where = f"{policy.method} {path} as {who}: {resp.status_code} {resp.text[:200]}"
        assert resp.status_code < 500, where
        if allowed:
            assert not refused(resp) or resp.status_code in policy.allowed_statuses, where
            if policy.method == "GET" and not policy.public:
                assert resp.status_code == 200 or resp.status_code in policy.allowed_statuses, where
        elif policy.filtered:
            assert resp.status_code == 200, where
        else:
            assert refused(resp), where
            if before is not None:
                assert state(ctx) == before, f"{where}: a refused write changed something"
        if who != "X" and (who in policy.own or not allowed):
            for marker in ctx.markers():
                if marker not in sent:
                    assert marker not in resp.text, f"{where}: shows X's {marker}"
    if policy.route == "/signout":
        _sessions(ctx)  # every caller just signed out


@pytest.mark.parametrize(
    ("method", "path", "askers"),
    GUESSES,
    # sorted: a frozenset's order changes with hash seeds, and xdist workers must agree
    ids=lambda v: ",".join(sorted(v)) if isinstance(v, frozenset) else str(v)[:60],
)
def test_guessed_ids_are_refused(ctx: Ctx, method: str, path: str, askers: frozenset[str]) -> None:
    for who in ROLES:
        page = not path.startswith("/api/")
        body: dict[str, Any] | None = {"data": {}} if page and method == "POST" else None
        if not page and method == "POST":
            body = {"json": {}}
        resp = send(ctx, method, path, who, page=page, body=body)
        assert refused(resp), f"{method} {path} as {who}: {resp.status_code}"
        if who in askers:  # a caller who may use the route learns only "not found"
            assert resp.status_code == 404, f"{method} {path} as {who}: {resp.status_code}"


def test_every_state_changing_form_needs_its_csrf_token(ctx: Ctx) -> None:
    forms = [r for r in POLICY if r.method == "POST" and r.page and r.changes_state]
    assert {r.route for r in forms} >= {
        "/signin",
        "/signup",
        "/signout",
        "/me/erase",
        "/console/upload",
    }
    for policy in forms:
        who = "anon" if policy.public else sorted(policy.allow | policy.own)[0]
        make = policy.body
        before = state(ctx)
        resp = send(
            ctx,
            "POST",
            policy.target(ctx),
            who,
            page=True,
            body=make(ctx) if make else None,
            csrf=False,
        )
        assert resp.status_code == 403, f"{policy.route} as {who}: {resp.status_code}"
        assert resp.json()["code"] == "csrf.failed", policy.route
        assert state(ctx) == before, policy.route
