"""The serving path's reads: the app's :class:`LogReads`, run where they cost least.

Sync ``def`` routes and dependencies each hop to Starlette's worker threads (40 threads
contending for the GIL); under load that hop and the contention cost more than the read
itself. Hot read routes are ``async def`` and call :func:`run_read`, which runs the read
inline on SQLite (microseconds of local file access that never waits for a lock) and in the
thread pool on PostgreSQL (a network round trip must not stall the event loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from creditbank.service.log_reads import LogReads

T = TypeVar("T")


def get_log_reads(request: Request) -> LogReads:
    """The app's log reader (``app.state.log_reads``, set by ``create_app``). Hot routes call
    it directly; as a FastAPI dependency (``LogReadsDep``) it is solved per request."""
    reads: LogReads = request.app.state.log_reads
    return reads


async def _log_reads_dependency(request: Request) -> LogReads:
    return get_log_reads(request)


LogReadsDep = Annotated[LogReads, Depends(_log_reads_dependency)]


async def run_read(reads: LogReads, fn: Callable[..., T], /, *args: object) -> T:
    """Call ``fn(*args)`` inline on SQLite, in the thread pool on PostgreSQL.

    Raises:
        Exception: whatever ``fn`` raises.
    """
    if reads.local:
        return fn(*args)
    return await run_in_threadpool(fn, *args)
