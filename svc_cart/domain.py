"""Cart and wishlist rules, free of I/O: input checks, the per-line and
per-cart limits, and pricing a cart from what the catalog and serviceability
said (or failed to say)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from mesh import validation
from mesh.errors import FieldViolation, InvalidArgument

# Defaults of the limits the contract states; main.py may override them
# (ECOM_CART_MAX_QUANTITY, ECOM_CART_MAX_LINES, ECOM_WISHLIST_MAX_ITEMS).
MAX_LINE_QUANTITY = 10
MAX_CART_LINES = 50
MAX_WISHLIST_ITEMS = 500

# Ids are opaque, but bounded so they fit the key columns.
_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")
MAX_REQUEST_ID = 128
LIMIT_REASON = "CART_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class Limits:
    """How much one user may keep in a cart and a wishlist."""

    max_line_quantity: int = MAX_LINE_QUANTITY
    max_cart_lines: int = MAX_CART_LINES
    max_wishlist_items: int = MAX_WISHLIST_ITEMS


# -- input checks -----------------------------------------------------------
def check_id(name: str, value: str) -> list[FieldViolation]:
    """Violations of a user or item id (empty when fine)."""
    if not value:
        return [FieldViolation(name, "is required")]
    if not _ID.match(value):
        return [FieldViolation(name, "must be 1-64 letters, digits or . _ : @ -")]
    return []


def check_request_id(value: str) -> list[FieldViolation]:
    """Violations of an AIP-155 request id (never empty: mesh.idempotency
    gives a call without a key a fresh one)."""
    return validation.request_id_violations(value, max_length=MAX_REQUEST_ID)


def require(*problems: list[FieldViolation]) -> None:
    """Raise one INVALID_ARGUMENT naming every bad field, if any."""
    found = [v for group in problems for v in group]
    if found:
        raise InvalidArgument(violations=found)


def units_to_add(quantity: int, limits: Limits) -> int:
    """The units an add asks for: 0 means 1; otherwise 1..max per line."""
    if quantity == 0:
        return 1
    if not 1 <= quantity <= limits.max_line_quantity:
        raise InvalidArgument.for_field(
            "quantity", f"must be between 1 and {limits.max_line_quantity}"
        )
    return quantity


def check_new_quantity(quantity: int, limits: Limits) -> int:
    """A quantity to set on a line: 0 (remove) to max per line."""
    if not 0 <= quantity <= limits.max_line_quantity:
        raise InvalidArgument.for_field(
            "quantity", f"must be between 0 and {limits.max_line_quantity}"
        )
    return quantity


def quantity_after_add(current: int, adding: int, limits: Limits) -> int:
    """Units on the line after adding; INVALID_ARGUMENT when the line would
    pass the per-line limit (the caller learns how many more fit)."""
    after = current + adding
    if after > limits.max_line_quantity:
        room = max(limits.max_line_quantity - current, 0)
        raise InvalidArgument(
            f"a cart line holds at most {limits.max_line_quantity} units; "
            f"{current} already in the cart, at most {room} more fit",
            violations=[
                FieldViolation(
                    "quantity",
                    f"{current} + {adding} exceeds the limit of {limits.max_line_quantity} units",
                )
            ],
            reason=LIMIT_REASON,
        )
    return after


def check_cart_room(lines: int, new_line: bool, limits: Limits) -> None:
    """INVALID_ARGUMENT when a new line would pass the cart's line limit."""
    if new_line and lines >= limits.max_cart_lines:
        raise InvalidArgument(
            f"a cart holds at most {limits.max_cart_lines} different items",
            violations=[
                FieldViolation("item_id", f"the cart already has {lines} lines")
            ],
            reason=LIMIT_REASON,
        )


def check_wishlist_room(items: int, limits: Limits) -> None:
    """INVALID_ARGUMENT when one more saved item would pass the limit."""
    if items >= limits.max_wishlist_items:
        raise InvalidArgument(
            f"a wishlist holds at most {limits.max_wishlist_items} items",
            violations=[FieldViolation("item_id", f"the wishlist already has {items} items")],
            reason=LIMIT_REASON,
        )


def fingerprint(operation: str, *parts: object) -> str:
    """What a request asked for, so a request id reused for a different
    change is refused instead of silently answered with the first one."""
    raw = "\x1f".join([operation, *(str(p) for p in parts)])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


# -- pricing ----------------------------------------------------------------
@dataclass(frozen=True)
class StoredLine:
    """A cart line as stored: what the user chose, no prices."""

    item_id: str
    quantity: int
    add_time: datetime


@dataclass(frozen=True)
class CatalogItem:
    """What the cart needs of a catalog item."""

    item_id: str
    title: str
    image_url: str
    price_nanos: int
    active: bool


