"""The tutorial's application code: a producer function and a consumer in a
group, both finding the broker through the `kafka_host_url` environment
variable (HOST:PORT), as the tutorial's containers are configured.

    kafka_host_url=localhost:9092 python3 kafka_app.py produce 10
    kafka_host_url=localhost:9092 python3 kafka_app.py consume

Values are JSON; api_version=(0, 10, 1) is what the tutorial pins.

A secured broker (the exposed-server walkthrough, compose.secure.yml) is
reached with a Kafka client.properties file named by KAFKA_CLIENT_CONFIG:
security.protocol, sasl.mechanism, sasl.jaas.config (username, password),
ssl.truststore.location / ssl.keystore.location (PEM) and
ssl.endpoint.identification.algorithm, as Kafka's own clients read them.
"""
import json
import os
import re
import sys
import time

from kafka import KafkaConsumer, KafkaProducer

KAFKA_HOST_URL = os.environ.get("kafka_host_url", "localhost:9092")
TOPIC = os.environ.get("TOPIC", "events")
GROUP_ID = os.environ.get("GROUP_ID", "events-consumer")

_producer = None


def read_properties(path):
    """Java-style `key=value` lines; `#` and `!` start comments."""
    properties = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#!":
                continue
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties


def security_settings(properties):
    """kafka-python's arguments for Kafka's client security keys."""
    settings = {}
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    settings["security_protocol"] = protocol
    if protocol.startswith("SASL_"):
        settings["sasl_mechanism"] = properties.get("sasl.mechanism", "GSSAPI").upper()
        jaas = properties.get("sasl.jaas.config", "")
        for field in ("username", "password"):
            found = re.search(field + r'\s*=\s*"((?:[^"\\]|\\.)*)"', jaas)
            if found:
                settings[f"sasl_plain_{field}"] = found.group(1).replace('\\"', '"')
    if protocol.endswith("SSL"):
        for key in ("ssl.truststore.type", "ssl.keystore.type"):
            if properties.get(key, "PEM").upper() != "PEM":
                raise SystemExit(f"{key}: only PEM files are supported here")
        if "ssl.truststore.location" in properties:
            settings["ssl_cafile"] = properties["ssl.truststore.location"]
        if "ssl.keystore.location" in properties:
            # One PEM file holding the certificate chain and its key.
            settings["ssl_certfile"] = properties["ssl.keystore.location"]
            settings["ssl_keyfile"] = properties["ssl.keystore.location"]
        if properties.get("ssl.endpoint.identification.algorithm", "https") == "":
            settings["ssl_check_hostname"] = False
    return settings


CLIENT_CONFIG = os.environ.get("KAFKA_CLIENT_CONFIG")
SECURITY = security_settings(read_properties(CLIENT_CONFIG)) if CLIENT_CONFIG else {}


def producer():
    """One producer per process; kafka-python's producer is thread-safe."""
    global _producer
    if _producer is None:
        _producer = KafkaProducer(
            bootstrap_servers=KAFKA_HOST_URL,
            api_version=(0, 10, 1),
            **SECURITY,
            value_serializer=lambda v: json.dumps(v).encode("utf-8"),
        )
    return _producer


def send_to_kafka_topic(topic, message):
    """Send one JSON-serialisable message and wait for the broker's ack."""
    future = producer().send(topic, message)
    return future.get(timeout=30)


def consume(topic, group_id, max_messages=None, idle_timeout_s=10.0):
    """Read `topic` as a member of `group_id`, printing one JSON line per
    message, committing offsets as it goes. Stops after `max_messages`, or
    when nothing arrived for `idle_timeout_s` seconds (0: never)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=KAFKA_HOST_URL,
        api_version=(0, 10, 1),
        **SECURITY,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(idle_timeout_s * 1000) if idle_timeout_s > 0 else float("inf"),
        value_deserializer=lambda m: json.loads(m.decode("utf-8")),
    )
    seen = 0
    try:
        for message in consumer:
            print(json.dumps({"partition": message.partition, "offset": message.offset,
                              "value": message.value}), flush=True)
            consumer.commit()
            seen += 1
            if max_messages is not None and seen >= max_messages:
                break
    finally:
        consumer.close()
    return seen


def wait_for_broker(timeout_s=60.0):
    """Containers may start before the broker accepts; retry bootstrapping."""
    deadline = time.time() + timeout_s
    while True:
        try:
            producer()
            return
        except Exception as error:  # NoBrokersAvailable and friends
            if time.time() > deadline:
                raise
            print(f"waiting for {KAFKA_HOST_URL}: {error}", file=sys.stderr, flush=True)
            time.sleep(1)


def main(argv):
    if len(argv) < 2 or argv[1] not in ("produce", "consume"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "produce":
        count = int(argv[2]) if len(argv) > 2 else int(os.environ.get("COUNT", "10"))
        run_id = os.environ.get("RUN_ID", str(int(time.time())))
        wait_for_broker()
        for i in range(count):
            metadata = send_to_kafka_topic(TOPIC, {"run": run_id, "seq": i})
            print(json.dumps({"sent": i, "partition": metadata.partition,
                              "offset": metadata.offset}), flush=True)
        producer().flush()
        producer().close()
        return 0
    max_messages = argv[2] if len(argv) > 2 else os.environ.get("MAX_MESSAGES")
    idle = float(os.environ.get("IDLE_TIMEOUT_S", "10"))
    seen = consume(TOPIC, GROUP_ID, int(max_messages) if max_messages else None, idle)
    print(json.dumps({"consumed": seen}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
