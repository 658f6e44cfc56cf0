"""What an application is, checked before anything is decided or previewed; input dates."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

from creditbank.core.rules import ApplicationType
from creditbank.errors import InvalidInputError
from creditbank.service.conversion.publishing import RuleSet

#: ids the bank accepts for applications
APPLICATION_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ApplicationRequest:
    """An application to decide: exactly one of ``program_id`` / ``certificate_type_id``.

    ``application_id`` is the caller's id (a dataset's); ``None`` lets the bank number it.
    """

    learner_id: str
    applied_on: dt.date
    program_id: str | None = None
    certificate_type_id: str | None = None
    application_id: str | None = None

    @property
    def type(self) -> ApplicationType:
        return (
            ApplicationType.CREDIT_CONVERSION
            if self.program_id is not None
            else ApplicationType.EXAM_EXEMPTION
        )


def check_request(req: ApplicationRequest, ruleset: RuleSet, today: dt.date) -> None:
    if (req.program_id is None) == (req.certificate_type_id is None):
        raise InvalidInputError(
            "an application names exactly one of program_id or certificate_type_id",
            code="conversion.bad_application",
        )
    if req.program_id is not None and req.program_id not in ruleset.catalog.degree_programs:
        raise InvalidInputError(
            f"unknown degree programme {req.program_id}", code="conversion.unknown_program"
        )
    if (
        req.certificate_type_id is not None
        and req.certificate_type_id not in ruleset.catalog.certificate_types
    ):
        raise InvalidInputError(
            f"unknown certificate type {req.certificate_type_id}",
            code="conversion.unknown_certificate_type",
        )
    if req.applied_on > today:
        raise InvalidInputError(
            f"an application cannot be dated after today ({req.applied_on} > {today})",
            code="conversion.future_date",
        )
    if req.application_id is not None and not APPLICATION_ID_RE.fullmatch(req.application_id):
        raise InvalidInputError(
            f"bad application id {req.application_id!r}", code="conversion.bad_application"
        )


def parse_date(text: str, what: str = "date") -> dt.date:
    """An ISO calendar date.

    Raises:
        InvalidInputError: ``conversion.bad_date``.
    """
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else _bad_date(text, what)
    except ValueError:
        return _bad_date(text, what)


def _bad_date(text: str, what: str) -> dt.date:
    raise InvalidInputError(f"{what} must be YYYY-MM-DD, not {text!r}", code="conversion.bad_date")
