"""aiokafka 0.14 against the real broker."""
import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def test_produce_and_consume(broker):
    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for i in range(100):
                await producer.send_and_wait("aio", f"m{i}".encode(), key=f"k{i % 5}".encode())
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            "aio", bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        got = []
        try:
            while len(got) < 100:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)
                for records in batch.values():
                    got.extend(records)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(scenario())
    assert [r.value for r in got] == [f"m{i}".encode() for i in range(100)]
    assert [r.offset for r in got] == list(range(100))
