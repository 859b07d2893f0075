"""svc_inventory as a real process against the real MariaDB and Kafka.

Serviceability is a peer service, not a datastore: svc_tat is being built
in parallel, so these tests run a small in-test ServiceabilityService
(fixed routes per pincode) on an ephemeral port and point the inventory
process at it with ECOM_TAT_ADDR.

Run: ECOM_TEST_SERVERS=mariadb,kafka .venv/bin/python -m pytest \
     tests/integration/test_inventory_service.py -q
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from ecom.events.v1 import events_pb2
from ecom.inventory.v1 import inventory_pb2 as pb
from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2 as spb
from ecom.serviceability.v1 import serviceability_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mesh.auth import Caller, encode_jwt_payload
from mesh.db import make_engine
from mesh.errors import error_details
from mesh.kafka import make_consumer
from mesh.outbox import outbox
from svc_inventory.store import InventoryStore, StockConstraintViolated
from tests.conftest import RunningService, Services, Stack

pytestmark = pytest.mark.integration

# pincode -> serving warehouses, fastest first
ROUTES = {
    "560001": ["blr-1", "blr-2", "del-1"],
    "110001": ["del-1", "blr-1"],
    "999999": [],
}
WAREHOUSES = {"blr-1", "blr-2", "del-1", "mum-1"}

ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("admin-1", frozenset({"admin"})))),)
ORDERS = (("x-jwt-payload", encode_jwt_payload(Caller("svc_orders", frozenset({"service"})))),)
CUSTOMER = (("x-jwt-payload", encode_jwt_payload(Caller("user-1", frozenset({"customer"})))),)


class FakeServiceability(serviceability_pb2_grpc.ServiceabilityServiceServicer):
    """Just the two RPCs inventory uses, with fixed answers."""

    def __init__(self) -> None:
        self.list_routes_calls = 0

    async def ListRoutes(self, request: spb.ListRoutesRequest, context: Any) -> Any:
        self.list_routes_calls += 1
        routes = [
            spb.Route(warehouse_id=w, eta_days=i + 1)
            for i, w in enumerate(ROUTES.get(request.pincode, []))
        ]
        return spb.ListRoutesResponse(pincode=request.pincode, routes=routes)

    async def GetWarehouse(self, request: spb.GetWarehouseRequest, context: Any) -> Any:
        if request.warehouse_id not in WAREHOUSES:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such warehouse")
        return spb.Warehouse(warehouse_id=request.warehouse_id, name=request.warehouse_id)


@pytest.fixture(scope="module")
async def tat_addr() -> AsyncIterator[str]:
    server = grpc.aio.server()
    serviceability_pb2_grpc.add_ServiceabilityServiceServicer_to_server(
        FakeServiceability(), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


def start_inventory(services: Services, tat_addr: str) -> RunningService:
    return services.start("inventory", ECOM_TAT_ADDR=tat_addr)


@pytest.fixture(scope="module")
def inventory(services: Services, tat_addr: str) -> RunningService:
    return start_inventory(services, tat_addr)


@pytest.fixture(scope="module")
async def stub(inventory: RunningService) -> AsyncIterator[inventory_pb2_grpc.InventoryServiceStub]:
    channel = grpc.aio.insecure_channel(inventory.target)
    yield inventory_pb2_grpc.InventoryServiceStub(channel)
    await channel.close()


@pytest.fixture(scope="module")
async def db(stack: Stack, inventory: RunningService) -> AsyncIterator[AsyncEngine]:
    engine = await make_engine(
        stack.env["ECOM_MYSQL_URL"], stack.mysql_db("inventory"), create=False
    )
    yield engine
    await engine.dispose()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def set_stock(
    stub: inventory_pb2_grpc.InventoryServiceStub, item: str, wh: str, n: int
) -> pb.WarehouseStock:
    return await stub.SetStock(
        pb.SetStockRequest(item_id=item, warehouse_id=wh, available=n, request_id=new_id("rq")),
        metadata=ADMIN,
    )


async def reserve(
    stub: inventory_pb2_grpc.InventoryServiceStub,
    order: str,
    lines: dict[str, int],
    pincode: str = "560001",
) -> pb.Reservation:
    return await stub.ReserveStock(
        pb.ReserveStockRequest(
            order_id=order,
            pincode=pincode,
            lines=[pb.ReservationLine(item_id=i, quantity=q) for i, q in lines.items()],
        ),
        metadata=ORDERS,
    )


async def stock_of(stub: inventory_pb2_grpc.InventoryServiceStub, item: str) -> pb.ItemStock:
    return await stub.GetStock(pb.GetStockRequest(item_id=item), metadata=ADMIN)


def status_of(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, list[Any]]:
    """(code, ErrorInfo reason, all details) of a failed call."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, exc
    details = error_details(status)
    reason = next(d.reason for d in details if isinstance(d, error_details_pb2.ErrorInfo))
    return exc.code(), reason, details


