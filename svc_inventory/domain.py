"""Inventory rules: reservation states, request validation, warehouse choice
and the unit accounting of each transition. Pure: no I/O, no clock.

Unit accounting per (item, warehouse) row (see inventory.proto):

* Reserve:              available -= q, reserved += q          (-> HELD)
* Commit:               reserved  -= q, sold     += q          (-> COMMITTED)
* Release of HELD:      reserved  -= q, available += q         (-> RELEASED)
* Release of COMMITTED: sold      -= q, available += q         (-> RELEASED)

so for every row ``available + reserved + sold`` only changes through
SetStock, and ``reserved`` / ``sold`` always equal the sums of the HELD /
COMMITTED reservation lines held there (what reconciliation checks).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mesh.errors import FieldViolation

MAX_LINES = 50
MAX_BATCH_ITEMS = 500
MAX_ID_LENGTH = 64
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Release reasons orders sends; anything else is accepted too (reasons are
# informational) but must stay short enough to store.
MAX_REASON_LENGTH = 64


class ReservationState(enum.Enum):
    """Where a reservation is in its lifecycle (stored by name)."""

    HELD = "HELD"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"


class StockChangeReason(enum.Enum):
    """Why a stock row changed; mirrors ecom.events.v1.StockChangeReason."""

    SET = "SET"
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"


@dataclass(frozen=True)
class RequestedLine:
    """One line of a ReserveStock request: units of an item."""

    item_id: str
    quantity: int


@dataclass(frozen=True)
class HeldLine:
    """One line of a reservation: units of an item held at a warehouse."""

    item_id: str
    warehouse_id: str
    quantity: int


@dataclass(frozen=True)
class RowDelta:
    """How one transition moves the counters of one stock row."""

    available: int = 0
    reserved: int = 0
    sold: int = 0


class TransitionRefused(Exception):
    """The reservation's state does not allow the transition."""

    def __init__(self, state: ReservationState, wanted: str) -> None:
        super().__init__(f"cannot {wanted} a {state.value} reservation")
        self.state = state
        self.wanted = wanted


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


def check_id(field: str, value: str) -> list[FieldViolation]:
    """A required identifier: non-empty, at most 64 characters, no spaces."""
    if not value:
        return [FieldViolation(field, "is required")]
    if len(value) > MAX_ID_LENGTH:
        return [FieldViolation(field, f"must be at most {MAX_ID_LENGTH} characters")]
    if any(c.isspace() for c in value):
        return [FieldViolation(field, "must not contain whitespace")]
    return []


def check_pincode(field: str, value: str) -> list[FieldViolation]:
    """An Indian pincode: six digits, the first not 0."""
    if len(value) != 6 or not value.isdigit() or value[0] == "0":
        return [FieldViolation(field, "must be a six-digit pincode")]
    return []


def validate_reserve(
    order_id: str, lines: Sequence[RequestedLine], pincode: str
) -> list[FieldViolation]:
    """Every problem with a ReserveStock request, each naming its field."""
    problems = check_id("order_id", order_id) + check_pincode("pincode", pincode)
    if not lines:
        problems.append(FieldViolation("lines", "at least one line is required"))
    elif len(lines) > MAX_LINES:
        problems.append(FieldViolation("lines", f"at most {MAX_LINES} lines"))
    seen: set[str] = set()
    for i, line in enumerate(lines):
        problems += check_id(f"lines[{i}].item_id", line.item_id)
        if line.quantity < 1:
            problems.append(FieldViolation(f"lines[{i}].quantity", "must be 1 or more"))
        if line.item_id in seen:
            problems.append(
                FieldViolation(f"lines[{i}].item_id", "duplicate item: use one line per item")
            )
        seen.add(line.item_id)
    return problems


def validate_set_stock(
    item_id: str, warehouse_id: str, available: int, request_id: str
) -> list[FieldViolation]:
    """Every problem with a SetStock request."""
    problems = check_id("item_id", item_id) + check_id("warehouse_id", warehouse_id)
    if available < 0:
        problems.append(FieldViolation("available", "must be 0 or more"))
    if len(request_id) > MAX_ID_LENGTH:
        problems.append(FieldViolation("request_id", f"must be at most {MAX_ID_LENGTH} characters"))
    return problems


def distinct_items(item_ids: Iterable[str]) -> list[str]:
    """Request order with duplicates collapsed (BatchGetStock)."""
    return list(dict.fromkeys(item_ids))


def page_size(requested: int) -> int:
    """AIP-158: 0 means the default; above the maximum is coerced down."""
    if requested < 0:
        raise ValueError("page_size must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


# --------------------------------------------------------------------------
# Allocation
# --------------------------------------------------------------------------


def lock_order(lines: Iterable[RequestedLine]) -> list[RequestedLine]:
    """Lines in the order their stock rows are locked. Every transaction
    locks items in item-id order, so two reservations sharing items never
    wait on each other in a cycle (no deadlocks between reservations)."""
    return sorted(lines, key=lambda line: line.item_id)


def choose_warehouse(
    routes: Sequence[str], available: Mapping[str, int], quantity: int
) -> str | None:
    """The fastest warehouse (``routes`` are fastest first) that holds at
    least ``quantity`` units; None when no serving warehouse has enough.
    A line is never split across warehouses: one parcel per item."""
    for warehouse_id in routes:
        if available.get(warehouse_id, 0) >= quantity:
            return warehouse_id
    return None


def serviceable_units(routes: Sequence[str], available: Mapping[str, int]) -> int:
    """Most units of one line a single serving warehouse could ship; for the
    shortage message."""
    return max((available.get(w, 0) for w in routes), default=0)


# --------------------------------------------------------------------------
# Transitions
# --------------------------------------------------------------------------


def reserve_delta(quantity: int) -> RowDelta:
    """Holding ``quantity`` units."""
    return RowDelta(available=-quantity, reserved=quantity)


def commit_delta(state: ReservationState, quantity: int) -> RowDelta | None:
    """What committing a reservation in ``state`` does to one of its rows:
    None when it is already committed (idempotent). Raises
    TransitionRefused for a released reservation."""
    if state is ReservationState.HELD:
        return RowDelta(reserved=-quantity, sold=quantity)
    if state is ReservationState.COMMITTED:
        return None
    raise TransitionRefused(state, "commit")


def release_delta(state: ReservationState, quantity: int) -> RowDelta | None:
    """What releasing a reservation in ``state`` does to one of its rows:
    None when it is already released (idempotent)."""
    if state is ReservationState.HELD:
        return RowDelta(reserved=-quantity, available=quantity)
    if state is ReservationState.COMMITTED:
        # Cancelled before shipping: the sold units go back on the shelf.
        return RowDelta(sold=-quantity, available=quantity)
    return None
