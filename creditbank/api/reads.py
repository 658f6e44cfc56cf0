"""The serving path's reads: the app's :class:`LogReads`.

Sync ``def`` routes and dependencies each hop to Starlette's worker threads (40 threads
contending for the GIL); under load that hop and the contention cost more than the read
itself. Hot read routes are ``async def`` and await the reader's ``a…`` methods, which read
inline on SQLite (microseconds of local file access that never waits for a lock) and through
psycopg's asyncio connections on PostgreSQL (the loop awaits the socket; no thread).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from creditbank.service.log_reads import LogReads


def get_log_reads(request: Request) -> LogReads:
    """The app's log reader (``app.state.log_reads``, set by ``create_app``). Hot routes call
    it directly; as a FastAPI dependency (``LogReadsDep``) it is solved per request."""
    reads: LogReads = request.app.state.log_reads
    return reads


async def _log_reads_dependency(request: Request) -> LogReads:
    return get_log_reads(request)


LogReadsDep = Annotated[LogReads, Depends(_log_reads_dependency)]
