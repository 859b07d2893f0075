"""Every payment branch of PayOrder against the real svc_payments, with a
3-second hold: the gateway timeout (still pending, then expired and
released), the late success after expiry (refunded automatically and
recorded on the order), retries while pending, and hold expiry by the Redis
fast path (the sweeper is slowed right down in this module so only Redis
can be the one that expires orders in time).

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb
     .venv/bin/python -m pytest tests/integration/test_orders_payments.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from ecom.orders.v1 import orders_pb2 as pb
from ecom.payments.v1 import payments_pb2

from tests.conftest import Services
from tests.integration.orders_support import Shop, new_id, start_shop, status_of

pytestmark = pytest.mark.integration
HOLD = 3


@pytest.fixture(scope="module")
async def shop(services: Services) -> AsyncIterator[Shop]:
    running = start_shop(
        services,
        ECOM_ORDER_HOLD_SECONDS=str(HOLD),
        ECOM_ORDERS_PAYMENT_WAIT_SECONDS="1",
        ECOM_ORDERS_SWEEP_INTERVAL_SECONDS="3600",
        ECOM_PAYMENTS_GATEWAY_TIMEOUT_SECONDS="1",
        ECOM_PAYMENTS_LATE_SUCCESS_SECONDS="5",
    )
    s = Shop.connect(running)
    yield s
    await s.close()


def _cancelled(o: pb.Order) -> bool:
    return o.state == pb.ORDER_STATE_CANCELLED


async def test_hold_expiry_through_redis_releases_stock(shop: Shop) -> None:
    item = await shop.item(stock=3)
    order = await shop.checkout(new_id(), item, qty=2)
    assert await shop.stock(item) == (1, 2)
    done = await shop.wait_for(order.order_id, _cancelled, timeout=HOLD + 5, what="expired")
    assert done.cancel_reason == pb.CANCEL_REASON_HOLD_EXPIRED
    late_by = done.cancel_time.ToNanoseconds() - done.expires_at.ToNanoseconds()
    assert 0 <= late_by < 1.5e9, "the Redis expiry, not the (hourly here) sweeper"
    # The release runs just after the cancel commits, so a reader can see
    # the cancelled order a moment before its stock is back on sale.
    assert await shop.stock_settles(item, (3, 0)) == (3, 0)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.pay(order, "tok_success")
    assert status_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_NOT_PAYABLE")


async def test_gateway_timeout_stays_pending_then_expires(shop: Shop) -> None:
    item = await shop.item(stock=2)
    order = await shop.checkout(new_id(), item)
    rid = new_id("pay")
    pending = await shop.pay(order, "tok_timeout", request_id=rid)
    assert pending.state == pb.ORDER_STATE_CREATED
    assert pending.payment.status == payments_pb2.PAYMENT_STATUS_PENDING
    retry = await shop.pay(order, "tok_timeout", request_id=rid)
    assert retry.state == pb.ORDER_STATE_CREATED
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a second payment while one is open
        await shop.pay(order, "tok_success")
    assert status_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_IN_FLIGHT")
    done = await shop.wait_for(order.order_id, _cancelled, timeout=HOLD + 8, what="expired")
    assert done.cancel_reason == pb.CANCEL_REASON_HOLD_EXPIRED
    assert done.payment.status != payments_pb2.PAYMENT_STATUS_SUCCEEDED
    assert await shop.stock_settles(item, (2, 0)) == (2, 0)


async def test_late_success_after_expiry_is_refunded_and_recorded(shop: Shop) -> None:
    item = await shop.item(stock=2)
    order = await shop.checkout(new_id(), item, qty=2)
    pending = await shop.pay(order, "tok_late_success")
    assert pending.state == pb.ORDER_STATE_CREATED
    expired = await shop.wait_for(order.order_id, _cancelled, timeout=HOLD + 5, what="expired")
    assert expired.cancel_reason == pb.CANCEL_REASON_HOLD_EXPIRED
    refunded = await shop.wait_for(
        order.order_id,
        lambda o: o.payment.status == payments_pb2.PAYMENT_STATUS_REFUNDED,
        timeout=30,
        what="refunded",
    )
    assert refunded.state == pb.ORDER_STATE_CANCELLED
    assert refunded.payment.refunded_amount == order.total
    assert "refunded" in refunded.cancel_note
    payment = await shop.payments.GetPayment(
        payments_pb2.GetPaymentRequest(payment_id=refunded.payment.payment_id),
        metadata=(("x-jwt-payload", shop_service_caller()),),
    )
    assert payment.status == payments_pb2.PAYMENT_STATUS_REFUNDED
    assert [r.reason for r in payment.refunds] == ["late_payment_after_expiry"]
    assert await shop.stock_settles(item, (2, 0)) == (2, 0)


async def test_success_and_decline_within_the_hold(shop: Shop) -> None:
    item = await shop.item(stock=2)
    ok, no = await asyncio.gather(shop.checkout(new_id(), item), shop.checkout(new_id(), item))
    placed, declined = await asyncio.gather(
        shop.pay(ok, "tok_success"), shop.pay(no, "tok_decline")
    )
    assert placed.state == pb.ORDER_STATE_PLACED
    assert declined.state == pb.ORDER_STATE_CANCELLED
    assert declined.cancel_reason == pb.CANCEL_REASON_PAYMENT_DECLINED
    await asyncio.sleep(HOLD + 1)  # a placed order never expires
    assert (await shop.get(ok.order_id)).state == pb.ORDER_STATE_PLACED
    assert await shop.stock(item) == (1, 0)


def shop_service_caller() -> str:
    from mesh.auth import Caller, encode_jwt_payload

    return encode_jwt_payload(Caller("svc_orders", frozenset({"service"})))
