"""Views read from the credential, and the HTML the templates make of them (no PDF here)."""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

import pytest

from creditbank.errors import InvalidInputError
from creditbank.render.credential_view import view_from_credential
from creditbank.render.html import render_html
from creditbank.render.qr import QR_SIZE_MM, QUIET_ZONE, qr_matrix, qr_svg, verification_url
from creditbank.render.views import (
    CertificateView,
    ConversionBlock,
    GrantRow,
    IssuerLine,
    TranscriptView,
    VerificationBlock,
    format_credits,
)

from .samples import BASE_URL, CODE, EXPIRES, certificate_credential, transcript_credential

URL = verification_url(BASE_URL, CODE)


def transcript(cred: dict[str, Any]) -> TranscriptView:
    view = view_from_credential(cred, code=CODE, verify_url=URL, code_expires_on=EXPIRES)
    assert isinstance(view, TranscriptView)
    return view


def test_verification_url_shows_the_formatted_code() -> None:
    assert URL == "http://127.0.0.1:8000/v/7K3M-9Q2R-XW5T-8V4N"
    assert verification_url(BASE_URL + "/", CODE.lower()) == URL
    with pytest.raises(InvalidInputError):
        verification_url("ftp://bank", CODE)


def test_qr_has_a_white_quiet_zone() -> None:
    m = qr_matrix(URL)
    n = len(m)
    assert n == 21 + 4 * ((n - 2 * QUIET_ZONE - 21) // 4) + 2 * QUIET_ZONE
    for i in range(QUIET_ZONE):
        assert not any(m[i])
        assert not any(m[n - 1 - i])
        assert not any(row[i] for row in m)
        assert not any(row[n - 1 - i] for row in m)
    svg = qr_svg(URL)
    assert svg.startswith("<svg")
    assert 'width="40mm"' in svg
    assert "href" not in svg
    # the symbol without its quiet zone is printed at least 30 mm wide, even for long URLs
    for url in (URL, "https://credits.example-provincial-bank.gov.cn/v/7K3M-9Q2R-XW5T-8V4N"):
        n = len(qr_matrix(url))
        assert QR_SIZE_MM * (n - 2 * QUIET_ZONE) / n >= 30


@pytest.mark.parametrize(("centi", "text"), [(400, "4"), (150, "1.5"), (125, "1.25"), (0, "0")])
def test_credits_print_without_trailing_zeros(centi: int, text: str) -> None:
    assert format_credits(centi) == text


def test_transcript_groups_by_institution_then_kind() -> None:
    cred = transcript_credential("L01")
    view = transcript(cred)
    records = cred["credentialSubject"]["records"]
    assert view.record_count == len(records)
    assert view.holder_name == "王建国"
    seen = [s.institution.institution_id for s in view.sections]
    assert seen == list(dict.fromkeys(r["institutionId"] for r in records))
    for section in view.sections:
        kinds = [g.kind for g in section.groups]
        assert len(kinds) == len(set(kinds))
        for group in section.groups:
            assert group.institution == section.institution


def test_states_notes_and_names_come_from_the_credential() -> None:
    view = transcript(transcript_credential("L01"))
    rows = [r for s in view.sections for g in s.groups for r in g.rows]
    by_index = {r.ledger_index: r for r in rows}
    assert by_index[101].state == "corrected"
    revoked = by_index[102]
    assert revoked.state == "revoked"
    assert "2025-02-01" in revoked.state_note_zh
    assert revoked.state_note_en == "成绩录入错误 / grade entered in error"
    assert by_index[103].name_on_record == "王建囯"
    assert by_index[100].name_on_record is None
    facts = {f.label_en: f.value for f in by_index[100].facts}
    assert facts == {"Credits": "4", "Grade": "82", "Term": "2024S"}
    grant = view.conversions[0].grants[1]
    assert grant.voided_on is not None
    assert grant.void_reason
    assert grant.sources == "#105, #106"
    assert view.totals[0].room_left == "8"


def test_closed_institution_names_its_custodian() -> None:
    view = transcript(transcript_credential("L10"))
    closed = [s.institution for s in view.sections if s.institution.institution_id == "INS-VS"]
    assert closed
    assert closed[0].custodian_zh == "江海终身学习学分银行"


def test_certificate_holds_one_record() -> None:
    view = view_from_credential(
        certificate_credential("L01", 0), code=CODE, verify_url=URL, code_expires_on=EXPIRES
    )
    assert isinstance(view, CertificateView)
    assert view.record is not None
    assert view.record.title_zh == "物流管理基础"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("credentialSubject", "name"), None),
        (("validFrom",), "yesterday"),
        (("type",), ["VerifiableCredential"]),
        (("credentialSubject", "records"), {"not": "a list"}),
    ],
)
def test_malformed_credentials_are_refused(path: tuple[str, ...], value: Any) -> None:
    cred = copy.deepcopy(transcript_credential("L01"))
    target = cred
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidInputError) as e:
        view_from_credential(cred, code=CODE, verify_url=URL, code_expires_on=EXPIRES)
    assert e.value.code == "render.credential"


def test_html_escapes_content_and_links_only_the_stylesheet() -> None:
    hostile = '<img src="file:///etc/passwd"><style>body{display:none}</style>'
    html = render_html(transcript(transcript_credential("L01", name=hostile)))
    assert hostile not in html
    assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html
    assert re.findall(r'(?:src|href)="([^"]*)"', html) == ["base.css"]
    assert html.count("<svg") == 1


