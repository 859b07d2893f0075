"""Order archival through Envoy over HTTP: an admin archives with
`POST /v1/orders:archive` and reads a seller's archive; the customer reads
the archived order and their merged history; a customer can neither archive
(403) nor read another user's archived order (403).

Needs: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,cassandra.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from ecom.catalog.v1 import catalog_pb2
from ecom.inventory.v1 import inventory_pb2

from edge import registry
from mesh import tokens
from tests.integration.catalog_support import phone
from tests.integration.orders_support import ADMIN, Shop, start_shop
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
PRESENT = registry.present_processes()


@pytest.fixture(scope="module")
def edge(services, edge_factory):  # type: ignore[no-untyped-def]
    running = start_shop(services, ECOM_ORDER_HOLD_SECONDS="120", ECOM_ORDERS_ARCHIVE_ENABLED="0")
    routed = [p for p in PRESENT if p.name in running]
    return running, edge_factory("archive", {p.name: services.addr(p.name) for p in routed}, routed)


@pytest.fixture(scope="module")
def seller_item(edge) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    seller = f"seller-{uuid.uuid4().hex[:8]}"

    async def make() -> str:
        shop = Shop.connect(edge[0])
        try:
            template = phone("Seller Phone", 999)
            template.supplier_id, template.sku = seller, uuid.uuid4().hex[:12]
            item = await shop.catalog.CreateItem(
                catalog_pb2.CreateItemRequest(request_id=uuid.uuid4().hex, item=template),
                metadata=ADMIN,
            )
            await shop.inventory.SetStock(
                inventory_pb2.SetStockRequest(
                    item_id=item.item_id,
                    warehouse_id="WH-BLR",
                    available=5,
                    request_id=uuid.uuid4().hex,
                ),
                metadata=ADMIN,
            )
            return str(item.item_id)
        finally:
            await shop.close()

    return seller, asyncio.run(make())


def _client(edge, signing_key, user_id: str, roles: list[str]) -> httpx.Client:  # type: ignore[no-untyped-def]
    token = tokens.issue_token(signing_key, user_id=user_id, roles=roles)[0]
    return httpx.Client(
        base_url=edge[1].url, headers={"Authorization": f"Bearer {token}"}, timeout=120
    )


def test_archive_over_rest_admin_only_and_owner_only_reads(edge, signing_key, seller_item) -> None:  # type: ignore[no-untyped-def]
    seller, item = seller_item
    user = f"carol-{uuid.uuid4().hex[:8]}"
    with (
        _client(edge, signing_key, user, ["customer"]) as carol,
        _client(edge, signing_key, "ops", ["admin"]) as admin,
        _client(edge, signing_key, f"dave-{uuid.uuid4().hex[:6]}", ["customer"]) as dave,
    ):
        order = carol.post(
            "/v1/orders",
            json={
                "requestId": uuid.uuid4().hex,
                "userId": user,
                "lines": [{"itemId": item, "quantity": 1}],
                "shippingAddress": {
                    "name": "Carol",
                    "lines": ["1 MG Road"],
                    "city": "Bengaluru",
                    "state": "Karnataka",
                    "pincode": "560001",
                    "phone": "9876543210",
                },
            },
        ).json()
        oid = order["orderId"]
        paid = carol.post(
            f"/v1/orders/{oid}:pay",
            json={"paymentToken": "tok_success", "requestId": uuid.uuid4().hex},
        )
        assert paid.json()["state"] == "ORDER_STATE_PLACED", paid.text
        admin.post(f"/v1/orders/{oid}:ship", json={"requestId": uuid.uuid4().hex})
        done = admin.post(f"/v1/orders/{oid}:deliver", json={"requestId": uuid.uuid4().hex})
        assert done.json()["state"] == "ORDER_STATE_DELIVERED", done.text

        refused = carol.post("/v1/orders:archive", json={"minAge": "0s", "maxOrders": 10})
        assert refused.status_code == 403, refused.text
        assert carol.get(f"/v1/orders/{oid}").json().get("archived") is not True

        # Delivered orders still owing follow-up work (the stock commit right
        # after payment) wait for it: archive until the order has moved.
        def archived() -> bool:
            resp = admin.post("/v1/orders:archive", json={"min_age": "0s", "max_orders": 100000})
            assert resp.status_code == 200, resp.text
            return oid in resp.json().get("archivedOrderIds", [])

        wait_until(archived, f"order {oid} archived", timeout=60, interval=0.5)

        mine = carol.get(f"/v1/orders/{oid}")
        assert mine.status_code == 200, mine.text
        assert mine.json()["archived"] is True
        assert mine.json()["state"] == "ORDER_STATE_DELIVERED"
        assert mine.json()["lines"][0]["sellerId"] == seller
        listed = carol.get(f"/v1/users/{user}/orders").json()
        assert [o["orderId"] for o in listed["orders"]] == [oid]
        assert listed["orders"][0]["archived"] is True
        assert not listed.get("archiveUnavailable", False)

        assert dave.get(f"/v1/orders/{oid}").status_code == 403
        assert dave.get(f"/v1/users/{user}/orders").status_code == 403
        late = carol.post(f"/v1/orders/{oid}:cancel", json={"requestId": uuid.uuid4().hex})
        assert late.status_code == 400, late.text  # FAILED_PRECONDITION: archived
        assert "ORDER_ARCHIVED" in late.text

        assert carol.get(f"/v1/sellers/{seller}/orders").status_code == 403
        by_seller = admin.get(f"/v1/sellers/{seller}/orders")
        assert by_seller.status_code == 200, by_seller.text
        assert [o["orderId"] for o in by_seller.json()["orders"]] == [oid]
