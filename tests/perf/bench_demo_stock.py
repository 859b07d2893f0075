"""Benchmark: loading the demo stock with BatchSetStock versus SetStock per row.

Runs svc_inventory as a real process (against the local MariaDB and Kafka,
isolated like a test run) with an in-process ServiceabilityService that
knows the demo warehouses, then:

1. ``python -m infra.demo``'s own loader (``infra.demo.load_stock``) sets
   every demo row (about 19,300) through BatchSetStock, 1000 rows a call;
2. the same loader runs again: every row is a replay (what a second
   ``make up`` does);
3. ``sample`` rows are set one SetStock call each, 16 at a time, the way the
   demo loaded stock before BatchSetStock.

It prints rows per second of each and the ratio of 1 over 3. Not part of
``make test``; it asserts nothing about time.

    .venv/bin/python -m tests.perf.bench_demo_stock [--sample 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import grpc
from ecom.inventory.v1 import inventory_pb2 as pb
from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2 as spb
from ecom.serviceability.v1 import serviceability_pb2_grpc

from infra.demo import load_stock
from mesh.db import drop_database
from mesh.kafka import delete_topics, make_admin
from svc_catalog.demo import WAREHOUSES, demo_item_ids, demo_stock
from tests.conftest import Services, Stack
from tests.integration.test_inventory_service import ADMIN


class DemoWarehouses(serviceability_pb2_grpc.ServiceabilityServiceServicer):
    """GetWarehouse for the demo warehouses: all SetStock asks of it."""

    async def GetWarehouse(self, request: spb.GetWarehouseRequest, context: Any) -> Any:
        if request.warehouse_id not in WAREHOUSES:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such warehouse")
        return spb.Warehouse(warehouse_id=request.warehouse_id, name=request.warehouse_id)


async def bench(sample: int) -> None:
    stack = Stack()
    stack.ensure(["mariadb", "kafka"])
    services = Services(stack)
    tat = grpc.aio.server()
    serviceability_pb2_grpc.add_ServiceabilityServiceServicer_to_server(DemoWarehouses(), tat)
    tat_port = tat.add_insecure_port("127.0.0.1:0")
    await tat.start()
    svc = services.start(
        "inventory", ECOM_TAT_ADDR=f"127.0.0.1:{tat_port}", ECOM_LOG_LEVEL="WARNING"
    )
    channel = grpc.aio.insecure_channel(svc.target)
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    try:
        t0 = time.perf_counter()
        rows, replayed = await load_stock(svc.addr)
        batch_s = time.perf_counter() - t0
        print(f"BatchSetStock, first load   {rows:>6} rows  {batch_s:>6.1f} s  "
              f"{rows / batch_s:>7.0f} rows/s  ({replayed} replayed)")
        t0 = time.perf_counter()
        rows2, replayed2 = await load_stock(svc.addr)
        replay_s = time.perf_counter() - t0
        print(f"BatchSetStock, second load  {rows2:>6} rows  {replay_s:>6.1f} s  "
              f"{rows2 / replay_s:>7.0f} rows/s  ({replayed2} replayed)")

        # The old way, on fresh item ids (same warehouses and quantities).
        tag = uuid.uuid4().hex[:6]
        plan = [(f"{item}-{tag}", wh, qty) for item in demo_item_ids()
                for wh, qty in demo_stock(item).items()][:sample]
        sem = asyncio.Semaphore(16)

        async def one(item: str, wh: str, qty: int) -> None:
            async with sem:
                await stub.SetStock(pb.SetStockRequest(
                    item_id=item, warehouse_id=wh, available=qty,
                    request_id=f"s-{item}-{wh}"), metadata=ADMIN, timeout=30)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(*p) for p in plan))
        single_s = time.perf_counter() - t0
        single_rate = len(plan) / single_s
        print(f"SetStock per row (16 at once) {len(plan):>4} rows  {single_s:>6.1f} s  "
              f"{single_rate:>7.0f} rows/s  (all {rows} rows would take "
              f"{rows / single_rate:.0f} s)")
        print(f"BatchSetStock loads {rows / batch_s / single_rate:.1f}x the rows per second")
        from tests.perf import report

        report.record("BatchSetStock vs SetStock per row", rows / batch_s, single_rate,
                      unit="rows/s", better="higher")
    finally:
        await channel.close()
        svc.stop()
        await tat.stop(0)
        await drop_database(stack.env["ECOM_MYSQL_URL"], stack.mysql_db("inventory"))
        delete_topics(
            make_admin(stack.env["ECOM_KAFKA_BOOTSTRAP"]), [stack.topic("inventory.stock")]
        )
        for server in stack.started:
            server.stop()


async def test_demo_stock_load() -> None:
    """The `make bench` entry point (ECOM_BENCH=1 pytest tests/perf)."""
    await bench(2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(bench(args.sample))


if __name__ == "__main__":
    main()
