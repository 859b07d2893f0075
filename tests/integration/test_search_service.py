"""svc_search end to end: the real catalog, inventory and serviceability
services write, Kafka carries their events, the indexer builds the
Elasticsearch index and the Search API answers over gRPC.

Needs elasticsearch, kafka, ferretdb, redis and mariadb
(``ECOM_TEST_SERVERS=elasticsearch,kafka,ferretdb,redis,mariadb``). Every
test makes items with a word unique to it, so tests share the index
without seeing each other's items.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
from confluent_kafka import TopicPartition
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.common.v1 import common_pb2
from ecom.events.v1 import events_pb2
from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from ecom.search.v1 import search_pb2, search_pb2_grpc
from elasticsearch import Elasticsearch
from google.protobuf import field_mask_pb2, struct_pb2
from google.type import money_pb2

from infra.core import REPO, STACK
from mesh.auth import Caller, encode_jwt_payload
from mesh.kafka import make_consumer, make_producer
from svc_search import domain
from svc_search.store import SearchIndex, StoredDoc, connect
from tests.conftest import RunningService, Services, Stack, _free_port
from tests.integration.catalog_support import TopicReader
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not {"elasticsearch", "kafka", "ferretdb", "redis", "mariadb"} <= set(
            os.environ.get("ECOM_TEST_SERVERS",
                           "elasticsearch,kafka,ferretdb,redis,mariadb").split(",")),
        reason="search needs elasticsearch, kafka, ferretdb, redis and mariadb",
    ),
]

ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("admin-1", frozenset({"admin"})))),)
BENGALURU, NO_DELIVERY = "560001", "380014"


def tag() -> str:
    """A word no other test (or run) uses: letters then digits."""
    return "zq" + uuid.uuid4().hex[:8]


class Shop:
    """Stubs of the services a search test drives."""

    def __init__(self, services: Services) -> None:
        self.channels = [services.start(n).channel()
                         for n in ("catalog", "inventory", "tat", "search")]
        catalog, inventory, _, search = self.channels
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(catalog)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(inventory)
        self.search_stub = search_pb2_grpc.SearchServiceStub(search)

    async def create(self, title: str, *, brand: str = "Acme", rupees: int = 14999,
                     stock: dict[str, int] | None = None, **attrs: Any) -> catalog_pb2.Item:
        """A mobiles item, stocked (default: 5 units at WH-BLR)."""
        a = struct_pb2.Struct()
        a.update({"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5, "color": "black",
                  **attrs})
        item = await self.catalog.CreateItem(catalog_pb2.CreateItemRequest(
            item=catalog_pb2.Item(
                title=title, category="mobiles", brand=brand, description="A test phone",
                price=money_pb2.Money(currency_code="INR", units=rupees), attributes=a),
            request_id=str(uuid.uuid4())), metadata=ADMIN)
        for wh, units in (stock if stock is not None else {"WH-BLR": 5}).items():
            await self.set_stock(item.item_id, wh, units)
        return item

    async def set_stock(self, item_id: str, warehouse_id: str, units: int) -> None:
        await self.inventory.SetStock(inventory_pb2.SetStockRequest(
            item_id=item_id, warehouse_id=warehouse_id, available=units,
            request_id=str(uuid.uuid4())), metadata=ADMIN)

    async def update(self, item_id: str, **fields: Any) -> catalog_pb2.Item:
        item = catalog_pb2.Item(**fields)
        return await self.catalog.UpdateItem(catalog_pb2.UpdateItemRequest(
            item_id=item_id, item=item, update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
            request_id=str(uuid.uuid4())), metadata=ADMIN)

    async def search(self, query: str = "", **kw: Any) -> search_pb2.SearchResponse:
        return await self.search_stub.Search(search_pb2.SearchRequest(query=query, **kw),
                                             timeout=10)

    async def until(self, query: str, pred: Callable[[search_pb2.SearchResponse], bool],
                    timeout: float = 60, **kw: Any) -> search_pb2.SearchResponse:
        """Search until ``pred`` holds (the index is eventually consistent)."""
        deadline = time.monotonic() + timeout
        while True:
            resp = await self.search(query, **kw)
            if pred(resp):
                return resp
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {timeout}s; last: {resp}")
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def shop(services: Services) -> AsyncIterator[Shop]:
    s = Shop(services)
    yield s
    for ch in s.channels:
        await ch.close()


@pytest.fixture(scope="module")
def es(stack: Stack) -> Iterator[Elasticsearch]:
    client = Elasticsearch(stack.env["ECOM_ES_URL"], request_timeout=30)
    yield client
    # Name every index of this run (wildcard deletes are refused); the
    # session's svc_search keeps serving until the session ends.
    ours = [i for i in client.indices.get(index=f"{stack.es_prefix}*", expand_wildcards="all")
            if "rebuild" in i]
    if ours:
        client.indices.delete(index=",".join(ours))
    client.close()


async def test_a_schema_change_rebuilds_the_index_behind_the_alias(
        stack: Stack, es: Elasticsearch, monkeypatch: pytest.MonkeyPatch) -> None:
    client = connect(stack.env["ECOM_ES_URL"], timeout=30)
    index = SearchIndex(client, f"{stack.es_prefix}rebuild-items")
    try:
        assert await index.ensure() == index.physical(1)
        doc = domain.apply_upsert(domain.empty_doc("r1"), {"title": "Kept"}, 1)
        assert doc is not None
        assert await index.write_many([("r1", StoredDoc(doc, None, None))]) == []
        monkeypatch.setattr(domain, "SCHEMA_VERSION", 2)
        monkeypatch.setitem(domain.MAPPINGS, "_meta", {"schema_version": 2})
        assert await index.ensure() == index.physical(2)
        aliases = es.indices.get_alias(name=index.alias).body
        assert list(aliases) == [index.physical(2)]
        stored = await index.get_many(["r1"])
        assert stored["r1"].source["title"] == "Kept" and stored["r1"].seq_no is not None
        assert await index.ensure() == index.physical(2)  # nothing more to do
    finally:
        await client.close()


class CountedIndex(SearchIndex):
    """A copy of the service's index handle, counting the rebuilds it runs."""

    rebuilds = 0

    async def rebuild(self, old: str, new: str, *, batch: int = 500) -> str:
        self.rebuilds += 1
        return await super().rebuild(old, new, batch=50)


