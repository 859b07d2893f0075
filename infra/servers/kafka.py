"""Apache Kafka 4.1 in KRaft mode: one node that is both broker and controller.

The jars come from Maven Central (`org.apache.kafka:kafka_2.13` and its
runtime dependencies, plus the log4j2 binding for slf4j that the binary
distribution ships but the POM does not name). The node listens on
127.0.0.1 only: PLAINTEXT on 19092 for clients, CONTROLLER on 19093 for the
KRaft quorum of one.

Topics are not created automatically (`auto.create.topics.enable=false`):
services create the topics they own at start-up with
`mesh.kafka.ensure_topics`, so a typo in a topic name is an error rather than
a silently created, empty topic.
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

from infra.core import CACHE, InfraError, Server, java_home, log, maven_resolve, run
from infra.stack import PORTS

KAFKA_VERSION = "4.1.2"
SCALA = "2.13"
# The slf4j 1.x -> log4j2 binding the Kafka distribution ships in libs/
# (Kafka 4.1 still uses slf4j-api 1.7). Same log4j2 version as the log4j-core
# that kafka_2.13 depends on, so the two never disagree.
LOG4J2_VERSION = "2.25.3"

# Kafka's own JVM flags (from kafka-run-class.sh), with a small heap.
JVM_OPTS = [
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
]

LOG4J2_PROPERTIES = """\
# Written by infra/servers/kafka.py. Everything goes to stdout, which infra
# captures in .stack/logs/kafka.log.
status = warn
# Kafka stops its own logging on shutdown; a log4j hook only races it.
shutdownHook = disable
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
# The chattiest loggers, quieted to what an operator needs.
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.controller.name = org.apache.kafka.controller
logger.controller.level = warn
logger.raft.name = org.apache.kafka.raft
logger.raft.level = warn
logger.metadata.name = org.apache.kafka.image.loader
logger.metadata.level = warn
logger.clientconfig.name = org.apache.kafka.clients
logger.clientconfig.level = warn
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
"""


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding
    (what `kafka-storage random-uuid` prints), never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class Kafka(Server):
    """A single-node KRaft Kafka (broker + controller) on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__(
            name="kafka",
            port=PORTS["kafka"],
            env_var="ECOM_KAFKA_BOOTSTRAP",
            start_timeout=90.0,
            extra_ports=[PORTS["kafka"] + 1],
        )

    @property
    def controller_port(self) -> int:
        return self.extra_ports[0]

    # -- paths ---------------------------------------------------------------
    @property
    def home(self) -> Path:
        return CACHE / "kafka" / KAFKA_VERSION

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def log_dirs(self) -> Path:
        """Where Kafka keeps partitions and the KRaft metadata log."""
        return self.data_dir / "data"

    @property
    def url(self) -> str:
        return self.external() or f"127.0.0.1:{self.port}"

    # -- hooks ---------------------------------------------------------------
    def install(self) -> None:
        maven_resolve(f"org.apache.kafka:kafka_{SCALA}:{KAFKA_VERSION}", self.home / "lib")
        maven_resolve(
            f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J2_VERSION}",
            self.home / "log",
            # Already in lib/ at the versions Kafka was built with.
            exclusions=[
                "org.slf4j:slf4j-api",
                "org.apache.logging.log4j:log4j-api",
                "org.apache.logging.log4j:log4j-core",
            ],
        )

    def server_properties(self) -> str:
        ctl = self.controller_port
        return f"""\
# Written by infra/servers/kafka.py on every start; edit that file instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ctl}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs={self.log_dirs}

# Services create the topics they own (mesh.kafka.ensure_topics).
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=1
min.insync.replicas=1

# One node: every internal topic has one replica, and few partitions so the
# first consumer group and the first transaction start quickly.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=4

# No waiting for more members before the first rebalance: tests and
# single-instance services join alone.
group.initial.rebalance.delay.ms=0

# Small threads and segments for a laptop-sized node.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=67108864
log.retention.hours=168
log.retention.check.interval.ms=300000
"""

    def prepare(self) -> None:
        self.config_file.write_text(self.server_properties())
        self.log4j_file.write_text(LOG4J2_PROPERTIES)
        if (self.log_dirs / "meta.properties").exists():
            return
        self.log_dirs.mkdir(parents=True, exist_ok=True)
        log("kafka: formatting KRaft storage")
        run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(self.config_file),
            ],
            what="kafka storage format",
            env=self.environment(),
            timeout=120,
        )

    def _java(self) -> list[str]:
        java = java_home(17) / "bin" / "java"
        cp = os.pathsep.join([str(self.home / "lib" / "*"), str(self.home / "log" / "*")])
        return [
            str(java),
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.log4j_file}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            cp,
        ]

    def command(self) -> list[str]:
        return [*self._java(), "kafka.Kafka", str(self.config_file)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Options meant for other JVMs must not leak into the broker.
        for k in ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"):
            env.pop(k, None)
        return env

    def ready(self) -> bool:
        """The broker answers a Metadata request and lists itself."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": self.url,
                "socket.timeout.ms": 2000,
                "log_level": 0,  # connection-refused noise while the JVM starts
            }
        )
        md = admin.list_topics(timeout=2)
        return bool(md.brokers)

    def version(self) -> str:
        if not (self.home / "lib" / f"kafka_{SCALA}-{KAFKA_VERSION}.jar").exists():
            raise InfraError("kafka is not installed")
        return f"{KAFKA_VERSION} (KRaft, Scala {SCALA})"
