"""Crash safety: kill -9 svc_orders, svc_inventory and svc_payments in turn
in the middle of checkouts while buyers keep retrying with their request
ids (as a real client would). After the restarts, holds expire (the Redis
notifications sent while orders was dead are lost, so the database sweeper
must do it), and then: every order is in a legal state, every checkout a
buyer was told succeeded exists, each order's reservation agrees with its
state, and stock balances (initial = available + reserved + sold).

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb
     .venv/bin/python -m pytest tests/integration/test_orders_crash.py
"""

from __future__ import annotations

import asyncio
import random
import time

import grpc
import pytest
from ecom.orders.v1 import orders_pb2 as pb

from tests.conftest import RunningService, Services
from tests.integration.orders_support import ADMIN, Shop, new_id, start_shop, status_of
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration
HOLD = 4
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
HELD, COMMITTED, RELEASED = 1, 2, 3


@pytest.fixture(scope="module")
def running(services: Services) -> dict[str, RunningService]:
    return start_shop(
        services,
        ECOM_ORDER_HOLD_SECONDS=str(HOLD),
        ECOM_ORDERS_PAYMENT_WAIT_SECONDS="1",
        ECOM_ORDERS_SWEEP_INTERVAL_SECONDS="0.5",
        ECOM_ORDERS_PENDING_GRACE_SECONDS="2",
        ECOM_PAYMENTS_GATEWAY_TIMEOUT_SECONDS="1",
    )


class Buyer:
    """Checks out once and pays, retrying each call with the same request
    id through crashes until it gets a definitive answer."""

    def __init__(self, shop: Shop, item: str, token: str) -> None:
        self.shop, self.item, self.token = shop, item, token
        self.user = new_id("b")
        self.checkout_rid, self.pay_rid = new_id("co"), new_id("pay")
        self.order: pb.Order | None = None
        self.refused = False

    async def _retry(self, call: object) -> pb.Order:
        deadline = time.monotonic() + 90
        while True:
            try:
                return await call()  # type: ignore[operator]
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    async def run(self) -> None:
        try:
            self.order = await self._retry(
                lambda: self.shop.checkout(self.user, self.item, request_id=self.checkout_rid)
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc
            self.refused = True
            return
        try:
            await self._retry(lambda: self.shop.pay(self.order, self.token, self.pay_rid))
        except grpc.aio.AioRpcError as exc:
            # The hold may run out while services are down: then the order
            # is no longer payable, which is a legal outcome.
            assert status_of(exc)[0] == grpc.StatusCode.FAILED_PRECONDITION, exc


async def test_kill_9_in_the_middle_of_checkouts(
    services: Services, running: dict[str, RunningService]
) -> None:
    initial = 40
    shop = Shop.connect(running)
    try:
        item = await shop.item(stock=initial)
        rng = random.Random(11)
        tokens = ["tok_success", "tok_success", "tok_decline", "tok_timeout"]
        buyers = [Buyer(shop, item, rng.choice(tokens)) for _ in range(90)]
        tasks = [asyncio.create_task(b.run()) for b in buyers]
        in_flight = []
        for victim in ("orders", "inventory", "payments"):
            await asyncio.sleep(0.8)
            in_flight.append(sum(not t.done() for t in tasks))
            env = services.running[victim].overrides
            services.running[victim].kill()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(services.start, victim, **env)
        await asyncio.gather(*tasks)
        assert in_flight[0] > 0, "orders must die with checkouts in flight"
        print("buyers still in flight at each kill:", in_flight)
    finally:
        await shop.close()

    # New channels: the old ones pointed at dead processes.
    shop = Shop.connect({n: services.running[n] for n in running})
    try:
        accepted = [b for b in buyers if b.order is not None]
        assert accepted, "some checkouts must have gone through"
        async def none_created() -> bool:
            orders = [await shop.get(b.order.order_id) for b in accepted if b.order]
            return all(o.state != pb.ORDER_STATE_CREATED for o in orders)

        # Holds run out; the sweeper cancels what Redis no longer will.
        await wait_until_async(
            none_created, "no accepted order left CREATED", timeout=HOLD + 30, interval=0.5
        )
        await shop.orders.ReconcileOrders(
            pb.ReconcileOrdersRequest(request_id=new_id("rec")), metadata=ADMIN, timeout=120
        )
        orders = [await shop.get(b.order.order_id) for b in accepted if b.order]
        sold = 0
        for o in orders:
            assert o.state in (pb.ORDER_STATE_PLACED, pb.ORDER_STATE_CANCELLED), o
            res = await shop.reservation(o.order_id)
            if o.state == pb.ORDER_STATE_PLACED:
                assert res.state == COMMITTED, o.order_id
                sold += o.item_count
            else:
                assert res.state == RELEASED, o.order_id
        available, reserved = await shop.stock(item)
        assert reserved == 0
        assert available + reserved + sold == initial, (available, reserved, sold)
    finally:
        await shop.close()
