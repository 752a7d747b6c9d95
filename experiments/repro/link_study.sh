#!/usr/bin/env bash
# Link study: time-to-accuracy over shaped links (every worker and shard in its own network
# namespace, veth + bridge, tc tbf at the link rate) of 4 workers: fp32 and fp16 through
# the parameter server, the dense fp16 ring allreduce (the DDP baseline) with and without
# overlap, compressed PS runs (top-k 1% + EF both ways, with and without overlap; QSGD
# 4-bit + EF uplink; top-k 10% + EF both ways), top-k 1% + EF over allgather and THC homomorphic int8 over the
# allreduce. experiments/repro/study_table.py link puts the measured time-to-accuracy, the
# speed-ups over fp32 PS and over fp16 allreduce, and the link model's prediction (with
# its error) side by side. Needs root and iproute2 (not for --dry-run).
#
# Budgets (--budget; shared options in experiments/repro/common.sh):
#   quick     100 Mbit/s only; fp32 PS, fp16 allreduce, top-k PS; 1024 images, 2 epochs:
#             checks namespaces, shaping and the tables in a few minutes.
#   standard  100 Mbit/s and 1 Gbit/s x 10 configurations (20 runs) of
#             experiments/configs/link-study.ini (CNN width 8, 4096 images, 6 epochs,
#             target 80%): about 25-30 minutes on the loaded 2-core CPU of this project.
#   full      the same with the CNN at width 32 on all 60k images, 3 epochs, 1 and
#             10 Gbit/s, --device cuda (for a GPU host with root; not yet run on one).
# The collective groups encode on one thread: with --overlap on and 2 encode threads the
# ranks can enqueue their bucket collectives in different orders, and Gloo aborts on the
# size mismatch (seen at step ~97 of the fp16 allreduce; README "Study results").
# Runs go one at a time unless --parallel says otherwise: parallel runs would share the
# CPU and distort the measured times.
# Usage: sudo experiments/repro/link_study.sh [--budget quick|standard|full] [--device D]
#        [--parallel N] [--dry-run] [OUT_DIR]   (resumable)
source "$(dirname "$0")/common.sh"
parse_repro_args "$@"
if [[ $dry_run -eq 0 && $(id -u) -ne 0 ]]; then echo "link_study: needs root (network namespaces, tc)" >&2; exit 2; fi
links="custom:bw=100mbit,lat=50us custom:bw=1gbit,lat=50us"; overlaps="on off"; target=0.80
case "$budget" in
  quick)    links="custom:bw=100mbit,lat=50us"; overlaps="on"; target=0; sizes="train-subset = 1024
epochs = 2"; timeout=600 ;;
  standard) sizes=""; timeout=900 ;;
  full)     links="custom:bw=1gbit,lat=50us custom:bw=10gbit,lat=50us"; sizes=$study_full_sizes; timeout=3600 ;;
esac
gz=$(find_gradzip)
study_base=$repo/experiments/configs/link-study.ini
start=$(date +%s)
run_sweep_group ps-fp32 "links = $links" "compressor = identity
$sizes"
run_sweep_group allreduce-fp16 "links = $links
overlap = $overlaps" "aggregation = allreduce
shards = 1
encode-threads = 1
compressor = fp16
$sizes"
run_sweep_group ps-topk "links = $links
overlap = $overlaps" "compressor = ef+topk:ratio=0.01
downlink = ef+topk:ratio=0.01
$sizes"
if [[ $budget != quick ]]; then
  run_sweep_group ps-fp16 "links = $links" "compressor = fp16
$sizes"
  # QSGD 4-bit + EF on the uplink only: with ef+qsgd:bits=4 on the downlink too this
  # setup diverged (a bucket's sum of squares overflowed fp32 at step ~53).
  run_sweep_group ps-qsgd "links = $links" "compressor = ef+qsgd:bits=4
$sizes"
  run_sweep_group allgather-topk "links = $links" "aggregation = allgather
shards = 1
encode-threads = 1
compressor = ef+topk:ratio=0.01
$sizes"
  run_sweep_group homomorphic-thc "links = $links" "aggregation = homomorphic
shards = 1
encode-threads = 1
compressor = ef+thc
$sizes"
  run_sweep_group ps-topk10 "links = $links" "compressor = ef+topk:ratio=0.1
downlink = ef+topk:ratio=0.1
$sizes"
fi
study_finish link "${links// /,}" "$target" "$0 $*"
