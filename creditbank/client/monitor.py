"""The institution's monitor: ``creditbank monitor`` follows the public log from its own state.

It runs at the institution (or anywhere), trusts nothing the bank says without checking it,
and imports only :mod:`creditbank.core`, :mod:`creditbank.errors` and ``httpx``. One run:

1. **Checkpoint.** Fetch the latest checkpoint and verify its signature with the log's
   verifier key: the one pinned in the state (first run: ``--log-key``, or the key the bank
   serves, pinned on first use). A key that changed, a checkpoint that does not verify, a
   smaller tree than the saved one, or the same size with another root is an alert.
2. **Consistency.** Verify a consistency proof from the saved checkpoint to the new one, so
   the new tree extends everything seen before (a forked log is an alert).
3. **Leaf hashes.** Fetch the leaf hashes of the new range and append them to the saved
   compact range (``border``): they must rebuild the new signed root.
4. **Envelopes.** Fetch the metadata-only envelope of every new index
   (``GET /api/v1/log/envelopes``: type, issuer, key_id, at, on_behalf_of, leaf hash; no body,
   no subject) and check each listed leaf hash against the verified one.
5. **Registry.** Replay the public registry entries (``institution.*``, fetched in full,
   checked against their leaf, bank signature verified) to know every institution's keys and
   their validity. Any registry change about the institution after the first run is an alert.
6. **Entries claiming the institution** (issuer = it, or ``on_behalf_of`` = it): the key must
   be one the issuer had registered and not revoked at the entry's ``at`` (and a custodian
   must be the institution's registered custodian), else an alert. With the institution's
   token the monitor also reads each such entry's bytes, checks they hash to the verified
   leaf and say what the listing said, and verifies the signature with that key.

The state (JSON) keeps the pinned key, the verified size, root and compact range, the
registry entries seen, and every alert raised. It is saved (atomically) when the checkpoint
verified and extends the saved one; a checkpoint-level alert leaves it untouched, so the next
run checks the same again. See docs/monitor.md and ADR 0009.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from creditbank import __version__
from creditbank.core import merkle
from creditbank.core.checkpoint import verify_checkpoint
from creditbank.core.entries import (
    PRIVATE_TYPES,
    REGISTRY_TYPES,
    Entry,
    parse_entry,
    verify_entry_signature,
)
from creditbank.core.registry import Registry
from creditbank.core.signing import b64decode, b64encode, parse_verifier_key
from creditbank.core.watch import (
    Alert,
    change_about,
    check_claim,
    check_signature,
    claims_institution,
    institution_summary,
    key_lines,
)
from creditbank.errors import (
    AuthError,
    ConfigurationError,
    CreditBankError,
    InvalidInputError,
)

STATE_FORMAT: Final = "creditbank-monitor-state"
STATE_VERSION: Final = 1
#: leaf hashes and envelopes asked for per request (the bank's bounds)
LEAF_CHUNK: Final = 10_000
ENVELOPE_CHUNK: Final = 1_000
#: requests for entries in the institution's name in flight at once (with its token)
DEFAULT_CONCURRENCY: Final = 4
#: entries read per ``/log/entry-batch`` request (the bank's bound)
BATCH_ENTRIES: Final = 100
#: attempts per request, and the pause before the second
ATTEMPTS: Final = 3
BACKOFF: Final = 0.5
LOG: Final = "/api/v1/log"


class MonitorError(CreditBankError):
    """The bank could not be followed: unreachable, or an answer the monitor cannot use."""

    code = "monitor.failed"


@dataclass(slots=True)
class MonitorReport:
    """What one run saw."""

    institution: str
    first_run: bool = False
    size_before: int = 0
    size_after: int = 0
    alerts: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: new entries that claim the institution; of them, signature-checked (with the token)
    claimed: int = 0
    verified: int = 0
    registry_entries: int = 0
    keys: list[str] = field(default_factory=list)
    state_saved: bool = False

    @property
    def ok(self) -> bool:
        return not self.alerts

    def as_dict(self) -> dict[str, Any]:
        return {
            "institution": self.institution,
            "first_run": self.first_run,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "claimed": self.claimed,
            "verified": self.verified,
            "registry_entries": self.registry_entries,
            "keys": self.keys,
            "state_saved": self.state_saved,
            "alerts": [a.as_dict() for a in self.alerts],
            "notes": self.notes,
        }


# --- state ----------------------------------------------------------------------------------
@dataclass(slots=True)
class MonitorState:
    """The monitor's memory between runs (one JSON file)."""

    institution: str
    url: str
    log_key: str
    bank_id: str | None = None
    size: int = 0
    root: bytes = merkle.EMPTY_ROOT
    checkpoint: str = ""
    border: list[bytes] = field(default_factory=list)
    #: every index below ``scanned`` was examined
    scanned: int = 0
    registry: list[tuple[int, bytes]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "v": STATE_VERSION,
            "institution": self.institution,
            "url": self.url,
            "log_key": self.log_key,
            "bank_id": self.bank_id,
            "size": self.size,
            "root": b64encode(self.root),
            "checkpoint": self.checkpoint,
            "border": [b64encode(h) for h in self.border],
            "scanned": self.scanned,
            "registry": [{"index": i, "entry": b64encode(raw)} for i, raw in self.registry],
            "alerts": self.alerts,
        }

    @classmethod
    def from_json(cls, doc: Any, path: Path) -> MonitorState:
        """Raises: ConfigurationError ``monitor.state`` if ``doc`` is not a monitor state."""
        bad = ConfigurationError(f"{path} is not a creditbank monitor state", code="monitor.state")
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise bad
        if doc.get("v") != STATE_VERSION:
            raise ConfigurationError(
                f"{path} is a monitor state of version {doc.get('v')!r}; this is version "
                f"{STATE_VERSION}",
                code="monitor.state",
            )
        try:
            state = cls(
                institution=str(doc["institution"]),
                url=str(doc["url"]),
                log_key=str(doc["log_key"]),
                bank_id=None if doc.get("bank_id") is None else str(doc["bank_id"]),
                size=_int(doc["size"]),
                root=b64decode(doc["root"], what="root"),
                checkpoint=str(doc["checkpoint"]),
                border=[b64decode(h, what="border") for h in doc["border"]],
                scanned=_int(doc["scanned"]),
                registry=[
                    (_int(r["index"]), b64decode(r["entry"], what="entry")) for r in doc["registry"]
                ],
                alerts=[dict(a) for a in doc.get("alerts", [])],
            )
        except (KeyError, TypeError, ValueError, CreditBankError) as e:
            raise bad from e
        if (
            len(state.border) != len(merkle.compact_range(state.size))
            or state.scanned != state.size
        ):
            raise bad
        return state


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("not a non-negative integer")
    return value


