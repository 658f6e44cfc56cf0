"""The token buckets behind 429 (deterministic: a fixed clock moved by hand)."""

from __future__ import annotations

import pytest

from creditbank.errors import RateLimitedError
from creditbank.service.clock import FixedClock
from creditbank.service.ratelimit import LIMITS, RateLimiter, limiter_for


def test_burst_then_refusal_with_retry_after(clock: FixedClock) -> None:
    limiter = RateLimiter(rate=0.5, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("10.0.0.1")
    with pytest.raises(RateLimitedError) as info:
        limiter.check("10.0.0.1")
    assert info.value.code == "rate.limited"
    assert info.value.retry_after == 2
    limiter.check("10.0.0.2")  # another address has its own bucket


def test_refill_is_proportional_and_capped(clock: FixedClock) -> None:
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    limiter.check("a")
    limiter.check("a")
    clock.advance(0.5)
    with pytest.raises(RateLimitedError) as info:
        limiter.check("a")
    assert info.value.retry_after == 1
    clock.advance(0.5)
    limiter.check("a")
    clock.advance(3600)  # idle for an hour: back to the burst, not beyond
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(RateLimitedError):
        limiter.check("a")


def test_named_limits_are_shared_per_registry(clock: FixedClock) -> None:
    registry: dict[str, RateLimiter] = {}
    one = limiter_for(registry, "code-lookups", clock)
    assert limiter_for(registry, "code-lookups", clock) is one
    assert (one.rate, one.burst) == LIMITS["code-lookups"]
    with pytest.raises(KeyError):
        limiter_for(registry, "no-such-limit", clock)


def test_bad_parameters_are_refused(clock: FixedClock) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0, burst=1, clock=clock)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(rate=1, burst=0, clock=clock)
