#!/bin/bash
# Build the small CI input dataset from the files fetch_data.sh fetched (no network):
#   BIDS_DIR/sourcedata/sub-01/   the GE fMRI DICOM series (converted by bidsdeid)
#   BIDS_DIR/sub-02/anat/         the ds000031 T1w as BIDS NIfTI (defaced by bidsdeid)
# tests/test_ops_ci.py builds the same dataset from ../shared/data with this script.
# Usage: .circleci/make_dataset.sh DATA_DIR BIDS_DIR
set -euo pipefail
data=${1:?usage: make_dataset.sh DATA_DIR BIDS_DIR}; bids=${2:?usage: make_dataset.sh DATA_DIR BIDS_DIR}
mkdir -p "$bids/sourcedata" "$bids/sub-02/anat"
cp -r "$data/ge" "$bids/sourcedata/sub-01"
cp "$data/t1/ds000031_sub-01_ses-006_run-001_T1w.nii.gz" "$bids/sub-02/anat/sub-02_T1w.nii.gz"
cp "$data/t1/ds000031_sub-01_ses-006_run-001_T1w.json" "$bids/sub-02/anat/sub-02_T1w.json"
printf '{"Name": "bidsdeid CI", "BIDSVersion": "1.9.0"}\n' > "$bids/dataset_description.json"
chmod -R a+rX,a-w "$bids"
