"""Decoding Kafka event records into lake rows: pure functions, no Spark.

Every Kafka value is one serialized ``ecom.events.v1.EventEnvelope`` whose
``payload`` oneof names the event. :func:`decode_record` turns one record
into one flat row (the envelope's fields plus the payload's, money in paise)
or, when it cannot, into a quarantine row that says why. The Spark job runs
it inside the executors (``mapInPandas``), see pipelines/analytics.py for why
not ``from_protobuf``.

The families (one lake table each) and the payload cases they accept:

=================  =========================================================
family (table)     payloads
=================  =========================================================
catalog_items      item_upserted, item_deleted
inventory_stock    stock_changed
orders_lifecycle   order_transitioned
payments_events    payment_succeeded, payment_declined, payment_timed_out,
                   payment_refunded
cart_events        cart_item_added, cart_item_removed,
                   cart_item_quantity_changed, wishlist_item_added,
                   wishlist_item_removed
search_queries     search_query_recorded
=================  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# topic (without the deployment prefix) -> (family, payload cases it carries)
FAMILIES: dict[str, tuple[str, frozenset[str]]] = {
    "catalog.items": ("catalog_items", frozenset({"item_upserted", "item_deleted"})),
    "inventory.stock": ("inventory_stock", frozenset({"stock_changed"})),
    "orders.lifecycle": ("orders_lifecycle", frozenset({"order_transitioned"})),
    "payments.events": ("payments_events", frozenset({
        "payment_succeeded", "payment_declined", "payment_timed_out", "payment_refunded"})),
    "cart.events": ("cart_events", frozenset({
        "cart_item_added", "cart_item_removed", "cart_item_quantity_changed",
        "wishlist_item_added", "wishlist_item_removed"})),
    "search.queries": ("search_queries", frozenset({"search_query_recorded"})),
}
TOPICS: tuple[str, ...] = tuple(FAMILIES)

# Columns every lake table carries (the envelope and where it came from).
ENVELOPE_COLUMNS: list[tuple[str, str]] = [
    ("event_id", "string"),
    ("event_type", "string"),
    ("payload", "string"),  # the oneof case, e.g. "order_transitioned"
    ("occurred_at", "timestamp"),
    ("event_date", "date"),  # partition column: UTC date of occurred_at
    ("entity_key", "string"),
    ("entity_version", "bigint"),
    ("producer", "string"),
    ("request_id", "string"),
    ("topic", "string"),
    ("partition", "int"),
    ("offset", "bigint"),
    ("kafka_time", "timestamp"),
]

LINE_TYPE = ("array<struct<item_id:string,quantity:int,unit_price_paise:bigint,"
             "line_total_paise:bigint,warehouse_id:string>>")

# Payload columns per family (all nullable; a column a payload case does not
# carry is null).
FAMILY_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "catalog_items": [
        ("item_id", "string"), ("category", "string"), ("title", "string"),
        ("brand", "string"), ("price_paise", "bigint"), ("item_state", "string"),
        ("version", "bigint"), ("created", "boolean"), ("deleted", "boolean"),
        ("feed_id", "string"),
    ],
    "inventory_stock": [
        ("item_id", "string"), ("warehouse_id", "string"), ("available", "bigint"),
        ("reserved", "bigint"), ("available_delta", "bigint"), ("reason", "string"),
        ("order_id", "string"), ("item_total_available", "bigint"),
    ],
    "orders_lifecycle": [
        ("order_id", "string"), ("user_id", "string"), ("from_state", "string"),
        ("to_state", "string"), ("cancel_reason", "string"), ("total_paise", "bigint"),
        ("item_count", "int"), ("from_cart", "boolean"), ("lines", LINE_TYPE),
    ],
    "payments_events": [
        ("payment_id", "string"), ("order_id", "string"), ("user_id", "string"),
        ("status", "string"), ("amount_paise", "bigint"), ("refund_id", "string"),
        ("refund_paise", "bigint"), ("late_success", "boolean"), ("decline_code", "string"),
    ],
    "cart_events": [
        ("user_id", "string"), ("item_id", "string"), ("quantity", "int"),
        ("old_quantity", "int"), ("line_quantity", "int"), ("reason", "string"),
        ("moved_to_cart", "boolean"),
    ],
    "search_queries": [
        ("user_id", "string"), ("query", "string"), ("pincode", "string"),
        ("category", "string"), ("total_size", "int"), ("item_ids", "array<string>"),
        ("page_number", "int"), ("latency_ms", "int"), ("sort", "string"),
    ],
}

# What the decoder emits: the envelope, the union of every family's payload
# columns, and the verdict (family, or error + raw value for quarantine).
_ALL_PAYLOAD: dict[str, str] = {}
for _cols in FAMILY_COLUMNS.values():
    for _name, _type in _cols:
        _ALL_PAYLOAD.setdefault(_name, _type)
DECODED_COLUMNS: list[tuple[str, str]] = [
    *ENVELOPE_COLUMNS,
    *_ALL_PAYLOAD.items(),
    ("family", "string"),
    ("error", "string"),
    ("raw", "binary"),
]
DECODED_DDL = ", ".join(f"`{n}` {t}" for n, t in DECODED_COLUMNS)

QUARANTINE_COLUMNS: list[tuple[str, str]] = [
    ("topic", "string"), ("partition", "int"), ("offset", "bigint"),
    ("kafka_time", "timestamp"), ("error", "string"), ("raw", "binary"),
    ("quarantined_date", "date"),
]


def family_ddl(family: str) -> str:
    """The lake table schema of ``family`` as a Spark DDL string."""
    return ", ".join(f"`{n}` {t}" for n, t in [*ENVELOPE_COLUMNS, *FAMILY_COLUMNS[family]])


def base_topic(topic: str, prefix: str) -> str:
    """The topic name without the deployment's prefix."""
    return topic[len(prefix):] if prefix and topic.startswith(prefix) else topic


