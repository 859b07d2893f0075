"""Benchmark: archival of 100,000 terminal orders of 1,000 users to
Cassandra, and the merged history page with and without the archive.

1. 100,000 DELIVERED/CANCELLED orders (1-2 lines each, items of 10 sellers,
   created over 12 months) are written straight into the run's orders
   database, then moved by one ArchiveOrders call (svc_orders' archiver:
   claim, seller lookup, Cassandra write, read-back, MariaDB delete, in
   batches of ECOM_ORDERS_ARCHIVE_BATCH_SIZE). Prints orders/s and the
   MariaDB table sizes (rows, data + index bytes) before and after.
2. ListUserOrders (gRPC, page_size 20, every page) for a user with 500
   archived + 20 live orders, next to a user with all 520 live, in the same
   run: p50/p99 per page and the ratio.

Prints figures; asserts nothing about time. Heavy: run it alone::

    ECOM_BENCH=1 ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,cassandra \
        .venv/bin/python -m pytest -s tests/perf/bench_archive.py
"""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.orderhistory.v1 import orderhistory_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb
from ecom.orders.v1 import orders_pb2_grpc

from svc_orders.domain import OrderState
from svc_orders.store import LineRecord, _row_values, order_lines, orders
from tests.conftest import Services, Stack
from tests.integration.archive_support import (
    OLD,
    archive_request,
    make_archivable,
    now,
    orders_db,
    synthetic_order,
)
from tests.integration.catalog_support import phone
from tests.integration.orders_support import ADMIN
from tests.perf import stats

# ECOM_BENCH_ARCHIVE_ORDERS: a smaller figure for a quick try.
ORDERS = int(os.environ.get("ECOM_BENCH_ARCHIVE_ORDERS", "100000"))
USERS = 1_000
SELLERS = 10
ARCHIVED, LIVE = 500, 20
ROUNDS = 15
PAGE = 20


async def _table_sizes(engine: sa.ext.asyncio.AsyncEngine) -> dict[str, tuple[int, int]]:
    """table -> (rows, data + index bytes), statistics refreshed first."""
    out = {}
    async with engine.connect() as conn:
        for table in ("orders", "order_lines"):
            await conn.execute(sa.text(f"ANALYZE TABLE {table}"))
            rows = (await conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}"))).scalar()
            size = (
                await conn.execute(
                    sa.text(
                        "SELECT data_length + index_length FROM information_schema.tables"
                        " WHERE table_schema = DATABASE() AND table_name = :t"
                    ),
                    {"t": table},
                )
            ).scalar()
            out[table] = (int(rows or 0), int(size or 0))
    return out


def _sizes_line(label: str, sizes: dict[str, tuple[int, int]]) -> str:
    return f"{label:<28}" + "  ".join(
        f"{t}: {rows:>7} rows {size / 2**20:7.1f} MiB" for t, (rows, size) in sizes.items()
    )


async def _insert(engine: sa.ext.asyncio.AsyncEngine, recs: list) -> None:  # type: ignore[type-arg]
    for start in range(0, len(recs), 2_000):
        chunk = recs[start : start + 2_000]
        async with engine.begin() as conn:
            await conn.execute(sa.insert(orders), [_row_values(r) for r in chunk])
            await conn.execute(
                sa.insert(order_lines),
                [
                    {
                        "order_id": r.order_id,
                        "position": i,
                        "item_id": ln.item_id,
                        "quantity": ln.quantity,
                        "title": ln.title,
                        "unit_paise": ln.unit_paise,
                        "warehouse_id": ln.warehouse_id,
                        "promised_date": ln.promised_date,
                    }
                    for r in chunk
                    for i, ln in enumerate(r.lines)
                ],
            )


async def _pages(stub: orders_pb2_grpc.OrderServiceStub, user: str) -> tuple[list[float], int]:
    """Latencies (ms) of every page of a user's history, and orders seen."""
    token, samples, seen = "", [], 0
    while True:
        t = time.perf_counter()
        page = await stub.ListUserOrders(
            pb.ListUserOrdersRequest(user_id=user, page_size=PAGE, page_token=token),
            metadata=ADMIN,
        )
        samples.append((time.perf_counter() - t) * 1000)
        seen += len(page.orders)
        token = page.next_page_token
        if not token:
            return samples, seen


