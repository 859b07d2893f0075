"""Persistence: orders and their lines in MariaDB, the outbox rows of
`orders.lifecycle` written in the same transactions, and the reports of
reconciliation runs (so a retried ReconcileOrders returns the first report).

Every state change locks the order row (`SELECT ... FOR UPDATE`) and is one
transaction with its outbox event, so a transition and its announcement
commit together or not at all. Follow-up work a transition leaves (release,
commit, refund) is recorded on the row (`work_due`) in the same transaction
and done after it; the sweeper redoes whatever a crash interrupted.
The engine runs in READ COMMITTED (main.py): no gap locks, so checkouts of
different users never wait for each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import DATETIME, LONGBLOB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import consumer as mesh_consumer
from mesh import db, outbox
from mesh.db import SqlStore, utcnow
from svc_orders.domain import (
    CancelReason,
    OrderState,
    PaymentStatus,
    RefundState,
    ReservationState,
)

log = logging.getLogger(__name__)

metadata = sa.MetaData()
_MICROS = sa.DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb")

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    # +1 per transition: the events' entity_version, and the guard that lets
    # the follow-up work notice a transition that happened meanwhile.
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("reservation_state", sa.String(16), nullable=False, server_default="NONE"),
    # 1 while the row owes follow-up work (reservation or refund); indexed
    # so the sweeper finds such rows without scanning.
    sa.Column("work_due", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("from_cart", sa.Boolean, nullable=False, server_default=sa.false()),
    # ecom.common.v1.Address, serialised: a snapshot, never joined on.
    sa.Column("address", sa.LargeBinary, nullable=False),
    sa.Column("pincode", sa.String(6), nullable=False),
    sa.Column("total_paise", sa.BigInteger, nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("payment_request_id", sa.String(64), nullable=True),
    sa.Column("payment_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("payment_status", sa.String(24), nullable=False, server_default=""),
    sa.Column("decline_code", sa.String(64), nullable=False, server_default=""),
    sa.Column("refunded_paise", sa.BigInteger, nullable=False, server_default="0"),
    # '' nothing owed, 'DUE' a captured payment must be refunded, 'DONE'.
    sa.Column("refund_state", sa.String(8), nullable=False, server_default=""),
    sa.Column("cancel_reason", sa.String(24), nullable=False, server_default=""),
    sa.Column("cancel_note", sa.String(500), nullable=False, server_default=""),
    sa.Column("carrier", sa.String(100), nullable=False, server_default=""),
    sa.Column("tracking_number", sa.String(100), nullable=False, server_default=""),
    # Why checkout failed, for retries of a REJECTED checkout.
    sa.Column("reject_reason", sa.String(64), nullable=False, server_default=""),
    sa.Column("reject_message", sa.String(1000), nullable=False, server_default=""),
    sa.Column("expires_at", _MICROS, nullable=False),
    sa.Column("create_time", _MICROS, nullable=False),
    sa.Column("update_time", _MICROS, nullable=False),
    sa.Column("place_time", _MICROS, nullable=True),
    sa.Column("ship_time", _MICROS, nullable=True),
    sa.Column("deliver_time", _MICROS, nullable=True),
    sa.Column("cancel_time", _MICROS, nullable=True),
    sa.CheckConstraint(
        "state IN ('PENDING','REJECTED','CREATED','PLACED','SHIPPED','DELIVERED','CANCELLED')",
        name="ck_orders_state",
    ),
    # The idempotency guard of CreateOrder: a retry (even a concurrent one)
    # finds the first call's row.
    sa.UniqueConstraint("user_id", "request_id", name="uq_orders_user_request"),
    # ListUserOrders: newest first per user.
    sa.Index("ix_orders_user_created", "user_id", "create_time", "order_id"),
    # The sweeper: CREATED past expiry, PENDING too long.
    sa.Index("ix_orders_state_expires", "state", "expires_at"),
    sa.Index("ix_orders_work_due", "work_due"),
    mysql_engine="InnoDB",
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("unit_paise", sa.BigInteger, nullable=False),
    sa.Column("warehouse_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("promised_date", sa.Date, nullable=True),
    sa.CheckConstraint("quantity > 0", name="ck_order_lines_quantity"),
    mysql_engine="InnoDB",
)

reconcile_runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("report", sa.LargeBinary().with_variant(LONGBLOB(), "mysql", "mariadb")),
    sa.Column("create_time", _MICROS, nullable=False),
    mysql_engine="InnoDB",
)


# The checkout's and the transitions' statements, built once with bind
# parameters: SQLAlchemy memoizes a statement object's cache key, so these
# skip construction and cache-key generation on every call (measured with
# tests/perf/profile.py: a quarter of CreateOrder's CPU went to that).
_INSERT_ORDER = sa.insert(orders)
_INSERT_LINES = sa.insert(order_lines)
_GET = sa.select(orders).where(orders.c.order_id == sa.bindparam("b_order_id"))
_GET_FOR_UPDATE = _GET.with_for_update()
_GET_BY_REQUEST = sa.select(orders).where(
    orders.c.user_id == sa.bindparam("b_user_id"),
    orders.c.request_id == sa.bindparam("b_request_id"),
)
# The SET clause comes from the keys of the parameters (column names).
_UPDATE = sa.update(orders).where(orders.c.order_id == sa.bindparam("b_order_id"))
_SET_LINE_FULFILMENT = (
    sa.update(order_lines)
    .where(
        order_lines.c.order_id == sa.bindparam("b_order_id"),
        order_lines.c.item_id == sa.bindparam("b_item_id"),
    )
    .values(
        warehouse_id=sa.bindparam("b_warehouse_id"),
        promised_date=sa.bindparam("b_promised_date"),
    )
)
_LINES = (
    sa.select(order_lines)
    .where(order_lines.c.order_id.in_(sa.bindparam("b_order_ids", expanding=True)))
    .order_by(order_lines.c.order_id, order_lines.c.position)
)


@dataclass(frozen=True)
class LineRecord:
    """One stored order line."""

    item_id: str
    quantity: int
    title: str
    unit_paise: int
    warehouse_id: str = ""
    promised_date: date | None = None


@dataclass(frozen=True)
class OrderRecord:
    """One stored order with its lines."""

    order_id: str
    user_id: str
    request_id: str
    state: OrderState
    version: int
    reservation_state: ReservationState
    work_due: bool
    from_cart: bool
    address: bytes
    pincode: str
    total_paise: int
    item_count: int
    payment_request_id: str | None
    payment_id: str
    payment_status: PaymentStatus
    decline_code: str
    refunded_paise: int
    refund_state: RefundState
    cancel_reason: CancelReason
    cancel_note: str
    carrier: str
    tracking_number: str
    reject_reason: str
    reject_message: str
    expires_at: datetime
    create_time: datetime
    update_time: datetime
    place_time: datetime | None = None
    ship_time: datetime | None = None
    deliver_time: datetime | None = None
    cancel_time: datetime | None = None
    lines: tuple[LineRecord, ...] = field(default_factory=tuple)


class DuplicateOrder(Exception):
    """The (user, request id) pair already has an order."""


class OrderStore(SqlStore):
    """Orders, lines and reconciliation reports in one MariaDB database."""

    # The outbox and the consumer's dedupe table live in the same database.
    schema = (metadata, outbox.metadata, mesh_consumer.metadata)
    # Re-runs after a deadlock: five attempts in all.
    retries = 4

    # -- orders ------------------------------------------------------------
    async def insert(self, conn: AsyncConnection, rec: OrderRecord) -> None:
        """Insert a new order with its lines; DuplicateOrder when the user
        already used the request id."""
        values = _row_values(rec)
        try:
            await conn.execute(_INSERT_ORDER, values)
        except IntegrityError as exc:
            if db.mysql_errno(exc) == db.ER_DUP_ENTRY:
                raise DuplicateOrder(rec.request_id) from exc
            raise
        await conn.execute(
            _INSERT_LINES,
            [
                {
                    "order_id": rec.order_id,
                    "position": i,
                    "item_id": ln.item_id,
                    "quantity": ln.quantity,
                    "title": ln.title[:200],
                    "unit_paise": ln.unit_paise,
                    "warehouse_id": ln.warehouse_id,
                    "promised_date": ln.promised_date,
                }
                for i, ln in enumerate(rec.lines)
            ],
        )

    async def get(
        self,
        conn: AsyncConnection | None,
        order_id: str,
        *,
        for_update: bool = False,
        known_lines: tuple[LineRecord, ...] | None = None,
    ) -> OrderRecord | None:
        """One order with its lines, or None; ``for_update`` locks the row.
        ``known_lines``: the order's lines as the caller already has them
        (they never change after the checkout stores them), saving a read."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.get(own, order_id, known_lines=known_lines)
        query = _GET_FOR_UPDATE if for_update else _GET
        row = (await conn.execute(query, {"b_order_id": order_id})).mappings().first()
        if row is None:
            return None
        if known_lines is not None:
            return replace(_record(row, {}), lines=known_lines)
        return _record(row, await self._lines(conn, [order_id]))

    async def get_by_request(
        self, conn: AsyncConnection | None, user_id: str, request_id: str
    ) -> OrderRecord | None:
        """The order a user's CreateOrder request id made, if any."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.get_by_request(own, user_id, request_id)
        params = {"b_user_id": user_id, "b_request_id": request_id}
        row = (await conn.execute(_GET_BY_REQUEST, params)).mappings().first()
        if row is None:
            return None
        return _record(row, await self._lines(conn, [str(row["order_id"])]))

    async def update(self, conn: AsyncConnection, order_id: str, **values: Any) -> None:
        """Write columns of a (locked) order row."""
        await conn.execute(_UPDATE, {"b_order_id": order_id, **values})

    async def update_if(self, order_id: str, version: int, **values: Any) -> bool:
        """Write columns only if the row is still at ``version`` (follow-up
        work must not overwrite a transition that happened meanwhile)."""
        async with self.transaction() as conn:
            result = await conn.execute(
                sa.update(orders)
                .where(orders.c.order_id == order_id, orders.c.version == version)
                .values(**values)
            )
            return bool(result.rowcount)

    async def add_event(
        self,
        conn: AsyncConnection,
        *,
        topic: str,
        key: str,
        payload: bytes,
        event_type: str,
        event_id: str,
    ) -> None:
        """Queue an event in the outbox, in the open transaction."""
        await outbox.add_event(
            conn, topic=topic, key=key, payload=payload, event_type=event_type, event_id=event_id
        )

    async def set_lines_fulfilment(
        self, conn: AsyncConnection, order_id: str, fulfilment: dict[str, tuple[str, date | None]]
    ) -> None:
        """Record each line's warehouse and promised date after reserving."""
        for item_id, (warehouse_id, promised) in fulfilment.items():
            await conn.execute(
                _SET_LINE_FULFILMENT,
                {
                    "b_order_id": order_id,
                    "b_item_id": item_id,
                    "b_warehouse_id": warehouse_id,
                    "b_promised_date": promised,
                },
            )

    async def list_user(
        self, user_id: str, limit: int, after: tuple[datetime, str] | None
    ) -> list[OrderRecord]:
        """A user's visible orders, newest first, after a (time, id) cursor."""
        query = (
            sa.select(orders)
            .where(
                orders.c.user_id == user_id,
                orders.c.state.in_([s.value for s in _VISIBLE]),
            )
            .order_by(orders.c.create_time.desc(), orders.c.order_id.desc())
            .limit(limit)
        )
        if after is not None:
            t, oid = after
            query = query.where(
                sa.or_(
                    orders.c.create_time < t,
                    sa.and_(orders.c.create_time == t, orders.c.order_id < oid),
                )
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            lines = await self._lines(conn, [str(r["order_id"]) for r in rows])
        return [_record(r, lines) for r in rows]

    async def ids_where(self, condition: Any, limit: int) -> list[str]:
        """Order ids matching a condition (for the sweeper and reconciler)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(sa.select(orders.c.order_id).where(condition).limit(limit))
            return [str(r[0]) for r in result]

    # -- named queries of the sweeper and the reconciler ---------------------
    async def expired_created(self, limit: int) -> list[str]:
        """CREATED orders whose hold has ended."""
        return await self.ids_where(
            (orders.c.state == OrderState.CREATED.value) & (orders.c.expires_at <= utcnow()), limit
        )

    async def work_due(self, limit: int) -> list[str]:
        """Orders that still owe follow-up work (reservation or refund)."""
        return await self.ids_where(orders.c.work_due.is_(True), limit)

    async def stale_pending(self, grace_seconds: float, limit: int) -> list[str]:
        """PENDING checkouts older than ``grace_seconds``: interrupted."""
        stale = utcnow() - timedelta(seconds=grace_seconds)
        return await self.ids_where(
            (orders.c.state == OrderState.PENDING.value) & (orders.c.create_time <= stale), limit
        )

    async def paid_uncommitted(self, limit: int) -> list[str]:
        """Paid orders whose stock is not confirmed sold."""
        paid = [s.value for s in (OrderState.PLACED, OrderState.SHIPPED, OrderState.DELIVERED)]
        return await self.ids_where(
            orders.c.state.in_(paid)
            & (orders.c.reservation_state != ReservationState.COMMITTED.value),
            limit,
        )

    async def open_payments(self, limit: int) -> list[str]:
        """Orders with a payment whose final word has not arrived."""
        return await self.ids_where(
            orders.c.payment_request_id.is_not(None)
            & orders.c.payment_status.in_(
                [PaymentStatus.PENDING.value, PaymentStatus.TIMED_OUT.value]
            ),
            limit,
        )

    async def refunds_owed(self, limit: int) -> list[str]:
        """Cancelled orders whose captured payment is still to be refunded."""
        return await self.ids_where(
            (orders.c.state == OrderState.CANCELLED.value)
            & (orders.c.refund_state == RefundState.DUE.value),
            limit,
        )

    async def count_where(self, condition: Any) -> int:
        """How many orders match a condition."""
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(sa.select(sa.func.count()).where(condition))).scalar() or 0
            )

    async def _lines(
        self, conn: AsyncConnection, order_ids: list[str]
    ) -> dict[str, tuple[LineRecord, ...]]:
        if not order_ids:
            return {}
        result = await conn.execute(_LINES, {"b_order_ids": order_ids})
        out: dict[str, list[LineRecord]] = {}
        for r in result.mappings():
            out.setdefault(str(r["order_id"]), []).append(
                LineRecord(
                    item_id=str(r["item_id"]),
                    quantity=int(r["quantity"]),
                    title=str(r["title"]),
                    unit_paise=int(r["unit_paise"]),
                    warehouse_id=str(r["warehouse_id"]),
                    promised_date=r["promised_date"],
                )
            )
        return {k: tuple(v) for k, v in out.items()}

    # -- reconciliation reports ---------------------------------------------
    async def get_report(self, request_id: str) -> bytes | None:
        """The stored report of a reconciliation run, by request id."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(reconcile_runs.c.report).where(
                        reconcile_runs.c.request_id == request_id
                    )
                )
            ).first()
        return bytes(row[0]) if row is not None else None

    async def save_report(self, request_id: str, report: bytes) -> None:
        """Remember a run's report (the first one wins on a race)."""
        async with self.transaction() as conn:
            await conn.execute(
                sa.insert(reconcile_runs)
                .prefix_with("IGNORE")
                .values(request_id=request_id, report=report, create_time=utcnow())
            )


