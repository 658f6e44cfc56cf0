"""The real bank in process for the client tests: the API over a bank in a temp home.

:func:`real_bank` initialises a home (SQLite), registers ``INS-T`` with the test key, issues
its token and enters the app's lifespan (group committer, checkpoint publisher) inside a
Starlette ``TestClient``; the client reaches it through :class:`RealBank`, an
``httpx.BaseTransport`` over the TestClient's ASGI transport: no socket, no thread of our own.

Everything the client sees is the real API's answer, with three exceptions a real bank cannot
produce on demand, injected at the transport and nowhere else:

* ``faults``: network failures and overload around a request (``"connect"``: no connection;
  ``"lost"``: the bank handles the request but the answer never arrives; ``"503"``: an
  overloaded bank's ``storage.unavailable`` answer before the request reaches it), keyed
  ``"records"`` or ``"resolve"``;
* ``no_batch_resolve``: a bank from before ``/learners/resolve-batch`` (that path 404s);
* ``wrong_leaf`` / ``lie_about_duplicates``: a bank whose answers disagree with its own log
  (the leaf hash or the duplicate's index is altered on the way back).

``refuse_numbers`` is not an invented answer: the identity number is altered on the way in
(its check character), so the bank refuses it with its own ``identity.*`` problem; it stands
for a bank whose identity checks are stricter than this client's.

Checkpoints: the app's publisher runs on its own timer (one hour here, so nothing publishes
behind a test's back); with ``publish`` set, the transport publishes (``ledger.publish()``,
what the publisher calls) just before each ``GET /log/checkpoint``, so proofs never wait on a
timer.
"""

from __future__ import annotations

import base64
import json
import threading
import warnings
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from schema_template import with_sqlite_schema
from sqlalchemy import text

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's import-time note about httpx versions
    from starlette.testclient import TestClient

from creditbank.api.app import create_app
from creditbank.config import Settings
from creditbank.core.entries import parse_entry
from creditbank.core.identity import gb11643_check_char
from creditbank.core.signing import Ed25519Signer
from creditbank.service import institutions, tokens
from creditbank.service.bank import Bank, init_home

INSTITUTION = "INS-T"
URL = "http://bank.test"

_PROBLEM = {"content-type": "application/problem+json"}


def _other_check_char(number: str) -> str:
    """``number`` with a check character that fails GB 11643 (a resident id)."""
    good = gb11643_check_char(number[:17])
    return number[:17] + ("0" if good != "0" else "1")


@dataclass
class RealBank(httpx.BaseTransport):
    """The client's transport to the real bank, counting requests and injecting the faults
    listed in the module docstring."""

    bank: Bank
    inner: httpx.BaseTransport
    token: str
    #: requests per path (e.g. ``/api/v1/records``), every attempt counted
    calls: Counter[str] = field(default_factory=Counter)
    #: record ids of every entry sent to ``POST /records`` (also in refused batches)
    received: list[str] = field(default_factory=list)
    faults: dict[str, deque[str]] = field(
        default_factory=lambda: {"records": deque(), "resolve": deque()}
    )
    refuse_numbers: set[str] = field(default_factory=set)
    no_batch_resolve: bool = False
    wrong_leaf: bool = False
    lie_about_duplicates: bool = False
    publish: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what the bank holds ----------------------------------------------------------------
    def entry(self, index: int) -> bytes:
        """The entry stored at log ``index``."""
        return bytes(self.bank.ledger.entry(index).data)

    def log_key(self) -> str:
        """The log's verifier key line, as ``GET /api/v1/log/key`` answers it."""
        response = self.inner.handle_request(httpx.Request("GET", f"{URL}/api/v1/log/key"))
        response.read()
        return response.text.strip()

    def log(self) -> list[bytes]:
        """The record entries in the log, in order (the genesis and registration left out)."""
        size = self.bank.ledger.head().size
        out = []
        for i in range(size):
            raw = bytes(self.bank.ledger.entry(i).data)
            if parse_entry(raw).type.startswith("record."):
                out.append(raw)
        return out

    def first_record_index(self) -> int:
        """The log index of the first record entry (after the genesis and registrations)."""
        size = self.bank.ledger.head().size
        for i in range(size):
            if parse_entry(bytes(self.bank.ledger.entry(i).data)).type.startswith("record."):
                return i
        return size

    def stored_names(self) -> int:
        """How many plain names the bank keeps beside record entries."""
        with self.bank.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM record_names")).scalar_one())

    # -- the transport ----------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            self.calls[path] += 1
        if path == "/api/v1/records":
            request.read()
            self.received.extend(
                str(e["body"]["record_id"]) for e in json.loads(request.content)["entries"]
            )
        if path.startswith("/api/v1/learners/resolve"):
            if path.endswith("-batch") and self.no_batch_resolve:
                return httpx.Response(404, json={"code": "http.not_found"}, headers=_PROBLEM)
            request = self._altered_identities(request)
        queue = self.faults["resolve" if "/learners/" in path else "records"]
        fault = None
        if request.method == "POST":
            with self._lock:
                fault = queue.popleft() if queue else None
        if fault == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "503":
            body = {"code": "storage.unavailable", "status": 503, "detail": "database busy"}
            return httpx.Response(503, json=body, headers=_PROBLEM)
        if path == "/api/v1/log/checkpoint" and self.publish:
            self.bank.ledger.publish()
        response = self.inner.handle_request(request)
        if fault == "lost":
            response.read()
            raise httpx.ReadTimeout("timed out", request=request)
        if path == "/api/v1/records" and (self.wrong_leaf or self.lie_about_duplicates):
            return self._altered_results(response)
        return response

    def _altered_identities(self, request: httpx.Request) -> httpx.Request:
        if not self.refuse_numbers:
            return request
        doc = json.loads(request.read())
        for item in doc.get("learners", [doc]):
            if item["id_number"] in self.refuse_numbers:
                item["id_number"] = _other_check_char(item["id_number"])
        return httpx.Request(
            request.method,
            request.url,
            headers={k: v for k, v in request.headers.items() if k != "content-length"},
            content=json.dumps(doc).encode(),
        )

    def _altered_results(self, response: httpx.Response) -> httpx.Response:
        doc = json.loads(response.read())
        for res in doc.get("results", []):
            if self.wrong_leaf and not res["duplicate"]:
                leaf = base64.b64decode(res["leaf_hash"])
                res["leaf_hash"] = base64.b64encode(bytes([leaf[0] ^ 1]) + leaf[1:]).decode()
            if self.lie_about_duplicates and res["duplicate"]:
                res["index"] += 1
        return httpx.Response(response.status_code, json=doc)


@contextmanager
def real_bank(home: Path, signer: Ed25519Signer) -> Iterator[RealBank]:
    """A fresh bank in ``home`` with ``INS-T`` (``signer``'s key) and its API, in process."""
    settings = Settings(
        home=home, database_url=None, checkpoint_interval=3600.0, sqlite_synchronous="NORMAL"
    )
    with_sqlite_schema(settings)
    bank = init_home(settings)
    try:
        institutions.register_institution(
            bank,
            INSTITUTION,
            kind="college",
            name_zh="测试学院",
            name_en="Test College",
            public_keys=[signer.public_bytes],
        )
        token, _ = tokens.issue_institution_token(bank, INSTITUTION)
        with TestClient(create_app(settings, bank=bank), base_url=URL) as client:
            yield RealBank(bank, client._transport, token)
    finally:
        bank.close()


__all__ = ["INSTITUTION", "URL", "RealBank", "real_bank"]
