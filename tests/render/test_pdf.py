"""Rendered, signed documents checked with independent tools: poppler, zbar, qpdf, pypdf.

Each document is rendered and signed ONCE per module (fixture ``docs``); the 150 dpi PNGs of
every page are kept in ``tests/artifacts/render/`` to be looked at.
"""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import weasyprint
from credential_fixtures import make_world
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pypdf import PdfReader

from creditbank.errors import ConfigurationError, InvalidInputError, VerificationError
from creditbank.render.credential_view import view_from_credential
from creditbank.render.fonts import require_fonts
from creditbank.render.html import TEMPLATE_DIR, render_html
from creditbank.render.pdf import (
    ATTACHMENT_NAME,
    PRODUCER,
    RefusedFetch,
    TemplateFetcher,
    document_stylesheet,
    render_pdf,
)
from creditbank.render.pdfsign import (
    DocumentSigner,
    extract_credential,
    generate_demo_document_identity,
    inspect_pdf_signature,
    load_document_signer,
    sign_pdf,
    verify_pdf_signature,
)
from creditbank.render.qr import verification_url
from creditbank.render.views import DocumentView

from .samples import BASE_URL, CODE, EXPIRES, certificate_credential, encode, transcript_credential

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "render"
NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
URL = verification_url(BASE_URL, CODE)
LONG_NAME = (
    "Maximilian Alexander Konstantin Wolfgang Bartholomew "
    "Featherstonehaugh-Montgomery-Wellington-Cholmondeley the Third"
)
UYGHUR_NAME = "阿依古丽·买买提"
TOOLS = ("pdftoppm", "pdftotext", "pdffonts", "zbarimg", "qpdf")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason="poppler-utils, zbar-tools, qpdf needed"
)


@dataclass
class Doc:
    credential: bytes
    unsigned: bytes
    signed: bytes
    pngs: list[Path]


