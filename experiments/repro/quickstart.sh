#!/usr/bin/env bash
# Quickstart: accuracy vs bytes for six codecs from real multi-process training.
#   Fashion-MNIST (Debian's dataset-fashion-mnist), ResNet-20 at base width 8, 4 worker
#   processes + 2 parameter-server shard processes talking ZeroMQ over loopback TCP;
#   codecs identity, fp16, QSGD 4-bit + EF (the ef memory scales by 1/(1+omega) over an
#   unbiased codec by default: unscaled EF over QSGD-l2 is not contractive and diverged in
#   the codec study; README "Safe error feedback"), scaled sign + EF, top-k 1% + EF, DGC 0.1%
#   (DGC's sampled-threshold sparsifier with residual error feedback. DGC's own memory,
#   `dgc+dgc:ratio=0.001`, moves momentum to the workers (Lin et al. 2018, momentum
#   correction); with the shards' SGD momentum of 0.9 still on it would count momentum
#   twice, so set --momentum 0 on the shards when comparing it.)
#   Data: 2048 training images x 6 epochs, 1000 test images (experiments/configs/quickstart.ini).
# Expected run time: about 10 minutes on a 2-core CPU, once gradzip is built.
# Usage: experiments/repro/quickstart.sh [OUT_DIR]   (default out/quickstart; resumable:
#        finished runs are skipped when run again)
# Writes OUT_DIR/runs/<codec>/ (run directories), OUT_DIR/report/{report.md,report.csv,
# timelines.csv,*.png,*.svg}, and prints the comparison table.
source "$(dirname "$0")/common.sh"
out=$(mkdir -p "${1:-$repo/out/quickstart}" && cd "${1:-$repo/out/quickstart}" && pwd)
gz=$(find_gradzip)
cat > "$out/quickstart.sweep" <<SWEEP
# written by experiments/repro/quickstart.sh
[sweep]
base = $repo/experiments/configs/quickstart.ini
out = $out/runs
parallel = 1
timeout = 900
[axes]
codecs = identity fp16 ef+qsgd:bits=4 ef+scaled-sign ef+topk:ratio=0.01 ef+dgc:ratio=0.001
SWEEP
start=$(date +%s)
"$gz" sweep --file "$out/quickstart.sweep"
"$gz" report --runs "$(run_list "$out/runs")" --out "$out/report" --links eth1g,eth10g,eth25g,pcie3
echo "quickstart: $(( $(date +%s) - start )) s; figures and tables in $out/report"
