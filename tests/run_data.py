"""Dropping one test run's data from the local servers: everything named
with the run's id (see `Stack` in tests/conftest.py), on each server that is
up, best effort and side by side. The `stack` fixture calls
`drop_run_data` at the end of the session."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from infra.core import host_port, port_open

if TYPE_CHECKING:
    from tests.conftest import Stack


@dataclass
class Dropped:
    """What drop_run_data removed from one server, or why it did not."""

    names: dict[str, set[str]] = field(default_factory=dict)  # kind -> names
    skipped: str = ""
    errors: list[str] = field(default_factory=list)
    # Names left on purpose because they go away by themselves (kind -> names).
    left: dict[str, set[str]] = field(default_factory=dict)

    def add(self, kind: str, name: str) -> None:
        self.names.setdefault(kind, set()).add(name)

    def __str__(self) -> str:
        if self.skipped:
            return f"skipped ({self.skipped})"
        done = ", ".join(f"{len(v)} {k}" for k, v in self.names.items()) or "nothing"
        if self.left:
            done += " (left " + ", ".join(f"{len(v)} {k}" for k, v in self.left.items()) + ")"
        if self.errors:
            more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            return f"{done}, FAILED: {self.errors[0]}{more}"
        return done


# The clients are imported inside the droppers, so sessions that never
# touch a server (tests/unit) do not pay for importing them.
#
# Connect/lookup timeouts of the clean-up clients: short, so a server that
# hangs costs seconds, not the session; drops get longer (Cassandra schema
# changes and Kafka deletions take a few seconds on a loaded machine).
_CONNECT_TIMEOUT = 3.0
_DROP_TIMEOUT = 30.0


def _drop_mariadb(stack: Stack, out: Dropped) -> None:
    import pymysql  # type: ignore[import-untyped]  # no stubs installed

    url = urlsplit(stack.env["ECOM_MYSQL_URL"])
    conn = pymysql.connect(
        host=url.hostname or "127.0.0.1", port=url.port or 3306,
        user=unquote(url.username or "root"), password=unquote(url.password or ""),
        connect_timeout=_CONNECT_TIMEOUT, read_timeout=_DROP_TIMEOUT,
        write_timeout=_DROP_TIMEOUT, autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            ours = sorted(str(row[0]) for row in cur.fetchall() if stack.owns_database(row[0]))
            for name in ours:
                quoted = name.replace("`", "``")
                cur.execute(f"DROP DATABASE IF EXISTS `{quoted}`")
                out.add("databases", name)
    finally:
        conn.close()


def _drop_redis(stack: Stack, out: Dropped) -> None:
    import redis

    client = redis.Redis.from_url(stack.env["ECOM_REDIS_URL"],
                                  socket_connect_timeout=_CONNECT_TIMEOUT,
                                  socket_timeout=_DROP_TIMEOUT)
    try:
        batch: list[bytes] = []

        def unlink() -> None:
            client.unlink(*batch)
            for key in batch:
                out.add("keys", key.decode(errors="replace"))
            batch.clear()

        # Unlinking while scanning is safe: SCAN still returns every key that
        # exists for the whole iteration.
        for key in client.scan_iter(match=stack.redis_pattern, count=1000):
            if stack.owns_redis_key(key.decode(errors="replace")):
                batch.append(key)
            if len(batch) >= 500:
                unlink()
        if batch:
            unlink()
    finally:
        client.close()


def _drop_ferretdb(stack: Stack, out: Dropped) -> None:
    import pymongo

    ms = int(_CONNECT_TIMEOUT * 1000)
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        stack.env["ECOM_MONGO_URL"], serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
        socketTimeoutMS=int(_DROP_TIMEOUT * 1000))
    try:
        for name in sorted(n for n in client.list_database_names() if stack.owns_database(n)):
            client.drop_database(name)
            out.add("databases", name)
    finally:
        client.close()


def _drop_kafka(stack: Stack, out: Dropped) -> None:
    from confluent_kafka import KafkaError, KafkaException

    from mesh.kafka import make_admin

    admin = make_admin(stack.env["ECOM_KAFKA_BOOTSTRAP"])
    listed = admin.list_consumer_groups(request_timeout=_CONNECT_TIMEOUT)
    groups = sorted(g.group_id for g in listed.result(timeout=_DROP_TIMEOUT).valid
                    if stack.owns_topic(g.group_id))
    if groups:
        futures = admin.delete_consumer_groups(groups, request_timeout=_DROP_TIMEOUT)
        for group, fut in futures.items():
            try:
                fut.result(timeout=_DROP_TIMEOUT)
                out.add("groups", group)
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.NON_EMPTY_GROUP:
                    # A member of a stopped process that could not leave
                    # (the broker was restarted under it). The broker drops
                    # it after session.timeout.ms, and the then empty group,
                    # its offsets gone with the topics deleted below, at its
                    # next offsets clean-up (offsets.retention.check.interval.ms).
                    out.left.setdefault("groups with a dead member", set()).add(group)
                elif code != KafkaError.GROUP_ID_NOT_FOUND:
                    out.errors.append(f"group {group}: {exc}")
    topics = sorted(t for t in admin.list_topics(timeout=_CONNECT_TIMEOUT).topics
                    if stack.owns_topic(t))
    if topics:
        futures = admin.delete_topics(topics, request_timeout=_DROP_TIMEOUT)
        for topic, fut in futures.items():
            try:
                fut.result(timeout=_DROP_TIMEOUT)
                out.add("topics", topic)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    out.errors.append(f"topic {topic}: {exc}")


def _drop_elasticsearch(stack: Stack, out: Dropped) -> None:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(stack.env["ECOM_ES_URL"], request_timeout=_DROP_TIMEOUT,
                           max_retries=0)
    try:
        pattern = f"{stack.es_prefix}*"
        found = client.indices.get_alias(index="*", name=pattern, expand_wildcards="all",
                                         ignore_unavailable=True, allow_no_indices=True)
        # An alias of this run may point at another index (never ours to
        # drop): remove just the alias there.
        for index, body in found.body.items():
            aliases = sorted(a for a in body.get("aliases", {}) if stack.owns_index(a))
            if aliases and not stack.owns_index(index):
                client.indices.delete_alias(index=index, name=",".join(aliases))
            for alias in aliases:
                out.add("aliases", alias)
        indices = client.indices.get(index=pattern, expand_wildcards="all",
                                     ignore_unavailable=True, allow_no_indices=True)
        ours = sorted(i for i in indices.body if stack.owns_index(i))
        # Explicit names: wildcard deletes are refused by default
        # (action.destructive_requires_name); chunks keep the URL short.
        for start in range(0, len(ours), 50):
            chunk = ours[start:start + 50]
            client.indices.delete(index=",".join(chunk), ignore_unavailable=True)
            for index in chunk:
                out.add("indices", index)
    finally:
        client.close()


def _drop_cassandra(stack: Stack, out: Dropped) -> None:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    hosts = [host_port(h, 9042) for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")
             if h.strip()]
    cluster = Cluster(
        contact_points=hosts, connect_timeout=_CONNECT_TIMEOUT,
        control_connection_timeout=_CONNECT_TIMEOUT,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(), request_timeout=_DROP_TIMEOUT)},
    )
    try:
        session = cluster.connect()
        rows = session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
        for name in sorted(r.keyspace_name for r in rows if stack.owns_database(r.keyspace_name)):
            session.execute(f'DROP KEYSPACE IF EXISTS "{name}"')
            out.add("keyspaces", name)
    finally:
        cluster.shutdown()


# server -> (dropper, the ECOM_* variable with its address, its default port)
_DROPPERS: dict[str, tuple[Callable[[Stack, Dropped], None], str, int]] = {
    "mariadb": (_drop_mariadb, "ECOM_MYSQL_URL", 3306),
    "redis": (_drop_redis, "ECOM_REDIS_URL", 6379),
    "ferretdb": (_drop_ferretdb, "ECOM_MONGO_URL", 27017),
    "kafka": (_drop_kafka, "ECOM_KAFKA_BOOTSTRAP", 9092),
    "elasticsearch": (_drop_elasticsearch, "ECOM_ES_URL", 9200),
    "cassandra": (_drop_cassandra, "ECOM_CASSANDRA_HOSTS", 9042),
}


def _drop_with_retry(drop: Callable[[Stack, Dropped], None], stack: Stack) -> Dropped:
    """Run `drop`, and once more if it failed: droppers list before they drop,
    so a second pass is harmless, and it rides out a server restarted under
    us (other sessions' tests restart servers). Never raises."""
    out = Dropped()
    for _attempt in range(2):
        out.errors.clear()
        out.left.clear()
        try:
            drop(stack, out)
        except Exception as exc:  # best effort: reported, never raised
            out.errors.append(f"{type(exc).__name__}: {exc}")
        if not out.errors:
            break
    return out


def drop_run_data(stack: Stack, *, timeout: float = 90) -> dict[str, Dropped]:
    """Drop every database, topic, consumer group, index, alias, keyspace and
    Redis key named with `stack`'s run id, on each server that is up.

    Best effort and never raising: the servers are cleaned side by side, one
    that is down (some tests stop servers, ECOM_TEST_SERVERS may leave some
    out) is skipped, and one that fails or hangs past `timeout` is reported
    in its Dropped without holding up the others."""
    report: dict[str, Dropped] = {}
    pool = ThreadPoolExecutor(max_workers=len(_DROPPERS), thread_name_prefix="drop-run-data")
    futures = {}
    for server, (drop, var, default_port) in _DROPPERS.items():
        try:
            host, port = host_port(stack.env[var], default_port)
            if not port_open(port, host):
                report[server] = Dropped(skipped=f"nothing listens on {host}:{port}")
                continue
        except (KeyError, ValueError) as exc:
            report[server] = Dropped(skipped=f"no usable {var}: {exc}")
            continue
        futures[server] = pool.submit(_drop_with_retry, drop, stack)
    deadline = time.monotonic() + timeout
    for server, fut in futures.items():
        try:
            report[server] = fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            # Its thread ends at its clients' own timeouts; what it dropped
            # by then is unknown.
            report[server] = Dropped(errors=[f"still running after {timeout:.0f}s"])
    pool.shutdown(wait=False, cancel_futures=True)
    return {server: report[server] for server in _DROPPERS}
