"""Fixtures for the container scenarios: images built once per session,
containers, networks and volumes named with a per-session prefix and removed
afterwards.

Needs a Docker engine (tests skip, saying why, when `docker info` fails).
GREGOR_STATIC_BIN=path skips the cargo build and images that static binary;
GREGOR_IMAGES_PREBUILT=1 uses gregor/broker:latest and gregor/coordinator:latest
as they are.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
BROKER = "gregor/broker:latest"
COORDINATOR = "gregor/coordinator:latest"
PYTHON_APP = "gregor/python-app:latest"


def run(*args, check=True, timeout=120, **kwargs):
    """subprocess.run with text output captured; raises with the output on failure."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def docker_unavailable():
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    try:
        proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`docker info` failed: {error}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`docker info` failed: {last}"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def docker():
    reason = docker_unavailable()
    if reason:
        pytest.skip(f"needs a Docker engine: {reason}")


@pytest.fixture(scope="session")
def images(docker):
    """gregor/broker and gregor/coordinator, built once per session."""
    if os.environ.get("GREGOR_IMAGES_PREBUILT") != "1":
        cmd = [str(SCRIPTS / "build-images.sh")]
        if os.environ.get("GREGOR_STATIC_BIN"):
            cmd += ["--binary", os.environ["GREGOR_STATIC_BIN"]]
        proc = run(*cmd, timeout=3600)
        print(proc.stdout)
    sizes = {}
    for image in (BROKER, COORDINATOR):
        inspect = json.loads(run("docker", "image", "inspect", image).stdout)[0]
        sizes[image] = inspect["Size"]
    return sizes


@pytest.fixture(scope="session")
def python_app(docker):
    """The tutorial's Python app on a base image built offline from Debian."""
    pip = Path(sys.executable).parent / "pip"
    env = dict(os.environ, PIP=str(pip)) if pip.exists() else None
    run(str(SCRIPTS / "python-base-image.sh"), "--app", timeout=1800, env=env)
    return PYTHON_APP


class Docker:
    """Creates containers/networks/volumes under one prefix; removes them all."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.containers, self.networks, self.volumes = [], [], []

    def name(self, what):
        return f"{self.prefix}-{what}"

    def run(self, *args, name=None, detach=True, check=True, timeout=120):
        cmd = ["docker", "run"]
        if detach:
            cmd.append("-d")
        if name:
            name = self.name(name)
            self.containers.append(name)
            cmd += ["--name", name]
        proc = run(*cmd, *args, check=check, timeout=timeout)
        return name if detach else proc

    def network(self, what):
        name = self.name(what)
        run("docker", "network", "create", name)
        self.networks.append(name)
        return name

    def volume(self, what):
        name = self.name(what)
        run("docker", "volume", "create", name)
        self.volumes.append(name)
        return name

    def inspect(self, name, fmt):
        return run("docker", "inspect", "--format", fmt, name).stdout.strip()

    def ip(self, name):
        return self.inspect(name, "{{ .NetworkSettings.IPAddress }}")

    def logs(self, name):
        proc = run("docker", "logs", name, check=False)
        return proc.stdout + proc.stderr

    def wait_healthy(self, name, timeout=60):
        deadline = time.time() + timeout
        status = ""
        while time.time() < deadline:
            status = self.inspect(name, "{{ if .State.Health }}{{ .State.Health.Status }}{{ end }}")
            if status == "healthy":
                return
            if self.inspect(name, "{{ .State.Running }}") != "true":
                break
            time.sleep(0.5)
        raise AssertionError(f"{name} not healthy (status {status!r}):\n{self.logs(name)}")

    def cleanup(self):
        for name in self.containers:
            run("docker", "rm", "-f", "-v", name, check=False)
        for name in self.networks:
            run("docker", "network", "rm", name, check=False)
        for name in self.volumes:
            run("docker", "volume", "rm", "-f", name, check=False)


@pytest.fixture
def dock(images):
    d = Docker(f"gregortest-{uuid.uuid4().hex[:8]}")
    yield d
    d.cleanup()
