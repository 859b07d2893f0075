"""Reconciliation (ReconcileOrders and a periodic task): finds and repairs
drift between orders, inventory reservations and payments, and reports
each repair.

It trusts each side for what it owns: the order row for the order's state,
inventory for what is held, payments for what was charged; and moves the
others towards it with the same idempotent calls the normal paths use, so
running it concurrently with live traffic is safe.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from ecom.inventory.v1 import inventory_pb2
from ecom.orders.v1 import orders_pb2 as pb
from ecom.payments.v1 import payments_pb2

import mesh
from mesh.db import utcnow
from mesh.errors import InvalidArgument
from svc_orders import codec, domain
from svc_orders.domain import OrderState, PaymentStatus, RefundState, ReservationState
from svc_orders.ports import PeerError, PeerNotFound
from svc_orders.store import OrderRecord
from svc_orders.transitions import SERVICE_CALLER

if TYPE_CHECKING:
    from svc_orders.service import OrderService

log = logging.getLogger(__name__)


class Reconciler:
    """One reconciliation run at a time, over the order service's store
    and peers (see the module doc)."""

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
        ids = await self.store.expired_created(limit)
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
        """Stock inventory still holds for orders that no longer want it
        held: committed for paid orders, released for the rest."""
        token = ""
        while True:
            page = await self.peers.inventory.list_held(token)
            for res in page.reservations:
                report.reservations_checked += 1
                if len(report.repairs) >= limit:
                    report.truncated = True
                    return
                await self._held_reservation(report, dry_run, res)
            token = page.next_page_token
            if not token:
                return

    async def _held_reservation(
        self, report: pb.ReconcileOrdersResponse, dry_run: bool, res: inventory_pb2.Reservation
    ) -> None:
        grace = timedelta(seconds=self.service.settings.pending_grace_seconds)
        rec = await self.store.get(None, res.order_id)
        state = rec.state if rec else None
        if state in (OrderState.CREATED, OrderState.PENDING):
            return
        if state is None and codec.from_timestamp(res.create_time) > utcnow() - grace:
            return  # a checkout may be between its insert and its reserve
        if rec is not None and domain.wanted_reservation(rec.state) is ReservationState.COMMITTED:
            if not dry_run:
                await self.peers.inventory.commit(res.order_id)
                await self._note_reservation(rec, ReservationState.COMMITTED)
            self._add(
                report,
                res.order_id,
                pb.REPAIR_KIND_RESERVATION_COMMITTED,
                rec.state,
                rec.state,
                f"order is {rec.state.value} but its stock was still held",
            )
            return
        if not dry_run:
            await self.peers.inventory.release(res.order_id, "reconciled")
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

    async def _note_reservation(self, rec: OrderRecord, reached: ReservationState) -> None:
        fresh = await self.store.get(None, rec.order_id)
        if fresh is not None:
            await self.store.update_if(
                rec.order_id,
                fresh.version,
                reservation_state=reached.value,
                work_due=fresh.refund_state == RefundState.DUE,
            )

    async def _placed_orders(
        self, report: pb.ReconcileOrdersResponse, dry_run: bool, limit: int
    ) -> None:
        """Paid orders whose stock is not confirmed sold: commit, or flag when
        inventory no longer holds it."""
        ids = await self.store.paid_uncommitted(limit)
        report.orders_checked += len(ids)
        for order_id in ids:
            if len(report.repairs) >= limit:
                report.truncated = True
                return
            rec = await self.store.get(None, order_id)
            if rec is None:
                continue
            try:
                state = (await self.peers.inventory.get_reservation(order_id)).state
            except PeerNotFound:
                state = inventory_pb2.RESERVATION_STATE_UNSPECIFIED
            if state == inventory_pb2.RESERVATION_STATE_COMMITTED:
                if not dry_run:
                    await self._note_reservation(rec, ReservationState.COMMITTED)
                continue
            if state == inventory_pb2.RESERVATION_STATE_HELD:
                if not dry_run:
                    await self.peers.inventory.commit(order_id)
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
        open_ids = await self.store.open_payments(limit)
        owed = await self.store.refunds_owed(limit)
        report.orders_checked += len(open_ids) + len(owed)
        for order_id in open_ids:
            if len(report.repairs) >= limit:
                report.truncated = True
                return
            rec = await self.store.get(None, order_id)
            if rec is None:
                continue
            try:
                found = await self.peers.payments.list_for_order(order_id)
            except PeerError as exc:
                log.warning("reconcile: payments unreachable (%s)", exc.code())
                return
            await self._open_payment(report, dry_run, rec, found)
        for order_id in owed:
            if len(report.repairs) >= limit:
                report.truncated = True
                return
            rec = await self.store.get(None, order_id)
            if rec is None or rec.refund_state != RefundState.DUE:
                continue
            after = rec if dry_run else await self.service.settle(order_id)
            if dry_run or after.refund_state == RefundState.DONE:
                self._add(
                    report,
                    order_id,
                    pb.REPAIR_KIND_LATE_PAYMENT_REFUNDED,
                    rec.state,
                    after.state,
                    f"payment {rec.payment_id} refunded",
                )

    async def _open_payment(
        self,
        report: pb.ReconcileOrdersResponse,
        dry_run: bool,
        rec: OrderRecord,
        found: list[payments_pb2.Payment],
    ) -> None:
        """Apply the first payment whose final word differs from the order's."""
        for payment in found:
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
                rec.order_id,
                pb.REPAIR_KIND_PAYMENT_STATUS_APPLIED,
                rec.state,
                after.state,
                f"payment {payment.payment_id} is {status.value}",
            )
            if not dry_run and after.refund_state == RefundState.DONE:
                self._add(
                    report,
                    rec.order_id,
                    pb.REPAIR_KIND_LATE_PAYMENT_REFUNDED,
                    after.state,
                    after.state,
                    "captured after cancellation; refunded",
                )
            return

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
