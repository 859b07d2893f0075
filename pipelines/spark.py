"""The one way our Spark jobs get a SparkSession.

Local mode by default (`local[2]`: the machine has two cores and shares them
with the servers), the driver bound to loopback, no web UI, a small heap, and
the Kafka connector jars from the download cache on `spark.jars`, so nothing
is fetched when a job runs (`python -m infra install` fills the cache once).
Spark itself reports nothing anywhere; event logs stay off.

On a real cluster set `ECOM_SPARK_MASTER` (e.g. `spark://host:7077`) and,
when the cluster's image already carries the connector, `ECOM_SPARK_JARS`
(comma-separated, may be empty) instead of the local cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"


def kafka_jars() -> list[str]:
    """Jars that give Spark the `kafka` source and sink, without downloading."""
    override = os.environ.get("ECOM_SPARK_JARS")
    if override is not None:
        return [j for j in override.split(",") if j]
    from infra.tools import spark_kafka_jars

    folder = spark_kafka_jars(resolve=False)
    return sorted(str(j) for j in folder.glob("*.jar"))


def lake_jars() -> list[str]:
    """Delta Lake jars for jobs that write the event lake, without downloading.
    Empty when ECOM_SPARK_JARS is set (that list then names every jar)."""
    if os.environ.get("ECOM_SPARK_JARS") is not None:
        return []
    from infra.tools import spark_lake_jars

    return sorted(str(j) for j in spark_lake_jars(resolve=False).glob("*.jar"))


# Session settings that turn on Delta Lake (SQL MERGE, `delta.`path`` tables).
DELTA_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def _java_home() -> str | None:
    """A JDK 17+ for the driver when JAVA_HOME does not name one (Spark 4 needs 17)."""
    if os.environ.get("JAVA_HOME"):
        return None
    from infra.core import java_home

    return str(java_home(17))


def build_session(
    app_name: str,
    *,
    master: str | None = None,
    driver_memory: str = "512m",
    shuffle_partitions: int = 2,
    local_dir: Path | None = None,
    extra_conf: Mapping[str, str] | None = None,
    delta: bool = False,
) -> SparkSession:
    """A SparkSession for job `app_name`, configured for this project.

    `getOrCreate` semantics: within one Python process the first call starts
    the JVM and later calls reuse it (JVM-level settings such as driver memory
    and jars are fixed by the first call). Stop it with `session.stop()`.
    `delta=True` adds the Delta Lake jars and SQL extensions.
    """
    from pyspark.sql import SparkSession

    java = _java_home()
    if java:
        os.environ["JAVA_HOME"] = java
    # The launcher and the block manager bind to this address too.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    scratch = local_dir or Path(tempfile.gettempdir()) / "ecom-spark"
    scratch.mkdir(parents=True, exist_ok=True)

    conf: dict[str, str] = {
        "spark.master": master or os.environ.get("ECOM_SPARK_MASTER", DEFAULT_MASTER),
        "spark.app.name": app_name,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.eventLog.enabled": "false",
        # No Hive metastore (it would create metastore_db/ in the working dir).
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.local.dir": str(scratch / "local"),
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
    }
    jars = kafka_jars() + (lake_jars() if delta else [])
    if jars:
        # Left unset when empty, so jars spark-submit resolved (--packages,
        # --jars) are not overridden.
        conf["spark.jars"] = ",".join(jars)
    if delta:
        conf.update(DELTA_CONF)
    conf.update(extra_conf or {})

    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
