"""Notifications in MariaDB: one row per (fact, channel), its state and the
user's history.

Why MariaDB and not Cassandra for the per-user history: the row is the
idempotency record and the delivery state machine at once. It must commit
in the same transaction as the consumer's `processed_events` row, claims
use `FOR UPDATE SKIP LOCKED` so several processes share the sending, and
every transition is a conditional update (`WHERE status = ...`). Cassandra
would need lightweight transactions for each of those. The history read is
one index range scan, `(user_id, create_time)`, newest first, which MariaDB
serves well at one shop's volume; an archive to Cassandra, as orders do, can
come when the table grows past what one server keeps.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import consumer as mesh_consumer
from mesh.db import SqlStore, utcnow
from svc_notify.domain import REPORTABLE, Channel, Status

metadata = sa.MetaData()
DT = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("notification_id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("template", sa.String(64), nullable=False),
    # The fact this is about ("order/<id>/order_placed", "refund/<id>", an
    # event or request id): unique with the channel.
    sa.Column("dedupe_key", sa.String(191), nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("order_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("recipient", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False, server_default=""),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("html", mysql.MEDIUMTEXT().with_variant(sa.Text, "sqlite"), nullable=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("failure_reason", sa.String(500), nullable=False, server_default=""),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Due time of the next attempt while QUEUED; the lease end while SENDING.
    sa.Column("next_attempt_at", DT, nullable=False),
    # The channel's id for the message (SMTP Message-ID, SMS reference).
    sa.Column("message_id", sa.String(191), nullable=False),
    sa.Column("create_time", DT, nullable=False),
    sa.Column("update_time", DT, nullable=False),
    sa.Column("send_time", DT, nullable=True),
    sa.Column("deliver_time", DT, nullable=True),
    sa.UniqueConstraint("dedupe_key", "channel", name="uq_notifications_fact_channel"),
    sa.Index("ix_notifications_user", "user_id", "create_time", "notification_id"),
    sa.Index("ix_notifications_due", "status", "next_attempt_at"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)


@dataclass(frozen=True)
class NotificationRow:
    """One stored notification."""

    notification_id: str
    user_id: str
    channel: Channel
    template: str
    dedupe_key: str
    source: str
    order_id: str
    recipient: str
    subject: str
    body: str
    html: str | None
    status: Status
    failure_reason: str
    attempts: int
    next_attempt_at: datetime
    message_id: str
    create_time: datetime
    update_time: datetime
    send_time: datetime | None
    deliver_time: datetime | None


def _row(r: Any) -> NotificationRow:
    return NotificationRow(
        notification_id=r.notification_id, user_id=r.user_id, channel=Channel(r.channel),
        template=r.template, dedupe_key=r.dedupe_key, source=r.source, order_id=r.order_id,
        recipient=r.recipient, subject=r.subject, body=r.body, html=r.html,
        status=Status(r.status), failure_reason=r.failure_reason, attempts=r.attempts,
        next_attempt_at=r.next_attempt_at, message_id=r.message_id,
        create_time=r.create_time, update_time=r.update_time, send_time=r.send_time,
        deliver_time=r.deliver_time,
    )


@dataclass(frozen=True)
class NewNotification:
    """What the service asks to be stored (QUEUED or SUPPRESSED)."""

    user_id: str
    channel: Channel
    template: str
    dedupe_key: str
    source: str
    order_id: str
    recipient: str
    subject: str
    body: str
    html: str | None
    status: Status = Status.QUEUED
    failure_reason: str = ""


def encode_token(create_time: datetime, notification_id: str) -> str:
    raw = f"{create_time.isoformat()}|{notification_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    """Raises ValueError for a token we did not make."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        when, nid = raw.split("|", 1)
        return datetime.fromisoformat(when), nid
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a page token from this API") from exc


