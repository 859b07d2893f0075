"""Pure parts of the Kafka/DB helpers: URLs, topic names, headers, jar names."""

from __future__ import annotations

import pytest

from infra.tools import _jar_name
from mesh.db import async_url
from mesh.kafka import HEADER_EVENT_ID, HEADER_EVENT_TYPE, OutgoingEvent, topic_name


def test_async_url_uses_asyncmy_and_the_database() -> None:
    url = async_url("mysql://root@127.0.0.1:13306", "t_abc_orders")
    assert url.drivername == "mysql+asyncmy"
    assert (url.host, url.port, url.username, url.database) == (
        "127.0.0.1",
        13306,
        "root",
        "t_abc_orders",
    )
    assert url.query["charset"] == "utf8mb4"
    assert async_url("mysql+pymysql://u:p@db:3306/ignored").database is None


def test_async_url_rejects_other_schemes() -> None:
    with pytest.raises(ValueError):
        async_url("postgresql://localhost/x")


def test_topic_prefix_is_applied_once() -> None:
    assert topic_name("orders.lifecycle") == "orders.lifecycle"
    assert topic_name("orders.lifecycle", "t1234abcd.") == "t1234abcd.orders.lifecycle"


def test_ecom_headers_come_first_and_cannot_be_overridden() -> None:
    ev = OutgoingEvent(
        topic="t",
        key=b"k",
        payload=b"p",
        event_id="e-1",
        event_type="OrderPlaced",
        headers={HEADER_EVENT_ID: b"forged", "trace": b"x"},
    )
    assert ev.kafka_headers() == [
        (HEADER_EVENT_ID, b"e-1"),
        (HEADER_EVENT_TYPE, b"OrderPlaced"),
        ("trace", b"x"),
    ]


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("spark-sql-kafka-0-10_2.13-4.0.1.jar", "spark-sql-kafka-0-10_2.13"),
        ("zstd-jni-1.5.6-9.jar", "zstd-jni"),
        ("kafka-clients-3.9.1.jar", "kafka-clients"),
        ("jsr305-3.0.0.jar", "jsr305"),
        ("scala-parallel-collections_2.13-1.2.0.jar", "scala-parallel-collections_2.13"),
    ],
)
def test_jar_names_drop_the_version(filename: str, name: str) -> None:
    assert _jar_name(filename) == name
