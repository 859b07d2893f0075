"""The gRPC servicer of ecom.analytics.v1.AnalyticsService. Every report is
for admins only (PERMISSION_DENIED for anyone else, UNAUTHENTICATED without
a caller)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ecom.analytics.v1 import analytics_pb2, analytics_pb2_grpc

from mesh import money, require_admin
from mesh.db import to_timestamp
from svc_analytics.service import AnalyticsService


def _window(start: datetime | None, end: datetime | None) -> analytics_pb2.Window | None:
    if start is None or end is None:
        return None
    return analytics_pb2.Window(start_time=to_timestamp(start), end_time=to_timestamp(end))


def _as_of(out: Any, as_of: datetime | None) -> None:
    if as_of is not None:
        out.as_of.CopyFrom(to_timestamp(as_of))


class AnalyticsApi(analytics_pb2_grpc.AnalyticsServiceServicer):
    """AnalyticsService over :class:`svc_analytics.service.AnalyticsService`."""

    def __init__(self, service: AnalyticsService) -> None:
        self.service = service

    async def GetTopItems(  # noqa: N802
        self, request: analytics_pb2.GetTopItemsRequest, context: Any
    ) -> analytics_pb2.GetTopItemsResponse:
        require_admin()
        report = await self.service.top_items(request.window, request.category, request.metric,
                                              request.limit)
        out = analytics_pb2.GetTopItemsResponse(window_size=report.window_size, items=[
            analytics_pb2.TopItem(item_id=i.item_id, category=i.category, units=i.units,
                                  revenue=money.from_paise(i.revenue_paise))
            for i in report.items])
        window = _window(report.window_start, report.window_end)
        if window is not None:
            out.window.CopyFrom(window)
        _as_of(out, report.as_of)
        return out

    async def GetCategoryRevenue(  # noqa: N802
        self, request: analytics_pb2.GetCategoryRevenueRequest, context: Any
    ) -> analytics_pb2.GetCategoryRevenueResponse:
        require_admin()
        report = await self.service.category_revenue(request.window, getattr(request, "from"),
                                                     request.to)
        seconds = _seconds(report.window_size)
        out = analytics_pb2.GetCategoryRevenueResponse(rows=[
            analytics_pb2.CategoryRevenue(
                window=_window(r.window_start, _end(r.window_start, seconds)),
                category=r.category, net_revenue=money.from_paise(r.net_paise),
                net_orders=r.net_orders, placed_revenue=money.from_paise(r.placed_paise),
                cancelled_revenue=money.from_paise(r.cancelled_paise),
                refunded_revenue=money.from_paise(r.refunded_paise))
            for r in report.rows])
        out.range.CopyFrom(_window(report.start, report.end))
        _as_of(out, report.as_of)
        return out

    async def GetFunnel(  # noqa: N802
        self, request: analytics_pb2.GetFunnelRequest, context: Any
    ) -> analytics_pb2.GetFunnelResponse:
        require_admin()
        report = await self.service.funnel(request.window, getattr(request, "from"), request.to)
        seconds = _seconds(report.window_size)
        out = analytics_pb2.GetFunnelResponse(windows=[
            analytics_pb2.FunnelStep(
                window=_window(r.window_start, _end(r.window_start, seconds)),
                searches=r.searches, cart_adds=r.cart_adds, orders_created=r.orders_created,
                orders_placed=r.orders_placed)
            for r in report.rows])
        out.range.CopyFrom(_window(report.start, report.end))
        _as_of(out, report.as_of)
        return out

    async def GetZeroResultSearches(  # noqa: N802
        self, request: analytics_pb2.GetZeroResultSearchesRequest, context: Any
    ) -> analytics_pb2.GetZeroResultSearchesResponse:
        require_admin()
        report = await self.service.zero_result_searches(request.window, request.limit)
        out = analytics_pb2.GetZeroResultSearchesResponse(
            window_size=report.window_size,
            searches=[analytics_pb2.ZeroResultSearch(query=q, count=n)
                      for q, n in report.searches])
        window = _window(report.window_start, report.window_end)
        if window is not None:
            out.window.CopyFrom(window)
        _as_of(out, report.as_of)
        return out


def _seconds(size: str) -> int:
    from svc_analytics.domain import WINDOW_SECONDS

    return WINDOW_SECONDS[size]


def _end(start: datetime, seconds: int) -> datetime:
    from datetime import timedelta

    return start + timedelta(seconds=seconds)
