"""The transitions after checkout that are not payments: hold expiry, and
cancel, ship and deliver (CancelOrder, ShipOrder, DeliverOrder).

Each is one transition through `svc_orders/transitions.py` followed by its
follow-up work (`svc_orders/settlement.py`): stock released for a cancelled
order, committed for a shipped one, a captured payment refunded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ecom.payments.v1 import payments_pb2

import mesh
from mesh.db import utcnow
from mesh.errors import FailedPrecondition, InvalidArgument, PreconditionViolation
from svc_orders import domain
from svc_orders.domain import Action, CancelReason, IllegalTransition, OrderState, PaymentStatus
from svc_orders.payment import Payment
from svc_orders.ports import PeerError, Peers
from svc_orders.settlement import Settlement
from svc_orders.store import OrderRecord
from svc_orders.transitions import OrderSettings, Transitions, as_service

log = logging.getLogger(__name__)

_FINAL = (payments_pb2.PAYMENT_STATUS_SUCCEEDED, payments_pb2.PAYMENT_STATUS_DECLINED)


class _NotDue(Exception):
    """Raised inside the expiry transaction when the order no longer qualifies."""


class _WaitForPayments(Exception):
    """Payments cannot say whether the order was paid; expire it later."""


class Lifecycle:
    """Expiry, cancellation and the logistics transitions."""

    def __init__(
        self,
        transitions: Transitions,
        settlement: Settlement,
        payment: Payment,
        peers: Peers,
        settings: OrderSettings,
    ) -> None:
        self.transitions = transitions
        self.store = transitions.store
        self.settlement = settlement
        self.payment = payment
        self.peers = peers
        self.settings = settings

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
        if rec.payment_request_id and domain.payment_open(rec.payment_status):
            try:
                final = await self._final_payment(rec, now)
            except _WaitForPayments:
                return rec
            if final is not None:
                return await self.payment.apply_payment(final)

        def guard(r: OrderRecord) -> None:
            if r.state is not OrderState.CREATED or r.expires_at > utcnow():
                raise _NotDue
            if r.payment_status is PaymentStatus.SUCCEEDED:
                raise _NotDue  # never cancel a paid order

        try:
            rec = await self.transitions.apply(
                order_id,
                Action.EXPIRE,
                values=lambda r: {"cancel_reason": CancelReason.HOLD_EXPIRED.value},
                guard=guard,
            )
        except _NotDue:
            return await self.store.get(None, order_id)
        return await self.settlement.after_change(rec)

    async def _final_payment(self, rec: OrderRecord, now: datetime) -> payments_pb2.Payment | None:
        """The order's payment if payments has its final word (succeeded or
        declined). Raises _WaitForPayments while payments cannot be asked
        and the grace after expiry has not run out."""
        try:
            with as_service(self.settings):
                found = await self.peers.payments.list_for_order(rec.order_id)
        except PeerError as exc:
            grace = timedelta(seconds=self.settings.payments_unknown_grace_seconds)
            if now < rec.expires_at + grace:
                log.info("expiry of %s waits for payments (%s)", rec.order_id, exc.code())
                raise _WaitForPayments from None
            return None
        return next((p for p in found if p.status in _FINAL), None)

    async def cancel(self, order_id: str, note: str, request_id: str) -> OrderRecord:
        """Cancel a CREATED or PLACED order (stock released; a captured
        payment refunded). CANCELLED returns unchanged; later states refuse."""
        _check_request_id(request_id)
        rec = await self.transitions.get_visible(order_id)
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
        _check_request_id(request_id)
        return await self._guarded(
            order_id,
            Action.SHIP,
            lambda r: {"carrier": carrier[:100], "tracking_number": tracking[:100]},
        )

    async def deliver(self, order_id: str, request_id: str) -> OrderRecord:
        """SHIPPED -> DELIVERED (admin); DELIVERED returns unchanged."""
        _check_request_id(request_id)
        return await self._guarded(order_id, Action.DELIVER, None)

    async def _guarded(
        self,
        order_id: str,
        action: Action,
        values: Callable[[OrderRecord], dict[str, Any]] | None,
    ) -> OrderRecord:
        try:
            rec = await self.transitions.apply(order_id, action, values)
        except IllegalTransition as exc:
            raise FailedPrecondition(
                str(exc),
                reason="ILLEGAL_TRANSITION",
                violations=[PreconditionViolation("ORDER_STATE", order_id, str(exc))],
            ) from None
        return await self.settlement.after_change(rec)


def _check_request_id(request_id: str) -> None:
    if problems := domain.validate_request_id(request_id):
        raise InvalidArgument(violations=problems)
