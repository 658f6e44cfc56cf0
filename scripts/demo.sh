#!/usr/bin/env bash
# Starts the demo: a fresh home on embedded SQLite with sample data, served on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CREDITBANK_HOME="${CREDITBANK_HOME:-$PWD/.creditbank-demo}"
exec .venv/bin/creditbank demo "$@"
