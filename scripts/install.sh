#!/usr/bin/env bash
# Install bidsdeid from scratch. The README, .ci/run, the Dockerfile and
# singularity.def all run this very script, so what CI tests is what users get.
#
#   bash scripts/install.sh            # package into ./.venv (editable), runtime only
#   bash scripts/install.sh --dev      # + test tools: pytest, dicognito, and (as root)
#                                      #   Debian dicom3tools, dcmtk, chromium, slurm, munge, shellcheck
#   bash scripts/install.sh --system   # into the current Python, not editable (containers)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dev=0
system=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --system) system=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 64 ;;
  esac
done

# Debian packages the tests use (validators and real peers, not Python stand-ins).
DEBIAN_TEST_PACKAGES="dicom3tools dcmtk chromium chromium-driver slurmctld slurmd slurm-client munge shellcheck"

if [ "$dev" = 1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=""
    for p in $DEBIAN_TEST_PACKAGES; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
      echo "install.sh: apt-get install$missing"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      # shellcheck disable=SC2086  # a list of package names
      apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
  else
    echo "install.sh: not root or no apt-get: skipping Debian test tools ($DEBIAN_TEST_PACKAGES);"
    echo "            the tests that need them will be skipped with a reason."
  fi
fi

PY=${PYTHON:-python3}
if [ "$system" = 1 ]; then
  pip_cmd=("$PY" -m pip)
  target="$here"
else
  venv=${BIDSDEID_VENV:-$here/.venv}
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  pip_cmd=("$venv/bin/python" -m pip)
  target="-e $here"
fi

extras=""
[ "$dev" = 1 ] && extras="[test]"
# shellcheck disable=SC2086
"${pip_cmd[@]}" install -q --disable-pip-version-check ${target}${extras}
if [ "$system" = 0 ]; then
  # an editable install runs the sources in place: byte-compile them, as pip does for
  # an installed package, so no run pays for compiling (PYTHONDONTWRITEBYTECODE=1 would
  # otherwise make every run compile ~90 modules again: 0.2 s)
  "$venv/bin/python" -m compileall -q -j 0 "$here/bidsdeid" >/dev/null \
    || echo "install.sh: could not byte-compile $here/bidsdeid (read-only?): runs compile it"
fi
echo "install.sh: bidsdeid installed ($("${pip_cmd[@]}" show bidsdeid 2>/dev/null | sed -n 's/^Version: //p'))"
