"""Use cases: each report reads the Cassandra tables through the store and
shapes the answer with the domain rules. Every answer carries `as_of`, the
job's event-time watermark."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from svc_analytics import domain
from svc_analytics.store import ALL_CATEGORIES, CategoryRow, FunnelRow, ReportStore


@dataclass(frozen=True)
class TopItems:
    window_size: str
    window_start: datetime | None
    window_end: datetime | None
    items: list[domain.Ranked]
    as_of: datetime | None


Row = TypeVar("Row", CategoryRow, FunnelRow)


@dataclass(frozen=True)
class RangeReport(Generic[Row]):
    window_size: str
    start: datetime
    end: datetime
    rows: list[Row]
    as_of: datetime | None


@dataclass(frozen=True)
class ZeroResults:
    window_size: str
    window_start: datetime | None
    window_end: datetime | None
    searches: list[tuple[str, int]]
    as_of: datetime | None


class AnalyticsService:
    """The four reports."""

    def __init__(self, store: ReportStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.clock = clock

    async def top_items(self, window: str, category: str, metric: str, limit: int) -> TopItems:
        size = domain.window_size(window)
        by = domain.metric(metric)
        top = domain.limit(limit)
        cat = domain.category(category)
        state = await self.store.job_state()
        start = await self.store.latest_window("top_items", size)
        if start is None:
            return TopItems(size, None, None, [], state.watermark)
        rows = await self.store.top_items(size, start, cat or ALL_CATEGORIES)
        ranked = domain.rank([domain.Ranked(r.item_id, r.category, r.units, r.revenue_paise)
                              for r in rows], by, top)
        end = start + timedelta(seconds=domain.WINDOW_SECONDS[size])
        return TopItems(size, start, end, ranked, state.watermark)

    async def category_revenue(self, window: str, from_: str,
                               to: str) -> RangeReport[CategoryRow]:
        size = domain.window_size(window)
        start, end = domain.time_range(size, from_, to, self.clock())
        state = await self.store.job_state()
        rows = await self.store.category_revenue(size, start, end)
        rows.sort(key=lambda r: (r.window_start, r.category))
        return RangeReport(size, start, end, rows, state.watermark)

    async def funnel(self, window: str, from_: str, to: str) -> RangeReport[FunnelRow]:
        size = domain.window_size(window)
        start, end = domain.time_range(size, from_, to, self.clock())
        state = await self.store.job_state()
        rows = await self.store.funnel(size, start, end)
        rows.sort(key=lambda r: r.window_start)
        return RangeReport(size, start, end, rows, state.watermark)

    async def zero_result_searches(self, window: str, limit: int) -> ZeroResults:
        size = domain.window_size(window)
        top = domain.limit(limit)
        state = await self.store.job_state()
        start = await self.store.latest_window("zero_result_searches", size)
        if start is None:
            return ZeroResults(size, None, None, [], state.watermark)
        rows = domain.rank_queries(await self.store.zero_result_searches(size, start), top)
        end = start + timedelta(seconds=domain.WINDOW_SECONDS[size])
        return ZeroResults(size, start, end, rows, state.watermark)
