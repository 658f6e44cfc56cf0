"""The one error root of creditbank.

Every error a caller can act on is a :class:`CreditBankError` with a stable ``code``.
Families follow docs/architecture.md (Errors); the API maps families to HTTP statuses and the CLI to
exit codes. Foreign exceptions are wrapped where the call is made (``raise ... from e``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class CreditBankError(Exception):
    """Root of every domain error. ``code`` is stable and machine readable."""

    code: ClassVar[str] = "creditbank.error"
    title: ClassVar[str] = "creditbank error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance refinement of the class code
        self.extra: dict[str, Any] = extra

    def __str__(self) -> str:
        return self.message


# --- input -----------------------------------------------------------------------------
class InvalidInputError(CreditBankError):
    """Malformed, non-canonical or oversized wire data."""

    code = "input.invalid"
    title = "Invalid input"


class UnsupportedVersionError(InvalidInputError):
    code = "input.unsupported_version"
    title = "Unsupported version"


class NonCanonicalError(InvalidInputError):
    code = "input.non_canonical"
    title = "Non-canonical JSON"


class TooLargeError(InvalidInputError):
    code = "input.too_large"
    title = "Input too large"


# --- verification ----------------------------------------------------------------------
class VerificationError(CreditBankError):
    """A cryptographic or structural check failed."""

    code = "verify.failed"
    title = "Verification failed"


class SignatureError(VerificationError):
    code = "verify.signature"
    title = "Bad signature"


class RootMismatchError(VerificationError):
    code = "verify.root_mismatch"
    title = "Root mismatch"


class ProofFormatError(VerificationError):
    code = "verify.proof_format"
    title = "Malformed proof"


class NoteFormatError(VerificationError):
    code = "verify.note_format"
    title = "Malformed signed note"


class CheckpointFormatError(VerificationError):
    code = "verify.checkpoint_format"
    title = "Malformed checkpoint"


class UnknownKeyError(VerificationError):
    code = "verify.unknown_key"
    title = "Unknown key"


class RevokedError(VerificationError):
    code = "verify.revoked"
    title = "Revoked"


class InconsistentLogError(VerificationError):
    code = "verify.inconsistent"
    title = "Inconsistent log"


# --- rules -----------------------------------------------------------------------------
class RuleError(CreditBankError):
    code = "rules.invalid"
    title = "Rule error"


class ConversionRejected(RuleError):  # noqa: N818 - a documented name (docs/architecture.md)
    code = "rules.rejected"
    title = "Conversion rejected"

    def __init__(self, message: str, reasons: tuple[str, ...] = (), **extra: Any) -> None:
        super().__init__(message, **extra)
        self.reasons = reasons


# --- other -----------------------------------------------------------------------------
class NotFoundError(CreditBankError):
    code = "not_found"
    title = "Not found"


class ConflictError(CreditBankError):
    code = "conflict"
    title = "Conflict"


class AuthError(CreditBankError):
    code = "auth.unauthorized"
    title = "Unauthorized"


class ForbiddenError(AuthError):
    code = "auth.forbidden"
    title = "Forbidden"


class StorageError(CreditBankError):
    code = "storage.unavailable"
    title = "Storage error"


class RateLimitedError(CreditBankError):
    """Too many requests from one client address; ``retry_after`` is in whole seconds."""

    code = "rate.limited"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after = retry_after


class ConfigurationError(CreditBankError):
    code = "config.invalid"
    title = "Configuration error"


class BatchRejected(InvalidInputError):  # noqa: N818 - a rejection, reported as such
    """A batch of entries was refused as a whole; ``items`` lists every failing item."""

    code = "batch.rejected"
    title = "Batch rejected"

    def __init__(self, message: str, items: list[dict[str, object]], **extra: Any) -> None:
        super().__init__(message, **extra)
        self.items = items
