#!/usr/bin/env python3
"""Renders pushbench results (one JSON file per scenario run) into a Markdown report with a
PNG chart of latency percentiles against offered rate.

    report.py RESULTS_DIR --out bench/REPORT.md

Several rounds of one (target, scenario, binary) are folded into medians. With two binaries
(labels) the report adds a table of ratios, the second label over the first (the base).
`RESULTS_DIR/analysis.md`, if present, is appended verbatim (hand-written findings).
"""

import argparse
import glob
import json
import os
import statistics
import sys
from collections import OrderedDict, defaultdict


def load(results_dir):
    runs = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path) as f:
            r = json.load(f)
        r["_file"] = os.path.basename(path)
        # One cluster run per store (FerretDB on PostgreSQL, on SQLite…): keep them apart.
        if r["target"] == "cluster":
            r["target"] = f"cluster {r['store']}"
        runs.append(r)
    if not runs:
        sys.exit(f"no results in {results_dir}")
    return runs


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def get(d, path):
    for k in path.split("."):
        if d is None:
            return None
        d = d.get(k)
    return d


def labels_of(runs):
    seen = OrderedDict()
    for r in sorted(runs, key=lambda r: (r["round"], r["unix_time"])):
        seen.setdefault(r["label"], None)
    return list(seen)


def group(runs):
    """(target, scenario, label) -> list of runs."""
    g = defaultdict(list)
    for r in runs:
        g[(r["target"], r["scenario"], r["label"])].append(r)
    return g


def phase_medians(runs, name, paths):
    """Median over rounds of each metric path, for phase `name`."""
    phases = [p for r in runs for p in r["phases"] if p["name"] == name]
    return {k: median([get(p, k) for p in phases]) for k in paths}, len(phases)


def fmt(v, digits=1, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:,.{digits}f}{unit}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


PHASE_METRICS = [
    "offered_rate", "msgs_per_s", "deliveries_per_s", "accepted", "delivered",
    "latency.p50_ms", "latency.p90_ms", "latency.p99_ms", "latency.p999_ms", "latency.max_ms",
    "accept_latency.p50_ms", "accept_latency.p99_ms",
    "last_delivery.p50_ms", "last_delivery.max_ms",
    "server_cpu_us_per_msg", "server_cpu_us_per_delivery", "server_cores",
    "gen_cpu_us_per_msg", "gen_cpu_us_per_delivery", "mongo_commands_per_msg",
    "pushd_cpu_us_per_msg", "pushd_cpu_us_per_delivery", "store_commands_per_msg",
]


def phase_names(runs):
    names = OrderedDict()
    for r in runs:
        for p in r["phases"]:
            if not p["warmup"]:
                names.setdefault(p["name"], None)
    return list(names)


def idle_section(g, labels):
    rows = []
    for (target, scenario, label), runs in sorted(g.items()):
        if scenario != "idle":
            continue
        c = lambda k: median([get(r["connect"], k) for r in runs])
        rows.append([
            target, label, len(runs), fmt(c("connections"), 0),
            fmt(c("connects_per_s"), 0), f"**{fmt(c('rss_per_conn_bytes'), 0)}**",
            fmt(c("server_cpu_us_per_conn"), 0), fmt(c("gen_cpu_us_per_conn"), 0),
            fmt(c("idle_server_cpu_us_per_conn_min"), 2),
        ])
    if not rows:
        return ""
    return "## Idle connections\n\n" + table(
        ["target", "binary", "rounds", "connections", "connects/s",
         "server RSS / connection (bytes)", "server CPU / connect (µs)",
         "generator CPU / connect (µs)", "idle server CPU (µs / conn / min)"], rows) + "\n"


