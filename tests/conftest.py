"""Shared test fixtures.

`stack` makes sure the real servers are running (starting the ones that are
not, stopping at the end exactly those it started) and hands out names that
isolate this test run from any other: own MariaDB databases, Kafka topic
prefix, Elasticsearch index prefix, Cassandra keyspace, Mongo database and
Redis key prefix. Set ECOM_TEST_SERVERS=kafka,redis to start only some
servers while working on one area; ECOM_KEEP_STACK=1 leaves them running.

At the end of the session, after every service process of the run has
stopped, `stack` drops everything named with this run's id from each server
that is up (`drop_run_data`: MariaDB and Mongo databases, Kafka topics and
consumer groups, Elasticsearch indices and aliases, Cassandra keyspaces,
Redis keys) and prints one line saying what went. Other runs' names and
un-prefixed data (`make up` demo data) are never touched; a server that is
down is skipped. ECOM_KEEP_TEST_DATA=1 keeps the run's data for debugging
(the summary line names the run id to look for).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import settings as hypothesis_settings

from infra import stack as infra_stack
from infra.core import REPO, STACK, Server, tail
from mesh.config import grpc_target, split_addrs
from tests.ports import free_port as _free_port

# Properties assert rules, never speed: hypothesis' per-example deadline
# (200 ms) fails them at random on a busy machine, so it is off.
hypothesis_settings.register_profile("ecom", deadline=None)
hypothesis_settings.load_profile("ecom")


class Stack:
    """The running stack as seen by one test session."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.started: list[Server] = []
        self.env = infra_stack.env()

    def ensure(self, names: list[str] | None) -> None:
        servers = infra_stack.select(names)
        todo = [s for s in servers if not s.external() and s.pid() is None]
        infra_stack.up([s.name for s in servers])
        self.started.extend(todo)

    # -- isolation: names unique to this run ------------------------------
    # The one definition of this run's names: Services hands the same
    # prefixes to the service processes, and drop_run_data drops exactly
    # what the owns_* predicates accept. Run ids all have the same length,
    # so no run's prefix is a prefix of another run's names.
    @property
    def db_prefix(self) -> str:
        """Prefix of this run's MariaDB/Mongo databases and Cassandra keyspaces
        (ECOM_DB_PREFIX, ECOM_KEYSPACE_PREFIX of the services)."""
        return f"{self.keyspace}_"

    def mysql_db(self, name: str) -> str:
        return self.db_prefix + name

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    @property
    def topic_prefix(self) -> str:
        """Prefix of this run's Kafka topics and consumer groups."""
        return f"t{self.run_id}."

    @property
    def es_prefix(self) -> str:
        """Prefix of this run's Elasticsearch indices and aliases."""
        return f"t{self.run_id}-"

    @property
    def keyspace(self) -> str:
        return f"t_{self.run_id}"

    @property
    def mongo_db(self) -> str:
        return self.keyspace

    @property
    def redis_prefix(self) -> str:
        return f"t:{self.run_id}:"

    @property
    def redis_pattern(self) -> str:
        """SCAN MATCH pattern of this run's Redis keys (the prefix glob-escaped)."""
        return re.sub(r"([*?\[\]\\])", r"\\\1", self.redis_prefix) + "*"

    def owns_database(self, name: str) -> bool:
        """A MariaDB/Mongo database or Cassandra keyspace of this run."""
        return name == self.keyspace or name.startswith(self.db_prefix)

    def owns_topic(self, name: str) -> bool:
        """A Kafka topic or consumer group of this run."""
        return name.startswith(self.topic_prefix)

    def owns_index(self, name: str) -> bool:
        """An Elasticsearch index or alias of this run."""
        return name.startswith(self.es_prefix)

    def owns_redis_key(self, key: str) -> bool:
        return key.startswith(self.redis_prefix)


