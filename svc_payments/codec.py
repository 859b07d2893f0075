"""Records <-> protobuf: the one place a stored payment becomes the
``ecom.payments.v1.Payment`` both the API and the events show."""

from __future__ import annotations

from ecom.payments.v1 import payments_pb2
from google.type import money_pb2

from mesh import money as mesh_money
from mesh.db import to_timestamp
from svc_payments.domain import (
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    RefundStatus,
)

STATUS_TO_PROTO = {
    PaymentStatus.PENDING: payments_pb2.PAYMENT_STATUS_PENDING,
    PaymentStatus.SUCCEEDED: payments_pb2.PAYMENT_STATUS_SUCCEEDED,
    PaymentStatus.DECLINED: payments_pb2.PAYMENT_STATUS_DECLINED,
    PaymentStatus.TIMED_OUT: payments_pb2.PAYMENT_STATUS_TIMED_OUT,
    PaymentStatus.PARTIALLY_REFUNDED: payments_pb2.PAYMENT_STATUS_PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED: payments_pb2.PAYMENT_STATUS_REFUNDED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}

REFUND_STATUS_TO_PROTO = {
    RefundStatus.PENDING: payments_pb2.REFUND_STATUS_PENDING,
    RefundStatus.SUCCEEDED: payments_pb2.REFUND_STATUS_SUCCEEDED,
    RefundStatus.FAILED: payments_pb2.REFUND_STATUS_FAILED,
}


def money(paise: int) -> money_pb2.Money:
    """Paise as INR ``google.type.Money``."""
    return mesh_money.from_paise(paise)


def refund_proto(rec: RefundRecord) -> payments_pb2.Refund:
    """A stored refund as the contract shows it."""
    return payments_pb2.Refund(
        refund_id=rec.refund_id,
        amount=money(rec.amount_paise),
        status=REFUND_STATUS_TO_PROTO[rec.status],
        reason=rec.reason,
        gateway_reference=rec.gateway_reference,
        create_time=to_timestamp(rec.create_time),
    )


def payment_proto(rec: PaymentRecord) -> payments_pb2.Payment:
    """A stored payment (with its refunds) as the contract shows it."""
    return payments_pb2.Payment(
        payment_id=rec.payment_id,
        order_id=rec.order_id,
        user_id=rec.user_id,
        amount=money(rec.amount_paise),
        status=STATUS_TO_PROTO[rec.status],
        payment_token=rec.payment_token,
        gateway=rec.gateway,
        gateway_reference=rec.gateway_reference,
        decline_code=rec.decline_code,
        decline_message=rec.decline_message,
        # "unset when nothing was" refunded.
        refunded_amount=money(rec.refunded_paise) if rec.refunded_paise else None,
        refunds=[refund_proto(r) for r in rec.refunds],
        create_time=to_timestamp(rec.create_time),
        resolve_time=to_timestamp(rec.resolve_time),
        update_time=to_timestamp(rec.update_time),
    )
