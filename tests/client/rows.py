"""Generated input rows for the client tests: every kind, valid identity numbers, files."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from creditbank.client.csvformat import COMMON_COLUMNS, KIND_COLUMNS, REVOCATION_COLUMNS
from creditbank.core.identity import gb11643_check_char

#: every column, in the order docs/csv-format.md lists them
COLUMNS = [
    *COMMON_COLUMNS,
    *REVOCATION_COLUMNS,
    *(c for cols in KIND_COLUMNS.values() for c, _ in cols),
]
NAMES = ["王建国", "李秀英", "阿依古丽·买买提", "扎西顿珠", "张伟", "Anna Müller"]


def resident_id(n: int) -> str:
    """A valid GB 11643 number (Beijing Chaoyang, born 1980-01-01 + n days mod 28)."""
    first = f"110105{1980 + n % 30:04d}{n % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}"
    return first + gb11643_check_char(first)


def learner(n: int) -> dict[str, str]:
    """Identity columns of learner ``n`` (resident ids; every 7th on a passport)."""
    if n % 7 == 6:
        return {
            "learner_name": NAMES[n % len(NAMES)],
            "id_type": "passport",
            "id_number": f"P{n:08d}",
            "nationality": "DEU",
        }
    return {
        "learner_name": NAMES[n % len(NAMES)],
        "id_type": "resident_id",
        "id_number": resident_id(n),
    }


def record(n: int, *, learners: int = 50, kind: str | None = None) -> dict[str, str]:
    """A valid row ``R-<n>`` of learner ``n % learners``; the kind cycles unless given."""
    kinds = list(KIND_COLUMNS)
    k = kind or kinds[n % len(kinds)]
    row: dict[str, str] = {"record_id": f"R-{n:06d}", "kind": k, **learner(n % learners)}
    if k == "academic_credit":
        row |= {
            "achieved_on": "2024-07-10",
            "course_id": f"C-{n % 97:03d}",
            "credits": ["4", "1.5", "0.25", "3"][n % 4],
            "grade": str(60 + n % 41),
            "term": f"2024S{n}",
        }
    elif k == "skill_certificate":
        row |= {
            "achieved_on": "2023-06-10",
            "certificate_type_id": "CT-WELD-L3",
            "occupation": "welder",
            "level": str(1 + n % 5),
            "level_label_zh": "三级/高级工",
            "certificate_no": f"SYN-WELD-{n:06d}",
            "expires_on": "2029-06-09" if n % 2 else "",
        }
    elif k == "training_hours":
        row |= {
            "achieved_on": "2022-11-30",
            "training_program_id": "T-EU-COURIER",
            "hours": str(8 + n % 100),
            "cohort": f"2022-11-{n}",
        }
    elif k == "competition_award":
        row |= {
            "achieved_on": "2023-09-18",
            "competition": "速达杯快递技能比武",
            "tier": ["national", "provincial", "municipal", "enterprise"][n % 4],
            "rank": str(1 + n % 10),
            "field": "logistics",
            "dedup_key": f"award:{n}",
        }
    else:
        row |= {
            "occupation_key": "courier",
            "employer": "速达快递",
            "start_on": "2021-01-01",
            "end_on": "2024-12-31",
            "duration_months": "48",
            "dedup_key": f"work:{n}",
        }
    return row


def records(count: int, *, start: int = 0, learners: int = 50) -> list[dict[str, str]]:
    return [record(n, learners=learners) for n in range(start, start + count)]


def write_csv(
    path: Path, rows: Iterable[Mapping[str, Any]], columns: list[str] | None = None
) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(dict(r), ensure_ascii=False) + "\n")
    return path
