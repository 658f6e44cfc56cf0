"""The ledger use cases: append (sequenced, batched, durable), publish, prove, read.

Sequencing: every append is one transaction that first takes the head lock (``BEGIN
IMMEDIATE`` on SQLite, ``SELECT … FOR UPDATE`` of the single head row on PostgreSQL), so
indexes are contiguous and never reused across processes and API workers. Within one process
:class:`GroupCommitter` merges concurrent requests into one transaction (group commit).

Signatures are verified before the lock is taken (CPU work in parallel, outside the critical
section); under the lock only the key's validity is re-checked against the registry.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from creditbank.core import merkle
from creditbank.core.checkpoint import Checkpoint, sign_checkpoint
from creditbank.core.entries import REGISTRY_TYPES, Entry, format_time, parse_entry
from creditbank.core.registry import Registry
from creditbank.core.signing import Signer, load_public_key, verify_signature
from creditbank.errors import (
    BatchRejected,
    CreditBankError,
    InconsistentLogError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    VerificationError,
)
from creditbank.service.clock import Clock
from creditbank.storage import ledger_repo as repo
from creditbank.storage.engine import IMMEDIATE

#: most entries accepted in one request
MAX_BATCH = 10_000
#: how far a new entry's claimed signing time may be ahead of the bank's clock
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: how old a new entry's claimed signing time may be (a signing client that was offline, a
#: journal resumed days later); older entries must be signed again
MAX_SIGNATURE_AGE = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Admission:
    """A validator's verdict on one entry: who it is about, or which entry it repeats."""

    subject: str | None = None
    duplicate_of: int | None = None


