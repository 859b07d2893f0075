"""Idempotent Kafka consumer: at-least-once delivery, exactly-once effect.

For each message, in one MariaDB transaction:

1. insert (consumer name, event id) into `processed_events`; if that row
   already exists the event was applied before and is skipped;
2. run the handler, which makes its change through the same session.

Only after that transaction commits is the message's offset committed to
Kafka. A crash in between redelivers the message; the `processed_events`
row turns the redelivery into a no-op. Two instances racing on one event
(during a rebalance) serialise on that row's primary key: the second waits
for the first and then finds it.

A handler that raises rolls its transaction back; the consumer seeks back to
that message and retries it after a back-off, so no later offset of the
partition is committed past it. (A message that can never succeed stops its
partition: poison messages are meant to be seen, not silently skipped.)

    consumer = IdempotentConsumer(
        make_consumer(bootstrap, "search-indexer"), engine, name="search-indexer",
        topics=[topic_name("catalog.items", prefix)], handler=index_item)
    await consumer.run()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, insert, text
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.types import DateTime

from mesh import metrics, tracing
from mesh.kafka import ReceivedEvent

log = logging.getLogger(__name__)

metadata = MetaData()

processed_events = Table(
    "processed_events",
    metadata,
    # One consumer group's view: two different consumers in one database
    # each apply the same event once.
    Column("consumer", String(100), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("topic", String(249), nullable=False),
    Column(
        "processed_at",
        DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb"),
        nullable=False,
        server_default=text("CURRENT_TIMESTAMP(6)"),
    ),
    PrimaryKeyConstraint("consumer", "event_id"),
    mysql_engine="InnoDB",
)

Handler = Callable[[AsyncSession, ReceivedEvent], Awaitable[None]]
EventIdOf = Callable[[ReceivedEvent], str]


def event_id_from_header(event: ReceivedEvent) -> str:
    """The `ecom-event-id` header; falls back to the message's coordinates
    (unique per message, so such messages are applied once per copy)."""
    return event.event_id or f"{event.topic}/{event.partition}/{event.offset}"


async def create_tables(engine: AsyncEngine) -> None:
    """Create `processed_events` if missing (services with Alembic include
    `mesh.consumer.metadata` in their migrations instead)."""
    from mesh.lease import schema_lock

    async with schema_lock(engine), engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def apply_once(
    engine: AsyncEngine,
    consumer_name: str,
    event: ReceivedEvent,
    handler: Handler,
    *,
    event_id_of: EventIdOf = event_id_from_header,
) -> bool:
    """Run `handler` for `event` unless `consumer_name` already applied it;
    the dedupe row and the handler's writes commit together. Returns True if
    the handler ran (and committed), False for a duplicate."""
    event_id = event_id_of(event)
    with tracing.span(
        f"consume {event.topic}",
        kind="CONSUMER",
        headers=event.headers,
        attributes={"messaging.system": "kafka", "messaging.destination.name": event.topic,
                    "messaging.consumer.group.name": consumer_name,
                    "messaging.message.id": event_id},
    ):
        return await _apply_once(engine, consumer_name, event, event_id, handler)


async def _apply_once(
    engine: AsyncEngine, consumer_name: str, event: ReceivedEvent, event_id: str,
    handler: Handler,
) -> bool:
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            try:
                await session.execute(
                    insert(processed_events).values(
                        consumer=consumer_name, event_id=event_id, topic=event.topic
                    )
                )
            except IntegrityError as exc:
                if _mysql_errno(exc) != ER_DUP_ENTRY:
                    raise
                raise _AlreadyApplied from exc  # rolls the transaction back
            await handler(session, event)
    except _AlreadyApplied:
        return False
    return True


class _AlreadyApplied(Exception):
    pass


ER_DUP_ENTRY = 1062


def _mysql_errno(exc: IntegrityError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class IdempotentConsumer:
    """Polls a Kafka consumer and applies each event once (see module doc)."""

    def __init__(
        self,
        consumer: Consumer,
        engine: AsyncEngine,
        *,
        name: str,
        topics: Sequence[str],
        handler: Handler,
        event_id_of: EventIdOf = event_id_from_header,
        poll_timeout: float = 0.5,
        retry_backoff: float = 1.0,
    ) -> None:
        """`consumer` must not auto-commit (`mesh.kafka.make_consumer`);
        `name` is the dedupe scope, normally the consumer group id."""
        self.consumer = consumer
        self.engine = engine
        self.name = name
        self.handler = handler
        self.event_id_of = event_id_of
        self.poll_timeout = poll_timeout
        self.retry_backoff = retry_backoff
        self.applied = 0
        self.duplicates = 0
        consumer.subscribe(list(topics))

    async def poll_once(self) -> bool | None:
        """Handle at most one message. Returns True if it was applied, False
        if it was a duplicate, None if there was no message. Raises what the
        handler raised, after rewinding to that message."""
        msg: Message | None = await asyncio.to_thread(self.consumer.poll, self.poll_timeout)
        if msg is None:
            return None
        if err := msg.error():
            if err.fatal():
                raise KafkaException(err)
            # Transient (broker restarting, topic not yet created): librdkafka
            # recovers by itself.
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("kafka consumer %s: %s", self.name, err)
            return None
        event = ReceivedEvent.from_message(msg)
        try:
            applied = await apply_once(
                self.engine, self.name, event, self.handler, event_id_of=self.event_id_of
            )
        except BaseException:
            # Read this message again next time instead of moving past it.
            await asyncio.to_thread(
                self.consumer.seek, TopicPartition(event.topic, event.partition, event.offset)
            )
            raise
        await asyncio.to_thread(self.consumer.commit, message=msg, asynchronous=False)
        metrics.CONSUMER_APPLIED.labels(
            self.name, event.topic, "applied" if applied else "duplicate").inc()
        if applied:
            self.applied += 1
        else:
            self.duplicates += 1
        return applied

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until `stop` is set or the task is cancelled; handler
        failures are logged and retried after `retry_backoff` seconds."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.poll_once()
            except (asyncio.CancelledError, KafkaException):
                raise
            except Exception:  # noqa: BLE001 - keep consuming; the message is retried
                log.exception("consumer %s: handler failed; retrying", self.name)
                await asyncio.sleep(self.retry_backoff)

    def close(self) -> None:
        """Leave the group (offsets are already committed)."""
        self.consumer.close()
