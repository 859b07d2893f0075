"""In-memory stand-ins for what the order use cases talk to: the order
store (with transactions that roll back), the Redis holds and the six peers
behind `svc_orders/ports.py`. They keep the rules the real ones promise
(a reservation and a payment are idempotent by order / request id, stock
never goes negative), so the use cases can be driven through every branch
in milliseconds; `tests/integration/test_orders_*.py` run the same paths
against the real servers."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import grpc
from ecom.cart.v1 import cart_pb2
from ecom.catalog.v1 import catalog_pb2
from ecom.common.v1 import common_pb2
from ecom.events.v1 import events_pb2
from ecom.inventory.v1 import inventory_pb2
from ecom.payments.v1 import payments_pb2
from ecom.serviceability.v1 import serviceability_pb2
from google.type import money_pb2

from mesh.db import utcnow
from svc_orders import codec
from svc_orders.domain import (
    OrderState,
    PaymentStatus,
    RefundState,
    ReservationState,
)
from svc_orders.ports import (
    PeerDenied,
    PeerError,
    PeerNotFound,
    PeerRefused,
    PeerRejectedInput,
    Peers,
    PeerUnreachable,
)
from svc_orders.store import DuplicateOrder, LineRecord, OrderRecord, after_update
from svc_orders.transitions import OrderSettings

T = TypeVar("T")

def _down() -> PeerUnreachable:
    return PeerUnreachable(grpc.StatusCode.UNAVAILABLE, "peer is down")


# -- the store ---------------------------------------------------------------


class FakeOrderStore:
    """OrderStore over a dict. ``run`` is a transaction: an exception
    restores the state it started from. ``conn`` arguments are ignored."""

    def __init__(self) -> None:
        self.rows: dict[str, OrderRecord] = {}
        self.events: list[events_pb2.EventEnvelope] = []
        self.reports: dict[str, bytes] = {}

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        saved = (dict(self.rows), list(self.events))
        try:
            return await work(None)
        except BaseException:
            self.rows, self.events = saved
            raise

    async def insert(self, conn: Any, rec: OrderRecord) -> None:
        if any(
            r.user_id == rec.user_id and r.request_id == rec.request_id for r in self.rows.values()
        ):
            raise DuplicateOrder(rec.request_id)
        self.rows[rec.order_id] = rec

    async def get(
        self,
        conn: Any,
        order_id: str,
        *,
        for_update: bool = False,
        known_lines: tuple[LineRecord, ...] | None = None,
    ) -> OrderRecord | None:
        rec = self.rows.get(order_id)
        if rec is not None and known_lines is not None:
            return replace(rec, lines=known_lines)
        return rec

    async def get_by_request(self, conn: Any, user_id: str, request_id: str) -> OrderRecord | None:
        return next(
            (r for r in self.rows.values() if (r.user_id, r.request_id) == (user_id, request_id)),
            None,
        )

    async def update(self, conn: Any, order_id: str, **values: Any) -> None:
        self.rows[order_id] = after_update(self.rows[order_id], values)

    async def update_if(self, order_id: str, version: int, **values: Any) -> bool:
        rec = self.rows.get(order_id)
        if rec is None or rec.version != version:
            return False
        await self.update(None, order_id, **values)
        return True

    async def add_event(
        self, conn: Any, *, topic: str, key: str, payload: bytes, event_type: str, event_id: str
    ) -> None:
        self.events.append(events_pb2.EventEnvelope.FromString(payload))

    async def set_lines_fulfilment(
        self, conn: Any, order_id: str, fulfilment: dict[str, tuple[str, date | None]]
    ) -> None:
        rec = self.rows[order_id]
        lines = tuple(
            replace(
                ln, warehouse_id=fulfilment[ln.item_id][0], promised_date=fulfilment[ln.item_id][1]
            )
            if ln.item_id in fulfilment
            else ln
            for ln in rec.lines
        )
        self.rows[order_id] = replace(rec, lines=lines)

    def _ids(self, keep: Callable[[OrderRecord], bool], limit: int) -> list[str]:
        return [r.order_id for r in self.rows.values() if keep(r)][:limit]

    async def expired_created(self, limit: int) -> list[str]:
        now = utcnow()
        return self._ids(lambda r: r.state is OrderState.CREATED and r.expires_at <= now, limit)

    async def work_due(self, limit: int) -> list[str]:
        return self._ids(lambda r: r.work_due, limit)

    async def stale_pending(self, grace_seconds: float, limit: int) -> list[str]:
        stale = utcnow() - timedelta(seconds=grace_seconds)
        return self._ids(lambda r: r.state is OrderState.PENDING and r.create_time <= stale, limit)

    async def paid_uncommitted(self, limit: int) -> list[str]:
        paid = (OrderState.PLACED, OrderState.SHIPPED, OrderState.DELIVERED)
        return self._ids(
            lambda r: r.state in paid and r.reservation_state is not ReservationState.COMMITTED,
            limit,
        )

    async def open_payments(self, limit: int) -> list[str]:
        return self._ids(
            lambda r: r.payment_request_id is not None
            and r.payment_status in (PaymentStatus.PENDING, PaymentStatus.TIMED_OUT),
            limit,
        )

    async def refunds_owed(self, limit: int) -> list[str]:
        return self._ids(
            lambda r: r.state is OrderState.CANCELLED and r.refund_state is RefundState.DUE, limit
        )

    async def get_report(self, request_id: str) -> bytes | None:
        return self.reports.get(request_id)

    async def save_report(self, request_id: str, report: bytes) -> None:
        self.reports.setdefault(request_id, report)

    # -- for tests -----------------------------------------------------------
    def backdate(self, order_id: str, seconds: float) -> None:
        """Move an order's clock ``seconds`` into the past (its hold ends)."""
        rec = self.rows[order_id]
        delta = timedelta(seconds=seconds)
        self.rows[order_id] = replace(
            rec, expires_at=rec.expires_at - delta, create_time=rec.create_time - delta
        )

    def transitions_of(self, order_id: str) -> list[tuple[int, int]]:
        """(from, to) proto states of every OrderTransitioned of the order."""
        return [
            (e.order_transitioned.from_state, e.order_transitioned.to_state)
            for e in self.events
            if e.entity_key == order_id
        ]


