"""svc_notify on the events the real svc_orders and svc_payments publish:
an expired order whose payment succeeded late is told of the cancellation
and of the automatic refund; a placed order the shopper cancels is told of
the placement, the cancellation and the refund, each once by email and SMS.

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,mailpit,kannel
     .venv/bin/python -m pytest tests/integration/test_notify_orders.py
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ecom.notifications.v1 import notifications_pb2 as npb
from ecom.notifications.v1 import notifications_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb
from ecom.users.v1 import users_pb2_grpc

from tests.conftest import TEST_REPLICAS, Services, Stack
from tests.integration.notify_support import (
    SETTLED,
    Mailpit,
    notifications_of,
    sign_up,
    wait_for,
)
from tests.integration.orders_support import Shop, as_user, new_id, start_shop
from tests.ports import free_port as _free_port

pytestmark = pytest.mark.integration
HOLD = 3


@pytest.fixture(scope="module")
async def world(services: Services) -> AsyncIterator[tuple[Shop, users_pb2_grpc.UserServiceStub,
                                                           notifications_pb2_grpc.NotificationServiceStub]]:
    running = start_shop(
        services,
        ECOM_ORDER_HOLD_SECONDS=str(HOLD),
        ECOM_ORDERS_PAYMENT_WAIT_SECONDS="1",
        ECOM_ORDERS_SWEEP_INTERVAL_SECONDS="1",
        ECOM_PAYMENTS_GATEWAY_TIMEOUT_SECONDS="1",
        ECOM_PAYMENTS_LATE_SUCCESS_SECONDS="5",
    )
    users_svc = services.start("users")
    notify_svc = services.start("notify", ECOM_NOTIFY_DLR_ADDR=",".join(
                f"127.0.0.1:{_free_port()}" for _ in range(TEST_REPLICAS)))
    shop = Shop.connect(running)
    async with users_svc.channel() as u, notify_svc.channel() as n:
        yield (shop, users_pb2_grpc.UserServiceStub(u),
               notifications_pb2_grpc.NotificationServiceStub(n))
    await shop.close()


async def _templates(notify, user_id: str, order_id: str,  # type: ignore[no-untyped-def]
                     want: set[str]) -> list[npb.Notification]:
    async def settled() -> list[npb.Notification] | None:
        notes = [n for n in await notifications_of(notify, user_id) if n.order_id == order_id]
        done = {n.template for n in notes if n.status in SETTLED}
        both = all(sum(1 for n in notes if n.template == t and n.status in SETTLED) == 2
                   for t in want)
        return notes if done >= want and both else None

    result: list[npb.Notification] = await wait_for(settled, 90, f"{sorted(want)} sent")
    return result


async def test_late_payment_after_expiry_tells_of_cancellation_and_refund(
    world, stack: Stack  # type: ignore[no-untyped-def]
) -> None:
    shop, users, notify = world
    user = await sign_up(users)
    item = await shop.item(stock=2)
    order = await shop.checkout(user.user_id, item, qty=1)
    pending = await shop.pay(order, "tok_late_success")
    assert pending.state == pb.ORDER_STATE_CREATED
    notes = await _templates(notify, user.user_id, order.order_id,
                             {"order_cancelled", "payment_refunded"})
    assert {n.template for n in notes} == {"order_cancelled", "payment_refunded"}
    assert len(notes) == 4  # email and SMS of each; never an order_placed
    by = {(n.template, n.channel): n for n in notes}
    cancel = by[("order_cancelled", npb.CHANNEL_EMAIL)]
    assert "no payment arrived before the hold expired" in cancel.body
    refund = by[("payment_refunded", npb.CHANNEL_EMAIL)]
    assert "the payment arrived after the order had expired" in refund.body
    assert "₹499.50" in refund.body
    mails = Mailpit(stack.env["ECOM_MAILPIT_URL"]).to(user.email)
    assert sorted(m["Subject"] for m in mails) == sorted([cancel.subject, refund.subject])


async def test_placed_then_cancelled_by_the_shopper(world, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    shop, users, notify = world
    user = await sign_up(users)
    item = await shop.item(stock=2)
    order = await shop.checkout(user.user_id, item, qty=2)
    placed = await shop.pay(order, "tok_success")
    assert placed.state == pb.ORDER_STATE_PLACED
    await _templates(notify, user.user_id, order.order_id, {"order_placed"})
    await shop.orders.CancelOrder(
        pb.CancelOrderRequest(order_id=order.order_id, request_id=new_id("c")),
        metadata=as_user(user.user_id))
    notes = await _templates(notify, user.user_id, order.order_id,
                             {"order_placed", "order_cancelled", "payment_refunded"})
    assert len(notes) == 6
    by = {(n.template, n.channel): n for n in notes}
    assert "you cancelled it" in by[("order_cancelled", npb.CHANNEL_EMAIL)].body
    assert "refunded to your payment method" in by[("order_cancelled", npb.CHANNEL_EMAIL)].body
    assert "your order was cancelled" in by[("payment_refunded", npb.CHANNEL_EMAIL)].body
    placed_mail = by[("order_placed", npb.CHANNEL_EMAIL)].body
    assert "₹999.00" in placed_mail and "Arriving by" in placed_mail
    assert len(Mailpit(stack.env["ECOM_MAILPIT_URL"]).to(user.email)) == 3
