"""Prometheus metrics of one service process, exported on its metrics port.

Every mesh service exports, without code of its own:

* ``ecom_rpc_requests_total{method,code}``: calls served, by final status
  (errors are the codes other than OK: ``ecom_rpc_errors_total`` counts only
  those, by code);
* ``ecom_rpc_duration_seconds{method}``: latency histogram of the calls;
* ``ecom_outbox_lag_seconds`` and ``ecom_outbox_pending``: age and count of
  the unsent outbox rows the relay saw last (0 once it caught up), plus
  ``ecom_outbox_published_total``;
* ``ecom_consumer_lag{consumer,topic,partition}``: messages between a
  consumer's position and the partition's end, after each message;
* ``ecom_db_pool_connections{pool,state}``: SQLAlchemy pool use of every
  engine made with :func:`mesh.db.make_engine` (``checked_out``, ``idle``,
  ``overflow``, ``size``).

The metric objects live in one registry per process, the prometheus-client
idiom: instrumented code (interceptor, relay, consumer) records into them
directly. :func:`serve_metrics` exposes them over HTTP (``GET /metrics``)
on ``ECOM_<SVC>_METRICS_ADDR`` (see :meth:`mesh.config.ServiceSettings.metrics_addr_of`).
The edge's Envoy exposes its own at ``/stats/prometheus`` on its admin port.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets from 0.5 ms (a cache hit) to 10 s (a gateway timeout).
RPC_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

RPC_REQUESTS = Counter(
    "ecom_rpc_requests", "gRPC calls served, by method and final status code.",
    ["method", "code"], registry=REGISTRY,
)
RPC_ERRORS = Counter(
    "ecom_rpc_errors", "gRPC calls that ended with a status other than OK, by code.",
    ["method", "code"], registry=REGISTRY,
)
RPC_DURATION = Histogram(
    "ecom_rpc_duration_seconds", "Time to serve a gRPC call, by method.",
    ["method"], buckets=RPC_BUCKETS, registry=REGISTRY,
)
OUTBOX_LAG = Gauge(
    "ecom_outbox_lag_seconds",
    "Age of the oldest unsent outbox row the relay saw in its last batch (0 when none).",
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "ecom_outbox_pending", "Unsent outbox rows in the relay's last batch.", registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "ecom_outbox_published", "Outbox rows published to Kafka and marked sent.",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "ecom_consumer_lag", "Messages between a consumer's position and the partition's end.",
    ["consumer", "topic", "partition"], registry=REGISTRY,
)
CONSUMER_APPLIED = Counter(
    "ecom_consumer_events", "Events a consumer handled, applied or duplicate.",
    ["consumer", "topic", "outcome"], registry=REGISTRY,
)


def observe_rpc(method: str, code_name: str, seconds: float) -> None:
    """Record one served call (the server interceptor calls this)."""
    RPC_REQUESTS.labels(method, code_name).inc()
    RPC_DURATION.labels(method).observe(seconds)
    if code_name != "OK":
        RPC_ERRORS.labels(method, code_name).inc()


def observe_outbox_batch(created_at: list[Any]) -> None:
    """The relay read rows created at ``created_at`` (naive UTC datetimes,
    oldest first) as unsent."""
    if created_at:
        from mesh.db import utcnow

        OUTBOX_LAG.set(max(0.0, (utcnow() - created_at[0]).total_seconds()))
    else:
        OUTBOX_LAG.set(0.0)
    OUTBOX_PENDING.set(len(created_at))


def _partition_lag(p: dict[str, Any]) -> int | None:
    """Messages from the group's committed position (before the first commit:
    the start of the log) to the partition's end (the last stable offset,
    as the consumers read committed)."""
    if p.get("fetch_state") in (None, "none", "stopped"):
        return None  # not assigned to this member
    end = p.get("ls_offset", -1)
    end = end if end >= 0 else p.get("hi_offset", -1)
    position = p.get("committed_offset", -1)
    if position < 0:
        position = p.get("lo_offset", -1)
    if end < 0 or position < 0:
        return None
    return max(0, end - position)


def consumer_stats_callback(group: str) -> Callable[[str], None]:
    """A librdkafka ``stats_cb`` for a consumer of ``group``: sets
    ``ecom_consumer_lag`` per assigned partition from the client's own
    statistics (every consumer made by :func:`mesh.kafka.make_consumer`,
    whatever loop polls it)."""

    def on_stats(raw: str) -> None:
        try:
            stats = json.loads(raw)
            for topic, tstats in (stats.get("topics") or {}).items():
                for pid, pstats in (tstats.get("partitions") or {}).items():
                    lag = _partition_lag(pstats)
                    if int(pid) >= 0 and lag is not None:
                        CONSUMER_LAG.labels(group, topic, pid).set(lag)
        except Exception:  # noqa: BLE001 - statistics never break consuming
            log.debug("unreadable consumer statistics", exc_info=True)

    return on_stats


class _PoolCollector(Collector):
    """Reads the pool counters of every live engine at scrape time."""

    def __init__(self) -> None:
        self._engines: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    def add(self, name: str, engine: Any) -> None:
        with self._lock:
            self._engines[id(engine)] = engine
            self._names[id(engine)] = name

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ecom_db_pool_connections", "SQLAlchemy pool connections, by pool and state.",
            labels=["pool", "state"],
        )
        with self._lock:
            engines = [(self._names.get(k, "?"), e) for k, e in list(self._engines.items())]
        for name, engine in engines:
            pool = getattr(engine, "pool", None)
            if pool is None or not hasattr(pool, "checkedout"):
                continue
            try:
                family.add_metric([name, "checked_out"], pool.checkedout())
                family.add_metric([name, "idle"], pool.checkedin())
                family.add_metric([name, "overflow"], max(0, pool.overflow()))
                family.add_metric([name, "size"], pool.size())
            except Exception:  # noqa: BLE001 - a disposed pool: skip it
                continue
        yield family


POOLS = _PoolCollector()
REGISTRY.register(POOLS)


def watch_pool(name: str, engine: Any) -> None:
    """Export the pool use of ``engine`` (an AsyncEngine or Engine) as ``name``."""
    POOLS.add(name, getattr(engine, "sync_engine", engine))


class MetricsServer:
    """The HTTP endpoint of :data:`REGISTRY` (a daemon thread)."""

    def __init__(self, server: Any, thread: threading.Thread, port: int) -> None:
        self._server, self._thread, self.port = server, thread, port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(addr: str) -> MetricsServer | None:
    """Serve ``GET /metrics`` on ``addr`` (``host:port``; port 0 picks a free
    one). Returns None when ``addr`` is ``off`` or the port is taken (a second
    copy of a service on one host): metrics must never stop a service."""
    if addr in ("", "off", "-"):
        return None
    host, _, port = addr.rpartition(":")
    try:
        server, thread = start_http_server(int(port), addr=host, registry=REGISTRY)
    except OSError as exc:
        log.warning("metrics endpoint not started on %s: %s", addr, exc)
        return None
    bound = int(server.server_address[1])
    return MetricsServer(server, thread, bound)
