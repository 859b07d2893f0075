"""The cart and wishlist REST paths through Envoy, as a shopper's client
would call them: bearer token, canonical proto3 JSON, Money as
`{currencyCode, units, nanos}`.

Needs MariaDB, Redis, Kafka and FerretDB (cart, users, tat, catalog):
ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from edge import registry
from mesh import tokens
from tests.conftest import UNREACHABLE_ADDR

pytestmark = pytest.mark.integration

NEEDED = ("cart", "catalog", "users", "tat")


@pytest.fixture(scope="module")
def edge(services, edge_factory):  # type: ignore[no-untyped-def]
    if not all(registry.process_named(n).present() for n in NEEDED):
        pytest.skip("cart, catalog, users and tat are needed")
    for name in NEEDED:
        if name == "tat":
            # Deliverability without stock: this module's items have none, and
            # an earlier module may have left tat pointed at a real inventory.
            services.start(name, ECOM_INVENTORY_ADDR=UNREACHABLE_ADDR)
        else:
            services.start(name)
    return edge_factory(
        "cart", {n: services.addr(n) for n in NEEDED}, [registry.process_named(n) for n in NEEDED]
    )


def bearer(signing_key, user_id: str, *roles: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    token = tokens.issue_token(signing_key, user_id=user_id, roles=list(roles or ["customer"]))[0]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def client(edge) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with edge.client() as c:
        yield c


@pytest.fixture(scope="module")
def item_id(client: httpx.Client, signing_key) -> str:  # type: ignore[no-untyped-def]
    body = {
        "title": f"E2E Phone {uuid.uuid4().hex[:6]}", "category": "mobiles", "brand": "Acme",
        "price": {"currencyCode": "INR", "units": "199", "nanos": 990000000},
        "attributes": {"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5, "color": "black"},
    }
    resp = client.post("/v1/items", json={"item": body, "requestId": uuid.uuid4().hex},
                       headers=bearer(signing_key, "e2e-admin", "admin"))
    assert resp.status_code == 200, resp.text
    return str(resp.json()["itemId"])


def test_cart_over_rest(client: httpx.Client, signing_key, item_id: str) -> None:  # type: ignore[no-untyped-def]
    user = f"e2e-{uuid.uuid4().hex[:10]}"
    auth = bearer(signing_key, user)
    resp = client.post(f"/v1/users/{user}/cart/items", headers=auth,
                       json={"itemId": item_id, "quantity": 2, "requestId": uuid.uuid4().hex})
    assert resp.status_code == 200, resp.text
    cart = client.get(f"/v1/users/{user}/cart", params={"pincode": "560001"}, headers=auth).json()
    assert cart["lines"][0]["quantity"] == 2
    assert cart["total"] == {"currencyCode": "INR", "units": "399", "nanos": 980000000}
    assert cart["pincode"] == "560001" and cart["priced"] is True
    assert cart["lines"][0]["delivery"]["deliverable"] is True
    # Another shopper's token cannot read or change this cart.
    other = bearer(signing_key, f"e2e-{uuid.uuid4().hex[:10]}")
    assert client.get(f"/v1/users/{user}/cart", headers=other).status_code == 403
    resp = client.delete(f"/v1/users/{user}/cart/items/{item_id}", headers=auth,
                         params={"request_id": uuid.uuid4().hex})
    assert resp.status_code == 200, resp.text
    assert resp.json().get("lines", []) == []
    unknown = client.post(f"/v1/users/{user}/cart/items", headers=auth,
                          json={"itemId": "no-such-item", "requestId": uuid.uuid4().hex})
    assert unknown.status_code == 404


def test_wishlist_over_rest(client: httpx.Client, signing_key, item_id: str) -> None:  # type: ignore[no-untyped-def]
    user = f"e2e-{uuid.uuid4().hex[:10]}"
    auth = bearer(signing_key, user)
    resp = client.post(f"/v1/users/{user}/wishlist/items", headers=auth,
                       json={"itemId": item_id, "requestId": uuid.uuid4().hex})
    assert resp.status_code == 200, resp.text
    listed = client.get(f"/v1/users/{user}/wishlist", headers=auth).json()
    assert [i["itemId"] for i in listed["items"]] == [item_id]
    assert listed["items"][0]["price"]["units"] == "199"
    resp = client.delete(f"/v1/users/{user}/wishlist/items/{item_id}", headers=auth,
                         params={"request_id": uuid.uuid4().hex})
    assert resp.status_code == 200 and resp.json().get("items", []) == []
    assert client.get(f"/v1/users/{user}/wishlist").status_code == 401
