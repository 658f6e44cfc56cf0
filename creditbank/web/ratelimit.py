"""A page dependency that rate-limits by client address (429 page with Retry-After).

The same named buckets as the API's (:mod:`creditbank.service.ratelimit`), so a page and its
API twin share one limit per address::

    @router.get("/v/{code}", dependencies=[Depends(rate_limit("code-lookups"))])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Request

from creditbank.service.ratelimit import LIMITS, limiter_for

#: the scope key naming the limit whose token a request already took (the hot path of
#: ``/v/{code}`` takes it before it knows whether it answers or passes the request on)
TAKEN: Final = "creditbank.rate_limit_taken"


def client_address(request: Request) -> str:
    """The client's address as uvicorn saw it (``X-Forwarded-For`` only from trusted proxies)."""
    return request.client.host if request.client is not None else "unknown"


def rate_limit(name: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency taking one token from the ``name`` bucket of the caller's address.

    Raises:
        KeyError: at import time, for a name not in :data:`LIMITS`.
    """
    LIMITS[name]  # fail early on a typo

    async def dependency(request: Request) -> None:
        if request.scope.get(TAKEN) == name:
            return
        state = request.app.state
        limiter_for(state.rate_limiters, name, state.bank.clock).check(client_address(request))

    return dependency
