"""The ``/v/{code}`` serving path (issue 9's benchmark point) and two verification gaps.

* by code on the serving path: no SQLAlchemy statement per request once a document is warm
  (driver-level reads only), the same report as the general path, a revocation shown on the
  very next request (the status is read per request, never cached);
* verification counts batched in memory: exact after a flush (also under concurrent
  requests), written by the app's graceful shutdown, ``last_verified_at`` never moving back;
* uploads (``POST /verify`` and ``POST /api/v1/verify``) share their own per-address bucket
  (429 + Retry-After), apart from code lookups;
* pyHanko's synchronous signing and validation work from a thread running an event loop.

On SQLite and (with CREDITBANK_TEST_PG_URL) PostgreSQL.
"""

from __future__ import annotations

import asyncio
import io
import re
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pypdf
import pytest
from conftest import engine_database
from sqlalchemy import event, select
from starlette.exceptions import StarletteDeprecationWarning
from verify_world import World, build_world

from creditbank.asgi import create_app
from creditbank.core.codes import normalize_code
from creditbank.core.entries import format_time
from creditbank.render.pdfsign import inspect_pdf_signature, sign_pdf
from creditbank.service.keys import document_trust_roots, load_document_identity
from creditbank.service.share_codes import hash_code
from creditbank.service.verification import Verifier
from creditbank.storage.tables import share_codes_t

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("verify-serving") / "home"
    with engine_database(request.param, request, template=False) as url:
        yield from build_world(home, database_url=url)


def counted(world: World, code: str) -> tuple[int, str | None]:
    """The stored (verify_count, last_verified_at) of a code."""
    with world.bank.engine.connect() as conn:
        row = conn.execute(
            select(share_codes_t.c.verify_count, share_codes_t.c.last_verified_at).where(
                share_codes_t.c.code_hash == hash_code(normalize_code(code))
            )
        ).one()
    return int(row[0]), row[1]


def verdict_of(html: str) -> str:
    m = re.search(r'data-status="([A-Z_]+)"', html)
    assert m is not None, html[:2000]
    return m.group(1)


def test_fast_path_reads_no_sqlalchemy_once_warm_and_matches_the_general_path(
    world: World,
) -> None:
    verifier = Verifier(world.bank, live_ttl=3600.0, count_flush_s=3600.0)
    code = world.issued["L01"].display_code
    assert verifier.by_code_fast(code) is None  # cold: nothing computed on the caller's loop
    assert verifier.counts.pending() == 0  # ... and nothing counted
    first = verifier.by_code_fast(code, cold=True)
    assert first is not None
    assert first.status == "VALID"
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    async def on_a_loop() -> Any:  # what the page does (PostgreSQL: one awaited round trip)
        try:
            return await verifier.aby_code_fast(code)
        finally:
            await verifier.aclose()

    event.listen(world.bank.engine, "before_cursor_execute", seen)
    try:
        warm = verifier.by_code_fast(code.lower().replace("-", ""))
        awaited = asyncio.run(on_a_loop())
    finally:
        event.remove(world.bank.engine, "before_cursor_execute", seen)
    assert warm is not None
    assert awaited is not None
    # the code rows and status causes went to driver connections; aclose wrote the 3 counts
    assert [q for q in statements if not q.startswith(("BEGIN", "UPDATE share_codes"))] == []
    general = verifier.by_code(code, count=False)
    fields = ("status", "checks", "revocations", "code", "live_size", "document")
    assert {k: v for k, v in warm.to_json().items() if k in fields} == {
        k: v for k, v in general.to_json().items() if k in fields
    }
    assert {k: v for k, v in awaited.to_json().items() if k in fields} == {
        k: v for k, v in general.to_json().items() if k in fields
    }
    assert verifier.counts.pending() == 0


def test_a_revocation_shows_on_the_next_page_view(world: World) -> None:
    code = world.issued["L03"].display_code
    with TestClient(create_app(world.bank.settings, bank=world.bank)) as client:
        pages = [client.get(f"/v/{code}", headers=HTML) for _ in range(3)]  # then remembered
        assert [verdict_of(p.text) for p in pages] == ["VALID"] * 3
        assert pages[1].text == pages[2].text == pages[0].text
        assert pages[2].headers["vary"] == "Accept, Accept-Language, Cookie"
        english = client.get(f"/v/{code}?lang=en", headers=HTML)  # never from the page cache
        assert "lang=en" in english.headers.get("set-cookie", "")
        assert 'class="verdict-token"' not in english.text
        assert '<html lang="zh' in pages[2].text
        assert '<html lang="en' in client.get(f"/v/{code}", headers=HTML).text  # the cookie
        client.cookies.clear()
        world.revoke_record("L03", reason="entered for the wrong learner")
        page = client.get(f"/v/{code}", headers=HTML)
        assert verdict_of(page.text) == "REVOKED"
        assert "entered for the wrong learner" in page.text
        world.revoke_transcript("L04", "changed jobs")
        page = client.get(f"/v/{world.issued['L04'].display_code}", headers=HTML)
        assert verdict_of(page.text) == "REVOKED"
        assert "changed jobs" in page.text


