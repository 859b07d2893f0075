"""Inventory rules without servers: validation, warehouse choice, lock order,
and the unit accounting of reserve/commit/release (property-based)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svc_inventory import domain
from svc_inventory.domain import RequestedLine, ReservationState, RowDelta, TransitionRefused
from svc_inventory.store import decode_page_token, encode_page_token


def fields(violations: list[domain.FieldViolation]) -> set[str]:
    return {v.field for v in violations}


def test_valid_reserve_request_has_no_violations() -> None:
    lines = [RequestedLine("a", 1), RequestedLine("b", 3)]
    assert domain.validate_reserve("order-1", lines, "560001") == []


def test_reserve_validation_names_every_bad_field() -> None:
    lines = [RequestedLine("a", 1), RequestedLine("a", 0), RequestedLine("", 2)]
    got = fields(domain.validate_reserve("", lines, "05600"))
    assert got == {
        "order_id",
        "pincode",
        "lines[1].item_id",  # duplicate
        "lines[1].quantity",
        "lines[2].item_id",
    }


def test_reserve_needs_lines_and_caps_them() -> None:
    assert fields(domain.validate_reserve("o", [], "560001")) == {"lines"}
    many = [RequestedLine(f"i{n}", 1) for n in range(domain.MAX_LINES + 1)]
    assert fields(domain.validate_reserve("o", many, "560001")) == {"lines"}


@pytest.mark.parametrize("pincode", ["560001", "110001", "999999"])
def test_good_pincodes(pincode: str) -> None:
    assert domain.check_pincode("pincode", pincode) == []


@pytest.mark.parametrize("pincode", ["", "56000", "5600011", "056001", "56a001"])
def test_bad_pincodes(pincode: str) -> None:
    assert fields(domain.check_pincode("pincode", pincode)) == {"pincode"}


def test_set_stock_validation() -> None:
    assert domain.validate_set_stock("i", "w", 0, "r") == []
    assert fields(domain.validate_set_stock("", "w x", -1, "x" * 200)) == {
        "item_id",
        "warehouse_id",
        "available",
        "request_id",
    }


def test_choose_warehouse_prefers_fastest_with_enough_units() -> None:
    routes = ["fast", "medium", "slow"]
    assert domain.choose_warehouse(routes, {"fast": 5, "slow": 9}, 5) == "fast"
    assert domain.choose_warehouse(routes, {"fast": 4, "medium": 5, "slow": 9}, 5) == "medium"
    # A warehouse that does not serve the pincode is never chosen.
    assert domain.choose_warehouse(routes, {"elsewhere": 100, "slow": 1}, 2) is None
    # A line is not split, even when the sum would do.
    assert domain.choose_warehouse(routes, {"fast": 1, "medium": 1}, 2) is None
    assert domain.choose_warehouse([], {"fast": 1}, 1) is None
    assert domain.serviceable_units(routes, {"fast": 1, "medium": 3, "other": 99}) == 3


@given(
    routes=st.lists(st.sampled_from("abcdef"), unique=True, max_size=6),
    available=st.dictionaries(st.sampled_from("abcdefg"), st.integers(0, 10)),
    quantity=st.integers(1, 10),
)
def test_choose_warehouse_properties(
    routes: list[str], available: dict[str, int], quantity: int
) -> None:
    chosen = domain.choose_warehouse(routes, available, quantity)
    enough = [w for w in routes if available.get(w, 0) >= quantity]
    assert chosen == (enough[0] if enough else None)


def test_lock_order_sorts_by_item() -> None:
    lines = [RequestedLine("c", 1), RequestedLine("a", 2), RequestedLine("b", 3)]
    assert [line.item_id for line in domain.lock_order(lines)] == ["a", "b", "c"]


def test_transition_deltas() -> None:
    assert domain.reserve_delta(3) == RowDelta(available=-3, reserved=3)
    assert domain.commit_delta(ReservationState.HELD, 3) == RowDelta(reserved=-3, sold=3)
    assert domain.commit_delta(ReservationState.COMMITTED, 3) is None
    with pytest.raises(TransitionRefused):
        domain.commit_delta(ReservationState.RELEASED, 3)
    assert domain.release_delta(ReservationState.HELD, 3) == RowDelta(reserved=-3, available=3)
    assert domain.release_delta(ReservationState.COMMITTED, 3) == RowDelta(sold=-3, available=3)
    assert domain.release_delta(ReservationState.RELEASED, 3) is None


def test_page_size_defaults_and_caps() -> None:
    assert domain.page_size(0) == domain.DEFAULT_PAGE_SIZE
    assert domain.page_size(5) == 5
    assert domain.page_size(10_000) == domain.MAX_PAGE_SIZE
    with pytest.raises(ValueError):
        domain.page_size(-1)


def test_page_token_round_trip_and_garbage() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert decode_page_token(encode_page_token(when, "order|1")) == (when, "order|1")
    with pytest.raises(ValueError):
        decode_page_token("garbage!")


# A model of one stock row driven only by the domain's deltas: whatever the
# sequence of reserve/commit/release calls, counters never go negative and
# available + reserved + sold never changes.
_ops = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "commit", "release"]), st.integers(0, 9), st.integers(1, 5)
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(initial=st.integers(0, 20), ops=_ops)
def test_unit_accounting_is_conserved(initial: int, ops: list[tuple[str, int, int]]) -> None:
    row = {"available": initial, "reserved": 0, "sold": 0}
    orders: dict[int, tuple[ReservationState, int]] = {}

    def apply(delta: RowDelta | None) -> None:
        if delta is None:
            return
        row["available"] += delta.available
        row["reserved"] += delta.reserved
        row["sold"] += delta.sold

    for op, order, qty in ops:
        current = orders.get(order)
        if op == "reserve":
            if current is not None or row["available"] < qty:
                continue  # idempotent retry, or refused for shortage
            apply(domain.reserve_delta(qty))
            orders[order] = (ReservationState.HELD, qty)
        elif current is None:
            continue
        elif op == "commit":
            try:
                apply(domain.commit_delta(current[0], current[1]))
            except TransitionRefused:
                continue
            orders[order] = (ReservationState.COMMITTED, current[1])
        else:
            apply(domain.release_delta(current[0], current[1]))
            orders[order] = (ReservationState.RELEASED, current[1])
        assert min(row.values()) >= 0
        assert sum(row.values()) == initial
        held = sum(q for s, q in orders.values() if s is ReservationState.HELD)
        sold = sum(q for s, q in orders.values() if s is ReservationState.COMMITTED)
        assert (row["reserved"], row["sold"]) == (held, sold)
