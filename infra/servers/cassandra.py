"""Apache Cassandra 5.0 from the `cassandra-all` jars on Maven Central, run on
Java 17 as one local node.

There is no tarball here: `maven_resolve` fetches cassandra-all and its
runtime dependencies, and we launch `CassandraDaemon` ourselves with what
`bin/cassandra` and `conf/jvm*-server.options` would have passed: the jamm
agent, the Java 17 `--add-exports`/`--add-opens` list, and system properties
that point at a cassandra.yaml and logback.xml written into the data folder.

It runs as the unprivileged service account (see `run_as`).
Start-up is tuned for one node on a small machine: no waiting for gossip to
settle, a short ring delay, one token, small heap, memtables and caches, no
JMX port, no snapshots on drop/truncate.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.core import (
    CACHE,
    InfraError,
    Server,
    ensure_service_user,
    host_port,
    java_home,
    maven_resolve,
    port_open,
)
from infra.servers.service_account import usable_copy
from infra.stack import PORTS

VERSION = "5.0.9"
COORDS = f"org.apache.cassandra:cassandra-all:{VERSION}"
STORAGE_PORT = 17000
HEAP_MIN, HEAP_MAX = "512m", "1g"

# conf/jvm17-server.options of Cassandra 5.0 (JPMS and netty sections), the
# flags Java 17 needs to let Cassandra reach JDK internals.
JVM17_OPTIONS = [
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
]


class Cassandra(Server):
    def __init__(self) -> None:
        super().__init__(
            name="cassandra",
            port=PORTS["cassandra"],
            env_var="ECOM_CASSANDRA_HOSTS",
            start_timeout=180.0,
            extra_ports=[STORAGE_PORT],
        )

    @property
    def cached_lib(self) -> Path:
        return CACHE / "cassandra" / VERSION / "lib"

    @property
    def lib_dir(self) -> Path:
        """The jars the node runs from: the cache, or a private copy when the
        service account cannot reach the cache."""
        return usable_copy(self.cached_lib, self.data_dir / f"lib-{VERSION}",
                           ensure_service_user())

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "conf"

    # -- hooks ------------------------------------------------------------------
    def install(self) -> None:
        java_home(17)
        maven_resolve(COORDS, self.cached_lib)

    def prepare(self) -> None:
        lib = self.lib_dir  # makes the private copy when one is needed
        if not any(lib.glob("jamm-*.jar")) or not any(lib.glob("cassandra-all-*.jar")):
            raise InfraError(f"{lib} lacks cassandra-all or jamm; delete it and run again")
        for d in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "tmp",
                  "triggers"):
            (self.data_dir / d).mkdir(parents=True, exist_ok=True)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "cassandra.yaml").write_text(self._yaml())
        (self.conf_dir / "logback.xml").write_text(LOGBACK)

    def _yaml(self) -> str:
        d = self.data_dir
        settings: dict[str, object] = {
            "cluster_name": "ecom-local",
            "num_tokens": 1,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "endpoint_snitch": "SimpleSnitch",
            "seed_provider": [{
                "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                "parameters": [{"seeds": f"127.0.0.1:{STORAGE_PORT}"}],
            }],
            "listen_address": "127.0.0.1",
            "rpc_address": "127.0.0.1",
            "storage_port": STORAGE_PORT,
            "start_native_transport": True,
            "native_transport_port": self.port,
            "data_file_directories": [str(d / "data")],
            "commitlog_directory": str(d / "commitlog"),
            "saved_caches_directory": str(d / "saved_caches"),
            "hints_directory": str(d / "hints"),
            "cdc_raw_directory": str(d / "cdc_raw"),
            "commitlog_sync": "periodic",
            "commitlog_sync_period": "10000ms",
            "commitlog_segment_size": "32MiB",
            "authenticator": "AllowAllAuthenticator",
            "authorizer": "AllowAllAuthorizer",
            # A fresh cluster with nothing to upgrade from: the 5.0 formats.
            "storage_compatibility_mode": "NONE",
            # Small footprint for a laptop-sized shared machine.
            "memtable_heap_space": "64MiB",
            "memtable_offheap_space": "64MiB",
            "key_cache_size": "16MiB",
            "counter_cache_size": "4MiB",
            "prepared_statements_cache_size": "8MiB",
            "file_cache_size": "64MiB",
            "concurrent_reads": 8,
            "concurrent_writes": 8,
            "concurrent_counter_writes": 8,
            "concurrent_compactors": 1,
            # Tests create and drop a keyspace per run: no snapshot for each drop.
            "auto_snapshot": False,
            "hinted_handoff_enabled": False,
            "dynamic_snitch": False,
        }
        # JSON is valid YAML and needs no YAML library here.
        return "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())

    def command(self) -> list[str]:
        lib = self.lib_dir
        jamm = next(lib.glob("jamm-*.jar"))
        d = self.data_dir
        props = {
            "cassandra.config": (self.conf_dir / "cassandra.yaml").as_uri(),
            "cassandra.storagedir": str(d),
            "cassandra.logdir": str(d / "logs"),
            "cassandra-foreground": "yes",
            "logback.configurationFile": str(self.conf_dir / "logback.xml"),
            "java.io.tmpdir": str(d / "tmp"),
            "cassandra.triggers_dir": str(d / "triggers"),
            # One node: nothing to wait for or to learn from other nodes.
            "cassandra.skip_wait_for_gossip_to_settle": "0",
            "cassandra.ring_delay_ms": "1000",
            "cassandra.superuser_setup_delay_ms": "0",
            "cassandra.load_ring_state": "false",
            "cassandra.initial_token": "0",
            "java.net.preferIPv4Stack": "true",
        }
        return [
            str(java_home(17) / "bin" / "java"),
            f"-Xms{HEAP_MIN}", f"-Xmx{HEAP_MAX}",
            "-Xss256k",
            "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
            "-XX:MaxGCPauseMillis=300", "-XX:InitiatingHeapOccupancyPercent=70",
            "-XX:+UseThreadPriorities", "-XX:+PerfDisableSharedMem",
            f"-XX:ErrorFile={d / 'logs' / 'hs_err_%p.log'}",
            # Die at once rather than limp on (and no heap dump of a GiB in .stack).
            "-XX:+ExitOnOutOfMemoryError",
            "-ea", "-da:net.openhft...",
            f"-javaagent:{jamm}",
            *JVM17_OPTIONS,
            *(f"-D{k}={v}" for k, v in props.items()),
            "-cp", f"{lib}/*",
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def run_as(self) -> tuple[int, int] | None:
        # Not for Cassandra's sake (it runs as root) but for the machine's: as
        # root its mlockall() succeeds and pins the whole committed heap in RAM.
        return ensure_service_user()

    def ready(self) -> bool:
        hosts = self.contact_points()
        if not self.external() and not port_open(self.port):
            return False
        return bool(cql_release_version(hosts))

    def version(self) -> str:
        return cql_release_version(self.contact_points()) or "?"

    def contact_points(self) -> list[tuple[str, int]]:
        """ECOM_CASSANDRA_HOSTS (`host[:port],...`) or the local node."""
        value = self.external() or f"127.0.0.1:{self.port}"
        return [host_port(h.strip(), self.port) for h in value.split(",") if h.strip()]


def cql_release_version(hosts: list[tuple[str, int]]) -> str | None:
    """Ask a node over CQL for its release version (a real query, not a port check)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    cluster = Cluster(
        contact_points=hosts,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(), request_timeout=3)},
        connect_timeout=3, control_connection_timeout=3,
        schema_metadata_enabled=False, token_metadata_enabled=False,
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version) if row else None
    finally:
        cluster.shutdown()


# Everything to stdout (captured in .stack/logs/cassandra.log).
LOGBACK = """\
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""
