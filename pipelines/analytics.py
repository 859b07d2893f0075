"""The streaming analytics job: Kafka -> Delta Lake event tables -> reports in
the lake and in Cassandra (served by svc_analytics).

``python -m pipelines.analytics`` runs until stopped (``make up`` runs it
under the supervisor); ``--once`` processes what is in Kafka now and exits
(``availableNow``). On a cluster::

    spark-submit --master "$ECOM_SPARK_MASTER" --jars <kafka + delta jars> \\
        -m pipelines.analytics        # see README, "Streaming analytics"

One Structured Streaming query reads every event topic (with the
deployment's topic prefix) and hands each micro-batch to :class:`BatchWriter`:

1. Decode. Each record is decoded inside Spark (a Python UDF) with the
   project's protobuf stubs (pipelines/events.py). Spark's ``from_protobuf``
   needs the ``spark-protobuf_2.13`` jar, which Maven Central as reachable
   here does not carry at any version, so the job cannot load it. An
   undecodable record goes to the ``quarantine`` table with its topic,
   partition and offset, and is counted; the stream goes on.
2. Deduplicate and land. Events are unique by ``event_id``: the batch's
   events minus those an earlier batch landed are appended to their family's
   Delta table (partitioned by ``event_date``) with Delta's idempotent-write
   marker (txnAppId, txnVersion = batch id), so each lands once however
   often the batch is replayed.
3. Watermark. The watermark of batch N is the largest event time of batches
   before N minus the late bound (``ECOM_ANALYTICS_LATE_SECONDS``, default
   600 s), as Spark's ``withWatermark`` defines it. It is stored per batch in
   the lake (``_stream_state``) so a replayed batch sees the same one. An
   event older than the watermark is kept in the lake with ``late = true``
   but left out of every report, and counted as dropped.
4. Reports. Every 1-minute and 1-hour event-time window (Spark's ``window``)
   touched by the batch is recomputed from the lake and its absolute values
   upserted to Cassandra and replaced in the lake's report tables: a
   replayed batch rewrites the same numbers.

The Kafka offsets, the lake and the reports commit in that order per batch,
and each step is idempotent, so a job killed at any point and restarted from
its checkpoint counts every event exactly once.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import logging
import os
import signal
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mesh.config import ServiceSettings, load_settings
from pipelines import events
from svc_analytics import store as report_store

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOG = logging.getLogger("pipelines.analytics")
WINDOWS = report_store.WINDOW_SECONDS
STATE_TABLE = "_stream_state"
QUARANTINE_TABLE = "quarantine"
REPORT_TABLES = ("reports_top_items", "reports_category_revenue", "reports_funnel",
                 "reports_zero_result_searches")


def _default_stack() -> Path:
    from infra.core import STACK

    return STACK


class AnalyticsSettings(ServiceSettings):
    """Shared settings plus the job's own (ECOM_LAKE_URL, ECOM_ANALYTICS_*)."""

    # Where the lake lives: a local folder by default, any Hadoop-compatible
    # URL (hdfs://, s3a://) on a cluster.
    lake_url: str = ""
    analytics_checkpoint_url: str = ""
    analytics_progress_file: str = ""
    # Events older than (largest event time seen) - this are dropped.
    analytics_late_seconds: int = Field(default=600, ge=0)
    # One micro-batch at most this often: leaves the 2-core box usable.
    analytics_trigger_seconds: float = Field(default=30.0, gt=0)
    analytics_max_offsets_per_trigger: int = Field(default=50_000, ge=1)
    analytics_shuffle_partitions: int = Field(default=2, ge=1)

    @property
    def lake(self) -> str:
        url = self.lake_url or (_default_stack() / "lake").as_uri()
        return url.rstrip("/")

    @property
    def checkpoint(self) -> str:
        return self.analytics_checkpoint_url or f"{self.lake}/_checkpoints/analytics"

    @property
    def progress_file(self) -> Path:
        return Path(self.analytics_progress_file
                    or _default_stack() / "run" / "analytics-progress.json")


def table_url(settings: AnalyticsSettings, name: str) -> str:
    return f"{settings.lake}/{name}"


# ---------------------------------------------------------------------------
# decoding inside Spark
# ---------------------------------------------------------------------------