def unicast_section(g):
    rows = []
    for (target, scenario, label), runs in sorted(g.items()):
        if scenario != "unicast":
            continue
        for name in phase_names(runs):
            m, n = phase_medians(runs, name, PHASE_METRICS)
            rows.append([
                target, label, name, fmt(m["offered_rate"], 0), f"**{fmt(m['msgs_per_s'], 0)}**",
                fmt(m["latency.p50_ms"], 2), fmt(m["latency.p90_ms"], 2),
                f"**{fmt(m['latency.p99_ms'], 2)}**", fmt(m["latency.p999_ms"], 2),
                fmt(m["latency.max_ms"], 1), fmt(m["accept_latency.p50_ms"], 2),
                f"**{fmt(m['server_cpu_us_per_msg'], 1)}**", fmt(m["server_cores"], 2),
                fmt(m["gen_cpu_us_per_msg"], 1), fmt(m["mongo_commands_per_msg"], 2),
            ])
    if not rows:
        return ""
    return "## Unicast (single-message `POST /v1/messages`, random connected users)\n\n" + table(
        ["target", "binary", "phase", "offered msgs/s", "msgs/s (end to end)", "p50 ms",
         "p90 ms", "p99 ms", "p99.9 ms", "max ms", "202 p50 ms", "server CPU µs/msg",
         "server cores", "generator CPU µs/msg", "Mongo cmds/msg"], rows) + "\n"


def fanout_section(g):
    rows = []
    for (target, scenario, label), runs in sorted(g.items()):
        if scenario != "fanout":
            continue
        for name in phase_names(runs):
            m, n = phase_medians(runs, name, PHASE_METRICS)
            rows.append([
                target, label, name.removeprefix("fanout-"), fmt(m["accepted"], 0),
                f"**{fmt(m['deliveries_per_s'], 0)}**", fmt(m["latency.p50_ms"], 1),
                fmt(m["latency.p99_ms"], 1), f"**{fmt(m['last_delivery.p50_ms'], 1)}**",
                fmt(m["last_delivery.max_ms"], 1), fmt(m["accept_latency.p50_ms"], 1),
                f"**{fmt(m['server_cpu_us_per_delivery'], 2)}**", fmt(m["server_cores"], 2),
                fmt(m["gen_cpu_us_per_delivery"], 2), fmt(m["mongo_commands_per_msg"], 1),
            ])
    if not rows:
        return ""
    return "## Fan-out (one message to many connected users)\n\n" + table(
        ["target", "binary", "recipients × payload bytes", "messages", "deliveries/s",
         "p50 ms", "p99 ms", "last device p50 ms", "last device max ms", "202 p50 ms",
         "server CPU µs/delivery", "server cores", "generator CPU µs/delivery",
         "Mongo cmds/msg"], rows) + "\n"


def cluster_section(g):
    out = []
    for (target, scenario, label), runs in sorted(g.items()):
        if not target.startswith("cluster") or scenario == "idle":
            continue
        r = runs[0]
        for p in r["phases"]:
            if p["warmup"]:
                continue
            cpu = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(
                p["server_cpu_by_process"].items(), key=lambda kv: -kv[1]))
            cmds = ", ".join(f"{k} {v}" for k, v in sorted(
                (p["mongo_commands"] or p.get("store_commands", {})).items(),
                key=lambda kv: -kv[1]))
            stages = ", ".join(
                f"{k} {v['mean_ms']:.2f} ms × {v['count']}"
                for k, v in sorted(p["stages"].items(), key=lambda kv: -kv[1]["total_s"]))
            out.append(f"- **{scenario} {p['name']}** [{label}, round {r['round']}]: "
                       f"{p['accepted']} accepted; server CPU {cpu}; MongoDB commands {cmds or '—'}; "
                       f"stages (mean × count) {stages or '—'}")
    if not out:
        return ""
    return ("## Cluster: where the time and the CPU go\n\n"
            "Per phase: CPU seconds by process, MongoDB commands by name (from the driver's "
            "command events, `pushd_mongo_commands_total`; for a pushd without that counter, "
            "what FerretDB received), and `pushd_stage_seconds` means.\n\n"
            + "\n".join(out) + "\n")


