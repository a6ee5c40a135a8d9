#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: set-up, lint, format check, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff check";  .venv/bin/ruff check .
echo "== ruff format"; .venv/bin/ruff format --check .
echo "== mypy";        .venv/bin/mypy
echo "== pytest";      .venv/bin/pytest "$@"
# The V2 codec tests import proto.inference, which cannot share a process with tritonclient.
echo "== pytest (V2 codec)"; .venv/bin/pytest tests/server_v2codec
# The same integration suite against the docker compose stack (CI always; locally on request).
if [ "${CI:-}" = true ] || [ "${CNN_COMPOSE_TESTS:-}" = 1 ]; then
    echo "== compose integration suite"
    scripts/compose_test.sh
fi
