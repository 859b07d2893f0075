"""MariaDB access for services: an async SQLAlchemy engine per database.

The server comes from `ECOM_MYSQL_URL` (`mysql://user[:password]@host:port`,
no database); each service names its own database, which is created on first
use. The driver is asyncmy; the character set is utf8mb4 everywhere.
`SqlStore` is the base of the services' stores.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:13306"
# Database names we create: letters, digits and underscores, as MariaDB's
# unquoted identifiers allow. Anything else is a bug in the caller.
_DB_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def mysql_url_from_env() -> str:
    """`ECOM_MYSQL_URL`, or the local stack's MariaDB."""
    return os.environ.get("ECOM_MYSQL_URL", DEFAULT_MYSQL_URL)


def async_url(server_url: str, database: str | None = None) -> URL:
    """`mysql://root@host:port` (any mysql+driver scheme) -> the asyncmy URL
    for `database` (or for no database)."""
    url = make_url(server_url)
    if not url.drivername.startswith(("mysql", "mariadb")):
        raise ValueError(f"not a MySQL/MariaDB URL: {url.render_as_string(hide_password=True)}")
    query = {**url.query, "charset": "utf8mb4"}
    # `URL.set` ignores None, and a server URL's own path must not leak through.
    return url.set(drivername="mysql+asyncmy", query=query)._replace(database=database)


def _checked(database: str) -> str:
    if not _DB_NAME.match(database):
        raise ValueError(f"invalid database name {database!r}: use letters, digits and _")
    return database


async def create_database(server_url: str, database: str) -> None:
    """CREATE DATABASE IF NOT EXISTS, in utf8mb4."""
    engine = create_async_engine(async_url(server_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE DATABASE IF NOT EXISTS `{_checked(database)}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )
    finally:
        await engine.dispose()


async def drop_database(server_url: str, database: str) -> None:
    """DROP DATABASE IF EXISTS (test clean-up)."""
    engine = create_async_engine(async_url(server_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{_checked(database)}`"))
    finally:
        await engine.dispose()


def ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only when it sat unused for
    more than ``idle_seconds`` (SQLAlchemy's ``pool_pre_ping`` pings on
    every checkout: one more round trip per transaction). A failed ping
    makes the pool discard the connection and open a new one. A connection
    used within the threshold that finds the server gone fails its
    statement, and SQLAlchemy then invalidates the whole pool."""
    _last_used = "ecom_last_used"

    def stamp(dbapi_connection: Any, record: Any, *_: Any) -> None:
        record.info[_last_used] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        last = record.info.get(_last_used)
        if last is not None and time.monotonic() - last <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: reconnect
            raise DisconnectionError(f"ping of an idle connection failed: {exc}") from exc

    event.listen(engine.sync_engine, "connect", stamp)
    event.listen(engine.sync_engine, "checkin", stamp)
    event.listen(engine.sync_engine, "checkout", checkout)


async def make_engine(
    server_url: str,
    database: str,
    *,
    create: bool = True,
    pool_size: int = 5,
    max_overflow: int = 5,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """An async engine bound to `database` on the server at `server_url`,
    creating the database first unless `create` is False.

    Connections idle for more than ``ECOM_DB_PING_IDLE_SECONDS`` (1 s) are
    checked before use (a restarted MariaDB costs one reconnect, not an
    error); busier ones are not, which saves a round trip per transaction
    under load. They are recycled hourly, under MariaDB's idle timeout.
    Dispose it with `await engine.dispose()` when done."""
    if create:
        await create_database(server_url, database)
    engine = create_async_engine(
        async_url(server_url, _checked(database)),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=3600,
        **engine_kwargs,
    )
    ping_when_idle(engine, float(os.environ.get("ECOM_DB_PING_IDLE_SECONDS", "1.0")))
    # Pool use on the metrics endpoint; SQL spans once tracing is on.
    from mesh import metrics, tracing

    metrics.watch_pool(database, engine)
    tracing.instrument_engine(engine)
    return engine


# --------------------------------------------------------------------------
# Transactions that survive MariaDB's deadlock and lock-wait aborts
# --------------------------------------------------------------------------

ER_DUP_ENTRY = 1062  # a UNIQUE or PRIMARY KEY clash
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
# A failed CHECK constraint. asyncmy and pymysql raise it as an
# OperationalError, not an IntegrityError.
ER_CONSTRAINT_FAILED = 4025
# MariaDB rolls the whole transaction back on these, so running it again from
# the start is safe.
RETRYABLE_ERRNOS = frozenset({ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK})

T = TypeVar("T")


def mysql_errno(exc: DBAPIError) -> int | None:
    """The MariaDB error number behind a SQLAlchemy error."""
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


async def ping(engine: AsyncEngine) -> bool:
    """Health probe: the database answers."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def run_transaction(
    engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]], *, retries: int = 3
) -> T:
    """Run ``work`` in one transaction, again from the start when MariaDB
    picked it as a deadlock victim or a lock wait timed out (both roll the
    whole transaction back). Other errors propagate."""
    for attempt in range(retries + 1):
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except DBAPIError as exc:
            if mysql_errno(exc) not in RETRYABLE_ERRNOS or attempt == retries:
                raise
            # A short, growing pause lets the winner of the conflict finish.
            await asyncio.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


class SqlStore:
    """Base of a service's MariaDB store: the engine, the retry budget of its
    transactions, table creation and the health probe.

    A subclass provides ``schema``: the ``MetaData`` of the tables it owns,
    then any shared ones living in the same database (``mesh.outbox.metadata``,
    ``mesh.consumer.metadata``). It may override ``retries``, the default
    number of re-runs after a deadlock or lock wait timeout (``run``)."""

    schema: ClassVar[tuple[MetaData, ...]]
    retries: int = 3

    def __init__(self, engine: AsyncEngine, *, retries: int | None = None) -> None:
        self.engine = engine
        if retries is not None:
            self.retries = retries

    async def create_tables(self) -> None:
        """Create every table of ``schema`` that is missing (idempotent; under
        the database's schema lock, so replicas starting at once do not race)."""
        from mesh.lease import schema_lock

        async with schema_lock(self.engine), self.engine.begin() as conn:
            for metadata in self.schema:
                await conn.run_sync(metadata.create_all)

    async def ping(self) -> bool:
        """Health probe: True when the database answers; raises otherwise
        (``mesh.Service.add_dependency`` counts an exception as down)."""
        return await ping(self.engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction, not retried; committed when the block ends
        without error."""
        async with self.engine.begin() as conn:
            yield conn

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, again from the start (up to
        ``retries`` times) after a deadlock or lock wait timeout."""
        return await run_transaction(self.engine, work, retries=self.retries)


# --------------------------------------------------------------------------
# Times as the DATETIME(6) columns keep them
# --------------------------------------------------------------------------


def utcnow() -> datetime:
    """Naive UTC with microseconds, as the DATETIME(6) columns store it."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_timestamp(value: datetime | None) -> Timestamp | None:
    """A naive-UTC datetime as a protobuf Timestamp (None stays unset);
    the same as :func:`mesh.events.timestamp`."""
    from mesh.events import timestamp

    return timestamp(value)
