"""Client workloads for the failover tests: for each client library a
producer and a consumer-group member that run in the background and log
every operation to one history in the chaos checker's format
(tests/chaos/checker.py): `invoke` before acting, then `ok` (with the
offset a send landed at, or the records a poll returned), `fail` (certainly
not done) or `info` (indeterminate).

Values are unique (`<process>-<n>`) and sent round-robin over the
partitions. Producers use acks=all; those that can be idempotent are.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time

SEND_INTERVAL = 0.02
# A request to a broker that stopped (SIGSTOP) hangs until this timeout
# (librdkafka's default is 60 s) before the client looks for another leader.
REQUEST_TIMEOUT_MS = 10000


class History:
    """Operations in memory and, one flushed line each, in a JSONL file
    (the file is what a failed test leaves to read)."""

    def __init__(self, path):
        self.path = path
        self.file = open(path, "a", buffering=1)
        self.lock = threading.Lock()
        self.ops = []

    def log(self, process, type_, f, **fields):
        op = {"time": time.time(), "process": process, "type": type_, "f": f, **fields}
        with self.lock:
            self.ops.append(op)
            self.file.write(json.dumps(op) + "\n")
        return op

    def acknowledged(self, partition=None, process=None):
        """How many sends were acknowledged (to one partition, by one process)."""
        with self.lock:
            return sum(1 for op in self.ops if op["f"] == "send" and op["type"] == "ok"
                       and (partition is None or op["partition"] == partition)
                       and (process is None or op["process"].startswith(process)))

    def read(self, process=None):
        """How many records group members returned (one member's, if named)."""
        with self.lock:
            return sum(len(op["records"]) for op in self.ops if op["f"] == "poll"
                       and op["type"] == "ok" and not op.get("final")
                       and (process is None or op["process"] == process))

    def close(self):
        self.file.close()


class Worker:
    """A background loop: `run()` until `stop` is set, then `finish()`."""

    def __init__(self, history, process, topic, partitions, bootstrap):
        self.history, self.process = history, process
        self.topic, self.partitions, self.bootstrap = topic, partitions, bootstrap
        self.stop_flag = threading.Event()
        self.thread = None
        self.error = None

    def start(self):
        self.thread = threading.Thread(target=self._main, name=self.process, daemon=True)
        self.thread.start()
        return self

    def _main(self):
        try:
            self.run()
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def stop(self, timeout=90):
        self.stop_flag.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.process} did not stop"
        assert self.error is None, f"{self.process} failed: {self.error!r}"

    def log(self, type_, f, **fields):
        return self.history.log(self.process, type_, f, topic=self.topic, **fields)

    def values(self):
        """(partition, value) to send next, forever."""
        n = 0
        while True:
            yield n % self.partitions, f"{self.process}-{n}"
            n += 1


# ----------------------------------------------------------- confluent-kafka

class ConfluentProducer(Worker):
    """librdkafka, idempotent, acks=all."""

    def run(self):
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5,
                             "message.timeout.ms": 120000, "retry.backoff.ms": 100,
                             "reconnect.backoff.max.ms": 500,
                             "request.timeout.ms": REQUEST_TIMEOUT_MS,
                             "socket.timeout.ms": REQUEST_TIMEOUT_MS})
        for partition, value in self.values():
            if self.stop_flag.is_set():
                break

            def delivered(error, message, partition=partition, value=value):
                if error is None:
                    self.log("ok", "send", partition=partition, value=value, offset=message.offset())
                else:
                    self.log("info", "send", partition=partition, value=value, error=error.str())

            self.log("invoke", "send", partition=partition, value=value)
            producer.produce(self.topic, value.encode(), partition=partition, on_delivery=delivered)
            producer.poll(0)
            self.stop_flag.wait(SEND_INTERVAL)
        assert producer.flush(120) == 0


class ConfluentGroupMember(Worker):
    """A subscribed consumer committing what each poll returned, synchronously."""

    def __init__(self, *args, group):
        super().__init__(*args)
        self.group = group

    def run(self):
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                             "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "session.timeout.ms": 10000, "reconnect.backoff.max.ms": 500,
                             "socket.timeout.ms": REQUEST_TIMEOUT_MS})
        consumer.subscribe([self.topic])
        while not self.stop_flag.is_set():
            records = {}
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    records.setdefault(message.partition(), []).append(
                        [message.offset(), message.value().decode()])
            if not records:
                continue
            for partition, got in records.items():
                self.log("ok", "poll", partition=partition, mode="subscribe", records=got)
            offsets = {p: got[-1][0] + 1 for p, got in records.items()}
            for p, offset in offsets.items():
                self.log("invoke", "commit", partition=p, group=self.group, offset=offset)
            try:
                consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                                asynchronous=False)
            except KafkaException as e:
                outcome, error = "info", str(e)
            else:
                outcome, error = "ok", None
            for p, offset in offsets.items():
                self.log(outcome, "commit", partition=p, group=self.group, offset=offset, error=error)
        consumer.close()


