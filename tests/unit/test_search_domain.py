"""svc_search's pure rules: event folding in version order, request
validation, page tokens, the query body and facet decoding."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from ecom.catalog.v1 import catalog_pb2
from google.protobuf import struct_pb2
from google.type import money_pb2

from svc_search import domain

FIELDS = {"title": "Acme Phone", "price_paise": 1_499_900, "category": "mobiles"}


def stock_events() -> list[tuple[str, int, int, int]]:
    # (warehouse, available, item total, inventory version), in true order.
    return [("WH-BLR", 5, 5, 1), ("WH-DEL", 3, 8, 2), ("WH-BLR", 0, 3, 3), ("WH-DEL", 0, 0, 4),
            ("WH-MUM", 2, 2, 5)]


def fold_stock(doc: dict[str, Any], events: list[tuple[str, int, int, int]]) -> dict[str, Any]:
    for wh, avail, total, version in events:
        doc = domain.apply_stock(doc, wh, avail, total, version) or doc
    return doc


def test_stock_events_in_any_order_give_the_same_document() -> None:
    base = domain.apply_upsert(domain.empty_doc("i1"), FIELDS, 1)
    assert base is not None
    expected = fold_stock(base, stock_events())
    assert expected["warehouses"] == ["WH-MUM"] and expected["total_available"] == 2
    assert expected["listed"] and expected["in_stock"]
    for order in itertools.permutations(stock_events()):
        assert fold_stock(base, list(order)) == expected


def test_replayed_and_older_events_change_nothing() -> None:
    doc = domain.apply_upsert(domain.empty_doc("i1"), FIELDS, 2)
    assert doc is not None
    assert domain.apply_upsert(doc, {**FIELDS, "title": "old"}, 2) is None
    assert domain.apply_upsert(doc, {**FIELDS, "title": "old"}, 1) is None
    assert domain.apply_delete(doc, 1) is None
    doc = fold_stock(doc, stock_events()[:2])
    assert domain.apply_stock(doc, "WH-DEL", 3, 8, 2) is None
    assert domain.apply_stock(doc, "WH-BLR", 0, 0, 1) is None


def test_listed_needs_catalog_stock_and_no_delete() -> None:
    only_stock = domain.apply_stock(domain.empty_doc("i1"), "WH-BLR", 1, 1, 1)
    assert only_stock is not None and not only_stock["listed"]
    both = domain.apply_upsert(only_stock, FIELDS, 1)
    assert both is not None and both["listed"] and both["title"] == "Acme Phone"
    sold_out = domain.apply_stock(both, "WH-BLR", 0, 0, 2)
    assert sold_out is not None and not sold_out["listed"]
    restocked = domain.apply_stock(sold_out, "WH-BLR", 4, 4, 3)
    assert restocked is not None and restocked["listed"] and restocked["title"] == "Acme Phone"
    deleted = domain.apply_delete(restocked, 2)
    assert deleted is not None and not deleted["listed"]
    # An upsert older than the delete cannot resurrect it.
    assert domain.apply_upsert(deleted, FIELDS, 1) is None


def test_catalog_fields_from_an_item() -> None:
    attrs = struct_pb2.Struct()
    attrs.update({"color": "Black", "ram_gb": 8, "dual_sim": True, "bands": ["5G", "LTE"]})
    item = catalog_pb2.Item(
        item_id="i1", title="Phone", brand="Acme", category="mobiles", attributes=attrs,
        price=money_pb2.Money(currency_code="INR", units=999, nanos=500_000_000),
        image_urls=["https://x/1.jpg", "https://x/2.jpg"])
    f = domain.catalog_fields(item)
    assert f["price_paise"] == 99_950 and f["list_price_paise"] is None
    assert f["image_url"] == "https://x/1.jpg"
    assert f["attr_pairs"] == ["bands:5g", "bands:lte", "color:black", "dual_sim:true",
                               "ram_gb:8"]


def validate(**kw: Any) -> tuple[domain.SearchParams, list[str]]:
    args: dict[str, Any] = dict(query="", pincode="", category="", brands=(), min_price=0,
                                max_price=0, attribute_filters=(), sort="relevance",
                                page_size=0, deliverable_only=False)
    args.update(kw)
    params, bad = domain.validate(**args)
    return params, [v.field for v in bad]


@pytest.mark.parametrize(("kw", "field"), [
    (dict(pincode="012345"), "pincode"), (dict(pincode="5600011"), "pincode"),
    (dict(page_size=101), "page_size"), (dict(page_size=-1), "page_size"),
    (dict(min_price=-1), "min_price"), (dict(min_price=9, max_price=5), "max_price"),
    (dict(attribute_filters=["color"]), "attribute_filters[0]"),
    (dict(attribute_filters=["ok:1", "Bad Key:x"]), "attribute_filters[1]"),
])
def test_bad_requests_name_the_field(kw: dict[str, Any], field: str) -> None:
    assert validate(**kw)[1] == [field]


def test_attribute_filters_or_within_a_key_and_across_keys() -> None:
    params, bad = validate(attribute_filters=["color:Black", "ram_gb:8", "color:blue"],
                           max_price=999, min_price=500)
    assert not bad and params.page_size == 20
    filters = domain.search_body(params, None)["query"]["bool"]["filter"]
    assert {"terms": {"attr_pairs": ["color:black", "color:blue"]}} in filters
    assert {"terms": {"attr_pairs": ["ram_gb:8"]}} in filters
    # Whole rupees, inclusive: Rs 999.50 is out.
    assert {"range": {"price_paise": {"gte": 50_000, "lte": 99_900}}} in filters


def test_page_tokens_are_bound_to_the_request() -> None:
    params, _ = validate(query="phone", sort="price_asc")
    token = domain.encode_cursor([1500, "item-7"], 20, params)
    assert domain.decode_cursor(token, params) == ([1500, "item-7"], 20)
    # Page size and pincode may change between pages; the query may not.
    assert domain.decode_cursor(token, validate(query="phone", sort="price_asc",
                                                page_size=5, pincode="560001")[0])
    for other in (validate(query="phones", sort="price_asc")[0],
                  validate(query="phone", sort="price_desc")[0]):
        with pytest.raises(ValueError):
            domain.decode_cursor(token, other)
    with pytest.raises(ValueError):
        domain.decode_cursor("not a token", params)


def test_sorts_end_with_the_item_id() -> None:
    for sort in domain.SORTS:
        params, _ = validate(query="x", sort=sort)
        assert domain.sort_clause(params)[-1] == {"item_id": "asc"}
    assert domain.sort_clause(validate(sort="relevance")[0])[0] == {
        "create_time": {"order": "desc", "missing": "_last"}}


def test_facets_from_aggregations() -> None:
    aggs = {
        "brand": {"buckets": [{"key": "B", "doc_count": 1}, {"key": "A", "doc_count": 3}]},
        "price": {"buckets": [{"key": "0-500", "doc_count": 0},
                              {"key": "50000-", "doc_count": 2}]},
        "attributes": {"buckets": [{"key": "color:black", "doc_count": 2},
                                   {"key": "ram_gb:8", "doc_count": 1}]},
    }
    assert domain.facets_from_aggs(aggs) == [
        ("brand", [("A", 3), ("B", 1)]), ("price", [("50000-", 2)]),
        ("attributes.color", [("black", 2)]), ("attributes.ram_gb", [("8", 1)])]


def test_corrected_query() -> None:
    suggest = {"fix": [{"text": "acme", "options": []},
                       {"text": "phnoe", "options": [{"text": "phone", "score": 0.8}]}]}
    assert domain.corrected_query("acme phnoe", suggest) == "acme phone"
    assert domain.corrected_query("acme", {"fix": [{"text": "acme", "options": []}]}) == ""
