"""MariaDB (the seed's MySQL) from Debian's packages, as our own instance.

Only the server and client cores are installed (`mariadbd`,
`mariadb-install-db`, `mariadb`): no system service, no /etc/mysql config is
read (`--defaults-file` comes first), and everything the server writes lives
under `.stack/mariadb/`. It runs as the unprivileged `ecom` account when infra
runs as root.

Local development only: `root` has no password and is reachable over TCP from
127.0.0.1 (and over the instance's own unix socket). Nothing listens beyond
the loopback interface.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.core import InfraError, Server, apt_install, ensure_service_user, log, run
from infra.stack import PORTS

if TYPE_CHECKING:
    from pymysql.connections import Connection  # type: ignore[import-untyped]

PACKAGES = ["mariadb-server-core", "mariadb-client-core"]
MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"

# Small buffers: a laptop runs this next to five other servers.
CONFIG = """\
# Written by infra/servers/mariadb.py on every start; edit that file instead.
[mariadbd]
datadir = {datadir}
socket = {socket}
pid-file = {pidfile}
tmpdir = {tmpdir}
port = {port}
bind-address = 127.0.0.1
skip-name-resolve
# Errors go to stderr, which infra sends to .stack/logs/mariadb.log.
log-warnings = 2

character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
default-storage-engine = InnoDB
# Strict mode (the 10.11 default, stated so nobody wonders).
sql-mode = STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION
skip-log-bin

innodb-buffer-pool-size = 64M
innodb-log-file-size = 32M
innodb-log-buffer-size = 8M
innodb-file-per-table = 1
# io_uring/libaio are often refused inside sandboxes and containers; the
# simulated AIO is plenty for a development database.
innodb-use-native-aio = 0
key-buffer-size = 8M
aria-pagecache-buffer-size = 8M
table-open-cache = 400
table-definition-cache = 400
thread-cache-size = 8
max-connections = 200
query-cache-type = 0
query-cache-size = 0
performance-schema = OFF

[client]
socket = {socket}
port = {port}
default-character-set = utf8mb4
"""


class MariaDB(Server):
    def __init__(self) -> None:
        super().__init__(name="mariadb", port=PORTS["mariadb"], env_var="ECOM_MYSQL_URL",
                         start_timeout=90)

    # -- paths ---------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.data_dir / "my.cnf"

    @property
    def datadir(self) -> Path:
        return self.data_dir / "data"

    @property
    def socket(self) -> Path:
        return self.data_dir / "mariadb.sock"

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}"

    # -- hooks -----------------------------------------------------------------
    def install(self) -> None:
        apt_install(PACKAGES, binaries=[MARIADBD, INSTALL_DB])

    def run_as(self) -> tuple[int, int] | None:
        return ensure_service_user()

    def prepare(self) -> None:
        (self.data_dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(CONFIG.format(
            datadir=self.datadir, socket=self.socket, pidfile=self.data_dir / "mariadbd.pid",
            tmpdir=self.data_dir / "tmp", port=self.port,
        ))
        marker = self.datadir / ".ecom-initialised"
        if marker.exists():
            return
        # A datadir without the marker is a half-finished first run of ours.
        shutil.rmtree(self.datadir, ignore_errors=True)
        log("mariadb: initialising the data directory (mariadb-install-db)")
        cmd = [
            INSTALL_DB, f"--defaults-file={self.config_file}",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db", "--skip-name-resolve",
        ]
        if os.geteuid() == 0:
            uid, gid = ensure_service_user()
            os.chown(self.data_dir, uid, gid)
            os.chown(self.data_dir / "tmp", uid, gid)
            cmd.append(f"--user={pwd.getpwuid(uid).pw_name}")
        run(cmd, what="mariadb-install-db", cwd=self.data_dir)
        marker.touch()

    def command(self) -> list[str]:
        # --defaults-file must be the first option.
        return [MARIADBD, f"--defaults-file={self.config_file}"]

    def _connect(self, *, tcp: bool = True) -> Connection:
        import pymysql  # type: ignore[import-untyped]

        if tcp:
            return pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                   connect_timeout=2)
        return pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=2)

    def _query_one(self, sql: str) -> tuple[Any, ...] | None:
        """Run one query over TCP as the services would; over our own unix socket
        only while a fresh data directory does not yet let root in over TCP."""
        import pymysql

        try:
            conn = self._connect(tcp=True)
        except pymysql.err.OperationalError as exc:
            # 1045 access denied, 1130 host not allowed: up, users not set yet.
            if exc.args[0] not in (1045, 1130) or not self.socket.exists():
                raise
            conn = self._connect(tcp=False)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchone()
        finally:
            conn.close()

    def ready(self) -> bool:
        return self._query_one("SELECT 1") == (1,)

    def after_ready(self) -> None:
        """Make passwordless root usable over TCP from the loopback (dev only);
        idempotent, so an old data directory gets fixed up too."""
        conn = self._connect(tcp=False)
        try:
            with conn.cursor() as cur:
                for host in ("127.0.0.1", "::1", "localhost"):
                    cur.execute(f"CREATE USER IF NOT EXISTS 'root'@'{host}' IDENTIFIED BY ''")
                    cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{host}' "
                                "WITH GRANT OPTION")
                # mariadb-install-db also adds root@<hostname>, which
                # skip-name-resolve can never match; it only adds start-up warnings.
                hostname = socket.gethostname()
                if hostname not in ("127.0.0.1", "::1", "localhost"):
                    cur.execute("DROP USER IF EXISTS 'root'@%s", (hostname,))
            conn.commit()
        finally:
            conn.close()
        conn = self._connect(tcp=True)
        conn.close()

    def version(self) -> str:
        if self.pid() is not None:
            row = self._query_one("SELECT VERSION()")
            return f"MariaDB {row[0]}" if row else "?"
        if not Path(MARIADBD).exists():
            return "?"
        out = run([MARIADBD, "--version"], what="mariadbd --version")
        # "mariadbd  Ver 10.11.x-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 ..."
        parts = out.split()
        if "Ver" in parts:
            return f"MariaDB {parts[parts.index('Ver') + 1]}"
        raise InfraError(f"unexpected mariadbd --version output: {out.strip()}")
