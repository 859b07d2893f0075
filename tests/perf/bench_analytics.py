"""Benchmark: the streaming analytics job on this machine (local[2]).

1. Throughput: N order placements on one topic, drained once by a plain
   Python confluent-kafka consumer (the baseline: read and parse each
   envelope, nothing else), then processed by the Spark job (``--once``:
   decode, deduplicate, land in Delta, recompute the windows, upsert to
   Cassandra). Prints events/s of each (the job's from Spark's own batch
   durations, and with JVM start-up included) and the ratio.
2. Freshness: with the job running (trigger every second), orders placed
   one at a time, each timed from publish until top-items in Cassandra
   shows its units; p50/p99.

Prints figures; asserts nothing about time. Run with::

    ECOM_BENCH=1 ECOM_TEST_SERVERS=kafka,cassandra \\
        .venv/bin/python -m pytest -s tests/perf/bench_analytics.py
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ecom.events.v1 import events_pb2

from infra.core import STACK
from mesh.kafka import ensure_topics, make_admin, make_consumer, make_producer, publish
from pipelines.events import TOPICS
from tests.conftest import Stack
from tests.integration import analytics_support as ev
from tests.perf import stats

EVENTS = int(os.environ.get("ECOM_BENCH_ANALYTICS_EVENTS", "100000"))
FRESHNESS_SAMPLES = int(os.environ.get("ECOM_BENCH_ANALYTICS_SAMPLES", "6"))
PHONE = 1_000_050


def _env(stack: Stack, lake: Path, name: str) -> dict[str, str]:
    return {**os.environ, **stack.env,
            "ECOM_TOPIC_PREFIX": stack.topic_prefix + name + ".",
            "ECOM_KEYSPACE_PREFIX": stack.db_prefix + name + "_",
            "ECOM_LAKE_URL": (lake / name).as_uri(),
            "ECOM_ANALYTICS_PROGRESS_FILE": str(lake / f"{name}-progress.json"),
            "ECOM_ANALYTICS_TRIGGER_SECONDS": "1",
            "ECOM_ANALYTICS_MAX_OFFSETS_PER_TRIGGER": str(EVENTS + 10),
            "PYTHONUNBUFFERED": "1"}


def _cassandra(stack: Stack):  # type: ignore[no-untyped-def]
    from cassandra.cluster import Cluster

    host, port = stack.env["ECOM_CASSANDRA_HOSTS"].split(",")[0].rsplit(":", 1)
    return Cluster([host], port=int(port), protocol_version=5).connect()


@pytest.mark.integration
def test_job_throughput_against_a_plain_consumer(stack: Stack, tmp_path: Path) -> None:
    name = "bthru"
    prefix = stack.topic_prefix + name + "."
    bootstrap = stack.env["ECOM_KAFKA_BOOTSTRAP"]
    ensure_topics(make_admin(bootstrap), list(TOPICS), prefix=prefix)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    envs = [ev.item_upserted("i-phone", "mobiles", PHONE, at=t0)] + [
        ev.order_transition(f"O{i}", "CREATED", "PLACED", [("i-phone", 1, PHONE)],
                            at=t0 + timedelta(milliseconds=100 * i))
        for i in range(EVENTS)]
    assert all(r.delivered for r in asyncio.run(
        publish(make_producer(bootstrap), [ev.outgoing(e, prefix) for e in envs])))

    # Baseline: drain the orders topic with confluent-kafka, parsing each envelope.
    consumer = make_consumer(bootstrap, f"{prefix}bench-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([prefix + "orders.lifecycle"])
    seen, started = 0, None
    deadline = time.monotonic() + 120
    while seen < EVENTS and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=1.0):
            if msg.error():
                continue
            started = started or time.perf_counter()
            events_pb2.EventEnvelope.FromString(msg.value())
            seen += 1
    plain_s = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    assert seen == EVENTS

    log = STACK / "logs" / f"bench-{stack.run_id}-analytics.log"
    runner = ev.JobRunner(_env(stack, tmp_path, name), log)
    wall = time.perf_counter()
    runner.run_once(timeout=1800)
    wall_s = time.perf_counter() - wall
    progress = json.loads((tmp_path / f"{name}-progress.json").read_text())
    job_rate = float(progress.get("processed_rows_per_second") or 0)
    plain_rate = EVENTS / plain_s if plain_s else float("inf")
    print(f"\nanalytics throughput, {EVENTS} order events (+1 item):")
    print(f"  plain confluent-kafka consumer (parse only): {plain_rate:,.0f} events/s")
    print(f"  Spark job, last batch (Spark's processedRowsPerSecond): {job_rate:,.0f} events/s"
          f"  ratio job/plain = {job_rate / plain_rate:.3f}")
    print(f"  Spark job, whole --once run incl. JVM start: {(EVENTS + 1) / wall_s:,.0f}"
          f" events/s ({wall_s:.0f} s)")
    from tests.perf import report

    report.record("analytics Spark batch vs plain Kafka consumer", job_rate, plain_rate,
                  unit="events/s", better="higher")
    cass = _cassandra(stack)
    try:
        ks = stack.db_prefix + name + "_analytics"
        hours = [t0.replace(minute=0, second=0) + timedelta(hours=h) for h in range(3)]
        total = sum(r.units for hour in hours for r in cass.execute(
            f"SELECT units FROM {ks}.top_items WHERE window_size = '1h' AND window_start = %s"
            " AND scope = '*'", (hour,)))
        assert total == EVENTS
    finally:
        cass.cluster.shutdown()


@pytest.mark.integration
def test_freshness_from_order_placed_to_top_items(stack: Stack, tmp_path: Path) -> None:
    name = "bfresh"
    prefix = stack.topic_prefix + name + "."
    bootstrap = stack.env["ECOM_KAFKA_BOOTSTRAP"]
    ensure_topics(make_admin(bootstrap), list(TOPICS), prefix=prefix)
    producer = make_producer(bootstrap)
    ks = stack.db_prefix + name + "_analytics"
    log = STACK / "logs" / f"bench-{stack.run_id}-analytics-fresh.log"
    runner = ev.JobRunner(_env(stack, tmp_path, name), log)
    cass = _cassandra(stack)
    samples: list[float] = []
    try:
        runner.start(once=False)
        ev.wait_for(lambda: (tmp_path / f"{name}-progress.json").exists(), 300, "job start")
        for i in range(FRESHNESS_SAMPLES):
            now = datetime.now(UTC)
            item = f"i-{i}"
            env = ev.order_transition(f"F{i}", "CREATED", "PLACED", [(item, 1, PHONE)], at=now)
            sent = time.perf_counter()
            assert asyncio.run(publish(producer, [ev.outgoing(env, prefix)]))[0].delivered
            hour = now.replace(minute=0, second=0, microsecond=0)

            def visible(item: str = item, hour: datetime = hour) -> bool:
                try:
                    row = cass.execute(
                        f"SELECT units FROM {ks}.top_items WHERE window_size = '1h' AND"
                        " window_start = %s AND scope = '*' AND item_id = %s",
                        (hour, item)).one()
                except Exception:  # noqa: BLE001 - keyspace not there yet
                    return False
                return row is not None and row.units == 1

            ev.wait_for(visible, 600, f"order F{i} in top-items", interval=0.2)
            samples.append(time.perf_counter() - sent)
    finally:
        runner.stop_all()
        cass.cluster.shutdown()
    print(f"\norder placed -> visible in top-items ({len(samples)} orders, trigger 1 s): "
          f"{stats.line([s * 1000 for s in samples])}")
    from tests.perf import report

    report.record("analytics order placed -> in top-items, p50",
                  stats.percentile([s * 1000 for s in samples], 50), None, unit="ms",
                  better="lower")
