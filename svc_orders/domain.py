"""Order rules without I/O: the lifecycle state machine, the follow-up work a
state implies (what the reservation and the payment must become), checkout
validation and money in paise.

State machine (docs/architecture.md, orders.proto)::

    CREATED -> PLACED -> SHIPPED -> DELIVERED
    CREATED -> CANCELLED   (payment declined, hold expired, user cancelled)
    PLACED  -> CANCELLED   (cancelled before shipping; the payment is refunded)

``PENDING`` is internal and never shown: the order row exists (so a crash
anywhere leaves a trace the sweeper can finish or undo) but its stock is not
held yet. ``REJECTED`` is internal too: checkout failed (out of stock) and a
retry with the same request id gets the same answer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from google.type import money_pb2

from mesh import money, validation
from mesh.errors import FieldViolation

MAX_LINES = 50
MAX_QUANTITY = 10
PAISE_PER_RUPEE = 100
NANOS_PER_PAISA = 10_000_000
_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class OrderState(enum.StrEnum):
    """Stored order states (the first two are internal, see module doc)."""

    PENDING = "PENDING"
    REJECTED = "REJECTED"
    CREATED = "CREATED"
    PLACED = "PLACED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"


VISIBLE_STATES = frozenset(
    {
        OrderState.CREATED,
        OrderState.PLACED,
        OrderState.SHIPPED,
        OrderState.DELIVERED,
        OrderState.CANCELLED,
    }
)
TERMINAL_STATES = frozenset({OrderState.DELIVERED, OrderState.CANCELLED, OrderState.REJECTED})


class CancelReason(enum.StrEnum):
    """Why an order was cancelled (mirrors the proto enum)."""

    NONE = ""
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    USER_CANCELLED = "USER_CANCELLED"
    ADMIN_CANCELLED = "ADMIN_CANCELLED"
    RECONCILED = "RECONCILED"


class Action(enum.StrEnum):
    """Everything that can happen to an order."""

    RESERVED = "RESERVED"  # stock held: PENDING -> CREATED
    REJECT = "REJECT"  # stock could not be held: PENDING -> REJECTED
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    EXPIRE = "EXPIRE"
    CANCEL = "CANCEL"
    SHIP = "SHIP"
    DELIVER = "DELIVER"


_NEXT: dict[tuple[OrderState, Action], OrderState] = {
    (OrderState.PENDING, Action.RESERVED): OrderState.CREATED,
    (OrderState.PENDING, Action.REJECT): OrderState.REJECTED,
    (OrderState.CREATED, Action.PAYMENT_SUCCEEDED): OrderState.PLACED,
    (OrderState.CREATED, Action.PAYMENT_DECLINED): OrderState.CANCELLED,
    (OrderState.CREATED, Action.EXPIRE): OrderState.CANCELLED,
    (OrderState.CREATED, Action.CANCEL): OrderState.CANCELLED,
    (OrderState.PLACED, Action.CANCEL): OrderState.CANCELLED,
    (OrderState.PLACED, Action.SHIP): OrderState.SHIPPED,
    (OrderState.SHIPPED, Action.DELIVER): OrderState.DELIVERED,
}

# Repeating an action whose effect is already there returns the order
# unchanged (the contract's "cancelling a CANCELLED order returns it").
_ALREADY: dict[Action, OrderState] = {
    Action.CANCEL: OrderState.CANCELLED,
    Action.SHIP: OrderState.SHIPPED,
    Action.DELIVER: OrderState.DELIVERED,
    Action.RESERVED: OrderState.CREATED,
}


class IllegalTransition(Exception):
    """The action is not allowed from the order's current state."""

    def __init__(self, state: OrderState, action: Action) -> None:
        super().__init__(f"cannot {action.value.lower()} an order that is {state.value}")
        self.state = state
        self.action = action


def next_state(state: OrderState, action: Action) -> OrderState | None:
    """The state after ``action``; None when the action is a no-op because
    its effect is already there; raises IllegalTransition otherwise."""
    found = _NEXT.get((state, action))
    if found is not None:
        return found
    if _ALREADY.get(action) == state:
        return None
    raise IllegalTransition(state, action)


def allowed_transitions() -> set[tuple[OrderState, OrderState]]:
    """Every (from, to) pair the machine allows, for tests and docs."""
    return {(s, t) for (s, _), t in _NEXT.items()}


