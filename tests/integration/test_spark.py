"""Spark reads our Kafka topics: the session from `pipelines.spark` (local
mode, connector jars from the cache, nothing downloaded) and the Kafka
source in batch mode, with keys, payloads and the ecom headers intact."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from mesh.kafka import (
    HEADER_EVENT_TYPE,
    OutgoingEvent,
    delete_topics,
    ensure_topics,
    make_admin,
    make_producer,
    publish,
)
from pipelines.spark import build_session
from tests.conftest import Stack

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = build_session("ecom-test-spark")
    yield session
    session.stop()


async def test_batch_read_of_a_kafka_topic(stack: Stack, spark: SparkSession) -> None:
    bootstrap = stack.env["ECOM_KAFKA_BOOTSTRAP"]
    admin = make_admin(bootstrap)
    (topic,) = ensure_topics(admin, ["spark.orders"], prefix=stack.topic_prefix, partitions=2)
    try:
        events = [
            OutgoingEvent(
                topic=topic,
                key=f"order-{i % 4}".encode(),
                payload=f"amount={i * 100}".encode(),
                event_id=str(uuid.uuid4()),
                event_type="OrderPlaced",
            )
            for i in range(20)
        ]
        assert all(r.delivered for r in await publish(make_producer(bootstrap), events))

        df = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", bootstrap)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .option("includeHeaders", "true")
            .load()
        )
        rows = df.selectExpr(
            "CAST(key AS STRING) AS key",
            "CAST(value AS STRING) AS value",
            "partition",
            "offset",
            f"filter(headers, h -> h.key = '{HEADER_EVENT_TYPE}')[0].value AS event_type",
        ).collect()
        assert sorted((r.key, r.value) for r in rows) == sorted(
            (e.key.decode(), e.payload.decode()) for e in events
        )
        assert {bytes(r.event_type) for r in rows} == {b"OrderPlaced"}

        # An aggregation runs through Spark's shuffle, not just a scan.
        per_key = {
            r.key: r.n
            for r in df.selectExpr("CAST(key AS STRING) AS key")
            .groupBy("key")
            .count()
            .withColumnRenamed("count", "n")
            .collect()
        }
        assert per_key == {f"order-{k}": 5 for k in range(4)}
    finally:
        delete_topics(admin, [topic])


def test_session_is_local_and_quiet(spark: SparkSession) -> None:
    conf = spark.sparkContext.getConf()
    assert spark.sparkContext.master == "local[2]"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.ui.enabled") == "false"
    jars = conf.get("spark.jars") or ""
    assert "spark-sql-kafka-0-10" in jars and "kafka-clients" in jars
    assert conf.get("spark.jars.packages") in (None, "")
