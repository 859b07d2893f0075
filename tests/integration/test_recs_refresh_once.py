"""A refresh key trains once across two copies of svc_recs: the copy that
claims the key in Cassandra trains, a retry reaching the other copy waits
for that answer. Two `RecsService`s on two sessions of one real keyspace,
as two replicas; the trainer is a port of ours, counted and gated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from infra.core import host_port
from mesh.errors import Unavailable
from svc_recs import store as recs_store
from svc_recs.service import RecsService
from tests.conftest import Stack
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration

ADMIN = "admin-1"


@pytest.fixture(scope="module")
def sessions(stack: Stack) -> Iterator[tuple[Any, Any]]:
    hosts = [host_port(h, 9042) for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    keyspace = f"{stack.db_prefix}refresh_recs"
    first = recs_store.connect(hosts, keyspace)
    recs_store.create_schema(first)
    second = recs_store.connect(hosts, keyspace)
    yield first, second
    first.cluster.shutdown()
    second.cluster.shutdown()


class CountingStore(recs_store.RecsStore):
    """The real store, counting claim attempts (to see a copy waiting)."""

    claims = 0

    async def claim_refresh(self, caller: str, request_id: str,
                            ttl_seconds: int) -> tuple[bool, str]:
        self.claims += 1
        return await super().claim_refresh(caller, request_id, ttl_seconds)


class GatedTrainer:
    """Counts trainings; each waits for the gate, then answers or fails."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise Unavailable("training failed: the lake is unreadable", reason="TRAINING_FAILED")
        return {"model_version": f"als-{self.calls}-{uuid.uuid4().hex[:6]}",
                "generate_time": datetime.now(UTC).isoformat(), "users": 2, "items": 3,
                "interactions": 4}


async def until(condition: Callable[[], bool], what: str) -> None:
    async def probe() -> bool:
        return condition()

    await wait_until_async(probe, what, timeout=30, interval=0.02)


def replica(session: Any, trainer: GatedTrainer, wait: float = 60.0) -> RecsService:
    return RecsService(CountingStore(session), cast(Any, None), cast(Any, None), trainer,
                       refresh_wait_seconds=wait, claim_poll_seconds=0.05)


async def test_one_key_on_two_copies_at_once_trains_once(sessions: tuple[Any, Any]) -> None:
    trainer = GatedTrainer()
    a, b = replica(sessions[0], trainer), replica(sessions[1], trainer)
    key = f"refresh-{uuid.uuid4().hex}"
    first = asyncio.create_task(a.refresh(ADMIN, key))
    await until(lambda: trainer.calls == 1, "the first copy trains")
    retry = asyncio.create_task(b.refresh(ADMIN, key))
    # The retry found the claim and is waiting on it (it polls again).
    await until(lambda: cast(CountingStore, b.store).claims >= 2,
                "the second copy waits for the first")
    trainer.gate.set()
    answers = await asyncio.gather(first, retry)
    assert trainer.calls == 1
    assert answers[0] == answers[1]
    # Later retries, on either copy, get the same answer without training.
    assert await b.refresh(ADMIN, key) == answers[0]
    assert trainer.calls == 1


async def test_a_failed_training_lets_a_retry_on_the_other_copy_train(
        sessions: tuple[Any, Any]) -> None:
    trainer = GatedTrainer()
    trainer.fail = True
    trainer.gate.set()
    a, b = replica(sessions[0], trainer), replica(sessions[1], trainer)
    key = f"refresh-{uuid.uuid4().hex}"
    with pytest.raises(Unavailable) as failed:
        await a.refresh(ADMIN, key)
    assert failed.value.reason == "TRAINING_FAILED"
    trainer.fail = False
    answer = await b.refresh(ADMIN, key)
    assert trainer.calls == 2
    assert answer.model_version.startswith("als-2-")


async def test_a_copy_stops_waiting_and_says_the_refresh_is_still_training(
        sessions: tuple[Any, Any]) -> None:
    trainer = GatedTrainer()
    a, b = replica(sessions[0], trainer), replica(sessions[1], trainer, wait=0.3)
    key = f"refresh-{uuid.uuid4().hex}"
    first = asyncio.create_task(a.refresh(ADMIN, key))
    await until(lambda: trainer.calls == 1, "the first copy trains")
    with pytest.raises(Unavailable) as waiting:
        await b.refresh(ADMIN, key)
    assert waiting.value.reason == "REFRESH_IN_PROGRESS"
    assert key in str(waiting.value)
    trainer.gate.set()
    assert (await first).model_version.startswith("als-1-")
    assert trainer.calls == 1


async def test_the_same_key_from_two_callers_is_two_refreshes(sessions: tuple[Any, Any]) -> None:
    trainer = GatedTrainer()
    trainer.gate.set()
    a, b = replica(sessions[0], trainer), replica(sessions[1], trainer)
    key = f"refresh-{uuid.uuid4().hex}"
    mine, theirs = await a.refresh(ADMIN, key), await b.refresh("admin-2", key)
    assert trainer.calls == 2 and mine.model_version != theirs.model_version