async def balances(db: AsyncEngine, item: str) -> list[dict[str, int]]:
    """Per stock row of `item`: counters next to the sums of its HELD and
    COMMITTED reservation lines (what reconciliation compares)."""
    query = sa.text(
        """
        SELECT s.warehouse_id, s.available, s.reserved, s.sold,
          COALESCE((SELECT SUM(l.quantity) FROM reservation_lines l
                    JOIN reservations r ON r.order_id = l.order_id
                    WHERE l.item_id = s.item_id AND l.warehouse_id = s.warehouse_id
                      AND r.state = 'HELD'), 0) AS held,
          COALESCE((SELECT SUM(l.quantity) FROM reservation_lines l
                    JOIN reservations r ON r.order_id = l.order_id
                    WHERE l.item_id = s.item_id AND l.warehouse_id = s.warehouse_id
                      AND r.state = 'COMMITTED'), 0) AS committed
        FROM stock s WHERE s.item_id = :item ORDER BY s.warehouse_id
        """
    )
    async with db.connect() as conn:
        rows = (await conn.execute(query, {"item": item})).mappings().all()
    return [{k: (v if k == "warehouse_id" else int(v)) for k, v in r.items()} for r in rows]


# --------------------------------------------------------------------------
# Stock administration
# --------------------------------------------------------------------------


async def test_set_and_get_stock(stub: inventory_pb2_grpc.InventoryServiceStub) -> None:
    item = new_id("item")
    empty = await stock_of(stub, item)
    assert (empty.item_id, list(empty.warehouses), empty.total_available) == (item, [], 0)

    row = await set_stock(stub, item, "blr-2", 7)
    assert (row.item_id, row.warehouse_id, row.available, row.reserved) == (item, "blr-2", 7, 0)
    assert row.update_time.seconds > 0
    await set_stock(stub, item, "blr-1", 5)
    got = await stock_of(stub, item)
    assert [(w.warehouse_id, w.available) for w in got.warehouses] == [("blr-1", 5), ("blr-2", 7)]
    assert (got.total_available, got.total_reserved) == (12, 0)

    batch = await stub.BatchGetStock(
        pb.BatchGetStockRequest(item_ids=[item, "never-stocked", item]), metadata=CUSTOMER
    )
    assert [(s.item_id, s.total_available) for s in batch.items] == [
        (item, 12),
        ("never-stocked", 0),
    ]


