"""The feed applier's batch path and the item outbox hints, driven in-process
against the real MongoDB-wire server: new rows go in with one bulk insert,
a redelivered batch changes nothing but yields the same events again (so a
crash before Kafka acknowledged them loses none), rows find items created
through the API, and pending events are found through their hints."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from ecom.events.v1 import events_pb2

from svc_catalog import codec, domain
from svc_catalog.service import CatalogService
from svc_catalog.store import ItemStore, connect, now
from tests.conftest import Stack

pytestmark = pytest.mark.integration

SUPPLIER = "batch-co"


@pytest.fixture
async def service(stack: Stack) -> AsyncIterator[CatalogService]:
    client = connect(stack.env["ECOM_MONGO_URL"])
    name = f"{stack.mongo_db}_applier_{uuid.uuid4().hex[:6]}"
    store = ItemStore(client[name])
    await store.create_indexes()
    try:
        yield CatalogService(store)
    finally:
        await client.drop_database(name)
        await client.close()


def _fields(sku: str, title: str, paise: int = 99_900) -> domain.ItemFields:
    return domain.ItemFields(
        title=title, category="mobiles", brand="Acme", price_paise=paise,
        attributes={"ram_gb": 4, "storage_gb": 64, "screen_inches": 6.0},
        supplier_id=SUPPLIER, sku=sku)


def _rows(feed_id: str, rows: list[tuple[str, str]]) -> list[events_pb2.EventEnvelope]:
    at = now()
    return [codec.supplier_item_received(feed_id, SUPPLIER, line, _fields(sku, title), at,
                                         "req-" + feed_id)
            for line, (sku, title) in enumerate(rows, start=1)]


async def test_new_rows_are_inserted_and_a_redelivery_yields_the_same_events(
        service: CatalogService) -> None:
    rows = _rows("f1", [(f"B{i}", f"Batch {i}") for i in range(300)])
    outcomes, events = await service.apply_feed_rows(rows)
    assert outcomes == {("f1", line): None for line in range(1, 301)}
    assert len(events) == 300 and {e.item_upserted.created for e in events} == {True}
    assert {e.item_upserted.feed_id for e in events} == {"f1"}
    ids = [domain.supplier_item_id(SUPPLIER, f"B{i}") for i in range(300)]
    items = await service.store.get_many(ids)
    assert [items[i].fields.title for i in ids] == [f"Batch {i}" for i in range(300)]
    assert {items[i].version for i in ids} == {1}
    assert await service.store.docs_with_pending(10) == []  # no relay work for feed rows

    again, replayed = await service.apply_feed_rows(rows)
    assert again == outcomes
    assert sorted(e.event_id for e in replayed) == sorted(e.event_id for e in events)
    assert {(await service.store.get_many(ids[:5]))[i].version for i in ids[:5]} == {1}


async def test_later_rows_for_one_sku_in_a_batch_apply_in_order(
        service: CatalogService) -> None:
    rows = _rows("f2", [("D1", "First"), ("D2", "Other"), ("D1", "Second"), ("D1", "Third")])
    outcomes, events = await service.apply_feed_rows(rows)
    assert set(outcomes.values()) == {None}
    d1 = await service.get_item(domain.supplier_item_id(SUPPLIER, "D1"))
    assert (d1.fields.title, d1.version) == ("Third", 3)
    assert [e.entity_version for e in events if e.entity_key == d1.item_id] == [1, 2, 3]


async def test_a_row_finds_an_item_created_with_its_own_id(service: CatalogService) -> None:
    created, _ = await service.create_item(_fields("X1", "Made by hand"), item_id="custom-x1",
                                           request_id="create-x1")
    outcomes, events = await service.apply_feed_rows(_rows("f3", [("X1", "From the feed")]))
    assert outcomes == {("f3", 1): None}
    got = await service.get_item("custom-x1")
    assert (got.fields.title, got.version) == ("From the feed", 2)
    assert [e.entity_key for e in events] == ["custom-x1"]
    # Without an explicit id, an item with a sku gets the id feeds use.
    auto, _ = await service.create_item(_fields("X2", "Auto id"), item_id="",
                                        request_id="create-x2")
    assert auto.item_id == domain.supplier_item_id(SUPPLIER, "X2")
    assert created.item_id == "custom-x1"


async def test_a_retried_create_returns_the_first_item(service: CatalogService) -> None:
    first, made = await service.create_item(_fields("", "No sku"), item_id="",
                                            request_id="retry-1")
    again, made_again = await service.create_item(_fields("", "No sku"), item_id="",
                                                  request_id="retry-1")
    assert (made, made_again) == (True, False)
    assert again.item_id == first.item_id


async def test_pending_events_are_found_through_hints_until_published(
        service: CatalogService) -> None:
    store = service.store
    item, _ = await service.create_item(_fields("H1", "Hinted"), item_id="", request_id="h-1")
    pending = await store.docs_with_pending(10)
    assert [d["_id"] for d in pending] == [item.item_id]
    event_ids = list(pending[0]["pending"])
    assert len(event_ids) == 1

    # A hint lost with its writer (the old layout, or a manual repair) is
    # rebuilt from the items' flags at relay start.
    await store.pending_items.delete_many({})
    assert await store.docs_with_pending(10) == []
    assert await store.rebuild_hints() == 1
    assert [d["_id"] for d in await store.docs_with_pending(10)] == [item.item_id]

    token = (await store.docs_with_pending(10))[0]["hint_token"]
    await store.mark_published(item.item_id, event_ids, token)
    assert await store.docs_with_pending(10) == []
    assert await store.rebuild_hints() == 0

    # A hint whose item write never happened is dropped, not published.
    await store.pending_items.insert_one({"_id": "never-written"})
    assert await store.docs_with_pending(10) == [
        {"_id": "never-written", "pending": {}, "hint_token": ""}]
    await store.mark_published("never-written", [], "")
    assert await store.docs_with_pending(10) == []


async def test_a_hint_renewed_by_another_writer_survives_the_relay(
        service: CatalogService) -> None:
    """Two catalog processes: the relay of one empties an item's events
    while a writer in the other adds one. Whatever the interleaving, the
    new event keeps a hint (or the item's flag), so it is published."""
    store = service.store
    item, _ = await service.create_item(_fields("R1", "Raced"), item_id="", request_id="r-1")
    [seen] = await store.docs_with_pending(10)
    # Another process updates the item after the relay read it: its hint
    # gets a new token, before and after its item update.
    updated = await service.update_item(item.item_id, _fields("R1", "Raced again"), ["title"],
                                        expected_version=0, request_id="r-2")
    # The relay now removes what it published, with the token it read.
    await store.mark_published(item.item_id, list(seen["pending"]), seen["hint_token"])
    [left] = await store.docs_with_pending(10)
    assert left["_id"] == item.item_id and len(left["pending"]) == 1
    [(event_id, ev)] = left["pending"].items()
    assert ev["seq"] == updated.version
    # Relay read the new state; a writer adds yet another event before the
    # relay clears the flag: the flag stays, and so does the hint.
    await service.update_item(item.item_id, _fields("R1", "Third"), ["title"],
                              expected_version=0, request_id="r-3")
    await store.mark_published(item.item_id, [event_id], left["hint_token"])
    [last] = await store.docs_with_pending(10)
    assert len(last["pending"]) == 1
    await store.mark_published(item.item_id, list(last["pending"]), last["hint_token"])
    assert await store.docs_with_pending(10) == []
    doc = await store.items.find_one({"_id": item.item_id})
    assert doc is not None and doc["has_pending"] is False and doc["pending"] == {}


async def test_rows_for_existing_items_are_written_in_one_bulk_update(
        service: CatalogService) -> None:
    await service.apply_feed_rows(_rows("g1", [(f"U{i}", f"Old {i}") for i in range(200)]))
    # A later feed: half the rows change the title, half repeat the content.
    later = _rows("g2", [(f"U{i}", f"New {i}" if i % 2 else f"Old {i}") for i in range(200)])
    outcomes, events = await service.apply_feed_rows(later)
    assert set(outcomes.values()) == {None} and len(outcomes) == 200
    assert sorted(e.entity_key for e in events) == sorted(
        domain.supplier_item_id(SUPPLIER, f"U{i}") for i in range(1, 200, 2))
    assert {e.entity_version for e in events} == {2}
    items = await service.store.get_many(
        [domain.supplier_item_id(SUPPLIER, f"U{i}") for i in range(200)])
    got = sorted((i.fields.title, i.version) for i in items.values())
    assert got == sorted((f"New {i}", 2) if i % 2 else (f"Old {i}", 1) for i in range(200))
    # Every row left its stamp, so replaying the later feed changes nothing;
    # the replay sends the items' events again (consumers drop repeats).
    again, replayed = await service.apply_feed_rows(later)
    assert set(again.values()) == {None}
    assert {(e.event_id, e.entity_version) for e in events} <= {
        (e.event_id, e.entity_version) for e in replayed}
    assert sorted((i.fields.title, i.version) for i in (await service.store.get_many(
        list(items))).values()) == got


async def test_a_bulk_update_reports_the_items_that_moved_on(service: CatalogService) -> None:
    await service.apply_feed_rows(_rows("m1", [("M1", "One"), ("M2", "Two")]))
    store = service.store
    m1 = await service.get_item(domain.supplier_item_id(SUPPLIER, "M1"))
    m2 = await service.get_item(domain.supplier_item_id(SUPPLIER, "M2"))
    # M2 changes through the API after the feed read it.
    await service.update_item(m2.item_id, _fields("M2", "Edited"), ["title"],
                              expected_version=1, request_id="edit-m2")
    stamp, t = "9" * 17 + ".0000001", now()  # a newer row, as the applier would write
    missed = await store.write_feed_changes([
        (replace(m1, version=2, fields=_fields("M1", "One, bulk"), feed_stamp=stamp,
                 update_time=t), True),
        (replace(m2, version=2, fields=_fields("M2", "Two, bulk"), feed_stamp=stamp,
                 update_time=t), True)])
    assert missed == {1}
    assert (await service.get_item(m1.item_id)).fields.title == "One, bulk"
    assert (await service.get_item(m2.item_id)).fields.title == "Edited"


async def test_the_category_index_follows_an_item_that_moves(service: CatalogService) -> None:
    store = service.store
    item, _ = await service.create_item(_fields("M1", "Mover"), item_id="", request_id="mv-1")
    listed = [i.item_id for i in await store.list_category("mobiles", after="", limit=500,
                                                          show_deleted=False)]
    assert item.item_id in listed
    kettle = domain.ItemFields(title="Mover", category="kitchen-appliances", brand="Acme",
                               price_paise=99_900,
                               attributes={"type": "kettle", "power_watts": 1500})
    await service.update_item(item.item_id, kettle, ["category", "attributes"],
                              expected_version=1, request_id="mv-2")
    mobiles = await store.list_category("mobiles", after="", limit=500, show_deleted=True)
    kitchen = await store.list_category("kitchen-appliances", after="", limit=500,
                                        show_deleted=False)
    assert item.item_id not in [i.item_id for i in mobiles]
    assert [i.item_id for i in kitchen] == [item.item_id]
    # Found again by sku and by its create request, through item_keys.
    by_sku = await store.get_by_sku_key(f"sku:{SUPPLIER}/M1")
    assert by_sku is not None and by_sku["_id"] == item.item_id
    by_request = await store.get_by_create_request("mv-1")
    assert by_request is not None and by_request["_id"] == item.item_id
    assert await store.item_keys.count_documents({"item_id": item.item_id}) == 2
