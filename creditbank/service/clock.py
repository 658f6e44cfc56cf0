"""The one place that reads the wall clock. Everything else asks a ``Clock``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """Real time (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class FixedClock:
    """A clock for tests: starts at ``start`` and only moves when told."""

    start: datetime
    _offset: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        return self.start + self._offset

    def monotonic(self) -> float:
        return self._offset.total_seconds()

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)
