"""Issue #12, "nothing written behind an error": 4 threads of applications, application
listings and record posts against a live server (uvicorn on 127.0.0.1) for 60 s, on SQLite
and PostgreSQL. Afterwards every answered error is matched by zero new entries, every success
by exactly its entries, nothing else was appended, and the audit (log, checkpoints,
projections) is clean.

``CREDITBANK_TEST_CONCURRENCY_SECONDS`` shortens the run while developing (default 60).
"""

from __future__ import annotations

import base64
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from records_fixtures import STRANGER, Inst, Learner, batch, commitment
from sample_data import SAMPLE

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.entries import parse_entry
from creditbank.core.signing import Ed25519Signer
from creditbank.service import institutions as svc
from creditbank.service.audit import run_audit
from creditbank.service.bank import Bank, init_home
from creditbank.service.clock import FixedClock
from creditbank.service.importer import import_dataset
from creditbank.storage import ledger_repo

T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
SECONDS = float(os.environ.get("CREDITBANK_TEST_CONCURRENCY_SECONDS", "60"))
PROGRAMS = ("P-OU-MECH", "P-OU-MECH", "P-OU-LOG")

pytestmark = pytest.mark.slow


@dataclass
class Outcome:
    """One answered write: its status and, for a success, the entries it reports."""

    kind: str  # "apply" or "post"
    status: int
    indexes: list[int] = field(default_factory=list)  # new entries the answer reports
    sent: list[bytes] = field(default_factory=list)  # entry bytes posted (records)
    application_id: str | None = None


@dataclass
class Run:
    bank: Bank
    url: str
    learner_tokens: list[str]
    inst: Inst
    learners: list[Learner]
    outcomes: list[Outcome] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, o: Outcome) -> None:
        with self.lock:
            self.outcomes.append(o)


def _serve(bank: Bank) -> Iterator[str]:
    app = create_app(bank.settings, bank=bank)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def engine_kind() -> str:
    """SQLite here; the PostgreSQL run is ``test_integrity_concurrency_pg.py``, a file of its
    own so that the two long runs can go to different workers (``--dist loadfile``)."""
    return "sqlite"


@pytest.fixture
def run(settings_factory: Callable[..., Settings]) -> Iterator[Run]:
    clock = FixedClock(T_IMPORT)
    settings = settings_factory(
        checkpoint_interval=0.5,
        learner_write_burst=1_000_000,
        institution_write_burst=1_000_000,
    )
    bank = init_home(settings, clock=clock)
    try:
        report = import_dataset(bank, SAMPLE)
        tokens = [
            svc.issue_learner_token(bank, lid)[0] for lid in sorted(report.learner_ids.values())
        ]
        signer = Ed25519Signer.from_seed(bytes(range(7, 39)))
        svc.register_institution(
            bank,
            "INS-T",
            kind="college",
            name_zh="测试学院",
            name_en="Test College",
            public_keys=[signer.public_bytes],
        )
        token, _ = svc.issue_institution_token(bank, "INS-T")
        inst = Inst("INS-T", signer, token, clock)
        for url in _serve(bank):
            learners = []
            with httpx.Client(base_url=url, timeout=60) as c:
                for n in range(8):
                    first17 = f"11010119900101{n:03d}"
                    from creditbank.core.identity import gb11643_check_char

                    resp = c.post(
                        "/api/v1/learners/resolve",
                        json={
                            "name": f"学员{n}",
                            "id_type": "resident_id",
                            "id_number": first17 + gb11643_check_char(first17),
                        },
                        headers=inst.auth,
                    )
                    assert resp.status_code in (200, 201), resp.text
                    doc = resp.json()
                    learners.append(
                        Learner(doc["learner_id"], base64.b64decode(doc["salt"]), f"学员{n}")
                    )
            yield Run(bank, url, tokens, inst, learners)
    finally:
        bank.close()


def _applicant(r: Run, stop: threading.Event, offset: int) -> None:
    with httpx.Client(base_url=r.url, timeout=120) as c:
        for n in itertools.count(offset):
            if stop.is_set():
                return
            token = r.learner_tokens[n % len(r.learner_tokens)]
            resp = c.post(
                "/api/v1/me/applications",
                json={"program_id": PROGRAMS[n % len(PROGRAMS)]},
                headers={"Authorization": f"Bearer {token}"},
            )
            o = Outcome("apply", resp.status_code)
            if resp.status_code == 201:
                doc = resp.json()
                o.indexes, o.application_id = [int(doc["entry_index"])], doc["application_id"]
            r.note(o)


