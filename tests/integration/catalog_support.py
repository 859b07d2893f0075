"""Helpers shared by the catalog integration tests: callers, item builders
and a reader of the run's Kafka topics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import KafkaError
from ecom.catalog.v1 import catalog_pb2
from ecom.events.v1 import events_pb2
from google.protobuf import struct_pb2
from google.type import money_pb2

from mesh.auth import Caller, encode_jwt_payload
from mesh.kafka import make_consumer
from tests.conftest import Stack

ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("admin-1", frozenset({"admin"})))),)
CUSTOMER = (("x-jwt-payload", encode_jwt_payload(Caller("cust-1", frozenset({"customer"})))),)


def rid() -> str:
    return str(uuid.uuid4())


def phone(title: str = "Acme Phone 5G", rupees: int = 14999, **attrs: object) -> catalog_pb2.Item:
    """A valid `mobiles` item."""
    a = struct_pb2.Struct()
    a.update({"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5, "color": "black", **attrs})
    return catalog_pb2.Item(
        title=title, category="mobiles", brand="Acme",
        price=money_pb2.Money(currency_code="INR", units=rupees), attributes=a)


class TopicReader:
    """Reads one topic from the beginning with a private consumer group."""

    def __init__(self, stack: Stack, topic: str) -> None:
        # Named under the run's prefix, so the session's clean-up drops it.
        self.consumer = make_consumer(stack.env["ECOM_KAFKA_BOOTSTRAP"],
                                      stack.topic(f"test-{uuid.uuid4().hex[:8]}"))
        self.consumer.subscribe([stack.topic(topic)])
        self.events: list[events_pb2.EventEnvelope] = []

    def until(self, pred: Callable[[list[events_pb2.EventEnvelope]], bool],
              timeout: float = 60) -> list[events_pb2.EventEnvelope]:
        """Poll until ``pred(all events so far)`` holds; returns them."""
        deadline = time.monotonic() + timeout
        while not pred(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met; got {len(self.events)} events")
            msg = self.consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    continue
                continue
            self.events.append(events_pb2.EventEnvelope.FromString(msg.value()))
        return self.events

    def about(self, key: str) -> list[events_pb2.EventEnvelope]:
        return [e for e in self.events if e.entity_key == key]

    def close(self) -> None:
        self.consumer.close()
