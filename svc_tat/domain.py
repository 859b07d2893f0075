"""Serviceability rules: pure functions, no I/O.

Time is always passed in (``now``), so the cutoff and promised-date rules
are tested without a clock; the service injects the real (or frozen) time.

Vocabulary:

* *transit days*: carrier days from a warehouse to a pincode, from the
  precomputed matrix (:data:`NO_ROUTE` when the warehouse does not serve it);
* *route*: a warehouse that can ship to a pincode now, with the ETA;
* *overlay*: the disruptions in force, applied on top of the matrix.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from mesh import validation
from mesh.errors import InvalidArgument

IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
PINCODE_RE = validation.PINCODE
# Matrix cell meaning "this warehouse does not ship here".
NO_ROUTE = 255

# Distance bands (upper bound km, carrier days), shortest first. Past the
# last band the carrier takes LONGEST_BAND_DAYS.
DISTANCE_BANDS: tuple[tuple[float, int], ...] = (
    (40.0, 1),
    (300.0, 2),
    (700.0, 3),
    (1200.0, 4),
    (1800.0, 5),
)
LONGEST_BAND_DAYS = 6
# Outside metros the parcel takes one more day from the hub to the door...
NON_METRO_EXTRA_DAYS = 1
# ...and hill, island and north-eastern regions two more (few flights/roads).
REMOTE_EXTRA_DAYS = 2
# Pincode prefixes of remote regions: Ladakh, J&K valley, Himachal tribal
# districts, Sikkim, the North East outside Assam's plains, Andaman &
# Nicobar, Lakshadweep.
REMOTE_PREFIXES: tuple[str, ...] = (
    "194", "1931", "1722", "1753", "737", "790", "791", "792", "793", "794", "795",
    "796", "797", "798", "799", "744", "68255",
)
# Metro centres (lat, lon) and the radius that counts as the metro area.
METRO_CENTRES: tuple[tuple[float, float], ...] = (
    (28.6139, 77.2090),  # Delhi
    (19.0760, 72.8777),  # Mumbai
    (12.9716, 77.5946),  # Bengaluru
    (13.0827, 80.2707),  # Chennai
    (22.5726, 88.3639),  # Kolkata
    (17.3850, 78.4867),  # Hyderabad
    (18.5204, 73.8567),  # Pune
    (23.0225, 72.5714),  # Ahmedabad
)
METRO_RADIUS_KM = 40.0

# Flags byte of a packed matrix row.
FLAG_DELIVERY = 1  # at least one delivery post office
FLAG_METRO = 2
FLAG_REMOTE = 4


# --------------------------------------------------------------------------
# Pincodes
# --------------------------------------------------------------------------


def validate_pincode(pincode: str, field: str = "pincode") -> str:
    """The pincode, stripped; INVALID_ARGUMENT naming ``field`` unless it is
    six digits with a first digit 1-9."""
    value = pincode.strip()
    if not value:
        raise InvalidArgument.for_field(field, "is required: a six-digit Indian pincode")
    if not PINCODE_RE.match(value):
        raise InvalidArgument.for_field(
            field, f"must be six digits with the first digit 1-9, got {pincode!r}",
            reason="MALFORMED_PINCODE",
        )
    return value


def is_remote(pincode: str) -> bool:
    """Whether the pincode lies in a hill, island or north-eastern region."""
    return pincode.startswith(REMOTE_PREFIXES)


def transit_days_for(distance_km: float, *, metro: bool, remote: bool) -> int:
    """Carrier days for one distance (the scalar form of the matrix job)."""
    days = LONGEST_BAND_DAYS
    for limit, band_days in DISTANCE_BANDS:
        if distance_km <= limit:
            days = band_days
            break
    if not metro and distance_km > DISTANCE_BANDS[0][0]:
        days += NON_METRO_EXTRA_DAYS
    if remote:
        days += REMOTE_EXTRA_DAYS
    return days


# --------------------------------------------------------------------------
# The packed matrix row: one small value per pincode, all warehouses in it
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PinRow:
    """One pincode's row of the matrix: flags, transit days per warehouse
    column (:data:`NO_ROUTE` = not served) and the state, for outages."""

    flags: int
    days: bytes
    state: str

    @property
    def has_delivery_office(self) -> bool:
        return bool(self.flags & FLAG_DELIVERY)


def encode_row(flags: int, days: Sequence[int] | bytes, state: str) -> bytes:
    """Pack a row: ``[flags][n][n transit bytes][state utf-8]``."""
    return bytes((flags, len(days))) + bytes(days) + state.encode()


def decode_row(value: bytes) -> PinRow:
    """Inverse of :func:`encode_row`."""
    n = value[1]
    return PinRow(flags=value[0], days=value[2 : 2 + n], state=value[2 + n :].decode())


# --------------------------------------------------------------------------
# ETA
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Eta:
    """Days from now to delivery and the promised calendar date (IST)."""

    days: int
    promised: dt.date


def eta(now: dt.datetime, *, cutoff_hour: int, processing_days: int, transit_days: int) -> Eta:
    """When an order placed at ``now`` arrives: orders at or after the
    warehouse's cutoff hour (IST) count as received the next day."""
    local = now.astimezone(IST)
    late = 1 if local.hour >= cutoff_hour else 0
    days = late + processing_days + transit_days
    return Eta(days=days, promised=local.date() + dt.timedelta(days=days))


