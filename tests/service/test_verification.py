"""Verification service: genuine documents verify by code and by upload; the tampering table
of issue #9 (each case not valid, with the right failing check named); code states; status.

One real bank per module (tests/verify_world.py): the sample dataset imported through the
signed path and six transcripts issued, rendered and PAdES-signed. Every test that changes
state works on its own learner's document.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from verify_world import World, build_world

from creditbank.core.canonical import canonicalize
from creditbank.core.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from creditbank.core.codes import format_code
from creditbank.core.credentials.build import issue, issuer_profile
from creditbank.core.merkle import leaf_hash, node_hash
from creditbank.core.signing import Ed25519Signer
from creditbank.errors import InvalidInputError
from creditbank.render.credential_view import view_from_credential
from creditbank.render.pdf import render_pdf
from creditbank.render.pdfsign import sign_pdf
from creditbank.service import institutions, share_codes
from creditbank.service.keys import load_document_identity
from creditbank.service.verification import (
    CODE_EXPIRED,
    CODE_REVOKED,
    INVALID,
    NOT_FOUND,
    REVOKED,
    VALID,
    VerificationReport,
    Verifier,
    check_label,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("verify") / "home")


@pytest.fixture
def verifier(world: World) -> Verifier:
    return Verifier(world.bank)


# -- tampering helpers (each makes what an attacker or a faulty bank would produce) -----------
def resign(world: World, credential: dict[str, Any]) -> dict[str, Any]:
    """Sign an edited credential again with the bank's real issuer key (so the proof passes
    and the check that guards the edited part must catch it)."""
    s = world.bank.settings
    profile = issuer_profile(s.public_base_url, s.bank_name_zh, s.bank_name_en)
    unsigned = {k: v for k, v in credential.items() if k != "proof"}
    return issue(unsigned, world.bank.issuer, issuer=profile, created=world.clock.now())


def as_upload(credential: dict[str, Any]) -> bytes:
    return canonicalize(credential)


def bank_signed_pdf(world: World, shown: str, attached: bytes, code_of: str) -> bytes:
    """A PDF rendered and signed with the bank's own document identity (an insider or a bank
    bug): it shows ``shown``'s credential, carries ``attached`` and prints ``code_of``'s code
    and QR."""
    issued = world.issued[code_of]
    view = view_from_credential(
        world.credential(shown),
        code=issued.code,
        verify_url=issued.verify_url,
        code_expires_on=world.clock.now().date(),
    )
    identity = load_document_identity(world.bank.settings)
    return sign_pdf(render_pdf(view, attached), identity)


def flip_byte_in_content(pdf: bytes) -> bytes:
    """Change one byte inside the first page's content stream (the file stays parseable)."""
    at = pdf.index(b"stream\n", len(pdf) // 4) + 40
    out = bytearray(pdf)
    out[at] ^= 0x01
    return bytes(out)


def append_incremental_update(pdf: bytes) -> bytes:
    """Append a genuine incremental update (a changed /Info title) after the signature."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    info = writer.trailer["/Info"].get_object() if "/Info" in writer.trailer else None
    if info is None:
        info = generic.DictionaryObject()  # type: ignore[no-untyped-call]
        writer.trailer["/Info"] = writer.add_object(info)
    info[generic.NameObject("/Title")] = generic.TextStringObject("Edited after signing")
    writer.update_container(info)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def first_record(credential: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(position in evidence, evidence item) of the first current record."""
    idx = next(
        r["entryIndex"]
        for r in credential["credentialSubject"]["records"]
        if r["state"] == "current"
    )
    for pos, item in enumerate(credential["evidence"]):
        if item["entryIndex"] == idx:
            return pos, item
    raise AssertionError("no evidence for the first record")


def _root(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(_root(hashes[:k]), _root(hashes[k:]))


def _path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, hashes[:k]), _root(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _root(hashes[:k])]


def forked_credential(world: World, lid: str) -> dict[str, Any]:
    """The learner's credential with its evidence proved against a validly signed checkpoint
    of a different tree of the same size (leaf 0 replaced), as a forked log would give."""
    cred = world.credential(lid)
    size = cred["evidence"][0]["treeSize"]
    leaves = list(world.bank.ledger.leaf_hashes(0, size))
    leaves[0] = leaf_hash(b"a different genesis")
    origin = world.bank.settings.origin
    note = sign_checkpoint(Checkpoint(origin, size, _root(leaves), ()), origin,
                           world.bank.log_signer)  # fmt: skip
    for item in cred["evidence"]:
        assert item["treeSize"] == size
        item["checkpoint"] = note
        item["inclusionPath"] = [
            base64.b64encode(h).decode() for h in _path(item["entryIndex"], leaves)
        ]
    return resign(world, cred)


# -- genuine documents ------------------------------------------------------------------------
def test_code_verifies_with_every_check_named(world: World, verifier: Verifier) -> None:
    issued = world.issued["L01"]
    report = verifier.by_code(issued.code)
    assert report.status == VALID, report.failed
    assert report.verified is True
    names = [c.name for c in report.checks]
    assert names[:2] == ["code", "document.issued"]
    assert "credential.proof" in names
    assert names[-1] == "status"
    cred = world.credential("L01")
    size = cred["evidence"][0]["treeSize"]
    assert f"checkpoint[{size}].signature" in names
    assert f"checkpoint[{size}].consistency" in names
    for rec in cred["credentialSubject"]["records"]:
        for part in ("institution_signature", "inclusion", "name_commitment", "facts"):
            assert f"record[{rec['entryIndex']}].{part}" in names
    assert all(c.ok for c in report.checks)
    assert report.document is not None
    assert report.document.doc_id == issued.doc_id
    assert report.credential is not None
    assert report.credential["credentialSubject"]["name"] == "王建国"
    body = report.to_json()
    assert set(body) >= {"verified", "status", "checks"}
    assert body["checks"][0] == {"name": "code", "ok": True, "detail": report.checks[0].detail}


def test_codes_are_read_as_people_type_them(world: World, verifier: Verifier) -> None:
    code = world.issued["L02"].code
    typed = [code.lower(), format_code(code), " " + format_code(code).lower() + " "]
    if "0" in code:
        typed.append(code.replace("0", "o"))
    if "1" in code:
        typed.append(code.replace("1", "l").lower())
    for text in typed:
        assert verifier.by_code(text).status == VALID, text


def test_each_verification_is_counted_never_who(world: World, verifier: Verifier) -> None:
    lid = "L02"
    learner = world.learner(lid)

    def count() -> tuple[int, Any]:
        (row,) = [
            c for c in share_codes.list_share_codes(world.bank, learner)
            if c["code_id"] == world.issued[lid].code_id
        ]  # fmt: skip
        return row["verifications"], row["last_verified_at"]

    before, _ = count()
    verifier.by_code(world.issued[lid].code)
    verifier.by_code(world.issued[lid].code)
    after, when = count()
    assert after == before + 2
    assert when == "2026-01-15T09:00:00Z"
    verifier.by_code(world.issued[lid].code, count=False)
    assert count()[0] == after


def test_unknown_and_malformed_codes(verifier: Verifier) -> None:
    report = verifier.by_code("0000-0000-0000-0000")
    assert (report.status, report.verified, report.failed) == (NOT_FOUND, False, ["code"])
    assert report.credential is None
    for bad in ("", "nope", "UUUU-UUUU-UUUU-UUUU", "0" * 17, "x" * 100):
        with pytest.raises(InvalidInputError) as e:
            verifier.by_code(bad)
        assert e.value.code == "code.malformed"


def test_genuine_pdf_and_json_uploads_verify(world: World, verifier: Verifier) -> None:
    issued = world.issued["L01"]
    pdf = verifier.by_upload(issued.pdf, "application/pdf")
    assert pdf.status == VALID, pdf.failed
    names = [c.name for c in pdf.checks]
    assert names[:7] == [
        "pdf.signature",
        "pdf.whole_file",
        "pdf.trusted",
        "pdf.credential",
        "document.issued",
        "document.pdf",
        "pdf.verification_code",
    ]
    raw = verifier.by_upload(issued.credential, "application/json")
    assert raw.status == VALID, raw.failed
    pretty = json.dumps(json.loads(issued.credential), indent=2, ensure_ascii=False).encode()
    assert verifier.by_upload(pretty, None).status == VALID
    assert {"pdf.signature", "document.pdf"}.isdisjoint(c.name for c in raw.checks)


def test_uploads_that_are_not_documents_are_refused(verifier: Verifier) -> None:
    for data, media, code in (
        (b"", "application/json", "verify.unsupported"),
        (b"GIF89a", "application/octet-stream", "verify.unsupported"),
        (b"[1, 2]", "application/octet-stream", "verify.unsupported"),
        (b"[1, 2]", "application/json", "verify.not_json"),
        (b"{not json", None, "verify.not_json"),
        (b"%PDF-1.7\nnothing else", "application/pdf", "pdf.not_pdf"),
    ):
        with pytest.raises(InvalidInputError) as e:
            verifier.by_upload(data, media)
        assert e.value.code == code, data


# -- the tampering table (issue #9, "Must show") -------------------------------------------------
Case = Callable[[World, Verifier], tuple[VerificationReport, str, str]]


def case_pdf_byte(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    return v.by_upload(flip_byte_in_content(world.issued["L01"].pdf)), "pdf.signature", INVALID


def case_incremental_update(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    pdf = append_incremental_update(world.issued["L01"].pdf)
    return v.by_upload(pdf), "pdf.whole_file", INVALID


def case_json_edited(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    cred = world.credential("L01")
    cred["credentialSubject"]["name"] = "王建军"
    return v.by_upload(as_upload(cred)), "credential.proof", INVALID


def case_attachment_swapped(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    pdf = bank_signed_pdf(world, "L01", world.issued["L02"].credential, code_of="L01")
    return v.by_upload(pdf), "document.pdf", INVALID


def case_entry_edited(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    cred = world.credential("L01")
    _, item = first_record(cred)
    entry = json.loads(base64.b64decode(item["entry"]))
    entry["body"]["achieved_on"] = "2020-01-01"
    item["entry"] = base64.b64encode(canonicalize(entry)).decode()
    report = v.by_upload(as_upload(resign(world, cred)))
    return report, f"record[{item['entryIndex']}].institution_signature", INVALID


def case_inclusion_other_index(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    cred = world.credential("L01")
    pos, item = first_record(cred)
    other = next(e for e in cred["evidence"] if e["entryIndex"] != item["entryIndex"])
    cred["evidence"][pos]["inclusionPath"] = other["inclusionPath"]
    report = v.by_upload(as_upload(resign(world, cred)))
    return report, f"record[{item['entryIndex']}].inclusion", INVALID


def case_checkpoint_other_key(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    cred = world.credential("L01")
    text = cred["evidence"][0]["checkpoint"]
    cp = verify_checkpoint(text, v.log_key)
    rogue = Ed25519Signer.from_seed(bytes([77]) * 32)
    note = sign_checkpoint(cp, world.bank.settings.origin, rogue)
    for item in cred["evidence"]:
        item["checkpoint"] = note
    report = v.by_upload(as_upload(resign(world, cred)))
    return report, f"checkpoint[{cp.size}].signature", INVALID


def case_qr_of_another(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    pdf = bank_signed_pdf(world, "L01", world.issued["L01"].credential, code_of="L02")
    return v.by_upload(pdf), "pdf.verification_code", INVALID


def case_code_expired(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    new = share_codes.create_share_code(
        world.bank, world.learner("L05"), world.issued["L05"].doc_id, days=1
    )
    world.clock.advance(2 * 86400)
    try:
        report = v.by_code(new.code)
    finally:
        world.clock.advance(-2 * 86400)
    return report, "code", CODE_EXPIRED


def case_code_revoked(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    learner, doc = world.learner("L05"), world.issued["L05"].doc_id
    new = share_codes.create_share_code(world.bank, learner, doc)
    share_codes.revoke_share_code(world.bank, learner, new.code_id)
    return v.by_code(new.code), "code", CODE_REVOKED


def case_record_revoked(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    world.revoke_record("L03", reason="grade entered for the wrong learner")
    return v.by_code(world.issued["L03"].code), "status", REVOKED


def case_transcript_revoked(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    world.revoke_transcript("L04", reason="superseded by a newer transcript")
    return v.by_code(world.issued["L04"].code), "status", REVOKED


def case_forked_log(world: World, v: Verifier) -> tuple[VerificationReport, str, str]:
    cred = forked_credential(world, "L01")
    size = cred["evidence"][0]["treeSize"]
    return v.by_upload(as_upload(cred)), f"checkpoint[{size}].consistency", INVALID


TAMPERING: dict[str, Case] = {
    "one byte of the PDF changed": case_pdf_byte,
    "an incremental update appended after signing": case_incremental_update,
    "the credential JSON edited": case_json_edited,
    "the attachment swapped for another learner's": case_attachment_swapped,
    "one embedded ledger entry edited": case_entry_edited,
    "an inclusion proof for another index": case_inclusion_other_index,
    "a checkpoint signed by another key": case_checkpoint_other_key,
    "the QR of another transcript pasted in": case_qr_of_another,
    "an expired code": case_code_expired,
    "a revoked code": case_code_revoked,
    "a revoked record": case_record_revoked,
    "a revoked transcript": case_transcript_revoked,
    "a forked log": case_forked_log,
}


@pytest.mark.parametrize("case", list(TAMPERING), ids=list(TAMPERING))
def test_tampering_table(world: World, verifier: Verifier, case: str) -> None:
    report, failing, status = TAMPERING[case](world, verifier)
    assert report.verified is False
    assert report.status == status, (report.status, report.failed)
    assert failing in report.failed, (failing, report.failed)
    detail = report.check(failing).detail
    assert detail, "a failed check says why"
    assert check_label(failing, "en") != failing or failing.startswith(("record", "checkpoint"))


def test_the_right_check_fails_and_the_others_hold(world: World, verifier: Verifier) -> None:
    """The crafted cases fail at the part they change, not everywhere."""
    entry, _, _ = case_entry_edited(world, verifier)
    assert "credential.proof" not in entry.failed
    inclusion, name, _ = case_inclusion_other_index(world, verifier)
    assert name.replace("inclusion", "institution_signature") not in inclusion.failed
    forked, name, _ = case_forked_log(world, verifier)
    size = name.split("[")[1].split("]")[0]
    assert f"checkpoint[{size}].signature" not in forked.failed
    assert not [n for n in forked.failed if n.endswith(".inclusion")]
    assert "credential.proof" not in forked.failed
    byte, _, _ = case_pdf_byte(world, verifier)
    assert "pdf.whole_file" not in byte.failed
    update, _, _ = case_incremental_update(world, verifier)
    assert "pdf.signature" not in update.failed
    qr, _, _ = case_qr_of_another(world, verifier)
    assert {"pdf.signature", "pdf.whole_file", "pdf.trusted", "document.issued"}.isdisjoint(
        qr.failed
    )
    assert world.issued["L02"].doc_id in qr.check("pdf.verification_code").detail


def test_expired_and_revoked_codes_show_no_data(world: World, verifier: Verifier) -> None:
    for case in (case_code_expired, case_code_revoked):
        report, _, _ = case(world, verifier)
        assert report.credential is None
        assert report.document is None
        assert [c.name for c in report.checks] == ["code"]
        assert report.code is not None


def test_revoked_record_says_what_when_and_why(world: World, verifier: Verifier) -> None:
    rec = world.revoke_record("L06", reason="certificate withdrawn by the issuer")
    report = verifier.by_code(world.issued["L06"].code)
    assert report.status == REVOKED
    assert report.failed == ["status"]  # everything else still verifies: the paper is genuine
    (cause,) = [r for r in report.revocations if r.what == "record"]
    assert {r.what for r in report.revocations} <= {"record", "basis", "grant", "decision"}
    assert cause.reason == "certificate withdrawn by the issuer"
    assert cause.at.startswith("2026-01-15")
    assert cause.detail == f"{rec['institutionId']}/{rec['recordId']}"
    assert "withdrawn" in report.check("status").detail
    assert report.credential is not None  # the page still shows what was revoked


def test_erased_learner_is_revoked_without_contents(
    tmp_path: Path, world: World, verifier: Verifier
) -> None:
    report = verifier.by_code(world.issued["L05"].code)
    assert report.status == VALID
    institutions.erase(world.bank, world.learner("L05"))
    after = Verifier(world.bank).by_code(world.issued["L05"].code)
    assert after.status == REVOKED
    assert after.credential is None
    assert [r.what for r in after.revocations] == ["erased"]


def test_labels_are_bilingual() -> None:
    assert check_label("record[12].inclusion", "zh") == "记录 #12：包含于公开日志"
    assert check_label("record[12].inclusion", "en") == "Record #12: included in the public log"
    assert check_label("checkpoint[40].consistency", "en").startswith("Checkpoint of size 40")
    assert check_label("status", "zh") == "未被撤销（状态列表）"
    assert check_label("something.else", "en") == "something.else"
