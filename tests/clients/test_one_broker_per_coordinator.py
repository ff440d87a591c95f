"""Until brokers replicate, a coordinator serves one broker: a second one is
refused with one line and exits non-zero, while the first keeps serving and
can still restart."""
import subprocess

from test_coordinator import (  # noqa: F401  (processes is the fixture)
    broker_entry, consume, create_topic, processes, produce,
)


def start_and_wait_for_exit(broker, timeout=20):
    broker.log = open(broker.log_path, "ab")
    broker.proc = subprocess.Popen(broker.args(), env=broker.env, stdout=broker.log,
                                   stderr=broker.log)
    try:
        return broker.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the second broker kept running:\n{broker.output()}")


def test_a_second_broker_id_is_refused_in_one_line_and_the_first_keeps_serving(processes):  # noqa: F811,E501
    coordinator = processes.coordinator()
    first = processes.broker(coordinator)
    create_topic(first.bootstrap, "kept")
    second = processes.broker(coordinator, start=False)
    second.extra += ["--override", "node.id=1"]
    assert start_and_wait_for_exit(second) != 0
    lines = [line for line in second.output().splitlines()
             if "one broker per coordinator" in line]
    assert len(lines) == 1, second.output()
    assert "coordinator already has live broker 0" in lines[0]
    assert [b["id"] for b in coordinator.cluster()["brokers"]] == [0]

    produce(first.bootstrap, "kept", [b"still", b"serving"])
    assert consume(first.bootstrap, "kept", 2) == [b"still", b"serving"]


def test_the_same_id_from_another_data_dir_is_a_duplicate_registration(processes):  # noqa: F811
    coordinator = processes.coordinator()
    first = processes.broker(coordinator)
    epoch = broker_entry(coordinator.cluster())["epoch"]
    twin = processes.broker(coordinator, start=False)
    assert start_and_wait_for_exit(twin) != 0
    assert "DUPLICATE_BROKER_REGISTRATION" in twin.output(), twin.output()
    assert broker_entry(coordinator.cluster())["epoch"] == epoch

    # The real broker restarting from its own data directory is not a twin,
    # even before its old lease has run out.
    first.restart()
    assert broker_entry(coordinator.cluster())["epoch"] > epoch
    assert broker_entry(coordinator.cluster())["fenced"] is False
