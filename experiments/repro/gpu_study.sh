#!/usr/bin/env bash
# GPU study: everything a lent GPU host (H100/H200, ~15 minutes) should measure, in one
# command, each step under its own time limit so the whole fits in 14 minutes:
#   1. scripts/gpu-host-check: CUDA + PyTorch's libtorch build into OUT_DIR/build, the
#      `gpu`-labelled tests with GRADZIP_REQUIRE_GPU=1 (a skipped gpu test fails), the GPU
#      benchmark binary (limit 6 min, the build included);
#   2. kernel_table.sh --budget full: every codec against a device-to-device copy of the
#      same size from the same run, and bench/cuda/torch_compare.py (gradzip vs PyTorch
#      ops, medians, same GPU, same run) (limit 2 min);
#   3. codec_study.sh --budget full --device cuda with 8 runs at once on the one GPU
#      (limit 6 min; resumable, so a second call continues it).
# Results: OUT_DIR/{build/gpu-check, kernel_table, codec_study} and OUT_DIR/gpu_study.txt
# (each step's exit status and seconds). Exit status: 0 when every step passed, else 1.
# Budgets (--budget; shared options in experiments/repro/common.sh): full only (the
#   default, standard, means full here; quick is refused); the device is always cuda.
# Usage: experiments/repro/gpu_study.sh [--dry-run] [--parallel N] OUT_DIR
#   (--dry-run prints the steps only.)
# Has not run on a GPU yet: no device was lent to the sessions that wrote it.
source "$(dirname "$0")/common.sh"
parse_repro_args "$@"
if [[ $budget != standard && $budget != full ]]; then repro_usage_error "gpu_study.sh runs the full budget only"; fi
build="$out/build"
steps=(
  "360 bash $repo/scripts/gpu-host-check --build-dir $build"
  "120 env GRADZIP=$build/experiments/gradzip bash $repro_dir/kernel_table.sh --budget full $out/kernel_table"
  "360 env GRADZIP=$build/experiments/gradzip bash $repro_dir/codec_study.sh --budget full --device cuda --parallel ${parallel:-8} $out/codec_study"
)
if [[ $dry_run -eq 1 ]]; then
  for s in "${steps[@]}"; do echo "timeout ${s%% *} ${s#* }"; done
  exit 0
fi
export GRADZIP_REQUIRE_GPU=1
status=0
: > "$out/gpu_study.txt"
for s in "${steps[@]}"; do
  start=$(date +%s)
  rc=0
  timeout "${s%% *}" ${s#* } || rc=$?
  echo "rc=$rc seconds=$(( $(date +%s) - start )) ${s#* }" | tee -a "$out/gpu_study.txt"
  [[ $rc -eq 0 ]] || status=1
done
exit $status
