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