# --------------------------------------------------------------------------
# Disruptions
# --------------------------------------------------------------------------


class DisruptionKind(IntEnum):
    """Mirror of ecom.serviceability.v1.DisruptionKind (same numbers)."""

    WAREHOUSE_CLOSED = 1
    CARRIER_OUTAGE = 2
    PINCODE_BLOCKED = 3


@dataclass(frozen=True)
class DisruptionRule:
    """The part of a disruption that decides what it takes out of service."""

    disruption_id: str
    kind: DisruptionKind
    warehouse_id: str = ""
    state: str = ""
    pincodes: tuple[str, ...] = ()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    cleared: dt.datetime | None = None

    def in_force(self, now: dt.datetime) -> bool:
        """Started, not ended, not cleared at ``now``. A clear counts at
        once whatever its timestamp: it is an operator's decision now."""
        if self.cleared is not None:
            return False
        if self.start is not None and now < self.start:
            return False
        return not (self.end is not None and now >= self.end)

    def blocks_pincode(self, pincode: str, state: str) -> bool:
        """Whether this disruption stops every delivery to the pincode."""
        if self.kind is DisruptionKind.PINCODE_BLOCKED:
            return pincode in self.pincodes
        if self.kind is DisruptionKind.CARRIER_OUTAGE:
            if self.state and self.state.casefold() == state.casefold():
                return True
            return any(pincode.startswith(p) for p in self.pincodes)
        return False


def _validate_outage(rule: DisruptionRule, prefix: str) -> None:
    if not rule.state and not rule.pincodes:
        raise InvalidArgument.for_field(
            prefix + "state", "an outage needs a state and/or pincodes or prefixes"
        )
    for i, p in enumerate(rule.pincodes):
        if not re.fullmatch(r"[1-9][0-9]{1,5}", p):
            raise InvalidArgument.for_field(
                f"{prefix}pincodes[{i}]", f"must be a 2-6 digit pincode prefix, got {p!r}"
            )


def _validate_blocked(rule: DisruptionRule, prefix: str) -> None:
    if not rule.pincodes:
        raise InvalidArgument.for_field(prefix + "pincodes", "is required to block pincodes")
    for i, p in enumerate(rule.pincodes):
        if not PINCODE_RE.match(p):
            raise InvalidArgument.for_field(
                f"{prefix}pincodes[{i}]", f"must be a full six-digit pincode, got {p!r}"
            )


def validate_disruption(rule: DisruptionRule, known_warehouses: Iterable[str]) -> None:
    """INVALID_ARGUMENT naming the field when the disruption is incomplete."""
    prefix = "disruption."
    if rule.kind is DisruptionKind.WAREHOUSE_CLOSED:
        if not rule.warehouse_id:
            raise InvalidArgument.for_field(prefix + "warehouse_id", "is required to close one")
        if rule.warehouse_id not in set(known_warehouses):
            raise InvalidArgument.for_field(
                prefix + "warehouse_id", f"unknown warehouse {rule.warehouse_id!r}"
            )
    elif rule.kind is DisruptionKind.CARRIER_OUTAGE:
        _validate_outage(rule, prefix)
    elif rule.kind is DisruptionKind.PINCODE_BLOCKED:
        _validate_blocked(rule, prefix)
    if rule.start and rule.end and rule.end <= rule.start:
        raise InvalidArgument.for_field(prefix + "end_time", "must be after start_time")


@dataclass(frozen=True)
class Overlay:
    """The disruptions known to this instance; :meth:`at` filters by time."""

    rules: tuple[DisruptionRule, ...] = ()

    def closed_warehouses(self, now: dt.datetime) -> frozenset[str]:
        return frozenset(
            r.warehouse_id
            for r in self.rules
            if r.kind is DisruptionKind.WAREHOUSE_CLOSED and r.in_force(now)
        )

    def pincode_blocked(self, pincode: str, state: str, now: dt.datetime) -> bool:
        return any(r.in_force(now) and r.blocks_pincode(pincode, state) for r in self.rules)

    def with_rule(self, rule: DisruptionRule) -> Overlay:
        """This overlay with ``rule`` added or replaced (same id). A clear is
        final: the broadcast of a disruption's creation can arrive after this
        instance already applied its clear, and must not bring it back."""
        for r in self.rules:
            if r.disruption_id == rule.disruption_id and r.cleared and not rule.cleared:
                return self
        kept = tuple(r for r in self.rules if r.disruption_id != rule.disruption_id)
        return Overlay(kept + (rule,))