class ReservationState(enum.StrEnum):
    """The order's record of its inventory reservation, as last confirmed."""

    NONE = "NONE"  # nothing asked yet (PENDING) or never held (REJECTED)
    HELD = "HELD"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"


def wanted_reservation(state: OrderState) -> ReservationState:
    """What the reservation must be for an order in ``state``: the sweeper
    drives the confirmed reservation towards it after a crash."""
    if state in (OrderState.PLACED, OrderState.SHIPPED, OrderState.DELIVERED):
        return ReservationState.COMMITTED
    if state is OrderState.CREATED:
        return ReservationState.HELD
    if state is OrderState.CANCELLED:
        return ReservationState.RELEASED
    return ReservationState.NONE


class PaymentStatus(enum.StrEnum):
    """The order's view of its payment (mirrors ecom.payments.v1)."""

    NONE = ""
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"
    TIMED_OUT = "TIMED_OUT"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


def payment_action(status: PaymentStatus) -> Action | None:
    """The order action a final payment status calls for (None: wait)."""
    if status is PaymentStatus.SUCCEEDED:
        return Action.PAYMENT_SUCCEEDED
    if status is PaymentStatus.DECLINED:
        return Action.PAYMENT_DECLINED
    return None


def refund_due(state: OrderState, payment: PaymentStatus) -> bool:
    """A captured payment on a cancelled order must be given back (a late
    success after expiry, or a PLACED order cancelled before shipping)."""
    return state is OrderState.CANCELLED and payment is PaymentStatus.SUCCEEDED


class RefundState(enum.StrEnum):
    """Whether a captured payment must be given back."""

    NONE = ""  # nothing owed
    DUE = "DUE"  # a captured payment on a cancelled order must be refunded
    DONE = "DONE"


# How far a payment status may move: never back (a redelivered success must
# not undo a refund).
PAYMENT_RANK = {
    PaymentStatus.NONE: 0,
    PaymentStatus.PENDING: 1,
    PaymentStatus.TIMED_OUT: 2,
    PaymentStatus.DECLINED: 3,
    PaymentStatus.SUCCEEDED: 3,
    PaymentStatus.PARTIALLY_REFUNDED: 4,
    PaymentStatus.REFUNDED: 5,
}


def payment_is_stale(current: PaymentStatus, news: PaymentStatus) -> bool:
    """True when ``news`` would move the payment backwards (old news)."""
    return PAYMENT_RANK[news] < PAYMENT_RANK[current]


def payment_open(status: PaymentStatus) -> bool:
    """A payment whose final word has not reached the order yet."""
    return status in (PaymentStatus.PENDING, PaymentStatus.TIMED_OUT)


# What each transition stamps with the time it happened.
STAMPS = {
    OrderState.PLACED: "place_time",
    OrderState.SHIPPED: "ship_time",
    OrderState.DELIVERED: "deliver_time",
    OrderState.CANCELLED: "cancel_time",
}


class OrderValue(Protocol):
    """The parts of a stored order the transition rules read."""

    @property
    def state(self) -> OrderState: ...
    @property
    def version(self) -> int: ...
    @property
    def payment_status(self) -> PaymentStatus: ...
    @property
    def refund_state(self) -> str: ...
    @property
    def reservation_state(self) -> ReservationState: ...


def work_due(state: OrderState, reservation: ReservationState, refund: str) -> bool:
    """Whether an order in ``state`` still owes follow-up work: moving its
    reservation to what the state wants, or a refund."""
    wanted = wanted_reservation(state)
    return (wanted is not ReservationState.NONE and reservation != wanted) or (
        refund == RefundState.DUE
    )


def transition(
    order: OrderValue, action: Action, now: datetime, values: dict[str, Any]
) -> dict[str, Any] | None:
    """The columns ``action`` writes on ``order`` (with the use case's own
    ``values``): the new state and version, the stamp of the state reached,
    a refund owed and the follow-up work left. None when the action is a
    no-op; raises IllegalTransition when it is not allowed."""
    new = next_state(order.state, action)
    if new is None:
        return None
    out = dict(values)
    out.update(state=new.value, version=order.version + 1, update_time=now)
    if new in STAMPS:
        out[STAMPS[new]] = now
    payment = PaymentStatus(out.get("payment_status", order.payment_status))
    refund = out.get("refund_state", order.refund_state)
    if refund_due(new, payment) and refund != RefundState.DONE:
        out["refund_state"] = refund = RefundState.DUE.value
    reservation = ReservationState(out.get("reservation_state", order.reservation_state))
    out["work_due"] = work_due(new, reservation, refund)
    return out