# The end-of-session line saying what drop_run_data did, printed by
# pytest_terminal_summary (fixture teardown output is captured).
CLEANUP_SUMMARY = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config) -> Iterator[Stack]:
    st = Stack()
    wanted = os.environ.get("ECOM_TEST_SERVERS")
    st.ensure([n for n in wanted.split(",") if n] if wanted else None)
    yield st
    # pytest tears a fixture's dependents down before the fixture itself, so
    # by now `services` (which depends on `stack`) has stopped every service
    # process, as have the e2e edges and stubs: nothing writes under the
    # run's names any more. Dropped before stopping the servers we started,
    # which would otherwise keep the data on disk.
    if os.environ.get("ECOM_KEEP_TEST_DATA", "") not in ("", "0"):
        summary = f"ECOM_KEEP_TEST_DATA: kept the data of test run {st.run_id}"
    else:
        from tests.run_data import drop_run_data

        report = drop_run_data(st)
        summary = f"dropped the data of test run {st.run_id}: " + "; ".join(
            f"{server} {outcome}" for server, outcome in report.items()
        )
    pytestconfig.stash[CLEANUP_SUMMARY] = summary
    if not os.environ.get("ECOM_KEEP_STACK"):
        for s in st.started:
            s.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(CLEANUP_SUMMARY, None)
    if summary:
        terminalreporter.write_line(summary)


# --------------------------------------------------------------------------
# Our own services, run as real processes against the stack
# --------------------------------------------------------------------------

SERVICES = [
    "catalog",
    "search",
    "tat",
    "users",
    "cart",
    "inventory",
    "orders",
    "payments",
    "recs",
    "notify",
    "analytics",
]


# An address where nothing listens, fixed for the session: a peer pointed
# at it behaves as when that service is down (e.g. svc_tat then ignores
# stock, as its contract says), and processes started with it can be shared
# across test files.
UNREACHABLE_ADDR = f"127.0.0.1:{_free_port()}"
# How long a service started by a test may take to report SERVING.
START_TIMEOUT_SECONDS = 90.0


# Processes per service in the test stack (ECOM_TEST_REPLICAS, default 2, as
# under `make up`): every service runs as that many replicas, each on its own
# port, and ECOM_<SVC>_ADDR lists them all, so peers balance across them and
# every background loop runs in two copies.
TEST_REPLICAS = int(os.environ.get("ECOM_TEST_REPLICAS", "2"))


