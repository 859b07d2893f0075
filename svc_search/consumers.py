"""The Kafka side of svc_search, run as background tasks.

* :class:`IndexFeed` consumes one topic (``catalog.items`` or
  ``inventory.stock``) in batches and hands them to the
  :class:`~svc_search.service.Indexer`; offsets are committed only after
  the batch is in Elasticsearch. No dedupe table is needed: the version
  guards in :mod:`svc_search.domain` make a redelivered or replayed event a
  no-op. While Elasticsearch is down the batch is retried with back-off
  (the task never crashes the process), and consumption resumes from where
  it stopped.
* :class:`QueryRecorder` publishes ``SearchQueryRecorded`` fire-and-forget:
  ``produce`` only queues the message and a task serves delivery reports.
  A query event lost when Kafka is down for longer than the producer's
  message timeout, or when the process dies with events queued, is
  acceptable: it is analytics, and a search must never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from ecom.events.v1 import events_pb2
from google.protobuf.message import DecodeError

from mesh import events
from mesh.kafka import HEADER_EVENT_ID, HEADER_EVENT_TYPE, make_producer
from svc_search.service import Indexer

log = logging.getLogger(__name__)

ITEMS_TOPIC = "catalog.items"
STOCK_TOPIC = "inventory.stock"
QUERIES_TOPIC = "search.queries"


class IndexFeed:
    """One topic's events into the index."""

    def __init__(self, consumer: Consumer, topic: str, indexer: Indexer, ready: asyncio.Event,
                 *, batch: int = 500, poll_timeout: float = 0.1,
                 max_backoff: float = 5.0) -> None:
        """``consumer`` must not auto-commit (``mesh.kafka.make_consumer``);
        nothing is consumed before ``ready`` is set (the index exists)."""
        self.consumer = consumer
        self.topic = topic
        self.indexer = indexer
        self.ready = ready
        self.batch = batch
        self.poll_timeout = poll_timeout
        self.max_backoff = max_backoff
        self.consumed = 0

    async def run(self) -> None:
        """Consume until cancelled."""
        await self.ready.wait()
        await asyncio.to_thread(self.consumer.subscribe, [self.topic])
        while True:
            messages = await asyncio.to_thread(self.consumer.consume, self.batch,
                                               self.poll_timeout)
            envelopes, last = self._decode(messages)
            if not last:
                continue
            await self._apply_until_done(envelopes)
            self.consumed += len(messages)
            try:
                await asyncio.to_thread(
                    self.consumer.commit,
                    offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
                    asynchronous=False)
            except KafkaException as exc:
                # Lost the partition in a rebalance: whoever gets it re-reads
                # these events, which the version guards make harmless.
                log.warning("offset commit failed on %s: %s", self.topic, exc)

    def _decode(self, messages: list[Message]) -> tuple[
            list[events_pb2.EventEnvelope], dict[tuple[str, int], int]]:
        envelopes: list[events_pb2.EventEnvelope] = []
        last: dict[tuple[str, int], int] = {}
        for msg in messages:
            if err := msg.error():
                if err.fatal():
                    raise KafkaException(err)
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka on %s: %s", self.topic, err)
                continue
            last[(msg.topic() or "", msg.partition() or 0)] = msg.offset() or 0
            try:
                envelopes.append(events_pb2.EventEnvelope.FromString(msg.value() or b""))
            except DecodeError:
                # Not ours to fix and not worth stopping the index for.
                log.error("undecodable event skipped", extra={
                    "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()})
        return envelopes, last

    async def _apply_until_done(self, envelopes: list[events_pb2.EventEnvelope]) -> None:
        backoff = 0.2
        while True:
            try:
                await self.indexer.apply(envelopes)
                return
            except Exception as exc:  # noqa: BLE001 - outlive Elasticsearch outages
                log.warning("indexing %d events from %s failed: %s; retrying in %.1fs",
                            len(envelopes), self.topic, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def close(self) -> None:
        """Leave the consumer group (offsets are already committed)."""
        self.consumer.close()


class QueryRecorder:
    """Publishes served queries to ``search.queries`` without waiting."""

    def __init__(self, bootstrap: str, topic: str, *, message_timeout_ms: int = 10_000) -> None:
        self.topic = topic
        self.producer = make_producer(bootstrap, client_id="svc_search-queries",
                                      **{"message.timeout.ms": message_timeout_ms})
        self.dropped = 0

    def record(self, query: events_pb2.SearchQueryRecorded) -> None:
        """Queue one query event (never blocks; drops it when the local queue
        is full)."""
        envelope = events.envelope(
            "search_query_recorded", query, entity_key=query.user_id or "anon",
            producer="svc_search", occurred_at=datetime.now(UTC))
        event_id = envelope.event_id
        try:
            self.producer.produce(
                self.topic, key=envelope.entity_key.encode(),
                value=envelope.SerializeToString(),
                headers=[(HEADER_EVENT_ID, event_id.encode()),
                         (HEADER_EVENT_TYPE, envelope.event_type.encode())],
                on_delivery=self._delivered)
        except BufferError:
            self.dropped += 1

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.dropped += 1
            log.debug("query event dropped: %s", err)

    async def run(self) -> None:
        """Serve delivery reports until cancelled."""
        while True:
            await asyncio.to_thread(self.producer.poll, 0.5)

    def close(self) -> None:
        """Send what is queued, briefly."""
        self.producer.flush(2)
