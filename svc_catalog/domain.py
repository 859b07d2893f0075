"""The catalog's rules, without I/O: what an item is, which attributes each
category accepts, how a field mask changes an item, and how a feed row is
ordered against the item it updates.

Validation returns :class:`mesh.errors.FieldViolation` lists with paths
relative to the item (``title``, ``price``, ``attributes.ram_gb``); the API
prefixes ``item.`` and feeds report them per row.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any

from mesh import money
from mesh.errors import FieldViolation

CURRENCY = "INR"
MAX_TITLE = 200
MAX_DESCRIPTION = 5_000
MAX_IMAGES = 10
MAX_BRAND = 100
MAX_SKU = 64
MAX_BATCH_GET = 500
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

ITEM_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
SLUG_RE = re.compile(r"^[a-z0-9-]{1,64}$")
ATTR_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SUPPLIER_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SKU_RE = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")

# Namespace for ids derived from (supplier, sku) and (supplier, request id):
# a replayed feed row or a retried feed maps to the same item or feed.
ID_NAMESPACE = uuid.UUID("6f1b7c2e-9a51-4c1e-8d0b-3f2a6a1c0e55")

# Fields UpdateItem may change (the proto names them the same).
MUTABLE_FIELDS = (
    "title",
    "description",
    "category",
    "brand",
    "price",
    "list_price",
    "attributes",
    "image_urls",
)


class ItemState(Enum):
    """Lifecycle of an item (mirrors ecom.catalog.v1.ItemState)."""

    ACTIVE = "active"
    DELETED = "deleted"


# --------------------------------------------------------------------------
# Per-category attribute schemas
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeSpec:
    """Rules for one attribute key. ``kind`` is one of ``int``, ``number``,
    ``str``, ``bool``, ``list`` (a list of strings)."""

    kind: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: frozenset[str] | None = None
    max_length: int = 100

    def check(self, value: Any) -> str | None:
        """Why ``value`` breaks this rule, or None when it is fine."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind in ("int", "number"):
            return self._check_number(value)
        if self.kind == "str":
            return self._check_str(value)
        if self.kind == "list":
            return self._check_list(value)
        raise AssertionError(f"unknown attribute kind {self.kind}")

    def _check_number(self, value: Any) -> str | None:
        # bool is an int subclass in Python; JSON true is not a number here.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if self.kind == "int" and float(value) != int(value):
            return "must be a whole number"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {_num(self.minimum)}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {_num(self.maximum)}"
        return None

    def _check_str(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return "must be a non-empty string"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters"
        if self.choices is not None and value not in self.choices:
            return f"must be one of {', '.join(sorted(self.choices))}"
        return None

    def _check_list(self, value: Any) -> str | None:
        if not isinstance(value, list) or not value:
            return "must be a non-empty list of strings"
        for v in value:
            if not isinstance(v, str) or not v.strip():
                return "must be a non-empty list of strings"
            if self.choices is not None and v not in self.choices:
                return f"values must be among {', '.join(sorted(self.choices))}"
        return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _int(lo: float, hi: float, *, required: bool = False) -> AttributeSpec:
    return AttributeSpec("int", required=required, minimum=lo, maximum=hi)


def _number(lo: float, hi: float, *, required: bool = False) -> AttributeSpec:
    return AttributeSpec("number", required=required, minimum=lo, maximum=hi)


def _choice(*values: str, required: bool = False) -> AttributeSpec:
    return AttributeSpec("str", required=required, choices=frozenset(values))


def _text(*, required: bool = False, max_length: int = 100) -> AttributeSpec:
    return AttributeSpec("str", required=required, max_length=max_length)


def _flag() -> AttributeSpec:
    return AttributeSpec("bool")


def _tags(*values: str) -> AttributeSpec:
    return AttributeSpec("list", choices=frozenset(values) if values else None)


COLORS = (
    "black", "white", "grey", "silver", "gold", "blue", "navy", "red", "maroon", "green",
    "olive", "yellow", "orange", "pink", "purple", "brown", "beige", "multicolor",
)
APPAREL_SIZES = ("XS", "S", "M", "L", "XL", "XXL", "3XL", "free")

CATEGORY_SCHEMAS: dict[str, dict[str, AttributeSpec]] = {
    "mobiles": {
        "ram_gb": _int(1, 32, required=True),
        "storage_gb": _int(8, 2048, required=True),
        "screen_inches": _number(3.0, 8.5, required=True),
        "color": _choice(*COLORS),
        "network": _choice("4G", "5G"),
        "os": _choice("android", "ios"),
        "battery_mah": _int(1000, 10000),
        "rear_camera_mp": _int(2, 200),
        "dual_sim": _flag(),
    },
    "laptops": {
        "ram_gb": _int(2, 128, required=True),
        "storage_gb": _int(64, 8192, required=True),
        "storage_type": _choice("ssd", "hdd", "emmc"),
        "screen_inches": _number(10.0, 18.5, required=True),
        "processor": _text(required=True),
        "os": _choice("windows", "macos", "chromeos", "linux", "dos"),
        "weight_kg": _number(0.5, 5.0),
        "color": _choice(*COLORS),
        "touchscreen": _flag(),
    },
    "televisions": {
        "screen_inches": _int(19, 100, required=True),
        "resolution": _choice("hd", "full-hd", "4k", "8k", required=True),
        "panel": _choice("led", "qled", "oled", "mini-led"),
        "smart_tv": _flag(),
        "refresh_rate_hz": _int(50, 240),
        "hdmi_ports": _int(0, 6),
    },
    "apparel": {
        "size": _choice(*APPAREL_SIZES, required=True),
        "color": _choice(*COLORS, required=True),
        "material": _choice(
            "cotton", "polyester", "linen", "silk", "wool", "denim", "rayon", "blend",
            required=True,
        ),
        "gender": _choice("men", "women", "unisex", "boys", "girls"),
        "fit": _choice("slim", "regular", "relaxed", "oversized"),
        "sleeve": _choice("sleeveless", "short", "three-quarter", "full"),
        "pattern": _choice("solid", "striped", "checked", "printed", "embroidered"),
    },
    "footwear": {
        "size_uk": _number(1, 14, required=True),
        "color": _choice(*COLORS, required=True),
        "gender": _choice("men", "women", "unisex", "boys", "girls"),
        "type": _choice("sneakers", "running", "formal", "sandals", "slippers", "boots",
                        required=True),
        "material": _choice("leather", "synthetic", "mesh", "canvas", "rubber", "suede"),
    },
    "books": {
        "author": _text(required=True, max_length=200),
        "language": _choice("english", "hindi", "tamil", "telugu", "bengali", "marathi",
                            "kannada", "malayalam", required=True),
        "format": _choice("paperback", "hardcover", "ebook"),
        "pages": _int(1, 5000),
        "publisher": _text(max_length=200),
        "isbn": _text(max_length=17),
        "genre": _tags(),
    },
    "furniture": {
        "material": _choice("sheesham", "teak", "engineered-wood", "metal", "plastic",
                            "cane", "glass", required=True),
        "color": _choice(*COLORS),
        "width_cm": _int(10, 400),
        "depth_cm": _int(10, 400),
        "height_cm": _int(10, 300),
        "assembly_required": _flag(),
        "seating_capacity": _int(1, 12),
    },
    "kitchen-appliances": {
        "type": _choice("mixer-grinder", "microwave", "induction", "kettle", "toaster",
                        "air-fryer", "refrigerator", "water-purifier", required=True),
        "power_watts": _int(10, 5000, required=True),
        "capacity_litres": _number(0.1, 700),
        "color": _choice(*COLORS),
        "warranty_years": _int(0, 10),
        "energy_rating": _int(1, 5),
    },
    "beauty": {
        "type": _choice("lipstick", "foundation", "moisturizer", "shampoo", "face-wash",
                        "perfume", "sunscreen", "serum", required=True),
        "volume_ml": _number(1, 2000),
        "skin_type": _choice("all", "dry", "oily", "combination", "sensitive"),
        "spf": _int(0, 100),
        "shade": _text(max_length=50),
        "vegan": _flag(),
    },
    "toys": {
        "age_min_years": _int(0, 18, required=True),
        "type": _choice("building-blocks", "puzzle", "board-game", "doll", "remote-control",
                        "soft-toy", "educational", required=True),
        "material": _choice("plastic", "wood", "fabric", "metal", "cardboard"),
        "battery_operated": _flag(),
        "pieces": _int(1, 10000),
    },
    "groceries": {
        "weight_g": _int(1, 50000, required=True),
        "type": _choice("staples", "snacks", "beverages", "spices", "dairy", "dry-fruits",
                        "oils", required=True),
        "veg": _flag(),
        "organic": _flag(),
        "shelf_life_days": _int(1, 1825),
    },
    "headphones": {
        "type": _choice("in-ear", "on-ear", "over-ear", "earbuds", required=True),
        "wireless": _flag(),
        "noise_cancelling": _flag(),
        "battery_hours": _int(1, 100),
        "color": _choice(*COLORS),
    },
}

CATEGORIES = tuple(sorted(CATEGORY_SCHEMAS))


def validate_attributes(category: str, attributes: Mapping[str, Any]) -> list[FieldViolation]:
    """Check ``attributes`` against ``category``'s schema: known keys, value
    types, ranges and allowed values, required keys present."""
    schema = CATEGORY_SCHEMAS.get(category)
    if schema is None:
        return []  # the unknown category itself is reported by validate_item
    out: list[FieldViolation] = []
    for key, value in attributes.items():
        path = f"attributes.{key}"
        spec = schema.get(key)
        if spec is None:
            out.append(FieldViolation(
                path, f"unknown attribute for category {category!r}; "
                      f"known: {', '.join(sorted(schema))}"))
            continue
        if isinstance(value, dict):
            out.append(FieldViolation(path, "nested objects are not allowed"))
            continue
        problem = spec.check(value)
        if problem:
            out.append(FieldViolation(path, problem))
    for key, spec in schema.items():
        if spec.required and key not in attributes:
            out.append(FieldViolation(
                f"attributes.{key}", f"is required for category {category!r}"))
    return out


# --------------------------------------------------------------------------
# Money
# --------------------------------------------------------------------------


def money_to_paise(currency_code: str, units: int, nanos: int, path: str) -> tuple[
        int | None, list[FieldViolation]]:
    """google.type.Money parts -> whole paise, or the violations (mesh.money)."""
    out = money.inr_violations(path, currency_code, units, nanos)
    if out:
        return None, out
    paise = units * 100 + nanos // 10_000_000
    if paise <= 0:
        return None, [FieldViolation(path, "must be positive")]
    return paise, []


# Whole paise -> (units, nanos) of google.type.Money (mesh.money).
paise_to_money = money.paise_parts


# --------------------------------------------------------------------------
# The item
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemFields:
    """The client-writable part of an item (what Create and feeds give)."""

    title: str = ""
    description: str = ""
    category: str = ""
    brand: str = ""
    price_paise: int = 0
    list_price_paise: int | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    image_urls: Sequence[str] = ()
    supplier_id: str = ""
    sku: str = ""


@dataclass(frozen=True)
class Item:
    """An item as stored."""

    item_id: str
    fields: ItemFields
    state: ItemState
    version: int
    create_time: datetime
    update_time: datetime
    delete_time: datetime | None = None
    # Orders feed rows against this item (see feed_stamp).
    feed_stamp: str = ""

    @property
    def active(self) -> bool:
        return self.state is ItemState.ACTIVE


def validate_item_id(item_id: str, path: str = "item_id") -> list[FieldViolation]:
    """Client-chosen ids: 1-64 characters of [a-z0-9-]."""
    if not ITEM_ID_RE.match(item_id):
        return [FieldViolation(path, "must be 1-64 characters of a-z, 0-9 and '-'")]
    return []


def validate_fields(f: ItemFields) -> list[FieldViolation]:
    """Every rule an item's writable fields must satisfy."""
    return [*_text_violations(f), *_price_violations(f), *_reference_violations(f)]


def _text_violations(f: ItemFields) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if not f.title.strip():
        out.append(FieldViolation("title", "is required"))
    elif len(f.title) > MAX_TITLE:
        out.append(FieldViolation("title", f"must be at most {MAX_TITLE} characters"))
    if len(f.description) > MAX_DESCRIPTION:
        out.append(FieldViolation(
            "description", f"must be at most {MAX_DESCRIPTION} characters"))
    if len(f.brand) > MAX_BRAND:
        out.append(FieldViolation("brand", f"must be at most {MAX_BRAND} characters"))
    if not f.category:
        out.append(FieldViolation("category", "is required"))
    elif f.category not in CATEGORY_SCHEMAS:
        out.append(FieldViolation(
            "category", f"unknown category {f.category!r}; known: {', '.join(CATEGORIES)}"))
    return out


def _price_violations(f: ItemFields) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if f.price_paise <= 0:
        out.append(FieldViolation("price", "is required and must be positive"))
    if f.list_price_paise is not None and f.price_paise > 0 and (
            f.list_price_paise < f.price_paise):
        out.append(FieldViolation("list_price", "must be at least price"))
    return out


def _reference_violations(f: ItemFields) -> list[FieldViolation]:
    """Images, SKU, supplier and the category's attributes."""
    out: list[FieldViolation] = []
    if len(f.image_urls) > MAX_IMAGES:
        out.append(FieldViolation("image_urls", f"at most {MAX_IMAGES} images"))
    for i, url in enumerate(f.image_urls):
        if not (url.startswith("https://") or url.startswith("http://")) or " " in url:
            out.append(FieldViolation(f"image_urls[{i}]", "must be an http(s) URL"))
    if f.sku and not SKU_RE.match(f.sku):
        out.append(FieldViolation("sku", "must be 1-64 characters of letters, digits, ._/-"))
    if f.supplier_id and not SUPPLIER_ID_RE.match(f.supplier_id):
        out.append(FieldViolation(
            "supplier_id", "must be 1-64 characters of letters, digits, ._-"))
    for key in f.attributes:
        if not ATTR_KEY_RE.match(key):
            out.append(FieldViolation(f"attributes.{key}", "keys must be lowercase snake_case"))
    if f.category in CATEGORY_SCHEMAS:
        out.extend(validate_attributes(
            f.category, {k: v for k, v in f.attributes.items() if ATTR_KEY_RE.match(k)}))
    return out


def new_item(item_id: str, f: ItemFields, now: datetime, *, feed_stamp: str = "") -> Item:
    """A freshly created item at version 1."""
    return Item(item_id=item_id, fields=f, state=ItemState.ACTIVE, version=1,
                create_time=now, update_time=now, feed_stamp=feed_stamp)


def apply_mask(current: ItemFields, given: ItemFields, paths: Iterable[str]) -> ItemFields:
    """``current`` with the masked fields taken from ``given``.

    ``attributes.<key>`` sets one key (removing it when ``given`` lacks it)."""
    changes: dict[str, Any] = {}
    attrs = dict(current.attributes)
    attrs_touched = False
    for path in paths:
        if path.startswith("attributes."):
            key = path.removeprefix("attributes.")
            if key in given.attributes:
                attrs[key] = given.attributes[key]
            else:
                attrs.pop(key, None)
            attrs_touched = True
        elif path == "attributes":
            attrs = dict(given.attributes)
            attrs_touched = True
        elif path == "price":
            changes["price_paise"] = given.price_paise
        elif path == "list_price":
            changes["list_price_paise"] = given.list_price_paise
        else:
            changes[path] = getattr(given, path)
    if attrs_touched:
        changes["attributes"] = attrs
    return replace(current, **changes)


def validate_mask(paths: Sequence[str]) -> list[FieldViolation]:
    """Only mutable fields (and ``attributes.<key>``) may be masked."""
    out = []
    for p in paths:
        if p in MUTABLE_FIELDS:
            continue
        if p.startswith("attributes.") and ATTR_KEY_RE.match(p.removeprefix("attributes.")):
            continue
        out.append(FieldViolation(
            "update_mask", f"cannot update {p!r}; allowed: {', '.join(MUTABLE_FIELDS)}, "
                           "attributes.<key>"))
    return out


def same_content(a: ItemFields, b: ItemFields) -> bool:
    """True when an update would change nothing a reader can see."""
    return (a.title, a.description, a.category, a.brand, a.price_paise, a.list_price_paise,
            dict(a.attributes), list(a.image_urls)) == (
        b.title, b.description, b.category, b.brand, b.price_paise, b.list_price_paise,
        dict(b.attributes), list(b.image_urls))


# --------------------------------------------------------------------------
# Supplier feeds
# --------------------------------------------------------------------------


def supplier_item_id(supplier_id: str, sku: str) -> str:
    """The id a feed gives the item it creates for (supplier, sku): the same
    row replayed always lands on the same item."""
    return uuid.uuid5(ID_NAMESPACE, f"item:{supplier_id}/{sku}").hex


def feed_id_for(supplier_id: str, request_id: str) -> str:
    """A feed's id, derived from its request id so a retried submission (even
    after a crash half-way) reuses the same id and event ids."""
    return uuid.uuid5(ID_NAMESPACE, f"feed:{supplier_id}/{request_id}").hex


def feed_row_event_id(feed_id: str, line_number: int) -> str:
    """Event id of a feed row's SupplierItemReceived: stable across retries."""
    return str(uuid.uuid5(ID_NAMESPACE, f"row:{feed_id}:{line_number}"))


def feed_item_event_id(row_event_id: str, version: int) -> str:
    """Event id of the catalog.items event a feed row produced for an item at
    ``version``: the applier may publish it again after a crash, and
    consumers drop the repeat by this id."""
    return str(uuid.uuid5(ID_NAMESPACE, f"feed-item:{row_event_id}:{version}"))


def feed_stamp(occurred_at: datetime, line_number: int) -> str:
    """Sortable position of a feed row in time: the feed's submission time,
    then the line. An item remembers the stamp of the row that last changed
    it; a row whose stamp is not greater is stale (older feed, or a replay)."""
    micros = int(occurred_at.timestamp() * 1_000_000)
    return f"{micros:017d}.{line_number:07d}"


@dataclass(frozen=True)
class FeedRowError:
    """One rejected feed row."""

    line_number: int
    sku: str
    field: str
    message: str


def feed_field(path: str) -> str:
    """Item field path -> the feed's column naming (``attributes.x`` -> ``attr.x``)."""
    return "attr." + path.removeprefix("attributes.") if path.startswith("attributes.") else path


def normalize_attributes(category: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as stored: whole-number values of ``int`` keys become ints
    (protobuf Struct carries every number as a double)."""
    schema = CATEGORY_SCHEMAS.get(category, {})
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        spec = schema.get(key)
        if (spec is not None and spec.kind == "int" and isinstance(value, float)
                and value.is_integer()):
            value = int(value)
        out[key] = value
    return out
