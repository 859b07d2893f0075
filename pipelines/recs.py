"""Recommendations training: the event lake -> Spark ALS (implicit feedback)
-> Cassandra under a model version -> svc_recs.

``python -m pipelines.recs --once`` trains and publishes one model and prints
its version and counts as one JSON line (what ``POST
/v1/recommendations:refresh`` runs); ``--every SECONDS`` keeps doing so
(``make up`` runs it under the supervisor as ``recs-job``, every 300 s). On
a cluster::

    spark-submit --master "$ECOM_SPARK_MASTER" --jars <delta jars> \\
        -m pipelines.recs --once            # see README, "Recommendations"

Signals (read from the lake's Delta tables, see docs/analytics.md), each
with a weight and an exponential time decay (half-life
``ECOM_RECS_HALF_LIFE_DAYS``, 30 days, counted back from the newest event in
the lake, so an idle shop's history does not fade to nothing):

=======================================  ======  ==========================
signal                                   weight  lake table
=======================================  ======  ==========================
order placed (per line)                  5.0     orders_lifecycle (to PLACED)
cart add                                 2.0     cart_events (cart_item_added)
wishlist add                             1.0     cart_events (wishlist_item_added)
=======================================  ======  ==========================

Item views and search clicks are not in the events the shop publishes
(``SearchQueryRecorded`` carries the results shown, not what was clicked), so
they are not signals. A (user, item) pair's preference is the sum of its
decayed weights; ALS reads it as confidence ``1 + alpha * preference``.

Outputs, under one model version:

- per user, the top ``ECOM_RECS_TOP_N`` items by ALS score, minus the items
  the user bought, minus scores below ``ECOM_RECS_MIN_SCORE``;
- per category (and ``*`` for all), the items with the largest decayed
  interaction weight (popularity, also the cold-start lists);
- per item, the ``ECOM_RECS_SIMILAR_N`` nearest items by cosine similarity
  of the ALS item factors ("customers who bought this also bought");
- per user, the items bought (the service filters them out of every list).

They are written to Cassandra (svc_recs/store.py), then the pointer flips,
then older versions are dropped. A lease in Cassandra makes sure one
training runs at a time, whichever process (periodic job, any copy of
svc_recs) starts it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mesh.config import ServiceSettings, load_settings
from svc_recs import store as recs_store

if TYPE_CHECKING:
    import numpy as np
    from pyspark.sql import DataFrame, SparkSession

LOG = logging.getLogger("pipelines.recs")

# signal -> weight; stated in the module docstring and docs/recommendations.md.
WEIGHTS: dict[str, float] = {"order": 5.0, "cart": 2.0, "wishlist": 1.0}


def _default_stack() -> Path:
    from infra.core import STACK

    return STACK


class RecsSettings(ServiceSettings):
    """Shared settings plus the job's own (ECOM_LAKE_URL, ECOM_RECS_*)."""

    lake_url: str = ""
    recs_rank: int = Field(default=16, ge=1)
    recs_reg: float = Field(default=0.05, gt=0)
    recs_alpha: float = Field(default=10.0, gt=0)
    recs_iterations: int = Field(default=10, ge=1)
    recs_half_life_days: float = Field(default=30.0, gt=0)
    recs_top_n: int = Field(default=50, ge=1, le=500)
    recs_category_n: int = Field(default=50, ge=1, le=500)
    recs_similar_n: int = Field(default=20, ge=1, le=500)
    # ALS scores below this are noise (items unrelated to the user's taste
    # score near 0 with implicit feedback); they are not listed.
    recs_min_score: float = Field(default=0.05, ge=0)
    recs_interval_seconds: float = Field(default=300.0, gt=0)
    # With --every, the first training waits this long (lets `make up`
    # finish starting everything on a small machine first).
    recs_first_delay_seconds: float = Field(default=60.0, ge=0)
    # With --every, while the lake holds no interactions yet (a new shop,
    # or `make up` before its demo shoppers' events reach the lake), the
    # next training comes this soon rather than a whole interval later.
    recs_empty_retry_seconds: float = Field(default=60.0, gt=0)
    # The training lease expires after this long if its holder dies.
    recs_lease_seconds: int = Field(default=900, ge=30)
    recs_seed: int = 42

    @property
    def lake(self) -> str:
        return (self.lake_url or (_default_stack() / "lake").as_uri()).rstrip("/")


# ---------------------------------------------------------------------------
# interactions from the lake
# ---------------------------------------------------------------------------


def decay_factor(age_seconds: float, half_life_days: float) -> float:
    """The weight left after ``age_seconds``: halves every half-life."""
    return float(0.5 ** (max(age_seconds, 0.0) / (half_life_days * 86_400)))


