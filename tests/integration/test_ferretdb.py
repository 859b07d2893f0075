"""FerretDB (MongoDB wire, SQLite backend) as the catalog uses it: pymongo's
async client, a unique index that the server enforces, finds and updates."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pymongo
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from tests.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[AsyncDatabase]:
    client: AsyncMongoClient = AsyncMongoClient(
        stack.env["ECOM_MONGO_URL"], serverSelectionTimeoutMS=5000)
    try:
        yield client[stack.mongo_db]
    finally:
        await client.drop_database(stack.mongo_db)
        assert stack.mongo_db not in await client.list_database_names()
        await client.close()


async def test_insert_find_update_with_index(db: AsyncDatabase) -> None:
    items = db["items"]
    name = await items.create_index([("sku", pymongo.ASCENDING)], unique=True)
    await items.create_index([("category", pymongo.ASCENDING), ("price", pymongo.ASCENDING)])
    indexes = {ix["name"]: ix async for ix in await items.list_indexes()}
    assert indexes[name]["unique"] is True

    await items.insert_many([
        {"sku": "tea-1", "title": "Assam tea", "category": "grocery", "price": 250, "stock": 3},
        {"sku": "tea-2", "title": "Darjeeling tea", "category": "grocery", "price": 480},
        {"sku": "mug-1", "title": "Steel mug", "category": "kitchen", "price": 199},
    ])
    with pytest.raises(DuplicateKeyError):
        await items.insert_one({"sku": "tea-1", "title": "again"})

    found = [d["sku"] async for d in items.find({"category": "grocery", "price": {"$lt": 500}})
             .sort("price", pymongo.DESCENDING)]
    assert found == ["tea-2", "tea-1"]

    res = await items.update_one({"sku": "tea-1"},
                                 {"$set": {"price": 260}, "$inc": {"stock": -1}})
    assert res.matched_count == 1 and res.modified_count == 1
    doc = await items.find_one({"sku": "tea-1"}, {"_id": 0, "price": 1, "stock": 1})
    assert doc == {"price": 260, "stock": 2}
    assert await items.count_documents({}) == 3


async def test_server_identifies_as_ferretdb(db: AsyncDatabase) -> None:
    info = await db.client.admin.command("buildInfo")
    assert info.get("ferretdbVersion", "").startswith("v1.24")


async def test_lookups_by_id_keep_their_meaning_with_the_pushdown_patch(
        db: AsyncDatabase) -> None:
    """`_id` (a value or an `$in`) is answered from the index; the rest of
    the filter must still apply to what the index returns."""
    items = db["patched"]
    await items.insert_many([{"_id": f"p{i}", "version": i % 3, "tags": ["a", f"t{i}"]}
                             for i in range(50)])
    assert await items.find_one({"_id": "p7", "version": 1}) == {
        "_id": "p7", "version": 1, "tags": ["a", "t7"]}
    assert await items.find_one({"_id": "p7", "version": 2}) is None
    res = await items.update_one({"_id": "p8", "version": 0}, {"$set": {"x": 1}})
    assert res.matched_count == 0  # p8 is at version 2: the compare-and-set refuses
    res = await items.update_one({"_id": "p8", "version": 2}, {"$set": {"x": 1}})
    assert res.matched_count == 1
    wanted = ["p3", "p4", "p5", "missing", "p49"]
    got = sorted([d["_id"] async for d in items.find({"_id": {"$in": wanted}})])
    assert got == ["p3", "p4", "p49", "p5"]
    got = sorted([d["_id"] async for d in items.find({"_id": {"$in": wanted}, "version": 1})])
    assert got == ["p4", "p49"]
    mixed = sorted([d["_id"] async for d in items.find({"_id": {"$in": ["p1", 7]}})])
    assert mixed == ["p1"]  # a non-string in the list falls back to the full read
    assert await items.count_documents({"_id": {"$in": []}}) == 0
    assert (await items.delete_one({"_id": "p9", "version": 1})).deleted_count == 0
    assert (await items.delete_one({"_id": "p9", "version": 0})).deleted_count == 1


async def test_a_bulk_write_of_hundreds_of_updates_completes(stack: Stack) -> None:
    """Unpatched, an update command of 100+ statements held 100+ cursors of
    FerretDB's 100-connection pool and hung the server for good."""
    client: AsyncMongoClient = AsyncMongoClient(
        stack.env["ECOM_MONGO_URL"], serverSelectionTimeoutMS=5000, socketTimeoutMS=20000)
    name = f"{stack.mongo_db}_bulk"
    try:
        coll = client[name]["docs"]
        await coll.insert_many([{"_id": f"b{i}", "v": 0} for i in range(300)])
        updates = [pymongo.UpdateOne({"_id": f"b{i}", "v": 0}, {"$set": {"v": i + 1}})
                   for i in range(250)]
        res = await coll.bulk_write(updates, ordered=False)
        assert (res.matched_count, res.modified_count) == (250, 250)
        assert await coll.count_documents({"v": 0}) == 50  # the 50 not named
        assert (await client.admin.command("ping"))["ok"] == 1
    finally:
        await client.drop_database(name)
        await client.close()


def test_id_index_is_on_the_lookup_expression_and_old_files_are_repaired(
        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite uses an index only for the expression it was built on: the
    patched build and the repair both put `_id` on the lookups' expression,
    and a lookup by `_id` then reads the index, not the table."""
    import sqlite3

    from infra.servers.ferretdb import repair_id_indexes

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE items_1 (_ferretdb_sjson TEXT NOT NULL) STRICT")
    con.execute('CREATE UNIQUE INDEX "items_1__id_" ON "items_1" (_ferretdb_sjson->"_id")')
    con.execute("INSERT INTO items_1 VALUES ('{\"_id\": \"a\"}')")
    con.commit()
    lookup = "SELECT * FROM items_1 WHERE _ferretdb_sjson->'$._id' = ?"
    plan = " ".join(str(r) for r in con.execute("EXPLAIN QUERY PLAN " + lookup, ['"a"']))
    assert "SCAN" in plan  # the unpatched index is useless to the lookup
    con.close()

    assert repair_id_indexes(tmp_path) == 1
    assert repair_id_indexes(tmp_path) == 0  # nothing left to repair
    con = sqlite3.connect(path)
    plan = " ".join(str(r) for r in con.execute("EXPLAIN QUERY PLAN " + lookup, ['"a"']))
    assert "USING INDEX items_1__id_" in plan
    assert con.execute(lookup, ['"a"']).fetchall() == [('{"_id": "a"}',)]
    con.close()


async def test_the_running_server_builds_id_indexes_on_the_lookup_expression(
        db: AsyncDatabase) -> None:
    """The `_id` index of a collection the running server just made is on
    the lookup expression, i.e. the stack runs the patched build."""
    import sqlite3

    from infra.servers.ferretdb import FerretDB

    server = FerretDB()
    assert not server.external(), "this test reads the files of the stack's own FerretDB"
    await db["fresh"].insert_one({"_id": "x"})
    path = server.data_dir / "sqlite" / f"{db.name}.sqlite"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sqls = [r[0] for r in con.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '%_id%'")]
    finally:
        con.close()
    assert sqls and all("->'$._id'" in s for s in sqls), sqls
