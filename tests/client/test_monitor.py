"""``creditbank monitor`` against the real API (issue #10 item 4; docs/monitor.md).

A clean log (the sample import, and a small hand-built log) reports nothing; a record forged
by the bank itself — written straight into the database with a key the institution never
registered, the tree extended properly and the checkpoint signed by the bank afterwards — is
reported with its index; so is a registry change for the institution, and a checkpoint that
does not extend the saved one (a forked log) or is not signed by the pinned log key.

The monitor talks HTTP to the API app (a TestClient, an ``httpx.Client``); the CLI cases run
the command against uvicorn on a free port.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from creditbank.api.app import create_app
from creditbank.cli.main import main
from creditbank.client.monitor import (
    MonitorReport,
    MonitorState,
    load_state,
    run_monitor,
    save_state,
)
from creditbank.config import Settings
from creditbank.core import merkle
from creditbank.core.canonical import canonicalize
from creditbank.core.entries import build_entry, parse_entry, sign_entry
from creditbank.core.signing import Ed25519Signer, b64encode, entry_key_id
from creditbank.errors import ConfigurationError
from creditbank.service import institutions as svc
from creditbank.service.bank import Bank, init_home, open_bank
from creditbank.service.clock import FixedClock
from creditbank.service.demo import SAMPLE
from creditbank.service.importer import import_dataset
from creditbank.service.keys import LOG_KEY
from creditbank.storage import ledger_repo as repo

from .live import serve

if TYPE_CHECKING:  # tests/conftest.py
    from conftest import Institution

T0 = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
T_IMPORT = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)
#: a key nobody registered (the forger's)
FORGER_SEED = bytes(range(200, 232))
OTHER_SEED = bytes(range(100, 132))
TESTSERVER = "http://testserver"


# -- helpers -----------------------------------------------------------------------------------
def forge_append(bank: Bank, raw: bytes) -> int:
    """Append ``raw`` the way a forging bank would: straight into the database, bypassing the
    service (no signature or key check), extending the Merkle tree properly; then the bank
    signs a checkpoint that includes it. Returns its index."""
    e = parse_entry(raw)
    leaf = merkle.leaf_hash(raw)
    with bank.engine.begin() as conn:
        head = repo.read_head(conn)
        ids = merkle.compact_range(head.size)
        nodes = repo.fetch_nodes(conn, ids)
        grown = merkle.append_leaves(head.size, [nodes[i] for i in ids], [leaf])
        learner = e.body.get("learner")
        repo.insert_entries(
            conn,
            [
                {
                    "idx": head.size,
                    "data": raw,
                    "leaf_hash": leaf,
                    "type": e.type,
                    "issuer": e.issuer,
                    "key_id": e.key_id,
                    "at": e.at,
                    "subject": learner if isinstance(learner, str) else None,
                    "ingested_at": e.at,
                }
            ],
        )
        repo.insert_nodes(conn, grown.nodes)
        repo.write_head(conn, repo.Head(grown.size, grown.root, head.registry_count), e.at)
    cp = bank.ledger.publish(force=True)
    assert cp is not None
    assert cp.size == head.size + 1
    return head.size


def forged_record(inst: Institution, n: int, signer: Ed25519Signer, key_id: str) -> bytes:
    """A ``record.posted`` in ``inst``'s name, signed by ``signer`` under ``key_id``."""
    unsigned = build_entry("record.posted", inst.id, key_id, inst.clock.now(), inst.record_body(n))
    if key_id == entry_key_id(signer.public_bytes):
        return sign_entry(unsigned, signer)
    # a signature by another key under ``key_id``: what a bank without the key could write
    sig = signer.sign(canonicalize(unsigned))
    return canonicalize({**unsigned, "sig": b64encode(sig)})


@dataclass
class Watched:
    """A bank served over the API, and how to run the monitor against it."""

    bank: Bank
    client: TestClient
    state: Path
    tokens: dict[str, str]

    def run(self, institution: str = "INST-1", *, token: bool = True, **kw: Any) -> MonitorReport:
        return run_monitor(
            institution,
            self.state.with_name(f"{institution}.json"),
            url=TESTSERVER,
            token=self.tokens.get(institution) if token else None,
            http=self.client,
            sleep=lambda _s: None,
            **kw,
        )


