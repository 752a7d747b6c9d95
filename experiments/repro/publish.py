#!/usr/bin/python3
"""Publishes a finished (or partly finished) study into experiments/results/<study>/.

Reads a study folder as the repro scripts write it (OUT/runs/<run>/ with summary.json,
config.ini, metrics.csv, host.json; OUT/report/ with report.md, report.csv, figures and
the claims report) and writes to DEST:

  report.md, report.csv, *.png, *.svg, *.csv  copied from OUT/report/
  <claims>.md                                  the claims report (--claims, default codec_study.md)
  runs/<run>/summary.json, config.ini, metrics.csv   of every complete run (small files;
                                               logs, checkpoints and events stay behind)
  host.json   the machine (CPU, cores, memory, OS, from the runs' host.json), each gradzip
              build that ran runs (revision, compiler, CUDA, torch; how many runs), how
              many runs completed and are still missing, the wall-clock and load notes
  command.txt the exact command(s) that produced the study (--command, one per line)
  README.md   --title, the machine line, the command, n of N runs, the figure (--figure),
              the claims table of the claims report, and links to every file above

Usage: publish.py --study OUT --dest DEST --title TEXT --command TEXT [--command TEXT]
       [--expected N] [--wall-clock TEXT] [--note TEXT] [--claims codec_study.md]
       [--figure claims_accuracy_vs_bytes.png]
Exit status 2 with one line on stderr for bad input.
"""

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plots"))
import rundir  # noqa: E402  (plots/rundir.py)

RUN_FILES = ("summary.json", "config.ini", "metrics.csv")
REPORT_EXTS = (".md", ".csv", ".png", ".svg")


class PublishError(Exception):
    pass


def read_json(path):
    try:
        return rundir.read_json_object(path)
    except rundir.RunDirError as e:
        raise PublishError(str(e)) from None


def runs_of(study):
    """(complete run dirs, number of run dirs not complete), sorted by name."""
    root = os.path.join(study, "runs")
    if not os.path.isdir(root):
        raise PublishError(f"{root}: not a directory")
    complete, other = [], 0
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not os.path.isfile(os.path.join(path, "summary.json")):
            continue  # logs/ and the like
        if read_json(os.path.join(path, "summary.json")).get("status", "complete") == "complete":
            complete.append(path)
        else:
            other += 1
    return complete, other


def host_facts(runs):
    """The machine (must be one) and the builds that ran the runs."""
    machines, builds = {}, {}
    for path in runs:
        host = read_json(os.path.join(path, "host.json"))
        machine = host.get("host", {})
        key = json.dumps(machine, sort_keys=True)
        machines.setdefault(key, machine)
        build = dict(host.get("build", {}), torch_version=host.get("torch_version", ""))
        entry = builds.setdefault(json.dumps(build, sort_keys=True), dict(build, runs=[]))
        entry["runs"].append(os.path.basename(path))
    return list(machines.values()), list(builds.values())


def claims_table(text):
    """The lines of the claims table (header '| claim' to the table's end)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| claim"):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            return lines[i:end]
    return []


def machine_line(machine):
    mem = machine.get("memory_bytes", 0) / 2**30
    return (f"{machine.get('cpu_model', '?')}, {machine.get('logical_cores', '?')} logical cores, "
            f"{mem:.1f} GiB memory, {machine.get('os', '?')}")


def publish(a):
    runs, missing_here = runs_of(a.study)
    if not runs:
        raise PublishError(f"no complete run under {a.study}/runs")
    machines, builds = host_facts(runs)
    report_dir = os.path.join(a.study, "report")
    if not os.path.isdir(report_dir):
        raise PublishError(f"{report_dir}: not a directory (render the report first)")
    os.makedirs(a.dest, exist_ok=True)
    copied = []
    for name in sorted(os.listdir(report_dir)):
        if name.endswith(REPORT_EXTS) and os.path.isfile(os.path.join(report_dir, name)):
            shutil.copyfile(os.path.join(report_dir, name), os.path.join(a.dest, name))
            copied.append(name)
    if a.claims not in copied:
        raise PublishError(f"{report_dir}/{a.claims}: missing (the claims report)")
    shutil.rmtree(os.path.join(a.dest, "runs"), ignore_errors=True)
    for path in runs:
        target = os.path.join(a.dest, "runs", os.path.basename(path))
        os.makedirs(target)
        for f in RUN_FILES:
            if os.path.isfile(os.path.join(path, f)):
                shutil.copyfile(os.path.join(path, f), os.path.join(target, f))
    expected = a.expected or len(runs) + missing_here
    host = {"machine": machines[0] if len(machines) == 1 else machines, "builds": builds,
            "runs_complete": len(runs), "runs_expected": expected, "wall_clock": a.wall_clock, "notes": a.note,
            "command": a.command}
    with open(os.path.join(a.dest, "host.json"), "w", encoding="utf-8") as f:
        json.dump(host, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(a.dest, "command.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(a.command) + "\n")
    with open(os.path.join(a.dest, a.claims), encoding="utf-8") as f:
        table = claims_table(f.read())
    out = [f"# {a.title}\n"]
    if len(runs) < expected:
        out.append(f"**Partial: {len(runs)} of {expected} runs finished**; the tables cover those runs only.\n")
    else:
        out.append(f"All {expected} runs finished.\n")
    out.append("Machine: " + "; ".join(machine_line(m) for m in machines) + ". Builds: " +
               "; ".join(f"gradzip {b.get('git_revision', '?')} ({b.get('compiler', '?')}, torch "
                         f"{b.get('torch_version', '?')}) for {len(b['runs'])} runs" for b in builds) + ".\n")
    if a.wall_clock:
        out.append("Wall-clock: " + "; ".join(a.wall_clock) + ".\n")
    for note in a.note:
        out.append(note + "\n")
    out.append("Command:\n\n```\n" + "\n".join(a.command) + "\n```\n")
    if a.figure:
        out.append(f"![accuracy against bytes]({a.figure})\n")
    if table:
        out.append("\n".join(table) + "\n")
    out.append("Files: " + ", ".join(f"[{n}]({n})" for n in copied) +
               ", [host.json](host.json), [command.txt](command.txt), [runs/](runs/) "
               f"({', '.join(RUN_FILES)} of each complete run).")
    with open(os.path.join(a.dest, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return len(runs), expected


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--study", required=True, help="study folder (runs/ and report/)")
    p.add_argument("--dest", required=True, help="results folder, e.g. experiments/results/codec_study")
    p.add_argument("--title", required=True, help="README title")
    p.add_argument("--command", action="append", required=True, help="a command that produced the study")
    p.add_argument("--expected", type=int, default=0, help="runs the study has (default: run dirs found)")
    p.add_argument("--wall-clock", action="append", default=[], help="a wall-clock line (repeatable)")
    p.add_argument("--note", action="append", default=[], help="a note line for README and host.json")
    p.add_argument("--claims", default="codec_study.md", help="the claims report in report/")
    p.add_argument("--figure", default="claims_accuracy_vs_bytes.png", help="figure shown in README ('' none)")
    a = p.parse_args(argv)
    try:
        done, expected = publish(a)
    except PublishError as e:
        print(f"publish: {e}", file=sys.stderr)
        return 2
    print(f"published {done} of {expected} runs to {a.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
