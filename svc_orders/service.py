"""Order use cases: checkout, payment, expiry, cancellation, logistics, the
sweeper and reconciliation.

Crash safety comes from the order of steps. Checkout first stores the order
as internal ``PENDING`` (so a crash leaves a row to finish or undo), then
asks inventory to hold stock (idempotent by order id), then marks it
CREATED in one transaction with its event. Every later transition is one
transaction (row lock, state change, outbox event) that also records the
follow-up work it leaves (``work_due``: release, commit, refund); that work
runs right after the commit and, if a crash interrupts it, the sweeper
redoes it. Inventory and payments calls are all idempotent, so redoing is
always safe. Stock is released only after the order is CANCELLED in the
database, and an order is placed only by a conditional transition from
CREATED, so a payment success and an expiry can never both win.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import grpc
from ecom.cart.v1 import cart_pb2, cart_pb2_grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.common.v1 import common_pb2
from ecom.events.v1 import events_pb2
from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb
from ecom.payments.v1 import payments_pb2, payments_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2, serviceability_pb2_grpc
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy.ext.asyncio import AsyncConnection

import mesh
from mesh import Caller, current_request_id
from mesh import outbox as mesh_outbox
from mesh.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
    Unavailable,
)
from svc_orders import codec, domain
from svc_orders.domain import (
    Action,
    CancelReason,
    IllegalTransition,
    OrderState,
    PaymentStatus,
    PricedLine,
    ReservationState,
    WantedLine,
)
from svc_orders.store import (
    DuplicateOrder,
    HoldStore,
    LineRecord,
    OrderRecord,
    OrderStore,
    orders,
    utcnow,
)

log = logging.getLogger(__name__)

LIFECYCLE_TOPIC = "orders.lifecycle"
PAYMENTS_TOPIC = "payments.events"
PRODUCER = "svc_orders"
EVENT_TYPE = "ecom.events.v1.OrderTransitioned"
SERVICE_CALLER = Caller("svc_orders", frozenset({"service"}))

_RELEASE_REASON = {
    CancelReason.PAYMENT_DECLINED: "payment_declined",
    CancelReason.HOLD_EXPIRED: "hold_expired",
    CancelReason.USER_CANCELLED: "user_cancelled",
    CancelReason.ADMIN_CANCELLED: "user_cancelled",
    CancelReason.RECONCILED: "reconciled",
}
# How far a payment status may move: never back (a redelivered success must
# not undo a refund).
_PAYMENT_RANK = {
    PaymentStatus.NONE: 0,
    PaymentStatus.PENDING: 1,
    PaymentStatus.TIMED_OUT: 2,
    PaymentStatus.DECLINED: 3,
    PaymentStatus.SUCCEEDED: 3,
    PaymentStatus.PARTIALLY_REFUNDED: 4,
    PaymentStatus.REFUNDED: 5,
}
LATE_REFUND_NOTE = "payment succeeded after the hold expired; refunded automatically"


@dataclass(frozen=True)
class Peers:
    """Stubs of the services orders calls."""

    catalog: catalog_pb2_grpc.CatalogServiceStub
    tat: serviceability_pb2_grpc.ServiceabilityServiceStub
    users: users_pb2_grpc.UserServiceStub
    inventory: inventory_pb2_grpc.InventoryServiceStub
    payments: payments_pb2_grpc.PaymentServiceStub
    cart: cart_pb2_grpc.CartServiceStub


@dataclass(frozen=True)
class OrderSettings:
    """The knobs the use cases need (from ECOM_* in main.py)."""

    hold_seconds: int = 600
    # A PENDING checkout older than this was interrupted: finish or undo it.
    pending_grace_seconds: float = 30.0
    # How long PayOrder waits for the gateway before answering "pending".
    payment_wait_seconds: float = 5.0
    # Timeout of one call to a peer.
    call_timeout_seconds: float = 5.0
    # When payments cannot be asked at expiry, wait this long past
    # `expires_at` before cancelling anyway (a late success is refunded).
    payments_unknown_grace_seconds: float = 30.0


def _rpc_reason(exc: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(exc)
    for packed in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if packed.Is(info.DESCRIPTOR):
            packed.Unpack(info)
            return info.reason
    return ""


def _rpc_violations(exc: grpc.aio.AioRpcError) -> list[PreconditionViolation]:
    status = rpc_status.from_call(exc)
    out: list[PreconditionViolation] = []
    for packed in status.details if status else ():
        failure = error_details_pb2.PreconditionFailure()
        if packed.Is(failure.DESCRIPTOR):
            packed.Unpack(failure)
            out += [
                PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations
            ]
    return out


class OrderService:
    """The order use cases."""

    def __init__(
        self, store: OrderStore, holds: HoldStore, peers: Peers, settings: OrderSettings
    ) -> None:
        self.store = store
        self.holds = holds
        self.peers = peers
        self.settings = settings
        self._expiring: set[asyncio.Task[None]] = set()

    # -- plumbing ----------------------------------------------------------
    @contextmanager
    def _as_service(self, timeout: float | None = None) -> Iterator[None]:
        """Calls made inside act as svc_orders itself (inventory and payments
        refuse customer callers), keeping the request id for tracing."""
        with mesh.call_scope(
            caller=SERVICE_CALLER,
            request_id=current_request_id(),
            timeout=timeout or self.settings.call_timeout_seconds,
        ):
            yield

    async def _event(
        self, conn: AsyncConnection, before: OrderState | None, after: OrderRecord
    ) -> None:
        """Queue the OrderTransitioned event of a transition in its transaction."""
        event_id = str(uuid.uuid4())
        snapshot = codec.order_proto(after)
        envelope = events_pb2.EventEnvelope(
            event_id=event_id,
            event_type=EVENT_TYPE,
            occurred_at=codec.timestamp(after.update_time),
            entity_key=after.order_id,
            entity_version=after.version,
            producer=PRODUCER,
            request_id=current_request_id() or "",
            order_transitioned=events_pb2.OrderTransitioned(
                order_id=after.order_id,
                user_id=after.user_id,
                from_state=codec.STATE_TO_PROTO.get(before, pb.ORDER_STATE_UNSPECIFIED)
                if before
                else pb.ORDER_STATE_UNSPECIFIED,
                to_state=snapshot.state,
                cancel_reason=snapshot.cancel_reason,
                order=snapshot,
            ),
        )
        await mesh_outbox.add_event(
            conn,
            topic=LIFECYCLE_TOPIC,
            key=after.order_id,
            payload=envelope.SerializeToString(),
            event_type=EVENT_TYPE,
            event_id=event_id,
        )

    async def _transition_locked(
        self,
        conn: AsyncConnection,
        rec: OrderRecord,
        action: Action,
        values: dict[str, Any] | None = None,
    ) -> OrderRecord:
        """Apply ``action`` to a row this transaction has locked: state,
        timestamps, follow-up work and the event. A no-op action returns
        the record unchanged."""
        new = domain.next_state(rec.state, action)
        if new is None:
            return rec
        now = utcnow()
        values = dict(values or {})
        values.update(state=new.value, version=rec.version + 1, update_time=now)
        stamp = {
            OrderState.PLACED: "place_time",
            OrderState.SHIPPED: "ship_time",
            OrderState.DELIVERED: "deliver_time",
            OrderState.CANCELLED: "cancel_time",
        }.get(new)
        if stamp:
            values[stamp] = now
        payment = PaymentStatus(values.get("payment_status", rec.payment_status))
        refund_state = values.get("refund_state", rec.refund_state)
        if domain.refund_due(new, payment) and refund_state != "DONE":
            values["refund_state"] = refund_state = "DUE"
        reservation = ReservationState(values.get("reservation_state", rec.reservation_state))
        wanted = domain.wanted_reservation(new)
        values["work_due"] = (wanted is not ReservationState.NONE and reservation != wanted) or (
            refund_state == "DUE"
        )
        await self.store.update(conn, rec.order_id, **values)
        after = await self.store.get(conn, rec.order_id)
        assert after is not None
        if new in domain.VISIBLE_STATES:
            await self._event(
                conn, rec.state if rec.state in domain.VISIBLE_STATES else None, after
            )
        return after

    async def _transition(
        self,
        order_id: str,
        action: Action,
        values: Callable[[OrderRecord], dict[str, Any]] | None = None,
        guard: Callable[[OrderRecord], None] | None = None,
    ) -> OrderRecord:
        """Lock the order, check ``guard``, apply ``action``; then do the
        follow-up work. Raises NotFound / IllegalTransition."""

        async def work(conn: AsyncConnection) -> OrderRecord:
            rec = await self.store.get(conn, order_id, for_update=True)
            if rec is None or rec.state not in domain.VISIBLE_STATES:
                raise NotFound(
                    f"order {order_id!r} not found", resource_type="order", resource_name=order_id
                )
            if guard is not None:
                guard(rec)
            return await self._transition_locked(conn, rec, action, values(rec) if values else None)

        rec = await self.store.run(work)
        return await self.after_change(rec)

    async def after_change(self, rec: OrderRecord) -> OrderRecord:
        """Right after a commit: drop the Redis hold of an order that left
        CREATED and do the follow-up work. Failures are left to the sweeper."""
        if rec.state is not OrderState.CREATED:
            try:
                await self.holds.clear(rec.order_id)
            except Exception as exc:  # noqa: BLE001 - the key just expires later
                log.warning("clearing hold of %s: %s", rec.order_id, exc)
        if rec.work_due:
            try:
                return await self.settle(rec.order_id)
            except Exception:  # noqa: BLE001 - the sweeper retries
                log.exception("follow-up of order %s failed; the sweeper retries", rec.order_id)
        return rec

    # -- reading -----------------------------------------------------------
    async def get_visible(self, order_id: str) -> OrderRecord:
        """A visible order or NotFound."""
        rec = await self.store.get(None, order_id) if order_id else None
        if rec is None or rec.state not in domain.VISIBLE_STATES:
            raise NotFound(
                f"order {order_id!r} not found", resource_type="order", resource_name=order_id
            )
        return rec

    # -- checkout ----------------------------------------------------------
    async def create_order(
        self,
        caller: Caller,
        user_id: str,
        request_id: str,
        lines: list[WantedLine],
        from_cart: bool,
        address_id: str | None,
        address: common_pb2.Address | None,
    ) -> OrderRecord:
        """Price, check deliverability, store PENDING, hold stock, mark
        CREATED (see the module doc for why in this order). A retry with the
        same request id returns (or finishes) the first checkout."""
        problems = domain.validate_request_id(request_id)
        if not user_id:
            problems.append(domain.FieldViolation("user_id", "is required"))
        if problems:
            raise InvalidArgument(violations=problems)
        existing = await self.store.get_by_request(None, user_id, request_id)
        if existing is not None:
            return await self._finish_checkout(existing)

        if from_cart and lines:
            raise InvalidArgument.for_field("lines", "give either lines or from_cart, not both")
        if from_cart:
            lines = await self._cart_lines(user_id)
        problems = domain.validate_lines(lines)
        if address is None and not address_id:
            problems.append(
                domain.FieldViolation("destination", "give address_id or shipping_address")
            )
        if address is not None:
            problems += domain.validate_address(
                address.name,
                list(address.lines),
                address.city,
                address.state,
                address.pincode,
                address.phone,
            )
        if problems:
            raise InvalidArgument(violations=problems)
        snapshot = (
            address if address is not None else await self._saved_address(user_id, address_id or "")
        )
        snapshot = common_pb2.Address(
            name=snapshot.name,
            lines=snapshot.lines,
            landmark=snapshot.landmark,
            city=snapshot.city,
            state=snapshot.state,
            pincode=snapshot.pincode,
            phone=snapshot.phone,
            address_id=address_id or "",
        )
        priced = await self._price(lines)
        estimates = await self._check_deliverable([ln.item_id for ln in priced], snapshot.pincode)

        now = utcnow()
        rec = OrderRecord(
            order_id=uuid.uuid4().hex,
            user_id=user_id,
            request_id=request_id,
            state=OrderState.PENDING,
            version=1,
            reservation_state=ReservationState.NONE,
            work_due=False,
            from_cart=from_cart,
            address=snapshot.SerializeToString(),
            pincode=snapshot.pincode,
            total_paise=sum(p.total_paise for p in priced),
            item_count=sum(p.quantity for p in priced),
            payment_request_id=None,
            payment_id="",
            payment_status=PaymentStatus.NONE,
            decline_code="",
            refunded_paise=0,
            refund_state="",
            cancel_reason=CancelReason.NONE,
            cancel_note="",
            carrier="",
            tracking_number="",
            reject_reason="",
            reject_message="",
            expires_at=now + timedelta(seconds=self.settings.hold_seconds),
            create_time=now,
            update_time=now,
            lines=tuple(
                LineRecord(
                    p.item_id,
                    p.quantity,
                    p.title,
                    p.unit_paise,
                    estimates.get(p.item_id, ("", None))[0],
                    estimates.get(p.item_id, ("", None))[1],
                )
                for p in priced
            ),
        )
        try:
            await self.store.run(lambda conn: self.store.insert(conn, rec))
        except DuplicateOrder:
            # A concurrent retry inserted first: finish that one instead.
            first = await self.store.get_by_request(None, user_id, request_id)
            assert first is not None
            return await self._finish_checkout(first)
        return await self._finish_checkout(rec)

    async def _finish_checkout(self, rec: OrderRecord) -> OrderRecord:
        """Hold the stock of a PENDING order and mark it CREATED; any other
        state is the checkout's answer already (REJECTED -> the same error)."""
        if rec.state is OrderState.REJECTED:
            raise FailedPrecondition(rec.reject_message, reason=rec.reject_reason)
        if rec.state is not OrderState.PENDING:
            return rec
        request = inventory_pb2.ReserveStockRequest(
            order_id=rec.order_id,
            pincode=rec.pincode,
            lines=[
                inventory_pb2.ReservationLine(item_id=ln.item_id, quantity=ln.quantity)
                for ln in rec.lines
            ],
            hold_expire_time=codec.timestamp(rec.expires_at),
        )
        try:
            with self._as_service():
                reservation = await self.peers.inventory.ReserveStock(request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise  # outage: the row stays PENDING; a retry or the sweeper finishes it
            reason = _rpc_reason(exc) or "INSUFFICIENT_STOCK"
            message = exc.details() or "stock could not be held"
            await self._reject(rec.order_id, reason, message)
            raise FailedPrecondition(
                message, reason=reason, violations=_rpc_violations(exc)
            ) from None
        return await self._mark_reserved(rec.order_id, reservation)

    async def _reject(self, order_id: str, reason: str, message: str) -> None:
        async def work(conn: AsyncConnection) -> None:
            rec = await self.store.get(conn, order_id, for_update=True)
            if rec is not None and rec.state is OrderState.PENDING:
                await self._transition_locked(
                    conn,
                    rec,
                    Action.REJECT,
                    {"reject_reason": reason[:64], "reject_message": message[:1000]},
                )

        await self.store.run(work)

    async def _mark_reserved(
        self, order_id: str, reservation: inventory_pb2.Reservation
    ) -> OrderRecord:
        held = {ln.item_id: ln.warehouse_id for ln in reservation.lines}
        rec = await self.store.get(None, order_id)
        assert rec is not None
        promised = await self._promised_dates(rec, held)

        async def work(conn: AsyncConnection) -> OrderRecord:
            locked = await self.store.get(conn, order_id, for_update=True)
            assert locked is not None
            if locked.state is not OrderState.PENDING:
                return locked
            await self.store.set_lines_fulfilment(
                conn, order_id, {item: (wh, promised.get(item)) for item, wh in held.items()}
            )
            locked = replace(
                locked,
                lines=tuple(
                    replace(ln, warehouse_id=held.get(ln.item_id, ln.warehouse_id))
                    for ln in locked.lines
                ),
            )
            return await self._transition_locked(
                conn, locked, Action.RESERVED, {"reservation_state": ReservationState.HELD.value}
            )

        rec = await self.store.run(work)
        if rec.state is OrderState.CREATED:
            try:
                await self.holds.hold(order_id, rec.expires_at)
            except Exception as exc:  # noqa: BLE001 - the sweeper is the guarantee
                log.warning("arming hold of %s: %s", order_id, exc)
        else:
            await self.after_change(rec)
        return rec

    async def _promised_dates(
        self, rec: OrderRecord, held: dict[str, str]
    ) -> dict[str, date | None]:
        """Promised date per line for the warehouse actually holding it: the
        checkout estimate when it named that warehouse, else the route's."""
        out: dict[str, date | None] = {}
        missing = False
        for ln in rec.lines:
            if ln.warehouse_id and ln.warehouse_id == held.get(ln.item_id):
                out[ln.item_id] = ln.promised_date
            else:
                missing = True
        if missing:
            try:
                routes = await self.peers.tat.ListRoutes(
                    serviceability_pb2.ListRoutesRequest(pincode=rec.pincode),
                    timeout=self.settings.call_timeout_seconds,
                )
                by_wh = {r.warehouse_id: r.promised_date for r in routes.routes}
                for item, wh in held.items():
                    d = by_wh.get(wh)
                    if item not in out and d is not None and d.year:
                        out[item] = date(d.year, d.month, d.day)
            except grpc.aio.AioRpcError as exc:
                log.warning("promised dates for %s: %s", rec.order_id, exc.code())
        return out

    async def _cart_lines(self, user_id: str) -> list[WantedLine]:
        try:
            cart = await self.peers.cart.GetCart(
                cart_pb2.GetCartRequest(user_id=user_id),
                timeout=self.settings.call_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            # The cart's verdict on the request (a malformed user id) is the
            # client's answer; only a cart that cannot answer is a 503.
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument.for_field("user_id", exc.details() or "is not valid") \
                    from None
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied("not your cart", reason="NOT_OWNER") from None
            raise Unavailable("the cart could not be read", reason="CART_UNAVAILABLE") from exc
        # Lines whose item left the catalog are not ordered (the cart says
        # which, unless it could not reach the catalog itself).
        lines = [
            WantedLine(ln.item_id, ln.quantity)
            for ln in cart.lines
            if ln.available or not cart.priced
        ]
        if not lines:
            raise InvalidArgument.for_field("from_cart", "the cart is empty")
        return lines

    async def _saved_address(self, user_id: str, address_id: str) -> common_pb2.Address:
        try:
            return await self.peers.users.GetAddress(
                users_pb2.GetAddressRequest(user_id=user_id, address_id=address_id),
                timeout=self.settings.call_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise InvalidArgument.for_field("address_id", "no such saved address") from None
            if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied("not your address", reason="NOT_OWNER") from None
            raise

    async def _price(self, lines: list[WantedLine]) -> list[PricedLine]:
        """Prices and titles from the catalog, never from the client."""
        resp = await self.peers.catalog.BatchGetItems(
            catalog_pb2.BatchGetItemsRequest(item_ids=[ln.item_id for ln in lines]),
            timeout=self.settings.call_timeout_seconds,
        )
        if resp.missing_item_ids:
            raise NotFound(
                f"unknown items: {', '.join(resp.missing_item_ids)}",
                resource_type="item",
                resource_name=resp.missing_item_ids[0],
            )
        items = {it.item_id: it for it in resp.items}
        gone = [i for i, it in items.items() if it.state != catalog_pb2.ITEM_STATE_ACTIVE]
        if gone:
            raise FailedPrecondition(
                "items no longer sold: " + ", ".join(gone),
                reason="ITEM_UNAVAILABLE",
                violations=[PreconditionViolation("ITEM", i, "item is not active") for i in gone],
            )
        return [
            PricedLine(
                ln.item_id,
                ln.quantity,
                items[ln.item_id].title,
                domain.money_to_paise(items[ln.item_id].price.units, items[ln.item_id].price.nanos),
            )
            for ln in lines
        ]

    async def _check_deliverable(
        self, item_ids: list[str], pincode: str
    ) -> dict[str, tuple[str, date | None]]:
        """Fails closed: an unknown answer refuses the checkout. Out of stock
        is left to the reservation, which is the authority on stock."""
        try:
            resp = await self.peers.tat.BatchCheckServiceability(
                serviceability_pb2.BatchCheckServiceabilityRequest(
                    item_ids=item_ids, pincode=pincode
                ),
                timeout=self.settings.call_timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument.for_field(
                    "shipping_address.pincode", "not a known pincode"
                ) from None
            raise Unavailable(
                "deliverability could not be checked", reason="SERVICEABILITY_UNAVAILABLE"
            ) from exc
        ok_reasons = (
            common_pb2.UNDELIVERABLE_REASON_UNSPECIFIED,
            common_pb2.UNDELIVERABLE_REASON_OUT_OF_STOCK,
        )
        bad = [
            r
            for r in resp.results
            if not r.estimate.deliverable and r.estimate.reason not in ok_reasons
        ]
        if bad:
            raise FailedPrecondition(
                f"not deliverable to {pincode}: " + ", ".join(r.item_id for r in bad),
                reason="NOT_DELIVERABLE",
                violations=[
                    PreconditionViolation(
                        "DELIVERY",
                        r.item_id,
                        common_pb2.UndeliverableReason.Name(r.estimate.reason),
                    )
                    for r in bad
                ],
            )
        out: dict[str, tuple[str, date | None]] = {}
        for r in resp.results:
            d = r.estimate.promised_date
            out[r.item_id] = (
                r.estimate.warehouse_id,
                date(d.year, d.month, d.day) if r.estimate.deliverable and d.year else None,
            )
        return out

    # -- payment -----------------------------------------------------------
    async def pay(self, order_id: str, token: str, request_id: str) -> OrderRecord:
        """Charge a CREATED order; PLACED, CANCELLED, or still CREATED with
        the payment PENDING. A retry with the same request id never charges
        twice (it is also the payment's idempotency key)."""
        problems = domain.validate_request_id(request_id)
        if not token:
            problems.append(domain.FieldViolation("payment_token", "is required"))
        if problems:
            raise InvalidArgument(violations=problems)
        rec = await self.get_visible(order_id)
        mesh.require_owner_or_admin(rec.user_id)
        if rec.payment_request_id == request_id and rec.payment_status not in (
            PaymentStatus.PENDING,
            PaymentStatus.NONE,
        ):
            return rec  # a retry of a payment already answered
        if rec.state is not OrderState.CREATED:
            raise FailedPrecondition(
                f"order is {rec.state.value}, not payable", reason="ORDER_NOT_PAYABLE"
            )
        if rec.payment_request_id and rec.payment_request_id != request_id:
            raise FailedPrecondition(
                "a payment is already in flight for this order", reason="PAYMENT_IN_FLIGHT"
            )
        remaining = (rec.expires_at - utcnow()).total_seconds()
        if remaining <= 0:
            asyncio.get_running_loop().create_task(self.expire(order_id))
            raise FailedPrecondition("the order's hold has expired", reason="HOLD_EXPIRED")

        def claim(r: OrderRecord) -> dict[str, Any]:
            if r.payment_request_id not in (None, request_id):
                raise FailedPrecondition(
                    "a payment is already in flight for this order", reason="PAYMENT_IN_FLIGHT"
                )
            return {}

        async def record_attempt(conn: AsyncConnection) -> None:
            locked = await self.store.get(conn, order_id, for_update=True)
            assert locked is not None
            if locked.state is not OrderState.CREATED:
                raise FailedPrecondition(
                    f"order is {locked.state.value}, not payable", reason="ORDER_NOT_PAYABLE"
                )
            claim(locked)
            if locked.payment_request_id is None:
                await self.store.update(
                    conn,
                    order_id,
                    payment_request_id=request_id,
                    payment_status=PaymentStatus.PENDING.value,
                    update_time=utcnow(),
                )

        await self.store.run(record_attempt)
        wait = max(0.1, min(self.settings.payment_wait_seconds, remaining))
        try:
            with self._as_service(timeout=wait + self.settings.call_timeout_seconds):
                payment = await self.peers.payments.CreatePayment(
                    payments_pb2.CreatePaymentRequest(
                        order_id=order_id,
                        user_id=rec.user_id,
                        amount=codec.money(rec.total_paise),
                        payment_token=token,
                        wait_timeout=Duration(seconds=int(wait), nanos=int((wait % 1) * 1e9)),
                        request_id=request_id,
                    )
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                # Nothing was charged: free the order for a corrected attempt.
                await self.store.update_if(
                    order_id,
                    rec.version,
                    payment_request_id=None,
                    payment_status=PaymentStatus.NONE.value,
                )
                raise InvalidArgument.for_field(
                    "payment_token", exc.details() or "payment method refused"
                ) from None
            if exc.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                # The answer is unknown: the order stays pending and the
                # events, the expiry check or reconciliation settle it.
                return await self.get_visible(order_id)
            raise
        return await self.apply_payment(payment)

    async def apply_payment(self, payment: payments_pb2.Payment) -> OrderRecord:
        """Apply what payments says about an order's payment (PayOrder's
        answer, GetPayment at expiry, reconciliation) and do the follow-up."""
        rec = await self.store.run(lambda conn: self.apply_payment_in(conn, payment))
        if rec is None:
            raise NotFound(f"order {payment.order_id!r} not found", resource_type="order")
        return await self.after_change(rec)

    async def apply_payment_in(
        self, conn: AsyncConnection, payment: payments_pb2.Payment
    ) -> OrderRecord | None:
        """The database part of :meth:`apply_payment`, in the caller's
        transaction (the payments consumer runs it next to its dedupe row).

        A success that resolved after ``expires_at`` never places the order:
        it is expired and the payment refunded."""
        rec = await self.store.get(conn, payment.order_id, for_update=True)
        if rec is None or rec.state not in domain.VISIBLE_STATES:
            return None
        if rec.payment_id and payment.payment_id != rec.payment_id:
            log.warning(
                "payment %s is not order %s's payment %s; ignored",
                payment.payment_id,
                rec.order_id,
                rec.payment_id,
            )
            return rec
        status = codec.PAYMENT_FROM_PROTO.get(payment.status, PaymentStatus.NONE)
        if _PAYMENT_RANK[status] < _PAYMENT_RANK[rec.payment_status]:
            return rec  # stale news
        values: dict[str, Any] = {
            "payment_id": payment.payment_id,
            "payment_status": status.value,
            "decline_code": payment.decline_code[:64],
            "refunded_paise": domain.money_to_paise(
                payment.refunded_amount.units, payment.refunded_amount.nanos
            ),
            "update_time": utcnow(),
        }
        if rec.payment_request_id is None:
            values["payment_request_id"] = payment.payment_id[:64]
        if rec.state is OrderState.CREATED and status is PaymentStatus.SUCCEEDED:
            resolved = (
                codec.from_timestamp(payment.resolve_time)
                if payment.HasField("resolve_time")
                else utcnow()
            )
            if resolved <= rec.expires_at:
                return await self._transition_locked(conn, rec, Action.PAYMENT_SUCCEEDED, values)
            values.update(
                cancel_reason=CancelReason.HOLD_EXPIRED.value, cancel_note=LATE_REFUND_NOTE
            )
            return await self._transition_locked(conn, rec, Action.EXPIRE, values)
        if rec.state is OrderState.CREATED and status is PaymentStatus.DECLINED:
            values["cancel_reason"] = CancelReason.PAYMENT_DECLINED.value
            return await self._transition_locked(conn, rec, Action.PAYMENT_DECLINED, values)
        if domain.refund_due(rec.state, status) and rec.refund_state != "DONE":
            values.update(refund_state="DUE", work_due=True)
            if not rec.cancel_note:
                values["cancel_note"] = LATE_REFUND_NOTE
        if status in (PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED) and (
            rec.refund_state == "DUE" and status is PaymentStatus.REFUNDED
        ):
            values["refund_state"] = "DONE"
        await self.store.update(conn, rec.order_id, **values)
        return await self.store.get(conn, rec.order_id)

    # -- expiry ------------------------------------------------------------
    async def expire(self, order_id: str) -> OrderRecord | None:
        """Cancel a CREATED order whose hold ended (HOLD_EXPIRED) and release
        its stock. A payment in flight is asked first: one that succeeded in
        time places the order instead. Safe to call any number of times."""
        rec = await self.store.get(None, order_id)
        if rec is None or rec.state is not OrderState.CREATED:
            return rec
        now = utcnow()
        if rec.expires_at > now:
            return rec
        if rec.payment_request_id and rec.payment_status in (
            PaymentStatus.PENDING,
            PaymentStatus.TIMED_OUT,
        ):
            try:
                with self._as_service():
                    found = await self.peers.payments.ListPayments(
                        payments_pb2.ListPaymentsRequest(order_id=order_id)
                    )
            except grpc.aio.AioRpcError as exc:
                grace = timedelta(seconds=self.settings.payments_unknown_grace_seconds)
                if now < rec.expires_at + grace:
                    log.info("expiry of %s waits for payments (%s)", order_id, exc.code())
                    return rec
                found = payments_pb2.ListPaymentsResponse()
            for payment in found.payments:
                if payment.status in (
                    payments_pb2.PAYMENT_STATUS_SUCCEEDED,
                    payments_pb2.PAYMENT_STATUS_DECLINED,
                ):
                    return await self.apply_payment(payment)

        def guard(r: OrderRecord) -> None:
            if r.state is not OrderState.CREATED or r.expires_at > utcnow():
                raise _NotDue
            if r.payment_status is PaymentStatus.SUCCEEDED:
                raise _NotDue  # never cancel a paid order

        try:
            return await self._transition(
                order_id,
                Action.EXPIRE,
                values=lambda r: {"cancel_reason": CancelReason.HOLD_EXPIRED.value},
                guard=guard,
            )
        except _NotDue:
            return await self.store.get(None, order_id)

    # -- cancel, ship, deliver ---------------------------------------------
    async def cancel(self, order_id: str, note: str, request_id: str) -> OrderRecord:
        """Cancel a CREATED or PLACED order (stock released; a captured
        payment refunded). CANCELLED returns unchanged; later states refuse."""
        if problems := domain.validate_request_id(request_id):
            raise InvalidArgument(violations=problems)
        rec = await self.get_visible(order_id)
        caller = mesh.require_owner_or_admin(rec.user_id)
        reason = (
            CancelReason.USER_CANCELLED
            if caller.user_id == rec.user_id
            else CancelReason.ADMIN_CANCELLED
        )
        return await self._guarded(
            order_id,
            Action.CANCEL,
            lambda r: {"cancel_reason": reason.value, "cancel_note": note[:500]},
        )

    async def ship(
        self, order_id: str, carrier: str, tracking: str, request_id: str
    ) -> OrderRecord:
        """PLACED -> SHIPPED (admin); SHIPPED returns unchanged."""
        if problems := domain.validate_request_id(request_id):
            raise InvalidArgument(violations=problems)
        return await self._guarded(
            order_id,
            Action.SHIP,
            lambda r: {"carrier": carrier[:100], "tracking_number": tracking[:100]},
        )

    async def deliver(self, order_id: str, request_id: str) -> OrderRecord:
        """SHIPPED -> DELIVERED (admin); DELIVERED returns unchanged."""
        if problems := domain.validate_request_id(request_id):
            raise InvalidArgument(violations=problems)
        return await self._guarded(order_id, Action.DELIVER, None)

    async def _guarded(
        self,
        order_id: str,
        action: Action,
        values: Callable[[OrderRecord], dict[str, Any]] | None,
    ) -> OrderRecord:
        try:
            return await self._transition(order_id, action, values)
        except IllegalTransition as exc:
            raise FailedPrecondition(
                str(exc),
                reason="ILLEGAL_TRANSITION",
                violations=[PreconditionViolation("ORDER_STATE", order_id, str(exc))],
            ) from None

    # -- follow-up work ----------------------------------------------------
    async def settle(self, order_id: str) -> OrderRecord:
        """Bring the reservation and the payment in line with the order's
        state (release, commit, refund). Idempotent; the sweeper calls it for
        every row with ``work_due`` after a crash or an outage."""
        for _ in range(4):
            rec = await self.store.get(None, order_id)
            if rec is None:
                raise NotFound(f"order {order_id!r} not found")
            if not rec.work_due:
                return rec
            wanted = domain.wanted_reservation(rec.state)
            reservation = rec.reservation_state
            flagged = (
                wanted is ReservationState.COMMITTED and reservation is ReservationState.RELEASED
            )
            if wanted is not ReservationState.NONE and reservation != wanted and not flagged:
                moved = await self._move_reservation(rec, wanted)
                if moved is None:
                    return rec  # peer down: the sweeper retries
                if not await self.store.update_if(
                    order_id, rec.version, reservation_state=moved.value
                ):
                    continue  # a transition happened meanwhile: look again
                reservation = moved
            refund_state = rec.refund_state
            if refund_state == "DUE":
                refunded = await self._refund(rec)
                if refunded is None:
                    return rec
                if not await self.store.update_if(
                    order_id,
                    rec.version,
                    refund_state="DONE",
                    payment_status=codec.PAYMENT_FROM_PROTO.get(
                        refunded.status, rec.payment_status
                    ).value,
                    refunded_paise=domain.money_to_paise(
                        refunded.refunded_amount.units, refunded.refunded_amount.nanos
                    ),
                ):
                    continue
            if await self.store.update_if(order_id, rec.version, work_due=False):
                break
        done = await self.store.get(None, order_id)
        assert done is not None
        if done.state is OrderState.PLACED and done.from_cart and not done.work_due:
            await self._remove_from_cart(done)
        return done

    async def _move_reservation(
        self, rec: OrderRecord, wanted: ReservationState
    ) -> ReservationState | None:
        """Ask inventory for ``wanted``; the reservation state reached, or
        None when inventory could not be reached."""
        try:
            with self._as_service():
                if wanted is ReservationState.RELEASED:
                    await self.peers.inventory.ReleaseReservation(
                        inventory_pb2.ReleaseReservationRequest(
                            order_id=rec.order_id,
                            reason=_RELEASE_REASON.get(rec.cancel_reason, "reconciled"),
                        )
                    )
                    return ReservationState.RELEASED
                if wanted is ReservationState.COMMITTED:
                    await self.peers.inventory.CommitReservation(
                        inventory_pb2.CommitReservationRequest(order_id=rec.order_id)
                    )
                    return ReservationState.COMMITTED
        except grpc.aio.AioRpcError as exc:
            if wanted is ReservationState.COMMITTED and exc.code() in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.NOT_FOUND,
            ):
                # Paid but its stock is gone: needs a human. Reported by
                # reconciliation (FLAGGED); nothing to retry here.
                log.error(
                    "order %s is %s but its reservation could not be committed: %s",
                    rec.order_id,
                    rec.state,
                    exc.details(),
                )
                return ReservationState.RELEASED
            log.warning("reservation of %s -> %s: %s", rec.order_id, wanted, exc.code())
            return None
        return None

    async def _refund(self, rec: OrderRecord) -> payments_pb2.Payment | None:
        if not rec.payment_id:
            return None
        reason = (
            "late_payment_after_expiry"
            if rec.cancel_reason is CancelReason.HOLD_EXPIRED
            else "order_cancelled"
        )
        try:
            with self._as_service():
                return await self.peers.payments.RefundPayment(
                    payments_pb2.RefundPaymentRequest(
                        payment_id=rec.payment_id,
                        reason=reason,
                        request_id=f"{rec.order_id}:refund",
                    )
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                # Already refunded (or never captured): read where it stands.
                with self._as_service():
                    try:
                        return await self.peers.payments.GetPayment(
                            payments_pb2.GetPaymentRequest(payment_id=rec.payment_id)
                        )
                    except grpc.aio.AioRpcError:
                        return None
            log.warning("refund of %s: %s", rec.order_id, exc.code())
            return None

    async def _remove_from_cart(self, rec: OrderRecord) -> None:
        """Best effort: a placed cart order's lines leave the cart."""
        try:
            with self._as_service():
                await self.peers.cart.BatchRemoveCartItems(
                    cart_pb2.BatchRemoveCartItemsRequest(
                        user_id=rec.user_id,
                        item_ids=[ln.item_id for ln in rec.lines],
                        request_id=f"{rec.order_id}:cart",
                    )
                )
        except grpc.aio.AioRpcError as exc:
            log.warning("removing order %s from the cart: %s", rec.order_id, exc.code())

    # -- the sweeper ---------------------------------------------------------
    async def resolve_pending(self, order_id: str) -> OrderRecord | None:
        """Finish or undo a checkout interrupted between storing the order and
        marking it CREATED: a HELD reservation completes it; otherwise a
        release (which leaves a tombstone, so a late ReserveStock is refused)
        undoes it."""
        rec = await self.store.get(None, order_id)
        if rec is None or rec.state is not OrderState.PENDING:
            return rec
        try:
            with self._as_service():
                reservation = await self.peers.inventory.GetReservation(
                    inventory_pb2.GetReservationRequest(order_id=order_id)
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                return rec
            reservation = None
        if reservation is not None and reservation.state == inventory_pb2.RESERVATION_STATE_HELD:
            return await self._mark_reserved(order_id, reservation)
        with self._as_service():
            await self.peers.inventory.ReleaseReservation(
                inventory_pb2.ReleaseReservationRequest(order_id=order_id, reason="reconciled")
            )
        await self._reject(order_id, "CHECKOUT_INTERRUPTED", "checkout was interrupted; retry")
        return await self.store.get(None, order_id)

    async def sweep_once(self, limit: int = 200) -> int:
        """One pass: expire CREATED orders past ``expires_at``, redo owed
        follow-up work, resolve stale PENDING checkouts. Returns how many
        orders it touched."""
        now = utcnow()
        touched = 0
        expired = await self.store.ids_where(
            (orders.c.state == OrderState.CREATED.value) & (orders.c.expires_at <= now), limit
        )
        for order_id in expired:
            await self._safely(self.expire, order_id)
            touched += 1
        for order_id in await self.store.ids_where(orders.c.work_due.is_(True), limit):
            await self._safely(self.settle, order_id)
            touched += 1
        stale = now - timedelta(seconds=self.settings.pending_grace_seconds)
        pending = await self.store.ids_where(
            (orders.c.state == OrderState.PENDING.value) & (orders.c.create_time <= stale), limit
        )
        for order_id in pending:
            await self._safely(self.resolve_pending, order_id)
            touched += 1
        return touched

    async def _safely(self, fn: Callable[[str], Awaitable[Any]], order_id: str) -> None:
        try:
            with mesh.call_scope(caller=SERVICE_CALLER, timeout=30):
                await fn(order_id)
        except Exception:  # noqa: BLE001 - one bad order must not stop the sweep
            log.exception("sweeper: %s(%s) failed", getattr(fn, "__name__", fn), order_id)

    async def sweep_forever(self, interval: float) -> None:
        """The sweeper task: the guarantee behind the Redis fast path."""
        while True:
            try:
                await self.sweep_once()
            except Exception:  # noqa: BLE001 - MariaDB down: try again next tick
                log.exception("sweeper pass failed")
            await asyncio.sleep(interval)

    async def on_hold_expired(self, order_id: str) -> None:
        """Redis said the hold key expired: expire the order now, in its own
        task so one slow expiry (asking payments) does not delay the next."""
        task = asyncio.get_running_loop().create_task(self._safely(self.expire, order_id))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)


class Reconciler:
    """Finds and repairs drift between orders, inventory reservations and
    payments, and reports each repair (ReconcileOrders and a periodic task).

    It trusts each side for what it owns: the order row for the order's
    state, inventory for what is held, payments for what was charged; and
    moves the others towards it with the same idempotent calls the normal
    paths use, so running it concurrently with live traffic is safe."""

    def __init__(self, service: OrderService) -> None:
        self.service = service
        self.store = service.store
        self.peers = service.peers

    async def run(
        self, dry_run: bool, max_repairs: int, request_id: str
    ) -> pb.ReconcileOrdersResponse:
        """One run; a retried request id returns the first run's report."""
        if problems := domain.validate_request_id(request_id):
            raise InvalidArgument(violations=problems)
        if not 0 <= max_repairs <= 10_000:
            raise InvalidArgument.for_field("max_repairs", "must be 0-10000")
        stored = await self.store.get_report(request_id)
        if stored is not None:
            return pb.ReconcileOrdersResponse.FromString(stored)
        report = pb.ReconcileOrdersResponse(dry_run=dry_run)
        limit = max_repairs or 1000
        with mesh.call_scope(caller=SERVICE_CALLER, request_id=request_id, timeout=120):
            for step in (
                self._expired_holds,
                self._held_reservations,
                self._placed_orders,
                self._payments,
            ):
                if len(report.repairs) >= limit:
                    report.truncated = True
                    break
                await step(report, dry_run, limit)
        await self.store.save_report(request_id, report.SerializeToString())
        return report

    def _add(
        self,
        report: pb.ReconcileOrdersResponse,
        order_id: str,
        kind: int,
        before: OrderState | None,
        after: OrderState | None,
        detail: str,
    ) -> None:
        report.repairs.add(
            order_id=order_id,
            kind=kind,  # type: ignore[arg-type]
            from_state=codec.STATE_TO_PROTO.get(before, 0) if before else 0,  # type: ignore[arg-type]
            to_state=codec.STATE_TO_PROTO.get(after, 0) if after else 0,  # type: ignore[arg-type]
            detail=detail,
        )
        log.info("reconcile: %s %s: %s", pb.RepairKind.Name(kind), order_id, detail)

    async def _expired_holds(
        self, report: pb.ReconcileOrdersResponse, dry_run: bool, limit: int
    ) -> None:
        ids = await self.store.ids_where(
            (orders.c.state == OrderState.CREATED.value) & (orders.c.expires_at <= utcnow()), limit
        )
        report.orders_checked += len(ids)
        for order_id in ids:
            if len(report.repairs) >= limit:
                report.truncated = True
                return
            if dry_run:
                self._add(
                    report,
                    order_id,
                    pb.REPAIR_KIND_EXPIRED_HOLD_CANCELLED,
                    OrderState.CREATED,
                    OrderState.CANCELLED,
                    "hold expired (dry run)",
                )
                continue
            after = await self.service.expire(order_id)
            if after is not None and after.state is OrderState.CANCELLED:
                self._add(
                    report,
                    order_id,
                    pb.REPAIR_KIND_EXPIRED_HOLD_CANCELLED,
                    OrderState.CREATED,
                    after.state,
                    "hold expired; stock released",
                )
            elif after is not None and after.state is OrderState.PLACED:
                self._add(
                    report,
                    order_id,
                    pb.REPAIR_KIND_PAYMENT_STATUS_APPLIED,
                    OrderState.CREATED,
                    after.state,
                    "payment had succeeded in time",
                )

    async def _held_reservations(
        self, report: pb.ReconcileOrdersResponse, dry_run: bool, limit: int
    ) -> None:
        token = ""
        grace = timedelta(seconds=self.service.settings.pending_grace_seconds)
        while True:
            page = await self.peers.inventory.ListReservations(
                inventory_pb2.ListReservationsRequest(
                    state=inventory_pb2.RESERVATION_STATE_HELD, page_size=500, page_token=token
                )
            )
            for res in page.reservations:
                report.reservations_checked += 1
                if len(report.repairs) >= limit:
                    report.truncated = True
                    return
                rec = await self.store.get(None, res.order_id)
                state = rec.state if rec else None
                if state in (OrderState.CREATED, OrderState.PENDING):
                    continue
                if state is None and codec.from_timestamp(res.create_time) > utcnow() - grace:
                    continue  # a checkout may be between its insert and its reserve
                if state in (OrderState.PLACED, OrderState.SHIPPED, OrderState.DELIVERED):
                    if not dry_run:
                        await self.peers.inventory.CommitReservation(
                            inventory_pb2.CommitReservationRequest(order_id=res.order_id)
                        )
                        assert rec is not None
                        await self._note_reservation(rec, ReservationState.COMMITTED)
                    self._add(
                        report,
                        res.order_id,
                        pb.REPAIR_KIND_RESERVATION_COMMITTED,
                        state,
                        state,
                        f"order is {state.value} but its stock was still held",
                    )
                    continue
                if not dry_run:
                    await self.peers.inventory.ReleaseReservation(
                        inventory_pb2.ReleaseReservationRequest(
                            order_id=res.order_id, reason="reconciled"
                        )
                    )
                    if rec is not None:
                        await self._note_reservation(rec, ReservationState.RELEASED)
                what = f"order is {state.value}" if state else "no such order"
                self._add(
                    report,
                    res.order_id,
                    pb.REPAIR_KIND_ORPHAN_RESERVATION_RELEASED,
                    state,
                    state,
                    f"{what}; held stock released",
                )
            token = page.next_page_token
            if not token:
                return

    async def _note_reservation(self, rec: OrderRecord, reached: ReservationState) -> None:
        fresh = await self.store.get(None, rec.order_id)
        if fresh is not None:
            await self.store.update_if(
                rec.order_id,
                fresh.version,
                reservation_state=reached.value,
                work_due=fresh.refund_state == "DUE",
            )

    async def _placed_orders(
        self, report: pb.ReconcileOrdersResponse, dry_run: bool, limit: int
    ) -> None:
        """Paid orders whose stock is not confirmed sold: commit, or flag when
        inventory no longer holds it."""
        ids = await self.store.ids_where(
            orders.c.state.in_(
                [s.value for s in (OrderState.PLACED, OrderState.SHIPPED, OrderState.DELIVERED)]
            )
            & (orders.c.reservation_state != ReservationState.COMMITTED.value),
            limit,
        )
        report.orders_checked += len(ids)
        for order_id in ids:
            if len(report.repairs) >= limit:
                report.truncated = True
                return
            rec = await self.store.get(None, order_id)
            if rec is None:
                continue
            try:
                res = await self.peers.inventory.GetReservation(
                    inventory_pb2.GetReservationRequest(order_id=order_id)
                )
                state = res.state
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                state = inventory_pb2.RESERVATION_STATE_UNSPECIFIED
            if state == inventory_pb2.RESERVATION_STATE_COMMITTED:
                if not dry_run:
                    await self._note_reservation(rec, ReservationState.COMMITTED)
                continue
            if state == inventory_pb2.RESERVATION_STATE_HELD:
                if not dry_run:
                    await self.peers.inventory.CommitReservation(
                        inventory_pb2.CommitReservationRequest(order_id=order_id)
                    )
                    await self._note_reservation(rec, ReservationState.COMMITTED)
                self._add(
                    report,
                    order_id,
                    pb.REPAIR_KIND_RESERVATION_COMMITTED,
                    rec.state,
                    rec.state,
                    "paid order's stock was still held",
                )
                continue
            self._add(
                report,
                order_id,
                pb.REPAIR_KIND_FLAGGED,
                rec.state,
                rec.state,
                f"order is {rec.state.value} but inventory holds no stock for it",
            )

    async def _payments(
        self, report: pb.ReconcileOrdersResponse, dry_run: bool, limit: int
    ) -> None:
        """Payments whose final word never reached the order, and captured
        payments of cancelled orders that were not refunded."""
        open_ids = await self.store.ids_where(
            orders.c.payment_request_id.is_not(None)
            & orders.c.payment_status.in_(
                [PaymentStatus.PENDING.value, PaymentStatus.TIMED_OUT.value]
            ),
            limit,
        )
        owed = await self.store.ids_where(
            (orders.c.state == OrderState.CANCELLED.value) & (orders.c.refund_state == "DUE"),
            limit,
        )
        report.orders_checked += len(open_ids) + len(owed)
        for order_id in open_ids:
            if len(report.repairs) >= limit:
                report.truncated = True
                return
            rec = await self.store.get(None, order_id)
            if rec is None:
                continue
            try:
                found = await self.peers.payments.ListPayments(
                    payments_pb2.ListPaymentsRequest(order_id=order_id)
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("reconcile: payments unreachable (%s)", exc.code())
                return
            for payment in found.payments:
                report.payments_checked += 1
                status = codec.PAYMENT_FROM_PROTO.get(payment.status, PaymentStatus.NONE)
                if status is rec.payment_status or status in (
                    PaymentStatus.PENDING,
                    PaymentStatus.NONE,
                ):
                    continue
                after = rec if dry_run else await self.service.apply_payment(payment)
                self._add(
                    report,
                    order_id,
                    pb.REPAIR_KIND_PAYMENT_STATUS_APPLIED,
                    rec.state,
                    after.state,
                    f"payment {payment.payment_id} is {status.value}",
                )
                if not dry_run and after.refund_state == "DONE":
                    self._add(
                        report,
                        order_id,
                        pb.REPAIR_KIND_LATE_PAYMENT_REFUNDED,
                        after.state,
                        after.state,
                        "captured after cancellation; refunded",
                    )
                break
        for order_id in owed:
            if len(report.repairs) >= limit:
                report.truncated = True
                return
            rec = await self.store.get(None, order_id)
            if rec is None or rec.refund_state != "DUE":
                continue
            after = rec if dry_run else await self.service.settle(order_id)
            if dry_run or after.refund_state == "DONE":
                self._add(
                    report,
                    order_id,
                    pb.REPAIR_KIND_LATE_PAYMENT_REFUNDED,
                    rec.state,
                    after.state,
                    f"payment {rec.payment_id} refunded",
                )

    async def run_forever(self, interval: float) -> None:
        """The periodic reconciliation task."""
        while True:
            await asyncio.sleep(interval)
            try:
                report = await self.run(False, 1000, f"auto-{uuid.uuid4().hex[:24]}")
                if report.repairs:
                    log.warning("periodic reconciliation made %d repairs", len(report.repairs))
            except Exception:  # noqa: BLE001 - a peer down: next time
                log.exception("periodic reconciliation failed")


class _NotDue(Exception):
    """Raised inside the expiry transaction when the order no longer qualifies."""


__all__ = ["DomainError", "OrderService", "OrderSettings", "Peers"]
