"""Leases: how background work stays safe when a service runs as several
processes.

Three kinds, one per store:

* :func:`mariadb_lock` - a MariaDB named lock (``GET_LOCK(name, 0)``) held
  on one connection for the duration of a ``async with``. The server drops
  it when the connection closes, so a process killed with ``kill -9`` frees
  it at once (its TCP connection dies with it). Used by loops whose copies
  must not overlap at all (the order sweeper and reconciler); rows they
  change are still guarded by conditional updates, the lock only avoids
  doing the same work twice.
* :class:`DocumentLease` - a lease document on the MongoDB-wire server
  (FerretDB has no sessions or locks a client can hold): ``{_id: name,
  owner, until}``, taken when free or expired and renewed by its holder with
  compare-and-set updates. FerretDB's per-collection lock (infra's fourth
  patch) makes each of those updates atomic. A dead holder's lease expires
  after ``ttl`` seconds; clocks of the processes are assumed to agree to
  well within ``ttl`` (one machine here; NTP on a cluster).
* :class:`IndexLease` - the same lease as a document in an Elasticsearch
  index (svc_search has no other store), compare-and-set on ``_seq_no``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MAX_LOCK_NAME = 64  # MariaDB's limit for GET_LOCK names
log = logging.getLogger(__name__)


@asynccontextmanager
async def mariadb_lock(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    """Try to take the named lock without waiting; yields whether this
    process holds it for the body. The name is scoped to the engine's
    database, so test runs with their own databases never contend."""
    async with engine.connect() as conn:
        database = (await conn.execute(text("SELECT DATABASE()"))).scalar()
        lock = f"ecom.{database}.{name}"[:MAX_LOCK_NAME]
        got = (await conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": lock})).scalar()
        await conn.commit()
        try:
            yield got == 1
        finally:
            if got == 1:
                await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock})
                await conn.commit()


async def exclusively_every(engine: AsyncEngine, name: str, interval: float,
                            work: Callable[[], Awaitable[object]], *,
                            wait_first: bool = False) -> None:
    """Run ``work()`` every ``interval`` seconds, for ever, in only one of the
    processes sharing ``engine``'s database at a time (``mariadb_lock``): a
    background task that must not run twice at once (the order sweeper,
    the periodic reconciler). A round whose lock another process holds is
    skipped; a failing round is logged and retried next time."""
    while True:
        if wait_first:
            await asyncio.sleep(interval)
        try:
            async with mariadb_lock(engine, name) as held:
                if held:
                    await work()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - MariaDB or a peer down: next round
            log.exception("%s: round failed", name)
        if not wait_first:
            await asyncio.sleep(interval)


@asynccontextmanager
async def schema_lock(engine: AsyncEngine, *, timeout: int = 120) -> AsyncIterator[None]:
    """Wait for the database's schema lock and hold it for the body: replicas
    starting together create tables one after the other (``create_all``
    checks, then creates: two at once fail with "table already exists")."""
    async with engine.connect() as conn:
        database = (await conn.execute(text("SELECT DATABASE()"))).scalar()
        lock = f"ecom.{database}.schema"[:MAX_LOCK_NAME]
        got = (await conn.execute(text("SELECT GET_LOCK(:n, :t)"),
                                  {"n": lock, "t": timeout})).scalar()
        await conn.commit()
        if got != 1:
            raise RuntimeError(f"could not take the schema lock {lock!r} within {timeout}s")
        try:
            yield
        finally:
            await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": lock})
            await conn.commit()


class DocumentLease:
    """A named lease in a MongoDB collection; one holder at a time."""

    def __init__(self, collection: Any, name: str, *, ttl: float = 10.0,
                 owner: str | None = None) -> None:
        """``collection`` is a pymongo async collection (e.g. ``db["leases"]``)."""
        self.collection = collection
        self.name = name
        self.ttl = ttl
        self.owner = owner or uuid.uuid4().hex

    async def acquire(self) -> bool:
        """Take or renew the lease; True while this owner holds it."""
        now = time.time()
        res = await self.collection.update_one(
            {"_id": self.name, "$or": [{"owner": self.owner}, {"until": {"$lt": now}}]},
            {"$set": {"owner": self.owner, "until": now + self.ttl}})
        if res.matched_count == 1:
            return True
        from pymongo.errors import DuplicateKeyError

        try:
            await self.collection.insert_one(
                {"_id": self.name, "owner": self.owner, "until": now + self.ttl})
        except DuplicateKeyError:
            return False
        return True

    async def release(self) -> None:
        """Give the lease up (only if still ours), so another process takes
        over without waiting for it to expire."""
        await self.collection.update_one({"_id": self.name, "owner": self.owner},
                                         {"$set": {"until": 0.0}})

    async def holder(self) -> str | None:
        """The current holder, or None when free or expired."""
        doc = await self.collection.find_one({"_id": self.name})
        if doc is None or doc.get("until", 0) < time.time():
            return None
        return str(doc["owner"])


class IndexLease:
    """A named lease as a document in an Elasticsearch index, for services
    whose only store is Elasticsearch: ``{owner, until}``, created with
    ``op_type=create`` when absent, and taken over when expired (or renewed
    by its holder) with a compare-and-set on the document's ``_seq_no``, so
    one copy wins. Same use as :class:`DocumentLease`."""

    def __init__(self, client: Any, index: str, name: str, *, ttl: float = 120.0,
                 owner: str | None = None) -> None:
        """``client`` is an ``AsyncElasticsearch``."""
        self.client = client
        self.index = index
        self.name = name
        self.ttl = ttl
        self.owner = owner or uuid.uuid4().hex

    async def _current(self) -> dict[str, Any] | None:
        from elasticsearch import NotFoundError

        try:
            return dict((await self.client.get(index=self.index, id=self.name)).body)
        except NotFoundError:
            return None

    async def acquire(self) -> bool:
        """Take or renew the lease; True while this owner holds it."""
        from elasticsearch import ConflictError

        body = {"owner": self.owner, "until": time.time() + self.ttl}
        try:
            await self.client.create(index=self.index, id=self.name, document=body,
                                     refresh=True)
            return True
        except ConflictError:
            pass
        current = await self._current()
        if current is None:
            return False  # released just now: the next try takes it
        held = current["_source"]
        if held.get("owner") != self.owner and held.get("until", 0) > time.time():
            return False
        try:
            await self.client.index(index=self.index, id=self.name, document=body,
                                    refresh=True, if_seq_no=current["_seq_no"],
                                    if_primary_term=current["_primary_term"])
        except ConflictError:
            return False
        return True

    async def release(self) -> None:
        """Give the lease up (only if still ours)."""
        from elasticsearch import ConflictError, NotFoundError

        current = await self._current()
        if current is None or current["_source"].get("owner") != self.owner:
            return
        try:
            await self.client.delete(index=self.index, id=self.name, refresh=True,
                                     if_seq_no=current["_seq_no"],
                                     if_primary_term=current["_primary_term"])
        except (ConflictError, NotFoundError):
            pass  # taken over or gone meanwhile: not ours any more