class RunningService:
    """One service started by the tests: one process per replica."""

    def __init__(self, name: str, addr: str, procs: list[subprocess.Popen[bytes]],
                 logs: list[Path], overrides: dict[str, str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        # ``addr`` lists every replica (``h:p1,h:p2``); use ``target`` or
        # ``channel()`` to call it, ``replica_addrs`` to reach one replica.
        self.name, self.addr, self.procs, self.logs = name, addr, procs, logs
        # The extra environment this service was started with.
        self.overrides = dict(overrides or {})
        self.env = dict(env or {})

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The first replica's process."""
        return self.procs[0]

    @property
    def log(self) -> Path:
        return self.logs[0]

    @property
    def replica_addrs(self) -> list[str]:
        return split_addrs(self.addr)

    @property
    def target(self) -> str:
        """A gRPC channel target balancing across the replicas."""
        return grpc_target(self.addr)

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.target)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self, timeout: float = 20) -> int:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return self.procs[0].returncode

    def kill(self) -> None:
        """kill -9 of every replica, for crash-safety tests."""
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()

    def kill_replica(self, index: int) -> None:
        """kill -9 of one replica; the others keep serving."""
        self.procs[index].kill()
        self.procs[index].wait()

    def restart_replica(self, index: int, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start replica ``index`` again (after ``kill_replica``), as the
        supervisor would, and wait until it serves."""
        self.procs[index] = _spawn(self.name, index, self.env, self.logs[index])
        _wait_serving(self, timeout, only=index)


class Services:
    """Starts `svc_<name>.main` processes on free ports, isolated per run.

    Every service of the run knows every other's address (ECOM_<SVC>_ADDR),
    its databases, topics, indices, keyspaces and Redis keys carry the run's
    prefixes, and all of them stop at the end of the session."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.running: dict[str, RunningService] = {}
        self.env = {
            **os.environ,
            **stack.env,
            "ECOM_DB_PREFIX": stack.db_prefix,
            "ECOM_TOPIC_PREFIX": stack.topic_prefix,
            "ECOM_INDEX_PREFIX": stack.es_prefix,
            "ECOM_KEYSPACE_PREFIX": stack.db_prefix,
            "ECOM_REDIS_PREFIX": stack.redis_prefix,
            # The run's own event lake (empty unless a test fills it).
            "ECOM_LAKE_URL": (STACK / "test-lakes" / stack.run_id).as_uri(),
            "ECOM_SHUTDOWN_GRACE_SECONDS": "5",
            "ECOM_HEALTH_CHECK_INTERVAL_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
        for name in SERVICES:
            self.env[f"ECOM_{name.upper()}_ADDR"] = ",".join(
                f"127.0.0.1:{_free_port()}" for _ in range(TEST_REPLICAS))
            self.env[f"ECOM_{name.upper()}_METRICS_ADDR"] = ",".join(
                f"127.0.0.1:{_free_port()}" for _ in range(TEST_REPLICAS))
        # svc_notify's HTTP endpoint for SMS delivery reports, also per run.
        self.env["ECOM_NOTIFY_DLR_ADDR"] = ",".join(
            f"127.0.0.1:{_free_port()}" for _ in range(TEST_REPLICAS))

    def addr(self, name: str) -> str:
        return self.env[f"ECOM_{name.upper()}_ADDR"]

    def metrics_urls(self, name: str) -> list[str]:
        """The Prometheus endpoint of each replica of svc_<name> in this run."""
        return [f"http://{addr}/metrics"
                for addr in split_addrs(self.env[f"ECOM_{name.upper()}_METRICS_ADDR"])]

    def start(self, name: str, **env: str) -> RunningService:
        """Start svc_<name> and wait until its health check says SERVING.

        A process already running with the same extra environment is reused
        (one per session); one started with a different environment (a test
        clock, a stand-in peer) is restarted with the one asked for."""
        svc = self.running.get(name)
        if svc is not None and svc.alive():
            if svc.overrides == env:
                return svc
            svc.stop()
        full = {**self.env, **env}
        addr = full[f"ECOM_{name.upper()}_ADDR"]
        logs, procs = [], []
        for k in range(len(split_addrs(addr))):
            log = STACK / "logs" / f"test-{self.stack.run_id}-{name}{'' if k == 0 else k}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            logs.append(log)
            procs.append(_spawn(name, k, full, log))
        svc = RunningService(name, addr, procs, logs, env, full)
        self.running[name] = svc
        try:
            _wait_serving(svc, START_TIMEOUT_SECONDS)
        except BaseException:
            svc.stop()  # a replica that did start must not outlive the run
            raise
        return svc

    def stop_all(self) -> None:
        for svc in self.running.values():
            svc.stop()


def _spawn(name: str, index: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", f"svc_{name}.main"], stdout=out, stderr=subprocess.STDOUT,
            env={**env, "ECOM_REPLICA_INDEX": str(index)}, cwd=REPO, start_new_session=True,
        )


def _wait_serving(svc: RunningService, timeout: float, only: int | None = None) -> None:
    """Wait until every replica (or replica ``only``) answers SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    for k, addr in enumerate(svc.replica_addrs):
        if only is not None and k != only:
            continue
        proc, log = svc.procs[k], svc.logs[k]
        with grpc.insecure_channel(addr) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"svc_{svc.name} replica {k} exited with "
                                       f"{proc.returncode}:\n{tail(log)}")
                try:
                    resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    svc.stop()
                    raise RuntimeError(f"svc_{svc.name} replica {k} not SERVING after "
                                       f"{timeout}s:\n{tail(log)}")
                time.sleep(0.2)


@pytest.fixture(scope="session")
def services(stack: Stack) -> Iterator[Services]:
    runner = Services(stack)
    yield runner
    runner.stop_all()
