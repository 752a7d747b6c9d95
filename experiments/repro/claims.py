#!/usr/bin/python3
"""Markdown report of a codec study against published claims, judged against the seed spread.

Reads run directories as `gradzip train` writes them (summary.json, config.ini,
metrics.csv; a folder of run directories is read as all of them). Runs that did not
finish (summary.json status other than "complete") are counted and left out.

Matching is exact. A run's configuration is the compressor its config.ini requested
(`compressor`, with `memory` replacing the memory part when set), its `downlink`
(default dense) and its `aggregation` (default ps): two runs are seeds of one
configuration when the memory name, codec name and the full set of parameters (values
compared as numbers where they are numbers), the downlink and the aggregation are all
equal. A claim names one configuration the same way, so
`ef+topk:k=5` is not "top-k 1%" and `ef+qsgd:bits=4` is not "QSGD 4-bit" (no EF); a run
that spelled out a default (`qsgd:bits=4,bucket=512`) is a different configuration from
`qsgd:bits=4` here, and shows up in the table under its own name. Runs whose other
settings differ (any config.ini key except the seed, where things are written and thread
counts, e.g. epochs or width) are never pooled: each such set is its own row, labelled
with those settings, and a claim that would match more than one row is answered "n/a".
How fast a run went does not split it either (overlap, encode threads, simulated link
delay: same arithmetic, other timing). A key an older binary did not write reads as the
value that meant what that binary did (OLDER_BINARY_DEFAULTS), and the shard layout
(shards, placement) counts only among parameter-server runs (a collective aggregation
has no shards).

Statistics: final test accuracy, mean ± sample standard deviation over seeds. A
difference between two configurations counts only beyond the noise: beyond twice its
standard error, sqrt(s_a^2/n_a + s_b^2/n_b) (with fewer than 2 seeds on either side there
is no noise estimate and the verdict is "inconclusive"). The claims:

  1. QSGD 4-bit (no EF) reaches about the baseline accuracy
     (Alistarh et al. 2017, "QSGD", NeurIPS, sec. 5: 4-bit QSGD matches 32-bit on ResNets).
  2. Error feedback fixes sign compression: scaled sign with EF beats it without EF and
     is close to the baseline (Karimireddy et al. 2019, "Error Feedback Fixes SignSGD",
     ICML, sec. 6).
  3. Top-k at 1% density with EF is close to the baseline
     (Stich et al. 2018, "Sparsified SGD with Memory", NeurIPS; Lin et al. 2018).
  4. DGC at 0.1% density (with EF) keeps the baseline accuracy with an uplink reduction
     in the hundreds (Lin et al. 2018, "Deep Gradient Compression", ICLR, Table 2).
  5. PowerSGD rank 4 reaches about the baseline accuracy (Vogels et al. 2019, "PowerSGD:
     Practical Low-Rank Gradient Compression", NeurIPS, Table 3: rank 4 ~ SGD on CIFAR-10).
  6. Compressing both directions with error feedback on the server keeps the baseline
     accuracy: top-k 1% up and down (Tang et al. 2019, "DoubleSqueeze", ICML) and scaled
     sign up and down (Zheng et al. 2019, "Communication-Efficient Distributed Blockwise
     Momentum SGD with Error-Feedback", NeurIPS).

"Close to the baseline" (identity, dense downlink) holds when even the pessimistic end
of the noise band, gap - 2 SE, is above -tolerance (default 1.0 accuracy points); it
does not hold when the optimistic end, gap + 2 SE, is below -tolerance; otherwise it is
inconclusive. "Beats" holds when gap - 2 SE > 0 and does not when gap + 2 SE < 0.

Bytes are wire bytes of all workers over the whole run (payload + framing + TCP/IP
estimate, from metrics.csv): uplink, and the total up + down (with a dense downlink the
pull of the parameters is most of the traffic); each verdict gives both reductions
against the baseline.

--plot DIR also draws claims_accuracy_vs_bytes.png and .svg there (needs matplotlib): one
point per configuration, final accuracy mean ± standard deviation over seeds against its
uplink bytes and against its total bytes (up + down), log x.

Usage: claims.py --runs DIR... [--figure FILE] [--plot DIR] [--tolerance 1.0]
Exit status 2 with one line on stderr for bad input.
"""

