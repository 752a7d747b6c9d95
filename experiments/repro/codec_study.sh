#!/usr/bin/env bash
# Codec study: ResNet-20 on Fashion-MNIST (or CIFAR-10 with --data DIR) to convergence,
# every codec family, 3 seeds; a markdown report with the accuracy-vs-bytes figure and a
# table checking the published claims (QSGD 4-bit ~ baseline; EF fixes sign
# compression; top-k 1% with EF ~ baseline; DGC at 0.1% density).
# Expected run time: about 1.5 h per run on a 2-core CPU (30 epochs over 60k images), so
# 27 runs take ~40 h there; about 2-4 minutes per run on one modern GPU (--device cuda).
# Usage: experiments/repro/codec_study.sh [--data DIR] [--device cpu|cuda] [--parallel N] [OUT_DIR]
#        resumable: finished runs are skipped when run again.
source "$(dirname "$0")/common.sh"
data_args=""; device=cpu; parallel=1; out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data) data_args="dataset = cifar10
data-dir = $2"; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    *) out=$1; shift ;;
  esac
done
out=$(mkdir -p "${out:-$repo/out/codec_study}" && cd "${out:-$repo/out/codec_study}" && pwd)
gz=$(find_gradzip); py=$(find_python)
cat > "$out/codec_study.sweep" <<SWEEP
# written by experiments/repro/codec_study.sh
[sweep]
base = $repo/experiments/configs/resnet20-fashion-mnist.ini
out = $out/runs
parallel = $parallel
timeout = 36000
[axes]
codecs = identity fp16 qsgd:bits=4 ef+qsgd:bits=4 scaled-sign ef+scaled-sign topk:ratio=0.01 ef+topk:ratio=0.01 ef+dgc:ratio=0.001
seeds = 1 2 3
[fixed]
device = $device
$data_args
SWEEP
"$gz" sweep --file "$out/codec_study.sweep"
"$gz" report --runs "$(run_list "$out/runs")" --out "$out/report" --links eth1g,eth10g,eth25g,eth100g,pcie3
"$py" "$repro_dir/claims.py" --report "$out/report/report.csv" --figure accuracy_vs_bytes.png > "$out/report/codec_study.md"
echo "codec study: $out/report/codec_study.md"
