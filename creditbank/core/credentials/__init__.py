"""W3C Verifiable Credentials of the bank: content model, builders, proofs, evidence checks.

Pure code (no clock, randomness or I/O): ids, times and keys are parameters. See
``docs/formats/credentials.md`` for the credential shape.
"""

from creditbank.core.credentials.model import (
    CertificateContent,
    ConversionItem,
    CourseRef,
    ExamExemptionItem,
    GrantItem,
    Holder,
    InstitutionRef,
    IssuerProfile,
    LedgerEvidence,
    ProgramRef,
    ProgramTotal,
    RecordEvidence,
    RecordItem,
    TranscriptContent,
    Voided,
)

__all__ = [
    "CertificateContent",
    "ConversionItem",
    "CourseRef",
    "ExamExemptionItem",
    "GrantItem",
    "Holder",
    "InstitutionRef",
    "IssuerProfile",
    "LedgerEvidence",
    "ProgramRef",
    "ProgramTotal",
    "RecordEvidence",
    "RecordItem",
    "TranscriptContent",
    "Voided",
]
