"""svc_tat benchmarks (print figures; no assertions on time; not run by
`make test`).

    ECOM_TEST_SERVERS=redis,kafka .venv/bin/python -m pytest tests/perf/bench_tat.py -s -q

1. Full precompute of all pincodes x all warehouses: dataset load, numpy
   computation, Redis write + pointer flip; and the same computation in
   Spark (local[2]) for comparison (ECOM_BENCH_SPARK=0 skips it).
2. BatchCheckServiceability of 50 items, p50/p99 at 8 concurrent clients.
3. Single CheckServiceability p99 next to a raw Redis HGET of the same row,
   an in-process (LRU-hit) lookup, and the floor of any call to the
   service: the standard gRPC health Check on the same server and channel,
   which does no work at all. Check over that floor is what the
   serviceability path adds to a Python gRPC round trip.

Inventory is not started, so checks take the "stock not considered" path
(svc_tat skips inventory during its back-off): the figures are the
serviceability path itself.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from ecom.serviceability.v1 import serviceability_pb2 as pb
from ecom.serviceability.v1 import serviceability_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pipelines import serviceability as job
from svc_tat.store import MatrixStore
from svc_tat.warehouses import load_warehouses
from tests.perf import report
from tests.perf.stats import percentile as pct

PINCODES = ["560100", "110020", "400072", "682030", "781026", "194101", "700091", "302022"]


def show(label: str, samples_ms: list[float]) -> None:
    print(f"{label:<42} n={len(samples_ms):<6} p50={pct(samples_ms, 50):7.3f} ms  "
          f"p99={pct(samples_ms, 99):7.3f} ms  mean={statistics.fmean(samples_ms):7.3f} ms")


def test_precompute_numpy_vs_spark(stack: Any) -> None:
    warehouses = load_warehouses()
    client = redis.Redis.from_url(stack.env.get("ECOM_REDIS_URL", "redis://127.0.0.1:16379/0"))
    prefix = f"bench:{stack.run_id}:"
    t0 = time.perf_counter()
    table = job.load_pincodes()
    load_s = time.perf_counter() - t0
    runs = []
    for _ in range(5):
        t = time.perf_counter()
        matrix = job.transit_matrix(table, warehouses)
        runs.append(time.perf_counter() - t)
    report = job.build(client, lambda k: prefix + k, warehouses, table=table)
    print(f"\npincodes={len(table)} warehouses={len(warehouses)} "
          f"pairs={len(table) * len(warehouses)} served={report.served_pairs}")
    print(f"dataset load + clean          {load_s * 1000:9.1f} ms")
    print(f"numpy matrix (best of 5)      {min(runs) * 1000:9.1f} ms")
    print(f"redis write + flip            {report.write_seconds * 1000:9.1f} ms "
          f"(version {report.version})")
    print(f"full precompute (load+numpy+write) "
          f"{(load_s + min(runs) + report.write_seconds) * 1000:9.1f} ms")
    for key in client.scan_iter(match=prefix + "*"):
        client.unlink(key)

    if os.environ.get("ECOM_BENCH_SPARK", "1") == "0":
        return
    from pipelines.spark import build_session

    t = time.perf_counter()
    spark = build_session("bench-tat")
    start_s = time.perf_counter() - t
    try:
        job.transit_matrix_spark(spark, table, warehouses)  # warm-up (JIT, codegen)
        t = time.perf_counter()
        spark_matrix = job.transit_matrix_spark(spark, table, warehouses)
        spark_s = time.perf_counter() - t
    finally:
        spark.stop()
    same = bool((spark_matrix == matrix).all())
    print(f"spark session start           {start_s * 1000:9.1f} ms")
    print(f"spark matrix (warm)           {spark_s * 1000:9.1f} ms  same result: {same}")
    print(f"numpy is {spark_s / min(runs):.0f}x faster than Spark local[2] on this job")


@pytest.fixture(scope="module")
async def channel(services: Any) -> Any:
    svc = services.start("tat")
    async with svc.channel() as channel:
        yield channel


async def test_batch_check_50_items_8_clients(channel: Any) -> None:
    tat = serviceability_pb2_grpc.ServiceabilityServiceStub(channel)
    items = [f"item-{i}" for i in range(50)]
    per_client = 150
    await tat.BatchCheckServiceability(pb.BatchCheckServiceabilityRequest(
        item_ids=items, pincode=PINCODES[0]))

    async def client(n: int) -> list[float]:
        out = []
        for i in range(per_client):
            req = pb.BatchCheckServiceabilityRequest(
                item_ids=items, pincode=PINCODES[(n + i) % len(PINCODES)])
            t = time.perf_counter()
            await tat.BatchCheckServiceability(req)
            out.append((time.perf_counter() - t) * 1000)
        return out

    t = time.perf_counter()
    results = await asyncio.gather(*(client(n) for n in range(8)))
    wall = time.perf_counter() - t
    samples = [s for r in results for s in r]
    print()
    show("BatchCheck 50 items, 8 clients", samples)
    print(f"throughput {len(samples) / wall:.0f} calls/s = {50 * len(samples) / wall:.0f} items/s")
    report.record("BatchCheck 50 items, 8 clients, throughput", len(samples) / wall, None,
                  unit="calls/s", better="higher")


async def test_single_check_vs_raw_redis(channel: Any, services: Any) -> None:
    tat = serviceability_pb2_grpc.ServiceabilityServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    n = 2000
    req = pb.CheckServiceabilityRequest(item_id="item-1", pincode="560100")
    await tat.CheckServiceability(req)
    grpc_ms = []
    for i in range(n):
        req.pincode = PINCODES[i % len(PINCODES)]
        t = time.perf_counter()
        await tat.CheckServiceability(req)
        grpc_ms.append((time.perf_counter() - t) * 1000)

    floor_ms = []
    probe = health_pb2.HealthCheckRequest()
    await health.Check(probe)
    for _ in range(n):
        t = time.perf_counter()
        await health.Check(probe)
        floor_ms.append((time.perf_counter() - t) * 1000)

    env = services.env
    client = aioredis.Redis.from_url(env["ECOM_REDIS_URL"] if "ECOM_REDIS_URL" in env
                                     else "redis://127.0.0.1:16379/0")
    store = MatrixStore(client, lambda k: env["ECOM_REDIS_PREFIX"] + k)
    await store.refresh_version()
    redis_ms, lru_ms = [], []
    for i in range(n):
        pin = PINCODES[i % len(PINCODES)]
        t = time.perf_counter()
        await store.raw_get(pin)
        redis_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        await store.row(pin)
        lru_ms.append((time.perf_counter() - t) * 1000)
    await client.aclose()
    print()
    show("CheckServiceability (gRPC, end to end)", grpc_ms)
    show("raw Redis HGET of the row", redis_ms)
    show("in-process lookup (LRU hit)", lru_ms)
    show("gRPC floor: health Check, same server", floor_ms)
    report.record("serviceability Check p99 vs raw Redis HGET", pct(grpc_ms, 99),
                  pct(redis_ms, 99), unit="ms", better="lower")
    report.record("serviceability Check p50 vs raw Redis HGET", pct(grpc_ms, 50),
                  pct(redis_ms, 50), unit="ms", better="lower")
    report.record("serviceability Check p99 vs an empty gRPC call (health Check)",
                  pct(grpc_ms, 99), pct(floor_ms, 99), unit="ms", better="lower")
    report.record("serviceability Check p50 vs an empty gRPC call (health Check)",
                  pct(grpc_ms, 50), pct(floor_ms, 50), unit="ms", better="lower")
    print(f"p99 ratio Check / raw Redis GET = {pct(grpc_ms, 99) / pct(redis_ms, 99):.1f}x; "
          f"Check / in-process = {pct(grpc_ms, 99) / pct(lru_ms, 99):.0f}x")
