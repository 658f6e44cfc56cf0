"""The posting flow against the real bank in process: signing, batching, refusals, retries,
journal (tests/client/realbank.py: the API over a fresh SQLite home, through an ASGI
transport; network faults and a lying bank injected at the transport)."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from creditbank.client import poster
from creditbank.client.poster import (
    Journal,
    PostError,
    PostReport,
    default_journal_path,
    generate_key_file,
    load_key_file,
    post_file,
    public_key_line,
)
from creditbank.core import merkle
from creditbank.core.entries import parse_entry, verify_entry_signature
from creditbank.core.signing import Ed25519Signer, entry_key_id, parse_verifier_key
from creditbank.errors import (
    AuthError,
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    VerificationError,
)
from creditbank.service import posting

from .realbank import INSTITUTION, URL, RealBank, real_bank
from .rows import record, records, write_csv

TODAY = date(2025, 6, 1)
RECORDS = "/api/v1/records"
RESOLVE = "/api/v1/learners/resolve"
RESOLVE_BATCH = "/api/v1/learners/resolve-batch"
PROOFS = "/api/v1/log/proofs/inclusion"


@pytest.fixture
def signer() -> Ed25519Signer:
    return Ed25519Signer.from_seed(bytes(range(32)))


@pytest.fixture
def bank(tmp_path: Path, signer: Ed25519Signer) -> Iterator[RealBank]:
    with real_bank(tmp_path / "home", signer) as b:
        yield b


@pytest.fixture
def sleeps() -> list[float]:
    return []


def post(
    path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float], **kw: Any
) -> PostReport:
    kw.setdefault("batch_size", 7)
    kw.setdefault("token", bank.token)
    return post_file(
        path,
        institution=INSTITUTION,
        signer=signer,
        url=URL,
        transport=bank,
        today=TODAY,
        sleep=sleeps.append,
        **kw,
    )


def stored_ids(bank: RealBank) -> Counter[str]:
    return Counter(
        f"{parse_entry(raw).type}:{parse_entry(raw).body['record_id']}" for raw in bank.log()
    )


def journal_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in default_journal_path(path).read_text().splitlines()]


def test_posts_valid_rows_signed_and_never_an_invalid_one(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    rows = records(40, learners=9)
    rows[3] = record(3, learners=9, kind="academic_credit") | {"record_id": "BAD-1", "grade": "101"}
    rows[11] = record(11, learners=9, kind="academic_credit") | {
        "record_id": "BAD-2",
        "achieved_on": "2031-01-01",
    }
    path = write_csv(tmp_path / "in.csv", rows)
    report = post(path, bank, signer, sleeps)
    assert (report.rows, report.posted, report.duplicates, report.skipped) == (40, 38, 0, 0)
    assert [(e.row, e.record_id, e.code) for e in report.invalid] == [
        (5, "BAD-1", "record.schema"),
        (13, "BAD-2", "record.future_date"),
    ]
    assert not report.rejected
    assert not report.ok
    assert "BAD-1" not in bank.received
    assert "BAD-2" not in bank.received
    assert len(bank.log()) == 38
    assert set(stored_ids(bank).values()) == {1}
    assert (bank.calls[RESOLVE_BATCH], bank.calls[RESOLVE]) == (1, 0)  # 9 identities at once
    assert report.learners_resolved == 9
    assert report.batches == 6  # 38 rows in batches of 7
    for raw in bank.log():
        entry = parse_entry(raw)
        verify_entry_signature(entry, signer.public_bytes)
        assert entry.issuer == INSTITUTION
        assert entry.key_id == entry_key_id(signer.public_bytes)
        text = raw.decode()
        assert "id_number" not in text
        assert "王建国" not in text
    assert bank.stored_names() == 38  # the plain names went beside the entries
    lines = journal_lines(path)
    assert lines[0] == {
        "format": "creditbank-post-journal",
        "v": 1,
        "institution": INSTITUTION,
        "url": URL,
    }
    assert len(lines) == 39
    first = bank.first_record_index()
    assert {ln["index"] for ln in lines[1:]} == set(range(first, first + 38))


def test_rerun_skips_what_the_journal_holds(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(20))
    assert post(path, bank, signer, sleeps).ok
    calls = sum(bank.calls.values())
    again = post(path, bank, signer, sleeps)
    assert again.ok
    assert (again.posted, again.duplicates, again.skipped) == (0, 0, 20)
    assert sum(bank.calls.values()) == calls  # nothing sent, nobody resolved
    assert len(bank.log()) == 20


def test_interrupted_run_resumes_without_posting_twice(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(50))

    def stop(done: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        post(path, bank, signer, sleeps, after_batch=stop)
    assert len(bank.log()) == 21
    assert len(journal_lines(path)) == 1 + 21
    report = post(path, bank, signer, sleeps)
    assert report.ok
    assert (report.posted, report.duplicates, report.skipped) == (29, 0, 21)
    assert len(bank.log()) == 50
    assert set(stored_ids(bank).values()) == {1}


def test_crash_between_ack_and_journal_gives_duplicates_not_copies(
    tmp_path: Path,
    bank: RealBank,
    signer: Ed25519Signer,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_csv(tmp_path / "in.csv", records(30))
    real = Journal.record
    calls = {"n": 0}

    def crash_on_second(self: Journal, acks: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")  # the bank stored batch 2, the journal never saw it
        real(self, acks)

    monkeypatch.setattr(Journal, "record", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        post(path, bank, signer, sleeps)
    monkeypatch.setattr(Journal, "record", real)
    assert len(bank.log()) == 14
    assert len(journal_lines(path)) == 1 + 7
    report = post(path, bank, signer, sleeps)
    assert report.ok
    assert (report.posted, report.duplicates, report.skipped) == (16, 7, 7)
    assert len(bank.log()) == 30
    assert set(stored_ids(bank).values()) == {1}
    acks = {ln["key"]: ln for ln in journal_lines(path)[1:]}
    assert len(acks) == 30
    first = bank.first_record_index()
    assert [acks[f"record:R-{n:06d}"]["index"] for n in range(7, 14)] == [
        first + n for n in range(7, 14)
    ]
    assert all(acks[f"record:R-{n:06d}"]["duplicate"] for n in range(7, 14))
    # the journal holds what the log holds (the stored leaf, not the re-signed one), proven
    for n in range(7, 14):
        ack = acks[f"record:R-{n:06d}"]
        stored = bank.entry(first + n)
        assert ack["leaf_hash"] == base64.b64encode(merkle.leaf_hash(stored)).decode()
    assert (report.proven, bank.calls[PROOFS]) == (7, 7)


def test_lost_answer_is_retried_and_answered_as_duplicates(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(14))
    bank.faults["records"].append("lost")
    report = post(path, bank, signer, sleeps)
    assert report.ok
    assert (report.posted, report.duplicates) == (7, 7)
    assert sleeps == [0.5]
    assert len(bank.log()) == 14
    assert set(stored_ids(bank).values()) == {1}


def test_network_errors_and_5xx_are_retried_with_backoff(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(10))
    bank.faults["records"].extend(["connect", "503", "connect"])
    bank.faults["resolve"].extend(["503"])
    report = post(path, bank, signer, sleeps)
    assert report.ok
    assert report.posted == 10
    assert sorted(sleeps) == [0.5, 0.5, 1.0, 2.0]


def test_gives_up_after_bounded_attempts_and_resumes_later(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(21))

    def outage(done: int) -> None:
        if done == 1:
            bank.faults["records"].extend(["connect"] * 4)

    with pytest.raises(PostError) as e:
        post(path, bank, signer, sleeps, attempts=4, after_batch=outage)
    assert e.value.code == "post.unreachable"
    assert "re-run" in e.value.message
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(journal_lines(path)) == 1 + 7
    report = post(path, bank, signer, sleeps)
    assert report.ok
    assert (report.posted, report.skipped) == (14, 7)
    assert len(bank.log()) == 21


def test_refused_items_are_reported_and_the_rest_posted(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    other = record(5, kind="academic_credit") | {"grade": "61"}
    assert post(write_csv(tmp_path / "first.csv", [other]), bank, signer, sleeps).ok
    rows = [record(n, kind="academic_credit") for n in range(20)]  # R-000005 with grade 65
    rows.append(record(3) | {"record_id": "R-C1", "corrects": "R-000003"})
    rows.append(record(4) | {"record_id": "R-C2", "corrects": "NO-SUCH"})
    rows.append(
        {"record_id": "NO-SUCH", "revoke_reason": "void", "revoke_effective_on": "2025-01-01"}
    )
    rows.append(
        {"record_id": "R-000006", "revoke_reason": "void", "revoke_effective_on": "2025-01-01"}
    )
    path = write_csv(tmp_path / "in.csv", rows)
    report = post(path, bank, signer, sleeps)
    assert not report.ok
    assert [(e.row, e.record_id, e.code) for e in report.rejected] == [
        (7, "R-000005", "record.conflict"),
        (23, "R-C2", "record.unknown_target"),
        (24, "NO-SUCH", "record.unknown_target"),
    ]
    assert report.posted == 21
    ids = stored_ids(bank)
    assert ids["record.posted:R-000005"] == 1  # the first run's, grade 61
    assert "record.corrected:R-C1" in ids
    assert "record.revoked:R-000006" in ids
    assert not any(k.endswith(":R-C2") for k in ids)
    assert len(journal_lines(path)) == 1 + 21


def test_refused_identity_rejects_only_that_learners_rows(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    rows = records(30, learners=5)
    bank.refuse_numbers.add(rows[2]["id_number"])
    path = write_csv(tmp_path / "in.csv", rows)
    report = post(path, bank, signer, sleeps)
    assert [e.row for e in report.rejected] == [4, 9, 14, 19, 24, 29]
    assert {e.code for e in report.rejected} == {"identity.checksum"}
    assert report.posted == 24
    assert bank.calls[RESOLVE_BATCH] == 1


def test_too_large_batches_are_split(
    tmp_path: Path,
    bank: RealBank,
    signer: Ed25519Signer,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(posting, "MAX_POST_ENTRIES", 3)  # a bank taking 3 entries a request
    path = write_csv(tmp_path / "in.csv", records(20))
    report = post(path, bank, signer, sleeps, batch_size=10)
    assert report.ok
    assert report.posted == 20
    assert [parse_entry(raw).body["record_id"] for raw in bank.log()] == [
        f"R-{n:06d}" for n in range(20)
    ]
    assert report.batches > 2  # the bank's 413 split the client's batches of 10
    assert bank.calls[RECORDS] > report.batches  # and the refused requests were sent too


def test_refused_token_stops_the_run(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(5))
    with pytest.raises(AuthError):
        post(path, bank, signer, sleeps, token="cbt_wrong")  # noqa: S106 - a wrong test token
    assert not bank.log()


def test_a_row_changed_after_posting_is_reported(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    rows = records(5)
    path = write_csv(tmp_path / "in.csv", rows)
    assert post(path, bank, signer, sleeps).ok
    rows[1] = rows[1] | {"learner_name": "王建华"}
    write_csv(path, rows)
    report = post(path, bank, signer, sleeps)
    assert [(e.row, e.code) for e in report.rejected] == [(3, "post.changed")]
    assert f"index {bank.first_record_index() + 1}" in report.rejected[0].detail
    assert report.skipped == 4
    assert len(bank.log()) == 5


def test_the_same_record_written_differently_is_not_posted_again(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    rows = [record(0, kind="academic_credit") | {"credits": "1.5"}, record(1)]
    path = write_csv(tmp_path / "in.csv", rows)
    assert post(path, bank, signer, sleeps).ok
    rows[0] = rows[0] | {"credits": "1.50", "term": " " + rows[0]["term"]}
    write_csv(path, rows)
    report = post(path, bank, signer, sleeps)
    assert report.ok
    assert (report.skipped, report.posted) == (2, 0)
    assert len(bank.log()) == 2


def test_journal_belongs_to_one_institution_and_bank(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(3))
    assert post(path, bank, signer, sleeps).ok
    with pytest.raises(ConfigurationError, match="url"):
        Journal(default_journal_path(path), institution=INSTITUTION, url="http://other.test")
    with pytest.raises(ConfigurationError, match="institution"):
        Journal(default_journal_path(path), institution="INS-X", url=URL)
    other = tmp_path / "elsewhere.jsonl"
    j = Journal(other, institution=INSTITUTION, url="http://other.test")
    assert not j.acks
    j.close()


def test_journal_is_locked_while_in_use(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = Journal(path, institution=INSTITUTION, url=URL)
    with pytest.raises(ConfigurationError) as e:
        Journal(path, institution=INSTITUTION, url=URL)
    assert e.value.code == "post.journal_busy"
    j.close()
    Journal(path, institution=INSTITUTION, url=URL).close()


def test_torn_journal_tail_is_dropped_and_corruption_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = Journal(path, institution=INSTITUTION, url=URL)
    j.record([poster.Ack("record:R-1", 2, 5, "x", False, "d")])
    j.close()
    with path.open("ab") as f:
        f.write(b'{"key":"record:R-2","row":3,"ind')  # a crash mid-write
    j = Journal(path, institution=INSTITUTION, url=URL)
    assert list(j.acks) == ["record:R-1"]
    j.record([poster.Ack("record:R-2", 3, 6, "y", True, "e")])
    j.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["key"] == "record:R-2"
    path.write_text(lines[0] + "\nnot json\n" + lines[2] + "\n")
    with pytest.raises(ConfigurationError, match="line 2"):
        Journal(path, institution=INSTITUTION, url=URL)
    path.write_text("hello\n")
    with pytest.raises(ConfigurationError, match="not a creditbank journal"):
        Journal(path, institution=INSTITUTION, url=URL)


def test_leaf_hash_of_other_bytes_is_an_error(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    bank.wrong_leaf = True
    path = write_csv(tmp_path / "in.csv", records(3))
    with pytest.raises(VerificationError) as e:
        post(path, bank, signer, sleeps)
    assert e.value.code == "post.leaf_hash"
    assert len(journal_lines(path)) == 1 + 3  # journaled all the same: the bank holds them


def test_dry_run_sends_nothing(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", [*records(4), record(9) | {"grade": "x"}])
    report = post(path, bank, signer, sleeps, dry_run=True)
    assert (report.rows, len(report.invalid), report.posted) == (5, 1, 0)
    assert not bank.calls
    assert not default_journal_path(path).exists()


def test_report_as_dict(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", [*records(3), record(4) | {"grade": "x"}])
    doc = post(path, bank, signer, sleeps).as_dict()
    assert doc["rows"] == 4
    assert doc["posted"] == 3
    assert doc["invalid"] == 1
    assert doc["failures"] == [
        {
            "row": 5,
            "record_id": "R-000004",
            "code": "row.foreign_column",
            "detail": "column(s) grade do not belong to kind work_experience",
        }
    ]


def test_batch_size_bounds(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(1))
    for size in (0, 1001):
        with pytest.raises(InvalidInputError):
            post(path, bank, signer, sleeps, batch_size=size)


# --- key files ------------------------------------------------------------------------------
def test_key_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ins.key"
    signer = generate_key_file(path, INSTITUTION)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith(f"PRIVATE+KEY+{INSTITUTION}+")
    name, loaded = load_key_file(path)
    assert name == INSTITUTION
    assert loaded.public_bytes == signer.public_bytes
    vkey = parse_verifier_key(public_key_line(INSTITUTION, signer))
    assert vkey.public == signer.public_bytes
    assert vkey.name == INSTITUTION
    with pytest.raises(ConflictError):
        generate_key_file(path, INSTITUTION)
    assert load_key_file(path)[1].public_bytes == signer.public_bytes  # untouched


def test_key_file_must_be_private_and_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "ins.key"
    generate_key_file(path, INSTITUTION)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="readable by others"):
        load_key_file(path)
    bad = tmp_path / "bad.key"
    bad.write_text("PRIVATE+KEY+x+00000000+AAAA\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigurationError, match="malformed"):
        load_key_file(bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_key_file(tmp_path / "missing.key")


def test_batch_resolution_and_concurrent_batches(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    rows = records(60, learners=9)
    path = write_csv(tmp_path / "in.csv", rows)
    report = post(path, bank, signer, sleeps, concurrency=3)
    assert report.ok
    assert (report.posted, report.learners_resolved) == (60, 9)
    assert (bank.calls[RESOLVE_BATCH], bank.calls[RESOLVE]) == (1, 0)
    assert set(stored_ids(bank).values()) == {1}
    assert len(journal_lines(path)) == 61
    again = post(path, bank, signer, sleeps, concurrency=3)
    assert (again.posted, again.skipped) == (0, 60)


def test_a_bank_without_batch_resolution_is_asked_once_per_identity(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    bank.no_batch_resolve = True
    rows = records(30, learners=5)
    bank.refuse_numbers.add(rows[2]["id_number"])
    report = post(write_csv(tmp_path / "in.csv", rows), bank, signer, sleeps)
    assert (report.posted, report.learners_resolved) == (24, 4)
    assert [e.row for e in report.rejected] == [4, 9, 14, 19, 24, 29]
    assert {e.code for e in report.rejected} == {"identity.checksum"}
    assert (bank.calls[RESOLVE_BATCH], bank.calls[RESOLVE]) == (1, 5)  # asked once, then 5


# -- proving the journal (issue #12) ------------------------------------------------------------
def test_a_duplicate_answer_the_log_does_not_prove_stops_the_run(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(14))
    bank.faults["records"].append("lost")  # the retry is answered as duplicates
    bank.lie_about_duplicates = True
    with pytest.raises(VerificationError) as e:
        post(path, bank, signer, sleeps)
    assert e.value.code == "post.proof"
    assert "does not match the log" in e.value.message


def test_prove_all_checks_every_row_and_none_checks_nothing(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(20))
    report = post(path, bank, signer, sleeps, prove="all")
    assert (report.posted, report.proven, bank.calls[PROOFS]) == (20, 20, 20)
    assert report.as_dict()["proven"] == 20
    other = write_csv(tmp_path / "again.csv", records(20))
    bank.lie_about_duplicates = True
    quiet = post(other, bank, signer, sleeps, prove="none")  # duplicates, not proven
    assert (quiet.duplicates, quiet.proven, bank.calls[PROOFS]) == (20, 0, 20)
    with pytest.raises(InvalidInputError):
        post(other, bank, signer, sleeps, prove="some")


def test_no_checkpoint_covering_the_rows_is_reported_not_ignored(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(7))
    bank.publish = False
    with pytest.raises(PostError) as e:
        post(path, bank, signer, sleeps, prove="all", proof_wait=0)
    assert e.value.code == "post.unproven"
    bank.publish = True
    again = post(write_csv(tmp_path / "b.csv", records(7)), bank, signer, sleeps, prove="all")
    assert (again.duplicates, again.proven) == (7, 7)


def test_a_checkpoint_signed_by_another_key_is_refused(
    tmp_path: Path, bank: RealBank, signer: Ed25519Signer, sleeps: list[float]
) -> None:
    path = write_csv(tmp_path / "in.csv", records(7))
    origin = parse_verifier_key(bank.log_key()).name
    pinned = poster.format_verifier_key(origin, Ed25519Signer.from_seed(bytes(32)).public_bytes)
    with pytest.raises(VerificationError) as e:
        post(path, bank, signer, sleeps, prove="all", log_key=pinned)
    assert e.value.code == "post.proof"