@dataclass(frozen=True)
class Delivery:
    """A delivery estimate, kept as the proto message's fields."""

    deliverable: bool
    eta_days: int = 0
    promised: tuple[int, int, int] | None = None  # (year, month, day)
    warehouse_id: str = ""
    reason: int = 0  # ecom.common.v1.UndeliverableReason


@dataclass(frozen=True)
class PricedLine:
    """A cart line with what is known now."""

    item_id: str
    quantity: int
    add_time: datetime
    title: str = ""
    image_url: str = ""
    unit_price_nanos: int | None = None
    line_total_nanos: int | None = None
    available: bool = True
    delivery: Delivery | None = None


@dataclass(frozen=True)
class PricedCart:
    """A cart priced now."""

    lines: tuple[PricedLine, ...]
    total_nanos: int
    item_count: int
    pincode: str
    priced: bool
    all_deliverable: bool
    update_time: datetime | None = None


def price_cart(
    lines: Sequence[StoredLine],
    items: Mapping[str, CatalogItem] | None,
    missing: frozenset[str],
    pincode: str,
    deliveries: Mapping[str, Delivery] | None,
    update_time: datetime | None = None,
) -> PricedCart:
    """Price ``lines`` (most recent first) from the catalog's answer.

    ``items`` None means the catalog could not be reached: lines stay
    unpriced and count as available (nothing says they were deleted), and
    ``priced`` is False. ``missing`` are ids the catalog does not know at
    all: like deleted items they are unavailable and excluded from the
    total. ``deliveries`` None with a ``pincode`` means serviceability
    could not be reached: every line gets an "estimate unavailable"
    verdict rather than a false "not deliverable"."""
    out: list[PricedLine] = []
    total = 0
    count = 0
    priced = items is not None
    all_deliverable = bool(pincode)
    for line in lines:
        delivery = _delivery_for(line.item_id, pincode, deliveries)
        if items is None:
            pl = PricedLine(line.item_id, line.quantity, line.add_time, delivery=delivery)
        elif line.item_id in items:
            item = items[line.item_id]
            line_total = item.price_nanos * line.quantity
            pl = PricedLine(
                line.item_id,
                line.quantity,
                line.add_time,
                title=item.title,
                image_url=item.image_url,
                unit_price_nanos=item.price_nanos,
                line_total_nanos=line_total,
                available=item.active,
                delivery=delivery,
            )
        else:
            # Not in the answer: unknown to the catalog (or dropped from a
            # partial answer); either way it cannot be bought now.
            pl = PricedLine(
                line.item_id, line.quantity, line.add_time, available=False, delivery=delivery
            )
            if line.item_id not in missing:
                priced = False
        out.append(pl)
        if pl.available:
            count += pl.quantity
            if pl.line_total_nanos is not None:
                total += pl.line_total_nanos
            if delivery is None or not delivery.deliverable:
                all_deliverable = False
    return PricedCart(
        lines=tuple(out),
        total_nanos=total,
        item_count=count,
        pincode=pincode,
        priced=priced,
        all_deliverable=all_deliverable,
        update_time=update_time,
    )


ESTIMATE_UNAVAILABLE = 5  # ecom.common.v1.UNDELIVERABLE_REASON_ESTIMATE_UNAVAILABLE


def _delivery_for(
    item_id: str, pincode: str, deliveries: Mapping[str, Delivery] | None
) -> Delivery | None:
    if not pincode:
        return None
    if deliveries is None or item_id not in deliveries:
        return Delivery(deliverable=False, reason=ESTIMATE_UNAVAILABLE)
    return deliveries[item_id]



@dataclass(frozen=True)
class SavedEntry:
    """A wishlist item with what is known now."""

    item_id: str
    add_time: datetime
    title: str = ""
    image_url: str = ""
    price_nanos: int | None = None
    available: bool = True


def price_wishlist(
    saved: Sequence[tuple[str, datetime]],
    items: Mapping[str, CatalogItem] | None,
) -> list[SavedEntry]:
    """Price saved items (most recent first); ``items`` None means the
    catalog could not be reached (no prices, nothing marked unavailable)."""
    out: list[SavedEntry] = []
    for item_id, add_time in saved:
        if items is None:
            out.append(SavedEntry(item_id, add_time))
        elif item_id in items:
            item = items[item_id]
            out.append(
                SavedEntry(
                    item_id,
                    add_time,
                    title=item.title,
                    image_url=item.image_url,
                    price_nanos=item.price_nanos,
                    available=item.active,
                )
            )
        else:
            out.append(SavedEntry(item_id, add_time, available=False))
    return out


def check_pincode(value: str) -> list[FieldViolation]:
    """Violations of an optional pincode filter."""
    if value and not validation.is_pincode(value):
        return [FieldViolation("pincode", "must be six digits, the first 1-9")]
    return []