#: Checks an entry against the stored state under the sequencing lock, given the index it
#: will get and the request's side data for it (e.g. the plain name, kept off the log), and
#: writes its projection rows. Raises a CreditBankError to refuse the entry.
Validator = Callable[[Connection, Entry, Registry, int, "Mapping[str, Any] | None"], Admission]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A request after the lock-free checks: parsed entries, pre-verified keys, failures."""

    entries: list[Entry]
    verified: dict[int, bytes]
    failed: dict[int, dict[str, object]]


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    index: int
    leaf_hash: bytes
    duplicate: bool


class Ledger:
    """The bank's append-only log over one database."""

    def __init__(
        self,
        engine: Engine,
        *,
        bank_id: str,
        origin: str,
        log_signer: Signer,
        clock: Clock,
        checkpoint_interval: float = 1.0,
        validator: Validator | None = None,
        max_clock_skew: timedelta = MAX_CLOCK_SKEW,
        max_signature_age: timedelta = MAX_SIGNATURE_AGE,
    ) -> None:
        self.engine = engine
        self.bank_id = bank_id
        self.origin = origin
        self.log_signer = log_signer
        self.clock = clock
        self.checkpoint_interval = checkpoint_interval
        self.validator = validator
        self.max_clock_skew = max_clock_skew
        self.max_signature_age = max_signature_age
        self._registry: Registry | None = None
        self._registry_count = -1
        self._mutex = threading.Lock()
        self._last_publish = float("-inf")
        self._pubkeys: dict[bytes, Ed25519PublicKey] = {}

    # -- helpers --------------------------------------------------------------------------
    def _now(self) -> str:
        return format_time(self.clock.now())

    def _check_signing_time(self, e: Entry, now: datetime) -> None:
        """A new entry's claimed signing time must be near the bank's clock: not ahead of it
        by more than the allowed skew, not older than the allowed age. Key validity is judged
        at the claimed time, so without this a holder of a revoked key could backdate.

        Raises:
            InvalidInputError: ``entry.at_future`` or ``entry.at_stale``.
        """
        at = e.at_time
        if at > now + self.max_clock_skew:
            raise InvalidInputError(
                f"signed at {e.at}, ahead of the bank's clock by more than"
                f" {self.max_clock_skew}; check the signer's clock",
                code="entry.at_future",
            )
        if at < now - self.max_signature_age:
            raise InvalidInputError(
                f"signed at {e.at}, more than {self.max_signature_age} ago; sign it again",
                code="entry.at_stale",
            )

    def _pub(self, raw: bytes) -> Ed25519PublicKey:
        key = self._pubkeys.get(raw)
        if key is None:
            key = self._pubkeys[raw] = load_public_key(raw)
        return key

    def _registry_for(self, conn: Connection, head: repo.Head) -> Registry:
        if self._registry is None or self._registry_count != head.registry_count:
            reg = Registry(self.bank_id)
            for raw in repo.registry_entries(conn):
                e = parse_entry(raw)
                reg.authorize(e)
                reg.apply(e)
            self._registry, self._registry_count = reg, head.registry_count
        return self._registry

    def forget_registry(self) -> None:
        """Drop the cached registry (the next append or read replays it from the log)."""
        self._registry = None

    def registry(self) -> Registry:
        """The current institution registry (read from the log)."""
        with self.engine.connect() as conn:
            return copy.deepcopy(self._registry_for(conn, repo.read_head(conn)))

    # -- append ---------------------------------------------------------------------------
    def append(
        self,
        raws: Sequence[bytes | Entry],
        *,
        extras: Sequence[Mapping[str, Any] | None] | None = None,
        publish: bool | None = None,
    ) -> list[AppendOutcome]:
        """Append one atomic batch. Returns an outcome per entry, in order.

        Each item is an entry's bytes, or the :class:`Entry` already parsed from them (a
        posted entry is parsed once, on its way in: :func:`creditbank.core.entries.
        entry_from_object`); the ledger parses only the bytes.

        Raises:
            BatchRejected: listing every failing item; nothing is written.
            StorageError: if the database is unavailable.
        """
        result = self.append_many([raws], extras=[extras], publish=publish)[0]
        if isinstance(result, CreditBankError):
            raise result
        return result

    def append_many(
        self,
        requests: Sequence[Sequence[bytes | Entry]],
        *,
        extras: Sequence[Sequence[Mapping[str, Any] | None] | None] | None = None,
        publish: bool | None = None,
    ) -> list[list[AppendOutcome] | CreditBankError]:
        """Append several independent atomic batches in ONE transaction (group commit).

        A failing request is answered with its error and leaves no trace; the others commit.
        """
        prepared: list[_Prepared | CreditBankError] = [self._prepare(r) for r in requests]
        results: list[list[AppendOutcome] | CreditBankError] = []
        try:
            with self._mutex, self.engine.connect().execution_options(**{IMMEDIATE: True}) as conn:
                with conn.begin():
                    head = repo.lock_head(conn)
                    registry = self._registry_for(conn, head)
                    border_ids = merkle.compact_range(head.size)
                    got = repo.fetch_nodes(conn, border_ids)
                    border = [got[i] for i in border_ids]
                    size, root, reg_count = head.size, head.root, head.registry_count
                    now = self._now()
                    pending_rows: list[dict[str, Any]] = []
                    pending_nodes: list[tuple[int, int, bytes]] = []
                    seen: dict[bytes, int] = {}
                    #: index -> leaf hash of the rows appended earlier in this transaction
                    pending_hashes: dict[int, bytes] = {}
                    for n, prep in enumerate(prepared):
                        if isinstance(prep, CreditBankError):
                            results.append(prep)
                            continue
                        req_extras = extras[n] if extras is not None else None
                        savepoint = conn.begin_nested() if self.validator else None
                        try:
                            out, rows, work_reg = self._sequence(
                                conn, prep, registry, size, seen, now, req_extras, pending_hashes
                            )
                        except CreditBankError as e:
                            if savepoint is not None:
                                savepoint.rollback()
                            results.append(e)
                            continue
                        if savepoint is not None:
                            savepoint.commit()
                        new = [r["leaf_hash"] for r in rows]
                        app = merkle.append_leaves(size, border, new)
                        size, root, border = app.size, app.root, list(app.border)
                        pending_nodes.extend(app.nodes)
                        pending_rows.extend(rows)
                        for r in rows:
                            seen[r["leaf_hash"]] = r["idx"]
                            pending_hashes[r["idx"]] = r["leaf_hash"]
                        if work_reg is not registry:
                            registry = work_reg
                            reg_count += sum(1 for r in rows if r["type"] in REGISTRY_TYPES)
                        results.append(out)
                    if pending_rows:
                        repo.insert_entries(conn, pending_rows)
                        repo.insert_nodes(conn, pending_nodes)
                        repo.write_head(conn, repo.Head(size, root, reg_count), now)
                        due = (
                            self.clock.monotonic() - self._last_publish >= self.checkpoint_interval
                        )
                        if publish or (publish is None and due):
                            self._publish_locked(conn, repo.Head(size, root, reg_count), now)
                self._registry, self._registry_count = registry, reg_count
        except CreditBankError:
            raise
        except Exception as e:  # sqlalchemy / driver errors
            self._registry = None
            if type(e).__module__.startswith(("sqlalchemy", "psycopg", "sqlite3")):
                raise StorageError(f"ledger append failed: {type(e).__name__}") from e
            raise
        return results

    def _prepare(self, raws: Sequence[bytes | Entry]) -> _Prepared | CreditBankError:
        """Parse every entry (unless given parsed) and verify signatures with known keys,
        outside the lock."""
        if not raws:
            return InvalidInputError("empty batch", code="batch.empty")
        if len(raws) > MAX_BATCH:
            return InvalidInputError(
                f"batch of {len(raws)} exceeds {MAX_BATCH}", code="batch.too_large"
            )
        entries: list[Entry] = []
        problems: list[dict[str, object]] = []
        verified: dict[int, bytes] = {}
        keys = self._registry.public_keys() if self._registry is not None else {}
        for i, raw in enumerate(raws):
            try:
                e = raw if isinstance(raw, Entry) else parse_entry(raw)
            except CreditBankError as err:
                problems.append({"index": i, "code": err.code, "detail": err.message})
                continue
            entries.append(e)
            pub = keys.get(e.key_id)
            if pub is not None:
                try:
                    verify_signature(self._pub(pub), e.signed_bytes, e.sig)
                except CreditBankError as err:
                    problems.append({"index": i, "code": err.code, "detail": err.message})
                    continue
                verified[i] = pub
        if problems:
            return BatchRejected(f"{len(problems)} of {len(raws)} entries rejected", problems)
        failed: dict[int, dict[str, object]] = {}
        precheck = getattr(self.validator, "precheck", None)
        if precheck is not None:
            for i, e in enumerate(entries):
                try:
                    precheck(e)
                except CreditBankError as err:  # reported with the lock-time problems
                    failed[i] = {"index": i, "code": err.code, "detail": err.message}
        return _Prepared(entries, verified, failed)

    def _sequence(
        self,
        conn: Connection,
        prep: _Prepared,
        registry: Registry,
        size: int,
        seen: dict[bytes, int],
        now: str,
        extras: Sequence[Mapping[str, Any] | None] | None = None,
        pending_hashes: Mapping[int, bytes] | None = None,
    ) -> tuple[list[AppendOutcome], list[dict[str, Any]], Registry]:
        """Authorize and number one request's entries on top of ``size`` (under the lock).

        A duplicate is answered with the index and leaf hash of the STORED entry it repeats
        (an identical re-post, or the same record content signed again at another time), so
        the answer always verifies against an inclusion proof at that index.
        """
        entries, verified = prep.entries, prep.verified
        begin = getattr(self.validator, "begin", None)
        if begin is not None:
            begin(conn, entries)
        hashes = [merkle.leaf_hash(e.raw) for e in entries]
        existing = repo.find_by_leaf_hashes(conn, hashes)
        work = (
            copy.deepcopy(registry) if any(e.type in REGISTRY_TYPES for e in entries) else registry
        )
        out: list[AppendOutcome] = []
        rows: list[dict[str, Any]] = []
        problems: list[dict[str, object]] = list(prep.failed.values())
        clock_now = self.clock.now()
        batch_seen: dict[bytes, int] = {}
        #: positions in ``out`` of duplicates found by content, whose stored hash differs
        restate: list[int] = []
        for i, (e, h) in enumerate(zip(entries, hashes, strict=True)):
            if i in prep.failed:
                continue
            dup = existing.get(h, seen.get(h, batch_seen.get(h)))
            if dup is not None:
                out.append(AppendOutcome(dup, h, True))
                continue
            try:
                self._check_signing_time(e, clock_now)
                pub = work.authorize(e)
                if verified.get(i) != pub:
                    verify_signature(self._pub(pub), e.signed_bytes, e.sig)
                idx = size + len(rows)
                subject = _subject(e)
                if self.validator is not None:
                    extra = extras[i] if extras is not None and i < len(extras) else None
                    adm = self.validator(conn, e, work, idx, extra)
                    if adm.duplicate_of is not None:
                        restate.append(len(out))
                        out.append(AppendOutcome(adm.duplicate_of, h, True))
                        continue
                    subject = adm.subject
                work.apply(e)
            except CreditBankError as err:
                problems.append({"index": i, "code": err.code, "detail": err.message})
                continue
            batch_seen[h] = idx
            rows.append(
                {
                    "idx": idx,
                    "data": e.raw,
                    "leaf_hash": h,
                    "type": e.type,
                    "issuer": e.issuer,
                    "key_id": e.key_id,
                    "at": e.at,
                    "subject": subject,
                    "ingested_at": now,
                }
            )
            out.append(AppendOutcome(idx, h, False))
        if problems:
            abort = getattr(self.validator, "abort", None)
            if abort is not None:
                abort()
            problems.sort(key=lambda p: int(str(p["index"])))
            raise BatchRejected(f"{len(problems)} of {len(entries)} entries rejected", problems)
        if restate:
            known = {r["idx"]: r["leaf_hash"] for r in rows}
            known.update(pending_hashes or {})
            lookup = [out[p].index for p in restate if out[p].index not in known]
            if lookup:
                known.update(repo.leaf_hashes_at(conn, lookup))
            for p in restate:
                out[p] = AppendOutcome(out[p].index, known[out[p].index], True)
        finish = getattr(self.validator, "finish", None)
        if finish is not None:
            finish(conn)
        return out, rows, work

    # -- checkpoints ----------------------------------------------------------------------
    def publish(self, *, force: bool = False) -> repo.StoredCheckpoint | None:
        """Sign and store a checkpoint for the current head if it grew (or ``force``).

        Raises:
            InconsistentLogError: if the head would not be consistent with the last checkpoint.
        """
        with (
            self._mutex,
            self.engine.connect().execution_options(**{IMMEDIATE: True}) as conn,
            conn.begin(),
        ):
            head = repo.lock_head(conn)
            return self._publish_locked(conn, head, self._now(), force=force)

    def _publish_locked(
        self, conn: Connection, head: repo.Head, now: str, *, force: bool = False
    ) -> repo.StoredCheckpoint | None:
        last = repo.latest_checkpoint(conn)
        self._last_publish = self.clock.monotonic()
        if last is not None:
            if head.size < last.size:
                raise InconsistentLogError("head is behind the last published checkpoint")
            if head.size == last.size:
                if head.root != last.root:
                    raise InconsistentLogError("head root differs from the checkpoint of its size")
                return last if force else None
            if last.size > 0:
                proof = merkle.consistency_proof(
                    last.size, head.size, lambda ids: repo.fetch_nodes(conn, ids)
                )
                try:
                    merkle.verify_consistency(last.size, head.size, last.root, head.root, proof)
                except VerificationError as e:
                    raise InconsistentLogError(
                        f"refusing to sign: head {head.size} is not consistent with "
                        f"checkpoint {last.size} ({e})"
                    ) from e
        note = sign_checkpoint(
            Checkpoint(self.origin, head.size, head.root, ()), self.origin, self.log_signer
        )
        cp = repo.StoredCheckpoint(
            head.size, head.root, note, now, None if last is None else last.size
        )
        repo.insert_checkpoint(conn, cp)
        return cp

    def latest_checkpoint(self) -> repo.StoredCheckpoint:
        """Raises: NotFoundError if nothing was published yet."""
        with self.engine.connect() as conn:
            cp = repo.latest_checkpoint(conn)
        if cp is None:
            raise NotFoundError("no checkpoint has been published yet", code="log.no_checkpoint")
        return cp

    def head(self) -> repo.Head:
        with self.engine.connect() as conn:
            return repo.read_head(conn)

    # -- proofs ---------------------------------------------------------------------------
    def _published(self, conn: Connection, size: int) -> repo.StoredCheckpoint:
        cp = repo.checkpoint_at(conn, size)
        if cp is None:
            raise InvalidInputError(
                f"size {size} is not a published checkpoint size", code="log.unpublished_size"
            )
        return cp

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """Leaf hash and inclusion proof of ``index`` against the published ``size``.

        Raises:
            InvalidInputError: if ``size`` is not published or ``index`` is outside it.
        """
        with self.engine.connect() as conn:
            self._published(conn, size)
            plan = merkle.inclusion_plan(index, size)
            ids = merkle.plan_nodes(plan)
            nodes = repo.fetch_nodes(conn, [*ids, (0, index)])
        return nodes[(0, index)], list(merkle.assemble(plan, nodes))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Consistency proof between two published sizes.

        Raises:
            InvalidInputError: if a size is not published or ``first > second``.
        """
        with self.engine.connect() as conn:
            self._published(conn, first)
            self._published(conn, second)
            return list(
                merkle.consistency_proof(first, second, lambda ids: repo.fetch_nodes(conn, ids))
            )

    def entry(self, index: int) -> Any:
        """The stored row of entry ``index``.

        Raises:
            NotFoundError: if there is no such entry.
        """
        with self.engine.connect() as conn:
            row = repo.get_entry(conn, index)
        if row is None:
            raise NotFoundError(f"no entry at index {index}", code="log.no_entry")
        return row

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes ``[start, end)``, bounded by the latest published size.

        Raises:
            InvalidInputError: for a bad or too large range.
        """
        if start < 0 or end <= start or end - start > 10_000:
            raise InvalidInputError(
                "need 0 <= start < end, at most 10000 hashes", code="log.bad_range"
            )
        with self.engine.connect() as conn:
            cp = repo.latest_checkpoint(conn)
            if cp is None or end > cp.size:
                raise InvalidInputError(
                    "range goes beyond the published size", code="log.unpublished_size"
                )
            return repo.leaf_hashes(conn, start, end)


