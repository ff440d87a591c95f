"""The judge is known to work: the chaos checker (tests/chaos/checker.py)
run on a deliberately broken build must report lost acknowledged writes.

The break (debug builds only, `GREGOR_DEBUG_BREAK_HIGH_WATERMARK=1`): the
leader advances the high watermark to its own log end without waiting for
the ISR, so `acks=all` is answered before any follower has the batch —
the bug a replicated log must never have. Three brokers, RF=3,
min.insync.replicas=2: both followers are stopped (SIGSTOP) and their
pending fetches drained, an idempotent
acks=all producer is acknowledged by the broken leader alone, the leader is
killed (-9) and the followers resumed; the controller elects one of them
(still in the ISR), which never had the batches. The checker, fed the
history, finds every acknowledged write lost. The same steps on the real
build never acknowledge those sends, and the checker finds nothing."""
import signal
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import Producer as CKProducer
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_brokers import Cluster
from test_coordinator import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
import checker  # noqa: E402

TOPIC = "judged"
SENDS = 20


def start_cluster(tmp_path, broken):
    cluster = Cluster(tmp_path)
    for broker_id in range(3):
        broker = cluster.add_broker(broker_id, start=False)
        if broken:
            broker.env["GREGOR_DEBUG_BREAK_HIGH_WATERMARK"] = "1"
        broker.start()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(0)})
    admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=3,
                                  config={"min.insync.replicas": "2"})])[TOPIC].result(timeout=20)
    wait_until(lambda: (lambda p: p.leader >= 0 and len(p.isrs) == 3)(metadata(cluster, 0)), timeout=20)
    return cluster


def metadata(cluster, via):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(via)})
    return admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0]


def produce_while_followers_stopped(cluster, leader, history):
    """Stops the followers, sends with acks=all for a few seconds, logs
    invoke/ok/fail as the chaos workload does, then kills the leader and
    resumes the followers."""
    followers = [b for b in cluster.brokers if b != leader]
    for b in followers:
        cluster.brokers[b].proc.send_signal(signal.SIGSTOP)
    # A fetch a follower sent just before it stopped waits at the leader up
    # to 500 ms and would be answered with the new batches into its socket,
    # to be read when it resumes: let those answers go out empty first.
    # (Killing the followers instead would drop them from the ISR when they
    # register again, and nobody could be elected.)
    time.sleep(1.5)
    producer = CKProducer({"bootstrap.servers": cluster.bootstrap(leader), "acks": "all",
                           "enable.idempotence": True, "linger.ms": 0,
                           "message.timeout.ms": 6000})

    def delivered(error, message):
        value = message.value().decode()
        if error is None:
            history.append({"time": time.time(), "process": "p", "type": "ok", "f": "send",
                            "topic": TOPIC, "partition": 0, "value": value, "offset": message.offset()})
        else:
            history.append({"time": time.time(), "process": "p", "type": "info", "f": "send",
                            "topic": TOPIC, "partition": 0, "value": value})

    for i in range(SENDS):
        value = f"v{i}"
        history.append({"time": time.time(), "process": "p", "type": "invoke", "f": "send",
                        "topic": TOPIC, "partition": 0, "value": value})
        producer.produce(TOPIC, value.encode(), partition=0, on_delivery=delivered)
        producer.poll(0)
    producer.flush(3)
    cluster.brokers[leader].kill9()
    for b in followers:
        cluster.brokers[b].proc.send_signal(signal.SIGCONT)
    producer.flush(10)
    return followers


def final_read(cluster, via, history):
    """Waits for a new leader, then reads the partition from the start, as
    the harness's final read."""
    new = wait_until(lambda: (lambda p: p if p.leader in via else None)(metadata(cluster, via[0])),
                     timeout=40, interval=0.5)
    consumer = CKConsumer({"bootstrap.servers": cluster.bootstrap(new.leader), "group.id": "judge",
                           "enable.auto.commit": False})
    consumer.assign([CKTopicPartition(TOPIC, 0, 0)])
    records, deadline = [], time.time() + 5
    while time.time() < deadline:
        for m in consumer.consume(100, timeout=0.5):
            if not m.error():
                records.append([m.offset(), m.value().decode()])
    consumer.close()
    history.append({"time": time.time(), "process": "final", "type": "ok", "f": "poll",
                    "topic": TOPIC, "partition": 0, "mode": "assign", "final": True,
                    "records": records})


@pytest.mark.parametrize("broken", [True, False], ids=["broken-build", "real-build"])
def test_the_checker_catches_a_high_watermark_that_outruns_the_isr(tmp_path, broken):
    cluster = start_cluster(tmp_path, broken)
    try:
        history = []
        leader = metadata(cluster, 0).leader
        followers = produce_while_followers_stopped(cluster, leader, history)
        final_read(cluster, followers, history)
    finally:
        cluster.stop_all()
    results = {r.name: r for r in checker.check_all(checker.index_history(history))}
    acknowledged = [op for op in history if op["f"] == "send" and op["type"] == "ok"]
    if broken:
        # The broken leader acknowledged alone, and the checker says what
        # was lost.
        assert len(acknowledged) == SENDS, history
        assert results["no_lost_writes"].anomalies and len(results["no_lost_writes"].anomalies) == SENDS
    else:
        # Nothing was acknowledged that the ISR did not have, so nothing
        # acknowledged is missing.
        assert not acknowledged, acknowledged
        assert not results["no_lost_writes"].anomalies