import argparse
import configparser
import math
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "plots"))
import rundir  # noqa: E402  (plots/rundir.py)

BASELINE = "identity"
# config.ini keys that do not change the accuracy or bytes a run measures: the seed,
# paths, logging, process roles, thread counts and timeouts (the compressor and downlink
# are matched separately).
NOT_SETTINGS = {"seed", "run-dir", "checkpoint-dir", "checkpoint-every", "data-dir", "log-level", "role", "rank",
                "endpoints", "bind", "torch-threads", "loader-threads", "encode-threads", "process-timeout",
                "report-links", "collective-timeout", "collective-dir", "collective-host", "overlap",
                "sim-link-delay", "compressor", "memory", "downlink", "aggregation"}
# Keys later binaries added, with the value that means what the binaries before them did.
OLDER_BINARY_DEFAULTS = {"first-bucket-mb": "0", "downlink-resync": "0", "straggler": "", "inject-fault": ""}
# Settings of the parameter-server shards, meaningless under a collective aggregation.
PS_ONLY = {"shards", "placement"}
CLAIMS = [
    {"title": "QSGD 4-bit ≈ baseline", "source": "Alistarh et al. 2017", "close": "qsgd:bits=4"},
    {"title": "EF fixes sign compression", "source": "Karimireddy et al. 2019", "close": "ef+scaled-sign",
     "beats": "scaled-sign"},
    {"title": "top-k 1% + EF ≈ baseline", "source": "Stich et al. 2018", "close": "ef+topk:ratio=0.01"},
    {"title": "DGC 0.1% + EF ≈ baseline", "source": "Lin et al. 2018", "close": "ef+dgc:ratio=0.001"},
    {"title": "PowerSGD rank 4 ≈ baseline", "source": "Vogels et al. 2019", "close": "powersgd:rank=4",
     "aggregation": "powersgd"},
    {"title": "bidirectional top-k 1% + EF ≈ baseline", "source": "Tang et al. 2019", "close": "ef+topk:ratio=0.01",
     "downlink": "ef+topk:ratio=0.01"},
    {"title": "bidirectional scaled sign + EF ≈ baseline", "source": "Zheng et al. 2019", "close": "ef+scaled-sign",
     "downlink": "ef+scaled-sign"},
]


class ClaimsError(Exception):
    pass


def _value(v):
    """Parameter value for comparison: a number when it reads as one ("0.010" == "0.01")."""
    try:
        return repr(float(v))
    except ValueError:
        return v.strip().lower()


def _params(text):
    name, _, params = text.partition(":")
    kv = {}
    for item in filter(None, params.split(",")):
        k, _, v = item.partition("=")
        kv[k.strip()] = _value(v)
    return name.strip(), frozenset(kv.items())


def parse_spec(spec, memory=""):
    """'[memory+]codec[:k=v,...]' (memory overridden by `memory` when not empty) ->
    ((memory name, memory params), (codec name, codec params)), params as frozensets.
    The memory part ends at the last '+' that starts a name (so '1e+30' stays a number)."""
    cuts = [m.start() for m in re.finditer(r"\+(?=[A-Za-z])", spec)]
    mem_text, codec_text = (spec[: cuts[-1]], spec[cuts[-1] + 1:]) if cuts else ("none", spec)
    if memory.strip():
        mem_text = memory
    return _params(mem_text or "none"), _params(codec_text)


def read_config(path):
    """[train] (or the top) keys of a run's config.ini as a dict; {} when missing."""
    cp = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return {}
    try:
        cp.read_string("[__top__]\n" + text)
    except configparser.Error as e:
        raise ClaimsError(f"{path}: not an INI file ({e})") from None
    out = {}
    for section in ("__top__", "common", "train"):
        if cp.has_section(section):
            out.update(cp.items(section))
    return out