async def test_two_copies_starting_together_rebuild_once(
        stack: Stack, es: Elasticsearch, monkeypatch: pytest.MonkeyPatch) -> None:
    client = connect(stack.env["ECOM_ES_URL"], timeout=30)
    alias = f"{stack.es_prefix}rebuild-twice-items"
    copies = [CountedIndex(client, alias, lease_poll_seconds=0.05) for _ in range(2)]
    try:
        await copies[0].ensure()
        docs = []
        for n in range(400):
            doc = domain.apply_upsert(domain.empty_doc(f"t{n}"), {"title": f"Kept {n}"}, 1)
            assert doc is not None
            docs.append((f"t{n}", StoredDoc(doc, None, None)))
        assert await copies[0].write_many(docs) == []
        monkeypatch.setattr(domain, "SCHEMA_VERSION", 2)
        monkeypatch.setitem(domain.MAPPINGS, "_meta", {"schema_version": 2})
        both = await asyncio.gather(*(c.ensure() for c in copies))
        assert both == [copies[0].physical(2)] * 2
        assert sum(c.rebuilds for c in copies) == 1
        es.indices.refresh(index=alias)
        assert es.count(index=alias)["count"] == 400
        # The lease is released for the next schema change.
        assert not es.exists(index=copies[0].lease.index, id=copies[0].lease.name)
    finally:
        await client.close()


