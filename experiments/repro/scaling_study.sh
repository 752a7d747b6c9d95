#!/usr/bin/env bash
# Scaling table (the lecture's Caffe2/ResNet-50 table, on a small model): training images/s
# and efficiency against the number of workers (1, 2, 4, 8) for the parameter server with
# 1, 2 and 4 shards and for the fp32 ring allreduce, on a shaped 100 Mbit/s link, set
# beside the link model's prediction (measured compute + modeled communication).
# experiments/repro/study_table.py scaling writes the table. Needs root (network namespaces).
# The CNN of experiments/configs/link-study.ini keeps 97% of its parameters in one tensor
# (fc1.weight), and placement is by tensor: more shards cannot spread that tensor's
# traffic, which the model (shard_fraction) predicts as well.
#
# Budgets (--budget; shared options in experiments/repro/common.sh):
#   quick     1 and 2 workers, PS with 1 shard and allreduce, 20 steps each: a smoke test.
#   standard  16 runs of 40 steps (4 x (3 PS + allreduce)); about 15-20 minutes on the loaded
#             2-core CPU, where more than 2 worker processes also share the cores (so
#             compute per step grows with the workers; the model uses each run's own
#             measured compute).
#   full      the CNN at width 32, 200 steps, --device cuda (GPU host).
# Usage: sudo experiments/repro/scaling_study.sh [--budget quick|standard|full]
#        [--device D] [--parallel N] [--dry-run] [OUT_DIR]   (resumable)
source "$(dirname "$0")/common.sh"
parse_repro_args "$@"
if [[ $dry_run -eq 0 && $(id -u) -ne 0 ]]; then echo "scaling_study: needs root (network namespaces, tc)" >&2; exit 2; fi
link="custom:bw=100mbit,lat=50us"; workers="1 2 4 8"; shards="1 2 4"; steps=40
case "$budget" in
  quick)    workers="1 2"; shards="1"; steps=20; sizes=""; timeout=600 ;;
  standard) sizes=""; timeout=900 ;;
  full)     steps=200; sizes="width = 32"; timeout=3600 ;;
esac
gz=$(find_gradzip)
study_base=$repo/experiments/configs/link-study.ini
start=$(date +%s)
for n in $workers; do
  # One epoch of exactly $steps steps per worker, evaluated once at its end.
  fixed="link = $link
workers = $n
train-subset = $(( n * 32 * steps ))
epochs = 1
compressor = identity
$sizes"
  run_sweep_group "w$n-ps" "shards = $shards" "$fixed"
  run_sweep_group "w$n-allreduce" "aggregation = allreduce" "shards = 1
$fixed"
done
study_finish scaling "$link" 0 "$0 $*"
