#!/usr/bin/python3
"""Codec throughput bars and a kernel table from Google Benchmark JSON
(`--benchmark_format=json` or `--benchmark_out=FILE`), PNG and SVG.

Reads the CPU benchmarks (bench/quant: `bytes_per_second` = GB/s of fp32 input) and the
CUDA benchmark (bench/cuda/codec_bench.cc: only custom counters, `GB_per_s` = GB/s under
the bytes-moved model, `numel` = elements). Each row gets
  device  "gpu" when the file's context says `gradzip_device: cuda` or the row carries
          `GB_per_s` without `bytes_per_second`; else "cpu";
  n       the element count: a `n=N` name component, else the `numel` counter, else the
          last numeric name component (Google Benchmark's `/Arg`); none: "-";
  rate    bytes_per_second, else GB_per_s * 1e9 (rows with neither are left out);
and is compared with the baseline (a name component `memcpy` or `copy_d2d`, or a name
containing "baseline") measured in the same file, on the same device, at the same n:
one of the same name group (first path component) when there is one, else the first
listed. A row without such a baseline gets "n/a", never another size's or device's.
Repetitions: the median aggregate when present, else the median of the iteration rows.

Writes codec_throughput.{png,svg} (one panel per device; grey bars are baselines) and
kernel_table.md (device, n, benchmark, GB/s, baseline, ratio).

Usage: plot_bench.py --out DIR BENCH.json...
Exit status 2 with one line on stderr for bad input.
"""

import argparse
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from plot_runs import save  # noqa: E402  (PNG + SVG, then closes the figure)
from rundir import RunDirError, read_json_object  # noqa: E402

_TIME_SUFFIXES = ("/manual_time", "/real_time", "/process_time")


class BenchError(Exception):
    pass


def base_name(b):
    """Benchmark name without Google Benchmark's timing suffix."""
    name = str(b.get("run_name") or b.get("name", "?"))
    for suffix in _TIME_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def is_baseline(name):
    parts = name.lower().split("/")
    return "memcpy" in parts or "copy_d2d" in parts or "baseline" in name.lower()


def element_count(name, b):
    m = re.search(r"(?:^|/)n=(\d+)(?:/|$)", name)
    if m:
        return int(m.group(1))
    numel = b.get("numel")
    if isinstance(numel, (int, float)) and numel > 0:
        return int(numel)
    last = name.split("/")[-1]
    return int(last) if last.isdigit() else None


def rate_of(b):
    """(bytes/s, device hint) of one benchmark entry; (None, None) without a rate."""
    bps = b.get("bytes_per_second")
    if isinstance(bps, (int, float)) and bps > 0:
        return float(bps), None
    gbs = b.get("GB_per_s")
    if isinstance(gbs, (int, float)) and gbs > 0:
        return float(gbs) * 1e9, "gpu"
    return None, None


def read_file(path):
    """Rows {file, name, device, n, rate} of one JSON file, one per benchmark."""
    try:
        doc = read_json_object(path)
    except RunDirError as e:
        raise BenchError(str(e)) from None
    if not isinstance(doc.get("benchmarks"), list):
        raise BenchError(f"{path}: no \"benchmarks\" list (not Google Benchmark JSON)")
    context = doc.get("context") if isinstance(doc.get("context"), dict) else {}
    file_device = "gpu" if str(context.get("gradzip_device", "")).lower().startswith("cuda") else None
    # (name, n) -> {"iter": [rates], "median": rate, "hint": device}; the CUDA benchmark's
    # names carry no size, its `numel` counter does.
    samples = {}
    for b in doc["benchmarks"]:
        if not isinstance(b, dict) or b.get("error_occurred"):
            continue
        rate, hint = rate_of(b)
        if rate is None:
            continue
        name = base_name(b)
        s = samples.setdefault((name, element_count(name, b)), {"iter": [], "median": None, "hint": hint})
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                s["median"] = rate
        else:
            s["iter"].append(rate)
    rows = []
    for (name, n), s in samples.items():
        rate = s["median"] if s["median"] is not None else (statistics.median(s["iter"]) if s["iter"] else None)
        if rate is None:
            continue
        rows.append({"file": path, "name": name, "device": file_device or s["hint"] or "cpu", "n": n, "rate": rate})
    return rows


def load(paths):
    rows = []
    for path in paths:
        rows.extend(read_file(path))
    if not rows:
        raise BenchError("no benchmark with a bytes_per_second or GB_per_s counter in " + ", ".join(paths))
    return rows


def attach_baselines(rows):
    """Sets row["base"] to the baseline row of the same file, device and n (or None)."""
    by_key = {}
    for r in rows:
        if is_baseline(r["name"]) and r["n"] is not None:
            by_key.setdefault((r["file"], r["device"], r["n"]), []).append(r)
    for r in rows:
        candidates = by_key.get((r["file"], r["device"], r["n"]), []) if r["n"] is not None else []
        group = r["name"].split("/")[0]
        same_group = [c for c in candidates if c["name"].split("/")[0] == group]
        r["base"] = (same_group or candidates or [None])[0]
    return rows


def label(row):
    """Bar label: the name, plus the element count when the name does not hold it."""
    if row["n"] is None or str(row["n"]) in row["name"]:
        return row["name"]
    return f"{row['name']} (n={row['n']})"


def plot(rows, out):
    devices = sorted({r["device"] for r in rows})
    heights = [len([r for r in rows if r["device"] == d]) for d in devices]
    fig, axes = plt.subplots(len(devices), 1, squeeze=False, gridspec_kw={"height_ratios": heights},
                             figsize=(7, max(3.0, 0.28 * len(rows) + 1.5 * len(devices))), constrained_layout=True)
    for ax, device in zip(axes[:, 0], devices):
        mine = [r for r in rows if r["device"] == device]
        ax.barh(range(len(mine)), [r["rate"] / 1e9 for r in mine],
                color=["0.6" if is_baseline(r["name"]) else ("C1" if device == "gpu" else "C0") for r in mine])
        ax.set_yticks(list(range(len(mine))))
        ax.set_yticklabels([label(r) for r in mine], fontsize=7)
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_xlabel("GB/s of fp32 input" if device == "cpu" else "GB/s under the bytes-moved model")
        ax.set_title(f"{device.upper()}: codec throughput (grey: baselines of the same run)", fontsize=9)
    return save(fig, out, "codec_throughput")


def write_table(rows, out):
    path = os.path.join(out, "kernel_table.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("Ratios compare each row with the baseline measured in the same run, on the same device, "
                "at the same element count n.\n\n")
        f.write("| device | n | benchmark | GB/s | baseline | vs baseline |\n|---|---:|---|---:|---|---:|\n")
        for r in rows:
            base = r["base"]
            ratio = f"{r['rate'] / base['rate']:.2f}" if base else "n/a"
            n = str(r["n"]) if r["n"] is not None else "-"
            f.write(f"| {r['device']} | {n} | {r['name']} | {r['rate'] / 1e9:.3f} | "
                    f"{base['name'] if base else '-'} | {ratio} |\n")
    return path


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("json", nargs="+")
    a = p.parse_args(argv)
    try:
        rows = attach_baselines(load(a.json))
    except BenchError as e:
        print(f"plot_bench: {e}", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    written = plot(rows, a.out) + [write_table(rows, a.out)]
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
