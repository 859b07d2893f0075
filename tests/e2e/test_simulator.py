"""The shopper simulator (sim/locustfile.py) run headless for a small bounded
run against a real Envoy in front of every real service, then its effects
checked through the REST API and Kafka, and through the analytics job into
the reports:

* every shopper it signed up exists, with the email it used;
* every order it says it placed is PLACED and paid, every declined one is
  CANCELLED for the decline, every cancelled one CANCELLED, and each
  shopper's order history holds exactly the orders made;
* the events of those orders, cart adds, wishlist adds and searches are on
  the run's Kafka topics;
* the Spark job turns them into reports an admin reads at
  ``/v1/reports/*``: the funnel counts exactly the searches, cart adds,
  checkouts and placements the shoppers made.

The catalog is a 240-item slice of the demo catalog (every category) loaded
into this run's database, its stock set as an admin over HTTP.

Needs every server the services use and Cassandra for the reports:
ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,elasticsearch,cassandra.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge import registry
from infra.core import REPO, STACK, tail
from mesh import tokens
from sim import shopper
from tests.e2e.conftest import Edge
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

NEEDED = ("users", "catalog", "tat", "inventory", "cart", "payments", "orders", "search",
          "analytics")
ITEMS = 240  # 20 per demo category
SHOPPERS = 6


def until(what: str, fetch: Callable[[], Any], pred: Callable[[Any], bool],
          timeout: float = 60, interval: float = 0.5) -> Any:
    """``fetch`` until ``pred`` holds of its answer (tests.waiting), naming
    the last answer when it never does."""
    last: list[Any] = [None]

    def probe() -> tuple[Any] | None:
        last[0] = fetch()
        return (last[0],) if pred(last[0]) else None

    try:
        return wait_until(probe, what, timeout=timeout, interval=interval)[0]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {last[0]}") from None


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: " \
                                    f"{resp.status_code} {resp.text}"
    return resp.json()


@pytest.fixture(scope="module")
def edge(services, edge_factory) -> Edge:  # type: ignore[no-untyped-def]
    for name in NEEDED:
        services.start(name)
    return edge_factory("sim", {n: services.addr(n) for n in NEEDED},
                        [registry.process_named(n) for n in NEEDED])


@pytest.fixture(scope="module")
def admin(signing_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    token = tokens.issue_token(signing_key, user_id="sim-test-admin", roles=["admin"])[0]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def client(edge: Edge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def catalog(services, client: httpx.Client, admin: dict[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    """The demo slice in this run's catalog, stocked, searchable and deliverable."""
    from svc_catalog.demo import demo_item_ids, demo_stock

    subprocess.run([sys.executable, "-m", "svc_catalog.demo", "--count", str(ITEMS)],
                   cwd=REPO, env=services.env, check=True, capture_output=True, timeout=300)
    ids = demo_item_ids(ITEMS)
    rows = [{"itemId": item, "warehouseId": wh, "available": str(qty),
             "requestId": f"sim-test-{item}-{wh}"}
            for item in ids for wh, qty in demo_stock(item).items()]
    ok(client.post("/v1/inventory:batchSetStock", headers=admin, json={"requests": rows}))
    # Search follows the catalog and stock events: wait until every category
    # has deliverable hits for a shopper's pincode.
    def search(category: str) -> Callable[[], Any]:
        return lambda: ok(client.get("/v1/search",
                                     params={"category": category, "pincode": "560001"}))

    for category in shopper.CATEGORIES:
        until(f"deliverable {category} in search", search(category),
              lambda body: len(shopper.deliverable_hits(body)) >= 5, timeout=120)
    return ids


@pytest.fixture(scope="module")
def run(edge: Edge, catalog: list[str], tmp_path_factory: pytest.TempPathFactory,
        stack) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """`python -m sim` for SHOPPERS shoppers and a bounded time; its journal."""
    out = tmp_path_factory.mktemp("sim")
    journal = out / "journal.jsonl"
    log = STACK / "logs" / f"test-{stack.run_id}-sim.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ECOM_SIM_JOURNAL": str(journal), "ECOM_SIM_RUN": uuid.uuid4().hex[:8],
           "ECOM_SIM_SEED": "sim-test", "ECOM_SIM_THINK_SECONDS": "0.2,0.8",
           "ECOM_SIM_DECLINE_RATE": "0.3", "ECOM_SIM_CANCEL_RATE": "0.6",
           "PYTHONUNBUFFERED": "1"}
    # The shoppers start on a fresh minute: earlier modules of this run
    # publish cart adds and orders to the same topics, and the funnel's
    # one-minute windows from here on then hold only the shoppers' own.
    start = (int(time.time()) // 60 + 1) * 60
    time.sleep(max(0.0, start - time.time()))
    with open(log, "wb") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "sim", "--users", str(SHOPPERS), "--spawn-rate", "1",
             "--duration", "75s", "--host", edge.url, "--csv", str(out / "stats")],
            cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=400)
    output = log.read_text(errors="replace")
    assert proc.returncode in (0, 1), f"the simulator crashed ({proc.returncode}):\n" \
                                      f"{tail(log, 80)}"
    # Locust exits 1 when any request failed. On a saturated machine a
    # search may meet Elasticsearch's timeout (503) or a sign-up the edge's
    # deadline (504, Argon2 hashing); the shopper retries those, a write
    # with its key. Nothing else may fail, and those only rarely.
    failures = list(csv.DictReader((out / "stats_failures.csv").open()))
    total = next(r for r in csv.DictReader((out / "stats_stats.csv").open())
                 if r["Name"] == "Aggregated")
    transient = [f for f in failures
                 if f["Error"].removeprefix("CatchResponseError(").strip("'\"")[:4]
                 in ("503 ", "504 ")]
    assert transient == failures, f"failed requests:\n{tail(log, 80)}"
    assert sum(int(f["Occurrences"]) for f in failures) <= 0.05 * int(total["Request Count"])
    assert proc.returncode == (1 if failures else 0)
    lines = shopper.read_journal(journal)
    kinds = Counter(line["kind"] for line in lines)
    return {"lines": lines, "kinds": kinds, "output": output, "stats": out / "stats_stats.csv",
            "start": start}