def _table(spark: SparkSession, lake: str, name: str) -> DataFrame | None:
    from delta.tables import DeltaTable

    url = f"{lake}/{name}"
    try:
        if not DeltaTable.isDeltaTable(spark, url):
            return None
    except Exception:  # noqa: BLE001 - a missing folder on some file systems
        return None
    return spark.read.format("delta").load(url)


def lake_signals(spark: SparkSession, lake: str) -> DataFrame | None:
    """Every interaction event in the lake as (user_id, item_id, signal,
    weight, ts), weight before decay; None when the lake has none yet."""
    from pyspark.sql import functions as F  # noqa: N812

    parts = []
    orders = _table(spark, lake, "orders_lifecycle")
    if orders is not None:
        parts.append(
            orders.where((F.col("to_state") == "ORDER_STATE_PLACED") & (F.col("user_id") != ""))
            .select("user_id", F.explode("lines").alias("l"), F.col("occurred_at").alias("ts"))
            .select("user_id", F.col("l.item_id").alias("item_id"),
                    F.lit("order").alias("signal"), "ts"))
    carts = _table(spark, lake, "cart_events")
    if carts is not None:
        kind = (F.when(F.col("payload") == "cart_item_added", F.lit("cart"))
                .when(F.col("payload") == "wishlist_item_added", F.lit("wishlist")))
        parts.append(carts.where(F.col("user_id") != "").select(
            "user_id", "item_id", kind.alias("signal"), F.col("occurred_at").alias("ts"))
            .where(F.col("signal").isNotNull()))
    if not parts:
        return None
    df = parts[0]
    for part in parts[1:]:
        df = df.unionByName(part)
    weight = F.lit(0.0)
    for name, w in WEIGHTS.items():
        weight = F.when(F.col("signal") == name, F.lit(w)).otherwise(weight)
    return df.where(F.col("item_id").isNotNull() & (F.col("item_id") != "")).withColumn(
        "weight", weight)


def decayed_preferences(signals: DataFrame, half_life_days: float) -> DataFrame:
    """(user, item, weight, ts): per pair, the sum of the signals' weights
    decayed from the newest event in the data; ts is the pair's last event."""
    from pyspark.sql import functions as F  # noqa: N812

    newest = signals.agg(F.max("ts").alias("m")).collect()[0]["m"]
    if newest is None:
        return signals.select(F.col("user_id").alias("user"), F.col("item_id").alias("item"),
                              "weight", "ts").limit(0)
    age = F.lit(newest).cast("double") - F.col("ts").cast("double")
    factor = F.pow(F.lit(0.5), age / F.lit(half_life_days * 86_400.0))
    return (signals.withColumn("w", F.col("weight") * factor)
            .groupBy(F.col("user_id").alias("user"), F.col("item_id").alias("item"))
            .agg(F.sum("w").alias("weight"), F.max("ts").alias("ts")))


def item_categories(spark: SparkSession, lake: str) -> dict[str, str]:
    """item_id -> category from each item's newest catalog event."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    items = _table(spark, lake, "catalog_items")
    if items is None:
        return {}
    items = items.where(F.col("payload") == "item_upserted")
    newest = Window.partitionBy("item_id").orderBy(F.col("version").desc(),
                                                   F.col("occurred_at").desc())
    rows = (items.withColumn("n", F.row_number().over(newest)).where(F.col("n") == 1)
            .select("item_id", "category").collect())
    return {r.item_id: r.category or "unknown" for r in rows}


def bought_items(signals: DataFrame) -> dict[str, list[str]]:
    from pyspark.sql import functions as F  # noqa: N812

    rows = (signals.where(F.col("signal") == "order").groupBy("user_id")
            .agg(F.array_sort(F.collect_set("item_id")).alias("items")).collect())
    return {r.user_id: list(r.items) for r in rows}


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AlsParams:
    rank: int = 16
    reg: float = 0.05
    alpha: float = 10.0
    iterations: int = 10
    seed: int = 42


@dataclass
class Factors:
    """A trained model's factors, indexed by our own ids."""

    users: list[str]
    user_factors: np.ndarray
    items: list[str]
    item_factors: np.ndarray

    def user_index(self) -> dict[str, int]:
        return {u: n for n, u in enumerate(self.users)}

    def item_index(self) -> dict[str, int]:
        return {i: n for n, i in enumerate(self.items)}