class FakeHolds:
    """HoldStore: which orders have a Redis hold armed."""

    def __init__(self) -> None:
        self.armed: dict[str, datetime] = {}

    async def hold(self, order_id: str, expires_at: datetime) -> None:
        self.armed[order_id] = expires_at

    async def clear(self, order_id: str) -> None:
        self.armed.pop(order_id, None)


# -- the peers ---------------------------------------------------------------


def inr(paise: int) -> money_pb2.Money:
    return codec.money(paise)


@dataclass
class FakeCatalog:
    items: dict[str, catalog_pb2.Item] = field(default_factory=dict)

    def add(self, item_id: str, paise: int, *, active: bool = True) -> None:
        self.items[item_id] = catalog_pb2.Item(
            item_id=item_id,
            title=f"Item {item_id}",
            price=inr(paise),
            state=catalog_pb2.ITEM_STATE_ACTIVE if active else catalog_pb2.ITEM_STATE_DELETED,
        )

    async def batch_get_items(self, item_ids: list[str]) -> catalog_pb2.BatchGetItemsResponse:
        return catalog_pb2.BatchGetItemsResponse(
            items=[self.items[i] for i in item_ids if i in self.items],
            missing_item_ids=[i for i in item_ids if i not in self.items],
        )


@dataclass
class FakeServiceability:
    """Every item is deliverable from ``warehouse`` in two days, except the
    pincodes in ``undeliverable``."""

    warehouse: str = "WH-1"
    undeliverable: set[str] = field(default_factory=set)
    down: bool = False

    async def batch_check(
        self, item_ids: list[str], pincode: str
    ) -> serviceability_pb2.BatchCheckServiceabilityResponse:
        if self.down:
            raise _down()
        if not pincode.isdigit():
            raise PeerRejectedInput(grpc.StatusCode.INVALID_ARGUMENT, "bad pincode")
        resp = serviceability_pb2.BatchCheckServiceabilityResponse()
        for item_id in item_ids:
            result = resp.results.add(item_id=item_id)
            if pincode in self.undeliverable:
                result.estimate.reason = common_pb2.UNDELIVERABLE_REASON_NOT_SERVICEABLE
            else:
                result.estimate.deliverable = True
                result.estimate.warehouse_id = self.warehouse
                result.estimate.promised_date.year = 2030
                result.estimate.promised_date.month = 1
                result.estimate.promised_date.day = 2
        return resp

    async def promised_dates(self, pincode: str) -> dict[str, date]:
        if self.down:
            raise _down()
        return {self.warehouse: date(2030, 1, 3)}


