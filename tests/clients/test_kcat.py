"""kcat (librdkafka) against the real broker: -L, -P, -C -e."""
import subprocess


def kcat(broker, *args, input=None):
    result = subprocess.run(
        ["kcat", "-b", broker.bootstrap, *args],
        input=input,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_produce_and_consume_lines(broker):
    lines = [f"line {i}" for i in range(100)]
    kcat(broker, "-P", "-t", "lines", input="\n".join(lines).encode() + b"\n")
    out = kcat(broker, "-C", "-t", "lines", "-e", "-o", "beginning")
    assert out.splitlines() == lines


def test_metadata_listing_shows_broker_and_topic(broker):
    kcat(broker, "-P", "-t", "listed", input=b"x\n")
    out = kcat(broker, "-L")
    assert "1 brokers:" in out
    assert f"broker 0 at 127.0.0.1:{broker.port}" in out
    assert 'topic "listed" with 1 partitions' in out


def test_keys_with_separator_and_offsets(broker):
    kcat(broker, "-P", "-t", "kv", "-K", ":", input=b"a:1\nb:2\nc:3\n")
    out = kcat(broker, "-C", "-t", "kv", "-e", "-f", "%k=%s@%o\n")
    assert out.splitlines() == ["a=1@0", "b=2@1", "c=3@2"]


def test_compressed_batches_pass_through(broker):
    for codec in ["gzip", "snappy", "lz4", "zstd"]:
        topic = f"codec-{codec}"
        lines = [f"{codec} {i}" * 10 for i in range(200)]
        kcat(broker, "-P", "-t", topic, "-z", codec, input="\n".join(lines).encode() + b"\n")
        out = kcat(broker, "-C", "-t", topic, "-e")
        assert out.splitlines() == lines, codec
