#!/usr/bin/env bash
# Straggler study (sync vs async vs SSP): 4 workers on a shaped 1 Gbit/s link, worker 3
# computing 4x slower (--straggler 3:4), for sync, async and SSP with slack 2 and 8, each
# with fp32 and with top-k 1% + EF on the uplink (async/SSP keep a dense downlink).
# experiments/repro/study_table.py straggler tabulates time-to-accuracy, final accuracy
# and the histogram of push staleness the shards recorded. Needs root (network namespaces).
#
# Budgets (--budget; shared options in experiments/repro/common.sh):
#   quick     sync and async, fp32 only, 1024 images, 2 epochs: a smoke test.
#   standard  8 runs of experiments/configs/link-study.ini (CNN width 8, 4096 images,
#             6 epochs, target 80%) at 1 Gbit/s, where the slow worker's compute, not the
#             link, sets the sync step: about 15-20 minutes on the loaded 2-core CPU.
#   full      the CNN at width 32 on all 60k images, 3 epochs, --device cuda (GPU host).
# Usage: sudo experiments/repro/straggler_study.sh [--budget quick|standard|full]
#        [--device D] [--parallel N] [--dry-run] [OUT_DIR]   (resumable)
source "$(dirname "$0")/common.sh"
parse_repro_args "$@"
if [[ $dry_run -eq 0 && $(id -u) -ne 0 ]]; then echo "straggler_study: needs root (network namespaces, tc)" >&2; exit 2; fi
link="custom:bw=1gbit,lat=50us"; codecs="identity ef+topk:ratio=0.01"; target=0.80
case "$budget" in
  quick)    codecs="identity"; target=0; sizes="train-subset = 1024
epochs = 2"; timeout=600 ;;
  standard) sizes=""; timeout=900 ;;
  full)     sizes=$study_full_sizes; timeout=3600 ;;
esac
gz=$(find_gradzip)
study_base=$repo/experiments/configs/link-study.ini
fixed="link = $link
straggler = 3:4
$sizes"
start=$(date +%s)
run_sweep_group sync "codecs = $codecs" "mode = sync
$fixed"
run_sweep_group async "codecs = $codecs" "mode = async
$fixed"
if [[ $budget != quick ]]; then
  run_sweep_group ssp "slack = 2 8
codecs = $codecs" "mode = ssp
$fixed"
fi
study_finish straggler "$link" "$target" "$0 $*"
