"""The streaming analytics job against real Kafka, Spark (local[2]), Delta
and Cassandra: a known set of events in, reports equal to numbers computed
by hand out; duplicates counted once, an event beyond the watermark dropped
and counted, malformed payloads quarantined, and a job killed with -9 in the
middle of its batches that, restarted, neither loses nor double-counts.

Needs Kafka and Cassandra: ECOM_TEST_SERVERS=kafka,cassandra. Each job run
starts a Spark JVM (about 20 s here) and stops it.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.core import STACK
from mesh.kafka import make_producer, publish
from svc_analytics import store as report_store
from tests.conftest import Stack
from tests.integration import analytics_support as ev

# Each test runs the Spark job once or twice (a batch took 100 s on a busy
# two-core machine) and its own waits are up to 400 s each: the suite's
# 300 s guard would cut them short, and a test cut off inside a py4j call
# leaves the in-process JVM out of step for the Spark tests after it.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
LATE_SECONDS = 600
PHONE, CASE, TV = 1_000_050, 29_999, 4_599_900  # paise


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake")


def job_env(stack: Stack, lake: Path, name: str) -> dict[str, str]:
    return {
        **os.environ, **stack.env,
        "ECOM_TOPIC_PREFIX": stack.topic_prefix + name + ".",
        "ECOM_KEYSPACE_PREFIX": stack.db_prefix + name + "_",
        "ECOM_LAKE_URL": (lake / name).as_uri(),
        "ECOM_ANALYTICS_PROGRESS_FILE": str(lake / f"{name}-progress.json"),
        "ECOM_ANALYTICS_LATE_SECONDS": str(LATE_SECONDS),
        "ECOM_ANALYTICS_TRIGGER_SECONDS": "1",
        "ECOM_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="module")
def cassandra(stack: Stack) -> Iterator[Any]:
    from cassandra.cluster import Cluster

    hosts = [h.rsplit(":", 1) for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    cluster = Cluster([h for h, _ in hosts], port=int(hosts[0][1]), protocol_version=5)
    yield cluster.connect()
    cluster.shutdown()


def _publish(stack: Stack, prefix: str, envs: list[Any], raw: list[tuple[str, bytes]] = ()) -> None:  # type: ignore[assignment]
    from mesh.kafka import OutgoingEvent, ensure_topics, make_admin
    from pipelines.events import TOPICS

    ensure_topics(make_admin(stack.env["ECOM_KAFKA_BOOTSTRAP"]), list(TOPICS), prefix=prefix)
    out = [ev.outgoing(e, prefix) for e in envs] + [
        OutgoingEvent(topic=prefix + topic, key=b"x", payload=value,
                      event_id=str(uuid.uuid4()), event_type="garbage")
        for topic, value in raw]
    reports = asyncio.run(publish(make_producer(stack.env["ECOM_KAFKA_BOOTSTRAP"]), out))
    assert all(r.delivered for r in reports)


def _runner(stack: Stack, lake: Path, name: str) -> ev.JobRunner:
    log = STACK / "logs" / f"test-{stack.run_id}-analytics-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return ev.JobRunner(job_env(stack, lake, name), log)


def _top(cassandra: Any, ks: str, size: str, start: datetime, scope: str) -> dict[str, tuple]:
    rows = cassandra.execute(
        f"SELECT item_id, units, revenue_paise FROM {ks}.top_items"
        " WHERE window_size = %s AND window_start = %s AND scope = %s", (size, start, scope))
    return {r.item_id: (r.units, r.revenue_paise) for r in rows}


def test_reports_equal_hand_computed_numbers(stack: Stack, lake: Path, cassandra: Any) -> None:
    name = "known"
    prefix = stack.topic_prefix + name + "."
    runner = _runner(stack, lake, name)
    ks = stack.db_prefix + name + "_analytics"
    dup_placed = str(uuid.uuid4())
    dup_cart = str(uuid.uuid4())
    a_lines = [("i-phone", 1, PHONE), ("i-case", 2, CASE)]
    b_lines = [("i-tv", 1, TV), ("i-case", 1, CASE)]
    c_lines = [("i-phone", 2, PHONE)]
    phase1 = [
        ev.item_upserted("i-phone", "mobiles", PHONE, at=at(-60)),
        ev.item_upserted("i-case", "accessories", CASE, at=at(-60)),
        ev.item_upserted("i-tv", "tvs", TV, at=at(-60)),
        ev.order_transition("A", "", "CREATED", a_lines, at=at(1.2)),
        ev.order_transition("A", "CREATED", "PLACED", a_lines, at=at(2.1), event_id=dup_placed),
        # The relay published A's placement twice (same event id).
        ev.order_transition("A", "CREATED", "PLACED", a_lines, at=at(2.1), event_id=dup_placed),
        ev.order_transition("B", "", "CREATED", b_lines, at=at(3)),
        ev.order_transition("B", "CREATED", "PLACED", b_lines, at=at(3.5)),
        ev.order_transition("B", "PLACED", "CANCELLED", b_lines, at=at(20)),
        ev.order_transition("C", "", "CREATED", c_lines, at=at(5)),
        ev.order_transition("C", "CREATED", "PLACED", c_lines, at=at(6)),
        ev.payment_refunded("C", 2 * PHONE, 50_025, at=at(30)),  # partial refund, counts
        ev.order_transition("D", "", "CREATED", [("i-tv", 1, TV)], at=at(7)),
        ev.order_transition("D", "CREATED", "CANCELLED", [("i-tv", 1, TV)], at=at(27)),
        # Late success refunded after D expired: D never counted, nor does this.
        ev.payment_refunded("D", TV, TV, at=at(31)),
        # B's cancellation refund: the cancellation already took B back.
        ev.payment_refunded("B", TV + CASE, TV + CASE, at=at(20.5)),
        ev.cart_added("u-1", "i-phone", 1, at=at(0.5), event_id=dup_cart),
        ev.cart_added("u-1", "i-phone", 1, at=at(0.5), event_id=dup_cart),
        ev.cart_added("u-1", "i-case", 2, at=at(0.7)),
        ev.cart_added("u-2", "i-tv", 1, at=at(2.5)),
        ev.cart_removed("u-2", "i-tv", at=at(2.6)),
        ev.searched("Phone", 10, at=at(0.2)),
        ev.searched("zzz gadget", 0, at=at(0.3)),
        ev.searched("ZZZ   Gadget ", 0, at=at(4)),
        ev.searched("qwerty", 0, at=at(4.5)),
        ev.searched("tv", 3, at=at(2.2)),
    ]
    no_payload = ev.envelope("cart_item_added", ev.events_pb2.CartItemAdded(), at=at(1), key="k")
    no_payload.ClearField("cart_item_added")
    _publish(stack, prefix, phase1, raw=[
        ("orders.lifecycle", b"\xff\xff\xff\xff\xff"),
        ("cart.events", no_payload.SerializeToString()),
    ])
    try:
        runner.run_once()
        # Max event time so far 10:31, so the watermark is 10:21.
        f_lines = [("i-phone", 1, PHONE)]
        phase2 = [
            ev.order_transition("F", "", "CREATED", f_lines, at=at(24)),   # out of order,
            ev.order_transition("F", "CREATED", "PLACED", f_lines, at=at(25)),  # within bound
            ev.order_transition("G", "CREATED", "PLACED", [("i-tv", 3, TV)], at=at(10)),  # beyond
        ]
        _publish(stack, prefix, phase2)
        runner.run_once()
    finally:
        runner.stop_all()

    hour = T0
    assert _top(cassandra, ks, "1h", hour, "*") == {
        "i-phone": (4, 4 * PHONE), "i-case": (2, 2 * CASE), "i-tv": (0, 0)}
    assert _top(cassandra, ks, "1h", hour, "accessories") == {"i-case": (2, 2 * CASE)}
    assert _top(cassandra, ks, "1m", at(2), "*") == {"i-phone": (1, PHONE),
                                                       "i-case": (2, 2 * CASE)}
    assert _top(cassandra, ks, "1m", at(20), "*") == {"i-tv": (-1, -TV), "i-case": (-1, -CASE)}

    rows = cassandra.execute(
        f"SELECT * FROM {ks}.category_revenue WHERE window_size = '1h' AND day = %s",
        (T0.date(),))
    got = {r.category: (r.placed_paise, r.cancelled_paise, r.refunded_paise, r.net_paise,
                        r.net_orders) for r in rows}
    assert got == {
        "mobiles": (4 * PHONE, 0, 50_025, 4 * PHONE - 50_025, 3),
        "accessories": (3 * CASE, CASE, 0, 2 * CASE, 1),
        "tvs": (TV, TV, 0, 0, 0),
    }

    funnel = cassandra.execute(
        f"SELECT * FROM {ks}.funnel WHERE window_size = '1h' AND day = %s", (T0.date(),)).one()
    assert (funnel.searches, funnel.cart_adds, funnel.orders_created, funnel.orders_placed) == (
        5, 3, 5, 4)

    zero = cassandra.execute(
        f"SELECT query, searches FROM {ks}.zero_result_searches"
        " WHERE window_size = '1h' AND window_start = %s", (hour,))
    assert {r.query: r.searches for r in zero} == {"zzz gadget": 2, "qwerty": 1}

    state = cassandra.execute(f"SELECT * FROM {ks}.job_state WHERE job = 'analytics'").one()
    assert (state.dropped_late, state.duplicates, state.quarantined) == (1, 2, 2)
    assert state.watermark.replace(tzinfo=UTC) == at(31) - timedelta(seconds=LATE_SECONDS)

    # The lake: every event once, the late one kept but flagged, quarantine
    # with where each bad record came from.
    from pipelines.spark import build_session

    spark = build_session("ecom-test-analytics-lake", delta=True)
    try:
        settings_lake = (lake / name).as_uri()
        orders = spark.read.format("delta").load(f"{settings_lake}/orders_lifecycle")
        assert orders.count() == 12
        assert orders.select("event_id").distinct().count() == 12
        assert [r.order_id for r in orders.where("late").collect()] == ["G"]
        assert orders.rdd.getNumPartitions() >= 1
        assert "event_date" in spark.sql(
            f"DESCRIBE DETAIL delta.`{settings_lake}/orders_lifecycle`").collect()[0] \
            .partitionColumns
        quarantine = spark.read.format("delta").load(f"{settings_lake}/quarantine").collect()
        assert sorted(r.topic for r in quarantine) == [prefix + "cart.events",
                                                        prefix + "orders.lifecycle"]
        assert all(r.offset is not None and r.partition is not None for r in quarantine)
        assert spark.read.format("delta").load(f"{settings_lake}/cart_events").count() == 4
        assert spark.read.format("delta").load(f"{settings_lake}/search_queries").count() == 5
    finally:
        spark.stop()


def test_kill_9_mid_batch_loses_and_doubles_nothing(stack: Stack, lake: Path,
                                                   cassandra: Any) -> None:
    name = "crash"
    prefix = stack.topic_prefix + name + "."
    ks = stack.db_prefix + name + "_analytics"
    runner = _runner(stack, lake, name)
    orders = 60
    envs = [ev.item_upserted("i-phone", "mobiles", PHONE, at=at(-5))]
    for i in range(orders):
        lines = [("i-phone", 1 + i % 3, PHONE)]
        envs.append(ev.order_transition(f"O{i}", "CREATED", "PLACED", lines,
                                        at=at(i * 0.25)))
    _publish(stack, prefix, envs)
    units = sum(1 + i % 3 for i in range(orders))
    small = {"ECOM_ANALYTICS_MAX_OFFSETS_PER_TRIGGER": "20"}
    try:
        proc = runner.start(once=False, **small)
        # Batch 1 has appended its events to the lake and not yet refreshed
        # the reports, written its state or committed its Kafka offsets.
        ev.wait_for(lambda: "batch 1: landed" in runner.log.read_text(errors="replace"),
                    400, "batch 1 to land in the lake")
        runner.kill(proc)
        assert not re.search(r"batch 1: \d+ new events", runner.log.read_text(errors="replace"))
        runner.run_once(extra=small)
    finally:
        runner.stop_all()

    top = _top(cassandra, ks, "1h", T0, "*")
    assert top == {"i-phone": (units, units * PHONE)}
    state = cassandra.execute(f"SELECT * FROM {ks}.job_state WHERE job = 'analytics'").one()
    assert (state.accepted, state.duplicates, state.dropped_late) == (orders + 1, 0, 0)

    from pipelines.spark import build_session

    spark = build_session("ecom-test-analytics-crash", delta=True)
    try:
        df = spark.read.format("delta").load(f"{(lake / name).as_uri()}/orders_lifecycle")
        assert df.count() == orders
        assert df.select("event_id").distinct().count() == orders
    finally:
        spark.stop()


def test_report_store_reads_what_the_job_wrote(stack: Stack, lake: Path) -> None:
    """svc_analytics' store over the tables the first test filled."""
    ks = stack.db_prefix + "known_analytics"
    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]))
             for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    session = report_store.connect(hosts, ks)
    store = report_store.ReportStore(session)
    try:
        latest = asyncio.run(store.latest_window("top_items", "1h"))
        assert latest == T0
        state = asyncio.run(store.job_state())
        assert state.dropped_late == 1
    finally:
        session.cluster.shutdown()