# --------------------------------------------------------------------------
# Routes and the choice of warehouse
# --------------------------------------------------------------------------


class Reason(IntEnum):
    """Mirror of ecom.common.v1.UndeliverableReason (same numbers)."""

    NONE = 0
    UNKNOWN_PINCODE = 1
    NOT_SERVICEABLE = 2
    OUT_OF_STOCK = 3
    DISRUPTED = 4


@dataclass(frozen=True)
class WarehouseTerms:
    """What the ETA needs to know about a warehouse."""

    warehouse_id: str
    cutoff_hour: int
    processing_days: int


@dataclass(frozen=True)
class Route:
    """A warehouse that can ship to the pincode now, and when it arrives."""

    warehouse_id: str
    eta: Eta


@dataclass(frozen=True)
class Routes:
    """Routes to one pincode: ``live`` after disruptions (fastest first),
    ``static`` ones from the matrix alone (ids), for the reason."""

    live: tuple[Route, ...]
    static: frozenset[str]
    delivery_office: bool


def routes_for(
    pincode: str,
    row: PinRow,
    columns: Sequence[str],
    terms: Mapping[str, WarehouseTerms],
    overlay: Overlay,
    now: dt.datetime,
) -> Routes:
    """The serving warehouses for ``pincode``, fastest first (ties by id)."""
    if not row.has_delivery_office:
        return Routes((), frozenset(), False)
    static = {
        wid: days
        for wid, days in zip(columns, row.days, strict=False)
        if days != NO_ROUTE and wid in terms
    }
    if overlay.pincode_blocked(pincode, row.state, now):
        return Routes((), frozenset(static), True)
    closed = overlay.closed_warehouses(now)
    live = []
    for wid, days in static.items():
        if wid in closed:
            continue
        t = terms[wid]
        live.append(
            Route(wid, eta(now, cutoff_hour=t.cutoff_hour, processing_days=t.processing_days,
                           transit_days=days))
        )
    live.sort(key=lambda r: (r.eta.days, r.warehouse_id))
    return Routes(tuple(live), frozenset(static), True)


@dataclass(frozen=True)
class Verdict:
    """The answer for one item: a route, or the reason there is none."""

    route: Route | None
    reason: Reason


def choose(routes: Routes, stock: Mapping[str, int] | None, quantity: int) -> Verdict:
    """The fastest live route whose warehouse holds ``quantity`` units.

    ``stock`` maps warehouse id to available units for the item (an empty
    mapping: the item is stocked nowhere); None means stock is unknown
    (inventory unreachable), so the fastest route is named regardless."""
    if not routes.delivery_office or not routes.static:
        return Verdict(None, Reason.NOT_SERVICEABLE)
    if stock is None:
        if routes.live:
            return Verdict(routes.live[0], Reason.NONE)
        return Verdict(None, Reason.DISRUPTED)
    for route in routes.live:
        if stock.get(route.warehouse_id, 0) >= quantity:
            return Verdict(route, Reason.NONE)
    holders = {w for w, units in stock.items() if units >= quantity}
    if not stock:
        return Verdict(None, Reason.NOT_SERVICEABLE)  # never stocked anywhere
    if not holders:
        return Verdict(None, Reason.OUT_OF_STOCK)
    if holders & routes.static:
        return Verdict(None, Reason.DISRUPTED)  # a holder would serve but for a disruption
    return Verdict(None, Reason.NOT_SERVICEABLE)


# --------------------------------------------------------------------------
# Page tokens (ecom.common.v1.PageCursor, base64url without padding)
# --------------------------------------------------------------------------


def encode_token(raw: bytes) -> str:
    """An opaque page token from a serialised PageCursor."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, field: str = "page_token") -> bytes:
    """The serialised PageCursor in ``token``; INVALID_ARGUMENT if garbled."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        raise InvalidArgument.for_field(field, "is not a token this API issued") from None


def page_size(requested: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    """The effective page size; INVALID_ARGUMENT when out of range."""
    if requested < 0 or requested > maximum:
        raise InvalidArgument.for_field(field, f"must be 0-{maximum}, got {requested}")
    return requested or default
