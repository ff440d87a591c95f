"""compose.secure.yml end to end, the exposed-server walkthrough in
containers: certificates made by the one-shot `secrets` service, a
coordinator reachable only with a client certificate, a broker whose only
published listener is SASL_SSL, and the tutorial's Python application in a
container on another Docker network that finds the broker through
`kafka_host_url` and a client.properties file, producing and consuming
over SASL_SSL with SCRAM."""
import json
import os
import subprocess
import uuid

import pytest

from conftest import ROOT, free_port, run
from test_compose import compose_command

PASSWORD = "walkthrough-" + uuid.uuid4().hex[:8]


class SecureCompose:
    def __init__(self, project, port, external_host):
        self.base = [*compose_command(), "-f", str(ROOT / "compose.secure.yml"), "-p", project]
        self.env = dict(os.environ, GREGOR_EXTERNAL_PORT=str(port),
                        GREGOR_EXTERNAL_HOST=external_host, GREGOR_ADMIN_PASSWORD=PASSWORD)

    def __call__(self, *args, check=True, timeout=180):
        return run(*self.base, *args, check=check, timeout=timeout, env=self.env, cwd=ROOT)

    def container(self, service):
        return self("ps", "-q", service).stdout.strip()


@pytest.fixture
def secure(images, python_app, tmp_path):
    if compose_command() is None:
        pytest.skip("needs docker-compose or the docker compose plugin")
    project = f"gregorsecure{uuid.uuid4().hex[:8]}"
    network = f"{project}-elsewhere"
    run("docker", "network", "create", network)
    gateway = run("docker", "network", "inspect", "--format",
                  "{{ (index .IPAM.Config 0).Gateway }}", network).stdout.strip()
    compose = SecureCompose(project, free_port(), gateway)
    compose.network, compose.gateway = network, gateway
    yield compose
    compose("down", "-v", "--remove-orphans", check=False)
    run("docker", "network", "rm", network, check=False)


def wait_healthy(container, timeout=90):
    import time
    deadline = time.time() + timeout
    status = ""
    while time.time() < deadline:
        status = run("docker", "inspect", "--format",
                     "{{ if .State.Health }}{{ .State.Health.Status }}{{ end }}",
                     container).stdout.strip()
        if status == "healthy":
            return
        time.sleep(1)
    logs = run("docker", "logs", container, check=False)
    raise AssertionError(f"{container} not healthy ({status!r}):\n{logs.stdout}{logs.stderr}")


def app(compose, config_dir, *args, env=()):
    """The tutorial's app on the other network, as a remote machine runs it."""
    extra = [item for pair in env for item in ("-e", pair)]
    return run("docker", "run", "--rm", "--network", compose.network,
               "-v", f"{config_dir}:/config:ro",
               "-e", f"kafka_host_url={compose.gateway}:{compose.env['GREGOR_EXTERNAL_PORT']}",
               "-e", "KAFKA_CLIENT_CONFIG=/config/client.properties", *extra,
               "gregor/python-app:latest", "python3", "kafka_app.py", *args,
               timeout=180, check=False)


def test_an_app_on_another_network_produces_and_consumes_over_sasl_ssl(secure, tmp_path):
    secure("up", "-d")
    broker = secure.container("broker")
    wait_healthy(secure.container("coordinator"))
    wait_healthy(broker)
    # Only the SASL_SSL listener is published; the coordinator is not.
    published = run("docker", "port", broker).stdout
    assert published.strip().startswith("9093/tcp"), published
    assert run("docker", "port", secure.container("coordinator")).stdout.strip() == ""

    # What a remote user is handed: the CA certificate and a client.properties.
    config = tmp_path / "client-config"
    config.mkdir()
    run("docker", "cp", f"{broker}:/etc/gregor/secrets/ca.pem", str(config / "ca.pem"))
    (config / "client.properties").write_text(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="{PASSWORD}";\n'
        "ssl.truststore.type=PEM\n"
        "ssl.truststore.location=/config/ca.pem\n")
    for path in config.iterdir():
        path.chmod(0o644)
    config.chmod(0o755)

    produced = app(secure, config, "produce", "5", env=["RUN_ID=far"])
    assert produced.returncode == 0, produced.stdout + produced.stderr
    consumed = app(secure, config, "consume", env=["GROUP_ID=far-readers", "MAX_MESSAGES=5"])
    assert consumed.returncode == 0, consumed.stdout + consumed.stderr
    values = [json.loads(line)["value"] for line in consumed.stdout.splitlines()
              if line.startswith('{"partition"')]
    assert [(v["run"], v["seq"]) for v in values] == [("far", i) for i in range(5)]

    # A wrong password gets nothing; neither does a client without TLS.
    (config / "client.properties").write_text(
        (config / "client.properties").read_text().replace(PASSWORD, "guess"))
    refused = app(secure, config, "produce", "1")
    assert refused.returncode != 0
    plain = subprocess.run(
        ["kcat", "-b", f"{secure.gateway}:{secure.env['GREGOR_EXTERNAL_PORT']}", "-L", "-m", "5"],
        capture_output=True, text=True, timeout=30)
    assert plain.returncode != 0
