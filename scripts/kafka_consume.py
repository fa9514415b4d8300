#!/usr/bin/env python3
"""Read a Kafka topic back with an independent client (confluent-kafka, librdkafka).

    kafka_consume.py BOOTSTRAP COUNT TOPIC [TOPIC...]

Prints one JSON object per message (topic, partition, offset, key, headers,
timestamp, value as text) and exits once COUNT messages were read, or after
KAFKA_CONSUME_TIMEOUT seconds (default 60) of waiting, whichever is first.
"""
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError


def text(raw):
    return None if raw is None else raw.decode("utf-8", "replace")


def main():
    bootstrap, count, topics = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    deadline = time.monotonic() + float(os.environ.get("KAFKA_CONSUME_TIMEOUT", "60"))
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"tapline-test-{os.getpid()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe(topics)
    seen = 0
    try:
        while seen < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {error}", file=sys.stderr)
                continue
            print(json.dumps({
                "topic": message.topic(),
                "partition": message.partition(),
                "offset": message.offset(),
                "key": text(message.key()),
                "headers": {k: text(v) for k, v in (message.headers() or [])},
                "timestamp": message.timestamp()[1],
                "value": text(message.value()),
            }), flush=True)
            seen += 1
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
