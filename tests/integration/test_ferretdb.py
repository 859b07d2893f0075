"""FerretDB (MongoDB wire, SQLite backend) as the catalog uses it: pymongo's
async client, a unique index that the server enforces, finds and updates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pymongo
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from tests.conftest import Stack
from tests.waiting import wait_until

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


# --------------------------------------------------------------------------
# Concurrent updates of one document, on a FerretDB of its own
# --------------------------------------------------------------------------
# These start the binary `infra` builds (patch 4: a lock per collection
# around update, findAndModify and delete) on a free port with its own
# files, so they check the build itself whichever FerretDB the stack runs.
# Threads with one client each stand for separate catalog processes: every
# update is its own wire command on its own connection.


Doc = dict[str, Any]


def _mongo(url: str, **kw: Any) -> pymongo.MongoClient[Doc]:
    return pymongo.MongoClient(url, **kw)


def _get(coll: Any, doc_id: str) -> Doc:
    doc: Doc | None = coll.find_one({"_id": doc_id})
    assert doc is not None, doc_id
    return doc


@pytest.fixture(scope="module")
def own_ferretdb(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A FerretDB process of this module's own; yields its URL."""
    import os
    import socket
    import subprocess

    from infra.core import tail
    from infra.servers.ferretdb import FerretDB

    server = FerretDB()
    server.install()  # builds the patched binary if the cache lacks it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    data = tmp_path_factory.mktemp("ferretdb")
    (data / "sqlite").mkdir()
    (data / "state").mkdir()
    command = [a for a in server.command()
               if not a.startswith(("--sqlite-url=", "--listen-addr=", "--state-dir="))]
    command += [f"--sqlite-url=file:{data / 'sqlite'}/", f"--listen-addr=127.0.0.1:{port}",
                f"--state-dir={data / 'state'}"]
    log = data / "ferretdb.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "DO_NOT_TRACK": "1"},
                                start_new_session=True)
    url = f"mongodb://127.0.0.1:{port}/"
    try:
        def ready() -> bool:
            assert proc.poll() is None, f"ferretdb exited:\n{tail(log)}"
            try:
                with _mongo(url, serverSelectionTimeoutMS=500) as c:
                    return c.admin.command("ping").get("ok") == 1
            except pymongo.errors.PyMongoError:
                return False

        wait_until(ready, f"ferretdb answering ping on port {port}", timeout=60, interval=0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _in_threads(url: str, threads: int, per_thread: int, work) -> list:  # type: ignore[no-untyped-def]
    """Run ``work(collection, thread, n)`` ``per_thread`` times in each of
    ``threads`` threads, each with its own client; returns every result."""
    from concurrent.futures import ThreadPoolExecutor

    def run(t: int) -> list:  # type: ignore[type-arg]
        with _mongo(url, maxPoolSize=1) as client:
            coll = client["races"]["docs"]
            return [work(coll, t, n) for n in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        return [r for rs in pool.map(run, range(threads)) for r in rs]


def test_concurrent_inc_on_one_document_is_exact(own_ferretdb: str) -> None:
    with _mongo(own_ferretdb) as client:
        client["races"]["docs"].replace_one({"_id": "inc"}, {"_id": "inc", "n": 0}, upsert=True)
    _in_threads(own_ferretdb, 16, 25, lambda c, t, n: c.update_one(
        {"_id": "inc"}, {"$inc": {"n": 1}}).modified_count)
    with _mongo(own_ferretdb) as client:
        assert _get(client["races"]["docs"], "inc")["n"] == 400


def test_compare_and_set_wins_equal_version_moves_one_winner_per_version(
        own_ferretdb: str) -> None:
    with _mongo(own_ferretdb) as client:
        client["races"]["docs"].replace_one(
            {"_id": "cas"}, {"_id": "cas", "version": 0, "writer": ""}, upsert=True)

    def cas(coll, t, n):  # type: ignore[no-untyped-def]
        seen = _get(coll, "cas")["version"]
        res = coll.update_one({"_id": "cas", "version": seen},
                              {"$set": {"writer": f"{t}/{n}"}, "$inc": {"version": 1}})
        return seen if res.modified_count == 1 else None

    won = [v for v in _in_threads(own_ferretdb, 8, 25, cas) if v is not None]
    with _mongo(own_ferretdb) as client:
        final = _get(client["races"]["docs"], "cas")["version"]
    assert len(won) == final  # every reported win moved the version
    assert sorted(won) == list(range(final))  # exactly one winner per version


def test_find_one_and_update_returns_distinct_post_images(own_ferretdb: str) -> None:
    with _mongo(own_ferretdb) as client:
        client["races"]["docs"].replace_one({"_id": "seq"}, {"_id": "seq", "n": 0}, upsert=True)
    images = _in_threads(own_ferretdb, 8, 25, lambda c, t, n: c.find_one_and_update(
        {"_id": "seq"}, {"$inc": {"n": 1}},
        return_document=pymongo.ReturnDocument.AFTER)["n"])
    assert sorted(images) == list(range(1, 201))


def test_delete_races_an_update_without_resurrecting_or_losing(own_ferretdb: str) -> None:
    """Each document is either deleted or has every increment: an update
    never writes back a document a concurrent delete removed."""
    with _mongo(own_ferretdb) as client:
        coll = client["races"]["gone"]
        coll.insert_many([{"_id": f"d{i}", "n": 0} for i in range(50)])

    from concurrent.futures import ThreadPoolExecutor

    def bump(_: int) -> None:
        with _mongo(own_ferretdb, maxPoolSize=1) as client:
            for i in range(50):
                client["races"]["gone"].update_one({"_id": f"d{i}"}, {"$inc": {"n": 1}})

    def delete(_: int) -> int:
        with _mongo(own_ferretdb, maxPoolSize=1) as client:
            return sum(client["races"]["gone"].delete_one({"_id": f"d{i}"}).deleted_count
                       for i in range(0, 50, 2))

    with ThreadPoolExecutor(4) as pool:
        bumps = [pool.submit(bump, 0), pool.submit(bump, 1)]
        deletes = pool.submit(delete, 0)
        deleted = deletes.result()
        for f in bumps:
            f.result()
    with _mongo(own_ferretdb) as client:
        left = {d["_id"]: d["n"] for d in client["races"]["gone"].find()}
    assert deleted == 25
    assert sorted(left) == sorted(f"d{i}" for i in range(1, 50, 2))
    assert set(left.values()) == {2}


def test_the_build_carries_the_collection_lock() -> None:
    """The build name changes with the patches, so caches rebuild."""
    from infra.servers.ferretdb import BUILD, NEW_FILES, PATCHES

    assert BUILD.endswith("-ecom4")
    assert any(name.endswith("msg_findandmodify.go") for name, _, _ in PATCHES)
    assert any("ecomLockCollection" in text for _, text in NEW_FILES)
