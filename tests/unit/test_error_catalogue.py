"""The error catalogue against the code: every code raised in ``creditbank/`` is defined in
:mod:`creditbank.error_catalogue`, every entry is raised somewhere or marked reserved, and
``docs/errors.md`` is the catalogue's current rendering.

The raised codes are found by reading the source (AST), not by a list kept here:

* the class-level ``code`` of every :class:`CreditBankError` subclass;
* ``code=`` of every call of such a class: a string literal, or a local name whose every
  assignment in the function is a string literal (``code, what = "x.y", ...``); any other
  expression must be one of :data:`PASSED_ON` (a code taken from an error or answer that is
  itself checked here);
* codes that reach an error through data: rule problems (``bad("rules.x", ...)``,
  ``RuleProblem("rules.x", ...)``) become :class:`RuleValidationError` codes; the returns of
  ``_error_code`` and the values of ``BANK_SCHEMA_CODES`` (core/records.py) and of
  ``_HTTP_CODES`` (api/errors.py);
* the answers written without an exception: ``problem(<status>, "<code>", ...)`` calls and
  catalogue look-ups ``spec("<code>")`` (HTTP routing errors, the CLI's own errors).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import creditbank
from creditbank import error_catalogue
from creditbank.error_catalogue import CATALOGUE, ErrorSpec, render_markdown
from creditbank.errors import (
    AuthError,
    ConfigurationError,
    CreditBankError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
)

PACKAGE = Path(creditbank.__file__).parent
DOC = PACKAGE.parent / "docs" / "errors.md"

#: ``code=`` expressions that pass on a code found elsewhere, and why that code is covered
PASSED_ON: dict[str, str] = {
    "e.code": "re-raised under another class with the code of the error caught",
    "first.code": "RuleValidationError: the first RuleProblem's code (scanned)",
    "problem.code": "the client passes on the bank's own code (the bank's codes are scanned)",
    "code_of(primary)": (
        "core/records.py: a schema violation's code, the returns of _error_code or a value of "
        "BANK_SCHEMA_CODES (both scanned)"
    ),
    "str(item.get('code', e.code))": "a refused registry entry's item code (scanned)",
}
#: names a ``code`` argument may come from: a parameter the callers fill (scanned at the
#: call) or the bank-schema table (scanned)
PASSED_ON_NAMES: frozenset[str] = frozenset({"code"})
#: functions whose first argument is a code that ends up in a raised error
CODE_CARRIERS: frozenset[str] = frozenset({"bad", "RuleProblem"})
#: module-level tables whose values are codes: bank-entry schema codes (core/records.py) and
#: the codes of HTTP routing errors (api/errors.py)
CODE_TABLES: frozenset[str] = frozenset({"BANK_SCHEMA_CODES", "_HTTP_CODES"})
#: catalogue look-ups (and the CLI's `_fail`) whose first argument is a code answered without
#: an exception
LOOKUPS: frozenset[str] = frozenset({"spec", "lookup", "_fail"})


@dataclass
class Scan:
    raised: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    dynamic: list[str] = field(default_factory=list)
    literal_problems: list[tuple[int, str, str]] = field(default_factory=list)
    error_classes: set[str] = field(default_factory=set)
    fstring_codes: list[str] = field(default_factory=list)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _str(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _sources() -> dict[Path, ast.Module]:
    return {
        p: ast.parse(p.read_text(encoding="utf-8"), str(p))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "error_catalogue.py"
    }


def _error_classes(trees: dict[Path, ast.Module]) -> dict[str, ast.ClassDef]:
    classes: dict[str, list[ast.ClassDef]] = defaultdict(list)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes[node.name].append(node)
    errors = {"CreditBankError"}
    grew = True
    while grew:
        grew = False
        for name, defs in classes.items():
            if name in errors:
                continue
            if any(_name(b) in errors for d in defs for b in d.bases):
                errors.add(name)
                grew = True
    return {name: d for name in errors for d in classes[name]}


def _assigned_strings(func: ast.AST, name: str) -> list[str] | None:
    """The string literals ``name`` is assigned in ``func``; None if any assignment is not one
    (or ``name`` is a parameter)."""
    found: list[str] = []
    if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
        params = func.args.args + func.args.kwonlyargs + func.args.posonlyargs
        if any(a.arg == name for a in params):
            return None
    for node in ast.walk(func):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs: list[tuple[ast.expr, ast.expr]] = []
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts, strict=False))
            else:
                pairs = [(target, node.value)]
            for t, v in pairs:
                if isinstance(t, ast.Name) and t.id == name:
                    text = _str(v)
                    if text is None:
                        return None
                    found.append(text)
    return found or None


def _enclosing(node: ast.AST, parents: dict[ast.AST, ast.AST], tree: ast.Module) -> ast.AST:
    """The function around ``node`` (the module if none)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node
    return tree