def _subject(e: Entry) -> str | None:
    """Default subject: the learner a private entry is about."""
    learner = e.body.get("learner")
    return learner if isinstance(learner, str) else None


class GroupCommitter:
    """Merges concurrent append requests of one process into shared transactions."""

    def __init__(self, ledger: Ledger, *, max_entries: int = 5000) -> None:
        self.ledger = ledger
        self.max_entries = max_entries
        self._q: queue.Queue[
            tuple[
                Sequence[bytes | Entry],
                Sequence[Mapping[str, Any] | None] | None,
                Future[list[AppendOutcome]],
            ]
            | None
        ] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(
        self,
        raws: Sequence[bytes | Entry],
        extras: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[AppendOutcome]:
        """Append a batch through the shared committer and wait for its outcome.

        Raises:
            CreditBankError: as :meth:`Ledger.append`.
        """
        fut: Future[list[AppendOutcome]] = Future()
        self._q.put((raws, extras, fut))
        return fut.result()

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            batch = [item]
            total = len(item[0])
            while total < self.max_entries:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._q.put(None)
                    break
                batch.append(nxt)
                total += len(nxt[0])
            try:
                results = self.ledger.append_many(
                    [raws for raws, _, _ in batch], extras=[ex for _, ex, _ in batch]
                )
            except BaseException as e:  # handed to every waiting caller
                for _, _, fut in batch:
                    fut.set_exception(e)
                continue
            for (_, _, fut), res in zip(batch, results, strict=True):
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
