#!/usr/bin/env bash
# Codec study: ResNet-20 on Fashion-MNIST (or CIFAR-10 with --data DIR), every codec
# family, with and without error feedback; a markdown report with the accuracy-vs-bytes
# figure and a table judging the published claims against the seed spread
# (experiments/repro/claims.py: QSGD 4-bit ~ baseline; EF fixes sign compression; top-k
# 1% with EF ~ baseline; DGC at 0.1% density; PowerSGD rank 4 ~ baseline; a compressed
# downlink costs little accuracy) and ZipML 4-bit levels. 13 configurations, 4 simulated
# workers in one process per run (cluster = sim): 10 codecs through 2 parameter-server
# shards with a dense downlink, PowerSGD rank 4 (--aggregation powersgd, no shards), and
# two bidirectional runs (ef+topk 1% and ef+scaled-sign both up and down, server EF).
#
# Budgets (--budget, see experiments/repro/common.sh for the shared options):
#   quick     width 8, 2048 training / 1000 test images, 2 epochs, 1 seed: 13 runs, a
#             smoke test (not timed yet); accuracies far from converged.
#   standard  width 8 (68k parameters), all 60k training and 10k test images, 2 epochs,
#             3 seeds: 39 runs, 2 at a time with 1 torch thread each. Sized from a pilot on
#             the 2-core VM (identity, width 8, 20k images x 2 epochs: 84.3% test
#             accuracy, 63 s of CPU for 40k training images, about 1.5 ms per image), so
#             a run costs about 190 s of CPU (120k images plus two evaluations) and the 30
#             runs about 50 minutes on two otherwise idle cores (estimated; on the same VM
#             shared with builds, niced, runs took 13-23 minutes each; the 30 runs of the
#             grid 8511 s at 2 at a time; the 9 PowerSGD and bidirectional runs, one at
#             a time, 347-563 s each, 3872 s in all). Measured baseline: identity
#             90.17 / 90.36 / 90.15% test accuracy for seeds 1-3; results in
#             experiments/results/codec_study/.
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
# One sweep file per set of runs sharing their options, all into $out/runs (write_sweep
# in common.sh): the grid, then PowerSGD and the bidirectional runs.
base="$repo/experiments/configs/resnet20-fashion-mnist.ini"
fixed="$sizes
$data_args"
# The codec grid: 10 configurations, parameter server with a dense (fp32) downlink.
write_sweep codec_study "" "$base" "codecs = identity fp16 qsgd:bits=4 ef+qsgd:bits=4 scaled-sign ef+scaled-sign topk:ratio=0.01 ef+topk:ratio=0.01 ef+dgc:ratio=0.001 zipml:bits=4
seeds = $seeds" "$fixed"
# PowerSGD rank 4 (Vogels et al. 2019): two allreduces per step among the 4 workers, no
# parameter-server shards.
write_sweep codec_study _powersgd "$base" "aggregation = powersgd
codecs = powersgd:rank=4
seeds = $seeds" "$fixed
shards = 1"
# Bidirectional: the same codec on the downlink (parameter deltas, server-side EF).
write_sweep codec_study _bidir_topk "$base" "codecs = ef+topk:ratio=0.01
downlink = ef+topk:ratio=0.01
seeds = $seeds" "$fixed"
write_sweep codec_study _bidir_sign "$base" "codecs = ef+scaled-sign
downlink = ef+scaled-sign
seeds = $seeds" "$fixed"
start=$(date +%s)
run_sweep_files "$gz" "${sweeps[@]}"
py=$(find_python)
"$gz" report --runs "$(run_list "$out/runs")" --out "$out/report" --links eth1g,eth10g,eth25g,eth100g,pcie3
"$py" "$repro_dir/claims.py" --runs "$out/runs" --figure claims_accuracy_vs_bytes.png --plot "$out/report" \
  > "$out/report/codec_study.md"
echo "codec study ($budget budget): $(( $(date +%s) - start )) s; $out/report/codec_study.md"
