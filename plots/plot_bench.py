#!/usr/bin/python3
"""Codec throughput bars from Google Benchmark JSON (`--benchmark_format=json` or
`--benchmark_out=FILE`), PNG and SVG.

Each benchmark with a `bytes_per_second` counter becomes one bar (GB/s of fp32 input);
names are grouped by their first path component (e.g. `BM_Encode/qsgd4/1048576` ->
group `BM_Encode`, bar `qsgd4/1048576`). Benchmarks that report a baseline (a name
containing "memcpy" or "baseline") are drawn in grey so ratios can be read off.
Also writes kernel_table.md: name, GB/s, ratio to the fastest baseline in the file.

Usage: plot_bench.py --out DIR BENCH.json...
Exit status 2 with one line on stderr for bad input.
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class BenchError(Exception):
    pass


def load(paths):
    rows = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as e:
            raise BenchError(f"{path}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise BenchError(f"{path}: not JSON ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
            raise BenchError(f"{path}: no \"benchmarks\" list (not Google Benchmark JSON)")
        for b in doc["benchmarks"]:
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "mean":
                continue
            bps = b.get("bytes_per_second")
            if not isinstance(bps, (int, float)) or bps <= 0:
                continue
            rows.append((str(b.get("name", "?")), float(bps)))
    if not rows:
        raise BenchError("no benchmark with a bytes_per_second counter in " + ", ".join(paths))
    return rows


def is_baseline(name):
    n = name.lower()
    return "memcpy" in n or "baseline" in n


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("json", nargs="+")
    a = p.parse_args(argv)
    try:
        rows = load(a.json)
    except BenchError as e:
        print(f"plot_bench: {e}", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.28 * len(rows) + 1)))
    names = [n for n, _ in rows]
    gbs = [v / 1e9 for _, v in rows]
    colors = ["0.6" if is_baseline(n) else "C0" for n in names]
    ax.barh(range(len(rows)), gbs, color=colors)
    ax.set_yticks(list(range(len(rows))))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("throughput (GB/s of input)")
    ax.set_title("Codec throughput (grey: baselines measured in the same run)")
    ax.grid(True, axis="x", alpha=0.3)
    written = []
    for ext in ("png", "svg"):
        path = os.path.join(a.out, f"codec_throughput.{ext}")
        fig.savefig(path, dpi=130, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    base = max((v for n, v in rows if is_baseline(n)), default=None)
    table = os.path.join(a.out, "kernel_table.md")
    with open(table, "w", encoding="utf-8") as f:
        f.write("| benchmark | GB/s | vs baseline |\n|---|---:|---:|\n")
        for n, v in rows:
            ratio = f"{v / base:.2f}" if base else "n/a"
            f.write(f"| {n} | {v / 1e9:.3f} | {ratio} |\n")
    written.append(table)
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
