"""The log's hot reads for the serving path: the head and inclusion proofs, without SQLAlchemy.

:class:`creditbank.service.ledger.Ledger` answers the same questions through SQLAlchemy Core,
which costs more per request than the whole HTTP stack (docs/benchmarks.md, "Serving path").
This reader gives identical answers (tests/web/test_log_reads.py compares them) from
:class:`creditbank.storage.fast_reads.FastReads` and remembers what cannot change: a size
once published stays published (checkpoints are append-only), so each published size is
checked against the database once per process; a stored node is the hash of a complete
subtree and never changes (the nodes table is append-only), so node hashes are kept in a
bounded in-process cache and only missing ones are read.
"""

from __future__ import annotations

import threading
from typing import Final

from sqlalchemy import Engine

from creditbank.core import merkle
from creditbank.errors import InvalidInputError, NotFoundError
from creditbank.storage.fast_reads import AsyncFastReads, FastReads
from creditbank.storage.ledger_repo import Head

#: published sizes remembered per process (the set is emptied when it reaches this)
MAX_REMEMBERED_SIZES: Final = 65_536
#: node hashes remembered per process (about 11 MB; emptied when full)
MAX_CACHED_NODES: Final = 65_536


class LogReads:
    """Head and inclusion proofs over one database, safe to share between threads."""

    def __init__(self, reads: FastReads, async_reads: AsyncFastReads | None = None) -> None:
        self._reads = reads
        self._async = async_reads
        self._published: set[int] = set()
        self._nodes: dict[merkle.NodeID, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: Engine) -> LogReads:
        """A reader with its own driver connections to ``engine``'s database (on
        PostgreSQL also asyncio connections, for the ``a…`` methods)."""
        reads = FastReads(engine)
        return cls(reads, None if reads.sqlite else AsyncFastReads(engine))

    @property
    def local(self) -> bool:
        """True on SQLite: a read is a few microseconds of local file access that never waits
        for a lock (WAL readers do not block), cheaper to run on the event loop than to hand
        to a worker thread. False on PostgreSQL (a network round trip)."""
        return self._reads.sqlite

    def close(self) -> None:
        """Close the reader's (thread-side) driver connections."""
        self._reads.close()

    async def aclose(self) -> None:
        """Close the reader's driver connections, the asyncio ones too."""
        self._reads.close()
        if self._async is not None:
            await self._async.close()

    # -- on the event loop: inline on SQLite, awaiting the socket on PostgreSQL ---------------
    async def ahead(self) -> Head:
        """:meth:`head`, without blocking the event loop on a network round trip."""
        if self._async is None:
            return self._reads.head()
        return await self._async.head()

    async def alatest_published_size(self) -> int:
        """:meth:`latest_published_size` for the event loop.

        Raises:
            NotFoundError: ``log.no_checkpoint`` if nothing was published yet.
        """
        if self._async is None:
            return self.latest_published_size()
        size = await self._async.latest_published_size()
        if size is None:
            raise NotFoundError("no checkpoint has been published yet", code="log.no_checkpoint")
        return size

    async def ainclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """:meth:`inclusion_proof` for the event loop.

        Raises:
            InvalidInputError: if ``size`` is not published or ``index`` is outside it.
        """
        if self._async is None:
            return self.inclusion_proof(index, size)
        if size not in self._published:
            if not await self._async.is_published(size):
                raise _unpublished(size)
            self._remember(size)
        groups, nodes, missing = self._plan(index, size)
        if missing:
            self._store(nodes, await self._async.nodes(missing))
        return nodes[(0, index)], [*merkle.assemble_groups(groups, nodes)]

    def head(self) -> Head:
        """The current head (size, root, registry count) as stored now."""
        return self._reads.head()

    def latest_published_size(self) -> int:
        """The latest published checkpoint size.

        Raises:
            NotFoundError: ``log.no_checkpoint`` if nothing was published yet.
        """
        size = self._reads.latest_published_size()
        if size is None:
            raise NotFoundError("no checkpoint has been published yet", code="log.no_checkpoint")
        return size

    def _remember(self, size: int) -> None:
        with self._lock:
            if len(self._published) >= MAX_REMEMBERED_SIZES:
                self._published.clear()
            self._published.add(size)

    def _check_published(self, size: int) -> None:
        if size in self._published:
            return
        if not self._reads.is_published(size):
            raise _unpublished(size)
        self._remember(size)

    def _plan(
        self, index: int, size: int
    ) -> tuple[list[list[merkle.NodeID]], dict[merkle.NodeID, bytes], list[merkle.NodeID]]:
        """The nodes of each range of the proof's plan (computed once), those that are cached,
        and those missing.

        Raises:
            InvalidInputError: unless ``0 <= index < size``.
        """
        groups = merkle.plan_groups(merkle.inclusion_plan(index, size))
        ids = [*merkle.groups_nodes(groups), (0, index)]
        cache = self._nodes
        nodes: dict[merkle.NodeID, bytes] = {}
        missing: list[merkle.NodeID] = []
        for nid in ids:
            h = cache.get(nid)
            if h is None:
                missing.append(nid)
            else:
                nodes[nid] = h
        return groups, nodes, missing

    def _store(self, nodes: dict[merkle.NodeID, bytes], got: dict[merkle.NodeID, bytes]) -> None:
        nodes.update(got)
        with self._lock:
            if len(self._nodes) + len(got) > MAX_CACHED_NODES:
                self._nodes.clear()
            self._nodes.update(got)

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """Leaf hash and inclusion proof of ``index`` against the published ``size``.

        The same answer as :meth:`Ledger.inclusion_proof`.

        Raises:
            InvalidInputError: if ``size`` is not published or ``index`` is outside it.
        """
        self._check_published(size)
        groups, nodes, missing = self._plan(index, size)
        if missing:
            self._store(nodes, self._reads.nodes(missing))
        return nodes[(0, index)], [*merkle.assemble_groups(groups, nodes)]


def _unpublished(size: int) -> InvalidInputError:
    return InvalidInputError(
        f"size {size} is not a published checkpoint size", code="log.unpublished_size"
    )
