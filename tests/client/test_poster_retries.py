"""The poster's bounded retries, for reads (GET) and posts alike, against the real bank in
process with network faults in front of it: how often it tries, how long it pauses, and what
it says when it gives up (a post tells the user a re-run resumes, a read does not)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from creditbank.client.poster import BACKOFF_MAX, BankAPI, BatchRefused, PostError
from creditbank.core.signing import Ed25519Signer

from .realbank import URL, RealBank, real_bank


class Faulty(httpx.BaseTransport):
    """The bank behind network faults: each request takes the next fault, if any is left
    (``"connect"``: no connection; ``"503"``: an overloaded answer with ``Retry-After``)."""

    def __init__(self, bank: RealBank, faults: list[str], retry_after: str = "") -> None:
        self.bank = bank
        self.faults = deque(faults)
        self.retry_after = retry_after
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        fault = self.faults.popleft() if self.faults else None
        if fault == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "503":
            body = {"code": "storage.unavailable", "status": 503, "detail": "database busy"}
            headers = {"Content-Type": "application/problem+json"}
            if self.retry_after:
                headers["Retry-After"] = self.retry_after
            return httpx.Response(503, json=body, headers=headers)
        return self.bank.handle_request(request)


@pytest.fixture
def bank(tmp_path: Path) -> Iterator[RealBank]:
    with real_bank(tmp_path / "home", Ed25519Signer.from_seed(bytes(range(32)))) as b:
        yield b


def _api(transport: Faulty, sleeps: list[float], attempts: int = 3) -> BankAPI:
    return BankAPI(
        URL, transport.bank.token, transport=transport, attempts=attempts, sleep=sleeps.append
    )


def test_a_read_is_retried_until_the_bank_answers(bank: RealBank) -> None:
    transport = Faulty(bank, ["connect", "503"])
    sleeps: list[float] = []
    api = _api(transport, sleeps)
    assert api.log_key() == bank.log_key()
    assert sleeps == [0.5, 1.0]
    assert transport.seen == ["GET /api/v1/log/key"] * 3


def test_a_read_gives_up_after_its_attempts_without_a_resume_hint(bank: RealBank) -> None:
    transport = Faulty(bank, ["connect", "503", "503"], retry_after="7")
    sleeps: list[float] = []
    with pytest.raises(PostError) as e:
        _api(transport, sleeps).log_key()
    assert e.value.code == "post.unreachable"
    assert e.value.message == "/api/v1/log/key: no answer after 3 attempts (HTTP 503)"
    # a read does not wait for Retry-After: the plain doubling pauses
    assert sleeps == [0.5, 1.0]


def test_a_post_waits_as_asked_and_gives_up_with_the_problem_and_a_resume_hint(
    bank: RealBank,
) -> None:
    transport = Faulty(bank, ["503"] * 3, retry_after="7")
    sleeps: list[float] = []
    with pytest.raises(PostError) as e:
        _api(transport, sleeps).post_records([], [])
    assert e.value.code == "post.unreachable"
    assert e.value.message == (
        "/api/v1/records: no answer after 3 attempts (HTTP 503 database busy); "
        "re-run the same command to resume"
    )
    # Retry-After 7 raises the first pause; the doubling is capped
    assert sleeps == [7.0, BACKOFF_MAX]
    assert transport.seen == ["POST /api/v1/records"] * 3


def test_a_post_after_a_lost_connection_reaches_the_bank(bank: RealBank) -> None:
    """The second attempt gets the bank's own answer (an empty batch is refused), returned to
    the caller rather than retried."""
    transport = Faulty(bank, ["connect"])
    sleeps: list[float] = []
    with pytest.raises(BatchRefused) as e:
        _api(transport, sleeps).post_records([], [])
    assert e.value.problem.code == "batch.empty"
    assert sleeps == [0.5]
    assert transport.seen == ["POST /api/v1/records"] * 2
