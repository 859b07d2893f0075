"""Kafka handlers: every svc_tat instance hears every event.

Both topics feed in-memory state (the disruption overlay and the stock
cache), so each instance reads every partition itself: no consumer group,
partitions assigned directly at their end offsets, read at start-up before
the service reports SERVING. Nothing is lost in the gap: the overlay is
reloaded from Redis after the assignment and the stock cache starts empty.
A group join would add seconds during which events are silently skipped.
Applying an event twice is harmless (the overlay replaces by disruption id;
a stock event only drops a cache entry), so no dedupe table is needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from ecom.events.v1 import events_pb2

from mesh.kafka import make_consumer
from svc_tat.service import TatService

log = logging.getLogger(__name__)

INVALIDATIONS = "serviceability.invalidations"
STOCK = "inventory.stock"


class BroadcastListener:
    """Reads every partition of ``topics`` from "now" on."""

    def __init__(self, bootstrap: str, topics: Sequence[str], *, group_prefix: str = "") -> None:
        # group.id is required by the client but unused: offsets are never
        # committed and partitions are assigned, not subscribed. The prefix
        # (the topics' own) keeps it with the rest of a deployment's names.
        self.consumer: Consumer = make_consumer(
            bootstrap, f"{group_prefix}svc-tat-{uuid.uuid4().hex[:12]}", client_id="svc_tat")
        self.topics = list(topics)

    def assign_at_end(self, timeout: float = 15.0) -> None:
        """Pin every partition at its current end (call before serving).
        Retries while a just-created topic has no leader yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._assign(timeout)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def _assign(self, timeout: float) -> None:
        assignment = []
        for topic in self.topics:
            meta = self.consumer.list_topics(topic, timeout=timeout).topics[topic]
            if meta.error is not None:
                raise KafkaException(meta.error)
            for p in meta.partitions:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=timeout)
                assignment.append(TopicPartition(topic, p, high))
        self.consumer.assign(assignment)

    async def run(self, service: TatService) -> None:
        """Poll forever (a background task), applying each event."""
        try:
            while True:
                msg = await asyncio.to_thread(self.consumer.poll, 0.5)
                if msg is None:
                    continue
                if err := msg.error():
                    if err.fatal():
                        raise KafkaException(err)
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("kafka: %s", err)
                    continue
                try:
                    await dispatch(service, msg.value() or b"")
                except Exception:  # noqa: BLE001 - a bad event must not stop the broadcast
                    log.exception("could not apply event", extra={"topic": msg.topic()})
        finally:
            await asyncio.to_thread(self.consumer.close)


async def dispatch(service: TatService, payload: bytes) -> None:
    """Apply one EventEnvelope from either topic."""
    envelope = events_pb2.EventEnvelope.FromString(payload)
    kind = envelope.WhichOneof("payload")
    if kind == "serviceability_invalidated":
        await service.on_invalidation(envelope.serviceability_invalidated)
    elif kind == "stock_changed":
        service.on_stock_changed(envelope.stock_changed)