def compare_section(g, labels):
    if len(labels) < 2:
        return ""
    base, new = labels[0], labels[1]
    keys = [("msgs_per_s", "msgs/s"), ("deliveries_per_s", "deliveries/s"),
            ("latency.p50_ms", "p50"), ("latency.p99_ms", "p99"),
            ("server_cpu_us_per_msg", "server CPU/msg"),
            ("server_cpu_us_per_delivery", "server CPU/delivery"),
            ("mongo_commands_per_msg", "Mongo cmds/msg")]
    rows = []
    for (target, scenario, label), runs in sorted(g.items()):
        if label != base or scenario == "idle":
            continue
        other = g.get((target, scenario, new))
        if not other:
            continue
        for name in phase_names(runs):
            a, _ = phase_medians(runs, name, [k for k, _ in keys])
            b, _ = phase_medians(other, name, [k for k, _ in keys])
            ratio = lambda k: (b[k] / a[k]) if a[k] and b[k] is not None else None
            rows.append([target, f"{scenario} {name}"] + [fmt(ratio(k), 2, "×") for k, _ in keys])
    for (target, scenario, label), runs in sorted(g.items()):
        if label != base or scenario != "idle" or not g.get((target, scenario, new)):
            continue
        a = median([r["connect"]["rss_per_conn_bytes"] for r in runs])
        b = median([r["connect"]["rss_per_conn_bytes"] for r in g[(target, scenario, new)]])
        rows.append([target, "idle RSS/connection", fmt(b / a if a else None, 2, "×")] +
                    ["" for _ in keys[1:]])
    return (f"## Comparison: `{new}` / `{base}` (same run, medians)\n\n"
            "Above 1× is more: good for rates, bad for latency, CPU and commands.\n\n"
            + table(["target", "phase"] + [t for _, t in keys], rows) + "\n")


def versus_section(g, labels):
    """Base and new medians side by side: the headline rate of every phase, pushd's CPU per
    message (per delivery for fan-out) and the store's commands per message."""
    if len(labels) < 2:
        return ""
    base, new = labels[0], labels[1]
    rows = []
    for (target, scenario, label), runs in sorted(g.items()):
        other = g.get((target, scenario, new))
        if label != base or not other:
            continue
        if scenario == "idle":
            a = median([r["connect"]["rss_per_conn_bytes"] for r in runs])
            b = median([r["connect"]["rss_per_conn_bytes"] for r in other])
            ca = median([r["connect"]["server_cpu_us_per_conn"] for r in runs])
            cb = median([r["connect"]["server_cpu_us_per_conn"] for r in other])
            rows.append([target, "idle: server RSS bytes/connection",
                         len(runs), len(other), fmt(a, 0), fmt(b, 0),
                         fmt(b / a if a else None, 2, "×"),
                         f"{fmt(ca, 0)} / {fmt(cb, 0)} per connect", "—"])
            continue
        fan = scenario == "fanout"
        rate = "deliveries_per_s" if fan else "msgs_per_s"
        cpu = "pushd_cpu_us_per_delivery" if fan else "pushd_cpu_us_per_msg"
        keys = [rate, cpu, "store_commands_per_msg", "latency.p50_ms", "latency.p99_ms"]
        for name in phase_names(runs):
            a, na = phase_medians(runs, name, keys)
            b, nb = phase_medians(other, name, keys)
            ratio = (b[rate] / a[rate]) if a[rate] and b[rate] is not None else None
            what = f"{scenario} {name}: " + ("deliveries/s" if fan else "msgs/s")
            rows.append([
                target, what, na, nb, fmt(a[rate], 0), fmt(b[rate], 0),
                f"**{fmt(ratio, 2, '×')}**", f"{fmt(a[cpu], 2)} / {fmt(b[cpu], 2)}",
                f"{fmt(a['store_commands_per_msg'], 2)} / {fmt(b['store_commands_per_msg'], 2)}",
            ])
            rows.append(["", f"{scenario} {name}: p50 / p99 ms", "", "",
                         f"{fmt(a['latency.p50_ms'], 2)} / {fmt(a['latency.p99_ms'], 2)}",
                         f"{fmt(b['latency.p50_ms'], 2)} / {fmt(b['latency.p99_ms'], 2)}",
                         "", "", ""])
    if not rows:
        return ""
    return (f"## `{base}` against `{new}` (same run, alternating, medians)\n\n"
            "CPU is pushd's own (utime + stime of the pushd processes) per accepted message, "
            "per delivery for fan-out; commands are those FerretDB received per accepted "
            "message (driver heartbeats included).\n\n"
            + table(["target", "figure", f"{base} runs", f"{new} runs",
                     f"{base} median", f"{new} median", "ratio",
                     f"pushd CPU µs {base} / {new}", f"store cmds/msg {base} / {new}"], rows)
            + "\n")


