"""Kafka plumbing every service shares: client factories, topic creation, and
the shape of an event on the wire.

Payloads are opaque bytes here (the protobuf envelopes of `ecom.events.v1`
are serialised by the caller). What mesh adds around them is what the
transport needs without decoding the payload:

* the message key: the entity id, so one entity's events keep their order
  (one partition) and compaction keeps its latest state;
* two headers, `ecom-event-id` and `ecom-event-type`, so consumers can
  deduplicate and route without parsing;
* a topic prefix, empty in production and unique per test run, applied in
  one place (`topic_name`) so tests never see each other's topics.

Producers are idempotent (`enable.idempotence`, `acks=all`) and partition
with murmur2 like the Java client, so a key lands on the same partition
whether a Python service or a Spark job wrote it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from mesh import metrics

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
# librdkafka's own log lines (broker down, rebalances) go through Python
# logging, so they come out in the service's log format.
CLIENT_LOG = logging.getLogger("mesh.kafka.client")
HEADER_EVENT_ID = "ecom-event-id"
HEADER_EVENT_TYPE = "ecom-event-type"


def bootstrap_from_env() -> str:
    """`ECOM_KAFKA_BOOTSTRAP`, or the local stack's broker."""
    return os.environ.get("ECOM_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP)


def topic_name(name: str, prefix: str = "") -> str:
    """The real topic for logical topic `name` (e.g. `orders.lifecycle`)."""
    return f"{prefix}{name}"


# --------------------------------------------------------------------------
# Client factories
# --------------------------------------------------------------------------


def producer_config(bootstrap: str, *, client_id: str = "ecom", **overrides: Any) -> dict[str, Any]:
    """Settings for an idempotent producer (no duplicates or reordering from
    the producer's own retries within a partition)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 5,
        "compression.type": "lz4",
        # Same key -> same partition as Java clients (Spark, Kafka tools).
        "partitioner": "murmur2_random",
        # How long one message may wait for delivery before it is reported
        # failed; the outbox relay lowers it so a dead broker is noticed.
        "message.timeout.ms": 30_000,
        "logger": CLIENT_LOG,
    }
    conf.update(overrides)
    return conf


def make_producer(bootstrap: str, *, client_id: str = "ecom", **overrides: Any) -> Producer:
    """An idempotent producer; see `producer_config`."""
    return Producer(producer_config(bootstrap, client_id=client_id, **overrides))


def consumer_config(
    bootstrap: str, group_id: str, *, client_id: str = "ecom", **overrides: Any
) -> dict[str, Any]:
    """Settings for a consumer that commits offsets itself, after its work."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        # A member that died without leaving (kill -9, a crash) holds its
        # partitions until the broker gives up on it: 45 s by default, so a
        # restarted consumer sat idle that long. Heartbeats come from the
        # client's own thread, so slow batches do not count against this
        # (max.poll.interval.ms governs those).
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 2_000,
        "logger": CLIENT_LOG,
        # Per-partition lag for the metrics endpoint (mesh.metrics).
        "statistics.interval.ms": 5_000,
        "stats_cb": metrics.consumer_stats_callback(group_id),
    }
    conf.update(overrides)
    return conf


def make_consumer(
    bootstrap: str, group_id: str, *, client_id: str = "ecom", **overrides: Any
) -> Consumer:
    """A manual-commit consumer; see `consumer_config`."""
    return Consumer(consumer_config(bootstrap, group_id, client_id=client_id, **overrides))


def make_admin(bootstrap: str, **overrides: Any) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "logger": CLIENT_LOG, **overrides})


def ensure_topics(
    admin: AdminClient,
    names: Iterable[str],
    *,
    prefix: str = "",
    partitions: int = 3,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> list[str]:
    """Create the topics that do not exist yet (idempotent); returns their
    full names. The broker does not auto-create topics, so every service
    calls this for the topics it produces or consumes at start-up.

    Waits until the new topics' partitions have leaders, so a producer or
    consumer started right after does not race the creation."""
    full = [topic_name(n, prefix) for n in names]
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(
            t,
            num_partitions=partitions,
            replication_factor=replication_factor,
            config=dict(config or {}),
        )
        for t in full
        if t not in existing
    ]
    if new:
        for fut in admin.create_topics(new, request_timeout=timeout).values():
            try:
                fut.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        _wait_for_leaders(admin, [t.topic for t in new], timeout)
    return full