def _reader(r: Run, stop: threading.Event) -> None:
    with httpx.Client(base_url=r.url, timeout=120) as c:
        for n in itertools.count():
            if stop.is_set():
                return
            token = r.learner_tokens[n % len(r.learner_tokens)]
            resp = c.get("/api/v1/me/applications", headers={"Authorization": f"Bearer {token}"})
            with r.lock:
                r.reads.append(resp.status_code)


def _poster(r: Run, stop: threading.Event) -> None:
    inst = r.inst
    last_ok: tuple[str, Learner] | None = None  # a record stored by an earlier batch
    with httpx.Client(base_url=r.url, timeout=120) as c:
        for n in itertools.count():
            if stop.is_set():
                return
            raws: list[bytes] = []
            names: list[str | None] = []
            for k in range(10):
                learner = r.learners[(n + k) % len(r.learners)]
                body = inst.body(n * 10 + k, learner)
                if k == 0 and last_ok is not None:  # a correction of an earlier record
                    learner = last_ok[1]
                    body["corrects"] = last_ok[0]
                    body["learner"] = learner.id
                    body["name_commitment"] = commitment(learner.salt, learner.name)
                    raws.append(inst.sign("record.corrected", body))
                elif n % 7 == 3 and k == 5:  # now and then a batch the bank refuses
                    raws.append(inst.sign("record.posted", body, signer=STRANGER))
                else:
                    raws.append(inst.sign("record.posted", body))
                names.append(learner.name)
            resp = c.post(
                "/api/v1/records",
                content=batch(raws, names),
                headers={"Content-Type": "application/json", **inst.auth},
            )
            o = Outcome("post", resp.status_code, sent=raws)
            if resp.status_code in (200, 201):
                results = resp.json()["results"]
                o.indexes = [int(x["index"]) for x in results if not x["duplicate"]]
                last_ok = (f"{inst.id}-R{n * 10 + 1:04d}", r.learners[(n + 1) % len(r.learners)])
            r.note(o)


def test_under_concurrent_writes_every_answer_agrees_with_the_log(run: Run) -> None:
    start = run.bank.ledger.head().size
    stop = threading.Event()
    threads = [
        threading.Thread(target=_applicant, args=(run, stop, 0), name="apply-1"),
        threading.Thread(target=_applicant, args=(run, stop, 7), name="apply-2"),
        threading.Thread(target=_reader, args=(run, stop), name="list"),
        threading.Thread(target=_poster, args=(run, stop), name="post"),
    ]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join(timeout=180)
        assert not t.is_alive(), t.name
    size = run.bank.ledger.head().size
    with run.bank.engine.connect() as conn:
        new = {
            int(row.idx): parse_entry(bytes(row.data))
            for row in ledger_repo.iter_entries(conn, start, size)
        }
    assert sorted(new) == list(range(start, size))
    applies = [o for o in run.outcomes if o.kind == "apply"]
    posts = [o for o in run.outcomes if o.kind == "post"]
    ok_applies = [o for o in applies if o.status == 201]
    ok_posts = [o for o in posts if o.status in (200, 201)]
    assert ok_applies
    assert ok_posts
    assert all(s < 500 or s == 503 for s in [o.status for o in run.outcomes] + run.reads)
    # every success is exactly its entries
    decided = {i for i, e in new.items() if e.type == "conversion.decided"}
    assert sorted(i for o in ok_applies for i in o.indexes) == sorted(decided)
    for o in ok_applies:
        assert new[o.indexes[0]].body["application_id"] == o.application_id
    records = {i for i, e in new.items() if e.type.startswith("record.")}
    reported = [i for o in ok_posts for i in o.indexes]
    assert sorted(reported) == sorted(records)
    for o in ok_posts:
        hashes = {merkle.leaf_hash(raw) for raw in o.sent}
        assert {merkle.leaf_hash(new[i].raw) for i in o.indexes} <= hashes
    # every error is matched by zero new entries
    logged = {merkle.leaf_hash(e.raw) for e in new.values()}
    for o in posts:
        if o.status not in (200, 201):
            assert not logged & {merkle.leaf_hash(raw) for raw in o.sent}, o.status
    # nothing else was appended (no revocations were posted, so no voids)
    assert set(new) == decided | records
    run.bank.ledger.publish()
    report = run_audit(run.bank, workers=2)
    assert report.ok, report.problems[:5]
    print(  # the run's shape, for the record (pytest -s)
        f"\n{SECONDS:.0f} s: {len(applies)} applications ({len(ok_applies)} ok), "
        f"{len(posts)} posts ({len(ok_posts)} ok, {len(records)} record entries), "
        f"{len(run.reads)} listings; statuses "
        f"{sorted({o.status for o in run.outcomes} | set(run.reads))}"
    )
