"""The institution's side of ``POST /api/v1/records``: resolve, sign, post, journal, resume.

:func:`post_file` runs the whole flow for one CSV or JSONL file:

1. **Validate every row locally** (:mod:`creditbank.client.csvformat`); invalid rows are
   reported and never sent. Rows the journal kept next to the input
   (``FILE.creditbank-journal.jsonl``) acknowledged with the same text are skipped without
   being validated again; a row changed since it was acknowledged is reported
   (``post.changed``): an acknowledged record is corrected by a new row with ``corrects``,
   never by editing the old one.
2. **Resolve learners** (``POST /api/v1/learners/resolve``) up front, once per identity
   document, a few at a time; the bank answers the opaque learner id and the learner's
   commitment salt. Bodies get ``learner`` and ``name_commitment`` = base64(SHA-256(salt ‖
   NFC(name))); the plain name travels beside the entry (``names``) into the bank's
   personal-data tables, never into the log.
3. **Sign** each entry with the institution's private key, which never leaves this machine.
4. **Post in batches** (``POST /api/v1/records``), one batch in flight while the next is
   signed. A rejected batch (problem+json with ``items``) writes nothing: its failing items
   are reported and the rest is posted again. Network errors, 408, 429 and 5xx are retried
   with jittered exponential backoff a bounded number of times; posting is idempotent, so a
   retry of a batch the bank did store is answered as duplicates with the original indexes.
5. **Journal** every acknowledged row (record id, index, leaf hash) and fsync, batch by batch.
   After an interruption a re-run skips what the journal holds; a batch acknowledged but not
   journaled (a crash in between) is posted again and answered as duplicates, so nothing is
   ever stored twice. A duplicate is answered with the STORED entry's index and leaf hash
   (re-signed content has other bytes), so the journal keeps what the log holds.
6. **Prove** the rows the client cannot check from the bytes it signed (the duplicates; all
   rows with ``prove="all"``): each journaled index and leaf hash must verify with an
   inclusion proof against a checkpoint signed with the log key (:func:`prove_acks`).

The client imports only :mod:`creditbank.core`, :mod:`creditbank.errors` and ``httpx``: it is
what an institution runs, not part of the bank.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    Future,
    ThreadPoolExecutor,
    as_completed,
    wait,
)
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import httpx

from creditbank import __version__
from creditbank.client.csvformat import (
    RECORD_POSTED,
    RECORD_REVOKED,
    ParseStream,
    Row,
    RowError,
    stream_file,
)
from creditbank.core import merkle
from creditbank.core.checkpoint import Checkpoint, verify_checkpoint
from creditbank.core.entries import build_entry, format_time, sign_entry
from creditbank.core.identity import IdentityDoc
from creditbank.core.signing import (
    Signer,
    entry_key_id,
    format_verifier_key,
    parse_verifier_key,
)
from creditbank.errors import (
    AuthError,
    ConfigurationError,
    CreditBankError,
    ForbiddenError,
    InvalidInputError,
    VerificationError,
)
from creditbank.keyfiles import fsync_dir, generate_key_file, load_key_file

DEFAULT_BATCH_SIZE: Final = 500
#: the bank takes at most 1,000 entries (and 4 MiB) per request
MAX_BATCH_SIZE: Final = 1_000
JOURNAL_SUFFIX: Final = ".creditbank-journal.jsonl"
JOURNAL_FORMAT: Final = "creditbank-post-journal"
#: attempts per request (the first and its retries) and the backoff between them
MAX_ATTEMPTS: Final = 6
BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 10.0
RESOLVE_CONCURRENCY: Final = 4
#: learners per ``POST /api/v1/learners/resolve-batch`` (the bank takes at most 1,000)
RESOLVE_BATCH_SIZE: Final = 1_000
#: record batches in flight at once (the bank group-commits concurrent requests)
DEFAULT_CONCURRENCY: Final = 1
MAX_CONCURRENCY: Final = 8
#: rows validated per step of the pipeline (the first batch is posted after the first step)
STREAM_CHUNK: Final = 1_000
RECORDS_PATH: Final = "/api/v1/records"
RESOLVE_PATH: Final = "/api/v1/learners/resolve"
RESOLVE_BATCH_PATH: Final = "/api/v1/learners/resolve-batch"
LOG_KEY_PATH: Final = "/api/v1/log/key"
CHECKPOINT_PATH: Final = "/api/v1/log/checkpoint"
INCLUSION_PATH: Final = "/api/v1/log/proofs/inclusion"
#: which acknowledged rows are proven against a signed checkpoint at the end of a run
PROVE_MODES: Final = ("duplicates", "all", "none")
#: how long to wait for a checkpoint covering the rows to prove, and how often to look
PROOF_WAIT: Final = 60.0
PROOF_POLL: Final = 0.5
_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


class PostError(CreditBankError):
    """Posting stopped: the bank is unreachable or answered what the client cannot use."""

    code = "post.failed"


# --- key files ---------------------------------------------------------------------------------
# generate_key_file and load_key_file are creditbank.keyfiles' (shared with the bank's home)
def public_key_line(institution: str, signer: Signer) -> str:
    """The public half to give the bank: the C2SP verifier key ``<id>+<hex8>+<base64>``.

    Raises:
        InvalidInputError: ``key.bad_name`` if the institution id cannot name a key.
    """
    return format_verifier_key(institution, signer.public_bytes)


# --- journal -----------------------------------------------------------------------------------
def _lock(f: Any, path: Path) -> None:
    """Hold an exclusive lock on the open journal, so that two runs cannot share it (POSIX;
    elsewhere the journal is not locked).

    Raises:
        ConfigurationError: ``post.journal_busy`` if another run holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        raise ConfigurationError(
            f"journal {path} is in use: another 'creditbank post' of this file is running",
            code="post.journal_busy",
        ) from e


