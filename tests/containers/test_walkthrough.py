"""scripts/walkthrough-docker.sh: the tutorial's container section with our
images, end to end, with its output checked."""
import os
import uuid

from conftest import SCRIPTS, free_port, run


def test_tutorial_container_walkthrough(images):
    prefix = f"gregortest-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, ZK_NAME=f"{prefix}-zookeeper", KAFKA_NAME=f"{prefix}-kafka",
               HOST_PORT=str(free_port()), TOPIC="test")
    proc = run(str(SCRIPTS / "walkthrough-docker.sh"), env=env, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 0, output
    # What the tutorial shows: --list prints the topic, the consumer prints the lines.
    assert "\ntest\n" in proc.stdout
    assert "This is a message\nThis is another message\n" in proc.stdout
    assert "walkthrough: linked containers OK" in output
    assert "walkthrough: published port OK" in output
    leftovers = run("docker", "ps", "-aq", "--filter", f"name={prefix}").stdout.strip()
    assert not leftovers, "the script left containers behind"