def scan() -> Scan:
    trees = _sources()
    classes = _error_classes(trees)
    out = Scan(error_classes=set(classes))
    for path, tree in trees.items():
        where = str(path.relative_to(PACKAGE.parent))
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node

        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in classes:
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == "code" for t in stmt.targets)
                        and (text := _str(stmt.value)) is not None
                    ):
                        out.raised[text].add(f"{where}:{stmt.lineno}")
            if isinstance(node, ast.FunctionDef) and node.name == "_error_code":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and (text := _str(ret.value)) is not None:
                        out.raised[text].add(f"{where}:{ret.lineno}")
            if (
                isinstance(node, ast.AnnAssign | ast.Assign)
                and node.value is not None
                and any(
                    isinstance(t, ast.Name) and t.id in CODE_TABLES
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                )
            ):
                for inner in ast.walk(node.value):
                    if isinstance(inner, ast.Dict):
                        for v in inner.values:
                            if (text := _str(v)) is not None:
                                out.raised[text].add(f"{where}:{node.lineno}")
            if not isinstance(node, ast.Call):
                continue
            called = _name(node.func)
            if called in CODE_CARRIERS and node.args and (text := _str(node.args[0])):
                out.raised[text].add(f"{where}:{node.lineno}")
            if called in LOOKUPS and node.args and (text := _str(node.args[0])):
                out.raised[text].add(f"{where}:{node.lineno}")
            if called == "problem" and len(node.args) >= 2:
                status, code = node.args[0], _str(node.args[1])
                if code is not None:
                    out.raised[code].add(f"{where}:{node.lineno}")
                    if isinstance(status, ast.Constant) and isinstance(status.value, int):
                        out.literal_problems.append((status.value, code, f"{where}:{node.lineno}"))
            if called not in classes:
                continue
            for kw in node.keywords:
                if kw.arg != "code":
                    continue
                text = _str(kw.value)
                if text is not None:
                    out.raised[text].add(f"{where}:{node.lineno}")
                    continue
                if isinstance(kw.value, ast.JoinedStr):
                    out.fstring_codes.append(f"{where}:{node.lineno}")
                    continue
                if isinstance(kw.value, ast.Name):
                    names = _assigned_strings(_enclosing(node, parents, tree), kw.value.id)
                    if names is not None:
                        for text in names:
                            out.raised[text].add(f"{where}:{node.lineno}")
                        continue
                    if kw.value.id in PASSED_ON_NAMES:
                        continue
                expr = ast.unparse(kw.value)
                if expr not in PASSED_ON:
                    out.dynamic.append(f"{where}:{node.lineno}: code={expr}")
    return out


@pytest.fixture(scope="module")
def scanned() -> Scan:
    return scan()