def run(*args: str | Path) -> str:
    return subprocess.run(
        [str(a) for a in args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def view_of(cred: dict[str, Any]) -> DocumentView:
    return view_from_credential(cred, code=CODE, verify_url=URL, code_expires_on=EXPIRES)


@pytest.fixture(scope="module")
def identity() -> tuple[bytes, bytes, bytes]:
    return generate_demo_document_identity("江海终身学习学分银行", NOW)


@pytest.fixture(scope="module")
def signer(identity: tuple[bytes, bytes, bytes]) -> DocumentSigner:
    ca, cert, key = identity
    return load_document_signer(cert, key, [ca])


@pytest.fixture(scope="module")
def docs(signer: DocumentSigner) -> dict[str, Doc]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    creds = {
        "cjk": transcript_credential("L01"),
        "uyghur": transcript_credential("L14", name=UYGHUR_NAME),
        "latin": transcript_credential("L13", name=LONG_NAME),
        "certificate": certificate_credential("L12", 0),
        "latin-certificate": certificate_credential("L13", 0, name=LONG_NAME),
        "real": make_world().transcript_credential(),
    }
    out = {}
    for tag, cred in creds.items():
        data = encode(cred)
        unsigned = render_pdf(view_of(cred), data)
        signed = sign_pdf(unsigned, signer)
        pdf_path = ARTIFACTS / f"{tag}.pdf"
        pdf_path.write_bytes(signed)
        for old in ARTIFACTS.glob(f"{tag}-*.png"):
            old.unlink()
        run("pdftoppm", "-r", "150", "-png", pdf_path, ARTIFACTS / tag)
        pngs = sorted(ARTIFACTS.glob(f"{tag}-*.png"))
        out[tag] = Doc(data, unsigned, signed, pngs)
    print(f"\nrendered pages in {ARTIFACTS}")
    return out


def text_of(pdf: bytes, tmp_path: Path, *extra: str) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    return run("pdftotext", *extra, path, "-")


# -- content -------------------------------------------------------------------------------
def test_text_holds_the_chinese_name_and_course_titles(
    docs: dict[str, Doc], tmp_path: Path
) -> None:
    text = text_of(docs["cjk"].signed, tmp_path)
    for expected in (
        "王建国",
        "物流管理基础",
        "Fundamentals of Logistics Management",
        "仓储与配送管理",
        "学习成果证明",
        "东湖开放大学",
        "7K3M-9Q2R-XW5T-8V4N",
        "2025-08-28",
        "已撤销 Revoked",
        "原始记录姓名",
        "王建囯",
        "快递业务与运营",
        "已作废 Voided",
    ):
        assert expected in text, expected


def test_uyghur_name_keeps_its_middle_dot(docs: dict[str, Doc], tmp_path: Path) -> None:
    text = text_of(docs["uyghur"].signed, tmp_path)
    assert UYGHUR_NAME in text
    assert UYGHUR_NAME in text_of(docs["certificate"].signed, tmp_path).replace(
        "艾合买提·吐尔逊", UYGHUR_NAME
    )


def _name_words(pdf: bytes, tmp_path: Path) -> list[tuple[float, float, float, str]]:
    """Word boxes of the long name on page 1: (xMin, xMax, yMin, word)."""
    html = text_of(pdf, tmp_path, "-bbox", "-f", "1", "-l", "1")
    page = re.search(r'<page width="([\d.]+)"', html)
    assert page
    words = re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>', html
    )
    parts = set(LONG_NAME.split())
    return [
        (float(a), float(c), float(b), w)
        for a, b, c, w in words
        if w in parts or "Featherstonehaugh" in w
    ]


@pytest.mark.parametrize("tag", ["latin", "latin-certificate"])
def test_long_latin_name_wraps_inside_the_page(
    docs: dict[str, Doc], tmp_path: Path, tag: str
) -> None:
    words = _name_words(docs[tag].signed, tmp_path)
    assert {w for *_, w in words} >= {"Maximilian", "Bartholomew", "Third"}
    lines = {round(y) for _, _, y, _ in words}
    assert len(lines) >= 2, "the long name should wrap onto several lines"
    a4_width = 595.28
    assert all(x0 > 10 and x1 < a4_width - 30 for x0, x1, _, _ in words)


def test_pages_are_a4_and_the_transcript_has_page_numbers(
    docs: dict[str, Doc], tmp_path: Path
) -> None:
    reader = PdfReader(io.BytesIO(docs["cjk"].signed))
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
    n = len(reader.pages)
    text = text_of(docs["cjk"].signed, tmp_path)
    assert f"Page 1 of {n}" in text
    assert f"第 {n} 页 / 共 {n} 页" in text
    assert len(PdfReader(io.BytesIO(docs["certificate"].signed)).pages) == 1


# -- QR -----------------------------------------------------------------------------------
@pytest.mark.parametrize("tag", ["cjk", "uyghur", "certificate"])
def test_qr_decodes_to_exactly_the_verification_url(docs: dict[str, Doc], tag: str) -> None:
    first_page = docs[tag].pngs[0]
    decoded = run("zbarimg", "--raw", "-q", first_page).strip().splitlines()
    assert decoded == [URL]


# -- PDF/A-3b, attachment, metadata, fonts -------------------------------------------------
def test_attachment_is_the_credential_byte_for_byte(docs: dict[str, Doc]) -> None:
    for doc in docs.values():
        assert extract_credential(doc.signed) == doc.credential
        reader = PdfReader(io.BytesIO(doc.signed))
        assert reader.attachments[ATTACHMENT_NAME] == [doc.credential]


def test_credential_is_an_associated_file_with_source_relationship(
    docs: dict[str, Doc], tmp_path: Path
) -> None:
    reader = PdfReader(io.BytesIO(docs["cjk"].signed))
    root = reader.trailer["/Root"]
    af = root["/AF"]
    assert len(af) == 1
    spec = af[0].get_object()
    assert spec["/Type"] == "/Filespec"
    assert spec["/AFRelationship"] == "/Source"
    assert spec["/UF"] == ATTACHMENT_NAME
    assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/application/json"
    names = root["/Names"]["/EmbeddedFiles"]["/Names"]
    assert names[1].get_object() == spec
    path = tmp_path / "doc.pdf"
    path.write_bytes(docs["cjk"].signed)
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)


def test_pdfa_3b_identification_and_output_intent(docs: dict[str, Doc]) -> None:
    reader = PdfReader(io.BytesIO(docs["cjk"].signed))
    xmp = reader.xmp_metadata
    assert xmp is not None
    packet = xmp.stream.get_data()
    assert b'pdfaid:part="3"' in packet
    assert b'pdfaid:conformance="B"' in packet
    intents = reader.trailer["/Root"]["/OutputIntents"]
    assert intents[0].get_object()["/S"] == "/GTS_PDFA1"


@pytest.mark.parametrize("tag", ["cjk", "certificate"])
def test_info_and_xmp_agree_after_signing(docs: dict[str, Doc], tag: str) -> None:
    reader = PdfReader(io.BytesIO(docs[tag].signed))
    info = reader.metadata
    xmp = reader.xmp_metadata
    assert info is not None
    assert xmp is not None
    assert info["/Producer"] == xmp.pdf_producer == PRODUCER
    assert info["/Title"] == xmp.dc_title["x-default"]
    assert [info["/Author"]] == xmp.dc_creator
    assert info["/Creator"] == xmp.xmp_creator_tool
    # and before signing they agreed already
    before = PdfReader(io.BytesIO(docs[tag].unsigned))
    assert before.metadata is not None
    assert before.xmp_metadata is not None
    assert before.metadata["/Producer"] == before.xmp_metadata.pdf_producer == PRODUCER


