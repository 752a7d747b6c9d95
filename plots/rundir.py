"""Reading gradzip run directories for the plot scripts (standard library only).

A run directory (written by `gradzip train`, format in experiments/report.h) holds
  summary.json  compressor, workers, shards, parameters, stages {stage: seconds}, ...
  metrics.csv   one row per evaluation: step, seconds, test_accuracy and cumulative
                byte counters up_/down_{payload,framing,tcpip}_bytes (all workers).
Bad input raises RunDirError with the file and what is wrong.
"""

import csv
import json
import math
import os


class RunDirError(Exception):
    """A run directory that cannot be read; the message names the file."""


def _number(text, where):
    if text is None or text == "" or text.lower() == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise RunDirError(f"{where}: '{text}' is not a number") from None


def read_json_object(path):
    """The JSON object in file `path`; RunDirError naming the file when it cannot be read,
    is not JSON or is not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise RunDirError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: not JSON ({e})") from None
    if not isinstance(value, dict):
        raise RunDirError(f"{path}: needs a JSON object")
    return value


class Run:
    """One run directory: summary fields and metric rows (lists of floats per column)."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(os.path.normpath(path))
        summary_path = os.path.join(path, "summary.json")
        self.summary = read_json_object(summary_path)
        if "compressor" not in self.summary:
            raise RunDirError(f"{summary_path}: needs an object with \"compressor\"")
        self.compressor = str(self.summary["compressor"])
        # A collective aggregation (e.g. powersgd) names its method in aggregation_spec.
        if self.summary.get("aggregation", "ps") != "ps" and self.summary.get("aggregation_spec"):
            self.compressor = str(self.summary["aggregation_spec"])
        self.downlink = str(self.summary.get("downlink", "dense"))
        self.workers = int(self.summary.get("workers", 1))
        metrics_path = os.path.join(path, "metrics.csv")
        try:
            with open(metrics_path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise RunDirError(f"{metrics_path}: {e.strerror}") from None
        if not rows:
            raise RunDirError(f"{metrics_path}: no rows")
        for needed in ("step", "seconds", "test_accuracy", "up_payload_bytes", "down_payload_bytes"):
            if needed not in rows[0]:
                raise RunDirError(f"{metrics_path}: no column '{needed}'")
        self.columns = {}
        for key in rows[0]:
            self.columns[key] = [
                _number(r[key], f"{metrics_path}:{i + 2} column {key}") for i, r in enumerate(rows)
            ] if key not in ("codec", "compressor", "note") else [r[key] for r in rows]
        acc = self.columns["test_accuracy"]
        if any(a > 1.0 + 1e-9 for a in acc if not math.isnan(a)):
            self.columns["test_accuracy"] = [a / 100.0 for a in acc]

    def col(self, key, default=0.0):
        """Column `key` as floats: NaN (empty cell) in test_accuracy marks "not evaluated"
        and is kept; elsewhere an empty cell or a missing column reads as `default`."""
        if key not in self.columns:
            return [default] * len(self.columns["step"])
        if key == "test_accuracy":
            return list(self.columns[key])
        return [default if isinstance(v, float) and math.isnan(v) else v for v in self.columns[key]]

    def bytes_sent(self, directions=("up",)):
        """Cumulative bytes on the wire, all workers (payload + framing + TCP/IP), summed
        over `directions` ("up": what the workers sent; add "down" for both ways)."""
        total = [0.0] * len(self.columns["step"])
        for d in directions:
            for part in ("payload", "framing", "tcpip"):
                for i, v in enumerate(self.col(f"{d}_{part}_bytes")):
                    total[i] += v
        return total

    def bytes_per_worker_step(self):
        """(up, down) mean bytes per worker per step over the whole run."""
        steps = self.col("step")[-1] * self.workers
        if steps <= 0:
            return (math.nan, math.nan)
        out = []
        for d in ("up", "down"):
            out.append(sum(self.col(f"{d}_{p}_bytes")[-1] for p in ("payload", "framing", "tcpip")) / steps)
        return tuple(out)


def load_runs(paths):
    """Loads every run directory; raises RunDirError on the first bad one."""
    if not paths:
        raise RunDirError("no run directories given")
    return [Run(p) for p in paths]


def label(run):
    """Legend label: the compressor spec up to its first parameter, without "none+"
    ("ef+qsgd:bits=4,bucket=512,norm=l2" -> "ef+qsgd:bits=4"), and a compressed
    downlink the same way (" down ef+topk:ratio=0.01")."""
    def short(spec):
        spec = spec.split(",")[0]
        return spec[len("none+"):] if spec.startswith("none+") else spec
    return short(run.compressor) + ("" if run.downlink == "dense" else " down " + short(run.downlink))