def run_paths(paths):
    found = []
    for p in paths:
        if os.path.isfile(os.path.join(p, "summary.json")):
            found.append(p)
        elif os.path.isdir(p):
            found.extend(os.path.join(p, d) for d in sorted(os.listdir(p))
                         if os.path.isfile(os.path.join(p, d, "summary.json")))
        else:
            raise ClaimsError(f"{p}: not a directory")
    if not found:
        raise ClaimsError("no run directories (with summary.json) under " + ", ".join(paths))
    return found


def _status(path):
    """summary.json's "status" ("complete" when it has none)."""
    try:
        return str(rundir.read_json_object(os.path.join(path, "summary.json")).get("status", "complete"))
    except rundir.RunDirError as e:
        raise ClaimsError(str(e)) from None


def load(paths):
    """Configurations {key: group} and the number of unfinished runs."""
    runs, unfinished = [], 0
    for path in run_paths(paths):
        if _status(path) != "complete":  # still running, failed or killed: metrics may be empty
            unfinished += 1
            continue
        try:
            run = rundir.Run(path)
        except rundir.RunDirError as e:
            raise ClaimsError(str(e)) from None
        runs.append((run, read_config(os.path.join(path, "config.ini"))))
    if not runs:
        raise ClaimsError("no finished run among " + ", ".join(paths))
    # Settings that differ between runs (other than the compressor) split configurations.
    settings_of = [_settings(cfg) for _, cfg in runs]
    varying = sorted(k for k in {k for s in settings_of for k in s}
                     if len({s.get(k, "") for s in settings_of if k in s or k not in PS_ONLY}) > 1)
    groups = {}
    for (run, cfg), own in zip(runs, settings_of):
        requested = cfg.get("compressor") or run.compressor
        downlink = cfg.get("downlink") or "dense"
        aggregation = cfg.get("aggregation") or "ps"
        settings = tuple((k, own.get(k, "")) for k in varying if k in own)  # PS_ONLY keys: not a collective's
        key = (parse_spec(requested, cfg.get("memory", "")),
               "dense" if downlink == "dense" else parse_spec(downlink), aggregation, settings)
        label = requested + ("" if downlink == "dense" else f" (downlink {downlink})")
        label += "" if aggregation == "ps" else f" (aggregation {aggregation})"
        if settings:
            label += " [" + ", ".join(f"{k}={v}" for k, v in settings) + "]"
        g = groups.setdefault(key, {"label": label, "acc": [], "up": [], "total": []})
        acc = run.summary.get("final_test_accuracy")
        g["acc"].append(100.0 * acc if isinstance(acc, (int, float)) else math.nan)
        g["up"].append(run.bytes_sent(("up",))[-1])
        g["total"].append(run.bytes_sent(("up", "down"))[-1])
    return groups, unfinished


def _settings(cfg):
    """The config.ini keys of a run that split configurations (see the module docstring)."""
    collective = (cfg.get("aggregation") or "ps") != "ps"
    own = dict(OLDER_BINARY_DEFAULTS)
    own.update(cfg)
    return {k: v for k, v in own.items() if k not in NOT_SETTINGS and not (collective and k in PS_ONLY)}


def stats(g):
    accs = [a for a in g["acc"] if not math.isnan(a)]
    return {
        "label": g["label"], "n": len(accs),
        "mean": statistics.mean(accs) if accs else math.nan,
        "std": statistics.stdev(accs) if len(accs) > 1 else math.nan,
        "up": statistics.mean(g["up"]), "total": statistics.mean(g["total"]),
    }


class Ambiguous(Exception):
    """More than one configuration (differing in other settings) matches a spec."""


