"""Report rules without I/O: which window sizes exist, how a request's
window, metric, limit and time range are read, how items are ranked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mesh.errors import InvalidArgument

WINDOW_SECONDS: dict[str, int] = {"1m": 60, "1h": 3600}
DEFAULT_WINDOW = "1h"
METRICS = ("units", "revenue")
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
# A range report reads at most this many windows (1h: a week; 1m: 7 days
# would be 10,080 rows, so ranges of 1m windows are capped too).
MAX_RANGE_WINDOWS = 24 * 7
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Ranked:
    """An item's numbers in one window."""

    item_id: str
    category: str
    units: int
    revenue_paise: int


def window_size(value: str) -> str:
    """The window size asked for ("1m" or "1h"; empty means 1h)."""
    size = value.strip() or DEFAULT_WINDOW
    if size not in WINDOW_SECONDS:
        raise InvalidArgument.for_field("window", "must be 1m or 1h")
    return size


def metric(value: str) -> str:
    name = value.strip().lower() or "units"
    name = name.removeprefix("top_items_metric_")
    if name not in METRICS:
        raise InvalidArgument.for_field("metric", "must be units or revenue")
    return name


def limit(value: int) -> int:
    if value < 0 or value > MAX_LIMIT:
        raise InvalidArgument.for_field("limit", f"must be between 1 and {MAX_LIMIT}")
    return value or DEFAULT_LIMIT


def category(value: str) -> str:
    cat = value.strip()
    if len(cat) > 100:
        raise InvalidArgument.for_field("category", "must be at most 100 characters")
    return cat


def _parse_time(field: str, value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument.for_field(
            field, "must be an RFC 3339 time, e.g. 2026-01-15T10:00:00Z") from None
    if parsed.tzinfo is None:
        raise InvalidArgument.for_field(field, "must carry a time zone (Z or +05:30)")
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidArgument.for_field(field, "is out of range") from None
    if not EARLIEST <= parsed <= LATEST:
        raise InvalidArgument.for_field(field, "must be between 1970 and 2200")
    return parsed


def time_range(size: str, from_: str, to: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of window starts for a range report. ``to`` defaults to
    now, ``from`` to 24 windows earlier; both snap down to a window start,
    and at most MAX_RANGE_WINDOWS windows are covered."""
    seconds = WINDOW_SECONDS[size]
    end = _parse_time("to", to) or now
    start = _parse_time("from", from_) or end - timedelta(seconds=24 * seconds)
    if start >= end:
        raise InvalidArgument.for_field("from", "must be before to")
    start, end = floor(start, seconds), floor(end - timedelta(microseconds=1), seconds) + \
        timedelta(seconds=seconds)
    if (end - start).total_seconds() / seconds > MAX_RANGE_WINDOWS:
        raise InvalidArgument.for_field(
            "from", f"the range may cover at most {MAX_RANGE_WINDOWS} windows of {size}")
    return start, end


def floor(value: datetime, seconds: int) -> datetime:
    epoch = int(value.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def rank(items: list[Ranked], by: str, top: int) -> list[Ranked]:
    """Best first by the metric, then by the other one, then by item id;
    items with nothing left (all sales cancelled) are not listed."""
    live = [i for i in items if i.units > 0 or i.revenue_paise > 0]
    if by == "revenue":
        live.sort(key=lambda i: (-i.revenue_paise, -i.units, i.item_id))
    else:
        live.sort(key=lambda i: (-i.units, -i.revenue_paise, i.item_id))
    return live[:top]


def rank_queries(rows: list[tuple[str, int]], top: int) -> list[tuple[str, int]]:
    return sorted(rows, key=lambda r: (-r[1], r[0]))[:top]
