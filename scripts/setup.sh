#!/usr/bin/env bash
# Installs what creditbank needs on a fresh Debian machine (run as root): system packages
# via apt, then a virtualenv in .venv with the pinned Python dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# python; WeasyPrint (Pango, HarfBuzz subsetting: without it CJK renders 16x slower) and CJK
# fonts; poppler (pdftoppm) and zbar for the PDF/QR tests; chromium for the page tests; wrk
# for the HTTP benchmarks
APT_PACKAGES=(python3-venv python3-dev libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
  fonts-noto-cjk poppler-utils qpdf zbar-tools chromium wrk)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages ${missing[*]} (need root with apt-get)" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# playwright (dev) drives Debian's chromium (/usr/bin/chromium): never a browser download
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
stamp=.venv/.creditbank-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # pip's and setuptools' chatter (index warnings, deprecation notices) goes to a log that
  # is shown only when the install fails
  log=.venv/pip-install.log
  echo "setup: installing the Python packages into .venv (a few minutes the first time; log: $log)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >"$log" 2>&1 || true
  if ! .venv/bin/python -m pip install -q -e '.[dev]' >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "setup: pip install failed (full log: $log)" >&2
    exit 1
  fi
  touch "$stamp"
fi
