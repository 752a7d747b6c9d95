#!/usr/bin/env bash
# Link study: the quickstart model over emulated 1, 10 and 25 Gbit/s links (every worker
# and shard in its own network namespace, veth + bridge, tc tbf at the link rate, netem
# delay where the kernel has sch_netem), for identity (fp32), the fp16 baseline
# (compression must beat fp16, not only fp32) and the compressed codecs. Reports
# measured and modeled time-to-accuracy per link. Needs root and iproute2.
# Expected run time: about 25 minutes on a 2-core CPU (15 runs x ~90 s; on a CPU-bound
# machine the links rarely limit the step, which the report's bottleneck column shows).
# Usage: sudo experiments/repro/link_study.sh [OUT_DIR]  (resumable)
source "$(dirname "$0")/common.sh"
if [[ $(id -u) -ne 0 ]]; then echo "link_study: needs root (network namespaces, tc)" >&2; exit 2; fi
out=$(mkdir -p "${1:-$repo/out/link_study}" && cd "${1:-$repo/out/link_study}" && pwd)
gz=$(find_gradzip)
cat > "$out/link_study.sweep" <<SWEEP
# written by experiments/repro/link_study.sh
[sweep]
base = $repo/experiments/configs/link-study.ini
out = $out/runs
parallel = 1
timeout = 1200
[axes]
links = eth1g eth10g eth25g
codecs = identity fp16 ef+qsgd:bits=4 ef+topk:ratio=0.01 ef+dgc:ratio=0.001
SWEEP
"$gz" sweep --file "$out/link_study.sweep"
"$gz" report --runs "$(run_list "$out/runs")" --out "$out/report" --links eth1g,eth10g,eth25g
echo "link study: $out/report/report.md"