async def test_set_stock_retry_does_not_reset_after_reservations(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    item = new_id("item")
    req = pb.SetStockRequest(item_id=item, warehouse_id="blr-1", available=10, request_id="r1")
    await stub.SetStock(req, metadata=ADMIN)
    await reserve(stub, new_id("order"), {item: 3})
    again = await stub.SetStock(req, metadata=ADMIN)
    assert (again.available, again.reserved) == (7, 3)


async def test_set_stock_validation_and_auth(stub: inventory_pb2_grpc.InventoryServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SetStock(
            pb.SetStockRequest(item_id="x", warehouse_id="blr-1", available=-1, request_id="r"),
            metadata=ADMIN,
        )
    code, _, details = status_of(err.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    bad = next(d for d in details if isinstance(d, error_details_pb2.BadRequest))
    assert [v.field for v in bad.field_violations] == ["available"]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SetStock(
            pb.SetStockRequest(item_id="x", warehouse_id="nowhere", available=1, request_id="r"),
            metadata=ADMIN,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    for metadata, code in ((CUSTOMER, grpc.StatusCode.PERMISSION_DENIED), ((), None)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetStock(pb.GetStockRequest(item_id="x"), metadata=metadata)
        assert err.value.code() == (code or grpc.StatusCode.UNAUTHENTICATED)


def stock_row(item: str, wh: str, n: int, request_id: str = "") -> pb.SetStockRequest:
    return pb.SetStockRequest(item_id=item, warehouse_id=wh, available=n, request_id=request_id)


def bad_fields(exc: grpc.aio.AioRpcError) -> list[str]:
    code, _, details = status_of(exc)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, exc
    bad = next(d for d in details if isinstance(d, error_details_pb2.BadRequest))
    return [v.field for v in bad.field_violations]


async def test_batch_set_stock_sets_replays_and_publishes_per_row(
    stub: inventory_pb2_grpc.InventoryServiceStub, stack: Stack
) -> None:
    a, b = new_id("bulk"), new_id("bulk")
    await set_stock(stub, a, "blr-1", 4)
    await reserve(stub, new_id("order"), {a: 1})  # a@blr-1: 3 available, 1 reserved
    rows = [
        stock_row(a, "blr-1", 10, new_id("rq")),
        stock_row(a, "blr-2", 6, new_id("rq")),
        stock_row(b, "del-1", 0, new_id("rq")),
        stock_row(b, "blr-1", 2, new_id("rq")),
    ]
    resp = await stub.BatchSetStock(pb.BatchSetStockRequest(requests=rows), metadata=ADMIN)
    got = [
        (r.stock.item_id, r.stock.warehouse_id, r.stock.available, r.stock.reserved, r.replayed)
        for r in resp.results
    ]
    assert got == [
        (a, "blr-1", 10, 1, False),
        (a, "blr-2", 6, 0, False),
        (b, "del-1", 0, 0, False),
        (b, "blr-1", 2, 0, False),
    ]
    rows_a = (await stock_of(stub, a)).warehouses
    assert [(w.warehouse_id, w.available, w.reserved) for w in rows_a] == [
        ("blr-1", 10, 1), ("blr-2", 6, 0)
    ]
    assert (await stock_of(stub, b)).total_available == 2

    # Stock moves, then the same batch is retried: nothing is set again.
    await reserve(stub, new_id("order"), {a: 4})  # from blr-1, the fastest
    again = await stub.BatchSetStock(pb.BatchSetStockRequest(requests=rows), metadata=ADMIN)
    assert [r.replayed for r in again.results] == [True] * 4
    assert [(r.stock.available, r.stock.reserved) for r in again.results] == [
        (6, 5), (6, 0), (0, 0), (2, 0)
    ]
    assert (await stock_of(stub, a)).total_available == 12

    # One event per applied row, in order per item, none for the replays.
    events_a = await asyncio.to_thread(read_stock_events, stack, a, 5)
    events_b = await asyncio.to_thread(read_stock_events, stack, b, 2)
    set_rows = [
        (e.stock_changed.warehouse_id, e.stock_changed.available, e.stock_changed.available_delta,
         e.stock_changed.item_total_available, e.request_id)
        for e in events_a
        if e.stock_changed.reason == events_pb2.STOCK_CHANGE_REASON_SET
    ]
    assert set_rows == [
        ("blr-1", 4, 4, 4, set_rows[0][4]),  # the single SetStock first
        ("blr-1", 10, 7, 10, rows[0].request_id),
        ("blr-2", 6, 6, 16, rows[1].request_id),
    ]
    assert [e.stock_changed.reason for e in events_a] == [
        events_pb2.STOCK_CHANGE_REASON_SET,
        events_pb2.STOCK_CHANGE_REASON_RESERVED,
        events_pb2.STOCK_CHANGE_REASON_SET,
        events_pb2.STOCK_CHANGE_REASON_SET,
        events_pb2.STOCK_CHANGE_REASON_RESERVED,
    ]
    versions = [e.entity_version for e in events_a]
    assert versions == sorted(versions) and len(set(versions)) == 5
    assert [(e.stock_changed.warehouse_id, e.stock_changed.available,
             e.stock_changed.item_total_available) for e in events_b] == [
        ("del-1", 0, 0), ("blr-1", 2, 2)
    ]
    more = await asyncio.to_thread(read_stock_events, stack, b, 3, 3)
    assert len(more) == 2, "a replayed batch must not publish again"


async def test_batch_set_stock_with_a_batch_key_replays_rows_without_their_own(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    item = new_id("bulk")
    req = pb.BatchSetStockRequest(
        requests=[stock_row(item, "blr-1", 5), stock_row(item, "del-1", 3)],
        request_id=new_id("batch"),
    )
    first = await stub.BatchSetStock(req, metadata=ADMIN)
    assert [r.replayed for r in first.results] == [False, False]
    await reserve(stub, new_id("order"), {item: 2})
    second = await stub.BatchSetStock(req, metadata=ADMIN)
    assert [(r.replayed, r.stock.available) for r in second.results] == [(True, 3), (True, 3)]


async def test_batch_without_keys_runs_each_time_and_a_reused_key_is_refused(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    item = new_id("bulk")
    plain = pb.BatchSetStockRequest(requests=[stock_row(item, "blr-1", 5)])
    first = await stub.BatchSetStock(plain, metadata=ADMIN)
    await reserve(stub, new_id("order"), {item: 2})
    second = await stub.BatchSetStock(plain, metadata=ADMIN)  # no key: runs again
    assert [(r.replayed, r.stock.available) for r in first.results] == [(False, 5)]
    assert [(r.replayed, r.stock.available, r.stock.reserved) for r in second.results] == [
        (False, 5, 2)
    ]

    key = new_id("batch")
    await stub.BatchSetStock(
        pb.BatchSetStockRequest(requests=[stock_row(item, "del-1", 1)], request_id=key),
        metadata=ADMIN,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.BatchSetStock(
            pb.BatchSetStockRequest(requests=[stock_row(item, "del-1", 9)], request_id=key),
            metadata=ADMIN,
        )
    code, reason, _ = status_of(err.value)
    assert (code, reason) == (grpc.StatusCode.ABORTED, "REQUEST_ID_REUSED")
    assert key in (err.value.details() or "")
    rows = (await stock_of(stub, item)).warehouses
    assert [(w.warehouse_id, w.available) for w in rows] == [("blr-1", 5), ("del-1", 1)]


async def test_concurrent_retries_of_one_batch_apply_it_once(
    stub: inventory_pb2_grpc.InventoryServiceStub, db: AsyncEngine
) -> None:
    items = [new_id("bulk") for _ in range(20)]
    req = pb.BatchSetStockRequest(
        requests=[stock_row(i, w, 7, new_id("rq")) for i in items for w in ("blr-1", "del-1")]
    )
    answers = await asyncio.gather(
        *(stub.BatchSetStock(req, metadata=ADMIN) for _ in range(4))
    )
    applied = [sum(not r.replayed for r in a.results) for a in answers]
    assert sorted(applied) == [0, 0, 0, 40]
    async with db.connect() as conn:
        versions = (await conn.execute(
            sa.text("SELECT version FROM stock WHERE item_id IN :items").bindparams(
                sa.bindparam("items", expanding=True)), {"items": items}
        )).scalars().all()
    assert sorted(versions) == [1] * 40


async def test_ids_differing_only_in_case_are_different_rows(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    """Under the database's case-insensitive default collation the second
    spelling used to find the first one's row and fail with INTERNAL."""
    item = new_id("case")
    await set_stock(stub, item, "blr-1", 1)
    upper = await set_stock(stub, item.upper(), "blr-1", 2)
    assert (upper.item_id, upper.available) == (item.upper(), 2)
    batch = await stub.BatchSetStock(
        pb.BatchSetStockRequest(requests=[
            stock_row(item.title(), "blr-1", 3, new_id("rq")),
            stock_row(item, "blr-2", 4, new_id("rq")),
        ]),
        metadata=ADMIN,
    )
    assert [(r.stock.item_id, r.stock.available) for r in batch.results] == [
        (item.title(), 3), (item, 4)
    ]
    assert (await stock_of(stub, item)).total_available == 5
    assert (await stock_of(stub, item.upper())).total_available == 2


async def test_batch_set_stock_names_bad_rows_and_refuses_customers(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    item = new_id("bulk")
    good = stock_row(item, "blr-1", 1, new_id("rq"))
    cases = [
        ([good, stock_row(item, "blr-2", -3, new_id("rq"))], ["requests[1].available"]),
        ([good, stock_row("", "blr-2", 1, new_id("rq"))], ["requests[1].item_id"]),
        ([good, stock_row(item, "blr-1", 2, new_id("rq"))], ["requests[1].warehouse_id"]),
        ([good, stock_row(item, "blr-2", 2, good.request_id)], ["requests[1].request_id"]),
        ([], ["requests"]),
        ([stock_row(f"{item}-{i}", "blr-1", 1, f"{item}-{i}") for i in range(1001)],
         ["requests"]),
    ]
    for rows, fields in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.BatchSetStock(pb.BatchSetStockRequest(requests=rows), metadata=ADMIN)
        assert bad_fields(err.value) == fields, rows[:2]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.BatchSetStock(
            pb.BatchSetStockRequest(requests=[good, stock_row(item, "nowhere", 1, new_id("rq"))]),
            metadata=ADMIN,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "requests[1].warehouse_id" in (err.value.details() or "")

    # A row whose request id was used for another row before is named too.
    await stub.BatchSetStock(pb.BatchSetStockRequest(requests=[good]), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.BatchSetStock(
            pb.BatchSetStockRequest(
                requests=[stock_row(item, "del-1", 1, new_id("rq")),
                          stock_row(item, "blr-2", 1, good.request_id)]),
            metadata=ADMIN,
        )
    assert bad_fields(err.value) == ["requests[1].request_id"]
    # Nothing of a refused batch was applied.
    assert [(w.warehouse_id, w.available) for w in (await stock_of(stub, item)).warehouses] == [
        ("blr-1", 1)
    ]

    for metadata, code in ((CUSTOMER, grpc.StatusCode.PERMISSION_DENIED),
                           (ORDERS, grpc.StatusCode.PERMISSION_DENIED),
                           ((), grpc.StatusCode.UNAUTHENTICATED)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.BatchSetStock(pb.BatchSetStockRequest(requests=[good]), metadata=metadata)
        assert err.value.code() == code


# --------------------------------------------------------------------------
# Reservations
# --------------------------------------------------------------------------


async def test_reserve_commit_release_and_idempotent_retries(
    stub: inventory_pb2_grpc.InventoryServiceStub, db: AsyncEngine
) -> None:
    a, b = new_id("a"), new_id("b")
    await set_stock(stub, a, "blr-2", 10)
    await set_stock(stub, a, "del-1", 10)
    await set_stock(stub, b, "blr-1", 1)  # fastest, but too little for 2
    await set_stock(stub, b, "blr-2", 5)
    order = new_id("order")
    expire = Timestamp(seconds=int(time.time()) + 600)
    req = pb.ReserveStockRequest(
        order_id=order,
        pincode="560001",
        hold_expire_time=expire,
        lines=[
            pb.ReservationLine(item_id=b, quantity=2),
            pb.ReservationLine(item_id=a, quantity=3),
        ],
    )
    held = await stub.ReserveStock(req, metadata=ORDERS)
    assert held.state == pb.RESERVATION_STATE_HELD
    assert held.hold_expire_time.seconds == expire.seconds
    assert {(line.item_id, line.warehouse_id, line.quantity) for line in held.lines} == {
        (a, "blr-2", 3),  # blr-1 has no row for a; blr-2 is next fastest
        (b, "blr-2", 2),  # blr-1 is faster but holds only 1
    }
    again = await stub.ReserveStock(req, metadata=ORDERS)
    assert again.lines == held.lines and again.state == pb.RESERVATION_STATE_HELD
    sa_ = await stock_of(stub, a)
    assert [(w.warehouse_id, w.available, w.reserved) for w in sa_.warehouses] == [
        ("blr-2", 7, 3),
        ("del-1", 10, 0),
    ]

    committed = await stub.CommitReservation(
        pb.CommitReservationRequest(order_id=order), metadata=ORDERS
    )
    assert committed.state == pb.RESERVATION_STATE_COMMITTED
    again = await stub.CommitReservation(
        pb.CommitReservationRequest(order_id=order), metadata=ORDERS
    )
    assert again.state == pb.RESERVATION_STATE_COMMITTED
    assert [(w.available, w.reserved) for w in (await stock_of(stub, a)).warehouses] == [
        (7, 0),
        (10, 0),
    ]

    # Cancelled before shipping: sold units go back on the shelf.
    released = await stub.ReleaseReservation(
        pb.ReleaseReservationRequest(order_id=order, reason="user_cancelled"), metadata=ORDERS
    )
    assert (released.state, released.release_reason) == (
        pb.RESERVATION_STATE_RELEASED,
        "user_cancelled",
    )
    again = await stub.ReleaseReservation(
        pb.ReleaseReservationRequest(order_id=order, reason="other"), metadata=ORDERS
    )
    assert (again.state, again.release_reason) == (pb.RESERVATION_STATE_RELEASED, "user_cancelled")
    assert (await stock_of(stub, a)).total_available == 20
    assert (await stock_of(stub, b)).total_available == 6

    for rpc in (stub.ReserveStock, stub.CommitReservation):
        request = req if rpc is stub.ReserveStock else pb.CommitReservationRequest(order_id=order)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc(request, metadata=ORDERS)
        code, reason, _ = status_of(err.value)
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_RELEASED")
    for item in (a, b):
        assert all(
            r["reserved"] == r["held"] and r["sold"] == r["committed"]
            for r in await balances(db, item)
        )


async def test_concurrent_duplicate_reserves_hold_once(
    stub: inventory_pb2_grpc.InventoryServiceStub, db: AsyncEngine
) -> None:
    item = new_id("item")
    await set_stock(stub, item, "blr-1", 10)
    order = new_id("order")
    results = await asyncio.gather(*(reserve(stub, order, {item: 3}) for _ in range(10)))
    assert {(r.order_id, r.state, r.lines[0].quantity) for r in results} == {
        (order, pb.RESERVATION_STATE_HELD, 3)
    }
    got = await stock_of(stub, item)
    assert (got.total_available, got.total_reserved) == (7, 3)
    (row,) = await balances(db, item)
    assert row["held"] == 3


async def test_release_of_held_returns_units(stub: inventory_pb2_grpc.InventoryServiceStub) -> None:
    item = new_id("item")
    await set_stock(stub, item, "del-1", 4)
    order = new_id("order")
    held = await reserve(stub, order, {item: 4}, pincode="110001")
    assert held.lines[0].warehouse_id == "del-1"
    assert (await stock_of(stub, item)).total_available == 0
    await stub.ReleaseReservation(
        pb.ReleaseReservationRequest(order_id=order, reason="payment_declined"), metadata=ORDERS
    )
    got = await stock_of(stub, item)
    assert (got.total_available, got.total_reserved) == (4, 0)
    fetched = await stub.GetReservation(pb.GetReservationRequest(order_id=order), metadata=ORDERS)
    assert fetched.state == pb.RESERVATION_STATE_RELEASED and len(fetched.lines) == 1


async def test_all_or_nothing_when_one_line_is_short(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    ok, short1, short2 = new_id("ok"), new_id("short1"), new_id("short2")
    await set_stock(stub, ok, "blr-1", 10)
    await set_stock(stub, short1, "blr-1", 1)
    await set_stock(stub, short1, "blr-2", 1)  # 2 in total but no single warehouse has 2
    await set_stock(stub, short2, "mum-1", 50)  # mum-1 does not serve 560001
    order = new_id("order")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await reserve(stub, order, {ok: 2, short1: 2, short2: 1})
    code, reason, details = status_of(err.value)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_STOCK")
    failure = next(d for d in details if isinstance(d, error_details_pb2.PreconditionFailure))
    assert sorted((v.type, v.subject) for v in failure.violations) == sorted(
        [("STOCK", short1), ("STOCK", short2)]
    )
    # Nothing moved and nothing was recorded.
    assert (await stock_of(stub, ok)).total_available == 10
    assert (await stock_of(stub, short1)).total_available == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetReservation(pb.GetReservationRequest(order_id=order), metadata=ORDERS)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Once stock arrives, a retry of the same order succeeds.
    await set_stock(stub, short1, "blr-2", 3)
    await set_stock(stub, short2, "blr-1", 1)
    held = await reserve(stub, order, {ok: 2, short1: 2, short2: 1})
    assert held.state == pb.RESERVATION_STATE_HELD and len(held.lines) == 3


async def test_not_serviceable_and_bad_requests(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    item = new_id("item")
    await set_stock(stub, item, "blr-1", 10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await reserve(stub, new_id("order"), {item: 1}, pincode="999999")
    assert status_of(err.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_SERVICEABLE")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReserveStock(
            pb.ReserveStockRequest(
                order_id=new_id("order"),
                pincode="12",
                lines=[
                    pb.ReservationLine(item_id=item, quantity=1),
                    pb.ReservationLine(item_id=item, quantity=0),
                ],
            ),
            metadata=ORDERS,
        )
    code, _, details = status_of(err.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    bad = next(d for d in details if isinstance(d, error_details_pb2.BadRequest))
    assert {v.field for v in bad.field_violations} == {
        "pincode",
        "lines[1].quantity",
        "lines[1].item_id",
    }

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReserveStock(
            pb.ReserveStockRequest(
                order_id=new_id("order"),
                pincode="560001",
                lines=[pb.ReservationLine(item_id=item, quantity=1)],
            ),
            metadata=CUSTOMER,
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CommitReservation(
            pb.CommitReservationRequest(order_id=new_id("none")), metadata=ORDERS
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_release_before_reserve_records_a_tombstone(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    item = new_id("item")
    await set_stock(stub, item, "blr-1", 5)
    order = new_id("order")
    tomb = await stub.ReleaseReservation(
        pb.ReleaseReservationRequest(order_id=order, reason="hold_expired"), metadata=ORDERS
    )
    assert tomb.state == pb.RESERVATION_STATE_RELEASED and not tomb.lines
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await reserve(stub, order, {item: 1})
    assert status_of(err.value)[:2] == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RESERVATION_RELEASED",
    )
    assert (await stock_of(stub, item)).total_available == 5


async def test_list_reservations_pages_oldest_first(
    stub: inventory_pb2_grpc.InventoryServiceStub,
) -> None:
    item = new_id("item")
    await set_stock(stub, item, "blr-1", 10)
    orders = [new_id("order") for _ in range(5)]
    for order in orders:
        await reserve(stub, order, {item: 1})
    await stub.CommitReservation(pb.CommitReservationRequest(order_id=orders[0]), metadata=ORDERS)
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListReservations(
            pb.ListReservationsRequest(
                state=pb.RESERVATION_STATE_HELD, page_size=2, page_token=token
            ),
            metadata=ORDERS,
        )
        assert len(page.reservations) <= 2
        seen += [r.order_id for r in page.reservations]
        assert all(r.state == pb.RESERVATION_STATE_HELD for r in page.reservations)
        token = page.next_page_token
        if not token:
            break
    mine = [o for o in seen if o in orders]
    assert mine == orders[1:]  # oldest first, the committed one filtered out
    old = await stub.ListReservations(
        pb.ListReservationsRequest(update_before=Timestamp(seconds=int(time.time()) - 3600)),
        metadata=ORDERS,
    )
    assert not {r.order_id for r in old.reservations} & set(orders)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListReservations(
            pb.ListReservationsRequest(page_token="garbage!"), metadata=ORDERS
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --------------------------------------------------------------------------
# Concurrency: no oversell under any interleaving
# --------------------------------------------------------------------------


async def test_200_concurrent_checkouts_for_50_units(
    stub: inventory_pb2_grpc.InventoryServiceStub, db: AsyncEngine
) -> None:
    item = new_id("hot")
    await set_stock(stub, item, "blr-1", 50)
    orders = [new_id("order") for _ in range(200)]

    async def attempt(order: str) -> pb.Reservation | grpc.aio.AioRpcError:
        try:
            return await reserve(stub, order, {item: 1})
        except grpc.aio.AioRpcError as exc:
            return exc

    results = await asyncio.gather(*(attempt(o) for o in orders))
    won = [o for o, r in zip(orders, results, strict=True) if isinstance(r, pb.Reservation)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 50
    assert {status_of(e)[:2] for e in lost} == {
        (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_STOCK")
    }
    got = await stock_of(stub, item)
    assert (got.total_available, got.total_reserved) == (0, 50)

    # Pay for 30 and fail 20; then available + reserved + sold is still 50.
    await asyncio.gather(
        *(
            stub.CommitReservation(pb.CommitReservationRequest(order_id=o), metadata=ORDERS)
            for o in won[:30]
        ),
        *(
            stub.ReleaseReservation(
                pb.ReleaseReservationRequest(order_id=o, reason="payment_declined"),
                metadata=ORDERS,
            )
            for o in won[30:]
        ),
    )
    (row,) = await balances(db, item)
    assert (row["available"], row["reserved"], row["sold"]) == (20, 0, 30)
    assert row["available"] + row["reserved"] + row["sold"] == 50
    assert (row["reserved"], row["sold"]) == (row["held"], row["committed"])


async def test_check_constraints_refuse_negative_counters(
    stub: inventory_pb2_grpc.InventoryServiceStub, db: AsyncEngine
) -> None:
    """The last line of defence holds even for a statement without a guard."""
    item = new_id("item")
    await set_stock(stub, item, "blr-1", 1)
    store = InventoryStore(db)
    for column in ("available", "reserved", "sold"):

        async def unguarded(conn: AsyncConnection, column: str = column) -> None:
            await conn.execute(
                sa.text(f"UPDATE stock SET {column} = {column} - 5 WHERE item_id = :i"),
                {"i": item},
            )

        with pytest.raises(StockConstraintViolated):
            await store.run(unguarded)
    got = await stock_of(stub, item)
    assert (got.total_available, got.total_reserved) == (1, 0)


async def test_transaction_is_retried_after_a_deadlock(db: AsyncEngine) -> None:
    store = InventoryStore(db, retries=2)
    attempts: list[int] = []

    async def victim(conn: AsyncConnection) -> int:
        attempts.append(1)
        await conn.execute(sa.text("SELECT 1"))
        if len(attempts) < 3:
            raise OperationalError("UPDATE stock ...", {}, Exception(1213, "Deadlock found"))
        return len(attempts)

    assert await store.run(victim) == 3
    attempts.clear()
    with pytest.raises(OperationalError):
        await InventoryStore(db, retries=1).run(victim)
    assert len(attempts) == 2


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def read_stock_events(stack: Stack, item: str, want: int, timeout: float = 30) -> list[Any]:
    """StockChanged events of `item` on this run's inventory.stock topic."""
    consumer = make_consumer(stack.env["ECOM_KAFKA_BOOTSTRAP"], new_id(stack.topic_prefix))
    consumer.subscribe([stack.topic("inventory.stock")])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(found) < want:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() or msg.key() != item.encode():
                continue
            envelope = events_pb2.EventEnvelope.FromString(msg.value())
            found.append(envelope)
    finally:
        consumer.close()
    return found


async def test_stock_changes_reach_kafka_with_out_of_stock_flag(
    stub: inventory_pb2_grpc.InventoryServiceStub, stack: Stack
) -> None:
    item = new_id("evt")
    await set_stock(stub, item, "blr-1", 2)
    o1, o2 = new_id("order"), new_id("order")
    await reserve(stub, o1, {item: 2})  # available hits 0: out of stock
    await stub.ReleaseReservation(
        pb.ReleaseReservationRequest(order_id=o1, reason="hold_expired"), metadata=ORDERS
    )  # back in stock
    await reserve(stub, o2, {item: 1})
    await stub.CommitReservation(pb.CommitReservationRequest(order_id=o2), metadata=ORDERS)

    events = await asyncio.to_thread(read_stock_events, stack, item, 5)
    changes = [
        (
            e.stock_changed.reason,
            e.stock_changed.available,
            e.stock_changed.reserved,
            e.stock_changed.available_delta,
            e.stock_changed.item_total_available,
            e.stock_changed.order_id,
        )
        for e in events
    ]
    assert changes == [
        (events_pb2.STOCK_CHANGE_REASON_SET, 2, 0, 2, 2, ""),
        (events_pb2.STOCK_CHANGE_REASON_RESERVED, 0, 2, -2, 0, o1),
        (events_pb2.STOCK_CHANGE_REASON_RELEASED, 2, 0, 2, 2, o1),
        (events_pb2.STOCK_CHANGE_REASON_RESERVED, 1, 1, -1, 1, o2),
        (events_pb2.STOCK_CHANGE_REASON_COMMITTED, 1, 0, 0, 1, o2),
    ]
    assert all(e.entity_key == item and e.producer == "svc_inventory" for e in events)
    assert all(e.event_type == "ecom.events.v1.StockChanged" for e in events)
    versions = [e.entity_version for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 5
    assert len({e.event_id for e in events}) == 5


# --------------------------------------------------------------------------
# Crash safety (runs last: it kills the shared process)
# --------------------------------------------------------------------------


async def test_kill_9_mid_burst_then_restart_balances(
    services: Services, tat_addr: str, inventory: RunningService, db: AsyncEngine
) -> None:
    item = new_id("crash")
    channel = grpc.aio.insecure_channel(inventory.target)
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    await set_stock(stub, item, "blr-1", 1000)
    orders = [new_id("order") for _ in range(300)]

    async def attempt(order: str) -> None:
        try:
            await reserve(stub, order, {item: 2})
            await stub.CommitReservation(
                pb.CommitReservationRequest(order_id=order), metadata=ORDERS
            )
        except grpc.aio.AioRpcError:
            pass

    burst = asyncio.gather(*(attempt(o) for o in orders))
    # Kill once the burst is under way (some orders in), not before or after.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = await balances(db, item)
        if rows and rows[0]["reserved"] + rows[0]["sold"] >= 40:
            break
        await asyncio.sleep(0.02)
    inventory.kill()
    await burst
    await channel.close()

    restarted = start_inventory(services, tat_addr)
    channel = grpc.aio.insecure_channel(restarted.target)
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    try:
        (row,) = await balances(db, item)
        assert 0 < row["reserved"] + row["sold"] < 600, "the kill should land mid-burst"
        assert row["available"] + row["reserved"] + row["sold"] == 1000
        assert (row["reserved"], row["sold"]) == (row["held"], row["committed"])
        # Every committed change has its event in the outbox (same transaction).
        async with db.connect() as conn:
            payloads = (
                (
                    await conn.execute(
                        sa.select(outbox.c.payload).where(outbox.c.message_key == item.encode())
                    )
                )
                .scalars()
                .all()
            )
        changes = [events_pb2.EventEnvelope.FromString(p).stock_changed for p in payloads]
        async with db.connect() as conn:
            states: dict[str, int] = {
                str(state): int(count)
                for state, count in (
                    await conn.execute(
                        sa.text(
                            "SELECT r.state, COUNT(*) FROM reservations r JOIN reservation_lines l"
                            " ON l.order_id = r.order_id WHERE l.item_id = :i GROUP BY r.state"
                        ),
                        {"i": item},
                    )
                ).all()
            }
        reasons = [c.reason for c in changes]
        held, committed = states.get("HELD", 0), states.get("COMMITTED", 0)
        assert reasons.count(events_pb2.STOCK_CHANGE_REASON_RESERVED) == held + committed
        assert reasons.count(events_pb2.STOCK_CHANGE_REASON_COMMITTED) == committed
        # The restarted service carries on from a consistent state.
        more = new_id("order")
        held = await reserve(stub, more, {item: 1})
        assert held.state == pb.RESERVATION_STATE_HELD
        got = await stock_of(stub, item)
        assert got.total_available == row["available"] - 1
    finally:
        await channel.close()
