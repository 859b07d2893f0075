"""Persistence: cart lines, wishlist items, one `shoppers` row per user, the
request ids already applied, and the `cart.events` outbox rows, all in the
`cart` MariaDB database.

Every change of one user's cart or wishlist runs in one transaction that
first locks the user's `shoppers` row. That serialises the user's changes
(so the 50-line and 500-item limits hold under concurrent adds, and a
request id is claimed exactly once) without touching other users, and the
row's `version` orders the user's events (`entity_version`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import events, outbox, tasks
from mesh.db import SqlStore
from svc_cart.domain import StoredLine

log = logging.getLogger(__name__)

CART_TOPIC = "cart.events"
PRODUCER = "svc_cart"

metadata = sa.MetaData()
_MICROS = sa.DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb")

# One row per user who ever changed a cart or wishlist: the lock every change
# takes first, the version that orders the user's events, and the two
# update times the contract returns (kept even when a list becomes empty).
shoppers = sa.Table(
    "shoppers",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cart_update_time", _MICROS, nullable=True),
    sa.Column("wishlist_update_time", _MICROS, nullable=True),
    mysql_engine="InnoDB",
)

cart_lines = sa.Table(
    "cart_lines",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("add_time", _MICROS, nullable=False),
    sa.Column("update_time", _MICROS, nullable=False),
    # The per-line limit is configurable, so only the invariant every
    # configuration shares is enforced here: a stored line has units.
    sa.CheckConstraint("quantity > 0", name="ck_cart_lines_quantity_positive"),
    mysql_engine="InnoDB",
)

wishlist_items = sa.Table(
    "wishlist_items",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("add_time", _MICROS, nullable=False),
    mysql_engine="InnoDB",
)

# Request ids already applied (AIP-155), per user. `fingerprint` is what the
# request asked for, so a reused id with a different request is refused.
applied_requests = sa.Table(
    "applied_requests",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("create_time", _MICROS, nullable=False),
    sa.Index("ix_applied_requests_created", "create_time"),
    mysql_engine="InnoDB",
)


@dataclass(frozen=True)
class Shopper:
    """A user's locked `shoppers` row."""

    user_id: str
    version: int
    cart_update_time: datetime | None
    wishlist_update_time: datetime | None


@dataclass(frozen=True)
class SavedItem:
    """A wishlist entry as stored."""

    item_id: str
    add_time: datetime