def codes(report: MonitorReport) -> list[tuple[int | None, str]]:
    return [(a.index if a.index is not None else a.size, a.code) for a in report.alerts]


@pytest.fixture
def small(
    bank: Bank, register_institution: Callable[..., Institution], tmp_path: Path
) -> Iterator[tuple[Watched, Institution, Institution]]:
    """Genesis, INST-1 and INST-2 registered, five records of each; served."""
    one = register_institution("INST-1")
    two = register_institution("INST-2", seed=OTHER_SEED)
    bank.ledger.append(one.records(5), publish=True)
    bank.ledger.append(two.records(5), publish=True)
    tokens = {i: svc.issue_institution_token(bank, i)[0] for i in ("INST-1", "INST-2")}
    with TestClient(create_app(bank.settings, bank=bank)) as client:
        yield Watched(bank, client, tmp_path / "state.json", tokens), one, two


# -- a clean log ---------------------------------------------------------------------------------
@pytest.fixture
def sample(settings_factory: Callable[..., Settings], tmp_path: Path) -> Iterator[Watched]:
    """The bundled sample imported through the signed path, served."""
    bank = init_home(settings_factory(), clock=FixedClock(T_IMPORT))
    try:
        import_dataset(bank, resources.files(SAMPLE))
        bank.ledger.publish(force=True)
        ids = sorted(bank.ledger.registry().institutions)
        tokens = {i: svc.issue_institution_token(bank, i)[0] for i in ids}
        with TestClient(create_app(bank.settings, bank=bank)) as client:
            yield Watched(bank, client, tmp_path / "state.json", tokens)
    finally:
        bank.close()


def test_clean_sample_log_reports_nothing_for_any_institution(sample: Watched) -> None:
    size = sample.bank.ledger.latest_checkpoint().size
    claimed = 0
    for inst in sample.tokens:
        report = sample.run(inst)
        assert report.ok, (inst, report.alerts)
        assert report.first_run
        assert report.state_saved
        assert report.size_after == size
        assert report.verified == report.claimed  # every entry in its name read and verified
        assert report.keys, inst  # its keys and their validity are known
        claimed += report.claimed
        again = sample.run(inst)  # from the saved state: nothing new, still clean
        assert again.ok
        assert not again.first_run
        assert again.claimed == 0
    # the sample's records and corrections, all of them claimed by some institution
    assert claimed > 100


