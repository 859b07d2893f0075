"""The archiver: moves terminal orders (DELIVERED, CANCELLED) whose last
transition is older than the archive age from MariaDB to Cassandra.

It runs inside svc_orders, as a background task every
``ECOM_ORDERS_ARCHIVE_INTERVAL_SECONDS`` and on demand through
``ArchiveOrders`` (``POST /v1/orders:archive``, admin). Inside the service
rather than a process of its own because it needs exactly what the service
already has (the orders engine, the codec that renders an order, the
catalog stub) and its load is small, batched and off the request path; a
separate deployment would add a unit to run and monitor for no gain. Any
number of copies may run at once: each batch claims its rows with
``SELECT ... FOR UPDATE SKIP LOCKED``, so two archivers never take the same
order, and a copy that dies releases its rows with its connection.

One batch, in one MariaDB transaction that holds the rows' locks:

1. claim up to N eligible orders (locked, SKIP LOCKED, no sort);
2. look up each line's seller (the catalog item's ``supplier_id``, which is
   immutable, so asking now gives the answer checkout would have);
3. write each order to every Cassandra table (idempotent: same keys, same
   content);
4. read every row back and compare bytes;
5. delete the orders and their lines from MariaDB, and commit.

A crash anywhere before the commit rolls the deletion back: the orders stay
in MariaDB (and may already be in Cassandra); the next run writes them
again onto the same keys, so nothing is lost or duplicated. Readers never
see a gap either: an order is in Cassandra before it leaves MariaDB, and
the history reads MariaDB first, then Cassandra, preferring MariaDB's copy.
If Cassandra (or the catalog) is unreachable the batch rolls back, nothing
is deleted, and the scheduled run retries after
``ECOM_ORDERS_ARCHIVE_RETRY_SECONDS``.

Eligible: DELIVERED or CANCELLED, ``update_time`` at least ``min_age`` ago,
no follow-up work owed (``work_due``, a refund DUE). An order whose payment
is still open (PENDING, TIMED_OUT: the gateway may still answer and a late
success must be refunded from the live row) waits for the configured
archive age even when a run asks for less.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.orderhistory.v1 import orderhistory_pb2 as hpb
from sqlalchemy.dialects.mysql import LONGBLOB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mesh.db import run_transaction, utcnow
from mesh.errors import InvalidArgument, Unavailable
from mesh.idempotency import AUTO_KEY_PREFIX
from svc_orders import codec, domain
from svc_orders import store as order_tables
from svc_orders.archive_store import ArchivedRow, ArchiveStore, ArchiveUnavailable, now_us, to_us
from svc_orders.domain import OrderState, PaymentStatus, RefundState
from svc_orders.store import OrderRecord, OrderStore, order_lines, orders

log = logging.getLogger(__name__)

TERMINAL = (OrderState.DELIVERED.value, OrderState.CANCELLED.value)
OPEN_PAYMENT = (PaymentStatus.PENDING.value, PaymentStatus.TIMED_OUT.value)
DEFAULT_MAX_ORDERS = 10_000
MAX_ORDERS = 100_000
REPORTED_IDS = 1_000
_CATALOG_BATCH = 500
# Re-runs of a batch chosen as a deadlock victim.
DEADLOCK_RETRIES = 5

archive_metadata = sa.MetaData()
# Reports of ArchiveOrders runs by request id (a retry returns the first).
archive_runs = sa.Table(
    "archive_runs",
    archive_metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("report", sa.LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")),
    sa.Column("create_time", order_tables._MICROS, nullable=False),
    mysql_engine="InnoDB",
)

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")


def parse_age(text: str) -> timedelta:
    """``ECOM_ORDER_ARCHIVE_AGE``: seconds, or a number with s, m, h or d
    (``30d``, ``720h``, ``0s``)."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"expected a duration like 30d, 12h, 90m or 0s, got {text!r}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86_400}[match.group(2) or "s"]
    return timedelta(seconds=float(match.group(1)) * unit)


