"""The Redis, pymongo and Cassandra tracing hooks of mesh.tracing cost
nothing while tracing is off: with no collector configured they install
nothing, and installed (collector configured, tracer not up yet) they pass
each call straight through. Also how a CQL statement names its span."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from mesh import tracing

CLOSED = "redis://127.0.0.1:1/0"  # nothing listens there


class NoListeners:
    """A session stand-in that fails if anything is registered on it."""

    def add_request_init_listener(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a request listener was installed with tracing off")


@pytest.fixture
def off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tracing.ENDPOINT_ENV, raising=False)
    assert not tracing.enabled()


def test_off_installs_nothing(off: None) -> None:
    for client in (aioredis.Redis.from_url(CLOSED), redis.Redis.from_url(CLOSED)):
        assert tracing.instrument_redis(client) is client
        assert "execute_command" not in vars(client)
        assert "pipeline" not in vars(client)
    assert tracing.mongo_listeners() == []
    session = NoListeners()
    assert tracing.instrument_cassandra(session) is session


async def test_configured_but_not_started_passes_calls_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process with ECOM_OTLP_ENDPOINT builds its clients before
    mesh.Service.start turns tracing on: the hooks are installed then, and
    until the tracer exists they call straight through, making no span."""
    monkeypatch.setenv(tracing.ENDPOINT_ENV, "127.0.0.1:1")
    assert not tracing.enabled()

    def no_span(*args: Any) -> None:
        raise AssertionError("a span was attempted while tracing is off")

    monkeypatch.setattr(tracing, "_child_span", no_span)
    client = tracing.instrument_redis(aioredis.Redis.from_url(CLOSED))
    assert "execute_command" in vars(client)
    with pytest.raises(redis.ConnectionError):
        await client.execute_command("PING")
    pipe = client.pipeline()
    pipe.get("k")
    with pytest.raises(redis.ConnectionError):
        await pipe.execute()
    await client.aclose()

    [listener] = tracing.mongo_listeners()
    event = object()  # any attribute read would raise
    listener.started(event)
    listener.succeeded(event)
    listener.failed(event)
    tracing._cassandra_request(object(), object())


@pytest.mark.parametrize(("statement", "expected"), [
    ("SELECT order_pb FROM orders_by_id WHERE order_id = ?", ("SELECT", "orders_by_id")),
    ("select x from ks.t where a = 1", ("SELECT", "ks.t")),
    ("INSERT INTO orders_by_user (a, b) VALUES (?, ?)", ("INSERT", "orders_by_user")),
    ("UPDATE counters SET n = n + 1 WHERE k = ?", ("UPDATE", "counters")),
    ("DELETE FROM recs WHERE user_id = ?", ("DELETE", "recs")),
    ("CREATE TABLE IF NOT EXISTS t1 (k text PRIMARY KEY)", ("CREATE", "t1")),
    ("CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {}", ("CREATE", "")),
    ("TRUNCATE t2", ("TRUNCATE", "")),
])
def test_cql_span_names(statement: str, expected: tuple[str, str]) -> None:
    assert tracing._cql_name(statement) == expected
