"""Pure rules of search: what an indexed item looks like, how catalog and
stock events merge into it in version order, and how a search request
becomes an Elasticsearch query and comes back as hits and facets.

No I/O here: the store reads and writes documents, the service decides.

The index document of one item (``_id`` = item id) carries two independent
version streams, because catalog and inventory number their events
separately:

* ``catalog_version``: the item version of the newest ItemUpserted or
  ItemDeleted applied; an event with a version at or below it is stale.
* stock: per warehouse, the inventory ``entity_version`` (the sum of the
  item's row versions, which grows by one per stock change of the item) of
  the newest StockChanged for that warehouse, and for the item as a whole
  the newest one seen (``stock_version``), which decides
  ``total_available``. So an older event for warehouse A that arrives after
  a newer one for warehouse B still updates A, and nothing older ever
  overwrites something newer.

Replaying an event therefore changes nothing, and a document can be built
from events in any order. ``listed`` (what search filters on) is derived on
every change: known to the catalog, not deleted, and in stock somewhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ecom.catalog.v1 import catalog_pb2
from ecom.common.v1 import common_pb2
from google.protobuf import json_format

from mesh import money, validation
from mesh.errors import FieldViolation

PAISE_PER_RUPEE = 100
NANOS_PER_PAISA = 10_000_000
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_FACET_VALUES = 20
PINCODE = validation.PINCODE
ATTRIBUTE_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
# Rupee buckets of the price facet; the last one is open-ended.
PRICE_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (0, 500), (500, 1000), (1000, 2000), (2000, 5000), (5000, 10000), (10000, 20000),
    (20000, 50000), (50000, None),
)

# Bump when MAPPINGS change: start-up then builds items-v<N+1> from the
# current index and swaps the alias (see store.SearchIndex.ensure).
SCHEMA_VERSION = 1

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "_meta": {"schema_version": SCHEMA_VERSION},
    "properties": {
        "item_id": {"type": "keyword"},
        # Full text (standard analyzer: the integ-test build has no other);
        # everything searchable is also copied into all_text, which the
        # query requires every word to match (operator and) with fuzziness.
        "title": {"type": "text", "copy_to": "all_text"},
        "description": {"type": "text", "copy_to": "all_text"},
        "brand": {"type": "text", "copy_to": "all_text",
                  "fields": {"raw": {"type": "keyword"}}},
        "attr_text": {"type": "text", "copy_to": "all_text"},
        "all_text": {"type": "text"},
        "category": {"type": "keyword"},
        # "key:value" pairs, lowercase: attribute filters and facets.
        "attr_pairs": {"type": "keyword"},
        # Paise: scaled_float lives in mapper-extras, absent from the build.
        "price_paise": {"type": "long"},
        "list_price_paise": {"type": "long"},
        "image_url": {"type": "keyword", "index": False},
        "create_time": {"type": "date"},
        "update_time": {"type": "date"},
        "catalog_version": {"type": "long"},
        "deleted": {"type": "boolean"},
        "stock_version": {"type": "long"},
        "total_available": {"type": "long"},
        # {warehouse_id: {"available": n, "version": v}}: bookkeeping only.
        "stock": {"type": "object", "enabled": False},
        # Warehouses holding at least one unit.
        "warehouses": {"type": "keyword"},
        "in_stock": {"type": "boolean"},
        "listed": {"type": "boolean"},
    },
}


# ---------------------------------------------------------------------------
# Index documents and events
# ---------------------------------------------------------------------------


def empty_doc(item_id: str) -> dict[str, Any]:
    """A document nothing has been applied to yet."""
    return {"item_id": item_id, "catalog_version": 0, "deleted": False, "stock_version": 0,
            "total_available": 0, "stock": {}, "warehouses": [], "in_stock": False,
            "listed": False}


def _attr_value_text(value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    if isinstance(value, int | float):
        return [str(value)]
    if isinstance(value, list):
        return [v for x in value for v in _attr_value_text(x)]
    return [str(value)]


def attribute_pairs(attributes: Mapping[str, Any]) -> list[str]:
    """``{"color": "Black", "ram_gb": 8.0}`` -> ``["color:black", "ram_gb:8"]``
    (lowercase; a list value gives one pair per element)."""
    return sorted({f"{k.lower()}:{v.lower()}" for k, val in attributes.items()
                   for v in _attr_value_text(val)})


def _paise(value: Any) -> int:
    return money.paise_of(value)


def catalog_fields(item: catalog_pb2.Item) -> dict[str, Any]:
    """The catalog part of an index document, from the item in an event."""
    attributes = json_format.MessageToDict(item.attributes) if item.HasField("attributes") else {}
    fields: dict[str, Any] = {
        "title": item.title,
        "description": item.description,
        "brand": item.brand,
        "category": item.category,
        "price_paise": _paise(item.price),
        "list_price_paise": _paise(item.list_price) if item.HasField("list_price") else None,
        "image_url": item.image_urls[0] if item.image_urls else "",
        "attr_pairs": attribute_pairs(attributes),
        "attr_text": " ".join(v for val in attributes.values() for v in _attr_value_text(val)
                              if not isinstance(val, bool | int | float)),
        "create_time": _iso(item.create_time.ToDatetime(UTC)) if item.HasField(
            "create_time") else None,
        "update_time": _iso(item.update_time.ToDatetime(UTC)) if item.HasField(
            "update_time") else None,
    }
    return fields


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _relist(doc: dict[str, Any]) -> dict[str, Any]:
    doc["listed"] = bool(doc["catalog_version"] > 0 and not doc["deleted"] and doc["in_stock"])
    return doc


def apply_upsert(doc: dict[str, Any], fields: Mapping[str, Any],
                 version: int) -> dict[str, Any] | None:
    """The document after an ItemUpserted at ``version``; None when stale."""
    if version <= doc["catalog_version"]:
        return None
    return _relist({**doc, **fields, "catalog_version": version, "deleted": False})


def apply_delete(doc: dict[str, Any], version: int) -> dict[str, Any] | None:
    """The document after an ItemDeleted at ``version``; None when stale. The
    document stays as a tombstone so an older upsert cannot bring it back."""
    if version <= doc["catalog_version"]:
        return None
    return _relist({**doc, "catalog_version": version, "deleted": True})


def apply_stock(doc: dict[str, Any], warehouse_id: str, available: int, total_available: int,
                version: int) -> dict[str, Any] | None:
    """The document after a StockChanged at inventory ``version``; None when
    it changes nothing (stale for its warehouse and for the item total)."""
    stock = dict(doc.get("stock") or {})
    known = stock.get(warehouse_id)
    changed = False
    if known is None or version > known["version"]:
        stock[warehouse_id] = {"available": available, "version": version}
        changed = True
    new = {**doc, "stock": stock}
    if version > doc["stock_version"]:
        new["stock_version"] = version
        new["total_available"] = total_available
        changed = True
    if not changed:
        return None
    new["warehouses"] = sorted(w for w, s in stock.items() if s["available"] > 0)
    new["in_stock"] = new["total_available"] > 0
    return _relist(new)


# ---------------------------------------------------------------------------
# Search requests
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchParams:
    """A validated search request (prices in whole rupees, 0 = no bound)."""

    query: str = ""
    pincode: str = ""
    category: str = ""
    brands: tuple[str, ...] = ()
    min_price: int = 0
    max_price: int = 0
    attribute_filters: tuple[str, ...] = ()
    sort: str = "relevance"  # relevance | price_asc | price_desc | newest
    page_size: int = DEFAULT_PAGE_SIZE
    deliverable_only: bool = False
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)


SORTS = ("relevance", "price_asc", "price_desc", "newest")


def _price_range_violations(min_price: int, max_price: int) -> list[FieldViolation]:
    bad: list[FieldViolation] = []
    if min_price < 0:
        bad.append(FieldViolation("min_price", "must not be negative"))
    if max_price < 0:
        bad.append(FieldViolation("max_price", "must not be negative"))
    if min_price and max_price and min_price > max_price:
        bad.append(FieldViolation("max_price", "must be at least min_price"))
    return bad


def _attribute_filters(
    attribute_filters: Sequence[str], bad: list[FieldViolation]
) -> dict[str, list[str]]:
    """``key:value`` filters grouped by key; each malformed one is added to
    ``bad``."""
    attrs: dict[str, list[str]] = {}
    for i, f in enumerate(attribute_filters):
        key, sep, value = f.partition(":")
        key, value = key.strip().lower(), value.strip().lower()
        if not sep or not ATTRIBUTE_KEY.match(key) or not value:
            bad.append(FieldViolation(f"attribute_filters[{i}]",
                                      "must be key:value, e.g. color:black"))
            continue
        attrs.setdefault(key, []).append(value)
    return attrs


def validate(query: str, pincode: str, category: str, brands: Sequence[str], min_price: int,
             max_price: int, attribute_filters: Sequence[str], sort: str, page_size: int,
             deliverable_only: bool) -> tuple[SearchParams, list[FieldViolation]]:
    """Check a request; returns the normalised parameters and every bad
    field (the parameters are meaningless when there are violations)."""
    bad: list[FieldViolation] = []
    query = query.strip()
    if len(query) > 200:
        bad.append(FieldViolation("query", "must be at most 200 characters"))
    pincode = pincode.strip()
    if pincode and not PINCODE.match(pincode):
        bad.append(FieldViolation("pincode", "must be six digits, the first 1-9"))
    bad += _price_range_violations(min_price, max_price)
    if page_size == 0:
        page_size = DEFAULT_PAGE_SIZE
    elif not 1 <= page_size <= MAX_PAGE_SIZE:
        bad.append(FieldViolation("page_size", f"must be between 1 and {MAX_PAGE_SIZE}"))
    if sort not in SORTS:
        bad.append(FieldViolation("sort", "unknown sort"))
    attrs = _attribute_filters(attribute_filters, bad)
    params = SearchParams(
        query=query, pincode=pincode, category=category.strip(),
        brands=tuple(b for b in (x.strip() for x in brands) if b),
        min_price=min_price, max_price=max_price,
        attribute_filters=tuple(attribute_filters), sort=sort, page_size=page_size,
        deliverable_only=deliverable_only,
        attributes={k: tuple(sorted(set(v))) for k, v in sorted(attrs.items())})
    return params, bad


def request_hash(p: SearchParams) -> str:
    """What a page token is bound to: everything that shapes the result set
    and its order (not the page size or the pincode, which only annotate)."""
    shape = [p.query, p.category, sorted(p.brands), p.min_price, p.max_price,
             sorted(p.attributes.items()), p.sort, p.deliverable_only]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:32]


def encode_cursor(search_after: Sequence[Any], offset: int, p: SearchParams) -> str:
    """The next page token: base64url (no padding) of a PageCursor."""
    cursor = common_pb2.PageCursor(
        search_after=[json.dumps(v) for v in search_after], offset=offset,
        request_hash=request_hash(p))
    return base64.urlsafe_b64encode(cursor.SerializeToString()).rstrip(b"=").decode()


def decode_cursor(token: str, p: SearchParams) -> tuple[list[Any], int]:
    """(search_after values, rows already returned) from a page token;
    ValueError when it is malformed or was issued for another request."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = common_pb2.PageCursor.FromString(raw)
        values = [json.loads(v) for v in cursor.search_after]
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not a page token of this API") from exc
    except Exception as exc:  # protobuf DecodeError
        raise ValueError("is not a page token of this API") from exc
    if not values or cursor.request_hash != request_hash(p):
        raise ValueError("was issued for a different query, filters or sort")
    return values, int(cursor.offset)


