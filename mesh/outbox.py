"""Transactional outbox: events are rows written in the same MariaDB
transaction as the business change, and a relay publishes them to Kafka.

Writing side (inside the service's transaction, after the business change)::

    async with session.begin():
        await reserve_stock(session, ...)
        await add_event(session, topic="inventory.stock", key=item_id,
                        payload=envelope.SerializeToString(),
                        event_type="StockReserved", event_id=envelope.event_id)

Either both rows commit or neither does: a rolled-back transaction publishes
nothing. Call `add_event` after the change, so an event's id (and so its
publishing order) comes after the events of changes it waited for.

Relay side (one task per service process, `OutboxRelay.run`):

* takes a MariaDB named lock (`GET_LOCK`) per database for each batch, so of
  several relays exactly one publishes at a time and the others stand by;
  that keeps each key's events in order, which row locking alone
  (`SKIP LOCKED` hands later rows to the second relay) would not;
* reads the oldest unsent rows with `FOR UPDATE SKIP LOCKED` in READ
  COMMITTED (no gap locks, so business inserts never wait for the relay),
  publishes them in id order with an idempotent producer, and marks a row
  sent only once the broker acknowledged it;
* when Kafka is down, the batch fails after the producer's delivery timeout,
  nothing is marked, and the relay retries with back-off: the rows go out
  when Kafka returns.

Delivery is at least once (a crash between the broker's ack and the commit
of `sent_at` republishes the row); consumers deduplicate by event id
(`mesh.consumer`). Per-key order holds while the broker answers; a batch that
fails only in part (the broker lost mid-batch) can deliver a key's later
event before the retry of an earlier one, so consumers whose effect depends
on order compare the envelope's version or occurred-at, as they must anyway
for events from different services.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Producer
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    RowMapping,
    String,
    Table,
    Text,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.mysql import DATETIME, LONGBLOB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from mesh import metrics, tracing
from mesh.kafka import OutgoingEvent, make_producer, publish, topic_name

log = logging.getLogger(__name__)

metadata = MetaData()
_MICROS = DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb")

outbox = Table(
    "outbox",
    metadata,
    # Publishing order: ids are handed out at insert time.
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    # The logical topic (`orders.lifecycle`); the relay adds its prefix.
    Column("topic", String(200), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("message_key", LargeBinary(255), nullable=False),
    Column("payload", LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb"), nullable=False),
    # Extra Kafka headers as a JSON object of base64 strings, or NULL.
    Column("headers", Text, nullable=True),
    Column("created_at", _MICROS, nullable=False, server_default=text("CURRENT_TIMESTAMP(6)")),
    Column("sent_at", _MICROS, nullable=True),
    Index("ix_outbox_unsent", "sent_at", "id"),
    mysql_engine="InnoDB",
)

# Built once: SQLAlchemy memoizes a statement's cache key, so queuing an
# event skips building and keying the INSERT every time.
_INSERT = insert(outbox)


async def create_tables(engine: AsyncEngine) -> None:
    """Create the `outbox` table if missing (services with Alembic include
    `mesh.outbox.metadata` in their migrations instead)."""
    from mesh.lease import schema_lock

    async with schema_lock(engine), engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def add_event(
    db: AsyncSession | AsyncConnection,
    *,
    topic: str,
    key: str | bytes,
    payload: bytes,
    event_type: str,
    event_id: str | None = None,
    headers: Mapping[str, bytes] | None = None,
) -> str:
    """Queue one event in the caller's open transaction; returns its event id.

    `topic` is the logical topic name; `key` the entity id (one entity's
    events stay in order); `payload` the serialised envelope, whose event id
    should be the one passed here (a fresh UUID when omitted)."""
    event_id = event_id or str(uuid.uuid4())
    headers = tracing.trace_headers(headers)
    await db.execute(
        _INSERT,
        {
            "event_id": event_id,
            "topic": topic,
            "event_type": event_type,
            "message_key": key.encode() if isinstance(key, str) else key,
            "payload": payload,
            "headers": json.dumps({k: base64.b64encode(v).decode() for k, v in headers.items()})
            if headers
            else None,
        },
    )
    return event_id


@dataclass(frozen=True)
class PendingEvent:
    """One event to queue with :func:`add_events` (fields as in add_event)."""

    topic: str
    key: str | bytes
    payload: bytes
    event_type: str
    event_id: str
    headers: Mapping[str, bytes] | None = None


async def add_events(db: AsyncSession | AsyncConnection, events: Sequence[PendingEvent]) -> None:
    """Queue several events in the caller's open transaction with one
    multi-row INSERT (bulk changes: one round trip instead of one per event).
    Ids, and so publishing order, follow the order of ``events``."""
    if not events:
        return
    traced = tracing.trace_headers({})
    if traced:
        events = [
            PendingEvent(e.topic, e.key, e.payload, e.event_type, e.event_id,
                         {**(e.headers or {}), **traced})
            for e in events
        ]
    await db.execute(
        _INSERT,
        [
            {
                "event_id": e.event_id,
                "topic": e.topic,
                "event_type": e.event_type,
                "message_key": e.key.encode() if isinstance(e.key, str) else e.key,
                "payload": e.payload,
                "headers": json.dumps(
                    {k: base64.b64encode(v).decode() for k, v in e.headers.items()}
                )
                if e.headers
                else None,
            }
            for e in events
        ],
    )


@dataclass(frozen=True)
class _Row:
    id: int
    event: OutgoingEvent


class OutboxRelay:
    """Publishes unsent outbox rows of one database to Kafka, in order."""

    def __init__(
        self,
        engine: AsyncEngine,
        bootstrap: str,
        *,
        topic_prefix: str = "",
        batch_size: int = 200,
        idle_interval: float = 0.2,
        delivery_timeout: float = 10.0,
        max_backoff: float = 5.0,
        client_id: str = "ecom-outbox-relay",
    ) -> None:
        self.engine = engine
        self.topic_prefix = topic_prefix
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self.max_backoff = max_backoff
        # A short delivery timeout: a dead broker fails the batch quickly
        # instead of holding rows for the default 30 s.
        self._producer: Producer = make_producer(
            bootstrap,
            client_id=client_id,
            **{"message.timeout.ms": int(delivery_timeout * 1000)},
        )

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; returns how many were marked sent.

        Returns 0 when there is nothing to send or another relay holds the
        lock. Raises `OutboxPublishError` when the broker refused or never
        acknowledged some row (those rows stay unsent)."""
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="READ COMMITTED")
            database = (await conn.execute(text("SELECT DATABASE()"))).scalar()
            lock = f"ecom.outbox.{database}"[:64]  # MariaDB's limit for lock names
            got = (await conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": lock})).scalar()
            await conn.commit()
            if got != 1:
                return 0
            try:
                return await self._publish_batch(conn)
            finally:
                await conn.rollback()
                await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock})
                await conn.commit()

    async def _publish_batch(self, conn: AsyncConnection) -> int:
        async with conn.begin():
            result = await conn.execute(
                select(outbox)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            )
            raw = result.mappings().all()
            metrics.observe_outbox_batch([r["created_at"] for r in raw])
            rows = [self._row(r) for r in raw]
            if not rows:
                return 0
            events, traced = tracing.relay_spans([r.event for r in rows])
            reports = await publish(self._producer, events)
            traced([rep.delivered for rep in reports])
            sent = [r.id for r, rep in zip(rows, reports, strict=True) if rep.delivered]
            metrics.OUTBOX_PUBLISHED.inc(len(sent))
            if sent:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(sent))
                    .values(sent_at=text("CURRENT_TIMESTAMP(6)"))
                )
        failed = [(r, rep) for r, rep in zip(rows, reports, strict=True) if not rep.delivered]
        if failed:
            row, rep = failed[0]
            raise OutboxPublishError(
                f"{len(failed)} of {len(rows)} outbox rows not delivered (first: id {row.id}, "
                f"topic {row.event.topic}): {rep.error}"
            )
        return len(sent)

    def _row(self, r: RowMapping) -> _Row:
        raw_headers = r["headers"]
        headers = (
            {k: base64.b64decode(v) for k, v in json.loads(str(raw_headers)).items()}
            if raw_headers
            else {}
        )
        return _Row(
            id=int(r["id"]),
            event=OutgoingEvent(
                topic=topic_name(str(r["topic"]), self.topic_prefix),
                key=bytes(r["message_key"]),
                payload=bytes(r["payload"]),
                event_id=str(r["event_id"]),
                event_type=str(r["event_type"]),
                headers=headers,
            ),
        )

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until `stop` is set (or the task is cancelled): publish
        batches back to back while there is work, poll every
        `idle_interval` when idle, back off exponentially on failures
        (Kafka or MariaDB down) up to `max_backoff` seconds."""
        stop = stop or asyncio.Event()
        backoff = self.idle_interval
        while not stop.is_set():
            try:
                sent = await self.publish_pending()
                backoff = self.idle_interval
                if sent:
                    continue
                delay = self.idle_interval
            except Exception as exc:  # noqa: BLE001 - the relay must outlive outages
                log.warning("outbox relay: %s; retrying in %.1fs", exc, backoff)
                delay = backoff
                backoff = min(backoff * 2, self.max_backoff)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    def close(self, timeout: float = 5.0) -> None:
        """Flush what the producer still holds and release it."""
        self._producer.flush(timeout)


class OutboxPublishError(RuntimeError):
    """Some outbox rows were not acknowledged by Kafka; they stay unsent."""


async def purge_sent(engine: AsyncEngine, *, older_than_seconds: int, limit: int = 10_000) -> int:
    """Delete rows sent more than `older_than_seconds` ago; returns the count."""
    async with engine.begin() as conn:
        result = await conn.execute(
            outbox.delete()
            .where(outbox.c.sent_at.is_not(None))
            .where(
                text("sent_at < NOW(6) - INTERVAL :age SECOND").bindparams(
                    age=int(older_than_seconds)
                )
            )
            .with_dialect_options(mysql_limit=limit)
        )
        return int(result.rowcount or 0)


async def purge_sent_forever(
    engine: AsyncEngine, *, older_than_seconds: int, interval: float = 600.0
) -> None:
    """Every `interval` seconds, delete rows sent more than
    `older_than_seconds` ago, so the table does not grow with every change.
    Runs until cancelled (a service's background task); a failed round (the
    database briefly down) is logged and retried at the next one."""
    while True:
        await asyncio.sleep(interval)
        try:
            await purge_sent(engine, older_than_seconds=older_than_seconds)
        except Exception:  # noqa: BLE001 - retried next round
            log.warning("outbox purge failed", exc_info=True)
