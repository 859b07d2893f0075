"""svc_users schema: Alembic upgrades an empty database to head, running it
again changes nothing, and the database itself enforces one default address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from mesh.db import drop_database, make_engine
from svc_users import store
from tests.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def empty_db(stack: Stack) -> AsyncIterator[tuple[AsyncEngine, str]]:
    name = stack.mysql_db("users_migrations")
    url = stack.env["ECOM_MYSQL_URL"]
    engine = await make_engine(url, name)
    try:
        yield engine, name
    finally:
        await engine.dispose()
        await drop_database(url, name)


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text("SHOW TABLES"))
        return {r[0] for r in rows}


async def test_upgrade_from_empty_is_idempotent_and_concurrent_safe(
    empty_db: tuple[AsyncEngine, str],
) -> None:
    engine, name = empty_db
    assert await _tables(engine) == set()
    # Two "processes" starting at once: the named lock serialises them.
    await asyncio.gather(store.migrate(engine, name), store.migrate(engine, name))
    assert await _tables(engine) == {"alembic_version", "users", "addresses", "request_ids"}
    await store.migrate(engine, name)
    async with engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0002"


async def test_database_allows_one_default_per_user(empty_db: tuple[AsyncEngine, str]) -> None:
    engine, name = empty_db
    await store.migrate(engine, name)
    now = store.utcnow().replace(tzinfo=None)
    async with engine.begin() as conn:
        await conn.execute(
            store.users.insert().values(
                user_id="u1",
                email="u1@x.in",
                name="U",
                phone="",
                password_hash="h",
                role="customer",
                create_time=now,
                update_time=now,
            )
        )
    row = dict(
        user_id="u1",
        name="U",
        lines=["l"],
        landmark="",
        city="c",
        state="s",
        pincode="560001",
        phone="+919845012345",
        default_of="u1",
        create_time=now,
    )
    async with engine.begin() as conn:
        await conn.execute(store.addresses.insert().values(address_id="a1", **row))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(store.addresses.insert().values(address_id="a2", **row))
