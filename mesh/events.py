"""Event envelopes and the times in them, built one way for every topic.

Every Kafka message is an ``ecom.events.v1.EventEnvelope``: event id, type
(the payload message's full name), occurred-at, entity key and version,
producer, the request id that caused it, and one payload case. Services
build it with :func:`envelope` and convert times with :func:`timestamp` /
:func:`from_timestamp` (naive datetimes are UTC, as the DATETIME(6) columns
keep them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ecom.events.v1 import events_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: datetime | None) -> Timestamp | None:
    """A datetime (naive means UTC) as a protobuf Timestamp; None stays unset."""
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def from_timestamp(ts: Timestamp, *, aware: bool = False) -> datetime:
    """A Timestamp as naive UTC, or aware UTC with ``aware``."""
    return ts.ToDatetime(tzinfo=UTC) if aware else ts.ToDatetime()


def envelope(
    case: str,
    payload: Message,
    *,
    entity_key: str,
    producer: str,
    occurred_at: datetime,
    entity_version: int = 0,
    request_id: str = "",
    event_id: str | None = None,
) -> events_pb2.EventEnvelope:
    """The envelope of one event: ``case`` is the payload's oneof field
    (``"order_transitioned"``), its type the payload message's full name."""
    env = events_pb2.EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=payload.DESCRIPTOR.full_name,
        occurred_at=timestamp(occurred_at),
        entity_key=entity_key,
        entity_version=entity_version,
        producer=producer,
        request_id=request_id,
    )
    getattr(env, case).CopyFrom(payload)
    return env
