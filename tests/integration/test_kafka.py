"""Kafka as the services use it: topics created explicitly (the broker does
not auto-create), idempotent producers, manual-commit consumers, the ecom
headers, and per-key ordering."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient

from infra import stack as infra_stack
from mesh.kafka import (
    HEADER_EVENT_ID,
    OutgoingEvent,
    ReceivedEvent,
    consumer_config,
    delete_topics,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    publish,
)
from tests.conftest import Stack

pytestmark = pytest.mark.integration

MODULE_TOPICS = ("roundtrip", "offsets")


@pytest.fixture
def admin(stack: Stack) -> Iterator[AdminClient]:
    admin = make_admin(stack.env["ECOM_KAFKA_BOOTSTRAP"])
    yield admin
    # Only this module's topics: the run's services own the others.
    ours = {stack.topic(n) for n in MODULE_TOPICS}
    delete_topics(admin, [t for t in admin.list_topics(timeout=10).topics if t in ours])


def consume(consumer: Consumer, want: int, timeout: float = 30) -> list[ReceivedEvent]:
    got: list[ReceivedEvent] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(ReceivedEvent.from_message(msg))
    return got


async def test_round_trip_keeps_headers_keys_and_order(stack: Stack, admin: AdminClient) -> None:
    bootstrap = stack.env["ECOM_KAFKA_BOOTSTRAP"]
    (topic,) = ensure_topics(admin, ["roundtrip"], prefix=stack.topic_prefix, partitions=3)
    assert topic == stack.topic("roundtrip")
    # Idempotent: a second call neither fails nor changes anything.
    assert ensure_topics(admin, ["roundtrip"], prefix=stack.topic_prefix) == [topic]

    events = [
        OutgoingEvent(
            topic=topic,
            key=f"item-{i % 3}".encode(),
            payload=f"v{i}".encode(),
            event_id=str(uuid.uuid4()),
            event_type="StockChanged",
            headers={"trace": b"abc"},
        )
        for i in range(30)
    ]
    producer = make_producer(bootstrap)
    reports = await publish(producer, events)
    assert all(r.delivered for r in reports), [r.error for r in reports if not r.delivered]

    consumer = make_consumer(bootstrap, group_id=f"{stack.topic_prefix}g")
    consumer.subscribe([topic])
    try:
        got = consume(consumer, len(events))
    finally:
        consumer.close()

    assert sorted(e.event_id for e in got) == sorted(e.event_id for e in events)
    first = got[0]
    assert first.event_type == "StockChanged"
    assert first.headers["trace"] == b"abc"
    assert first.headers[HEADER_EVENT_ID] == first.event_id.encode()
    # One key -> one partition, in production order.
    for key in {e.key for e in events}:
        sent = [e.payload for e in events if e.key == key]
        received = [e for e in got if e.key == key]
        assert [e.payload for e in received] == sent
        assert len({e.partition for e in received}) == 1


async def test_committed_offsets_survive_a_new_consumer(stack: Stack, admin: AdminClient) -> None:
    bootstrap = stack.env["ECOM_KAFKA_BOOTSTRAP"]
    (topic,) = ensure_topics(admin, ["offsets"], prefix=stack.topic_prefix, partitions=1)
    producer = make_producer(bootstrap)
    events = [OutgoingEvent(topic, b"k", f"{i}".encode(), str(uuid.uuid4()), "T") for i in range(4)]
    assert all(r.delivered for r in await publish(producer, events))

    group = f"{stack.topic_prefix}offsets"
    first = make_consumer(bootstrap, group)
    first.subscribe([topic])
    got = consume(first, 2)
    assert [e.payload for e in got] == [b"0", b"1"]
    # Commit only the first message: the second is "not done" and must come back.
    first.commit(offsets=[_next(got[0])], asynchronous=False)
    first.close()

    second = make_consumer(bootstrap, group)
    second.subscribe([topic])
    try:
        again = consume(second, 3)
    finally:
        second.close()
    assert [e.payload for e in again] == [b"1", b"2", b"3"]


def test_no_auto_created_topics(stack: Stack, admin: AdminClient) -> None:
    """A typo in a topic name is an error, not a new empty topic."""
    missing = stack.topic("never-created")
    # Even a client that asks for auto-creation gets none.
    conf = consumer_config(stack.env["ECOM_KAFKA_BOOTSTRAP"], f"{stack.topic_prefix}x")
    consumer = Consumer({**conf, "allow.auto.create.topics": True})
    consumer.subscribe([missing])
    try:
        deadline = time.monotonic() + 10
        err = None
        while err is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error():
                err = msg.error()
    finally:
        consumer.close()
    assert err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert missing not in admin.list_topics(timeout=10).topics


def _next(event: ReceivedEvent):  # type: ignore[no-untyped-def]
    from confluent_kafka import TopicPartition

    return TopicPartition(event.topic, event.partition, event.offset + 1)


def test_broker_listens_on_loopback_only(stack: Stack) -> None:
    """Only 19092 and 19093 on 127.0.0.1: no JMX/RMI or other stray ports."""
    (kafka,) = infra_stack.select(["kafka"])
    pid = kafka.pid()
    if kafka.external() or pid is None:
        pytest.skip("not a broker this stack started")
    listening = _listening(pid)
    assert listening == {("127.0.0.1", kafka.port), ("127.0.0.1", kafka.port + 1)}, listening


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets process `pid` listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] != "0A" or cols[9] not in inodes:  # 0A = LISTEN
                    continue
                addr_hex, port_hex = cols[1].split(":")
                raw = bytes.fromhex(addr_hex)
                # /proc stores each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                ip = ipaddress.ip_address(words)
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                    ip = ip.ipv4_mapped
                found.add((str(ip), int(port_hex, 16)))
    return found
