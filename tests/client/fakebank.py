"""An in-memory bank speaking the records API contract, for client tests (httpx.MockTransport).

``POST /api/v1/learners/resolve`` and ``POST /api/v1/records`` as documented in
creditbank/api/routes/records.py: signatures are verified against the institution's key,
bodies validated, plain names checked against the signed commitment, re-posts of the same
content answered as duplicates with the original index, and a batch with any failing entry
refused as a whole (422 problem+json with ``items``). ``failures`` injects transport faults.

The log endpoints the client proves its journal with are served too: the verifier key, a
checkpoint of the whole log signed at once (``publish=False`` holds it back) and inclusion
proofs (RFC 9162 PATH). A duplicate is answered with the stored entry's index and leaf hash;
``lie_about_duplicates`` answers another index instead (a bank whose answer disagrees with
its log).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from creditbank.core import merkle
from creditbank.core.canonical import canonicalize
from creditbank.core.checkpoint import Checkpoint, sign_checkpoint
from creditbank.core.entries import parse_entry, verify_entry_signature
from creditbank.core.identity import normalize_identity, verify_name_commitment
from creditbank.core.records import validate_record_body
from creditbank.core.signing import Ed25519Signer, format_verifier_key
from creditbank.errors import CreditBankError

TOKEN = "cbt_test-token"  # noqa: S105 - a fake bank's test token
ORIGIN = "fake.localhost/log"
LOG_SIGNER = Ed25519Signer.from_seed(bytes(range(60, 92)))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n <= 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_path(m, leaves[:k]), merkle.root_from_leaf_hashes(leaves[k:])]
    return [*_path(m - k, leaves[k:]), merkle.root_from_leaf_hashes(leaves[:k])]


def _problem(status: int, code: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": code, "status": status, "code": code, "detail": detail}
    body.update(extra)
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/problem+json"},
    )


@dataclass
class FakeBank:
    institution: str
    public_key: bytes
    #: entries stored, in log order
    log: list[bytes] = field(default_factory=list)
    #: (group, record_id) -> (index, body digest)
    records: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)
    learners: dict[tuple[str, str, str], tuple[str, bytes]] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    resolve_calls: int = 0
    post_calls: int = 0
    #: record ids of every entry received (also in refused batches)
    received: list[str] = field(default_factory=list)
    #: record_id -> (code, detail): refuse entries of these records
    refuse: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: faults for the next requests to "records" or "resolve": "connect" (no connection),
    #: "503", "lost" (handled, answer lost), "401"
    failures: dict[str, deque[str]] = field(
        default_factory=lambda: {"records": deque(), "resolve": deque()}
    )
    #: identity numbers the bank refuses (422 identity.checksum)
    refuse_numbers: set[str] = field(default_factory=set)
    #: larger batches are refused with 413 and no items
    max_batch: int = 1000
    #: corrupt the leaf hash answered (a bank storing other bytes)
    wrong_leaf: bool = False
    #: offer POST /api/v1/learners/resolve-batch (else 404, as an older bank)
    batch_resolve: bool = False
    resolve_batch_calls: int = 0
    #: sign checkpoints (else GET /log/checkpoint answers 404: nothing published)
    publish: bool = True
    #: answer duplicates with an index off by one (a lying bank)
    lie_about_duplicates: bool = False
    proof_calls: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _problem(401, "auth.invalid_token", "unknown token")
        queue = self.failures["resolve" if "/learners/" in request.url.path else "records"]
        if queue:
            fault = queue.popleft()
            if fault == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            if fault == "503":
                return _problem(503, "storage.unavailable", "database busy")
            if fault == "401":
                return _problem(401, "auth.invalid_token", "token revoked")
            if fault == "lost":
                self.route(request)
                raise httpx.ReadTimeout("timed out", request=request)
        return self.route(request)

    def route(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return self.log_route(request)
        doc = json.loads(request.content)
        if request.url.path == "/api/v1/learners/resolve":
            return self.resolve(doc)
        if request.url.path == "/api/v1/learners/resolve-batch" and self.batch_resolve:
            return self.resolve_batch(doc)
        if request.url.path == "/api/v1/records":
            return self.post(doc)
        return _problem(404, "not_found", request.url.path)

    def log_route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        leaves = [merkle.leaf_hash(raw) for raw in self.log]
        if path == "/api/v1/log/key":
            return httpx.Response(200, text=format_verifier_key(ORIGIN, LOG_SIGNER.public_bytes))
        if path == "/api/v1/log/checkpoint":
            if not self.publish:
                return _problem(404, "log.no_checkpoint", "nothing published")
            root = merkle.root_from_leaf_hashes(leaves)
            note = sign_checkpoint(Checkpoint(ORIGIN, len(leaves), root), ORIGIN, LOG_SIGNER)
            return httpx.Response(200, text=note)
        if path == "/api/v1/log/proofs/inclusion":
            self.proof_calls += 1
            index, size = int(request.url.params["index"]), int(request.url.params["size"])
            if not 0 <= index < size <= len(leaves):
                return _problem(400, "log.bad_range", "index outside the tree")
            return httpx.Response(
                200,
                json={
                    "index": index,
                    "size": size,
                    "leaf_hash": base64.b64encode(leaves[index]).decode(),
                    "path": [base64.b64encode(h).decode() for h in _path(index, leaves[:size])],
                },
            )
        return _problem(404, "not_found", path)

    def resolve(self, doc: dict[str, Any]) -> httpx.Response:
        self.resolve_calls += 1
        if doc["id_number"] in self.refuse_numbers:
            return _problem(422, "identity.checksum", "fails its check character")
        try:
            ident = normalize_identity(doc["id_type"], doc["id_number"], doc.get("nationality"))
        except CreditBankError as e:
            return _problem(422, e.code, e.message)
        key = (ident.doc_type, ident.nationality, ident.number)
        created = key not in self.learners
        if created:
            self.learners[key] = (f"LRN-{secrets.token_hex(10).upper()}", secrets.token_bytes(16))
        learner_id, salt = self.learners[key]
        out = {
            "learner_id": learner_id,
            "salt": base64.b64encode(salt).decode(),
            "created": created,
        }
        return httpx.Response(201 if created else 200, json=out)

    def resolve_batch(self, doc: dict[str, Any]) -> httpx.Response:
        self.resolve_batch_calls += 1
        results: list[dict[str, Any]] = []
        for item in doc["learners"]:
            answer = self.resolve(item)
            self.resolve_calls -= 1  # counted as one batch call
            got = json.loads(answer.content)
            if answer.status_code == 422:
                results.append({"error": {"code": got["code"], "detail": got["detail"]}})
            else:
                results.append(got)
        return httpx.Response(200, json={"results": results})

    def post(self, doc: dict[str, Any]) -> httpx.Response:
        self.post_calls += 1
        entries, names = doc["entries"], doc.get("names") or [None] * len(doc["entries"])
        if len(entries) > self.max_batch:
            return _problem(413, "input.too_large", f"batch of {len(entries)} entries")
        salts = {lid: salt for lid, salt in self.learners.values()}
        items: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        staged: dict[tuple[str, str], tuple[int, bytes]] = {}
        new: list[tuple[int, bytes, str | None]] = []
        for i, obj in enumerate(entries):
            raw = canonicalize(obj)
            entry = parse_entry(raw)
            body = entry.body
            rid = str(body["record_id"])
            self.received.append(rid)
            group = "revocation" if entry.type == "record.revoked" else "record"
            try:
                verify_entry_signature(entry, self.public_key)
                validate_record_body(entry.type, body, today=date.max)
                if entry.type != "record.revoked":
                    verify_name_commitment(
                        salts[body["learner"]], names[i], body["name_commitment"]
                    )
            except CreditBankError as e:
                items.append({"index": i, "code": e.code, "detail": e.message})
                continue
            if rid in self.refuse:
                code, detail = self.refuse[rid]
                items.append({"index": i, "code": code, "detail": detail})
                continue
            digest = hashlib.sha256(canonicalize(dict(body))).digest()
            known = self.records.get((group, rid)) or staged.get((group, rid))
            if known is not None:
                if known[1] != digest:
                    items.append({"index": i, "code": "record.conflict", "detail": "other content"})
                    continue
                index = known[0] + (1 if self.lie_about_duplicates else 0)
                stored = (
                    self.log[index]
                    if index < len(self.log)
                    else next((r for n, r, _ in new if n == index), raw)
                )
                leaf = base64.b64encode(merkle.leaf_hash(stored)).decode()
                results.append({"index": index, "leaf_hash": leaf, "duplicate": True})
                continue
            target = body.get("corrects") or (rid if group == "revocation" else None)
            if (
                target
                and ("record", target) not in self.records
                and ("record", target) not in staged
            ):
                items.append({"index": i, "code": "record.unknown_target", "detail": target})
                continue
            index = len(self.log) + len(new)
            staged[(group, rid)] = (index, digest)
            new.append((index, raw, names[i]))
            leaf = base64.b64encode(
                merkle.leaf_hash(raw + (b" " if self.wrong_leaf else b""))
            ).decode()
            results.append({"index": index, "leaf_hash": leaf, "duplicate": False})
        if items:
            return _problem(422, "batch.rejected", f"{len(items)} entries rejected", items=items)
        for index, raw, name in new:
            self.log.append(raw)
            if name is not None:
                self.names[index] = name
        self.records.update(staged)
        return httpx.Response(201 if new else 200, json={"results": results})
