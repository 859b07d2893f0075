"""Exact arithmetic on ``google.type.Money``.

Every amount in the API is a ``google.type.Money`` in INR: ``units`` whole
rupees plus ``nanos`` billionths of a rupee, both with the same sign. Adding
``units`` and ``nanos`` separately invites carry bugs, and floats cannot
represent paise exactly, so every helper here goes through one integer: the
amount in nanos (``units * 10**9 + nanos``). Python integers do not
overflow; :func:`to_money` refuses totals beyond ``int64`` units, which is
what the wire can carry.

Shared by the services that price things (cart, orders, payments)::

    from mesh import money
    line = money.multiply(item.price, quantity)
    total = money.total([line_a, line_b])
"""

from __future__ import annotations

from collections.abc import Iterable

from google.type import money_pb2

from mesh.errors import FieldViolation

INR = "INR"
NANOS_PER_UNIT = 1_000_000_000
NANOS_PER_PAISA = 10_000_000
MAX_UNITS = 2**63 - 1  # int64 on the wire


class MoneyError(ValueError):
    """A Money value is malformed, in the wrong currency, or out of range."""


def to_nanos(value: money_pb2.Money, *, currency: str = INR) -> int:
    """The amount as a single integer of nanos; raises :class:`MoneyError`
    when the currency differs or the parts break the Money invariants
    (``|nanos| < 10**9``, ``nanos`` with the same sign as ``units``)."""
    if value.currency_code != currency:
        raise MoneyError(f"expected currency {currency}, got {value.currency_code!r}")
    units, nanos = value.units, value.nanos
    if not -NANOS_PER_UNIT < nanos < NANOS_PER_UNIT:
        raise MoneyError(f"nanos {nanos} out of range")
    if (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        raise MoneyError("units and nanos must have the same sign")
    return units * NANOS_PER_UNIT + nanos


def split(total_nanos: int) -> tuple[int, int]:
    """``total_nanos`` as (units, nanos) with matching signs (truncating
    towards zero, as google.type.Money requires)."""
    sign = -1 if total_nanos < 0 else 1
    units, nanos = divmod(abs(total_nanos), NANOS_PER_UNIT)
    return sign * units, sign * nanos


def to_money(total_nanos: int, currency: str = INR) -> money_pb2.Money:
    """A Money message for an amount in nanos."""
    units, nanos = split(total_nanos)
    if abs(units) > MAX_UNITS:
        raise MoneyError("amount does not fit in google.type.Money")
    return money_pb2.Money(currency_code=currency, units=units, nanos=nanos)


def zero(currency: str = INR) -> money_pb2.Money:
    """Nothing, in ``currency`` (the total of an empty cart)."""
    return money_pb2.Money(currency_code=currency)


def from_paise(paise: int) -> money_pb2.Money:
    """Whole paise as INR Money."""
    return to_money(paise * NANOS_PER_PAISA)


def to_paise(value: money_pb2.Money) -> int:
    """INR Money as whole paise; :class:`MoneyError` when it has fractions
    of a paisa (INR has two decimal places)."""
    paise, rest = divmod(to_nanos(value), NANOS_PER_PAISA)
    if rest:
        raise MoneyError("INR amounts have at most two decimal places")
    return paise


def paise_parts(paise: int) -> tuple[int, int]:
    """Whole paise as the (units, nanos) of a Money, both with the amount's sign."""
    return split(paise * NANOS_PER_PAISA)


def paise_of(value: money_pb2.Money) -> int:
    """INR Money from a peer or an event as whole paise, sub-paisa nanos
    rounded down; an unset Money (no currency) is zero paise. Raises
    :class:`MoneyError` for another currency."""
    if value.currency_code not in (INR, "") or (
        not value.currency_code and (value.units or value.nanos)
    ):
        raise MoneyError(f"expected currency {INR}, got {value.currency_code!r}")
    return (value.units * NANOS_PER_UNIT + value.nanos) // NANOS_PER_PAISA


def inr_violations(
    field: str, currency: str, units: int, nanos: int, *, currency_optional: bool = False
) -> list[FieldViolation]:
    """Why Money parts given by a client are not a valid INR amount in whole
    paise (each violation names ``field.currency_code`` or ``field.nanos``);
    empty when they are. ``currency_optional`` accepts an unset currency."""
    out: list[FieldViolation] = []
    if currency != INR and not (currency_optional and currency == ""):
        out.append(FieldViolation(f"{field}.currency_code", f"must be {INR}"))
    if not -NANOS_PER_UNIT < nanos < NANOS_PER_UNIT:
        out.append(FieldViolation(f"{field}.nanos", "must be within +-999,999,999"))
    elif (units > 0 and nanos < 0) or (units < 0 and nanos > 0):
        out.append(FieldViolation(f"{field}.nanos", "must have the same sign as units"))
    elif nanos % NANOS_PER_PAISA:
        out.append(FieldViolation(f"{field}.nanos", "INR has at most 2 decimal places"))
    return out


def multiply(value: money_pb2.Money, quantity: int) -> money_pb2.Money:
    """``value`` x ``quantity`` (a line total), exactly."""
    return to_money(to_nanos(value, currency=value.currency_code) * quantity, value.currency_code)


def total(values: Iterable[money_pb2.Money], currency: str = INR) -> money_pb2.Money:
    """The exact sum of ``values``, all in ``currency``; zero when empty."""
    return to_money(sum(to_nanos(v, currency=currency) for v in values), currency)


def add(a: money_pb2.Money, b: money_pb2.Money) -> money_pb2.Money:
    """``a + b``, both in the same currency."""
    return total([a, b], currency=a.currency_code)


def format_inr(value: money_pb2.Money) -> str:
    """``₹1,234.50``-style text for logs and messages (not for arithmetic)."""
    nanos = to_nanos(value)
    sign = "-" if nanos < 0 else ""
    paise = abs(nanos) // NANOS_PER_PAISA
    return f"{sign}₹{paise // 100:,}.{paise % 100:02d}"
