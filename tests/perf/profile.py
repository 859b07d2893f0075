"""Profile one service's hot path with py-spy under a benchmark-like load.

Starts the service (and the peers it needs) as processes isolated like a
test run, drives ``--clients`` concurrent callers of one RPC for
``--seconds``, records the service process with ``py-spy record`` (PyPI,
in the dev extra) meanwhile, and prints the top frames by own and
inclusive time, plus the calls per second the load reached.

    .venv/bin/python -m tests.perf.profile tat      # CheckServiceability
    .venv/bin/python -m tests.perf.profile catalog  # GetItem
    .venv/bin/python -m tests.perf.profile search   # Search (facets, page 20)
    .venv/bin/python -m tests.perf.profile orders   # CreateOrder, one hot item
    .venv/bin/python -m tests.perf.profile orders --process inventory  # its peer
    .venv/bin/python -m tests.perf.profile inventory  # ReserveStock, one hot item

``--process`` records another process of the same load (a peer the RPC
calls) instead of the service the calls go to.

``--out FILE`` keeps py-spy's raw collapsed stacks (flamegraph input).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

from tests.conftest import RunningService, Services, Stack

Call = Callable[[], Awaitable[object]]
_KEEP: list[object] = []
Load = tuple[dict[str, list[int]], Call]  # each service of the load: its replicas' pids


def _pids(svc: RunningService) -> list[int]:
    return [p.pid for p in svc.procs]


async def _tat(services: Services, env: dict[str, str]) -> Load:
    from ecom.serviceability.v1 import serviceability_pb2 as pb
    from ecom.serviceability.v1 import serviceability_pb2_grpc

    svc = services.start("tat", **env)
    stub = serviceability_pb2_grpc.ServiceabilityServiceStub(grpc.aio.insecure_channel(svc.target))
    pins = iter(["560100", "110020", "400072", "682030"] * 10**7)

    async def call() -> object:
        return await stub.CheckServiceability(
            pb.CheckServiceabilityRequest(item_id="item-1", pincode=next(pins)))

    return {"tat": _pids(svc)}, call


async def _catalog(services: Services, env: dict[str, str]) -> Load:
    from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc

    from tests.integration.orders_support import ADMIN

    svc = services.start("catalog", **env)
    stub = catalog_pb2_grpc.CatalogServiceStub(grpc.aio.insecure_channel(svc.target))
    from tests.integration.catalog_support import phone

    created = await stub.CreateItem(catalog_pb2.CreateItemRequest(
        item=phone(), request_id=str(uuid.uuid4())), metadata=ADMIN)

    async def call() -> object:
        return await stub.GetItem(catalog_pb2.GetItemRequest(item_id=created.item_id))

    return {"catalog": _pids(svc)}, call


async def _search(services: Services, env: dict[str, str]) -> Load:
    from ecom.search.v1 import search_pb2, search_pb2_grpc

    tat = services.start("tat", **env)
    svc = services.start("search", **env)
    stub = search_pb2_grpc.SearchServiceStub(grpc.aio.insecure_channel(svc.target))
    queries = iter([{"query": "phone"}, {"query": "kettle", "pincode": "560001"},
                    {"category": "mobiles"}] * 10**7)

    async def call() -> object:
        return await stub.Search(search_pb2.SearchRequest(page_size=20, **next(queries)))

    return {"search": _pids(svc), "tat": _pids(tat)}, call


async def _orders(services: Services, env: dict[str, str]) -> Load:
    """CreateOrder of one unit of one hot item by ever new buyers (the
    checkout benchmark's load); ``env`` goes to orders and its peers."""
    from tests.integration.orders_support import Shop, start_shop

    running = start_shop(services, ECOM_ORDER_HOLD_SECONDS="600", **env)
    shop = Shop.connect(running)
    item = await shop.item(stock=10_000_000)

    async def call() -> object:
        return await shop.checkout(f"prof-{uuid.uuid4().hex[:12]}", item)

    return {name: _pids(svc) for name, svc in running.items()}, call


async def _inventory(services: Services, env: dict[str, str]) -> Load:
    """ReserveStock of one unit of one hot item (the reservation benchmark's
    load), routes from an in-process serviceability fake."""
    from ecom.inventory.v1 import inventory_pb2 as pb
    from ecom.inventory.v1 import inventory_pb2_grpc
    from ecom.serviceability.v1 import serviceability_pb2_grpc

    from tests.integration.test_inventory_service import ADMIN, ORDERS, FakeServiceability

    tat = grpc.aio.server()
    serviceability_pb2_grpc.add_ServiceabilityServiceServicer_to_server(FakeServiceability(), tat)
    port = tat.add_insecure_port("127.0.0.1:0")
    await tat.start()
    _KEEP.append(tat)  # a server nobody references is collected, and stops
    svc = services.start("inventory", ECOM_TAT_ADDR=f"127.0.0.1:{port}", **env)
    stub = inventory_pb2_grpc.InventoryServiceStub(grpc.aio.insecure_channel(svc.target))
    item = f"hot-{uuid.uuid4().hex[:8]}"
    await stub.SetStock(pb.SetStockRequest(item_id=item, warehouse_id="blr-1",
                                           available=10_000_000, request_id=item), metadata=ADMIN)

    async def call() -> object:
        return await stub.ReserveStock(pb.ReserveStockRequest(
            order_id=uuid.uuid4().hex, pincode="560001",
            lines=[pb.ReservationLine(item_id=item, quantity=1)]), metadata=ORDERS)

    return {"inventory": _pids(svc)}, call


LOADS = {"tat": _tat, "catalog": _catalog, "search": _search, "orders": _orders,
         "inventory": _inventory}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far:
    the cost per call stays readable on a machine busy with other work,
    where throughput and latency do not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def top(raw: Path, n_self: int = 25, n_incl: int = 35) -> str:
    """Own and inclusive share of py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [f"{total} samples", "-- own time"]
    out += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(n_self)]
    out += ["-- inclusive"]
    out += [f"{100 * n / total:5.1f}%  {f}" for f, n in incl.most_common(n_incl)]
    return "\n".join(out)


async def profile(name: str, seconds: float, clients: int, out: Path | None,
                  env: dict[str, str], record: bool = True, process: str = "") -> None:
    stack = Stack()
    stack.ensure(["mariadb", "redis", "kafka", "ferretdb", "elasticsearch"])
    services = Services(stack)
    try:
        pids, call = await LOADS[name](services, env)
        pid = pids[process or name][0]  # py-spy records the first replica
        for _ in range(50):
            await call()
        raw = out or Path(tempfile.mkstemp(suffix=".txt")[1])
        spy = None
        if record:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid),
                 "-d", str(int(seconds)), "-r", "250", "-f", "raw", "-o", str(raw),
                 "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu_before = {p: sum(map(cpu_seconds, i)) for p, i in pids.items()}
        done = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await call()
                done += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
        cpu = {p: sum(map(cpu_seconds, i)) - cpu_before[p] for p, i in pids.items()}
        print(f"{name}: {done / seconds:,.0f} calls/s with {clients} clients "
              f"({' '.join(f'{k}={v}' for k, v in env.items()) or 'defaults'}); "
              "CPU per call: " + ", ".join(
                  f"{p} {c * 1e6 / max(done, 1):,.0f} us" for p, c in cpu.items()))
        if spy is not None:
            spy.wait(30)
            print(top(raw))
    finally:
        services.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service", choices=sorted(LOADS))
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment of the service (e.g. ECOM_EVENT_LOOP=asyncio)")
    parser.add_argument("--no-profile", action="store_true", help="measure calls/s only")
    parser.add_argument("--process", default="",
                        help="record this process of the load instead (e.g. inventory)")
    args = parser.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    asyncio.run(profile(args.service, args.seconds, args.clients, args.out, env,
                        not args.no_profile, args.process))


if __name__ == "__main__":
    main()
