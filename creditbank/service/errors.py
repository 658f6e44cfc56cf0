"""What the layers above service need to know about storage failures, without importing storage.

The API answers these with 503 and the CLI with its storage error line; both import them from
here, because ``api``, ``web`` and ``cli`` reach ``creditbank.storage`` only through service
(import-linter contract in ``pyproject.toml``).
"""

from __future__ import annotations

from creditbank.storage.engine import UNAVAILABLE

__all__ = ["UNAVAILABLE"]
