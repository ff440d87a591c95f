"""One markdown table row per chaos run directory, for docs/reliability.md:

    python tests/chaos/summarize.py target/chaos/*/
"""
import json
import sys
from collections import Counter
from pathlib import Path

HEADER = ("| run | topology | faults | producers | acked sends | final read covers acks | "
          "anomalies | send p99 | verdict |\n|---|---|---|---|---:|---|---|---:|---|")


def p99(run_dir):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import checker
    import report
    lat = sorted(l for _, l, _ in report.latencies(checker.load_history(run_dir / "history.jsonl")))
    return report.pct(lat, 99)


def row(run_dir):
    run_dir = Path(run_dir)
    res = json.loads((run_dir / "results.json").read_text())
    meta = res["meta"]
    faults = ", ".join(f"{f} x{n}" for f, n in Counter(f["fault"] for f in res["faults"]).items()) or "none"
    producers = f"acks={meta.get('acks', 'all')}, " + ("idempotent" if meta.get("idempotence", True) else "not idempotent")
    bad = {name: c["anomalies"] for name, c in res["checks"].items() if c["anomalies"]}
    anomalies = ", ".join(f"{name} {n}" for name, n in bad.items()) or "0"
    covered = "yes" if meta.get("final_read", {}).get("covered_every_acknowledged_offset") else "**no**"
    verdict = "pass" if not bad else "**anomalies**"
    return (f"| {run_dir.name} | {meta['topology']} | {faults} | {producers} | {res['operations'].get('send ok', 0)} "
            f"| {covered} | {anomalies} | {p99(run_dir)} | {verdict} |")


if __name__ == "__main__":
    print(HEADER)
    for d in sys.argv[1:]:
        print(row(d))
