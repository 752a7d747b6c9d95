#!/usr/bin/env bash
# Kernel table: runs the codec microbenchmarks (Google Benchmark; each row compared with
# the baseline of the same size on the same device, measured in the same run: memcpy on
# the CPU, a device-to-device copy on the GPU) and renders the throughput table and
# figure (plots/plot_bench.py). The GPU benchmark runs when it was built, unless
# --device cpu.
#
# Budgets (--budget; shared options in experiments/repro/common.sh; --parallel is unused):
#   quick     CPU codecs at n = 1M only, 0.05 s per benchmark: under 3 minutes on the
#             shared 2-core VM.
#   standard  every CPU and GPU benchmark, 0.2 s each: about 3 minutes on a 2-core CPU.
#   full      every benchmark, 3 repetitions of 0.5 s (the table uses their median), and
#             bench/cuda/torch_compare.py (gradzip vs PyTorch ops, same GPU, same run)
#             when the GPU benchmark and a python3 with torch are there.
# Usage: experiments/repro/kernel_table.sh [--budget quick|standard|full] [--device cpu]
#        [--dry-run] [OUT_DIR]
source "$(dirname "$0")/common.sh"
parse_repro_args "$@"
case "$budget" in
  quick)    bench_args=(--benchmark_min_time=0.05) quant_filter=(--benchmark_filter='n=1000000$') ;;
  standard) bench_args=(--benchmark_min_time=0.2) quant_filter=() ;;
  full)     bench_args=(--benchmark_min_time=0.5 --benchmark_repetitions=3) quant_filter=() ;;
esac
gz=$(find_gradzip)
build=$(cd "$(dirname "$gz")/.." && pwd)
benches=(gradzip_bench_quant)
if [[ $budget != quick ]]; then benches+=(gradzip_bench_comm); fi
if [[ $budget != quick && "$device" != cpu ]]; then benches+=(gradzip_bench_cuda); fi
jsons=()
for b in "${benches[@]}"; do
  [[ -x "$build/bench/$b" ]] || continue
  args=("${bench_args[@]}" --benchmark_out="$out/$b.json" --benchmark_out_format=json)
  [[ $b == gradzip_bench_quant ]] && args+=("${quant_filter[@]}")
  if [[ $dry_run -eq 1 ]]; then echo "would run: $build/bench/$b ${args[*]}"; else "$build/bench/$b" "${args[@]}"; fi
  jsons+=("$out/$b.json")
done
if [[ ${#jsons[@]} -eq 0 ]]; then echo "kernel_table: no benchmark binaries under $build/bench (ninja -C $build gradzip_bench_quant)" >&2; exit 2; fi
compare=""
if [[ $budget == full && -x "$build/bench/gradzip_bench_cuda" && "$device" != cpu ]] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  compare="/usr/bin/python3 $repo/bench/cuda/torch_compare.py --bench $build/bench/gradzip_bench_cuda"
fi
if [[ $dry_run -eq 1 ]]; then
  [[ -z "$compare" ]] || echo "would run: $compare > $out/torch_compare.txt"
  exit 0
fi
py=$(find_python)
"$py" "$repo/plots/plot_bench.py" --out "$out" "${jsons[@]}"
cat "$out/kernel_table.md"
if [[ -n "$compare" ]]; then $compare | tee "$out/torch_compare.txt"; fi