def paise(money: Any) -> int:
    """google.type.Money -> whole paise (INR has 2 decimals; nanos below a
    paisa are dropped, as everywhere else in the shop)."""
    return int(money.units) * 100 + int(money.nanos) // 10_000_000


def _ts(value: Any) -> datetime | None:
    if value.seconds == 0 and value.nanos == 0:
        return None
    return datetime.fromtimestamp(value.seconds + value.nanos / 1e9, UTC)


def _enum(message: Any, field: str) -> str:
    number = getattr(message, field)
    value = message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number.get(number)
    return str(value.name) if value is not None else str(number)


def decode_record(topic: str, value: bytes | None, prefix: str = "") -> dict[str, Any]:
    """One Kafka record as a row of DECODED_COLUMNS (without topic,
    partition, offset and kafka_time, which the caller adds).

    A row with ``error`` set belongs in quarantine: the value is not an
    envelope, lacks an event id or time, carries no payload this code knows,
    or a payload that does not belong on its topic."""
    from ecom.events.v1 import events_pb2
    from google.protobuf.message import DecodeError

    base = base_topic(topic, prefix)
    row: dict[str, Any] = {"raw": value}
    if base not in FAMILIES:
        return {**row, "error": f"unknown topic {base!r}"}
    family, cases = FAMILIES[base]
    env = events_pb2.EventEnvelope()
    try:
        env.ParseFromString(value or b"")
    except (DecodeError, RuntimeError, ValueError) as exc:
        return {**row, "error": f"not an EventEnvelope: {str(exc)[:200]}"}
    case = env.WhichOneof("payload")
    if case is None:
        return {**row, "error": f"no known payload (event_type {env.event_type!r})"}
    if case not in cases:
        return {**row, "error": f"payload {case} does not belong on {base}"}
    if not env.event_id:
        return {**row, "error": "event_id is empty"}
    occurred = _ts(env.occurred_at)
    if occurred is None:
        return {**row, "error": "occurred_at is not set"}
    out: dict[str, Any] = {
        "event_id": env.event_id,
        "event_type": env.event_type,
        "payload": case,
        "occurred_at": occurred,
        "event_date": occurred.date(),
        "entity_key": env.entity_key,
        "entity_version": env.entity_version,
        "producer": env.producer,
        "request_id": env.request_id,
        "family": family,
    }
    out.update(_payload(case, getattr(env, case)))
    return out