def _filters(p: SearchParams) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"term": {"listed": True}}]
    if p.category:
        out.append({"term": {"category": p.category}})
    if p.brands:
        out.append({"terms": {"brand.raw": list(p.brands)}})
    price: dict[str, int] = {}
    if p.min_price:
        price["gte"] = p.min_price * PAISE_PER_RUPEE
    if p.max_price:
        price["lte"] = p.max_price * PAISE_PER_RUPEE
    if price:
        out.append({"range": {"price_paise": price}})
    for key, values in p.attributes.items():
        # Same key OR-ed (one terms clause), different keys AND-ed.
        out.append({"terms": {"attr_pairs": [f"{key}:{v}" for v in values]}})
    return out


def sort_clause(p: SearchParams) -> list[Any]:
    """Elasticsearch sort; always ends with item_id so search_after is exact."""
    tie = {"item_id": "asc"}
    if p.sort == "price_asc":
        return [{"price_paise": "asc"}, tie]
    if p.sort == "price_desc":
        return [{"price_paise": "desc"}, tie]
    if p.sort == "newest" or not p.query:
        return [{"create_time": {"order": "desc", "missing": "_last"}}, tie]
    return [{"_score": "desc"}, {"create_time": {"order": "desc", "missing": "_last"}}, tie]


