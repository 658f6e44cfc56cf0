"""The demo: a home seeded from the bundled synthetic sample dataset (docs/demo.md).

:func:`prepare_demo` is what ``creditbank demo`` runs before serving: the sample imported,
documents issued and rendered in the render pool, three logins made through the accounts
service. The registration helpers at the top are shared with the importer.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from creditbank.core.codes import format_code
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.errors import (
    ConfigurationError,
    InvalidInputError,
    NotFoundError,
)
from creditbank.render.qr import verification_url
from creditbank.service.bank import Bank
from creditbank.service.keys import generate_key_file, load_key_file

if TYPE_CHECKING:
    from creditbank.render.pool import RenderPool
    from creditbank.service.accounts import Role

SAMPLE = "creditbank.data.sample"


def sample_json(name: str) -> Any:
    """Load one JSON file of the bundled sample dataset."""
    return json.loads(resources.files(SAMPLE).joinpath(name).read_text("utf-8"))


def institution_key(bank: Bank, institution_id: str) -> Any:
    """The institution's signing key kept in the home (created on first use, mode 0600)."""
    path = bank.settings.keys_dir / "institutions" / f"{institution_id}.key"
    if path.exists():
        return load_key_file(path)[1]
    return generate_key_file(path, institution_id)


def registration_entry(bank: Bank, inst: Mapping[str, Any], signer: Ed25519Signer) -> bytes:
    """The bank-signed ``institution.registered`` entry of a dataset institution row."""
    return bank.bank_entry(
        "institution.registered",
        {
            "institution_id": inst["id"],
            "kind": inst["kind"],
            "name_zh": inst["name_zh"],
            "name_en": inst["name_en"],
            "keys": [
                {
                    "key_id": entry_key_id(signer.public_bytes),
                    "public_key": b64encode(signer.public_bytes),
                }
            ],
        },
    )


def closure_entry(bank: Bank, inst: Mapping[str, Any]) -> bytes:
    """The bank-signed ``institution.closed`` entry of a closed dataset institution row
    (custodian: its ``records_custodian``, else the bank)."""
    custodian = inst.get("records_custodian") or bank.settings.bank_id
    return bank.bank_entry(
        "institution.closed",
        {"institution_id": inst["id"], "closed_on": inst["closed_on"], "custodian": custodian},
    )


def seed_demo(bank: Bank) -> int:
    """Register the sample's institutions (each with its own key) and publish a checkpoint.

    Returns the number of entries appended. Safe to re-run: registered ones are skipped.
    (``creditbank demo`` imports the whole sample instead: see
    :func:`creditbank.service.importer.import_dataset`.)
    """
    registry = bank.ledger.registry()
    raws: list[bytes] = []
    closures: list[bytes] = []
    for inst in sample_json("institutions.json"):
        iid = inst["id"]
        if iid == bank.settings.bank_id or iid in registry.institutions:
            continue
        raws.append(registration_entry(bank, inst, institution_key(bank, iid)))
        if inst.get("closed_on"):
            closures.append(closure_entry(bank, inst))
    if raws or closures:
        bank.ledger.append(raws + closures, publish=True)
    return len(raws) + len(closures)


# -- the demo home: documents and logins on top of the imported sample -----------------------
#: the file in the home that remembers the demo's logins and codes (mode 0600)
DEMO_STATE: Final = "demo.json"
#: the worker's learner (dataset id), who also gets a certificate of a conversion decision
WORKER_LEARNER: Final = "L01"
#: the operator's institution: Donghu Open University posted L01's courses and runs the
#: logistics programme L01 applied to
OPERATOR_INSTITUTION: Final = "INS-OU"
#: learners who get a transcript: a Chinese name (L01), Uyghur and Kazakh names with the
#: middle dot (L12, L14), an Uzbek one (L30)
TRANSCRIPT_LEARNERS: Final = ("L01", "L12", "L14", "L30")
#: demo logins (``.example`` is reserved for examples: no mail ever leaves)
LOGIN_DOMAIN: Final = "demo.example"
_EASY_LETTERS: Final = "abcdefghjkmnpqrstuvwxyz23456789"


def new_password() -> str:
    """A random demo password that is easy to type: ``demo-xxxx-xxxx-xxxx`` (~64 bits)."""
    groups = ("".join(secrets.choice(_EASY_LETTERS) for _ in range(4)) for _ in range(3))
    return "demo-" + "-".join(groups)


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """One demo login: the role, email, password and what the account holds."""

    role: str
    login: str
    password: str
    detail: str


@dataclass(frozen=True, slots=True)
class DemoDocument:
    """One issued demo document with a live verification code."""

    kind: str
    dataset_learner: str
    learner_id: str
    holder: str
    doc_id: str
    code: str
    url: str