class CartStore(SqlStore):
    """Tables, transactions and the statements the use cases combine."""

    schema = (metadata, outbox.metadata)

    async def purge_once(self, retention_seconds: int) -> None:
        """Forget request ids and published outbox rows older than
        ``retention_seconds`` (a retry comes within minutes; without this
        both tables grow with every click)."""
        await outbox.purge_sent(self.engine, older_than_seconds=retention_seconds)
        async with self.engine.begin() as conn:
            await conn.execute(
                applied_requests.delete().where(
                    sa.text("create_time < UTC_TIMESTAMP(6) - INTERVAL :age SECOND").bindparams(
                        age=int(retention_seconds)
                    )
                )
            )

    async def purge_forever(self, retention_seconds: int, interval: float) -> None:
        """:meth:`purge_once` every ``interval`` seconds (mesh.tasks.every)."""
        await tasks.every(interval, lambda: self.purge_once(retention_seconds), "cart purge")

    # -- the per-user lock and request ids -----------------------------------
    async def lock_shopper(self, conn: AsyncConnection, user_id: str) -> Shopper:
        """Create the user's row if needed and lock it for this transaction."""
        # ON DUPLICATE KEY takes the row's exclusive lock even when nothing
        # changes, so a concurrent first change of the same user waits here.
        await conn.execute(
            sa.text(
                "INSERT INTO shoppers (user_id, version) VALUES (:u, 0)"
                " ON DUPLICATE KEY UPDATE user_id = user_id"
            ),
            {"u": user_id},
        )
        row = (
            await conn.execute(
                sa.select(shoppers).where(shoppers.c.user_id == user_id).with_for_update()
            )
        ).one()
        return Shopper(
            user_id=row.user_id,
            version=int(row.version),
            cart_update_time=row.cart_update_time,
            wishlist_update_time=row.wishlist_update_time,
        )

    async def touch(
        self,
        conn: AsyncConnection,
        shopper: Shopper,
        *,
        cart: bool,
        wishlist: bool,
        now: datetime,
        events: int = 1,
    ) -> Shopper:
        """Record a change: bump the version by the number of ``events`` it
        publishes (each event gets its own version), move the changed lists'
        update times. Returns the row as it now is."""
        values: dict[str, object] = {"version": shopper.version + events}
        if cart:
            values["cart_update_time"] = now
        if wishlist:
            values["wishlist_update_time"] = now
        await conn.execute(
            sa.update(shoppers).where(shoppers.c.user_id == shopper.user_id).values(**values)
        )
        return Shopper(
            user_id=shopper.user_id,
            version=shopper.version + events,
            cart_update_time=now if cart else shopper.cart_update_time,
            wishlist_update_time=now if wishlist else shopper.wishlist_update_time,
        )

    async def applied_fingerprint(
        self, conn: AsyncConnection | None, user_id: str, request_id: str
    ) -> str | None:
        """The fingerprint stored for an applied request id, None if new."""
        query = sa.select(applied_requests.c.fingerprint).where(
            applied_requests.c.user_id == user_id, applied_requests.c.request_id == request_id
        )
        if conn is None:
            async with self.engine.connect() as own:
                return (await own.execute(query)).scalar()
        return (await conn.execute(query)).scalar()

    async def record_request(
        self, conn: AsyncConnection, user_id: str, request_id: str, fingerprint: str, now: datetime
    ) -> None:
        """Remember a request id as applied (under the user's lock)."""
        await conn.execute(
            sa.insert(applied_requests).values(
                user_id=user_id, request_id=request_id, fingerprint=fingerprint, create_time=now
            )
        )

    # -- cart ------------------------------------------------------------------
    async def cart_lines(self, conn: AsyncConnection | None, user_id: str) -> list[StoredLine]:
        """The user's lines, most recently added first."""
        query = (
            sa.select(cart_lines.c.item_id, cart_lines.c.quantity, cart_lines.c.add_time)
            .where(cart_lines.c.user_id == user_id)
            .order_by(cart_lines.c.add_time.desc(), cart_lines.c.item_id)
        )
        if conn is None:
            async with self.engine.connect() as own:
                rows = (await own.execute(query)).all()
        else:
            rows = (await conn.execute(query)).all()
        return [StoredLine(r.item_id, int(r.quantity), r.add_time) for r in rows]

    async def shopper(self, user_id: str) -> Shopper | None:
        """The user's row without locking it (reads)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(shoppers).where(shoppers.c.user_id == user_id))
            ).first()
        if row is None:
            return None
        return Shopper(row.user_id, int(row.version), row.cart_update_time,
                       row.wishlist_update_time)

    async def upsert_line(
        self, conn: AsyncConnection, user_id: str, item_id: str, quantity: int, now: datetime
    ) -> None:
        """Set a line's quantity, creating the line (added now) if missing."""
        await conn.execute(
            sa.text(
                "INSERT INTO cart_lines (user_id, item_id, quantity, add_time, update_time)"
                " VALUES (:u, :i, :q, :now, :now)"
                " ON DUPLICATE KEY UPDATE quantity = VALUES(quantity),"
                " update_time = VALUES(update_time)"
            ),
            {"u": user_id, "i": item_id, "q": quantity, "now": now},
        )

    async def delete_lines(
        self, conn: AsyncConnection, user_id: str, item_ids: Sequence[str]
    ) -> None:
        """Delete the named lines of the user's cart."""
        if item_ids:
            await conn.execute(
                cart_lines.delete().where(
                    cart_lines.c.user_id == user_id, cart_lines.c.item_id.in_(list(item_ids))
                )
            )

    # -- wishlist ----------------------------------------------------------------
    async def wishlist(self, conn: AsyncConnection | None, user_id: str) -> list[SavedItem]:
        """The user's saved items, most recently added first."""
        query = (
            sa.select(wishlist_items.c.item_id, wishlist_items.c.add_time)
            .where(wishlist_items.c.user_id == user_id)
            .order_by(wishlist_items.c.add_time.desc(), wishlist_items.c.item_id)
        )
        if conn is None:
            async with self.engine.connect() as own:
                rows = (await own.execute(query)).all()
        else:
            rows = (await conn.execute(query)).all()
        return [SavedItem(r.item_id, r.add_time) for r in rows]

    async def save_item(
        self, conn: AsyncConnection, user_id: str, item_id: str, now: datetime
    ) -> None:
        """Add an item to the wishlist (the caller checked it is not there)."""
        await conn.execute(
            sa.insert(wishlist_items).values(user_id=user_id, item_id=item_id, add_time=now)
        )

    async def unsave_item(self, conn: AsyncConnection, user_id: str, item_id: str) -> bool:
        """Remove an item from the wishlist; False when it was not there."""
        result = await conn.execute(
            wishlist_items.delete().where(
                wishlist_items.c.user_id == user_id, wishlist_items.c.item_id == item_id
            )
        )
        return bool(result.rowcount)

    # -- events ------------------------------------------------------------------
    async def add_event(
        self,
        conn: AsyncConnection,
        user_id: str,
        version: int,
        now: datetime,
        request_id: str,
        **payload: object,
    ) -> None:
        """Queue one `cart.events` event about ``user_id``'s cart or wishlist
        (keyed by user id, ``version`` from the user's row) in the open
        transaction; ``payload`` is the oneof case, e.g.
        ``cart_item_added=events_pb2.CartItemAdded(...)``."""
        (case, message), = payload.items()
        envelope = events.envelope(
            case,
            cast(Message, message),
            entity_key=user_id,
            entity_version=version,
            producer=PRODUCER,
            occurred_at=now,
            request_id=request_id,
        )
        await outbox.add_event(
            conn,
            topic=CART_TOPIC,
            key=user_id,
            payload=envelope.SerializeToString(),
            event_type=envelope.event_type,
            event_id=envelope.event_id,
        )
