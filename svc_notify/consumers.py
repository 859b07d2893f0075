"""Inbound events: the Kafka handler for `orders.lifecycle`,
`payments.events` and `notify.requests`, and the HTTP endpoint Kannel
calls with SMS delivery reports.

Each Kafka event is applied once (`mesh.consumer`): the dedupe row and the
notification rows commit in one transaction, before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import urllib.parse
from typing import Any

from ecom.events.v1 import events_pb2
from ecom.orders.v1 import orders_pb2
from sqlalchemy.ext.asyncio import AsyncSession

from mesh.consumer import IdempotentConsumer
from mesh.kafka import ReceivedEvent
from mesh.money import format_inr
from svc_notify import domain
from svc_notify.channels import dlr_signature
from svc_notify.domain import Channel, Intent
from svc_notify.service import NotifyService

log = logging.getLogger(__name__)
CONSUMER_NAME = "svc_notify-events"
LIFECYCLE_TOPIC = "orders.lifecycle"
PAYMENTS_TOPIC = "payments.events"
REQUESTS_TOPIC = "notify.requests"
TOPICS = (LIFECYCLE_TOPIC, PAYMENTS_TOPIC, REQUESTS_TOPIC)

_CHANNELS = {1: Channel.EMAIL, 2: Channel.SMS}  # ecom.notifications.v1.Channel


def order_context(order: orders_pb2.Order) -> dict[str, Any]:
    """What the order templates show: number, lines, amount, promised date."""
    lines = [
        {"title": line.title or line.item_id, "quantity": line.quantity,
         "total": format_inr(line.line_total) if line.HasField("line_total") else ""}
        for line in order.lines
    ]
    promised = max(
        ((d.year, d.month, d.day) for d in (line.promised_date for line in order.lines)
         if d.year),
        default=None,
    )
    return {
        "order_id": order.order_id,
        "order_number": domain.order_number(order.order_id),
        "lines": lines,
        "total": format_inr(order.total) if order.HasField("total") else "",
        "promised_date": domain.format_date(*promised) if promised else "",
        "carrier": order.shipment.carrier,
        "tracking_number": order.shipment.tracking_number,
    }


def intents_of(envelope: events_pb2.EventEnvelope) -> list[Intent]:
    """The notifications an event asks for (none for events nobody is told of)."""
    kind = envelope.WhichOneof("payload")
    source = envelope.event_type or kind or ""
    if kind == "order_transitioned":
        ev = envelope.order_transitioned
        template = domain.ORDER_TEMPLATES.get(int(ev.to_state))
        if template is None:
            return []  # CREATED: the customer is still at checkout
        order = ev.order
        ctx = order_context(order)
        if template == "order_cancelled":
            ctx["reason"] = domain.CANCEL_REASONS.get(int(ev.cancel_reason), "cancelled")
            ctx["refund"] = int(ev.from_state) >= 2  # it had been paid
        return [Intent(
            user_id=ev.user_id or order.user_id, template=template, context=ctx,
            # An order reaches each state once: the fact is (order, state).
            dedupe_key=f"order/{ev.order_id}/{template}", source=source,
            order_id=ev.order_id,
        )]
    if kind == "payment_refunded":
        ev = envelope.payment_refunded
        pay, refund = ev.payment, ev.refund
        ctx = {
            "order_id": pay.order_id,
            "order_number": domain.order_number(pay.order_id),
            "amount": format_inr(refund.amount) if refund.HasField("amount") else "",
            "reason": domain.REFUND_REASONS.get(refund.reason, refund.reason or "refund"),
        }
        return [Intent(
            user_id=pay.user_id, template="payment_refunded", context=ctx,
            dedupe_key=f"refund/{refund.refund_id or envelope.event_id}", source=source,
            order_id=pay.order_id,
        )]
    if kind == "notification_requested":
        ev = envelope.notification_requested
        channel = _CHANNELS.get(int(ev.channel))
        if channel is None or ev.template not in domain.TEMPLATE_KEYS:
            log.warning("notify: unusable request %s (channel %s, template %r); skipped",
                        envelope.event_id, ev.channel, ev.template)
            return []
        params = dict(ev.params)
        if domain.validate_params(params):
            log.warning("notify: request %s has bad params; skipped", envelope.event_id)
            return []
        return [Intent(
            user_id=ev.user_id, template=ev.template, context=params,
            dedupe_key=f"request/{envelope.event_id}", source=source,
            order_id=params.get("order_id", ""), channels=(channel,),
        )]
    return []


class NotifyEvents:
    """The idempotent consumer's handler, and the loop that wakes the
    dispatcher after each applied event."""

    def __init__(self, service: NotifyService) -> None:
        self.service = service

    async def handle(self, session: AsyncSession, event: ReceivedEvent) -> None:
        envelope = events_pb2.EventEnvelope.FromString(event.payload)
        intents = intents_of(envelope)
        if not intents:
            return
        conn = await session.connection()
        for intent in intents:
            await self.service.accept(conn, intent)

    async def run(self, consumer: IdempotentConsumer) -> None:
        while True:
            try:
                applied = await consumer.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the message is retried
                log.exception("notify consumer: handler failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if applied:
                self.service.wake()


# --------------------------------------------------------------------------
# Delivery reports over HTTP (from Kannel's smsbox)
# --------------------------------------------------------------------------

MAX_REQUEST_BYTES = 8192


class DeliveryReportServer:
    """A deliberately tiny HTTP/1.0 endpoint: `GET /dlr?id=..&sig=..&type=N`.

    Only what Kannel sends is understood; anything else gets 400/404. The
    signature (HMAC of the notification id) makes a report for a message we
    did not send impossible to forge. Bind it to loopback (or a private
    network the gateway shares)."""

    def __init__(self, service: NotifyService, secret: bytes, host: str, port: int) -> None:
        self.service = service
        self.secret = secret
        self.host, self.port = host, port
        self.server: asyncio.Server | None = None
        self.reports = 0

    async def start(self) -> None:
        # No SO_REUSEPORT: a second process on this address (another
        # deployment's database) would take reports meant for this one.
        self.server = await asyncio.start_server(self._handle, self.host, self.port)

    async def run(self) -> None:
        if self.server is None:
            await self.start()
        assert self.server is not None
        async with self.server:
            await self.server.serve_forever()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._answer(reader), 10)
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            status, body = 400, "bad request"
        except Exception:  # noqa: BLE001 - a 500 makes smsbox retry the report
            log.exception("notify: delivery report failed")
            status, body = 500, "error"
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
                  500: "Internal Server Error"}.get(status, "")
        data = body.encode()
        with contextlib.suppress(ConnectionError):
            writer.write(
                f"HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_REQUEST_BYTES:
            return 400, "too large"
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, target, _ = request_line.split(" ", 2)
        parts = urllib.parse.urlsplit(target)
        if method != "GET" or parts.path != "/dlr":
            return 404, "not found"
        query = dict(urllib.parse.parse_qsl(parts.query))
        nid, sig, kind = query.get("id", ""), query.get("sig", ""), query.get("type", "")
        if not nid or not kind.isdigit():
            return 400, "id and type are required"
        if not hmac.compare_digest(sig, dlr_signature(self.secret, nid)):
            return 403, "bad signature"
        self.reports += 1
        await self.service.on_delivery_report(nid, int(kind))
        return 200, "ok"
