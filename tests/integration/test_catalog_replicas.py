"""svc_catalog as two processes on one FerretDB: concurrent updates of the
same items through both replicas lose nothing, every successful update has
its ``catalog.items`` event (in version order), and a supplier feed racing
API updates ends at the last version, which search shows too.

Needs the patched FerretDB (build ecom4: atomic single-document updates);
``test_ferretdb.py`` checks the build itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from elasticsearch import Elasticsearch
from google.protobuf import field_mask_pb2
from google.type import money_pb2

from svc_catalog import domain
from tests.conftest import RunningService, Services, Stack
from tests.integration.catalog_support import ADMIN, TopicReader, phone, rid

pytestmark = pytest.mark.integration

SUPPLIER = "replica-supplies"


@pytest.fixture(scope="module")
def catalog_svc(services: Services) -> RunningService:
    svc = services.start("catalog")
    assert len(svc.replica_addrs) >= 2, "run with ECOM_TEST_REPLICAS=2 (the default)"
    return svc


@pytest.fixture
async def replicas(catalog_svc: RunningService
                   ) -> AsyncIterator[list[catalog_pb2_grpc.CatalogServiceStub]]:
    """One stub per replica process, each pinned to its own address."""
    channels = [grpc.aio.insecure_channel(a) for a in catalog_svc.replica_addrs]
    try:
        yield [catalog_pb2_grpc.CatalogServiceStub(ch) for ch in channels]
    finally:
        for ch in channels:
            await ch.close()


async def _update(stub: catalog_pb2_grpc.CatalogServiceStub, item_id: str, title: str,
                  expected_version: int = 0) -> catalog_pb2.Item:
    return await stub.UpdateItem(catalog_pb2.UpdateItemRequest(
        item_id=item_id, item=catalog_pb2.Item(title=title),
        update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        expected_version=expected_version, request_id=rid()), metadata=ADMIN, timeout=60)


async def test_two_processes_updating_the_same_items_lose_nothing(
        replicas: list[catalog_pb2_grpc.CatalogServiceStub], stack: Stack) -> None:
    reader = TopicReader(stack, "catalog.items")
    try:
        items = [await replicas[0].CreateItem(catalog_pb2.CreateItemRequest(
            item=phone(f"Raced phone {n}"), request_id=rid()), metadata=ADMIN)
            for n in range(4)]
        per_item = 30

        # Last-writer-wins updates (no expected version): every call must
        # succeed with a version of its own, half through each process.
        async def writer(item: catalog_pb2.Item, n: int) -> int:
            stub = replicas[n % len(replicas)]
            return (await _update(stub, item.item_id, f"{item.title} w{n}")).version

        results = await asyncio.gather(*(writer(item, n) for item in items
                                         for n in range(per_item)))
        by_item = [results[i * per_item:(i + 1) * per_item] for i in range(len(items))]
        for item, versions in zip(items, by_item, strict=True):
            assert sorted(versions) == list(range(2, per_item + 2)), item.item_id
            got = await replicas[1].GetItem(catalog_pb2.GetItemRequest(item_id=item.item_id))
            assert got.version == per_item + 1

        # Compare-and-set updates: one winner per version, and every win
        # moved the version; the others are ABORTED.
        target = items[0]
        wins: list[int] = []

        async def cas(n: int) -> None:
            stub = replicas[n % len(replicas)]
            for _ in range(5):
                seen = (await stub.GetItem(
                    catalog_pb2.GetItemRequest(item_id=target.item_id))).version
                try:
                    await _update(stub, target.item_id, f"cas {n}", expected_version=seen)
                    wins.append(seen)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.ABORTED, exc
        await asyncio.gather(*(cas(n) for n in range(8)))
        final = (await replicas[0].GetItem(
            catalog_pb2.GetItemRequest(item_id=target.item_id))).version
        assert sorted(wins) == list(range(per_item + 1, final))

        # Every successful update has its event, each item's in version order.
        wanted = {i.item_id: (final if i.item_id == target.item_id else per_item + 1)
                  for i in items}

        def complete(events: list[Any]) -> bool:
            return all({e.entity_version for e in events if e.entity_key == k} >=
                       set(range(1, v + 1)) for k, v in wanted.items())

        reader.until(complete, timeout=120)
        for item_id, last in wanted.items():
            versions = [e.entity_version for e in reader.about(item_id)]
            assert set(versions) == set(range(1, last + 1)), item_id
            first_seen = list(dict.fromkeys(versions))  # redeliveries aside
            assert first_seen == sorted(first_seen), (item_id, versions)
    finally:
        reader.close()


async def test_list_items_pages_alike_through_either_process(
        replicas: list[catalog_pb2_grpc.CatalogServiceStub]) -> None:
    """The category index lives in the database: both processes page the
    same items in the same order, with tokens from either."""
    made = {(await replicas[n % 2].CreateItem(catalog_pb2.CreateItemRequest(
        item=_kettle(f"Replica kettle {n}"), request_id=rid()), metadata=ADMIN)).item_id
        for n in range(9)}
    seen: list[str] = []
    token, n = "", 0
    while True:
        page = await replicas[n % 2].ListItems(catalog_pb2.ListItemsRequest(
            category="kitchen-appliances", page_size=4, page_token=token))
        seen += [i.item_id for i in page.items]
        n += 1
        if not (token := page.next_page_token):
            break
    assert made <= set(seen) and len(seen) == len(set(seen))


def _kettle(title: str) -> catalog_pb2.Item:
    item = catalog_pb2.Item(title=title, category="kitchen-appliances",
                            price=money_pb2.Money(currency_code="INR", units=999))
    item.attributes.update({"type": "kettle", "power_watts": 1500})
    return item


def _feed_row(sku: str, title: str, rupees: int) -> str:
    return json.dumps({"sku": sku, "title": title, "category": "mobiles", "brand": "Acme",
                       "price": {"currencyCode": "INR", "units": str(rupees)},
                       "attributes": {"ram_gb": 6, "storage_gb": 128, "screen_inches": 6.1}})


async def test_a_feed_racing_api_updates_ends_at_the_last_version_and_search_agrees(
        replicas: list[catalog_pb2_grpc.CatalogServiceStub], services: Services,
        stack: Stack) -> None:
    search = services.start("search")
    skus = [f"R{n}" for n in range(20)]
    first = await replicas[0].SubmitFeed(catalog_pb2.SubmitFeedRequest(
        supplier_id=SUPPLIER, format=catalog_pb2.FEED_FORMAT_JSONL,
        content="\n".join(_feed_row(s, f"Feed {s} v0", 10_000) for s in skus),
        request_id=rid()), metadata=ADMIN)
    ids = [domain.supplier_item_id(SUPPLIER, s) for s in skus]
    await _until(lambda: _all_exist(replicas[0], ids), "first feed applied")

    # A repricing feed and API title updates through both processes at once.
    second = replicas[1].SubmitFeed(catalog_pb2.SubmitFeedRequest(
        supplier_id=SUPPLIER, format=catalog_pb2.FEED_FORMAT_JSONL,
        content="\n".join(_feed_row(s, f"Feed {s} v1", 12_345) for s in skus),
        request_id=rid()), metadata=ADMIN)

    async def api_updates(n: int) -> None:
        for k, item_id in enumerate(ids):
            await _update(replicas[(n + k) % 2], item_id, f"Api {k} by {n}")

    feed, *_ = await asyncio.gather(second, api_updates(0), api_updates(1))
    await _until(lambda: _feed_done(replicas[0], feed.feed_id), "second feed done")
    assert first.feed_id != feed.feed_id

    done = await replicas[0].GetFeed(catalog_pb2.GetFeedRequest(
        supplier_id=SUPPLIER, feed_id=feed.feed_id), metadata=ADMIN)
    # A row may give up after its item kept changing under it (reported).
    gave_up = {e.sku for e in done.row_errors}
    assert done.applied_rows + done.failed_rows == len(skus)
    got = await replicas[0].BatchGetItems(catalog_pb2.BatchGetItemsRequest(item_ids=ids))
    es = Elasticsearch(stack.env["ECOM_ES_URL"], request_timeout=30)
    try:
        for item in got.items:
            # Every write bumped the version from 1 (the first feed): 2 API
            # updates always apply; the feed row applies unless it carries
            # exactly what is stored already.
            assert item.version >= 3, item
            assert item.title.startswith(("Api ", "Feed ")), item
            # An applied row set the price (API updates only touch titles).
            if item.sku not in gave_up:
                assert item.price.units == 12_345, item

            def indexed(i: catalog_pb2.Item = item) -> bool:
                doc = es.get(index=f"{stack.es_prefix}items", id=i.item_id).body["_source"]
                return bool(doc.get("title") == i.title
                            and doc.get("catalog_version") == i.version
                            and doc.get("price_paise") == i.price.units * 100)

            await _until(indexed, f"search shows {item.item_id} at version {item.version}")
    finally:
        es.close()
    assert search.alive()


async def _all_exist(stub: catalog_pb2_grpc.CatalogServiceStub, ids: list[str]) -> bool:
    resp = await stub.BatchGetItems(catalog_pb2.BatchGetItemsRequest(item_ids=ids))
    return not resp.missing_item_ids


async def _feed_done(stub: catalog_pb2_grpc.CatalogServiceStub, feed_id: str) -> bool:
    feed = await stub.GetFeed(catalog_pb2.GetFeedRequest(
        supplier_id=SUPPLIER, feed_id=feed_id), metadata=ADMIN)
    return bool(feed.state == catalog_pb2.FEED_STATE_COMPLETED)


async def _until(pred: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout}s: {what}")
        await asyncio.sleep(0.2)
