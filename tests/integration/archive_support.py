"""Helpers for the archive tests: orders written straight into the run's
orders database (to build large or random mixes quickly), the run's
archive keyspace read directly, and a delivered order made the real way."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from cassandra.cluster import Cluster, Session
from ecom.common.v1 import common_pb2
from ecom.orderhistory.v1 import orderhistory_pb2 as hpb
from ecom.orderhistory.v1 import orderhistory_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb
from google.protobuf.duration_pb2 import Duration
from sqlalchemy.ext.asyncio import AsyncEngine

from infra.core import host_port
from mesh.db import make_engine, utcnow
from svc_orders.domain import (
    CancelReason,
    OrderState,
    PaymentStatus,
    RefundState,
    ReservationState,
)
from svc_orders.store import LineRecord, OrderRecord, OrderStore, orders
from tests.conftest import Stack
from tests.integration.orders_support import ADMIN, Shop, address, new_id

OLD = datetime(2001, 1, 1)


async def orders_db(stack: Stack) -> OrderStore:
    """The run's orders database (svc_orders creates it at start)."""
    engine = await make_engine(stack.env["ECOM_MYSQL_URL"], stack.mysql_db("orders"), create=False)
    return OrderStore(engine)


def archive_session(stack: Stack) -> tuple[Cluster, Session]:
    """A session on the run's archive keyspace."""
    hosts = [host_port(h, 9042) for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    cluster = Cluster(contact_points=[h for h, _ in hosts], port=hosts[0][1], protocol_version=5)
    return cluster, cluster.connect(stack.db_prefix + "orderhistory")


def synthetic_order(
    user_id: str,
    create_time: datetime,
    *,
    state: OrderState = OrderState.DELIVERED,
    update_time: datetime | None = None,
    item_id: str = "item-gone",
) -> OrderRecord:
    """A terminal (or live) order as checkout, payment and delivery leave it."""
    addr = address()
    delivered = state is OrderState.DELIVERED
    return OrderRecord(
        order_id=uuid.uuid4().hex,
        user_id=user_id,
        request_id=new_id("co"),
        state=state,
        version=4,
        reservation_state=ReservationState.COMMITTED if delivered else ReservationState.RELEASED,
        work_due=False,
        from_cart=False,
        address=common_pb2.Address(
            name=addr.name,
            lines=addr.lines,
            city=addr.city,
            state=addr.state,
            pincode=addr.pincode,
            phone=addr.phone,
        ).SerializeToString(),
        pincode=addr.pincode,
        total_paise=49_950,
        item_count=1,
        payment_request_id=new_id("pay"),
        payment_id=new_id("p"),
        payment_status=PaymentStatus.SUCCEEDED if delivered else PaymentStatus.REFUNDED,
        decline_code="",
        refunded_paise=0 if delivered else 49_950,
        refund_state=RefundState.NONE if delivered else RefundState.DONE,
        cancel_reason=CancelReason.NONE if delivered else CancelReason.USER_CANCELLED,
        cancel_note="",
        carrier="bluedart" if delivered else "",
        tracking_number="BD123" if delivered else "",
        reject_reason="",
        reject_message="",
        expires_at=create_time + timedelta(minutes=10),
        create_time=create_time,
        # Recent by default: only make_archivable makes an order eligible.
        update_time=update_time or utcnow(),
        place_time=create_time + timedelta(minutes=1),
        ship_time=create_time + timedelta(days=1) if delivered else None,
        deliver_time=create_time + timedelta(days=2) if delivered else None,
        cancel_time=None if delivered else create_time + timedelta(hours=1),
        lines=(LineRecord(item_id, 1, "Test Phone", 49_950, "WH-BLR", None),),
    )


async def insert_orders(store: OrderStore, recs: Iterable[OrderRecord]) -> None:
    recs = list(recs)

    async def work(conn: sa.ext.asyncio.AsyncConnection) -> None:
        for rec in recs:
            await store.insert(conn, rec)

    await store.run(work)


async def make_archivable(engine: AsyncEngine, order_ids: Iterable[str]) -> None:
    """Move orders' last transition far into the past, so an archive run
    with ``min_age`` of a day takes exactly them (and no other test's)."""
    ids = list(order_ids)
    if ids:
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(orders).where(orders.c.order_id.in_(ids)).values(update_time=OLD)
            )


async def live_ids(engine: AsyncEngine, order_ids: Iterable[str]) -> set[str]:
    ids = list(order_ids)
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(orders.c.order_id).where(orders.c.order_id.in_(ids)))
        return {str(r[0]) for r in rows}


def archive_request(min_age_seconds: int = 86_400, max_orders: int = 0) -> hpb.ArchiveOrdersRequest:
    return hpb.ArchiveOrdersRequest(
        min_age=Duration(seconds=min_age_seconds), max_orders=max_orders
    )


async def archive_old(
    history: orderhistory_pb2_grpc.OrderHistoryServiceStub,
) -> hpb.ArchiveOrdersResponse:
    """Archive every order whose last transition is over a day old."""
    return await history.ArchiveOrders(archive_request(), metadata=ADMIN, timeout=120)


async def delivered_order(shop: Shop, user: str, item: str) -> pb.Order:
    """Checkout, pay, ship and deliver through the real services."""
    order = await shop.checkout(user, item)
    order = await shop.pay(order, "tok_success")
    assert order.state == pb.ORDER_STATE_PLACED, order
    await shop.orders.ShipOrder(
        pb.ShipOrderRequest(
            order_id=order.order_id,
            shipment=pb.Shipment(carrier="bluedart", tracking_number="BD42"),
            request_id=new_id("ship"),
        ),
        metadata=ADMIN,
    )
    return await shop.orders.DeliverOrder(
        pb.DeliverOrderRequest(order_id=order.order_id, request_id=new_id("dlv")), metadata=ADMIN
    )


async def history_of(
    shop: Shop, user: str, page_size: int, metadata: object = ADMIN
) -> list[pb.ListUserOrdersResponse]:
    """Every page of a user's merged history."""
    pages: list[pb.ListUserOrdersResponse] = []
    token = ""
    while True:
        page = await shop.orders.ListUserOrders(
            pb.ListUserOrdersRequest(user_id=user, page_size=page_size, page_token=token),
            metadata=metadata,
        )
        pages.append(page)
        token = page.next_page_token
        if not token:
            return pages


def newest_first(recs: Iterable[OrderRecord]) -> list[str]:
    return [
        r.order_id for r in sorted(recs, key=lambda r: (r.create_time, r.order_id), reverse=True)
    ]


def now() -> datetime:
    return utcnow()
