"""MariaDB as the services use it: SQLAlchemy 2 async over asyncmy, InnoDB,
utf8mb4, and CHECK constraints that the server really enforces (the last line
of defence against overselling stock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import Stack

pytestmark = pytest.mark.integration


def async_url(stack: Stack, database: str = "") -> str:
    """ECOM_MYSQL_URL (`mysql://user@host:port`) as an SQLAlchemy asyncmy URL."""
    base = stack.env["ECOM_MYSQL_URL"].split("://", 1)[1].rstrip("/")
    return f"mysql+asyncmy://{base}/{database}?charset=utf8mb4"


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[AsyncEngine]:
    """A database of this test run's own, dropped afterwards."""
    name = stack.mysql_db("x")
    server = create_async_engine(async_url(stack), isolation_level="AUTOCOMMIT")
    async with server.connect() as conn:
        await conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    engine = create_async_engine(async_url(stack, name))
    try:
        yield engine
    finally:
        await engine.dispose()
        async with server.connect() as conn:
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            left = await conn.scalar(
                sa.text("SELECT COUNT(*) FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = :n"), {"n": name})
        await server.dispose()
        assert left == 0


# MariaDB reports a failed CHECK as error 4025 (ER_CONSTRAINT_FAILED), which
# asyncmy and pymysql raise as OperationalError, not IntegrityError: callers
# must look at the error code.
ER_CONSTRAINT_FAILED = 4025


def constraint_failed(exc: DBAPIError) -> str | None:
    """The message of a failed CHECK constraint, or None for any other error."""
    args = getattr(exc.orig, "args", ())
    return str(args[1]) if args and args[0] == ER_CONSTRAINT_FAILED else None


metadata = sa.MetaData()
stock = sa.Table(
    "stock", metadata,
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("warehouse_id", sa.String(64), primary_key=True),
    sa.Column("available", sa.Integer, nullable=False),
    sa.Column("title", sa.String(200), nullable=False, server_default=""),
    sa.CheckConstraint("available >= 0", name="stock_available_not_negative"),
)


async def test_check_constraint_rejects_negative_stock(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(stock.insert().values(item_id="i1", warehouse_id="w1", available=5))

    # A decrement past zero is refused by the server itself, whatever the caller checked.
    with pytest.raises(DBAPIError) as update_err:
        async with db.begin() as conn:
            await conn.execute(
                stock.update()
                .where(stock.c.item_id == "i1", stock.c.warehouse_id == "w1")
                .values(available=stock.c.available - 6)
            )
    assert "stock_available_not_negative" in (constraint_failed(update_err.value) or "")
    with pytest.raises(DBAPIError) as insert_err:
        async with db.begin() as conn:
            await conn.execute(stock.insert().values(item_id="i2", warehouse_id="w1",
                                                     available=-1))
    assert "stock_available_not_negative" in (constraint_failed(insert_err.value) or "")

    async with db.connect() as conn:
        assert await conn.scalar(sa.select(stock.c.available)
                                 .where(stock.c.item_id == "i1")) == 5
        assert await conn.scalar(sa.select(sa.func.count()).select_from(stock)) == 1


async def test_tables_are_innodb_utf8mb4(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)
        title = "Chai \u2615 \U0001f6d2 \u0939\u093f\u0902\u0926\u0940"  # 4-byte emoji + Devanagari
        await conn.execute(stock.insert().values(item_id="i1", warehouse_id="w1",
                                                 available=1, title=title))
    async with db.connect() as conn:
        assert await conn.scalar(sa.select(stock.c.title)) == title
        engine, collation = (await conn.execute(sa.text(
            "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'stock'"))).one()
    assert engine == "InnoDB"
    assert collation.startswith("utf8mb4_")


async def test_transaction_rolls_back(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            await conn.execute(stock.insert().values(item_id="i1", warehouse_id="w1",
                                                     available=3))
            raise RuntimeError("abort")
    async with db.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(stock)) == 0


async def test_an_idle_pooled_connection_the_server_dropped_is_replaced_before_use(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mesh.db pings a connection at checkout only after it sat idle: one
    the server closed meanwhile (a restart, a killed session) is replaced
    and the transaction runs, instead of failing."""
    from mesh.db import drop_database, make_engine

    monkeypatch.setenv("ECOM_DB_PING_IDLE_SECONDS", "0.05")
    name = stack.mysql_db("ping")
    url = stack.env["ECOM_MYSQL_URL"]
    engine = await make_engine(url, name, pool_size=1, max_overflow=0)
    admin = create_async_engine(async_url(stack), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            first = await conn.scalar(sa.text("SELECT CONNECTION_ID()"))
        async with admin.connect() as conn:
            await conn.execute(sa.text(f"KILL CONNECTION {int(first)}"))
        await asyncio.sleep(0.2)  # idle past the threshold: the ping runs
        async with engine.begin() as conn:
            second = await conn.scalar(sa.text("SELECT CONNECTION_ID()"))
        assert second != first
    finally:
        await engine.dispose()
        await admin.dispose()
        await drop_database(url, name)