def _before(now: datetime, age: timedelta) -> datetime:
    """``now - age``, the earliest datetime for ages beyond the calendar
    (a Duration may say 10,000 years)."""
    try:
        return now - age
    except OverflowError:
        return datetime.min


@dataclass(frozen=True)
class ArchiveSettings:
    """The archiver's knobs (ECOM_ORDER_ARCHIVE_AGE, ECOM_ORDERS_ARCHIVE_*)."""

    age: timedelta = timedelta(days=30)
    batch_size: int = 500
    interval_seconds: float = 600.0
    retry_seconds: float = 30.0
    call_timeout_seconds: float = 5.0
    # Test hook (crash tests only): after a batch is written to Cassandra and
    # verified, create this file and stop there, before the MariaDB delete,
    # so the test can kill -9 the process at exactly that point.
    pause_before_delete_file: str = ""


class SellerLookupUnavailable(Exception):
    """The catalog could not say who sells an item; the batch waits."""


class Archiver:
    """Moves eligible orders to the archive, one locked batch at a time."""

    def __init__(
        self,
        store: OrderStore,
        archive: ArchiveStore,
        catalog: catalog_pb2_grpc.CatalogServiceStub,
        settings: ArchiveSettings,
    ) -> None:
        self.store = store
        self.engine: AsyncEngine = store.engine
        self.archive = archive
        self.catalog = catalog
        self.settings = settings
        # item id -> supplier id; supplier_id is immutable, so never stale.
        self._sellers: dict[str, str] = {}

    async def prepare(self) -> None:
        """Create the run-report table and the index the claim query uses
        (both idempotent; under the database's schema lock, so replicas
        starting at once do not race between the check and the create)."""
        from mesh.lease import schema_lock

        async with schema_lock(self.engine), self.engine.begin() as conn:
            await conn.run_sync(archive_metadata.create_all)
            present = await conn.execute(
                sa.text("SHOW INDEX FROM orders WHERE Key_name = 'ix_orders_archive'")
            )
            if present.first() is None:  # IF NOT EXISTS: another replica may race us
                await conn.execute(
                    sa.text(
                        "CREATE INDEX IF NOT EXISTS ix_orders_archive"
                        " ON orders (state, update_time)"
                    )
                )

    # -- eligibility -------------------------------------------------------------
    def _eligible(self, min_age: timedelta) -> Any:
        now = utcnow()
        cutoff = _before(now, min_age)
        open_cutoff = _before(now, max(min_age, self.settings.age))
        return sa.and_(
            orders.c.state.in_(TERMINAL),
            orders.c.update_time <= cutoff,
            orders.c.work_due.is_(False),
            orders.c.refund_state != RefundState.DUE.value,
            sa.or_(
                orders.c.payment_status.not_in(OPEN_PAYMENT),
                orders.c.update_time <= open_cutoff,
            ),
        )

    # -- one run -------------------------------------------------------------------
    async def run(
        self, min_age: timedelta | None, max_orders: int, dry_run: bool, request_id: str
    ) -> hpb.ArchiveOrdersResponse:
        """ArchiveOrders: batches until ``max_orders`` moved or none is
        eligible. Unavailable (nothing more deleted) when Cassandra or the
        catalog cannot be reached."""
        problems = domain.validate_request_id(request_id) if request_id else []
        if not 0 <= max_orders <= MAX_ORDERS:
            problems.append(domain.FieldViolation("max_orders", f"must be 0-{MAX_ORDERS}"))
        if min_age is not None and min_age < timedelta(0):
            problems.append(domain.FieldViolation("min_age", "must not be negative"))
        if problems:
            raise InvalidArgument(violations=problems)
        # A key the mesh made up for a call without one dedupes nothing:
        # no report is kept for it.
        keyed = bool(request_id) and not request_id.startswith(AUTO_KEY_PREFIX)
        if keyed and (stored := await self._stored_report(request_id)) is not None:
            return stored
        age = self.settings.age if min_age is None else min_age
        limit = max_orders or DEFAULT_MAX_ORDERS
        report = await (self._dry_run(age, limit) if dry_run else self._archive(age, limit))
        if keyed:
            await self._save_report(request_id, report)
        return report

    async def _dry_run(self, age: timedelta, limit: int) -> hpb.ArchiveOrdersResponse:
        """What a run would archive, moving nothing."""
        report = hpb.ArchiveOrdersResponse()
        async with self.engine.connect() as conn:
            ids = (
                (
                    await conn.execute(
                        sa.select(orders.c.order_id)
                        .where(self._eligible(age))
                        .order_by(orders.c.update_time, orders.c.order_id)
                        .limit(limit + 1)
                    )
                )
                .scalars()
                .all()
            )
        report.archived_count = min(len(ids), limit)
        report.archived_order_ids.extend(ids[: min(limit, REPORTED_IDS)])
        report.more_remaining = len(ids) > limit
        return report

    async def _archive(self, age: timedelta, limit: int) -> hpb.ArchiveOrdersResponse:
        """Archive batches until ``limit`` orders moved or none is eligible."""
        report = hpb.ArchiveOrdersResponse()
        while report.archived_count < limit:
            want = min(self.settings.batch_size, limit - report.archived_count)
            try:
                moved = await self.archive_batch(age, want)
            except (ArchiveUnavailable, SellerLookupUnavailable) as exc:
                raise Unavailable(
                    f"archiving stopped after {report.archived_count} orders, nothing more "
                    f"was deleted: {exc}",
                    reason="ARCHIVE_UNAVAILABLE",
                ) from exc
            report.archived_count += len(moved)
            room = REPORTED_IDS - len(report.archived_order_ids)
            report.archived_order_ids.extend(moved[: max(room, 0)])
            if len(moved) < want:
                break
        if report.archived_count >= limit:
            async with self.engine.connect() as conn:
                more = await conn.execute(
                    sa.select(orders.c.order_id).where(self._eligible(age)).limit(1)
                )
                report.more_remaining = more.first() is not None
        return report

    async def archive_batch(self, min_age: timedelta, limit: int) -> list[str]:
        """Claim, copy, verify and delete up to ``limit`` orders in one
        transaction; the ids moved. Raises ArchiveUnavailable /
        SellerLookupUnavailable with nothing deleted. A transaction MariaDB
        picks as a deadlock victim (concurrent archivers deleting
        neighbouring index entries) is rolled back and run again from the
        claim: the Cassandra writes it repeats are idempotent."""

        async def work(conn: AsyncConnection) -> list[str]:
            ids = list(
                (
                    # No ORDER BY: a sorted locking read would scan (and
                    # lock) every eligible row before the LIMIT; this one
                    # walks ix_orders_archive and stops at `limit` rows.
                    await conn.execute(
                        sa.select(orders.c.order_id)
                        .where(self._eligible(min_age))
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            if not ids:
                return []
            records = await self._records(conn, ids)
            sellers = await self._sellers_of({ln.item_id for r in records for ln in r.lines})
            rows = [self._row(rec, sellers) for rec in records]
            await self.archive.write(rows, now_us())
            bad = await self.archive.verify(rows)
            if bad:
                raise ArchiveUnavailable(
                    f"{len(bad)} orders did not read back as written (first {bad[0]})"
                )
            if self.settings.pause_before_delete_file:
                await self._pause_for_crash_test(ids)
            await conn.execute(sa.delete(order_lines).where(order_lines.c.order_id.in_(ids)))
            await conn.execute(sa.delete(orders).where(orders.c.order_id.in_(ids)))
            return ids

        ids = await run_transaction(self.engine, work, retries=DEADLOCK_RETRIES)
        if ids:
            log.info("archived %d orders", len(ids))
        return ids

    async def _records(self, conn: AsyncConnection, ids: Sequence[str]) -> list[OrderRecord]:
        rows = (
            (await conn.execute(sa.select(orders).where(orders.c.order_id.in_(ids))))
            .mappings()
            .all()
        )
        lines = await self.store._lines(conn, list(ids))
        return [order_tables._record(r, lines) for r in rows]

    def _row(self, rec: OrderRecord, sellers: dict[str, str]) -> ArchivedRow:
        order = codec.order_proto(rec)
        order.archived = True
        for line in order.lines:
            line.seller_id = sellers.get(line.item_id, "")
        return ArchivedRow(
            order_id=rec.order_id,
            user_id=rec.user_id,
            state=rec.state.value,
            create_us=to_us(rec.create_time),
            update_us=to_us(rec.update_time),
            seller_ids=frozenset(s for s in (ln.seller_id for ln in order.lines) if s),
            order_pb=order.SerializeToString(deterministic=True),
            version=rec.version,
            reservation_state=rec.reservation_state.value,
            payment_request_id=rec.payment_request_id or "",
            refund_state=rec.refund_state,
        )

    async def _sellers_of(self, item_ids: set[str]) -> dict[str, str]:
        missing = sorted(i for i in item_ids if i not in self._sellers)
        for start in range(0, len(missing), _CATALOG_BATCH):
            chunk = missing[start : start + _CATALOG_BATCH]
            try:
                resp = await self.catalog.BatchGetItems(
                    catalog_pb2.BatchGetItemsRequest(item_ids=chunk),
                    timeout=self.settings.call_timeout_seconds,
                )
            except grpc.aio.AioRpcError as exc:
                raise SellerLookupUnavailable(
                    f"the catalog could not name the sellers: {exc.code().name}"
                ) from exc
            for item in resp.items:
                self._sellers[item.item_id] = item.supplier_id
            # An id the catalog no longer knows has no seller to file under.
            for item_id in resp.missing_item_ids:
                self._sellers[item_id] = ""
        return {i: self._sellers.get(i, "") for i in item_ids}

    async def _pause_for_crash_test(self, ids: Sequence[str]) -> None:
        path = Path(self.settings.pause_before_delete_file)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(ids))
        os.replace(tmp, path)
        log.warning("test hook: paused before deleting %d archived orders", len(ids))
        await asyncio.sleep(3600)

    # -- run reports -------------------------------------------------------------
    async def _stored_report(self, request_id: str) -> hpb.ArchiveOrdersResponse | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(archive_runs.c.report).where(archive_runs.c.request_id == request_id)
                )
            ).first()
        return hpb.ArchiveOrdersResponse.FromString(bytes(row[0])) if row else None

    async def _save_report(self, request_id: str, report: hpb.ArchiveOrdersResponse) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(archive_runs)
                .prefix_with("IGNORE")
                .values(
                    request_id=request_id,
                    report=report.SerializeToString(),
                    create_time=utcnow(),
                )
            )

    # -- the schedule --------------------------------------------------------------
    async def run_forever(self) -> None:
        """The scheduled archiver: a run every interval (at once again while
        eligible orders remain); after a failure, a retry sooner."""
        while True:
            delay = self.settings.interval_seconds
            try:
                report = await self.run(None, DEFAULT_MAX_ORDERS, False, "")
                if report.archived_count:
                    log.info("scheduled archive run moved %d orders", report.archived_count)
                if report.more_remaining:
                    delay = 0.0
            except Unavailable as exc:
                log.warning(
                    "archiving paused: %s; retrying in %.0fs", exc, self.settings.retry_seconds
                )
                delay = min(delay, self.settings.retry_seconds)
            except Exception:  # noqa: BLE001 - MariaDB down: try again later
                log.exception("scheduled archive run failed")
                delay = min(delay, self.settings.retry_seconds)
            await asyncio.sleep(delay)
