"""Persistence: stock rows, reservations and their lines in MariaDB, plus the
outbox rows of `inventory.stock` written in the same transactions.

The database does the final guarding: `CHECK (available >= 0)` (and on
`reserved` and `sold`) makes an oversell impossible even if the code above
had a bug, and every decrement is a conditional UPDATE that only matches
while enough units are there. The engine should run in READ COMMITTED
(main.py sets it per connection): InnoDB then takes no gap locks and
releases the locks of rows a WHERE did not match, so reservations of
different items never block each other. Correctness does not depend on it:
under REPEATABLE READ the same statements only lock more.
"""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from ecom.events.v1 import events_pb2
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import db, events, outbox
from mesh.db import SqlStore
from svc_inventory.domain import (
    HeldLine,
    ReservationState,
    RowDelta,
    StockChangeReason,
)

log = logging.getLogger(__name__)

STOCK_TOPIC = "inventory.stock"
PRODUCER = "svc_inventory"


metadata = sa.MetaData()
_MICROS = sa.DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb")
# Identifiers compare byte for byte: under the database's default
# utf8mb4_unicode_ci, "abc" and "ABC" would be one stock row and one request
# id, and a row read back under the other spelling would not match the id it
# was asked for. (Tables created before this keep their collation.)
_ID = sa.String(64, collation="utf8mb4_bin")

stock = sa.Table(
    "stock",
    metadata,
    sa.Column("item_id", _ID, primary_key=True),
    sa.Column("warehouse_id", _ID, primary_key=True),
    # Units that can still be reserved.
    sa.Column("available", sa.BigInteger, nullable=False, server_default="0"),
    # Units held by HELD reservations.
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    # Units of COMMITTED reservations (sold, not yet cancelled); kept so that
    # available + reserved + sold is conserved and reconcilable.
    sa.Column("sold", sa.BigInteger, nullable=False, server_default="0"),
    # +1 per change; the sum over an item's rows orders its events.
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("update_time", _MICROS, nullable=False),
    sa.CheckConstraint("available >= 0", name="ck_stock_available_nonnegative"),
    sa.CheckConstraint("reserved >= 0", name="ck_stock_reserved_nonnegative"),
    sa.CheckConstraint("sold >= 0", name="ck_stock_sold_nonnegative"),
    mysql_engine="InnoDB",
)

