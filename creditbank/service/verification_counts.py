"""Verification counts of the serving path, kept in memory and written together."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from creditbank.errors import StorageError
from creditbank.service.bank import Bank
from creditbank.service.verification_checks import storage_error
from creditbank.storage.verify_reads import add_verification_counts

_log = logging.getLogger(__name__)

#: seconds a verification count of the serving path waits in memory before it is written
COUNT_FLUSH_S: Final = 1.0


class CountBuffer:
    """Verification counts kept in memory and written together (thread-safe).

    Each :meth:`add` is one verification of a code at a time; a daemon thread (started on
    the first add) writes what accumulated every ``interval`` seconds in one transaction
    (``verify_count + n``, ``last_verified_at`` the latest). :meth:`flush` writes now;
    :meth:`close` (the app's shutdown, and the process's exit) stops the thread and writes the
    rest. A failed write keeps its counts for the next one; a crash of the process loses at
    most ``interval`` seconds of counts (never a verdict: the verdict is read per request).

    Args:
        bank: the bank whose share codes are counted.
        interval: seconds between writes.
    """

    def __init__(self, bank: Bank, *, interval: float = COUNT_FLUSH_S) -> None:
        self.bank = bank
        self.interval = interval
        self._pending: dict[bytes, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._thread: tuple[threading.Thread, threading.Event] | None = None
        self._at_exit_registered = False

    def add(self, code_hash: bytes, at: str) -> None:
        """Count one verification of the code ``code_hash`` at ``at`` (written later)."""
        with self._lock:
            n, last = self._pending.get(code_hash, (0, at))
            self._pending[code_hash] = (n + 1, max(last, at))
            started = None
            if self._thread is None:  # the first add, or the first since close()
                stop = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(stop,), name="creditbank-verify-counts", daemon=True
                )
                started = self._thread = (thread, stop)
                register, self._at_exit_registered = not self._at_exit_registered, True
        if started is not None:
            if register:
                atexit.register(self._at_exit)
            started[0].start()

    def pending(self) -> int:
        """Verifications counted in memory and not written yet."""
        with self._lock:
            return sum(n for n, _ in self._pending.values())

    def flush(self) -> int:
        """Write the counts now; returns how many verifications were written.

        Raises:
            StorageError: if the database refused (the counts are kept for the next write).
        """
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                with self.bank.engine.begin() as conn:
                    add_verification_counts(conn, batch)
            except SQLAlchemyError as e:
                with self._lock:  # put them back, merged with what came meanwhile
                    for h, (n, at) in batch.items():
                        m, last = self._pending.get(h, (0, at))
                        self._pending[h] = (n + m, max(last, at))
                raise storage_error(e) from e
            return sum(n for n, _ in batch.values())

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.flush()
            except StorageError:  # kept for the next round; the database may be back by then
                _log.warning("verification counts not written yet", exc_info=True)

    def close(self) -> None:
        """Stop the writer thread and write what is left (a later :meth:`add` starts a new
        writer: one verifier serves every app over the same bank).

        Raises:
            StorageError: if the last write failed (the counts stay pending).
        """
        with self._lock:
            running, self._thread = self._thread, None
        if running is not None:
            thread, stop = running
            stop.set()
            if thread is not threading.current_thread():
                thread.join(timeout=10)
        self.flush()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # the database may be gone at exit; nothing more can be done
            _log.warning("verification counts lost at exit", exc_info=True)
