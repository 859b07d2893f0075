"""Datastore calls under tracing, against the real servers: with tracing on
in this process (exporting to the real OTLP/gRPC receiver of
tests/otlp_receiver.py), Redis commands and pipelines (asyncio and sync
clients), FerretDB commands through pymongo and Cassandra requests through a
:func:`mesh.cassandra.connect` session are CLIENT spans of the enclosing
span, name only the command and its collection or table, record errors in
their status, and make nothing outside a span.

tests/e2e/test_tracing.py checks the same spans from the services' own
processes, inside their RPCs' traces.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from mesh import cassandra as cassandra_sessions
from mesh import tracing
from tests.conftest import Stack
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.integration
CLIENT = 3  # opentelemetry-proto Span.SpanKind
ERROR = 2  # opentelemetry-proto Status.StatusCode


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    assert not tracing.enabled(), "tracing already on in this process"
    rec = OtlpReceiver().start()
    shutdown = tracing.setup("dstest", rec.endpoint, schedule_delay_ms=100)
    yield rec
    shutdown()
    rec.stop()


def _children(receiver: OtlpReceiver, parent: object, count: int) -> list[ReceivedSpan]:
    """The spans under ``parent`` once ``count`` of them arrived."""
    span_id = f"{parent.get_span_context().span_id:016x}"  # type: ignore[attr-defined]

    def under(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.parent_span_id == span_id]

    return under(receiver.wait_for(lambda spans: len(under(spans)) >= count, timeout=30))


def _unparented(receiver: OtlpReceiver, system: str) -> list[ReceivedSpan]:
    return [s for s in receiver.snapshot()
            if s.attributes.get("db.system") == system and not s.parent_span_id]


def test_redis_commands_and_pipelines(stack: Stack, receiver: OtlpReceiver) -> None:
    key = f"{stack.redis_prefix}tracing:{uuid.uuid4().hex}"
    secret = f"value-{uuid.uuid4().hex}"

    async def run() -> object:
        client = tracing.instrument_redis(aioredis.Redis.from_url(stack.env["ECOM_REDIS_URL"]))
        try:
            await client.set(key, secret)  # outside any span: not traced
            with tracing.span("rpc", kind="SERVER") as parent:
                assert await client.get(key) == secret.encode()
                async with client.pipeline(transaction=False) as pipe:
                    pipe.set(key, secret)
                    pipe.expire(key, 60)
                    await pipe.execute()
                with pytest.raises(redis.ResponseError):
                    await client.incr(key)  # INCRBY; not an integer
            return parent
        finally:
            await client.delete(key)
            await client.aclose()

    parent = asyncio.run(run())
    spans = _children(receiver, parent, 3)
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"redis GET", "redis pipeline", "redis INCRBY"}, sorted(by_name)
    assert all(s.kind == CLIENT and s.attributes["db.system"] == "redis" for s in spans)
    assert by_name["redis GET"].attributes["db.operation"] == "GET"
    assert by_name["redis pipeline"].attributes["db.redis.commands"] == "SET EXPIRE"
    assert by_name["redis INCRBY"].status_code == ERROR
    assert by_name["redis GET"].status_code != ERROR
    # Names only: never the keys or the values.
    for s in spans:
        assert not any(key in str(v) or secret in str(v) for v in s.attributes.values()), s
    assert not [s for s in _unparented(receiver, "redis") if s.name == "redis SET"]

    # The sync client (svc_tat's matrix rebuild) the same way.
    sync = tracing.instrument_redis(redis.Redis.from_url(stack.env["ECOM_REDIS_URL"]))
    try:
        with tracing.span("rpc", kind="SERVER") as parent:
            sync.set(key, secret, ex=60)
            pipe = sync.pipeline()
            pipe.get(key)
            pipe.delete(key)
            pipe.execute()
    finally:
        sync.close()
    names = sorted(s.name for s in _children(receiver, parent, 2))
    assert names == ["redis SET", "redis pipeline"], names


def test_pymongo_commands(stack: Stack, receiver: OtlpReceiver) -> None:
    db_name = f"{stack.db_prefix}tracing"

    async def run() -> object:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
            stack.env["ECOM_MONGO_URL"], serverSelectionTimeoutMS=5000,
            event_listeners=tracing.mongo_listeners())
        try:
            items = client[db_name]["items"]
            await items.insert_one({"_id": "outside"})  # outside any span: not traced
            with tracing.span("rpc", kind="SERVER") as parent:
                await items.insert_one({"_id": "a", "secret": "s3cret"})
                assert await items.find_one({"_id": "a"}) is not None
                with pytest.raises(OperationFailure):
                    await client[db_name].command("noSuchCommandHere")
            return parent
        finally:
            await client.drop_database(db_name)
            await client.close()

    parent = asyncio.run(run())
    spans = _children(receiver, parent, 3)
    by_name = {s.name: s for s in spans}
    assert {"mongodb insert items", "mongodb find items"} <= set(by_name), sorted(by_name)
    for s in spans:
        assert s.kind == CLIENT
        assert s.attributes["db.system"] == "mongodb"
        assert s.attributes["db.name"] == db_name
        assert not any("s3cret" in str(v) for v in s.attributes.values()), s
    assert by_name["mongodb find items"].attributes["db.mongodb.collection"] == "items"
    failed = [s for s in spans if s.status_code == ERROR]
    assert [s.name for s in failed] == ["mongodb noSuchCommandHere"], [s.name for s in spans]
    assert not [s for s in _unparented(receiver, "mongodb") if s.name == "mongodb insert items"]


def test_cassandra_requests(stack: Stack, receiver: OtlpReceiver) -> None:
    from cassandra import InvalidRequest

    host, port = stack.env["ECOM_CASSANDRA_HOSTS"].split(",")[0].rsplit(":", 1)
    keyspace = f"{stack.db_prefix}tracing"
    session = cassandra_sessions.connect([(host, int(port))], keyspace)
    try:
        session.execute("CREATE TABLE IF NOT EXISTS notes (k text PRIMARY KEY, v text)",
                        timeout=cassandra_sessions.SCHEMA_TIMEOUT)
        put = session.prepare("INSERT INTO notes (k, v) VALUES (?, ?)")
        get = session.prepare("SELECT v FROM notes WHERE k = ?")

        async def in_rpc() -> object:
            # As services do: the driver's blocking call in a thread.
            with tracing.span("rpc", kind="SERVER") as parent:
                await asyncio.to_thread(session.execute, put, ("a", "s3cret"))
                rows = await asyncio.to_thread(session.execute, get, ("a",))
                assert [r.v for r in rows] == ["s3cret"]
                with pytest.raises(InvalidRequest):
                    await asyncio.to_thread(session.execute, "SELECT nope FROM notes")
            return parent

        parent = asyncio.run(in_rpc())
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}",
                        timeout=cassandra_sessions.SCHEMA_TIMEOUT)
        session.cluster.shutdown()
    spans = _children(receiver, parent, 3)
    names = sorted(s.name for s in spans)
    assert names == ["cassandra INSERT notes", "cassandra SELECT notes",
                     "cassandra SELECT notes"], names
    for s in spans:
        assert s.kind == CLIENT
        assert s.attributes["db.system"] == "cassandra"
        assert s.attributes["db.name"] == keyspace
        assert s.attributes["db.cassandra.table"] == "notes"
        assert not any("s3cret" in str(v) for v in s.attributes.values()), s
    assert [s.status_code == ERROR for s in spans].count(True) == 1
    # The schema statements ran outside any span: no spans of their own.
    assert not [s for s in _unparented(receiver, "cassandra") if s.name.startswith(
        "cassandra CREATE")]
