#!/usr/bin/env bash
# Link study: the quickstart model over emulated links (every worker and shard in its own
# network namespace, veth + bridge, tc tbf at the link rate, netem delay where the kernel
# has sch_netem), for identity (fp32), the fp16 baseline (compression must beat fp16, not
# only fp32) and the compressed codecs. Reports measured and modeled time-to-accuracy per
# link. Needs root and iproute2 (not for --dry-run).
#
# Budgets (--budget; shared options in experiments/repro/common.sh):
#   quick     eth1g only, identity and fp16 and top-k 1% + EF, 512 training images, 1
#             epoch: checks the namespaces, shaping and report (not timed yet).
#   standard  eth1g, eth10g, eth25g x 5 codecs, experiments/configs/link-study.ini (width 8,
#             2048 images, 4 epochs): about 25 minutes on a 2-core CPU (15 runs x ~90 s;
#             on a CPU-bound machine the links rarely limit the step, which the report's
#             bottleneck column shows).
#   full      the same links and codecs at the published width (16) on all 60k images, 2
#             epochs, --device cuda (for a GPU host; not yet run on one).
# Runs go one at a time unless --parallel says otherwise: parallel runs would share the
# CPU and distort the measured times.
# Usage: sudo experiments/repro/link_study.sh [--budget quick|standard|full] [--device D]
#        [--parallel N] [--dry-run] [OUT_DIR]   (resumable)
source "$(dirname "$0")/common.sh"
parse_repro_args "$@"
if [[ $dry_run -eq 0 && $(id -u) -ne 0 ]]; then echo "link_study: needs root (network namespaces, tc)" >&2; exit 2; fi
links="eth1g eth10g eth25g"
codecs="identity fp16 ef+qsgd:bits=4 ef+topk:ratio=0.01 ef+dgc:ratio=0.001"
case "$budget" in
  quick)    links="eth1g"; codecs="identity fp16 ef+topk:ratio=0.01"; sizes="train-subset = 512
test-subset = 500
epochs = 1"; timeout=600 ;;
  standard) sizes=""; timeout=1200 ;;
  full)     sizes="width = 0
train-subset = 0
test-subset = 0
epochs = 2"; timeout=3600 ;;
esac
gz=$(find_gradzip)
cat > "$out/link_study.sweep" <<SWEEP
# written by experiments/repro/link_study.sh --budget $budget
[sweep]
base = $repo/experiments/configs/link-study.ini
out = $out/runs
parallel = ${parallel:-1}
timeout = $timeout
[axes]
links = $links
codecs = $codecs
[fixed]
device = $(training_device)
$sizes
SWEEP
start=$(date +%s)
run_sweep_file "$out/link_study.sweep" "$gz"
"$gz" report --runs "$(run_list "$out/runs")" --out "$out/report" --links "${links// /,}"
echo "link study ($budget budget): $(( $(date +%s) - start )) s; $out/report/report.md"
