"""What a server opens to other machines without authentication: one
warning line at start per exposed port, and an admin HTTP port that stays
on loopback unless configured."""
import subprocess
import time
import urllib.request

from conftest import BIN, free_port, wait_for_port
from test_coordinator import Coordinator

WARNING = "accepts unauthenticated connections from other machines"


def warnings_in(text):
    return [line for line in text.splitlines() if WARNING in line]


def test_a_plaintext_listener_on_all_interfaces_is_named_in_one_warning(make_broker):
    port = free_port()
    exposed = make_broker(listeners=f"PLAINTEXT://0.0.0.0:{port}", port=port)
    lines = warnings_in(exposed.output())
    assert len(lines) == 1, exposed.output()
    assert f"port {port}" in lines[0] and "PLAINTEXT" in lines[0]

    loopback = make_broker()
    assert warnings_in(loopback.output()) == []


def test_the_coordinator_port_open_to_all_is_named_in_one_warning(tmp_path):
    coordinator = Coordinator(tmp_path / "coordinator").start()
    try:
        lines = warnings_in(coordinator.output())
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