def fit_als(prefs: DataFrame, params: AlsParams) -> Factors:
    """ALS with implicit preferences on (user, item, weight); the string ids
    are indexed to ints here and the factors come back to the driver."""
    import numpy as np
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    spark = prefs.sparkSession
    users = sorted(r[0] for r in prefs.select("user").distinct().collect())
    items = sorted(r[0] for r in prefs.select("item").distinct().collect())
    u_idx = spark.createDataFrame([(u, n) for n, u in enumerate(users)],
                                  T.StructType([T.StructField("user", T.StringType()),
                                                T.StructField("u", T.IntegerType())]))
    i_idx = spark.createDataFrame([(i, n) for n, i in enumerate(items)],
                                  T.StructType([T.StructField("item", T.StringType()),
                                                T.StructField("i", T.IntegerType())]))
    data = (prefs.join(F.broadcast(u_idx), "user").join(F.broadcast(i_idx), "item")
            .select("u", "i", F.col("weight").cast("float").alias("weight")))
    als = ALS(rank=params.rank, regParam=params.reg, alpha=params.alpha,
              maxIter=params.iterations, implicitPrefs=True, userCol="u", itemCol="i",
              ratingCol="weight", seed=params.seed, coldStartStrategy="drop",
              numUserBlocks=2, numItemBlocks=2, checkpointInterval=-1)
    model = als.fit(data)
    uf = np.zeros((len(users), params.rank), dtype=np.float32)
    for row in model.userFactors.collect():
        uf[row.id] = row.features
    itf = np.zeros((len(items), params.rank), dtype=np.float32)
    for row in model.itemFactors.collect():
        itf[row.id] = row.features
    return Factors(users, uf, items, itf)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column indexes of the k largest scores, best first."""
    import numpy as np

    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=int), np.zeros((scores.shape[0], 0))
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)


def recommend(factors: Factors, k: int, exclude: dict[str, set[str]], *,
              min_score: float = float("-inf"),
              block: int = 1024) -> dict[str, list[recs_store.Ranked]]:
    """Per user, the k best-scoring items minus ``exclude[user]`` (in blocks
    of users on the driver)."""
    import numpy as np

    out: dict[str, list[recs_store.Ranked]] = {}
    item_idx = factors.item_index()
    for start in range(0, len(factors.users), block):
        users = factors.users[start:start + block]
        scores = factors.user_factors[start:start + block] @ factors.item_factors.T
        for row, user in enumerate(users):
            for item in exclude.get(user, ()):
                if item in item_idx:
                    scores[row, item_idx[item]] = -np.inf
        idx, vals = top_k(scores, k)
        for row, user in enumerate(users):
            out[user] = [recs_store.Ranked(factors.items[j], float(s))
                         for j, s in zip(idx[row], vals[row], strict=True)
                         if np.isfinite(s) and s >= min_score]
    return out


def similar_items(factors: Factors, k: int,
                  block: int = 1024) -> dict[str, list[recs_store.Ranked]]:
    """Per item, the k most similar other items by cosine of the factors."""
    import numpy as np

    f = factors.item_factors
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    unit = np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)
    out: dict[str, list[recs_store.Ranked]] = {}
    for start in range(0, len(factors.items), block):
        sims = unit[start:start + block] @ unit.T
        for row in range(sims.shape[0]):
            sims[row, start + row] = -np.inf
        idx, vals = top_k(sims, k)
        for row in range(sims.shape[0]):
            item = factors.items[start + row]
            out[item] = [recs_store.Ranked(factors.items[j], float(s))
                         for j, s in zip(idx[row], vals[row], strict=True)
                         if np.isfinite(s) and s > 0]
    return out


def popularity(prefs_rows: list[tuple[str, str, float]], categories: dict[str, str],
               k: int) -> dict[str, list[recs_store.Ranked]]:
    """Per category and overall (``*``), items by summed decayed weight."""
    totals: dict[str, float] = {}
    for _, item, weight in prefs_rows:
        totals[item] = totals.get(item, 0.0) + weight
    lists: dict[str, list[tuple[str, float]]] = {recs_store.ALL: []}
    for item, total in totals.items():
        lists[recs_store.ALL].append((item, total))
        lists.setdefault(categories.get(item, "unknown"), []).append((item, total))
    return {cat: [recs_store.Ranked(i, s) for i, s in
                  sorted(rows, key=lambda r: (-r[1], r[0]))[:k]]
            for cat, rows in lists.items()}


# ---------------------------------------------------------------------------
# one training run
# ---------------------------------------------------------------------------


@dataclass
class RunResult:
    model_version: str
    generate_time: str
    users: int
    items: int
    interactions: int
    user_lists: int
    category_lists: int
    similar_lists: int
    dropped_versions: int
    train_seconds: float


def pause_after(result: RunResult | None, settings: RecsSettings, every: float) -> float:
    """Seconds until the next scheduled training: the interval, or the
    short retry while the last training found nothing to learn from."""
    if result is not None and result.interactions == 0:
        return min(every, settings.recs_empty_retry_seconds)
    return every


def build_spark(settings: RecsSettings) -> SparkSession:
    from pipelines.spark import build_session

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return build_session("ecom-recs", delta=True, driver_memory="768m",
                         extra_conf={"spark.databricks.delta.snapshotPartitions": "2"})


def compute_lists(spark: SparkSession, settings: RecsSettings) -> recs_store.ModelLists:
    """Everything a model version publishes, from the lake."""
    signals = lake_signals(spark, settings.lake)
    empty = recs_store.ModelLists({}, {}, {}, {}, recs_store.ModelCounts())
    if signals is None:
        return empty
    signals = signals.persist()
    try:
        prefs = decayed_preferences(signals, settings.recs_half_life_days).persist()
        rows = [(r.user, r.item, float(r.weight)) for r in prefs.collect()]
        if not rows:
            return empty
        categories = item_categories(spark, settings.lake)
        bought = bought_items(signals)
        params = AlsParams(settings.recs_rank, settings.recs_reg, settings.recs_alpha,
                           settings.recs_iterations, settings.recs_seed)
        factors = fit_als(prefs, params)
        prefs.unpersist()
    finally:
        signals.unpersist()
    user_recs = recommend(factors, settings.recs_top_n,
                          {u: set(items) for u, items in bought.items()},
                          min_score=settings.recs_min_score)
    user_recs = {u: recs for u, recs in user_recs.items() if recs}
    category_recs = popularity(rows, categories, settings.recs_category_n)
    similar = {i: s for i, s in similar_items(factors, settings.recs_similar_n).items() if s}
    counts = recs_store.ModelCounts(
        users=len(factors.users), items=len(factors.items), interactions=len(rows),
        user_lists=len(user_recs), category_lists=len(category_recs),
        similar_lists=len(similar))
    return recs_store.ModelLists(user_recs, category_recs, similar, bought, counts,
                                 params=json.dumps(asdict(params)))


def train_and_publish(spark: SparkSession, session: Any, settings: RecsSettings) -> RunResult:
    """Train from the lake and publish one version (the caller holds the lease)."""
    started = time.monotonic()
    generate_time = datetime.now(UTC)
    lists = compute_lists(spark, settings)
    version = recs_store.new_version(generate_time)
    dropped = recs_store.publish(session, version, generate_time, lists)
    c = lists.counts
    result = RunResult(version, generate_time.isoformat(), c.users, c.items, c.interactions,
                       c.user_lists, c.category_lists, c.similar_lists, dropped,
                       round(time.monotonic() - started, 2))
    LOG.info("published %s", json.dumps(asdict(result)))
    return result


def with_lease(session: Any, settings: RecsSettings, *, wait: float,
               work: Callable[[], RunResult]) -> RunResult | None:
    """Run ``work`` holding the training lease; wait up to ``wait`` seconds
    for it (None when it stayed taken)."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}"
    deadline = time.monotonic() + wait
    while not recs_store.try_lease(session, owner, settings.recs_lease_seconds):
        if time.monotonic() >= deadline:
            return None
        time.sleep(1.0)
    try:
        return work()
    finally:
        with contextlib.suppress(Exception):
            recs_store.release_lease(session, owner)