def test_clean_small_log_without_token_checks_keys_only(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, _, _ = small
    report = w.run(token=False)
    assert report.ok, report.alerts
    assert report.claimed == 5
    assert report.verified == 0
    assert any("signatures were not checked" in n for n in report.notes)


# -- forgery -------------------------------------------------------------------------------------
def test_record_forged_with_an_unregistered_key_is_reported_with_its_index(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, one, _ = small
    assert w.run().ok  # the baseline
    forger = Ed25519Signer.from_seed(FORGER_SEED)
    forged = forge_append(w.bank, forged_record(one, 50, forger, entry_key_id(forger.public_bytes)))
    w.bank.ledger.append(one.records(2, start=60), publish=True)  # honest ones after it
    report = w.run()
    assert codes(report) == [(forged, "entry.unknown_key")], report.alerts
    assert f"entry {forged}" in report.alerts[0].detail
    assert report.claimed == 3
    assert report.verified == 2
    # the log itself is consistent: the state advanced, and the alert is kept in it
    state = load_state(w.state.with_name("INST-1.json"), "INST-1")
    assert state is not None
    assert state.size == w.bank.ledger.latest_checkpoint().size
    assert [a["index"] for a in state.alerts] == [forged]
    assert w.run().ok  # reported once
    # another institution's monitor is not alarmed by it
    assert w.run("INST-2").ok


def test_forgery_is_found_on_the_first_run_too(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, one, _ = small
    forger = Ed25519Signer.from_seed(FORGER_SEED)
    forged = forge_append(w.bank, forged_record(one, 50, forger, entry_key_id(forger.public_bytes)))
    report = w.run(token=False)  # the key check needs no token
    assert codes(report) == [(forged, "entry.unknown_key")]


def test_record_under_the_registered_key_id_but_a_wrong_signature_needs_the_token(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, one, _ = small
    assert w.run().ok
    forger = Ed25519Signer.from_seed(FORGER_SEED)
    forged = forge_append(w.bank, forged_record(one, 51, forger, one.key_id))
    blind = w.run(token=False, log_key=None)
    # the listing alone cannot tell: the key id is valid; the note says what was not checked
    assert blind.ok
    assert blind.claimed == 1
    assert any("not checked" in n for n in blind.notes)
    # the same range again, with the token, from a copy of the state before that run
    w2 = Watched(w.bank, w.client, w.state.with_name("fresh.json"), w.tokens)
    report = run_monitor(
        "INST-1", w2.state, url=TESTSERVER, token=w.tokens["INST-1"], http=w.client
    )
    assert codes(report) == [(forged, "entry.signature")]


def test_revoked_key_and_custodian_rules(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, one, two = small
    bank = w.bank
    assert w.run().ok
    assert w.run("INST-2").ok
    bank.clock.advance(60)  # type: ignore[attr-defined]
    svc.revoke_key(bank, "INST-1", one.key_id, effective_at=bank.clock.now(), reason="lost")
    bank.ledger.publish(force=True)
    revoked = forge_append(bank, one.record(70))  # signed now, with the revoked key
    # INST-2 posting "on behalf of" INST-1, which never named it custodian
    not_custodian = forge_append(bank, two.entry("record.posted", one.record_body(71) | {
        "on_behalf_of": "INST-1", "record_id": "R-W71"}))  # fmt: skip
    report = w.run()
    got = codes(report)
    assert (revoked, "entry.revoked_key") in got
    assert (not_custodian, "entry.not_custodian") in got
    assert any(code == "registry.changed" for _, code in got)  # the revocation itself
    assert w.run("INST-2").ok  # INST-2's own key was valid; the claim is about INST-1


# -- registry changes ----------------------------------------------------------------------------
def test_registry_change_for_the_institution_is_reported(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, _, _ = small
    assert w.run().ok
    assert w.run("INST-2").ok
    new_key = Ed25519Signer.from_seed(bytes(range(7, 39)))
    added = svc.add_key(w.bank, "INST-1", new_key.public_bytes).index
    w.bank.ledger.publish(force=True)
    report = w.run()
    assert codes(report) == [(added, "registry.changed")]
    assert entry_key_id(new_key.public_bytes) in report.alerts[0].detail
    assert any(entry_key_id(new_key.public_bytes) in k for k in report.keys)
    assert w.run("INST-2").ok  # not about INST-2


def test_closing_and_naming_a_custodian_is_reported_to_both(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, _, _ = small
    assert w.run().ok
    assert w.run("INST-2").ok
    closed = svc.close_institution(w.bank, "INST-1", closed_on=T0.date(), custodian="INST-2").index
    w.bank.ledger.publish(force=True)
    one, two = w.run(), w.run("INST-2")
    assert codes(one) == [(closed, "registry.changed")]
    assert codes(two) == [(closed, "registry.changed")]
    assert "custodian of INST-1" in two.alerts[0].detail


# -- checkpoints -------------------------------------------------------------------------------
def _home(tmp_path: Path, name: str) -> Settings:
    return Settings(home=tmp_path / name, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL")


def _register(bank: Bank, institution_id: str, seed: bytes) -> None:
    svc.register_institution(
        bank,
        institution_id,
        kind="college",
        name_zh="测试学院",
        name_en=f"Test {institution_id}",
        public_keys=[Ed25519Signer.from_seed(seed).public_bytes],
    )
    bank.ledger.publish(force=True)


def _served(bank: Bank) -> TestClient:
    return TestClient(create_app(bank.settings, bank=bank))


def _with_log_key_of(source: Settings, target: Settings, clock: FixedClock) -> Bank:
    """Reopen ``target``'s home signing checkpoints with ``source``'s log key: a bank showing
    another history under the same key (a fork), or a log key in the wrong hands."""
    shutil.copyfile(source.keys_dir / LOG_KEY, target.keys_dir / LOG_KEY)
    (target.keys_dir / LOG_KEY).chmod(0o600)
    return open_bank(target, clock=clock)


def test_forked_log_is_reported_and_the_state_is_kept(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    a_set, b_set = _home(tmp_path, "a"), _home(tmp_path, "b")
    a = init_home(a_set, clock=clock)
    init_home(b_set, clock=clock).close()  # its own genesis (another issuer key)
    b = _with_log_key_of(a_set, b_set, clock)
    state = tmp_path / "state.json"
    try:
        _register(a, "INST-1", bytes(range(32)))
        with _served(a) as client:
            first = run_monitor("INST-1", state, url=TESTSERVER, http=client)
        assert first.ok
        assert first.size_after == 2
        # the same size, another root, signed with the same log key
        _register(b, "INST-1", bytes(range(32)))
        with _served(b) as client:
            same_size = run_monitor("INST-1", state, url=TESTSERVER, http=client)
            assert codes(same_size) == [(2, "log.fork")]
            assert not same_size.state_saved
            # the forked bank grows: its checkpoint does not extend the verified one
            _register(b, "INST-3", bytes(range(64, 96)))
            grown = run_monitor("INST-1", state, url=TESTSERVER, http=client)
        assert codes(grown) == [(3, "log.inconsistent")]
        saved = load_state(state, "INST-1")
        assert saved is not None
        assert saved.size == 2
        assert saved.root == a.ledger.latest_checkpoint().root
        with _served(a) as client:  # the honest bank still checks out
            assert run_monitor("INST-1", state, url=TESTSERVER, http=client).ok
    finally:
        a.close()
        b.close()


def test_checkpoint_signed_with_another_key_is_reported(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    a = init_home(_home(tmp_path, "a"), clock=clock)
    c = init_home(_home(tmp_path, "c"), clock=clock)
    state = tmp_path / "state.json"
    try:
        with _served(a) as client:
            assert run_monitor("INST-1", state, url=TESTSERVER, http=client).ok
        pinned = json.loads(state.read_text())["log_key"]
        with _served(c) as client:
            report = run_monitor("INST-1", state, url=TESTSERVER, http=client)
        assert [a.code for a in report.alerts] == ["log.key_changed", "checkpoint.signature"]
        assert not report.state_saved
        assert json.loads(state.read_text())["log_key"] == pinned
    finally:
        a.close()
        c.close()


def test_log_key_given_on_the_first_run_is_used_and_pinned(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    a = init_home(_home(tmp_path, "a"), clock=clock)
    c = init_home(_home(tmp_path, "c"), clock=clock)
    try:
        with _served(c) as client:
            report = run_monitor(
                "INST-1", tmp_path / "s.json", url=TESTSERVER, http=client,
                log_key=a.verifier_key,
            )  # fmt: skip
        assert [x.code for x in report.alerts] == ["log.key_changed", "checkpoint.signature"]
        assert not (tmp_path / "s.json").exists()
    finally:
        a.close()
        c.close()


# -- the command ---------------------------------------------------------------------------------
def test_cli_clean_then_forged_names_the_index(
    settings_factory: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve(settings_factory(), tmp_path) as live:
        state = tmp_path / "monitor.json"
        args = ["monitor", "--institution", "INS-T", "--url", live.url, "--state", str(state),
                "--token", live.token]  # fmt: skip
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "no alerts" in out
        assert "INS-T registered" in out
        forger = Ed25519Signer.from_seed(FORGER_SEED)
        body = {
            "record_id": "R-FORGED",
            "dedup_key": "course:INS-T:C-X:2025S",
            "kind": "academic_credit",
            "learner": "LRN-0000000000000000",
            "achieved_on": "2025-01-15",
            "name_commitment": "A" * 43 + "=",
            "payload": {"course_id": "C-X", "course_name_zh": "伪造", "credits": 400,
                        "grade": 99, "term": "2025S"},
        }  # fmt: skip
        now = live.bank.clock.now()
        raw = sign_entry(
            build_entry("record.posted", "INS-T", entry_key_id(forger.public_bytes), now, body),
            forger,
        )
        index = forge_append(live.bank, raw)
        assert main(args) == 1
        got = capsys.readouterr()
        assert f"ALERT index {index} [entry.unknown_key]" in got.out
        assert got.err.strip().splitlines() == [
            f"error: 1 alert(s) for INS-T; first at index {index} [entry.unknown_key] "
            "[monitor.alert]"
        ]
        assert main([*args, "--json"]) == 0  # reported once; the state moved on
        doc = json.loads(capsys.readouterr().out)
        assert doc["alerts"] == []
        assert doc["size_after"] == index + 1


def test_cli_refuses_unusable_state_and_reports_an_unreachable_bank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(*args: str) -> tuple[int, str]:
        code = main(["monitor", "--institution", "INS-A", "--url", "http://127.0.0.1:9", *args])
        return code, capsys.readouterr().err.strip()

    # usage: a state that cannot be written, is not a state, or follows someone else
    code, err = run("--state", str(tmp_path / "missing" / "s.json"))
    assert (code, err.endswith("[monitor.state]")) == (2, True), err
    junk = tmp_path / "junk.json"
    junk.write_text('{"format": "something else"}', encoding="utf-8")
    code, err = run("--state", str(junk))
    assert (code, err.endswith("[monitor.state]")) == (2, True), err
    other = tmp_path / "other.json"
    save_state(other, MonitorState(institution="INS-B", url="http://x", log_key="k+00+AA"))
    code, err = run("--state", str(other))
    assert (code, "follows 'INS-B'" in err) == (2, True), err
    # a bad --log-key is refused (key.bad_vkey, a refusal: exit 1) before any request
    code, err = run("--state", str(tmp_path / "s.json"), "--log-key", "not a key")
    assert (code, err.endswith("[key.bad_vkey]")) == (1, True), err
    # the bank cannot be reached: exit 1, one line, and no state is written
    monkeypatch.setattr("creditbank.client.monitor.BACKOFF", 0.0)
    code, err = run("--state", str(tmp_path / "s.json"))
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.endswith("[monitor.unreachable]")
    assert not (tmp_path / "s.json").exists()


class _WithoutBatch(httpx.BaseTransport):
    """A bank of before ``/log/entry-batch``: that path answers 404; the rest is served."""

    def __init__(self, inner: httpx.BaseTransport, seen: list[str]) -> None:
        self.inner = inner
        self.seen = seen

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.path)
        if request.url.path.endswith("/entry-batch"):
            return httpx.Response(404, json={"code": "not_found"})
        return self.inner.handle_request(request)


def test_entries_are_read_one_by_one_from_a_bank_without_the_batch_endpoint(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, one, _ = small
    forger = Ed25519Signer.from_seed(FORGER_SEED)
    forged = forge_append(w.bank, forged_record(one, 52, forger, one.key_id))
    seen: list[str] = []
    inner = w.client._transport  # the TestClient's ASGI transport
    with httpx.Client(base_url=TESTSERVER, transport=_WithoutBatch(inner, seen)) as http:
        report = run_monitor("INST-1", w.state, url=TESTSERVER, token=w.tokens["INST-1"], http=http)
    assert codes(report) == [(forged, "entry.signature")]
    assert report.verified == 5
    assert sum(p.endswith("/entry-batch") for p in seen) == 1  # asked once, then one by one
    assert sum("/log/entries/" in p for p in seen) == 3 + 6  # 3 registry entries, 6 claims


def test_a_damaged_state_is_refused_not_trusted(
    small: tuple[Watched, Institution, Institution],
) -> None:
    w, _, _ = small
    assert w.run().ok
    path = w.state.with_name("INST-1.json")
    doc = json.loads(path.read_text())
    doc["registry"][1]["entry"] = doc["registry"][2]["entry"]  # INST-2 registered twice
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigurationError, match="does not replay") as err:
        w.run()
    assert err.value.code == "monitor.state"
    doc["registry"] = doc["registry"][:2]
    doc["border"] = doc["border"][1:]  # no longer the compact range of the saved size
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigurationError, match="not a creditbank monitor state"):
        w.run()
