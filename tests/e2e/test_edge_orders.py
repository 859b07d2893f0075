"""Checkout through Envoy over HTTP, as a client would: POST /v1/orders,
:pay, GET the order and the user's order list, and the admin-only logistics
transitions, with real bearer tokens checked by the edge.

Needs every server orders and its peers use:
ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from edge import registry
from mesh import tokens
from tests.integration.orders_support import Shop, start_shop

pytestmark = pytest.mark.integration
PRESENT = registry.present_processes()


@pytest.fixture(scope="module")
def edge(services, edge_factory):  # type: ignore[no-untyped-def]
    running = start_shop(services, ECOM_ORDER_HOLD_SECONDS="120")
    # Only the processes running here: the edge waits for its clusters' health.
    routed = [p for p in PRESENT if p.name in running]
    return running, edge_factory("orders", {p.name: services.addr(p.name) for p in routed}, routed)


@pytest.fixture(scope="module")
def item(edge) -> str:  # type: ignore[no-untyped-def]
    import asyncio

    async def make() -> str:
        shop = Shop.connect(edge[0])
        try:
            return await shop.item(stock=5, rupees=1299)
        finally:
            await shop.close()

    return asyncio.run(make())


def _client(edge, signing_key, user_id: str, roles: list[str]) -> httpx.Client:  # type: ignore[no-untyped-def]
    token = tokens.issue_token(signing_key, user_id=user_id, roles=roles)[0]
    return edge[1].client(headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def alice(edge, signing_key) -> Iterator[tuple[str, httpx.Client]]:  # type: ignore[no-untyped-def]
    user = f"alice-{uuid.uuid4().hex[:8]}"
    with _client(edge, signing_key, user, ["customer"]) as c:
        yield user, c


def test_checkout_pay_read_and_ship_over_rest(edge, signing_key, item, alice) -> None:  # type: ignore[no-untyped-def]
    user, client = alice
    body = {
        "requestId": uuid.uuid4().hex,
        "userId": user,
        "lines": [{"itemId": item, "quantity": 2}],
        "shippingAddress": {
            "name": "Alice",
            "lines": ["1 MG Road"],
            "city": "Bengaluru",
            "state": "Karnataka",
            "pincode": "560001",
            "phone": "9876543210",
        },
    }
    resp = client.post("/v1/orders", json=body)
    assert resp.status_code == 200, resp.text
    order = resp.json()
    assert order["state"] == "ORDER_STATE_CREATED"
    # 2 x 1299.50 (Shop.item prices in paise too), from the catalog.
    assert (order["total"]["currencyCode"], order["total"]["units"]) == ("INR", "2599")
    assert client.post("/v1/orders", json=body).json()["orderId"] == order["orderId"]

    oid = order["orderId"]
    paid = client.post(
        f"/v1/orders/{oid}:pay", json={"paymentToken": "tok_success", "requestId": uuid.uuid4().hex}
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["state"] == "ORDER_STATE_PLACED"
    assert client.get(f"/v1/orders/{oid}").json()["state"] == "ORDER_STATE_PLACED"
    listed = client.get(f"/v1/users/{user}/orders").json()
    assert [o["orderId"] for o in listed["orders"]] == [oid]

    refused = client.post(f"/v1/orders/{oid}:ship", json={"requestId": "s1"})
    assert refused.status_code == 403, refused.text
    with _client(edge, signing_key, "bob", ["customer"]) as bob:
        assert bob.get(f"/v1/orders/{oid}").status_code == 403
    with _client(edge, signing_key, "ops", ["admin"]) as admin:
        shipped = admin.post(
            f"/v1/orders/{oid}:ship", json={"requestId": "s1", "shipment": {"carrier": "bluedart"}}
        )
        assert shipped.json()["state"] == "ORDER_STATE_SHIPPED", shipped.text
        delivered = admin.post(f"/v1/orders/{oid}:deliver", json={"requestId": "d1"})
        assert delivered.json()["state"] == "ORDER_STATE_DELIVERED", delivered.text
    late = client.post(f"/v1/orders/{oid}:cancel", json={"requestId": "c1"})
    assert late.status_code == 400, late.text  # FAILED_PRECONDITION: delivered already


# -- the caller is the default user; idempotency keys are optional ------------

ADDRESS = {"name": "Alice", "lines": ["1 MG Road"], "city": "Bengaluru",
           "state": "Karnataka", "pincode": "560001", "phone": "9876543210"}


@pytest.fixture(scope="module")
def roomy_item(edge) -> str:  # type: ignore[no-untyped-def]
    import asyncio

    async def make() -> str:
        shop = Shop.connect(edge[0])
        try:
            return await shop.item(stock=50, rupees=100)
        finally:
            await shop.close()

    return asyncio.run(make())


def test_order_without_user_id_or_request_id(edge, roomy_item, alice) -> None:  # type: ignore[no-untyped-def]
    user, client = alice
    body = {"lines": [{"itemId": roomy_item, "quantity": 1}], "shippingAddress": ADDRESS}
    first = client.post("/v1/orders", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["userId"] == user
    # No key: a second call is a second order, as the caller asked twice.
    second = client.post("/v1/orders", json=body)
    assert second.status_code == 200, second.text
    assert second.json()["orderId"] != first.json()["orderId"]
    mine = client.get("/v1/users/me/orders").json()["orders"]
    assert {first.json()["orderId"], second.json()["orderId"]} <= {o["orderId"] for o in mine}
    assert all(o["userId"] == user for o in mine)


def test_idempotency_key_header_over_rest(edge, roomy_item, alice) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    _, client = alice
    body = {"lines": [{"itemId": roomy_item, "quantity": 1}], "shippingAddress": ADDRESS}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: client.post("/v1/orders", json=body, headers=key), [0, 1]))
    assert [r.status_code for r in both] == [200, 200], [r.text for r in both]
    assert both[0].json() == both[1].json()  # one order, the same final state
    retry = client.post("/v1/orders", json=body, headers=key)
    assert retry.json()["orderId"] == both[0].json()["orderId"]
    changed = client.post("/v1/orders", headers=key, json={
        **body, "lines": [{"itemId": roomy_item, "quantity": 2}]})
    assert changed.status_code == 409, changed.text
    assert key["Idempotency-Key"] in changed.json()["message"]
    # Pay with a key in the header, twice: one payment.
    oid = both[0].json()["orderId"]
    pay_key = {"Idempotency-Key": uuid.uuid4().hex}
    paid = client.post(f"/v1/orders/{oid}:pay", json={"paymentToken": "tok_success"},
                       headers=pay_key)
    assert paid.status_code == 200, paid.text
    again = client.post(f"/v1/orders/{oid}:pay", json={"paymentToken": "tok_success"},
                        headers=pay_key)
    assert again.status_code == 200, again.text
    assert again.json()["payment"]["paymentId"] == paid.json()["payment"]["paymentId"]


def test_customer_cannot_order_or_read_for_another_user(  # type: ignore[no-untyped-def]
    edge, signing_key, roomy_item, alice
) -> None:
    user, _ = alice
    body = {"userId": user, "lines": [{"itemId": roomy_item, "quantity": 1}],
            "shippingAddress": ADDRESS}
    with _client(edge, signing_key, f"bob-{uuid.uuid4().hex[:6]}", ["customer"]) as bob:
        assert bob.post("/v1/orders", json=body).status_code == 403
        assert bob.get(f"/v1/users/{user}/orders").status_code == 403
        assert bob.get("/v1/users/me/orders").json().get("orders", []) == []
    with _client(edge, signing_key, "ops", ["admin"]) as admin:
        for_alice = admin.post("/v1/orders", json=body)
        assert for_alice.status_code == 200, for_alice.text
        assert for_alice.json()["userId"] == user
