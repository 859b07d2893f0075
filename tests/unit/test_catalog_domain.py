"""Catalog rules without servers: category schemas, money, field masks,
feed parsing, feed row ordering and the demo generator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ecom.catalog.v1 import catalog_pb2

from svc_catalog import codec, demo, domain


def phone(**attrs: object) -> domain.ItemFields:
    return domain.ItemFields(
        title="Acme 5G", category="mobiles", price_paise=1_499_900,
        attributes={"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5, **attrs})


def fields_of(violations: list) -> set[str]:
    return {v.field for v in violations}


def test_every_category_has_a_schema_with_required_keys() -> None:
    assert len(domain.CATEGORY_SCHEMAS) >= 10
    for cat, schema in domain.CATEGORY_SCHEMAS.items():
        assert domain.SLUG_RE.match(cat)
        assert any(s.required for s in schema.values()), cat


def test_valid_phone_passes_and_bad_attributes_are_named() -> None:
    assert domain.validate_fields(phone(color="black", dual_sim=True)) == []
    got = domain.validate_fields(phone(ram_gb=64, color="chartreuse", dual_sim="yes",
                                       flux_capacitor=1))
    assert fields_of(got) == {"attributes.ram_gb", "attributes.color", "attributes.dual_sim",
                              "attributes.flux_capacitor"}
    missing = domain.validate_fields(domain.ItemFields(
        title="x", category="mobiles", price_paise=100, attributes={"ram_gb": 4}))
    assert fields_of(missing) == {"attributes.storage_gb", "attributes.screen_inches"}


def test_whole_numbers_only_where_the_schema_says_int() -> None:
    assert fields_of(domain.validate_fields(phone(ram_gb=7.5))) == {"attributes.ram_gb"}
    assert domain.normalize_attributes("mobiles", {"ram_gb": 8.0, "screen_inches": 6.0}) == {
        "ram_gb": 8, "screen_inches": 6.0}


def test_item_level_rules() -> None:
    bad = domain.ItemFields(title="", category="spaceships", price_paise=0,
                            list_price_paise=None, image_urls=("ftp://x",))
    assert fields_of(domain.validate_fields(bad)) == {"title", "category", "price",
                                                      "image_urls[0]"}
    cheap_mrp = domain.ItemFields(**{**phone().__dict__, "list_price_paise": 100})
    assert fields_of(domain.validate_fields(cheap_mrp)) == {"list_price"}


def test_money_is_inr_positive_and_in_paise() -> None:
    assert domain.money_to_paise("INR", 499, 500_000_000, "price") == (49_950, [])
    assert fields_of(domain.money_to_paise("USD", 1, 0, "price")[1]) == {"price.currency_code"}
    assert fields_of(domain.money_to_paise("INR", 1, 5, "price")[1]) == {"price.nanos"}
    assert fields_of(domain.money_to_paise("INR", -1, 0, "price")[1]) == {"price"}
    assert domain.paise_to_money(49_950) == (499, 500_000_000)


def test_mask_sets_fields_and_single_attribute_keys() -> None:
    current = phone(color="black")
    given = domain.ItemFields(title="New", price_paise=100, attributes={"ram_gb": 12})
    out = domain.apply_mask(current, given, ["title", "attributes.ram_gb", "attributes.color"])
    assert out.title == "New" and out.price_paise == current.price_paise
    assert out.attributes == {"ram_gb": 12, "storage_gb": 128, "screen_inches": 6.5}
    assert fields_of(domain.validate_mask(["version", "title"])) == {"update_mask"}


def test_feed_stamps_order_rows_by_submission_then_line() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC)
    assert domain.feed_stamp(t, 9) < domain.feed_stamp(t, 10)
    assert domain.feed_stamp(t, 99_999) < domain.feed_stamp(t + timedelta(milliseconds=1), 1)
    assert domain.supplier_item_id("s", "A") == domain.supplier_item_id("s", "A")
    assert domain.supplier_item_id("s", "A") != domain.supplier_item_id("t", "A")
    assert domain.ITEM_ID_RE.match(domain.supplier_item_id("s", "A"))


def _jsonl(*rows: object) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows)


def test_jsonl_feed_reports_bad_rows_by_line_and_keeps_good_ones() -> None:
    good = {"sku": "A1", "title": "Phone", "category": "mobiles",
            "price": {"currencyCode": "INR", "units": "499"},
            "attributes": {"ram_gb": 4, "storage_gb": 64, "screen_inches": 6}}
    content = _jsonl(good, "{oops", "", {**good, "sku": "A2", "itemId": "ignored"},
                     {**good, "sku": "A3", "colour": "red"},
                     {**good, "sku": "A4", "supplierId": "someone-else"},
                     {**good, "sku": ""})
    parsed = codec.parse_feed(catalog_pb2.FEED_FORMAT_JSONL, content, "acme")
    assert parsed.total_rows == 6
    assert [(line, f.sku, f.supplier_id) for line, f in parsed.valid] == [
        (1, "A1", "acme"), (4, "A2", "acme")]
    assert [(e.line_number, e.field) for e in parsed.errors] == [
        (2, ""), (5, ""), (6, "supplier_id"), (7, "sku")]
    assert parsed.errors[0].message.startswith("malformed JSON")


def test_csv_feed_types_cells_and_counts_quoted_newlines() -> None:
    content = ("sku,title,category,price,list_price,image_urls,attr.ram_gb,attr.storage_gb,"
               "attr.screen_inches,attr.dual_sim\n"
               'P1,"Phone, with\nnewline",mobiles,499.50,599,https://a/1.jpg|https://a/2.jpg,'
               "4,64,6.1,true\n"
               "P2,Phone,mobiles,abc,,,4,64,6.1,false\n"
               "P3,Phone,mobiles,10,,,4,64\n")
    parsed = codec.parse_feed(catalog_pb2.FEED_FORMAT_CSV, content, "acme")
    assert parsed.total_rows == 3
    (line, f), = parsed.valid
    assert line == 2 and f.price_paise == 49_950 and f.list_price_paise == 59_900
    assert f.attributes == {"ram_gb": 4, "storage_gb": 64, "screen_inches": 6.1,
                            "dual_sim": True}
    assert f.image_urls == ("https://a/1.jpg", "https://a/2.jpg")
    assert [(e.line_number, e.field) for e in parsed.errors] == [(4, "price"), (5, "")]


def test_csv_feed_with_unknown_columns_is_rejected_whole() -> None:
    for content in ("sku,title,category,price,colour\n", "sku,title\n", ""):
        try:
            codec.parse_feed(catalog_pb2.FEED_FORMAT_CSV, content, "acme")
        except codec.FeedRejected:
            continue
        raise AssertionError(f"accepted {content!r}")


def test_demo_catalog_is_deterministic_valid_and_broad() -> None:
    items = demo.demo_items()
    assert len(items) >= 5_000
    assert len({i.fields.category for i in items}) >= 10
    assert len({i.item_id for i in items}) == len(items)
    assert all(domain.validate_fields(i.fields) == [] for i in items)
    again = demo.demo_items(60)
    assert [i.fields for i in again] == [i.fields for i in items[:60]]
    stock = demo.demo_stock(items[0].item_id)
    assert stock == demo.demo_stock(items[0].item_id)
    assert set(stock) <= set(demo.WAREHOUSES)