async def test_a_dead_copys_rebuild_lease_is_taken_over_once_expired(
        stack: Stack, es: Elasticsearch, monkeypatch: pytest.MonkeyPatch) -> None:
    client = connect(stack.env["ECOM_ES_URL"], timeout=30)
    alias = f"{stack.es_prefix}rebuild-dead-items"
    index = CountedIndex(client, alias, lease_poll_seconds=0.05)
    try:
        await index.ensure()
        # A copy that took the lease and died: its lease ran out a while ago.
        es.index(index=index.lease.index, id=index.lease.name, refresh=True,
                 document={"owner": "dead-copy", "until": time.time() - 1})
        monkeypatch.setattr(domain, "SCHEMA_VERSION", 2)
        monkeypatch.setitem(domain.MAPPINGS, "_meta", {"schema_version": 2})
        assert await index.ensure() == index.physical(2)
        assert index.rebuilds == 1
    finally:
        await client.close()


def ids(resp: search_pb2.SearchResponse) -> list[str]:
    return [h.item_id for h in resp.hits]


async def listed(shop: Shop, word: str, n: int = 1, **kw: Any) -> search_pb2.SearchResponse:
    return await shop.until(word, lambda r: len(r.hits) == n, **kw)


async def test_an_update_becomes_searchable(shop: Shop) -> None:
    word = tag()
    item = await shop.create(f"Nimbus {word} Phone", rupees=10000)
    first = await listed(shop, word)
    assert first.hits[0].price.units == 10000
    assert first.hits[0].title == f"Nimbus {word} Phone"

    # How fast is measured by tests/perf/bench_search.py; here: it happens.
    await shop.update(item.item_id, price=money_pb2.Money(currency_code="INR", units=9000))
    await shop.until(word, lambda r: bool(r.hits) and r.hits[0].price.units == 9000, timeout=30)


async def test_out_of_stock_everywhere_delists_and_restock_relists(shop: Shop) -> None:
    word = tag()
    item = await shop.create(f"Stratus {word}", rupees=777, stock={"WH-BLR": 2, "WH-DEL": 1})
    await listed(shop, word)
    await shop.set_stock(item.item_id, "WH-BLR", 0)
    # Still one unit at WH-DEL: listed.
    await asyncio.sleep(1.5)
    assert ids(await shop.search(word)) == [item.item_id]
    await shop.set_stock(item.item_id, "WH-DEL", 0)
    await shop.until(word, lambda r: not r.hits and r.total_size == 0)
    await shop.set_stock(item.item_id, "WH-MUM", 3)
    back = await listed(shop, word)
    hit = back.hits[0]
    assert (hit.item_id, hit.title, hit.price.units, hit.brand) == (
        item.item_id, f"Stratus {word}", 777, "Acme")


async def test_a_misspelled_query_finds_the_item(shop: Shop) -> None:
    word = tag()
    item = await shop.create(f"Galaxy Orbitron{word[2:]}", brand=f"Brand{word}")
    await listed(shop, f"Orbitron{word[2:]}")
    typo = f"Obritron{word[2:]}"  # two letters swapped
    resp = await shop.search(typo)
    assert ids(resp) == [item.item_id]
    assert resp.corrected_query == f"orbitron{word[2:]}"
    # A typo in the brand works too.
    assert ids(await shop.search(f"Brnad{word}")) == [item.item_id]