def load_state(path: Path, institution: str) -> MonitorState | None:
    """The saved state at ``path``, or None if there is none yet.

    Raises:
        ConfigurationError: ``monitor.state`` if it is unreadable, not a monitor state, or
            was written for another institution.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(
            f"cannot read monitor state {path}: {e}", code="monitor.state"
        ) from e
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigurationError(
            f"{path} is not a creditbank monitor state", code="monitor.state"
        ) from e
    state = MonitorState.from_json(doc, path)
    if state.institution != institution:
        raise ConfigurationError(
            f"monitor state {path} follows {state.institution!r}, not {institution!r}; "
            "give each institution its own --state",
            code="monitor.state",
        )
    return state


def save_state(path: Path, state: MonitorState) -> None:
    """Write the state atomically (a temporary file, fsync, rename, fsync of the folder).

    Raises:
        ConfigurationError: ``monitor.state`` if it cannot be written.
    """
    data = json.dumps(state.to_json(), ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
    folder = path.parent if str(path.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise ConfigurationError(
            f"cannot write monitor state {path}: {e.strerror}", code="monitor.state"
        ) from e


def check_writable(path: Path) -> None:
    """Refuse before any request if the state could not be saved afterwards (the alerts of
    a run would be printed, but the next run would report them again).

    Raises:
        ConfigurationError: ``monitor.state`` if the folder is missing or not writable.
    """
    folder = path.parent if str(path.parent) else Path()
    if path.is_dir():
        raise ConfigurationError(f"monitor state {path} is a folder", code="monitor.state")
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".probe", dir=folder)
    except OSError as e:
        raise ConfigurationError(
            f"cannot write the monitor state in {folder}: {e.strerror}", code="monitor.state"
        ) from e
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)


def default_state_path(institution: str) -> Path:
    """``creditbank-monitor.<institution>.json`` in the current folder."""
    return Path(f"creditbank-monitor.{institution}.json")


# --- HTTP -----------------------------------------------------------------------------------
class LogClient:
    """The public log endpoints, with a few retries of network errors and 5xx answers."""

    def __init__(
        self,
        http: httpx.Client,
        token: str | None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http
        self.token = token
        self._sleep = sleep

    def _get(
        self, path: str, params: Mapping[str, Any] | None = None, *, auth: bool = False
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        last = ""
        wait = 0.0
        for attempt in range(ATTEMPTS):
            if attempt:
                self._sleep(max(wait, BACKOFF * 2 ** (attempt - 1)))
            try:
                response = self.http.get(path, params=params, headers=headers)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                continue
            if response.status_code < 500 and response.status_code not in (408, 429):
                return response
            last = f"HTTP {response.status_code}"
            retry_after = response.headers.get("Retry-After", "")
            wait = min(float(retry_after), 30.0) if retry_after.isdigit() else 0.0
        raise MonitorError(
            f"{path}: no answer after {ATTEMPTS} attempts ({last})", code="monitor.unreachable"
        )

    def _json(self, path: str, params: Mapping[str, int] | None = None) -> Any:
        response = self._get(path, params)
        if response.status_code != 200:
            raise MonitorError(
                f"{path}: HTTP {response.status_code} {_problem_detail(response)}",
                code="monitor.protocol",
            )
        try:
            return response.json()
        except ValueError as e:
            raise MonitorError(f"{path}: not JSON", code="monitor.protocol") from e

    def key(self) -> str:
        response = self._get(f"{LOG}/key")
        if response.status_code != 200:
            raise MonitorError(f"{LOG}/key: HTTP {response.status_code}", code="monitor.protocol")
        return response.text.strip()

    def checkpoint(self) -> str:
        response = self._get(f"{LOG}/checkpoint")
        if response.status_code != 200:
            raise MonitorError(
                f"{LOG}/checkpoint: HTTP {response.status_code} {_problem_detail(response)}",
                code="monitor.protocol",
            )
        return response.text

    def consistency(self, first: int, second: int) -> list[bytes] | str:
        """The proof, or the bank's reason for not giving one (an unpublished size)."""
        path = f"{LOG}/proofs/consistency"
        response = self._get(path, {"first": first, "second": second})
        if response.status_code in (400, 404):
            return _problem_detail(response)
        if response.status_code != 200:
            raise MonitorError(f"{path}: HTTP {response.status_code}", code="monitor.protocol")
        try:
            doc = response.json()
            return [b64decode(h, what="proof hash") for h in doc["path"]]
        except (ValueError, KeyError, TypeError, CreditBankError) as e:
            raise MonitorError(f"{path}: malformed answer", code="monitor.protocol") from e

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        path = f"{LOG}/leaf-hashes"
        doc = self._json(path, {"start": start, "end": end})
        try:
            hashes = [b64decode(h, what="leaf hash") for h in doc["leaf_hashes"]]
        except (KeyError, TypeError, CreditBankError) as e:
            raise MonitorError(f"{path}: malformed answer", code="monitor.protocol") from e
        if len(hashes) != end - start:
            raise MonitorError(
                f"{path}: asked for {end - start} leaf hashes, got {len(hashes)}",
                code="monitor.protocol",
            )
        return hashes

    def envelopes(self, start: int, end: int) -> list[dict[str, Any]]:
        path = f"{LOG}/envelopes"
        doc = self._json(path, {"start": start, "end": end})
        items = doc.get("envelopes") if isinstance(doc, dict) else None
        if not isinstance(items, list) or len(items) != end - start:
            raise MonitorError(
                f"{path}: asked for {end - start} envelopes, got another answer",
                code="monitor.protocol",
            )
        out: list[dict[str, Any]] = []
        for it in items:
            if not isinstance(it, dict):
                raise MonitorError(f"{path}: malformed envelope", code="monitor.protocol")
            out.append(it)
        return out

    def entry(self, index: int, *, auth: bool) -> bytes | int:
        """The entry's bytes, or the HTTP status with which the bank refused them.

        Raises:
            AuthError: ``monitor.token`` if the bank refuses the token itself (401).
        """
        response = self._get(f"{LOG}/entries/{index}", auth=auth)
        if response.status_code == 200:
            return response.content
        if response.status_code == 401 and auth:
            raise AuthError(
                f"the bank refused the token: {_problem_detail(response)}", code="monitor.token"
            )
        return response.status_code

    def entry_batch(self, indexes: Sequence[int]) -> dict[int, bytes | int] | None:
        """Entries' bytes, or the status with which the bank refused each, read with the token
        in one request (``/log/entry-batch``); None if the bank has no such endpoint.

        Raises:
            AuthError: ``monitor.token`` if the bank refuses the token itself (401).
            MonitorError: an answer the monitor cannot use.
        """
        path = f"{LOG}/entry-batch"
        response = self._get(path, {"index": [str(i) for i in indexes]}, auth=True)
        if response.status_code in (404, 405):
            return None
        if response.status_code == 401:
            raise AuthError(
                f"the bank refused the token: {_problem_detail(response)}", code="monitor.token"
            )
        if response.status_code != 200:
            raise MonitorError(
                f"{path}: HTTP {response.status_code} {_problem_detail(response)}",
                code="monitor.protocol",
            )
        out: dict[int, bytes | int] = {}
        try:
            for item in response.json()["entries"]:
                i, status = item["index"], item["status"]
                if type(i) is not int or type(status) is not int:
                    raise TypeError("index and status must be integers")
                out[i] = b64decode(item["entry"], what="entry") if status == 200 else status
        except (ValueError, KeyError, TypeError, CreditBankError) as e:
            raise MonitorError(f"{path}: malformed answer", code="monitor.protocol") from e
        if set(out) != set(indexes):
            raise MonitorError(f"{path}: answered other indexes", code="monitor.protocol")
        return out


