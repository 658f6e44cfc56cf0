#!/usr/bin/env bash
# The demo on a fresh Debian machine: installs what it needs (scripts/setup.sh), makes a demo
# home on embedded SQLite (./.creditbank-demo unless CREDITBANK_HOME or --home says
# otherwise) with the sample dataset, issued transcripts and three logins, then serves it on
# 127.0.0.1 and prints the URL to open, the logins and a verification code (docs/demo.md).
# Arguments go to `creditbank demo` (--port P, --home DIR, --no-serve). Ctrl+C stops it; a
# second run reuses the home and prints the same logins.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CREDITBANK_HOME="${CREDITBANK_HOME:-$PWD/.creditbank-demo}"
exec .venv/bin/creditbank demo "$@"
