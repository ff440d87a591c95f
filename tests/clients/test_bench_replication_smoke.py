"""Smoke of bench/replication.py (issue 14) in --quick mode against the
real binary: a three-broker cluster starts, every section (produce RF=1 vs
RF=3, e2e latency, one kill -9 election, an ISR rejoin) yields its lines
and the markdown has its tables. No timing is asserted: a measurement,
checked only for shape and completeness. The election waits out the
coordinator's 9 s session timeout, so this takes about a minute.

Needs bench/target/release/gregor-bench (`cd bench && cargo build --release`);
skipped with that reason when it has not been built.
"""
import json
import subprocess
import sys

import pytest

from conftest import BIN, ROOT

BENCH = ROOT / "bench" / "target" / "release" / "gregor-bench"

pytestmark = pytest.mark.skipif(
    not BENCH.exists(),
    reason=f"{BENCH.relative_to(ROOT)} not built (cd bench && cargo build --release)",
)


def test_quick_run_measures_every_section_and_writes_the_tables(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replication.py"), "--quick", "--no-limits",
         "--gregor-bin", str(BIN), "--results", str(tmp_path), "--note", "smoke"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [raw] = list(tmp_path.glob("*-replication.jsonl"))
    lines = [json.loads(line) for line in raw.read_text().splitlines()]

    produced = {line["key"]: line for line in lines if line["kind"] == "produce"}
    assert set(produced) == {"rf1", "rf3_acks1", "rf3_acksall"}
    for line in produced.values():
        assert "error" not in line, line
        assert line["acked"] == 5000 and line["failed"] == 0 and line["mb_per_s"] > 0

    e2e = {line["key"]: line for line in lines if line["kind"] == "e2e"}
    assert set(e2e) == {"rf1", "rf3"}
    for line in e2e.values():
        assert "error" not in line, line
        assert line["received"] == line["messages"] == 700
        assert line["e2e_latency"]["count"] == 500

    [election] = [line for line in lines if line["kind"] == "election"]
    assert election["new_leader"] not in (None, -1, election["killed"])
    assert election["metadata_s"] > 0 and election["first_ack_s"] > 0

    rejoins = {line["key"]: line for line in lines if line["kind"] == "rejoin"}
    assert set(rejoins) == {"empty", "behind"}
    assert rejoins["behind"]["bytes_behind"] == int(0.005e9 / 1024) * 1024
    assert rejoins["behind"]["produce_error"] is None
    assert rejoins["behind"]["s_per_gb"] > 0

    table = done.stdout
    assert "| RF=3, acks=all |" in table
    assert "| RF=3 |" in table
    assert "| new leader in Metadata |" in table and "| first acknowledged send |" in table
    assert "GB behind |" in table
    assert "**smoke**" in table
    assert (tmp_path / raw.name.replace(".jsonl", ".md")).read_text().strip() == table.strip()