def test_the_summary_names_every_endpoint_with_percentiles(run: dict[str, Any]) -> None:
    output = run["output"]
    for endpoint in ("/v1/users", "/v1/auth:login", "/v1/search", "/v1/items/{item_id}",
                     "/v1/users/{user_id}/cart/items", "/v1/orders",
                     "/v1/orders/{order_id}:pay"):
        assert f" {endpoint} " in output or f" {endpoint}\n" in output, endpoint
    assert "Response time percentiles" in output
    assert "shoppers: signed_up" in output
    header = run["stats"].read_text().splitlines()[0].split(",")
    assert {"Requests/s", "Failure Count", "50%", "95%", "99%"} <= set(header)


def test_shoppers_orders_and_payments_are_real(run: dict[str, Any], client: httpx.Client,
                                               admin: dict[str, str]) -> None:
    lines, kinds = run["lines"], run["kinds"]
    assert kinds["signed_up"] == SHOPPERS, kinds
    assert kinds["placed"] >= 1 and kinds["searched"] >= SHOPPERS, kinds

    for line in (x for x in lines if x["kind"] == "signed_up"):
        user = ok(client.get(f"/v1/users/{line['user_id']}", headers=admin))
        assert user["email"] == line["email"]
        assert set(line["favourites"]) <= set(shopper.CATEGORIES)

    cancelled = {x["order_id"] for x in lines if x["kind"] == "cancelled"}
    for line in lines:
        if line["kind"] not in ("placed", "declined"):
            continue
        order = ok(client.get(f"/v1/orders/{line['order_id']}", headers=admin))
        assert order["userId"] == line["user_id"]
        if line["kind"] == "declined":
            assert line["token"] == "tok_decline"
            assert order["state"] == "ORDER_STATE_CANCELLED"
            assert order["cancelReason"] == "CANCEL_REASON_PAYMENT_DECLINED"
        elif line["order_id"] in cancelled:
            assert order["state"] == "ORDER_STATE_CANCELLED", order
        else:
            assert line["token"] == "tok_success"
            assert order["state"] == "ORDER_STATE_PLACED", order
            assert order["payment"]["status"] == "PAYMENT_STATUS_SUCCEEDED", order

    # Each shopper's history is exactly the checkouts the simulator made.
    made: dict[str, set[str]] = {}
    for line in lines:
        if line["kind"] == "ordered":
            made.setdefault(line["user_id"], set()).add(line["order_id"])
    for user_id, orders in made.items():
        history = ok(client.get(f"/v1/users/{user_id}/orders", headers=admin,
                                params={"page_size": 100}))
        assert {o["orderId"] for o in history.get("orders", [])} == orders


def _kafka_events(stack, topics: list[str]) -> list[Any]:  # type: ignore[no-untyped-def]
    """Every envelope on this run's ``topics``, from the beginning."""
    from confluent_kafka import Consumer, TopicPartition
    from ecom.events.v1 import events_pb2

    consumer = Consumer({"bootstrap.servers": stack.env["ECOM_KAFKA_BOOTSTRAP"],
                         "group.id": f"{stack.topic_prefix}sim-check-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
    try:
        out = []
        for topic in topics:
            meta = consumer.list_topics(stack.topic(topic), timeout=30).topics[stack.topic(topic)]
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(stack.topic(topic), p), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(stack.topic(topic), p, low)])
                seen = low
                while seen < high:
                    msg = consumer.poll(5)
                    if msg is None:
                        break
                    if msg.error():
                        continue
                    seen = msg.offset() + 1
                    env = events_pb2.EventEnvelope()
                    env.ParseFromString(msg.value())
                    out.append(env)
        return out
    finally:
        consumer.close()