def test_counts_are_exact_after_a_flush_under_concurrency(world: World) -> None:
    verifier = Verifier(world.bank, count_flush_s=3600.0)  # only explicit flushes write
    code = world.issued["L02"].code
    before, _ = counted(world, code)
    assert verifier.by_code_fast(code, cold=True) is not None
    with ThreadPoolExecutor(8) as pool:
        reports = list(pool.map(lambda _: verifier.by_code_fast(code), range(199)))
    assert all(r is not None and r.status == "VALID" for r in reports)
    assert counted(world, code)[0] == before  # buffered, not written yet
    assert verifier.counts.pending() == 200
    assert verifier.counts.flush() == 200
    assert verifier.counts.pending() == 0
    assert counted(world, code) == (before + 200, format_time(world.clock.now()))
    assert verifier.counts.flush() == 0  # nothing twice
    assert counted(world, code)[0] == before + 200
    verifier.close()


def test_last_verified_at_never_moves_back(world: World) -> None:
    verifier = Verifier(world.bank, count_flush_s=3600.0)
    code = world.issued["L06"].code  # its own code: the other tests check L02's time
    h = hash_code(normalize_code(code))
    n, _ = counted(world, code)
    verifier.counts.add(h, "2099-01-01T00:00:00Z")
    verifier.counts.flush()
    verifier.counts.add(h, "2000-01-01T00:00:00Z")  # a slower worker's older count
    verifier.counts.flush()
    assert counted(world, code) == (n + 2, "2099-01-01T00:00:00Z")


def test_the_writer_thread_flushes_within_its_interval(world: World) -> None:
    verifier = Verifier(world.bank, count_flush_s=0.05)
    code = world.issued["L02"].code
    n, _ = counted(world, code)
    assert verifier.by_code_fast(code, cold=True) is not None
    for _ in range(400):
        if verifier.counts.pending() == 0 and counted(world, code)[0] == n + 1:
            break
        asyncio.run(asyncio.sleep(0.01))
    assert counted(world, code)[0] == n + 1
    verifier.close()


def test_graceful_shutdown_writes_the_buffered_counts(world: World) -> None:
    code = world.issued["L05"].display_code
    n, _ = counted(world, code)
    app = create_app(world.bank.settings, bank=world.bank)
    with TestClient(app) as client:
        for _ in range(7):
            assert client.get(f"/v/{code}", headers=HTML).status_code == 200
        client.get("/v/AAAA-AAAA-AAAA-AAAA", headers=HTML)  # not a code of ours: not counted
    # the lifespan's shutdown wrote them, whatever the writer thread had done before
    assert app.state.verifier.counts.pending() == 0
    assert counted(world, code)[0] == n + 7


def test_uploads_have_their_own_rate_limit(world: World) -> None:
    code = world.issued["L01"].display_code
    with TestClient(create_app(world.bank.settings, bank=world.bank)) as client:
        statuses = []
        for _ in range(20):  # the burst: 20 uploads at once (these are not documents: 400)
            resp = client.post("/verify", files={"file": ("x.pdf", b"junk", "application/pdf")},
                               headers=HTML)  # fmt: skip
            statuses.append(resp.status_code)
        assert 429 not in statuses
        page = client.post("/verify", files={"file": ("x.pdf", b"junk", "application/pdf")},
                           headers=HTML)  # fmt: skip
        assert page.status_code == 429
        assert int(page.headers["retry-after"]) >= 1
        assert page.headers["content-type"].startswith("text/html")
        api = client.post("/api/v1/verify", content=b"{}",
                          headers={"content-type": "application/json"})  # fmt: skip
        assert api.status_code == 429  # the API shares the page's bucket
        assert api.headers["content-type"].startswith("application/problem+json")
        assert api.json()["code"] == "rate.limited"
        assert int(api.headers["retry-after"]) >= 1
        # code lookups are another bucket, still full
        assert client.get(f"/v/{code}", headers=HTML).status_code == 200
        assert client.get(f"/api/v1/verify/{code}").status_code == 200


def test_pyhanko_signing_and_validation_work_inside_a_running_event_loop(world: World) -> None:
    pdf = world.issued["L01"].pdf
    roots = document_trust_roots(world.bank.settings)
    signer = load_document_identity(world.bank.settings)

    blank = pypdf.PdfWriter()
    blank.add_blank_page(200, 200)
    buf = io.BytesIO()
    blank.write(buf)
    unsigned = buf.getvalue()

    async def in_a_loop() -> tuple[Any, bytes, Any]:
        # what an async route would meet if it called these directly (pyHanko's asyncio.run)
        asyncio.get_running_loop()
        report = inspect_pdf_signature(pdf, roots)
        resigned = sign_pdf(unsigned, signer)
        return report, resigned, inspect_pdf_signature(resigned, roots)

    report, resigned, again = asyncio.run(in_a_loop())
    assert report.problems == ()
    assert report.whole_file
    assert report.trusted
    assert resigned.startswith(unsigned)
    assert again.problems == ()
    assert (again.signatures, again.valid, again.trusted) == (1, True, True)
