"""Order archival to Cassandra and the merged order history, with svc_orders
and its peers as real processes on MariaDB, Redis, Kafka, FerretDB and
Cassandra:

- a delivered order is archived: gone from MariaDB (order and lines), read
  by id with `archived: true` and every field as it was, in the history
  exactly once, in the seller's list, and refusing cancel/ship/deliver;
- history paging over live + archived mixes equals a brute-force merge,
  also while orders move to the archive between pages (hypothesis);
- kill -9 between the Cassandra write and the MariaDB delete, restart: every
  order exactly once;
- Cassandra unreachable: archiving fails UNAVAILABLE with nothing deleted,
  history lists live orders and says the archive part is unavailable;
- MariaDB unreachable: archived orders are still read by id.

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,cassandra
     .venv/bin/python -m pytest tests/integration/test_orders_archive.py
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from ecom.catalog.v1 import catalog_pb2
from ecom.orderhistory.v1 import orderhistory_pb2 as hpb
from ecom.orderhistory.v1 import orderhistory_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.core import STACK
from mesh.db import make_engine
from svc_orders.archive_store import ArchiveStore
from svc_orders.domain import OrderState
from svc_orders.history import OrderHistory
from svc_orders.service import OrderService, OrderSettings
from svc_orders.store import OrderStore
from tests.conftest import UNREACHABLE_ADDR, RunningService, Services, Stack
from tests.integration.archive_support import (
    archive_old,
    archive_request,
    archive_session,
    delivered_order,
    history_of,
    insert_orders,
    live_ids,
    make_archivable,
    newest_first,
    now,
    orders_db,
    synthetic_order,
)
from tests.integration.catalog_support import phone
from tests.integration.orders_support import (
    ADMIN,
    Shop,
    as_user,
    new_id,
    start_shop,
    status_of,
)
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration
# The scheduled archiver is off: each test decides what moves and when.
# Small batches, so concurrent runs interleave.
ENV = {
    "ECOM_ORDER_HOLD_SECONDS": "120",
    "ECOM_ORDERS_ARCHIVE_ENABLED": "0",
    "ECOM_ORDERS_ARCHIVE_BATCH_SIZE": "7",
}


class World:
    def __init__(self, services: Services, stack: Stack) -> None:
        self.services, self.stack = services, stack
        self.running: dict[str, RunningService] = {}
        self.shop: Shop | None = None
        self.history: orderhistory_pb2_grpc.OrderHistoryServiceStub | None = None
        self.channel: grpc.aio.Channel | None = None

    async def start(self, **env: str) -> None:
        await self.close()
        self.running = start_shop(self.services, **{**ENV, **env})
        self.shop = Shop.connect(self.running)
        self.channel = self.running["orders"].channel()
        self.history = orderhistory_pb2_grpc.OrderHistoryServiceStub(self.channel)

    async def close(self) -> None:
        if self.shop is not None:
            await self.shop.close()
        if self.channel is not None:
            await self.channel.close()
        self.shop = self.channel = None


@pytest.fixture(scope="module")
async def world(services: Services, stack: Stack) -> AsyncIterator[World]:
    w = World(services, stack)
    await w.start()
    yield w
    await w.close()


@pytest.fixture(scope="module")
async def store(world: World, stack: Stack) -> AsyncIterator[OrderStore]:
    s = await orders_db(stack)
    yield s
    await s.engine.dispose()


async def _seller_item(shop: Shop, seller: str) -> str:
    template = phone(f"Seller Phone {new_id('t')}", 799)
    template.supplier_id, template.sku = seller, new_id("sku")
    item = await shop.catalog.CreateItem(
        catalog_pb2.CreateItemRequest(request_id=new_id("r"), item=template), metadata=ADMIN
    )
    from ecom.inventory.v1 import inventory_pb2

    await shop.inventory.SetStock(
        inventory_pb2.SetStockRequest(
            item_id=item.item_id, warehouse_id="WH-BLR", available=10, request_id=new_id("s")
        ),
        metadata=ADMIN,
    )
    return str(item.item_id)


async def test_a_delivered_order_is_archived_whole_and_listed_once(
    world: World, store: OrderStore, stack: Stack
) -> None:
    shop, history = world.shop, world.history
    assert shop is not None and history is not None
    seller = new_id("seller")
    item = await _seller_item(shop, seller)
    user = new_id()
    delivered = await delivered_order(shop, user, item)
    assert delivered.state == pb.ORDER_STATE_DELIVERED
    live_other = await shop.checkout(user, await shop.item(stock=3))
    await make_archivable(store.engine, [delivered.order_id])
    before = await shop.get(delivered.order_id)

    # The stock commit owed since payment may still be running: archive
    # until the order has moved (it is not eligible while work is due).
    async def archived() -> hpb.ArchiveOrdersResponse | None:
        report = await archive_old(history)
        if delivered.order_id in report.archived_order_ids:
            return report
        await make_archivable(store.engine, [delivered.order_id])
        return None

    report = await wait_until_async(
        archived, f"order {delivered.order_id} archived", timeout=60, interval=0.5
    )
    assert live_other.order_id not in report.archived_order_ids
    assert await live_ids(store.engine, [delivered.order_id, live_other.order_id]) == {
        live_other.order_id
    }
    async with store.engine.connect() as conn:
        lines = await store._lines(conn, [delivered.order_id])
    assert lines == {}

    got = await shop.orders.GetOrder(
        pb.GetOrderRequest(order_id=delivered.order_id), metadata=as_user(user)
    )
    assert got.archived
    expected = pb.Order()
    expected.CopyFrom(before)
    expected.archived = True
    expected.lines[0].seller_id = seller
    assert got == expected  # every field and timestamp as the live order showed
    assert got.shipment.tracking_number == "BD42" and got.payment.payment_id

    pages = await history_of(shop, user, page_size=1, metadata=as_user(user))
    listed = [o for p in pages for o in p.orders]
    assert [o.order_id for o in listed] == [live_other.order_id, delivered.order_id]
    assert [o.archived for o in listed] == [False, True]
    assert not any(p.archive_unavailable for p in pages)

    mine = await history.ListSellerOrders(
        hpb.ListSellerOrdersRequest(seller_id=seller), metadata=ADMIN
    )
    assert [o.order_id for o in mine.orders] == [delivered.order_id]

    for call, request in (
        (
            shop.orders.CancelOrder,
            pb.CancelOrderRequest(order_id=delivered.order_id, request_id=new_id("c")),
        ),
        (
            shop.orders.ShipOrder,
            pb.ShipOrderRequest(order_id=delivered.order_id, request_id=new_id("s")),
        ),
        (
            shop.orders.DeliverOrder,
            pb.DeliverOrderRequest(order_id=delivered.order_id, request_id=new_id("d")),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request, metadata=ADMIN)
        assert status_of(err.value) == (grpc.StatusCode.FAILED_PRECONDITION, "ORDER_ARCHIVED")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.orders.GetOrder(
            pb.GetOrderRequest(order_id=delivered.order_id), metadata=as_user(new_id())
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # Archiving again finds nothing of it and writes nothing twice.
    again = await archive_old(history)
    assert delivered.order_id not in again.archived_order_ids
    cluster, session = archive_session(stack)
    try:
        rows = list(
            session.execute("SELECT order_id FROM orders_by_user WHERE user_id = %s", (user,))
        )
        assert [r.order_id for r in rows] == [delivered.order_id]
    finally:
        cluster.shutdown()


async def test_archive_requests_are_checked_and_dry_runs_move_nothing(
    world: World, store: OrderStore
) -> None:
    history = world.history
    assert history is not None
    user = new_id()
    recs = [synthetic_order(user, now() - timedelta(days=5 + i)) for i in range(3)]
    await insert_orders(store, recs)
    await make_archivable(store.engine, [r.order_id for r in recs])
    dry = await history.ArchiveOrders(
        hpb.ArchiveOrdersRequest(min_age=archive_request().min_age, dry_run=True), metadata=ADMIN
    )
    assert {r.order_id for r in recs} <= set(dry.archived_order_ids)
    assert await live_ids(store.engine, [r.order_id for r in recs]) == {r.order_id for r in recs}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await history.ArchiveOrders(archive_request(max_orders=100_001), metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_orders" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await history.ArchiveOrders(archive_request(), metadata=as_user(user))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # One at a time, with an idempotency key: a retry returns the first report.
    rid = new_id("arch")
    first = await history.ArchiveOrders(
        hpb.ArchiveOrdersRequest(min_age=archive_request().min_age, max_orders=1, request_id=rid),
        metadata=ADMIN,
    )
    assert first.archived_count == 1 and first.more_remaining
    retry = await history.ArchiveOrders(
        hpb.ArchiveOrdersRequest(min_age=archive_request().min_age, max_orders=1, request_id=rid),
        metadata=ADMIN,
    )
    assert retry == first
    await archive_old(history)
    assert await live_ids(store.engine, [r.order_id for r in recs]) == set()


async def test_concurrent_archive_runs_never_take_the_same_order(
    world: World, store: OrderStore, stack: Stack
) -> None:
    """Four runs at once (as from two replicas' schedules and an admin):
    SKIP LOCKED hands each order to exactly one of them."""
    assert world.history is not None
    user = new_id()
    recs = [synthetic_order(user, now() - timedelta(days=2, minutes=i)) for i in range(60)]
    await insert_orders(store, recs)
    ids = {r.order_id for r in recs}
    await make_archivable(store.engine, ids)
    reports = await asyncio.gather(*(archive_old(world.history) for _ in range(4)))
    mine = [oid for rep in reports for oid in rep.archived_order_ids if oid in ids]
    assert sorted(mine) == sorted(ids)  # each exactly once
    assert await live_ids(store.engine, ids) == set()
    cluster, session = archive_session(stack)
    try:
        rows = list(
            session.execute("SELECT order_id FROM orders_by_user WHERE user_id = %s", (user,))
        )
        assert sorted(r.order_id for r in rows) == sorted(ids)
    finally:
        cluster.shutdown()


def _expected(recs: list) -> list[str]:  # type: ignore[type-arg]
    return newest_first(recs)


async def _check_history(
    world: World,
    user: str,
    recs: list,
    archived: set[str],  # type: ignore[type-arg]
    page_size: int,
) -> None:
    assert world.shop is not None
    pages = await history_of(world.shop, user, page_size)
    listed = [o for p in pages for o in p.orders]
    assert [o.order_id for o in listed] == _expected(recs)
    assert {o.order_id for o in listed if o.archived} == archived
    assert all(len(p.orders) == page_size for p in pages[:-1])


async def test_history_pages_equal_a_brute_force_merge(world: World, store: OrderStore) -> None:
    user = new_id()
    base = now() - timedelta(days=40)
    # Ties on create_time on purpose: the order id breaks them.
    times = [base + timedelta(seconds=random.randrange(12)) for _ in range(30)]
    recs = [synthetic_order(user, t) for t in times]
    await insert_orders(store, recs)
    moved = {r.order_id for r in random.sample(recs, 17)}
    await make_archivable(store.engine, moved)
    assert world.history is not None
    await archive_old(world.history)
    assert await live_ids(store.engine, moved) == set()
    for size in (1, 4, 7, 30, 100):
        await _check_history(world, user, recs, moved, size)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.data(),
    count=st.integers(min_value=0, max_value=25),
    page_size=st.integers(min_value=1, max_value=9),
)
async def test_history_stays_exact_while_orders_move_between_pages(
    world: World, store: OrderStore, data: st.DataObject, count: int, page_size: int
) -> None:
    """Random mixes; between page reads, random orders move to the archive.
    The pages together are every order once, newest first."""
    shop, history = world.shop, world.history
    assert shop is not None and history is not None
    user = new_id()
    base = now() - timedelta(days=40)
    offsets = data.draw(st.lists(st.integers(0, 8), min_size=count, max_size=count))
    recs = [synthetic_order(user, base + timedelta(milliseconds=o)) for o in offsets]
    await insert_orders(store, recs)
    ids = [r.order_id for r in recs]
    first = set(data.draw(st.sets(st.sampled_from(ids)))) if ids else set()
    await make_archivable(store.engine, first)
    await archive_old(history)
    listed: list[pb.Order] = []
    token = ""
    while True:
        page = await shop.orders.ListUserOrders(
            pb.ListUserOrdersRequest(user_id=user, page_size=page_size, page_token=token),
            metadata=ADMIN,
        )
        listed += page.orders
        token = page.next_page_token
        if not token:
            break
        later = set(data.draw(st.sets(st.sampled_from(ids)))) if ids else set()
        await make_archivable(store.engine, later - first)
        await archive_old(history)
    assert [o.order_id for o in listed] == _expected(recs)


async def test_archiving_with_cassandra_unreachable_deletes_nothing(
    world: World, store: OrderStore
) -> None:
    user = new_id()
    recs = [synthetic_order(user, now() - timedelta(days=3 + i)) for i in range(4)]
    await insert_orders(store, recs)
    await make_archivable(store.engine, [r.order_id for r in recs[:2]])
    assert world.history is not None
    await archive_old(world.history)  # two archived while Cassandra is up
    await make_archivable(store.engine, [r.order_id for r in recs[2:]])
    await world.start(ECOM_CASSANDRA_HOSTS=UNREACHABLE_ADDR)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await archive_old(world.history)
        assert status_of(err.value) == (grpc.StatusCode.UNAVAILABLE, "ARCHIVE_UNAVAILABLE")
        assert await live_ids(store.engine, [r.order_id for r in recs]) == {
            r.order_id for r in recs[2:]
        }
        assert world.shop is not None
        page = await world.shop.orders.ListUserOrders(
            pb.ListUserOrdersRequest(user_id=user), metadata=as_user(user)
        )
        assert page.archive_unavailable
        assert [o.order_id for o in page.orders] == newest_first(recs[2:])
        live = await world.shop.get(recs[2].order_id)
        assert not live.archived
    finally:
        await world.start()
    page = await world.shop.orders.ListUserOrders(
        pb.ListUserOrdersRequest(user_id=user), metadata=as_user(user)
    )
    assert not page.archive_unavailable
    assert [o.order_id for o in page.orders] == newest_first(recs)


async def test_archived_orders_are_read_by_id_while_mariadb_is_unreachable(
    world: World, store: OrderStore, stack: Stack
) -> None:
    user = new_id()
    recs = [synthetic_order(user, now() - timedelta(days=3))]
    await insert_orders(store, recs)
    await make_archivable(store.engine, [recs[0].order_id])
    assert world.history is not None
    await archive_old(world.history)
    # The read path of svc_orders, wired to a MariaDB address where nothing
    # listens and to the real archive keyspace.
    dead = await make_engine(f"mysql://root@{UNREACHABLE_ADDR}", "orders", create=False)
    archive = ArchiveStore(
        [
            (h, int(p))
            for h, p in (x.rsplit(":", 1) for x in stack.env["ECOM_CASSANDRA_HOSTS"].split(","))
        ],
        stack.db_prefix + "orderhistory",
    )
    service = OrderService(OrderStore(dead), None, None, OrderSettings())  # type: ignore[arg-type]
    reader = OrderHistory(service, archive)
    try:
        got = await reader.get_order(recs[0].order_id)
        assert got.archived and got.order_id == recs[0].order_id and got.user_id == user
        from mesh.errors import Unavailable

        with pytest.raises(Unavailable):
            await reader.get_order(new_id("missing"))
    finally:
        await archive.close()
        await dead.dispose()


async def test_the_schedule_archives_old_orders_by_itself(world: World, store: OrderStore) -> None:
    """With the scheduled archiver on (as under `make up`) and an archive
    age of a day, old terminal orders move without any call; recent ones
    and live states stay."""
    user = new_id()
    old = [synthetic_order(user, now() - timedelta(days=9, minutes=i)) for i in range(3)]
    recent = synthetic_order(user, now() - timedelta(days=9, minutes=5))
    placed = synthetic_order(user, now() - timedelta(days=9, minutes=6), state=OrderState.PLACED)
    await insert_orders(store, [*old, recent, placed])
    await make_archivable(store.engine, [r.order_id for r in [*old, placed]])
    await world.start(
        ECOM_ORDERS_ARCHIVE_ENABLED="1",
        ECOM_ORDER_ARCHIVE_AGE="1d",
        ECOM_ORDERS_ARCHIVE_INTERVAL_SECONDS="0.5",
    )
    try:
        ids = {r.order_id for r in [*old, recent, placed]}
        wanted = {recent.order_id, placed.order_id}

        async def only_wanted_live() -> bool:
            return await live_ids(store.engine, ids) == wanted

        await wait_until_async(
            only_wanted_live, f"only {wanted} left live", timeout=60, interval=0.3
        )
    finally:
        await world.start()


async def test_kill_9_between_the_cassandra_write_and_the_delete_loses_and_duplicates_nothing(
    world: World, store: OrderStore, stack: Stack
) -> None:
    user = new_id()
    recs = [synthetic_order(user, now() - timedelta(days=3, minutes=i)) for i in range(6)]
    await insert_orders(store, recs)
    ids = {r.order_id for r in recs}
    await make_archivable(store.engine, ids)
    pause = Path(STACK) / f"archive-pause-{stack.run_id}-{os.getpid()}"
    pause.unlink(missing_ok=True)
    await world.start(
        ECOM_ORDERS_ARCHIVE_PAUSE_BEFORE_DELETE_FILE=str(pause),
        ECOM_ORDERS_ARCHIVE_BATCH_SIZE="1000",
    )
    assert world.history is not None
    run = asyncio.ensure_future(archive_old(world.history))
    await wait_until_async(
        lambda: asyncio.to_thread(pause.exists),
        "the archiver at its pause point",
        timeout=60,
        interval=0.1,
    )
    paused = set(pause.read_text().split())
    assert ids <= paused
    world.running["orders"].kill()  # kill -9 with the batch in Cassandra, not yet deleted
    with pytest.raises(grpc.aio.AioRpcError):
        await run
    pause.unlink()
    cluster, session = archive_session(stack)
    try:
        in_cassandra = {
            r.order_id
            for r in session.execute(
                "SELECT order_id FROM orders_by_user WHERE user_id = %s", (user,)
            )
        }
        assert in_cassandra == ids  # written before the kill
        assert await live_ids(store.engine, ids) == ids  # and nothing deleted

        await world.start()  # restarted without the hook
        assert world.shop is not None and world.history is not None
        pages = await history_of(world.shop, user, page_size=4)
        listed = [o for p in pages for o in p.orders]
        assert [o.order_id for o in listed] == newest_first(recs)  # each once, live copy
        assert not any(o.archived for o in listed)

        await archive_old(world.history)
        assert await live_ids(store.engine, ids) == set()
        rows = list(
            session.execute("SELECT order_id FROM orders_by_user WHERE user_id = %s", (user,))
        )
        assert sorted(r.order_id for r in rows) == sorted(ids)  # no duplicates
        pages = await history_of(world.shop, user, page_size=4)
        listed = [o for p in pages for o in p.orders]
        assert [o.order_id for o in listed] == newest_first(recs)
        assert all(o.archived for o in listed)
        assert all(o.state == pb.ORDER_STATE_DELIVERED for o in listed)
    finally:
        cluster.shutdown()
