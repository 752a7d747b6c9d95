#!/usr/bin/env python3
"""Tables and figures of the link, straggler and scaling studies (experiments/repro/*_study.sh).

Usage: study_table.py link|straggler|scaling STUDY_DIR

Reads STUDY_DIR/runs/<group>/<run>/ (summary.json, metrics.csv, config.ini, procs/shard*.stats.jsonl)
and STUDY_DIR/report/<group>/timelines.csv, which `gradzip report` wrote: the link model's
times come from there (experiments/link_model.h), so the model has one implementation.
Writes STUDY_DIR/report.md, STUDY_DIR/report.csv and figures (*.png, *.svg). Nothing here
is measured or modeled anew: every number is read from those files.
"""
import csv
import json
import math
import sys
from collections import Counter
from pathlib import Path

NAN = float("nan")


def read_ini(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line and not line.startswith("["):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return NAN


def link_label(spec):
    if spec.startswith("custom:bw="):
        rate = spec[len("custom:bw="):].split(",")[0]
        return rate.replace("gbit", " Gbit/s").replace("mbit", " Mbit/s")
    return spec


class Run:
    """One finished run directory and its own link's timeline."""

    def __init__(self, study, group, path):
        self.group, self.path, self.name = group, path, path.name
        self.summary = json.loads((path / "summary.json").read_text())
        self.config = read_ini(path / "config.ini")
        self.metrics = read_csv(path / "metrics.csv")
        self.link = self.summary.get("link", "")
        self.timeline = []  # (step, measured_s, modeled_s, accuracy) on the run's own link
        timelines = study / "report" / group / "timelines.csv"
        if timelines.exists():
            for row in read_csv(timelines):
                if row["run"] == self.name and row["link"] == self.link:
                    self.timeline.append((number(row["step"]), number(row["measured_seconds"]),
                                          number(row["modeled_seconds"]), number(row["test_accuracy"])))

    def get(self, key, default=""):
        return self.config.get(key, default)

    def accuracies(self):
        return [(number(r["seconds"]), number(r["test_accuracy"])) for r in self.metrics]

    def final_accuracy(self):
        return number(self.summary.get("final_test_accuracy"))

    def best_accuracy(self):
        return max((a for _, a in self.accuracies() if not math.isnan(a)), default=NAN)

    def tta(self, target):
        """(measured, modeled) seconds to the first evaluation at or above target."""
        for _, measured, modeled, acc in self.timeline:
            if acc >= target:
                return measured, modeled
        for seconds, acc in self.accuracies():
            if acc >= target:
                return seconds, NAN
        return NAN, NAN

    def step_seconds(self):
        """(measured, modeled) seconds of one training step, evaluations excluded (gradzip report
        adds the measured time outside the steps to the modeled timeline; taken out again here)."""
        steps = number(self.summary.get("steps"))
        measured = number(self.summary.get("step_seconds"))
        if not self.timeline or not steps > 0:
            return measured, NAN
        outside = max(0.0, self.timeline[-1][1] - steps * measured) if measured > 0 else 0.0
        return measured, (self.timeline[-1][2] - outside) / steps

    def comm_per_step(self):
        """(measured, modeled) seconds per step outside the measured compute of worker 0."""
        measured, modeled = self.step_seconds()
        compute = number(self.summary.get("compute_seconds_per_step"))
        return measured - compute, modeled - compute

    def bytes_per_step(self):
        worker_steps = number(self.summary.get("steps")) * number(self.summary.get("workers"))
        if not self.metrics:
            return NAN
        last = self.metrics[-1]
        total = sum(number(last.get(f"{d}_{k}_bytes", 0)) for d in ("up", "down")
                    for k in ("payload", "framing", "tcpip"))
        return total / worker_steps if worker_steps > 0 else NAN

    def staleness_histogram(self):
        hist = Counter()
        for stats in sorted((self.path / "procs").glob("shard*.stats.jsonl")):
            lines = stats.read_text().strip().splitlines()
            if lines:
                for k, v in json.loads(lines[-1]).get("staleness", {}).get("histogram", {}).items():
                    hist[int(k)] += int(v)
        return hist


def load_runs(study):
    runs = []
    for group in sorted(p for p in (study / "runs").iterdir() if p.is_dir()):
        for path in sorted(p for p in group.iterdir() if (p / "summary.json").exists()):
            runs.append(Run(study, group.name, path))
    if not runs:
        sys.exit(f"study_table: no finished runs under {study / 'runs'}")
    return runs


def fmt(v, f="{:.1f}"):
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f.format(v)


def pct_error(measured, modeled):
    return (modeled - measured) / measured * 100 if measured > 0 and not math.isnan(modeled) else NAN


def machine_note(study):
    """One line about the machine from STUDY_DIR/host.json (written by study_finish), or ''."""
    try:
        h = json.loads((study / "host.json").read_text())
    except (OSError, ValueError):
        return ""
    host = (h.get("run_host") or {}).get("host", {})
    return (f"Machine: {host.get('cpu_model', '?')}, {host.get('logical_cores', h.get('nproc', '?'))} cores, "
            f"load average {h.get('loadavg_at_end', '?')} when the study ended (other work shared the cores: "
            f"every time here is from a loaded machine, one seed); the last pass of the study took "
            f"{h.get('seconds', '?')} s (budget {h.get('budget', '?')}).")


def write_tables(study, header, rows, preamble):
    note = machine_note(study)
    preamble = preamble + ("\n\n" + note if note else "")
    with open(study / "report.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    lines = [preamble, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    (study / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plt_module():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, study, name):
    for ext in ("png", "svg"):
        fig.savefig(study / f"{name}.{ext}", dpi=110, bbox_inches="tight")


def config_label(run):
    agg = run.get("aggregation", "ps")
    codec = {"identity": "fp32"}.get(run.get("compressor"), run.get("compressor"))
    down = run.get("downlink", "dense")
    label = f"{agg} {codec}" + (f" down {down}" if down != "dense" else "")
    label += "" if run.get("overlap", "on") == "on" else " (no overlap)"
    return label + ("" if run.summary.get("status") == "complete" else f" [{run.summary.get('status')}]")


def link_study(study, runs):
    targets = (0.80, 0.70)  # 80%: what fp32 reaches in this budget; 70%: what most compressed runs reach
    header = ["target", "link", "configuration", "overlap", "final acc", "bytes/worker/step", "TTA measured s",
              "TTA modeled s", "model error %", "speed-up vs fp32 PS", "speed-up vs fp16 allreduce",
              "step s measured", "compute s/step", "non-compute s/step measured", "comm s/step modeled"]
    by_link = {}
    for r in runs:
        by_link.setdefault(r.link, []).append(r)
    rows = []
    for target in targets:
        for link, group in by_link.items():
            def base(pred):
                hit = [r for r in group if pred(r)]
                return hit[0].tta(target)[0] if hit else NAN
            fp32 = base(lambda r: r.group == "ps-fp32")
            ar16 = base(lambda r: r.group == "allreduce-fp16" and r.get("overlap") == "on")
            for r in sorted(group, key=lambda r: r.tta(target)[0] if not math.isnan(r.tta(target)[0]) else 1e9):
                measured, modeled = r.tta(target)
                step = r.step_seconds()[0]
                comm = r.comm_per_step()
                rows.append([f"{target:.0%}", link_label(link), config_label(r), r.get("overlap", "on"),
                             fmt(r.final_accuracy() * 100, "{:.1f}%"), fmt(r.bytes_per_step() / 1e3, "{:.1f} kB"),
                             fmt(measured), fmt(modeled), fmt(pct_error(measured, modeled), "{:+.1f}"),
                             fmt(fp32 / measured, "{:.2f}x"), fmt(ar16 / measured, "{:.2f}x"), fmt(step, "{:.3f}"),
                             fmt(number(r.summary.get("compute_seconds_per_step")), "{:.3f}"), fmt(comm[0], "{:.3f}"),
                             fmt(comm[1], "{:.3f}")])
    write_tables(study, header, rows,
                 "Link study: time to 80% and to 70% test accuracy (measured wall clock since the start of "
                 "training, evaluations included; modeled = worker 0's measured compute + measured evaluation "
                 "time + the link model's communication, not overlapped). n/a: target not reached.")
    target = targets[0]
    plt = plt_module()
    fig, axes = plt.subplots(1, len(by_link), figsize=(6.5 * len(by_link), 4.5), squeeze=False)
    for ax, (link, group) in zip(axes[0], by_link.items()):
        for r in group:
            pts = [(s, a) for s, a in r.accuracies() if not math.isnan(a)]
            ax.plot([p[0] for p in pts], [p[1] * 100 for p in pts], marker="o", label=config_label(r))
        ax.axhline(target * 100, color="grey", linestyle=":")
        ax.set_title(f"{link_label(link)}, 4 workers (measured)")
        ax.set_xlabel("wall-clock seconds")
        ax.set_ylabel("test accuracy %")
        ax.legend(fontsize=7)
    save(fig, study, "time_to_accuracy")


def straggler_label(run):
    mode = run.get("mode", "sync")
    slack = f" slack {run.get('slack')}" if mode == "ssp" else ""
    return f"{mode}{slack} {run.get('compressor')}"


def straggler_study(study, runs):
    header = ["configuration", "straggler", "status", "final acc", "best acc", "TTA 80% s", "TTA 70% s",
              "wall s (all steps)", "steps/worker", "push staleness mean", "staleness max",
              "staleness histogram (value:pushes)"]
    rows = []
    for r in runs:
        hist = r.staleness_histogram()
        pushes = sum(hist.values())
        mean = sum(k * v for k, v in hist.items()) / pushes if pushes else NAN
        wall = number(r.metrics[-1]["seconds"]) if r.metrics else NAN
        rows.append([straggler_label(r), r.get("straggler", ""), r.summary.get("status", ""),
                     fmt(r.final_accuracy() * 100, "{:.1f}%"), fmt(r.best_accuracy() * 100, "{:.1f}%"),
                     fmt(r.tta(0.80)[0]), fmt(r.tta(0.70)[0]), fmt(wall), fmt(number(r.summary.get("steps")), "{:.0f}"),
                     fmt(mean, "{:.2f}"), max(hist) if hist else "n/a",
                     " ".join(f"{k}:{v}" for k, v in sorted(hist.items())) or "(none recorded)"])
    write_tables(study, header, rows,
                 "Straggler study: time to 80% and 70% test accuracy and wall time of all steps (measured "
                 "wall clock), and the staleness of the pushes the shards applied (procs/shard*.stats.jsonl; "
                 "sync pushes have none). n/a: not reached, or the run failed.")
    plt = plt_module()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.5))
    for i, r in enumerate(runs):  # one colour per run in both panels
        pts = [(s, a) for s, a in r.accuracies() if not math.isnan(a)]
        a1.plot([p[0] for p in pts], [p[1] * 100 for p in pts], marker="o", color=f"C{i}", label=straggler_label(r))
        hist = r.staleness_histogram()
        if hist:
            a2.plot(sorted(hist), [hist[k] for k in sorted(hist)], marker=".", color=f"C{i}", label=straggler_label(r))
    a1.set_xlabel("wall-clock seconds")
    a1.set_ylabel("test accuracy %")
    a1.legend(fontsize=7)
    a2.set_xlabel("staleness (updates since the worker's pull)")
    a2.set_ylabel("pushes")
    a2.set_yscale("log")
    a2.legend(fontsize=7)
    save(fig, study, "straggler")


