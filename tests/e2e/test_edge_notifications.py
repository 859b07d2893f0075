"""Notifications end to end through a real Envoy: a shopper signs up, orders
and pays over HTTP; svc_orders' `orders.lifecycle` event reaches svc_notify
through Kafka; one email arrives at Mailpit (read back from its API with the
order id in it) and one SMS at Kannel's fake SMSC (its delivery report marks
it DELIVERED); both show in `GET /v1/users/me/notifications`. Another
shopper gets 403 on them; turning SMS off through `PATCH /v1/users/{id}`
stops SMS for the next order.

Needs: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,mailpit,kannel.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from edge import registry
from infra.servers.kannel import Kannel
from mesh import tokens
from tests.conftest import TEST_REPLICAS
from tests.e2e.conftest import Edge
from tests.integration.notify_support import FakeSmsc, Mailpit
from tests.ports import free_port as _free_port

pytestmark = pytest.mark.integration

NEEDED = ("users", "catalog", "tat", "inventory", "payments", "orders", "notify")
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def edge(services, edge_factory) -> Edge:  # type: ignore[no-untyped-def]
    for name in NEEDED:
        if name == "notify":
            services.start("notify", ECOM_NOTIFY_DLR_ADDR=",".join(
                f"127.0.0.1:{_free_port()}" for _ in range(TEST_REPLICAS)))
        elif name in ("orders", "payments"):
            services.start(name, ECOM_ORDER_HOLD_SECONDS="120")
        else:
            services.start(name)
    routed = ("users", "catalog", "inventory", "orders", "notify")
    return edge_factory("notify", {n: services.addr(n) for n in routed},
                        [registry.process_named(n) for n in routed])


@pytest.fixture(scope="module")
def client(edge: Edge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=40) as c:
        yield c


def rid() -> str:
    return uuid.uuid4().hex


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: " \
                                    f"{resp.status_code} {resp.text}"
    return resp.json()


def until(what: str, fetch: Callable[[], Any], pred: Callable[[Any], bool],
          timeout: float = 60) -> Any:
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


def sign_up(client: httpx.Client, name: str, phone: str) -> tuple[dict[str, Any], dict[str, str]]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    user = ok(client.post("/v1/users", json={
        "email": email, "password": PASSWORD, "name": name, "phone": phone,
        "requestId": rid()}))
    login = ok(client.post("/v1/auth:login", json={"email": email, "password": PASSWORD}))
    return user, bearer(str(login["accessToken"]))


def buy(client: httpx.Client, me: dict[str, str], user_id: str, item_id: str) -> str:
    order = ok(client.post("/v1/orders", headers=me, json={
        "requestId": rid(), "userId": user_id, "lines": [{"itemId": item_id, "quantity": 1}],
        "shippingAddress": {"name": "Asha", "lines": ["1 MG Road"], "city": "Bengaluru",
                            "state": "Karnataka", "pincode": "560001", "phone": "9876543210"},
    }))
    paid = ok(client.post(f"/v1/orders/{order['orderId']}:pay", headers=me,
                          json={"paymentToken": "tok_success", "requestId": rid()}))
    assert paid["state"] == "ORDER_STATE_PLACED", paid
    return str(order["orderId"])


def test_order_paid_through_the_edge_notifies_by_email_and_sms(
    client: httpx.Client, signing_key, stack  # type: ignore[no-untyped-def]
) -> None:
    admin = bearer(tokens.issue_token(signing_key, user_id="notify-admin", roles=["admin"])[0])
    item = ok(client.post("/v1/items", headers=admin, json={"requestId": rid(), "item": {
        "title": "Nimbus Notify Phone", "category": "mobiles", "brand": "Acme",
        "description": "A phone for the notification journey.",
        "price": {"currencyCode": "INR", "units": "14999", "nanos": 0},
        "attributes": {"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5, "color": "black"},
    }}))
    ok(client.put(f"/v1/inventory/{item['itemId']}/warehouses/WH-BLR", headers=admin,
                  json={"available": "5", "requestId": rid()}))
    phone = "9" + uuid.uuid4().int.__str__()[:9]
    user, me = sign_up(client, "Asha", phone)
    assert user["notificationPreferences"]["smsEnabled"] is True
    order_id = buy(client, me, user["userId"], str(item["itemId"]))

    def mine() -> list[dict[str, Any]]:
        body = ok(client.get("/v1/users/me/notifications", headers=me))
        return list(body.get("notifications", []))

    settled = ("NOTIFICATION_STATUS_SENT", "NOTIFICATION_STATUS_DELIVERED")
    notes = until("email and SMS sent", mine, lambda ns: sorted(
        n["channel"] for n in ns if n.get("orderId") == order_id and n["status"] in settled
    ) == ["CHANNEL_EMAIL", "CHANNEL_SMS"])
    email = next(n for n in notes if n["channel"] == "CHANNEL_EMAIL")
    assert email["template"] == "order_placed" and email["recipient"] == user["email"]

    mails = Mailpit(stack.env["ECOM_MAILPIT_URL"])
    (mail,) = mails.to(user["email"])
    assert order_id in mails.message(mail["ID"])["Text"]
    texts = FakeSmsc(Kannel().log_file).to(user["phone"])
    assert len(texts) == 1 and "confirmed" in texts[0], texts

    # Another shopper may not read them; an admin may.
    _, other = sign_up(client, "Ravi", "9" + uuid.uuid4().int.__str__()[:9])
    denied = client.get(f"/v1/users/{user['userId']}/notifications", headers=other)
    assert denied.status_code == 403, denied.text
    assert client.get("/v1/users/me/notifications").status_code == 401
    seen = ok(client.get(f"/v1/users/{user['userId']}/notifications", headers=admin))
    assert {n["orderId"] for n in seen["notifications"]} == {order_id}

    # SMS off through the profile: the next order is emailed only.
    patched = ok(client.patch(f"/v1/users/{user['userId']}", headers=me, json={
        "user": {"notificationPreferences": {"smsEnabled": False}}, "requestId": rid(),
        "updateMask": "notificationPreferences"}))
    assert patched["notificationPreferences"].get("smsEnabled", False) is False
    second = buy(client, me, user["userId"], str(item["itemId"]))
    notes = until("second order's email sent", mine, lambda ns: any(
        n.get("orderId") == second and n["channel"] == "CHANNEL_EMAIL" and n["status"] in settled
        for n in ns))
    sms = next(n for n in notes if n.get("orderId") == second and n["channel"] == "CHANNEL_SMS")
    assert sms["status"] == "NOTIFICATION_STATUS_SUPPRESSED"
    assert len(FakeSmsc(Kannel().log_file).to(user["phone"])) == 1
    # Newest first.
    assert [n["orderId"] for n in notes][:2] == [second, second]
