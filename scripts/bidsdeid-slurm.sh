#!/bin/bash
# Submit bidsdeid to SLURM: one array task per participant (scripts/bidsdeid.sbatch), then
# the group level as a job that runs once every task has ended, failed or not
# (afterany); the group report names each participant that failed or never finished.
#
#   scripts/bidsdeid-slurm.sh BIDS_DIR OUTPUT_DIR [bidsdeid options...]
#
# Participants: --participant-label A B ... if given; else BIDS_DIR/participants.tsv if
# it lists any; else the sourcedata/sub-* and sub-* folders. The list is kept in
# PRIVATE_DIR/slurm/ with the task logs (logs can name input labels: they stay private).
# --private-dir DIR is honoured; -w/--work-dir DIR is where the per-task work dirs go
# (default: node-local scratch). Other options go to every task and to the group job.
#
# Environment:
#   BIDSDEID_IMAGE=/path/bidsdeid.sif   run in Apptainer/Singularity (--cleanenv, binds)
#   BIDSDEID_EXEC=local                 call an installed bidsdeid (BIDSDEID_BIN, default
#                                       the bidsdeid on PATH) instead of the container
#   BIDSDEID_TEMPLATEFLOW_HOME=DIR      bind a host TemplateFlow folder into the container
#   BIDSDEID_MAX_PARALLEL=K             at most K tasks at once (--array=1-N%K)
#   SBATCH_ARGS="..."                   extra sbatch options for every job, e.g.
#                                       "--partition=short --account=lab --cpus-per-task=4"
# Prints "array <id> (<n> participants) group <id>; logs in <dir>".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
if [ $# -lt 2 ]; then usage >&2; exit 64; fi
case "$1" in -h|--help) usage; exit 0 ;; esac

BIDS_DIR=$(cd "$1" && pwd); shift
OUT_ARG=$1; shift
labels=() passthrough=() private_arg="" work_root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --participant-label|--participant_label)
      shift
      while [ $# -gt 0 ] && [[ "$1" != -* ]]; do labels+=("${1#sub-}"); shift; done ;;
    --private-dir) private_arg=${2:?--private-dir needs a folder}; shift 2 ;;
    --private-dir=*) private_arg=${1#*=}; shift ;;
    -w|--work-dir) work_root=${2:?$1 needs a folder}; shift 2 ;;
    --work-dir=*) work_root=${1#*=}; shift ;;
    *) passthrough+=("$1"); shift ;;
  esac
done

mkdir -p "$OUT_ARG"; OUTPUT_DIR=$(cd "$OUT_ARG" && pwd)
PRIVATE_DIR=${private_arg:-${BIDSDEID_PRIVATE_DIR:-${OUTPUT_DIR%/}_private}}
# shellcheck disable=SC2174  # -m for the private dir itself, not its parents
mkdir -p -m 700 "$PRIVATE_DIR"; PRIVATE_DIR=$(cd "$PRIVATE_DIR" && pwd)
LOGS="$PRIVATE_DIR/slurm"
[ -d "$LOGS" ] || mkdir -m 700 "$LOGS"
if [ -n "$work_root" ]; then mkdir -p "$work_root"; work_root=$(cd "$work_root" && pwd); fi

