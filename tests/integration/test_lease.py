"""The mechanisms that keep background work single when a service runs as
several processes (``mesh.lease``), and the order hold expiry handed to one
replica: each checked with two copies against the real servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine

from mesh.db import drop_database, make_engine, utcnow
from mesh.lease import DocumentLease, exclusively_every, mariadb_lock, schema_lock
from svc_orders.store import HoldStore
from tests.conftest import Stack
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration


@pytest.fixture
async def engines(stack: Stack) -> AsyncIterator[list[AsyncEngine]]:
    """Two engines on one database, as two processes would have."""
    url = stack.env["ECOM_MYSQL_URL"]
    name = stack.mysql_db(f"lease_{uuid.uuid4().hex[:6]}")
    first = await make_engine(url, name)
    second = await make_engine(url, name, create=False)
    try:
        yield [first, second]
    finally:
        await first.dispose()
        await second.dispose()
        await drop_database(url, name)


async def test_a_named_lock_admits_one_process_and_dies_with_its_connection(
        engines: list[AsyncEngine]) -> None:
    a, b = engines
    async with mariadb_lock(a, "job") as held_a:
        assert held_a
        async with mariadb_lock(b, "job") as held_b:
            assert not held_b
    async with mariadb_lock(b, "job") as held_b:
        assert held_b  # released by the first holder
    # A holder whose connection dies (kill -9) frees the lock at once.
    from sqlalchemy import text

    conn = await a.connect()
    database = (await conn.execute(text("SELECT DATABASE()"))).scalar()
    got = (await conn.execute(text("SELECT GET_LOCK(:n, 0)"),
                              {"n": f"ecom.{database}.job"})).scalar()
    assert got == 1
    async with mariadb_lock(b, "job") as held_b:
        assert not held_b
    await conn.invalidate()  # the socket closes, as when the process dies
    await conn.close()
    async def b_gets_it() -> bool:
        async with mariadb_lock(b, "job") as held_b:
            return bool(held_b)

    await wait_until_async(b_gets_it, "the dead holder's lock freed for the other copy",
                           timeout=10, interval=0.1)


async def test_exclusively_every_never_runs_two_rounds_at_once(
        engines: list[AsyncEngine]) -> None:
    running = 0
    overlaps = 0
    rounds: Counter[int] = Counter()

    def work_of(n: int):  # type: ignore[no-untyped-def]
        async def work() -> None:
            nonlocal running, overlaps
            running += 1
            overlaps += running > 1
            rounds[n] += 1
            await asyncio.sleep(0.05)
            running -= 1
        return work

    tasks = [asyncio.create_task(exclusively_every(e, "sweep", 0.01, work_of(n)))
             for n, e in enumerate(engines)]
    await asyncio.sleep(2.0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert overlaps == 0
    assert sum(rounds.values()) >= 5


async def test_replicas_create_tables_one_after_the_other(engines: list[AsyncEngine]) -> None:
    import sqlalchemy as sa

    md = sa.MetaData()
    sa.Table("raced", md, sa.Column("id", sa.Integer, primary_key=True))

    async def create(engine: AsyncEngine) -> None:
        async with schema_lock(engine), engine.begin() as conn:
            await conn.run_sync(md.create_all)

    for _ in range(3):  # unguarded, two create_all at once fail "already exists"
        await asyncio.gather(*(create(e) for e in engines))
        async with engines[0].begin() as conn:
            await conn.run_sync(md.drop_all)


async def test_a_document_lease_has_one_holder_and_expires(stack: Stack) -> None:
    client: AsyncMongoClient = AsyncMongoClient(stack.env["ECOM_MONGO_URL"])
    name = f"{stack.mongo_db}_lease"
    try:
        leases = client[name]["leases"]
        a = DocumentLease(leases, "relay", ttl=1.0)
        b = DocumentLease(leases, "relay", ttl=1.0)
        results = await asyncio.gather(a.acquire(), b.acquire())
        assert sorted(results) == [False, True]
        holder, other = (a, b) if results[0] else (b, a)
        assert await holder.acquire()  # renewal
        assert not await other.acquire()
        assert await other.holder() == holder.owner
        await asyncio.sleep(1.2)  # the holder died: its lease runs out
        assert await other.acquire()
        assert not await holder.acquire()
        await other.release()
        assert await holder.acquire()  # released: taken at once
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_hold_expiry_heard_by_two_replicas_expires_each_order_once(
        stack: Stack) -> None:
    prefix = f"{stack.redis_prefix}leasetest:hold:"
    clients = [aioredis.Redis.from_url(stack.env["ECOM_REDIS_URL"]) for _ in range(2)]
    stores = [HoldStore(c, prefix, poll_interval=0.05) for c in clients]
    seen: Counter[str] = Counter()
    by_replica: Counter[int] = Counter()

    def on_expired_of(n: int):  # type: ignore[no-untyped-def]
        async def on_expired(order_id: str) -> None:
            seen[order_id] += 1
            by_replica[n] += 1
        return on_expired

    listeners = [asyncio.create_task(s.listen(on_expired_of(n))) for n, s in enumerate(stores)]
    try:
        await asyncio.sleep(0.5)  # both subscribed
        orders = [f"o{n}" for n in range(40)]
        soon = utcnow() + timedelta(milliseconds=300)
        for order_id in orders:
            await stores[0].hold(order_id, soon)
        deadline = time.monotonic() + 30
        while set(seen) != set(orders) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # late duplicates would show now
        assert set(seen) == set(orders)
        assert all(n == 1 for n in seen.values()), seen
    finally:
        for t in listeners:
            t.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for c in clients:
            keys = [k async for k in c.scan_iter(match=prefix + "*")]
            if keys:
                await c.delete(*keys)
            await c.aclose()
