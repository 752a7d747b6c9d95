"""Encode throughput from Python (gradzip.Compressor.encode on a CPU tensor) against the
C++ benchmark of the same codec, spec and size (gradzip_bench_quant, codec/encode/SPEC/n=N),
measured in the same run. Goal: Python >= 90% of C++ for every codec.

Both sides encode N(0, 1) float32 data with the codec's default parameters into a
preallocated buffer, one call per iteration, one core. The two sides alternate per
(codec, size) for --rounds rounds; each side reports the median of its rounds, and the
C++ side itself reports the median of 3 repetitions per round. GB/s = 4n bytes of fp32
input per second of CPU time of the encoding thread on both sides (Google Benchmark's
default), so that other processes on a shared machine do not count.

usage: PYTHONPATH=build/python /usr/bin/python3 python/bench/encode_bench.py
           [--bench build/bench/gradzip_bench_quant] [--sizes 1000000,11200000] [--rounds 3]
           [--codecs fp16,topk,...] [--min-time 0.3]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import gradzip

REPO = Path(__file__).resolve().parents[2]


def python_rate(spec, x, out, min_time):
    """Bytes of fp32 input per CPU second of Compressor.encode, after one untimed call."""
    c = gradzip.Compressor(spec)
    c.encode(x, step=0, out=out)
    calls, step, start = 0, 1, time.thread_time()
    while True:
        c.encode(x, step=step, out=out)
        calls, step = calls + 1, step + 1
        elapsed = time.thread_time() - start
        if elapsed >= min_time:
            return 4 * x.numel() * calls / elapsed


def cpp_rate(bench, spec, n, min_time):
    """Median bytes/s of codec/encode/SPEC/n=N over 3 repetitions of gradzip_bench_quant."""
    name = f"codec/encode/{spec}/n={n}"
    regex = "^" + "".join("\\" + ch if ch in ".+*?()[]{}|^$\\" else ch for ch in name) + "$"
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run([str(bench), f"--benchmark_filter={regex}", f"--benchmark_min_time={min_time}",
                        "--benchmark_repetitions=3", f"--benchmark_out={report.name}", "--benchmark_out_format=json"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        runs = json.load(open(report.name))["benchmarks"]
    medians = [r["bytes_per_second"] for r in runs if r.get("aggregate_name") == "median"]
    if not medians:
        raise RuntimeError(f"{name}: not found in {bench} (filter {regex})")
    return medians[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default=str(REPO / "build" / "bench" / "gradzip_bench_quant"))
    ap.add_argument("--sizes", default="1000000,11200000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--codecs", default="", help="comma-separated codec names (default: every registered codec)")
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per measurement")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = [e["name"] for e in gradzip.compressors() if e["kind"] == "codec"]
    if args.codecs:
        names = [n for n in names if n in args.codecs.split(",")]
    print(f"torch {torch.__version__}; {args.rounds} interleaved rounds, medians, GB/s of encoding-thread CPU time")
    print(f"{'codec spec':48} {'n':>9} {'C++ GB/s':>9} {'Py GB/s':>8} {'Py/C++':>7}")
    worst = None
    for n in (int(s) for s in args.sizes.split(",")):
        x = torch.randn(n, generator=torch.Generator().manual_seed(4321))
        for name in names:
            spec = gradzip.Compressor(name).codec_spec
            out = torch.empty(gradzip.Compressor(spec).max_encoded_bytes(n), dtype=torch.uint8)
            cpp, py = [], []
            for _ in range(args.rounds):
                cpp.append(cpp_rate(args.bench, spec, n, args.min_time))
                py.append(python_rate(spec, x, out, args.min_time))
            c, p = statistics.median(cpp), statistics.median(py)
            worst = min(worst or p / c, p / c)
            print(f"{spec:48} {n:>9} {c / 1e9:9.3f} {p / 1e9:8.3f} {p / c:7.1%}", flush=True)
    print(f"lowest Python/C++ ratio: {worst:.1%} (goal >= 90%)")


if __name__ == "__main__":
    sys.exit(main())
