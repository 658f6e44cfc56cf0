"""The registry preconditions the use cases share: a well-formed institution id, and an
institution that is registered (so that an operator gets a precise error rather than a
rejected batch)."""

from __future__ import annotations

import re
from typing import Final

from creditbank.core.registry import Registry
from creditbank.errors import InvalidInputError, NotFoundError

INSTITUTION_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")


def check_institution_id(institution_id: str) -> str:
    """Raises: InvalidInputError ``registry.institution_id`` unless a valid id."""
    if not INSTITUTION_ID_RE.fullmatch(institution_id):
        raise InvalidInputError(
            "an institution id is 1-64 letters, digits or . _ : - (starting alphanumeric)",
            code="registry.institution_id",
        )
    return institution_id


def require_registered(registry: Registry, institution_id: str) -> None:
    """Raises: NotFoundError ``registry.unknown`` unless ``institution_id`` is registered."""
    if institution_id not in registry.institutions:
        raise NotFoundError(
            f"institution {institution_id} is not registered", code="registry.unknown"
        )