async def test_facet_counts_filters_and_paging(shop: Shop) -> None:
    word = tag()
    a, b = f"Alpha{word}", f"Beta{word}"
    made = [
        await shop.create(f"{word} one", brand=a, rupees=400, color="black"),
        await shop.create(f"{word} two", brand=a, rupees=1500, color="blue"),
        await shop.create(f"{word} three", brand=b, rupees=60000, color="black", ram_gb=12),
    ]
    resp = await listed(shop, word, 3, category="mobiles")
    facets = {f.field: {v.value: v.count for v in f.values} for f in resp.facets}
    assert facets["brand"] == {a: 2, b: 1}
    assert facets["category"] == {"mobiles": 3}
    assert facets["price"] == {"0-500": 1, "1000-2000": 1, "50000-": 1}
    assert facets["attributes.color"] == {"black": 2, "blue": 1}
    assert facets["attributes.ram_gb"] == {"8": 2, "12": 1}
    # The brand facet's first value is the most frequent.
    assert [f for f in resp.facets if f.field == "brand"][0].values[0].value == a

    assert sorted(ids(await shop.search(word, brands=[a]))) == sorted(
        i.item_id for i in made[:2])
    assert ids(await shop.search(word, min_price=400, max_price=1499)) == [made[0].item_id]
    assert ids(await shop.search(word, attribute_filters=["color:black", "ram_gb:12"])) == [
        made[2].item_id]
    assert sorted(ids(await shop.search(word, attribute_filters=["color:black",
                                                                  "color:blue"]))) == sorted(
        i.item_id for i in made)
    cheap_first = await shop.search(word, sort=search_pb2.SORT_PRICE_ASC)
    assert ids(cheap_first) == [i.item_id for i in made]
    assert ids(await shop.search(word, sort=search_pb2.SORT_PRICE_DESC)) == [
        i.item_id for i in reversed(made)]
    assert ids(await shop.search(word, sort=search_pb2.SORT_NEWEST))[0] == made[2].item_id

    page1 = await shop.search(word, sort=search_pb2.SORT_PRICE_ASC, page_size=2)
    assert ids(page1) == [made[0].item_id, made[1].item_id] and page1.next_page_token
    page2 = await shop.search(word, sort=search_pb2.SORT_PRICE_ASC, page_size=2,
                              page_token=page1.next_page_token)
    assert ids(page2) == [made[2].item_id] and not page2.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.search(word, sort=search_pb2.SORT_PRICE_DESC,
                          page_token=page1.next_page_token)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_deliverable_only_and_delivery_estimates(shop: Shop) -> None:
    word = tag()
    item = await shop.create(f"Cirrus {word}", stock={"WH-BLR": 4})
    await listed(shop, word)
    # Other test modules restart svc_tat with their own settings; wait until
    # search reaches the current one again.
    near = await shop.until(word, lambda r: r.serviceability_available, timeout=15,
                            pincode=BENGALURU)
    est = near.hits[0].delivery
    assert near.serviceability_available and near.pincode == BENGALURU
    assert est.deliverable and est.pincode == BENGALURU and est.warehouse_id == "WH-BLR"
    assert est.eta_days >= 0 and est.promised_date.year >= 2024
    assert ids(await shop.search(word, pincode=BENGALURU, deliverable_only=True)) == [
        item.item_id]

    far = await shop.search(word, pincode=NO_DELIVERY)
    assert ids(far) == [item.item_id] and not far.hits[0].delivery.deliverable
    assert far.hits[0].delivery.reason != common_pb2.UNDELIVERABLE_REASON_UNSPECIFIED
    assert ids(await shop.search(word, pincode=NO_DELIVERY, deliverable_only=True)) == []

    anonymous = await shop.search(word)
    assert anonymous.pincode == "" and (anonymous.hits[0].delivery.reason ==
                                        common_pb2.UNDELIVERABLE_REASON_ESTIMATE_UNAVAILABLE)


def _index_doc(es: Elasticsearch, stack: Stack, item_id: str) -> dict[str, Any]:
    return dict(es.get(index=f"{stack.es_prefix}items", id=item_id).body)


def _events_of(stack: Stack, topic: str, item_id: str, n: int) -> list[bytes]:
    """The raw messages about ``item_id`` on ``topic`` (at least ``n``)."""
    reader = TopicReader(stack, topic)
    try:
        reader.until(lambda evs: len([e for e in evs if e.entity_key == item_id]) >= n)
        return [e.SerializeToString() for e in reader.about(item_id)]
    finally:
        reader.close()


def _publish(stack: Stack, topic: str, key: str, payloads: list[bytes]) -> dict[int, int]:
    """Produce ``payloads`` keyed ``key``; returns {partition: last offset}."""
    producer = make_producer(stack.env["ECOM_KAFKA_BOOTSTRAP"], client_id="test-replay")
    last: dict[int, int] = {}

    def done(err: Any, msg: Any) -> None:
        assert err is None, err
        last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    for p in payloads:
        env = events_pb2.EventEnvelope.FromString(p)
        producer.produce(stack.topic(topic), key=key.encode(), value=p, on_delivery=done,
                         headers=[("ecom-event-id", env.event_id.encode()),
                                  ("ecom-event-type", env.event_type.encode())])
    producer.flush(10)
    return last