def decode_column(prefix: str):  # type: ignore[no-untyped-def]
    """A Spark (row-at-a-time Python) UDF: (topic, value) -> struct of
    DECODED_COLUMNS, run by the executors' Python workers."""
    from pyspark.sql import functions as F  # noqa: N812

    def decode(topic: str, value: bytes | None) -> dict[str, Any]:
        row = events.decode_record(topic, bytes(value) if value is not None else None, prefix)
        if row.get("error") is None:
            row["raw"] = None  # only quarantine keeps the bytes
        return row

    return F.udf(decode, events.DECODED_DDL)


# ---------------------------------------------------------------------------
# the lake
# ---------------------------------------------------------------------------

LAKE_EXTRA = [("late", "boolean"), ("ingest_batch", "bigint")]


def create_tables(spark: SparkSession, settings: AnalyticsSettings) -> None:
    """Every lake table, created empty when missing (only the missing ones:
    a CREATE of an existing Delta table still costs a Spark job, seconds on
    a busy 2-core machine)."""
    from delta.tables import DeltaTable

    tables: dict[str, tuple[str, str]] = {}
    for family in events.FAMILY_COLUMNS:
        ddl = events.family_ddl(family) + ", " + ", ".join(f"`{n}` {t}" for n, t in LAKE_EXTRA)
        tables[family] = (ddl, "event_date")
    q = ", ".join(f"`{n}` {t}" for n, t in events.QUARANTINE_COLUMNS)
    tables[QUARANTINE_TABLE] = (f"{q}, `ingest_batch` bigint", "quarantined_date")
    tables[STATE_TABLE] = (
        "batch_id bigint, max_event_time timestamp, watermark timestamp, accepted bigint,"
        " dropped_late bigint, duplicates bigint, quarantined bigint, batch_time timestamp", "")
    window = "window_size string, window_start timestamp, window_end timestamp"
    tables["reports_top_items"] = (
        f"{window}, scope string, item_id string, category string, units bigint,"
        " revenue_paise bigint", "window_size")
    tables["reports_category_revenue"] = (
        f"{window}, category string, placed_paise bigint, cancelled_paise bigint,"
        " refunded_paise bigint, net_paise bigint, net_orders bigint", "window_size")
    tables["reports_funnel"] = (
        f"{window}, searches bigint, cart_adds bigint, orders_created bigint,"
        " orders_placed bigint", "window_size")
    tables["reports_zero_result_searches"] = (
        f"{window}, query string, searches bigint", "window_size")
    for name, (ddl, partition) in tables.items():
        url = table_url(settings, name)
        if DeltaTable.isDeltaTable(spark, url):
            continue
        parts = f" PARTITIONED BY ({partition})" if partition else ""
        spark.sql(f"CREATE TABLE IF NOT EXISTS delta.`{url}` ({ddl}) USING delta{parts}")


def _ts_literal(value: datetime) -> str:
    return "TIMESTAMP '" + value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"