_VISIBLE = (
    OrderState.CREATED,
    OrderState.PLACED,
    OrderState.SHIPPED,
    OrderState.DELIVERED,
    OrderState.CANCELLED,
)


def _row_values(rec: OrderRecord) -> dict[str, Any]:
    values = {
        k: getattr(rec, k)
        for k in orders.c.keys()  # noqa: SIM118 - Table.c is not a dict
    }
    return {
        k: (
            v.value
            if isinstance(
                v, OrderState | ReservationState | PaymentStatus | CancelReason | RefundState
            )
            else v
        )
        for k, v in values.items()
    }


# How a value written to a column reads back into an OrderRecord field.
_READ_BACK: dict[str, Any] = {
    "state": OrderState,
    "reservation_state": ReservationState,
    "payment_status": PaymentStatus,
    "cancel_reason": CancelReason,
    "refund_state": RefundState,
    "work_due": bool,
    "from_cart": bool,
    "address": bytes,
}


def after_update(rec: OrderRecord, values: dict[str, Any]) -> OrderRecord:
    """``rec`` as it reads back after :meth:`OrderStore.update` wrote
    ``values`` to its locked row: the write is ours, so no read is needed.
    Every key must be a column (as the UPDATE itself requires)."""
    unknown = set(values) - set(orders.c.keys())
    if unknown:
        raise KeyError(f"not columns of orders: {sorted(unknown)}")
    return replace(
        rec, **{k: _READ_BACK[k](v) if k in _READ_BACK else v for k, v in values.items()}
    )