def scaling_study(study, runs):
    header = ["aggregation", "workers", "images/s measured", "efficiency measured", "images/s modeled",
              "efficiency modeled", "model error %", "step s measured", "step s modeled"]
    rows, curves = [], {}
    points = []
    for r in runs:
        agg = r.summary.get("aggregation", "ps")
        kind = f"PS {r.summary.get('shards')} shard(s)" if agg == "ps" else agg
        workers = int(r.summary.get("workers"))
        batch = number(r.get("batch-size"))
        measured, modeled = r.step_seconds()
        points.append((kind, workers, workers * batch / measured, workers * batch / modeled, measured, modeled))
    single = {k: (m, o) for k, w, m, o, _, _ in points if w == 1}
    for kind, workers, im, io, sm, so in sorted(points):
        m1, o1 = single.get(kind, (NAN, NAN))
        rows.append([kind, workers, fmt(im), fmt(im / (workers * m1), "{:.2f}"), fmt(io),
                     fmt(io / (workers * o1), "{:.2f}"), fmt(pct_error(im, io), "{:+.1f}"),
                     fmt(sm, "{:.3f}"), fmt(so, "{:.3f}")])
        curves.setdefault(kind, []).append((workers, im, io))
    write_tables(study, header, rows,
                 "Scaling: training images/s (evaluations excluded) and efficiency = images/s of N workers / "
                 "(N x images/s of 1 worker), measured and modeled (measured compute + link model).")
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for kind, pts in curves.items():
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{kind} measured")
        ax.plot([p[0] for p in pts], [p[2] for p in pts], linestyle="--", color=line[0].get_color(),
                label=f"{kind} modeled")
    ax.set_xlabel("workers")
    ax.set_ylabel("images/s")
    ax.legend(fontsize=7)
    save(fig, study, "scaling")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("link", "straggler", "scaling"):
        sys.exit(__doc__)
    study = Path(sys.argv[2])
    runs = load_runs(study)
    {"link": link_study, "straggler": straggler_study, "scaling": scaling_study}[sys.argv[1]](study, runs)


if __name__ == "__main__":
    main()
