"""Benchmark: a supplier feed of 100,000 rows (ECOM_BENCH_FEED_ROWS) posted
through Envoy to `POST /v1/suppliers/{id}/feeds`, validated, sent through
Kafka and applied by svc_catalog until GetFeed says COMPLETED. Prints the
submit time, the apply time and rows per second, next to a baseline measured
in the same run: the same documents bulk-inserted straight into the
MongoDB-wire server (`insert_many`, 1,000 per call), which is the floor for
any way of applying them. Then a second feed of the same skus with new
prices (every row an update), and reads on the grown catalog: GetItem and
BatchGetItems of 20 and 500 ids. Asserts only that every row was applied.

    ECOM_BENCH=1 ECOM_TEST_SERVERS=kafka,ferretdb \\
        .venv/bin/python -m pytest -p no:cacheprovider tests/perf/bench_feed.py -s
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid

import grpc
import httpx
import pytest
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from edge import registry
from mesh import tokens
from mesh.auth import Caller, encode_jwt_payload
from svc_catalog import domain
from svc_catalog.store import connect
from tests.e2e.conftest import start_edge
from tests.perf import stats

pytestmark = pytest.mark.integration
ROWS = int(os.environ.get("ECOM_BENCH_FEED_ROWS", "100000"))
ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("bench-admin", frozenset({"admin"})))),)


def _rows(n: int, supplier: str) -> list[dict[str, object]]:
    r = random.Random(7)
    brands = ["Acme", "Zenfone", "Nimbus", "Orbit", "Kite"]
    return [{
        "sku": f"SKU-{i:06d}", "title": f"{r.choice(brands)} Phone {i} {r.choice(['4G', '5G'])}",
        "description": "A phone from the benchmark feed with a long enough description "
                       "to look like a real listing.",
        "category": "mobiles", "brand": r.choice(brands),
        "price": {"currencyCode": "INR", "units": str(r.randint(5_000, 90_000))},
        "attributes": {"ram_gb": r.choice([4, 6, 8, 12]), "storage_gb": r.choice([64, 128, 256]),
                       "screen_inches": r.choice([6.1, 6.5, 6.7])},
        "supplier": supplier,
    } for i in range(n)]


def _content(rows: list[dict[str, object]]) -> str:
    return "\n".join(json.dumps({k: v for k, v in row.items() if k != "supplier"})
                     for row in rows)


def _run_feed(edge_url: str, admin: str, stub: catalog_pb2_grpc.CatalogServiceStub,
              supplier: str, content: str) -> tuple[float, float]:
    """POST a feed through the edge and wait until it is applied; returns
    (seconds to answer the POST, seconds until COMPLETED)."""
    with httpx.Client(base_url=edge_url, timeout=600) as http:
        t0 = time.perf_counter()
        resp = http.post(f"/v1/suppliers/{supplier}/feeds",
                         headers={"Authorization": f"Bearer {admin}"},
                         json={"format": "FEED_FORMAT_JSONL", "content": content,
                               "requestId": str(uuid.uuid4())})
        submit_s = time.perf_counter() - t0
        assert resp.status_code == 200, resp.text[:500]
        feed_id = resp.json()["feedId"]
    last_print = 0.0
    while True:
        feed = stub.GetFeed(catalog_pb2.GetFeedRequest(supplier_id=supplier, feed_id=feed_id),
                            metadata=ADMIN, timeout=30)
        elapsed = time.perf_counter() - t0
        if feed.state != catalog_pb2.FEED_STATE_PROCESSING:
            break
        if elapsed - last_print > 30:
            print(f"  {elapsed:6.0f} s: {feed.applied_rows} applied")
            last_print = elapsed
        time.sleep(1)
    assert feed.state == catalog_pb2.FEED_STATE_COMPLETED
    assert (feed.applied_rows, feed.failed_rows) == (int(feed.valid_rows), 0)
    return submit_s, time.perf_counter() - t0


@pytest.mark.timeout(1800)  # two full-size feeds take minutes, not the suite's 300 s
def test_feed_of_100k_rows_through_the_edge(services, stack) -> None:  # type: ignore[no-untyped-def]
    catalog = services.start("catalog")
    edge = start_edge("bench-feed", {"catalog": catalog.addr},
                      [registry.process_named("catalog")], rate_limit_per_minute=1_000_000)
    key = tokens.load_or_create_signing_key(tokens.signing_key_path())
    admin = tokens.issue_token(key, user_id="bench-admin", roles=["admin"])[0]
    supplier = f"bench-{uuid.uuid4().hex[:8]}"
    rows = _rows(ROWS, supplier)
    content = _content(rows)
    repriced = [{**row, "price": {"currencyCode": "INR", "units": str(1_000 + i)}}
                for i, row in enumerate(rows)]
    with grpc.insecure_channel(catalog.target) as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        try:
            submit_s, total_s = _run_feed(edge.url, admin, stub, supplier, content)
            update_submit_s, update_total_s = _run_feed(edge.url, admin, stub, supplier,
                                                        _content(repriced))
        finally:
            edge.stop()
        ids = [domain.supplier_item_id(supplier, str(row["sku"])) for row in rows]
        last = stub.GetItem(catalog_pb2.GetItemRequest(item_id=ids[-1]), timeout=30)
        assert (last.price.units, last.version) == (1_000 + ROWS - 1, 2)

        r = random.Random(3)
        reads: dict[str, list[float]] = {"GetItem": [], "BatchGet 20": [], "BatchGet 500": []}
        for name, n, calls in (("GetItem", 1, 300), ("BatchGet 20", 20, 100),
                               ("BatchGet 500", 500, 20)):
            for _ in range(calls):
                pick = r.sample(ids, n)
                t = time.perf_counter()
                if n == 1:
                    stub.GetItem(catalog_pb2.GetItemRequest(item_id=pick[0]), timeout=30)
                else:
                    got = stub.BatchGetItems(catalog_pb2.BatchGetItemsRequest(item_ids=pick),
                                             timeout=30)
                    assert len(got.items) == n
                reads[name].append((time.perf_counter() - t) * 1000)

    baseline_s = asyncio.run(_bulk_insert_baseline(stack, rows))
    apply_s = total_s - submit_s
    print(f"\nsupplier feed of {ROWS:,} rows ({len(content) / 1e6:.1f} MB of JSON lines):")
    print(f"  POST through Envoy (validated, stored): {submit_s:7.1f} s")
    print(f"  then until COMPLETED (Kafka, applied):  {apply_s:7.1f} s")
    print(f"  end to end: {total_s:7.1f} s = {ROWS / total_s:,.0f} rows/s")
    print(f"  baseline, insert_many straight into FerretDB: {baseline_s:7.1f} s "
          f"= {ROWS / baseline_s:,.0f} rows/s")
    print(f"  ratio feed / baseline (end to end): {total_s / baseline_s:.2f}x")
    from tests.perf import report

    report.record("supplier feed end to end vs insert_many into FerretDB", ROWS / total_s,
                  ROWS / baseline_s, unit="rows/s", better="higher")
    print(f"the same {ROWS:,} skus again with new prices (every row an update):")
    print(f"  POST {update_submit_s:7.1f} s; end to end {update_total_s:7.1f} s = "
          f"{ROWS / update_total_s:,.0f} rows/s")
    print(f"reads on the catalog after the feed ({ROWS:,}+ items):")
    for name, samples in reads.items():
        print(f"  {name:13s} {stats.line(samples)}")


async def _bulk_insert_baseline(stack, rows: list[dict[str, object]]) -> float:  # type: ignore[no-untyped-def]
    client = connect(stack.env["ECOM_MONGO_URL"])
    name = f"{stack.mongo_db}_feed_baseline"
    coll = client[name]["items"]
    await coll.create_index("sku_key", unique=True)
    try:
        t0 = time.perf_counter()
        for start in range(0, len(rows), 1000):
            await coll.insert_many([{**row, "_id": uuid.uuid4().hex,
                                     "sku_key": f"{row['supplier']}/{row['sku']}", "version": 1}
                                    for row in rows[start:start + 1000]])
        return time.perf_counter() - t0
    finally:
        await client.drop_database(name)
        await client.close()
