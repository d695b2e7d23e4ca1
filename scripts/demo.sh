#!/usr/bin/env bash
# One command: install bidsdeid into ./.venv and run it on the bundled demo study.
#   bash scripts/demo.sh [DEMO_DIR]      (default: ./bidsdeid-demo)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/install.sh"
venv=${BIDSDEID_VENV:-$here/.venv}
exec "$venv/bin/bidsdeid-demo" "${1:-$PWD/bidsdeid-demo}"
