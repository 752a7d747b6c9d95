#!/usr/bin/env bash
# Quickstart: accuracy vs bytes for six codecs, and one bidirectional run, from real
#   multi-process training.
#   Fashion-MNIST (Debian's dataset-fashion-mnist), ResNet-20, 4 worker processes + 2
#   parameter-server shard processes talking ZeroMQ over loopback TCP; codecs identity,
#   fp16, QSGD 4-bit + EF (the ef memory scales by 1/(1+omega) over an unbiased codec by
#   default: unscaled EF over QSGD-l2 is not contractive and diverged in the codec study;
#   README "Safe error feedback"), scaled sign + EF, top-k 1% + EF, DGC 0.1% (DGC's sampled-
#   threshold sparsifier with residual error feedback. DGC's own memory,
#   `dgc+dgc:ratio=0.001`, moves momentum to the workers (Lin et al. 2018, momentum
#   correction); with the shards' SGD momentum of 0.9 still on it would count momentum
#   twice, so set --momentum 0 on the shards when comparing it.); and top-k 1% + EF in both
#   directions (--downlink ef+topk:ratio=0.01, server-side EF): with a dense downlink the
#   pull is most of the traffic, so the report shows what compressing it too costs.
#
# Budgets (--budget; shared options in experiments/repro/common.sh):
#   quick     width 8, 512 training / 500 test images, 2 epochs: a smoke test of the
#             pipeline in a few minutes (not timed yet); accuracies mean little.
#   standard  experiments/configs/quickstart.ini: width 8, 2048 training / 1000 test
#             images, 6 epochs: about 8-10 minutes on a 2-core CPU.
#   full      the published width (16), all 60k training / 10k test images, 10 epochs,
#             --device cuda, 2 runs at once (for a GPU host; not yet run on one).
# Usage: experiments/repro/quickstart.sh [--budget quick|standard|full] [--device D]
#        [--parallel N] [--dry-run] [OUT_DIR]   (default out/quickstart; resumable:
#        finished runs are skipped when run again)
# Writes OUT_DIR/runs/<codec>/ (run directories), OUT_DIR/report/{report.md,report.csv,
# timelines.csv,*.png,*.svg}, and prints the comparison table.
source "$(dirname "$0")/common.sh"
parse_repro_args "$@"
case "$budget" in
  quick)    sizes="train-subset = 512
test-subset = 500
epochs = 2"; default_parallel=1; timeout=600 ;;
  standard) sizes=""; default_parallel=1; timeout=900 ;;
  full)     sizes="width = 0
train-subset = 0
test-subset = 0
epochs = 10"; default_parallel=2; timeout=3600 ;;
esac
gz=$(find_gradzip)
# The codec axis, then top-k 1% + EF in both directions (its own sweep: write_sweep).
base="$repo/experiments/configs/quickstart.ini"
write_sweep quickstart "" "$base" "codecs = identity fp16 ef+qsgd:bits=4 ef+scaled-sign ef+topk:ratio=0.01 ef+dgc:ratio=0.001" "$sizes"
write_sweep quickstart _bidir "$base" "codecs = ef+topk:ratio=0.01
downlink = ef+topk:ratio=0.01" "$sizes"
start=$(date +%s)
run_sweep_files "$gz" "${sweeps[@]}"
"$gz" report --runs "$(run_list "$out/runs")" --out "$out/report" --links eth1g,eth10g,eth25g,pcie3
echo "quickstart ($budget budget): $(( $(date +%s) - start )) s; figures and tables in $out/report"
