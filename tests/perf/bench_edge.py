"""Benchmark: GET an item through Envoy (REST, transcoded) next to GetItem
straight to svc_catalog over gRPC, in one run. Prints p50/p99 and the ratio;
asserts nothing about time.

    ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb \\
        .venv/bin/python -m pytest -p no:cacheprovider tests/perf/bench_edge.py -s

ECOM_BENCH_REQUESTS sets the number of calls per side (default 1000).
"""

from __future__ import annotations

import os
import time
import uuid

import grpc
import httpx
import pytest
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from edge import registry
from mesh import tokens
from tests.e2e.conftest import start_edge
from tests.perf import stats

pytestmark = pytest.mark.integration
REQUESTS = int(os.environ.get("ECOM_BENCH_REQUESTS", "1000"))
WARMUP = 50


def test_get_item_through_envoy_vs_grpc(services) -> None:  # type: ignore[no-untyped-def]
    if not registry.process_named("catalog").present():
        pytest.skip("svc_catalog is not implemented yet")
    catalog = services.start("catalog")
    edge = start_edge("bench", {"catalog": catalog.addr}, [registry.process_named("catalog")],
                      rate_limit_per_minute=1_000_000)
    key = tokens.load_or_create_signing_key(tokens.signing_key_path())
    admin = tokens.issue_token(key, user_id="bench-admin", roles=["admin"])[0]
    try:
        with httpx.Client(base_url=edge.url, timeout=10) as http:
            created = http.post("/v1/items", headers={"Authorization": f"Bearer {admin}"}, json={
                "item": {"supplierId": "bench", "sku": uuid.uuid4().hex, "title": "Bench kettle",
                         "category": "kitchen-appliances",
                         "attributes": {"type": "kettle", "power_watts": 1500},
                         "price": {"currencyCode": "INR", "units": "999"}},
                "requestId": str(uuid.uuid4())})
            assert created.status_code == 200, created.text
            item_id = created.json()["itemId"]

            def via_edge() -> None:
                resp = http.get(f"/v1/items/{item_id}")
                assert resp.status_code == 200

            with grpc.insecure_channel(catalog.target) as channel:
                stub = catalog_pb2_grpc.CatalogServiceStub(channel)

                def via_grpc() -> None:
                    stub.GetItem(catalog_pb2.GetItemRequest(item_id=item_id), timeout=5)

                results = {}
                for name, call in (("envoy REST", via_edge), ("direct gRPC", via_grpc)):
                    for _ in range(WARMUP):
                        call()
                    samples = []
                    for _ in range(REQUESTS):
                        t0 = time.perf_counter()
                        call()
                        samples.append((time.perf_counter() - t0) * 1000)
                    results[name] = stats.p50_p99(samples)
    finally:
        edge.stop()
    print(f"\nGetItem, {REQUESTS} sequential calls each (one client, keep-alive):")
    for name, (p50, p99) in results.items():
        print(f"  {name:<12} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    (e50, e99), (g50, g99) = results["envoy REST"], results["direct gRPC"]
    print(f"  ratio envoy/gRPC: p50 {e50 / g50:.2f}x   p99 {e99 / g99:.2f}x")