def connect(settings: RecsSettings) -> Any:
    session = recs_store.connect(settings.cassandra_contact_points,
                                 settings.keyspace(recs_store.KEYSPACE))
    recs_store.create_schema(session)
    return session


def run(settings: RecsSettings, *, every: float | None, wait: float) -> int:
    session = connect(settings)
    spark = build_spark(settings)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if every is not None:
            deadline = time.monotonic() + settings.recs_first_delay_seconds
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.5)
        while not stopping:
            result = with_lease(session, settings, wait=wait,
                                work=lambda: train_and_publish(spark, session, settings))
            if every is None:
                if result is None:
                    print(json.dumps({"error": "another training holds the lease"}), flush=True)
                    return 3
                print(json.dumps(asdict(result)), flush=True)
                return 0
            if result is None:
                LOG.info("another training is running; skipping this round")
            pause = pause_after(result, settings, every)
            if pause < every:
                LOG.info("the lake holds no interactions yet; next training in %.0f s", pause)
            deadline = time.monotonic() + pause
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.5)
        return 0
    finally:
        spark.stop()
        session.cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.recs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="train and publish one model")
    mode.add_argument("--every", type=float, metavar="SECONDS",
                      help="train and publish every SECONDS (0: ECOM_RECS_INTERVAL_SECONDS)")
    p.add_argument("--wait", type=float, default=600.0,
                   help="with --once, wait this long for a running training to finish")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s",
                        stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = load_settings(RecsSettings)
    if args.once:
        return run(settings, every=None, wait=args.wait)
    return run(settings, every=args.every or settings.recs_interval_seconds, wait=0.0)


if __name__ == "__main__":
    sys.exit(main())
