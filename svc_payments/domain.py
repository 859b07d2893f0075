"""Payment rules without I/O: the status state machine, money in paise,
request validation and refund arithmetic.

Statuses (``ecom.payments.v1.PaymentStatus``)::

    PENDING --captured--> SUCCEEDED --refund--> PARTIALLY_REFUNDED --> REFUNDED
       |   --declined---> DECLINED                  \\------refund all-----^
       \\--window closed--> TIMED_OUT --late answer--> SUCCEEDED | DECLINED

A payment leaves PENDING only on a definite answer from the gateway or when
its payment window closes with no answer. A gateway call that merely timed
out never marks a payment failed: the gateway may still have charged, and a
"failed" payment that was in fact charged is money taken without an order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from mesh import money
from mesh.errors import FieldViolation

CURRENCY = "INR"
NANOS_PER_PAISA = 10_000_000
PAISE_PER_RUPEE = 100
# Ids are ours or the orders service's; keep them to what a URL or log line
# can carry without escaping.
MAX_ID_LENGTH = 64
MAX_WAIT_SECONDS = 30.0
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_REASON_LENGTH = 200

# The simulated gateway's test tokens (docs/architecture.md, payments.proto).
TOK_SUCCESS = "tok_success"
TOK_DECLINE = "tok_decline"
TOK_TIMEOUT = "tok_timeout"
TOK_LATE_SUCCESS = "tok_late_success"
KNOWN_TOKENS = frozenset({TOK_SUCCESS, TOK_DECLINE, TOK_TIMEOUT, TOK_LATE_SUCCESS})


class PaymentStatus(enum.StrEnum):
    """Where a payment is in its lifecycle (stored as these strings)."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    TIMED_OUT = "TIMED_OUT"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class RefundStatus(enum.StrEnum):
    """Where a refund is in its lifecycle (stored as these strings)."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class GatewayAnswer(enum.StrEnum):
    """What a gateway says about a charge."""

    # The money was taken.
    CAPTURED = "CAPTURED"
    # The charge was refused; final.
    DECLINED = "DECLINED"
    # The gateway has the charge but has not decided (or never will);
    # nothing is captured yet.
    PROCESSING = "PROCESSING"
    # The gateway never received the charge.
    UNKNOWN = "UNKNOWN"


_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset(
        {PaymentStatus.SUCCEEDED, PaymentStatus.DECLINED, PaymentStatus.TIMED_OUT}
    ),
    # A late answer is still the truth about the money.
    PaymentStatus.TIMED_OUT: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.DECLINED}),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.PARTIALLY_REFUNDED: frozenset(
        {PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
    ),
    PaymentStatus.DECLINED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
}

# Statuses in which the gateway may still answer about the charge.
AWAITING_ANSWER = frozenset({PaymentStatus.PENDING, PaymentStatus.TIMED_OUT})
# Statuses with captured money left to refund.
REFUNDABLE = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED})
TERMINAL = frozenset({PaymentStatus.DECLINED, PaymentStatus.REFUNDED})


def can_transition(src: PaymentStatus, dst: PaymentStatus) -> bool:
    """True when a payment in ``src`` may move to ``dst``."""
    return dst in _TRANSITIONS[src]


def sources_of(dst: PaymentStatus) -> frozenset[PaymentStatus]:
    """Every status from which ``dst`` can be reached (the WHERE of a
    conditional UPDATE, so a stale writer changes nothing)."""
    return frozenset(s for s, targets in _TRANSITIONS.items() if dst in targets)


def status_for_answer(answer: GatewayAnswer) -> PaymentStatus | None:
    """The status a definite gateway answer leads to; None when the answer
    is not definite (the payment keeps waiting)."""
    if answer is GatewayAnswer.CAPTURED:
        return PaymentStatus.SUCCEEDED
    if answer is GatewayAnswer.DECLINED:
        return PaymentStatus.DECLINED
    return None


class RefundRefused(Exception):
    """A refund cannot be made: wrong status or too much asked."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RefundPlan:
    """A refund that may go ahead: the amount and the status it leads to."""

    amount_paise: int
    status_after: PaymentStatus


def plan_refund(
    status: PaymentStatus,
    captured_paise: int,
    committed_paise: int,
    requested_paise: int | None,
) -> RefundPlan:
    """Decide a refund. ``committed_paise`` counts refunds already succeeded
    or in flight, so two concurrent refunds can never return more than was
    captured; ``requested_paise`` None means everything left."""
    if status not in REFUNDABLE:
        raise RefundRefused(
            f"only a SUCCEEDED or PARTIALLY_REFUNDED payment can be refunded, not {status}",
            reason="PAYMENT_NOT_REFUNDABLE",
        )
    left = captured_paise - committed_paise
    if left <= 0:
        raise RefundRefused("nothing is left to refund", reason="NOTHING_TO_REFUND")
    amount = left if requested_paise is None else requested_paise
    if amount > left:
        raise RefundRefused(
            f"refund of {format_paise(amount)} exceeds the {format_paise(left)} left",
            reason="REFUND_EXCEEDS_BALANCE",
        )
    after = PaymentStatus.REFUNDED if amount == left else PaymentStatus.PARTIALLY_REFUNDED
    return RefundPlan(amount, after)


def status_after_refunds(captured_paise: int, refunded_paise: int) -> PaymentStatus:
    """A captured payment's status given what has been refunded."""
    if refunded_paise <= 0:
        return PaymentStatus.SUCCEEDED
    if refunded_paise >= captured_paise:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED


