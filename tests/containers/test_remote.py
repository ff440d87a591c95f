"""Reaching a broker from another machine, for real: a network namespace
plays the remote machine, joined to this one by a veth pair. The broker runs
here; kcat runs inside the namespace. With advertised.listeners naming the
server's address the remote client produces and consumes; with the broker
advertising an address only this machine can reach (the common mistake),
the remote client bootstraps but cannot produce."""
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from conftest import ROOT, free_port, run

REPO_BINARIES = [
    ROOT / "target" / "docker-context" / "rootfs" / "usr" / "local" / "bin" / "gregor",
    ROOT / "target" / "debug" / "gregor",
    ROOT / "target" / "release" / "gregor",
]


def gregor_binary():
    if os.environ.get("GREGOR_BIN"):
        return os.environ["GREGOR_BIN"]
    for path in REPO_BINARIES:
        if path.exists():
            return str(path)
    pytest.skip("no gregor binary built (cargo build, or set GREGOR_BIN)")


@pytest.fixture
def remote():
    """A namespace at 10.231.X.2 that sees this machine as 10.231.X.1."""
    if shutil.which("ip") is None or shutil.which("kcat") is None:
        pytest.skip("needs iproute2 (ip) and kcat")
    suffix = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"gregor-{suffix}", f"gh{suffix}", f"gn{suffix}"
    subnet = 100 + int(suffix, 16) % 150
    host_ip, ns_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
    probe = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"`ip netns add` is not permitted here: {probe.stderr.strip()}")
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        run("ip", "link", "set", ns_if, "netns", ns)
        run("ip", "addr", "add", f"{host_ip}/24", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/24", "dev", ns_if)
        run("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield ns, host_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def kcat_in(ns, *args, input=None, timeout=30):
    return run("ip", "netns", "exec", ns, "kcat", *args, input=input, timeout=timeout,
               check=False)


@pytest.fixture
def broker(tmp_path):
    """Starts `gregor broker` here on a wildcard listener advertising the
    given address ({port} is filled in); killed afterwards."""
    procs = []

    def start(advertised):
        port = free_port()
        log = open(tmp_path / f"broker-{port}.log", "wb")
        proc = subprocess.Popen(
            [gregor_binary(), "broker", "--data-dir", str(tmp_path / f"data-{port}"),
             "--listeners", f"PLAINTEXT://0.0.0.0:{port}",
             "--advertised-listeners", advertised.format(port=port),
             "--admin", f"127.0.0.1:{free_port()}"],
            stdout=log, stderr=log)
        procs.append(proc)
        deadline = time.time() + 15
        while time.time() < deadline:
            assert proc.poll() is None, (tmp_path / f"broker-{port}.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"broker on {port} did not start")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_remote_client_uses_the_advertised_server_address(remote, broker):
    ns, host_ip = remote
    port = broker(f"PLAINTEXT://{host_ip}:{{port}}")
    bootstrap = f"{host_ip}:{port}"
    produced = kcat_in(ns, "-b", bootstrap, "-P", "-t", "remote", input="hello from afar\n")
    assert produced.returncode == 0, produced.stderr
    consumed = kcat_in(ns, "-b", bootstrap, "-C", "-t", "remote", "-e")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == ["hello from afar"]


def test_advertising_a_local_only_address_fails_remote_clients(remote, broker):
    ns, host_ip = remote
    port = broker("PLAINTEXT://127.0.0.1:{port}")
    bootstrap = f"{host_ip}:{port}"
    # Bootstrapping works (it is the address we gave) ...
    metadata = kcat_in(ns, "-b", bootstrap, "-L")
    assert f"127.0.0.1:{port}" in metadata.stdout
    # ... but the broker it names is the remote machine's own loopback.
    produced = kcat_in(ns, "-b", bootstrap, "-P", "-t", "remote",
                       "-X", "message.timeout.ms=3000", input="lost\n")
    # The symptom users see: a connection refused to 127.0.0.1, then a timeout.
    assert f"Connect to ipv4#127.0.0.1:{port} failed" in produced.stderr, produced.stderr
    assert "Delivery failed" in produced.stderr, produced.stderr
