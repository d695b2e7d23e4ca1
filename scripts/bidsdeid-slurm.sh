#!/bin/bash
# Submit bidsdeid to SLURM: one array task per participant, then the group level as a
# dependent job that runs whether or not some tasks failed (the group report names them).
#
#   scripts/bidsdeid-slurm.sh BIDS_DIR OUTPUT_DIR [bidsdeid options...]
#
# Participants come from BIDS_DIR/participants.tsv if present, else from the
# sourcedata/sub-* and sub-* folders. Set BIDSDEID_IMAGE=/path/bidsdeid.sif (Apptainer),
# or BIDSDEID_EXEC=local to call an installed bidsdeid. Extra sbatch options go in
# SBATCH_ARGS (e.g. "--partition=short --account=lab"). Prints the two job ids.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 2 ]; then sed -n '2,11p' "$0"; exit 64; fi
BIDS_DIR=$(cd "$1" && pwd); shift
OUT_ARG=$1; shift
mkdir -p "$OUT_ARG"; OUTPUT_DIR=$(cd "$OUT_ARG" && pwd)
PRIVATE_DIR=${BIDSDEID_PRIVATE_DIR:-${OUTPUT_DIR%/}_private}
mkdir -p -m 700 "$PRIVATE_DIR/slurm"

LIST="$PRIVATE_DIR/slurm/participants-$(date +%Y%m%d-%H%M%S)-$$.txt"
if [ -f "$BIDS_DIR/participants.tsv" ]; then
  awk -F'\t' 'NR==1{for(i=1;i<=NF;i++) if($i=="participant_id") c=i; next}
              c && $c ~ /^sub-[A-Za-z0-9]+$/ {sub(/^sub-/,"",$c); print $c}' \
      "$BIDS_DIR/participants.tsv" | sort -u > "$LIST"
fi
if [ ! -s "$LIST" ]; then
  { ls -d "$BIDS_DIR"/sourcedata/sub-*/ "$BIDS_DIR"/sub-*/ 2>/dev/null || true; } |
    sed -E 's#.*/sub-([^/]+)/$#\1#' | grep -E '^[A-Za-z0-9]+$' | sort -u > "$LIST"
fi
N=$(wc -l < "$LIST")
if [ "$N" -eq 0 ]; then echo "bidsdeid-slurm: no participants found in $BIDS_DIR" >&2; exit 18; fi

export BIDSDEID_BIDS_DIR="$BIDS_DIR" BIDSDEID_OUTPUT_DIR="$OUTPUT_DIR" \
       BIDSDEID_PRIVATE_DIR="$PRIVATE_DIR" BIDSDEID_LIST="$LIST" BIDSDEID_ARGS="$*"
LOGS="$PRIVATE_DIR/slurm"   # task logs can name input labels: keep them private
# shellcheck disable=SC2086
ARRAY=$(sbatch --parsable ${SBATCH_ARGS:-} --array=1-"$N" --export=ALL \
        -o "$LOGS/bidsdeid-%A_%a.log" "$here/bidsdeid.sbatch")
ARRAY=${ARRAY%%;*}
GROUP_CMD="\"\${BIDSDEID_BIN:-bidsdeid}\" \"$BIDS_DIR\" \"$OUTPUT_DIR\" group --private-dir \"$PRIVATE_DIR\""
if [ "${BIDSDEID_EXEC:-container}" != local ]; then
  : "${BIDSDEID_IMAGE:?set BIDSDEID_IMAGE to the .sif, or BIDSDEID_EXEC=local}"
  GROUP_CMD="apptainer run --cleanenv --containall -B \"$BIDS_DIR:$BIDS_DIR:ro\" -B \"$OUTPUT_DIR\" -B \"$PRIVATE_DIR\" \"$BIDSDEID_IMAGE\" \"$BIDS_DIR\" \"$OUTPUT_DIR\" group --private-dir \"$PRIVATE_DIR\""
fi
# shellcheck disable=SC2086
GROUP=$(sbatch --parsable ${SBATCH_ARGS:-} --export=ALL --dependency=afterany:"$ARRAY" \
        --job-name=bidsdeid-group -o "$LOGS/bidsdeid-group-%j.log" --wrap "$GROUP_CMD")
GROUP=${GROUP%%;*}
echo "array $ARRAY ($N participants) group $GROUP; logs in $LOGS"