def _wait_for_leaders(admin: AdminClient, topics: Sequence[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=timeout).topics
        if all(
            t in md
            and md[t].error is None
            and md[t].partitions
            and all(p.leader >= 0 for p in md[t].partitions.values())
            for t in topics
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout}s: {list(topics)}")
        time.sleep(0.1)


def delete_topics(admin: AdminClient, names: Iterable[str], *, timeout: float = 15.0) -> None:
    """Delete topics by full name, ignoring those already gone (test clean-up)."""
    names = list(names)
    if not names:
        return
    for _, fut in admin.delete_topics(names, request_timeout=timeout).items():
        try:
            fut.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


# --------------------------------------------------------------------------
# Events on the wire
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingEvent:
    """One message to publish: an already-serialised payload plus what the
    transport needs. `topic` is the full topic name (prefix applied)."""

    topic: str
    key: bytes
    payload: bytes
    event_id: str
    event_type: str
    headers: Mapping[str, bytes] = field(default_factory=dict)

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [
            (HEADER_EVENT_ID, self.event_id.encode()),
            (HEADER_EVENT_TYPE, self.event_type.encode()),
            *(
                (k, v)
                for k, v in self.headers.items()
                if k not in (HEADER_EVENT_ID, HEADER_EVENT_TYPE)
            ),
        ]


@dataclass(frozen=True)
class ReceivedEvent:
    """One consumed message, with the ecom headers pulled out (empty strings
    when a producer outside ecom left them off)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes
    event_id: str
    event_type: str
    headers: Mapping[str, bytes]
    timestamp_ms: int

    @classmethod
    def from_message(cls, msg: Message) -> ReceivedEvent:
        headers = {k: (v or b"") for k, v in (msg.headers() or [])}
        return cls(
            topic=msg.topic() or "",
            partition=msg.partition() or 0,
            offset=msg.offset() or 0,
            key=msg.key(),
            payload=msg.value() or b"",
            event_id=headers.get(HEADER_EVENT_ID, b"").decode(),
            event_type=headers.get(HEADER_EVENT_TYPE, b"").decode(),
            headers=headers,
            timestamp_ms=msg.timestamp()[1],
        )


@dataclass(frozen=True)
class DeliveryReport:
    """The broker's answer for one event: `error` is None when it was written."""

    event: OutgoingEvent
    error: KafkaError | None
    partition: int | None = None
    offset: int | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


async def publish(
    producer: Producer, events: Sequence[OutgoingEvent], *, timeout: float | None = None
) -> list[DeliveryReport]:
    """Produce `events` in order and wait until the broker confirmed or
    refused each one (at most the producer's `message.timeout.ms`, or
    `timeout` seconds). Returns one report per event, in order; an event
    still unanswered at `timeout` gets a `_TIMED_OUT` error report.

    The blocking waits run in a worker thread, so the event loop keeps
    serving while Kafka is slow or down."""
    reports: dict[int, DeliveryReport] = {}

    def on_delivery(i: int, event: OutgoingEvent) -> Callable[[KafkaError | None, Message], None]:
        def cb(err: KafkaError | None, msg: Message) -> None:
            reports[i] = DeliveryReport(event, err, msg.partition(), msg.offset())

        return cb

    for i, ev in enumerate(events):
        while True:
            try:
                producer.produce(
                    ev.topic,
                    value=ev.payload,
                    key=ev.key,
                    headers=ev.kafka_headers(),
                    on_delivery=on_delivery(i, ev),
                )
                break
            except BufferError:  # local queue full: let deliveries drain first
                await asyncio.to_thread(producer.poll, 0.1)
    deadline = None if timeout is None else time.monotonic() + timeout
    while len(reports) < len(events):
        if deadline is not None and time.monotonic() >= deadline:
            break
        await asyncio.to_thread(producer.flush, 0.2)
    timed_out = KafkaError(KafkaError._TIMED_OUT)
    return [reports.get(i, DeliveryReport(ev, timed_out)) for i, ev in enumerate(events)]
