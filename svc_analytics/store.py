"""The Cassandra serving tables of the streaming reports.

The Spark job (pipelines/analytics.py) writes them with idempotent upserts of
absolute values (replaying a micro-batch rewrites the same rows); this
service only reads them. The schema lives here, once, and both sides create
it with :func:`create_schema` (``IF NOT EXISTS``).

Tables (keyspace ``<ECOM_KEYSPACE_PREFIX>analytics``):

- ``top_items``: ((window_size, window_start, scope), item_id) -> category,
  units, revenue_paise. ``scope`` is ``*`` for all categories or a category.
- ``report_windows``: ((report, window_size), window_start DESC): which
  windows have rows, newest first (``top_items``, ``zero_result_searches``).
- ``category_revenue``: ((window_size, day), window_start, category) ->
  placed/cancelled/refunded/net paise, net_orders.
- ``funnel``: ((window_size, day), window_start) -> searches, cart_adds,
  orders_created, orders_placed.
- ``zero_result_searches``: ((window_size, window_start), query) -> searches.
- ``job_state``: (job) -> watermark, last batch, cumulative counters.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mesh import cassandra as cassandra_sessions

KEYSPACE = "analytics"
JOB = "analytics"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS top_items (
        window_size text, window_start timestamp, scope text, item_id text,
        category text, units bigint, revenue_paise bigint,
        PRIMARY KEY ((window_size, window_start, scope), item_id))""",
    """CREATE TABLE IF NOT EXISTS report_windows (
        report text, window_size text, window_start timestamp,
        PRIMARY KEY ((report, window_size), window_start))
        WITH CLUSTERING ORDER BY (window_start DESC)""",
    """CREATE TABLE IF NOT EXISTS category_revenue (
        window_size text, day date, window_start timestamp, category text,
        placed_paise bigint, cancelled_paise bigint, refunded_paise bigint, net_paise bigint,
        net_orders bigint,
        PRIMARY KEY ((window_size, day), window_start, category))""",
    """CREATE TABLE IF NOT EXISTS funnel (
        window_size text, day date, window_start timestamp,
        searches bigint, cart_adds bigint, orders_created bigint, orders_placed bigint,
        PRIMARY KEY ((window_size, day), window_start))""",
    """CREATE TABLE IF NOT EXISTS zero_result_searches (
        window_size text, window_start timestamp, query text, searches bigint,
        PRIMARY KEY ((window_size, window_start), query))""",
    """CREATE TABLE IF NOT EXISTS job_state (
        job text PRIMARY KEY, watermark timestamp, max_event_time timestamp,
        last_batch_id bigint, last_batch_time timestamp, accepted bigint,
        dropped_late bigint, duplicates bigint, quarantined bigint)""",
]

WINDOW_SECONDS: dict[str, int] = {"1m": 60, "1h": 3600}
ALL_CATEGORIES = "*"


def connect(contact_points: list[tuple[str, int]], keyspace: str) -> Any:
    """A cassandra-driver session on ``keyspace`` (created when missing)."""
    return cassandra_sessions.connect(contact_points, keyspace, request_timeout=20.0)


def create_schema(session: Any) -> None:
    for stmt in SCHEMA:
        session.execute(stmt)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class JobState:
    """The job's progress as the reports see it."""

    watermark: datetime | None
    last_batch_id: int | None
    last_batch_time: datetime | None
    accepted: int
    dropped_late: int
    duplicates: int
    quarantined: int


@dataclass(frozen=True)
class TopItemRow:
    item_id: str
    category: str
    units: int
    revenue_paise: int


@dataclass(frozen=True)
class CategoryRow:
    window_start: datetime
    category: str
    placed_paise: int
    cancelled_paise: int
    refunded_paise: int
    net_paise: int
    net_orders: int


@dataclass(frozen=True)
class FunnelRow:
    window_start: datetime
    searches: int
    cart_adds: int
    orders_created: int
    orders_placed: int


class ReportStore:
    """Reads the report tables (blocking driver calls run in a thread)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def ping(self) -> None:
        await asyncio.to_thread(self.session.execute, "SELECT release_version FROM system.local")

    async def job_state(self) -> JobState:
        row = (await asyncio.to_thread(
            self.session.execute, "SELECT * FROM job_state WHERE job = %s", (JOB,))).one()
        if row is None:
            return JobState(None, None, None, 0, 0, 0, 0)
        return JobState(_utc(row.watermark), row.last_batch_id, _utc(row.last_batch_time),
                        row.accepted or 0, row.dropped_late or 0, row.duplicates or 0,
                        row.quarantined or 0)

    async def latest_window(self, report: str, window_size: str) -> datetime | None:
        row = (await asyncio.to_thread(
            self.session.execute,
            "SELECT window_start FROM report_windows WHERE report = %s AND window_size = %s"
            " LIMIT 1", (report, window_size))).one()
        return _utc(row.window_start) if row else None

    async def top_items(self, window_size: str, start: datetime, scope: str) -> list[TopItemRow]:
        rows = await asyncio.to_thread(
            self.session.execute,
            "SELECT item_id, category, units, revenue_paise FROM top_items"
            " WHERE window_size = %s AND window_start = %s AND scope = %s",
            (window_size, start, scope))
        return [TopItemRow(r.item_id, r.category, r.units or 0, r.revenue_paise or 0)
                for r in rows]

    async def category_revenue(self, window_size: str, start: datetime,
                               end: datetime) -> list[CategoryRow]:
        out: list[CategoryRow] = []
        for day in _days(start, end):
            rows = await asyncio.to_thread(
                self.session.execute,
                "SELECT * FROM category_revenue WHERE window_size = %s AND day = %s"
                " AND window_start >= %s AND window_start < %s",
                (window_size, day, start, end))
            out.extend(CategoryRow(_utc(r.window_start), r.category, r.placed_paise or 0,  # type: ignore[arg-type]
                                   r.cancelled_paise or 0, r.refunded_paise or 0,
                                   r.net_paise or 0, r.net_orders or 0) for r in rows)
        return out

    async def funnel(self, window_size: str, start: datetime, end: datetime) -> list[FunnelRow]:
        out: list[FunnelRow] = []
        for day in _days(start, end):
            rows = await asyncio.to_thread(
                self.session.execute,
                "SELECT * FROM funnel WHERE window_size = %s AND day = %s"
                " AND window_start >= %s AND window_start < %s",
                (window_size, day, start, end))
            out.extend(FunnelRow(_utc(r.window_start), r.searches or 0, r.cart_adds or 0,  # type: ignore[arg-type]
                                 r.orders_created or 0, r.orders_placed or 0) for r in rows)
        return out

    async def zero_result_searches(self, window_size: str,
                                   start: datetime) -> list[tuple[str, int]]:
        rows = await asyncio.to_thread(
            self.session.execute,
            "SELECT query, searches FROM zero_result_searches"
            " WHERE window_size = %s AND window_start = %s", (window_size, start))
        return [(r.query, r.searches or 0) for r in rows]


def _days(start: datetime, end: datetime) -> list[date]:
    """The UTC days a [start, end) range of window starts touches."""
    days, day = [], start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    while day <= last:
        days.append(day)
        day += timedelta(days=1)
    return days