@dataclass
class DemoHome:
    """What :func:`prepare_demo` made (or found): logins, documents, timings."""

    base_url: str
    logins: list[DemoLogin] = field(default_factory=list)
    documents: list[DemoDocument] = field(default_factory=list)
    entries_appended: int = 0
    documents_issued: int = 0
    accounts_created: int = 0
    #: step -> seconds (``import``, ``documents``, ``accounts``, ``total``)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def sample(self) -> DemoDocument:
        """The sample verification code to show: the worker's transcript."""
        return self.documents[0]

    def banner(self) -> list[str]:
        """The lines ``creditbank demo`` prints: one URL to open, the logins, a code."""
        s = self.sample
        width = max(len(x.login) for x in self.logins)
        steps = ", ".join(
            f"{k} {v:.1f} s" for k, v in self.seconds.items() if k != "total"
        )
        lines = [
            "",
            f"creditbank demo ready in {self.seconds.get('total', 0.0):.1f} s ({steps}): "
            f"{self.entries_appended} entries, {self.documents_issued} documents rendered, "
            f"{self.accounts_created} accounts made",
            "",
            f"  Open      {self.base_url}/",
            "",
            f"  Sign in at {self.base_url}/signin as:",
        ]
        lines += [
            f"    {x.role:<9}{x.login:<{width}}  password {x.password}   {x.detail}"
            for x in self.logins
        ]
        lines += [
            "",
            f"  Verify (an employer's view): code {s.code}, {s.kind} of {s.holder}",
            f"    {s.url}",
            "  Other documents: "
            + "; ".join(f"{d.kind} of {d.holder} {d.code}" for d in self.documents[1:]),
            "",
            "  Press Ctrl+C to stop. The logins and codes are kept in "
            f"{DEMO_STATE} in the home.",
        ]
        return lines


def _learner_names() -> dict[str, str]:
    return {str(x["id"]): str(x["name_zh"]) for x in sample_json("learners.json")}


def _read_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigurationError(
            f"cannot read {path}: {e}; remove it or use a new demo home", code="demo.state"
        ) from e
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a demo state file", code="demo.state")
    return data


def _write_state(path: Path, state: Mapping[str, Any]) -> None:
    """Replace the state file atomically, readable by the owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _decision_to_certify(bank: Bank, learner_id: str) -> int:
    """The learner's first decision with an active grant (a 学分认定 certificate)."""
    from creditbank.service.conversion import list_applications

    for app in list_applications(bank, learner_id):
        if any(g["status"] == "active" for g in app["grants"]):
            return int(app["entry_index"])
    raise NotFoundError(
        f"learner {learner_id} has no decision with a grant to certify",
        code="document.decision_not_found",
    )


def _live_code(bank: Bank, learner_id: str, doc_id: str, code: str | None) -> str | None:
    """``code`` if it still opens ``doc_id``; else a new code for the document if it is
    valid; else None (issue a new document)."""
    from creditbank.service import issuance, share_codes

    if code is not None:
        try:
            got = share_codes.lookup_code(bank, code, count=False)
        except (NotFoundError, InvalidInputError):
            got = None
        if got is not None and got.state == "valid" and got.doc_id == doc_id:
            return code
    try:
        info = issuance.document_info(bank, doc_id, learner_id)
    except NotFoundError:
        return None
    if info["status"] != "valid":
        return None
    return share_codes.create_share_code(bank, learner_id, doc_id).code


