#!/usr/bin/env bash
# Codec study: ResNet-20 on Fashion-MNIST (or CIFAR-10 with --data DIR), every codec
# family, with and without error feedback; a markdown report with the accuracy-vs-bytes
# figure and a table judging the published claims against the seed spread
# (experiments/repro/claims.py: QSGD 4-bit ~ baseline; EF fixes sign compression; top-k
# 1% with EF ~ baseline; DGC at 0.1% density). 9 configurations, 4 simulated workers and
# 2 shards in one process per run (cluster = sim).
#
# Budgets (--budget, see experiments/repro/common.sh for the shared options):
#   quick     width 8, 2048 training / 1000 test images, 2 epochs, 1 seed: 9 runs, a
#             smoke test (not timed yet); accuracies far from converged.
#   standard  width 8 (68k parameters), all 60k training and 10k test images, 2 epochs,
#             3 seeds: 27 runs, 2 at a time with 1 torch thread each. Sized from a pilot on
#             the 2-core VM (identity, width 8, 20k images x 2 epochs: 84.3% test
#             accuracy, 63 s of CPU for 40k training images, about 1.5 ms per image), so
#             a run costs about 190 s of CPU (120k images plus two evaluations) and the 27
#             runs about 45 minutes on two otherwise idle cores; the baseline is expected
#             near 89-90% (extrapolated from the pilot, not measured).
#   full      the published width (16), all data, 15 epochs, batch 64, 3 seeds, on a GPU
#             host (--device cuda), 8 runs at once (not yet run on a GPU).
# Usage: experiments/repro/codec_study.sh [--budget quick|standard|full] [--data DIR]
#        [--device cpu|cuda] [--parallel N] [--dry-run] [OUT_DIR]
#        resumable: finished runs are skipped when run again (`gradzip sweep`).
source "$(dirname "$0")/common.sh"
data_args=""
script_option() {
  case "$1" in
    --data) [[ $# -ge 2 ]] || repro_usage_error "--data needs a directory"
            data_args="dataset = cifar10
data-dir = $2"; consumed=2 ;;
    *) return 1 ;;
  esac
}
parse_repro_args "$@"
case "$budget" in
  quick)    sizes="width = 8
train-subset = 2048
test-subset = 1000
epochs = 2
warmup-epochs = 0
torch-threads = 1"; seeds="1"; default_parallel=2; timeout=900 ;;
  standard) sizes="width = 8
train-subset = 0
test-subset = 0
epochs = 2
warmup-epochs = 0
torch-threads = 1"; seeds="1 2 3"; default_parallel=2; timeout=3600 ;;
  full)     sizes="width = 0
train-subset = 0
test-subset = 0
epochs = 15
batch-size = 64"; seeds="1 2 3"; default_parallel=8; timeout=3600 ;;
esac
gz=$(find_gradzip)
cat > "$out/codec_study.sweep" <<SWEEP
# written by experiments/repro/codec_study.sh --budget $budget
[sweep]
base = $repo/experiments/configs/resnet20-fashion-mnist.ini
out = $out/runs
parallel = ${parallel:-$default_parallel}
timeout = $timeout
[axes]
codecs = identity fp16 qsgd:bits=4 ef+qsgd:bits=4 scaled-sign ef+scaled-sign topk:ratio=0.01 ef+topk:ratio=0.01 ef+dgc:ratio=0.001
seeds = $seeds
[fixed]
device = $(training_device)
$sizes
$data_args
SWEEP
start=$(date +%s)
run_sweep_file "$out/codec_study.sweep" "$gz"
py=$(find_python)
"$gz" report --runs "$(run_list "$out/runs")" --out "$out/report" --links eth1g,eth10g,eth25g,eth100g,pcie3
"$py" "$repro_dir/claims.py" --runs "$out/runs" --figure accuracy_vs_bytes.png > "$out/report/codec_study.md"
echo "codec study ($budget budget): $(( $(date +%s) - start )) s; $out/report/codec_study.md"
