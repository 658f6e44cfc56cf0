"""An open-loop HTTP load generator: a fixed request rate over a fixed number of connections,
latency measured from each request's *scheduled* send time.

wrk (closed loop) sends the next request on a connection only when the previous answer is in,
so with 64 connections its latency is about 64 / throughput by construction (Little's law) and
its percentiles leave out the requests a slow spell kept from being sent ("coordinated
omission"). To ask "at 500 requests/s from 64 clients, how long does an answer take?", the
requests must be sent on a schedule regardless of the answers: request ``i`` is due at
``start + i / rate`` on connection ``i mod connections``, and its latency runs from that due
time to the last byte of its answer, so time spent queued behind a slow answer counts.

HTTP/1.1 keep-alive over asyncio streams (uvloop when installed), answers read by their
``Content-Length``. Used by ``bench_verify.py``; also runnable alone::

    .venv/bin/python -m bench.loadgen http://127.0.0.1:8000 /healthz --rate 500 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class OpenLoopResult:
    """What one open-loop run measured (latencies in ms, from the scheduled send time)."""

    rate: float
    connections: int
    duration: float
    sent: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    client_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            if not lat:
                return None
            return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 2)

        return {
            "offered_rps": self.rate,
            "achieved_rps": round(len(lat) / self.duration, 1),
            "connections": self.connections,
            "requests": len(lat),
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "p999": pct(99.9),
            "max": round(lat[-1], 2) if lat else None,
            "mean": round(statistics.fmean(lat), 2) if lat else None,
            "statuses": dict(self.statuses),
            "errors": self.errors,
            "client_cpu_us_per_request": round(1e6 * self.client_cpu_s / max(1, len(lat)), 1),
        }


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


async def run_open_loop(
    base_url: str,
    paths: Sequence[str],
    *,
    rate: float,
    connections: int,
    duration: float,
    headers: Callable[[int], dict[str, str]] | None = None,
) -> OpenLoopResult:
    """Send ``rate * duration`` GET requests on schedule over ``connections`` connections.

    ``paths[i % len(paths)]`` is request ``i``'s path; ``headers(i)`` its extra headers.
    """
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    total = int(rate * duration)
    result = OpenLoopResult(rate, connections, duration, total)
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.2  # every connection open before the first is due

    async def connection(k: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in range(k, total, connections):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                extra = headers(i) if headers is not None else {}
                lines = [f"GET {paths[i % len(paths)]} HTTP/1.1", f"Host: {host}:{port}"]
                lines += [f"{k2}: {v}" for k2, v in extra.items()]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
                try:
                    status = await _read_answer(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.latencies_ms.append((time.perf_counter() - due) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(k) for k in range(connections)))
    result.client_cpu_s = time.process_time() - cpu0
    return result


def open_loop(base_url: str, paths: Sequence[str], **kw: Any) -> dict[str, Any]:
    """:func:`run_open_loop` on a fresh event loop (uvloop when installed); its summary."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        runner = asyncio.run
    result: OpenLoopResult = runner(run_open_loop(base_url, paths, **kw))
    return result.summary()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base_url")
    p.add_argument("paths", nargs="+")
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--duration", type=float, default=10)
    args = p.parse_args(argv)
    print(
        open_loop(
            args.base_url,
            args.paths,
            rate=args.rate,
            connections=args.connections,
            duration=args.duration,
        )
    )


if __name__ == "__main__":
    main()