def text_query(text: str) -> dict[str, Any]:
    """Every word must match somewhere (fuzzily); title, then brand, weigh
    most in the score."""
    return {
        "bool": {
            "must": [{"match": {"all_text": {"query": text, "operator": "and",
                                             "fuzziness": "AUTO", "prefix_length": 1}}}],
            "should": [{"multi_match": {
                "query": text, "type": "best_fields", "fuzziness": "AUTO",
                "fields": ["title^3", "brand^2", "description", "attr_text"]}}],
        }
    }


def search_body(p: SearchParams, search_after: Sequence[Any] | None,
                with_facets: bool = True) -> dict[str, Any]:
    """The Elasticsearch request body for one page (one extra hit is asked
    for to tell whether another page follows)."""
    query: dict[str, Any] = {"bool": {"filter": _filters(p)}}
    if p.query:
        query["bool"]["must"] = [text_query(p.query)]
    body: dict[str, Any] = {
        "query": query,
        "sort": sort_clause(p),
        "size": p.page_size + 1,
        "track_total_hits": True,
        "_source": ["item_id", "title", "brand", "category", "price_paise",
                    "list_price_paise", "image_url"],
    }
    if search_after:
        body["search_after"] = list(search_after)
    if with_facets:
        body["aggs"] = {
            "category": {"terms": {"field": "category", "size": MAX_FACET_VALUES}},
            "brand": {"terms": {"field": "brand.raw", "size": MAX_FACET_VALUES}},
            "price": {"range": {"field": "price_paise", "keyed": False, "ranges": [
                {"key": price_bucket_key(lo, hi), "from": lo * PAISE_PER_RUPEE,
                 **({"to": hi * PAISE_PER_RUPEE} if hi is not None else {})}
                for lo, hi in PRICE_BUCKETS]}},
        }
        if p.category:
            # Attributes are only comparable within one category.
            body["aggs"]["attributes"] = {"terms": {"field": "attr_pairs", "size": 500}}
    if p.query:
        body["suggest"] = {"text": p.query,
                           "fix": {"term": {"field": "all_text", "suggest_mode": "missing"}}}
    return body


