"""Helpers for the notification tests: users in the real svc_users, order
events published to the run's Kafka topics as svc_orders would, mail read
back from Mailpit's HTTP API and SMS read from the fake SMSC's log."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from ecom.events.v1 import events_pb2
from ecom.notifications.v1 import notifications_pb2 as npb
from ecom.notifications.v1 import notifications_pb2_grpc
from ecom.orders.v1 import orders_pb2 as opb
from ecom.payments.v1 import payments_pb2 as ppb
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.type import date_pb2, money_pb2

from mesh.auth import Caller, encode_jwt_payload
from tests.conftest import Stack
from tests.waiting import wait_until_async

ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("admin-1", frozenset({"admin"})))),)


def as_user(user_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-jwt-payload", encode_jwt_payload(Caller(user_id, frozenset({"customer"})))),)


def random_phone() -> str:
    return "9" + "".join(random.choice("0123456789") for _ in range(9))


async def sign_up(users: users_pb2_grpc.UserServiceStub, name: str = "Asha Rao",
                  phone: str | None = None) -> users_pb2.User:
    return await users.CreateUser(users_pb2.CreateUserRequest(
        email=f"n-{uuid.uuid4().hex[:12]}@example.com", password="correct horse battery",
        name=name, phone=phone or random_phone(), request_id=uuid.uuid4().hex,
    ))


def order(user_id: str, *, order_id: str | None = None, rupees: int = 1299,
          state: int = opb.ORDER_STATE_PLACED) -> opb.Order:
    """An order as svc_orders would put in its events."""
    oid = order_id or str(uuid.uuid4())
    price = money_pb2.Money(currency_code="INR", units=rupees, nanos=500_000_000)
    line_total = money_pb2.Money(currency_code="INR", units=rupees * 2 + 1)
    return opb.Order(
        order_id=oid, user_id=user_id, state=state,
        lines=[opb.OrderLine(item_id="item-1", quantity=2, title="Pixel Phone 128GB",
                             unit_price=price, line_total=line_total, warehouse_id="WH-BLR",
                             promised_date=date_pb2.Date(year=2026, month=12, day=8))],
        total=line_total, item_count=2,
    )


def transition(o: opb.Order, to_state: int, from_state: int = opb.ORDER_STATE_CREATED,
               cancel_reason: int = 0, event_id: str | None = None) -> events_pb2.EventEnvelope:
    o = opb.Order.FromString(o.SerializeToString())
    o.state = to_state  # type: ignore[assignment]
    return events_pb2.EventEnvelope(
        event_id=event_id or uuid.uuid4().hex, event_type="ecom.events.v1.OrderTransitioned",
        entity_key=o.order_id, producer="svc_orders",
        order_transitioned=events_pb2.OrderTransitioned(
            order_id=o.order_id, user_id=o.user_id, from_state=from_state,  # type: ignore[arg-type]
            to_state=to_state, cancel_reason=cancel_reason, order=o,  # type: ignore[arg-type]
        ),
    )


def refunded(o: opb.Order, reason: str, refund_id: str | None = None) -> events_pb2.EventEnvelope:
    pay = ppb.Payment(payment_id=f"pay-{uuid.uuid4().hex[:8]}", order_id=o.order_id,
                      user_id=o.user_id, amount=o.total)
    refund = ppb.Refund(refund_id=refund_id or f"ref-{uuid.uuid4().hex[:8]}", amount=o.total,
                        reason=reason, status=ppb.REFUND_STATUS_SUCCEEDED)
    return events_pb2.EventEnvelope(
        event_id=uuid.uuid4().hex, event_type="ecom.events.v1.PaymentRefunded",
        entity_key=o.order_id, producer="svc_payments",
        payment_refunded=events_pb2.PaymentRefunded(payment=pay, refund=refund),
    )


class Publisher:
    """Publishes envelopes to the run's topics with the ecom headers."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.producer = Producer({"bootstrap.servers": stack.env["ECOM_KAFKA_BOOTSTRAP"]})

    def send(self, topic: str, env: events_pb2.EventEnvelope, *, flush: bool = True) -> None:
        self.producer.produce(
            self.stack.topic(topic), env.SerializeToString(), key=env.entity_key.encode(),
            headers=[("ecom-event-id", env.event_id.encode()),
                     ("ecom-event-type", env.event_type.encode())],
        )
        if flush:
            self.flush()

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


class Mailpit:
    """Mailpit's HTTP API: what reached the SMTP server."""

    def __init__(self, api_url: str) -> None:
        self.api = api_url.rstrip("/")

    def search(self, query: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        start = 0
        while True:
            r = httpx.get(f"{self.api}/api/v1/search",
                          params={"query": query, "start": start, "limit": 200}, timeout=10)
            r.raise_for_status()
            page = r.json()["messages"]
            found += page
            if len(page) < 200:
                return found
            start += 200

    def to(self, address: str) -> list[dict[str, Any]]:
        """Every message sent to `address`."""
        return [m for m in self.search(f'to:"{address}"')
                if any(t["Address"].lower() == address.lower() for t in m["To"])]

    def message(self, mid: str) -> dict[str, Any]:
        r = httpx.get(f"{self.api}/api/v1/message/{mid}", timeout=10)
        r.raise_for_status()
        return dict(r.json())


class FakeSmsc:
    """The SMS the fake SMSC received, from its log lines
    `Got message N: <FROM TO text ...>`."""

    LINE = re.compile(r"Got message \d+: <(\S+) (\S+) (\S+) (.*)>$")

    def __init__(self, log: Path) -> None:
        self.log = log

    def to(self, phone: str) -> list[str]:
        texts = []
        with open(self.log, errors="replace") as f:
            for line in f:
                m = self.LINE.search(line.rstrip("\n"))
                if m and m.group(2) == phone:
                    texts.append(m.group(4))
        return texts


async def wait_for(pred: Callable[[], Awaitable[Any]], timeout: float = 60,
                   what: str = "condition") -> Any:
    """Poll `pred` until it returns something truthy; that value
    (tests/waiting.py)."""
    return await wait_until_async(pred, what, timeout=timeout)


async def notifications_of(
    stub: notifications_pb2_grpc.NotificationServiceStub, user_id: str
) -> list[npb.Notification]:
    out: list[npb.Notification] = []
    token = ""
    while True:
        resp = await stub.ListUserNotifications(
            npb.ListUserNotificationsRequest(user_id=user_id, page_size=100, page_token=token),
            metadata=ADMIN)
        out += resp.notifications
        token = resp.next_page_token
        if not token:
            return out


SETTLED = (npb.NOTIFICATION_STATUS_SENT, npb.NOTIFICATION_STATUS_DELIVERED)
