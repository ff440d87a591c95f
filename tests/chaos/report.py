"""A run's report (report.md, results.json) and its plot (plot.png)."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

PER_CHECK = 3
EXCERPT_FIELDS = ("index", "time", "process", "type", "f", "partition", "value", "offset", "records",
                  "error", "final", "mode", "group", "fault", "node")


def op_counts(ops):
    counts = Counter()
    for op in ops:
        if op.get("process") != "nemesis":
            counts[f"{op.get('f')} {op['type']}"] += 1
    return counts


def latencies(ops):
    """(invoke time, latency s, process) of every acknowledged send."""
    invoked = {}
    out = []
    for op in ops:
        if op.get("f") != "send":
            continue
        ident = (op["process"], op.get("value"))
        if op["type"] == "invoke":
            invoked[ident] = op["time"]
        elif op["type"] == "ok" and ident in invoked:
            start = invoked.pop(ident)
            out.append((start, op["time"] - start, op["process"]))
    return out


def short(op, t0, focus=()):
    """One operation as a line; a long poll is cut to the records around
    the offsets the anomaly is about."""
    out = {k: op[k] for k in EXCERPT_FIELDS if k in op}
    if "time" in out:
        out["time"] = round(out["time"] - t0, 3)
    recs = out.get("records")
    if recs and len(recs) > 6:
        near = [i for i, r in enumerate(recs) if any(abs(r[0] - f) <= 2 for f in focus)] or \
            [0, 1, 2, len(recs) - 3, len(recs) - 2, len(recs) - 1]
        cut, last = [], -1
        for i in near:
            if i > last + 1:
                cut.append(f"... {i - last - 1} ...")
            cut.append(recs[i])
            last = i
        if last < len(recs) - 1:
            cut.append(f"... {len(recs) - 1 - last} ...")
        out["records"] = cut
    return json.dumps(out)


def write(run_dir, meta, ops, results, windows):
    run_dir = Path(run_dir)
    t0 = min((op["time"] for op in ops), default=0.0)
    (run_dir / "results.json").write_text(json.dumps({
        "meta": meta,
        "operations": dict(op_counts(ops)),
        "faults": [{"fault": f, "node": n, "start_s": round(s - t0, 2), "end_s": round(e - t0, 2), "error": err}
                   for f, n, s, e, err in windows],
        "checks": {r.name: {"checked": r.checked, "anomalies": len(r.anomalies),
                            "examples": [a.to_dict() for a in r.anomalies[:20]]} for r in results},
    }, indent=2))
    plot(run_dir / "plot.png", ops, windows, t0, title=f"{meta['topology']}, seed {meta['seed']}")

    lines = [f"# Chaos run: {meta['topology']}, seed {meta['seed']}", ""]
    verdict = "every check passed" if all(r.ok for r in results) else \
        "**anomalies found**: " + ", ".join(r.name for r in results if not r.ok)
    lat = sorted(l for _, l, _ in latencies(ops))
    acked = sum(1 for op in ops if op.get("f") == "send" and op["type"] == "ok")
    lines += [f"Verdict: {verdict}.", "",
              f"- nodes: {json.dumps(meta.get('nodes'))}",
              f"- faults: {len(windows)} ({', '.join(f'{k} x{v}' for k, v in Counter(w[0] for w in windows).items())})",
              f"- operations: {len(ops)}; acknowledged sends: {acked}",
              f"- final read: {json.dumps(meta.get('final_read'))}",
              f"- send latency: p50 {pct(lat, 50)}, p99 {pct(lat, 99)}, max {pct(lat, 100)}",
              f"- command: `scripts/chaos.sh {' '.join(meta.get('argv', []))}`", ""]
    if meta.get("nemesis_errors"):
        lines += ["Nemesis errors:", ""] + [f"- {e}" for e in meta["nemesis_errors"]] + [""]
    lines += ["## Checks", "", "| check | checked | anomalies | what it means |", "|---|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.checked} | {len(r.anomalies)} | {r.description} |")
    lines += ["", "## Operations", "", "| operation | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(op_counts(ops).items())]
    lines += ["", "## Faults", "", "| fault | node | start (s) | healed (s) | note |", "|---|---|---:|---:|---|"]
    lines += [f"| {f} | {n} | {s - t0:.1f} | {e - t0:.1f} | {err or ''} |" for f, n, s, e, err in windows]
    if any(not r.ok for r in results):
        lines += ["", "## Anomalies", "", f"The first {PER_CHECK} of each check (results.json has 20). "
                  "Times are seconds from the first operation; `index` is the line of history.jsonl "
                  "(from 0).", ""]
        for r in results:
            for a in r.anomalies[:PER_CHECK]:
                lines += [f"### {a.check}, {a.partition}", "", a.message, "", "```"]
                lines += [short(op, t0, a.focus) for op in a.excerpt] + ["```", ""]
            if len(r.anomalies) > PER_CHECK:
                lines += [f"... {r.name}: {len(r.anomalies) - PER_CHECK} more.", ""]
    lines += ["", "![throughput and latency](plot.png)", ""]
    (run_dir / "report.md").write_text("\n".join(lines))


def pct(sorted_values, p):
    if not sorted_values:
        return "n/a"
    i = min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))
    return f"{sorted_values[i] * 1000:.0f} ms"


def plot(path, ops, windows, t0, title=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = latencies(ops)
    acks = defaultdict(Counter)
    for op in ops:
        if op.get("f") == "send" and op["type"] == "ok":
            acks[op["process"].split(".")[0]][int(op["time"] - t0)] += 1
    reads = Counter()
    for op in ops:
        if op.get("f") == "poll" and op["type"] == "ok" and not op.get("final"):
            reads[int(op["time"] - t0)] += len(op.get("records", []))
    end = max((op["time"] - t0 for op in ops), default=1.0)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    seconds = list(range(int(end) + 1))
    for process, counts in sorted(acks.items()):
        top.plot(seconds, [counts.get(s, 0) for s in seconds], label=f"acks/s {process}", linewidth=1.2)
    top.plot(seconds, [reads.get(s, 0) for s in seconds], label="records read/s (all consumers)",
             linewidth=0.8, color="grey", alpha=0.7)
    top.set_ylabel("per second")
    top.legend(loc="upper right", fontsize=8)
    top.set_title(f"Chaos run: {title}" if title else "Chaos run")

    by_process = defaultdict(list)
    for start, l, process in lat:
        by_process[process.split(".")[0]].append((start - t0, l * 1000))
    for process, points in sorted(by_process.items()):
        xs, ys = zip(*points)
        bottom.scatter(xs, ys, s=3, label=f"send latency {process}", alpha=0.6)
    bottom.set_yscale("log")
    bottom.set_ylabel("send latency (ms, log)")
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper right", fontsize=8, markerscale=3)

    colors = {}
    palette = ["#e41a1c", "#ff7f00", "#984ea3", "#4daf4a", "#377eb8", "#a65628", "#f781bf", "#999999"]
    for fault, node, start, stop, _ in windows:
        color = colors.setdefault(fault, palette[len(colors) % len(palette)])
        for ax in (top, bottom):
            ax.axvspan(start - t0, stop - t0, color=color, alpha=0.18, linewidth=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.3) for c in colors.values()]
    if handles:
        fig.legend(handles, [f"fault: {f}" for f in colors], loc="lower center", ncol=len(handles), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
