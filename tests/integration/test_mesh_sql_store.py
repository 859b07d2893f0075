"""`mesh.db.SqlStore`, the base of the services' MariaDB stores, against the
real server: table creation is idempotent, the health probe passes while the
database answers and counts as down (through `mesh.health`, as
`Service.add_dependency` uses it) when it does not, and `run` re-runs a
deadlock victim as often as the store's retry budget allows."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mesh import db
from mesh.health import HealthMonitor
from tests.conftest import Stack

pytestmark = pytest.mark.integration

own = sa.MetaData()
notes = sa.Table(
    "notes",
    own,
    sa.Column("note_id", sa.String(64), primary_key=True),
    sa.Column("body", sa.String(200), nullable=False),
    mysql_engine="InnoDB",
)
# A second MetaData stands for the shared tables (outbox, dedupe) a real
# store lists after its own.
shared = sa.MetaData()
marks = sa.Table(
    "marks",
    shared,
    sa.Column("mark_id", sa.String(64), primary_key=True),
    mysql_engine="InnoDB",
)


class NotesStore(db.SqlStore):
    """The smallest real subclass: two MetaData, the default retry budget."""

    schema = (own, shared)


class PatientStore(NotesStore):
    """A subclass with its own default retry budget."""

    retries = 5


@pytest.fixture
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    """An engine on a database of this test run's own, dropped afterwards."""
    server = stack.env["ECOM_MYSQL_URL"]
    name = stack.mysql_db("sqlstore")
    eng = await db.make_engine(server, name)
    try:
        yield eng
    finally:
        await eng.dispose()
        await db.drop_database(server, name)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on: bound (so no one else takes it while
    the test runs) but never listening, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def table_names(engine: AsyncEngine) -> set[str]:
    """The tables of the engine's database."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
            )
        )
        return {r[0] for r in rows}


async def test_create_tables_creates_every_schema_and_is_idempotent(engine: AsyncEngine) -> None:
    store = NotesStore(engine)
    assert await table_names(engine) == set()
    await store.create_tables()
    assert await table_names(engine) == {"notes", "marks"}
    async with store.transaction() as conn:
        await conn.execute(sa.insert(notes).values(note_id="n1", body="kept"))
    # A restart runs create_tables again: nothing fails, nothing is replaced.
    await store.create_tables()
    assert await table_names(engine) == {"notes", "marks"}
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(notes.c.body))).scalars().all() == ["kept"]


async def test_ping_passes_while_the_database_answers(engine: AsyncEngine) -> None:
    store = NotesStore(engine)
    assert await store.ping() is True
    health = HealthMonitor(interval=60, timeout=5)
    health.add_dependency("mariadb", store.ping)
    assert await health.check_once() is True
    assert health.dependencies["mariadb"].healthy is True


async def test_ping_fails_when_nothing_listens(stack: Stack, closed_port: int) -> None:
    url = make_url(stack.env["ECOM_MYSQL_URL"]).set(port=closed_port)
    engine = await db.make_engine(
        url.render_as_string(hide_password=False),
        "unreachable",
        create=False,
        connect_args={"connect_timeout": 5},
    )
    try:
        store = NotesStore(engine)
        # The contract is "True or raise": mesh.health counts a raise as down.
        with pytest.raises(DBAPIError):
            await store.ping()
        health = HealthMonitor(interval=60, timeout=10)
        health.add_dependency("mariadb", store.ping)
        assert await health.check_once() is False
        dep = health.dependencies["mariadb"]
        assert dep.healthy is False
        assert dep.last_error is not None and "OperationalError" in dep.last_error
    finally:
        await engine.dispose()


async def test_transaction_rolls_back_on_error(engine: AsyncEngine) -> None:
    store = NotesStore(engine)
    await store.create_tables()
    with pytest.raises(RuntimeError):
        async with store.transaction() as conn:
            await conn.execute(sa.insert(notes).values(note_id="gone", body="x"))
            raise RuntimeError("abort")
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(notes))).scalar() == 0


@pytest.mark.parametrize(
    ("store_class", "override", "reruns"),
    [(NotesStore, None, 3), (PatientStore, None, 5), (PatientStore, 1, 1)],
    ids=["base-default", "subclass-default", "per-instance"],
)
async def test_run_reruns_a_deadlock_victim_up_to_the_store_budget(
    engine: AsyncEngine, store_class: type[db.SqlStore], override: int | None, reruns: int
) -> None:
    store = store_class(engine, retries=override)
    assert store.retries == reruns

    def victim_failing(times: int) -> tuple[list[int], Callable[[AsyncConnection], Awaitable[int]]]:
        attempts: list[int] = []

        async def victim(conn: AsyncConnection) -> int:
            attempts.append(1)
            await conn.execute(sa.text("SELECT 1"))
            if len(attempts) <= times:
                # What asyncmy raises when InnoDB picks this transaction as
                # the deadlock victim (the whole transaction rolled back).
                raise OperationalError("UPDATE ...", {}, Exception(db.ER_LOCK_DEADLOCK, "Deadlock"))
            return len(attempts)

        return attempts, victim

    attempts, victim = victim_failing(reruns + 1)
    with pytest.raises(OperationalError):
        await store.run(victim)
    assert len(attempts) == reruns + 1
    # One failure fewer fits the budget: the last re-run succeeds.
    attempts, victim = victim_failing(reruns)
    assert await store.run(victim) == reruns + 1
