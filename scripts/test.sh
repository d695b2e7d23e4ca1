#!/usr/bin/env bash
# One command: install bidsdeid with its test tools, then run the whole test suite.
# Tests that need ../shared/data skip with a reason when it is absent.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/install.sh" --dev
venv=${BIDSDEID_VENV:-$here/.venv}
cd "$here"
exec "$venv/bin/python" -m pytest -n "${BIDSDEID_TEST_WORKERS:-2}" --dist loadgroup "$@"