def _wait_consumed(stack: Stack, topic: str, upto: dict[int, int], timeout: float = 30) -> None:
    """Wait until the indexer's group committed past ``upto`` on ``topic``."""
    group = stack.topic(f"svc_search.indexer.{topic}")
    consumer = make_consumer(stack.env["ECOM_KAFKA_BOOTSTRAP"], group)
    try:
        def reached() -> bool:
            committed = consumer.committed(
                [TopicPartition(stack.topic(topic), p) for p in upto], timeout=10)
            return all(tp.offset > upto[tp.partition] for tp in committed)

        wait_until(reached, f"the indexer past {upto} on {topic}", timeout=timeout, interval=0.2)
    finally:
        consumer.close()


async def test_replaying_the_same_events_changes_nothing(
        shop: Shop, stack: Stack, es: Elasticsearch) -> None:
    word = tag()
    item = await shop.create(f"Cumulus {word}", rupees=500, stock={"WH-BLR": 3, "WH-DEL": 2})
    await shop.update(item.item_id, title=f"Cumulus {word} Pro")
    await shop.until(word, lambda r: [h.title for h in r.hits] == [f"Cumulus {word} Pro"])
    await asyncio.sleep(1)  # the last stock event too
    before = _index_doc(es, stack, item.item_id)

    catalog_events = _events_of(stack, "catalog.items", item.item_id, 2)
    stock_events = _events_of(stack, "inventory.stock", item.item_id, 2)
    _wait_consumed(stack, "catalog.items",
                   _publish(stack, "catalog.items", item.item_id, catalog_events))
    _wait_consumed(stack, "inventory.stock",
                   _publish(stack, "inventory.stock", item.item_id, stock_events))

    after = _index_doc(es, stack, item.item_id)
    assert (after["_seq_no"], after["_source"]) == (before["_seq_no"], before["_source"])
    assert [h.title for h in (await shop.search(word)).hits] == [f"Cumulus {word} Pro"]


async def test_an_out_of_order_older_event_is_ignored(
        shop: Shop, stack: Stack, es: Elasticsearch) -> None:
    word = tag()
    item = await shop.create(f"Nimbostratus {word}", rupees=800, stock={"WH-BLR": 3})
    updated = await shop.update(item.item_id, title=f"Nimbostratus {word} v2")
    await shop.until(word, lambda r: [h.title for h in r.hits] == [updated.title])
    doc = _index_doc(es, stack, item.item_id)["_source"]

    # An upsert one version older than the index has, with different content,
    # and a stock event older than the last one saying "sold out".
    stale_item = catalog_pb2.Item()
    stale_item.CopyFrom(updated)
    stale_item.title, stale_item.version = f"Nimbostratus {word} stale", updated.version - 1
    stale_upsert = events_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()), event_type="ecom.events.v1.ItemUpserted",
        entity_key=item.item_id, entity_version=stale_item.version,
        item_upserted=events_pb2.ItemUpserted(item=stale_item))
    stale_stock = events_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()), event_type="ecom.events.v1.StockChanged",
        entity_key=item.item_id, entity_version=doc["stock_version"] - 1,
        stock_changed=events_pb2.StockChanged(item_id=item.item_id, warehouse_id="WH-BLR",
                                              available=0, item_total_available=0))
    _wait_consumed(stack, "catalog.items", _publish(
        stack, "catalog.items", item.item_id, [stale_upsert.SerializeToString()]))
    _wait_consumed(stack, "inventory.stock", _publish(
        stack, "inventory.stock", item.item_id, [stale_stock.SerializeToString()]))
    await asyncio.sleep(0.7)  # past the refresh interval
    assert [h.title for h in (await shop.search(word)).hits] == [updated.title]

    # The same events one version newer do apply (so the test above can fail).
    stale_item.version = updated.version + 1
    stale_upsert.entity_version = stale_item.version
    stale_upsert.item_upserted.item.CopyFrom(stale_item)
    stale_upsert.event_id = str(uuid.uuid4())
    _publish(stack, "catalog.items", item.item_id, [stale_upsert.SerializeToString()])
    await shop.until(word, lambda r: [h.title for h in r.hits] == [stale_item.title])


