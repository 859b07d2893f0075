"""Benchmark: GET an item through Envoy (REST, transcoded) next to GetItem
straight to svc_catalog over gRPC, in one run, with two REST clients: httpx
(what most Python callers use) and the standard library's http.client on
one keep-alive connection, whose own cost per request is closest to the
gRPC client's C core, so its ratio is what the edge adds, first with tracing off (no
ECOM_OTLP_ENDPOINT, the default) and then with tracing on (svc_catalog and
Envoy exporting every span to a real OTLP receiver in this process). Prints
p50/p99 and the ratios of both; asserts nothing about time.

    ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb \\
        .venv/bin/python -m pytest -p no:cacheprovider tests/perf/bench_edge.py -s

ECOM_BENCH_REQUESTS sets the number of calls per side (default 1000).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from http.client import HTTPConnection

import grpc
import httpx
import pytest
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from edge import registry
from mesh import tokens
from tests.e2e.conftest import start_edge
from tests.otlp_receiver import OtlpReceiver
from tests.perf import report, stats

pytestmark = pytest.mark.integration
REQUESTS = int(os.environ.get("ECOM_BENCH_REQUESTS", "1000"))
WARMUP = 50


def _measure(call: Callable[[], None]) -> tuple[float, float]:
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return stats.p50_p99(samples)


def _round(services, item_id: str | None, otlp: str) -> tuple[str, dict[str, tuple[float, float]]]:  # type: ignore[no-untyped-def]
    """Start catalog (+ Envoy) with or without tracing; measure both paths."""
    env = {"ECOM_OTLP_ENDPOINT": otlp} if otlp else {}
    catalog = services.start("catalog", **env)
    edge = start_edge("bench" + ("-traced" if otlp else ""), {"catalog": catalog.addr},
                      [registry.process_named("catalog")], rate_limit_per_minute=1_000_000,
                      otlp_endpoint=otlp)
    key = tokens.load_or_create_signing_key(tokens.signing_key_path())
    admin = tokens.issue_token(key, user_id="bench-admin", roles=["admin"])[0]
    try:
        with httpx.Client(base_url=edge.url, timeout=10) as http:
            if item_id is None:
                created = http.post("/v1/items", headers={"Authorization": f"Bearer {admin}"},
                                    json={"item": {
                    "supplierId": "bench", "sku": uuid.uuid4().hex, "title": "Bench kettle",
                    "category": "kitchen-appliances",
                    "attributes": {"type": "kettle", "power_watts": 1500},
                    "price": {"currencyCode": "INR", "units": "999"}},
                    "requestId": str(uuid.uuid4())})
                assert created.status_code == 200, created.text
                item_id = created.json()["itemId"]

            def via_edge() -> None:
                resp = http.get(f"/v1/items/{item_id}")
                assert resp.status_code == 200

            host, port = edge.url.removeprefix("http://").split(":")
            plain = HTTPConnection(host, int(port), timeout=10)

            def via_edge_plain() -> None:
                plain.request("GET", f"/v1/items/{item_id}")
                resp = plain.getresponse()
                resp.read()
                assert resp.status == 200

            def edge_itself() -> None:  # Envoy answers it: the client + Envoy floor
                plain.request("GET", registry.HEALTH_PATH)
                resp = plain.getresponse()
                resp.read()
                assert resp.status == 200

            with grpc.insecure_channel(catalog.target) as channel:
                stub = catalog_pb2_grpc.CatalogServiceStub(channel)

                def via_grpc() -> None:
                    stub.GetItem(catalog_pb2.GetItemRequest(item_id=item_id), timeout=5)

                results = {"envoy REST": _measure(via_edge),
                           "envoy plain": _measure(via_edge_plain),
                           "envoy health": _measure(edge_itself),
                           "direct gRPC": _measure(via_grpc)}
            plain.close()
    finally:
        edge.stop()
    return item_id, results


def test_get_item_through_envoy_vs_grpc(services) -> None:  # type: ignore[no-untyped-def]
    if not registry.process_named("catalog").present():
        pytest.skip("svc_catalog is not implemented yet")
    item_id, off = _round(services, None, "")
    receiver = OtlpReceiver().start()
    try:
        _, on = _round(services, item_id, receiver.endpoint)
        # Let the batch exporters flush, to show the spans were real.
        spans = receiver.wait_for(lambda s: len(s) >= 2 * REQUESTS, timeout=15)
    finally:
        receiver.stop()
        services.running["catalog"].stop()  # later benches get an untraced catalog
    for label, results in (("tracing off", off), ("tracing on", on)):
        print(f"\nGetItem, {REQUESTS} sequential calls each (one client, keep-alive), {label}:")
        for name, (p50, p99) in results.items():
            print(f"  {name:<12} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        (e50, e99), (g50, g99) = results["envoy REST"], results["direct gRPC"]
        (h50, h99) = results["envoy plain"]
        print(f"  ratio envoy/gRPC, httpx:       p50 {e50 / g50:.2f}x   p99 {e99 / g99:.2f}x")
        print(f"  ratio envoy/gRPC, http.client: p50 {h50 / g50:.2f}x   p99 {h99 / g99:.2f}x")
    print(f"  (tracing on: the receiver got {len(spans)} spans)")
    print("  envoy health: GET /healthz answered by Envoy's first filter, no upstream:")
    print("  the floor of the client and Envoy's HTTP/1.1 side")
    for client, key in (("httpx", "envoy REST"), ("http.client", "envoy plain")):
        report.record(f"GetItem p50 through Envoy ({client}) vs direct gRPC", off[key][0],
                      off["direct gRPC"][0], unit="ms", better="lower")
        report.record(f"GetItem p99 through Envoy ({client}) vs direct gRPC", off[key][1],
                      off["direct gRPC"][1], unit="ms", better="lower")
    report.record("Envoy's own /healthz p50 (http.client) vs direct gRPC GetItem",
                  off["envoy health"][0], off["direct gRPC"][0], unit="ms", better="lower")
    report.record("GetItem p50 through Envoy, tracing on vs off", on["envoy REST"][0],
                  off["envoy REST"][0], unit="ms", better="lower")
    report.record("GetItem p50 direct gRPC, tracing on vs off", on["direct gRPC"][0],
                  off["direct gRPC"][0], unit="ms", better="lower")