def test_html_shows_every_section() -> None:
    html = render_html(transcript(transcript_credential("L01")))
    for text in (
        "学习成果证明",
        "Learning Record Transcript",
        "物流管理基础",
        "Fundamentals of Logistics Management",
        "原始记录姓名",
        "已撤销 Revoked",
        "已更正 Corrected",
        "已作废 Voided 2025-07-21",
        "剩余额度 Room left",
        "7K3M-9Q2R-XW5T-8V4N",
        "2025-08-28",
        URL,
    ):
        assert text in html, text


# -- credentials made by the credential core (tests/credential_fixtures.py) ------------------
@pytest.fixture(scope="module")
def world() -> Any:
    from credential_fixtures import make_world

    return make_world()


def test_real_transcript_credential_maps_every_record_and_grant(world: Any) -> None:
    cred = world.transcript_credential()
    view = transcript(cred)
    subject = cred["credentialSubject"]
    assert view.holder_name == subject["name"]
    assert view.issuer.name_zh == cred["issuer"]["issuerNameZh"]
    assert view.issuer.name_en == cred["issuer"]["issuerNameEn"]
    assert view.record_count == len(subject["records"])
    shown = {r.ledger_index: r for s in view.sections for g in s.groups for r in g.rows}
    for rec in subject["records"]:
        row = shown[rec["entryIndex"]]
        assert row.state == rec["state"]
        assert row.title_zh == rec.get("titleZh", rec.get("titleEn", rec["recordId"]))
        assert (row.name_on_record is not None) == rec["nameDiffers"]
        if rec["state"] == "revoked":
            assert row.state_note_en == rec["revocationReason"]
    assert len(view.conversions) == len(subject["conversions"])
    for block, dec in zip(view.conversions, subject["conversions"], strict=True):
        assert block.ledger_index == dec["entryIndex"]
        assert block.credits == format_credits(dec["creditsCenti"])
        for grant_row, grant in zip(block.grants, dec["grants"], strict=True):
            assert grant_row.credits == format_credits(grant["creditsCenti"])
            assert (grant_row.voided_on is not None) == ("voided" in grant)
    assert [t.granted for t in view.totals] == [
        format_credits(t["grantedCenti"]) for t in subject["totals"]
    ]
    html = render_html(view)
    assert subject["name"] in html


def test_real_certificates_of_a_record_and_a_decision(world: Any) -> None:
    for content in (world.certificate_record, world.certificate_conversion):
        cred = world.certificate_credential(content)
        view = view_from_credential(cred, code=CODE, verify_url=URL, code_expires_on=EXPIRES)
        assert isinstance(view, CertificateView)
        assert (view.record is None) == (content.record is None)
        assert view.holder_name in render_html(view)


def test_every_character_of_the_templates_is_in_the_document_fonts() -> None:
    from creditbank.render.fonts import missing_characters
    from creditbank.render.html import TEMPLATE_DIR

    for name in ("transcript.html.j2", "certificate.html.j2", "base.css"):
        source = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
        assert missing_characters(source) == "", name


def _decision() -> ConversionBlock:
    grant = GrantRow(
        target_zh="物流管理基础",
        target_en="Logistics basics",
        credits="4",
        rule="R-OU-LOG-01 v2",
        explanation_zh="依据规则认定",
        explanation_en="granted by the rule",
        sources="#12, #15",
        void_reason="规则有误",
    )
    return ConversionBlock(
        kind="credit_conversion",
        program_zh="物流管理",
        program_en="Logistics management",
        applied_on=date(2026, 11, 2),
        credits="4",
        explanation_zh="认定 4 学分",
        explanation_en="4 credits recognised",
        ledger_index=31,
        institution_zh="开放大学",
        institution_en="Open University",
        grants=(grant,),
    )


def test_a_decision_prints_the_same_strings_on_a_transcript_and_a_certificate() -> None:
    """The font coverage check sees every string each page prints of a decision: its grants'
    rules and sources on both; the programme's institution only on the transcript."""
    block = _decision()
    issuer = IssuerLine("学分银行", "Learning Credit Bank", "did:web:creditbank.localhost")
    verification = VerificationBlock(CODE, "https://b.example/v/x", "<svg/>", date(2027, 5, 1))
    common: dict[str, Any] = {
        "holder_name": "张三",
        "learner_id": "LRN-0000000000000001",
        "issued_on": date(2026, 12, 1),
        "issuer": issuer,
        "credential_id": "urn:uuid:00000000-0000-4000-8000-000000000000",
        "verification": verification,
    }
    transcript_lines = TranscriptView(**common, sections=(), conversions=(block,)).text()
    certificate_lines = CertificateView(**common, conversion=block).text().split("\n")
    grant = block.grants[0]
    for printed in (
        block.program_zh,
        block.explanation_en,
        grant.target_zh,
        grant.rule,
        grant.sources,
        grant.explanation_zh,
        grant.void_reason,
    ):
        assert printed in transcript_lines.split("\n")
        assert printed in certificate_lines
    assert block.institution_zh in transcript_lines.split("\n")
    assert block.institution_zh not in certificate_lines
