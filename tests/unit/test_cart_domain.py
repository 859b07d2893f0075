"""svc_cart.domain: limits, input checks and pricing, without I/O."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.errors import InvalidArgument
from svc_cart import domain
from svc_cart.domain import CatalogItem, Delivery, Limits, StoredLine

LIMITS = Limits()
T = datetime(2025, 3, 10, 10, 0, 0)
RUPEE = 1_000_000_000


def item(item_id: str, paise: int, active: bool = True) -> CatalogItem:
    return CatalogItem(item_id, f"title {item_id}", "", paise * 10_000_000, active)


def test_add_quantity_zero_means_one_and_limits_apply() -> None:
    assert domain.units_to_add(0, LIMITS) == 1
    assert domain.units_to_add(10, LIMITS) == 10
    for bad in (-1, 11):
        with pytest.raises(InvalidArgument) as err:
            domain.units_to_add(bad, LIMITS)
        assert err.value.violations[0].field == "quantity"


@given(st.integers(0, 10), st.integers(1, 10))
def test_a_line_never_exceeds_the_per_line_limit(current: int, adding: int) -> None:
    if current + adding <= LIMITS.max_line_quantity:
        assert domain.quantity_after_add(current, adding, LIMITS) == current + adding
    else:
        with pytest.raises(InvalidArgument) as err:
            domain.quantity_after_add(current, adding, LIMITS)
        assert err.value.reason == domain.LIMIT_REASON


def test_cart_and_wishlist_size_limits() -> None:
    small = Limits(max_line_quantity=3, max_cart_lines=2, max_wishlist_items=1)
    domain.check_cart_room(1, True, small)
    domain.check_cart_room(2, False, small)  # more units on an existing line: fine
    with pytest.raises(InvalidArgument):
        domain.check_cart_room(2, True, small)
    domain.check_wishlist_room(0, small)
    with pytest.raises(InvalidArgument):
        domain.check_wishlist_room(1, small)
    assert domain.check_new_quantity(0, small) == 0
    with pytest.raises(InvalidArgument):
        domain.check_new_quantity(4, small)


def test_id_request_id_and_pincode_checks() -> None:
    assert domain.check_id("item_id", "")[0].description == "is required"
    assert domain.check_id("item_id", "a b")
    assert domain.check_id("item_id", "itm_01HZ-9") == []
    assert domain.check_request_id("") == []  # mesh gives a keyless call a fresh key
    assert domain.check_request_id("x" * 129)
    assert domain.check_pincode("") == [] and domain.check_pincode("560001") == []
    assert domain.check_pincode("056000") and domain.check_pincode("5600")
    with pytest.raises(InvalidArgument) as err:
        domain.require(domain.check_id("user_id", ""), domain.check_request_id("x" * 129))
    assert [v.field for v in err.value.violations] == ["user_id", "request_id"]


def test_fingerprint_tells_requests_apart() -> None:
    assert domain.fingerprint("cart.add", "a", 1) == domain.fingerprint("cart.add", "a", 1)
    assert domain.fingerprint("cart.add", "a", 1) != domain.fingerprint("cart.add", "a", 2)
    assert domain.fingerprint("cart.add", "a") != domain.fingerprint("wishlist.add", "a")


def test_price_cart_totals_available_lines_only() -> None:
    lines = [StoredLine("a", 2, T), StoredLine("b", 3, T), StoredLine("gone", 1, T),
             StoredLine("never", 1, T)]
    items = {"a": item("a", 149_99), "b": item("b", 10_01), "gone": item("gone", 500, False)}
    ok = Delivery(deliverable=True, eta_days=2, warehouse_id="WH-BLR")
    deliveries = {"a": ok, "b": ok, "gone": Delivery(False, reason=2), "never": ok}
    cart = domain.price_cart(lines, items, frozenset({"never"}), "560001", deliveries)
    assert cart.total_nanos == (2 * 149_99 + 3 * 10_01) * 10_000_000
    assert cart.item_count == 5 and cart.priced and cart.all_deliverable
    by_id = {ln.item_id: ln for ln in cart.lines}
    assert by_id["a"].line_total_nanos == 2 * 149_99 * 10_000_000
    assert not by_id["gone"].available and not by_id["never"].available
    assert [ln.item_id for ln in cart.lines] == ["a", "b", "gone", "never"]


def test_catalog_down_leaves_the_cart_readable_but_unpriced() -> None:
    cart = domain.price_cart([StoredLine("a", 2, T)], None, frozenset(), "560001", None)
    (line,) = cart.lines
    assert not cart.priced and cart.total_nanos == 0 and cart.item_count == 2
    assert line.available and line.unit_price_nanos is None
    assert line.delivery == Delivery(False, reason=domain.ESTIMATE_UNAVAILABLE)
    assert not cart.all_deliverable


def test_no_pincode_means_no_estimates() -> None:
    cart = domain.price_cart([StoredLine("a", 1, T)], {"a": item("a", 100)}, frozenset(), "", {})
    assert cart.lines[0].delivery is None and not cart.all_deliverable


@given(st.lists(st.tuples(st.integers(1, 10), st.integers(1, 10**9)), max_size=50))
def test_total_is_the_exact_sum_of_line_totals(spec: list[tuple[int, int]]) -> None:
    lines = [StoredLine(f"i{n}", q, T) for n, (q, _) in enumerate(spec)]
    items = {f"i{n}": item(f"i{n}", p) for n, (_, p) in enumerate(spec)}
    cart = domain.price_cart(lines, items, frozenset(), "", None)
    assert cart.total_nanos == sum(q * p for q, p in spec) * 10_000_000
    assert cart.total_nanos == sum(ln.line_total_nanos or 0 for ln in cart.lines)
    assert cart.item_count == sum(q for q, _ in spec)


def test_price_wishlist() -> None:
    saved = [("a", T), ("b", T), ("c", T)]
    entries = domain.price_wishlist(saved, {"a": item("a", 100), "b": item("b", 5, False)})
    assert [e.available for e in entries] == [True, False, False]
    assert entries[0].price_nanos == RUPEE
    unpriced = domain.price_wishlist(saved, None)
    assert all(e.available and e.price_nanos is None for e in unpriced)
