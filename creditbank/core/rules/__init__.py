"""Conversion of learning records into credits and exam exemptions (pure core).

Normative semantics: ``sample/README.md``, "Conversion semantics", rules 0-13; the reading
implemented here, with every open case, is in ``docs/conversion.md``.

Typical use::

    ds = load_dataset(**parsed_json_files)
    book = validate_rules(ds.rules, ds.catalog)            # publish-time checks
    run = run_all(ds.applications, ds.records, book, ds.catalog)
    report = build_report(as_of, [l.id for l in ds.learners], run.decisions,
                          run.records, ds.catalog)
"""

from __future__ import annotations

from .dataset import (
    Dataset,
    dump_rule,
    load_catalog,
    load_dataset,
    parse_application,
    parse_record,
    parse_rule,
    to_centi,
)
from .decision import (
    Cap,
    Decision,
    ExamResult,
    Grant,
    LearnerState,
    Reason,
    RecordIssue,
    RecordNote,
    RuleNote,
    Void,
)
from .engine import (
    RunResult,
    active_grants,
    decide,
    native_passes,
    passed_courses,
    preview,
    run_all,
    void_of,
    voids,
)
from .match import years_before
from .model import (
    CENTI,
    AcademicCredit,
    Application,
    ApplicationType,
    Caps,
    Catalog,
    Centi,
    CertificateType,
    CompetitionAward,
    ConversionRule,
    Course,
    DegreeProgram,
    Institution,
    Learner,
    Mode,
    Record,
    RecordKind,
    RuleTarget,
    SkillCertificate,
    SourcePattern,
    SourceProgram,
    TrainingHours,
    TrainingProgram,
    WorkExperience,
)
from .records import Chain, LearnerRecords, index_records
from .report import build_report, centi_to_number
from .validate import RuleBook, RuleProblem, RuleValidationError, check_rules, validate_rules

__all__ = [
    "CENTI",
    "AcademicCredit",
    "Application",
    "ApplicationType",
    "Cap",
    "Caps",
    "Catalog",
    "Centi",
    "CertificateType",
    "Chain",
    "CompetitionAward",
    "ConversionRule",
    "Course",
    "Dataset",
    "Decision",
    "DegreeProgram",
    "ExamResult",
    "Grant",
    "Institution",
    "Learner",
    "LearnerRecords",
    "LearnerState",
    "Mode",
    "Reason",
    "Record",
    "RecordIssue",
    "RecordKind",
    "RecordNote",
    "RuleBook",
    "RuleNote",
    "RuleProblem",
    "RuleTarget",
    "RuleValidationError",
    "RunResult",
    "SkillCertificate",
    "SourcePattern",
    "SourceProgram",
    "TrainingHours",
    "TrainingProgram",
    "Void",
    "WorkExperience",
    "active_grants",
    "build_report",
    "centi_to_number",
    "check_rules",
    "decide",
    "dump_rule",
    "index_records",
    "load_catalog",
    "load_dataset",
    "native_passes",
    "parse_application",
    "parse_record",
    "parse_rule",
    "passed_courses",
    "preview",
    "run_all",
    "to_centi",
    "validate_rules",
    "void_of",
    "voids",
    "years_before",
]
