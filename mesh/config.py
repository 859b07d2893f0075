"""Settings from ``ECOM_*`` environment variables, defaulting to the local stack.

Every service subclasses :class:`ServiceSettings` for its own knobs and loads
it once in ``main.py`` with :func:`load_settings`, which reports a bad value
by its variable name (``ECOM_ORDER_HOLD_SECONDS: ...``) instead of a
pydantic field path.
"""

from __future__ import annotations

import logging
import os
from ipaddress import ip_address
from typing import Any, TypeVar, overload

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ECOM_"

# The one table of service listen ports: ECOM_<SVC>_ADDR defaults to
# 127.0.0.1:<port>. Loopback by default: services must be reachable only by
# the edge and each other (see mesh.auth for why).
SERVICE_PORTS: dict[str, int] = {
    "catalog": 50051,
    "search": 50052,
    "tat": 50053,
    "users": 50054,
    "cart": 50055,
    "inventory": 50056,
    "orders": 50057,
    "payments": 50058,
    "recs": 50059,
    "notify": 50060,
    "analytics": 50061,
}


# Each service's Prometheus endpoint listens this far above its gRPC port
# (catalog 50051 -> 51051), unless ECOM_<SVC>_METRICS_ADDR says otherwise.
METRICS_PORT_OFFSET = 1000


def _addr(service: str) -> str:
    return f"127.0.0.1:{SERVICE_PORTS[service]}"


def metrics_port(service: str) -> int:
    """The default metrics port of ``service`` (its gRPC port + 1000)."""
    return SERVICE_PORTS[service] + METRICS_PORT_OFFSET


class ConfigError(ValueError):
    """One or more ECOM_* variables are invalid; the message names each."""


class ServiceSettings(BaseSettings):
    """Settings shared by every service. Subclass to add a service's own."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Datastores (the local stack's project ports).
    mysql_url: str = "mysql://root@127.0.0.1:13306"
    redis_url: str = "redis://127.0.0.1:16379/0"
    kafka_bootstrap: str = "127.0.0.1:19092"
    es_url: str = "http://127.0.0.1:19200"
    cassandra_hosts: str = "127.0.0.1:19042"
    mongo_url: str = "mongodb://127.0.0.1:17017/"

    # Where each service listens (and where the others find it).
    catalog_addr: str = _addr("catalog")
    search_addr: str = _addr("search")
    tat_addr: str = _addr("tat")
    users_addr: str = _addr("users")
    cart_addr: str = _addr("cart")
    inventory_addr: str = _addr("inventory")
    orders_addr: str = _addr("orders")
    payments_addr: str = _addr("payments")
    recs_addr: str = _addr("recs")
    notify_addr: str = _addr("notify")
    analytics_addr: str = _addr("analytics")
    edge_port: int = Field(default=8080, ge=1, le=65535)

    # Observability: traces go over OTLP/gRPC to this collector
    # (``host:port`` or ``http://host:port``); empty turns tracing off.
    otlp_endpoint: str = ""

    # Business knobs shared by several services.
    order_hold_seconds: int = Field(default=600, gt=0)

    # Runtime. A service may run as several processes (replicas): its
    # ECOM_<SVC>_ADDR then lists one address per replica
    # (``127.0.0.1:50051,127.0.0.1:50151``), callers balance across them, and
    # replica N (ECOM_REPLICA_INDEX, from 0) listens on the Nth.
    replica_index: int = Field(default=0, ge=0)
    log_level: str = "INFO"
    # Which served calls get an access-log line: "all", "errors" (a status
    # other than OK, or slower than access_log_slow_ms), or "off". Every call
    # is counted in the metrics either way.
    access_log: str = "all"
    access_log_slow_ms: float = Field(default=100.0, ge=0)
    # The event loop: "uvloop" (libuv, faster) or "asyncio" (the standard one).
    event_loop: str = "uvloop"
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    health_check_interval_seconds: float = Field(default=5.0, gt=0)
    health_check_timeout_seconds: float = Field(default=2.0, gt=0)
    call_timeout_seconds: float = Field(default=5.0, gt=0)

    # Name prefixes so test runs (and tenants sharing a cluster) never collide.
    topic_prefix: str = ""
    index_prefix: str = ""
    db_prefix: str = ""
    keyspace_prefix: str = ""
    redis_prefix: str = ""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("access_log")
    @classmethod
    def _access_log_mode(cls, value: str) -> str:
        if value.lower() not in ("all", "errors", "off"):
            raise ValueError("must be one of all, errors, off")
        return value.lower()

    @field_validator("event_loop")
    @classmethod
    def _loop_kind(cls, value: str) -> str:
        if value.lower() not in ("uvloop", "asyncio"):
            raise ValueError("must be uvloop or asyncio")
        return value.lower()

    @field_validator("*", mode="after")
    @classmethod
    def _host_port(cls, value: object, info: ValidationInfo) -> object:
        if (info.field_name or "").endswith("_addr") and isinstance(value, str):
            try:
                for one in split_addrs(value):
                    _split_host_port(one)
            except ValueError:
                raise ValueError("expected host:port, e.g. 127.0.0.1:50051, or several "
                                 "separated by commas (one per replica)") from None
        return value

    def addrs_of(self, service: str) -> list[str]:
        """Every replica's ``host:port`` of ``service``."""
        return split_addrs(self.addr_of(service))

    def listen_addr_of(self, service: str) -> str:
        """Where this process listens when it serves ``service``: the
        address of its replica index."""
        addrs = self.addrs_of(service)
        if self.replica_index >= len(addrs):
            raise ConfigError(
                f"ECOM_REPLICA_INDEX={self.replica_index} but ECOM_{service.upper()}_ADDR "
                f"lists {len(addrs)} address(es)")
        return addrs[self.replica_index]

    def addr_of(self, service: str) -> str:
        """The ``host:port`` of ``service`` (``ECOM_<SVC>_ADDR``)."""
        value = getattr(self, f"{service}_addr", None)
        if not isinstance(value, str):
            raise KeyError(
                f"no address configured for service {service!r} (ECOM_{service.upper()}_ADDR)"
            )
        return value

    def metrics_addr_of(self, service: str, replica: int | None = None) -> str:
        """Where a replica of ``service`` (this process's by default) serves
        ``GET /metrics``: the matching entry of ``ECOM_<SVC>_METRICS_ADDR``
        (one per replica; ``off`` disables it), else that replica's gRPC host
        with the port 1000 higher."""
        index = self.replica_index if replica is None else replica
        explicit = os.environ.get(f"{ENV_PREFIX}{service.upper()}_METRICS_ADDR")
        if explicit:
            if explicit == "off":
                return explicit
            listed = split_addrs(explicit)
            if index < len(listed):
                return listed[index]
            # A replica the list does not name gets an ephemeral port.
            return f"{listed[0].rpartition(':')[0]}:0"
        addrs = self.addrs_of(service)
        host, port = _split_host_port(addrs[index] if index < len(addrs) else addrs[0])
        derived = port + METRICS_PORT_OFFSET
        # An ephemeral gRPC port (tests) gets an ephemeral metrics port.
        ok = port and derived <= 65535 and index < len(addrs)
        return f"{host}:{derived if ok else 0}"

    def topic(self, name: str) -> str:
        """A Kafka topic name with this run's prefix."""
        return self.topic_prefix + name

    def index(self, name: str) -> str:
        """An Elasticsearch index name with this run's prefix."""
        return self.index_prefix + name

    def database(self, name: str) -> str:
        """A MariaDB/Mongo database name with this run's prefix."""
        return self.db_prefix + name

    def keyspace(self, name: str) -> str:
        """A Cassandra keyspace name with this run's prefix."""
        return self.keyspace_prefix + name

    def redis_key(self, key: str) -> str:
        """A Redis key with this run's prefix."""
        return self.redis_prefix + key

    @property
    def cassandra_contact_points(self) -> list[tuple[str, int]]:
        """ECOM_CASSANDRA_HOSTS (``h1:p1,h2:p2``) as (host, port) pairs."""
        return [_split_host_port(h.strip()) for h in self.cassandra_hosts.split(",") if h.strip()]


