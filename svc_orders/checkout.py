"""Checkout (CreateOrder), and finishing a checkout a crash interrupted.

Crash safety comes from the order of steps: price and check deliverability
(nothing stored yet), store the order as internal ``PENDING`` (so a crash
leaves a row to finish or undo), ask inventory to hold the stock
(idempotent by order id), then mark it CREATED in one transaction with its
event and arm the Redis hold. A retry with the same request id finds the
first row and finishes it; the sweeper finishes or undoes a PENDING row
nobody retries (:meth:`Checkout.resolve_pending`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import replace
from datetime import date, timedelta

from ecom.catalog.v1 import catalog_pb2
from ecom.common.v1 import common_pb2
from ecom.inventory.v1 import inventory_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import Caller
from mesh.db import utcnow
from mesh.errors import (
    FailedPrecondition,
    FieldViolation,
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
    OrderState,
    PaymentStatus,
    PricedLine,
    RefundState,
    ReservationState,
    WantedLine,
)
from svc_orders.ports import (
    PeerDenied,
    PeerError,
    PeerNotFound,
    PeerRefused,
    PeerRejectedInput,
    Peers,
)
from svc_orders.settlement import Settlement
from svc_orders.store import DuplicateOrder, HoldStore, LineRecord, OrderRecord, OrderStore
from svc_orders.transitions import OrderSettings, Transitions, as_service

log = logging.getLogger(__name__)

Estimates = dict[str, tuple[str, date | None]]  # item -> (warehouse, promised date)


class Checkout:
    """CreateOrder and the recovery of interrupted checkouts."""

    def __init__(
        self,
        transitions: Transitions,
        settlement: Settlement,
        holds: HoldStore,
        peers: Peers,
        settings: OrderSettings,
    ) -> None:
        self.transitions = transitions
        self.store: OrderStore = transitions.store
        self.settlement = settlement
        self.holds = holds
        self.peers = peers
        self.settings = settings

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
        CREATED. A retry with the same request id returns (or finishes) the
        first checkout.

        The first attempt does not look for an earlier one: the (user,
        request id) unique key finds it at the insert. A retry whose inputs
        no longer hold (the first order emptied the cart, an item has been
        withdrawn since) looks it up when its own pricing fails."""
        problems = domain.validate_request_id(request_id)
        if not user_id:
            problems.append(FieldViolation("user_id", "is required"))
        if problems:
            raise InvalidArgument(violations=problems)
        try:
            rec = await self._priced_order(
                user_id, request_id, lines, from_cart, address_id, address
            )
        except Exception:
            existing = await self.store.get_by_request(None, user_id, request_id)
            if existing is not None:
                return await self.finish(existing)
            raise
        try:
            await self.store.run(lambda conn: self.store.insert(conn, rec))
        except DuplicateOrder:
            # An earlier attempt (or a concurrent retry) stored it first:
            # finish that one instead.
            first = await self.store.get_by_request(None, user_id, request_id)
            assert first is not None
            return await self.finish(first)
        return await self.finish(rec)

    async def _priced_order(
        self,
        user_id: str,
        request_id: str,
        lines: list[WantedLine],
        from_cart: bool,
        address_id: str | None,
        address: common_pb2.Address | None,
    ) -> OrderRecord:
        """The PENDING order the request describes, priced and checked
        (nothing stored yet)."""
        if from_cart and lines:
            raise InvalidArgument.for_field("lines", "give either lines or from_cart, not both")
        if from_cart:
            lines = await self._cart_lines(user_id)
        _validate(lines, address, address_id)
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
        priced, estimates = await self._price_and_check(lines, snapshot.pincode)
        return self._new_order(user_id, request_id, from_cart, snapshot, priced, estimates)

    def _new_order(
        self,
        user_id: str,
        request_id: str,
        from_cart: bool,
        address: common_pb2.Address,
        priced: list[PricedLine],
        estimates: Estimates,
    ) -> OrderRecord:
        """The PENDING row of a priced, deliverable checkout."""
        now = utcnow()
        total_paise, item_count = domain.order_totals(priced)
        return OrderRecord(
            order_id=uuid.uuid4().hex,
            user_id=user_id,
            request_id=request_id,
            state=OrderState.PENDING,
            version=1,
            reservation_state=ReservationState.NONE,
            work_due=False,
            from_cart=from_cart,
            address=address.SerializeToString(),
            pincode=address.pincode,
            total_paise=total_paise,
            item_count=item_count,
            payment_request_id=None,
            payment_id="",
            payment_status=PaymentStatus.NONE,
            decline_code="",
            refunded_paise=0,
            refund_state=RefundState.NONE,
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

    async def finish(self, rec: OrderRecord) -> OrderRecord:
        """Hold the stock of a PENDING order and mark it CREATED; any other
        state is the checkout's answer already (REJECTED -> the same error)."""
        if rec.state is OrderState.REJECTED:
            raise FailedPrecondition(rec.reject_message, reason=rec.reject_reason)
        if rec.state is not OrderState.PENDING:
            return rec
        try:
            with as_service(self.settings):
                reservation = await self.peers.inventory.reserve(
                    rec.order_id,
                    rec.pincode,
                    [(ln.item_id, ln.quantity) for ln in rec.lines],
                    rec.expires_at,
                )
        except PeerRefused as exc:
            # Any other failure is an outage: the row stays PENDING; a retry
            # or the sweeper finishes it.
            reason = exc.reason or "INSUFFICIENT_STOCK"
            message = exc.details() or "stock could not be held"
            await self._reject(rec.order_id, reason, message)
            raise FailedPrecondition(message, reason=reason, violations=exc.violations) from None
        return await self._mark_reserved(rec.order_id, reservation, rec)

    async def resolve_pending(self, order_id: str) -> OrderRecord | None:
        """Finish or undo a checkout interrupted between storing the order and
        marking it CREATED: a HELD reservation completes it; otherwise a
        release (which leaves a tombstone, so a late ReserveStock is refused)
        undoes it."""
        rec = await self.store.get(None, order_id)
        if rec is None or rec.state is not OrderState.PENDING:
            return rec
        reservation: inventory_pb2.Reservation | None
        try:
            with as_service(self.settings):
                reservation = await self.peers.inventory.get_reservation(order_id)
        except PeerNotFound:
            reservation = None
        except PeerError:
            return rec
        if reservation is not None and reservation.state == inventory_pb2.RESERVATION_STATE_HELD:
            return await self._mark_reserved(order_id, reservation)
        with as_service(self.settings):
            await self.peers.inventory.release(order_id, "reconciled")
        await self._reject(order_id, "CHECKOUT_INTERRUPTED", "checkout was interrupted; retry")
        return await self.store.get(None, order_id)

    async def _reject(self, order_id: str, reason: str, message: str) -> None:
        async def work(conn: AsyncConnection) -> None:
            rec = await self.store.get(conn, order_id, for_update=True)
            if rec is not None and rec.state is OrderState.PENDING:
                await self.transitions.apply_locked(
                    conn,
                    rec,
                    Action.REJECT,
                    {"reject_reason": reason[:64], "reject_message": message[:1000]},
                )

        await self.store.run(work)

    async def _mark_reserved(
        self,
        order_id: str,
        reservation: inventory_pb2.Reservation,
        known: OrderRecord | None = None,
    ) -> OrderRecord:
        """``known``: the order as just read or inserted; its lines and
        pincode never change, so it saves two reads (the row itself is
        re-read under lock below either way)."""
        held = {ln.item_id: ln.warehouse_id for ln in reservation.lines}
        rec = known if known is not None else await self.store.get(None, order_id)
        assert rec is not None
        promised = await self._promised_dates(rec, held)
        lines = rec.lines

        async def work(conn: AsyncConnection) -> OrderRecord:
            locked = await self.store.get(conn, order_id, for_update=True, known_lines=lines)
            assert locked is not None
            if locked.state is not OrderState.PENDING:  # finished meanwhile: as stored
                stored = await self.store.get(conn, order_id)
                assert stored is not None
                return stored
            fulfilment = {item: (wh, promised.get(item)) for item, wh in held.items()}
            await self.store.set_lines_fulfilment(conn, order_id, fulfilment)
            locked = replace(
                locked,
                lines=tuple(
                    replace(ln, warehouse_id=fulfilment[ln.item_id][0],
                            promised_date=fulfilment[ln.item_id][1])
                    if ln.item_id in fulfilment
                    else ln
                    for ln in locked.lines
                ),
            )
            return await self.transitions.apply_locked(
                conn, locked, Action.RESERVED, {"reservation_state": ReservationState.HELD.value}
            )

        rec = await self.store.run(work)
        if rec.state is OrderState.CREATED:
            try:
                await self.holds.hold(order_id, rec.expires_at)
            except Exception as exc:  # noqa: BLE001 - the sweeper is the guarantee
                log.warning("arming hold of %s: %s", order_id, exc)
        else:
            await self.settlement.after_change(rec)
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
                by_wh = await self.peers.tat.promised_dates(rec.pincode)
            except PeerError as exc:
                log.warning("promised dates for %s: %s", rec.order_id, exc.code())
                return out
            for item, wh in held.items():
                if item not in out and wh in by_wh:
                    out[item] = by_wh[wh]
        return out

    async def _cart_lines(self, user_id: str) -> list[WantedLine]:
        try:
            cart = await self.peers.cart.get_cart(user_id)
        except PeerRejectedInput as exc:
            # The cart's verdict on the request (a malformed user id) is the
            # client's answer; only a cart that cannot answer is a 503.
            raise InvalidArgument.for_field("user_id", exc.details() or "is not valid") from None
        except PeerDenied:
            raise PermissionDenied("not your cart", reason="NOT_OWNER") from None
        except PeerError as exc:
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
            return await self.peers.users.get_address(user_id, address_id)
        except PeerNotFound:
            raise InvalidArgument.for_field("address_id", "no such saved address") from None
        except PeerDenied:
            raise PermissionDenied("not your address", reason="NOT_OWNER") from None

    async def _price_and_check(
        self, lines: list[WantedLine], pincode: str
    ) -> tuple[list[PricedLine], Estimates]:
        """Prices (catalog) and deliverability (tat) at once: neither needs
        the other's answer, so a checkout waits for one round trip, not two.
        A pricing error wins over a deliverability one, as when they ran in
        turn."""
        check = asyncio.ensure_future(
            self._check_deliverable([ln.item_id for ln in lines], pincode)
        )
        try:
            priced = await self._price(lines)
        except BaseException:
            check.cancel()
            with contextlib.suppress(BaseException):
                await check
            raise
        return priced, await check

    async def _price(self, lines: list[WantedLine]) -> list[PricedLine]:
        """Prices and titles from the catalog, never from the client."""
        resp = await self.peers.catalog.batch_get_items([ln.item_id for ln in lines])
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
                codec.paise(items[ln.item_id].price),
            )
            for ln in lines
        ]

    async def _check_deliverable(self, item_ids: list[str], pincode: str) -> Estimates:
        """Fails closed: an unknown answer refuses the checkout. Out of stock
        is left to the reservation, which is the authority on stock."""
        try:
            resp = await self.peers.tat.batch_check(item_ids, pincode)
        except PeerRejectedInput:
            raise InvalidArgument.for_field(
                "shipping_address.pincode", "not a known pincode"
            ) from None
        except PeerError as exc:
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
        out: Estimates = {}
        for r in resp.results:
            d = r.estimate.promised_date
            out[r.item_id] = (
                r.estimate.warehouse_id,
                date(d.year, d.month, d.day) if r.estimate.deliverable and d.year else None,
            )
        return out


def _validate(
    lines: list[WantedLine], address: common_pb2.Address | None, address_id: str | None
) -> None:
    """INVALID_ARGUMENT naming every bad field of a checkout's lines and
    destination."""
    problems = domain.validate_lines(lines)
    if address is None and not address_id:
        problems.append(FieldViolation("destination", "give address_id or shipping_address"))
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