class CommittedProbe(Worker):
    """Reads a group's committed offsets (OffsetFetch) and the end offsets
    (ListOffsets) over and over, for the checker's monotonicity checks."""

    def __init__(self, *args, groups):
        super().__init__(*args)
        self.groups = groups

    def run(self):
        from confluent_kafka import Consumer, TopicPartition

        consumers = {g: Consumer({"bootstrap.servers": self.bootstrap, "group.id": g,
                                  "enable.auto.commit": False, "reconnect.backoff.max.ms": 500})
                     for g in self.groups}
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        any_consumer = next(iter(consumers.values()))
        while not self.stop_flag.is_set():
            for tp in tps:
                self.log("invoke", "list_offsets", partition=tp.partition)
                try:
                    high = any_consumer.get_watermark_offsets(tp, timeout=2, cached=False)[1]
                except Exception as e:  # noqa: BLE001 - no leader right now
                    self.log("fail", "list_offsets", partition=tp.partition, error=str(e))
                else:
                    self.log("ok", "list_offsets", partition=tp.partition, offset=high)
            for group, consumer in consumers.items():
                for tp in tps:
                    self.log("invoke", "committed", partition=tp.partition, group=group)
                try:
                    found = consumer.committed(tps, timeout=2)
                except Exception as e:  # noqa: BLE001 - the coordinator is moving
                    for tp in tps:
                        self.log("fail", "committed", partition=tp.partition, group=group, error=str(e))
                    continue
                for tp in found:
                    self.log("ok", "committed", partition=tp.partition, group=group,
                             offset=tp.offset if tp.offset >= 0 else None)
            self.stop_flag.wait(0.25)
        for consumer in consumers.values():
            consumer.close()


# -------------------------------------------------------------- kafka-python

class KafkaPythonProducer(Worker):
    """kafka-python with acks=all. At api_version (0, 10, 1) there is no
    idempotence (Produce v2): it retries, one request in flight so a retry
    cannot overtake, and a retried batch the broker had already written is
    written twice. Otherwise it is idempotent."""

    def __init__(self, *args, api_version=None):
        super().__init__(*args)
        self.api_version = api_version

    def run(self):
        from kafka import KafkaProducer

        version = {"api_version": self.api_version, "max_in_flight_requests_per_connection": 1} \
            if self.api_version else {"enable_idempotence": True}
        producer = KafkaProducer(bootstrap_servers=self.bootstrap.split(","), acks="all",
                                 retries=2**31 - 1, linger_ms=5, retry_backoff_ms=100,
                                 reconnect_backoff_max_ms=500, request_timeout_ms=REQUEST_TIMEOUT_MS,
                                 delivery_timeout_ms=120000, max_block_ms=60000, **version)
        for partition, value in self.values():
            if self.stop_flag.is_set():
                break
            self.log("invoke", "send", partition=partition, value=value)
            future = producer.send(self.topic, value.encode(), partition=partition)
            future.add_callback(lambda md, p=partition, v=value: self.log(
                "ok", "send", partition=p, value=v, offset=md.offset))
            future.add_errback(lambda e, p=partition, v=value: self.log(
                "info", "send", partition=p, value=v, error=repr(e)))
            self.stop_flag.wait(SEND_INTERVAL)
        producer.flush(timeout=120)
        producer.close(timeout=10)


class KafkaPythonGroupMember(Worker):
    def __init__(self, *args, group, api_version=None):
        super().__init__(*args)
        self.group, self.api_version = group, api_version

    def run(self):
        from kafka import KafkaConsumer
        from kafka.structs import OffsetAndMetadata, TopicPartition

        version = {"api_version": self.api_version} if self.api_version else {}
        consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap.split(","),
                                 group_id=self.group, enable_auto_commit=False,
                                 auto_offset_reset="earliest", session_timeout_ms=10000,
                                 heartbeat_interval_ms=1000, request_timeout_ms=15000,
                                 reconnect_backoff_max_ms=500, **version)
        while not self.stop_flag.is_set():
            try:
                batch = consumer.poll(timeout_ms=500)
            except Exception as e:  # noqa: BLE001 - the broker went away mid-poll
                self.log("info", "poll", mode="subscribe", error=repr(e))
                self.stop_flag.wait(0.2)
                continue
            offsets = {}
            for tp, messages in batch.items():
                self.log("ok", "poll", partition=tp.partition, mode="subscribe",
                         records=[[m.offset, m.value.decode()] for m in messages])
                offsets[tp.partition] = messages[-1].offset + 1
            if not offsets:
                continue
            for p, offset in offsets.items():
                self.log("invoke", "commit", partition=p, group=self.group, offset=offset)
            try:
                consumer.commit({TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
                                 for p, o in offsets.items()})
            except Exception as e:  # noqa: BLE001 - indeterminate: it may have been stored
                outcome, error = "info", repr(e)
            else:
                outcome, error = "ok", None
            for p, offset in offsets.items():
                self.log(outcome, "commit", partition=p, group=self.group, offset=offset, error=error)
        consumer.close(autocommit=False)


