"""What a server opens to other machines without authentication: one
warning line at start per exposed port, and an admin HTTP port that stays
on loopback unless configured."""
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import BIN, free_port, wait_for_port
from test_coordinator import Coordinator

WARNING = "accepts unauthenticated connections from other machines"


def warnings_in(text):
    return [line for line in text.splitlines() if WARNING in line]


def warnings_of(server, timeout=5.0):
    """The warning lines once one is logged: the port may open a moment
    before the line is written."""
    deadline = time.time() + timeout
    while not warnings_in(server.output()) and time.time() < deadline:
        time.sleep(0.05)
    return warnings_in(server.output())


def test_a_plaintext_listener_on_all_interfaces_is_named_in_one_warning(make_broker):
    port = free_port()
    exposed = make_broker(listeners=f"PLAINTEXT://0.0.0.0:{port}", port=port)
    lines = warnings_of(exposed)
    assert len(lines) == 1, exposed.output()
    assert f"port {port}" in lines[0] and "PLAINTEXT" in lines[0]

    loopback = make_broker()
    assert warnings_in(loopback.output()) == []


def test_the_coordinator_port_open_to_all_is_named_in_one_warning(tmp_path):
    coordinator = Coordinator(tmp_path / "coordinator").start()
    try:
        lines = warnings_of(coordinator)
        assert len(lines) == 1, coordinator.output()
        assert f"port {coordinator.port}" in lines[0] and "coordinator" in lines[0]
    finally:
        coordinator.stop()


def test_the_admin_port_binds_to_loopback_unless_configured(tmp_path):
    port = free_port()
    log = open(tmp_path / "broker.log", "wb")
    proc = subprocess.Popen(
        [str(BIN), "broker", "--data-dir", str(tmp_path / "data"),
         "--listeners", f"PLAINTEXT://127.0.0.1:{port}"],
        stdout=log, stderr=log)
    try:
        wait_for_port(port, proc)
        deadline = time.time() + 10
        while True:
            try:
                reply = urllib.request.urlopen("http://127.0.0.1:9644/healthz", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, (tmp_path / "broker.log").read_text()
                time.sleep(0.1)
        assert reply.read() == b"ok\n"
        listening = subprocess.run(["ss", "-ltnH", "sport = :9644"], capture_output=True,
                                   text=True).stdout
        assert "127.0.0.1:9644" in listening and "0.0.0.0:9644" not in listening, listening
    finally:
        proc.terminate()
        proc.wait(timeout=15)


FIREWALL = Path(__file__).resolve().parents[2] / "scripts" / "firewall.sh"


def firewall(*args):
    return subprocess.run([str(FIREWALL), "--dry-run", *args], capture_output=True, text=True,
                          timeout=30)


def test_the_firewall_script_opens_only_secured_listeners(tmp_path):
    config = tmp_path / "server.properties"
    config.write_text(
        "listeners=EXTERNAL://0.0.0.0:9093,LOCAL://127.0.0.1:9092,OPEN://:9094\n"
        "listener.security.protocol.map=EXTERNAL:SASL_SSL,LOCAL:PLAINTEXT,OPEN:PLAINTEXT\n")
    refusing = firewall("--config", str(config), "--coordinator-from", "10.0.0.0/24")
    rules = [line for line in refusing.stdout.splitlines() if line.startswith("+ ")]
    assert rules == ["+ ufw allow 9093/tcp",
                     "+ ufw allow from 10.0.0.0/24 to any port 2182 proto tcp"], refusing.stdout
    assert "NOT opening OPEN (PLAINTEXT) on 9094" in refusing.stdout
    assert refusing.returncode == 1

    insecure = firewall("--config", str(config), "--insecure")
    rules = [line for line in insecure.stdout.splitlines() if line.startswith("+ ")]
    assert rules == ["+ ufw allow 9093/tcp", "+ ufw allow 9094/tcp"], insecure.stdout
    assert insecure.returncode == 0

    secured_only = tmp_path / "secured.properties"
    secured_only.write_text("listeners=SASL_SSL://:9093\n")
    assert firewall("--config", str(secured_only)).returncode == 0


def test_the_readmes_exposed_server_walkthrough_runs_as_written(tmp_path):
    """README "A server reached from other machines", on loopback: security
    init, the server.properties lines, the admin user from the environment,
    the firewall script, and the tools with client.properties."""
    import re

    from conftest import wait_for_port

    tls = tmp_path / "tls"
    init = subprocess.run([str(BIN), "security", "init", str(tls), "--hosts", "127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    password = re.search(r"KAFKA_CLIENT_PASSWORDS=(\S+)", init.stderr).group(1)
    port = free_port()
    config = tmp_path / "server.properties"
    config.write_text(
        f"log.dirs={tmp_path / 'data'}\n"
        f"listeners=EXTERNAL://0.0.0.0:{port}\n"
        f"advertised.listeners=EXTERNAL://127.0.0.1:{port}\n"
        "listener.security.protocol.map=EXTERNAL:SASL_SSL\n"
        "ssl.keystore.type=PEM\n"
        f"ssl.keystore.location={tls}/broker-keystore.pem\n"
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
        "super.users=User:admin\n"
        f"admin.listener=127.0.0.1:{free_port()}\n")
    log = open(tmp_path / "broker.log", "wb")
    env = dict(os.environ, KAFKA_CLIENT_USERS="admin", KAFKA_CLIENT_PASSWORDS=password)
    proc = subprocess.Popen([str(BIN), "broker", str(config)], env=env, stdout=log, stderr=log)
    try:
        wait_for_port(port, proc)
        rules = [line for line in firewall("--config", str(config)).stdout.splitlines()
                 if line.startswith("+ ")]
        assert rules == [f"+ ufw allow {port}/tcp"]
        client = str(tls / "client.properties")
        bootstrap = f"127.0.0.1:{port}"

        links = tmp_path / "bin"
        links.mkdir()
        for name in ("kafka-topics.sh", "kafka-console-producer.sh", "kafka-console-consumer.sh"):
            (links / name).symlink_to(BIN)

        def tool(name, *args, input=None):
            done = subprocess.run([str(links / name), *args], input=input, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        tool("kafka-topics.sh", "--bootstrap-server", bootstrap, "--command-config", client,
             "--create", "--topic", "test", "--partitions", "1", "--replication-factor", "1")
        tool("kafka-console-producer.sh", "--bootstrap-server", bootstrap,
             "--producer.config", client, "--topic", "test", input="far away\n")
        out = tool("kafka-console-consumer.sh", "--bootstrap-server", bootstrap,
                   "--consumer.config", client, "--topic", "test", "--from-beginning",
                   "--max-messages", "1")
        assert out.splitlines() == ["far away"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
