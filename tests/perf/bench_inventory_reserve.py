"""Benchmark: ReserveStock on one hot item versus the bare conditional UPDATE.

Runs svc_inventory as a real process (against the local MariaDB and Kafka,
isolated like a test run) with an in-process ServiceabilityService, then:

1. ``concurrency`` callers send ReserveStock (quantity 1, a new order each)
   for one item at one warehouse, for ``seconds``;
2. the same number of callers send the guarded decrement the service relies
   on, ``UPDATE stock SET available = available - 1, reserved = reserved + 1
   WHERE ... AND available >= 1``, straight to MariaDB, one transaction each.

It prints throughput and p50/p99 latency of both and their ratio: the price
of the full reservation (idempotency row, item lock, lines, outbox event,
gRPC) over the row update that bounds any design on a single hot row.
Not part of ``make test``; it asserts nothing about time.

    .venv/bin/python -m tests.perf.bench_inventory_reserve [--seconds 10] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import grpc
import sqlalchemy as sa
from ecom.inventory.v1 import inventory_pb2 as pb
from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2_grpc

from mesh.db import drop_database, make_engine
from mesh.kafka import delete_topics, make_admin
from tests.conftest import Services, Stack
from tests.integration.test_inventory_service import ADMIN, ORDERS, FakeServiceability
from tests.perf import stats

ITEM_STOCK = 10_000_000


async def run_callers(
    concurrency: int, seconds: float, call: Callable[[], Awaitable[object]]
) -> tuple[int, float, list[float]]:
    """Run ``call`` back to back from ``concurrency`` tasks for ``seconds``;
    returns (calls, elapsed seconds, latencies in ms)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(latencies), time.perf_counter() - started, latencies


def summary(name: str, calls: int, elapsed: float, latencies: list[float]) -> float:
    """Print one result line; returns calls per second."""
    rate = calls / elapsed
    p50, p99 = stats.p50_p99(latencies)
    print(f"{name:<28} {calls:>7} calls  {rate:>8.0f}/s  p50 {p50:>6.1f} ms  p99 {p99:>6.1f} ms")
    return rate


async def bench(seconds: float, concurrency: int) -> None:
    stack = Stack()
    stack.ensure(["mariadb", "kafka"])
    services = Services(stack)
    tat = grpc.aio.server()
    serviceability_pb2_grpc.add_ServiceabilityServiceServicer_to_server(FakeServiceability(), tat)
    tat_port = tat.add_insecure_port("127.0.0.1:0")
    await tat.start()
    svc = services.start(
        "inventory",
        ECOM_TAT_ADDR=f"127.0.0.1:{tat_port}",
        ECOM_INVENTORY_DB_POOL_SIZE=str(concurrency),
        ECOM_LOG_LEVEL="WARNING",
    )
    url = stack.env["ECOM_MYSQL_URL"]
    database = stack.mysql_db("inventory")
    engine = await make_engine(url, database, create=False, pool_size=concurrency)
    channel = grpc.aio.insecure_channel(svc.target)
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    try:
        item = f"hot-{uuid.uuid4().hex[:8]}"
        await stub.SetStock(
            pb.SetStockRequest(
                item_id=item, warehouse_id="blr-1", available=ITEM_STOCK, request_id=item
            ),
            metadata=ADMIN,
        )

        async def reserve() -> None:
            await stub.ReserveStock(
                pb.ReserveStockRequest(
                    order_id=uuid.uuid4().hex,
                    pincode="560001",
                    lines=[pb.ReservationLine(item_id=item, quantity=1)],
                ),
                metadata=ORDERS,
            )

        guarded = sa.text(
            "UPDATE stock SET available = available - 1, reserved = reserved + 1,"
            " version = version + 1 WHERE item_id = :i AND warehouse_id = 'blr-1'"
            " AND available >= 1"
        )

        async def bare_update() -> None:
            async with engine.begin() as conn:
                result = await conn.execute(guarded, {"i": item})
                assert result.rowcount == 1

        print(f"hot item, {concurrency} concurrent callers, {seconds:g}s each")
        await run_callers(concurrency, 1.0, reserve)  # warm up pools and caches
        service_rate = summary(
            "ReserveStock (gRPC)", *await run_callers(concurrency, seconds, reserve)
        )
        await run_callers(concurrency, 1.0, bare_update)
        bare_rate = summary(
            "conditional UPDATE (MariaDB)", *await run_callers(concurrency, seconds, bare_update)
        )
        print(
            f"ReserveStock reaches {service_rate / bare_rate:.2f}x the bare UPDATE's rate "
            f"({bare_rate / service_rate:.1f}x slower)"
        )
        from tests.perf import report

        report.record(f"ReserveStock hot item, {concurrency} callers, vs bare UPDATE",
                      service_rate, bare_rate, unit="calls/s", better="higher")
    finally:
        await channel.close()
        svc.stop()
        await tat.stop(0)
        await engine.dispose()
        await drop_database(url, database)
        delete_topics(
            make_admin(stack.env["ECOM_KAFKA_BOOTSTRAP"]), [stack.topic("inventory.stock")]
        )
        for server in stack.started:
            server.stop()


async def test_reserve_throughput_vs_bare_update() -> None:
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
