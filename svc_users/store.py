"""Persistence for users: MariaDB tables (schema by Alembic), the Redis
profile cache, and the pincode directory.

Every write that touches several rows runs in one transaction that first
locks the owner's ``users`` row (``SELECT ... FOR UPDATE``): address
mutations of one user are serialized, so "first address becomes default",
the 20-address limit and the default flip can never interleave badly. The
unique index on ``addresses.default_of`` backs "at most one default" in the
database itself.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bharatpin
import redis.asyncio as aioredis
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mesh import db, tracing
from mesh.errors import FailedPrecondition, NotFound
from svc_users.domain import (
    MAX_ADDRESSES_PER_USER,
    Address,
    ProfileChange,
    Role,
    SignUp,
    User,
    list_order,
    new_address_is_default,
    successor_default,
)

log = logging.getLogger("svc_users.store")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# -- schema (mirrors migrations/versions; Alembic owns the DDL) -------------

metadata = sa.MetaData()
DT = mysql.DATETIME(fsp=6)

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.String(36), primary_key=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("create_time", DT, nullable=False),
    sa.Column("update_time", DT, nullable=False),
    sa.Column("sms_notifications", sa.Boolean, nullable=False, server_default=sa.true()),
)

addresses = sa.Table(
    "addresses",
    metadata,
    sa.Column("address_id", sa.String(36), primary_key=True),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("lines", sa.JSON, nullable=False),
    sa.Column("landmark", sa.String(100), nullable=False),
    sa.Column("city", sa.String(100), nullable=False),
    sa.Column("state", sa.String(100), nullable=False),
    sa.Column("pincode", sa.CHAR(6), nullable=False),
    sa.Column("phone", sa.String(16), nullable=False),
    sa.Column("default_of", sa.String(36), nullable=True),
    sa.Column("create_time", DT, nullable=False),
)

request_ids = sa.Table(
    "request_ids",
    metadata,
    sa.Column("scope", sa.String(254), primary_key=True),
    sa.Column("method", sa.String(32), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("resource_id", sa.String(36), nullable=False),
    sa.Column("create_time", DT, nullable=False),
)


def new_id() -> str:
    """A fresh resource id (UUID4, canonical text form)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Now in UTC, at the microsecond precision the columns keep."""
    return datetime.now(UTC)


def _naive(ts: datetime) -> datetime:
    # DATETIME has no zone: everything stored is UTC.
    return ts.astimezone(UTC).replace(tzinfo=None)


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC)


# -- migrations ----------------------------------------------------------------


def _upgrade_to_head(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine, database: str) -> None:
    """Upgrade the schema to Alembic head. Safe on an empty database, on an
    up-to-date one, and with several processes starting at once (a named
    lock makes the others wait, then find nothing to do)."""
    lock = f"svc_users.migrate.{database}"[:64]
    async with engine.connect() as conn:
        got = await conn.scalar(sa.text("SELECT GET_LOCK(:name, 60)"), {"name": lock})
        if got != 1:
            raise RuntimeError(f"could not take the migration lock {lock!r} within 60s")
        try:
            await conn.run_sync(_upgrade_to_head)
            await conn.commit()
        finally:
            await conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": lock})


async def ping(engine: AsyncEngine) -> None:
    """Health probe: one round trip to MariaDB."""
    await db.ping(engine)


# -- pincode directory --------------------------------------------------------


def pincode_known(pincode: str) -> bool:
    """True when India Post's directory (the ``bharatpin`` data set) has the
    pincode. The first call loads the data set (about a second): call
    :func:`warm_pincode_directory` at start-up."""
    try:
        return bharatpin.get_state(pincode) is not None
    except ValueError:  # malformed; the domain rejects those first anyway
        return False


def warm_pincode_directory() -> None:
    """Load the pincode data set now rather than on the first address write."""
    pincode_known("110001")


# -- rows <-> domain ---------------------------------------------------------------


def _address(row: Any) -> Address:
    lines = row.lines if isinstance(row.lines, list) else json.loads(row.lines)
    return Address(
        address_id=row.address_id,
        name=row.name,
        lines=tuple(lines),
        landmark=row.landmark,
        city=row.city,
        state=row.state,
        pincode=row.pincode,
        phone=row.phone,
        is_default=row.default_of is not None,
        create_time=_aware(row.create_time),
    )


def _user(row: Any, default_address: Address | None) -> User:
    return User(
        user_id=row.user_id,
        email=row.email,
        name=row.name,
        phone=row.phone,
        role=Role(row.role),
        create_time=_aware(row.create_time),
        update_time=_aware(row.update_time),
        default_address=default_address,
        sms_notifications=bool(row.sms_notifications),
    )


class UserStore:
    """Users, addresses and idempotency records in MariaDB."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- helpers (inside a transaction) ----------------------------------------

    @staticmethod
    async def _seen(conn: AsyncConnection, scope: str, method: str, request_id: str) -> str | None:
        if not request_id:
            return None
        return await conn.scalar(
            sa.select(request_ids.c.resource_id).where(
                request_ids.c.scope == scope,
                request_ids.c.method == method,
                request_ids.c.request_id == request_id,
            )
        )

    @staticmethod
    async def _remember(
        conn: AsyncConnection, scope: str, method: str, request_id: str, resource_id: str
    ) -> None:
        if request_id:
            await conn.execute(
                request_ids.insert().values(
                    scope=scope,
                    method=method,
                    request_id=request_id,
                    resource_id=resource_id,
                    create_time=_naive(utcnow()),
                )
            )

    @staticmethod
    async def _lock_user(conn: AsyncConnection, user_id: str) -> None:
        found = await conn.scalar(
            sa.select(users.c.user_id).where(users.c.user_id == user_id).with_for_update()
        )
        if found is None:
            raise NotFound("user not found", resource_type="user", resource_name=user_id)

    @staticmethod
    async def _default_address(conn: AsyncConnection, user_id: str) -> Address | None:
        row = (
            await conn.execute(sa.select(addresses).where(addresses.c.default_of == user_id))
        ).first()
        return _address(row) if row else None

    async def _user_in(self, conn: AsyncConnection, user_id: str) -> User | None:
        row = (await conn.execute(sa.select(users).where(users.c.user_id == user_id))).first()
        if row is None:
            return None
        return _user(row, await self._default_address(conn, user_id))

    # -- users ----------------------------------------------------------------------

    async def get_user(self, user_id: str) -> User | None:
        """The user with their default address, None when unknown."""
        async with self.engine.connect() as conn:
            return await self._user_in(conn, user_id)

    async def credentials(self, email: str) -> tuple[str, Role, str] | None:
        """(user_id, role, password hash) of the account with ``email``."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(users.c.user_id, users.c.role, users.c.password_hash).where(
                        users.c.email == email
                    )
                )
            ).first()
        return (row.user_id, Role(row.role), row.password_hash) if row else None

    async def replayed_sign_up(self, email: str, request_id: str) -> str | None:
        """The user id a sign-up with this email and request id created, if any."""
        async with self.engine.connect() as conn:
            return await self._seen(conn, email, "CreateUser", request_id)

    async def create_user(
        self, sign_up: SignUp, password_hash: str, role: Role, request_id: str
    ) -> User | None:
        """Insert the account; None when the email is taken (the caller
        decides whether that is a replay or a conflict)."""
        now = utcnow()
        user_id = new_id()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    users.insert().values(
                        user_id=user_id,
                        email=sign_up.email,
                        name=sign_up.name,
                        phone=sign_up.phone,
                        password_hash=password_hash,
                        role=role.value,
                        create_time=_naive(now),
                        update_time=_naive(now),
                    )
                )
                await self._remember(conn, sign_up.email, "CreateUser", request_id, user_id)
        except IntegrityError:
            return None
        return User(user_id, sign_up.email, sign_up.name, sign_up.phone, role, now, now)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the stored hash (re-hashing with stronger parameters)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                users.update().where(users.c.user_id == user_id).values(password_hash=password_hash)
            )

    async def promote_to_admin(self, user_id: str) -> None:
        """Give an existing account the admin role."""
        async with self.engine.begin() as conn:
            await conn.execute(
                users.update()
                .where(users.c.user_id == user_id)
                .values(role=Role.ADMIN.value, update_time=_naive(utcnow()))
            )

    async def update_profile(self, user_id: str, change: ProfileChange) -> User:
        """Apply ``change``; NotFound when the user does not exist."""
        async with self.engine.begin() as conn:
            await self._lock_user(conn, user_id)
            values: dict[str, Any] = {}
            if change.name is not None:
                values["name"] = change.name
            if change.phone is not None:
                values["phone"] = change.phone
            if change.sms_notifications is not None:
                values["sms_notifications"] = change.sms_notifications
            if values:
                values["update_time"] = _naive(utcnow())
                await conn.execute(
                    users.update().where(users.c.user_id == user_id).values(**values)
                )
            user = await self._user_in(conn, user_id)
        assert user is not None  # locked above
        return user

    # -- addresses --------------------------------------------------------------------

    async def create_address(self, user_id: str, address: Address, request_id: str) -> Address:
        """Save ``address`` for the user (first one, or one asked for, becomes
        the default); a replayed request id returns the address made first."""
        async with self.engine.begin() as conn:
            await self._lock_user(conn, user_id)
            replayed = await self._seen(conn, user_id, "CreateAddress", request_id)
            if replayed:
                row = (
                    await conn.execute(
                        sa.select(addresses).where(addresses.c.address_id == replayed)
                    )
                ).first()
                if row is None:
                    raise NotFound(
                        "the address this request created has since been deleted",
                        resource_type="address",
                        resource_name=replayed,
                    )
                return _address(row)
            count = await conn.scalar(
                sa.select(sa.func.count()).where(addresses.c.user_id == user_id)
            )
            if (count or 0) >= MAX_ADDRESSES_PER_USER:
                raise FailedPrecondition(
                    f"a user can keep at most {MAX_ADDRESSES_PER_USER} addresses; delete one first",
                    reason="ADDRESS_LIMIT_REACHED",
                )
            is_default = new_address_is_default(count or 0, address.is_default)
            if is_default:
                await conn.execute(
                    addresses.update()
                    .where(addresses.c.default_of == user_id)
                    .values(default_of=None)
                )
            saved = replace(
                address, address_id=new_id(), is_default=is_default, create_time=utcnow()
            )
            await conn.execute(
                addresses.insert().values(
                    address_id=saved.address_id,
                    user_id=user_id,
                    name=saved.name,
                    lines=list(saved.lines),
                    landmark=saved.landmark,
                    city=saved.city,
                    state=saved.state,
                    pincode=saved.pincode,
                    phone=saved.phone,
                    default_of=user_id if is_default else None,
                    create_time=_naive(saved.create_time or utcnow()),
                )
            )
            await self._remember(conn, user_id, "CreateAddress", request_id, saved.address_id)
        return saved

    async def list_addresses(self, user_id: str) -> list[Address]:
        """All of the user's addresses, default first, then newest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(addresses).where(addresses.c.user_id == user_id))
            ).all()
        return list_order(_address(r) for r in rows)

    async def get_address(self, user_id: str, address_id: str) -> Address | None:
        """One of the user's addresses, None when it is not theirs or not there."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(addresses).where(
                        addresses.c.address_id == address_id, addresses.c.user_id == user_id
                    )
                )
            ).first()
        return _address(row) if row else None

    async def set_default_address(self, user_id: str, address_id: str) -> Address:
        """Make the address the default: both flips in one transaction."""
        async with self.engine.begin() as conn:
            await self._lock_user(conn, user_id)
            row = (
                await conn.execute(
                    sa.select(addresses).where(
                        addresses.c.address_id == address_id, addresses.c.user_id == user_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(
                    "address not found", resource_type="address", resource_name=address_id
                )
            if row.default_of is None:
                await conn.execute(
                    addresses.update()
                    .where(addresses.c.default_of == user_id)
                    .values(default_of=None)
                )
                await conn.execute(
                    addresses.update()
                    .where(addresses.c.address_id == address_id)
                    .values(default_of=user_id)
                )
        return replace(_address(row), is_default=True)

    async def delete_address(
        self, user_id: str, address_id: str, request_id: str
    ) -> Address | None:
        """Delete the address; if it was the default, the newest remaining one
        takes over. Returns the default afterwards. A replayed request id
        returns the current default instead of NOT_FOUND."""
        async with self.engine.begin() as conn:
            await self._lock_user(conn, user_id)
            if await self._seen(conn, user_id, "DeleteAddress", request_id):
                return await self._default_address(conn, user_id)
            row = (
                await conn.execute(
                    sa.select(addresses).where(
                        addresses.c.address_id == address_id, addresses.c.user_id == user_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(
                    "address not found", resource_type="address", resource_name=address_id
                )
            await conn.execute(addresses.delete().where(addresses.c.address_id == address_id))
            if row.default_of is not None:
                rest = (
                    await conn.execute(sa.select(addresses).where(addresses.c.user_id == user_id))
                ).all()
                heir = successor_default(_address(r) for r in rest)
                if heir is not None:
                    await conn.execute(
                        addresses.update()
                        .where(addresses.c.address_id == heir.address_id)
                        .values(default_of=user_id)
                    )
            await self._remember(conn, user_id, "DeleteAddress", request_id, address_id)
            return await self._default_address(conn, user_id)


# -- Redis read-through cache -----------------------------------------------------------


def _user_to_json(user: User) -> str:
    def enc(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Role):
            return value.value
        if isinstance(value, dict):
            return {k: enc(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [enc(v) for v in value]
        return value

    return json.dumps(enc(asdict(user)), separators=(",", ":"))


def _user_from_json(raw: str | bytes) -> User:
    data = json.loads(raw)
    addr = data.get("default_address")
    default_address = None
    if addr:
        created = addr.get("create_time")
        default_address = Address(
            **{
                **addr,
                "lines": tuple(addr["lines"]),
                "create_time": datetime.fromisoformat(created) if created else None,
            }
        )
    return User(
        user_id=data["user_id"],
        email=data["email"],
        name=data["name"],
        phone=data["phone"],
        role=Role(data["role"]),
        create_time=datetime.fromisoformat(data["create_time"]),
        update_time=datetime.fromisoformat(data["update_time"]),
        default_address=default_address,
        sms_notifications=bool(data.get("sms_notifications", True)),
    )


class ProfileCache:
    """Read-through cache of profiles (the user with their default address).

    Redis is an accelerator, never a dependency: every Redis error is logged
    and swallowed, the caller then reads MariaDB. After a failure Redis is
    skipped for ``retry_after`` seconds so a dead server costs one short
    timeout, not one per read. Invalidations that could not be sent are kept
    and re-sent before the cache is used again, so a profile changed while
    Redis was away is not served stale once it is back; the TTL bounds what
    other processes might still hold.

    Invalidation writes a short-lived tombstone rather than deleting, and
    fills only set a key that is absent (``SET NX``). Otherwise a read that
    fetched the old row just before a write committed could put it back
    right after the write's delete and serve it for the whole TTL.
    """

    TOMBSTONE = b"-"

    KEY_VERSION = "v1"

    def __init__(
        self,
        client: aioredis.Redis,
        key: Any,
        *,
        ttl_seconds: int = 300,
        tombstone_seconds: int = 2,
        retry_after: float = 2.0,
    ) -> None:
        self._redis = client
        self._key_fn = key
        self._ttl = ttl_seconds
        self._tombstone_seconds = tombstone_seconds
        self._retry_after = retry_after
        self._down_until = 0.0
        self._pending: set[str] = set()

    def key(self, user_id: str) -> str:
        """The Redis key holding ``user_id``'s cached profile."""
        return str(self._key_fn(f"users:profile:{self.KEY_VERSION}:{user_id}"))

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: Exception) -> None:
        self._down_until = time.monotonic() + self._retry_after
        log.warning(
            "redis unavailable; serving from MariaDB",
            extra={"op": op, "error": type(exc).__name__},
        )

    async def _flush_pending(self) -> None:
        if self._pending:
            keys = list(self._pending)
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, self.TOMBSTONE, ex=self._tombstone_seconds)
                await pipe.execute()
            self._pending.difference_update(keys)

    async def get(self, user_id: str) -> User | None:
        """The cached profile, None on a miss or when Redis is unavailable."""
        if not self._available():
            return None
        try:
            await self._flush_pending()
            raw = await self._redis.get(self.key(user_id))
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed("get", exc)
            return None
        if raw is None or raw == self.TOMBSTONE:
            return None
        try:
            return _user_from_json(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("dropping unreadable cache entry", extra={"user_id": user_id})
            return None

    async def put(self, user: User) -> None:
        """Cache ``user`` for the TTL; silently skipped when Redis is unavailable."""
        if not self._available():
            return
        try:
            await self._flush_pending()
            # NX: never overwrite a tombstone (or a fresher fill).
            await self._redis.set(
                self.key(user.user_id), _user_to_json(user), ex=self._ttl, nx=True
            )
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed("set", exc)

    async def invalidate(self, user_id: str) -> None:
        """Forget ``user_id``'s profile (tombstone); remembered for later if
        Redis is down. Call after the write committed."""
        key = self.key(user_id)
        self._pending.add(key)
        if not self._available():
            return
        try:
            await self._flush_pending()
        except (TimeoutError, RedisError, OSError) as exc:
            self._failed("delete", exc)


def redis_client(url: str, *, timeout_seconds: float = 0.25) -> aioredis.Redis:
    """A Redis client with short timeouts: a slow or dead cache must cost
    reads milliseconds, not the call's whole deadline."""
    return tracing.instrument_redis(aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # redis-py retries 3 times with exponential back-off by default;
        # for a cache a miss is cheaper than waiting.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    ))
