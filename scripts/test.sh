#!/usr/bin/env bash
# Install Nakhon with its test tools, then run every check: ruff, mypy, the whole test suite.
# Needs PostgreSQL (NAKHON_TEST_PG_DSN, default postgresql://postgres@127.0.0.1:5432/postgres with
# PostGIS installed) — without it the PostgreSQL half is skipped unless NAKHON_REQUIRE_ALL=1.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -m ruff check nakhon tests bench
python3 -m mypy
python3 -m pytest -q -p no:cacheprovider "$@"
