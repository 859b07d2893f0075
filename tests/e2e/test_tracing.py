"""One checkout, one trace: Envoy, orders, inventory, payments, the outbox
relay and the Kafka consumer on the other side all report spans of the same
trace to a real OTLP/gRPC receiver started here (tests/otlp_receiver.py).

Every process gets ``ECOM_OTLP_ENDPOINT`` (the services through mesh, Envoy
through its generated OpenTelemetry tracer config). The client sends no
trace context: Envoy starts the trace, and every later span must descend
from Envoy's through gRPC metadata, outbox rows and Kafka headers.

Datastore calls are spans of the calling RPC too: SQL (MariaDB), Redis
commands, FerretDB commands (pymongo) and Cassandra requests.

Needs ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,cassandra.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from edge import registry
from mesh import tokens
from tests.integration.orders_support import Shop
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.integration
SERVER, CLIENT = 2, 3  # opentelemetry-proto Span.SpanKind
SHOP = ("catalog", "tat", "inventory", "payments", "orders")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    rec = OtlpReceiver().start()
    yield rec
    rec.stop()


@pytest.fixture(scope="module")
def traced_shop(services, edge_factory, receiver):  # type: ignore[no-untyped-def]
    if not all(registry.process_named(n).present() for n in SHOP):
        pytest.skip("the shop's services are not all implemented yet")
    env = {"ECOM_OTLP_ENDPOINT": receiver.endpoint, "ECOM_ORDER_HOLD_SECONDS": "120"}
    running = {name: services.start(name, **env) for name in SHOP}
    routed = [registry.process_named(n) for n in SHOP]
    edge = edge_factory("tracing", {p.name: services.addr(p.name) for p in routed}, routed,
                        otlp_endpoint=receiver.endpoint)
    yield running, edge
    # Later modules get processes without the collector again.
    for name in SHOP:
        services.running[name].stop()


def _descends_from(span: ReceivedSpan, root: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> bool:
    seen = set()
    while span.parent_span_id and span.span_id not in seen:
        seen.add(span.span_id)
        if span.parent_span_id == root.span_id:
            return True
        parent = by_id.get(span.parent_span_id)
        if parent is None:
            return False
        span = parent
    return False


def _datastore_spans(trace: list[ReceivedSpan], service: str,
                     system: str) -> list[ReceivedSpan]:
    """``service``'s CLIENT spans of ``system`` (db.system) in ``trace``, each
    checked to descend from one of that service's SERVER spans."""
    by_id = {s.span_id: s for s in trace}
    servers = [s for s in trace if s.service == service and s.kind == SERVER]
    found = [s for s in trace if s.service == service and s.attributes.get("db.system") == system]
    for s in found:
        assert s.kind == CLIENT, s
        assert s.name.startswith(f"{system} "), s.name
        assert any(_descends_from(s, root, by_id) for root in servers), (
            f"{service} {s.name} is not under a {service} server span")
    return found