@pytest.mark.integration
@pytest.mark.timeout(5_400)
async def test_archive_100k_orders_and_history_pages(services: Services, stack: Stack) -> None:
    services.start("catalog")
    svc = services.start(
        "orders", ECOM_ORDERS_ARCHIVE_ENABLED="0", ECOM_ORDERS_ARCHIVE_BATCH_SIZE="500"
    )
    store = await orders_db(stack)
    engine = store.engine
    rng = random.Random(7)
    async with (
        svc.channel() as ch,
        services.running["catalog"].channel() as cat_ch,
    ):
        catalog = catalog_pb2_grpc.CatalogServiceStub(cat_ch)
        history = orderhistory_pb2_grpc.OrderHistoryServiceStub(ch)
        orders_stub = orders_pb2_grpc.OrderServiceStub(ch)
        items: list[str] = []
        for s in range(SELLERS):
            for _ in range(2):
                template = phone(f"Bench Phone {uuid.uuid4().hex[:6]}", 999)
                template.supplier_id, template.sku = f"bench-seller-{s}", uuid.uuid4().hex[:12]
                created = await catalog.CreateItem(
                    catalog_pb2.CreateItemRequest(request_id=uuid.uuid4().hex, item=template),
                    metadata=ADMIN,
                )
                items.append(created.item_id)

        # 1. 100,000 terminal orders of 1,000 users, last transition long ago.
        users = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(USERS)]
        start = now() - timedelta(days=400)
        recs = []
        for i in range(ORDERS):
            rec = synthetic_order(
                users[i % USERS],
                start + timedelta(seconds=rng.randrange(365 * 86_400)),
                state=OrderState.DELIVERED if i % 5 else OrderState.CANCELLED,
                update_time=OLD,
            )
            lines = tuple(
                LineRecord(rng.choice(items), 1, "Bench Phone", 99_900, "WH-BLR", None)
                for _ in range(1 + i % 2)
            )
            recs.append(replace(rec, lines=lines, item_count=len(lines)))
        t = time.perf_counter()
        await _insert(engine, recs)
        print(f"\ninserted {ORDERS} orders into MariaDB in {time.perf_counter() - t:.1f} s")
        before = await _table_sizes(engine)

        t = time.perf_counter()
        report = await history.ArchiveOrders(
            archive_request(max_orders=ORDERS), metadata=ADMIN, timeout=3_600
        )
        took = time.perf_counter() - t
        after = await _table_sizes(engine)
        async with engine.connect() as conn:
            await conn.execute(sa.text("OPTIMIZE TABLE orders, order_lines"))
        optimized = await _table_sizes(engine)
        print(
            f"archived {report.archived_count} orders in {took:.1f} s: "
            f"{report.archived_count / took:,.0f} orders/s (batches of 500; Cassandra "
            "write of 4 tables + read-back of each row + MariaDB delete per batch)"
        )
        print(_sizes_line("MariaDB before", before))
        print(_sizes_line("MariaDB after", after))
        print(_sizes_line("after OPTIMIZE TABLE", optimized))

        # 2. History pages: 500 archived + 20 live, against 520 live.
        mixed, live_only = (
            f"bench-mixed-{uuid.uuid4().hex[:8]}",
            f"bench-live-{uuid.uuid4().hex[:8]}",
        )
        base = now() - timedelta(days=200)
        for user in (mixed, live_only):
            user_recs = [
                synthetic_order(
                    user, base + timedelta(minutes=10 * i), item_id=items[i % len(items)]
                )
                for i in range(ARCHIVED + LIVE)
            ]
            await _insert(engine, user_recs)
            if user == mixed:
                oldest = sorted(user_recs, key=lambda r: r.create_time)[:ARCHIVED]
                await make_archivable(engine, [r.order_id for r in oldest])
                moved = await history.ArchiveOrders(
                    archive_request(max_orders=ORDERS), metadata=ADMIN, timeout=600
                )
                assert moved.archived_count == ARCHIVED
        results: dict[str, list[float]] = {mixed: [], live_only: []}
        firsts: dict[str, list[float]] = {mixed: [], live_only: []}
        for _ in range(ROUNDS):
            for user in (live_only, mixed):
                samples, seen = await _pages(orders_stub, user)
                assert seen == ARCHIVED + LIVE
                results[user] += samples
                firsts[user].append(samples[0])
        p50_m, p99_m = stats.p50_p99(results[mixed])
        p50_l, p99_l = stats.p50_p99(results[live_only])
        print(f"history, {ARCHIVED + LIVE} orders, page_size {PAGE}, every page x {ROUNDS}:")
        print(f"  all live in MariaDB        {stats.line(results[live_only])}")
        print(f"  {ARCHIVED} archived + {LIVE} live     {stats.line(results[mixed])}")
        print(f"  ratio mixed/live           p50 x{p50_m / p50_l:.2f}  p99 x{p99_m / p99_l:.2f}")
        print(f"  first page only, live      {stats.line(firsts[live_only])}")
        print(f"  first page only, mixed     {stats.line(firsts[mixed])}")
        from tests.perf import report

        report.record("order history page p99, archived+live vs all live", p99_m, p99_l,
                      unit="ms", better="lower")
    await engine.dispose()
