"""Settlement: the follow-up work a transition leaves, and the sweeper that
guarantees it gets done.

A transition records on the row what it owes (``work_due``): the
reservation must become what the state wants (held, committed, released)
and a captured payment on a cancelled order must be refunded. That work runs
right after the commit (:meth:`Settlement.after_change`); if a crash or an
outage interrupts it, the sweeper finds the row by ``work_due`` and redoes
it. Inventory and payments calls are idempotent, so redoing is always safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ecom.payments.v1 import payments_pb2

import mesh
from mesh.errors import NotFound
from svc_orders import codec, domain
from svc_orders.domain import CancelReason, OrderState, RefundState, ReservationState
from svc_orders.ports import PeerError, PeerNotFound, PeerRefused, Peers
from svc_orders.store import HoldStore, OrderRecord, OrderStore
from svc_orders.transitions import SERVICE_CALLER, OrderSettings, as_service

log = logging.getLogger(__name__)


class Settlement:
    """Brings an order's reservation and payment in line with its state."""

    def __init__(
        self, store: OrderStore, holds: HoldStore, peers: Peers, settings: OrderSettings
    ) -> None:
        self.store = store
        self.holds = holds
        self.peers = peers
        self.settings = settings

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
            step = await self._settle_once(rec)
            if step is None:
                return rec  # a peer is down: the sweeper retries
            if step:
                break
        done = await self.store.get(None, order_id)
        assert done is not None
        if done.state is OrderState.PLACED and done.from_cart and not done.work_due:
            await self._remove_from_cart(done)
        return done

    async def _settle_once(self, rec: OrderRecord) -> bool | None:
        """One attempt at ``rec``'s follow-up work: True when done, False
        when a transition happened meanwhile (look again), None when a peer
        could not be reached."""
        wanted = domain.reservation_to_move(rec.state, rec.reservation_state)
        if wanted is not None:
            moved = await self._move_reservation(rec, wanted)
            if moved is None:
                return None
            if not await self.store.update_if(
                rec.order_id, rec.version, reservation_state=moved.value
            ):
                return False
        if rec.refund_state == RefundState.DUE:
            refunded = await self._refund(rec)
            if refunded is None:
                return None
            if not await self.store.update_if(
                rec.order_id,
                rec.version,
                refund_state=RefundState.DONE.value,
                payment_status=codec.PAYMENT_FROM_PROTO.get(
                    refunded.status, rec.payment_status
                ).value,
                refunded_paise=codec.paise(refunded.refunded_amount),
            ):
                return False
        return await self.store.update_if(rec.order_id, rec.version, work_due=False)

    async def _move_reservation(
        self, rec: OrderRecord, wanted: ReservationState
    ) -> ReservationState | None:
        """Ask inventory for ``wanted``; the reservation state reached, or
        None when inventory could not be reached."""
        try:
            with as_service(self.settings):
                if wanted is ReservationState.RELEASED:
                    await self.peers.inventory.release(
                        rec.order_id, domain.release_reason(rec.cancel_reason)
                    )
                    return ReservationState.RELEASED
                if wanted is ReservationState.COMMITTED:
                    await self.peers.inventory.commit(rec.order_id)
                    return ReservationState.COMMITTED
        except (PeerRefused, PeerNotFound) as exc:
            if wanted is not ReservationState.COMMITTED:
                log.warning("reservation of %s -> %s: %s", rec.order_id, wanted, exc.code())
                return None
            # Paid but its stock is gone: needs a human. Reported by
            # reconciliation (FLAGGED); nothing to retry here.
            log.error(
                "order %s is %s but its reservation could not be committed: %s",
                rec.order_id,
                rec.state,
                exc.details(),
            )
            return ReservationState.RELEASED
        except PeerError as exc:
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
            with as_service(self.settings):
                return await self.peers.payments.refund(
                    rec.payment_id, reason, f"{rec.order_id}:refund"
                )
        except PeerRefused:
            # Already refunded (or never captured): read where it stands.
            with as_service(self.settings):
                try:
                    return await self.peers.payments.get(rec.payment_id)
                except PeerError:
                    return None
        except PeerError as exc:
            log.warning("refund of %s: %s", rec.order_id, exc.code())
            return None

    async def _remove_from_cart(self, rec: OrderRecord) -> None:
        """Best effort: a placed cart order's lines leave the cart."""
        try:
            with as_service(self.settings):
                await self.peers.cart.remove_items(
                    rec.user_id, [ln.item_id for ln in rec.lines], f"{rec.order_id}:cart"
                )
        except PeerError as exc:
            log.warning("removing order %s from the cart: %s", rec.order_id, exc.code())


class Sweeper:
    """The database sweep behind the Redis fast path: expires CREATED
    orders past ``expires_at``, redoes owed follow-up work and finishes or
    undoes checkouts interrupted while PENDING."""

    def __init__(
        self,
        store: OrderStore,
        settings: OrderSettings,
        *,
        expire: Callable[[str], Awaitable[Any]],
        settle: Callable[[str], Awaitable[Any]],
        resolve_pending: Callable[[str], Awaitable[Any]],
    ) -> None:
        self.store = store
        self.settings = settings
        self.expire = expire
        self.settle = settle
        self.resolve_pending = resolve_pending

    async def sweep_once(self, limit: int = 200) -> int:
        """One pass; returns how many orders it touched."""
        touched = 0
        for order_id in await self.store.expired_created(limit):
            await safely(self.expire, order_id)
            touched += 1
        for order_id in await self.store.work_due(limit):
            await safely(self.settle, order_id)
            touched += 1
        for order_id in await self.store.stale_pending(self.settings.pending_grace_seconds, limit):
            await safely(self.resolve_pending, order_id)
            touched += 1
        return touched

    async def sweep_forever(self, interval: float) -> None:
        """The sweeper task: the guarantee behind the Redis fast path."""
        while True:
            try:
                await self.sweep_once()
            except Exception:  # noqa: BLE001 - MariaDB down: try again next tick
                log.exception("sweeper pass failed")
            await asyncio.sleep(interval)


async def safely(fn: Callable[[str], Awaitable[Any]], order_id: str) -> None:
    """Run one order's repair as svc_orders; log, never raise (one bad
    order must not stop a sweep)."""
    try:
        with mesh.call_scope(caller=SERVICE_CALLER, timeout=30):
            await fn(order_id)
    except Exception:  # noqa: BLE001 - one bad order must not stop the sweep
        log.exception("sweeper: %s(%s) failed", getattr(fn, "__name__", fn), order_id)
