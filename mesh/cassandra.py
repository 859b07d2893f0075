"""Cassandra sessions, made one way for every service and job that keeps
data there (svc_recs, svc_analytics and their Spark jobs).

A session gets our timeouts, a reconnection policy that is back within a
second or two of Cassandra returning, and its keyspace (created when
missing). At start it waits a bounded time for a server that is still
coming up: on a fresh `make up` the services start while Cassandra is busy
with its first schema work, and the driver's first control connection can
time out although the server is about to answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mesh import tracing

log = logging.getLogger(__name__)

# Schema changes wait for agreement among nodes: far slower than reads, so
# they get their own timeout whatever the session's request timeout is.
SCHEMA_TIMEOUT = 60.0
LOCAL_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def connect(
    contact_points: list[tuple[str, int]],
    keyspace: str,
    *,
    request_timeout: float = 20.0,
    connect_timeout: float = 5.0,
    start_wait: float = 45.0,
    replication: str = LOCAL_REPLICATION,
) -> Any:
    """A cassandra-driver session on ``keyspace``. Retries a server that
    does not answer yet for up to ``start_wait`` seconds, then raises the
    driver's error (NoHostAvailable or OperationTimedOut)."""
    from cassandra import OperationTimedOut
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
    from cassandra.policies import ConstantReconnectionPolicy, RoundRobinPolicy

    deadline = time.monotonic() + start_wait
    delay = 0.5
    while True:
        cluster = Cluster(
            contact_points=[h for h, _ in contact_points],
            port=contact_points[0][1],
            execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
                load_balancing_policy=RoundRobinPolicy(), request_timeout=request_timeout)},
            protocol_version=5,
            connect_timeout=connect_timeout,
            control_connection_timeout=connect_timeout,
            reconnection_policy=ConstantReconnectionPolicy(1.0, None),
        )
        try:
            session = cluster.connect()
            session.execute(
                f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}",
                timeout=SCHEMA_TIMEOUT)
            session.set_keyspace(keyspace)
            return tracing.instrument_cassandra(session)
        except (NoHostAvailable, OperationTimedOut) as exc:
            cluster.shutdown()
            if time.monotonic() + delay > deadline:
                raise
            log.warning("cassandra at %s does not answer yet (%s); retrying in %.1f s",
                        contact_points, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
