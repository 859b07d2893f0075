"""OrderService's use cases on fakes (tests/unit/order_fakes.py): checkout,
payment, expiry, cancel/ship/deliver, settlement, the sweeper and
reconciliation, each branch in milliseconds. The integration tests
(tests/integration/test_orders_*.py) run the same paths on real servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import cast

import grpc
import pytest
from ecom.common.v1 import common_pb2
from ecom.inventory.v1 import inventory_pb2
from ecom.orders.v1 import orders_pb2 as pb
from ecom.payments.v1 import payments_pb2

from mesh.auth import Caller
from mesh.context import CallContext, activate
from mesh.db import utcnow
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from svc_orders.domain import (
    CancelReason,
    OrderState,
    PaymentStatus,
    RefundState,
    ReservationState,
    WantedLine,
)
from svc_orders.ports import PeerUnreachable
from svc_orders.reconcile import Reconciler
from svc_orders.service import OrderService
from svc_orders.store import HoldStore, OrderRecord, OrderStore
from tests.unit.order_fakes import World, failing

USER = "u-asha"
ALICE = Caller(USER, frozenset({"customer"}))
ADMIN = Caller("u-admin", frozenset({"admin"}))
HELD = inventory_pb2.RESERVATION_STATE_HELD
COMMITTED = inventory_pb2.RESERVATION_STATE_COMMITTED
RELEASED = inventory_pb2.RESERVATION_STATE_RELEASED


def address(pincode: str = "560001") -> common_pb2.Address:
    return common_pb2.Address(
        name="Asha",
        lines=["12 MG Road"],
        city="Bengaluru",
        state="Karnataka",
        pincode=pincode,
        phone="9876543210",
    )


@pytest.fixture
def world() -> World:
    w = World()
    w.catalog.add("phone", 1_999_900)
    w.catalog.add("case", 49_900)
    w.inventory.stock.update(phone=5, case=5)
    return w


@pytest.fixture
def service(world: World) -> OrderService:
    return OrderService(
        cast(OrderStore, world.store), cast(HoldStore, world.holds), world.peers(), world.settings
    )


@pytest.fixture(autouse=True)
def as_alice() -> Iterator[None]:
    with activate(CallContext(request_id="r-1", caller=ALICE)):
        yield


async def checkout(
    service: OrderService, key: str = "k-1", lines: list[WantedLine] | None = None, **kw: object
) -> OrderRecord:
    return await service.create_order(
        ALICE,
        USER,
        key,
        lines if lines is not None else [WantedLine("phone", 1), WantedLine("case", 2)],
        bool(kw.get("from_cart", False)),
        None,
        cast(common_pb2.Address | None, kw.get("address", address())),
    )


# -- checkout ---------------------------------------------------------------------


async def test_checkout_prices_from_the_catalog_holds_stock_and_announces_created(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    assert rec.state is OrderState.CREATED
    assert rec.total_paise == 1_999_900 + 2 * 49_900 and rec.item_count == 3
    assert world.inventory.state(rec.order_id) == HELD
    assert world.inventory.stock == {"phone": 4, "case": 3}
    assert rec.order_id in world.holds.armed
    assert rec.reservation_state is ReservationState.HELD and not rec.work_due
    assert [ln.warehouse_id for ln in rec.lines] == ["WH-1", "WH-1"]
    assert world.store.transitions_of(rec.order_id) == [
        (pb.ORDER_STATE_UNSPECIFIED, pb.ORDER_STATE_CREATED)
    ]


async def test_a_retried_checkout_returns_the_first_order_and_holds_once(
    world: World, service: OrderService
) -> None:
    first = await checkout(service)
    again = await checkout(service)
    assert again.order_id == first.order_id
    assert world.inventory.calls.count("reserve") == 1
    assert len(world.store.rows) == 1


async def test_out_of_stock_is_refused_and_a_retry_gets_the_same_answer(
    world: World, service: OrderService
) -> None:
    world.inventory.stock["phone"] = 0
    with pytest.raises(FailedPrecondition) as first:
        await checkout(service)
    assert first.value.reason == "INSUFFICIENT_STOCK"
    (rec,) = world.store.rows.values()
    assert rec.state is OrderState.REJECTED and world.store.events == []
    with pytest.raises(FailedPrecondition) as again:
        await checkout(service)
    assert again.value.reason == "INSUFFICIENT_STOCK"
    assert world.inventory.calls.count("reserve") == 1
    with pytest.raises(NotFound):
        await service.get_visible(rec.order_id)


async def test_undeliverable_unknown_and_inactive_items_store_nothing(
    world: World, service: OrderService
) -> None:
    world.tat.undeliverable.add("110001")
    with pytest.raises(FailedPrecondition) as bad:
        await checkout(service, address=address("110001"))
    assert bad.value.reason == "NOT_DELIVERABLE"
    with pytest.raises(NotFound):
        await checkout(service, "k-2", [WantedLine("nothing", 1)])
    world.catalog.add("old", 100, active=False)
    with pytest.raises(FailedPrecondition) as gone:
        await checkout(service, "k-3", [WantedLine("old", 1)])
    assert gone.value.reason == "ITEM_UNAVAILABLE"
    assert world.store.rows == {} and world.inventory.calls == []


async def test_checkout_fails_closed_when_serviceability_is_down(
    world: World, service: OrderService
) -> None:
    world.tat.down = True
    with pytest.raises(Unavailable) as err:
        await checkout(service)
    assert err.value.reason == "SERVICEABILITY_UNAVAILABLE"
    assert world.store.rows == {}


async def test_bad_checkout_input_names_each_field(service: OrderService) -> None:
    bad_address = address("012345")
    with pytest.raises(InvalidArgument) as err:
        await checkout(service, "k" * 65, [WantedLine("phone", 11)], address=bad_address)
    assert {v.field for v in err.value.violations} == {"request_id"}
    with pytest.raises(InvalidArgument) as err:
        await checkout(service, lines=[WantedLine("phone", 11)], address=bad_address)
    assert {v.field for v in err.value.violations} == {
        "lines[0].quantity",
        "shipping_address.pincode",
    }


async def test_checkout_from_the_cart_and_the_cart_emptied_once_placed(
    world: World, service: OrderService
) -> None:
    with pytest.raises(InvalidArgument) as empty:
        await checkout(service, lines=[], from_cart=True)
    assert empty.value.violations[0].field == "from_cart"
    world.cart.lines[USER] = {"case": 1}
    rec = await checkout(service, "k-2", lines=[], from_cart=True)
    assert rec.from_cart and [ln.item_id for ln in rec.lines] == ["case"]
    placed = await service.pay(rec.order_id, "tok_success", "pay-1")
    assert placed.state is OrderState.PLACED
    assert world.cart.lines[USER] == {}
    # A late retry of that checkout finds the cart empty, and still gets
    # the first order rather than an error.
    again = await checkout(service, "k-2", lines=[], from_cart=True)
    assert again.order_id == rec.order_id and again.state is OrderState.PLACED
    assert world.inventory.calls.count("reserve") == 1


async def test_a_saved_address_of_someone_else_is_refused(
    world: World, service: OrderService
) -> None:
    world.users.addresses[("u-other", "a-1")] = address()
    with pytest.raises(PermissionDenied):
        await service.create_order(ALICE, USER, "k-1", [WantedLine("case", 1)], False, "a-1", None)
    with pytest.raises(InvalidArgument) as err:
        await service.create_order(ALICE, USER, "k-2", [WantedLine("case", 1)], False, "a-9", None)
    assert err.value.violations[0].field == "address_id"


# -- payment -----------------------------------------------------------------------


async def test_a_successful_payment_places_the_order_and_commits_the_stock(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    placed = await service.pay(rec.order_id, "tok_success", "pay-1")
    assert placed.state is OrderState.PLACED and placed.place_time is not None
    assert placed.payment_status is PaymentStatus.SUCCEEDED
    assert world.inventory.state(rec.order_id) == COMMITTED
    assert placed.reservation_state is ReservationState.COMMITTED and not placed.work_due
    assert rec.order_id not in world.holds.armed
    again = await service.pay(rec.order_id, "tok_success", "pay-1")
    assert again.state is OrderState.PLACED and len(world.payments.payments) == 1


async def test_a_declined_payment_cancels_and_releases_the_stock(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    out = await service.pay(rec.order_id, "tok_decline", "pay-1")
    assert out.state is OrderState.CANCELLED
    assert out.cancel_reason is CancelReason.PAYMENT_DECLINED
    assert world.inventory.state(rec.order_id) == RELEASED
    assert world.inventory.stock == {"phone": 5, "case": 5}


async def test_a_second_payment_attempt_is_refused_while_one_is_in_flight(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    pending = await service.pay(rec.order_id, "tok_unknown", "pay-1")
    assert pending.state is OrderState.CREATED
    assert pending.payment_status is PaymentStatus.PENDING
    with pytest.raises(FailedPrecondition) as err:
        await service.pay(rec.order_id, "tok_success", "pay-2")
    assert err.value.reason == "PAYMENT_IN_FLIGHT"


async def test_a_refused_payment_method_frees_the_order_for_another_attempt(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    with pytest.raises(InvalidArgument) as err:
        await service.pay(rec.order_id, "tok_nonsense", "pay-1")
    assert err.value.violations[0].field == "payment_token"
    assert (await service.pay(rec.order_id, "tok_success", "pay-2")).state is OrderState.PLACED


async def test_someone_else_cannot_pay_or_cancel_my_order(service: OrderService) -> None:
    rec = await checkout(service)
    with activate(CallContext(request_id="r-2", caller=Caller("u-eve", frozenset({"customer"})))):
        with pytest.raises(PermissionDenied):
            await service.pay(rec.order_id, "tok_success", "pay-1")
        with pytest.raises(PermissionDenied):
            await service.cancel(rec.order_id, "", "c-1")


async def test_a_success_that_arrives_after_the_hold_is_refunded(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    await service.pay(rec.order_id, "tok_timeout", "pay-1")
    world.store.backdate(rec.order_id, 601)
    late = world.payments.settle(rec.order_id, payments_pb2.PAYMENT_STATUS_SUCCEEDED)
    out = await service.apply_payment(late)
    assert out.state is OrderState.CANCELLED
    assert out.cancel_reason is CancelReason.HOLD_EXPIRED
    assert out.refund_state is RefundState.DONE and not out.work_due
    assert out.payment_status is PaymentStatus.REFUNDED
    assert world.payments.refunds == [f"{rec.order_id}:refund"]
    assert world.inventory.state(rec.order_id) == RELEASED


async def test_stale_payment_news_never_moves_the_payment_back(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    placed = await service.pay(rec.order_id, "tok_success", "pay-1")
    (payment,) = world.payments.payments.values()
    old = payments_pb2.Payment()
    old.CopyFrom(payment)
    old.status = payments_pb2.PAYMENT_STATUS_PENDING
    assert (await service.apply_payment(old)).payment_status is placed.payment_status


# -- expiry ---------------------------------------------------------------------------


async def test_an_expired_hold_cancels_and_releases_once(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    assert (await service.expire(rec.order_id)) == world.store.rows[rec.order_id]  # not yet
    world.store.backdate(rec.order_id, 601)
    out = await service.expire(rec.order_id)
    assert out is not None and out.state is OrderState.CANCELLED
    assert out.cancel_reason is CancelReason.HOLD_EXPIRED and out.cancel_time is not None
    assert world.inventory.state(rec.order_id) == RELEASED
    await service.expire(rec.order_id)
    assert len(world.store.transitions_of(rec.order_id)) == 2


async def test_expiry_places_an_order_whose_payment_succeeded_in_time(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    await service.pay(rec.order_id, "tok_timeout", "pay-1")
    world.store.backdate(rec.order_id, 601)
    in_time = world.store.rows[rec.order_id].expires_at - timedelta(seconds=1)
    world.payments.settle(rec.order_id, payments_pb2.PAYMENT_STATUS_SUCCEEDED, at=in_time)
    out = await service.expire(rec.order_id)
    assert out is not None and out.state is OrderState.PLACED


async def test_expiry_waits_for_payments_that_cannot_be_asked_within_the_grace(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    await service.pay(rec.order_id, "tok_timeout", "pay-1")
    world.payments.down = True
    world.store.backdate(rec.order_id, 601)
    out = await service.expire(rec.order_id)
    assert out is not None and out.state is OrderState.CREATED
    world.store.backdate(rec.order_id, 60)
    out = await service.expire(rec.order_id)
    assert out is not None and out.state is OrderState.CANCELLED


async def test_paying_after_the_hold_expires_the_order_in_the_background(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    world.store.backdate(rec.order_id, 601)
    with pytest.raises(FailedPrecondition) as err:
        await service.pay(rec.order_id, "tok_success", "pay-1")
    assert err.value.reason == "HOLD_EXPIRED"
    assert len(service._background) == 1  # the expiry task is held
    await asyncio.gather(*service._background)
    await asyncio.sleep(0)  # the done-callbacks run
    assert world.store.rows[rec.order_id].state is OrderState.CANCELLED
    assert not service._background


# -- cancel, ship, deliver ------------------------------------------------------------------


async def test_cancelling_a_placed_order_refunds_and_releases(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    await service.pay(rec.order_id, "tok_success", "pay-1")
    world.inventory.reservations[rec.order_id].state = HELD  # commit not confirmed yet
    out = await service.cancel(rec.order_id, "changed my mind", "c-1")
    assert out.state is OrderState.CANCELLED
    assert out.cancel_reason is CancelReason.USER_CANCELLED
    assert out.refund_state is RefundState.DONE and not out.work_due
    assert world.inventory.state(rec.order_id) == RELEASED
    assert (await service.cancel(rec.order_id, "", "c-2")).state is OrderState.CANCELLED


async def test_logistics_follow_the_state_machine(world: World, service: OrderService) -> None:
    rec = await checkout(service)
    with activate(CallContext(request_id="r-adm", caller=ADMIN)):
        with pytest.raises(FailedPrecondition) as err:
            await service.ship(rec.order_id, "BlueDart", "BD1", "s-1")
        assert err.value.reason == "ILLEGAL_TRANSITION"
        await service.pay(rec.order_id, "tok_success", "pay-1")
        shipped = await service.ship(rec.order_id, "BlueDart", "BD1", "s-1")
        assert shipped.state is OrderState.SHIPPED and shipped.carrier == "BlueDart"
        again = await service.ship(rec.order_id, "BlueDart", "BD1", "s-2")
        assert again.version == shipped.version
        with pytest.raises(FailedPrecondition):
            await service.cancel(rec.order_id, "", "c-1")
        delivered = await service.deliver(rec.order_id, "d-1")
        assert delivered.state is OrderState.DELIVERED and delivered.deliver_time is not None
    assert [t for _, t in world.store.transitions_of(rec.order_id)] == [
        pb.ORDER_STATE_CREATED,
        pb.ORDER_STATE_PLACED,
        pb.ORDER_STATE_SHIPPED,
        pb.ORDER_STATE_DELIVERED,
    ]


# -- settlement and the sweeper --------------------------------------------------------------


async def test_follow_up_work_survives_an_inventory_outage_and_the_sweeper_finishes_it(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    world.inventory.down = True
    out = await service.cancel(rec.order_id, "", "c-1")
    assert out.state is OrderState.CANCELLED and out.work_due
    assert world.inventory.state(rec.order_id) == HELD
    world.inventory.down = False
    assert await service.sweep_once() == 1
    done = world.store.rows[rec.order_id]
    assert not done.work_due and done.reservation_state is ReservationState.RELEASED
    assert world.inventory.state(rec.order_id) == RELEASED


async def test_a_paid_order_whose_stock_is_gone_is_flagged_not_retried(
    world: World, service: OrderService
) -> None:
    rec = await checkout(service)
    world.inventory.reservations[rec.order_id].state = RELEASED
    out = await service.pay(rec.order_id, "tok_success", "pay-1")
    assert out.state is OrderState.PLACED and not out.work_due
    assert out.reservation_state is ReservationState.RELEASED
    report = await Reconciler(service).run(False, 0, "rec-1")
    assert [r.kind for r in report.repairs] == [pb.REPAIR_KIND_FLAGGED]


async def test_the_sweeper_finishes_or_undoes_interrupted_checkouts(
    world: World, service: OrderService
) -> None:
    world.inventory.reserve = failing(  # type: ignore[method-assign, assignment]
        PeerUnreachable(grpc.StatusCode.UNAVAILABLE, "down")
    )
    with pytest.raises(PeerUnreachable):
        await checkout(service, "k-1")
    (stuck,) = world.store.rows.values()
    assert stuck.state is OrderState.PENDING
    world.store.backdate(stuck.order_id, 31)
    await service.sweep_once()
    assert world.store.rows[stuck.order_id].state is OrderState.REJECTED
    assert world.inventory.state(stuck.order_id) == RELEASED  # a tombstone


# -- reconciliation -------------------------------------------------------------------


async def test_reconciliation_releases_orphans_and_applies_missed_payments(
    world: World, service: OrderService
) -> None:
    await world.inventory.reserve("ghost", "560001", [("case", 1)], utcnow())
    world.inventory.reservations["ghost"].create_time.FromSeconds(0)
    rec = await checkout(service)
    await service.pay(rec.order_id, "tok_timeout", "pay-1")
    world.payments.settle(rec.order_id, payments_pb2.PAYMENT_STATUS_SUCCEEDED)
    dry = await Reconciler(service).run(True, 0, "rec-dry")
    assert world.inventory.state("ghost") == HELD and dry.dry_run
    report = await Reconciler(service).run(False, 0, "rec-1")
    kinds = sorted(r.kind for r in report.repairs)
    assert kinds == sorted(
        [pb.REPAIR_KIND_ORPHAN_RESERVATION_RELEASED, pb.REPAIR_KIND_PAYMENT_STATUS_APPLIED]
    )
    assert world.inventory.state("ghost") == RELEASED
    assert world.store.rows[rec.order_id].state is OrderState.PLACED
    assert await Reconciler(service).run(False, 0, "rec-1") == report  # a retry: same report