def _item_upserted(p: Any) -> dict[str, Any]:
    item = p.item
    return {"item_id": item.item_id, "category": item.category, "title": item.title,
            "brand": item.brand, "price_paise": paise(item.price),
            "item_state": _enum(item, "state"), "version": item.version,
            "created": p.created, "deleted": False, "feed_id": p.feed_id}


def _item_deleted(p: Any) -> dict[str, Any]:
    return {"item_id": p.item_id, "version": p.version, "deleted": True}


def _stock_changed(p: Any) -> dict[str, Any]:
    return {"item_id": p.item_id, "warehouse_id": p.warehouse_id, "available": p.available,
            "reserved": p.reserved, "available_delta": p.available_delta,
            "reason": _enum(p, "reason"), "order_id": p.order_id,
            "item_total_available": p.item_total_available}


def _order_transitioned(p: Any) -> dict[str, Any]:
    order = p.order
    return {"order_id": p.order_id or order.order_id, "user_id": p.user_id or order.user_id,
            "from_state": _enum(p, "from_state"), "to_state": _enum(p, "to_state"),
            "cancel_reason": _enum(p, "cancel_reason"), "total_paise": paise(order.total),
            "item_count": order.item_count, "from_cart": order.from_cart,
            "lines": [{"item_id": ln.item_id, "quantity": ln.quantity,
                       "unit_price_paise": paise(ln.unit_price),
                       "line_total_paise": paise(ln.line_total),
                       "warehouse_id": ln.warehouse_id} for ln in order.lines]}


def _payment(p: Any) -> dict[str, Any]:
    pay = p.payment
    return {"payment_id": pay.payment_id, "order_id": pay.order_id, "user_id": pay.user_id,
            "status": _enum(pay, "status"), "amount_paise": paise(pay.amount),
            "decline_code": pay.decline_code}


def _payment_succeeded(p: Any) -> dict[str, Any]:
    return {**_payment(p), "late_success": p.late}


def _payment_refunded(p: Any) -> dict[str, Any]:
    return {**_payment(p), "refund_id": p.refund.refund_id,
            "refund_paise": paise(p.refund.amount)}


def _cart_item_added(p: Any) -> dict[str, Any]:
    return {"user_id": p.user_id, "item_id": p.item_id, "quantity": p.quantity,
            "line_quantity": p.line_quantity}


def _cart_item_removed(p: Any) -> dict[str, Any]:
    return {"user_id": p.user_id, "item_id": p.item_id, "quantity": p.quantity,
            "reason": _enum(p, "reason")}


def _cart_item_quantity_changed(p: Any) -> dict[str, Any]:
    return {"user_id": p.user_id, "item_id": p.item_id, "old_quantity": p.old_quantity,
            "quantity": p.new_quantity, "line_quantity": p.new_quantity}


def _wishlist_item_added(p: Any) -> dict[str, Any]:
    return {"user_id": p.user_id, "item_id": p.item_id}


def _wishlist_item_removed(p: Any) -> dict[str, Any]:
    return {"user_id": p.user_id, "item_id": p.item_id, "moved_to_cart": p.moved_to_cart}


def _search_query_recorded(p: Any) -> dict[str, Any]:
    return {"user_id": p.user_id, "query": p.query, "pincode": p.pincode,
            "category": p.category, "total_size": p.total_size, "item_ids": list(p.item_ids),
            "page_number": p.page_number, "latency_ms": p.latency_ms, "sort": _enum(p, "sort")}


# The flat columns of each payload case.
_PAYLOADS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "item_upserted": _item_upserted,
    "item_deleted": _item_deleted,
    "stock_changed": _stock_changed,
    "order_transitioned": _order_transitioned,
    "payment_succeeded": _payment_succeeded,
    "payment_declined": _payment,
    "payment_timed_out": _payment,
    "payment_refunded": _payment_refunded,
    "cart_item_added": _cart_item_added,
    "cart_item_removed": _cart_item_removed,
    "cart_item_quantity_changed": _cart_item_quantity_changed,
    "wishlist_item_added": _wishlist_item_added,
    "wishlist_item_removed": _wishlist_item_removed,
}


def _payload(case: str, p: Any) -> dict[str, Any]:
    return _PAYLOADS.get(case, _search_query_recorded)(p)


def normalize_query(query: str) -> str:
    """A search text as the zero-result report groups it."""
    return " ".join(query.lower().split())
