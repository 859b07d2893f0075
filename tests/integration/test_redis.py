"""Redis as the order-hold fast path uses it: TTL keys whose expiry is
announced on the keyevent channel, and an append-only file for durability."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.conftest import Stack

pytestmark = pytest.mark.integration


def prefix(stack: Stack) -> str:
    """This module's keys: a sub-prefix of the run's, so the clean-up never
    deletes the keys of the run's services (svc_tat's matrix, order holds)."""
    return f"{stack.redis_prefix}redistest:"


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(stack.env["ECOM_REDIS_URL"], decode_responses=True)
    try:
        yield r
    finally:
        keys = [k async for k in r.scan_iter(match=f"{prefix(stack)}*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()


async def test_expired_key_is_announced(stack: Stack, client: aioredis.Redis) -> None:
    db = client.connection_pool.connection_kwargs.get("db", 0)
    channel = f"__keyevent@{db}__:expired"
    key = f"{prefix(stack)}hold:order-1"
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    try:
        # The subscription is confirmed before the key can expire.
        confirm = await pubsub.get_message(timeout=2)
        assert confirm and confirm["type"] == "subscribe"
        await client.set(key, "reserved", px=300)
        assert await client.pttl(key) > 0

        deadline = time.monotonic() + 10
        seen: list[str] = []
        while time.monotonic() < deadline:
            # Redis's active expiry samples 20 keys with a TTL per cycle: with
            # thousands of them (idempotency fingerprints) it may not pick
            # ours soon. A read expires it on access, which announces it too.
            await client.exists(key)
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            # Other runs share the server; only our own key counts.
            if msg and msg["data"] == key:
                break
            if msg:
                seen.append(msg["data"])
        else:
            pytest.fail(f"no expired event for {key} within 10s (saw {seen[:5]})")
        assert await client.exists(key) == 0
    finally:
        await pubsub.unsubscribe(channel)
        await pubsub.aclose()


async def test_persistence_is_append_only(client: aioredis.Redis) -> None:
    assert (await client.config_get("appendonly"))["appendonly"] == "yes"
    assert (await client.config_get("appendfsync"))["appendfsync"] == "everysec"
    flags = (await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
    assert "E" in flags and "x" in flags
    info = await client.info("persistence")
    assert info["aof_enabled"] == 1


async def test_listens_on_loopback_in_protected_mode(client: aioredis.Redis) -> None:
    assert (await client.config_get("protected-mode"))["protected-mode"] == "yes"
    assert (await client.config_get("bind"))["bind"].split() == ["127.0.0.1"]
    await asyncio.sleep(0)