def profile_section(runs):
    out = []
    for r in runs:
        for p in r["phases"]:
            if not p.get("profile"):
                continue
            lines = [f"| {pct:.1f} % | `{sym}` |" for pct, sym in p["profile"][:20]]
            out.append(f"### {r['target']} {r['scenario']} {p['name']} [{r['label']}]\n\n"
                       f"Share of the server's CPU samples (perf, cpu-clock, self time):\n\n"
                       "| share | where (DSO, function) |\n|---|---|\n" + "\n".join(lines) + "\n")
    if not out:
        return ""
    return "## Profiles\n\n" + "\n".join(out)


def chart(runs, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no chart (make bench installs it in a venv)", file=sys.stderr)
        return False
    series = defaultdict(list)
    for r in runs:
        if r["scenario"] != "unicast":
            continue
        for p in r["phases"]:
            if p["warmup"]:
                continue
            rate = p["offered_rate"] or p["msgs_per_s"]
            series[(r["target"], r["label"])].append((rate, p["latency"], p["pace"]))
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"p50_ms": "-", "p99_ms": "--", "p999_ms": ":"}
    for (target, label), pts in sorted(series.items()):
        pts.sort(key=lambda t: t[0])
        for key, style in styles.items():
            ax.plot([p[0] for p in pts], [max(p[1][key], 0.01) for p in pts], style, marker="o",
                    label=f"{target} {label} {key.removesuffix('_ms').replace('p999', 'p99.9')}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate, msgs/s (the rightmost point of each line: flat out, achieved)")
    ax.set_ylabel("delivery latency, ms (send → client receipt)")
    ax.set_title("pushbench unicast: latency percentiles against offered rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    runs = load(a.results)
    g = group(runs)
    labels = labels_of(runs)
    first = min(runs, key=lambda r: r["unix_time"])
    m = first["machine"]
    out_dir = os.path.dirname(os.path.abspath(a.out))
    png = os.path.join(a.results, "latency.png")
    has_chart = chart(runs, png)
    failed = [r for r in runs if not r["complete"]]
    loads = [r["loadavg"] for r in runs]
    parts = [
        "# pushbench report\n",
        "Generated by `make bench` (`bench/report.py`) from "
        f"`{os.path.relpath(a.results, out_dir)}`; do not edit by hand.\n",
        f"- commit `{first['commit']}`; binaries: "
        + ", ".join(f"`{l}`" for l in labels) + "\n"
        f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_total_kb'] // 1024} MiB, "
        f"Linux {m['kernel']}; shared with other work: 1-minute load average at the start of "
        f"the runs {min(loads):.1f}–{max(loads):.1f}\n"
        f"- stores: " + ", ".join(sorted({f"{r['target']}: {r['store']}" for r in runs})) + "\n"
        f"- {len(runs)} scenario runs" + (f", **{len(failed)} FAILED**" if failed else "") + "\n",
    ]
    for r in failed:
        parts.append(f"  - FAILED `{r['_file']}`: {r['failure']}\n")
    parts.append(
        "\nServer CPU is utime + stime of every server process (`/proc/PID/stat`, process "
        "groups included) over the phase, divided by accepted messages or by deliveries; "
        "generator CPU likewise for pushbench's own processes. Latency is the client's receive "
        "time minus the send time carried in the payload (paced phases: the scheduled send "
        "time, so a late request counts its wait). Rates are end to end: accepted messages "
        "from the first request to the last delivery.\n")
    if has_chart:
        parts.append(f"\n![latency against offered rate]({os.path.relpath(png, out_dir)})\n")
    commands = os.path.join(a.results, "commands.txt")
    if os.path.exists(commands):
        with open(commands) as f:
            parts.append("\nCommands of this run:\n\n```\n" + f.read() + "```\n")
    for s in (versus_section(g, labels), idle_section(g, labels), unicast_section(g),
              fanout_section(g), compare_section(g, labels), cluster_section(g), profile_section(runs)):
        if s:
            parts.append("\n" + s)
    analysis = os.path.join(a.results, "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            parts.append("\n" + f.read())
    with open(a.out, "w") as f:
        f.write("".join(parts))
    print(f"wrote {a.out}" + (f" and {png}" if has_chart else ""))


if __name__ == "__main__":
    main()
