"""Seconds-long smoke of the benchmark tool (bench/, librdkafka) against the
real broker: each mode runs and prints one well-formed JSON line, and the
suite script runs end to end in --quick mode. No timing is asserted: these
are measurements, checked only for shape and completeness.

Needs bench/target/release/gregor-bench (`cd bench && cargo build --release`);
skipped with that reason when it has not been built.
"""
import json
import subprocess
import sys

import pytest

from conftest import BIN, ROOT
from test_sasl import start_sasl_broker

BENCH = ROOT / "bench" / "target" / "release" / "gregor-bench"

pytestmark = pytest.mark.skipif(
    not BENCH.exists(),
    reason=f"{BENCH.relative_to(ROOT)} not built (cd bench && cargo build --release)",
)


def bench(broker, mode, *args, connection=()):
    done = subprocess.run(
        [str(BENCH), "--bootstrap", broker.bootstrap, "--label", "smoke", *connection, mode, *args],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


def test_produce_reports_throughput_latency_and_client_settings(broker):
    line = bench(broker, "produce", "--topic", "smoke-produce", "--messages", "2000", "--size", "100",
                 "--acks", "all", "--linger-ms", "1", "--batch-size", "65536", "--compression", "lz4",
                 "--idempotence")
    assert line["mode"] == "produce" and line["label"] == "smoke"
    assert line["acked"] == 2000 and line["failed"] == 0
    assert line["msgs_per_s"] > 0 and line["mb_per_s"] > 0
    assert line["ack_latency"]["count"] == 2000
    assert line["ack_latency"]["p50_ms"] <= line["ack_latency"]["p99_ms"] <= line["ack_latency"]["max_ms"]
    assert line["client"] == {"acks": "all", "linger.ms": "1", "batch.size": "65536",
                              "compression.type": "lz4", "enable.idempotence": "true"}


def test_rate_limited_produce_then_consume_from_the_beginning(broker):
    bench(broker, "produce", "--topic", "smoke-consume", "--messages", "1000", "--size", "1024",
          "--rate", "5000", "--partitions", "3")
    line = bench(broker, "consume", "--topic", "smoke-consume", "--messages", "1000")
    assert line["mode"] == "consume"
    assert line["messages"] == 1000 and line["partitions"] == 3 and line["size"] == 1024
    assert line["mb_per_s"] > 0


def test_e2e_measures_every_message_after_the_warm_up(broker):
    line = bench(broker, "e2e", "--topic", "smoke-e2e", "--rate", "1000", "--size", "256",
                 "--warmup-s", "0.2", "--duration-s", "0.5", "--linger-ms", "0")
    assert line["received"] == line["messages"] == 700
    assert line["out_of_order"] == 0
    assert line["e2e_latency"]["count"] == 500
    assert 0 < line["e2e_latency"]["p50_ms"] <= line["e2e_latency"]["max_ms"]
    assert line["producer"]["acked"] == 700


def test_every_mode_over_sasl_ssl_with_scram_sha_512(tmp_path):
    """--client-config (client.properties form) and --client-set reach the
    producer, the consumer and the admin client; the password stays out of
    the JSON line."""
    broker = start_sasl_broker(tmp_path / "broker", tls=True)
    try:
        config = tmp_path / "client.properties"
        config.write_text("# librdkafka's keys\nsecurity.protocol=SASL_SSL\n"
                          f"ssl.ca.location={broker.cafile}\nsasl.mechanisms: SCRAM-SHA-512\n"
                          "sasl.username=alice\nsasl.password=wrong\n")
        connection = ["--client-config", str(config), "--client-set", "sasl.password=alice-secret"]
        line = bench(broker, "produce", "--topic", "smoke-sasl", "--messages", "1000", "--size", "1024",
                     "--acks", "all", connection=connection)
        assert line["acked"] == 1000 and line["failed"] == 0
        assert line["connection"] == {"security.protocol": "SASL_SSL", "ssl.ca.location": broker.cafile,
                                      "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "alice",
                                      "sasl.password": "(hidden)"}
        line = bench(broker, "consume", "--topic", "smoke-sasl", "--messages", "1000", connection=connection)
        assert line["messages"] == 1000 and line["size"] == 1024
        line = bench(broker, "e2e", "--topic", "smoke-sasl-e2e", "--rate", "1000", "--warmup-s", "0.2",
                     "--duration-s", "0.5", "--linger-ms", "0", connection=connection)
        assert line["received"] == line["messages"] == 700
        assert line["e2e_latency"]["count"] == 500
    finally:
        broker.kill9()


def test_a_malformed_client_property_is_refused_with_its_text(broker):
    done = subprocess.run([str(BENCH), "--bootstrap", broker.bootstrap, "--client-set", "security.protocol",
                           "produce", "--topic", "smoke-bad", "--messages", "1"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert '--client-set "security.protocol": expected KEY=VALUE' in done.stderr


def test_suite_quick_mode_writes_raw_lines_and_a_table(tmp_path):
    done = subprocess.run(
        # The same binary stands in for the static build: this checks the
        # three-column path, not the musl build.
        [sys.executable, str(ROOT / "bench" / "suite.py"), "--quick", "--runs", "1", "--no-peer",
         "--no-limits", "--gregor-bin", str(BIN), "--static-bin", str(BIN), "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| produce 100 B acks=1 — msg/s |" in done.stdout
    [raw] = list(tmp_path.glob("*.jsonl"))
    lines = [json.loads(line) for line in raw.read_text().splitlines()]
    runs = [line for line in lines if line.get("kind") == "run"]
    assert {line["scenario"] for line in runs} == {
        "produce_100B_acks1", "produce_1KiB_acksall", "produce_100B_acks1_lz4", "produce_1KiB_acksall_lz4",
        "consume_1KiB", "e2e_1KiB_10k_linger0",
        "e2e_1KiB_10k_default", "e2e_100B_50k", "produce_1KiB_acksall_durable",
        *(f"{key}_{kind}" for key in ("produce_1KiB_acksall", "consume_1KiB", "e2e_1KiB_10k_linger0")
          for kind in ("ssl", "sasl_ssl"))}
    assert not [line for line in runs if "error" in line]
    assert {line["target"] for line in runs} == {"gregor", "gregor-static"}
    assert {line["connection"].get("security.protocol") for line in runs} == {None, "SSL", "SASL_SSL"}
    assert "| produce 1 KiB acks=all — MB/s over SASL_SSL |" in done.stdout
    assert "| e2e 1 KiB @ 10k/s linger.ms=0 — p99 (ms) over SSL |" in done.stdout
    assert any(line.get("kind") == "startup" for line in lines)

    png = tmp_path / "plot.png"
    plotted = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_plot.py"), str(raw), "-o", str(png)],
                             capture_output=True, text=True, timeout=120)
    assert plotted.returncode == 0, plotted.stderr[-3000:]
    assert png.stat().st_size > 10_000
