#!/usr/bin/env bash
# The whole test suite: lint, types, layering, then pytest. Installs what it needs first.
# PostgreSQL tests run when CREDITBANK_TEST_PG_URL is set (.ci/run sets it); they fail,
# never skip, if that server cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

if [ -n "${CREDITBANK_TEST_PG_URL:-}" ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
      echo "test: starting the local PostgreSQL cluster" >&2
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
  fi
fi

echo "== ruff"; .venv/bin/ruff check creditbank tests bench
echo "== mypy"; .venv/bin/mypy creditbank
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest -q -n 2 --dist loadfile --durations=20 "$@"
