"""Supplier feeds end to end: SubmitFeed validates rows (bad ones reported
by line), good rows travel through `catalog.feeds` to the catalog's feed
consumer, which applies each once; replays and older rows change nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.events.v1 import events_pb2

from mesh.kafka import OutgoingEvent, make_producer, publish
from svc_catalog import codec, domain
from svc_catalog.store import now
from tests.conftest import Services, Stack
from tests.integration.catalog_support import ADMIN, TopicReader, rid

pytestmark = pytest.mark.integration

SUPPLIER = "acme-supplies"


@pytest.fixture
async def catalog(services: Services) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceStub]:
    svc = services.start("catalog")
    async with svc.channel() as ch:
        yield catalog_pb2_grpc.CatalogServiceStub(ch)


def _row(sku: str, title: str, rupees: str, **attrs: object) -> str:
    return json.dumps({"sku": sku, "title": title, "category": "mobiles", "brand": "Acme",
                       "price": {"currencyCode": "INR", "units": rupees},
                       "attributes": {"ram_gb": 6, "storage_gb": 128, "screen_inches": 6.1,
                                      **attrs}})


async def _until_done(catalog: catalog_pb2_grpc.CatalogServiceStub, feed_id: str,
                      supplier: str = SUPPLIER, timeout: float = 60) -> catalog_pb2.Feed:
    deadline = time.monotonic() + timeout
    while True:
        feed = await catalog.GetFeed(catalog_pb2.GetFeedRequest(
            supplier_id=supplier, feed_id=feed_id), metadata=ADMIN)
        if feed.state != catalog_pb2.FEED_STATE_PROCESSING or time.monotonic() > deadline:
            return feed
        await asyncio.sleep(0.3)


async def test_jsonl_feed_with_good_and_bad_rows(
        catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    content = "\n".join([
        _row("A1", "Acme A1", "9999"),
        "{not json",
        _row("A2", "Acme A2", "12999", ram_gb=64),          # RAM out of range
        "",
        _row("A3", "Acme A3", "15999", color="black"),
        json.dumps({"sku": "A4", "title": "No price", "category": "mobiles"}),
    ])
    feed = await catalog.SubmitFeed(catalog_pb2.SubmitFeedRequest(
        supplier_id=SUPPLIER, format=catalog_pb2.FEED_FORMAT_JSONL, content=content,
        request_id=rid()), metadata=ADMIN)
    assert (feed.total_rows, feed.valid_rows, feed.rejected_rows) == (5, 2, 3)
    errors = [(e.line_number, e.sku, e.field) for e in feed.row_errors]
    assert (2, "", "") in errors and (3, "A2", "attr.ram_gb") in errors
    assert (6, "A4", "price") in errors
    done = await _until_done(catalog, feed.feed_id)
    assert done.state == catalog_pb2.FEED_STATE_COMPLETED
    assert (done.applied_rows, done.failed_rows) == (2, 0)
    assert done.HasField("complete_time")

    ids = [domain.supplier_item_id(SUPPLIER, s) for s in ("A1", "A3")]
    got = await catalog.BatchGetItems(catalog_pb2.BatchGetItemsRequest(item_ids=ids))
    assert [(i.sku, i.supplier_id, i.title, i.version) for i in got.items] == [
        ("A1", SUPPLIER, "Acme A1", 1), ("A3", SUPPLIER, "Acme A3", 1)]


async def test_csv_feed_updates_items_and_resubmission_is_idempotent(
        catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    header = "sku,title,category,brand,price,list_price,image_urls,attr.size,attr.color," \
             "attr.material"
    content = "\n".join([
        header,
        "T1,Cotton tee,apparel,Weave,499.00,799,https://img.example/t1.jpg,M,navy,cotton",
        "T2,Linen shirt,apparel,Weave,1299.5,,,XXXL,white,linen",      # bad size
        'T3,"Silk kurta, long",apparel,Weave,2499,2999,,L,maroon,silk',
        "T4,Bad price,apparel,Weave,12.345,,,S,red,cotton",
    ])
    req = rid()
    submit = catalog_pb2.SubmitFeedRequest(
        supplier_id="weave", format=catalog_pb2.FEED_FORMAT_CSV, content=content,
        request_id=req)
    feed = await catalog.SubmitFeed(submit, metadata=ADMIN)
    assert (feed.total_rows, feed.valid_rows) == (4, 2)
    assert [(e.line_number, e.field) for e in feed.row_errors] == [
        (3, "attr.size"), (5, "price")]
    done = await _until_done(catalog, feed.feed_id, "weave")
    assert (done.state, done.applied_rows) == (catalog_pb2.FEED_STATE_COMPLETED, 2)
    retry = await catalog.SubmitFeed(submit, metadata=ADMIN)
    assert retry.feed_id == feed.feed_id and retry.applied_rows == 2

    t3 = await catalog.GetItem(catalog_pb2.GetItemRequest(
        item_id=domain.supplier_item_id("weave", "T3")))
    assert (t3.title, t3.price.units, t3.list_price.units) == ("Silk kurta, long", 2499, 2999)

    # A newer feed changing one row updates that item only.
    feed2 = await catalog.SubmitFeed(catalog_pb2.SubmitFeedRequest(
        supplier_id="weave", format=catalog_pb2.FEED_FORMAT_CSV,
        content=header + "\nT3,Silk kurta,apparel,Weave,2299,2999,,L,maroon,silk\n"
        "T1,Cotton tee,apparel,Weave,499.00,799,https://img.example/t1.jpg,M,navy,cotton\n",
        request_id=rid()), metadata=ADMIN)
    await _until_done(catalog, feed2.feed_id, "weave")
    got = await catalog.BatchGetItems(catalog_pb2.BatchGetItemsRequest(item_ids=[
        domain.supplier_item_id("weave", "T3"), domain.supplier_item_id("weave", "T1")]))
    assert [(i.price.units, i.version) for i in got.items] == [(2299, 2), (499, 1)]


async def test_replayed_and_older_rows_change_nothing(
        stack: Stack, catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    supplier = "replay-co"
    content = "\n".join(_row(f"R{i}", f"Replay {i}", str(1000 + i)) for i in range(1, 5))
    feed = await catalog.SubmitFeed(catalog_pb2.SubmitFeedRequest(
        supplier_id=supplier, format=catalog_pb2.FEED_FORMAT_JSONL, content=content,
        request_id=rid()), metadata=ADMIN)
    done = await _until_done(catalog, feed.feed_id, supplier)
    assert done.applied_rows == 4

    reader = TopicReader(stack, "catalog.feeds")
    try:
        originals = [e for e in reader.until(
            lambda evs: sum(e.supplier_item_received.feed_id == feed.feed_id
                            for e in evs) >= 4)
                     if e.supplier_item_received.feed_id == feed.feed_id]
    finally:
        reader.close()
    ids = [domain.supplier_item_id(supplier, f"R{i}") for i in range(1, 5)]

    # Replay every row, then an *older* row for R1 (submitted an hour
    # earlier), then a newer sentinel row per item on the same key, so that
    # once the sentinels are applied everything before them was consumed.
    older = codec.supplier_item_received(
        "older-feed", supplier, 1, _fields(supplier, "R1", "Stale title"),
        now() - timedelta(hours=1), rid())
    sentinels = [codec.supplier_item_received(
        "sentinel-feed", supplier, n, _fields(supplier, f"R{n}", f"Sentinel {n}"), now(), rid())
        for n in range(1, 5)]
    events = [*originals, older, *sentinels]
    producer = make_producer(stack.env["ECOM_KAFKA_BOOTSTRAP"])
    reports = await publish(producer, [_outgoing(stack, e) for e in events])
    assert all(r.delivered for r in reports)

    deadline = time.monotonic() + 60
    while True:
        got = await catalog.BatchGetItems(catalog_pb2.BatchGetItemsRequest(item_ids=ids))
        if all(i.title.startswith("Sentinel") for i in got.items) or \
                time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    # Version 1 from the feed, 2 from the sentinel: the replays and the
    # older row made no version of their own.
    assert [(i.title, i.version) for i in got.items] == [
        (f"Sentinel {n}", 2) for n in range(1, 5)]
    after = await catalog.GetFeed(catalog_pb2.GetFeedRequest(
        supplier_id=supplier, feed_id=feed.feed_id), metadata=ADMIN)
    assert (after.applied_rows, after.failed_rows) == (4, 0)


def _fields(supplier: str, sku: str, title: str) -> domain.ItemFields:
    return domain.ItemFields(
        title=title, category="mobiles", brand="Acme", price_paise=99_900,
        attributes={"ram_gb": 4, "storage_gb": 64, "screen_inches": 6.0},
        supplier_id=supplier, sku=sku)


def _outgoing(stack: Stack, env: events_pb2.EventEnvelope) -> OutgoingEvent:
    return OutgoingEvent(topic=stack.topic("catalog.feeds"), key=env.entity_key.encode(),
                         payload=env.SerializeToString(), event_id=env.event_id,
                         event_type=env.event_type)


async def test_kill_9_mid_feed_loses_no_row_and_no_event(
        stack: Stack, services: Services) -> None:
    """The catalog dies (kill -9) while a feed is being applied; after the
    restart every row is applied once and every item's event is on
    catalog.items (the applier commits offsets only after the events)."""
    supplier, rows = "crash-co", 4_000
    svc = services.start("catalog")
    content = "\n".join(_row(f"K{i}", f"Crash {i}", str(1000 + i)) for i in range(rows))
    async with svc.channel() as ch:
        catalog = catalog_pb2_grpc.CatalogServiceStub(ch)
        feed = await catalog.SubmitFeed(catalog_pb2.SubmitFeedRequest(
            supplier_id=supplier, format=catalog_pb2.FEED_FORMAT_JSONL, content=content,
            request_id=rid()), metadata=ADMIN)
        deadline = time.monotonic() + 60
        while True:
            seen = await catalog.GetFeed(catalog_pb2.GetFeedRequest(
                supplier_id=supplier, feed_id=feed.feed_id), metadata=ADMIN)
            if seen.applied_rows > 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert 0 < seen.applied_rows < rows, "the kill must land mid-feed"
    env = svc.overrides
    svc.kill()
    svc = await asyncio.to_thread(services.start, "catalog", **env)
    async with svc.channel() as ch:
        done = await _until_done(catalog_pb2_grpc.CatalogServiceStub(ch), feed.feed_id,
                                 supplier, timeout=120)
    assert done.state == catalog_pb2.FEED_STATE_COMPLETED
    assert (done.applied_rows, done.failed_rows) == (rows, 0)

    reader = TopicReader(stack, "catalog.items")
    try:
        def keys(evs: list[events_pb2.EventEnvelope]) -> set[str]:
            return {e.entity_key for e in evs if e.item_upserted.feed_id == feed.feed_id}
        got = keys(reader.until(lambda evs: len(keys(evs)) >= rows, timeout=90))
    finally:
        reader.close()
    assert got == {domain.supplier_item_id(supplier, f"K{i}") for i in range(rows)}
