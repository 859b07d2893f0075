"""The transactional outbox and the idempotent consumer against the real
MariaDB and Kafka: events leave only with their committed business change,
survive a Kafka outage, keep per-key order with two relays, and a
redelivered event changes the database once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from infra import stack as infra_stack
from mesh import consumer as idem
from mesh import outbox
from mesh.db import drop_database, make_engine
from mesh.kafka import (
    OutgoingEvent,
    ReceivedEvent,
    delete_topics,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    publish,
)
from tests.conftest import Stack

pytestmark = pytest.mark.integration

# A topic of its own: the run's real inventory service publishes to the
# prefixed inventory.stock of the same run.
TOPIC = "outbox-test.stock"

stock = sa.Table(
    "stock",
    sa.MetaData(),
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("available", sa.Integer, nullable=False),
    sa.CheckConstraint("available >= 0", name="ck_stock_available"),
)


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    url = stack.env["ECOM_MYSQL_URL"]
    name = stack.mysql_db(f"outbox_{uuid.uuid4().hex[:6]}")
    eng = await make_engine(url, name)
    await outbox.create_tables(eng)
    await idem.create_tables(eng)
    async with eng.begin() as conn:
        await conn.run_sync(stock.metadata.create_all)
        await conn.execute(
            sa.insert(stock), [{"item_id": f"item-{i}", "available": 100} for i in range(5)]
        )
    try:
        yield eng
    finally:
        await eng.dispose()
        await drop_database(url, name)


@pytest.fixture
def topic(stack: Stack) -> Iterator[str]:
    admin = make_admin(stack.env["ECOM_KAFKA_BOOTSTRAP"])
    (full,) = ensure_topics(admin, [TOPIC], prefix=stack.topic_prefix, partitions=3)
    yield full
    delete_topics(admin, [full])


def relay_for(stack: Stack, engine: AsyncEngine, **kw: Any) -> outbox.OutboxRelay:
    return outbox.OutboxRelay(
        engine, stack.env["ECOM_KAFKA_BOOTSTRAP"], topic_prefix=stack.topic_prefix, **kw
    )


async def reserve(db: AsyncConnection, item: str, qty: int) -> str:
    """The business change and its event, in the caller's transaction."""
    await db.execute(
        sa.update(stock).where(stock.c.item_id == item).values(available=stock.c.available - qty)
    )
    return await outbox.add_event(
        db, topic=TOPIC, key=item, payload=f"{item}:-{qty}".encode(), event_type="StockReserved"
    )


async def available(engine: AsyncEngine, item: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(sa.select(stock.c.available).where(stock.c.item_id == item))
            ).scalar_one()
        )


async def unsent(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(outbox.outbox)
                    .where(outbox.outbox.c.sent_at.is_(None))
                )
            ).scalar_one()
        )


def read_topic(stack: Stack, topic: str, want: int, timeout: float = 30) -> list[ReceivedEvent]:
    """Everything on `topic` from the beginning, until `want` events or timeout
    (then one more second, so extra copies would show up too)."""
    group = f"{stack.topic_prefix}{uuid.uuid4()}"
    consumer = make_consumer(stack.env["ECOM_KAFKA_BOOTSTRAP"], group)
    consumer.subscribe([topic])
    got: list[ReceivedEvent] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(ReceivedEvent.from_message(msg))
            if len(got) >= want:
                deadline = min(deadline, time.monotonic() + 1.0)
    finally:
        consumer.close()
    return got


async def test_committed_change_reaches_kafka_and_rollback_sends_nothing(
    stack: Stack, engine: AsyncEngine, topic: str
) -> None:
    async with engine.begin() as conn:
        event_id = await reserve(conn, "item-1", 3)

    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await reserve(conn, "item-2", 5)
            raise RuntimeError("payment declined")  # the whole transaction rolls back

    assert await available(engine, "item-1") == 97
    assert await available(engine, "item-2") == 100
    assert await unsent(engine) == 1

    relay = relay_for(stack, engine)
    assert await relay.publish_pending() == 1
    assert await relay.publish_pending() == 0
    assert await unsent(engine) == 0

    got = read_topic(stack, topic, 1)
    assert [(e.event_id, e.key, e.payload, e.event_type) for e in got] == [
        (event_id, b"item-1", b"item-1:-3", "StockReserved")
    ]


async def test_rows_wait_for_kafka_and_go_out_when_it_returns(
    stack: Stack, engine: AsyncEngine, topic: str
) -> None:
    (kafka,) = infra_stack.select(["kafka"])
    if kafka.external():
        pytest.skip("Kafka is external (ECOM_KAFKA_BOOTSTRAP); this test stops the local one")
    relay = relay_for(stack, engine, delivery_timeout=2.0, max_backoff=1.0)

    kafka.stop()
    try:
        async with engine.begin() as conn:
            ids = [await reserve(conn, "item-3", 1), await reserve(conn, "item-3", 2)]
        with pytest.raises(outbox.OutboxPublishError):
            await relay.publish_pending()
        assert await unsent(engine) == 2, "undelivered rows must stay in the outbox"
    finally:
        kafka.start()

    # The relay task keeps retrying on its own; the rows go out once Kafka is back.
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        deadline = time.monotonic() + 60
        while await unsent(engine) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await unsent(engine) == 0
    finally:
        stop.set()
        await task
    got = read_topic(stack, topic, 2)
    assert [e.event_id for e in got] == ids  # same key: in order


