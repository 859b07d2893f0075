"""Payment (PayOrder), and applying what payments says about an order's
payment, whoever hears it: PayOrder's answer, the `payments.events`
consumer, the expiry check and reconciliation.

PayOrder first records the attempt on the order (its request id is the
payment's idempotency key, so a retry never charges twice and a second,
different attempt is refused while one is in flight), then asks payments
to charge and waits up to ``payment_wait_seconds`` for the gateway. The
answer moves the order: a success in time places it, a decline cancels it,
no answer leaves it CREATED with the payment PENDING for the events, the
expiry check or reconciliation to settle. A success that resolved after
the hold ended never places the order: it is expired and refunded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ecom.payments.v1 import payments_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

import mesh
from mesh.db import utcnow
from mesh.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from svc_orders import codec, domain
from svc_orders.domain import Action, CancelReason, OrderState, PaymentStatus, RefundState
from svc_orders.ports import PeerRejectedInput, Peers, PeerUnreachable
from svc_orders.settlement import Settlement
from svc_orders.store import OrderRecord, OrderStore, after_update
from svc_orders.transitions import OrderSettings, Transitions, as_service

log = logging.getLogger(__name__)

LATE_REFUND_NOTE = "payment succeeded after the hold expired; refunded automatically"


def _not_payable(state: OrderState) -> FailedPrecondition:
    return FailedPrecondition(f"order is {state.value}, not payable", reason="ORDER_NOT_PAYABLE")


def _in_flight() -> FailedPrecondition:
    return FailedPrecondition(
        "a payment is already in flight for this order", reason="PAYMENT_IN_FLIGHT"
    )


class Payment:
    """PayOrder and the application of payment outcomes."""

    def __init__(
        self,
        transitions: Transitions,
        settlement: Settlement,
        peers: Peers,
        settings: OrderSettings,
        expire_soon: Callable[[str], None],
    ) -> None:
        self.transitions = transitions
        self.store: OrderStore = transitions.store
        self.settlement = settlement
        self.peers = peers
        self.settings = settings
        # Schedules the expiry of an order found past its hold.
        self.expire_soon = expire_soon

    async def pay(self, order_id: str, token: str, request_id: str) -> OrderRecord:
        """Charge a CREATED order; PLACED, CANCELLED, or still CREATED with
        the payment PENDING."""
        problems = domain.validate_request_id(request_id)
        if not token:
            problems.append(FieldViolation("payment_token", "is required"))
        if problems:
            raise InvalidArgument(violations=problems)
        rec = await self.transitions.get_visible(order_id)
        mesh.require_owner_or_admin(rec.user_id)
        if rec.payment_request_id == request_id and not _unanswered(rec.payment_status):
            return rec  # a retry of a payment already answered
        if rec.state is not OrderState.CREATED:
            raise _not_payable(rec.state)
        if rec.payment_request_id and rec.payment_request_id != request_id:
            raise _in_flight()
        remaining = (rec.expires_at - utcnow()).total_seconds()
        if remaining <= 0:
            self.expire_soon(order_id)
            raise FailedPrecondition("the order's hold has expired", reason="HOLD_EXPIRED")
        await self.store.run(lambda conn: self._record_attempt(conn, order_id, request_id))
        wait = max(0.1, min(self.settings.payment_wait_seconds, remaining))
        try:
            with as_service(self.settings, timeout=wait + self.settings.call_timeout_seconds):
                payment = await self.peers.payments.create(
                    order_id, rec.user_id, codec.money(rec.total_paise), token, wait, request_id
                )
        except PeerRejectedInput as exc:
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
        except PeerUnreachable:
            # The answer is unknown: the order stays pending and the events,
            # the expiry check or reconciliation settle it.
            return await self.transitions.get_visible(order_id)
        return await self.apply_payment(payment)

    async def _record_attempt(self, conn: AsyncConnection, order_id: str, request_id: str) -> None:
        """Claim the order for this payment attempt (under the row lock)."""
        locked = await self.store.get(conn, order_id, for_update=True)
        assert locked is not None
        if locked.state is not OrderState.CREATED:
            raise _not_payable(locked.state)
        if locked.payment_request_id not in (None, request_id):
            raise _in_flight()
        if locked.payment_request_id is None:
            await self.store.update(
                conn,
                order_id,
                payment_request_id=request_id,
                payment_status=PaymentStatus.PENDING.value,
                update_time=utcnow(),
            )

    async def apply_payment(self, payment: payments_pb2.Payment) -> OrderRecord:
        """Apply what payments says about an order's payment and do the
        follow-up."""
        rec = await self.store.run(lambda conn: self.apply_payment_in(conn, payment))
        if rec is None:
            raise NotFound(f"order {payment.order_id!r} not found", resource_type="order")
        return await self.settlement.after_change(rec)

    async def apply_payment_in(
        self, conn: AsyncConnection, payment: payments_pb2.Payment
    ) -> OrderRecord | None:
        """The database part of :meth:`apply_payment`, in the caller's
        transaction (the payments consumer runs it next to its dedupe row)."""
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
        if domain.payment_is_stale(rec.payment_status, status):
            return rec  # stale news
        values: dict[str, Any] = {
            "payment_id": payment.payment_id,
            "payment_status": status.value,
            "decline_code": payment.decline_code[:64],
            "refunded_paise": codec.paise(payment.refunded_amount),
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
                return await self.transitions.apply_locked(
                    conn, rec, Action.PAYMENT_SUCCEEDED, values
                )
            values.update(
                cancel_reason=CancelReason.HOLD_EXPIRED.value, cancel_note=LATE_REFUND_NOTE
            )
            return await self.transitions.apply_locked(conn, rec, Action.EXPIRE, values)
        if rec.state is OrderState.CREATED and status is PaymentStatus.DECLINED:
            values["cancel_reason"] = CancelReason.PAYMENT_DECLINED.value
            return await self.transitions.apply_locked(conn, rec, Action.PAYMENT_DECLINED, values)
        values.update(_refund_bookkeeping(rec, status))
        await self.store.update(conn, rec.order_id, **values)
        return after_update(rec, values)


def _refund_bookkeeping(rec: OrderRecord, status: PaymentStatus) -> dict[str, Any]:
    """What news of ``status`` on an order that does not change state owes:
    a refund when it captured money for a cancelled order, DONE when the
    refund owed has happened."""
    out: dict[str, Any] = {}
    if domain.refund_due(rec.state, status) and rec.refund_state != RefundState.DONE:
        out.update(refund_state=RefundState.DUE.value, work_due=True)
        if not rec.cancel_note:
            out["cancel_note"] = LATE_REFUND_NOTE
    if status is PaymentStatus.REFUNDED and rec.refund_state == RefundState.DUE:
        out["refund_state"] = RefundState.DONE.value
    return out


def _unanswered(status: PaymentStatus) -> bool:
    return status in (PaymentStatus.PENDING, PaymentStatus.NONE)