async def test_queries_are_published(shop: Shop, stack: Stack) -> None:
    word = tag()
    reader = TopicReader(stack, "search.queries")
    try:
        await shop.search(word, category="mobiles", sort=search_pb2.SORT_PRICE_ASC)
        events = await asyncio.to_thread(reader.until, lambda evs: any(
            e.search_query_recorded.query == word for e in evs))
    finally:
        reader.close()
    [event] = [e for e in events if e.search_query_recorded.query == word]
    q = event.search_query_recorded
    assert (q.category, q.sort, q.page_number, event.entity_key) == (
        "mobiles", search_pb2.SORT_PRICE_ASC, 0, "anon")


async def test_bad_requests_name_the_field(shop: Shop) -> None:
    for kw, field in ((dict(pincode="12345"), "pincode"), (dict(page_size=101), "page_size"),
                      (dict(min_price=10, max_price=5), "max_price"),
                      (dict(attribute_filters=["nocolon"]), "attribute_filters[0]"),
                      (dict(page_token="garbage!"), "page_token")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.search("x", **kw)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
        assert field in (err.value.details() or ""), (kw, err.value.details())


@pytest.fixture
def search_without_es(services: Services) -> Iterator[RunningService]:
    """A second svc_search whose Elasticsearch is a closed port."""
    addr = f"127.0.0.1:{_free_port()}"
    log = STACK / "logs" / f"test-{services.stack.run_id}-search-no-es.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "svc_search.main"], stdout=out, stderr=subprocess.STDOUT,
            env={**services.env, "ECOM_SEARCH_ADDR": addr,
                 "ECOM_ES_URL": f"http://127.0.0.1:{_free_port()}"},
            cwd=REPO, start_new_session=True)
    svc = RunningService("search", addr, [proc], [log])
    yield svc
    svc.stop()


async def _health(channel: grpc.aio.Channel) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=1)
    return int(resp.status)


async def test_elasticsearch_down_answers_unavailable_quickly(
        search_without_es: RunningService, shop: Shop) -> None:
    from grpc_health.v1 import health_pb2

    async with search_without_es.channel() as ch:
        status = await _retry(lambda: _health(ch), 60)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await search_pb2_grpc.SearchServiceStub(ch).Search(
                search_pb2.SearchRequest(query="phone"), timeout=10)
        # UNAVAILABLE, not DEADLINE_EXCEEDED: it answered instead of hanging.
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # The rest of the shop is unaffected.
    word = tag()
    await shop.create(f"Altocumulus {word}")
    await listed(shop, word)


async def _retry(fn: Callable[[], Awaitable[int]], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await fn()
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_the_callers_default_address_gives_the_pincode(
        shop: Shop, services: Services) -> None:
    from ecom.users.v1 import users_pb2, users_pb2_grpc

    from tests.integration.test_users_service import address, sign_up

    word = tag()
    item = await shop.create(f"Cirrocumulus {word}", stock={"WH-BLR": 2})
    await listed(shop, word)
    async with services.start("users").channel() as ch:
        users = users_pb2_grpc.UserServiceStub(ch)
        user = await sign_up(users)
        me = (("x-jwt-payload", encode_jwt_payload(Caller(user.user_id,
                                                          frozenset({"customer"})))),)
        resp = await shop.search_stub.Search(search_pb2.SearchRequest(query=word), metadata=me)
        assert resp.pincode == ""  # no address yet: no estimate, no error
        await users.CreateAddress(users_pb2.CreateAddressRequest(
            user_id=user.user_id, address=address(BENGALURU), request_id=str(uuid.uuid4())),
            metadata=me)
        await shop.until(word, lambda r: r.serviceability_available, timeout=15,
                         pincode=BENGALURU)
        resp = await shop.search_stub.Search(search_pb2.SearchRequest(query=word), metadata=me)
    assert resp.pincode == BENGALURU and ids(resp) == [item.item_id]
    assert resp.hits[0].delivery.deliverable
