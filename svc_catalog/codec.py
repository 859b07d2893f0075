"""Translation between the catalog's domain objects and their protobuf and
Kafka forms (``ecom.catalog.v1`` messages, ``ecom.events.v1`` envelopes).

Shared by the servicer, the feed parser, the feed consumer and the event
writer, so it lives apart from all of them.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ecom.catalog.v1 import catalog_pb2
from ecom.events.v1 import events_pb2
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.type import money_pb2

from mesh import money as mesh_money
from mesh.errors import FieldViolation
from svc_catalog import domain

PRODUCER = "svc_catalog"
ITEMS_TOPIC = "catalog.items"
FEEDS_TOPIC = "catalog.feeds"

_STATE_TO_PROTO = {
    domain.ItemState.ACTIVE: catalog_pb2.ITEM_STATE_ACTIVE,
    domain.ItemState.DELETED: catalog_pb2.ITEM_STATE_DELETED,
}


def ts(dt: datetime) -> timestamp_pb2.Timestamp:
    """A datetime as a protobuf Timestamp."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(dt.astimezone(UTC))
    return out


def from_ts(t: timestamp_pb2.Timestamp) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return t.ToDatetime(tzinfo=UTC)


def money(paise: int) -> money_pb2.Money:
    """Whole paise as google.type.Money in INR."""
    return mesh_money.from_paise(paise)


