"""The scratch images on their own: size, metadata, graceful stop, data
directory ownership, name resolution and the advertised address."""
import json
import subprocess
import tempfile
import time

from conftest import BROKER, COORDINATOR, free_port, run

# Issue 5's bound for the static binary, which is nearly all of an image.
# The images were 8.4 MB at first; TLS/SASL (rustls, rcgen, x509-parser) and
# the raft quorum (openraft, which brings clap and chrono) took them to 16 MB.
SIZE_GOAL = 20 * 1000 * 1000


def test_image_sizes_are_under_the_goal(images):
    for image, size in images.items():
        print(f"{image}: {size / 1e6:.1f} MB")
        assert size < SIZE_GOAL, f"{image} is {size} bytes"


def test_images_run_as_non_root_with_a_volume_and_no_entrypoint(images):
    for image, ports in ((BROKER, {"9092/tcp", "9644/tcp"}), (COORDINATOR, {"2181/tcp"})):
        config = json.loads(run("docker", "image", "inspect", image).stdout)[0]["Config"]
        assert config["User"] == "1000:1000"
        assert set(config["Volumes"]) == {"/var/lib/gregor"}
        assert set(config["ExposedPorts"]) == ports
        # No ENTRYPOINT, so `docker run IMAGE kafka-topics.sh ...` runs the tool.
        assert not config.get("Entrypoint")
        assert config["Healthcheck"]["Test"][:2] == ["CMD", "gregor"]
        assert config["Labels"]["org.opencontainers.image.version"]
        assert "PATH=/usr/local/bin" in config["Env"]


def test_kafka_named_tools_run_in_the_scratch_image(images):
    # A scratch image has no shell: the Kafka names are links to the binary.
    proc = run("docker", "run", "--rm", BROKER, "kafka-topics.sh", "--help")
    assert "kafka-topics.sh" in proc.stdout + proc.stderr


def test_docker_stop_is_graceful_and_leaves_clean_shutdown_markers(dock):
    broker = dock.run(BROKER, name="stop")
    dock.wait_healthy(broker)
    ip = dock.ip(broker)
    run("kcat", "-b", f"{ip}:9092", "-P", "-t", "stopped", input="one\ntwo\n")

    started = time.monotonic()
    run("docker", "stop", broker, timeout=30)
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"docker stop took {elapsed:.1f} s (SIGKILL after 10 s)"
    assert dock.inspect(broker, "{{ .State.ExitCode }}") == "0", dock.logs(broker)
    assert "broker stopped cleanly" in dock.logs(broker)
    # docker cp reads a stopped container's volume.
    marker = run("docker", "cp", f"{broker}:/var/lib/gregor/stopped-0/.clean_shutdown", "-",
                 check=False)
    assert marker.returncode == 0, marker.stderr


def test_coordinator_stops_gracefully_and_quickly(dock):
    coordinator = dock.run(COORDINATOR, name="cstop")
    dock.wait_healthy(coordinator)
    started = time.monotonic()
    run("docker", "stop", coordinator, timeout=30)
    assert time.monotonic() - started < 10
    assert dock.inspect(coordinator, "{{ .State.ExitCode }}") == "0", dock.logs(coordinator)


def test_named_volume_is_writable_by_the_non_root_user_and_keeps_data(dock):
    volume = dock.volume("data")
    first = dock.run("-v", f"{volume}:/var/lib/gregor", BROKER, name="vol1")
    dock.wait_healthy(first)
    run("kcat", "-b", f"{dock.ip(first)}:9092", "-P", "-t", "kept", input="survives\n")
    run("docker", "rm", "-f", first)

    second = dock.run("-v", f"{volume}:/var/lib/gregor", BROKER, name="vol2")
    dock.wait_healthy(second)
    proc = run("kcat", "-b", f"{dock.ip(second)}:9092", "-C", "-t", "kept", "-e", timeout=30)
    assert proc.stdout.splitlines() == ["survives"]


def test_unwritable_bind_mount_is_refused_with_one_line(images):
    with tempfile.TemporaryDirectory() as host_dir:
        # root-owned 0755: uid 1000 in the container may not write.
        subprocess.run(["chmod", "0755", host_dir], check=True)
        proc = run("docker", "run", "--rm", "-v", f"{host_dir}:/var/lib/gregor", BROKER,
                   check=False, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gregor: ")]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert "/var/lib/gregor" in line and "uid 1000" in line and "chown" in line, line


def test_wildcard_listener_advertises_the_container_address(dock):
    broker = dock.run(BROKER, name="adv")
    dock.wait_healthy(broker)
    ip = dock.ip(broker)
    metadata = run("kcat", "-b", f"{ip}:9092", "-L", "-J").stdout
    brokers = json.loads(metadata)["brokers"]
    assert [b["name"] for b in brokers] == [f"{ip}:9092"]


def test_names_resolve_inside_scratch_for_links_and_network_aliases(dock):
    # The admin port binds to loopback unless configured; opened here so
    # that other containers can reach it by name.
    broker = dock.run("-e", "KAFKA_ADMIN_LISTENER=0.0.0.0:9644", BROKER, name="dns")
    dock.wait_healthy(broker)
    # A legacy --link alias (an /etc/hosts entry).
    run("docker", "run", "--rm", "--link", f"{broker}:kafkalink", BROKER,
        "gregor", "healthcheck", "--address", "kafkalink:9644")
    # A user-defined network's alias (Docker's DNS server), as compose uses.
    network = dock.network("net")
    run("docker", "network", "connect", "--alias", "brokersvc", network, broker)
    run("docker", "run", "--rm", "--network", network, BROKER,
        "gregor", "healthcheck", "--address", "brokersvc:9644")
    unknown = run("docker", "run", "--rm", "--network", network, BROKER,
                  "gregor", "healthcheck", "--address", "no-such-host:9644", check=False)
    assert unknown.returncode != 0


def test_client_on_another_network_uses_the_published_port_and_advertised_address(dock):
    """The "other machine": a client container on a second network that can
    reach the broker only through the host's published port."""
    client_net = dock.network("other")
    gateway = run("docker", "network", "inspect", "--format",
                  "{{ (index .IPAM.Config 0).Gateway }}", client_net).stdout.strip()
    port = free_port()
    broker = dock.run("-p", f"{port}:9092",
                      "-e", f"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{gateway}:{port}",
                      BROKER, name="published")
    dock.wait_healthy(broker)
    tool = ["docker", "run", "--rm", "-i", "--network", client_net, BROKER]
    run(*tool, "kafka-topics.sh", "--create", "--topic", "far", "--partitions", "1",
        "--replication-factor", "1", "--bootstrap-server", f"{gateway}:{port}", timeout=60)
    run(*tool, "kafka-console-producer.sh", "--topic", "far", "--broker-list",
        f"{gateway}:{port}", input="from far away\n", timeout=60)
    proc = run(*tool, "kafka-console-consumer.sh", "--topic", "far", "--from-beginning",
               "--bootstrap-server", f"{gateway}:{port}", "--max-messages", "1", timeout=60)
    assert proc.stdout.splitlines() == ["from far away"]
