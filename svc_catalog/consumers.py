"""The catalog's Kafka side, run as background tasks:

* :class:`EventRelay` publishes what waits in documents: item events (the
  ``pending`` map of each item, to ``catalog.items``) and supplier feed rows
  (unpublished feed chunks, to ``catalog.feeds``). An event leaves its
  document only after the broker acknowledged it, so with Kafka down the
  writes still succeed and their events go out when Kafka is back; a crash
  between acknowledgement and removal re-publishes the event with the same
  event id, which consumers deduplicate.
* :class:`FeedApplier` consumes ``catalog.feeds``, applies each row once
  (see ``CatalogService.apply_feed_rows`` for why a replay changes nothing),
  publishes the items' events, and only then commits the Kafka offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from ecom.events.v1 import events_pb2

from mesh.kafka import OutgoingEvent, make_producer, publish
from svc_catalog import domain
from svc_catalog.service import CatalogService
from svc_catalog.store import ItemStore

log = logging.getLogger(__name__)


class EventRelay:
    """Moves pending events from MongoDB documents to Kafka."""

    def __init__(self, store: ItemStore, bootstrap: str, *, items_topic: str,
                 feeds_topic: str, batch_docs: int = 200, idle_interval: float = 0.2,
                 delivery_timeout: float = 5.0, max_backoff: float = 5.0) -> None:
        """Topic names are full (prefix applied)."""
        self.store = store
        self.items_topic = items_topic
        self.feeds_topic = feeds_topic
        self.batch_docs = batch_docs
        self.idle_interval = idle_interval
        self.max_backoff = max_backoff
        # A short delivery timeout so a dead broker fails a batch quickly and
        # the events simply stay where they are.
        self.producer = make_producer(bootstrap, client_id="svc_catalog-relay",
                                      **{"message.timeout.ms": int(delivery_timeout * 1000)})

    async def publish_items(self) -> int:
        """Publish one batch of item events; returns how many were removed
        from their documents."""
        docs = await self.store.docs_with_pending(self.batch_docs)
        batch: list[tuple[str, OutgoingEvent]] = []
        for doc in docs:
            pending: dict[str, Any] = doc.get("pending") or {}
            # An item's events in version order; the key keeps them on one
            # partition, so consumers see them in that order.
            for event_id, ev in sorted(pending.items(), key=lambda kv: kv[1]["seq"]):
                batch.append((doc["_id"], OutgoingEvent(
                    topic=self.items_topic, key=ev["key"].encode(), payload=bytes(ev["payload"]),
                    event_id=event_id, event_type=ev["type"])))
        if not batch:
            # Flags left set by a relay that died after emptying the map.
            for doc in docs:
                await self.store.mark_published(doc["_id"], [])
            return 0
        reports = await publish(self.producer, [e for _, e in batch])
        sent: dict[str, list[str]] = defaultdict(list)
        for (item_id, ev), rep in zip(batch, reports, strict=True):
            if rep.delivered:
                sent[item_id].append(ev.event_id)
        for item_id, ids in sent.items():
            await self.store.mark_published(item_id, ids)
        failed = [r for r in reports if not r.delivered]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(batch)} item events not delivered: "
                               f"{failed[0].error}")
        return len(batch)

    async def publish_feeds(self) -> int:
        """Publish unpublished feed chunks, oldest feed first."""
        total = 0
        for feed in await self.store.feeds_to_relay():
            feed_id = feed["_id"]
            for chunk_id in feed.get("chunk_ids", []):
                rows = await self.store.unpublished_rows(chunk_id)
                if rows is None:
                    continue
                events = []
                for raw in rows:
                    env = events_pb2.EventEnvelope.FromString(raw)
                    events.append(OutgoingEvent(
                        topic=self.feeds_topic, key=env.entity_key.encode(),
                        payload=raw, event_id=env.event_id, event_type=env.event_type))
                reports = await publish(self.producer, events)
                failed = [r for r in reports if not r.delivered]
                if failed:
                    raise RuntimeError(f"feed {feed_id}: {len(failed)} rows not delivered: "
                                       f"{failed[0].error}")
                await self.store.mark_chunk_published(chunk_id)
                total += len(events)
            await self.store.mark_feed_relayed(feed_id)
        return total

    async def run(self) -> None:
        """Relay until cancelled, backing off while Kafka or MongoDB is down."""
        backoff = self.idle_interval
        while True:
            try:
                hinted = await self.store.rebuild_hints()
                log.info("catalog relay: %d items with pending events at start", hinted)
                break
            except Exception as exc:  # noqa: BLE001 - MongoDB may still be starting
                log.warning("catalog relay: reading pending items: %s; retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        backoff = self.idle_interval
        while True:
            try:
                sent = await self.publish_items() + await self.publish_feeds()
                backoff = self.idle_interval
                if sent:
                    continue
                delay = self.idle_interval
            except Exception as exc:  # noqa: BLE001 - the relay must outlive outages
                log.warning("catalog relay: %s; retrying in %.1fs", exc, backoff)
                delay = backoff
                backoff = min(backoff * 2, self.max_backoff)
            await asyncio.sleep(delay)

    def close(self) -> None:
        self.producer.flush(5)


class FeedApplier:
    """Applies SupplierItemReceived events from ``catalog.feeds``."""

    def __init__(self, service: CatalogService, consumer: Consumer, topic: str, *,
                 bootstrap: str, items_topic: str, batch_size: int = 500,
                 retry_backoff: float = 1.0) -> None:
        """``topic`` and ``items_topic`` are full names (prefix applied)."""
        self.service = service
        self.consumer = consumer
        self.items_topic = items_topic
        self.producer = make_producer(bootstrap, client_id="svc_catalog-feed-applier")
        self.batch_size = batch_size
        self.retry_backoff = retry_backoff
        consumer.subscribe([topic])

    async def poll_once(self) -> int:
        """Apply one batch of messages; returns how many rows it held.

        Offsets are committed only after the rows, their items' events and
        their counts are written; on failure the partitions are rewound to
        the batch start and the batch is retried (applying a row twice
        changes nothing, and its event goes out again with the same id)."""
        msgs: list[Message] = await asyncio.to_thread(
            self.consumer.consume, self.batch_size, 0.5)
        good = []
        for msg in msgs:
            err = msg.error()
            if err is None:
                good.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("feed consumer: %s", err)
        if not good:
            return 0
        try:
            await self._apply(good)
        except BaseException:
            await self._rewind(good)
            raise
        last: dict[tuple[str, int], int] = {}
        for msg in good:
            last[(msg.topic() or "", msg.partition() or 0)] = msg.offset() or 0
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        await asyncio.to_thread(self.consumer.commit, offsets=offsets, asynchronous=False)
        return len(good)

    async def _apply(self, good: list[Message]) -> None:
        """Apply a batch's feed rows, publish their items' events and record
        each feed's outcomes."""
        envs = []
        for msg in good:
            env = events_pb2.EventEnvelope.FromString(msg.value() or b"")
            if env.WhichOneof("payload") == "supplier_item_received":
                envs.append(env)  # anything else is not ours
        results, events = await self.service.apply_feed_rows(envs)
        reports = await publish(self.producer, [OutgoingEvent(
            topic=self.items_topic, key=e.entity_key.encode(),
            payload=e.SerializeToString(), event_id=e.event_id,
            event_type=e.event_type) for e in events])
        failed = [r for r in reports if not r.delivered]
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(events)} item events not "
                               f"delivered: {failed[0].error}")
        outcomes: dict[str, dict[int, domain.FeedRowError | None]] = defaultdict(dict)
        for (feed_id, line), outcome in results.items():
            outcomes[feed_id][line] = outcome
        for feed_id, lines in outcomes.items():
            await self.service.record_feed_outcomes(feed_id, lines)

    async def _rewind(self, good: list[Message]) -> None:
        """Seek each partition back to the batch's first message."""
        first: dict[tuple[str, int], int] = {}
        for msg in good:
            first.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
        for (topic, part), offset in first.items():
            await asyncio.to_thread(self.consumer.seek, TopicPartition(topic, part, offset))

    async def run(self) -> None:
        """Consume until cancelled; failed batches are retried after a pause."""
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the batch is retried
                log.exception("feed consumer: batch failed; retrying")
                await asyncio.sleep(self.retry_backoff)

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush(5)
