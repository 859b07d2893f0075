"""The shared plumbing in mesh/ that services use instead of their own
copies: paise conversions and INR checks (mesh.money), pincodes and request
ids (mesh.validation)."""

from __future__ import annotations

import pytest
from google.type import money_pb2
from hypothesis import given
from hypothesis import strategies as st

from mesh import money, validation


@given(st.integers(-(10**12), 10**12))
def test_paise_round_trip_with_matching_signs(paise: int) -> None:
    units, nanos = money.paise_parts(paise)
    assert (units >= 0 and nanos >= 0) or (units <= 0 and nanos <= 0)
    assert abs(nanos) < money.NANOS_PER_UNIT
    assert money.paise_of(money.from_paise(paise)) == paise
    assert (units, nanos) == (money.from_paise(paise).units, money.from_paise(paise).nanos)


def test_paise_of_reads_unset_money_as_zero_and_refuses_other_currencies() -> None:
    assert money.paise_of(money_pb2.Money()) == 0
    assert money.paise_of(money_pb2.Money(currency_code="INR", units=12, nanos=345_000_000)) == 1234
    with pytest.raises(money.MoneyError):
        money.paise_of(money_pb2.Money(currency_code="USD", units=1))
    with pytest.raises(money.MoneyError):
        money.paise_of(money_pb2.Money(units=1))  # an amount with no currency


@pytest.mark.parametrize(
    ("currency", "units", "nanos", "optional", "fields"),
    [
        ("INR", 10, 500_000_000, False, []),
        ("", 10, 0, True, []),
        ("", 10, 0, False, ["price.currency_code"]),
        ("USD", 10, 0, False, ["price.currency_code"]),
        ("INR", 1, -10_000_000, False, ["price.nanos"]),
        ("INR", 1, 5, False, ["price.nanos"]),
        ("INR", 0, 1_000_000_000, False, ["price.nanos"]),
    ],
)
def test_inr_violations_name_the_field(
    currency: str, units: int, nanos: int, optional: bool, fields: list[str]
) -> None:
    found = money.inr_violations("price", currency, units, nanos, currency_optional=optional)
    assert [v.field for v in found] == fields


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("560001", True),
        ("110001", True),
        ("012345", False),
        ("56001", False),
        ("5600011", False),
        ("56000a", False),
        ("", False),
    ],
)
def test_pincodes(value: str, ok: bool) -> None:
    assert validation.is_pincode(value) is ok
    assert (validation.pincode_violations("address.pincode", value) == []) is ok


def test_request_ids_fit_their_column() -> None:
    assert validation.request_id_violations("k" * 64) == []
    (too_long,) = validation.request_id_violations("k" * 65)
    assert too_long.field == "request_id"
    assert validation.request_id_violations("k" * 128, max_length=128) == []