LIST="$LOGS/participants-$(date +%Y%m%d-%H%M%S)-$$.txt"
if [ ${#labels[@]} -gt 0 ]; then
  printf '%s\n' "${labels[@]}" > "$LIST"
elif [ -f "$BIDS_DIR/participants.tsv" ]; then
  awk -F'\t' '{sub(/\r$/, "")}
              NR==1 {for (i = 1; i <= NF; i++) if ($i == "participant_id") c = i; next}
              c && $c ~ /^sub-[A-Za-z0-9]+$/ {sub(/^sub-/, "", $c); print $c}' \
      "$BIDS_DIR/participants.tsv" | sort -u > "$LIST"
fi
if [ ! -s "$LIST" ]; then
  { ls -d "$BIDS_DIR"/sourcedata/sub-*/ "$BIDS_DIR"/sub-*/ 2>/dev/null || true; } |
    sed -E 's#.*/sub-([^/]+)/$#\1#' | grep -E '^[A-Za-z0-9]+$' | sort -u > "$LIST" || true
fi
bad=$(grep -cvE '^[A-Za-z0-9]+$' "$LIST" || true)
if [ "$bad" -gt 0 ]; then
  echo "bidsdeid-slurm: $bad label(s) in the participant list are not letters and digits" >&2
  exit 64
fi
N=$(wc -l < "$LIST")
if [ "$N" -eq 0 ]; then echo "bidsdeid-slurm: no participants found in $BIDS_DIR" >&2; exit 18; fi
max_array=$(scontrol show config 2>/dev/null | awk -F= '/^MaxArraySize/ {gsub(/ /, "", $2); print $2}')
if [ -n "$max_array" ] && [ "$N" -ge "$max_array" ]; then
  echo "bidsdeid-slurm: $N participants but this cluster's MaxArraySize is $max_array:" \
       "submit in chunks with --participant-label" >&2
  exit 64
fi

if [ "${BIDSDEID_EXEC:-container}" = local ]; then
  BIN=${BIDSDEID_BIN:-bidsdeid}
  command -v "$BIN" >/dev/null || { echo "bidsdeid-slurm: $BIN not found" >&2; exit 69; }
else
  : "${BIDSDEID_IMAGE:?set BIDSDEID_IMAGE to the .sif, or BIDSDEID_EXEC=local}"
  BIDSDEID_IMAGE=$(cd "$(dirname "$BIDSDEID_IMAGE")" && pwd)/$(basename "$BIDSDEID_IMAGE")
  export BIDSDEID_IMAGE
fi

quoted_args=""
[ ${#passthrough[@]} -gt 0 ] && quoted_args=$(printf '%q ' "${passthrough[@]}")
export BIDSDEID_BIDS_DIR="$BIDS_DIR" BIDSDEID_OUTPUT_DIR="$OUTPUT_DIR" \
       BIDSDEID_PRIVATE_DIR="$PRIVATE_DIR" BIDSDEID_LIST="$LIST" BIDSDEID_ARGS="$quoted_args"
[ -n "$work_root" ] && export BIDSDEID_WORK_ROOT="$work_root"

array_spec="1-$N${BIDSDEID_MAX_PARALLEL:+%$BIDSDEID_MAX_PARALLEL}"
# shellcheck disable=SC2086  # SBATCH_ARGS is a list of options
ARRAY=$(sbatch --parsable ${SBATCH_ARGS:-} --array="$array_spec" --export=ALL \
        -o "$LOGS/bidsdeid-%A_%a.log" "$here/bidsdeid.sbatch")
ARRAY=${ARRAY%%;*}

# The group level, told which participants must be done (a task that never ran or was
# killed leaves no result; the group report lists it as "not run" and exits 1).
mapfile -t all_labels < "$LIST"
group_args=("$BIDS_DIR" "$OUTPUT_DIR" group --private-dir "$PRIVATE_DIR"
            --participant-label "${all_labels[@]}")
[ ${#passthrough[@]} -gt 0 ] && group_args+=("${passthrough[@]}")
if [ "${BIDSDEID_EXEC:-container}" = local ]; then
  group_cmd=("$BIN" "${group_args[@]}")
else
  runtime=${BIDSDEID_RUNTIME:-$(command -v apptainer || command -v singularity || echo apptainer)}
  tf=()
  if [ -n "${BIDSDEID_TEMPLATEFLOW_HOME:-}" ]; then
    tf=(-B "$BIDSDEID_TEMPLATEFLOW_HOME:$BIDSDEID_TEMPLATEFLOW_HOME:ro"
        --env "TEMPLATEFLOW_HOME=$BIDSDEID_TEMPLATEFLOW_HOME")
  fi
  group_cmd=("$runtime" run --cleanenv --containall -B "$BIDS_DIR:$BIDS_DIR:ro"
             -B "$OUTPUT_DIR" -B "$PRIVATE_DIR" ${tf[@]+"${tf[@]}"} "$BIDSDEID_IMAGE"
             "${group_args[@]}")
fi
GROUP_SCRIPT=${LIST%.txt}-group.sh
{
  echo '#!/bin/bash'
  echo "# bidsdeid group level, submitted by bidsdeid-slurm.sh after array job $ARRAY"
  printf '%q ' "${group_cmd[@]}"; echo
  # shellcheck disable=SC2016  # expanded when the job runs
  echo 'rc=$?; echo "bidsdeid group: exit code $rc"; exit $rc'
} > "$GROUP_SCRIPT"
# shellcheck disable=SC2086
GROUP=$(sbatch --parsable ${SBATCH_ARGS:-} --export=ALL --dependency=afterany:"$ARRAY" \
        --job-name=bidsdeid-group -o "$LOGS/bidsdeid-group-%j.log" "$GROUP_SCRIPT")
GROUP=${GROUP%%;*}
echo "array $ARRAY ($N participants) group $GROUP; logs in $LOGS"
