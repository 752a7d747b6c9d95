#!/usr/bin/python3
"""Figures from gradzip run directories (PNG and SVG each).

  accuracy_vs_bytes      test accuracy vs cumulative bytes the workers sent, log x (all
                         workers, uplink payload + framing + TCP/IP estimate; the
                         downlink, dense or compressed, is in bytes_per_step)
  accuracy_vs_time_<L>   test accuracy vs modeled wall time on link L (needs the
                         timelines CSV that `gradzip report` writes; the model itself is
                         experiments/link_model.h, not re-implemented here)
  bytes_per_step         bytes per worker per step by codec, up and down
  step_breakdown         stacked step-time breakdown per run (summary.json "stages")

Usage: plot_runs.py --out DIR [--timelines timelines.csv] [--formats png,svg] RUN_DIR...
Exit status 2 with one line on stderr for bad input.
"""

import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rundir import RunDirError, label, load_runs  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STAGE_ORDER = ["data_wait", "h2d", "compute", "d2h", "encode", "send", "pull_wait", "apply"]


FORMATS = ["png", "svg"]


def save(fig, out, name):
    paths = []
    for ext in FORMATS:
        p = os.path.join(out, f"{name}.{ext}")
        fig.savefig(p, dpi=130, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def finite_pairs(xs, ys):
    pts = [(x, y) for x, y in zip(xs, ys) if not math.isnan(y) and not math.isnan(x) and x > 0]
    return [p[0] for p in pts], [p[1] for p in pts]


def accuracy_vs_bytes(runs, out):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in runs:
        x, y = finite_pairs(r.bytes_sent(), r.col("test_accuracy"))
        ax.plot(x, [v * 100 for v in y], marker="o", ms=3, label=label(r))
    ax.set_xscale("log")
    ax.set_xlabel("cumulative bytes sent by the workers (gradients, all workers, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs bytes sent")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save(fig, out, "accuracy_vs_bytes")


def read_timelines(path):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise RunDirError(f"{path}: {e.strerror}") from None
    need = {"run", "compressor", "link", "modeled_seconds", "test_accuracy"}
    if rows and not need <= set(rows[0]):
        raise RunDirError(f"{path}: needs columns {sorted(need)}")
    by_link = {}
    for i, row in enumerate(rows):
        try:
            t = float(row["modeled_seconds"])
            a = float(row["test_accuracy"]) if row["test_accuracy"] else math.nan
        except ValueError:
            raise RunDirError(f"{path}:{i + 2}: bad number") from None
        series = by_link.setdefault(row["link"], {}).setdefault((row["run"], row["compressor"]), ([], []))
        series[0].append(t)
        series[1].append(a)
    return by_link


def accuracy_vs_time(timelines, out):
    paths = []
    for link, series in timelines.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (_run, compressor), (t, a) in series.items():
            x, y = finite_pairs(t, a)
            short = compressor.split(",")[0]
            ax.plot(x, [v * 100 for v in y], marker="o", ms=3, label=short[5:] if short.startswith("none+") else short)
        ax.set_xscale("log")
        ax.set_xlabel(f"modeled wall time on {link} (s, log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"Accuracy vs modeled time: {link}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in link)
        paths += save(fig, out, f"accuracy_vs_time_{safe}")
    return paths


def bytes_per_step(runs, out):
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(runs) + 2), 4.2))
    up = [r.bytes_per_worker_step()[0] for r in runs]
    down = [r.bytes_per_worker_step()[1] for r in runs]
    xs = range(len(runs))
    ax.bar([x - 0.2 for x in xs], up, width=0.4, label="up (worker to shards)")
    ax.bar([x + 0.2 for x in xs], down, width=0.4, label="down (shards to worker)")
    ax.set_yscale("log")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([label(r) for r in runs], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("bytes per worker per step (log scale)")
    ax.set_title("Bytes per step by codec")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, out, "bytes_per_step")


def step_breakdown(runs, out):
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(runs) + 2), 4.2))
    stages = [s for s in STAGE_ORDER if any(s in r.summary.get("stages", {}) for r in runs)]
    extra = sorted({s for r in runs for s in r.summary.get("stages", {})} - set(stages))
    stages += extra
    bottom = [0.0] * len(runs)
    for s in stages:
        vals = []
        for r in runs:
            st = r.summary.get("stages", {})
            steps = max(1.0, r.col("step")[-1] * r.workers)
            vals.append(1e3 * float(st.get(s, 0.0)) / steps)
        ax.bar(range(len(runs)), vals, bottom=bottom, label=s)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(list(range(len(runs))))
    ax.set_xticklabels([label(r) for r in runs], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("ms per worker step")
    ax.set_title("Step-time breakdown")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    return save(fig, out, "step_breakdown")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--timelines", help="timelines.csv from `gradzip report` (modeled time per link)")
    p.add_argument("--formats", default="png,svg", help="comma-separated figure formats (png, svg)")
    p.add_argument("runs", nargs="+", help="run directories")
    a = p.parse_args(argv)
    FORMATS[:] = [f for f in a.formats.split(",") if f]
    if not FORMATS or any(f not in ("png", "svg") for f in FORMATS):
        print(f"plot_runs: --formats {a.formats}: allowed png, svg", file=sys.stderr)
        return 2
    try:
        runs = load_runs(a.runs)
        os.makedirs(a.out, exist_ok=True)
        written = accuracy_vs_bytes(runs, a.out) + bytes_per_step(runs, a.out) + step_breakdown(runs, a.out)
        if a.timelines:
            written += accuracy_vs_time(read_timelines(a.timelines), a.out)
    except RunDirError as e:
        print(f"plot_runs: {e}", file=sys.stderr)
        return 2
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
