#!/usr/bin/env python3
"""Produce JSON-lines records to a Kafka topic with an independent client
(confluent-kafka), keyed by the record's district, as a real feed would be.

    produce.py --brokers 127.0.0.1:9092 --topic police_incident --file events.jsonl

Used by the daemon tests so that what yujing consumes was not written by the
library yujing itself uses.
"""
import argparse
import json

from confluent_kafka import Producer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--key-field", default="district")
    args = ap.parse_args()
    errors = []
    p = Producer({
        "bootstrap.servers": args.brokers,
        "enable.idempotence": True,
        "linger.ms": 20,
        "queue.buffering.max.messages": 1000000,
        # Hostile records in the tests are up to a few MB.
        "message.max.bytes": 8 * 1024 * 1024,
    })

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))

    # Bytes, not text: a record that is not UTF-8 is sent as it is too.
    with open(args.file, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            try:
                key = str(json.loads(line).get(args.key_field, ""))
            except (ValueError, AttributeError, RecursionError):
                key = ""  # a malformed record is sent as it is
            while True:
                try:
                    p.produce(args.topic, value=line, key=key.encode("utf-8"), on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let it drain
                    p.poll(0.1)
            p.poll(0)
    left = p.flush(120)
    if left or errors:
        raise SystemExit(f"{left} records not delivered; errors: {errors[:3]}")


if __name__ == "__main__":
    main()
