"""Every service's Prometheus endpoint answers and counts the calls made to it.

For each implemented service: start it, read its ``/metrics``, make one
call to one of its own RPCs (a read where there is one, with an empty
request and no caller, so it is refused or answered without side effects),
read ``/metrics`` again and check that exactly that call was counted: by
method and status code, as an error by code when it was one, and in the
latency histogram. Services with MariaDB also export their pool use; those
with an outbox its lag; a Kafka consumer its lag per partition.
"""

from __future__ import annotations

import time

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge import descriptors, registry

pytestmark = pytest.mark.integration

PRESENT = [p for p in registry.PROCESSES if p.present()]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of one scrape."""
    resp = httpx.get(url, timeout=5)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(resp.text)
        for s in fam.samples
    }


def scrape_all(urls: list[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape of every replica, each sample summed across them."""
    total: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for url in urls:
        for key, v in scrape(url).items():
            total[key] = total.get(key, 0.0) + v
    return total


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def one_unary_rpc(process: registry.ServiceProcess) -> str:
    """The gRPC path of one unary RPC of ``process`` (a read if it has one)."""
    contracts = descriptors.load()
    candidates = []
    for service in (*process.public_services, *process.internal_services):
        methods = {m.name: m for m in contracts.services[service].method}
        for rpc in contracts.rpcs(service):
            m = methods[rpc.name]
            if not (m.client_streaming or m.server_streaming):
                candidates.append(rpc)
    assert candidates, f"{process.name} has no unary RPC"
    reads = [r for r in candidates if r.is_read]
    return (reads or candidates)[0].grpc_path


@pytest.mark.parametrize("process", PRESENT, ids=[p.name for p in PRESENT])
def test_metrics_endpoint_counts_a_call(services, process: registry.ServiceProcess) -> None:
    svc = services.start(process.name)
    urls = services.metrics_urls(process.name)
    method = one_unary_rpc(process)
    before = scrape_all(urls)

    with grpc.insecure_channel(svc.target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            call(b"", timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()

    after = scrape_all(urls)
    assert value(after, "ecom_rpc_requests_total", method=method, code=code.name) == (
        value(before, "ecom_rpc_requests_total", method=method, code=code.name) + 1
    )
    assert value(after, "ecom_rpc_duration_seconds_count", method=method) == (
        value(before, "ecom_rpc_duration_seconds_count", method=method) + 1
    )
    errors_after = value(after, "ecom_rpc_errors_total", method=method, code=code.name)
    errors_before = value(before, "ecom_rpc_errors_total", method=method, code=code.name)
    assert errors_after == errors_before + (0 if code == grpc.StatusCode.OK else 1)
    # Every call of the histogram is under its largest finite bucket or +Inf.
    assert value(after, "ecom_rpc_duration_seconds_bucket", method=method, le="+Inf") == (
        value(after, "ecom_rpc_duration_seconds_count", method=method)
    )


def test_outbox_pool_and_consumer_metrics(services) -> None:
    """svc_orders has an engine, an outbox relay and a Kafka consumer."""
    for name in ("catalog", "tat", "inventory", "payments", "orders"):
        services.start(name)
    # The replicas share the consumer group's partitions: read them all.
    urls = services.metrics_urls("orders")
    deadline = time.monotonic() + 60
    while True:
        samples = scrape_all(urls)
        names = {name for name, _ in samples}
        pools = {dict(labels).get("pool") for name, labels in samples
                 if name == "ecom_db_pool_connections"}
        lags = [dict(labels) for name, labels in samples if name == "ecom_consumer_lag"]
        ready = ("ecom_outbox_lag_seconds" in names and "ecom_outbox_pending" in names
                 and any(p and p.endswith("orders") for p in pools) and lags)
        if ready or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "ecom_outbox_lag_seconds" in names, sorted(names)
    assert any(p and p.endswith("orders") for p in pools), pools
    assert lags, "no consumer lag exported within 60 s"
    assert all(lag["topic"].endswith("payments.events") for lag in lags), lags
    sizes = [v for (name, labels), v in samples.items()
             if name == "ecom_db_pool_connections" and dict(labels)["state"] == "size"]
    assert all(v >= 1 for v in sizes), sizes