def _value_to_py(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "list_value":
        return [_value_to_py(x) for x in v.list_value.values]
    if kind == "struct_value":
        return {k: _value_to_py(x) for k, x in v.struct_value.fields.items()}
    if kind == "null_value" or kind is None:
        return None
    return getattr(v, kind)


def struct_to_dict(s: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain Python values (nested structs kept, for validation
    to reject)."""
    return {k: _value_to_py(v) for k, v in s.fields.items()}


def item_to_proto(item: domain.Item) -> catalog_pb2.Item:
    """The stored item as the API and events show it."""
    f = item.fields
    out = catalog_pb2.Item(
        item_id=item.item_id,
        supplier_id=f.supplier_id,
        sku=f.sku,
        title=f.title,
        description=f.description,
        category=f.category,
        brand=f.brand,
        price=money(f.price_paise),
        image_urls=list(f.image_urls),
        state=_STATE_TO_PROTO[item.state],
        version=item.version,
        create_time=ts(item.create_time),
        update_time=ts(item.update_time),
    )
    if f.list_price_paise is not None:
        out.list_price.CopyFrom(money(f.list_price_paise))
    if f.attributes:
        out.attributes.update(dict(f.attributes))
    if item.delete_time is not None:
        out.delete_time.CopyFrom(ts(item.delete_time))
    return out


def fields_from_proto(
    p: catalog_pb2.Item, *, path: str = "item", require_price: bool = True
) -> tuple[domain.ItemFields, list[FieldViolation]]:
    """Writable fields of an Item message, plus money violations (the
    domain rules are checked separately by ``domain.validate_fields``).
    Violation paths are relative to the item."""
    violations: list[FieldViolation] = []
    price = 0
    if p.HasField("price"):
        got, bad = domain.money_to_paise(
            p.price.currency_code, p.price.units, p.price.nanos, "price")
        violations += bad
        price = got or 0
    elif require_price:
        violations.append(FieldViolation("price", "is required"))
    list_price: int | None = None
    if p.HasField("list_price"):
        list_price, bad = domain.money_to_paise(
            p.list_price.currency_code, p.list_price.units, p.list_price.nanos, "list_price")
        violations += bad
    attrs = struct_to_dict(p.attributes)
    fields = domain.ItemFields(
        title=p.title,
        description=p.description,
        category=p.category,
        brand=p.brand,
        price_paise=price,
        list_price_paise=list_price,
        attributes=domain.normalize_attributes(p.category, attrs),
        image_urls=tuple(p.image_urls),
        supplier_id=p.supplier_id,
        sku=p.sku,
    )
    return fields, violations


def prefixed(violations: list[FieldViolation], prefix: str) -> list[FieldViolation]:
    """Violations with their field paths under ``prefix`` (``item.title``)."""
    return [FieldViolation(f"{prefix}.{v.field}", v.description) for v in violations]


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def _envelope(entity_key: str, version: int, occurred_at: datetime,
              request_id: str, event_id: str | None = None) -> events_pb2.EventEnvelope:
    env = events_pb2.EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        entity_key=entity_key,
        entity_version=version,
        producer=PRODUCER,
        request_id=request_id,
    )
    env.occurred_at.CopyFrom(ts(occurred_at))
    return env


def item_upserted(item: domain.Item, *, created: bool, request_id: str = "",
                  feed_id: str = "") -> events_pb2.EventEnvelope:
    """The catalog.items event for a create or change of ``item``."""
    env = _envelope(item.item_id, item.version, item.update_time, request_id)
    env.event_type = events_pb2.ItemUpserted.DESCRIPTOR.full_name
    env.item_upserted.item.CopyFrom(item_to_proto(item))
    env.item_upserted.created = created
    env.item_upserted.feed_id = feed_id
    return env


def item_deleted(item: domain.Item, *, request_id: str = "") -> events_pb2.EventEnvelope:
    """The catalog.items event for a soft delete of ``item``."""
    assert item.delete_time is not None
    env = _envelope(item.item_id, item.version, item.delete_time, request_id)
    env.event_type = events_pb2.ItemDeleted.DESCRIPTOR.full_name
    env.item_deleted.item_id = item.item_id
    env.item_deleted.version = item.version
    env.item_deleted.delete_time.CopyFrom(ts(item.delete_time))
    return env


def supplier_item_received(
    feed_id: str, supplier_id: str, line_number: int, fields: domain.ItemFields,
    submitted_at: datetime, request_id: str,
) -> events_pb2.EventEnvelope:
    """The catalog.feeds event carrying one valid feed row."""
    env = _envelope(f"{supplier_id}/{fields.sku}", 0, submitted_at, request_id,
                    event_id=domain.feed_row_event_id(feed_id, line_number))
    env.event_type = events_pb2.SupplierItemReceived.DESCRIPTOR.full_name
    row = env.supplier_item_received
    row.feed_id = feed_id
    row.supplier_id = supplier_id
    row.line_number = line_number
    item = row.item
    item.supplier_id = supplier_id
    item.sku = fields.sku
    item.title = fields.title
    item.description = fields.description
    item.category = fields.category
    item.brand = fields.brand
    item.price.CopyFrom(money(fields.price_paise))
    if fields.list_price_paise is not None:
        item.list_price.CopyFrom(money(fields.list_price_paise))
    if fields.attributes:
        item.attributes.update(dict(fields.attributes))
    item.image_urls.extend(fields.image_urls)
    return env


def parse_item_json(obj: dict[str, Any]) -> catalog_pb2.Item:
    """A feed's JSON object (proto3 JSON of Item) as a message; raises
    json_format.ParseError naming the bad field."""
    return json_format.ParseDict(obj, catalog_pb2.Item(), ignore_unknown_fields=False)


# --------------------------------------------------------------------------
# Supplier feed content
# --------------------------------------------------------------------------

MAX_FEED_ROWS = 100_000
CSV_COLUMNS = ("sku", "title", "description", "category", "brand", "price", "list_price",
               "image_urls")
CSV_REQUIRED = ("sku", "title", "category", "price")


class FeedRejected(Exception):
    """The feed as a whole cannot be processed (bad header, too many rows)."""


@dataclass
class ParsedFeed:
    """A feed's rows after validation: the good ones with their line
    numbers, and one error per problem of each bad one."""

    total_rows: int = 0
    valid: list[tuple[int, domain.ItemFields]] = dc_field(default_factory=list)
    errors: list[domain.FeedRowError] = dc_field(default_factory=list)


def parse_feed(fmt: int, content: str, supplier_id: str) -> ParsedFeed:
    """Parse and validate a feed (JSON lines or CSV). Raises FeedRejected
    when the feed as a whole is unusable; bad rows are reported, not raised."""
    if fmt == catalog_pb2.FEED_FORMAT_JSONL:
        rows = _jsonl_rows(content)
    elif fmt == catalog_pb2.FEED_FORMAT_CSV:
        rows = _csv_rows(content)
    else:
        raise FeedRejected("format must be FEED_FORMAT_JSONL or FEED_FORMAT_CSV")
    out = ParsedFeed()
    for line, parsed in rows:
        out.total_rows += 1
        if out.total_rows > MAX_FEED_ROWS:
            raise FeedRejected(f"more than {MAX_FEED_ROWS:,} rows")
        if isinstance(parsed, domain.FeedRowError):
            out.errors.append(parsed)
            continue
        proto, problems = parsed
        sku = proto.sku
        violations = list(problems)
        if proto.supplier_id and proto.supplier_id != supplier_id:
            violations.append(FieldViolation(
                "supplier_id", f"row names supplier {proto.supplier_id!r}, feed is for "
                               f"{supplier_id!r}"))
        proto.supplier_id = supplier_id
        if not sku:
            violations.append(FieldViolation("sku", "is required in a feed row"))
        fields, money_problems = fields_from_proto(proto)
        # One message per bad field: a price that failed to parse is not
        # also reported as missing.
        reported = {v.field.split(".")[0] for v in violations}
        violations += [v for v in money_problems if v.field.split(".")[0] not in reported]
        reported |= {v.field.split(".")[0] for v in violations}
        violations += [v for v in domain.validate_fields(fields)
                       if v.field.split(".")[0] not in reported or v.field.startswith("attr")]
        if violations:
            out.errors.extend(domain.FeedRowError(line, sku, domain.feed_field(v.field),
                                                  v.description) for v in violations)
        else:
            out.valid.append((line, fields))
    return out


RowResult = tuple[int, "tuple[catalog_pb2.Item, list[FieldViolation]] | domain.FeedRowError"]


def _jsonl_rows(content: str) -> Iterator[RowResult]:
    for n, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            yield n, domain.FeedRowError(n, "", "", f"malformed JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            yield n, domain.FeedRowError(n, "", "", "a row must be a JSON object")
            continue
        sku = obj.get("sku") if isinstance(obj.get("sku"), str) else ""
        # Output-only fields are ignored, as the contract says.
        for key in ("itemId", "item_id", "state", "version", "createTime", "create_time",
                    "updateTime", "update_time", "deleteTime", "delete_time"):
            obj.pop(key, None)
        try:
            yield n, (parse_item_json(obj), [])
        except json_format.ParseError as exc:
            yield n, domain.FeedRowError(n, str(sku), "", f"invalid item: {exc}")


def _csv_rows(content: str) -> Iterator[RowResult]:
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise FeedRejected("the CSV has no header row") from None
    except csv.Error as exc:
        raise FeedRejected(f"unreadable CSV header: {exc}") from None
    header = [h.strip() for h in header]
    unknown = [h for h in header if h not in CSV_COLUMNS and not h.startswith("attr.")]
    if unknown:
        raise FeedRejected(f"unknown CSV columns: {', '.join(unknown)}")
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise FeedRejected(f"CSV header lacks required columns: {', '.join(missing)}")
    last_line = reader.line_num
    while True:
        start = last_line + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            last_line = reader.line_num
            yield start, domain.FeedRowError(start, "", "", f"malformed CSV: {exc}")
            continue
        last_line = reader.line_num
        if not record or all(not c.strip() for c in record):
            continue
        if len(record) != len(header):
            yield start, domain.FeedRowError(
                start, "", "", f"expected {len(header)} columns, found {len(record)}")
            continue
        yield start, _csv_item(dict(zip(header, record, strict=True)))


def _csv_item(row: dict[str, str]) -> tuple[catalog_pb2.Item, list[FieldViolation]]:
    problems: list[FieldViolation] = []
    item = catalog_pb2.Item(
        sku=row.get("sku", "").strip(), title=row.get("title", "").strip(),
        description=row.get("description", ""), category=row.get("category", "").strip(),
        brand=row.get("brand", "").strip())
    for col in ("price", "list_price"):
        raw = row.get(col, "").strip()
        if not raw:
            continue
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            problems.append(FieldViolation(col, f"{raw!r} is not a decimal amount in rupees"))
            continue
        if not amount.is_finite() or amount.as_tuple().exponent < -2:  # type: ignore[operator]
            problems.append(FieldViolation(col, "at most 2 decimal places"))
            continue
        paise = int(amount * 100)
        target = item.price if col == "price" else item.list_price
        target.CopyFrom(money(paise) if paise > 0 else money_pb2.Money(
            currency_code=domain.CURRENCY, units=int(amount)))
    urls = row.get("image_urls", "").strip()
    if urls:
        item.image_urls.extend(u.strip() for u in urls.split("|") if u.strip())
    schema = domain.CATEGORY_SCHEMAS.get(item.category, {})
    attrs: dict[str, Any] = {}
    for col, raw in row.items():
        if not col.startswith("attr.") or not raw.strip():
            continue
        key = col.removeprefix("attr.")
        attrs[key] = _csv_value(raw.strip(), schema.get(key))
    if attrs:
        item.attributes.update(attrs)
    return item, problems


def _csv_value(raw: str, spec: domain.AttributeSpec | None) -> Any:
    """Type a CSV cell: lists split on '|', numbers and true/false typed, the
    rest strings (the schema decides for known keys)."""
    if spec is not None and spec.kind == "list":
        return [v.strip() for v in raw.split("|") if v.strip()]
    if spec is not None and spec.kind == "str":
        return raw
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        return raw
