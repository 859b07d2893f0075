"""The transition engine every order use case goes through.

One transition is one transaction: lock the row, ask the domain for the
next state, write the state with what the transition stamps and the
follow-up work it leaves (``work_due``), and queue the OrderTransitioned
event in the outbox. Doing that follow-up work after the commit is
`svc_orders/settlement.py`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

import mesh
from mesh import Caller, current_request_id
from mesh.db import utcnow
from mesh.errors import NotFound
from svc_orders import codec, domain
from svc_orders.domain import Action, OrderState
from svc_orders.store import OrderRecord, OrderStore, after_update

log = logging.getLogger(__name__)

LIFECYCLE_TOPIC = "orders.lifecycle"
PAYMENTS_TOPIC = "payments.events"
PRODUCER = "svc_orders"
EVENT_TYPE = "ecom.events.v1.OrderTransitioned"
SERVICE_CALLER = Caller("svc_orders", frozenset({"service"}))


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


@contextmanager
def as_service(settings: OrderSettings, timeout: float | None = None) -> Iterator[None]:
    """Calls made inside act as svc_orders itself (inventory and payments
    refuse customer callers), keeping the request id for tracing."""
    with mesh.call_scope(
        caller=SERVICE_CALLER,
        request_id=current_request_id(),
        timeout=timeout or settings.call_timeout_seconds,
    ):
        yield


def not_found(order_id: str) -> NotFound:
    return NotFound(f"order {order_id!r} not found", resource_type="order", resource_name=order_id)


class Transitions:
    """Locked, announced state changes of one order."""

    def __init__(self, store: OrderStore) -> None:
        self.store = store

    async def get_visible(self, order_id: str) -> OrderRecord:
        """A visible order or NotFound."""
        rec = await self.store.get(None, order_id) if order_id else None
        if rec is None or rec.state not in domain.VISIBLE_STATES:
            raise not_found(order_id)
        return rec

    async def apply_locked(
        self,
        conn: AsyncConnection,
        rec: OrderRecord,
        action: Action,
        values: dict[str, Any] | None = None,
    ) -> OrderRecord:
        """Apply ``action`` to a row this transaction has locked: state,
        stamps, follow-up work and the event. A no-op action returns the
        record unchanged."""
        change = domain.transition(rec, action, utcnow(), values or {})
        if change is None:
            return rec
        await self.store.update(conn, rec.order_id, **change)
        after = after_update(rec, change)  # the row is locked: what we wrote is what it holds
        if after.state in domain.VISIBLE_STATES:
            await self._announce(
                conn, rec.state if rec.state in domain.VISIBLE_STATES else None, after
            )
        return after

    async def apply(
        self,
        order_id: str,
        action: Action,
        values: Callable[[OrderRecord], dict[str, Any]] | None = None,
        guard: Callable[[OrderRecord], None] | None = None,
    ) -> OrderRecord:
        """Lock the order, check ``guard``, apply ``action`` and commit.
        Raises NotFound / IllegalTransition (or what ``guard`` raises)."""

        async def work(conn: AsyncConnection) -> OrderRecord:
            rec = await self.store.get(conn, order_id, for_update=True)
            if rec is None or rec.state not in domain.VISIBLE_STATES:
                raise not_found(order_id)
            if guard is not None:
                guard(rec)
            return await self.apply_locked(conn, rec, action, values(rec) if values else None)

        return await self.store.run(work)

    async def _announce(
        self, conn: AsyncConnection, before: OrderState | None, after: OrderRecord
    ) -> None:
        """Queue the OrderTransitioned event of a transition in its transaction."""
        envelope = codec.transitioned_event(
            before, after, producer=PRODUCER, request_id=current_request_id() or ""
        )
        await self.store.add_event(
            conn,
            topic=LIFECYCLE_TOPIC,
            key=after.order_id,
            payload=envelope.SerializeToString(),
            event_type=EVENT_TYPE,
            event_id=envelope.event_id,
        )
