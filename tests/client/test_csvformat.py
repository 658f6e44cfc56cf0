"""CSV/JSONL parsing and local validation: every kind, exact credits, bad rows reported."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from creditbank.client import csvformat
from creditbank.client.csvformat import Row, RowError, parse_file, parse_row
from creditbank.core.identity import name_commitment
from creditbank.core.records import validate_record_body
from creditbank.errors import InvalidInputError

from .rows import COLUMNS, learner, record, records, resident_id, write_csv, write_jsonl

TODAY = date(2025, 6, 1)
ISSUER = "INS-T"


def _split(parsed: csvformat.ParsedFile) -> tuple[list[Row], list[RowError]]:
    assert not parsed.known
    return parsed.rows, parsed.errors


def parse(fields: dict[str, Any], n: int = 2) -> Row | RowError:
    return parse_row(n, fields, issuer=ISSUER, today=TODAY)


def ok(fields: dict[str, Any]) -> Row:
    row = parse(fields)
    assert isinstance(row, Row), row
    return row


def bad(fields: dict[str, Any]) -> RowError:
    row = parse(fields)
    assert isinstance(row, RowError), row
    return row


def test_every_kind_gives_a_valid_body() -> None:
    for n in range(10):
        row = ok(record(n))
        assert row.entry_type == "record.posted"
        body = row.complete_body("LRN-" + "A" * 20, bytes(range(16)))
        validate_record_body("record.posted", body, today=TODAY)
        assert body["name_commitment"] == name_commitment(bytes(range(16)), row.name or "")
        assert "learner_name" not in json.dumps(body)


def test_academic_credit_payload_and_default_dedup_key() -> None:
    row = ok(record(1, kind="academic_credit") | {"credits": "1.5", "grade": "82"})
    assert row.body["payload"] == {
        "course_id": "C-001",
        "credits_centi": 150,
        "grade": 82,
        "term": "2024S1",
    }
    assert row.body["dedup_key"] == "course:INS-T:C-001:2024S1"


@pytest.mark.parametrize(
    ("text", "centi"),
    [
        ("4", 400),
        ("1.5", 150),
        ("0.25", 25),
        ("1.50", 150),
        (" 3 ", 300),
        ("0", 0),
        ("1000", 100000),
    ],
)
def test_credits_convert_exactly(text: str, centi: int) -> None:
    assert (
        ok(record(0, kind="academic_credit") | {"credits": text}).body["payload"]["credits_centi"]
        == centi
    )


@pytest.mark.parametrize("text", ["1.005", "-1", "abc", "1e2", "NaN", "1,5", "Infinity", "0x10"])
def test_bad_credits_are_record_credits(text: str) -> None:
    assert bad(record(0, kind="academic_credit") | {"credits": text}).code == "record.credits"


def test_skill_certificate_defaults() -> None:
    row = ok(record(1, kind="skill_certificate") | {"level": "", "expires_on": ""})
    payload = row.body["payload"]
    assert payload["level"] is None  # an unlevelled permit
    assert payload["expires_on"] is None
    assert payload["issued_on"] == row.body["achieved_on"]
    assert row.body["dedup_key"] == "cert:welder:SYN-WELD-000001"


def test_work_experience_defaults() -> None:
    fields = record(4, kind="work_experience")
    fields.pop("dedup_key")
    row = ok(fields)
    assert row.body["achieved_on"] == "2024-12-31"  # end_on
    assert row.body["payload"]["verified_by"] == ISSUER
    assert row.body["dedup_key"] == "work:速达快递:courier:2021-01-01"


def test_default_dedup_keys_of_the_other_kinds() -> None:
    t = record(2, kind="training_hours")
    assert ok(t).body["dedup_key"] == "training:INS-T:T-EU-COURIER:2022-11-2"
    c = record(3, kind="competition_award")
    c.pop("dedup_key")
    assert ok(c).body["dedup_key"] == "award:速达杯快递技能比武:2023:4"
    a = record(1, kind="academic_credit") | {"on_behalf_of": "INS-VS"}
    assert ok(a).body["dedup_key"] == "course:INS-VS:C-001:2024S1"  # the owner's


def test_optional_fields() -> None:
    row = ok(
        record(0, kind="academic_credit")
        | {
            "evidence_sha256": "sha256:" + "AB" * 32,
            "posted_at": "2024-07-15",
            "course_name_zh": "物流管理基础",
            "on_behalf_of": "INS-VS",
        }
    )
    assert row.body["evidence"] == {"sha256": "ab" * 32}
    assert row.body["posted_at"] == "2024-07-15"
    assert row.body["on_behalf_of"] == "INS-VS"
    assert row.body["payload"]["course_name_zh"] == "物流管理基础"


def test_correction_and_revocation_rows() -> None:
    corr = ok(record(5) | {"corrects": "R-000000"})
    assert corr.entry_type == "record.corrected"
    assert corr.body["corrects"] == "R-000000"
    assert corr.journal_key == "record:R-000005"
    rev = ok(
        {
            "record_id": "R-000000",
            "revoke_reason": "考核违规 / assessment irregularity",
            "revoke_effective_on": "2025-05-01",
            "kind": "academic_credit",  # the rest of an exported row is ignored
            "grade": "999",
        }
    )
    assert rev.entry_type == "record.revoked"
    assert rev.identity is None
    assert rev.body == {
        "record_id": "R-000000",
        "reason": "考核违规 / assessment irregularity",
        "effective_on": "2025-05-01",
    }
    assert rev.journal_key == "revocation:R-000000"
    assert rev.complete_body("LRN-X", bytes(16)) == dict(rev.body)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            {"id_number": resident_id(3)[:-1] + ("0" if resident_id(3)[-1] != "0" else "1")},
            "identity.checksum",
        ),
        ({"id_number": "12345"}, "identity.format"),
        (
            {"id_type": "passport", "id_number": "E12345678", "nationality": ""},
            "identity.nationality",
        ),
        ({"id_type": "driver_licence"}, "identity.format"),
        ({"learner_name": ""}, "identity.name"),
        ({"learner_name": "   "}, "identity.name"),
        ({"learner_name": "王" * 201}, "identity.name"),
        ({"learner_name": "王\n建国"}, "identity.name"),
        ({"kind": "diploma"}, "row.kind"),
        ({"kind": ""}, "row.required"),
        ({"record_id": ""}, "row.required"),
        ({"achieved_on": ""}, "row.required"),
        ({"achieved_on": "2024-02-30"}, "record.schema"),
        ({"achieved_on": "2030-01-01"}, "record.future_date"),
        ({"grade": "101"}, "record.schema"),
        ({"grade": "8.5"}, "row.integer"),
        ({"grade": "A"}, "row.integer"),
        ({"term": ""}, "row.required"),
        ({"hours": "8"}, "row.foreign_column"),
        ({"record_id": "bad id with spaces"}, "record.schema"),
        ({"evidence_sha256": "abc"}, "record.schema"),
    ],
)
def test_bad_academic_credit_rows(change: dict[str, str], code: str) -> None:
    fields = {k: v for k, v in (record(3, kind="academic_credit") | change).items() if v != ""}
    assert bad(fields).code == code


@pytest.mark.parametrize(
    ("kind", "change", "code"),
    [
        ("skill_certificate", {"level": "6"}, "record.level_range"),
        ("skill_certificate", {"level": "0"}, "record.level_range"),
        ("skill_certificate", {"expires_on": "2020-01-01"}, "record.expiry_before_issue"),
        ("skill_certificate", {"occupation": "Welder"}, "record.schema"),
        ("training_hours", {"hours": "0"}, "record.schema"),
        ("competition_award", {"tier": "world"}, "record.schema"),
        ("competition_award", {"rank": "-1"}, "record.schema"),
        ("work_experience", {"end_on": "2020-01-01"}, "record.end_before_start"),
        ("work_experience", {"duration_months": ""}, "row.required"),
    ],
)
def test_bad_rows_of_other_kinds(kind: str, change: dict[str, str], code: str) -> None:
    fields = {k: v for k, v in (record(3, kind=kind) | change).items() if v != ""}
    assert bad(fields).code == code


def test_revocation_needs_reason_and_date() -> None:
    assert bad({"record_id": "R-1", "revoke_effective_on": "2025-01-01"}).code == "row.required"
    assert bad({"record_id": "R-1", "revoke_reason": "x"}).code == "row.required"
    assert bad(
        {"record_id": "R-1", "revoke_reason": "x", "revoke_effective_on": "2030-01-01"}
    ).code == ("record.future_date")


def test_messages_never_repeat_personal_data() -> None:
    number = resident_id(9)
    broken = number[:-1] + ("0" if number[-1] != "0" else "1")
    fields = record(9, kind="academic_credit") | {"id_number": broken}
    err = bad(fields)
    assert broken not in err.detail
    assert fields["learner_name"] not in err.detail


def test_csv_file_rows_numbers_and_duplicates(tmp_path: Path) -> None:
    rows = records(6)
    rows[2] = rows[2] | {"grade": "abc", "kind": "academic_credit"}
    rows.append(dict(rows[0]))  # the same record_id again
    path = write_csv(tmp_path / "in.csv", rows)
    good, errors = _split(parse_file(path, issuer=ISSUER, today=TODAY))
    assert [r.row for r in good] == [2, 3, 5, 6, 7]
    assert [(e.row, e.code) for e in errors] == [(4, "row.foreign_column"), (8, "row.duplicate")]
    assert "row 2" in errors[1].detail


def test_csv_with_bom_blank_lines_and_short_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    write_csv(path, records(2))
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    path.write_text(
        "\ufeff" + lines[0] + "\n\n" + lines[1] + "\nR-9,academic_credit\n" + lines[2] + "\n",
        encoding="utf-8",
    )
    good, errors = _split(parse_file(path, issuer=ISSUER, today=TODAY))
    assert [r.row for r in good] == [3, 5]
    assert [(e.row, e.code) for e in errors] == [(4, "row.format")]


def test_csv_with_only_some_columns(tmp_path: Path) -> None:
    fields = record(0, kind="training_hours")
    path = write_csv(tmp_path / "in.csv", [fields], columns=list(fields))
    good, errors = _split(parse_file(path, issuer=ISSUER, today=TODAY))
    assert len(good) == 1
    assert not errors


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"record_id,credit\nR-1,4\n", "unknown column"),
        (b"record_id,kind,kind\n", "repeated column"),
        (b"kind\nacademic_credit\n", "no record_id column"),
        (b"", "is empty"),
        (b"record_id\n\xff\xfe\n", "not UTF-8"),
    ],
)
def test_bad_files(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=fragment) as e:
        parse_file(path, issuer=ISSUER, today=TODAY)
    assert e.value.code == "post.format"


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "in.xlsx"
    path.write_bytes(b"")
    with pytest.raises(InvalidInputError) as e:
        parse_file(path, issuer=ISSUER, today=TODAY)
    assert e.value.code == "post.format"


def test_jsonl_numbers_and_errors(tmp_path: Path) -> None:
    first = record(0, kind="academic_credit") | {"credits": 1.5, "grade": 82}
    path = tmp_path / "in.jsonl"
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps(first, ensure_ascii=False) + "\n")
        f.write("\n")
        f.write(
            json.dumps(record(1) | {"learner_name": "x"}, ensure_ascii=False)[:-1]
            + ',"x":1,"x":2}\n'
        )
        f.write("[1, 2]\n")
        f.write("{not json\n")
        f.write(json.dumps(record(2, kind="academic_credit") | {"grade": 82.0}) + "\n")
        f.write(json.dumps(record(3, kind="academic_credit") | {"credits": 0.1}) + "\n")
        f.write(json.dumps(record(4) | {"nationality": None, "wat": 1}) + "\n")
    good, errors = _split(parse_file(path, issuer=ISSUER, today=TODAY))
    assert [r.row for r in good] == [1, 7]
    assert good[0].body["payload"]["credits_centi"] == 150
    assert good[1].body["payload"]["credits_centi"] == 10
    assert [(e.row, e.code) for e in errors] == [
        (3, "row.format"),
        (4, "row.format"),
        (5, "row.format"),
        (6, "row.integer"),
        (8, "row.unknown_column"),
    ]


def test_jsonl_and_csv_give_the_same_rows(tmp_path: Path) -> None:
    rows = records(20)
    a, _ = _split(parse_file(write_csv(tmp_path / "a.csv", rows), issuer=ISSUER, today=TODAY))
    b, _ = _split(parse_file(write_jsonl(tmp_path / "a.jsonl", rows), issuer=ISSUER, today=TODAY))
    assert [(r.body, r.digest) for r in a] == [(r.body, r.digest) for r in b]


def test_digest_changes_with_content_and_identity() -> None:
    base = ok(record(0))
    assert ok(record(0)).digest == base.digest
    assert ok(record(0) | {"grade": "61"}).digest != base.digest
    assert ok(record(0) | learner(1)).digest != base.digest


def test_parallel_validation_matches_serial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvformat, "PARALLEL_MIN_ROWS", 10)
    monkeypatch.setattr(csvformat, "PARSE_CHUNK", 25)
    rows = records(60)
    rows[7] = rows[7] | {"record_id": ""}
    path = write_csv(tmp_path / "in.csv", rows)
    seen: list[tuple[int, int]] = []
    serial = parse_file(path, issuer=ISSUER, today=TODAY)
    parallel = parse_file(
        path, issuer=ISSUER, today=TODAY, workers=2, progress=lambda n, t: seen.append((n, t))
    )
    assert serial == parallel
    assert seen[0] == (0, 60)
    assert sum(n for n, _ in seen) == 60


def test_columns_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "csv-format.md").read_text(encoding="utf-8")
    for column in COLUMNS:
        assert f"`{column}`" in doc, column


def test_the_documented_example_is_valid(tmp_path: Path) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "csv-format.md").read_text(encoding="utf-8")
    example = doc.split("```csv\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.csv"
    path.write_text(example, encoding="utf-8")
    good, errors = _split(parse_file(path, issuer="INS-OU", today=TODAY))
    assert not errors
    assert [r.entry_type for r in good] == [
        "record.posted",
        "record.posted",
        "record.corrected",
        "record.revoked",
    ]
    assert good[0].body["payload"]["credits_centi"] == 150


def test_known_rows_are_not_validated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = records(6)
    path = write_csv(tmp_path / "in.csv", rows)
    first = parse_file(path, issuer=ISSUER, today=TODAY)
    known = {r.journal_key: r.source for r in first.rows[:4]}
    known["record:R-000003"] = "something else"  # edited since: validated again
    calls: list[int] = []
    real = csvformat.parse_row

    def counting(number: int, fields: dict[str, Any], **kw: Any) -> Row | RowError:
        calls.append(number)
        return real(number, fields, **kw)

    monkeypatch.setattr(csvformat, "parse_row", counting)
    again = parse_file(path, issuer=ISSUER, today=TODAY, known=known)
    assert calls == [5, 6, 7]
    assert again.known == [(2, "record:R-000000"), (3, "record:R-000001"), (4, "record:R-000002")]
    assert [r.row for r in again.rows] == [5, 6, 7]
    # a known row repeated later is still a duplicate
    write_csv(path, [*rows, rows[0]])
    dup = parse_file(path, issuer=ISSUER, today=TODAY, known=known)
    assert [(e.row, e.code) for e in dup.errors] == [(8, "row.duplicate")]


def test_row_key_and_source_digest() -> None:
    assert csvformat.row_key({"record_id": " R-1 "}) == "record:R-1"
    assert csvformat.row_key({"record_id": "R-1", "revoke_reason": "x"}) == "revocation:R-1"
    assert csvformat.row_key({"record_id": ""}) is None
    a = csvformat.source_digest({"record_id": "R-1", "grade": "82", "term": ""})
    assert a == csvformat.source_digest({"grade": 82, "record_id": "R-1"})
    assert a != csvformat.source_digest({"record_id": "R-1", "grade": "83"})