def test_fonts_are_embedded_subsets(docs: dict[str, Doc], tmp_path: Path) -> None:
    path = tmp_path / "doc.pdf"
    path.write_bytes(docs["cjk"].signed)
    lines = run("pdffonts", path).splitlines()[2:]
    assert lines, "no fonts"
    names = []
    for line in lines:
        cols = line.split()
        name, emb, sub = cols[0], cols[-5], cols[-4]
        assert (emb, sub) == ("yes", "yes"), line
        assert re.fullmatch(r"[A-Z]{6}\+.+", name), line
        names.append(name)
    assert any("Noto-Sans-CJK-SC" in n for n in names)
    assert len(docs["cjk"].signed) < 1_000_000


def test_same_credential_renders_the_same_unsigned_bytes(docs: dict[str, Doc]) -> None:
    cred = certificate_credential("L12", 0)
    assert render_pdf(view_of(cred), encode(cred)) == docs["certificate"].unsigned


# -- signature -----------------------------------------------------------------------------
def test_signature_is_intact_valid_trusted_and_covers_the_whole_file(
    docs: dict[str, Doc], identity: tuple[bytes, bytes, bytes]
) -> None:
    ca = identity[0]
    for doc in docs.values():
        report = verify_pdf_signature(doc.signed, [ca])
        assert (report.intact, report.valid, report.trusted, report.whole_file) == (True,) * 4
        assert report.modification == "NONE"
        assert report.signatures == 1
        assert "Document Signing" in report.signer_subject
        assert report.signing_time is not None


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def test_any_one_byte_change_is_rejected(
    docs: dict[str, Doc], identity: tuple[bytes, bytes, bytes]
) -> None:
    signed = docs["cjk"].signed
    contents = signed.index(b"/Contents <") + len(b"/Contents <")
    positions = [12, 3000, len(signed) // 3, len(signed) // 2, contents + 200, len(signed) - 40]
    for at in positions:
        with pytest.raises((VerificationError, InvalidInputError)):
            verify_pdf_signature(_flip(signed, at), [identity[0]])


def test_an_incremental_update_after_signing_is_rejected(
    docs: dict[str, Doc], identity: tuple[bytes, bytes, bytes]
) -> None:
    signed = docs["cjk"].signed
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    writer.root["/Lang"] = generic.TextStringObject("en")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    updated = out.getvalue()
    assert updated.startswith(signed)
    report = inspect_pdf_signature(updated, [identity[0]])
    assert report.intact
    assert report.valid
    assert not report.whole_file
    with pytest.raises(VerificationError) as e:
        verify_pdf_signature(updated, [identity[0]])
    assert e.value.code == "pdf.not_whole_file"
    with pytest.raises(VerificationError) as e:
        verify_pdf_signature(signed + b"% a comment appended after signing\n", [identity[0]])
    assert e.value.code == "pdf.not_whole_file"


def test_another_root_is_not_trusted(docs: dict[str, Doc]) -> None:
    other_ca = generate_demo_document_identity("Someone else", NOW)[0]
    with pytest.raises(VerificationError) as e:
        verify_pdf_signature(docs["cjk"].signed, [other_ca])
    assert e.value.code == "pdf.untrusted"


def test_unsigned_and_non_pdf_inputs(
    docs: dict[str, Doc], identity: tuple[bytes, bytes, bytes]
) -> None:
    with pytest.raises(VerificationError) as e:
        verify_pdf_signature(docs["cjk"].unsigned, [identity[0]])
    assert e.value.code == "pdf.unsigned"
    for junk in (b"", b"hello", b"%PDF-1.7\n garbage"):
        with pytest.raises(InvalidInputError) as e2:
            verify_pdf_signature(junk, [identity[0]])
        assert e2.value.code == "pdf.not_pdf"
        with pytest.raises(InvalidInputError):
            extract_credential(junk)
    plain = weasyprint.HTML(string="<p>no attachment</p>").write_pdf()
    with pytest.raises(VerificationError) as e:
        extract_credential(plain)
    assert e.value.code == "pdf.no_credential"


# -- fetcher and fonts ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "markup",
    [
        '<img src="file:///etc/passwd">',
        '<link rel="stylesheet" href="http://example.com/x.css">',
        "<style>@import url(https://example.com/x.css);</style>",
        '<img src="../../../pyproject.toml">',
        '<div style="background: url(file:///etc/hostname)">x</div>',
    ],
)
def test_fetcher_refuses_files_outside_the_templates_and_the_network(markup: str) -> None:
    fetcher = TemplateFetcher()
    html = f"<!DOCTYPE html><html><body>{markup}<p>x</p></body></html>"
    with pytest.raises(RefusedFetch):
        weasyprint.HTML(
            string=html, base_url=TEMPLATE_DIR.as_uri() + "/", url_fetcher=fetcher
        ).render()
    assert len(fetcher.refused) == 1