def default_journal_path(path: Path) -> Path:
    """``FILE.creditbank-journal.jsonl`` next to the input file."""
    return path.with_name(path.name + JOURNAL_SUFFIX)


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged row, as journaled."""

    key: str
    row: int
    index: int
    leaf_hash: str
    duplicate: bool
    digest: str
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "row": self.row,
            "index": self.index,
            "leaf_hash": self.leaf_hash,
            "duplicate": self.duplicate,
            "digest": self.digest,
            "source": self.source,
        }


class Journal:
    """Append-only JSONL journal of acknowledged rows (one fsync per batch).

    The first line names the format, the institution and the bank; then one line per
    acknowledged row. A torn last line (a crash while writing) is dropped when the journal is
    opened again. The journal holds record ids, indexes, leaf hashes and row digests: no
    names and no identity numbers.
    """

    def __init__(self, path: Path, *, institution: str, url: str) -> None:
        self.path = path
        self.acks: dict[str, Ack] = {}
        self._mutex = threading.Lock()  # batches are acknowledged from several threads
        header = {"format": JOURNAL_FORMAT, "v": 1, "institution": institution, "url": url}
        try:
            existing = path.read_bytes() if path.exists() else b""
        except OSError as e:
            raise ConfigurationError(f"cannot read journal {path}: {e.strerror}") from e
        good = self._load(existing, header) if existing else 0
        #: created by this run: removed on close if no row was acknowledged (nothing posted)
        self._fresh = good == 0
        try:
            self._file = path.open("ab")
        except OSError as e:
            raise ConfigurationError(f"cannot write journal {path}: {e.strerror}") from e
        try:
            _lock(self._file, path)
            if good < len(existing):  # a torn tail (or a torn header): drop it
                self._file.truncate(good)
            if good == 0:
                self._write([header])
                fsync_dir(path.parent)  # the new file's name is durable too
        except BaseException:
            self._file.close()
            raise

    def _load(self, data: bytes, header: Mapping[str, Any]) -> int:
        """Read the journal; returns the length of its intact part."""
        end = data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")[:-1]
        if not lines:
            return 0
        try:
            first = json.loads(lines[0])
        except ValueError as e:
            raise ConfigurationError(
                f"{self.path} is not a creditbank journal", code="post.journal"
            ) from e
        if not isinstance(first, dict) or first.get("format") != JOURNAL_FORMAT:
            raise ConfigurationError(
                f"{self.path} is not a creditbank journal", code="post.journal"
            )
        for name in ("institution", "url"):
            if first.get(name) != header[name]:
                raise ConfigurationError(
                    f"journal {self.path} was written for {name} {first.get(name)!r}, not "
                    f"{header[name]!r}; pass another --journal to post this file elsewhere",
                    code="post.journal",
                )
        for n, line in enumerate(lines[1:], start=2):
            try:
                doc = json.loads(line)
                ack = Ack(
                    key=str(doc["key"]),
                    row=int(doc["row"]),
                    index=int(doc["index"]),
                    leaf_hash=str(doc["leaf_hash"]),
                    duplicate=bool(doc["duplicate"]),
                    digest=str(doc["digest"]),
                    source=str(doc.get("source", "")),
                )
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigurationError(
                    f"journal {self.path} line {n} is corrupt", code="post.journal"
                ) from e
            self.acks[ack.key] = ack
        return end

    def _write(self, docs: Sequence[Mapping[str, Any]]) -> None:
        data = b"".join(
            json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for d in docs
        )
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def record(self, acks: Sequence[Ack]) -> None:
        """Append acknowledged rows durably (flush and fsync)."""
        if not acks:
            return
        with self._mutex:
            self._write([a.as_dict() for a in acks])
            for a in acks:
                self.acks[a.key] = a

    def close(self) -> None:
        """Close the journal; one this run created and never acknowledged a row in is
        removed, so that a run that posted nothing leaves no journal behind."""
        if self._fresh and not self.acks and not self._file.closed:
            self.path.unlink(missing_ok=True)
        self._file.close()


# --- HTTP --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Resolved:
    learner_id: str
    salt: bytes


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """One failing item of a rejected batch (or the whole request's problem)."""

    index: int | None
    code: str
    detail: str


class BatchRefused(CreditBankError):  # noqa: N818 - an answer, not a failure of the client
    """The bank refused the batch as a whole; ``items`` names the failing entries.

    ``code`` is ``post.refused``; the bank's own answer is ``status`` (HTTP) and ``problem``
    (its ``code`` and ``detail``).
    """

    code = "post.refused"

    def __init__(self, status: int, problem: ItemProblem, items: list[ItemProblem]) -> None:
        super().__init__(f"the bank refused ({problem.code}): {problem.detail}")
        self.status = status
        self.problem = problem
        self.items = items


class Sleeper(Protocol):
    def __call__(self, seconds: float, /) -> None: ...


def sleep_with_jitter(seconds: float) -> None:
    """Sleep 50-150 % of ``seconds``, so that clients retrying together spread out."""
    time.sleep(seconds * (0.5 + secrets.randbelow(1001) / 1000))


class BankAPI:
    """The two endpoints the client uses, with bounded retries and backoff."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 120.0,
        attempts: int = MAX_ATTEMPTS,
        sleep: Sleeper = sleep_with_jitter,
    ) -> None:
        self.attempts = max(1, attempts)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"creditbank-post/{__version__}",
                "Accept": "application/json, application/problem+json",
            },
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=max(RESOLVE_CONCURRENCY, MAX_CONCURRENCY) + 2),
        )
        #: whether the bank offers ``resolve-batch`` (None: not asked yet)
        self.batch_resolve: bool | None = None

    def close(self) -> None:
        self._http.close()

    def _request(self, path: str, content: bytes) -> httpx.Response:
        """POST with bounded retries (honouring ``Retry-After``); any other status is returned."""
        return self._retrying(
            path,
            lambda: self._http.post(
                path, content=content, headers={"Content-Type": "application/json"}
            ),
            posting=True,
        )

    def _get(self, path: str, params: Mapping[str, int] | None = None) -> httpx.Response:
        """GET with the same bounded retries as the posts; any other status is returned."""
        return self._retrying(path, lambda: self._http.get(path, params=params), posting=False)

    def _retrying(
        self, path: str, send: Callable[[], httpx.Response], *, posting: bool
    ) -> httpx.Response:
        """``send()`` until it answers with a status that is not worth retrying, at most
        ``self.attempts`` times with doubling pauses. A post's failure names the bank's
        problem detail, waits as long as ``Retry-After`` asks (up to 30 s) and tells the user
        that re-running resumes.

        Raises:
            PostError: ``post.unreachable`` when every attempt failed.
        """
        delay = BACKOFF_START
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = send()
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if response.status_code not in _RETRY_STATUSES:
                    return response
                last = f"HTTP {response.status_code}"
                if posting:
                    last += f" {_problem(response).detail}"
                    retry_after = response.headers.get("Retry-After", "")
                    if retry_after.isdigit():
                        delay = max(delay, min(float(retry_after), 30.0))
            if attempt < self.attempts:
                self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        resume = "; re-run the same command to resume" if posting else ""
        raise PostError(
            f"{path}: no answer after {self.attempts} attempts ({last}){resume}",
            code="post.unreachable",
        )

    def log_key(self) -> str:
        """The log's verifier key (``origin+hex8+base64``).

        Raises:
            PostError: no usable answer.
        """
        response = self._get(LOG_KEY_PATH)
        if response.status_code != 200:
            raise PostError(f"{LOG_KEY_PATH}: HTTP {response.status_code}", code="post.protocol")
        return response.text.strip()

    def checkpoint(self) -> str | None:
        """The latest signed checkpoint note (None: nothing published yet).

        Raises:
            PostError: no usable answer.
        """
        response = self._get(CHECKPOINT_PATH)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PostError(f"{CHECKPOINT_PATH}: HTTP {response.status_code}", code="post.protocol")
        return response.text

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """The stored leaf hash at ``index`` and its inclusion proof in the tree of ``size``.

        Raises:
            PostError: no usable answer.
        """
        response = self._get(INCLUSION_PATH, {"index": index, "size": size})
        try:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            doc = response.json()
            leaf = base64.b64decode(doc["leaf_hash"], validate=True)
            path = [base64.b64decode(h, validate=True) for h in doc["path"]]
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise PostError(
                f"{INCLUSION_PATH}?index={index}&size={size}: unusable answer ({e})",
                code="post.protocol",
            ) from e
        return leaf, path

    def resolve(self, doc: IdentityDoc, name: str) -> Resolved:
        """Map an identity document and name to the learner id and commitment salt.

        Raises:
            BatchRefused: the bank refused this identity (e.g. ``identity.checksum``).
            AuthError: the token is refused.
            PostError: no usable answer.
        """
        request: dict[str, Any] = {
            "name": name,
            "id_type": doc.doc_type,
            "id_number": doc.number,
            "nationality": doc.nationality,
        }
        response = self._request(RESOLVE_PATH, json.dumps(request).encode())
        if response.status_code not in (200, 201):
            _raise_refused(response)
        try:
            doc_out = response.json()
            learner_id = doc_out["learner_id"]
            salt = base64.b64decode(doc_out["salt"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise PostError(f"{RESOLVE_PATH}: malformed answer", code="post.protocol") from e
        if not isinstance(learner_id, str) or len(salt) != 16:
            raise PostError(f"{RESOLVE_PATH}: malformed answer", code="post.protocol")
        return Resolved(learner_id, salt)

    def resolve_many(
        self, items: Sequence[tuple[IdentityDoc, str]]
    ) -> list[Resolved | ItemProblem] | None:
        """Resolve up to :data:`RESOLVE_BATCH_SIZE` identities in one request
        (``POST /api/v1/learners/resolve-batch``); each answer is the learner or the item's
        problem (e.g. ``identity.checksum``). None if the bank does not offer the batch
        endpoint (404): resolve one by one then.

        Raises:
            BatchRefused: the bank refused the request as a whole.
            AuthError: the token is refused.
            PostError: no usable answer.
        """
        if self.batch_resolve is False:
            return None
        body = {
            "learners": [
                {
                    "name": name,
                    "id_type": doc.doc_type,
                    "id_number": doc.number,
                    "nationality": doc.nationality,
                }
                for doc, name in items
            ]
        }
        response = self._request(RESOLVE_BATCH_PATH, json.dumps(body).encode())
        if response.status_code in (404, 405):
            self.batch_resolve = False
            return None
        if response.status_code != 200:
            _raise_refused(response)
        self.batch_resolve = True
        malformed = PostError(f"{RESOLVE_BATCH_PATH}: malformed answer", code="post.protocol")
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError) as e:
            raise malformed from e
        if not isinstance(results, list) or len(results) != len(items):
            raise malformed
        out: list[Resolved | ItemProblem] = []
        for res in results:
            try:
                if "error" in res:
                    err = res["error"]
                    out.append(ItemProblem(None, str(err["code"]), str(err["detail"])))
                    continue
                learner_id = res["learner_id"]
                salt = base64.b64decode(res["salt"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                raise malformed from e
            if not isinstance(learner_id, str) or len(salt) != 16:
                raise malformed
            out.append(Resolved(learner_id, salt))
        return out

    def post_records(self, raws: Sequence[bytes], names: Sequence[str | None]) -> list[Any]:
        """Post signed entries; returns the ``results`` (one per entry, in order).

        Raises:
            BatchRefused: the batch was rejected (nothing written).
            AuthError: the token is refused.
            PostError: no usable answer.
        """
        body = (
            b'{"entries":['
            + b",".join(raws)
            + b'],"names":'
            + json.dumps(list(names), ensure_ascii=False).encode()
            + b"}"
        )
        response = self._request(RECORDS_PATH, body)
        if response.status_code not in (200, 201):
            _raise_refused(response)
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError) as e:
            raise PostError(f"{RECORDS_PATH}: malformed answer", code="post.protocol") from e
        if not isinstance(results, list) or len(results) != len(raws):
            raise PostError(
                f"{RECORDS_PATH}: {len(raws)} entries posted but not as many results",
                code="post.protocol",
            )
        return results


def _problem(response: httpx.Response) -> ItemProblem:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return ItemProblem(None, f"http.{response.status_code}", response.reason_phrase)
    code = doc.get("code") or f"http.{response.status_code}"
    detail = doc.get("detail") or doc.get("title") or response.reason_phrase
    return ItemProblem(None, str(code), str(detail))


def _raise_refused(response: httpx.Response) -> None:
    problem = _problem(response)
    items: list[ItemProblem] = []
    try:
        raw_items = response.json().get("items")
    except (ValueError, AttributeError):
        raw_items = None
    if isinstance(raw_items, list):
        for it in raw_items:
            if isinstance(it, dict) and isinstance(it.get("index"), int):
                items.append(
                    ItemProblem(
                        int(it["index"]),
                        str(it.get("code") or problem.code),
                        str(it.get("detail") or it.get("message") or problem.detail),
                    )
                )
    status = response.status_code
    if not items and status == 401:
        raise AuthError(f"the bank refused the token: {problem.detail}", code=problem.code)
    if not items and status == 403:
        raise ForbiddenError(f"the bank refused: {problem.detail}", code=problem.code)
    raise BatchRefused(status, problem, items)


# --- the run -----------------------------------------------------------------------------------
@dataclass
class PostReport:
    """What a run did. ``invalid`` rows failed local checks; ``rejected`` rows the bank's."""

    path: Path
    rows: int = 0
    posted: int = 0
    duplicates: int = 0
    skipped: int = 0
    invalid: list[RowError] = field(default_factory=list)
    rejected: list[RowError] = field(default_factory=list)
    learners_resolved: int = 0
    batches: int = 0
    #: acknowledged rows proven against a signed checkpoint (inclusion proofs)
    proven: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.invalid and not self.rejected

    @property
    def failures(self) -> list[RowError]:
        """Invalid and rejected rows, in row order."""
        return sorted(self.invalid + self.rejected, key=lambda e: e.row)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "rows": self.rows,
            "posted": self.posted,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "invalid": len(self.invalid),
            "rejected": len(self.rejected),
            "learners_resolved": self.learners_resolved,
            "batches": self.batches,
            "proven": self.proven,
            "seconds": round(self.seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "failures": [e.as_dict() for e in self.failures],
        }


@dataclass(frozen=True, slots=True)
class _Prepared:
    row: Row
    raw: bytes


class ProgressSink(Protocol):
    """Where a run reports progress (a rich progress bar in the CLI)."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self, phase: str, n: int) -> None: ...


class _NoProgress:
    def start(self, phase: str, total: int) -> None:
        pass

    def advance(self, phase: str, n: int) -> None:
        pass


def utc_now() -> datetime:
    """The client's clock (UTC). The bank judges dates by its own clock, in UTC too."""
    return datetime.now(UTC)  # noqa: TID251 - the client has no service clock; this is its one


@dataclass
class Poster:
    """One run of posting a file; see :func:`post_file`."""

    api: BankAPI
    institution: str
    signer: Signer
    journal: Journal
    batch_size: int = DEFAULT_BATCH_SIZE
    clock: Callable[[], datetime] = utc_now
    progress: ProgressSink = field(default_factory=_NoProgress)
    after_batch: Callable[[int], None] | None = None
    report: PostReport = field(default_factory=lambda: PostReport(Path()))
    concurrency: int = 1
    _learners: dict[tuple[str, str, str], Resolved | ItemProblem] = field(default_factory=dict)
    #: every row acknowledged in this run, in acknowledgement order
    acked: list[Ack] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key_id = entry_key_id(self.signer.public_bytes)
        self._timing_lock = threading.Lock()
        self._report_lock = threading.Lock()

    # -- preparing ---------------------------------------------------------------------------
    def resolve_learners(self, rows: Sequence[Row]) -> None:
        """Resolve every identity of ``rows`` not resolved yet, once each: up to 1,000 per
        request through ``resolve-batch``, or (a bank without it) one request per identity, a
        few at a time. A refused identity (e.g. ``identity.checksum``) is remembered and its
        rows are reported; anything else stops the run.
        """
        todo: dict[tuple[str, str, str], Row] = {}
        for r in rows:
            if r.identity is not None:
                k = _identity_key(r.identity)
                if k not in self._learners:
                    todo.setdefault(k, r)
        if not todo:
            return
        self.progress.start("resolve", len(todo))
        keys = list(todo)
        done = 0
        while done < len(keys):
            part = keys[done : done + RESOLVE_BATCH_SIZE]
            answers = self.api.resolve_many(
                [(r.identity, r.name or "") for r in (todo[k] for k in part) if r.identity]
            )
            if answers is None:  # the bank has no batch endpoint
                self._resolve_one_by_one({k: todo[k] for k in keys[done:]})
                return
            for k, got in zip(part, answers, strict=True):
                self._learners[k] = got
                if isinstance(got, Resolved):
                    self.report.learners_resolved += 1
            self.progress.advance("resolve", len(part))
            done += len(part)

    def _resolve_one_by_one(self, todo: Mapping[tuple[str, str, str], Row]) -> None:
        pool = ThreadPoolExecutor(RESOLVE_CONCURRENCY, "resolve")
        try:
            futures = {
                pool.submit(self.api.resolve, r.identity, r.name or ""): k
                for k, r in todo.items()
                if r.identity is not None
            }
            for fut in as_completed(futures):
                k = futures[fut]
                try:
                    self._learners[k] = fut.result()
                    self.report.learners_resolved += 1
                except BatchRefused as e:
                    self._learners[k] = e.problem
                self.progress.advance("resolve", 1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def prepare(self, rows: Sequence[Row]) -> list[_Prepared]:
        """Complete and sign the entries of ``rows`` (rows of refused learners reported)."""
        at = format_time(self.clock())
        out: list[_Prepared] = []
        for r in rows:
            body = dict(r.body)
            if r.identity is not None:
                learner = self._learners[_identity_key(r.identity)]
                if isinstance(learner, ItemProblem):
                    self._reject(r, learner.code, learner.detail)
                    continue
                body = r.complete_body(learner.learner_id, learner.salt)
            try:
                unsigned = build_entry(r.entry_type, self.institution, self.key_id, at, body)
                out.append(_Prepared(r, sign_entry(unsigned, self.signer)))
            except InvalidInputError as e:
                self._reject(r, e.code, e.message)
        return out

    # -- posting -----------------------------------------------------------------------------
    def post(self, batch: list[_Prepared]) -> None:
        """Post one batch until every item is stored or rejected; journal the stored ones."""
        pending = batch
        while pending:
            names = [p.row.name if p.row.entry_type != RECORD_REVOKED else None for p in pending]
            try:
                results = self.api.post_records([p.raw for p in pending], names)
            except BatchRefused as refusal:
                pending = self._drop_refused(pending, refusal)
                continue
            self._acknowledge(pending, results)
            return

    def _drop_refused(self, pending: list[_Prepared], refusal: BatchRefused) -> list[_Prepared]:
        bad = {i.index: i for i in refusal.items if i.index is not None and i.index < len(pending)}
        if not bad and len(pending) > 1:
            # too large for the bank (413), or no item named: post it in halves, which also
            # isolates the culprits
            half = len(pending) // 2
            self.post(pending[:half])
            return pending[half:]
        if not bad:
            bad = {0: refusal.problem}
        for i, problem in sorted(bad.items()):
            p = pending[i]
            self._reject(p.row, problem.code, problem.detail)
        return [p for i, p in enumerate(pending) if i not in bad]

    def _reject(self, row: Row, code: str, detail: str) -> None:
        self.report.rejected.append(RowError(row.row, row.record_id, code, detail))
        self.progress.advance("post", 1)

    def _acknowledge(self, pending: list[_Prepared], results: list[Any]) -> None:
        acks: list[Ack] = []
        mismatched: list[int] = []
        for p, res in zip(pending, results, strict=True):
            try:
                index = res["index"]
                leaf = res["leaf_hash"]
                duplicate = bool(res.get("duplicate", False))
            except (KeyError, TypeError) as e:
                raise PostError(f"{RECORDS_PATH}: malformed result", code="post.protocol") from e
            if not isinstance(index, int) or isinstance(index, bool) or not isinstance(leaf, str):
                raise PostError(f"{RECORDS_PATH}: malformed result", code="post.protocol")
            if not duplicate and leaf != _leaf_b64(p.raw):
                mismatched.append(p.row.row)
            acks.append(
                Ack(
                    p.row.journal_key, p.row.row, index, leaf, duplicate, p.row.digest, p.row.source
                )
            )
        self.journal.record(acks)
        with self._report_lock:
            self.acked.extend(acks)
            dups = sum(a.duplicate for a in acks)
            self.report.duplicates += dups
            self.report.posted += len(acks) - dups
            self.report.batches += 1
        self.progress.advance("post", len(pending))
        if mismatched:
            raise VerificationError(
                f"the bank's leaf hash differs from the entry signed for row(s) "
                f"{', '.join(map(str, mismatched[:10]))}: it did not store the bytes sent",
                code="post.leaf_hash",
            )

    def run(self, rows: Sequence[Row]) -> None:
        """Resolve, sign and post ``rows`` (already validated and not in the journal)."""
        self.run_stream([list(rows)])

    def run_stream(self, parts: Iterable[Sequence[Row]]) -> None:
        """The pipeline: a preparing thread takes ``parts`` (rows validated chunk by chunk,
        in file order; iterating may validate them), resolves their new learners and signs
        them into batches, while this thread posts the batches, up to ``concurrency`` at once,
        and journals each as it is acknowledged. Stops at the first fatal error (either side).

        A batch holding corrections or revocations, or a ``dedup_key`` of a batch still in
        flight, waits until every batch before it is acknowledged, so that what it refers to
        is stored first and duplicates are decided in file order.
        """
        ready: queue.Queue[list[_Prepared] | BaseException | None] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def hand_over(item: list[_Prepared] | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                pending: list[Row] = []
                source = iter(parts)
                while True:
                    t0 = time.perf_counter()
                    part = next(source, None)
                    self._add_time("validate", time.perf_counter() - t0)
                    if part is None:
                        break
                    t0 = time.perf_counter()
                    self.resolve_learners(part)  # the chunk's new learners, in one request
                    self._add_time("resolve", time.perf_counter() - t0)
                    pending.extend(part)
                    while len(pending) >= self.batch_size:
                        if not self._prepare_and_hand(pending[: self.batch_size], hand_over):
                            return
                        del pending[: self.batch_size]
                    if stop.is_set():
                        return
                if pending and not self._prepare_and_hand(pending, hand_over):
                    return
                hand_over(None)
            except BaseException as e:  # handed to the posting thread, which raises it
                hand_over(e)

        producer = threading.Thread(target=produce, name="prepare", daemon=True)
        producer.start()
        posters = ThreadPoolExecutor(self.concurrency, "post")
        flight: dict[Future[None], set[str]] = {}
        done = 0
        try:
            while True:
                t0 = time.perf_counter()
                item = ready.get()
                self._add_time("wait_sign", time.perf_counter() - t0)
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                keys = {str(p.row.body.get("dedup_key")) for p in item if "dedup_key" in p.row.body}
                ordered = any(p.row.entry_type != RECORD_POSTED for p in item) or any(
                    keys & other for other in flight.values()
                )
                while flight and (ordered or len(flight) >= self.concurrency):
                    done = self._finish(flight, done, wait_all=ordered)
                t0 = time.perf_counter()
                if self.concurrency == 1:
                    self._timed_post(item)
                    self._add_time("post", time.perf_counter() - t0)
                    done += 1
                    if self.after_batch is not None:
                        self.after_batch(done)
                else:
                    flight[posters.submit(self._timed_post, item)] = keys
            while flight:
                done = self._finish(flight, done, wait_all=True)
        finally:
            stop.set()
            posters.shutdown(wait=True, cancel_futures=True)
            producer.join()

    def _prepare_and_hand(
        self, rows: list[Row], hand_over: Callable[[list[_Prepared]], bool]
    ) -> bool:
        t1 = time.perf_counter()
        prepared = self.prepare(rows)
        self._add_time("sign", time.perf_counter() - t1)
        return hand_over(prepared) if prepared else True

    def _timed_post(self, batch: list[_Prepared]) -> None:
        t0 = time.perf_counter()
        self.post(batch)
        self._add_time("post_busy", time.perf_counter() - t0)

    def _finish(self, flight: dict[Future[None], set[str]], done: int, *, wait_all: bool) -> int:
        """Wait for one batch in flight (or all); re-raise its error; call ``after_batch``."""
        t0 = time.perf_counter()
        finished, _ = wait(flight, return_when=ALL_COMPLETED if wait_all else FIRST_COMPLETED)
        self._add_time("post", time.perf_counter() - t0)
        for fut in finished:
            del flight[fut]
            fut.result()
            done += 1
            if self.after_batch is not None:
                self.after_batch(done)
        return done

    def _add_time(self, name: str, seconds: float) -> None:
        with self._timing_lock:
            self.report.timings[name] = self.report.timings.get(name, 0.0) + seconds


def _identity_key(doc: IdentityDoc) -> tuple[str, str, str]:
    return (doc.doc_type, doc.nationality, doc.number)


def _leaf_b64(raw: bytes) -> str:
    return base64.b64encode(merkle.leaf_hash(raw)).decode("ascii")


@contextmanager
def _opened(api: BankAPI, journal: Journal) -> Iterator[None]:
    try:
        yield
    finally:
        journal.close()
        api.close()


def _stream(
    path: Path,
    institution: str,
    day: date,
    workers: int,
    journal: Journal | None,
    sink: ProgressSink,
) -> ParseStream:
    def validated(n: int, total: int) -> None:
        if n == 0:
            sink.start("validate", total)
        else:
            sink.advance("validate", n)

    known = {k: a.source for k, a in journal.acks.items() if a.source} if journal else None
    return stream_file(
        path,
        issuer=institution,
        today=day,
        workers=workers,
        known=known,
        progress=validated,
        chunk=STREAM_CHUNK,
    )


def _unposted(parts: ParseStream, journal: Journal, report: PostReport) -> Iterator[list[Row]]:
    """The valid rows of each validated chunk that the journal does not hold; invalid rows,
    known rows and rows changed since they were acknowledged go to the report."""
    for part in parts:
        report.invalid.extend(part.errors)
        report.skipped += len(part.known)
        todo: list[Row] = []
        for r in part.rows:
            ack = journal.acks.get(r.journal_key)
            if ack is None:
                todo.append(r)
            elif ack.digest != r.digest:
                report.rejected.append(
                    RowError(
                        r.row,
                        r.record_id,
                        "post.changed",
                        f"changed since it was posted at index {ack.index}; post a correction "
                        "(a new record_id with corrects) instead",
                    )
                )
            else:
                report.skipped += 1  # the same record, written differently
        yield todo


def post_file(
    path: Path,
    *,
    institution: str,
    signer: Signer,
    url: str,
    token: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    journal_path: Path | None = None,
    workers: int = 1,
    today: date | None = None,
    clock: Callable[[], datetime] = utc_now,
    progress: ProgressSink | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Sleeper | None = None,
    attempts: int | None = None,
    after_batch: Callable[[int], None] | None = None,
    dry_run: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    prove: str = "duplicates",
    log_key: str | None = None,
    proof_wait: float = PROOF_WAIT,
) -> PostReport:
    """Validate, resolve, sign and post every row of ``path``; see the module docstring.

    Args:
        path: a ``.csv`` or ``.jsonl`` file (docs/csv-format.md).
        institution: the posting institution's id (the entries' ``issuer``).
        signer: its private key.
        url: the bank's base URL, e.g. ``https://bank.example``.
        token: the institution's API token.
        batch_size: entries per request (1 to 1,000).
        journal_path: default ``FILE.creditbank-journal.jsonl``.
        workers: processes validating rows (large files).
        today: dates after it are refused locally; default the UTC date of ``clock``.
        clock: the signing time of the entries.
        progress: receives phase totals and advances.
        transport: an ``httpx`` transport (tests).
        sleep: used between retries; default :func:`sleep_with_jitter`.
        attempts: tries per request before giving up; default :data:`MAX_ATTEMPTS`.
        after_batch: called with the number of batches done after each is journaled (tests).
        dry_run: validate and report only; nothing is sent and no journal is written.
        concurrency: record batches in flight at once (1 to :data:`MAX_CONCURRENCY`).
        prove: which rows of this run to prove against a signed checkpoint at the end
            (:func:`prove_acks`): ``duplicates`` (default: answers the client cannot check
            from the bytes it signed), ``all`` or ``none``.
        log_key: the log's verifier key to trust (default: the bank's answer).
        proof_wait: seconds to wait for a checkpoint covering the rows.

    Returns:
        The report; ``report.ok`` is false if any row was invalid or rejected.

    Raises:
        InvalidInputError: the file as a whole is unreadable, or ``batch_size`` out of range.
        ConfigurationError: the journal belongs to another institution or bank, or is corrupt.
        AuthError: the bank refused the token.
        PostError: the bank stayed unreachable; the journal keeps what was acknowledged.
        VerificationError: the bank's leaf hash differs from the signed entry, or a row's
            answer is not proven by the log (``post.proof``).
    """
    if prove not in PROVE_MODES:
        raise InvalidInputError(f"prove must be one of {', '.join(PROVE_MODES)}", code="post.prove")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InvalidInputError(f"batch size must be 1 to {MAX_BATCH_SIZE}", code="post.batch_size")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidInputError(
            f"concurrency must be 1 to {MAX_CONCURRENCY}", code="post.concurrency"
        )
    sink = progress or _NoProgress()
    started = time.perf_counter()
    report = PostReport(path)
    day = today or clock().astimezone(UTC).date()

    base = url.rstrip("/")
    journal: Journal | None = None
    if not dry_run:
        journal = Journal(
            journal_path or default_journal_path(path), institution=institution, url=base
        )
    try:
        stream = _stream(path, institution, day, workers, journal, sink)
        report.rows = stream.total + stream.known
        if journal is None:
            for part in stream:
                report.invalid.extend(part.errors)
                report.skipped += len(part.known)
            report.timings["validate"] = time.perf_counter() - started
            report.seconds = report.timings["validate"]
            return report
    except BaseException:
        if journal is not None:
            journal.close()
        raise

    api = BankAPI(
        base,
        token,
        transport=transport,
        sleep=sleep or sleep_with_jitter,
        attempts=attempts or MAX_ATTEMPTS,
    )
    with _opened(api, journal):
        poster = Poster(
            api=api,
            institution=institution,
            signer=signer,
            journal=journal,
            batch_size=batch_size,
            clock=clock,
            progress=sink,
            after_batch=after_batch,
            report=report,
            concurrency=concurrency,
        )
        sink.start("post", stream.total)
        try:
            poster.run_stream(_unposted(stream, journal, report))
            chosen = [a for a in poster.acked if prove == "all" or a.duplicate]
            if prove != "none" and chosen:
                proof_started = time.perf_counter()
                report.proven = prove_acks(api, chosen, log_key=log_key, wait=proof_wait)
                report.timings["prove"] = time.perf_counter() - proof_started
        finally:
            report.seconds = time.perf_counter() - started
    return report


def prove_acks(
    api: BankAPI,
    acks: Sequence[Ack],
    *,
    log_key: str | None = None,
    wait: float = PROOF_WAIT,
    poll: float = PROOF_POLL,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Check acknowledged rows against the log: each row's index and leaf hash, as the bank
    answered them and the journal keeps them, must be included in a checkpoint signed with
    the log key (``log_key``, e.g. pinned from a previous run; default: the bank's answer).

    Waits up to ``wait`` seconds for a checkpoint that covers every row (checkpoints are
    published a moment after an append). Returns the number of rows proven.

    Raises:
        VerificationError: ``post.proof`` when a row's index and hash are not what the log
            holds (the journal row disagrees with the log), or the checkpoint's signature
            fails.
        PostError: ``post.unproven`` if no checkpoint covered the rows in time.
    """
    if not acks:
        return 0
    key = parse_verifier_key(log_key or api.log_key())
    need = max(a.index for a in acks) + 1
    deadline = time.monotonic() + wait
    cp: Checkpoint | None = None
    while True:
        note = api.checkpoint()
        if note is not None:
            try:
                cp = verify_checkpoint(note, key)
            except CreditBankError as e:
                raise VerificationError(
                    f"the bank's checkpoint does not verify with the log key: {e}",
                    code="post.proof",
                ) from e
            if cp.size >= need:
                break
        if time.monotonic() >= deadline:
            have = 0 if cp is None else cp.size
            raise PostError(
                f"no checkpoint covers index {need - 1} after {wait:.0f} s (latest size {have});"
                " re-run later to prove the journal",
                code="post.unproven",
            )
        sleep(poll)
    bad: list[int] = []
    for a in acks:
        leaf, path = api.inclusion_proof(a.index, cp.size)
        try:
            if base64.b64encode(leaf).decode("ascii") != a.leaf_hash:
                raise VerificationError("another leaf is stored at this index")
            merkle.verify_inclusion(a.index, cp.size, leaf, path, cp.root)
        except CreditBankError:
            bad.append(a.row)
    if bad:
        raise VerificationError(
            f"the bank's answer for row(s) {', '.join(map(str, bad[:10]))} does not match the "
            f"log at checkpoint {cp.size}: the journal holds an index and leaf hash the log "
            "does not prove",
            code="post.proof",
        )
    return len(acks)


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "JOURNAL_SUFFIX",
    "Ack",
    "BankAPI",
    "Journal",
    "PostError",
    "PostReport",
    "ProgressSink",
    "default_journal_path",
    "generate_key_file",
    "load_key_file",
    "post_file",
    "prove_acks",
    "public_key_line",
]
