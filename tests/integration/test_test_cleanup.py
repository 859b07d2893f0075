"""The end-of-session clean-up (`tests/run_data.drop_run_data`): it
drops exactly one run's names from every server, leaves other runs' data and
un-prefixed data alone, and a server that is down or hangs holds up nothing.

The run cleaned here is a second `Stack()` with its own run id, so the real
session's data (where the services of this run live) is never at risk."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing

import pymongo
import pymysql  # type: ignore[import-untyped]  # no stubs installed
import pytest
import redis
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import RoundRobinPolicy
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from elasticsearch import Elasticsearch

from infra.core import host_port
from mesh.kafka import delete_topics, ensure_topics, make_admin
from tests.conftest import Stack
from tests.run_data import drop_run_data

pytestmark = pytest.mark.integration

SERVERS = ["mariadb", "redis", "ferretdb", "kafka", "elasticsearch", "cassandra"]
REDIS_KEYS = 1200  # more than one SCAN page and one UNLINK batch


def _eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Kafka deletes topics asynchronously: wait (bounded) for `check`."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout}s")
        time.sleep(0.2)


@pytest.fixture
def mysql(stack: Stack) -> Iterator[pymysql.cursors.Cursor]:
    host, port = host_port(stack.env["ECOM_MYSQL_URL"], 3306)
    conn = pymysql.connect(host=host, port=port, user="root", autocommit=True)
    with closing(conn), conn.cursor() as cur:
        yield cur


@pytest.fixture
def cassandra(stack: Stack) -> Iterator[Session]:
    hosts = [host_port(h, 9042) for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    cluster = Cluster(contact_points=hosts, execution_profiles={
        EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy(),
                                               request_timeout=30)})
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()


def _databases(cur: pymysql.cursors.Cursor) -> set[str]:
    cur.execute("SHOW DATABASES")
    return {row[0] for row in cur.fetchall()}


def _keyspaces(session: Session) -> set[str]:
    return {r.keyspace_name
            for r in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")}


def _groups(admin: AdminClient) -> set[str]:
    return {g.group_id for g in admin.list_consumer_groups(request_timeout=10)
            .result(timeout=15).valid}


def _delete_groups(admin: AdminClient, groups: list[str]) -> None:
    for fut in admin.delete_consumer_groups(groups, request_timeout=10).values():
        fut.exception(timeout=15)  # absent already is fine: this only tidies up


def _commit_group(bootstrap: str, group: str, topic: str) -> None:
    """A consumer group exists on the broker once it has committed an offset."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()