def _problem_detail(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(doc, dict):
        return str(doc.get("detail") or doc.get("title") or response.reason_phrase)
    return response.reason_phrase


# --- the run --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Claim:
    """An entry listed in the institution's name whose key was valid at its time."""

    index: int
    envelope: Mapping[str, Any]
    public: bytes
    leaf: bytes


class Monitor:
    """One run over one bank for one institution (see the module docstring)."""

    def __init__(
        self,
        log: LogClient,
        institution: str,
        state: MonitorState | None,
        *,
        url: str,
        log_key: str | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.log = log
        self.institution = institution
        self.saved = state
        self.url = url
        self.log_key = log_key
        self.concurrency = concurrency
        self.progress = progress
        self.report = MonitorReport(institution, first_run=state is None)
        self.registry: Registry | None = None
        self.bank_id: str | None = state.bank_id if state else None
        self.registry_raws: list[tuple[int, bytes]] = list(state.registry) if state else []
        #: whether the bank offers /log/entry-batch (until it answers 404)
        self._batch = True

    # -- alerts ----------------------------------------------------------------------------
    def _alert(
        self, code: str, detail: str, *, index: int | None = None, size: int | None = None
    ) -> None:
        self.report.alerts.append(Alert(code, detail, index, size))

    # -- registry --------------------------------------------------------------------------
    def _replay_saved_registry(self) -> None:
        if self.bank_id is None:
            return
        reg = Registry(self.bank_id)
        for index, raw in self.registry_raws:
            try:
                e = parse_entry(raw)
                reg.authorize(e)
                reg.apply(e)
            except CreditBankError as err:  # the state file was edited or damaged
                raise ConfigurationError(
                    f"the registry entry {index} saved in the monitor state does not replay: "
                    f"{err}; start a new --state",
                    code="monitor.state",
                ) from err
        self.registry = reg

    def _registry_entry(self, index: int, envelope: Mapping[str, Any], leaf: bytes) -> None:
        got = self.log.entry(index, auth=False)
        if isinstance(got, int):
            self._alert(
                "registry.withheld",
                f"the bank answered HTTP {got} for registry entry {index}, which is public",
                index=index,
            )
            return
        if merkle.leaf_hash(got) != leaf:
            self._alert(
                "entry.bytes",
                f"the bytes served for entry {index} do not hash to its leaf in the signed tree",
                index=index,
            )
            return
        try:
            e = parse_entry(got)
        except CreditBankError as err:
            self._alert("entry.malformed", f"entry {index} does not parse: {err}", index=index)
            return
        mismatch = self._envelope_mismatch(index, envelope, e)
        if mismatch is not None:
            self.report.alerts.append(mismatch)
            return
        if self.bank_id is None:
            self.bank_id = e.issuer  # the genesis: the bank registering itself
            self.registry = Registry(self.bank_id)
        assert self.registry is not None  # noqa: S101 - set with bank_id
        try:
            public = self.registry.authorize(e)
            verify_entry_signature(e, public)
            before = institution_summary(self.registry, self.institution)
            self.registry.apply(e)
        except CreditBankError as err:
            self._alert(
                "registry.invalid",
                f"registry entry {index} ({e.type}) does not apply: {err} [{err.code}]",
                index=index,
            )
            return
        self.registry_raws.append((index, got))
        self.report.registry_entries += 1
        change = change_about(e, self.institution)
        if change is None:
            return
        if self.report.first_run:
            self.report.notes.append(f"baseline: index {index}: {change}")
        else:
            self._alert("registry.changed", f"{change} (before: {before})", index=index)

    @staticmethod
    def _envelope_mismatch(index: int, envelope: Mapping[str, Any], e: Entry) -> Alert | None:
        """An alert if the listing's envelope is not what the entry's bytes say."""
        body_owner = e.body.get("on_behalf_of")
        owner = body_owner if isinstance(body_owner, str) else None
        said = (envelope.get("type"), envelope.get("issuer"), envelope.get("key_id"),
                envelope.get("at"), envelope.get("on_behalf_of"))  # fmt: skip
        real = (e.type, e.issuer, e.key_id, e.at, owner)
        if said == real:
            return None
        return Alert(
            "listing.mismatch",
            f"the envelope listing says {_fmt(said)} for entry {index}, its bytes say {_fmt(real)}",
            index,
        )

    # -- entries in the institution's name -------------------------------------------------
    def _claim(self, index: int, envelope: Mapping[str, Any], leaf: bytes) -> _Claim | None:
        """Check an entry listed in the institution's name against the registry."""
        public, alert = check_claim(
            self.registry,
            self.institution,
            index,
            envelope.get("type"),
            str(envelope.get("issuer")),
            str(envelope.get("key_id")),
            str(envelope.get("at")),
        )
        if alert is not None:
            self.report.alerts.append(alert)
            return None
        assert public is not None  # noqa: S101 - no alert: a key
        return _Claim(index, envelope, public, leaf)

    def _verify_batch(self, claims: Sequence[_Claim]) -> list[list[Alert]]:
        """Read claimed entries with the token (one request; one per entry from a bank
        without ``/log/entry-batch``) and check each."""
        got = self.log.entry_batch([c.index for c in claims]) if self._batch else None
        if got is None:
            self._batch = False
            return [self._check_claim(c, self.log.entry(c.index, auth=True)) for c in claims]
        return [self._check_claim(c, got[c.index]) for c in claims]

    def _check_claim(self, claim: _Claim, got: bytes | int) -> list[Alert]:
        """Check a claimed entry's bytes (or the bank's refusal): leaf, listing, signature."""
        i = claim.index
        if isinstance(got, int):
            return [Alert(
                "entry.withheld",
                f"the bank lists entry {i} in {self.institution}'s name but answered HTTP "
                f"{got} to {self.institution}'s token",
                i,
            )]  # fmt: skip
        if merkle.leaf_hash(got) != claim.leaf:
            return [Alert(
                "entry.bytes",
                f"the bytes served for entry {i} do not hash to its leaf in the signed tree",
                i,
            )]  # fmt: skip
        try:
            e = parse_entry(got)
        except CreditBankError as err:
            return [Alert("entry.malformed", f"entry {i} does not parse: {err}", i)]
        mismatch = self._envelope_mismatch(i, claim.envelope, e)
        if mismatch is not None:
            return [mismatch]
        bad = check_signature(e, claim.public, i, self.institution)
        return [bad] if bad is not None else []

    # -- run -------------------------------------------------------------------------------
    def run(self) -> tuple[MonitorReport, MonitorState | None]:
        """Follow the log once; returns the report and the state to save (None: keep the
        saved one)."""
        rep = self.report
        saved = self.saved
        served_key = self.log.key()
        pinned = self.log_key or (saved.log_key if saved else served_key)
        verifier = parse_verifier_key(pinned)
        if saved is None and self.log_key is None:
            rep.notes.append(
                f"first run: pinned the log key the bank serves, {served_key}; compare it with "
                "the key the bank publishes elsewhere"
            )
        if served_key != pinned:
            self._alert(
                "log.key_changed",
                f"the bank serves log key {served_key}, not the pinned {pinned}",
            )
        note = self.log.checkpoint()
        old_size = saved.size if saved else 0
        rep.size_before = rep.size_after = old_size
        try:
            cp = verify_checkpoint(note, verifier)
        except CreditBankError as err:
            self._alert(
                "checkpoint.signature",
                f"the latest checkpoint does not verify with the log key: {err} [{err.code}]",
            )
            return rep, None
        old_root = saved.root if saved else merkle.EMPTY_ROOT
        if cp.size < old_size:
            self._alert(
                "checkpoint.rollback",
                f"the bank's latest checkpoint has size {cp.size}, smaller than the verified "
                f"size {old_size}",
                size=cp.size,
            )
            return rep, None
        if cp.size == old_size and cp.root != old_root:
            self._alert(
                "log.fork",
                f"the checkpoint of size {cp.size} has another root than the one verified "
                "before: the bank signed two different trees",
                size=cp.size,
            )
            return rep, None
        if old_size and cp.size > old_size:
            proof = self.log.consistency(old_size, cp.size)
            try:
                if isinstance(proof, str):
                    raise InvalidInputError(f"the bank gave no proof: {proof}")
                merkle.verify_consistency(old_size, cp.size, old_root, cp.root, proof)
            except CreditBankError as err:
                self._alert(
                    "log.inconsistent",
                    f"checkpoint {cp.size} is not consistent with the verified checkpoint "
                    f"{old_size}: {err}",
                    size=cp.size,
                )
                return rep, None
        leaves: list[bytes] = []
        for start in range(old_size, cp.size, LEAF_CHUNK):
            end = min(start + LEAF_CHUNK, cp.size)
            leaves.extend(self.log.leaf_hashes(start, end))
            self._progress("leaf hashes", end - old_size, cp.size - old_size)
        border = saved.border if saved else []
        appended = merkle.append_leaves(old_size, border, leaves)
        if appended.root != cp.root:
            self._alert(
                "log.leaf_hashes",
                f"the leaf hashes {old_size}..{cp.size - 1} served do not rebuild the signed "
                f"root of size {cp.size}",
                size=cp.size,
            )
            return rep, None
        self._replay_saved_registry()
        claims = self._scan(old_size, cp.size, leaves)
        self._verify(claims)
        rep.alerts.sort(key=lambda a: (a.index is None, a.index or 0, a.code))
        rep.size_after = cp.size
        rep.keys = key_lines(self.registry, self.institution)
        state = MonitorState(
            institution=self.institution,
            url=self.url,
            log_key=pinned,
            bank_id=self.bank_id,
            size=cp.size,
            root=cp.root,
            checkpoint=note,
            border=list(appended.border),
            scanned=cp.size,
            registry=self.registry_raws,
            alerts=[*(saved.alerts if saved else []), *(a.as_dict() for a in rep.alerts)],
        )
        return rep, state

    def _scan(self, begin: int, end: int, leaves: Sequence[bytes]) -> list[_Claim]:
        """Pass over the envelopes of ``[begin, end)`` in index order."""
        claims: list[_Claim] = []
        me = self.institution
        for start in range(begin, end, ENVELOPE_CHUNK):
            stop = min(start + ENVELOPE_CHUNK, end)
            for i, env in zip(range(start, stop), self.log.envelopes(start, stop), strict=True):
                leaf = leaves[i - begin]
                if env.get("index") != i or env.get("leaf_hash") != b64encode(leaf):
                    self._alert(
                        "listing.leaf_hash",
                        f"the envelope listed for index {i} is not the entry at that index "
                        "in the signed tree",
                        index=i,
                    )
                    continue
                kind = env.get("type")
                if not isinstance(kind, str):
                    self._alert(
                        "entry.malformed",
                        f"the bank lists entry {i} as malformed (not an entry)",
                        index=i,
                    )
                    continue
                if kind in REGISTRY_TYPES:
                    self._registry_entry(i, env, leaf)
                    continue
                if not claims_institution(env.get("issuer"), env.get("on_behalf_of"), me):
                    continue
                self.report.claimed += 1
                claim = self._claim(i, env, leaf)
                if claim is not None:
                    claims.append(claim)
            self._progress("envelopes", stop - begin, end - begin)
        return claims

    def _verify(self, claims: list[_Claim]) -> None:
        if not claims:
            return
        if self.log.token is None:
            private = sum(1 for c in claims if c.envelope.get("type") in PRIVATE_TYPES)
            self.report.notes.append(
                f"{len(claims)} new entries in {self.institution}'s name use keys valid at "
                f"their time; their signatures were not checked ({private} are not public: "
                "give --token to read and verify them)"
            )
            return
        done = 0
        batches = [claims[i : i + BATCH_ENTRIES] for i in range(0, len(claims), BATCH_ENTRIES)]
        with ThreadPoolExecutor(max(1, self.concurrency), "monitor") as pool:
            for results in pool.map(self._verify_batch, batches):
                for alerts in results:
                    self.report.alerts.extend(alerts)
                    if not alerts:
                        self.report.verified += 1
                done += len(results)
                self._progress("signatures", done, len(claims))

    def _progress(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)


def _fmt(values: Sequence[Any]) -> str:
    names = ("type", "issuer", "key_id", "at", "on_behalf_of")
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True) if v is not None)


