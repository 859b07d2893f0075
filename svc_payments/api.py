"""The gRPC servicer of ecom.payments.v1.PaymentService: checks who may
call, translates proto <-> domain, calls the use cases; errors are raised as
mesh errors and mapped to gRPC statuses once, by mesh.

PaymentService is internal (no REST route). A call with no end user (a
background job), or with the ``admin`` or ``service`` role, is accepted; a
customer caller is refused with PERMISSION_DENIED, so a customer token can
never charge or refund even if a native gRPC call got through.

How orders uses payments
------------------------
* **Pay.** ``PayOrder`` calls ``CreatePayment(order_id, user_id, amount =
  order total, payment_token, request_id = the PayOrder request id)`` under
  its own identity (``mesh.call_scope(caller=Caller("svc_orders",
  frozenset({"service"})))``). The answer is one of:

  - ``SUCCEEDED``: commit the stock reservation, order -> PLACED;
  - ``DECLINED`` (``decline_code`` says why): release, order -> CANCELLED;
  - ``PENDING``: the gateway has not answered (``tok_timeout``,
    ``tok_late_success``). Leave the order CREATED; the final word comes on
    ``payments.events``. Do not treat PENDING as failure: the gateway may
    still charge.

  Retrying ``CreatePayment`` with the same ``request_id`` (after a timeout
  or a crash of either side) returns the same payment, never a second
  charge; a retry returns at once with the current status. Reusing a
  ``request_id`` with a different order, amount or token is
  INVALID_ARGUMENT on ``request_id``.
* **Events.** Consume ``payments.events`` (key = order_id; the envelope's
  ``entity_version`` increases per payment change, so drop stale ones):

  - ``PaymentSucceeded``: place the order if it is still CREATED; if it is
    no longer payable (expired or cancelled), call ``RefundPayment(reason=
    "late_payment_after_expiry", request_id = "late-refund-" + payment_id)``
    (a deterministic request id makes the refund happen once however often
    the event is redelivered). ``late`` is true when the answer came after
    CreatePayment returned PENDING.
  - ``PaymentDeclined``: cancel the order (payment failed).
  - ``PaymentTimedOut``: the payment window (``ECOM_ORDER_HOLD_SECONDS``
    after the payment was created) closed with no answer; let the order
    expire. A late answer may still follow as PaymentSucceeded/Declined.
  - ``PaymentRefunded``: money returned (``refund`` says how much, why).
* **Cancel after PLACED.** ``RefundPayment(payment_id, reason=
  "order_cancelled", request_id=...)`` refunds everything left; a partial
  ``amount`` is allowed. Only SUCCEEDED/PARTIALLY_REFUNDED payments are
  refundable (FAILED_PRECONDITION otherwise, or when more is asked than is
  left).
* **Reads.** ``GetPayment(payment_id)``; ``ListPayments(order_id=...)``
  lists an order's payments newest first (an order may have several: a
  declined card, then another one).
"""

from __future__ import annotations

from typing import Any

from ecom.payments.v1 import payments_pb2, payments_pb2_grpc
from google.type import money_pb2

from mesh import current_caller
from mesh.auth import SERVICE_ROLE
from mesh.errors import InvalidArgument, PermissionDenied
from svc_payments.codec import STATUS_FROM_PROTO, payment_proto
from svc_payments.domain import page_size, validate_create, validate_refund
from svc_payments.service import PaymentsService


def require_internal() -> None:
    """Refuse customer callers (see the module docstring for the rule)."""
    caller = current_caller()
    if caller is None or caller.is_admin or SERVICE_ROLE in caller.roles:
        return
    raise PermissionDenied(
        "payments are internal: call with a service identity", reason="INTERNAL_ONLY"
    )


def _money(msg: Any, field: str) -> tuple[str, int, int] | None:
    if not msg.HasField(field):
        return None
    m: money_pb2.Money = getattr(msg, field)
    return m.currency_code, m.units, m.nanos


class PaymentsApi(payments_pb2_grpc.PaymentServiceServicer):
    """PaymentService over the use cases in :mod:`svc_payments.service`."""

    def __init__(self, service: PaymentsService) -> None:
        self.service = service

    async def CreatePayment(
        self, request: payments_pb2.CreatePaymentRequest, context: Any
    ) -> payments_pb2.Payment:
        require_internal()
        wait = (
            request.wait_timeout.ToTimedelta().total_seconds()
            if request.HasField("wait_timeout")
            else None
        )
        new, problems = validate_create(
            request.order_id,
            request.user_id,
            _money(request, "amount"),
            request.payment_token,
            request.request_id,
            wait,
        )
        if new is None:
            raise InvalidArgument(violations=problems)
        return payment_proto(await self.service.create_payment(new))

    async def GetPayment(
        self, request: payments_pb2.GetPaymentRequest, context: Any
    ) -> payments_pb2.Payment:
        require_internal()
        if not request.payment_id:
            raise InvalidArgument.for_field("payment_id", "is required")
        return payment_proto(await self.service.get_payment(request.payment_id))

    async def ListPayments(
        self, request: payments_pb2.ListPaymentsRequest, context: Any
    ) -> payments_pb2.ListPaymentsResponse:
        require_internal()
        size, problems = page_size(request.page_size)
        status = None
        if request.status:
            status = STATUS_FROM_PROTO.get(request.status)
            if status is None:
                raise InvalidArgument.for_field("status", "is not a known payment status")
        if problems:
            raise InvalidArgument(violations=problems)
        page, token = await self.service.list_payments(
            request.order_id, status, size, request.page_token
        )
        return payments_pb2.ListPaymentsResponse(
            payments=[payment_proto(p) for p in page], next_page_token=token
        )

    async def RefundPayment(
        self, request: payments_pb2.RefundPaymentRequest, context: Any
    ) -> payments_pb2.Payment:
        require_internal()
        paise, problems = validate_refund(
            request.payment_id, _money(request, "amount"), request.reason, request.request_id
        )
        if problems:
            raise InvalidArgument(violations=problems)
        return payment_proto(
            await self.service.refund_payment(
                request.payment_id, paise, request.reason, request.request_id
            )
        )