def prepare_demo(
    bank: Bank,
    *,
    progress: Any = None,
    render_workers: int = 2,
    password: Callable[[], str] = new_password,
) -> DemoHome:
    """Make ``bank``'s home a demo home, or bring an existing one up to date.

    1. While a :class:`~creditbank.render.pool.RenderPool` warms up in the background, the
       bundled sample is imported (institutions with their own keys, learners, records,
       corrections, revocations, rules, decided applications; idempotent).
    2. Transcripts for :data:`TRANSCRIPT_LEARNERS` and a certificate of the worker's first
       granted conversion decision are issued through the issuance service, rendered and
       signed in the pool (two documents at a time).
    3. Three accounts are made through the accounts service: a worker holding
       :data:`WORKER_LEARNER`'s records, an operator of :data:`OPERATOR_INSTITUTION`, a bank
       admin, each with a random password.

    Logins, passwords, document ids and their plain verification codes (shown once by the
    issuance service, stored only hashed by the bank) are kept in ``demo.json`` in the home
    (mode 0600), written before each account is made, so a re-run prints the same logins and
    codes and adds nothing; a code that no longer opens its document is replaced by a new
    share code.

    Args:
        bank: an open, validating bank whose home is (or becomes) the demo home.
        progress: the importer's ``progress(step, done, total)``.
        render_workers: processes of the render pool.
        password: makes a new password.

    Raises:
        ConfigurationError: ``demo.base_url`` if the home was made for another public base
            URL (its documents' QR codes and issuer point there); ``demo.state`` for an
            unreadable ``demo.json``; a missing document identity.
        ConflictError: ``account.exists`` / ``account.learner_taken`` if a demo login exists
            whose password ``demo.json`` does not know (use a new home).
        CreditBankError: any refusal of the import, issuance or accounts services.
    """
    from creditbank.service import issuance
    from creditbank.service.accounts import Accounts
    from creditbank.service.conversion import resolve_learner_ref
    from creditbank.service.importer import import_dataset

    clock = bank.clock
    started = clock.monotonic()
    base = bank.settings.public_base_url.rstrip("/")
    path = bank.settings.home / DEMO_STATE
    state = _read_state(path)
    if state.get("base_url", base) != base:
        raise ConfigurationError(
            f"this demo home was made for {state['base_url']} (its documents' QR codes and "
            f"issuer point there), not {base}: serve it on that address or use a new --home",
            code="demo.base_url",
        )
    state["base_url"] = base
    docs_state: dict[str, Any] = state.setdefault("documents", {})
    logins_state: dict[str, Any] = state.setdefault("logins", {})
    plan = [("transcript", ref) for ref in TRANSCRIPT_LEARNERS]
    plan.insert(1, ("certificate", WORKER_LEARNER))
    out = DemoHome(base)

    # 1. import while the render pool starts (only if documents may be missing)
    pool_future: Future[RenderPool] | None = None
    starter = ThreadPoolExecutor(1)
    if any(f"{kind}:{ref}" not in docs_state for kind, ref in plan):
        pool_future = starter.submit(issuance.open_render_pool, bank, render_workers)
    try:
        t0 = clock.monotonic()
        report = import_dataset(bank, resources.files(SAMPLE), progress=progress)
        out.entries_appended = report.entries_appended
        out.seconds["import"] = clock.monotonic() - t0

        # 2. documents
        t0 = clock.monotonic()
        names = _learner_names()
        ids = {ref: resolve_learner_ref(bank, ref) for _, ref in plan}
        lock = threading.Lock()
        todo: list[tuple[str, str]] = []
        for kind, ref in plan:
            key = f"{kind}:{ref}"
            held = docs_state.get(key)
            code = None
            if isinstance(held, dict):
                code = _live_code(bank, ids[ref], str(held["doc_id"]), held.get("code"))
                held["code"] = code
            if code is None:
                todo.append((kind, ref))
        _write_state(path, state)
        if todo:
            if pool_future is None:
                pool_future = starter.submit(issuance.open_render_pool, bank, render_workers)
            pool = pool_future.result()
            render = issuance.pool_renderer(pool)

            def make(item: tuple[str, str]) -> None:
                kind, ref = item
                lid = ids[ref]
                if kind == "certificate":
                    decision = _decision_to_certify(bank, lid)
                    got = issuance.issue_certificate(bank, lid, decision=decision, render=render)
                else:
                    got = issuance.issue_transcript(bank, lid, render=render)
                with lock:
                    docs_state[f"{kind}:{ref}"] = {"doc_id": got.doc_id, "code": got.code}
                    _write_state(path, state)

            with ThreadPoolExecutor(max(1, render_workers)) as threads:
                list(threads.map(make, todo))  # keeps every render process busy
            out.documents_issued = len(todo)
        out.seconds["documents"] = clock.monotonic() - t0
    finally:
        if pool_future is not None:
            # a pool that failed to start has raised already (or the import did first)
            with contextlib.suppress(Exception):
                pool_future.result().close()
        starter.shutdown()
    for kind, ref in plan:
        held = docs_state[f"{kind}:{ref}"]
        code = format_code(str(held["code"]))
        out.documents.append(
            DemoDocument(
                kind, ref, ids[ref], f"{names[ref]} ({ref})", str(held["doc_id"]), code,
                verification_url(base, code),
            )
        )  # fmt: skip

    # 3. accounts
    t0 = clock.monotonic()
    accounts = Accounts(bank)
    registry = bank.ledger.registry()
    inst = registry.institutions[OPERATOR_INSTITUTION]
    worker_id = ids[WORKER_LEARNER]
    roles: list[tuple[Role, str, str]] = [
        ("worker", f"worker@{LOGIN_DOMAIN}", f"{names[WORKER_LEARNER]} ({WORKER_LEARNER}): "
         "records, conversions, documents, share codes"),
        ("operator", f"operator@{LOGIN_DOMAIN}", f"{inst.name_en} ({OPERATOR_INSTITUTION})"),
        ("admin", f"admin@{LOGIN_DOMAIN}", "the bank's admin page"),
    ]  # fmt: skip
    for role, login, detail in roles:
        held = logins_state.get(role)
        if not isinstance(held, dict) or held.get("login") != login:
            held = {"login": login, "password": password()}
            logins_state[role] = held
            _write_state(path, state)  # the password is known before the account exists
        existing = {a.login for a in accounts.of_role(role)}
        if login not in existing:
            pw = str(held["password"])
            if role == "worker":
                accounts.add_worker_for(login, pw, worker_id, names[WORKER_LEARNER])
            elif role == "operator":
                accounts.add_operator(login, pw, OPERATOR_INSTITUTION, "Demo operator")
            else:
                accounts.add_admin(login, pw, "Demo admin")
            out.accounts_created += 1
        out.logins.append(DemoLogin(role, login, str(held["password"]), detail))
    out.seconds["accounts"] = clock.monotonic() - t0
    out.seconds["total"] = clock.monotonic() - started
    return out
