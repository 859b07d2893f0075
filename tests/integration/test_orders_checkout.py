"""svc_orders end to end with its real peers (catalog, tat, inventory,
payments as processes on MariaDB, Redis, Kafka and FerretDB): checkout,
idempotency, payment success and decline, cancel/ship/deliver with the state
machine enforced, lifecycle events, the order list, and 200 simultaneous
checkouts of one item that must never oversell.

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb
     .venv/bin/python -m pytest tests/integration/test_orders_checkout.py
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from ecom.common.v1 import common_pb2
from ecom.orders.v1 import orders_pb2 as pb
from ecom.payments.v1 import payments_pb2

from tests.conftest import Services, Stack
from tests.integration.catalog_support import TopicReader
from tests.integration.orders_support import (
    ADMIN,
    Shop,
    as_user,
    new_id,
    start_shop,
    status_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def shop(services: Services) -> AsyncIterator[Shop]:
    running = start_shop(services, ECOM_ORDER_HOLD_SECONDS="120")
    s = Shop.connect(running)
    yield s
    await s.close()


async def test_checkout_prices_from_the_catalog_and_holds_stock(shop: Shop) -> None:
    item = await shop.item(stock=10, rupees=499, paise=50)
    user = new_id()
    order = await shop.checkout(user, item, qty=2)
    assert order.state == pb.ORDER_STATE_CREATED
    assert (order.total.units, order.total.nanos) == (999, 0)
    assert order.item_count == 2
    line = order.lines[0]
    assert (line.unit_price.units, line.unit_price.nanos) == (499, 500_000_000)
    assert line.warehouse_id == "WH-BLR"
    assert line.promised_date.year >= 2024
    # The hold is the configured 120 s from the order's creation.
    held = order.expires_at.ToDatetime() - order.create_time.ToDatetime()
    assert held == timedelta(seconds=120)
    assert await shop.stock(item) == (8, 2)
    got = await shop.orders.GetOrder(
        pb.GetOrderRequest(order_id=order.order_id), metadata=as_user(user)
    )
    assert got == order


async def test_create_order_is_idempotent_even_concurrently(shop: Shop) -> None:
    item = await shop.item(stock=10)
    user, rid = new_id(), new_id("co")
    first = await shop.checkout(user, item, qty=3, request_id=rid)
    again = await shop.checkout(user, item, qty=3, request_id=rid)
    assert again.order_id == first.order_id
    rid2 = new_id("co")
    racing = await asyncio.gather(
        *(shop.checkout(user, item, 2, request_id=rid2) for _ in range(6))
    )
    assert len({o.order_id for o in racing}) == 1
    assert await shop.stock(item) == (5, 5)  # 3 + 2, each held once


async def test_out_of_stock_and_undeliverable_and_invalid_are_refused(shop: Shop) -> None:
    item = await shop.item(stock=1)
    user, rid = new_id(), new_id("co")
    for _ in range(2):  # the retry gets the first answer again
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.checkout(user, item, qty=2, request_id=rid)
        assert status_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_STOCK")
    assert await shop.stock(item) == (1, 0)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.orders.CreateOrder(
            pb.CreateOrderRequest(
                request_id=new_id(),
                user_id=user,
                lines=[pb.LineItem(item_id=item, quantity=1)],
                shipping_address=common_pb2.Address(
                    name="A",
                    lines=["x"],
                    city="Ahmedabad",
                    state="Gujarat",
                    pincode="380014",
                    phone="9876543210",
                ),
            ),
            metadata=as_user(user),
        )
    assert status_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_DELIVERABLE")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.orders.CreateOrder(
            pb.CreateOrderRequest(request_id=new_id(), user_id=user, shipping_address=None),
            metadata=as_user(user),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.aio.AioRpcError) as err:  # someone else's checkout
        await shop.orders.CreateOrder(
            pb.CreateOrderRequest(
                request_id=new_id(), user_id=user, lines=[pb.LineItem(item_id=item, quantity=1)]
            ),
            metadata=as_user("intruder"),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_pay_success_ship_deliver_and_illegal_transitions(shop: Shop) -> None:
    item = await shop.item(stock=5)
    user = new_id()
    order = await shop.checkout(user, item, qty=2)

    with pytest.raises(grpc.aio.AioRpcError) as err:  # not paid yet
        await shop.orders.ShipOrder(
            pb.ShipOrderRequest(order_id=order.order_id, request_id=new_id()), metadata=ADMIN
        )
    assert status_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")

    rid = new_id("pay")
    placed = await shop.pay(order, "tok_success", request_id=rid)
    assert placed.state == pb.ORDER_STATE_PLACED
    assert placed.payment.status == payments_pb2.PAYMENT_STATUS_SUCCEEDED
    assert placed.HasField("place_time")
    again = await shop.pay(order, "tok_success", request_id=rid)  # retry: same answer
    assert (
        again.state == pb.ORDER_STATE_PLACED
        and again.payment.payment_id == placed.payment.payment_id
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a second payment is refused
        await shop.pay(order, "tok_success")
    assert status_of(err.value)[0] == grpc.StatusCode.FAILED_PRECONDITION
    # The commit runs right after the payment's transition commits.
    assert await shop.stock_settles(item, (3, 0)) == (3, 0)  # sold, no longer held
    assert (await shop.reservation(order.order_id)).state == 2  # COMMITTED

    with pytest.raises(grpc.aio.AioRpcError) as err:  # customers cannot ship
        await shop.orders.ShipOrder(
            pb.ShipOrderRequest(order_id=order.order_id, request_id=new_id()),
            metadata=as_user(user),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    shipped = await shop.orders.ShipOrder(
        pb.ShipOrderRequest(
            order_id=order.order_id,
            request_id=new_id(),
            shipment=pb.Shipment(carrier="bluedart", tracking_number="BD123"),
        ),
        metadata=ADMIN,
    )
    assert shipped.state == pb.ORDER_STATE_SHIPPED and shipped.shipment.carrier == "bluedart"
    assert await shop.get(order.order_id) == shipped  # the answer is the stored order
    same = await shop.orders.ShipOrder(
        pb.ShipOrderRequest(order_id=order.order_id, request_id=new_id()), metadata=ADMIN
    )
    assert same.state == pb.ORDER_STATE_SHIPPED and same.ship_time == shipped.ship_time
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.orders.CancelOrder(
            pb.CancelOrderRequest(order_id=order.order_id, request_id=new_id()),
            metadata=as_user(user),
        )
    assert status_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")
    delivered = await shop.orders.DeliverOrder(
        pb.DeliverOrderRequest(order_id=order.order_id, request_id=new_id()), metadata=ADMIN
    )
    assert delivered.state == pb.ORDER_STATE_DELIVERED and delivered.HasField("deliver_time")
    assert await shop.get(order.order_id) == delivered


async def test_decline_cancels_and_releases(shop: Shop) -> None:
    item = await shop.item(stock=4)
    order = await shop.checkout(new_id(), item, qty=3)
    declined = await shop.pay(order, "tok_decline")
    assert declined.state == pb.ORDER_STATE_CANCELLED
    assert declined.cancel_reason == pb.CANCEL_REASON_PAYMENT_DECLINED
    assert declined.payment.status == payments_pb2.PAYMENT_STATUS_DECLINED
    assert declined.payment.decline_code
    assert await shop.stock(item) == (4, 0)


async def test_cancel_created_and_cancel_placed_with_refund(shop: Shop) -> None:
    item = await shop.item(stock=6)
    user = new_id()
    created = await shop.checkout(user, item, qty=2)
    cancelled = await shop.orders.CancelOrder(
        pb.CancelOrderRequest(
            order_id=created.order_id, note="changed my mind", request_id=new_id()
        ),
        metadata=as_user(user),
    )
    assert cancelled.state == pb.ORDER_STATE_CANCELLED
    assert cancelled.cancel_reason == pb.CANCEL_REASON_USER_CANCELLED
    assert cancelled.cancel_note == "changed my mind"
    assert await shop.stock(item) == (6, 0)
    again = await shop.orders.CancelOrder(
        pb.CancelOrderRequest(order_id=created.order_id, request_id=new_id()),
        metadata=as_user(user),
    )
    assert again.cancel_time == cancelled.cancel_time  # unchanged

    placed = await shop.pay(await shop.checkout(user, item, qty=3), "tok_success")
    assert placed.state == pb.ORDER_STATE_PLACED
    assert await shop.stock(item) == (3, 0)
    refunded = await shop.orders.CancelOrder(
        pb.CancelOrderRequest(order_id=placed.order_id, request_id=new_id()), metadata=ADMIN
    )
    assert refunded.cancel_reason == pb.CANCEL_REASON_ADMIN_CANCELLED
    assert refunded.payment.status == payments_pb2.PAYMENT_STATUS_REFUNDED
    assert refunded.payment.refunded_amount.units == placed.total.units
    assert await shop.stock(item) == (6, 0)


async def test_lifecycle_events_and_the_order_list(shop: Shop, stack: Stack) -> None:
    item = await shop.item(stock=10)
    user = new_id()
    ids = []
    for _ in range(3):
        ids.append((await shop.checkout(user, item)).order_id)
    await shop.pay(await shop.get(ids[0]), "tok_success")
    page1 = await shop.orders.ListUserOrders(
        pb.ListUserOrdersRequest(user_id=user, page_size=2), metadata=as_user(user)
    )
    assert [o.order_id for o in page1.orders] == ids[::-1][:2] and page1.next_page_token
    page2 = await shop.orders.ListUserOrders(
        pb.ListUserOrdersRequest(user_id=user, page_size=2, page_token=page1.next_page_token),
        metadata=as_user(user),
    )
    assert [o.order_id for o in page2.orders] == [ids[0]] and not page2.next_page_token
    assert page2.orders[0].state == pb.ORDER_STATE_PLACED

    reader = TopicReader(stack, "orders.lifecycle")
    try:
        events = reader.until(lambda evs: len([e for e in evs if e.entity_key == ids[0]]) >= 2)
    finally:
        reader.close()
    mine = [e.order_transitioned for e in events if e.entity_key == ids[0]]
    assert [(t.from_state, t.to_state) for t in mine[:2]] == [
        (pb.ORDER_STATE_UNSPECIFIED, pb.ORDER_STATE_CREATED),
        (pb.ORDER_STATE_CREATED, pb.ORDER_STATE_PLACED),
    ]
    assert mine[1].order.total == mine[0].order.total


async def test_200_simultaneous_checkouts_never_oversell(shop: Shop) -> None:
    """200 buyers, 50 units, random success/decline tokens: every unit is
    sold at most once and initial = available + reserved + sold; then the
    remaining units sell out exactly."""
    initial = 50
    item = await shop.item(stock=initial)
    rng = random.Random(7)
    outcomes: dict[str, str] = {}

    async def buyer(i: int) -> None:
        user = f"buyer-{i}-{new_id()}"
        try:
            order = await shop.checkout(user, item)
        except grpc.aio.AioRpcError as exc:
            assert status_of(exc) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_STOCK")
            outcomes[user] = "refused"
            return
        paid = await shop.pay(order, rng.choice(["tok_success", "tok_success", "tok_decline"]))
        outcomes[user] = pb.OrderState.Name(paid.state)

    await asyncio.gather(*(buyer(i) for i in range(200)))
    placed = sum(1 for v in outcomes.values() if v == "ORDER_STATE_PLACED")
    available, reserved = await shop.stock(item)
    assert reserved == 0, "every order was paid or declined, nothing may stay held"
    assert 0 < placed <= initial
    assert available + reserved + placed == initial, (available, reserved, placed)

    # Sell out what declines gave back: exactly `initial` placed in total.
    sold_more = 0
    while True:
        try:
            order = await shop.checkout(new_id(), item)
        except grpc.aio.AioRpcError as exc:
            assert status_of(exc)[1] == "INSUFFICIENT_STOCK"
            break
        assert (await shop.pay(order, "tok_success")).state == pb.ORDER_STATE_PLACED
        sold_more += 1
    assert placed + sold_more == initial
    assert await shop.stock(item) == (0, 0)
