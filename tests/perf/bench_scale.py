"""Benchmarks of scale-out, each comparing within one run:

1. catalog item updates per second with one catalog process and with two
   (the same load: ``concurrency`` callers updating 200 items, round-robin
   over the replicas);
2. the hot-item checkout (CreateOrder + PayOrder of one item by
   ``concurrency`` buyers) with one and with two processes of catalog, tat,
   inventory, payments and orders;
3. ``ListItems`` of one category at 100,000 items: the old query (a filter
   on ``category`` sorted by ``_id``, which FerretDB v1 answers by reading
   the whole collection) against the category index, page p50/p99.

Needs the patched FerretDB (build ecom4). Prints figures and ratios; asserts
nothing about time; not part of ``make test``.

    .venv/bin/python -m tests.perf.bench_scale [--seconds 10] [--concurrency 32]
        [--items 100000] [--only updates,checkout,list]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import pymongo
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from google.protobuf import field_mask_pb2

from mesh.config import load_settings
from svc_catalog import domain
from svc_catalog.store import ItemStore, connect, item_to_doc, now
from tests.conftest import Services, Stack, _free_port
from tests.integration.catalog_support import ADMIN, phone
from tests.integration.orders_support import Shop, new_id, start_shop
from tests.perf import stats
from tests.perf.bench_inventory_reserve import run_callers, summary

SHOP = ("catalog", "tat", "inventory", "payments", "orders")


def use_replicas(services: Services, names: tuple[str, ...], n: int) -> None:
    """Point ``names`` at ``n`` replica addresses each (fresh ports)."""
    for name in names:
        services.env[f"ECOM_{name.upper()}_ADDR"] = ",".join(
            f"127.0.0.1:{_free_port()}" for _ in range(n))


async def bench_updates(services: Services, seconds: float, concurrency: int) -> dict[int, float]:
    rates: dict[int, float] = {}
    for n in (1, 2):
        services.stop_all()
        use_replicas(services, ("catalog",), n)
        svc = services.start("catalog", ECOM_LOG_LEVEL="WARNING")
        async with svc.channel() as ch:
            stub = catalog_pb2_grpc.CatalogServiceStub(ch)
            items = [(await stub.CreateItem(catalog_pb2.CreateItemRequest(
                item=phone(f"Bench phone {k}"), request_id=str(uuid.uuid4())),
                metadata=ADMIN)).item_id for k in range(200)]
            counter = iter(range(10**9))

            async def update(stub=stub, items=items, counter=counter) -> None:  # type: ignore[no-untyped-def]
                k = next(counter)
                await stub.UpdateItem(catalog_pb2.UpdateItemRequest(
                    item_id=items[k % len(items)], item=catalog_pb2.Item(title=f"Bench {k}"),
                    update_mask=field_mask_pb2.FieldMask(paths=["title"]),
                    request_id=str(uuid.uuid4())), metadata=ADMIN, timeout=60)

            await run_callers(concurrency, 2.0, update)  # warm up
            rates[n] = summary(f"UpdateItem, {n} process(es)",
                               *await run_callers(concurrency, seconds, update))
    print(f"two catalog processes: x{rates[2] / rates[1]:.2f} the updates/s of one")
    return rates


async def bench_checkout(services: Services, seconds: float, concurrency: int
                         ) -> dict[int, float]:
    rates: dict[int, float] = {}
    for n in (1, 2):
        services.stop_all()
        use_replicas(services, SHOP, n)
        running = start_shop(
            services, ECOM_ORDER_HOLD_SECONDS="600", ECOM_LOG_LEVEL="WARNING",
            ECOM_ORDERS_DB_POOL_SIZE=str(concurrency),
            ECOM_PAYMENTS_GATEWAY_LATENCY_MIN_MS="0", ECOM_PAYMENTS_GATEWAY_LATENCY_MAX_MS="0")
        shop = Shop.connect(running)
        try:
            item = await shop.item(stock=10_000_000)

            async def checkout(shop: Shop = shop, item: str = item) -> None:
                order = await shop.checkout(f"bench-{uuid.uuid4().hex[:12]}", item)
                await shop.pay(order, "tok_success", request_id=new_id("pay"))

            await run_callers(concurrency, 2.0, checkout)
            rates[n] = summary(f"checkout, {n} process(es) each",
                               *await run_callers(concurrency, seconds, checkout))
        finally:
            await shop.close()
    print(f"two processes per service: x{rates[2] / rates[1]:.2f} the checkouts/s of one")
    return rates


async def bench_list(services: Services, stack: Stack, items: int) -> None:
    services.stop_all()
    use_replicas(services, ("catalog",), 1)
    settings = load_settings(db_prefix=stack.db_prefix, mongo_url=stack.env["ECOM_MONGO_URL"])
    client = connect(stack.env["ECOM_MONGO_URL"])
    db = client[settings.database("catalog")]
    await client.drop_database(db.name)  # a fresh catalog: nothing indexed yet
    categories = list(domain.CATEGORIES)
    category = categories[0]
    t0 = time.perf_counter()
    made = 0
    while made < items:
        docs = []
        for k in range(made, min(made + 5_000, items)):
            fields = domain.ItemFields(
                title=f"Scale item {k}", category=categories[k % len(categories)],
                brand="Acme", price_paise=99_900, supplier_id="scale", sku=f"S{k}")
            item = domain.new_item(uuid.uuid4().hex, fields, now())
            doc = item_to_doc(item)
            doc.update(create_request_id=f"scale-{k}", requests=[], pending={},
                       has_pending=False)
            docs.append(doc)
        await db["items"].insert_many(docs, ordered=False)
        made += len(docs)
    print(f"\n{items} items inserted straight into FerretDB in {time.perf_counter() - t0:.1f}s")

    # Before: the query ListItems sent until now, a few pages.
    before: list[float] = []
    after_id = ""
    for _ in range(3):
        t = time.perf_counter()
        query: dict = {"category": category, "state": domain.ItemState.ACTIVE.value}
        if after_id:
            query["_id"] = {"$gt": after_id}
        page = [d async for d in db["items"].find(query, {"pending": 0})
                .sort("_id", pymongo.ASCENDING).limit(51)]
        before.append((time.perf_counter() - t) * 1000)
        after_id = page[49]["_id"]
    print(f"{'ListItems before (scan)':<28} {stats.line(before)}")

    # After: the index for items stored before it existed is built once per
    # database (at the catalog's start; here first, timed on its own).
    t = time.perf_counter()
    indexed = await ItemStore(db).build_lookup_indexes()
    print(f"category index and item keys built for {indexed} items: "
          f"{time.perf_counter() - t:.1f}s (once per database)")
    svc = services.start("catalog", ECOM_LOG_LEVEL="WARNING")
    after: list[float] = []
    seen = 0
    async with svc.channel() as ch:
        stub = catalog_pb2_grpc.CatalogServiceStub(ch)
        token = ""
        while True:
            t = time.perf_counter()
            resp = await stub.ListItems(catalog_pb2.ListItemsRequest(
                category=category, page_size=50, page_token=token), timeout=60)
            after.append((time.perf_counter() - t) * 1000)
            seen += len(resp.items)
            if not (token := resp.next_page_token):
                break
    print(f"{'ListItems after (index)':<28} {stats.line(after)}  "
          f"({seen} items of {category!r} in {len(after)} pages)")
    print(f"page p50: x{stats.percentile(before, 50) / stats.percentile(after, 50):.0f} faster")
    await client.drop_database(settings.database("catalog"))
    await client.close()


async def bench(seconds: float, concurrency: int, items: int, only: set[str]) -> None:
    stack = Stack()
    stack.ensure(["mariadb", "redis", "kafka", "ferretdb"])
    services = Services(stack)
    try:
        print(f"\n{concurrency} concurrent callers, {seconds:g}s per figure")
        if "updates" in only:
            await bench_updates(services, seconds, concurrency)
        if "checkout" in only:
            await bench_checkout(services, seconds, concurrency)
        if "list" in only:
            await bench_list(services, stack, items)
    finally:
        services.stop_all()
        from tests.run_data import drop_run_data

        dropped = drop_run_data(stack)
        print("dropped the run's data on " + ", ".join(sorted(dropped)))
        for server in stack.started:
            server.stop()


async def test_scale_out() -> None:
    """The `make bench` entry point (ECOM_BENCH=1 pytest tests/perf)."""
    await bench(10.0, 32, 100_000, {"updates", "checkout", "list"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--only", default="updates,checkout,list")
    args = parser.parse_args()
    asyncio.run(bench(args.seconds, args.concurrency, args.items, set(args.only.split(","))))


if __name__ == "__main__":
    main()
