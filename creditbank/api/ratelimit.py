"""A route dependency that rate-limits by client address: 429 problem+json with Retry-After.

Usage::

    @router.get("/verify/{code}", dependencies=[Depends(rate_limit("code-lookups"))])

Limits are named so that the API and the pages can share one bucket per address (both read
``app.state.rate_limiters``); see :mod:`creditbank.service.ratelimit` for the buckets and
their multi-worker behaviour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from creditbank.service.ratelimit import LIMITS, RateLimiter, limiter_for


def client_address(request: Request) -> str:
    """The client's address as uvicorn saw it (``X-Forwarded-For`` only from trusted proxies)."""
    return request.client.host if request.client is not None else "unknown"


def rate_limit(name: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency taking one token from the ``name`` bucket of the caller's address.

    ``name`` must be a key of :data:`creditbank.service.ratelimit.LIMITS`.

    Raises:
        KeyError: at import time, for an unknown limit name.
    """
    LIMITS[name]  # fail early on a typo

    async def dependency(request: Request) -> None:
        state = request.app.state
        limiter: RateLimiter = limiter_for(state.rate_limiters, name, state.bank.clock)
        limiter.check(client_address(request))

    return dependency
