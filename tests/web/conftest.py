"""Browser fixtures for tests/web (any suite imports them the same way)."""

from browser_fixtures import browser, live_bank, open_page  # noqa: F401 - pytest fixtures
