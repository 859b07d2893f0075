"""svc_catalog as a real process on FerretDB and Kafka: item CRUD, bulk
reads, optimistic concurrency, admin-only writes, and every change reaching
`catalog.items` (also across a Kafka outage)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from infra import stack as infra_stack
from tests.conftest import Services, Stack
from tests.integration.catalog_support import ADMIN, CUSTOMER, TopicReader, phone, rid

pytestmark = pytest.mark.integration


@pytest.fixture
async def catalog(services: Services) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceStub]:
    svc = services.start("catalog")
    async with svc.channel() as ch:
        yield catalog_pb2_grpc.CatalogServiceStub(ch)


def _violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    out = []
    for d in status.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            out += [v.field for v in br.field_violations]
    return out


async def test_crud_and_batch_get(catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    created = await catalog.CreateItem(
        catalog_pb2.CreateItemRequest(item=phone(), request_id=rid()), metadata=ADMIN)
    assert created.item_id and created.version == 1
    assert created.state == catalog_pb2.ITEM_STATE_ACTIVE
    assert created.price.units == 14999 and created.price.currency_code == "INR"
    assert created.attributes["ram_gb"] == 8

    got = await catalog.GetItem(catalog_pb2.GetItemRequest(item_id=created.item_id))
    assert got == created

    # A retried create returns the first item instead of a second one.
    req_id = rid()
    first = await catalog.CreateItem(catalog_pb2.CreateItemRequest(
        item=phone("Retry phone"), item_id="retry-phone-1", request_id=req_id), metadata=ADMIN)
    again = await catalog.CreateItem(catalog_pb2.CreateItemRequest(
        item=phone("Retry phone"), item_id="retry-phone-1", request_id=req_id), metadata=ADMIN)
    assert again.item_id == first.item_id == "retry-phone-1"
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.CreateItem(catalog_pb2.CreateItemRequest(
            item=phone(), item_id="retry-phone-1", request_id=rid()), metadata=ADMIN)
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS

    updated = await catalog.UpdateItem(catalog_pb2.UpdateItemRequest(
        item_id=created.item_id, item=phone(title="Acme Phone 5G (2025)", rupees=13999),
        update_mask=field_mask_pb2.FieldMask(paths=["title", "price"]),
        expected_version=1, request_id=rid()), metadata=ADMIN)
    assert (updated.title, updated.price.units, updated.version) == (
        "Acme Phone 5G (2025)", 13999, 2)
    assert updated.attributes == created.attributes

    # BatchGet: request order kept, duplicates collapsed, missing ids named.
    resp = await catalog.BatchGetItems(catalog_pb2.BatchGetItemsRequest(
        item_ids=["retry-phone-1", "nope-1", created.item_id, "retry-phone-1", "nope-2"]))
    assert [i.item_id for i in resp.items] == ["retry-phone-1", created.item_id]
    assert list(resp.missing_item_ids) == ["nope-1", "nope-2"]
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.BatchGetItems(catalog_pb2.BatchGetItemsRequest(
            item_ids=[f"id-{i}" for i in range(501)]))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(exc.value) == ["item_ids"]

    # Soft delete: Get still answers (state DELETED, per the contract),
    # listings hide it, BatchGet returns it with state DELETED.
    deleted = await catalog.DeleteItem(catalog_pb2.DeleteItemRequest(
        item_id=created.item_id, request_id=rid()), metadata=ADMIN)
    assert deleted.state == catalog_pb2.ITEM_STATE_DELETED and deleted.version == 3
    assert deleted.HasField("delete_time")
    got = await catalog.GetItem(catalog_pb2.GetItemRequest(item_id=created.item_id))
    assert got.state == catalog_pb2.ITEM_STATE_DELETED
    # Other tests add mobiles too (thousands, in the feed tests): read every page.
    listed_ids: list[str] = []
    token = ""
    while True:
        page = await catalog.ListItems(catalog_pb2.ListItemsRequest(
            category="mobiles", page_size=500, page_token=token))
        listed_ids += [i.item_id for i in page.items]
        if not (token := page.next_page_token):
            break
    assert created.item_id not in listed_ids
    assert "retry-phone-1" in listed_ids
    resp = await catalog.BatchGetItems(catalog_pb2.BatchGetItemsRequest(
        item_ids=[created.item_id]))
    assert resp.items[0].state == catalog_pb2.ITEM_STATE_DELETED
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.UpdateItem(catalog_pb2.UpdateItemRequest(
            item_id=created.item_id, item=phone(title="zombie"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]), request_id=rid()),
            metadata=ADMIN)
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.GetItem(catalog_pb2.GetItemRequest(item_id="never-created"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_pages_through_a_category(
        catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    ids = []
    for n in range(7):
        item = catalog_pb2.Item(title=f"Kettle {n}", category="kitchen-appliances",
                                price=phone().price)
        item.attributes.update({"type": "kettle", "power_watts": 1500})
        ids.append((await catalog.CreateItem(catalog_pb2.CreateItemRequest(
            item=item, item_id=f"kettle-{n}", request_id=rid()), metadata=ADMIN)).item_id)
    seen: list[str] = []
    token = ""
    while True:
        page = await catalog.ListItems(catalog_pb2.ListItemsRequest(
            category="kitchen-appliances", page_size=3, page_token=token))
        assert len(page.items) <= 3
        seen += [i.item_id for i in page.items]
        token = page.next_page_token
        if not token:
            break
    from svc_catalog.store import bucket_of

    # Other tests of the session list kettles too: ours, in the index's
    # stable order, each once.
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in ids] == sorted(ids, key=lambda i: (bucket_of(i), i))


async def test_stale_version_is_aborted(catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    item = await catalog.CreateItem(
        catalog_pb2.CreateItemRequest(item=phone(), request_id=rid()), metadata=ADMIN)
    mask = field_mask_pb2.FieldMask(paths=["attributes.ram_gb"])
    await catalog.UpdateItem(catalog_pb2.UpdateItemRequest(
        item_id=item.item_id, item=phone(ram_gb=12), update_mask=mask, expected_version=1,
        request_id=rid()), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.UpdateItem(catalog_pb2.UpdateItemRequest(
            item_id=item.item_id, item=phone(ram_gb=16), update_mask=mask,
            expected_version=1, request_id=rid()), metadata=ADMIN)
    assert exc.value.code() == grpc.StatusCode.ABORTED
    got = await catalog.GetItem(catalog_pb2.GetItemRequest(item_id=item.item_id))
    assert got.attributes["ram_gb"] == 12 and got.version == 2


async def test_writes_need_admin_and_valid_items(
        catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.CreateItem(
            catalog_pb2.CreateItemRequest(item=phone(), request_id=rid()), metadata=CUSTOMER)
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.CreateItem(catalog_pb2.CreateItemRequest(item=phone(), request_id=rid()))
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED

    bad = phone(ram_gb=64, color="chartreuse")
    bad.price.currency_code = "USD"
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await catalog.CreateItem(
            catalog_pb2.CreateItemRequest(item=bad, request_id=rid()), metadata=ADMIN)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(_violations(exc.value)) == {
        "item.attributes.ram_gb", "item.attributes.color", "item.price.currency_code"}


async def test_every_change_is_published_in_version_order(
        stack: Stack, catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    reader = TopicReader(stack, "catalog.items")
    try:
        item = await catalog.CreateItem(
            catalog_pb2.CreateItemRequest(item=phone(), request_id=rid()), metadata=ADMIN)
        await catalog.UpdateItem(catalog_pb2.UpdateItemRequest(
            item_id=item.item_id, item=phone(rupees=12000),
            update_mask=field_mask_pb2.FieldMask(paths=["price"]), request_id=rid()),
            metadata=ADMIN)
        await catalog.DeleteItem(catalog_pb2.DeleteItemRequest(
            item_id=item.item_id, request_id=rid()), metadata=ADMIN)
        reader.until(lambda _: len(reader.about(item.item_id)) >= 3)
        events = reader.about(item.item_id)
        assert [e.entity_version for e in events] == [1, 2, 3]
        assert [e.WhichOneof("payload") for e in events] == [
            "item_upserted", "item_upserted", "item_deleted"]
        assert events[0].item_upserted.created and events[0].item_upserted.item.title
        assert events[1].item_upserted.item.price.units == 12000
        assert len({e.event_id for e in events}) == 3
    finally:
        reader.close()


async def test_writes_succeed_while_kafka_is_down_and_events_follow(
        stack: Stack, catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    (kafka,) = infra_stack.select(["kafka"])
    if kafka.external():
        pytest.skip("Kafka is external; this test stops the local one")
    kafka.stop()
    try:
        item = await catalog.CreateItem(catalog_pb2.CreateItemRequest(
            item=phone("Outage phone"), request_id=rid()), metadata=ADMIN)
        assert item.version == 1
    finally:
        kafka.start()
    reader = TopicReader(stack, "catalog.items")
    try:
        reader.until(lambda _: bool(reader.about(item.item_id)), timeout=90)
        assert reader.about(item.item_id)[0].item_upserted.item.title == "Outage phone"
    finally:
        reader.close()


async def test_demo_catalog_loads_through_the_store(stack: Stack) -> None:
    from svc_catalog import demo
    from svc_catalog.store import ItemStore, connect

    client = connect(stack.env["ECOM_MONGO_URL"])
    name = f"{stack.mongo_db}_demo"
    try:
        store = ItemStore(client[name])
        await store.create_indexes()
        assert await demo.load_demo(store, count=240) == 240
        assert await demo.load_demo(store, count=240) == 0  # loading twice adds nothing
        ids = demo.demo_item_ids(240)
        found = await store.get_many(ids[:50])
        assert [found[i].fields.title for i in ids[:50]] == [
            i.fields.title for i in demo.demo_items(50)]
        assert await store.docs_with_pending(500) == []  # published directly, not relayed
        events = demo.demo_events(240)
        assert len({e.event_id for e in events}) == 240
        assert [e.event_id for e in events] == [e.event_id for e in demo.demo_events(240)]
    finally:
        await client.drop_database(name)
        await client.close()