def _record(row: sa.RowMapping, lines: dict[str, tuple[LineRecord, ...]]) -> OrderRecord:
    values = {k: row[k] for k in orders.c.keys()}  # noqa: SIM118
    values["state"] = OrderState(values["state"])
    values["reservation_state"] = ReservationState(values["reservation_state"])
    values["payment_status"] = PaymentStatus(values["payment_status"])
    values["cancel_reason"] = CancelReason(values["cancel_reason"])
    values["refund_state"] = RefundState(values["refund_state"])
    values["work_due"] = bool(values["work_due"])
    values["from_cart"] = bool(values["from_cart"])
    values["address"] = bytes(values["address"])
    rec = OrderRecord(**values)
    return replace(rec, lines=lines.get(rec.order_id, ()))


class HoldStore:
    """Order holds in Redis, the fast path of hold expiry. The database row
    (``expires_at``) stays the truth and the sweeper catches anything Redis
    missed (a crash, a Redis restart).

    Each CREATED order has two Redis entries: a key whose TTL ends at
    ``expires_at`` (Redis announces its expiry on ``__keyevent@<db>__:expired``,
    ``notify-keyspace-events Ex``), and a member of one sorted set scored by
    ``expires_at``. The sorted set is there because Redis announces an
    expired key only when its sampler finds it, which with many volatile
    keys in the database can be seconds late; polling the set's due members
    bounds the delay, and ``ZREM`` hands each due order to exactly one
    instance."""

    def __init__(self, redis: Any, key_prefix: str, *, poll_interval: float = 0.25) -> None:
        """``redis`` is a ``redis.asyncio.Redis``; ``key_prefix`` already
        carries the run's prefix (``settings.redis_key("orders:hold:")``)."""
        self.redis = redis
        self.prefix = key_prefix
        self.due_set = key_prefix + "due"
        self.poll_interval = poll_interval

    def key(self, order_id: str) -> str:
        return self.prefix + order_id

    async def hold(self, order_id: str, expires_at: datetime) -> None:
        """Arm the hold so Redis fires at ``expires_at`` (at once if past)."""
        ms = max(1, int((expires_at - utcnow()).total_seconds() * 1000))
        score = expires_at.replace(tzinfo=UTC).timestamp()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key(order_id), "1", px=ms)
            pipe.zadd(self.due_set, {order_id: score})
            await pipe.execute()

    async def clear(self, order_id: str) -> None:
        """The order left CREATED: nothing to expire any more."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(self.key(order_id))
            pipe.zrem(self.due_set, order_id)
            await pipe.execute()

    async def ping(self) -> bool:
        """Health probe: Redis answers."""
        return bool(await self.redis.ping())

    async def listen(self, on_expired: Callable[[str], Awaitable[None]]) -> None:
        """Call ``on_expired(order_id)`` for every hold that ends, from the
        key-expiry notifications and the sorted-set poll (either may report
        an order first; expiring is idempotent). Survives Redis outages."""
        await asyncio.gather(self._notifications(on_expired), self._poll_due(on_expired))

    async def _notifications(self, on_expired: Callable[[str], Awaitable[None]]) -> None:
        db = int(self.redis.connection_pool.connection_kwargs.get("db", 0) or 0)
        channel = f"__keyevent@{db}__:expired"
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(channel)
                try:
                    async for message in pubsub.listen():
                        key = message.get("data")
                        key = key.decode() if isinstance(key, bytes) else str(key)
                        if key.startswith(self.prefix) and key != self.due_set:
                            order_id = key[len(self.prefix) :]
                            # Every replica hears the expiry: the one whose
                            # ZREM takes the order from the due set expires it.
                            if await self.redis.zrem(self.due_set, order_id):
                                await on_expired(order_id)
                finally:
                    await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: the sweeper covers
                log.warning("hold listener: %s; resubscribing", exc)
                await asyncio.sleep(1.0)

    async def _poll_due(self, on_expired: Callable[[str], Awaitable[None]]) -> None:
        while True:
            try:
                now = datetime.now(UTC).timestamp()
                due = await self.redis.zrangebyscore(self.due_set, "-inf", now, start=0, num=200)
                for member in due:
                    order_id = member.decode() if isinstance(member, bytes) else str(member)
                    if await self.redis.zrem(self.due_set, order_id):  # this instance won it
                        await on_expired(order_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: the sweeper covers
                log.warning("hold poll: %s", exc)
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.poll_interval)
