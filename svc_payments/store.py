"""Persistence: payments and refunds in MariaDB, plus the outbox rows of
``payments.events`` written in the same transactions as the status changes
they announce.

Status changes are conditional UPDATEs (``WHERE status IN <allowed
sources>``): of two writers racing on one payment (the call that submitted
it, the reconciler, a gateway callback) exactly one changes it and emits the
event; the other changes nothing and emits nothing.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from ecom.events.v1 import events_pb2
from google.protobuf.message import Message
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import db, events, outbox
from mesh.db import SqlStore
from svc_payments.codec import payment_proto, refund_proto
from svc_payments.domain import (
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    RefundStatus,
    sources_of,
)

log = logging.getLogger(__name__)

PAYMENTS_TOPIC = "payments.events"
PRODUCER = "svc_payments"

metadata = sa.MetaData()
_MICROS = sa.DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb")
_STATUSES = ", ".join(f"'{s.value}'" for s in PaymentStatus)
_REFUND_STATUSES = ", ".join(f"'{s.value}'" for s in RefundStatus)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("payment_id", sa.String(64), primary_key=True),
    sa.Column("order_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(64), nullable=False),
    # The idempotency key: a retried CreatePayment finds the first payment.
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("amount_paise", sa.BigInteger, nullable=False),
    sa.Column("refunded_paise", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.String(3), nullable=False, server_default="INR"),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("payment_token", sa.String(64), nullable=False),
    sa.Column("gateway", sa.String(32), nullable=False),
    sa.Column("gateway_reference", sa.String(64), nullable=False, server_default=""),
    sa.Column("decline_code", sa.String(64), nullable=False, server_default=""),
    sa.Column("decline_message", sa.String(255), nullable=False, server_default=""),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    sa.Column("next_check_time", _MICROS, nullable=True),
    sa.Column("window_close_time", _MICROS, nullable=False),
    sa.Column("create_time", _MICROS, nullable=False),
    sa.Column("resolve_time", _MICROS, nullable=True),
    sa.Column("update_time", _MICROS, nullable=False),
    sa.CheckConstraint("amount_paise > 0", name="ck_payments_amount_positive"),
    # Never refund more than was captured, whatever the code above does.
    sa.CheckConstraint(
        "refunded_paise >= 0 AND refunded_paise <= amount_paise", name="ck_payments_refunded"
    ),
    sa.CheckConstraint(f"status IN ({_STATUSES})", name="ck_payments_status"),
    sa.Index("ix_payments_order", "order_id", "create_time", "payment_id"),
    sa.Index("ix_payments_created", "create_time", "payment_id"),
    # The reconciler's scan: payments due for a gateway query.
    sa.Index("ix_payments_due", "next_check_time"),
    mysql_engine="InnoDB",
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("refund_id", sa.String(64), primary_key=True),
    sa.Column("payment_id", sa.String(64), nullable=False),
    # The idempotency key of RefundPayment.
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("amount_paise", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False, server_default=""),
    sa.Column("gateway_reference", sa.String(64), nullable=False, server_default=""),
    sa.Column("create_time", _MICROS, nullable=False),
    sa.Column("update_time", _MICROS, nullable=False),
    sa.CheckConstraint("amount_paise > 0", name="ck_refunds_amount_positive"),
    sa.CheckConstraint(f"status IN ({_REFUND_STATUSES})", name="ck_refunds_status"),
    sa.Index("ix_refunds_payment", "payment_id", "create_time"),
    sa.Index("ix_refunds_status", "status", "create_time"),
    mysql_engine="InnoDB",
)


# The payment path's statements, built once with bind parameters (SQLAlchemy
# memoizes a statement object's cache key: no construction and keying per
# call; see svc_orders/store.py).
_INSERT_PAYMENT = sa.insert(payments)
_PAYMENT_FOR_REQUEST = sa.select(payments.c.payment_id).where(
    payments.c.request_id == sa.bindparam("b_request_id")
)
_GET = sa.select(payments).where(payments.c.payment_id == sa.bindparam("b_payment_id"))
_GET_FOR_UPDATE = _GET.with_for_update()
_REFUNDS = (
    sa.select(refunds)
    .where(refunds.c.payment_id.in_(sa.bindparam("b_payment_ids", expanding=True)))
    .order_by(refunds.c.create_time, refunds.c.refund_id)
)
# The SET clause is the version bump plus the columns named by the parameters.
_TRANSITION = (
    sa.update(payments)
    .where(
        payments.c.payment_id == sa.bindparam("b_payment_id"),
        payments.c.status.in_(sa.bindparam("b_sources", expanding=True)),
    )
    .values(version=payments.c.version + 1)
)


class DuplicateRequest(Exception):
    """The request id was already used (an idempotent retry)."""


class PaymentStore(SqlStore):
    """Tables, transactions and the statements the use cases combine."""

    schema = (metadata, outbox.metadata)

    # -- payments ----------------------------------------------------------
    async def insert_payment(self, rec: PaymentRecord) -> None:
        """Store a new payment; DuplicateRequest when its request id is known."""
        try:
            async with self.transaction() as conn:
                await conn.execute(
                    _INSERT_PAYMENT,
                    {
                        "payment_id": rec.payment_id,
                        "order_id": rec.order_id,
                        "user_id": rec.user_id,
                        "request_id": rec.request_id,
                        "amount_paise": rec.amount_paise,
                        "refunded_paise": 0,
                        "status": rec.status.value,
                        "payment_token": rec.payment_token,
                        "gateway": rec.gateway,
                        "attempts": rec.attempts,
                        "version": rec.version,
                        "next_check_time": rec.next_check_time,
                        "window_close_time": rec.window_close_time,
                        "create_time": rec.create_time,
                        "update_time": rec.update_time,
                    },
                )
        except IntegrityError as exc:
            if db.mysql_errno(exc) == db.ER_DUP_ENTRY:
                raise DuplicateRequest(rec.request_id) from exc
            raise

    async def payment_id_for_request(self, request_id: str) -> str | None:
        """The payment a CreatePayment request id created, if any."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(_PAYMENT_FOR_REQUEST, {"b_request_id": request_id})
            ).scalar_one_or_none()

    async def get(
        self, payment_id: str, conn: AsyncConnection | None = None, *, for_update: bool = False
    ) -> PaymentRecord | None:
        """One payment with its refunds; ``for_update`` locks its row."""
        if conn is None:
            async with self.engine.connect() as own:
                return await self.get(payment_id, own)
        query = _GET_FOR_UPDATE if for_update else _GET
        row = (await conn.execute(query, {"b_payment_id": payment_id})).mappings().one_or_none()
        if row is None:
            return None
        found = await self._refunds(conn, [payment_id])
        return _payment(row, found.get(payment_id, ()))

    async def _refunds(
        self, conn: AsyncConnection, payment_ids: Sequence[str]
    ) -> dict[str, tuple[RefundRecord, ...]]:
        if not payment_ids:
            return {}
        rows = (
            await conn.execute(_REFUNDS, {"b_payment_ids": list(payment_ids)})
        ).mappings()
        out: dict[str, list[RefundRecord]] = {}
        for r in rows:
            out.setdefault(r["payment_id"], []).append(_refund(r))
        return {k: tuple(v) for k, v in out.items()}

    async def transition(
        self,
        conn: AsyncConnection,
        payment_id: str,
        to: PaymentStatus,
        now: datetime,
        **values: object,
    ) -> bool:
        """Move a payment to ``to`` if it is in a status that may move
        there; returns False (and changes nothing) otherwise."""
        result = await conn.execute(
            _TRANSITION,
            {
                "b_payment_id": payment_id,
                "b_sources": [s.value for s in sources_of(to)],
                "status": to.value,
                "update_time": now,
                **values,
            },
        )
        return bool(result.rowcount)

    async def set_next_check(
        self, payment_id: str, when: datetime | None, *, attempts_delta: int = 0
    ) -> None:
        """Schedule the reconciler's next look at a still-PENDING payment."""
        async with self.transaction() as conn:
            await conn.execute(
                sa.update(payments)
                .where(
                    payments.c.payment_id == payment_id,
                    payments.c.status == PaymentStatus.PENDING.value,
                )
                .values(next_check_time=when, attempts=payments.c.attempts + attempts_delta)
            )

    async def due_for_check(self, now: datetime, limit: int) -> list[PaymentRecord]:
        """PENDING payments whose next gateway check is due, oldest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(payments)
                    .where(
                        payments.c.next_check_time <= now,
                        payments.c.status == PaymentStatus.PENDING.value,
                    )
                    .order_by(payments.c.next_check_time)
                    .limit(limit)
                )
            ).mappings()
            return [_payment(r, ()) for r in rows]

    async def list_page(
        self,
        order_id: str,
        status: PaymentStatus | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> tuple[list[PaymentRecord], bool]:
        """Up to ``limit`` payments newest first after the keyset position
        ``after``; the flag says whether more follow."""
        query = sa.select(payments)
        if order_id:
            query = query.where(payments.c.order_id == order_id)
        if status is not None:
            query = query.where(payments.c.status == status.value)
        if after is not None:
            when, pid = after
            query = query.where(
                sa.or_(
                    payments.c.create_time < when,
                    sa.and_(payments.c.create_time == when, payments.c.payment_id < pid),
                )
            )
        query = query.order_by(payments.c.create_time.desc(), payments.c.payment_id.desc()).limit(
            limit + 1
        )
        async with self.engine.connect() as conn:
            rows = list((await conn.execute(query)).mappings())
            more = len(rows) > limit
            rows = rows[:limit]
            found = await self._refunds(conn, [r["payment_id"] for r in rows])
        return [_payment(r, found.get(r["payment_id"], ())) for r in rows], more

    # -- refunds -----------------------------------------------------------
    async def refund_for_request(self, request_id: str) -> RefundRecord | None:
        """The refund a RefundPayment request id created, if any."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(refunds).where(refunds.c.request_id == request_id)))
                .mappings()
                .one_or_none()
            )
        return None if row is None else _refund(row)

    async def insert_refund(self, conn: AsyncConnection, rec: RefundRecord) -> None:
        """Store a new refund; DuplicateRequest when its request id is known."""
        try:
            async with conn.begin_nested():
                await conn.execute(
                    sa.insert(refunds).values(
                        refund_id=rec.refund_id,
                        payment_id=rec.payment_id,
                        request_id=rec.request_id,
                        amount_paise=rec.amount_paise,
                        status=rec.status.value,
                        reason=rec.reason,
                        create_time=rec.create_time,
                        update_time=rec.update_time,
                    )
                )
        except IntegrityError as exc:
            if db.mysql_errno(exc) == db.ER_DUP_ENTRY:
                raise DuplicateRequest(rec.request_id) from exc
            raise

    async def lock_refund(self, conn: AsyncConnection, refund_id: str) -> RefundRecord | None:
        """Lock one refund's row and return it."""
        row = (
            (
                await conn.execute(
                    sa.select(refunds).where(refunds.c.refund_id == refund_id).with_for_update()
                )
            )
            .mappings()
            .one_or_none()
        )
        return None if row is None else _refund(row)

    async def finish_refund(
        self,
        conn: AsyncConnection,
        refund_id: str,
        status: RefundStatus,
        reference: str,
        now: datetime,
    ) -> None:
        """Record the gateway's answer on a refund."""
        await conn.execute(
            sa.update(refunds)
            .where(refunds.c.refund_id == refund_id)
            .values(status=status.value, gateway_reference=reference, update_time=now)
        )

    async def stale_pending_refunds(self, older_than: datetime, limit: int) -> list[RefundRecord]:
        """Refunds still PENDING since before ``older_than`` (their caller
        crashed or the gateway timed out): the reconciler drives them on."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(refunds)
                    .where(
                        refunds.c.status == RefundStatus.PENDING.value,
                        refunds.c.create_time < older_than,
                    )
                    .order_by(refunds.c.create_time)
                    .limit(limit)
                )
            ).mappings()
            return [_refund(r) for r in rows]

    # -- events ------------------------------------------------------------
    async def add_event(
        self,
        conn: AsyncConnection,
        payment: PaymentRecord,
        now: datetime,
        *,
        late: bool = False,
        refund: RefundRecord | None = None,
        request_id: str = "",
    ) -> str:
        """Queue the event announcing ``payment``'s current status in the
        open transaction; returns its event id."""
        case, message = _payment_payload(payment, late=late, refund=refund)
        envelope = events.envelope(
            case,
            message,
            entity_key=payment.order_id,
            entity_version=payment.version,
            producer=PRODUCER,
            occurred_at=now,
            request_id=request_id,
        )
        event_id = envelope.event_id
        await outbox.add_event(
            conn,
            topic=PAYMENTS_TOPIC,
            key=payment.order_id,
            payload=envelope.SerializeToString(),
            event_type=envelope.event_type,
            event_id=event_id,
        )
        return event_id


def _payment_payload(
    payment: PaymentRecord, *, late: bool, refund: RefundRecord | None
) -> tuple[str, Message]:
    """The payload case and message announcing ``payment``'s status."""
    proto = payment_proto(payment)
    if refund is not None:
        return "payment_refunded", events_pb2.PaymentRefunded(
            payment=proto, refund=refund_proto(refund)
        )
    if payment.status is PaymentStatus.SUCCEEDED:
        return "payment_succeeded", events_pb2.PaymentSucceeded(payment=proto, late=late)
    if payment.status is PaymentStatus.DECLINED:
        return "payment_declined", events_pb2.PaymentDeclined(payment=proto)
    if payment.status is PaymentStatus.TIMED_OUT:
        return "payment_timed_out", events_pb2.PaymentTimedOut(payment=proto)
    raise ValueError(f"no event announces status {payment.status}")


