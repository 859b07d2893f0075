"""Benchmark: GetUser latency served from the Redis cache vs from MariaDB.

Prints figures; asserts nothing about time. Run with::

    ECOM_TEST_SERVERS=mariadb,redis .venv/bin/python -m pytest -s \
        tests/perf/test_users_profile_reads.py
"""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis
from ecom.users.v1 import users_pb2, users_pb2_grpc

from mesh.auth import JWT_PAYLOAD_HEADER, Caller, encode_jwt_payload
from tests.conftest import Services, Stack
from tests.perf import stats

CALLS = 300


def _summary(label: str, samples: list[float]) -> str:
    return f"{label:<22} {stats.line([s * 1000 for s in samples])}"


@pytest.mark.integration
async def test_profile_read_latency(services: Services, stack: Stack) -> None:
    svc = services.start("users")
    r = aioredis.Redis.from_url(stack.env["ECOM_REDIS_URL"])
    async with svc.channel() as ch:
        users = users_pb2_grpc.UserServiceStub(ch)
        user = await users.CreateUser(
            users_pb2.CreateUserRequest(
                email=f"bench-{uuid.uuid4().hex[:8]}@x.in",
                password="benchmark pw",
                name="Bench",
                request_id=uuid.uuid4().hex,
            )
        )
        md = [(JWT_PAYLOAD_HEADER, encode_jwt_payload(Caller(user.user_id, frozenset())))]
        req = users_pb2.GetUserRequest(user_id=user.user_id)
        key = f"{stack.redis_prefix}users:profile:v1:{user.user_id}"
        await users.GetUser(req, metadata=md)  # warm the channel and the cache

        hits = []
        for _ in range(CALLS):
            t = time.perf_counter()
            await users.GetUser(req, metadata=md)
            hits.append(time.perf_counter() - t)

        misses = []
        for _ in range(CALLS):
            await r.delete(key)
            t = time.perf_counter()
            await users.GetUser(req, metadata=md)
            misses.append(time.perf_counter() - t)
    await r.aclose()
    print()
    print(_summary("GetUser cache hit", hits))
    print(_summary("GetUser cache miss", misses))
    from tests.perf import report

    report.record("GetUser p50, cache hit vs miss", stats.percentile(
        [s * 1000 for s in hits], 50), stats.percentile([s * 1000 for s in misses], 50),
        unit="ms", better="lower")
    assert len(hits) == len(misses) == CALLS