@dataclass
class FakeUsers:
    addresses: dict[tuple[str, str], common_pb2.Address] = field(default_factory=dict)

    async def get_address(self, user_id: str, address_id: str) -> common_pb2.Address:
        for (owner, aid), address in self.addresses.items():
            if aid == address_id:
                if owner != user_id:
                    raise PeerDenied(grpc.StatusCode.PERMISSION_DENIED, "not yours")
                return address
        raise PeerNotFound(grpc.StatusCode.NOT_FOUND, "no such address")


@dataclass
class FakeCart:
    lines: dict[str, dict[str, int]] = field(default_factory=dict)
    down: bool = False

    async def get_cart(self, user_id: str) -> cart_pb2.Cart:
        if self.down:
            raise _down()
        cart = cart_pb2.Cart(user_id=user_id, priced=True)
        for item_id, quantity in self.lines.get(user_id, {}).items():
            cart.lines.add(item_id=item_id, quantity=quantity, available=True)
        return cart

    async def remove_items(self, user_id: str, item_ids: list[str], request_id: str) -> None:
        if self.down:
            raise _down()
        for item_id in item_ids:
            self.lines.get(user_id, {}).pop(item_id, None)


@dataclass
class FakeInventory:
    """Stock of one warehouse; reservations by order id, idempotent, with a
    tombstone for a released one (a late reserve is refused)."""

    warehouse: str = "WH-1"
    stock: dict[str, int] = field(default_factory=dict)
    reservations: dict[str, inventory_pb2.Reservation] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.down:
            raise _down()

    async def reserve(
        self, order_id: str, pincode: str, lines: list[tuple[str, int]], hold_until: datetime
    ) -> inventory_pb2.Reservation:
        self._check("reserve")
        if order_id in self.reservations:
            existing = self.reservations[order_id]
            if existing.state == inventory_pb2.RESERVATION_STATE_RELEASED:
                raise PeerRefused(grpc.StatusCode.FAILED_PRECONDITION, "released")
            return existing
        short = [item for item, q in lines if self.stock.get(item, 0) < q]
        if short:
            raise PeerRefused(
                grpc.StatusCode.FAILED_PRECONDITION,
                "not enough stock for " + ", ".join(short),
                reason="INSUFFICIENT_STOCK",
            )
        for item, q in lines:
            self.stock[item] -= q
        res = inventory_pb2.Reservation(
            order_id=order_id, state=inventory_pb2.RESERVATION_STATE_HELD
        )
        for item, q in lines:
            res.lines.add(item_id=item, quantity=q, warehouse_id=self.warehouse)
        res.create_time.FromDatetime(utcnow())
        self.reservations[order_id] = res
        return res

    async def get_reservation(self, order_id: str) -> inventory_pb2.Reservation:
        self._check("get")
        if order_id not in self.reservations:
            raise PeerNotFound(grpc.StatusCode.NOT_FOUND, "no reservation")
        return self.reservations[order_id]

    async def commit(self, order_id: str) -> None:
        self._check("commit")
        res = self.reservations.get(order_id)
        if res is None or res.state == inventory_pb2.RESERVATION_STATE_RELEASED:
            raise PeerRefused(grpc.StatusCode.FAILED_PRECONDITION, "nothing held")
        res.state = inventory_pb2.RESERVATION_STATE_COMMITTED

    async def release(self, order_id: str, reason: str) -> None:
        self._check("release")
        res = self.reservations.get(order_id)
        if res is None:
            self.reservations[order_id] = inventory_pb2.Reservation(
                order_id=order_id, state=inventory_pb2.RESERVATION_STATE_RELEASED
            )
            return
        if res.state == inventory_pb2.RESERVATION_STATE_HELD:
            for ln in res.lines:
                self.stock[ln.item_id] += ln.quantity
            res.state = inventory_pb2.RESERVATION_STATE_RELEASED

    async def list_held(
        self, page_token: str, page_size: int = 500
    ) -> inventory_pb2.ListReservationsResponse:
        self._check("list")
        held = [
            r for r in self.reservations.values() if r.state == inventory_pb2.RESERVATION_STATE_HELD
        ]
        return inventory_pb2.ListReservationsResponse(reservations=held)

    def state(self, order_id: str) -> int:
        res = self.reservations.get(order_id)
        return res.state if res else inventory_pb2.RESERVATION_STATE_UNSPECIFIED