def _client(url: str, transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(
        base_url=url,
        transport=transport,
        timeout=httpx.Timeout(30.0, connect=10.0),
        headers={"User-Agent": f"creditbank-monitor/{__version__}"},
        follow_redirects=False,
    )


def run_monitor(
    institution: str,
    state_path: Path,
    *,
    url: str,
    token: str | None = None,
    log_key: str | None = None,
    http: httpx.Client | None = None,
    transport: httpx.BaseTransport | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[str, int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> MonitorReport:
    """Follow the log at ``url`` once for ``institution`` from the state at ``state_path``
    and save the new state (see the module docstring).

    Args:
        institution: the institution id to watch.
        state_path: the JSON state (created on the first run).
        url: the bank's base URL (``http://`` or ``https://``).
        token: the institution's API token, to read and verify entries in its name.
        log_key: the log's verifier key ``name+hex8+base64``; default the pinned one (or, on
            the first run, the key the bank serves).
        http: an ``httpx.Client`` whose base URL is the bank (tests); default one for ``url``.
        transport: an ``httpx`` transport for the default client (tests).
        concurrency: entries read at once with the token.
        progress: called with (phase, done, total) on long runs.
        sleep: used between retries.

    Returns:
        The report; ``report.ok`` is false on any alert.

    Raises:
        ConfigurationError: ``monitor.state`` for an unusable state file, or a ``log_key``
            that differs from the pinned one.
        InvalidInputError: a malformed ``log_key``.
        AuthError: ``monitor.token`` if the bank refuses the token.
        MonitorError: the bank is unreachable or answers what the monitor cannot use.
    """
    state = load_state(state_path, institution)
    check_writable(state_path)
    if log_key is not None:
        parse_verifier_key(log_key)  # a malformed key is a usage error, before any request
        if state is not None and state.log_key != log_key:
            raise ConfigurationError(
                f"--log-key differs from the key pinned in {state_path} ({state.log_key}); "
                "a log's key does not change: investigate, or start a new --state",
                code="monitor.log_key",
            )
    with _managed(http, url, transport) as client:
        monitor = Monitor(
            LogClient(client, token, sleep=sleep),
            institution,
            state,
            url=url,
            log_key=log_key,
            concurrency=concurrency,
            progress=progress,
        )
        report, new_state = monitor.run()
    if new_state is not None:
        save_state(state_path, new_state)
        report.state_saved = True
    return report


@contextmanager
def _managed(
    http: httpx.Client | None, url: str, transport: httpx.BaseTransport | None
) -> Iterator[httpx.Client]:
    """``http`` as given (the caller closes it), or a client of our own, closed after."""
    if http is not None:
        yield http
        return
    client = _client(url, transport)
    try:
        yield client
    finally:
        client.close()


def iter_alert_lines(report: MonitorReport) -> Iterator[str]:
    """One line per alert: ``ALERT index 14 [entry.unknown_key] …``."""
    for a in report.alerts:
        yield f"ALERT {a.where} [{a.code}] {a.detail}"


__all__ = [
    "Alert",
    "LogClient",
    "Monitor",
    "MonitorError",
    "MonitorReport",
    "MonitorState",
    "default_state_path",
    "iter_alert_lines",
    "load_state",
    "run_monitor",
    "save_state",
]
