"""The order archive in Cassandra: connection, schema, writes and reads.

The keyspace (``ECOM_ORDERS_ARCHIVE_KEYSPACE`` with the deployment's
keyspace prefix) and its replication (``ECOM_ORDERS_ARCHIVE_REPLICATION``)
come from configuration; the tables come from ``svc_orders/cql/*.cql``,
applied at every start (all ``IF NOT EXISTS``). Locally the replication is
``SimpleStrategy`` with RF 1; on a 3-node cluster set
``{'class': 'NetworkTopologyStrategy', '<dc>': 3}``. Writes and reads both
use ``LOCAL_QUORUM`` (configurable), so a read-back after a write sees it
(2 + 2 > 3) and one node may be down; with RF 1 it means the one replica.

Cassandra being down must not stop svc_orders: :meth:`ArchiveStore.session`
connects lazily and every failure surfaces as :class:`ArchiveUnavailable`,
which the archiver treats as "pause and retry" and the history as
"list live orders only".

The driver is callback based; :func:`_aio` turns its futures into asyncio
futures, so no thread is blocked per query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cassandra import (
    ConsistencyLevel,
    DriverException,
    OperationTimedOut,
    RequestValidationException,
)
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    ResponseFuture,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from mesh import tracing

log = logging.getLogger(__name__)

CQL_DIR = Path(__file__).resolve().parent / "cql"
_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
# Cassandra keyspace names: letters, digits, underscores, at most 48.
_MAX_KEYSPACE = 48
# What the driver raises when Cassandra is down, overloaded or slow.
_DRIVER_FAILURES = (
    DriverException,
    NoHostAvailable,
    OperationTimedOut,
    ConnectionException,
    OSError,
)


class ArchiveUnavailable(Exception):
    """Cassandra could not be reached or did not answer in time."""


def to_us(value: datetime) -> int:
    """A naive-UTC datetime as whole microseconds since the epoch (exact)."""
    return (value.replace(tzinfo=None) - _EPOCH) // _US


def from_us(value: int) -> datetime:
    """Microseconds since the epoch as a naive-UTC datetime."""
    return _EPOCH + value * _US


def month_of(create_us: int) -> str:
    """The by-seller bucket of an order: its UTC creation month, ``2026-11``."""
    return from_us(create_us).strftime("%Y-%m")


@dataclass(frozen=True)
class ArchivedRow:
    """One order as written to every archive table."""

    order_id: str
    user_id: str
    state: str
    create_us: int
    update_us: int
    # Sellers of its lines; the shop's own items (no supplier) have none
    # and are not in the by-seller table.
    seller_ids: frozenset[str]
    order_pb: bytes
    version: int
    reservation_state: str
    payment_request_id: str
    refund_state: str


def _aio(future: ResponseFuture) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    out: asyncio.Future[Any] = loop.create_future()

    def done(result: Any) -> None:
        if not out.done():
            out.set_result(result)

    def failed(exc: BaseException) -> None:
        if not out.done():
            out.set_exception(exc)

    future.add_callbacks(
        lambda rows: loop.call_soon_threadsafe(done, rows),
        errback=lambda exc: loop.call_soon_threadsafe(failed, exc),
    )
    return out


def cql_statements(text: str) -> list[str]:
    """The statements of a .cql file (``--`` comments dropped, split on ';')."""
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class ArchiveStore:
    """The archive tables of one keyspace."""

    def __init__(
        self,
        contact_points: Sequence[tuple[str, int]],
        keyspace: str,
        *,
        replication: str = "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        write_consistency: str = "LOCAL_QUORUM",
        read_consistency: str = "LOCAL_QUORUM",
        timeout_seconds: float = 5.0,
        max_in_flight: int = 64,
    ) -> None:
        if not keyspace.replace("_", "a").isalnum() or len(keyspace) > _MAX_KEYSPACE:
            raise ValueError(f"invalid Cassandra keyspace name {keyspace!r}")
        self.contact_points = list(contact_points)
        self.keyspace = keyspace
        self.replication = replication
        self.write_cl = ConsistencyLevel.name_to_value[write_consistency.upper()]
        self.read_cl = ConsistencyLevel.name_to_value[read_consistency.upper()]
        self.timeout = timeout_seconds
        self.max_in_flight = max_in_flight
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, PreparedStatement] = {}
        # (seller, month) buckets already recorded in seller_months.
        self._months_written: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()
        self._last_attempt = 0.0
        self._failed = False  # the last connect attempt failed

    # -- connection ----------------------------------------------------------
    async def session(self) -> Session:
        """The connected session (connecting, creating the keyspace and
        applying the schema on first use); ArchiveUnavailable when Cassandra
        cannot be reached. Failed attempts are retried at most once a second."""
        if self._session is not None:
            return self._session
        if self._lock.locked() and self._failed:
            # Cassandra failed before and a retry is under way: answer now
            # rather than queue every reader behind a connect timeout.
            raise ArchiveUnavailable("the archive (Cassandra) is unreachable")
        async with self._lock:
            if self._session is not None:
                return self._session
            loop = asyncio.get_running_loop()
            if loop.time() - self._last_attempt < 1.0:
                raise ArchiveUnavailable("the archive (Cassandra) is unreachable")
            self._last_attempt = loop.time()
            try:
                self._session = await asyncio.to_thread(self._connect)
            except Exception as exc:  # noqa: BLE001 - any driver failure means down
                self._failed = True
                raise ArchiveUnavailable(f"the archive (Cassandra) is unreachable: {exc}") from exc
            return self._session

    def _connect(self) -> Session:
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=self.read_cl,
            request_timeout=self.timeout,
        )
        cluster = Cluster(
            contact_points=[h for h, _ in self.contact_points],
            port=self.contact_points[0][1] if self.contact_points else 9042,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=self.timeout,
            control_connection_timeout=self.timeout,
            protocol_version=5,
        )
        try:
            session = cluster.connect()
            self._apply_schema(session)
        except Exception:
            cluster.shutdown()
            raise
        self._cluster = cluster
        return tracing.instrument_cassandra(session)

    def _apply_schema(self, session: Session) -> None:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = {self.replication}",
            timeout=max(self.timeout, 30),
        )
        session.set_keyspace(self.keyspace)
        for path in sorted(CQL_DIR.glob("*.cql")):
            for statement in cql_statements(path.read_text()):
                session.execute(statement, timeout=max(self.timeout, 30))
        cql = {
            "put_by_id": "INSERT INTO orders_by_id (order_id, user_id, state, create_us, update_us,"
            " seller_ids, order_pb, version, reservation_state, payment_request_id, refund_state,"
            " archive_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "put_by_user": "INSERT INTO orders_by_user (user_id, create_us, order_id, order_pb)"
            " VALUES (?, ?, ?, ?)",
            "put_by_seller": "INSERT INTO orders_by_seller (seller_id, month, create_us, order_id,"
            " order_pb) VALUES (?, ?, ?, ?, ?)",
            "put_month": "INSERT INTO seller_months (seller_id, month) VALUES (?, ?)",
            "get_by_id": "SELECT order_pb FROM orders_by_id WHERE order_id = ?",
            "ids_in": "SELECT order_id, order_pb FROM orders_by_id WHERE order_id IN ?",
            "user_rows_in": "SELECT order_id, order_pb FROM orders_by_user"
            " WHERE user_id = ? AND (create_us, order_id) IN ?",
            "seller_rows_in": "SELECT order_id, order_pb FROM orders_by_seller"
            " WHERE seller_id = ? AND month = ? AND (create_us, order_id) IN ?",
            "user_first": "SELECT create_us, order_id, order_pb FROM orders_by_user"
            " WHERE user_id = ? LIMIT ?",
            "user_after": "SELECT create_us, order_id, order_pb FROM orders_by_user"
            " WHERE user_id = ? AND (create_us, order_id) < (?, ?) LIMIT ?",
            "seller_first": "SELECT create_us, order_id, order_pb FROM orders_by_seller"
            " WHERE seller_id = ? AND month = ? LIMIT ?",
            "seller_after": "SELECT create_us, order_id, order_pb FROM orders_by_seller"
            " WHERE seller_id = ? AND month = ? AND (create_us, order_id) < (?, ?) LIMIT ?",
            "months_upto": "SELECT month FROM seller_months WHERE seller_id = ? AND month <= ?",
        }
        for name, text in cql.items():
            stmt = session.prepare(text)
            stmt.consistency_level = self.write_cl if name.startswith("put") else self.read_cl
            self._prepared[name] = stmt

    async def close(self) -> None:
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.shutdown)
            self._cluster = self._session = None

    async def connect_in_background(self, retry_seconds: float = 5.0) -> None:
        """Background task: connect (schema applied) as soon as Cassandra
        answers, so the first archived read does not pay for it."""
        while self._session is None:
            try:
                await self.session()
                log.info("archive connected: keyspace %s", self.keyspace)
                return
            except ArchiveUnavailable as exc:
                log.warning("%s; retrying in %.0fs", exc, retry_seconds)
                await asyncio.sleep(retry_seconds)

    async def _run(self, name: str, params: Any, session: Session | None = None) -> list[Any]:
        """One prepared statement by name, or (name "") a ready statement."""
        session = session or await self.session()
        statement = self._prepared[name] if name else params
        try:
            rows = await _aio(session.execute_async(statement, params if name else None))
        except RequestValidationException:
            raise  # a bad statement is a bug, not an outage
        except _DRIVER_FAILURES as exc:
            raise ArchiveUnavailable(f"the archive (Cassandra) failed: {exc}") from exc
        return list(rows) if rows is not None else []

    async def _run_all(
        self, calls: Iterable[tuple[str, Any]], session: Session | None = None
    ) -> list[list[Any]]:
        """Many statements concurrently, at most ``max_in_flight`` at a time."""
        session = session or await self.session()
        gate = asyncio.Semaphore(self.max_in_flight)

        async def one(name: str, params: Any) -> list[Any]:
            async with gate:
                return await self._run(name, params, session)

        return list(await asyncio.gather(*(one(n, p) for n, p in calls)))

    async def ping(self) -> bool:
        await self.session()
        return True

    # -- writes ----------------------------------------------------------------
    async def write(self, rows: Sequence[ArchivedRow], archive_us: int) -> None:
        """Write each order to every table. Idempotent: the same order
        written twice lands on the same keys with the same content.

        One unlogged batch per order carries its rows of every table (one
        round trip instead of three or four; atomicity is not needed, the
        read-back in :meth:`verify` is what lets the archiver delete)."""
        session = await self.session()
        batches: list[tuple[str, Any]] = []
        months: set[tuple[str, str]] = set()
        for r in rows:
            batch = BatchStatement(batch_type=BatchType.UNLOGGED, consistency_level=self.write_cl)
            batch.add(
                self._prepared["put_by_id"],
                (
                    r.order_id,
                    r.user_id,
                    r.state,
                    r.create_us,
                    r.update_us,
                    set(r.seller_ids),
                    r.order_pb,
                    r.version,
                    r.reservation_state,
                    r.payment_request_id,
                    r.refund_state,
                    archive_us,
                ),
            )
            batch.add(
                self._prepared["put_by_user"], (r.user_id, r.create_us, r.order_id, r.order_pb)
            )
            month = month_of(r.create_us)
            for seller in sorted(r.seller_ids):
                batch.add(
                    self._prepared["put_by_seller"],
                    (seller, month, r.create_us, r.order_id, r.order_pb),
                )
                if (seller, month) not in self._months_written:
                    months.add((seller, month))
            batches.append(("", batch))
        await self._run_all([*batches, *(("put_month", m) for m in sorted(months))], session)
        self._months_written.update(months)

    async def verify(self, rows: Sequence[ArchivedRow]) -> list[str]:
        """Read every table back; the ids of orders not found exactly as
        written (empty when the batch is safe to delete from MariaDB).
        Reads are grouped: ids by 100, and one query per user and per
        (seller, month) partition for the rows of the batch in it."""
        calls: list[tuple[str, Sequence[Any]]] = []
        ids = [r.order_id for r in rows]
        for start in range(0, len(ids), 100):
            calls.append(("ids_in", (ids[start : start + 100],)))
        by_user: dict[str, list[tuple[int, str]]] = {}
        by_seller: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for r in rows:
            by_user.setdefault(r.user_id, []).append((r.create_us, r.order_id))
            for seller in r.seller_ids:
                by_seller.setdefault((seller, month_of(r.create_us)), []).append(
                    (r.create_us, r.order_id)
                )
        calls += [("user_rows_in", (user, keys)) for user, keys in by_user.items()]
        calls += [("seller_rows_in", (s, m, keys)) for (s, m), keys in by_seller.items()]
        results = await self._run_all(calls)
        expected = {r.order_id: r.order_pb for r in rows}
        # How many copies of each order must read back: by id, by user, by seller.
        wanted = {r.order_id: 2 + len(r.seller_ids) for r in rows}
        good: dict[str, int] = {}
        for found in results:
            for row in found:
                if bytes(row.order_pb) == expected.get(row.order_id):
                    good[row.order_id] = good.get(row.order_id, 0) + 1
        return [oid for oid in ids if good.get(oid, 0) != wanted[oid]]

    # -- reads -----------------------------------------------------------------
    async def get(self, order_id: str) -> bytes | None:
        """The archived ecom.orders.v1.Order, serialized, or None."""
        found = await self._run("get_by_id", (order_id,))
        return bytes(found[0].order_pb) if found else None

    async def list_user(
        self, user_id: str, limit: int, after: tuple[int, str] | None
    ) -> list[tuple[int, str, bytes]]:
        """A user's archived orders, newest first, strictly after the
        (create_us, order_id) cursor: (create_us, order_id, order_pb)."""
        if after is None:
            found = await self._run("user_first", (user_id, limit))
        else:
            found = await self._run("user_after", (user_id, after[0], after[1], limit))
        return [(int(r.create_us), str(r.order_id), bytes(r.order_pb)) for r in found]

    async def list_seller(
        self, seller_id: str, limit: int, after: tuple[int, str] | None
    ) -> list[tuple[int, str, bytes]]:
        """A seller's archived orders, newest first, after the cursor,
        walking the month buckets backwards from the cursor's month."""
        top = month_of(after[0]) if after else "9999-12"
        months = [str(r.month) for r in await self._run("months_upto", (seller_id, top))]
        out: list[tuple[int, str, bytes]] = []
        for month in months:
            want = limit - len(out)
            if want <= 0:
                break
            if after is not None and month == month_of(after[0]):
                found = await self._run(
                    "seller_after", (seller_id, month, after[0], after[1], want)
                )
            else:
                found = await self._run("seller_first", (seller_id, month, want))
            out += [(int(r.create_us), str(r.order_id), bytes(r.order_pb)) for r in found]
        return out


def now_us() -> int:
    return to_us(datetime.now(UTC).replace(tzinfo=None))
