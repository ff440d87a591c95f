"""Fixtures that start the real gregor binary for client tests.

Each test gets a broker of its own: a fresh data directory, free ports on
loopback, and the process killed (or stopped) afterwards. GREGOR_BIN picks
the binary (default: target/debug/gregor of this checkout).
"""
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GREGOR_BIN", ROOT / "target" / "debug" / "gregor"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Raw frames, for tests that speak the wire protocol by hand.

def request(api_key, version, correlation_id, body=b"", client_id=b"t"):
    """A size-prefixed request frame with a v1 header."""
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by broker")
        data += chunk
    return data


def read_response(s):
    """One size-prefixed response frame, without its size."""
    size = struct.unpack(">i", recv_exactly(s, 4))[0]
    return recv_exactly(s, size)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_for_port(port, proc, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gregor exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"port {port} did not open")


class GregorProcess:
    """A gregor server process on loopback: subclasses give `args()`, `port`,
    `log_path` and `env` (None inherits this process's environment)."""

    env = None
    proc = None

    def args(self):
        raise NotImplementedError

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), env=self.env, stdout=self.log, stderr=self.log)
        wait_for_port(self.port, self.proc)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        code = self.proc.returncode if self.proc else None
        self.proc = None
        return code

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def output(self):
        return self.log_path.read_text(errors="replace")


class Broker(GregorProcess):
    """A gregor broker process on loopback."""

    def __init__(self, data_dir, extra=(), env=None, listeners=None, port=None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.listeners = listeners or f"PLAINTEXT://127.0.0.1:{self.port}"
        self.admin_port = free_port()
        self.extra = list(extra)
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("GREGOR_LOG", "info")
        self.log_path = self.data_dir.parent / f"broker-{self.port}.log"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def args(self):
        return [
            str(BIN), "broker",
            "--data-dir", str(self.data_dir),
            "--listeners", self.listeners,
            "--admin", f"127.0.0.1:{self.admin_port}",
            *self.extra,
        ]


@pytest.fixture
def make_broker(tmp_path):
    brokers = []

    def make(extra=(), env=None, data_dir=None, listeners=None, port=None):
        broker = Broker(data_dir or tmp_path / f"data{len(brokers)}", extra, env, listeners, port)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in brokers:
        try:
            broker.stop(signal.SIGKILL)
        except Exception:
            pass


@pytest.fixture
def broker(make_broker):
    return make_broker()