def find(groups, spec, downlink="dense", aggregation="ps"):
    """Stats of the configuration `spec` with that downlink and aggregation, exactly;
    None if not run. Raises Ambiguous when runs of it differ in other settings."""
    down_key = "dense" if downlink == "dense" else parse_spec(downlink)
    matches = [g for (spec_key, down, agg, _), g in groups.items()
               if spec_key == parse_spec(spec) and down == down_key and agg == aggregation]
    if len(matches) > 1:
        raise Ambiguous(f"`{spec}` was run with different settings: " + ", ".join(f"`{g['label']}`" for g in matches))
    return stats(matches[0]) if matches else None


def gap(a, b):
    """(a.mean - b.mean, noise band = 2 standard errors of the difference, or None)."""
    d = a["mean"] - b["mean"]
    if a["n"] < 2 or b["n"] < 2:
        return d, None
    return d, 2.0 * math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])


def judge_close(g, base, tol):
    """('holds'|'does not hold'|'inconclusive'|'n/a', text) for "g is within tol of base"."""
    d, band = gap(g, base)
    if band is None:
        return "inconclusive", f"{d:+.2f} pts vs baseline (fewer than 2 seeds: no noise estimate)"
    text = f"{d:+.2f} ± {band:.2f} pts vs baseline"
    if d - band >= -tol:
        return "holds", text
    if d + band < -tol:
        return "does not hold", text
    return "inconclusive", text + f" (noise band reaches past -{tol:g})"


def judge_beats(a, b):
    d, band = gap(a, b)
    if band is None:
        return "inconclusive", f"{d:+.2f} pts (fewer than 2 seeds: no noise estimate)"
    text = f"{d:+.2f} ± {band:.2f} pts"
    if d - band > 0:
        return "holds", text
    if d + band < 0:
        return "does not hold", text
    return "inconclusive", text + " (within the noise)"


def verdict(claim, groups, base, tol):
    """(measured text, verdict text) of one claim; `base` is the baseline's stats, None
    when not run, or the Ambiguous error when its runs differ in settings."""
    specs = [claim["close"]] + ([claim["beats"]] if "beats" in claim else [])
    try:
        if isinstance(base, Ambiguous):
            raise base
        found = {s: find(groups, s, claim.get("downlink", "dense") if s == claim["close"] else "dense",
                         claim.get("aggregation", "ps") if s == claim["close"] else "ps") for s in specs}
    except Ambiguous as e:
        return "runs not comparable", f"n/a ({e})"
    missing = ([f"`{s}`{_how(claim) if s == claim['close'] else ''}" for s in specs if found[s] is None] +
               ([f"`{BASELINE}`"] if base is None else []))
    measured = "; ".join(f"`{s}`{_how(claim) if s == claim['close'] else ''} {fmt(found[s])}" for s in specs)
    if missing:
        return measured, "n/a (not run: " + ", ".join(missing) + ")"
    parts = [judge_close(found[claim["close"]], base, tol)]
    if "beats" in claim:
        v, text = judge_beats(found[claim["close"]], found[claim["beats"]])
        parts.insert(0, (v, f"over `{claim['beats']}` {text}"))
    outcomes = [v for v, _ in parts]
    overall = ("does not hold" if "does not hold" in outcomes else
               "holds" if all(v == "holds" for v in outcomes) else "inconclusive")
    g = found[claim["close"]]
    detail = "; ".join(t for _, t in parts)
    if base["up"] > 0 and g["up"] > 0 and g["total"] > 0:
        detail += (f"; uplink {base['up'] / g['up']:.0f}x, total (up + down) {base['total'] / g['total']:.1f}x "
                   "smaller than the baseline's")
    return measured, f"**{overall}** ({detail})"


def _how(claim):
    """' (downlink X, aggregation Y)' for a claim that is not a PS run with a dense downlink."""
    parts = [f"downlink `{claim['downlink']}`"] if "downlink" in claim else []
    parts += [f"aggregation `{claim['aggregation']}`"] if "aggregation" in claim else []
    return f" ({', '.join(parts)})" if parts else ""


