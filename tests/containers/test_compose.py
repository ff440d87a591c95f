"""compose.yml end to end: coordinator and broker healthy, the tutorial's
Python applications exchanging JSON messages through `kafka_host_url`, the
host reaching the EXTERNAL listener, and data and committed offsets
surviving `down` and `up` (named volumes)."""
import json
import os
import shutil
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer

from conftest import ROOT, free_port, run


def compose_command():
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if run("docker", "compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    return None


class Compose:
    def __init__(self, project, port):
        self.base = [*compose_command(), "-f", str(ROOT / "compose.yml"), "-p", project]
        self.env = dict(os.environ, GREGOR_EXTERNAL_PORT=str(port))

    def __call__(self, *args, check=True, timeout=180):
        return run(*self.base, *args, check=check, timeout=timeout, env=self.env, cwd=ROOT)

    def container(self, service):
        return self("ps", "-q", service).stdout.strip()

    def wait_healthy(self, service, timeout=90):
        deadline = time.time() + timeout
        status = ""
        while time.time() < deadline:
            cid = self.container(service)
            if cid:
                status = run("docker", "inspect", "--format",
                             "{{ if .State.Health }}{{ .State.Health.Status }}{{ end }}",
                             cid).stdout.strip()
                if status == "healthy":
                    return
            time.sleep(1)
        logs = self("logs", "--no-color", service, check=False).stdout
        raise AssertionError(f"{service} not healthy ({status!r}):\n{logs}")

    def produce(self, count, run_id):
        return self("run", "--rm", "-e", f"COUNT={count}", "-e", f"RUN_ID={run_id}",
                    "producer", timeout=120)

    def consume(self, group, max_messages=None, idle_s=8):
        args = ["run", "--rm", "-e", f"GROUP_ID={group}", "-e", f"IDLE_TIMEOUT_S={idle_s}"]
        if max_messages is not None:
            args += ["-e", f"MAX_MESSAGES={max_messages}"]
        out = self(*args, "consumer", timeout=180).stdout
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return [r["value"] for r in records if "value" in r]


@pytest.fixture
def stack(images, python_app):
    if compose_command() is None:
        pytest.skip("needs docker-compose or the docker compose plugin")
    compose = Compose(f"gregortest{uuid.uuid4().hex[:8]}", free_port())
    yield compose
    compose("down", "-v", "--remove-orphans", check=False)


def test_compose_stack_runs_the_tutorials_apps_and_keeps_data(stack):
    # Everything, as `docker compose up -d`: the apps wait for a healthy broker.
    stack("up", "-d")
    stack.wait_healthy("coordinator")
    stack.wait_healthy("broker")

    # The long-running consumer service reads what the producer service sent.
    deadline = time.time() + 90
    logs = ""
    while time.time() < deadline:
        logs = stack("logs", "--no-color", "consumer").stdout
        if sum('"value"' in line for line in logs.splitlines()) >= 10:
            break
        time.sleep(1)
    values = [json.loads(line.split("| ", 1)[1])["value"] for line in logs.splitlines()
              if '"value"' in line]
    assert [v["seq"] for v in values] == list(range(10)), logs
    stack("stop", "consumer")

    # Run the apps one-off: a group reads everything once, then only what is new.
    stack.produce(5, "second")
    first = stack.consume("readers", max_messages=15)
    assert [(v["run"], v["seq"]) for v in first][-5:] == [("second", i) for i in range(5)]
    assert len(first) == 15
    stack.produce(3, "third")
    assert [(v["run"], v["seq"]) for v in stack.consume("readers")] == \
        [("third", i) for i in range(3)]

    # The host reaches the broker through the EXTERNAL listener (published port).
    bootstrap = f"localhost:{stack.env['GREGOR_EXTERNAL_PORT']}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=(0, 10, 1),
                             value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    producer.send("events", {"run": "host", "seq": 0}).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer("events", bootstrap_servers=bootstrap, api_version=(0, 10, 1),
                             auto_offset_reset="earliest", consumer_timeout_ms=5000,
                             value_deserializer=lambda m: json.loads(m.decode("utf-8")))
    seen = [m.value for m in consumer]
    consumer.close()
    assert len(seen) == 19 and seen[-1] == {"run": "host", "seq": 0}

    # down (keeping volumes) and up: messages and committed offsets are still there.
    stack("down")
    stack("up", "-d", "coordinator", "broker")
    stack.wait_healthy("broker")
    assert [(v["run"], v["seq"]) for v in stack.consume("readers")] == [("host", 0)]
    assert len(stack.consume("fresh-group", max_messages=19)) == 19
