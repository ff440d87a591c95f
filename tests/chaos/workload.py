"""The chaos workload: clients that log every operation to a JSONL history.

Each role runs in a process of its own (`python workload.py ROLE ...`), so
one client library's threads never slow another's, and writes its own
history file; the runner merges them by time. Roles:

    confluent-producer   idempotent acks=all producer on librdkafka
    kafka-python-producer idempotent acks=all producer on kafka-python
    assign-consumer      confluent-kafka consumer assigned every partition from 0
    subscribe-consumer   kafka-python consumer in a group, committing after each poll
    prober               ListOffsets (end offsets) and the group's committed offsets

Values are unique: "<process>-<n>". A producer's error is logged as `info`
(it may or may not have been written) unless the client refused the record
before sending it (`fail`). SIGTERM stops a role: producers flush first.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time

TOPIC = "chaos"
GROUP = "chaos-subscribe"


class HistoryWriter:
    """Appends operations to a JSONL file, one flushed line each (a process
    killed mid-run keeps everything it logged)."""

    def __init__(self, path, process):
        self.file = open(path, "a", buffering=1)
        self.process = process
        self.lock = threading.Lock()

    def log(self, type_, f, **fields):
        op = {"time": time.time(), "process": fields.pop("process", self.process),
              "type": type_, "f": f, **fields}
        line = json.dumps(op)
        with self.lock:
            self.file.write(line + "\n")
        return op


class Stop:
    def __init__(self):
        self.flag = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: self.flag.set())
        signal.signal(signal.SIGINT, lambda *_: self.flag.set())

    def __bool__(self):
        return self.flag.is_set()


def confluent_producer(args, stop):
    from confluent_kafka import KafkaError, Producer

    rng = random.Random(args.seed)
    generation = 0
    fatal = threading.Event()

    def on_error(err):
        if err.fatal():
            fatal.set()

    def make():
        return Producer({
            "bootstrap.servers": args.bootstrap,
            "enable.idempotence": bool(args.idempotence),
            "acks": args.acks,
            "linger.ms": 5,
            "message.timeout.ms": args.send_timeout_ms,
            "retry.backoff.ms": 100,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "error_cb": on_error,
        })

    log = HistoryWriter(args.history, args.process)
    producer, process = make(), args.process
    n = 0
    while not stop:
        if fatal.is_set():
            # A fatal idempotence error leaves the producer unusable; its
            # queued messages fail as indeterminate. A new instance is a new
            # process for the checker (a new producer id).
            log.log("info", "producer_fatal", process=process)
            producer.flush(5)
            fatal.clear()
            generation += 1
            producer, process = make(), f"{args.process}.{generation}"
        value = f"{process}-{n}"
        n += 1
        partition = rng.randrange(args.partitions)

        def delivered(err, msg, value=value, partition=partition, process=process):
            if err is None:
                log.log("ok", "send", process=process, topic=args.topic, partition=partition,
                        value=value, offset=msg.offset())
            else:
                log.log("info", "send", process=process, topic=args.topic, partition=partition,
                        value=value, error=err.str())

        log.log("invoke", "send", process=process, topic=args.topic, partition=partition, value=value)
        try:
            producer.produce(args.topic, value=value.encode(), partition=partition, on_delivery=delivered)
        except BufferError as e:
            log.log("fail", "send", process=process, topic=args.topic, partition=partition,
                    value=value, error=str(e))
        except Exception as e:  # noqa: BLE001 - a KafkaException before queueing: never sent
            code = e.args[0].code() if e.args and hasattr(e.args[0], "code") else None
            log.log("fail", "send", process=process, topic=args.topic, partition=partition,
                    value=value, error=str(e))
            if code == KafkaError._FATAL:
                fatal.set()
        producer.poll(0)
        stop.flag.wait(1.0 / args.rate)
    producer.flush(args.send_timeout_ms / 1000)


def kafka_python_producer(args, stop):
    from kafka import KafkaProducer

    rng = random.Random(args.seed)
    log = HistoryWriter(args.history, args.process)
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        enable_idempotence=bool(args.idempotence),
        acks=int(args.acks) if args.acks.lstrip("-").isdigit() else args.acks,
        retries=2147483647,
        linger_ms=5,
        max_in_flight_requests_per_connection=5,
        delivery_timeout_ms=args.send_timeout_ms,
        request_timeout_ms=min(10000, args.send_timeout_ms - 1000),
        max_block_ms=5000,
        retry_backoff_ms=100,
        reconnect_backoff_max_ms=500,
    )
    n = 0
    while not stop:
        value = f"{args.process}-{n}"
        n += 1
        partition = rng.randrange(args.partitions)
        fields = dict(topic=args.topic, partition=partition, value=value)
        log.log("invoke", "send", **fields)
        try:
            future = producer.send(args.topic, value=value.encode(), partition=partition)
        except Exception as e:  # noqa: BLE001 - refused before it was queued (metadata, buffer)
            log.log("fail", "send", error=repr(e), **fields)
        else:
            future.add_callback(lambda md, fields=fields: log.log("ok", "send", offset=md.offset, **fields))
            future.add_errback(lambda e, fields=fields: log.log("info", "send", error=repr(e), **fields))
        stop.flag.wait(1.0 / args.rate)
    producer.flush(timeout=args.send_timeout_ms / 1000)
    producer.close(timeout=5)


def assign_consumer(args, stop):
    from confluent_kafka import Consumer, TopicPartition

    log = HistoryWriter(args.history, args.process)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"{args.process}-unused",  # assign mode: never joins, never commits
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "reconnect.backoff.max.ms": 500,
    })
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    for p in range(args.partitions):
        log.log("ok", "seek", topic=args.topic, partition=p, offset=0)
    while not stop:
        batch = consumer.consume(num_messages=1000, timeout=0.5)
        records: dict[int, list] = {}
        for msg in batch:
            if msg.error():
                log.log("info", "poll", mode="assign", error=msg.error().str())
                continue
            records.setdefault(msg.partition(), []).append([msg.offset(), msg.value().decode()])
        for p, recs in records.items():
            log.log("ok", "poll", topic=args.topic, partition=p, mode="assign", records=recs)
    consumer.close()


def subscribe_consumer(args, stop):
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata

    log = HistoryWriter(args.history, args.process)
    consumer = KafkaConsumer(args.topic, bootstrap_servers=args.bootstrap, group_id=GROUP,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             reconnect_backoff_max_ms=500, request_timeout_ms=10000)
    while not stop:
        try:
            batch = consumer.poll(timeout_ms=500)
        except Exception as e:  # noqa: BLE001 - the broker went away mid-poll
            log.log("info", "poll", mode="subscribe", error=repr(e))
            stop.flag.wait(0.2)
            continue
        commits = {}
        for tp, msgs in batch.items():
            log.log("ok", "poll", topic=tp.topic, partition=tp.partition, mode="subscribe",
                    records=[[m.offset, m.value.decode()] for m in msgs])
            commits[tp] = OffsetAndMetadata(msgs[-1].offset + 1, "", -1)
        if not commits:
            continue
        for tp, om in commits.items():
            log.log("invoke", "commit", topic=tp.topic, partition=tp.partition, group=GROUP, offset=om.offset)
        try:
            consumer.commit(commits)
        except Exception as e:  # noqa: BLE001 - indeterminate: it may have been stored
            for tp, om in commits.items():
                log.log("info", "commit", topic=tp.topic, partition=tp.partition, group=GROUP,
                        offset=om.offset, error=repr(e))
        else:
            for tp, om in commits.items():
                log.log("ok", "commit", topic=tp.topic, partition=tp.partition, group=GROUP, offset=om.offset)
    consumer.close(autocommit=False)


def prober(args, stop):
    from confluent_kafka import Consumer, TopicPartition

    log = HistoryWriter(args.history, args.process)
    # group.id names the subscribe consumer's group for committed(); this
    # consumer never subscribes, so it never joins that group.
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": GROUP,
                         "enable.auto.commit": False, "reconnect.backoff.max.ms": 500})
    tps = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    while not stop:
        for tp in tps:
            fields = dict(topic=args.topic, partition=tp.partition)
            log.log("invoke", "list_offsets", **fields)
            try:
                _, high = consumer.get_watermark_offsets(tp, timeout=2, cached=False)
            except Exception as e:  # noqa: BLE001
                log.log("fail", "list_offsets", error=str(e), **fields)
            else:
                log.log("ok", "list_offsets", offset=high, **fields)
        for tp in tps:
            log.log("invoke", "committed", group=GROUP, topic=args.topic, partition=tp.partition)
        try:
            committed = consumer.committed(tps, timeout=2)
        except Exception as e:  # noqa: BLE001
            for tp in tps:
                log.log("fail", "committed", group=GROUP, topic=args.topic, partition=tp.partition, error=str(e))
        else:
            for tp in committed:
                offset = tp.offset if tp.offset >= 0 else None  # none committed yet
                log.log("ok", "committed", group=GROUP, topic=args.topic, partition=tp.partition, offset=offset)
        stop.flag.wait(args.probe_interval)
    consumer.close()


def final_read(bootstrap, topic, partitions, needed, history_path, timeout_s=60.0):
    """Reads every partition from offset 0 to its end offset, retrying until
    the end covers `needed[p]` (one past the highest acknowledged offset) or
    the time is up. Logs `final` polls; returns {partition: end offset read}
    and whether everything needed was covered."""
    from confluent_kafka import Consumer, TopicPartition

    log = HistoryWriter(history_path, "final")
    # Waiting for an end offset that never comes (an acks=1 run loses
    # acknowledged writes) must not eat the time the other partitions need
    # to be read: the wait has one deadline, each partition's read its own.
    wait_deadline = time.time() + timeout_s
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-final",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    ends = {}
    try:
        for p in range(partitions):
            tp = TopicPartition(topic, p)
            end = -1
            while True:
                try:
                    end = consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1]
                except Exception:  # noqa: BLE001 - not reachable yet
                    pass
                if end >= needed.get(p, 0) or time.time() >= wait_deadline:
                    break
                time.sleep(0.5)
            consumer.assign([TopicPartition(topic, p, 0)])
            got, records = 0, []
            read_deadline = time.time() + max(30.0, timeout_s / 2)
            while got < end and time.time() < read_deadline:
                for msg in consumer.consume(num_messages=1000, timeout=1.0):
                    if msg.error():
                        continue
                    records.append([msg.offset(), msg.value().decode()])
                    got = msg.offset() + 1
            log.log("ok", "poll", topic=topic, partition=p, mode="assign", final=True, records=records)
            ends[p] = got
            consumer.unassign()
    finally:
        consumer.close()
    covered = all(ends.get(p, 0) >= needed.get(p, 0) for p in range(partitions))
    return ends, covered


ROLES = {
    "confluent-producer": confluent_producer,
    "kafka-python-producer": kafka_python_producer,
    "assign-consumer": assign_consumer,
    "subscribe-consumer": subscribe_consumer,
    "prober": prober,
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=sorted(ROLES))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--history", required=True)
    ap.add_argument("--process", required=True)
    ap.add_argument("--topic", default=TOPIC)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=50.0, help="sends per second (producers)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--send-timeout-ms", type=int, default=30000)
    ap.add_argument("--acks", default="all", help="all, 1 or 0")
    ap.add_argument("--idempotence", type=int, choices=[0, 1], default=1,
                    help="0: plain retrying producers (to show what idempotence prevents)")
    ap.add_argument("--probe-interval", type=float, default=0.25)
    args = ap.parse_args(argv)
    if os.environ.get("CHAOS_CLIENT_DEBUG"):
        # the clients' own logs, into the role's .log file next to its history
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ROLES[args.role](args, Stop())


if __name__ == "__main__":
    sys.exit(main())
