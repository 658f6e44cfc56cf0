"""The bundled synthetic sample dataset: the one copy every test and bench reads.

``creditbank/data/sample`` is package data (the demo ships it); its ``expected.json`` is the
conversion oracle. See its PROVENANCE.md and README.md.
"""

from __future__ import annotations

from pathlib import Path

import creditbank

SAMPLE: Path = Path(creditbank.__file__).resolve().parent / "data" / "sample"
