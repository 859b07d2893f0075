"""The shopper's whole journey through a real Envoy in front of every real
service, over HTTP only, as a storefront would call it: sign up, log in,
save an address, search with the pincode, check serviceability, fill the
cart, check out from the cart, pay (tok_success -> PLACED), a second order
declined (tok_decline -> CANCELLED), and the order history newest first;
plus the refusals a shopper can meet on the way (401 without a token, 403 on
another shopper's cart and orders, 400 naming a bad field).

The catalog and the stock are seeded as an admin over HTTP too
(``POST /v1/items``, ``PUT /v1/inventory/{item_id}/warehouses/{warehouse_id}``).

Needs every server the services use:
ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,elasticsearch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from edge import registry
from mesh import tokens
from tests.e2e.conftest import Edge

pytestmark = pytest.mark.integration

NEEDED = ("users", "catalog", "tat", "inventory", "cart", "payments", "orders", "search")
PINCODE = "560001"  # Bengaluru, served by WH-BLR
WAREHOUSE = "WH-BLR"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def edge(services, edge_factory) -> Edge:  # type: ignore[no-untyped-def]
    for name in NEEDED:
        services.start(name)
    return edge_factory("journey", {n: services.addr(n) for n in NEEDED},
                        [registry.process_named(n) for n in NEEDED])


@pytest.fixture(scope="module")
def client(edge: Edge) -> Iterator[httpx.Client]:
    # PayOrder may wait on the gateway: more than the default 10 s budget.
    with httpx.Client(base_url=edge.url, timeout=40) as c:
        yield c


def rid() -> str:
    return uuid.uuid4().hex


def ok(resp: httpx.Response) -> Any:
    """The JSON body of a 200, or a failure that shows what came back."""
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: " \
                                    f"{resp.status_code} {resp.text}"
    return resp.json()


def until(what: str, fetch: Callable[[], Any], pred: Callable[[Any], bool],
          timeout: float = 30) -> Any:
    """Poll ``fetch`` until ``pred`` holds (search and serviceability are
    eventually consistent with the catalog and stock)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if pred(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never happened; last answer: {got}")
        time.sleep(0.3)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def admin(signing_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An operator's token (the first admin account is provisioned out of band)."""
    return bearer(tokens.issue_token(signing_key, user_id="journey-admin", roles=["admin"])[0])


@pytest.fixture(scope="module")
def word() -> str:
    """A made-up word in this run's item titles, so search finds only them."""
    return "zq" + uuid.uuid4().hex[:8]


def seed_item(client: httpx.Client, admin: dict[str, str], title: str, rupees: int,
              stock: int) -> str:
    """An item in the catalog with ``stock`` units at WH-BLR, as an admin."""
    item = ok(client.post("/v1/items", headers=admin, json={"requestId": rid(), "item": {
        "title": title, "category": "mobiles", "brand": "Acme",
        "description": "A phone for the end-to-end journey.",
        "price": {"currencyCode": "INR", "units": str(rupees), "nanos": 0},
        "attributes": {"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5, "color": "black"},
    }}))
    item_id = str(item["itemId"])
    stocked = ok(client.put(f"/v1/inventory/{item_id}/warehouses/{WAREHOUSE}", headers=admin,
                            json={"available": str(stock), "requestId": rid()}))
    assert int(stocked["available"]) == stock
    return item_id


def sign_up_and_login(client: httpx.Client, name: str) -> tuple[str, dict[str, str]]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    user = ok(client.post("/v1/users", json={
        "email": email, "password": PASSWORD, "name": name, "phone": "9876543210",
        "requestId": rid()}))
    login = ok(client.post("/v1/auth:login", json={"email": email, "password": PASSWORD}))
    assert login["userId"] == user["userId"] and login["tokenType"] == "Bearer"
    return str(user["userId"]), bearer(str(login["accessToken"]))


def test_shopper_journey(client: httpx.Client, admin: dict[str, str], word: str) -> None:
    phone = seed_item(client, admin, f"Nimbus {word} Phone", rupees=14999, stock=5)
    case = seed_item(client, admin, f"Nimbus {word} Phone Case", rupees=499, stock=5)

    # Sign up, log in, save a delivery address.
    user_id, me = sign_up_and_login(client, "Asha")
    address = ok(client.post(f"/v1/users/{user_id}/addresses", headers=me, json={
        "requestId": rid(), "address": {
            "name": "Asha Rao", "lines": ["12 MG Road"], "city": "Bengaluru",
            "state": "Karnataka", "pincode": PINCODE, "phone": "9876543210"}}))
    assert address["pincode"] == PINCODE and address["isDefault"] is True
    address_id = str(address["addressId"])

    # Search with the pincode: both items, each deliverable there.
    def search() -> Any:
        return ok(client.get("/v1/search", headers=me,
                             params={"query": word, "pincode": PINCODE}))

    found = until("both items searchable and deliverable", search,
                  lambda r: {h["itemId"] for h in r["hits"]} == {phone, case}
                  and all(h["delivery"]["deliverable"] for h in r["hits"]))
    assert found["pincode"] == PINCODE
    hit = next(h for h in found["hits"] if h["itemId"] == phone)
    assert hit["price"] == {"currencyCode": "INR", "units": "14999", "nanos": 0}
    assert hit["delivery"]["etaDays"] > 0

    # Serviceability of one item (public: no token needed).
    check = ok(client.get("/v1/serviceability", params={"item_id": phone, "pincode": PINCODE}))
    estimate = check["estimate"]
    assert estimate["deliverable"] is True and estimate["warehouseId"] == WAREHOUSE
    assert estimate["etaDays"] > 0 and estimate["promisedDate"]["year"] >= 2024

    # Cart: priced, deliverable to the pincode.
    ok(client.post(f"/v1/users/{user_id}/cart/items", headers=me,
                   json={"itemId": phone, "quantity": 2, "requestId": rid()}))
    cart = ok(client.get(f"/v1/users/{user_id}/cart", headers=me, params={"pincode": PINCODE}))
    assert cart["priced"] is True and cart["allDeliverable"] is True
    assert cart["itemCount"] == 2
    assert cart["total"] == {"currencyCode": "INR", "units": "29998", "nanos": 0}

    # Check out from the cart to the saved address, pay: PLACED.
    order = ok(client.post("/v1/orders", headers=me, json={
        "requestId": rid(), "userId": user_id, "fromCart": True, "addressId": address_id}))
    assert order["state"] == "ORDER_STATE_CREATED" and order["fromCart"] is True
    assert order["total"] == {"currencyCode": "INR", "units": "29998", "nanos": 0}
    assert order["shippingAddress"]["pincode"] == PINCODE
    assert [(ln["itemId"], ln["quantity"]) for ln in order["lines"]] == [(phone, 2)]
    placed = ok(client.post(f"/v1/orders/{order['orderId']}:pay", headers=me,
                            json={"paymentToken": "tok_success", "requestId": rid()}))
    assert placed["state"] == "ORDER_STATE_PLACED", placed
    assert placed["payment"]["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert ok(client.get(f"/v1/orders/{order['orderId']}", headers=me))["state"] == \
        "ORDER_STATE_PLACED"
    # Placing an order from the cart empties it.
    until("the cart emptied after the order was placed",
          lambda: ok(client.get(f"/v1/users/{user_id}/cart", headers=me)),
          lambda c: c.get("lines", []) == [])

    # A second order, given lines directly; the card is declined: CANCELLED.
    second = ok(client.post("/v1/orders", headers=me, json={
        "requestId": rid(), "userId": user_id, "addressId": address_id,
        "lines": [{"itemId": case, "quantity": 1}]}))
    assert second["total"] == {"currencyCode": "INR", "units": "499", "nanos": 0}
    declined = ok(client.post(f"/v1/orders/{second['orderId']}:pay", headers=me,
                              json={"paymentToken": "tok_decline", "requestId": rid()}))
    assert declined["state"] == "ORDER_STATE_CANCELLED", declined
    assert declined["cancelReason"] == "CANCEL_REASON_PAYMENT_DECLINED"

    # Order history: both, newest first.
    history = ok(client.get(f"/v1/users/{user_id}/orders", headers=me))
    assert [o["orderId"] for o in history["orders"]] == [second["orderId"], order["orderId"]]
    assert [o["state"] for o in history["orders"]] == ["ORDER_STATE_CANCELLED",
                                                        "ORDER_STATE_PLACED"]

    # Stock: two sold, the declined hold released.
    stock = ok(client.get(f"/v1/inventory/{phone}", headers=admin))
    assert int(stock["totalAvailable"]) == 3 and int(stock["totalReserved"]) == 0
    until("the declined order's hold released",
          lambda: ok(client.get(f"/v1/inventory/{case}", headers=admin)),
          lambda s: int(s["totalAvailable"]) == 5 and int(s["totalReserved"]) == 0)


def test_refusals_on_the_way(client: httpx.Client, admin: dict[str, str], word: str) -> None:
    item = seed_item(client, admin, f"Nimbus {word} Charger", rupees=999, stock=2)
    asha, asha_auth = sign_up_and_login(client, "Asha")
    ravi, ravi_auth = sign_up_and_login(client, "Ravi")
    ok(client.post(f"/v1/users/{asha}/cart/items", headers=asha_auth,
                   json={"itemId": item, "quantity": 1, "requestId": rid()}))

    # 401 without a token: the cart, checkout, the order history.
    for resp in (
        client.get(f"/v1/users/{asha}/cart"),
        client.post("/v1/orders", json={"requestId": rid(), "userId": asha, "fromCart": True}),
        client.get(f"/v1/users/{asha}/orders"),
    ):
        assert resp.status_code == 401, resp.text
        assert resp.json()["code"] == 16  # UNAUTHENTICATED

    # 403 with another shopper's token: read or change Asha's cart, check
    # out on her behalf, read her orders.
    for resp in (
        client.get(f"/v1/users/{asha}/cart", headers=ravi_auth),
        client.post(f"/v1/users/{asha}/cart/items", headers=ravi_auth,
                    json={"itemId": item, "quantity": 1, "requestId": rid()}),
        client.post("/v1/orders", headers=ravi_auth,
                    json={"requestId": rid(), "userId": asha, "fromCart": True}),
        client.get(f"/v1/users/{asha}/orders", headers=ravi_auth),
    ):
        assert resp.status_code == 403, resp.text
        assert resp.json()["code"] == 7  # PERMISSION_DENIED
    # Asha's cart is untouched by Ravi's attempt.
    cart = ok(client.get(f"/v1/users/{asha}/cart", headers=asha_auth))
    assert [(ln["itemId"], ln["quantity"]) for ln in cart["lines"]] == [(item, 1)]
    assert ok(client.get(f"/v1/users/{ravi}/cart", headers=ravi_auth)).get("lines", []) == []

    # 400 naming the field: a bad pincode on a saved address, bad JSON.
    bad = client.post(f"/v1/users/{asha}/addresses", headers=asha_auth, json={
        "requestId": rid(), "address": {
            "name": "Asha Rao", "lines": ["12 MG Road"], "city": "Bengaluru",
            "state": "Karnataka", "pincode": "56001", "phone": "9876543210"}})
    assert bad.status_code == 400, bad.text
    assert "pincode" in bad.text
    garbled = client.post("/v1/orders", content=b"{not json",
                          headers={**asha_auth, "content-type": "application/json"})
    assert garbled.status_code == 400 and garbled.json()["code"] == 3