def test_one_checkout_is_one_trace(traced_shop, receiver, signing_key) -> None:  # type: ignore[no-untyped-def]
    running, edge = traced_shop

    async def make_item() -> str:
        shop = Shop.connect(running)
        try:
            return await shop.item(stock=5, rupees=799)
        finally:
            await shop.close()

    item = asyncio.run(make_item())
    user = f"trace-{uuid.uuid4().hex[:8]}"
    token = tokens.issue_token(signing_key, user_id=user, roles=["customer"])[0]
    with edge.client(headers={"Authorization": f"Bearer {token}"}) as client:
        created = client.post("/v1/orders", json={
            "requestId": uuid.uuid4().hex, "userId": user,
            "lines": [{"itemId": item, "quantity": 1}],
            "shippingAddress": {"name": "Asha", "lines": ["1 MG Road"], "city": "Bengaluru",
                                "state": "Karnataka", "pincode": "560001",
                                "phone": "9876543210"}})
        assert created.status_code == 200, created.text
        order_id = created.json()["orderId"]
        paid = client.post(f"/v1/orders/{order_id}:pay",
                           json={"paymentToken": "tok_success",
                                 "requestId": uuid.uuid4().hex})
        assert paid.status_code == 200, paid.text
        assert paid.json()["state"] == "ORDER_STATE_PLACED", paid.text

    def pay_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        """The spans of the trace whose orders server span is PayOrder."""
        roots = [s for s in spans if s.service == "orders"
                 and s.name == "ecom.orders.v1.OrderService/PayOrder"]
        return [s for s in spans if roots and s.trace_id == roots[-1].trace_id]

    def complete(spans: list[ReceivedSpan]) -> bool:
        trace = pay_trace(spans)
        services = {s.service for s in trace}
        names = {s.name for s in trace}
        return ({"edge", "orders", "inventory", "payments"} <= services
                and any(n.startswith("outbox.publish") for n in names)
                and any(n.startswith("consume ") for n in names))

    spans = receiver.wait_for(complete, timeout=60)
    trace = pay_trace(spans)
    assert trace, f"no PayOrder span among {len(spans)} spans received"
    services = {s.service for s in trace}
    assert {"edge", "orders", "inventory", "payments"} <= services, services

    # Envoy's span is the root: the client sent no context.
    edge_spans = [s for s in trace if s.service == "edge"]
    roots = [s for s in trace if not s.parent_span_id]
    assert len(roots) == 1 and roots[0] in edge_spans, roots
    root = roots[0]
    by_id = {s.span_id: s for s in trace}
    for s in trace:
        if s is not root:
            assert _descends_from(s, root, by_id), f"{s.service} {s.name} is not under the edge"

    # The gRPC hops: each service's server span for what PayOrder calls.
    names = {(s.service, s.name) for s in trace}
    assert ("payments", "ecom.payments.v1.PaymentService/CreatePayment") in names, names
    assert any(svc == "inventory" and n.startswith("ecom.inventory.v1.InventoryService/")
               for svc, n in names), names
    # Datastore calls are spans too (SQL against MariaDB).
    assert any(s.attributes.get("db.system") == "mysql" for s in trace)
    # The outbox relay published the order's or payment's event inside the
    # trace, and a consumer handled it from the Kafka headers.
    relayed = [s for s in trace if s.name.startswith("outbox.publish")]
    assert relayed, sorted(n for _, n in names)
    consumed = [s for s in trace if s.name.startswith("consume ")]
    assert consumed, sorted(n for _, n in names)
    assert any(by_id.get(c.parent_span_id) in relayed for c in consumed)
    # And CreateOrder made its own trace, edge -> orders -> inventory.
    create_traces = {s.trace_id for s in spans
                     if s.name == "ecom.orders.v1.OrderService/CreateOrder"}
    assert len(create_traces) == 1
    create = [s for s in spans if s.trace_id in create_traces]
    assert {"edge", "orders", "inventory"} <= {s.service for s in create}

    # Redis and FerretDB calls inside CreateOrder: orders' hold / idempotency
    # fingerprint in Redis, catalog's lookup of the items in FerretDB.
    def create_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.trace_id in create_traces]

    def datastores_seen(spans: list[ReceivedSpan]) -> bool:
        attrs = {(s.service, s.attributes.get("db.system")) for s in create_trace(spans)}
        return {("orders", "redis"), ("catalog", "mongodb")} <= attrs

    create = create_trace(receiver.wait_for(datastores_seen, timeout=30))
    redis_spans = _datastore_spans(create, "orders", "redis")
    assert redis_spans, sorted((s.service, s.name) for s in create)
    assert all(s.attributes.get("db.operation") for s in redis_spans)
    mongo_spans = _datastore_spans(create, "catalog", "mongodb")
    assert mongo_spans, sorted((s.service, s.name) for s in create)
    assert all(s.attributes.get("db.name") for s in mongo_spans), mongo_spans
    assert any(s.attributes.get("db.mongodb.collection") for s in mongo_spans), mongo_spans


def test_an_archive_read_is_a_cassandra_span(traced_shop, receiver, signing_key) -> None:  # type: ignore[no-untyped-def]
    """GetOrder of an order that is not live asks the archive in Cassandra:
    that request is a span of the GetOrder call."""
    _, edge = traced_shop
    order_id = uuid.uuid4().hex
    token = tokens.issue_token(signing_key, user_id="trace-admin", roles=["admin"])[0]
    with edge.client(headers={"Authorization": f"Bearer {token}"}) as client:
        missing = client.get(f"/v1/orders/{order_id}")
    assert missing.status_code == 404, missing.text

    def get_trace(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        roots = [s for s in spans if s.service == "orders"
                 and s.name == "ecom.orders.v1.OrderService/GetOrder"
                 and s.attributes.get("rpc.grpc.status_code") == 5]
        ids = {s.trace_id for s in roots}
        return [s for s in spans if s.trace_id in ids]

    def seen(spans: list[ReceivedSpan]) -> bool:
        return any(s.attributes.get("db.system") == "cassandra" for s in get_trace(spans))

    trace = get_trace(receiver.wait_for(seen, timeout=60))
    found = _datastore_spans(trace, "orders", "cassandra")
    assert found, sorted((s.service, s.name) for s in trace)
    assert any(s.name == "cassandra SELECT orders_by_id" for s in found), [s.name for s in found]
    assert all(s.attributes.get("db.name") for s in found)
