#!/bin/bash
# Fetch the CI test data into DIR (network), from the same public sources as
# ../shared/data (see ../shared/README.md), and check every file against data.sha256:
#   DIR/ge/  GE Discovery MR750 fMRI series (150 DICOM files + README-Series.txt) from
#            neurolabusc/dcm_qa_nih @ d302d6e2, In/20180918GE/mr_0004 (BSD-2-Clause)
#   DIR/t1/  a 1 mm adult T1w with its sidecar (OpenNeuro ds000031), from the pydeface
#            2.1.0 sdist on PyPI, tests/data/ (MIT)
# Usage: .circleci/fetch_data.sh DIR     (CircleCI caches DIR, keyed by data.sha256)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest=${1:?usage: fetch_data.sh DIR}
if [ -d "$dest/ge" ] && (cd "$dest" && sha256sum --quiet -c "$here/data.sha256"); then
  echo "fetch_data: $dest is complete (cached)"; exit 0
fi
rm -rf "$dest"; mkdir -p "$dest"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# dcm_qa_nih: a blobless sparse clone, only the one series
git clone -q --filter=blob:none --no-checkout https://github.com/neurolabusc/dcm_qa_nih "$tmp/nih"
git -C "$tmp/nih" sparse-checkout set --no-cone /In/20180918GE/mr_0004/
git -C "$tmp/nih" checkout -q d302d6e2
cp -r "$tmp/nih/In/20180918GE/mr_0004" "$dest/ge"

# pydeface sdist: the ds000031 T1w its tests use
python3 -m pip download -q --no-deps --no-binary :all: pydeface==2.1.0 -d "$tmp/pd"
tar -xzf "$tmp"/pd/pydeface-2.1.0.tar.gz -C "$tmp" pydeface-2.1.0/tests/data
mkdir -p "$dest/t1"
cp "$tmp"/pydeface-2.1.0/tests/data/ds000031_sub-01_ses-006_run-001_T1w.* "$dest/t1/"

(cd "$dest" && sha256sum --quiet -c "$here/data.sha256")
echo "fetch_data: $(find "$dest" -type f | wc -l) files in $dest, checksums match"
