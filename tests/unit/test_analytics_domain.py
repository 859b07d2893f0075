"""Pure parts of the analytics subsystem: decoding event records into lake
rows (pipelines/events.py), the job's progress summary, and the report
rules of svc_analytics (window, metric, limit, ranges, ranking)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ecom.events.v1 import events_pb2
from hypothesis import given
from hypothesis import strategies as st

from mesh.errors import InvalidArgument
from pipelines import events
from pipelines.analytics import progress_summary
from svc_analytics import domain
from tests.integration import analytics_support as ev

T = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def test_an_order_placement_decodes_to_a_flat_row_in_paise() -> None:
    env = ev.order_transition("A", "CREATED", "PLACED",
                              [("i-1", 2, 1_000_050), ("i-2", 1, 99)], at=T)
    row = events.decode_record("t1.orders.lifecycle", env.SerializeToString(), "t1.")
    assert row.get("error") is None
    assert (row["family"], row["payload"], row["order_id"]) == (
        "orders_lifecycle", "order_transitioned", "A")
    assert (row["from_state"], row["to_state"]) == ("ORDER_STATE_CREATED", "ORDER_STATE_PLACED")
    assert row["total_paise"] == 2 * 1_000_050 + 99
    assert row["lines"][0] == {"item_id": "i-1", "quantity": 2, "unit_price_paise": 1_000_050,
                               "line_total_paise": 2_000_100, "warehouse_id": ""}
    assert row["occurred_at"] == T and row["event_date"] == T.date()


@pytest.mark.parametrize(("topic", "value", "why"), [
    ("orders.lifecycle", b"\xff\xff\xff\xff\xff", "not an EventEnvelope"),
    ("cart.events", events_pb2.EventEnvelope(event_id="e").SerializeToString(),
     "no known payload"),
    ("search.queries", ev.cart_added("u", "i", 1, at=T).SerializeToString(),
     "does not belong on search.queries"),
    ("nope.topic", b"", "unknown topic"),
])
def test_what_cannot_be_decoded_says_why(topic: str, value: bytes, why: str) -> None:
    row = events.decode_record(topic, value)
    assert why in row["error"]
    assert row["raw"] == value


def test_an_envelope_without_time_or_id_is_quarantined() -> None:
    env = ev.cart_added("u", "i", 1, at=T)
    env.ClearField("occurred_at")
    assert "occurred_at" in events.decode_record("cart.events", env.SerializeToString())["error"]
    env = ev.cart_added("u", "i", 1, at=T)
    env.event_id = ""
    assert "event_id" in events.decode_record("cart.events", env.SerializeToString())["error"]


def test_every_family_has_its_table_schema() -> None:
    for family in events.FAMILY_COLUMNS:
        ddl = events.family_ddl(family)
        assert "`event_id` string" in ddl and "`event_date` date" in ddl
    assert {f for f, _ in events.FAMILIES.values()} == set(events.FAMILY_COLUMNS)


def test_progress_summary_reports_lag_per_topic_without_prefix() -> None:
    progress: dict[str, Any] = {
        "batchId": 7, "timestamp": "2026-01-15T10:00:00.000Z", "numInputRows": 40,
        "inputRowsPerSecond": 12.5, "processedRowsPerSecond": 20.0,
        "sources": [{
            "endOffset": {"p.orders.lifecycle": {"0": 10, "1": 5}, "p.cart.events": {"0": 3}},
            "latestOffset": {"p.orders.lifecycle": {"0": 12, "1": 5}, "p.cart.events": {"0": 3}},
        }],
    }
    out = progress_summary(progress, "p.")
    assert out["lag"] == {"orders.lifecycle": 2, "cart.events": 0}
    # pyspark hands nested offsets over as str(dict).
    progress["sources"][0] = {k: str(v) for k, v in progress["sources"][0].items()}
    assert progress_summary(progress, "p.")["lag"] == {"orders.lifecycle": 2, "cart.events": 0}
    assert (out["last_batch_id"], out["input_rows_per_second"]) == (7, 12.5)


def test_window_metric_and_limit_are_validated_naming_the_field() -> None:
    assert domain.window_size("") == "1h" and domain.window_size("1m") == "1m"
    for call, field in ((lambda: domain.window_size("5m"), "window"),
                        (lambda: domain.metric("profit"), "metric"),
                        (lambda: domain.limit(101), "limit")):
        with pytest.raises(InvalidArgument) as err:
            call()
        assert err.value.violations[0].field == field
    assert domain.metric("REVENUE") == "revenue" and domain.limit(0) == 10


def test_ranges_snap_to_windows_and_are_bounded() -> None:
    start, end = domain.time_range("1h", "2026-01-15T10:20:00Z", "2026-01-15T12:00:00Z", T)
    assert (start, end) == (T, datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    with pytest.raises(InvalidArgument):
        domain.time_range("1m", "2026-01-01T00:00:00Z", "2026-01-15T00:00:00Z", T)
    for bad in ("yesterday", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00",
                "2026-01-15T10:00:00"):
        with pytest.raises(InvalidArgument):
            domain.time_range("1h", bad, "", T)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=3), st.integers(-5, 50),
                          st.integers(-500, 5000)), max_size=30))
def test_ranking_orders_by_the_metric_and_drops_nothing_sold(rows: list) -> None:  # type: ignore[type-arg]
    items = [domain.Ranked(f"{i}-{name}", "c", u, r) for i, (name, u, r) in enumerate(rows)]
    by_units = domain.rank(items, "units", 100)
    assert [i.units for i in by_units] == sorted((i.units for i in by_units), reverse=True)
    assert all(i.units > 0 or i.revenue_paise > 0 for i in by_units)
    by_revenue = domain.rank(items, "revenue", 3)
    assert len(by_revenue) <= 3
    assert [i.revenue_paise for i in by_revenue] == sorted(
        (i.revenue_paise for i in by_revenue), reverse=True)