class NotifyStore(SqlStore):
    """The `notifications` table, plus the consumer's dedupe table."""

    schema = (metadata, mesh_consumer.metadata)

    def __init__(self, engine: Any, *, message_id_domain: str = "notify.ecom.local") -> None:
        super().__init__(engine)
        self.message_id_domain = message_id_domain

    # -- writes ------------------------------------------------------------------

    async def add(self, conn: AsyncConnection, new: NewNotification) -> str | None:
        """Insert unless (dedupe_key, channel) exists; the new id, or None when
        it already did. Runs in the caller's transaction."""
        nid = str(uuid.uuid4())
        now = utcnow()
        stmt = notifications.insert().prefix_with("IGNORE").values(
            notification_id=nid, user_id=new.user_id, channel=new.channel.value,
            template=new.template, dedupe_key=new.dedupe_key, source=new.source,
            order_id=new.order_id, recipient=new.recipient, subject=new.subject[:300],
            body=new.body, html=new.html, status=new.status.value,
            failure_reason=new.failure_reason[:500], attempts=0, next_attempt_at=now,
            # Stable for the row's life: every resend carries the same id, so
            # a receiving system can drop a copy.
            message_id=f"<{nid}@{self.message_id_domain}>",
            create_time=now, update_time=now,
        )
        # IGNORE: a duplicate (dedupe_key, channel) leaves the existing row
        # untouched and inserts nothing (0 rows). Values are trimmed above,
        # so no other error is being ignored.
        result = await conn.execute(stmt)
        return nid if result.rowcount == 1 else None

    async def claim_due(
        self, limit: int, lease: dict[Channel, float], channels: list[Channel] | None = None
    ) -> list[NotificationRow]:
        """Take up to `limit` rows whose attempt is due (QUEUED past their
        backoff, or SENDING past their lease: a crashed attempt), mark them
        SENDING with one more attempt and a lease, and return them. Rows
        another process holds are skipped."""
        now = utcnow()
        async with self.engine.begin() as conn:
            query = (
                sa.select(notifications.c.notification_id, notifications.c.channel)
                .where(
                    notifications.c.status.in_([Status.QUEUED.value, Status.SENDING.value]),
                    notifications.c.next_attempt_at <= now,
                )
                .order_by(notifications.c.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            if channels:
                query = query.where(notifications.c.channel.in_([c.value for c in channels]))
            picked = (await conn.execute(query)).all()
            if not picked:
                return []
            by_channel: dict[str, list[str]] = {}
            for nid, ch in picked:
                by_channel.setdefault(ch, []).append(nid)
            for ch, ids in by_channel.items():
                await conn.execute(
                    notifications.update()
                    .where(notifications.c.notification_id.in_(ids))
                    .values(
                        status=Status.SENDING.value,
                        attempts=notifications.c.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=lease[Channel(ch)]),
                        update_time=now,
                    )
                )
            rows = (
                await conn.execute(
                    sa.select(notifications).where(
                        notifications.c.notification_id.in_([p[0] for p in picked])
                    )
                )
            ).all()
        return [_row(r) for r in rows]

    async def mark_sent(self, nid: str, attempt: int) -> bool:
        """SENDING (this attempt) -> SENT. False when something else moved it
        (a delivery report got there first, or a newer attempt owns it)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                notifications.update()
                .where(
                    notifications.c.notification_id == nid,
                    notifications.c.status == Status.SENDING.value,
                    notifications.c.attempts == attempt,
                )
                .values(status=Status.SENT.value, send_time=now, update_time=now,
                        failure_reason="")
            )
        return bool(result.rowcount)

    async def mark_attempt_failed(
        self, nid: str, attempt: int, reason: str, retry_in: float | None
    ) -> bool:
        """SENDING (this attempt) -> QUEUED again in `retry_in` seconds, or
        FAILED when `retry_in` is None."""
        now = utcnow()
        values: dict[str, Any] = {"failure_reason": reason[:500], "update_time": now}
        if retry_in is None:
            values["status"] = Status.FAILED.value
        else:
            values["status"] = Status.QUEUED.value
            values["next_attempt_at"] = now + timedelta(seconds=retry_in)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                notifications.update()
                .where(
                    notifications.c.notification_id == nid,
                    notifications.c.status == Status.SENDING.value,
                    notifications.c.attempts == attempt,
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def apply_report(self, nid: str, new_status: Status, reason: str = "") -> bool:
        """A channel's delivery report: move the row forward (never back from
        DELIVERED or FAILED)."""
        now = utcnow()
        values: dict[str, Any] = {"status": new_status.value, "update_time": now}
        if new_status == Status.DELIVERED:
            values["deliver_time"] = now
        if new_status in (Status.SENT, Status.DELIVERED):
            values["send_time"] = sa.func.coalesce(notifications.c.send_time, now)
        if new_status == Status.FAILED:
            values["failure_reason"] = reason[:500]
        allowed = {s.value for s in REPORTABLE}
        if new_status == Status.SENT:
            allowed.discard(Status.SENT.value)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                notifications.update()
                .where(
                    notifications.c.notification_id == nid,
                    notifications.c.status.in_(sorted(allowed)),
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def requeue_failed(self, nid: str) -> bool:
        """FAILED -> QUEUED now, with a fresh attempt budget (admin retry)."""
        now = utcnow()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                notifications.update()
                .where(
                    notifications.c.notification_id == nid,
                    notifications.c.status == Status.FAILED.value,
                )
                .values(status=Status.QUEUED.value, attempts=0, next_attempt_at=now,
                        update_time=now)
            )
        return bool(result.rowcount)

    # -- reads -------------------------------------------------------------------

    async def get(self, nid: str) -> NotificationRow | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(notifications).where(notifications.c.notification_id == nid)
                )
            ).first()
        return _row(row) if row else None

    async def get_by_key(
        self, conn: AsyncConnection | None, dedupe_key: str, channel: Channel
    ) -> NotificationRow | None:
        query = sa.select(notifications).where(
            notifications.c.dedupe_key == dedupe_key, notifications.c.channel == channel.value
        )
        if conn is not None:
            row = (await conn.execute(query)).first()
        else:
            async with self.engine.connect() as c:
                row = (await c.execute(query)).first()
        return _row(row) if row else None

    async def count_by_key(self, conn: AsyncConnection, dedupe_key: str) -> int:
        """How many channels already hold a row for this fact."""
        return int(await conn.scalar(
            sa.select(sa.func.count()).where(notifications.c.dedupe_key == dedupe_key)) or 0)

    async def list_page(
        self, *, user_id: str | None = None, status: Status | None = None,
        channel: Channel | None = None, size: int, token: str = "",
    ) -> tuple[list[NotificationRow], str]:
        """Newest first, keyset-paged on (create_time, notification_id)."""
        c = notifications.c
        query = sa.select(notifications)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        if status is not None:
            query = query.where(c.status == status.value)
        if channel is not None:
            query = query.where(c.channel == channel.value)
        if token:
            when, nid = decode_token(token)
            query = query.where(
                sa.or_(c.create_time < when,
                       sa.and_(c.create_time == when, c.notification_id < nid))
            )
        query = query.order_by(c.create_time.desc(), c.notification_id.desc()).limit(size + 1)
        async with self.engine.connect() as conn:
            rows = [_row(r) for r in (await conn.execute(query)).all()]
        more = len(rows) > size
        rows = rows[:size]
        next_token = encode_token(rows[-1].create_time, rows[-1].notification_id) if more else ""
        return rows, next_token

    async def count_by_status(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(notifications.c.status, sa.func.count()).group_by(
                        notifications.c.status
                    )
                )
            ).all()
        return {s: n for s, n in rows}
