"""mesh.money: exact google.type.Money arithmetic (property-based)."""

from __future__ import annotations

import pytest
from google.type import money_pb2
from hypothesis import given
from hypothesis import strategies as st

from mesh import money

# Amounts up to ~10^12 rupees in nanos, either sign.
NANOS = st.integers(min_value=-(10**21), max_value=10**21)
PAISE = st.integers(min_value=0, max_value=10**13)
QTY = st.integers(min_value=0, max_value=10_000)


@given(NANOS)
def test_split_round_trips_and_keeps_signs_consistent(total: int) -> None:
    m = money.to_money(total)
    assert m.currency_code == "INR"
    assert -money.NANOS_PER_UNIT < m.nanos < money.NANOS_PER_UNIT
    assert not (m.units > 0 and m.nanos < 0) and not (m.units < 0 and m.nanos > 0)
    assert money.to_nanos(m) == total


@given(st.lists(NANOS, max_size=30))
def test_total_is_the_exact_sum_in_any_order(amounts: list[int]) -> None:
    values = [money.to_money(a) for a in amounts]
    assert money.to_nanos(money.total(values)) == sum(amounts)
    assert money.total(values) == money.total(list(reversed(values)))


@given(PAISE, QTY)
def test_multiply_equals_repeated_addition(paise: int, qty: int) -> None:
    price = money.from_paise(paise)
    assert money.multiply(price, qty) == money.total([price] * qty)
    assert money.to_paise(money.multiply(price, qty)) == paise * qty


@given(NANOS, NANOS)
def test_add_commutes(a: int, b: int) -> None:
    x, y = money.to_money(a), money.to_money(b)
    assert money.add(x, y) == money.add(y, x)
    assert money.to_nanos(money.add(x, y)) == a + b


def test_carry_across_the_rupee() -> None:
    # 0.99 + 0.02 = 1.01: the classic carry that per-field addition gets wrong.
    assert money.add(money.from_paise(99), money.from_paise(2)) == money_pb2.Money(
        currency_code="INR", units=1, nanos=10_000_000
    )
    assert money.multiply(money.from_paise(14_999_50), 3) == money_pb2.Money(
        currency_code="INR", units=44_998, nanos=500_000_000
    )
    assert money.total([]) == money.zero()
    assert money.format_inr(money.from_paise(123_456_78)) == "₹123,456.78"


@pytest.mark.parametrize(
    "bad",
    [
        money_pb2.Money(currency_code="USD", units=1),
        money_pb2.Money(currency_code="INR", units=1, nanos=-5),
        money_pb2.Money(currency_code="INR", units=-1, nanos=5),
        money_pb2.Money(currency_code="INR", units=0, nanos=1_000_000_000),
    ],
)
def test_malformed_money_is_refused(bad: money_pb2.Money) -> None:
    with pytest.raises(money.MoneyError):
        money.to_nanos(bad)


def test_fractions_of_a_paisa_are_not_paise() -> None:
    with pytest.raises(money.MoneyError):
        money.to_paise(money_pb2.Money(currency_code="INR", nanos=5))
