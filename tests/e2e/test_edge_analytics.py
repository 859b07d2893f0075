"""Streaming reports through Envoy: an admin reads each report as JSON with
its window bounds and `as_of`; a customer gets 403, no token 401, a bad
window 400 naming the field.

The report rows are written to Cassandra here the way the Spark job writes
them (tests/integration/test_analytics.py covers the job itself), so this
test needs only Cassandra: ECOM_TEST_SERVERS=cassandra.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from edge import registry
from mesh import tokens
from svc_analytics import store as report_store

pytestmark = pytest.mark.integration

HOUR = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def reports(stack) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]))
             for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    session = report_store.connect(hosts, stack.db_prefix + report_store.KEYSPACE)
    report_store.create_schema(session)
    for item, cat, units, paise in (("i-phone", "mobiles", 4, 4_000_200),
                                    ("i-case", "accessories", 2, 59_998),
                                    ("i-tv", "tvs", 0, 0)):
        for scope in ("*", cat):
            session.execute(
                "INSERT INTO top_items (window_size, window_start, scope, item_id, category,"
                " units, revenue_paise) VALUES ('1h', %s, %s, %s, %s, %s, %s)",
                (HOUR, scope, item, cat, units, paise))
    session.execute("INSERT INTO report_windows (report, window_size, window_start)"
                    " VALUES ('top_items', '1h', %s)", (HOUR,))
    session.execute("INSERT INTO report_windows (report, window_size, window_start)"
                    " VALUES ('zero_result_searches', '1h', %s)", (HOUR,))
    session.execute(
        "INSERT INTO category_revenue (window_size, day, window_start, category, placed_paise,"
        " cancelled_paise, refunded_paise, net_paise, net_orders)"
        " VALUES ('1h', %s, %s, 'mobiles', 4000200, 0, 50025, 3950175, 3)",
        (HOUR.date(), HOUR))
    session.execute(
        "INSERT INTO funnel (window_size, day, window_start, searches, cart_adds,"
        " orders_created, orders_placed) VALUES ('1h', %s, %s, 5, 3, 5, 4)",
        (HOUR.date(), HOUR))
    session.execute("INSERT INTO zero_result_searches (window_size, window_start, query,"
                    " searches) VALUES ('1h', %s, 'zzz gadget', 2)", (HOUR,))
    session.execute("INSERT INTO zero_result_searches (window_size, window_start, query,"
                    " searches) VALUES ('1h', %s, 'qwerty', 1)", (HOUR,))
    session.execute("INSERT INTO job_state (job, watermark) VALUES ('analytics', %s)",
                    (HOUR + timedelta(minutes=21),))
    yield session
    session.cluster.shutdown()


@pytest.fixture(scope="module")
def edge(services, edge_factory, reports):  # type: ignore[no-untyped-def]
    analytics = services.start("analytics")
    return edge_factory("analytics", {"analytics": analytics.addr},
                        [registry.process_named("analytics")])


def _get(edge, token: str | None, path: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=edge.url, timeout=10) as http:
        return http.get(path, headers=headers)


def test_an_admin_reads_every_report(edge, signing_key) -> None:  # type: ignore[no-untyped-def]
    admin = tokens.issue_token(signing_key, user_id="ops", roles=["admin"])[0]
    resp = _get(edge, admin, "/v1/reports/top-items?window=1h&metric=revenue&limit=5")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [(i["itemId"], i["units"], i["revenue"]["units"], i["revenue"].get("nanos", 0))
            for i in body["items"]] == [("i-phone", "4", "40002", 0),
                                        ("i-case", "2", "599", 980_000_000)]
    assert body["window"] == {"startTime": "2026-01-15T10:00:00Z",
                              "endTime": "2026-01-15T11:00:00Z"}
    assert body["asOf"] == "2026-01-15T10:21:00Z"

    resp = _get(edge, admin, "/v1/reports/top-items?window=1h&category=accessories")
    assert [i["itemId"] for i in resp.json()["items"]] == ["i-case"]

    resp = _get(edge, admin, "/v1/reports/category-revenue?window=1h"
                "&from=2026-01-15T00:00:00Z&to=2026-01-16T00:00:00Z")
    assert resp.status_code == 200, resp.text
    (row,) = resp.json()["rows"]
    assert (row["category"], row["netOrders"], row["netRevenue"]["units"],
            row["netRevenue"]["nanos"], row["refundedRevenue"]["units"]) == (
        "mobiles", "3", "39501", 750_000_000, "500")

    resp = _get(edge, admin, "/v1/reports/funnel?window=1h"
                "&from=2026-01-15T00:00:00Z&to=2026-01-16T00:00:00Z")
    (step,) = resp.json()["windows"]
    assert (step["searches"], step["cartAdds"], step["ordersCreated"],
            step["ordersPlaced"]) == ("5", "3", "5", "4")

    resp = _get(edge, admin, "/v1/reports/zero-result-searches?window=1h")
    assert [(s["query"], s["count"]) for s in resp.json()["searches"]] == [
        ("zzz gadget", "2"), ("qwerty", "1")]


def test_a_customer_is_refused_and_bad_input_is_named(edge, signing_key) -> None:  # type: ignore[no-untyped-def]
    customer = tokens.issue_token(signing_key, user_id="shopper", roles=["customer"])[0]
    for path in ("/v1/reports/top-items", "/v1/reports/category-revenue",
                 "/v1/reports/funnel", "/v1/reports/zero-result-searches"):
        assert _get(edge, customer, path).status_code == 403, path
        assert _get(edge, None, path).status_code == 401, path
    admin = tokens.issue_token(signing_key, user_id="ops", roles=["admin"])[0]
    resp = _get(edge, admin, "/v1/reports/top-items?window=5m")
    assert resp.status_code == 400
    assert "window" in resp.text