def _refund(r: sa.RowMapping) -> RefundRecord:
    return RefundRecord(
        refund_id=r["refund_id"],
        payment_id=r["payment_id"],
        request_id=r["request_id"],
        amount_paise=int(r["amount_paise"]),
        status=RefundStatus(r["status"]),
        reason=r["reason"],
        gateway_reference=r["gateway_reference"],
        create_time=r["create_time"],
        update_time=r["update_time"],
    )


def _payment(r: sa.RowMapping, found_refunds: Sequence[RefundRecord]) -> PaymentRecord:
    return PaymentRecord(
        payment_id=r["payment_id"],
        order_id=r["order_id"],
        user_id=r["user_id"],
        request_id=r["request_id"],
        amount_paise=int(r["amount_paise"]),
        refunded_paise=int(r["refunded_paise"]),
        status=PaymentStatus(r["status"]),
        payment_token=r["payment_token"],
        gateway=r["gateway"],
        gateway_reference=r["gateway_reference"],
        decline_code=r["decline_code"],
        decline_message=r["decline_message"],
        attempts=int(r["attempts"]),
        version=int(r["version"]),
        next_check_time=r["next_check_time"],
        window_close_time=r["window_close_time"],
        create_time=r["create_time"],
        resolve_time=r["resolve_time"],
        update_time=r["update_time"],
        refunds=tuple(found_refunds),
    )


def encode_page_token(create_time: datetime, payment_id: str) -> str:
    """Opaque keyset token for ListPayments."""
    raw = f"{create_time.isoformat()}|{payment_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    """Inverse of encode_page_token; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("malformed page token") from exc
    when, sep, payment_id = raw.partition("|")
    if not sep or not payment_id:
        raise ValueError("malformed page token")
    return datetime.fromisoformat(when), payment_id
