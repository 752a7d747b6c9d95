#!/usr/bin/env bash
# Kernel table: runs the codec microbenchmarks (Google Benchmark, bytes/s against a
# memcpy baseline measured in the same run) and renders the throughput table and figure.
# Expected run time: about 3 minutes on a 2-core CPU (plus the GPU benchmark when built).
# Usage: experiments/repro/kernel_table.sh [OUT_DIR]
source "$(dirname "$0")/common.sh"
out=$(mkdir -p "${1:-$repo/out/kernel_table}" && cd "${1:-$repo/out/kernel_table}" && pwd)
py=$(find_python)
gz=$(find_gradzip)
build=$(cd "$(dirname "$gz")/.." && pwd)
jsons=()
for b in gradzip_bench_quant gradzip_bench_comm gradzip_bench_cuda; do
  if [[ -x "$build/bench/$b" ]]; then
    "$build/bench/$b" --benchmark_min_time=0.2 --benchmark_out="$out/$b.json" --benchmark_out_format=json
    jsons+=("$out/$b.json")
  fi
done
if [[ ${#jsons[@]} -eq 0 ]]; then echo "kernel_table: no benchmark binaries under $build/bench (ninja -C $build gradzip_bench_quant)" >&2; exit 2; fi
"$py" "$repo/plots/plot_bench.py" --out "$out" "${jsons[@]}"
cat "$out/kernel_table.md"
