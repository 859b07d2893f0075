"""Kafka handlers: `payments.events` moves orders whose payment was answered
after PayOrder returned (pending, timed out, late success).

Each event is applied once (`mesh.consumer`): the dedupe row and the order's
change commit in one transaction. The follow-up work that change leaves
(commit, release, refund) runs after the commit, and the sweeper redoes it
if the process dies first.
"""

from __future__ import annotations

import asyncio
import logging

from ecom.events.v1 import events_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from mesh.consumer import IdempotentConsumer
from mesh.kafka import ReceivedEvent
from svc_orders.service import OrderService

log = logging.getLogger(__name__)
CONSUMER_NAME = "svc_orders-payments"


class PaymentEvents:
    """Applies PaymentSucceeded/Declined/TimedOut/Refunded to their orders."""

    def __init__(self, service: OrderService) -> None:
        self.service = service
        self._touched: list[str] = []

    async def handle(self, session: AsyncSession, event: ReceivedEvent) -> None:
        """The idempotent consumer's handler (runs inside its transaction)."""
        envelope = events_pb2.EventEnvelope.FromString(event.payload)
        kind = envelope.WhichOneof("payload")
        if kind not in (
            "payment_succeeded",
            "payment_declined",
            "payment_timed_out",
            "payment_refunded",
        ):
            return  # not ours to act on
        payment = getattr(envelope, kind).payment
        conn = await session.connection()
        rec = await self.service.apply_payment_in(conn, payment)
        if rec is not None:
            self._touched.append(rec.order_id)

    async def run(self, consumer: IdempotentConsumer) -> None:
        """Poll forever; after each applied event, do the order's follow-up."""
        while True:
            try:
                applied = await consumer.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the message is retried
                log.exception("payments consumer: handler failed; retrying")
                self._touched.clear()
                await asyncio.sleep(1.0)
                continue
            touched, self._touched = self._touched, []
            if applied:
                for order_id in touched:
                    rec = await self.service.store.get(None, order_id)
                    if rec is not None:
                        await self.service.after_change(rec)