def test_fetcher_serves_the_template_stylesheet() -> None:
    fetcher = TemplateFetcher()
    response = fetcher.fetch((TEMPLATE_DIR / "base.css").as_uri())
    assert response.content_type == "text/css"
    assert b"@page" in response.read()


def test_markup_in_a_name_is_printed_not_fetched(docs: dict[str, Doc], tmp_path: Path) -> None:
    hostile = '<img src="file:///etc/passwd">'
    cred = certificate_credential("L01", 0, name=hostile)
    pdf = render_pdf(view_of(cred), encode(cred))
    assert hostile in text_of(pdf, tmp_path).replace("\n", "")


def test_a_missing_font_is_an_error() -> None:
    with pytest.raises(ConfigurationError) as e:
        require_fonts(("Nonexistent Sans CJK",))
    assert e.value.code == "render.font_missing"


def test_a_character_no_font_draws_is_an_error_not_boxes() -> None:
    cred = certificate_credential("L01", 0, name="ᠠᠯᠲᠠᠨ")  # Mongolian script: not in Noto CJK
    with pytest.raises(InvalidInputError) as e:
        render_pdf(view_of(cred), encode(cred))
    assert e.value.code == "render.glyph_missing"
    assert "U+1820" in e.value.message


def test_a_changed_certificate_copy_in_the_signature_is_not_trusted(
    docs: dict[str, Doc], identity: tuple[bytes, bytes, bytes]
) -> None:
    # byte 100 of the CMS lies in the first certificate of its (unsigned) certificate set:
    # the digest and signature value still verify, the carried copy no longer matches
    signed = docs["cjk"].signed
    contents = signed.index(b"/Contents <") + len(b"/Contents <")
    changed = _flip(signed, contents + 200)
    report = inspect_pdf_signature(changed, [identity[0]])
    assert report.intact
    assert report.valid
    assert not report.trusted
    assert any("outside its validated chain" in p for p in report.problems)
    with pytest.raises(VerificationError) as e:
        verify_pdf_signature(changed, [identity[0]])
    assert e.value.code == "pdf.untrusted"


# -- speed without change: the parsed stylesheet and the reserved signature space --------------
def test_the_stylesheet_parsed_once_lays_out_as_the_linked_one(
    docs: dict[str, Doc], tmp_path: Path
) -> None:
    # render_pdf hands WeasyPrint base.css parsed once per process; WeasyPrint following the
    # page's own <link> must give the same pixels
    cred = certificate_credential("L12", 0)
    linked = weasyprint.HTML(
        string=render_html(view_of(cred)),
        base_url=TEMPLATE_DIR.as_uri() + "/",
        url_fetcher=TemplateFetcher(),
    ).write_pdf()
    assert 'href="base.css"' not in render_html(view_of(cred), link_stylesheet=False)
    assert document_stylesheet() is document_stylesheet()
    pages = {}
    for tag, pdf in (("linked", linked), ("parsed-once", docs["certificate"].unsigned)):
        path = tmp_path / f"{tag}.pdf"
        path.write_bytes(pdf)
        run("pdftoppm", "-r", "60", "-png", path, tmp_path / tag)
        pages[tag] = [p.read_bytes() for p in sorted(tmp_path.glob(f"{tag}-*.png"))]
    assert len(pages["linked"]) == 1
    assert pages["linked"] == pages["parsed-once"]


def test_later_signatures_reuse_the_space_estimated_for_the_first(
    identity: tuple[bytes, bytes, bytes], docs: dict[str, Doc]
) -> None:
    ca, cert, key = identity
    # the same material loads the same signer, so what it learnt is kept across loads
    assert load_document_signer(cert, key, [ca]) is load_document_signer(cert, key, [ca])
    assert load_document_signer(cert, key, [ca, ca]) is not load_document_signer(cert, key, [ca])
    fresh = dataclasses.replace(load_document_signer(cert, key, [ca]), _reserved=[])
    unsigned = docs["certificate"].unsigned
    first = sign_pdf(unsigned, fresh)  # pyHanko estimates the space (a dummy CMS)
    assert len(fresh._reserved) == 1
    second = sign_pdf(unsigned, fresh)  # reuses it
    assert len(fresh._reserved) == 1
    for signed in (first, second):
        m = re.search(rb"/ByteRange \[0 (\d+) (\d+) \d+\]", signed[len(unsigned) :])
        assert m is not None
        assert int(m[2]) - int(m[1]) - 2 == fresh._reserved[0]
        report = verify_pdf_signature(signed, [ca])
        assert (report.intact, report.valid, report.trusted, report.whole_file) == (True,) * 4
