"""ReconcileOrders repairs drift injected straight into the orders tables
(the sweeper is slowed to hourly here so only reconciliation can repair it):
an order row that vanished under a held reservation, a cancelled order whose
stock is still held, a placed order whose stock is still held, and an
expired hold nobody noticed. A dry run reports without changing; a retry of
the same request id returns the first report.

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb
     .venv/bin/python -m pytest tests/integration/test_orders_reconcile.py
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from ecom.orders.v1 import orders_pb2 as pb
from sqlalchemy.ext.asyncio import AsyncEngine

from mesh.db import make_engine
from tests.conftest import Services, Stack
from tests.integration.orders_support import ADMIN, Shop, as_user, new_id, start_shop

pytestmark = pytest.mark.integration
HELD, COMMITTED, RELEASED = 1, 2, 3


@pytest.fixture(scope="module")
async def shop(services: Services) -> AsyncIterator[Shop]:
    running = start_shop(
        services,
        ECOM_ORDER_HOLD_SECONDS="120",
        ECOM_ORDERS_SWEEP_INTERVAL_SECONDS="3600",
        ECOM_ORDERS_PENDING_GRACE_SECONDS="1",
    )
    s = Shop.connect(running)
    yield s
    await s.close()


@pytest.fixture(scope="module")
async def orders_db(stack: Stack) -> AsyncIterator[AsyncEngine]:
    engine = await make_engine(stack.env["ECOM_MYSQL_URL"], stack.mysql_db("orders"), create=False)
    yield engine
    await engine.dispose()


async def _sql(engine: AsyncEngine, statement: str, **params: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(statement), params)


async def reconcile(
    shop: Shop, dry_run: bool = False, rid: str | None = None
) -> pb.ReconcileOrdersResponse:
    return await shop.orders.ReconcileOrders(
        pb.ReconcileOrdersRequest(dry_run=dry_run, request_id=rid or new_id("rec")),
        metadata=ADMIN,
        timeout=120,
    )


async def test_reconciliation_repairs_injected_drift(
    shop: Shop, orders_db: AsyncEngine, stack: Stack
) -> None:
    item = await shop.item(stock=20)
    user = new_id()
    vanished, cancelled, placed, expired, healthy = [
        (await shop.checkout(user, item, qty=2)).order_id for _ in range(5)
    ]
    assert await shop.stock(item) == (10, 10)

    # Drift, straight into the tables, behind the service's back.
    await _sql(orders_db, "DELETE FROM order_lines WHERE order_id = :o", o=vanished)
    await _sql(orders_db, "DELETE FROM orders WHERE order_id = :o", o=vanished)
    await _sql(
        orders_db,
        "UPDATE orders SET state='CANCELLED', cancel_reason='USER_CANCELLED', "
        "cancel_time=NOW(6) WHERE order_id = :o",
        o=cancelled,
    )
    await _sql(
        orders_db,
        "UPDATE orders SET state='PLACED', payment_status='SUCCEEDED', place_time=NOW(6) "
        "WHERE order_id = :o",
        o=placed,
    )
    await _sql(
        orders_db,
        "UPDATE orders SET expires_at = NOW(6) - INTERVAL 1 MINUTE WHERE order_id = :o",
        o=expired,
    )
    redis = aioredis.Redis.from_url(stack.env["ECOM_REDIS_URL"])
    # Redis missed it too (both the TTL key and the due-set member).
    await redis.delete(f"{stack.redis_prefix}orders:hold:{expired}")
    await redis.zrem(f"{stack.redis_prefix}orders:hold:due", expired)
    await redis.aclose()
    await asyncio.sleep(1.5)  # past the pending grace for the vanished order's reservation

    want = {
        (vanished, pb.REPAIR_KIND_ORPHAN_RESERVATION_RELEASED),
        (cancelled, pb.REPAIR_KIND_ORPHAN_RESERVATION_RELEASED),
        (placed, pb.REPAIR_KIND_RESERVATION_COMMITTED),
        (expired, pb.REPAIR_KIND_EXPIRED_HOLD_CANCELLED),
    }
    dry = await reconcile(shop, dry_run=True)
    assert dry.dry_run and want <= {(r.order_id, r.kind) for r in dry.repairs}
    assert await shop.stock(item) == (10, 10), "a dry run changes nothing"

    rid = new_id("rec")
    report = await reconcile(shop, rid=rid)
    mine = {(r.order_id, r.kind) for r in report.repairs if r.order_id in {o for o, _ in want}}
    assert mine == want
    assert report.reservations_checked >= 4 and report.orders_checked >= 1
    assert (await reconcile(shop, rid=rid)) == report, "a retry returns the first report"

    for order_id, state in (
        (vanished, RELEASED),
        (cancelled, RELEASED),
        (placed, COMMITTED),
        (expired, RELEASED),
        (healthy, HELD),
    ):
        assert (await shop.reservation(order_id)).state == state, order_id
    got = await shop.orders.GetOrder(pb.GetOrderRequest(order_id=expired), metadata=as_user(user))
    assert got.state == pb.ORDER_STATE_CANCELLED
    assert got.cancel_reason == pb.CANCEL_REASON_HOLD_EXPIRED
    # 20 units: 2 sold (placed), 2 held (healthy), the rest back on sale.
    assert await shop.stock(item) == (16, 2)

    again = await reconcile(shop)
    assert not [r for r in again.repairs if r.order_id in {o for o, _ in want}], "nothing left"