def test_drop_run_data_drops_one_runs_names_and_nothing_else(
    stack: Stack, mysql: pymysql.cursors.Cursor, cassandra: Session
) -> None:
    env = stack.env
    sub = Stack()  # the run to drop
    canary = f"cleanup_canary_{uuid.uuid4().hex[:8]}"  # un-prefixed, like `make up` data
    ours = "cleanup"  # under the real run's prefixes: must survive too

    rds = redis.Redis.from_url(env["ECOM_REDIS_URL"])
    mongo: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        env["ECOM_MONGO_URL"], serverSelectionTimeoutMS=5000)
    admin = make_admin(env["ECOM_KAFKA_BOOTSTRAP"])
    es = Elasticsearch(env["ECOM_ES_URL"], request_timeout=30)

    sub_db, our_db = sub.mysql_db(ours), stack.mysql_db(ours)
    sub_mongo = [sub.mongo_db, sub.db_prefix + ours]
    our_mongo = stack.db_prefix + ours
    sub_topic, our_topic, canary_topic = sub.topic(ours), stack.topic(ours), canary
    sub_group, our_group = sub.topic("cleanup-group"), stack.topic("cleanup-group")
    sub_index, our_index = f"{sub.es_prefix}{ours}-v1", f"{stack.es_prefix}{ours}-v1"
    sub_alias, sub_alias_on_canary = f"{sub.es_prefix}{ours}", f"{sub.es_prefix}on-canary"
    sub_keys = [f"{sub.redis_prefix}{ours}:{i}" for i in range(REDIS_KEYS)]
    our_key, canary_key = f"{stack.redis_prefix}{ours}", f"{canary}:key"
    sub_ks, our_ks = sub.keyspace, stack.db_prefix + ours
    replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"

    with ExitStack() as tidy:
        tidy.callback(rds.close)
        tidy.callback(mongo.close)
        tidy.callback(es.close)
        # Registered before creating, so a failure half-way still removes
        # what this test made (the sub-run's names included).
        for db in (sub_db, our_db, canary):
            tidy.callback(mysql.execute, f"DROP DATABASE IF EXISTS `{db}`")
        for name in (*sub_mongo, our_mongo, canary):
            tidy.callback(mongo.drop_database, name)
        tidy.callback(delete_topics, admin, [sub_topic, our_topic, canary_topic])
        tidy.callback(_delete_groups, admin, [sub_group, our_group])
        tidy.callback(es.options(ignore_status=404).indices.delete,
                      index=f"{sub_index},{our_index},{canary}", ignore_unavailable=True)
        tidy.callback(rds.unlink, our_key, canary_key, *sub_keys)
        for ks in (sub_ks, our_ks, canary):
            tidy.callback(cassandra.execute, f'DROP KEYSPACE IF EXISTS "{ks}"')

        for db in (sub_db, our_db, canary):
            mysql.execute(f"CREATE DATABASE `{db}`")
        for name in (*sub_mongo, our_mongo, canary):
            mongo[name]["c"].insert_one({"run": name})
        ensure_topics(admin, [sub_topic, our_topic, canary_topic], partitions=1)
        _commit_group(env["ECOM_KAFKA_BOOTSTRAP"], sub_group, sub_topic)
        _commit_group(env["ECOM_KAFKA_BOOTSTRAP"], our_group, our_topic)
        es.indices.create(index=sub_index, aliases={sub_alias: {}})
        es.indices.create(index=our_index)
        es.indices.create(index=canary, aliases={sub_alias_on_canary: {}})
        rds.mset({k: "1" for k in [*sub_keys, our_key, canary_key]})
        for ks in (sub_ks, our_ks, canary):
            cassandra.execute(f'CREATE KEYSPACE "{ks}" WITH replication = {replication}')

        report = drop_run_data(sub)

        assert {s: (r.skipped, r.errors) for s, r in report.items()} == {
            s: ("", []) for s in SERVERS}
        # What it says it dropped is exactly what the sub-run had.
        dropped = {s: {kind: sorted(names) for kind, names in r.names.items()}
                   for s, r in report.items()}
        assert dropped == {
            "mariadb": {"databases": [sub_db]},
            "ferretdb": {"databases": sorted(sub_mongo)},
            "kafka": {"groups": [sub_group], "topics": [sub_topic]},
            "elasticsearch": {"aliases": sorted([sub_alias, sub_alias_on_canary]),
                              "indices": [sub_index]},
            "redis": {"keys": sorted(sub_keys)},
            "cassandra": {"keyspaces": [sub_ks]},
        }

        # The servers agree: the sub-run is gone, the real run and the
        # un-prefixed canary are intact.
        dbs = _databases(mysql)
        assert sub_db not in dbs and {our_db, canary} <= dbs

        mongo_dbs = set(mongo.list_database_names())
        assert not set(sub_mongo) & mongo_dbs and {our_mongo, canary} <= mongo_dbs

        _eventually(lambda: sub_topic not in admin.list_topics(timeout=10).topics,
                    f"topic {sub_topic} still listed")
        assert {our_topic, canary_topic} <= set(admin.list_topics(timeout=10).topics)
        groups = _groups(admin)
        assert sub_group not in groups and our_group in groups

        assert not es.indices.exists(index=sub_index)
        assert not es.indices.exists_alias(name=sub_alias_on_canary)
        assert es.indices.exists(index=our_index) and es.indices.exists(index=canary)

        assert not list(rds.scan_iter(match=sub.redis_pattern, count=1000))
        assert rds.exists(our_key, canary_key) == 2

        keyspaces = _keyspaces(cassandra)
        assert sub_ks not in keyspaces and {our_ks, canary} <= keyspaces


def test_a_server_that_is_down_or_hangs_holds_up_no_other() -> None:
    sub = Stack()
    with socket.socket() as silent, socket.socket() as closed:
        # Accepts connections (the kernel completes the handshake) and never
        # answers: a hung server.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        # Bound, never listening: nothing there, as when a server is down.
        closed.bind(("127.0.0.1", 0))
        hung, down = silent.getsockname()[1], closed.getsockname()[1]
        sub.env.update({
            "ECOM_REDIS_URL": f"redis://127.0.0.1:{hung}/0",
            "ECOM_KAFKA_BOOTSTRAP": f"127.0.0.1:{down}",
            "ECOM_ES_URL": f"http://127.0.0.1:{down}",
            "ECOM_CASSANDRA_HOSTS": f"127.0.0.1:{down}",
            "ECOM_MONGO_URL": f"mongodb://127.0.0.1:{down}/",
        })
        report = drop_run_data(sub, timeout=3)

    assert report["redis"].errors == ["still running after 3s"]
    for server in ("kafka", "elasticsearch", "cassandra", "ferretdb"):
        assert report[server].skipped == f"nothing listens on 127.0.0.1:{down}", server
    # MariaDB still points at the real server and was cleaned (of nothing).
    assert report["mariadb"].skipped == "" and report["mariadb"].errors == []
    assert report["mariadb"].names == {}