async def test_two_relays_publish_each_row_once_in_key_order(
    stack: Stack, engine: AsyncEngine, topic: str
) -> None:
    expected: dict[str, list[str]] = {f"item-{i}": [] for i in range(5)}
    for n in range(60):
        item = f"item-{n % 5}"
        async with engine.begin() as conn:
            expected[item].append(await reserve(conn, item, 1))

    relays = [relay_for(stack, engine, batch_size=7) for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        deadline = time.monotonic() + 60
        while await unsent(engine) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await unsent(engine) == 0
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    got = read_topic(stack, topic, 60)
    assert len(got) == 60, "every row exactly once"
    for item, ids in expected.items():
        assert [e.event_id for e in got if e.key == item.encode()] == ids


async def test_redelivered_event_is_applied_once(
    stack: Stack, engine: AsyncEngine, topic: str
) -> None:
    bootstrap = stack.env["ECOM_KAFKA_BOOTSTRAP"]
    # The same event twice on the topic, as after a relay crash between the
    # broker's ack and marking the row sent.
    event = OutgoingEvent(
        topic=topic,
        key=b"item-4",
        payload=b"restock:10",
        event_id=str(uuid.uuid4()),
        event_type="StockReplenished",
    )
    other = OutgoingEvent(
        topic=topic,
        key=b"item-4",
        payload=b"restock:1",
        event_id=str(uuid.uuid4()),
        event_type="StockReplenished",
    )
    reports = await publish(make_producer(bootstrap), [event, event, other])
    assert all(r.delivered for r in reports)

    async def replenish(session: AsyncSession, ev: ReceivedEvent) -> None:
        qty = int(ev.payload.split(b":")[1])
        await session.execute(
            sa.update(stock)
            .where(stock.c.item_id == (ev.key or b"").decode())
            .values(available=stock.c.available + qty)
        )

    async def drain(group: str) -> idem.IdempotentConsumer:
        c = idem.IdempotentConsumer(
            make_consumer(bootstrap, group),
            engine,
            name="stock-projector",
            topics=[topic],
            handler=replenish,
        )
        deadline = time.monotonic() + 30
        while c.applied + c.duplicates < 3 and time.monotonic() < deadline:
            await c.poll_once()
        c.close()
        return c

    first = await drain(f"{stack.topic_prefix}projector")
    assert (first.applied, first.duplicates) == (2, 1)
    assert await available(engine, "item-4") == 111

    # Offsets lost (a new group reads from the start): everything is a duplicate.
    second = await drain(f"{stack.topic_prefix}projector-replay")
    assert (second.applied, second.duplicates) == (0, 3)
    assert await available(engine, "item-4") == 111


async def test_failed_handler_leaves_no_trace_and_is_retried(
    stack: Stack, engine: AsyncEngine, topic: str
) -> None:
    bootstrap = stack.env["ECOM_KAFKA_BOOTSTRAP"]
    event = OutgoingEvent(
        topic=topic,
        key=b"item-0",
        payload=b"take:1",
        event_id=str(uuid.uuid4()),
        event_type="StockReserved",
    )
    assert all(r.delivered for r in await publish(make_producer(bootstrap), [event]))
    calls = 0

    async def flaky(session: AsyncSession, ev: ReceivedEvent) -> None:
        nonlocal calls
        calls += 1
        await session.execute(
            sa.update(stock)
            .where(stock.c.item_id == "item-0")
            .values(available=stock.c.available - 1)
        )
        if calls == 1:
            raise ConnectionError("downstream blip")

    c = idem.IdempotentConsumer(
        make_consumer(bootstrap, f"{stack.topic_prefix}flaky"),
        engine,
        name="flaky",
        topics=[topic],
        handler=flaky,
    )
    try:
        deadline = time.monotonic() + 30
        failed = False
        while c.applied == 0 and time.monotonic() < deadline:
            try:
                await c.poll_once()
            except ConnectionError:
                failed = True
                assert await available(engine, "item-0") == 100  # rolled back
    finally:
        c.close()
    assert failed and calls == 2 and c.applied == 1
    assert await available(engine, "item-0") == 99


async def test_a_stuck_relay_never_blocks_business_writes(
    stack: Stack, engine: AsyncEngine
) -> None:
    """While a relay waits on a dead broker with rows locked, new business
    transactions (and their outbox inserts) commit at once: READ COMMITTED,
    no gap locks."""
    async with engine.begin() as conn:
        await reserve(conn, "item-0", 1)
    # Nothing listens on port 1: every delivery times out.
    relay = outbox.OutboxRelay(engine, "127.0.0.1:1", delivery_timeout=3.0)
    stuck = asyncio.create_task(relay.publish_pending())
    await asyncio.sleep(1.0)
    assert not stuck.done()
    # A lock wait would fail this transaction (1 s is MariaDB's shortest
    # lock wait): it must need no lock the stuck relay holds.
    async with engine.begin() as conn:
        await conn.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 1"))
        await reserve(conn, "item-0", 1)
    assert not stuck.done()  # the relay was still holding its rows
    with pytest.raises(outbox.OutboxPublishError):
        await stuck
    assert await unsent(engine) == 2