reservations = sa.Table(
    "reservations",
    metadata,
    # The primary key is the idempotency guard: a second Reserve for the same
    # order waits on the first one's row and then finds it.
    sa.Column("order_id", _ID, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("pincode", sa.String(6), nullable=False, server_default=""),
    sa.Column("hold_expire_time", _MICROS, nullable=True),
    sa.Column("release_reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("create_time", _MICROS, nullable=False),
    sa.Column("update_time", _MICROS, nullable=False),
    sa.CheckConstraint("state IN ('HELD', 'COMMITTED', 'RELEASED')", name="ck_reservations_state"),
    # ListReservations pages by (update_time, order_id), optionally by state.
    sa.Index("ix_reservations_state_updated", "state", "update_time", "order_id"),
    sa.Index("ix_reservations_updated", "update_time", "order_id"),
    mysql_engine="InnoDB",
)

reservation_lines = sa.Table(
    "reservation_lines",
    metadata,
    sa.Column("order_id", _ID, primary_key=True),
    sa.Column("item_id", _ID, primary_key=True),
    sa.Column("warehouse_id", _ID, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.CheckConstraint("quantity > 0", name="ck_reservation_lines_quantity"),
    # Reconciliation sums lines per stock row.
    sa.Index("ix_reservation_lines_stock", "item_id", "warehouse_id"),
    mysql_engine="InnoDB",
)

# SetStock request ids already applied: a retried SetStock must not reset
# `available` again after reservations have moved it.
set_stock_requests = sa.Table(
    "set_stock_requests",
    metadata,
    sa.Column("request_id", _ID, primary_key=True),
    sa.Column("item_id", _ID, nullable=False),
    sa.Column("warehouse_id", _ID, nullable=False),
    sa.Column("create_time", _MICROS, nullable=False),
    mysql_engine="InnoDB",
)


# The hot paths' statements, built once with bind parameters. SQLAlchemy
# memoizes a statement object's cache key, so a prebuilt statement skips
# construction and cache-key generation on every call (about 0.3 ms of CPU
# per statement when built per call, measured with tests/perf/profile.py).
_LOCK_ITEMS = (
    sa.select(stock)
    .where(stock.c.item_id.in_(sa.bindparam("item_ids", expanding=True)))
    .order_by(stock.c.item_id, stock.c.warehouse_id)
    .with_for_update()
)
_ITEM_STOCK = (
    sa.select(stock)
    .where(stock.c.item_id.in_(sa.bindparam("item_ids", expanding=True)))
    .order_by(stock.c.item_id, stock.c.warehouse_id)
)
_GET_RESERVATION = sa.select(reservations).where(
    reservations.c.order_id == sa.bindparam("b_order_id")
)
_GET_RESERVATION_FOR_UPDATE = _GET_RESERVATION.with_for_update()
_RESERVATION_LINES = (
    sa.select(reservation_lines)
    .where(reservation_lines.c.order_id.in_(sa.bindparam("order_ids", expanding=True)))
    .order_by(reservation_lines.c.order_id, reservation_lines.c.item_id)
)
_INSERT_RESERVATION = sa.insert(reservations)
_INSERT_LINES = sa.insert(reservation_lines)
_MOVE_LINE = (
    sa.update(reservation_lines)
    .where(
        reservation_lines.c.order_id == sa.bindparam("b_order_id"),
        reservation_lines.c.item_id == sa.bindparam("b_item_id"),
    )
    .values(warehouse_id=sa.bindparam("b_warehouse_id"))
)
_SET_RESERVATION_STATE = (
    sa.update(reservations)
    .where(reservations.c.order_id == sa.bindparam("b_order_id"))
    .values(
        state=sa.bindparam("b_state"),
        update_time=sa.bindparam("b_update_time"),
        release_reason=sa.bindparam("b_release_reason"),
    )
)


@functools.cache
def _apply_delta_statement(guard_available: bool, guard_reserved: bool,
                           guard_sold: bool) -> sa.Update:
    """The counters' UPDATE of one row; each decremented counter is guarded
    (the row only matches while it holds enough units)."""
    stmt = (
        sa.update(stock)
        .where(
            stock.c.item_id == sa.bindparam("b_item_id"),
            stock.c.warehouse_id == sa.bindparam("b_warehouse_id"),
        )
        .values(
            available=stock.c.available + sa.bindparam("d_available", type_=sa.BigInteger),
            reserved=stock.c.reserved + sa.bindparam("d_reserved", type_=sa.BigInteger),
            sold=stock.c.sold + sa.bindparam("d_sold", type_=sa.BigInteger),
            version=stock.c.version + 1,
            update_time=sa.bindparam("b_update_time", type_=_MICROS),
        )
    )
    if guard_available:
        stmt = stmt.where(stock.c.available >= sa.bindparam("need_available", type_=sa.BigInteger))
    if guard_reserved:
        stmt = stmt.where(stock.c.reserved >= sa.bindparam("need_reserved", type_=sa.BigInteger))
    if guard_sold:
        stmt = stmt.where(stock.c.sold >= sa.bindparam("need_sold", type_=sa.BigInteger))
    return stmt


@dataclass(frozen=True)
class StockRow:
    """One (item, warehouse) stock row."""

    item_id: str
    warehouse_id: str
    available: int
    reserved: int
    sold: int
    version: int
    update_time: datetime


@dataclass(frozen=True)
class ReservationRecord:
    """One reservation with its lines."""

    order_id: str
    state: ReservationState
    lines: tuple[HeldLine, ...]
    pincode: str
    hold_expire_time: datetime | None
    release_reason: str
    create_time: datetime
    update_time: datetime


class DuplicateReservation(Exception):
    """A reservation row for the order already exists (idempotent retry)."""


class ConcurrentClaim(Exception):
    """Another transaction claimed one of the same SetStock request ids
    first; running again finds its claim."""


class StockConstraintViolated(Exception):
    """A CHECK constraint refused a stock change: a bug upstream, stopped by
    the database rather than turned into an oversell."""


T = TypeVar("T")


class InventoryStore(SqlStore):
    """Tables, transactions and the statements the use cases combine."""

    schema = (metadata, outbox.metadata)
    retries = 5

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction (the engine is READ COMMITTED, set
        once in main.py), retried from the start after a deadlock or lock
        wait timeout; a failed CHECK becomes StockConstraintViolated."""
        try:
            return await super().run(work)
        except DBAPIError as exc:
            if db.mysql_errno(exc) == db.ER_CONSTRAINT_FAILED:
                raise StockConstraintViolated(str(exc.orig)) from exc
            raise

    # -- stock -------------------------------------------------------------
    async def lock_items(
        self, conn: AsyncConnection, item_ids: Sequence[str]
    ) -> dict[str, dict[str, StockRow]]:
        """Lock every stock row of the given items in one statement (InnoDB
        walks the sorted key ranges, so rows are locked in primary-key
        order: the same order in every transaction) and return them by item
        and warehouse. Changes to one item are thereby serialised, which
        keeps the item's total and its event order exact."""
        out: dict[str, dict[str, StockRow]] = {i: {} for i in item_ids}
        if not item_ids:
            return out
        result = await conn.execute(_LOCK_ITEMS, {"item_ids": sorted(set(item_ids))})
        for r in result:
            row = _stock_row(r._mapping)
            out[row.item_id][row.warehouse_id] = row
        return out

    async def apply_delta(
        self, conn: AsyncConnection, item_id: str, warehouse_id: str, delta: RowDelta, now: datetime
    ) -> bool:
        """Move a row's counters by ``delta``; a decrement only applies while
        the row still holds enough units (the conditional UPDATE is the
        guard; the row lock and the CHECK constraints back it up). Returns
        False when nothing changed."""
        params = {
            "b_item_id": item_id,
            "b_warehouse_id": warehouse_id,
            "d_available": delta.available,
            "d_reserved": delta.reserved,
            "d_sold": delta.sold,
            "b_update_time": now,
        }
        for counter, change in (("available", delta.available), ("reserved", delta.reserved),
                                ("sold", delta.sold)):
            if change < 0:
                params[f"need_{counter}"] = -change
        stmt = _apply_delta_statement(delta.available < 0, delta.reserved < 0, delta.sold < 0)
        result = await conn.execute(stmt, params)
        return bool(result.rowcount)

    async def set_available(
        self, conn: AsyncConnection, item_id: str, warehouse_id: str, available: int, now: datetime
    ) -> None:
        """Set a row's available units, creating the row if needed."""
        await conn.execute(
            sa.text(
                "INSERT INTO stock (item_id, warehouse_id, available, reserved, sold, version,"
                " update_time) VALUES (:item, :wh, :available, 0, 0, 1, :now)"
                " ON DUPLICATE KEY UPDATE available = VALUES(available),"
                " version = version + 1, update_time = VALUES(update_time)"
            ),
            {"item": item_id, "wh": warehouse_id, "available": available, "now": now},
        )

    async def item_stock(
        self, conn: AsyncConnection | None, item_ids: Sequence[str]
    ) -> dict[str, list[StockRow]]:
        """Stock rows of the given items by item, each list ordered by
        warehouse; items without rows map to empty lists."""
        out: dict[str, list[StockRow]] = {i: [] for i in item_ids}
        if not item_ids:
            return out
        params = {"item_ids": list(item_ids)}
        if conn is None:
            async with self.engine.connect() as own:
                result = await own.execute(_ITEM_STOCK, params)
        else:
            result = await conn.execute(_ITEM_STOCK, params)
        for r in result:
            out[r.item_id].append(_stock_row(r._mapping))
        return out

    async def record_stock_change(
        self,
        conn: AsyncConnection,
        *,
        item_id: str,
        warehouse_id: str,
        available_delta: int,
        reason: StockChangeReason,
        order_id: str = "",
        request_id: str = "",
        now: datetime,
        rows_after: Sequence[StockRow] | None = None,
    ) -> StockRow:
        """Queue the StockChanged event for a row this transaction changed
        (after the change, in the same transaction); returns the row.

        ``rows_after`` are all the item's rows after the change when the
        caller knows them (it locked them and applied the delta itself);
        otherwise they are read back, one more round trip under the lock."""
        rows = (
            list(rows_after)
            if rows_after is not None
            else (await self.item_stock(conn, [item_id]))[item_id]
        )
        row = next(r for r in rows if r.warehouse_id == warehouse_id)
        await outbox.add_events(
            conn,
            [
                stock_changed_event(
                    row,
                    rows,
                    available_delta=available_delta,
                    reason=reason,
                    order_id=order_id,
                    request_id=request_id,
                    now=now,
                )
            ],
        )
        return row

    async def set_available_many(
        self, conn: AsyncConnection, rows: Sequence[StockRow], now: datetime
    ) -> None:
        """SetStock's upsert for many rows in one statement: each row's
        available units set (rows created as needed), its version bumped;
        reserved and sold units are left as they are."""
        if not rows:
            return
        stmt = mysql_insert(stock).values(
            [
                {
                    "item_id": r.item_id,
                    "warehouse_id": r.warehouse_id,
                    "available": r.available,
                    "reserved": 0,
                    "sold": 0,
                    "version": 1,
                    "update_time": now,
                }
                for r in rows
            ]
        )
        await conn.execute(
            stmt.on_duplicate_key_update(
                available=stmt.inserted.available,
                version=stock.c.version + 1,
                update_time=stmt.inserted.update_time,
            )
        )

    async def claim_set_stock_requests(
        self, conn: AsyncConnection, claims: Sequence[tuple[str, str, str]], now: datetime
    ) -> dict[str, tuple[str, str]]:
        """Record many SetStock request ids, given as (request_id, item_id,
        warehouse_id); returns the ones seen before, each with the (item,
        warehouse) it was first used for. Existing claims are locked first
        (so a concurrent retry of the same batch waits for this one); a
        concurrent first use of the same ids makes the insert fail with a
        duplicate key, which the caller answers by running again."""
        if not claims:
            return {}
        ids = [c[0] for c in claims]
        found = await conn.execute(
            sa.select(
                set_stock_requests.c.request_id,
                set_stock_requests.c.item_id,
                set_stock_requests.c.warehouse_id,
            )
            .where(set_stock_requests.c.request_id.in_(ids))
            .order_by(set_stock_requests.c.request_id)
            .with_for_update()
        )
        seen = {str(r.request_id): (str(r.item_id), str(r.warehouse_id)) for r in found}
        # Inserted in key order, like every claim, so two batches sharing ids
        # wait for each other rather than deadlock.
        fresh = sorted(c for c in claims if c[0] not in seen)
        if fresh:
            try:
                await conn.execute(
                    sa.insert(set_stock_requests).values(
                        [
                            {"request_id": rid, "item_id": item, "warehouse_id": wh,
                             "create_time": now}
                            for rid, item, wh in fresh
                        ]
                    )
                )
            except IntegrityError as exc:
                if db.mysql_errno(exc) == db.ER_DUP_ENTRY:
                    raise ConcurrentClaim(str(exc.orig)) from exc
                raise
        return seen

    async def claim_set_stock_request(
        self, conn: AsyncConnection, request_id: str, item_id: str, warehouse_id: str, now: datetime
    ) -> tuple[str, str] | None:
        """Record a SetStock request id; returns None the first time, the
        (item, warehouse) it was first used for on a retry."""
        try:
            async with conn.begin_nested():
                await conn.execute(
                    sa.insert(set_stock_requests).values(
                        request_id=request_id,
                        item_id=item_id,
                        warehouse_id=warehouse_id,
                        create_time=now,
                    )
                )
            return None
        except IntegrityError as exc:
            if db.mysql_errno(exc) != db.ER_DUP_ENTRY:
                raise
        row = (
            await conn.execute(
                sa.select(set_stock_requests.c.item_id, set_stock_requests.c.warehouse_id).where(
                    set_stock_requests.c.request_id == request_id
                )
            )
        ).one()
        return str(row.item_id), str(row.warehouse_id)

    # -- reservations ------------------------------------------------------
    async def insert_reservation(
        self,
        conn: AsyncConnection,
        *,
        order_id: str,
        state: ReservationState,
        pincode: str,
        hold_expire_time: datetime | None,
        release_reason: str = "",
        now: datetime,
    ) -> None:
        """Insert the reservation row first thing in the transaction; raises
        DuplicateReservation when the order already has one (a concurrent
        insert makes this wait until the other transaction ends)."""
        try:
            await conn.execute(
                _INSERT_RESERVATION,
                {
                    "order_id": order_id,
                    "state": state.value,
                    "pincode": pincode,
                    "hold_expire_time": hold_expire_time,
                    "release_reason": release_reason,
                    "create_time": now,
                    "update_time": now,
                },
            )
        except IntegrityError as exc:
            if db.mysql_errno(exc) == db.ER_DUP_ENTRY:
                raise DuplicateReservation(order_id) from exc
            raise

    async def insert_lines(
        self, conn: AsyncConnection, order_id: str, lines: Sequence[HeldLine]
    ) -> None:
        """Record where each line's units are held."""
        await conn.execute(
            _INSERT_LINES,
            [
                {
                    "order_id": order_id,
                    "item_id": line.item_id,
                    "warehouse_id": line.warehouse_id,
                    "quantity": line.quantity,
                }
                for line in lines
            ],
        )

    async def move_lines(
        self, conn: AsyncConnection, order_id: str, lines: Sequence[HeldLine]
    ) -> None:
        """Point lines inserted before the stock was locked at the warehouse
        that actually holds their units."""
        if lines:
            await conn.execute(
                _MOVE_LINE,
                [
                    {"b_order_id": order_id, "b_item_id": ln.item_id,
                     "b_warehouse_id": ln.warehouse_id}
                    for ln in lines
                ],
            )

    async def add_stock_events(
        self, conn: AsyncConnection, pending: Sequence[outbox.PendingEvent]
    ) -> None:
        """Queue StockChanged events (``stock_changed_event``) in the open
        transaction, in one statement."""
        await outbox.add_events(conn, pending)

    async def update_reservation_state(
        self,
        conn: AsyncConnection,
        order_id: str,
        state: ReservationState,
        now: datetime,
        release_reason: str = "",
    ) -> None:
        """Move a (locked) reservation to ``state``."""
        await conn.execute(
            _SET_RESERVATION_STATE,
            {
                "b_order_id": order_id,
                "b_state": state.value,
                "b_update_time": now,
                "b_release_reason": release_reason,
            },
        )

    async def get_reservation(
        self, conn: AsyncConnection | None, order_id: str, *, for_update: bool = False
    ) -> ReservationRecord | None:
        """The reservation of an order with its lines, None when there is
        none; ``for_update`` locks its row for a state change."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.get_reservation(own, order_id)
        query = _GET_RESERVATION_FOR_UPDATE if for_update else _GET_RESERVATION
        row = (await conn.execute(query, {"b_order_id": order_id})).first()
        if row is None:
            return None
        lines = await self._lines(conn, [order_id])
        return _reservation(row._mapping, lines.get(order_id, ()))

    async def list_reservations(
        self,
        *,
        state: ReservationState | None,
        update_before: datetime | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ReservationRecord]:
        """Reservations oldest ``update_time`` first, keyset-paged after
        ``after`` = (update_time, order_id) of the previous page's last one."""
        query = sa.select(reservations)
        if state is not None:
            query = query.where(reservations.c.state == state.value)
        if update_before is not None:
            query = query.where(reservations.c.update_time < update_before)
        if after is not None:
            query = query.where(
                sa.tuple_(reservations.c.update_time, reservations.c.order_id)
                > sa.tuple_(sa.literal(after[0], _MICROS), sa.literal(after[1]))
            )
        query = query.order_by(reservations.c.update_time, reservations.c.order_id).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            lines = await self._lines(conn, [r.order_id for r in rows])
        return [_reservation(r._mapping, lines.get(r.order_id, ())) for r in rows]

    async def _lines(
        self, conn: AsyncConnection, order_ids: Sequence[str]
    ) -> dict[str, tuple[HeldLine, ...]]:
        if not order_ids:
            return {}
        result = await conn.execute(_RESERVATION_LINES, {"order_ids": list(order_ids)})
        out: dict[str, list[HeldLine]] = {}
        for r in result:
            out.setdefault(r.order_id, []).append(
                HeldLine(item_id=r.item_id, warehouse_id=r.warehouse_id, quantity=int(r.quantity))
            )
        return {k: tuple(v) for k, v in out.items()}


_EVENT_REASON = {
    StockChangeReason.SET: events_pb2.STOCK_CHANGE_REASON_SET,
    StockChangeReason.RESERVED: events_pb2.STOCK_CHANGE_REASON_RESERVED,
    StockChangeReason.COMMITTED: events_pb2.STOCK_CHANGE_REASON_COMMITTED,
    StockChangeReason.RELEASED: events_pb2.STOCK_CHANGE_REASON_RELEASED,
}


def stock_changed_event(
    row: StockRow,
    item_rows: Sequence[StockRow],
    *,
    available_delta: int,
    reason: StockChangeReason,
    order_id: str = "",
    request_id: str = "",
    now: datetime,
) -> outbox.PendingEvent:
    """The StockChanged event of ``row`` (already changed), given all the
    item's rows after the change."""
    envelope = events.envelope(
        "stock_changed",
        events_pb2.StockChanged(
            item_id=row.item_id,
            warehouse_id=row.warehouse_id,
            available=row.available,
            reserved=row.reserved,
            available_delta=available_delta,
            reason=_EVENT_REASON[reason],
            order_id=order_id,
            item_total_available=sum(r.available for r in item_rows),
        ),
        entity_key=row.item_id,
        # The item's rows are locked by the transaction, so the sum of their
        # versions grows by one per change of the item.
        entity_version=sum(r.version for r in item_rows),
        producer=PRODUCER,
        occurred_at=now,
        request_id=request_id,
    )
    return outbox.PendingEvent(
        topic=STOCK_TOPIC,
        key=row.item_id,
        payload=envelope.SerializeToString(),
        event_type=envelope.event_type,
        event_id=envelope.event_id,
    )


def after_delta(row: StockRow, delta: RowDelta, now: datetime) -> StockRow:
    """A locked row as ``apply_delta`` leaves it (no need to read it back)."""
    return replace(
        row,
        available=row.available + delta.available,
        reserved=row.reserved + delta.reserved,
        sold=row.sold + delta.sold,
        version=row.version + 1,
        update_time=now,
    )


def _stock_row(r: sa.RowMapping) -> StockRow:
    return StockRow(
        item_id=r["item_id"],
        warehouse_id=r["warehouse_id"],
        available=int(r["available"]),
        reserved=int(r["reserved"]),
        sold=int(r["sold"]),
        version=int(r["version"]),
        update_time=r["update_time"],
    )


def _reservation(r: sa.RowMapping, lines: Sequence[HeldLine]) -> ReservationRecord:
    return ReservationRecord(
        order_id=r["order_id"],
        state=ReservationState(r["state"]),
        lines=tuple(lines),
        pincode=r["pincode"],
        hold_expire_time=r["hold_expire_time"],
        release_reason=r["release_reason"],
        create_time=r["create_time"],
        update_time=r["update_time"],
    )


def encode_page_token(update_time: datetime, order_id: str) -> str:
    """Opaque keyset token for ListReservations."""
    raw = f"{update_time.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    """Inverse of encode_page_token; ValueError when it is not one."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    when, sep, order_id = raw.partition("|")
    if not sep or not order_id:
        raise ValueError("malformed page token")
    return datetime.fromisoformat(when), order_id