class BatchWriter:
    """foreachBatch: land one micro-batch in the lake and refresh the reports."""

    def __init__(self, spark: SparkSession, settings: AnalyticsSettings, cassandra: Any) -> None:
        self.spark = spark
        self.settings = settings
        self.cassandra = cassandra
        self.late = timedelta(seconds=settings.analytics_late_seconds)
        self._prepare()

    def _prepare(self) -> None:
        c = self.cassandra
        self.put_top = c.prepare(
            "INSERT INTO top_items (window_size, window_start, scope, item_id, category, units,"
            " revenue_paise) VALUES (?, ?, ?, ?, ?, ?, ?)")
        self.put_window = c.prepare(
            "INSERT INTO report_windows (report, window_size, window_start) VALUES (?, ?, ?)")
        self.put_category = c.prepare(
            "INSERT INTO category_revenue (window_size, day, window_start, category,"
            " placed_paise, cancelled_paise, refunded_paise, net_paise, net_orders)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self.put_funnel = c.prepare(
            "INSERT INTO funnel (window_size, day, window_start, searches, cart_adds,"
            " orders_created, orders_placed) VALUES (?, ?, ?, ?, ?, ?, ?)")
        self.put_zero = c.prepare(
            "INSERT INTO zero_result_searches (window_size, window_start, query, searches)"
            " VALUES (?, ?, ?, ?)")
        self.put_state = c.prepare(
            "INSERT INTO job_state (job, watermark, max_event_time, last_batch_id,"
            " last_batch_time, accepted, dropped_late, duplicates, quarantined)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")

    def url(self, name: str) -> str:
        return table_url(self.settings, name)

    # -- one micro-batch ----------------------------------------------------
    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F  # noqa: N812

        started = time.monotonic()
        batch = batch.persist()
        try:
            prev, existing = self._state_before(batch_id)
            LOG.info("batch %s: started", batch_id)
            quarantined = self._quarantine(batch, batch_id)
            LOG.info("batch %s: %s quarantined", batch_id, quarantined)
            good = batch.where(F.col("error").isNull())
            total_good = good.count()
            good = good.dropDuplicates(["event_id"])
            watermark = prev["max_event_time"] - self.late if prev["max_event_time"] else None
            flagged = good.withColumn(
                "late", F.lit(False) if watermark is None
                else F.col("occurred_at") < F.lit(watermark)).withColumn(
                "ingest_batch", F.lit(batch_id).cast("bigint")).persist()
            new_counts = self._land(flagged, batch_id)
            LOG.info("batch %s: landed %s", batch_id, new_counts)
            accepted = new_counts["accepted"]
            dropped = new_counts["late"]
            duplicates = total_good - accepted - dropped
            max_seen = new_counts["max_event_time"]
            max_event = max(filter(None, [prev["max_event_time"], max_seen]), default=None)
            state = existing or {
                "batch_id": batch_id,
                "max_event_time": max_event,
                "watermark": max_event - self.late if max_event else None,
                "accepted": prev["accepted"] + accepted,
                "dropped_late": prev["dropped_late"] + dropped,
                "duplicates": prev["duplicates"] + duplicates,
                "quarantined": prev["quarantined"] + quarantined,
                "batch_time": datetime.now(UTC),
            }
            if existing is None:
                self._save_state(state)
            self._refresh_reports(flagged)
            self.cassandra.execute(self.put_state, (
                report_store.JOB, state["watermark"], state["max_event_time"], batch_id,
                state["batch_time"], state["accepted"], state["dropped_late"],
                state["duplicates"], state["quarantined"]))
            flagged.unpersist()
            LOG.info("batch %s: %s new events, %s late, %s duplicates, %s quarantined in %.1fs",
                     batch_id, accepted, dropped, duplicates, quarantined,
                     time.monotonic() - started)
        finally:
            batch.unpersist()

    def _state_before(self, batch_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The cumulative state after the last batch before this one, and this
        batch's own row when a previous attempt already wrote it."""
        rows = self.spark.sql(
            f"SELECT * FROM delta.`{self.url(STATE_TABLE)}` WHERE batch_id <= {batch_id}"
            " ORDER BY batch_id DESC LIMIT 2").collect()
        existing = next((r.asDict() for r in rows if r.batch_id == batch_id), None)
        before = next((r.asDict() for r in rows if r.batch_id < batch_id), None)
        zero: dict[str, Any] = {"max_event_time": None, "accepted": 0, "dropped_late": 0,
                                "duplicates": 0, "quarantined": 0}
        prev = before or zero
        if prev["max_event_time"] is not None:
            prev["max_event_time"] = prev["max_event_time"].replace(tzinfo=UTC)
        if existing is not None:
            for k in ("max_event_time", "watermark", "batch_time"):
                if existing[k] is not None:
                    existing[k] = existing[k].replace(tzinfo=UTC)
        return prev, existing

    def _save_state(self, state: dict[str, Any]) -> None:
        from pyspark.sql import Row

        df = self.spark.createDataFrame([Row(**state)], schema=(
            "batch_id bigint, max_event_time timestamp, watermark timestamp, accepted bigint,"
            " dropped_late bigint, duplicates bigint, quarantined bigint,"
            " batch_time timestamp"))
        df.write.format("delta").mode("append").save(self.url(STATE_TABLE))

    def _quarantine(self, batch: DataFrame, batch_id: int) -> int:
        from pyspark.sql import functions as F  # noqa: N812

        bad = batch.where(F.col("error").isNotNull()).select(
            *[n for n, _ in events.QUARANTINE_COLUMNS if n != "quarantined_date"],
            F.to_date(F.col("kafka_time")).alias("quarantined_date"),
            F.lit(batch_id).cast("bigint").alias("ingest_batch"))
        n = bad.count()
        if n:
            # A Kafka offset belongs to one batch; a replay of the batch is
            # skipped by Delta's idempotent-write marker.
            (bad.write.format("delta").mode("append")
             .option("txnAppId", "ecom-analytics:quarantine").option("txnVersion", batch_id)
             .save(self.url(QUARANTINE_TABLE)))
        return n

    def _land(self, flagged: DataFrame, batch_id: int) -> dict[str, Any]:
        """Append the events not yet in the lake, once per batch.

        New means: no row with this event id from an *earlier* batch. The
        append carries Delta's idempotent-write marker (txnAppId = the table,
        txnVersion = the batch id), so a replay of a batch whose append had
        committed writes nothing, and computes the same new set and counts."""
        from pyspark.sql import functions as F  # noqa: N812

        per_family = {r.family: r for r in flagged.groupBy("family").agg(
            F.min("event_date").alias("d0"), F.max("event_date").alias("d1")).collect()}
        accepted = late = 0
        max_event: datetime | None = None
        for family, bounds in per_family.items():
            cols = [n for n, _ in events.ENVELOPE_COLUMNS] + \
                [n for n, _ in events.FAMILY_COLUMNS[family]] + [n for n, _ in LAKE_EXTRA]
            rows = flagged.where(F.col("family") == family).select(*cols)
            seen = (self.spark.read.format("delta").load(self.url(family))
                    .where(F.col("event_date").between(bounds.d0, bounds.d1)
                           & (F.col("ingest_batch") != batch_id))
                    .select("event_id"))
            new = rows.join(seen, "event_id", "left_anti").select(*cols).persist()
            (new.write.format("delta").mode("append")
             .option("txnAppId", f"ecom-analytics:{family}").option("txnVersion", batch_id)
             .save(self.url(family)))
            r = new.agg(F.count(F.when(~F.col("late"), 1)).alias("ok"),
                        F.count(F.when(F.col("late"), 1)).alias("late"),
                        F.max("occurred_at").alias("mx")).collect()[0]
            new.unpersist()
            accepted += r.ok
            late += r.late
            if r.mx is not None:
                mx = r.mx.replace(tzinfo=UTC)
                max_event = mx if max_event is None else max(max_event, mx)
        return {"accepted": accepted, "late": late, "max_event_time": max_event}

    # -- reports ------------------------------------------------------------
    def _refresh_reports(self, flagged: DataFrame) -> None:
        """Recompute every window the batch's accepted events fall in (a
        replayed batch recomputes the same windows: the late flags come from
        the stored watermark). The sources are read once for the widest
        range, and each report table is written once for both sizes."""
        from pyspark.sql import functions as F  # noqa: N812

        r = (flagged.where(F.col("family").isin(
            "orders_lifecycle", "payments_events", "cart_events", "search_queries")
            & ~F.col("late"))
            .agg(F.min("occurred_at").alias("a"), F.max("occurred_at").alias("b")).collect()[0])
        if r.a is None:
            return
        lo, hi = r.a.replace(tzinfo=UTC), r.b.replace(tzinfo=UTC)
        ranges = {size: (_floor(lo, seconds), _floor(hi, seconds) + timedelta(seconds=seconds))
                  for size, seconds in WINDOWS.items()}
        start = min(a for a, _ in ranges.values())
        end = max(b for _, b in ranges.values())
        sources = {family: self._events(family, start, end).persist() for family in (
            "orders_lifecycle", "payments_events", "cart_events", "search_queries")}
        categories = self._categories().persist()
        try:
            parts: dict[str, list[DataFrame]] = {name: [] for name in REPORT_TABLES}
            for size, (s0, s1) in ranges.items():
                for name, df in self._reports(sources, categories, WINDOWS[size], s0, s1).items():
                    parts[name].append(df.withColumn("window_size", F.lit(size)))
            where = " OR ".join(
                f"(window_size = '{size}' AND window_start >= {_ts_literal(s0)}"
                f" AND window_start < {_ts_literal(s1)})" for size, (s0, s1) in ranges.items())
            collected: dict[str, list[Any]] = {}
            for name, dfs in parts.items():
                df = dfs[0]
                for other in dfs[1:]:
                    df = df.unionByName(other)
                df = df.persist()
                (df.write.format("delta").mode("overwrite").option("replaceWhere", where)
                 .save(self.url(name)))
                collected[name] = df.collect()
                df.unpersist()
            self._upsert_cassandra(collected)
            LOG.info("reports refreshed for %s", ", ".join(
                f"{size} {s0:%Y-%m-%d %H:%M}..{s1:%H:%M}" for size, (s0, s1) in ranges.items()))
        finally:
            for df in sources.values():
                df.unpersist()
            categories.unpersist()

    def _events(self, family: str, start: datetime, end: datetime) -> DataFrame:
        from pyspark.sql import functions as F  # noqa: N812

        return (self.spark.read.format("delta").load(self.url(family))
                .where(F.col("event_date").between(start.date(), end.date())
                       & (F.col("occurred_at") >= F.lit(start))
                       & (F.col("occurred_at") < F.lit(end)) & ~F.col("late")))

    def _reports(self, sources: dict[str, DataFrame], categories: DataFrame, seconds: int,
                 start: datetime, end: datetime) -> dict[str, DataFrame]:
        """The four reports for windows of `seconds` starting in [start, end)."""
        from pyspark.sql import functions as F  # noqa: N812

        dur = f"{seconds} seconds"

        def win(df: DataFrame) -> DataFrame:
            return (df.where((F.col("occurred_at") >= F.lit(start))
                             & (F.col("occurred_at") < F.lit(end)))
                    .withColumn("w", F.window("occurred_at", dur))
                    .withColumn("window_start", F.col("w.start"))
                    .withColumn("window_end", F.col("w.end")))

        orders = win(sources["orders_lifecycle"])
        # Each placed order adds its lines, each cancellation of a placed order
        # takes them back (sign -1), in the window of the transition.
        signed = orders.where(
            (F.col("to_state") == "ORDER_STATE_PLACED")
            | ((F.col("to_state") == "ORDER_STATE_CANCELLED")
               & (F.col("from_state") == "ORDER_STATE_PLACED"))
        ).withColumn("sign", F.when(F.col("to_state") == "ORDER_STATE_PLACED", 1).otherwise(-1))
        lines = (signed.select("window_start", "window_end", "order_id", "sign",
                               F.explode("lines").alias("l"))
                 .select("window_start", "window_end", "order_id", "sign",
                         F.col("l.item_id").alias("item_id"),
                         (F.col("l.quantity") * F.col("sign")).alias("units"),
                         (F.col("l.line_total_paise") * F.col("sign")).alias("paise"))
                 .join(categories, "item_id", "left")
                 .withColumn("category", F.coalesce("category", F.lit("unknown"))))
        per_item = lines.groupBy("window_start", "window_end", "item_id", "category").agg(
            F.sum("units").alias("units"), F.sum("paise").alias("revenue_paise"))
        top = (per_item.withColumn("scope", F.lit(report_store.ALL_CATEGORIES))
               .unionByName(per_item.withColumn("scope", F.col("category"))))

        refunds = self._refunds(win(sources["payments_events"]), categories)
        cat = (lines.groupBy("window_start", "window_end", "category").agg(
            F.sum(F.when(F.col("sign") > 0, F.col("paise")).otherwise(0)).alias("placed_paise"),
            F.sum(F.when(F.col("sign") < 0, -F.col("paise")).otherwise(0))
            .alias("cancelled_paise"),
            F.countDistinct(F.when(F.col("sign") > 0, F.col("order_id"))).alias("placed_n"),
            F.countDistinct(F.when(F.col("sign") < 0, F.col("order_id"))).alias("cancelled_n"))
            .join(refunds, ["window_start", "window_end", "category"], "full_outer")
            .na.fill(0, ["placed_paise", "cancelled_paise", "placed_n", "cancelled_n",
                         "refunded_paise"])
            .select("window_start", "window_end", "category",
                    F.col("placed_paise").cast("bigint").alias("placed_paise"),
                    F.col("cancelled_paise").cast("bigint").alias("cancelled_paise"),
                    F.col("refunded_paise").cast("bigint").alias("refunded_paise"),
                    (F.col("placed_paise") - F.col("cancelled_paise") - F.col("refunded_paise"))
                    .cast("bigint").alias("net_paise"),
                    (F.col("placed_n") - F.col("cancelled_n")).cast("bigint")
                    .alias("net_orders")))

        searches = win(sources["search_queries"])
        carts = win(sources["cart_events"]).where(F.col("payload") == "cart_item_added")
        funnel_parts = [
            searches.groupBy("window_start", "window_end").agg(F.count("*").alias("searches")),
            carts.groupBy("window_start", "window_end").agg(F.count("*").alias("cart_adds")),
            orders.where(F.col("to_state") == "ORDER_STATE_CREATED")
            .groupBy("window_start", "window_end").agg(F.count("*").alias("orders_created")),
            orders.where(F.col("to_state") == "ORDER_STATE_PLACED")
            .groupBy("window_start", "window_end").agg(F.count("*").alias("orders_placed")),
        ]
        funnel = funnel_parts[0]
        for part in funnel_parts[1:]:
            funnel = funnel.join(part, ["window_start", "window_end"], "full_outer")
        funnel = funnel.na.fill(0, ["searches", "cart_adds", "orders_created", "orders_placed"])

        normalize = F.lower(F.trim(F.regexp_replace("query", r"\s+", " ")))
        zero = (searches.where((F.col("total_size") == 0) & (F.col("page_number") == 0))
                .withColumn("query", normalize)
                .groupBy("window_start", "window_end", "query").agg(F.count("*").alias("searches")))

        return {
            "reports_top_items": top.select(
                "window_start", "window_end", "scope", "item_id", "category",
                F.col("units").cast("bigint").alias("units"),
                F.col("revenue_paise").cast("bigint").alias("revenue_paise")),
            "reports_category_revenue": cat,
            "reports_funnel": funnel,
            "reports_zero_result_searches": zero,
        }

    def _categories(self) -> DataFrame:
        """item_id -> category, from the newest catalog event of each item."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F  # noqa: N812

        items = (self.spark.read.format("delta").load(self.url("catalog_items"))
                 .where(F.col("payload") == "item_upserted"))
        newest = Window.partitionBy("item_id").orderBy(F.col("version").desc(),
                                                       F.col("occurred_at").desc())
        return (items.withColumn("n", F.row_number().over(newest)).where(F.col("n") == 1)
                .select("item_id", "category"))

    def _refunds(self, payments: DataFrame, categories: DataFrame) -> DataFrame:
        """Refunds of orders placed and not cancelled, per category and window.

        A cancelled placed order already takes its whole value back (and its
        refund is that money), and an order never placed never counted (a
        late payment refunded after expiry): neither refund counts again.
        A refund spread over an order of several categories is split in
        proportion to the line totals, in whole paise, the remainder to the
        largest line."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F  # noqa: N812

        refunds = (payments.where(F.col("payload") == "payment_refunded")
                   .select("window_start", "window_end", "order_id", "refund_id",
                           "refund_paise"))
        orders = self.spark.read.format("delta").load(self.url("orders_lifecycle")).where(
            ~F.col("late"))
        placed = orders.where(F.col("to_state") == "ORDER_STATE_PLACED").select(
            "order_id", "lines").dropDuplicates(["order_id"])
        cancelled = orders.where((F.col("to_state") == "ORDER_STATE_CANCELLED")
                                 & (F.col("from_state") == "ORDER_STATE_PLACED")) \
            .select("order_id").distinct()
        eligible = refunds.join(cancelled, "order_id", "left_anti").join(placed, "order_id")
        lines = (eligible.select("window_start", "window_end", "order_id", "refund_id",
                                 "refund_paise", F.posexplode("lines").alias("pos", "l"))
                 .select("window_start", "window_end", "refund_id", "refund_paise", "pos",
                         F.col("l.item_id").alias("item_id"),
                         F.col("l.line_total_paise").alias("line_paise")))
        per_refund = Window.partitionBy("refund_id")
        rank = Window.partitionBy("refund_id").orderBy(F.col("line_paise").desc(), "pos")
        shared = (lines.withColumn("order_paise", F.sum("line_paise").over(per_refund))
                  .withColumn("share", F.when(F.col("order_paise") > 0, F.floor(
                      F.col("refund_paise") * F.col("line_paise") / F.col("order_paise")))
                      .otherwise(0).cast("bigint")))
        shared = (shared.withColumn("rest", F.col("refund_paise")
                                    - F.sum("share").over(per_refund))
                  .withColumn("share", F.col("share") + F.when(
                      F.row_number().over(rank) == 1, F.col("rest")).otherwise(0)))
        return (shared.join(categories, "item_id", "left")
                .withColumn("category", F.coalesce("category", F.lit("unknown")))
                .groupBy("window_start", "window_end", "category")
                .agg(F.sum("share").cast("bigint").alias("refunded_paise")))

    def _upsert_cassandra(self, collected: dict[str, list[Any]]) -> None:
        from cassandra.concurrent import execute_concurrent_with_args

        def utc(v: datetime) -> datetime:
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v

        top = collected["reports_top_items"]
        execute_concurrent_with_args(self.cassandra, self.put_top, [
            (r.window_size, utc(r.window_start), r.scope, r.item_id, r.category, int(r.units or 0),
             int(r.revenue_paise or 0)) for r in top], concurrency=32, raise_on_first_error=True)
        windows = {("top_items", r.window_size, utc(r.window_start)) for r in top} | {
            ("zero_result_searches", r.window_size, utc(r.window_start))
            for r in collected["reports_zero_result_searches"]}
        execute_concurrent_with_args(self.cassandra, self.put_window, sorted(windows),
            concurrency=32,
            raise_on_first_error=True)
        execute_concurrent_with_args(self.cassandra, self.put_category, [
            (r.window_size, _day(r.window_start), utc(r.window_start), r.category,
             int(r.placed_paise), int(r.cancelled_paise), int(r.refunded_paise), int(r.net_paise),
             int(r.net_orders)) for r in collected["reports_category_revenue"]],
            concurrency=32, raise_on_first_error=True)
        execute_concurrent_with_args(self.cassandra, self.put_funnel, [
            (r.window_size, _day(r.window_start), utc(r.window_start), int(r.searches),
             int(r.cart_adds), int(r.orders_created), int(r.orders_placed))
            for r in collected["reports_funnel"]], concurrency=32, raise_on_first_error=True)
        execute_concurrent_with_args(self.cassandra, self.put_zero, [
            (r.window_size, utc(r.window_start), r.query, int(r.searches))
            for r in collected["reports_zero_result_searches"]], concurrency=32,
            raise_on_first_error=True)


def _floor(value: datetime, seconds: int) -> datetime:
    epoch = int(value.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def _day(value: datetime) -> date:
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).date()


# ---------------------------------------------------------------------------
# progress for `python -m infra status`
# ---------------------------------------------------------------------------


def progress_summary(progress: dict[str, Any] | None, prefix: str) -> dict[str, Any]:
    """The parts of a StreamingQueryProgress the status command shows: last
    batch, rates, and lag per topic (latest offset minus processed offset)."""
    if not progress:
        return {}
    lag: dict[str, int] = {}
    for source in progress.get("sources", []):
        end = _offsets(source.get("endOffset"))
        latest = _offsets(source.get("latestOffset"))
        for topic, parts in latest.items():
            name = events.base_topic(topic, prefix)
            done = end.get(topic, {})
            lag[name] = lag.get(name, 0) + sum(
                max(0, int(off) - int(done.get(p, 0))) for p, off in parts.items())
    return {
        "last_batch_id": progress.get("batchId"),
        "last_batch_time": progress.get("timestamp"),
        "input_rows": progress.get("numInputRows"),
        "input_rows_per_second": round(float(progress.get("inputRowsPerSecond") or 0), 1),
        "processed_rows_per_second": round(
            float(progress.get("processedRowsPerSecond") or 0), 1),
        "batch_duration_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        "lag": lag,
    }


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    if not value:
        return {}
    if isinstance(value, str):
        # The JSON of the Kafka source, or (pyspark's progress objects turn
        # nested JSON into str(dict)) a Python literal of it.
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return {}
    return value if isinstance(value, dict) else {}


def write_progress(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------


def start_query(spark: SparkSession, settings: AnalyticsSettings, cassandra: Any, *,
                once: bool) -> Any:
    """Create the tables and start the streaming query."""
    from pyspark.sql import functions as F  # noqa: N812

    create_tables(spark, settings)
    topics = [settings.topic(t) for t in events.TOPICS]
    source = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
              .option("subscribe", ",".join(topics))
              .option("startingOffsets", "earliest")
              .option("failOnDataLoss", "false")
              .option("maxOffsetsPerTrigger", str(settings.analytics_max_offsets_per_trigger))
              .load())
    decode = decode_column(settings.topic_prefix)
    envelope = [n for n, _ in events.DECODED_COLUMNS
                if n not in ("topic", "partition", "offset", "kafka_time")]
    # One task per Kafka partition would start a Python worker for each of
    # the ~18 topic partitions every batch; two tasks suit local[2].
    decoded = source.coalesce(settings.analytics_shuffle_partitions).select(
        "topic", "partition", "offset", F.col("timestamp").alias("kafka_time"),
        decode("topic", "value").alias("d")).select(
        "topic", "partition", "offset", "kafka_time", *[F.col(f"d.{n}") for n in envelope])
    writer = (decoded.writeStream.foreachBatch(BatchWriter(spark, settings, cassandra))
              .option("checkpointLocation", settings.checkpoint)
              .queryName("ecom-analytics"))
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{settings.analytics_trigger_seconds} seconds")
    return writer.start()


def build_spark(settings: AnalyticsSettings) -> SparkSession:
    from pipelines.spark import build_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return build_session(
        "ecom-analytics", delta=True, shuffle_partitions=settings.analytics_shuffle_partitions,
        driver_memory="768m",
        extra_conf={
            # Small Delta tables: few files, no stats collection storms.
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.sql.adaptive.enabled": "true",
        })


def ensure_topics(settings: AnalyticsSettings) -> None:
    from mesh.kafka import ensure_topics as ensure
    from mesh.kafka import make_admin

    ensure(make_admin(settings.kafka_bootstrap), list(events.TOPICS),
           prefix=settings.topic_prefix)


def run(settings: AnalyticsSettings, *, once: bool = False) -> int:
    """Run the job (until stopped, or once over what Kafka holds now)."""
    ensure_topics(settings)
    session = report_store.connect(settings.cassandra_contact_points,
                                   settings.keyspace(report_store.KEYSPACE))
    report_store.create_schema(session)
    spark = build_spark(settings)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    query = start_query(spark, settings, session, once=once)
    state = "running"
    try:
        while query.isActive and not stopping:
            query.awaitTermination(2)
            write_progress(settings.progress_file, {
                "pid": os.getpid(), "state": state, "updated": datetime.now(UTC).isoformat(),
                "trigger_seconds": settings.analytics_trigger_seconds,
                "late_seconds": settings.analytics_late_seconds, "lake": settings.lake,
                **progress_summary(query.lastProgress, settings.topic_prefix),
                **_job_state(session)})
        if query.exception():
            raise RuntimeError(str(query.exception()))
        return 0
    finally:
        with contextlib.suppress(Exception):
            query.stop()
        write_progress(settings.progress_file, {
            "pid": os.getpid(), "state": "stopped", "updated": datetime.now(UTC).isoformat(),
            **progress_summary(query.lastProgress, settings.topic_prefix),
            **_job_state(session)})
        spark.stop()
        session.cluster.shutdown()


def _job_state(session: Any) -> dict[str, Any]:
    try:
        row = session.execute("SELECT * FROM job_state WHERE job = %s",
                              (report_store.JOB,)).one()
    except Exception:  # noqa: BLE001 - status is best effort
        return {}
    if row is None:
        return {}
    return {"watermark": row.watermark, "dropped_late": row.dropped_late,
            "quarantined": row.quarantined, "duplicates": row.duplicates,
            "accepted": row.accepted}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.analytics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--once", action="store_true",
                   help="process what Kafka holds now (availableNow), then exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = load_settings(AnalyticsSettings)
    return run(settings, once=args.once)


if __name__ == "__main__":
    sys.exit(main())