def reservation_to_move(
    state: OrderState, reservation: ReservationState
) -> ReservationState | None:
    """The reservation state settlement must reach for an order in
    ``state``, or None when nothing is to be moved. A paid order whose
    reservation is RELEASED (its stock was gone at commit) is flagged for a
    human, not retried."""
    wanted = wanted_reservation(state)
    flagged = wanted is ReservationState.COMMITTED and reservation is ReservationState.RELEASED
    if wanted is ReservationState.NONE or reservation == wanted or flagged:
        return None
    return wanted


_RELEASE_REASON = {
    CancelReason.PAYMENT_DECLINED: "payment_declined",
    CancelReason.HOLD_EXPIRED: "hold_expired",
    CancelReason.USER_CANCELLED: "user_cancelled",
    CancelReason.ADMIN_CANCELLED: "user_cancelled",
    CancelReason.RECONCILED: "reconciled",
}


def release_reason(reason: CancelReason) -> str:
    """The reason inventory records when a cancelled order's stock is released."""
    return _RELEASE_REASON.get(reason, "reconciled")


# -- money -----------------------------------------------------------------


def money_to_paise(units: int, nanos: int) -> int:
    """google.type.Money (INR) parts -> whole paise, rounding sub-paisa
    nanos down (catalog prices are whole paise anyway); see mesh.money."""
    return money.paise_of(money_pb2.Money(currency_code=money.INR, units=units, nanos=nanos))


# Whole paise -> (units, nanos) with the signs agreeing (mesh.money).
paise_to_money = money.paise_parts


# -- checkout validation ---------------------------------------------------


@dataclass(frozen=True)
class WantedLine:
    """An item and a quantity asked for at checkout."""

    item_id: str
    quantity: int


@dataclass(frozen=True)
class PricedLine:
    """A checkout line priced from the catalog."""

    item_id: str
    quantity: int
    title: str
    unit_paise: int

    @property
    def total_paise(self) -> int:
        return self.unit_paise * self.quantity


def order_totals(priced: list[PricedLine]) -> tuple[int, int]:
    """An order's total in paise and its number of units."""
    return sum(p.total_paise for p in priced), sum(p.quantity for p in priced)


def validate_lines(lines: list[WantedLine], field: str = "lines") -> list[FieldViolation]:
    """1-50 lines, one per item, quantities 1-10."""
    problems: list[FieldViolation] = []
    if not lines:
        problems.append(FieldViolation(field, "at least one line is required"))
    if len(lines) > MAX_LINES:
        problems.append(FieldViolation(field, f"at most {MAX_LINES} lines"))
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if not _ID.match(line.item_id):
            problems.append(FieldViolation(f"{field}[{i}].item_id", "must be a valid item id"))
        elif line.item_id in seen:
            problems.append(FieldViolation(f"{field}[{i}].item_id", "duplicate item"))
        seen.add(line.item_id)
        if not 1 <= line.quantity <= MAX_QUANTITY:
            problems.append(FieldViolation(f"{field}[{i}].quantity", f"must be 1-{MAX_QUANTITY}"))
    return problems


def validate_request_id(request_id: str) -> list[FieldViolation]:
    """A request id (AIP-155) fits the column (never empty: mesh.idempotency
    gives a call without a key a fresh one)."""
    return validation.request_id_violations(request_id)


def validate_address(
    name: str,
    lines: list[str],
    city: str,
    state: str,
    pincode: str,
    phone: str,
    field: str = "shipping_address",
) -> list[FieldViolation]:
    """An address entered at checkout: the fields a courier needs."""
    problems: list[FieldViolation] = []
    if not name.strip():
        problems.append(FieldViolation(f"{field}.name", "is required"))
    if not 1 <= len([ln for ln in lines if ln.strip()]) <= 3:
        problems.append(FieldViolation(f"{field}.lines", "1 to 3 non-empty lines"))
    if not city.strip():
        problems.append(FieldViolation(f"{field}.city", "is required"))
    if not state.strip():
        problems.append(FieldViolation(f"{field}.state", "is required"))
    if not validation.is_pincode(pincode):
        problems.append(FieldViolation(f"{field}.pincode", "must be 6 digits, first 1-9"))
    digits = phone.removeprefix("+91")
    if not re.match(r"^[6-9][0-9]{9}$", digits):
        problems.append(FieldViolation(f"{field}.phone", "must be 10 digits starting 6-9"))
    return problems