def test_the_shoppers_events_reach_kafka(run: dict[str, Any], stack) -> None:  # type: ignore[no-untyped-def]
    lines = run["lines"]
    placed = {x["order_id"] for x in lines if x["kind"] == "placed"}
    carted = {(x["user_id"], x["item_id"]) for x in lines if x["kind"] == "carted"}
    wished = {(x["user_id"], x["item_id"]) for x in lines if x["kind"] == "wishlisted"}
    users = {x["user_id"] for x in lines if x["kind"] == "signed_up"}

    def seen() -> dict[str, set[Any]]:
        from confluent_kafka import KafkaException

        got: dict[str, set[Any]] = {"placed": set(), "carted": set(), "wished": set(),
                                    "searchers": set()}
        try:
            events = _kafka_events(stack, ["orders.lifecycle", "cart.events", "search.queries"])
        except KafkaException:  # a broker slow to answer on a busy machine: ask again
            return got
        for env in events:
            case = env.WhichOneof("payload")
            if case == "order_transitioned" and env.order_transitioned.to_state == 2:
                got["placed"].add(env.order_transitioned.order_id)
            elif case == "cart_item_added":
                got["carted"].add((env.cart_item_added.user_id, env.cart_item_added.item_id))
            elif case == "wishlist_item_added":
                got["wished"].add((env.wishlist_item_added.user_id,
                                   env.wishlist_item_added.item_id))
            elif case == "search_query_recorded":
                got["searchers"].add(env.search_query_recorded.user_id)
        return got

    from ecom.orders.v1 import orders_pb2

    assert orders_pb2.ORDER_STATE_PLACED == 2
    until("the run's events on Kafka", seen,
          lambda got: placed <= got["placed"] and carted <= got["carted"]
          and wished <= got["wished"] and users <= got["searchers"], timeout=300, interval=2)


# One or more Spark runs (a JVM start and a micro-batch each): minutes on a
# busy 2-core machine.
@pytest.mark.timeout(1800)
def test_the_reports_count_the_shoppers(run: dict[str, Any], stack, client: httpx.Client,  # type: ignore[no-untyped-def]
                                        admin: dict[str, str], tmp_path: Path) -> None:
    """The analytics job over the run's topics; the funnel an admin reads
    counts exactly what the shoppers did."""
    from tests.integration.analytics_support import JobRunner

    lines, kinds = run["lines"], run["kinds"]
    first = run["start"]
    last = max(x["at"] for x in lines) + 120
    iso = "%Y-%m-%dT%H:%M:%SZ"
    window = {"window": "1m", "from": time.strftime(iso, time.gmtime(first)),
              "to": time.strftime(iso, time.gmtime(last))}
    env = {**os.environ, **stack.env,
           "ECOM_TOPIC_PREFIX": stack.topic_prefix, "ECOM_KEYSPACE_PREFIX": stack.db_prefix,
           "ECOM_LAKE_URL": (tmp_path / "lake").as_uri(),
           "ECOM_ANALYTICS_PROGRESS_FILE": str(tmp_path / "progress.json"),
           "ECOM_ANALYTICS_TRIGGER_SECONDS": "1", "PYTHONUNBUFFERED": "1"}
    log = STACK / "logs" / f"test-{stack.run_id}-sim-analytics.log"
    runner = JobRunner(env, log)
    # Searches made while the fixture waited for the index may share the
    # first window: the shoppers' searches are at least counted.
    want = (kinds["carted"], kinds["ordered"], kinds["placed"])

    def funnel() -> tuple[int, int, int, int]:
        body = ok(client.get("/v1/reports/funnel", headers=admin, params=window))
        rows = body.get("windows", [])
        return (sum(int(r.get("searches", 0)) for r in rows),
                sum(int(r.get("cartAdds", 0)) for r in rows),
                sum(int(r.get("ordersCreated", 0)) for r in rows),
                sum(int(r.get("ordersPlaced", 0)) for r in rows))

    # The streaming job (as `make up` runs it) until the report has caught
    # up with every event of the run.
    runner.start(once=False)
    try:
        got = until("the funnel counting the shoppers", funnel,
                    lambda g: g[1:] == want and g[0] >= kinds["searched"],
                    timeout=1500, interval=5)
    except AssertionError:
        raise AssertionError(f"funnel {funnel()}, the shoppers made {want} after "
                             f"{kinds['searched']} searches:\n{tail(log, 40)}") from None
    finally:
        runner.stop_all()
    assert got[1:] == want
    top = ok(client.get("/v1/reports/top-items", headers=admin,
                        params={"window": "1h", "metric": "units", "limit": 100}))
    sold = {ln for x in lines if x["kind"] == "placed"
            for ln in next(o["items"] for o in lines
                           if o["kind"] == "ordered" and o["order_id"] == x["order_id"])}
    assert sold & {i["itemId"] for i in top.get("items", [])}
