"""Elasticsearch 8 from the `integ-test-zip` distribution on Maven Central.

That zip is the bare server: no bundled JDK (we run it on the machine's Java 17
through `ES_JAVA_HOME`) and only four modules: transport-netty4, x-pack-core,
x-pack-security (disabled here) and apm (off by default). No other module is
published on Maven Central for 8.x (the `org.elasticsearch.plugin:*-client`
jars stop at 7.17), so what they provide is missing; checked against 8.19.21:

- analysis-common: the only tokenizer is `standard`; analyzers `standard`,
  `simple`, `whitespace`, `keyword`, `stop`; token filters `lowercase`, `stop`,
  `shingle` (and `hunspell`, which needs dictionary files); normalizer
  `lowercase`. No synonyms, stemmers/language analyzers (`english`), ngram or
  edge_ngram, asciifolding, word_delimiter, `html_strip`, `trim`, `unique`.
- lang-painless: no scripts anywhere (`script_score`, script sort, runtime
  fields, scripted updates, `bucket_script`).
- reindex: no `_reindex`, `_update_by_query`, `_delete_by_query`. Rebuild an
  index behind an alias from the client (scan + bulk; the Python client's
  `helpers.reindex` itself fails: it probes the absent data-streams API).
- mapper-extras, parent-join, percolator: no `scaled_float`,
  `search_as_you_type`, `match_only_text`, `rank_feature`, `token_count`,
  `join`, `percolator` field types (store prices as integral `long` paise).
- aggregations: no `bucket_sort`, `bucket_selector`, `multi_terms` (x-pack
  analytics) and the rest of that module; terms, range, histogram,
  date_histogram, stats, cardinality, filters, nested, composite, top_hits,
  significant_terms and the `*_bucket` pipelines work.
- ingest-common, data-streams, lang-mustache, rank-eval, SQL/ES|QL: absent.
- rest-root: `GET /` and `HEAD /` answer 405, so the Python client's `info()`
  fails and `ping()` returns False; use `cluster.health()` instead.

Core search is all there: match/multi_match with fuzziness, term/range/bool
filters, aliases and atomic alias swaps, sorting, search_after, PIT, scroll,
highlighting, completion/term/phrase suggesters, function_score with
`field_value_factor`, geo distance, collapse, dense_vector + knn, fuzzy
completion suggester (typo-tolerant autocomplete without edge_ngram).

Elasticsearch refuses to run as root, so the server runs as the unprivileged
service account. The download cache usually sits under /root, which that
account cannot traverse; then the distribution is copied into the data
directory, where it is also readable by that account.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import urllib.request
import zipfile
from pathlib import Path

from infra.core import (
    CACHE,
    InfraError,
    Server,
    download,
    ensure_service_user,
    java_home,
    log,
    maven_artifact_url,
)
from infra.servers.service_account import usable_copy
from infra.stack import PORTS

VERSION = "8.19.21"
COORDS = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{VERSION}"
HEAP = "512m"
TRANSPORT_PORT = 19300


class Elasticsearch(Server):
    def __init__(self) -> None:
        super().__init__(
            name="elasticsearch",
            port=PORTS["elasticsearch"],
            env_var="ECOM_ES_URL",
            start_timeout=150.0,
            extra_ports=[TRANSPORT_PORT],
        )

    # -- paths ------------------------------------------------------------------
    @property
    def cached_home(self) -> Path:
        return CACHE / "elasticsearch" / f"elasticsearch-{VERSION}"

    @property
    def home(self) -> Path:
        """The ES_HOME the server runs from: the cache when the service account
        can reach it, else a private copy inside the data directory."""
        return usable_copy(self.cached_home, self.data_dir / f"dist-{VERSION}",
                           ensure_service_user())

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "config"

    @property
    def url(self) -> str:
        return self.external() or f"http://127.0.0.1:{self.port}"

    # -- hooks ------------------------------------------------------------------
    def install(self) -> None:
        java_home(17)
        if (self.cached_home / "lib").is_dir():
            return
        archive = download(
            maven_artifact_url(COORDS, "zip"),
            CACHE / "elasticsearch" / f"elasticsearch-{VERSION}.zip",
            timeout=300,
        )
        unpack_zip(archive, self.cached_home.parent, top=self.cached_home.name)

    def prepare(self) -> None:
        home = self.home
        for d in ("data", "logs", "tmp", "config"):
            (self.data_dir / d).mkdir(parents=True, exist_ok=True)
        conf = self.conf_dir
        (conf / "elasticsearch.yml").write_text(self._settings())
        (conf / "jvm.options").write_text(self._jvm_options())
        (conf / "log4j2.properties").write_text(LOG4J2)
        # `ES_PATH_CONF` must be a complete config directory.
        for name in ("roles.yml", "role_mapping.yml", "users", "users_roles"):
            src = home / "config" / name
            if src.exists() and not (conf / name).exists():
                shutil.copy(src, conf / name)

    def _settings(self) -> str:
        d = self.data_dir
        settings = {
            "cluster.name": "ecom-local",
            "node.name": "ecom-es-1",
            "path.data": str(d / "data"),
            "path.logs": str(d / "logs"),
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": TRANSPORT_PORT,
            "discovery.type": "single-node",
            "xpack.security.enabled": False,
            # No phone-home and nothing heavy at start; the modules behind most
            # of these (ml, monitoring, geoip) are not in this distribution, so
            # only settings it knows may be named here or it refuses to start.
            "xpack.ml.enabled": False,
            "xpack.watcher.enabled": False,
            "telemetry.metrics.enabled": False,
            "telemetry.tracing.enabled": False,
            # A shared developer disk must not flip our indices to read-only.
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "bootstrap.memory_lock": False,
        }
        return "".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items())

    def _jvm_options(self) -> str:
        return "\n".join([
            f"-Xms{HEAP}",
            f"-Xmx{HEAP}",
            "-XX:+UseG1GC",
            # The launcher asks for a pre-touched heap; a local stack would rather
            # grow into it (less resident memory, faster start).
            "-XX:-AlwaysPreTouch",
            "-Djava.io.tmpdir=${ES_TMPDIR}",
            "-XX:+ExitOnOutOfMemoryError",
            f"-XX:ErrorFile={self.data_dir / 'logs' / 'hs_err_pid%p.log'}",
            f"-Xlog:gc*:file={self.data_dir / 'logs' / 'gc.log'}:utctime,level,tags"
            ":filecount=2,filesize=8m",
            "",
        ])

    def command(self) -> list[str]:
        return [str(self.home / "bin" / "elasticsearch")]

    def environment(self) -> dict[str, str]:
        # JAVA_HOME only earns a warning from the launcher: ES_JAVA_HOME wins.
        env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
        env.update({
            "ES_JAVA_HOME": str(java_home(17)),
            "ES_PATH_CONF": str(self.conf_dir),
            "ES_TMPDIR": str(self.data_dir / "tmp"),
            "HOME": str(self.data_dir),
            # The launcher JVM stays alive beside the server: keep it small.
            "CLI_JAVA_OPTS": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=16m -Xss512k",
        })
        return env

    def run_as(self) -> tuple[int, int] | None:
        return ensure_service_user()

    def ready(self) -> bool:
        health = self._get("/_cluster/health?timeout=1s")
        return health.get("status") in ("green", "yellow")

    def version(self) -> str:
        nodes = self._get("/_nodes/_local?filter_path=nodes.*.version").get("nodes", {})
        return next(iter(nodes.values()))["version"] if nodes else "?"

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=2) as resp:
            return json.loads(resp.read())


def unpack_zip(archive: Path, dest: Path, *, top: str) -> None:
    """Unzip `archive` (whose single top folder is `top`) into `dest`, keeping
    the executable bits, atomically: `dest/top` appears only when complete."""
    tmp = dest / f".{top}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log(f"unpacking {archive.name}")
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = tmp / info.filename
            if not target.resolve().is_relative_to(tmp.resolve()):
                raise InfraError(f"{archive}: refusing path {info.filename}")
            zf.extract(info, tmp)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(target, mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    if not (tmp / top).is_dir():
        raise InfraError(f"{archive}: no top folder {top}")
    (tmp / top).rename(dest / top)
    shutil.rmtree(tmp, ignore_errors=True)


# Everything to stdout (captured in .stack/logs/elasticsearch.log), plain text.
LOG4J2 = """\
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.deprecation.name = org.elasticsearch.deprecation
logger.deprecation.level = error
"""
