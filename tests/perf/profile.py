"""Profile one service's hot path with py-spy under a benchmark-like load.

Starts the service (and the peers it needs) as processes isolated like a
test run, drives ``--clients`` concurrent callers of one RPC for
``--seconds``, records the service process with ``py-spy record`` (PyPI,
in the dev extra) meanwhile, and prints the top frames by own and
inclusive time, plus the calls per second the load reached.

    .venv/bin/python -m tests.perf.profile tat      # CheckServiceability
    .venv/bin/python -m tests.perf.profile catalog  # GetItem
    .venv/bin/python -m tests.perf.profile search   # Search (facets, page 20)

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

from tests.conftest import Services, Stack

Call = Callable[[], Awaitable[object]]


async def _tat(services: Services, env: dict[str, str]) -> tuple[int, Call]:
    from ecom.serviceability.v1 import serviceability_pb2 as pb
    from ecom.serviceability.v1 import serviceability_pb2_grpc

    svc = services.start("tat", **env)
    stub = serviceability_pb2_grpc.ServiceabilityServiceStub(grpc.aio.insecure_channel(svc.target))
    pins = iter(["560100", "110020", "400072", "682030"] * 10**7)

    async def call() -> object:
        return await stub.CheckServiceability(
            pb.CheckServiceabilityRequest(item_id="item-1", pincode=next(pins)))

    return svc.proc.pid, call


async def _catalog(services: Services, env: dict[str, str]) -> tuple[int, Call]:
    from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc

    from tests.integration.orders_support import ADMIN

    svc = services.start("catalog", **env)
    stub = catalog_pb2_grpc.CatalogServiceStub(grpc.aio.insecure_channel(svc.target))
    from tests.integration.catalog_support import phone

    created = await stub.CreateItem(catalog_pb2.CreateItemRequest(
        item=phone(), request_id=str(uuid.uuid4())), metadata=ADMIN)

    async def call() -> object:
        return await stub.GetItem(catalog_pb2.GetItemRequest(item_id=created.item_id))

    return svc.proc.pid, call


async def _search(services: Services, env: dict[str, str]) -> tuple[int, Call]:
    from ecom.search.v1 import search_pb2, search_pb2_grpc

    services.start("tat", **env)
    svc = services.start("search", **env)
    stub = search_pb2_grpc.SearchServiceStub(grpc.aio.insecure_channel(svc.target))
    queries = iter([{"query": "phone"}, {"query": "kettle", "pincode": "560001"},
                    {"category": "mobiles"}] * 10**7)

    async def call() -> object:
        return await stub.Search(search_pb2.SearchRequest(page_size=20, **next(queries)))

    return svc.proc.pid, call


LOADS = {"tat": _tat, "catalog": _catalog, "search": _search}


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
                  env: dict[str, str], record: bool = True) -> None:
    stack = Stack()
    stack.ensure(["mariadb", "redis", "kafka", "ferretdb", "elasticsearch"])
    services = Services(stack)
    try:
        pid, call = await LOADS[name](services, env)
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
        cpu_before = cpu_seconds(pid)
        done = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await call()
                done += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
        cpu = cpu_seconds(pid) - cpu_before
        print(f"{name}: {done / seconds:,.0f} calls/s with {clients} clients "
              f"({' '.join(f'{k}={v}' for k, v in env.items()) or 'defaults'}); "
              f"the service used {cpu * 1e6 / max(done, 1):,.0f} us of CPU per call")
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
    args = parser.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    asyncio.run(profile(args.service, args.seconds, args.clients, args.out, env,
                        not args.no_profile))


if __name__ == "__main__":
    main()
