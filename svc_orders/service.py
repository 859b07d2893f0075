"""The order use cases behind one object, for the API, the consumers, the
history and the wiring.

Each use case lives in its own module; this one only assembles them:

- ``checkout.py``: CreateOrder and interrupted checkouts;
- ``payment.py``: PayOrder and payment outcomes from any source;
- ``lifecycle.py``: hold expiry, cancel, ship, deliver;
- ``settlement.py``: the follow-up work of a transition and the sweeper;
- ``reconcile.py``: reconciliation;
- ``transitions.py``: the locked, announced state change all of them use;
- ``ports.py`` / ``adapters.py``: the peers, and their gRPC implementation.
"""

from __future__ import annotations

import asyncio
import logging

from ecom.common.v1 import common_pb2
from ecom.payments.v1 import payments_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import Caller
from mesh.errors import DomainError
from svc_orders.checkout import Checkout
from svc_orders.domain import WantedLine
from svc_orders.lifecycle import Lifecycle
from svc_orders.payment import LATE_REFUND_NOTE, Payment
from svc_orders.ports import Peers
from svc_orders.reconcile import Reconciler
from svc_orders.settlement import Settlement, Sweeper, safely
from svc_orders.store import HoldStore, OrderRecord, OrderStore
from svc_orders.transitions import (
    EVENT_TYPE,
    LIFECYCLE_TOPIC,
    PAYMENTS_TOPIC,
    PRODUCER,
    SERVICE_CALLER,
    OrderSettings,
    Transitions,
)

log = logging.getLogger(__name__)


class OrderService:
    """The order use cases."""

    def __init__(
        self, store: OrderStore, holds: HoldStore, peers: Peers, settings: OrderSettings
    ) -> None:
        self.store = store
        self.holds = holds
        self.peers = peers
        self.settings = settings
        # Expiries started in the background, held until they finish.
        self._background: set[asyncio.Task[None]] = set()
        self.transitions = Transitions(store)
        self.settlement = Settlement(store, holds, peers, settings)
        self.checkout = Checkout(self.transitions, self.settlement, holds, peers, settings)
        self.payment = Payment(
            self.transitions,
            self.settlement,
            peers,
            settings,
            expire_soon=self.on_hold_expired_soon,
        )
        self.lifecycle = Lifecycle(self.transitions, self.settlement, self.payment, peers, settings)
        self.sweeper = Sweeper(
            store,
            settings,
            expire=self.lifecycle.expire,
            settle=self.settlement.settle,
            resolve_pending=self.checkout.resolve_pending,
        )

    # -- reading -----------------------------------------------------------
    async def get_visible(self, order_id: str) -> OrderRecord:
        """A visible order or NotFound."""
        return await self.transitions.get_visible(order_id)

    # -- the use cases ---------------------------------------------------------
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
        """CreateOrder (svc_orders/checkout.py)."""
        return await self.checkout.create_order(
            caller, user_id, request_id, lines, from_cart, address_id, address
        )

    async def pay(self, order_id: str, token: str, request_id: str) -> OrderRecord:
        """PayOrder (svc_orders/payment.py)."""
        return await self.payment.pay(order_id, token, request_id)

    async def apply_payment(self, payment: payments_pb2.Payment) -> OrderRecord:
        """Apply a payment outcome and do the follow-up (svc_orders/payment.py)."""
        return await self.payment.apply_payment(payment)

    async def apply_payment_in(
        self, conn: AsyncConnection, payment: payments_pb2.Payment
    ) -> OrderRecord | None:
        """Apply a payment outcome in the caller's transaction."""
        return await self.payment.apply_payment_in(conn, payment)

    async def expire(self, order_id: str) -> OrderRecord | None:
        """Hold expiry (svc_orders/lifecycle.py)."""
        return await self.lifecycle.expire(order_id)

    async def cancel(self, order_id: str, note: str, request_id: str) -> OrderRecord:
        """CancelOrder (svc_orders/lifecycle.py)."""
        return await self.lifecycle.cancel(order_id, note, request_id)

    async def ship(
        self, order_id: str, carrier: str, tracking: str, request_id: str
    ) -> OrderRecord:
        """ShipOrder (svc_orders/lifecycle.py)."""
        return await self.lifecycle.ship(order_id, carrier, tracking, request_id)

    async def deliver(self, order_id: str, request_id: str) -> OrderRecord:
        """DeliverOrder (svc_orders/lifecycle.py)."""
        return await self.lifecycle.deliver(order_id, request_id)

    # -- follow-up work and the sweeper ------------------------------------------
    async def after_change(self, rec: OrderRecord) -> OrderRecord:
        """Follow-up of a committed change (svc_orders/settlement.py)."""
        return await self.settlement.after_change(rec)

    async def settle(self, order_id: str) -> OrderRecord:
        """Redo an order's owed follow-up work (svc_orders/settlement.py)."""
        return await self.settlement.settle(order_id)

    async def resolve_pending(self, order_id: str) -> OrderRecord | None:
        """Finish or undo an interrupted checkout (svc_orders/checkout.py)."""
        return await self.checkout.resolve_pending(order_id)

    async def sweep_once(self, limit: int = 200) -> int:
        """One sweeper pass (svc_orders/settlement.py)."""
        return await self.sweeper.sweep_once(limit)

    async def sweep_forever(self, interval: float) -> None:
        """The sweeper task."""
        await self.sweeper.sweep_forever(interval)

    async def on_hold_expired(self, order_id: str) -> None:
        """Redis said the hold key expired: expire the order now, in its own
        task so one slow expiry (asking payments) does not delay the next."""
        self.on_hold_expired_soon(order_id)

    def on_hold_expired_soon(self, order_id: str) -> None:
        """Start the expiry of ``order_id`` in a task this service holds
        until it ends (its failure is logged by ``safely``)."""
        task = asyncio.get_running_loop().create_task(safely(self.lifecycle.expire, order_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


__all__ = [
    "EVENT_TYPE",
    "LATE_REFUND_NOTE",
    "LIFECYCLE_TOPIC",
    "PAYMENTS_TOPIC",
    "PRODUCER",
    "SERVICE_CALLER",
    "DomainError",
    "OrderService",
    "OrderSettings",
    "Peers",
    "Reconciler",
]