@dataclass(frozen=True)
class RefundRecord:
    """One refund of a payment, as stored."""

    refund_id: str
    payment_id: str
    request_id: str
    amount_paise: int
    status: RefundStatus
    reason: str
    gateway_reference: str
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class PaymentRecord:
    """One payment with its refunds (oldest first), as stored."""

    payment_id: str
    order_id: str
    user_id: str
    request_id: str
    amount_paise: int
    refunded_paise: int
    status: PaymentStatus
    payment_token: str
    gateway: str
    gateway_reference: str
    decline_code: str
    decline_message: str
    # Submissions to the gateway (a resubmission after a crash counts).
    attempts: int
    # +1 per change; the events' entity_version.
    version: int
    # When the reconciler should next ask the gateway; None when nobody
    # needs to (resolved, or TIMED_OUT and left to the gateway's callback).
    next_check_time: datetime | None
    # When a payment still PENDING becomes TIMED_OUT.
    window_close_time: datetime
    create_time: datetime
    resolve_time: datetime | None
    update_time: datetime
    refunds: tuple[RefundRecord, ...] = field(default=())

    @property
    def committed_refund_paise(self) -> int:
        """Refunded plus in flight: what a new refund may not dip into."""
        return sum(
            r.amount_paise
            for r in self.refunds
            if r.status in (RefundStatus.PENDING, RefundStatus.SUCCEEDED)
        )


# -- money --------------------------------------------------------------------
def money_to_paise(
    field: str, currency: str, units: int, nanos: int
) -> tuple[int, list[FieldViolation]]:
    """A ``google.type.Money`` as whole paise, with violations naming
    ``field`` when it is not a valid INR amount (paise are the smallest unit
    the gateway moves, so a fraction of a paisa is refused, not rounded)."""
    problems = money.inr_violations(field, currency, units, nanos, currency_optional=True)
    return (units * money.NANOS_PER_UNIT + nanos) // money.NANOS_PER_PAISA, problems


# (units, nanos) of a ``google.type.Money`` for ``paise``, both with the
# amount's sign (mesh.money).
paise_to_money = money.paise_parts


def format_paise(paise: int) -> str:
    """``INR 12.50`` style, for messages."""
    units, rest = divmod(abs(paise), PAISE_PER_RUPEE)
    return f"{'-' if paise < 0 else ''}INR {units}.{rest:02d}"


# -- validation ---------------------------------------------------------------
def _check_id(field: str, value: str) -> list[FieldViolation]:
    if not value:
        return [FieldViolation(field, "is required")]
    if len(value) > MAX_ID_LENGTH:
        return [FieldViolation(field, f"must be at most {MAX_ID_LENGTH} characters")]
    if not value.isprintable() or any(c.isspace() for c in value):
        return [FieldViolation(field, "must not contain spaces or control characters")]
    return []


@dataclass(frozen=True)
class NewPayment:
    """A validated CreatePayment request."""

    order_id: str
    user_id: str
    amount_paise: int
    payment_token: str
    request_id: str
    wait_seconds: float | None


def validate_create(
    order_id: str,
    user_id: str,
    amount: tuple[str, int, int] | None,
    payment_token: str,
    request_id: str,
    wait_seconds: float | None,
) -> tuple[NewPayment | None, list[FieldViolation]]:
    """Check a CreatePayment request; ``amount`` is (currency, units, nanos)
    or None when unset. Returns the payment or every violation."""
    problems = [
        *_check_id("order_id", order_id),
        *_check_id("user_id", user_id),
        *_check_id("request_id", request_id),
    ]
    paise = 0
    if amount is None:
        problems.append(FieldViolation("amount", "is required"))
    else:
        paise, money_problems = money_to_paise("amount", *amount)
        problems += money_problems
        if not money_problems and paise <= 0:
            problems.append(FieldViolation("amount", "must be positive"))
    if not payment_token:
        problems.append(FieldViolation("payment_token", "is required"))
    elif payment_token not in KNOWN_TOKENS:
        problems.append(
            FieldViolation(
                "payment_token",
                f"unknown payment method token; test tokens are {', '.join(sorted(KNOWN_TOKENS))}",
            )
        )
    if wait_seconds is not None and wait_seconds < 0:
        problems.append(FieldViolation("wait_timeout", "must not be negative"))
    if problems:
        return None, problems
    capped = None if wait_seconds is None else min(wait_seconds, MAX_WAIT_SECONDS)
    return NewPayment(order_id, user_id, paise, payment_token, request_id, capped), []


def validate_refund(
    payment_id: str, amount: tuple[str, int, int] | None, reason: str, request_id: str
) -> tuple[int | None, list[FieldViolation]]:
    """Check a RefundPayment request; returns the requested paise (None for
    "everything left") or the violations."""
    problems = [*_check_id("payment_id", payment_id), *_check_id("request_id", request_id)]
    paise: int | None = None
    if amount is not None:
        paise, money_problems = money_to_paise("amount", *amount)
        problems += money_problems
        if not money_problems and paise <= 0:
            problems.append(FieldViolation("amount", "must be positive"))
    if len(reason) > MAX_REASON_LENGTH:
        problems.append(FieldViolation("reason", f"must be at most {MAX_REASON_LENGTH} characters"))
    return paise, problems


def page_size(requested: int) -> tuple[int, list[FieldViolation]]:
    """AIP-158: 0 means the default, above the maximum is capped."""
    if requested < 0:
        return 0, [FieldViolation("page_size", "must not be negative")]
    if requested == 0:
        return DEFAULT_PAGE_SIZE, []
    return min(requested, MAX_PAGE_SIZE), []
