"""Cassandra as the order archive and recommendations will use it: a keyspace
per test run, a table partitioned by user with orders clustered newest first,
prepared statements, and the keyspace dropped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import RoundRobinPolicy

from infra.core import host_port
from tests.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session(stack: Stack) -> Iterator[Session]:
    hosts = [host_port(h, 9042) for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    cluster = Cluster(
        contact_points=hosts,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(), request_timeout=30)},
    )
    s = cluster.connect()
    s.execute(
        f"CREATE KEYSPACE {stack.keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    s.set_keyspace(stack.keyspace)
    try:
        yield s
    finally:
        s.execute(f"DROP KEYSPACE IF EXISTS {stack.keyspace}")
        cluster.shutdown()


def test_release_version_is_5_0(session: Session) -> None:
    row = session.execute("SELECT release_version FROM system.local").one()
    assert row.release_version.startswith("5.0.")


def test_archived_orders_come_back_newest_first(session: Session) -> None:
    session.execute(
        "CREATE TABLE orders_by_user ("
        " user_id text, placed_at timestamp, order_id uuid, state text, total_paise bigint,"
        " PRIMARY KEY ((user_id), placed_at, order_id)"
        ") WITH CLUSTERING ORDER BY (placed_at DESC, order_id ASC)"
    )
    insert = session.prepare(
        "INSERT INTO orders_by_user (user_id, placed_at, order_id, state, total_paise)"
        " VALUES (?, ?, ?, ?, ?)"
    )
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    orders = [(t0 + timedelta(days=i), uuid.uuid4(), "DELIVERED", 1000 * (i + 1))
              for i in range(5)]
    for placed_at, order_id, state, total in orders:
        session.execute(insert, ("u-1", placed_at, order_id, state, total))
    session.execute(insert, ("u-2", t0, uuid.uuid4(), "CANCELLED", 7))

    rows = list(session.execute(
        "SELECT order_id, total_paise FROM orders_by_user WHERE user_id = %s", ("u-1",)))
    assert [r.order_id for r in rows] == [o[1] for o in reversed(orders)]
    assert [r.total_paise for r in rows] == [5000, 4000, 3000, 2000, 1000]

    page = list(session.execute(
        "SELECT order_id FROM orders_by_user WHERE user_id = %s AND placed_at < %s LIMIT 2",
        ("u-1", orders[3][0])))
    assert [r.order_id for r in page] == [orders[2][1], orders[1][1]]
    assert session.execute(
        "SELECT count(*) FROM orders_by_user WHERE user_id = %s", ("u-2",)).one().count == 1
