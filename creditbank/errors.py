"""The one error root of creditbank.

Every error a caller can act on is a :class:`CreditBankError` with a stable ``code``. What a
code means is defined once, in :mod:`creditbank.error_catalogue`: its HTTP status, its CLI
exit code, its title and what to do about it (``docs/errors.md`` lists them). The classes
below are the families a caller catches; the catalogue entry of the error's ``code`` (not its
class) decides how the API and the CLI answer. Foreign exceptions are wrapped where the call
is made (``raise ... from e``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from creditbank import error_catalogue
from creditbank.error_catalogue import ErrorSpec


class CreditBankError(Exception):
    """Root of every domain error. ``code`` is stable and machine readable.

    ``title``, :attr:`http_status` and :attr:`exit_code` come from the catalogue entry of
    ``code``. A code the catalogue does not define (one passed on from another bank version)
    falls back to the entry of the nearest class-level code in the MRO: its family default.
    """

    code: ClassVar[str] = "creditbank.error"
    #: the catalogue title of ``code`` (set per instance)
    title: str

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance refinement of the class code
        self.extra: dict[str, Any] = extra
        self.title = self.spec.title

    @property
    def spec(self) -> ErrorSpec:
        """The catalogue entry of this error (see the class docstring for the fallback)."""
        found = error_catalogue.lookup(self.code)
        if found is not None:
            return found
        for cls in type(self).__mro__:
            family = cls.__dict__.get("code")
            if isinstance(family, str) and (found := error_catalogue.lookup(family)) is not None:
                return found
        return error_catalogue.spec(CreditBankError.code)

    @property
    def http_status(self) -> int:
        """The HTTP status the API answers this error with."""
        return self.spec.status

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this error (1 a refusal, 2 usage or configuration)."""
        return self.spec.exit_code

    def __str__(self) -> str:
        return self.message


# --- input -----------------------------------------------------------------------------
class InvalidInputError(CreditBankError):
    """Malformed, non-canonical or oversized wire data."""

    code = "input.invalid"


class UnsupportedVersionError(InvalidInputError):
    code = "input.unsupported_version"


class NonCanonicalError(InvalidInputError):
    code = "input.non_canonical"


class TooLargeError(InvalidInputError):
    code = "input.too_large"


# --- verification ----------------------------------------------------------------------
class VerificationError(CreditBankError):
    """A cryptographic or structural check failed."""

    code = "verify.failed"


class SignatureError(VerificationError):
    code = "verify.signature"


class RootMismatchError(VerificationError):
    code = "verify.root_mismatch"


class ProofFormatError(VerificationError):
    code = "verify.proof_format"


class NoteFormatError(VerificationError):
    code = "verify.note_format"


class CheckpointFormatError(VerificationError):
    code = "verify.checkpoint_format"


class UnknownKeyError(VerificationError):
    code = "verify.unknown_key"


class RevokedError(VerificationError):
    code = "verify.revoked"


class InconsistentLogError(VerificationError):
    code = "verify.inconsistent"


# --- rules -----------------------------------------------------------------------------
class RuleError(CreditBankError):
    code = "rules.invalid"


class ConversionRejected(RuleError):  # noqa: N818 - a documented name (docs/architecture.md)
    code = "rules.rejected"

    def __init__(self, message: str, reasons: tuple[str, ...] = (), **extra: Any) -> None:
        super().__init__(message, **extra)
        self.reasons = reasons


# --- other -----------------------------------------------------------------------------
class NotFoundError(CreditBankError):
    code = "not_found"


class ConflictError(CreditBankError):
    code = "conflict"


class AuthError(CreditBankError):
    code = "auth.unauthorized"


class ForbiddenError(AuthError):
    code = "auth.forbidden"


class StorageError(CreditBankError):
    code = "storage.unavailable"


class RateLimitedError(CreditBankError):
    """Too many requests from one client address; ``retry_after`` is in whole seconds."""

    code = "rate.limited"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class ConfigurationError(CreditBankError):
    code = "config.invalid"


class BatchRejected(InvalidInputError):  # noqa: N818 - a rejection, reported as such
    """A batch of entries was refused as a whole; ``items`` lists every failing item."""

    code = "batch.rejected"

    def __init__(self, message: str, items: list[dict[str, object]], **extra: Any) -> None:
        super().__init__(message, **extra)
        self.items = items