# The test tokens of docs/architecture.md; "tok_unknown" stands for a
# gateway whose answer never reaches orders in time.
_OUTCOMES = {
    "tok_success": payments_pb2.PAYMENT_STATUS_SUCCEEDED,
    "tok_decline": payments_pb2.PAYMENT_STATUS_DECLINED,
    "tok_timeout": payments_pb2.PAYMENT_STATUS_PENDING,
}


@dataclass
class FakePayments:
    """Payments by request id (a retry returns the first payment)."""

    payments: dict[str, payments_pb2.Payment] = field(default_factory=dict)
    refunds: list[str] = field(default_factory=list)
    down: bool = False

    async def create(
        self,
        order_id: str,
        user_id: str,
        amount: money_pb2.Money,
        token: str,
        wait_seconds: float,
        request_id: str,
    ) -> payments_pb2.Payment:
        if self.down or token == "tok_unknown":
            raise PeerUnreachable(grpc.StatusCode.DEADLINE_EXCEEDED, "no answer")
        if token not in _OUTCOMES:
            raise PeerRejectedInput(grpc.StatusCode.INVALID_ARGUMENT, "unknown payment token")
        for p in self.payments.values():
            if p.order_id == order_id and p.payment_id.endswith(request_id):
                return p
        payment = payments_pb2.Payment(
            payment_id=f"pay-{uuid.uuid4().hex[:8]}-{request_id}",
            order_id=order_id,
            user_id=user_id,
            amount=amount,
            status=_OUTCOMES[token],
        )
        if payment.status == payments_pb2.PAYMENT_STATUS_DECLINED:
            payment.decline_code = "card_declined"
        payment.resolve_time.FromDatetime(utcnow())
        self.payments[payment.payment_id] = payment
        return copy.deepcopy(payment)

    def settle(
        self, order_id: str, status: int, *, at: datetime | None = None
    ) -> payments_pb2.Payment:
        """The gateway's late word on an order's payment."""
        payment = next(p for p in self.payments.values() if p.order_id == order_id)
        payment.status = status  # type: ignore[assignment]
        payment.resolve_time.FromDatetime(at or utcnow())
        return copy.deepcopy(payment)

    async def list_for_order(self, order_id: str) -> list[payments_pb2.Payment]:
        if self.down:
            raise _down()
        return [copy.deepcopy(p) for p in self.payments.values() if p.order_id == order_id]

    async def get(self, payment_id: str) -> payments_pb2.Payment:
        if self.down:
            raise _down()
        return copy.deepcopy(self.payments[payment_id])

    async def refund(self, payment_id: str, reason: str, request_id: str) -> payments_pb2.Payment:
        if self.down:
            raise _down()
        payment = self.payments[payment_id]
        if payment.status != payments_pb2.PAYMENT_STATUS_SUCCEEDED:
            raise PeerRefused(grpc.StatusCode.FAILED_PRECONDITION, "not captured")
        payment.status = payments_pb2.PAYMENT_STATUS_REFUNDED
        payment.refunded_amount.CopyFrom(payment.amount)
        self.refunds.append(request_id)
        return copy.deepcopy(payment)


@dataclass
class World:
    """An OrderService's surroundings, all in memory."""

    store: FakeOrderStore = field(default_factory=FakeOrderStore)
    holds: FakeHolds = field(default_factory=FakeHolds)
    catalog: FakeCatalog = field(default_factory=FakeCatalog)
    tat: FakeServiceability = field(default_factory=FakeServiceability)
    users: FakeUsers = field(default_factory=FakeUsers)
    cart: FakeCart = field(default_factory=FakeCart)
    inventory: FakeInventory = field(default_factory=FakeInventory)
    payments: FakePayments = field(default_factory=FakePayments)
    settings: OrderSettings = field(
        default_factory=lambda: OrderSettings(hold_seconds=600, payment_wait_seconds=0.1)
    )

    def peers(self) -> Peers:
        return Peers(
            catalog=self.catalog,
            tat=self.tat,
            users=self.users,
            inventory=self.inventory,
            payments=self.payments,
            cart=self.cart,
        )


def failing(error: PeerError) -> Callable[..., Awaitable[Any]]:
    """A port method that always fails with ``error``."""

    async def call(*_: Any, **__: Any) -> Any:
        raise error

    return call