# ------------------------------------------------------------------ aiokafka

class AiokafkaProducer(Worker):
    """aiokafka, idempotent, acks=all."""

    def run(self):
        asyncio.run(self.produce())

    async def produce(self):
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=5, retry_backoff_ms=100,
                                    request_timeout_ms=3 * REQUEST_TIMEOUT_MS)
        await producer.start()
        pending = set()
        try:
            for partition, value in self.values():
                if self.stop_flag.is_set():
                    break
                self.log("invoke", "send", partition=partition, value=value)
                future = await producer.send(self.topic, value.encode(), partition=partition)
                future.add_done_callback(lambda f, p=partition, v=value: self.delivered(f, p, v))
                pending.add(future)
                pending = {f for f in pending if not f.done()}
                await asyncio.sleep(SEND_INTERVAL)
            if pending:
                await asyncio.wait(pending, timeout=120)
        finally:
            await producer.stop()

    def delivered(self, future, partition, value):
        if future.cancelled() or future.exception() is not None:
            error = "cancelled" if future.cancelled() else repr(future.exception())
            self.log("info", "send", partition=partition, value=value, error=error)
        else:
            self.log("ok", "send", partition=partition, value=value, offset=future.result().offset)


class AiokafkaGroupMember(Worker):
    def __init__(self, *args, group):
        super().__init__(*args)
        self.group = group

    def run(self):
        asyncio.run(self.consume())

    async def consume(self):
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                    group_id=self.group, enable_auto_commit=False,
                                    auto_offset_reset="earliest", session_timeout_ms=10000,
                                    heartbeat_interval_ms=1000, retry_backoff_ms=100)
        await consumer.start()
        try:
            while not self.stop_flag.is_set():
                try:
                    batch = await consumer.getmany(timeout_ms=500)
                except Exception as e:  # noqa: BLE001 - the broker went away mid-poll
                    self.log("info", "poll", mode="subscribe", error=repr(e))
                    await asyncio.sleep(0.2)
                    continue
                offsets = {}
                for tp, messages in batch.items():
                    if not messages:
                        continue
                    self.log("ok", "poll", partition=tp.partition, mode="subscribe",
                             records=[[m.offset, m.value.decode()] for m in messages])
                    offsets[tp.partition] = messages[-1].offset + 1
                if not offsets:
                    continue
                for p, offset in offsets.items():
                    self.log("invoke", "commit", partition=p, group=self.group, offset=offset)
                try:
                    await consumer.commit({TopicPartition(self.topic, p): o for p, o in offsets.items()})
                except Exception as e:  # noqa: BLE001 - indeterminate
                    outcome, error = "info", repr(e)
                else:
                    outcome, error = "ok", None
                for p, offset in offsets.items():
                    self.log(outcome, "commit", partition=p, group=self.group, offset=offset, error=error)
        finally:
            await consumer.stop()


# ---------------------------------------------------------------------- kcat

DELIVERED = re.compile(r"% Message delivered to partition (\d+) \(offset (-?\d+)\)")
DELIVERY_FAILED = re.compile(r"% Delivery failed for message: (.*)")


