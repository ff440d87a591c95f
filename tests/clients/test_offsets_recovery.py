"""Committed offsets of a data directory from before `__consumer_offsets`
was a replicated topic: the old per-broker `__consumer_offsets/offsets.log`
is migrated into the topic once (and then removed); a torn tail of it is
cut off, but damage in the middle of it stops the broker with one line
naming the file and byte, instead of serving older committed offsets."""
import struct
import subprocess
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def _crc32c_table():
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC32C = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def old_string(text):
    data = text.encode()
    return struct.pack(">I", len(data)) + data


def old_commit(group, topic, partition, offset):
    """The old store's commit record: kind 1, u32-length strings, then
    partition, offset, leader epoch, commit timestamp (now: older ones
    expire as soon as the group's partition is loaded) and metadata."""
    return (b"\x01" + old_string(group) + old_string(topic)
            + struct.pack(">iqiq", partition, offset, -1, int(time.time() * 1000))
            + b"\x01" + old_string(f"m{offset}"))


def frame(payload):
    """`u32 length | u32 crc32c | payload`, the record log's frame."""
    return struct.pack(">II", len(payload), crc32c(payload)) + payload


def old_log(broker, commits):
    """Stops the broker and writes the old offsets log into its data
    directory, as an earlier version left it; returns its path and where
    each frame starts."""
    broker.stop()
    directory = broker.data_dir / "__consumer_offsets"
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "offsets.log"
    frames = [frame(old_commit(*commit)) for commit in commits]
    log.write_bytes(b"".join(frames))
    starts, at = [], 0
    for f in frames:
        starts.append(at)
        at += len(f)
    return log, starts


def committed(bootstrap, group="g", partition=0):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    [tp] = consumer.committed([TopicPartition("t", partition)], timeout=20)
    consumer.close()
    return tp.offset


def commit(bootstrap, offset, group="g"):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("t", 0, offset)], asynchronous=False)
    consumer.close()


def create_topic(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("t", 2, 1)])["t"].result(timeout=10)


def test_the_old_offsets_log_moves_into_the_offsets_topic_once(make_broker):
    broker = make_broker()
    log, _ = old_log(broker, [("g", "t", 0, 5), ("g", "t", 1, 9), ("g", "t", 0, 7),
                              ("other", "t", 0, 3)])
    broker.start()
    create_topic(broker.bootstrap)
    assert committed(broker.bootstrap) == 7
    assert committed(broker.bootstrap, partition=1) == 9
    assert committed(broker.bootstrap, group="other") == 3
    assert not log.exists(), "migrated, the old file goes"

    # Later commits win over the migrated ones, across a crash.
    commit(broker.bootstrap, 8)
    broker.kill9()
    broker.start()
    assert committed(broker.bootstrap) == 8
    assert committed(broker.bootstrap, group="other") == 3


def test_damage_in_the_middle_of_the_old_offsets_log_refuses_to_start(make_broker):
    broker = make_broker()
    log, starts = old_log(broker, [("g", "t", 0, 5), ("g", "t", 0, 6), ("g", "t", 0, 7)])
    damaged = bytearray(log.read_bytes())
    damaged[starts[1] + 12] ^= 0xFF  # a payload byte of the commit of 6
    log.write_bytes(bytes(damaged))

    proc = subprocess.run(broker.args(), env=broker.env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    last_line = proc.stderr.strip().splitlines()[-1]
    assert str(log) in last_line, last_line
    assert f"corrupt at byte {starts[1]}" in last_line, last_line
    assert log.read_bytes() == bytes(damaged), "the log is left for the operator"


def test_a_torn_tail_of_the_old_offsets_log_is_cut_off(make_broker):
    broker = make_broker()
    log, starts = old_log(broker, [("g", "t", 0, 5), ("g", "t", 0, 6), ("g", "t", 0, 7)])
    log.write_bytes(log.read_bytes()[:starts[2] + 10])  # the last commit half written

    broker.start()
    create_topic(broker.bootstrap)
    assert committed(broker.bootstrap) == 6