def test_the_scan_finds_the_known_shapes(scanned: Scan) -> None:
    """The scanner itself: each way a code reaches an error is seen (so the checks below
    cannot pass by finding nothing)."""
    assert len(scanned.raised) > 300
    assert len(scanned.error_classes) > 25
    for code in (
        "input.invalid",  # a class-level code
        "log.empty",  # code="..." at a raise
        "conversion.void_conflict",  # code, what = "...", ... then code=code
        "rules.missing_key",  # bad("rules.missing_key", ...) -> RuleValidationError
        "rules.overlapping_versions",  # RuleProblem("rules...", ...)
        "record.level_range",  # a return of _error_code
        "registry.schema",  # a value of BANK_SCHEMA_CODES
        "http.uri_too_long",  # problem(414, "http.uri_too_long", ...)
        "usage",  # the CLI's own answer, spec("usage")
        "post.refused",  # the client's BatchRefused joined the root
    ):
        assert code in scanned.raised, code


def test_every_raised_code_is_in_the_catalogue(scanned: Scan) -> None:
    missing = {c: sorted(w) for c, w in scanned.raised.items() if c not in CATALOGUE}
    assert missing == {}, "add these codes to creditbank/error_catalogue.py"


def test_every_catalogue_entry_is_raised_or_reserved(scanned: Scan) -> None:
    unused = sorted(c for c, e in CATALOGUE.items() if not e.reserved and c not in scanned.raised)
    assert unused == [], "raise these codes somewhere, or mark them `| reserved`"
    reserved_but_raised = sorted(
        c for c, e in CATALOGUE.items() if e.reserved and c in scanned.raised
    )
    assert reserved_but_raised == [], "these are raised: drop their `reserved` mark"


def test_codes_are_literal_or_passed_on(scanned: Scan) -> None:
    """A code is written where it is raised; a code computed elsewhere must be one whose
    source this scan reads (see PASSED_ON)."""
    assert scanned.fstring_codes == [], "build no code with an f-string"
    assert scanned.dynamic == [], "a code from an expression the scan cannot follow"


def test_literal_problem_answers_match_the_catalogue(scanned: Scan) -> None:
    """``problem(<status>, "<code>", ...)`` written by hand answers the catalogue's status."""
    assert scanned.literal_problems, "the scan sees the hand-written answers"
    wrong = [
        (where, code, status, CATALOGUE[code].status)
        for status, code, where in scanned.literal_problems
        if code in CATALOGUE and CATALOGUE[code].status != status
    ]
    assert wrong == []


#: error classes that still carry a class-level ``title`` (dead: the catalogue's title wins);
#: BatchForbidden sits in a service module being split, to be dropped there
LEGACY_TITLES: frozenset[str] = frozenset({"BatchForbidden"})


def test_titles_are_defined_in_the_catalogue_only() -> None:
    titled = {
        node.name
        for tree in _sources().values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for stmt in node.body
        if isinstance(stmt, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "title" for t in stmt.targets)
    }
    assert titled <= LEGACY_TITLES


def test_no_keys_family() -> None:
    """``key.*`` is the one family of key codes (``keys.*`` existed beside it)."""
    assert not {c for c in CATALOGUE if c.startswith("keys.")}


def test_entries_are_well_formed() -> None:
    statuses = {400, 401, 403, 404, 405, 406, 409, 413, 414, 415, 422, 429, 431}
    statuses |= {500, 502, 503, 504}
    for e in CATALOGUE.values():
        assert e.status in statuses, e
        assert e.exit_code in (1, 2, 70, 130), e
        assert e.title, e
        assert e.title[0].isupper() or e.code == "creditbank.error", e
        assert e.remedy.endswith("."), e
        assert e.code == e.code.strip().lower(), e
    assert CATALOGUE["internal"].exit_code == 70
    assert CATALOGUE["usage"].exit_code == 2


def test_parse_refuses_malformed_and_duplicate_lines() -> None:
    with pytest.raises(ValueError, match="malformed"):
        error_catalogue._parse("x.y 400 Title | Remedy.")
    with pytest.raises(ValueError, match="twice"):
        error_catalogue._parse("x.y 400 1 A | B.\nx.y 404 1 C | D.")
    parsed = error_catalogue._parse("# c\n\nx.y  409 2  A title | Do this. | reserved\n")
    assert parsed == {"x.y": ErrorSpec("x.y", 409, 2, "A title", "Do this.", reserved=True)}


