"""Redis from Debian's `redis-server` package, as our own instance.

Loopback only with protected mode on, append-only file on (fsync every
second), and expired-key keyspace notifications on: order holds use Redis
TTL keys as the fast path, and the sweeper listens for their expiry. The
config file is written on every start; nothing under /etc/redis is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from infra.core import Server, apt_install, ensure_service_user, run
from infra.stack import PORTS

if TYPE_CHECKING:
    import redis

PACKAGES = ["redis-server"]
REDIS_SERVER = "/usr/bin/redis-server"

CONFIG = """\
# Written by infra/servers/redis.py on every start; edit that file instead.
bind 127.0.0.1
port {port}
protected-mode yes
daemonize no
supervised no
# Logs go to stdout, which infra sends to .stack/logs/redis.log.
logfile ""
loglevel notice
dir {dir}

appendonly yes
appendfsync everysec
appenddirname appendonly
save 900 1 300 100
dbfilename dump.rdb

# E = keyevent channel, x = expired events: `__keyevent@<db>__:expired`.
notify-keyspace-events Ex

databases 16
maxmemory 256mb
maxmemory-policy noeviction
"""


class Redis(Server):
    def __init__(self) -> None:
        super().__init__(name="redis", port=PORTS["redis"], env_var="ECOM_REDIS_URL",
                         start_timeout=60)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "redis.conf"

    def install(self) -> None:
        apt_install(PACKAGES, binaries=[REDIS_SERVER])

    def run_as(self) -> tuple[int, int] | None:
        return ensure_service_user()

    def prepare(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(CONFIG.format(port=self.port, dir=self.data_dir / "data"))

    def command(self) -> list[str]:
        return [REDIS_SERVER, str(self.config_file)]

    def _client(self) -> redis.Redis:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2)

    def ready(self) -> bool:
        client = self._client()
        try:
            return bool(client.ping())
        finally:
            client.close()

    def version(self) -> str:
        if self.pid() is not None:
            client = self._client()
            try:
                info = cast(dict[str, Any], client.info("server"))
                return f"Redis {info['redis_version']}"
            finally:
                client.close()
        if not Path(REDIS_SERVER).exists():
            return "?"
        # "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=..."
        out = run([REDIS_SERVER, "--version"], what="redis-server --version")
        for part in out.split():
            if part.startswith("v="):
                return f"Redis {part[2:]}"
        return "?"