def price_bucket_key(lo: int, hi: int | None) -> str:
    """``"500-1000"``; the open-ended bucket ``"50000-"``."""
    return f"{lo}-{hi}" if hi is not None else f"{lo}-"


def facets_from_aggs(aggs: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, int]]]]:
    """(field, [(value, count)]) per facet, values by count descending (ties
    by value), zero counts dropped, at most MAX_FACET_VALUES each."""
    out: list[tuple[str, list[tuple[str, int]]]] = []

    def top(pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        kept = [(v, c) for v, c in pairs if c > 0]
        return sorted(kept, key=lambda vc: (-vc[1], vc[0]))[:MAX_FACET_VALUES]

    for name in ("category", "brand"):
        if name in aggs:
            out.append((name, top((b["key"], b["doc_count"]) for b in aggs[name]["buckets"])))
    if "price" in aggs:
        out.append(("price", top((b["key"], b["doc_count"]) for b in aggs["price"]["buckets"])))
    if "attributes" in aggs:
        by_key: dict[str, list[tuple[str, int]]] = {}
        for b in aggs["attributes"]["buckets"]:
            key, _, value = str(b["key"]).partition(":")
            by_key.setdefault(key, []).append((value, b["doc_count"]))
        for key in sorted(by_key):
            out.append((f"attributes.{key}", top(by_key[key])))
    return out


def corrected_query(query: str, suggest: Mapping[str, Any] | None) -> str:
    """The query with each unknown word replaced by the engine's best
    suggestion; empty when nothing was corrected."""
    if not suggest or "fix" not in suggest:
        return ""
    words, changed = [], False
    for token in suggest["fix"]:
        options = token.get("options") or []
        if options:
            words.append(options[0]["text"])
            changed = True
        else:
            words.append(token["text"])
    return " ".join(words) if changed else ""


# (units, nanos) of a google.type.Money for ``paise`` (mesh.money).
rupees = money.paise_parts