def test_docs_errors_md_is_current() -> None:
    """docs/errors.md is generated: `python -m creditbank.error_catalogue > docs/errors.md`."""
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/errors.md is stale: run `python -m creditbank.error_catalogue > docs/errors.md`"
    )


def test_an_error_takes_status_exit_code_and_title_from_its_code() -> None:
    e = InvalidInputError("the log is empty", code="log.empty")
    assert (e.http_status, e.exit_code, e.title) == (409, 1, "Empty log")
    plain = InvalidInputError("bad")
    assert (plain.http_status, plain.exit_code, plain.title) == (400, 1, "Invalid input")
    config = ConfigurationError("no home")
    assert (config.http_status, config.exit_code) == (500, 2)
    limited = RateLimitedError("slow down", retry_after=3, code="auth.locked")
    assert limited.http_status == 429
    # a code the catalogue does not define (passed on from elsewhere): the family's entry
    foreign = NotFoundError("gone", code="elsewhere.gone")
    assert (foreign.http_status, foreign.exit_code, foreign.title) == (404, 1, "Not found")
    assert foreign.code == "elsewhere.gone"


def test_client_errors_join_the_root() -> None:
    from creditbank.client.monitor import MonitorError
    from creditbank.client.poster import BatchRefused, ItemProblem, PostError

    refused = BatchRefused(422, ItemProblem(None, "batch.rejected", "entry 0 refused"), [])
    assert isinstance(refused, CreditBankError)
    assert (refused.code, refused.exit_code) == ("post.refused", 1)
    assert (refused.problem.code, refused.status) == ("batch.rejected", 422)
    assert "batch.rejected" in refused.message
    for cls in (PostError, MonitorError):
        assert issubclass(cls, CreditBankError)
        assert cls.code in CATALOGUE


@pytest.mark.parametrize(
    ("exc", "headers"),
    [
        # the code, not the class, decides: an identity refusal is 422 wherever it is raised
        (InvalidInputError("need 17 digits", code="identity.format"), {}),
        (InvalidInputError("the log is empty", code="log.empty"), {}),
        (ForbiddenError("not yours", code="auth.wrong_institution"), {}),
        (RateLimitedError("wait", retry_after=7, code="auth.locked"), {"retry-after": "7"}),
        (AuthError("no token", code="auth.required"), {"www-authenticate": "Bearer"}),
    ],
)
def test_problem_json_comes_from_the_catalogue(
    exc: CreditBankError, headers: dict[str, str]
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from creditbank.api.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    with TestClient(app) as client:
        resp = client.get("/boom")
    entry = CATALOGUE[exc.code]
    assert resp.status_code == entry.status
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert (body["code"], body["title"], body["status"]) == (exc.code, entry.title, entry.status)
    assert body["type"] == f"urn:creditbank:problem:{exc.code}"
    for name, value in headers.items():
        assert resp.headers[name] == value


def test_a_forbidden_batch_answers_its_items() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from creditbank.api.errors import install_error_handlers

    class RefusedBatchError(ForbiddenError):
        def __init__(self, items: list[dict[str, object]]) -> None:
            super().__init__("entry 0 is not yours", code="auth.wrong_institution")
            self.items = items

    app = FastAPI()
    install_error_handlers(app)
    items: list[dict[str, object]] = [{"index": 0, "code": "auth.wrong_institution"}]

    @app.get("/boom")
    def boom() -> None:
        raise RefusedBatchError(items)

    with TestClient(app) as client:
        resp = client.get("/boom")
    assert resp.status_code == 403
    assert resp.json()["items"] == items


def test_cli_answers_come_from_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    from creditbank.cli.main import main

    assert main(["no-such-command"]) == CATALOGUE["usage"].exit_code == 2
    assert capsys.readouterr().err.rstrip().endswith("[usage]")