def fmt(g):
    if g is None:
        return "not run"
    std = f"{g['std']:.2f}" if not math.isnan(g["std"]) else "n/a"
    return f"{g['mean']:.2f} ± {std} % ({g['n']} seed{'s' if g['n'] != 1 else ''})"


def report(groups, unfinished, figure, tol):
    try:
        base = find(groups, BASELINE)
    except Ambiguous as e:
        base = e
    out = ["# Codec study: accuracy against bytes, and the published claims\n",
           "Final test accuracy, mean ± standard deviation over seeds. Runs are matched to a claim by "
           "exact configuration (memory, codec, every parameter, downlink, aggregation). A difference counts only "
           "beyond the noise, 2 standard errors of the difference; 'close to the baseline' means within "
           f"{tol:g} accuracy points even at the pessimistic end of that band. Bytes: wire bytes of all "
           "workers per run (payload + framing + TCP/IP estimate), mean over seeds.\n"]
    if figure:
        out.append(f"![accuracy vs bytes]({figure})\n")
    out.append("| configuration | seeds | final accuracy | uplink MB | total MB (up + down) | uplink vs baseline |")
    out.append("|---|---:|---|---:|---:|---:|")
    for key in sorted(groups, key=lambda k: groups[k]["label"]):
        g = stats(groups[key])
        rel = f"{base['up'] / g['up']:.1f}x" if isinstance(base, dict) and g["up"] > 0 else "n/a"
        out.append(f"| `{g['label']}` | {g['n']} | {fmt(g)} | {g['up'] / 1e6:.1f} | {g['total'] / 1e6:.1f} | {rel} |")
    if unfinished:
        out.append(f"\n{unfinished} unfinished run(s) left out.")
    out.append("\n| claim (source) | measured | verdict |\n|---|---|---|")
    for claim in CLAIMS:
        measured, v = verdict(claim, groups, base, tol)
        baseline = fmt(base) if not isinstance(base, Ambiguous) else "not comparable"
        out.append(f"| {claim['title']} ({claim['source']}) | {measured}; baseline {baseline} | {v} |")
    return "\n".join(out)


def plot(groups, out):
    """claims_accuracy_vs_bytes.{png,svg} in `out` (see the module docstring); their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker
    rows = sorted((stats(g) for g in groups.values()), key=lambda g: g["label"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True)
    markers = "osD^v<>pPX*h"
    for ax, key, what in ((axes[0], "up", "uplink"), (axes[1], "total", "up + down")):
        for i, g in enumerate(rows):
            ax.errorbar(g[key] / 1e6, g["mean"], yerr=0 if math.isnan(g["std"]) else g["std"], marker=markers[i % len(markers)],
                        color=f"C{i % 10}", capsize=3, linestyle="none", label=f"{g['label']} ({g['n']})")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(f"{what} MB per run, all workers (log scale)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("final test accuracy (%), mean ± std over seeds")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="configuration (seeds)",
                   title_fontsize=7)
    fig.suptitle("Codec study: accuracy against bytes")
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f"claims_accuracy_vs_bytes.{ext}") for ext in ("png", "svg")]
    for p in paths:
        fig.savefig(p, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return paths


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", required=True, help="run directories, or folders of them")
    p.add_argument("--figure", default="", help="figure to show above the tables (path relative to the report)")
    p.add_argument("--tolerance", type=float, default=1.0, help="accuracy points that count as 'close'")
    p.add_argument("--plot", default="", help="folder for claims_accuracy_vs_bytes.png/.svg (matplotlib)")
    a = p.parse_args(argv)
    try:
        groups, unfinished = load(a.runs)
    except ClaimsError as e:
        print(f"claims: {e}", file=sys.stderr)
        return 2
    print(report(groups, unfinished, a.figure, a.tolerance))
    if a.plot:
        try:
            for path in plot(groups, a.plot):
                print(path, file=sys.stderr)
        except ImportError:
            print("claims: --plot needs matplotlib (Debian: python3-matplotlib)", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"claims: --plot {a.plot}: {e.strerror}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
