"""Stored orders as the contract shows them (the API answer and the snapshot
inside every OrderTransitioned event are the same message)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

from ecom.common.v1 import common_pb2
from ecom.events.v1 import events_pb2
from ecom.orders.v1 import orders_pb2 as pb
from ecom.payments.v1 import payments_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, money_pb2

from mesh import money as mesh_money
from mesh.errors import InvalidArgument
from svc_orders.archive_store import from_us
from svc_orders.domain import (
    CancelReason,
    OrderState,
    PaymentStatus,
)
from svc_orders.store import OrderRecord

STATE_TO_PROTO = {
    OrderState.CREATED: pb.ORDER_STATE_CREATED,
    OrderState.PLACED: pb.ORDER_STATE_PLACED,
    OrderState.SHIPPED: pb.ORDER_STATE_SHIPPED,
    OrderState.DELIVERED: pb.ORDER_STATE_DELIVERED,
    OrderState.CANCELLED: pb.ORDER_STATE_CANCELLED,
}
REASON_TO_PROTO = {
    CancelReason.NONE: pb.CANCEL_REASON_UNSPECIFIED,
    CancelReason.PAYMENT_DECLINED: pb.CANCEL_REASON_PAYMENT_DECLINED,
    CancelReason.HOLD_EXPIRED: pb.CANCEL_REASON_HOLD_EXPIRED,
    CancelReason.USER_CANCELLED: pb.CANCEL_REASON_USER_CANCELLED,
    CancelReason.ADMIN_CANCELLED: pb.CANCEL_REASON_ADMIN_CANCELLED,
    CancelReason.RECONCILED: pb.CANCEL_REASON_RECONCILED,
}
PAYMENT_TO_PROTO = {
    PaymentStatus.NONE: payments_pb2.PAYMENT_STATUS_UNSPECIFIED,
    PaymentStatus.PENDING: payments_pb2.PAYMENT_STATUS_PENDING,
    PaymentStatus.SUCCEEDED: payments_pb2.PAYMENT_STATUS_SUCCEEDED,
    PaymentStatus.DECLINED: payments_pb2.PAYMENT_STATUS_DECLINED,
    PaymentStatus.TIMED_OUT: payments_pb2.PAYMENT_STATUS_TIMED_OUT,
    PaymentStatus.PARTIALLY_REFUNDED: payments_pb2.PAYMENT_STATUS_PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED: payments_pb2.PAYMENT_STATUS_REFUNDED,
}
PAYMENT_FROM_PROTO = {v: k for k, v in PAYMENT_TO_PROTO.items()}
EVENT_TYPE = "ecom.events.v1.OrderTransitioned"


def money(paise: int) -> money_pb2.Money:
    """Whole paise as INR Money."""
    return mesh_money.from_paise(paise)


def timestamp(value: datetime | None) -> Timestamp | None:
    """A naive-UTC datetime as a Timestamp (None stays unset)."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.replace(tzinfo=UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    """A Timestamp as naive UTC."""
    return ts.ToDatetime()


def order_proto(rec: OrderRecord) -> pb.Order:
    """The contract's Order for a stored (visible) order."""
    address = common_pb2.Address()
    address.ParseFromString(rec.address)
    order = pb.Order(
        order_id=rec.order_id,
        user_id=rec.user_id,
        state=STATE_TO_PROTO.get(rec.state, pb.ORDER_STATE_UNSPECIFIED),
        shipping_address=address,
        total=money(rec.total_paise),
        item_count=rec.item_count,
        cancel_reason=REASON_TO_PROTO[rec.cancel_reason],
        cancel_note=rec.cancel_note,
        from_cart=rec.from_cart,
        request_id=rec.request_id,
        expires_at=timestamp(rec.expires_at),
        create_time=timestamp(rec.create_time),
        update_time=timestamp(rec.update_time),
        place_time=timestamp(rec.place_time),
        ship_time=timestamp(rec.ship_time),
        deliver_time=timestamp(rec.deliver_time),
        cancel_time=timestamp(rec.cancel_time),
    )
    for ln in rec.lines:
        line = order.lines.add(
            item_id=ln.item_id,
            quantity=ln.quantity,
            title=ln.title,
            unit_price=money(ln.unit_paise),
            line_total=money(ln.unit_paise * ln.quantity),
            warehouse_id=ln.warehouse_id,
        )
        if ln.promised_date is not None:
            line.promised_date.CopyFrom(
                date_pb2.Date(
                    year=ln.promised_date.year,
                    month=ln.promised_date.month,
                    day=ln.promised_date.day,
                )
            )
    if rec.payment_request_id:
        order.payment.CopyFrom(
            pb.OrderPayment(
                payment_id=rec.payment_id,
                status=PAYMENT_TO_PROTO[rec.payment_status],
                decline_code=rec.decline_code,
            )
        )
        if rec.refunded_paise:
            order.payment.refunded_amount.CopyFrom(money(rec.refunded_paise))
    if rec.carrier or rec.tracking_number or rec.ship_time is not None:
        order.shipment.CopyFrom(
            pb.Shipment(carrier=rec.carrier, tracking_number=rec.tracking_number)
        )
    return order


def transitioned_event(
    before: OrderState | None, after: OrderRecord, *, producer: str, request_id: str
) -> events_pb2.EventEnvelope:
    """The `orders.lifecycle` envelope of a transition into ``after`` (its
    snapshot is the same Order the API returns)."""
    snapshot = order_proto(after)
    return events_pb2.EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=EVENT_TYPE,
        occurred_at=timestamp(after.update_time),
        entity_key=after.order_id,
        entity_version=after.version,
        producer=producer,
        request_id=request_id,
        order_transitioned=events_pb2.OrderTransitioned(
            order_id=after.order_id,
            user_id=after.user_id,
            from_state=STATE_TO_PROTO.get(before, pb.ORDER_STATE_UNSPECIFIED)
            if before
            else pb.ORDER_STATE_UNSPECIFIED,
            to_state=snapshot.state,
            cancel_reason=snapshot.cancel_reason,
            order=snapshot,
        ),
    )


# -- page tokens of the order lists (live, archived, seller) ----------------

Cursor = tuple[int, str]  # (create time in microseconds, order id)


def encode_token(cursor: Cursor, scope: str) -> str:
    """A page token: ecom.common.v1.PageCursor (after_time, after_id), bound
    to the list it came from by ``request_hash``."""
    ts = Timestamp()
    ts.FromMicroseconds(cursor[0])
    raw = common_pb2.PageCursor(
        after_time=ts, after_id=cursor[1], request_hash=scope
    ).SerializeToString()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, scope: str) -> Cursor | None:
    """The cursor in a page token (None for the first page); INVALID_ARGUMENT
    for anything not issued by the same list."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = common_pb2.PageCursor.FromString(raw)
    except Exception:  # noqa: BLE001 - any garbage is the client's
        raise InvalidArgument.for_field("page_token", "not a token from this list") from None
    if cursor.request_hash != scope or not cursor.after_id:
        raise InvalidArgument.for_field("page_token", "not a token from this list")
    try:
        micros = cursor.after_time.ToMicroseconds()
        from_us(micros)
    except (OverflowError, ValueError):
        raise InvalidArgument.for_field("page_token", "not a token from this list") from None
    return micros, cursor.after_id


def paise(value: money_pb2.Money) -> int:
    """INR Money as whole paise (sub-paisa nanos rounded down)."""
    return mesh_money.paise_of(value)
