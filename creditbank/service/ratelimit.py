"""Per-client token buckets for lookups that guess at secrets (verification codes, logins).

A :class:`RateLimiter` holds one bucket per key (a client address): ``burst`` tokens, refilled
at ``rate`` tokens per second; each request takes one, and an empty bucket refuses with
:class:`RateLimitedError` saying how many whole seconds until a token is back (the HTTP
layers turn it into 429 with ``Retry-After``).

In process only: with ``creditbank serve --workers N`` each worker keeps its own buckets, so
one client gets up to N x the limit when the kernel spreads its connections over workers
(docs/web.md, "Rate limiting"). A limit that must hold across workers or hosts belongs in
the reverse proxy in front of the bank.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Final

from creditbank.errors import RateLimitedError
from creditbank.service.clock import Clock

#: buckets kept at most; when full, buckets that are full again (idle clients) are dropped
MAX_BUCKETS: Final = 100_000

#: the named limits routes use: name -> (tokens per second, burst)
LIMITS: Final[dict[str, tuple[float, int]]] = {
    # verification-code lookups (page and API share it): 30 a minute, 20 at once
    "code-lookups": (0.5, 20),
    # sign-in attempts: 10 a minute, 5 at once
    "sign-in": (1 / 6, 5),
    # verification uploads (page and API share it; each costs ~75 ms of server CPU for the
    # PAdES validation and attachment reads): 20 a minute, 20 at once
    "uploads": (1 / 3, 20),
}


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by client address (thread-safe)."""

    def __init__(self, *, rate: float, burst: int, clock: Clock, name: str = "requests") -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.name = name
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for ``key``.

        Raises:
            RateLimitedError: ``rate.limited`` when ``key``'s bucket is empty.
        """
        now = self.clock.monotonic()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._prune(now)
                b = self._buckets[key] = _Bucket(float(self.burst), now)
            else:
                b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
                b.stamp = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return
            wait = max(1, math.ceil((1.0 - b.tokens) / self.rate))
        raise RateLimitedError(
            f"too many {self.name} from this address; try again in {wait} s",
            retry_after=wait,
        )

    def _prune(self, now: float) -> None:
        burst, rate = self.burst, self.rate
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * rate >= burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= MAX_BUCKETS:  # all busy: forget the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].stamp)
            for k in oldest[: MAX_BUCKETS // 2]:
                del self._buckets[k]


_registry_lock = threading.Lock()


def limiter_for(registry: dict[str, RateLimiter], name: str, clock: Clock) -> RateLimiter:
    """The limiter called ``name`` in ``registry`` (an app's), created on first use from
    :data:`LIMITS`.

    Raises:
        KeyError: if ``name`` is not in :data:`LIMITS`.
    """
    limiter = registry.get(name)
    if limiter is None:
        rate, burst = LIMITS[name]
        with _registry_lock:
            limiter = registry.setdefault(
                name, RateLimiter(rate=rate, burst=burst, clock=clock, name=name)
            )
    return limiter
