"""The local stack's life cycle and the isolation between test runs."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pymongo
import pymysql
import redis
from cassandra.cluster import Cluster
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from infra import stack as infra_stack
from infra.core import descendants, host_port, pid_alive, port_open
from tests.conftest import Stack

# Fast servers whose restart the test can afford; the JVM servers share the
# same Server.start/stop code.
RESTARTABLE = ["mariadb", "redis", "ferretdb"]


def test_down_leaves_no_process_and_up_twice_is_harmless(stack: Stack) -> None:
    servers = [s for s in infra_stack.select(RESTARTABLE) if not s.external()]
    pids = {s.name: s.pid() for s in servers}
    assert all(pids.values()), f"expected running servers, got {pids}"
    family = {name: [pid, *descendants(pid)] for name, pid in pids.items() if pid}

    infra_stack.down([s.name for s in servers])
    for s in servers:
        assert s.pid() is None
        assert not s.pid_file.exists()
        assert not any(pid_alive(p) for p in family[s.name]), f"{s.name} left a process"
        assert not port_open(s.port), f"{s.name} still listens on {s.port}"

    infra_stack.up([s.name for s in servers])
    first = {s.name: s.pid() for s in servers}
    infra_stack.up([s.name for s in servers])
    second = {s.name: s.pid() for s in servers}
    assert first == second, "a second `up` must not restart anything"
    assert all(s.status().healthy for s in servers)


def test_two_runs_do_not_see_each_others_data(stack: Stack) -> None:
    a, b = Stack(), Stack()
    assert a.run_id != b.run_id
    env = stack.env
    marker = uuid.uuid4().hex

    # MariaDB: one database per run.
    host, port = host_port(env["ECOM_MYSQL_URL"], 3306)
    conn = pymysql.connect(host=host, port=port, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            for run in (a, b):
                cur.execute(f"CREATE DATABASE `{run.mysql_db('iso')}`")
                cur.execute(f"CREATE TABLE `{run.mysql_db('iso')}`.t (v VARCHAR(64))")
            cur.execute(f"INSERT INTO `{a.mysql_db('iso')}`.t VALUES (%s)", (marker,))
            cur.execute(f"SELECT COUNT(*) FROM `{b.mysql_db('iso')}`.t")
            assert cur.fetchone()[0] == 0
            cur.execute(f"SELECT v FROM `{a.mysql_db('iso')}`.t")
            assert cur.fetchone()[0] == marker
            for run in (a, b):
                cur.execute(f"DROP DATABASE `{run.mysql_db('iso')}`")
    finally:
        conn.close()

    # Redis: one key prefix per run.
    r = redis.Redis.from_url(env["ECOM_REDIS_URL"])
    r.set(a.redis_prefix + "k", marker, ex=60)
    assert r.get(b.redis_prefix + "k") is None
    assert list(r.scan_iter(match=b.redis_prefix + "*")) == []
    r.delete(a.redis_prefix + "k")

    # MongoDB wire: one database per run.
    m: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        env["ECOM_MONGO_URL"], serverSelectionTimeoutMS=5000
    )
    m[a.mongo_db].iso.insert_one({"v": marker})
    assert m[b.mongo_db].iso.count_documents({}) == 0
    assert m[a.mongo_db].iso.count_documents({"v": marker}) == 1
    m.drop_database(a.mongo_db)

    # Elasticsearch: one index prefix per run.
    es = env["ECOM_ES_URL"].rstrip("/")
    _es(es, "PUT", f"/{a.es_prefix}iso/_doc/1?refresh=true", {"v": marker})
    hits = _es(es, "GET", f"/{b.es_prefix}*/_search", None)["hits"]["total"]["value"]
    assert hits == 0
    assert _es(es, "GET", f"/{a.es_prefix}*/_search", None)["hits"]["total"]["value"] == 1
    _es(es, "DELETE", f"/{a.es_prefix}iso", None)

    # Cassandra: one keyspace per run.
    chost, cport = host_port(env["ECOM_CASSANDRA_HOSTS"], 9042)
    cluster = Cluster([chost], port=cport)
    session = cluster.connect()
    try:
        for run in (a, b):
            session.execute(
                f"CREATE KEYSPACE {run.keyspace} WITH replication = "
                "{'class': 'SimpleStrategy', 'replication_factor': 1}"
            )
            session.execute(f"CREATE TABLE {run.keyspace}.t (k text PRIMARY KEY)")
        session.execute(f"INSERT INTO {a.keyspace}.t (k) VALUES (%s)", (marker,))
        assert list(session.execute(f"SELECT k FROM {b.keyspace}.t")) == []
        assert [r.k for r in session.execute(f"SELECT k FROM {a.keyspace}.t")] == [marker]
        for run in (a, b):
            session.execute(f"DROP KEYSPACE {run.keyspace}")
    finally:
        cluster.shutdown()

    # Kafka: one topic prefix per run.
    boot = env["ECOM_KAFKA_BOOTSTRAP"]
    admin = AdminClient({"bootstrap.servers": boot})
    topics = [a.topic("iso"), b.topic("iso")]
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": boot})
    p.produce(a.topic("iso"), marker.encode())
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": boot, "group.id": f"iso-{b.run_id}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([b.topic("iso")])
    try:
        seen = [c.poll(1.0) for _ in range(5)]
        assert [m for m in seen if m is not None and m.error() is None] == []
    finally:
        c.close()
        for f in admin.delete_topics(topics).values():
            f.result(30)


def _es(base: str, method: str, path: str, body: dict | None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())
