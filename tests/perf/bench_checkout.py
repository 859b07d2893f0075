"""Benchmark: checkout of one hot item by 32 concurrent buyers, next to the
conditional stock UPDATE that bounds it, sent straight to MariaDB.

Runs catalog, tat, inventory, payments and orders as real processes
(isolated like a test run; the simulated gateway's latency is set to 0 so
the figures are ours, not the fake gateway's), then for ``seconds`` each:

1. ``CreateOrder`` alone (price, deliverability, PENDING row, ReserveStock,
   CREATED + outbox event, Redis hold);
2. a full checkout: ``CreateOrder`` then ``PayOrder(tok_success)`` (payment,
   PLACED + event, CommitReservation);
3. ``UPDATE stock SET available = available - 1, reserved = reserved + 1
   WHERE ... AND available >= 1`` on the same item's row, one transaction
   each: the hot-row floor under any design.

It prints orders/s and p50/p99 latency of each and the ratios. Asserts
nothing about time; not part of ``make test`` (``make bench`` runs it).

    .venv/bin/python -m tests.perf.bench_checkout [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import sqlalchemy as sa

from mesh.db import drop_database, make_engine
from tests.conftest import Services, Stack
from tests.integration.orders_support import WAREHOUSE, Shop, new_id, start_shop
from tests.perf import report
from tests.perf.bench_inventory_reserve import run_callers, summary

ITEM_STOCK = 10_000_000


async def bench(seconds: float, concurrency: int) -> None:
    stack = Stack()
    stack.ensure(["mariadb", "redis", "kafka", "ferretdb"])
    services = Services(stack)
    running = start_shop(
        services,
        ECOM_ORDER_HOLD_SECONDS="600",
        ECOM_LOG_LEVEL="WARNING",
        ECOM_ORDERS_DB_POOL_SIZE=str(concurrency),
        ECOM_PAYMENTS_GATEWAY_LATENCY_MIN_MS="0",
        ECOM_PAYMENTS_GATEWAY_LATENCY_MAX_MS="0",
    )
    url = stack.env["ECOM_MYSQL_URL"]
    engine = await make_engine(
        url, stack.mysql_db("inventory"), create=False, pool_size=concurrency
    )
    shop = Shop.connect(running)
    try:
        item = await shop.item(stock=ITEM_STOCK)

        async def create() -> None:
            await shop.checkout(f"bench-{uuid.uuid4().hex[:12]}", item)

        async def checkout() -> None:
            order = await shop.checkout(f"bench-{uuid.uuid4().hex[:12]}", item)
            await shop.pay(order, "tok_success", request_id=new_id("pay"))

        guarded = sa.text(
            "UPDATE stock SET available = available - 1, reserved = reserved + 1,"
            " version = version + 1 WHERE item_id = :i AND warehouse_id = :w"
            " AND available >= 1"
        )

        async def bare_update() -> None:
            async with engine.begin() as conn:
                result = await conn.execute(guarded, {"i": item, "w": WAREHOUSE})
                assert result.rowcount == 1

        print(f"\nhot item, {concurrency} concurrent buyers, {seconds:g}s each")
        await run_callers(concurrency, 2.0, create)  # warm up pools and caches
        create_rate = summary("CreateOrder", *await run_callers(concurrency, seconds, create))
        checkout_rate = summary(
            "CreateOrder + PayOrder", *await run_callers(concurrency, seconds, checkout)
        )
        await run_callers(concurrency, 1.0, bare_update)
        bare_rate = summary(
            "conditional UPDATE (MariaDB)", *await run_callers(concurrency, seconds, bare_update)
        )
        print(
            f"CreateOrder reaches {create_rate / bare_rate:.3f}x the bare UPDATE's rate; "
            f"a full paid checkout {checkout_rate / bare_rate:.3f}x"
        )
        report.record(f"CreateOrder hot item, {concurrency} buyers, vs bare UPDATE",
                      create_rate, bare_rate, unit="orders/s", better="higher")
        report.record(f"CreateOrder+PayOrder hot item, {concurrency} buyers, vs bare UPDATE",
                      checkout_rate, bare_rate, unit="orders/s", better="higher")
    finally:
        await shop.close()
        await engine.dispose()
        services.stop_all()
        for name in ("orders", "inventory", "payments"):
            await drop_database(url, stack.mysql_db(name))
        for server in stack.started:
            server.stop()


async def test_checkout_throughput_vs_bare_update() -> None:
    """The `make bench` entry point (ECOM_BENCH=1 pytest tests/perf)."""
    await bench(10.0, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(bench(args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