def split_addrs(value: str) -> list[str]:
    """``h:p`` or ``h1:p1,h2:p2`` (one per replica) as a list."""
    addrs = [a.strip() for a in value.split(",") if a.strip()]
    if not addrs:
        raise ValueError(f"expected host:port, got {value!r}")
    return addrs


def grpc_target(value: str) -> str:
    """A gRPC channel target for one address or a replica list: several
    addresses become gRPC's static list (``ipv4:h1:p1,h2:p2``), which the
    channel's round-robin policy balances per call, skipping a replica that
    is down. A list must name IP addresses (a DNS name already resolves to
    every replica by itself)."""
    addrs = split_addrs(value)
    if len(addrs) == 1:
        return addrs[0]
    hosts = [_split_host_port(a)[0] for a in addrs]
    try:
        families = {ip_address(h).version for h in hosts}
    except ValueError:
        raise ValueError(f"a list of replica addresses must use IP addresses: {value!r}") from None
    if families == {4}:
        return "ipv4:" + ",".join(addrs)
    if families == {6}:
        return "ipv6:" + ",".join(addrs)
    raise ValueError(f"replica addresses mix IPv4 and IPv6: {value!r}")


def _split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


S = TypeVar("S", bound=ServiceSettings)


@overload
def load_settings(**overrides: Any) -> ServiceSettings: ...
@overload
def load_settings(cls: type[S], /, **overrides: Any) -> S: ...
def load_settings(cls: type[ServiceSettings] = ServiceSettings, /, **overrides: Any) -> Any:
    """Read settings from the environment; raise :class:`ConfigError` naming
    every bad variable. ``overrides`` win over the environment (tests)."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "?"
            var = ENV_PREFIX + field.upper()
            given = err.get("input")
            shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{var}: {message}{shown}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