class KcatProducer(Worker):
    """One `kcat -P` per partition (idempotent, acks=all), fed a line at a
    time. kcat -vvv reports each delivery with its offset but not its
    value; an idempotent producer reports one partition's messages in the
    order they were sent, so the n-th report is the n-th line."""

    def run(self):
        procs = {}
        pending = {p: [] for p in range(self.partitions)}
        lock = threading.Lock()
        readers = []
        for p in range(self.partitions):
            procs[p] = subprocess.Popen(
                ["kcat", "-b", self.bootstrap, "-P", "-t", self.topic, "-p", str(p), "-vvv", "-E",
                 "-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=5",
                 "-X", "message.timeout.ms=120000", "-X", "reconnect.backoff.max.ms=500",
                 "-X", f"request.timeout.ms={REQUEST_TIMEOUT_MS}",
                 "-X", f"socket.timeout.ms={REQUEST_TIMEOUT_MS}"],
                stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
            reader = threading.Thread(target=self.reports, args=(p, procs[p], pending[p], lock),
                                      daemon=True)
            reader.start()
            readers.append(reader)
        for partition, value in self.values():
            if self.stop_flag.is_set():
                break
            with lock:
                pending[partition].append(value)
                self.log("invoke", "send", partition=partition, value=value)
            procs[partition].stdin.write(value.encode() + b"\n")
            procs[partition].stdin.flush()
            self.stop_flag.wait(SEND_INTERVAL)
        for proc in procs.values():
            proc.stdin.close()
        for proc in procs.values():
            assert proc.wait(timeout=130) == 0, "kcat -P failed"
        for reader in readers:
            reader.join(10)
        for p, values in pending.items():
            for value in values:  # never reported: kcat gave up on them
                self.log("info", "send", partition=p, value=value, error="no delivery report")

    def reports(self, partition, proc, pending, lock):
        log = open(f"{self.history.path}.kcat-p{partition}.log", "w")
        for line in proc.stderr:
            line = line.decode(errors="replace")
            delivered, failed = DELIVERED.search(line), DELIVERY_FAILED.search(line)
            if not delivered and not failed:
                log.write(line)
                continue
            with lock:
                value = pending.pop(0)
            if delivered:
                assert int(delivered.group(1)) == partition
                self.log("ok", "send", partition=partition, value=value, offset=int(delivered.group(2)))
            else:
                self.log("info", "send", partition=partition, value=value, error=failed.group(1))
        log.close()


class KcatGroupMember(Worker):
    """`kcat -G`: a balanced consumer in a group, committing automatically
    every second what it printed (the probe sees the commits)."""

    def __init__(self, *args, group):
        super().__init__(*args)
        self.group = group

    def run(self):
        proc = subprocess.Popen(
            ["kcat", "-b", self.bootstrap, "-G", self.group, "-f", "%p %o %s\n", "-u", "-q",
             "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=10000",
             "-X", "auto.commit.interval.ms=1000", "-X", "reconnect.backoff.max.ms=500",
             "-X", f"socket.timeout.ms={REQUEST_TIMEOUT_MS}",
             self.topic],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        stopper = threading.Thread(target=lambda: (self.stop_flag.wait(), proc.terminate()),
                                   daemon=True)
        stopper.start()
        for line in proc.stdout:
            partition, offset, value = line.decode().rstrip("\n").split(" ", 2)
            self.log("ok", "poll", partition=int(partition), mode="subscribe",
                     records=[[int(offset), value]])
        proc.wait(timeout=30)


CLIENTS = {
    "confluent-kafka": (ConfluentProducer, ConfluentGroupMember, {}),
    "kafka-python": (KafkaPythonProducer, KafkaPythonGroupMember, {}),
    "kafka-python-0.10.1": (KafkaPythonProducer, KafkaPythonGroupMember, {"api_version": (0, 10, 1)}),
    "aiokafka": (AiokafkaProducer, AiokafkaGroupMember, {}),
    "kcat": (KcatProducer, KcatGroupMember, {}),
}

# Clients whose producer cannot be idempotent: a retried batch may be
# stored twice.
NOT_IDEMPOTENT = {"kafka-python-0.10.1"}


class Workload:
    """One producer and one group member per client, and a probe of the
    groups' committed offsets, all logging to `history`. `groups` names
    each client's group (default: `group-<client>`)."""

    def __init__(self, history, bootstrap, topic, partitions, clients, groups=None):
        self.history = history
        self.groups = {client: (groups or {}).get(client, f"group-{client}") for client in clients}
        self.producers, self.group_members = [], []
        for client in clients:
            producer, member, options = CLIENTS[client]
            self.producers.append(producer(history, f"{client}-producer", topic, partitions,
                                           bootstrap, **options))
            self.group_members.append(member(history, f"{client}-member", topic, partitions,
                                             bootstrap, group=self.groups[client], **options))
        self.probe = CommittedProbe(history, "probe", topic, partitions, bootstrap,
                                    groups=list(self.groups.values()))

    def workers(self):
        return [*self.producers, *self.group_members, self.probe]

    def start(self):
        for worker in self.workers():
            worker.start()
        return self

    def members(self):
        return list(self.group_members)

    def stop_producers(self):
        for producer in self.producers:
            producer.stop_flag.set()
        for producer in self.producers:
            producer.stop()

    def stop(self):
        for worker in self.workers():
            worker.stop_flag.set()
        for worker in self.workers():
            worker.stop()

    def abandon(self):
        """After a failed test: stop everything without judging it."""
        for worker in self.workers():
            worker.stop_flag.set()
        for worker in self.workers():
            if worker.thread is not None:
                worker.thread.join(10)
