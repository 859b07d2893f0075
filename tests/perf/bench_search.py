"""svc_search benchmarks (print figures; no assertions on time; not run by
`make test`).

    ECOM_BENCH=1 ECOM_TEST_SERVERS=elasticsearch,kafka,ferretdb,redis,mariadb \
        .venv/bin/python -m pytest tests/perf/bench_search.py -s -q

Setup: the demo catalog (5,040 items) is published as the ItemUpserted
events svc_catalog's relay would send (``svc_catalog.codec``), and its demo
stock plan as StockChanged events, straight to ``catalog.items`` and
``inventory.stock``: the catalog relay drains a 5,040-item backlog from
FerretDB at only a few events per second, and 20,000 SetStock calls would
only slow the set-up down. The benchmark waits until svc_search lists them.

1. Index lag: 60 items created through svc_catalog (stocked by a
   StockChanged event), then UpdateItem (price), sequentially, then poll
   Elasticsearch every 10 ms until the new price is searchable; p50/p99 of
   catalog write -> searchable (relay + Kafka + indexer + refresh
   interval).
2. Search latency at 1, 8 and 32 concurrent clients over a mix of demo
   queries (text, typos, filters, sorts, facets), through svc_search over
   gRPC (anonymous, so no serviceability call) and, in the same run, the
   same Elasticsearch request body sent straight to Elasticsearch; the
   ratio is what the service adds (protobuf, validation, facets decoding,
   query recording). One more row with a pincode adds the batched
   serviceability call.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import grpc
from confluent_kafka import Producer
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.events.v1 import events_pb2
from ecom.search.v1 import search_pb2, search_pb2_grpc
from elastic_transport import AiohttpHttpNode
from elasticsearch import AsyncElasticsearch
from google.protobuf import field_mask_pb2
from google.type import money_pb2

from mesh.auth import Caller, encode_jwt_payload
from mesh.kafka import make_producer
from svc_catalog import codec, demo
from svc_search import domain
from tests.conftest import Services, Stack
from tests.perf import report, stats

ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("admin-1", frozenset({"admin"})))),)
REQUESTS_PER_LEVEL = 400

QUERIES: list[dict[str, Any]] = [
    {"query": "samsung 5g"},
    {"query": "samsnug phone"},
    {"query": "laptop", "category": "laptops", "sort": search_pb2.SORT_PRICE_ASC},
    {"query": "running shoes", "brands": ["Nike", "Adidas"]},
    {"query": "smart tv", "min_price": 20000, "max_price": 60000},
    {"category": "mobiles", "attribute_filters": ["color:black", "ram_gb:8"]},
    {"query": "cotton kurta", "sort": search_pb2.SORT_NEWEST},
    {"query": "headphones", "sort": search_pb2.SORT_PRICE_DESC},
]


def show(label: str, samples_ms: list[float]) -> None:
    print(f"{label:<44} {stats.line(samples_ms)}")


def _send(producer: Producer, topic: str, env: events_pb2.EventEnvelope) -> None:
    while True:
        try:
            producer.produce(topic, key=env.entity_key.encode(), value=env.SerializeToString())
            return
        except BufferError:
            producer.poll(0.1)


def publish_demo(stack: Stack, items: list[Any]) -> None:
    """The demo items' ItemUpserted and their demo stock's StockChanged."""
    producer: Producer = make_producer(stack.env["ECOM_KAFKA_BOOTSTRAP"], client_id="bench")
    for item in items:
        _send(producer, stack.topic("catalog.items"), codec.item_upserted(item, created=True))
    publish_stock(producer, stack, [i.item_id for i in items])
    producer.flush(60)


def publish_stock(
    producer: Producer, stack: Stack, item_ids: list[str], plan: Any = demo.demo_stock
) -> None:
    topic = stack.topic("inventory.stock")
    for item_id in item_ids:
        stock = plan(item_id)
        total, version = 0, 0
        for wh, units in stock.items():
            total += units
            version += 1
            env = events_pb2.EventEnvelope(
                event_id=str(uuid.uuid4()),
                event_type="ecom.events.v1.StockChanged",
                entity_key=item_id,
                entity_version=version,
                producer="bench",
                stock_changed=events_pb2.StockChanged(
                    item_id=item_id,
                    warehouse_id=wh,
                    available=units,
                    available_delta=units,
                    item_total_available=total,
                    reason=events_pb2.STOCK_CHANGE_REASON_SET,
                ),
            )
            _send(producer, topic, env)


def to_create(item: Any) -> catalog_pb2.Item:
    """A demo item as a CreateItem body (the server assigns id and version)."""
    proto = codec.item_to_proto(item)
    proto.supplier_id, proto.sku = "", ""
    return proto


async def level(n_clients: int, total: int, one: Any) -> list[float]:
    samples: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            t = time.perf_counter()
            await one(QUERIES[i % len(QUERIES)])
            samples.append((time.perf_counter() - t) * 1000)

    await asyncio.gather(*(worker() for _ in range(n_clients)))
    return samples


def es_body(q: dict[str, Any]) -> dict[str, Any]:
    sort = {
        search_pb2.SORT_PRICE_ASC: "price_asc",
        search_pb2.SORT_PRICE_DESC: "price_desc",
        search_pb2.SORT_NEWEST: "newest",
    }.get(q.get("sort", 0), "relevance")
    params, bad = domain.validate(
        query=q.get("query", ""),
        pincode="",
        category=q.get("category", ""),
        brands=q.get("brands", ()),
        min_price=q.get("min_price", 0),
        max_price=q.get("max_price", 0),
        attribute_filters=q.get("attribute_filters", ()),
        sort=sort,
        page_size=20,
        deliverable_only=False,
    )
    assert not bad
    return domain.search_body(params, None)


async def test_index_lag_and_search_latency(stack: Stack, services: Services) -> None:
    catalog_svc = services.start("catalog")
    services.start("tat")
    search_svc = services.start("search")
    t0 = time.perf_counter()
    items = demo.demo_items()
    item_ids = [i.item_id for i in items]
    await asyncio.to_thread(publish_demo, stack, items)
    listed = sum(1 for i in item_ids if demo.demo_stock(i))
    es = AsyncElasticsearch(
        stack.env["ECOM_ES_URL"], node_class=AiohttpHttpNode, request_timeout=30,
        connections_per_node=64
    )
    alias = f"{stack.es_prefix}items"
    while True:
        count = (await es.count(index=alias, query={"term": {"listed": True}}))["count"]
        if count >= listed:
            break
        await asyncio.sleep(0.5)
    print(
        f"\ndemo catalog: {len(item_ids)} items, {listed} in stock, published, indexed and "
        f"listed in {time.perf_counter() - t0:.1f} s"
    )

    # 1. Index lag.
    async with catalog_svc.channel() as ch:
        catalog = catalog_pb2_grpc.CatalogServiceStub(ch)
        fresh = []
        for n in range(60):
            created = await catalog.CreateItem(
                catalog_pb2.CreateItemRequest(
                    item=to_create(items[n]), request_id=str(uuid.uuid4())
                ),
                metadata=ADMIN,
            )
            fresh.append(created.item_id)
        producer = make_producer(stack.env["ECOM_KAFKA_BOOTSTRAP"], client_id="bench")
        publish_stock(producer, stack, fresh, plan=lambda _: {"WH-BLR": 5})
        producer.flush(10)
        lags = []
        for n, item_id in enumerate(fresh):
            rupees = 100_000 + n
            await catalog.UpdateItem(
                catalog_pb2.UpdateItemRequest(
                    item_id=item_id,
                    item=catalog_pb2.Item(
                        price=money_pb2.Money(currency_code="INR", units=rupees),
                        list_price=money_pb2.Money(currency_code="INR", units=rupees),
                    ),
                    update_mask=field_mask_pb2.FieldMask(paths=["price", "list_price"]),
                    request_id=str(uuid.uuid4()),
                ),
                metadata=ADMIN,
            )
            t = time.perf_counter()
            query = {
                "bool": {
                    "filter": [
                        {"term": {"item_id": item_id}},
                        {"term": {"price_paise": rupees * 100}},
                    ]
                }
            }
            while (await es.count(index=alias, query=query))["count"] == 0:
                await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - t) * 1000)
    print("\nindex lag (UpdateItem returned -> searchable in Elasticsearch)")
    show("catalog write -> searchable", lags)
    report.record("index lag p50, catalog write -> searchable", stats.percentile(lags, 50),
                  None, unit="ms", better="lower")

    # 2. Search latency.
    async with grpc.aio.insecure_channel(search_svc.target) as ch:
        stub = search_pb2_grpc.SearchServiceStub(ch)

        async def via_service(q: dict[str, Any]) -> None:
            await stub.Search(search_pb2.SearchRequest(**q), timeout=30)

        async def via_service_pincode(q: dict[str, Any]) -> None:
            await stub.Search(search_pb2.SearchRequest(pincode="560001", **q), timeout=30)

        async def direct(q: dict[str, Any]) -> None:
            await es.search(index=alias, body=es_body(q))

        await level(4, 40, via_service)  # warm up both paths
        await level(4, 40, direct)
        print(
            f"\nsearch latency, {REQUESTS_PER_LEVEL} requests per level, "
            f"{len(QUERIES)} query shapes, page_size 20 with facets"
        )
        for clients in (1, 8, 32):
            svc_ms = await level(clients, REQUESTS_PER_LEVEL, via_service)
            es_ms = await level(clients, REQUESTS_PER_LEVEL, direct)
            show(f"svc_search gRPC, {clients:>2} clients", svc_ms)
            show(f"Elasticsearch direct, {clients:>2} clients", es_ms)
            p50 = stats.percentile(svc_ms, 50) / stats.percentile(es_ms, 50)
            p99 = stats.percentile(svc_ms, 99) / stats.percentile(es_ms, 99)
            print(f"{'':<44} ratio p50={p50:.2f}x  p99={p99:.2f}x")
            report.record(f"Search p99, {clients} clients, vs the same query to ES",
                          stats.percentile(svc_ms, 99), stats.percentile(es_ms, 99),
                          unit="ms", better="lower")
        show(
            "svc_search gRPC + pincode (tat), 8 clients",
            await level(8, REQUESTS_PER_LEVEL, via_service_pincode),
        )
    await es.close()
