"""svc_cart.api translation: priced carts and wishlists to proto."""

from __future__ import annotations

from datetime import datetime

from ecom.common.v1 import common_pb2
from google.type import money_pb2

from svc_cart import api, domain
from svc_cart.domain import CatalogItem, Delivery, StoredLine
from svc_cart.service import PricedWishlist

T = datetime(2025, 3, 10, 4, 30, 0)


def test_cart_to_proto_carries_money_estimates_and_flags() -> None:
    items = {"a": CatalogItem("a", "Phone", "https://i/a.jpg", 149_990_000_000, True)}
    ok = Delivery(True, eta_days=2, promised=(2025, 3, 12), warehouse_id="WH-BLR")
    cart = domain.price_cart([StoredLine("a", 3, T)], items, frozenset(), "560001", {"a": ok}, T)
    msg = api.cart_to_proto("u-1", cart)
    line = msg.lines[0]
    assert line.unit_price == money_pb2.Money(currency_code="INR", units=149, nanos=990_000_000)
    assert msg.total == money_pb2.Money(currency_code="INR", units=449, nanos=970_000_000)
    assert line.delivery.pincode == "560001" and line.delivery.warehouse_id == "WH-BLR"
    assert (line.delivery.promised_date.year, line.delivery.promised_date.day) == (2025, 12)
    assert msg.priced and msg.all_deliverable and msg.item_count == 3
    assert msg.update_time.ToDatetime() == T and line.add_time.ToDatetime() == T


def test_unpriced_cart_leaves_prices_unset() -> None:
    cart = domain.price_cart([StoredLine("a", 1, T)], None, frozenset(), "560001", None)
    msg = api.cart_to_proto("u-1", cart)
    assert not msg.lines[0].HasField("unit_price") and not msg.lines[0].HasField("line_total")
    assert msg.total == money_pb2.Money(currency_code="INR")
    assert msg.lines[0].delivery.reason == common_pb2.UNDELIVERABLE_REASON_ESTIMATE_UNAVAILABLE
    assert not msg.priced and not msg.HasField("update_time")


def test_wishlist_to_proto() -> None:
    entries = domain.price_wishlist(
        [("a", T), ("b", T)], {"a": CatalogItem("a", "Phone", "", 99_000_000_000, True)})
    msg = api.wishlist_to_proto(PricedWishlist("u-1", tuple(entries), None))
    assert [i.item_id for i in msg.items] == ["a", "b"]
    assert msg.items[0].price.units == 99 and not msg.items[1].HasField("price")
    assert not msg.items[1].available
