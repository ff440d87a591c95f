"""Committed offsets after a crash: a torn tail of the offsets log is cut
off, but damage in the middle of it stops the broker with one line naming
the file and byte, instead of serving older committed offsets."""
import struct
import subprocess

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def commit_offsets(bootstrap, offsets):
    """Commits each offset of `t/0` for group `g`, one OffsetCommit each."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "g",
                         "enable.auto.commit": False})
    for offset in offsets:
        consumer.commit(offsets=[TopicPartition("t", 0, offset)], asynchronous=False)
    consumer.close()


def committed(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "g",
                         "enable.auto.commit": False})
    [tp] = consumer.committed([TopicPartition("t", 0)], timeout=10)
    consumer.close()
    return tp.offset


def frame_starts(data):
    """Where each `u32 length | u32 crc32c | payload` frame starts."""
    starts, at = [], 0
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        starts.append(at)
        at += 8 + length
    assert at == len(data), "the log ends on a frame boundary"
    return starts


def crashed_broker_with_commits(make_broker):
    broker = make_broker()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("t", 1, 1)])["t"].result(timeout=10)
    commit_offsets(broker.bootstrap, [5, 6, 7])
    assert committed(broker.bootstrap) == 7
    broker.kill9()
    log = broker.data_dir / "__consumer_offsets" / "offsets.log"
    return broker, log, log.read_bytes()


def test_damage_in_the_middle_of_the_offsets_log_refuses_to_start(make_broker):
    broker, log, data = crashed_broker_with_commits(make_broker)
    starts = frame_starts(data)
    assert len(starts) == 3
    damaged = bytearray(data)
    damaged[starts[1] + 12] ^= 0xFF  # a payload byte of the commit of 6
    log.write_bytes(bytes(damaged))

    proc = subprocess.run(broker.args(), env=broker.env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    last_line = proc.stderr.strip().splitlines()[-1]
    assert str(log) in last_line, last_line
    assert f"corrupt at byte {starts[1]}" in last_line, last_line
    assert log.read_bytes() == bytes(damaged), "the log is left for the operator"


def test_a_torn_tail_of_the_offsets_log_is_cut_off(make_broker):
    broker, log, data = crashed_broker_with_commits(make_broker)
    starts = frame_starts(data)
    log.write_bytes(data[:starts[2] + 10])  # the last commit half written

    broker.start()
    assert committed(broker.bootstrap) == 6
    commit_offsets(broker.bootstrap, [8])
    broker.kill9()
    broker.start()
    assert committed(broker.bootstrap) == 8
