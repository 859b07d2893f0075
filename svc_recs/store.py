"""The Cassandra tables of the recommendations: every list is stored under a
model version, and one pointer row names the version readers use.

The training job (pipelines/recs.py) writes a whole version, then flips the
pointer (one single-row write, atomic), then drops older versions. The
service reads the pointer once per request and every list of that request
under the version it names, so one answer never mixes two models. A page
token carries the version, so later pages stay on it too.

Tables (keyspace ``<ECOM_KEYSPACE_PREFIX>recs``; the schema lives here once
and both sides create it with :func:`create_schema`):

- ``model_pointer``: (name = ``current``) -> model_version, generate_time.
- ``models``: (model_version) -> when trained and published, counts,
  ``superseded_at`` once another version replaced it.
- ``user_recs``: ((model_version, user_id), rank) -> item_id, score.
- ``category_recs``: ((model_version, category), rank) -> item_id, score;
  category ``*`` is overall popularity.
- ``similar_items``: ((model_version, item_id), rank) -> similar_item_id, score.
- ``user_bought``: ((model_version, user_id), item_id): items the user
  bought, as of the training run (filtered out of every list the user sees).
- ``model_keys``: ((model_version, kind), key): the partitions a version
  wrote, so dropping it deletes exactly those.
- ``train_lease``: (name) -> owner, with a TTL: at most one training runs
  at a time across processes (lightweight transaction).
- ``refreshes``: ((caller, request_id)) -> the answer of a refresh, for a
  day, so a retry with the same key returns it instead of training again.
  An empty answer is a claim: one copy of the service is training for that
  key (lightweight transaction), and the others wait for its answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mesh import cassandra as cassandra_sessions

KEYSPACE = "recs"
POINTER = "current"
ALL = "*"
LEASE = "train"

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS model_pointer (
        name text PRIMARY KEY, model_version text, generate_time timestamp)""",
    """CREATE TABLE IF NOT EXISTS models (
        model_version text PRIMARY KEY, generate_time timestamp, published_at timestamp,
        superseded_at timestamp, users bigint, items bigint, interactions bigint,
        user_lists bigint, category_lists bigint, similar_lists bigint, params text)""",
    """CREATE TABLE IF NOT EXISTS user_recs (
        model_version text, user_id text, rank int, item_id text, score float,
        PRIMARY KEY ((model_version, user_id), rank))""",
    """CREATE TABLE IF NOT EXISTS category_recs (
        model_version text, category text, rank int, item_id text, score float,
        PRIMARY KEY ((model_version, category), rank))""",
    """CREATE TABLE IF NOT EXISTS similar_items (
        model_version text, item_id text, rank int, similar_item_id text, score float,
        PRIMARY KEY ((model_version, item_id), rank))""",
    """CREATE TABLE IF NOT EXISTS user_bought (
        model_version text, user_id text, item_id text,
        PRIMARY KEY ((model_version, user_id), item_id))""",
    """CREATE TABLE IF NOT EXISTS model_keys (
        model_version text, kind text, key text,
        PRIMARY KEY ((model_version, kind), key))""",
    """CREATE TABLE IF NOT EXISTS train_lease (
        name text PRIMARY KEY, owner text, since timestamp)""",
    """CREATE TABLE IF NOT EXISTS refreshes (
        caller text, request_id text, result text,
        PRIMARY KEY ((caller, request_id)))""",
]
# A refresh's answer is kept this long for retries with its request id.
REFRESH_TTL_SECONDS = 86_400

# kind in model_keys -> (table, partition key column)
KINDS: dict[str, tuple[str, str]] = {
    "user": ("user_recs", "user_id"),
    "category": ("category_recs", "category"),
    "item": ("similar_items", "item_id"),
    "bought": ("user_bought", "user_id"),
}


def connect(contact_points: list[tuple[str, int]], keyspace: str, *,
            request_timeout: float = 20.0, connect_timeout: float = 5.0) -> Any:
    """A cassandra-driver session on ``keyspace`` (created when missing)."""
    return cassandra_sessions.connect(contact_points, keyspace, request_timeout=request_timeout,
                                      connect_timeout=connect_timeout)


def create_schema(session: Any) -> None:
    for stmt in SCHEMA:
        session.execute(stmt, timeout=cassandra_sessions.SCHEMA_TIMEOUT)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class Ranked:
    """One stored list entry."""

    item_id: str
    score: float


@dataclass(frozen=True)
class Pointer:
    """The version readers use and when it was trained."""

    model_version: str
    generate_time: datetime


@dataclass(frozen=True)
class ModelCounts:
    users: int = 0
    items: int = 0
    interactions: int = 0
    user_lists: int = 0
    category_lists: int = 0
    similar_lists: int = 0


# ---------------------------------------------------------------------------
# reading (the service)
# ---------------------------------------------------------------------------


class RecsStore:
    """Reads for svc_recs (blocking driver calls run in a thread)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def _rows(self, query: str, args: tuple[Any, ...]) -> list[Any]:
        return list(await asyncio.to_thread(self.session.execute, query, args))

    async def ping(self) -> None:
        await asyncio.to_thread(self.session.execute, "SELECT release_version FROM system.local")

    async def pointer(self) -> Pointer | None:
        rows = await self._rows(
            "SELECT model_version, generate_time FROM model_pointer WHERE name = %s", (POINTER,))
        if not rows or not rows[0].model_version:
            return None
        return Pointer(rows[0].model_version, _utc(rows[0].generate_time)  # type: ignore[arg-type]
                       or datetime.now(UTC))

    async def generate_time(self, version: str) -> datetime | None:
        """When ``version`` was trained, or None when it is gone."""
        rows = await self._rows(
            "SELECT generate_time FROM models WHERE model_version = %s", (version,))
        return _utc(rows[0].generate_time) if rows else None

    async def user_list(self, version: str, user_id: str) -> list[Ranked]:
        rows = await self._rows(
            "SELECT item_id, score FROM user_recs WHERE model_version = %s AND user_id = %s",
            (version, user_id))
        return [Ranked(r.item_id, float(r.score)) for r in rows]

    async def category_list(self, version: str, category: str) -> list[Ranked]:
        rows = await self._rows(
            "SELECT item_id, score FROM category_recs WHERE model_version = %s"
            " AND category = %s", (version, category))
        return [Ranked(r.item_id, float(r.score)) for r in rows]

    async def similar_list(self, version: str, item_id: str) -> list[Ranked]:
        rows = await self._rows(
            "SELECT similar_item_id, score FROM similar_items WHERE model_version = %s"
            " AND item_id = %s", (version, item_id))
        return [Ranked(r.similar_item_id, float(r.score)) for r in rows]

    async def claim_refresh(self, caller: str, request_id: str,
                            ttl_seconds: int) -> tuple[bool, str]:
        """Claim a keyed refresh for this copy (a lightweight transaction):
        (True, "") when it is ours to train; else (False, the stored answer),
        which is "" while another copy trains. The claim expires after
        ``ttl_seconds`` if its holder dies."""
        [row] = await self._rows(
            "INSERT INTO refreshes (caller, request_id, result) VALUES (%s, %s, '')"
            f" IF NOT EXISTS USING TTL {int(ttl_seconds)}", (caller, request_id))
        if row[0]:
            return True, ""
        return False, str(row._asdict().get("result") or "")

    async def save_refresh(self, caller: str, request_id: str, result: str) -> None:
        """The claimed refresh's answer, kept for retries (a claim that
        expired meanwhile is not revived)."""
        await self._rows(
            f"UPDATE refreshes USING TTL {REFRESH_TTL_SECONDS} SET result = %s"
            " WHERE caller = %s AND request_id = %s IF result = ''",
            (result, caller, request_id))

    async def release_refresh(self, caller: str, request_id: str) -> None:
        """Drop an unanswered claim (its training failed): a retry trains."""
        await self._rows(
            "DELETE FROM refreshes WHERE caller = %s AND request_id = %s IF result = ''",
            (caller, request_id))

    async def bought(self, version: str, user_id: str) -> frozenset[str]:
        rows = await self._rows(
            "SELECT item_id FROM user_bought WHERE model_version = %s AND user_id = %s",
            (version, user_id))
        return frozenset(r.item_id for r in rows)


# ---------------------------------------------------------------------------
# writing (the training job)
# ---------------------------------------------------------------------------


@dataclass
class ModelLists:
    """Everything one model version publishes."""

    user_recs: dict[str, list[Ranked]]
    category_recs: dict[str, list[Ranked]]
    similar_items: dict[str, list[Ranked]]
    bought: dict[str, list[str]]
    counts: ModelCounts
    params: str = ""


def _concurrent(session: Any, stmt: Any, rows: Iterable[Sequence[Any]]) -> None:
    from cassandra.concurrent import execute_concurrent_with_args

    execute_concurrent_with_args(session, stmt, list(rows), concurrency=64,
                                 raise_on_first_error=True)


def publish(session: Any, version: str, generate_time: datetime, lists: ModelLists) -> int:
    """Write every list of ``version``, flip the pointer to it, then drop the
    versions it makes obsolete. Returns how many versions were dropped.

    Readers that read the pointer just before the flip may still be reading
    the version it replaced, so that one is kept (marked superseded) until
    the next publish; every older one is dropped here."""
    now = datetime.now(UTC)
    put_user = session.prepare(
        "INSERT INTO user_recs (model_version, user_id, rank, item_id, score) VALUES (?,?,?,?,?)")
    put_cat = session.prepare(
        "INSERT INTO category_recs (model_version, category, rank, item_id, score)"
        " VALUES (?,?,?,?,?)")
    put_sim = session.prepare(
        "INSERT INTO similar_items (model_version, item_id, rank, similar_item_id, score)"
        " VALUES (?,?,?,?,?)")
    put_bought = session.prepare(
        "INSERT INTO user_bought (model_version, user_id, item_id) VALUES (?,?,?)")
    put_key = session.prepare(
        "INSERT INTO model_keys (model_version, kind, key) VALUES (?,?,?)")
    # Keys first: a job killed half-way leaves a version the next publish
    # can still find and drop.
    c = lists.counts
    session.execute(
        "INSERT INTO models (model_version, generate_time, users, items, interactions,"
        " user_lists, category_lists, similar_lists, params) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (version, generate_time, c.users, c.items, c.interactions, c.user_lists,
         c.category_lists, c.similar_lists, lists.params))
    _concurrent(session, put_key, [(version, "user", u) for u in lists.user_recs]
                + [(version, "category", k) for k in lists.category_recs]
                + [(version, "item", i) for i in lists.similar_items]
                + [(version, "bought", u) for u in lists.bought])
    _concurrent(session, put_user, [(version, u, n, r.item_id, r.score)
                                    for u, recs in lists.user_recs.items()
                                    for n, r in enumerate(recs)])
    _concurrent(session, put_cat, [(version, k, n, r.item_id, r.score)
                                   for k, recs in lists.category_recs.items()
                                   for n, r in enumerate(recs)])
    _concurrent(session, put_sim, [(version, i, n, r.item_id, r.score)
                                   for i, recs in lists.similar_items.items()
                                   for n, r in enumerate(recs)])
    _concurrent(session, put_bought, [(version, u, i) for u, items in lists.bought.items()
                                      for i in items])
    previous = session.execute(
        "SELECT model_version FROM model_pointer WHERE name = %s", (POINTER,)).one()
    # The flip: one row, so a reader sees the old version or the new one.
    session.execute(
        "INSERT INTO model_pointer (name, model_version, generate_time) VALUES (%s, %s, %s)",
        (POINTER, version, generate_time))
    session.execute("UPDATE models SET published_at = %s WHERE model_version = %s",
                    (now, version))
    keep = {version}
    if previous is not None and previous.model_version and previous.model_version != version:
        keep.add(previous.model_version)
        session.execute("UPDATE models SET superseded_at = %s WHERE model_version = %s",
                        (now, previous.model_version))
    dropped = 0
    for row in list(session.execute("SELECT model_version FROM models")):
        if row.model_version not in keep:
            drop_version(session, row.model_version)
            dropped += 1
    return dropped


def drop_version(session: Any, version: str) -> None:
    """Delete every partition ``version`` wrote, then its bookkeeping."""
    for kind, (table, column) in KINDS.items():
        delete = session.prepare(
            f"DELETE FROM {table} WHERE model_version = ? AND {column} = ?")
        keys = [r.key for r in session.execute(
            "SELECT key FROM model_keys WHERE model_version = %s AND kind = %s", (version, kind))]
        _concurrent(session, delete, [(version, k) for k in keys])
        session.execute("DELETE FROM model_keys WHERE model_version = %s AND kind = %s",
                        (version, kind))
    session.execute("DELETE FROM models WHERE model_version = %s", (version,))


def new_version(at: datetime) -> str:
    """``als-<UTC time>-<4 hex>``: sortable by time, unique across processes."""
    return f"als-{at.astimezone(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"


def try_lease(session: Any, owner: str, ttl_seconds: int) -> bool:
    """Take the training lease (a lightweight transaction; the TTL frees it
    when its holder dies)."""
    row = session.execute(
        f"INSERT INTO train_lease (name, owner, since) VALUES (%s, %s, %s) IF NOT EXISTS"
        f" USING TTL {int(ttl_seconds)}", (LEASE, owner, datetime.now(UTC))).one()
    return bool(row[0])


def release_lease(session: Any, owner: str) -> None:
    session.execute("DELETE FROM train_lease WHERE name = %s IF owner = %s", (LEASE, owner))


def model_counts(session: Any, version: str) -> ModelCounts | None:
    row = session.execute("SELECT * FROM models WHERE model_version = %s", (version,)).one()
    if row is None:
        return None
    return ModelCounts(row.users or 0, row.items or 0, row.interactions or 0,
                       row.user_lists or 0, row.category_lists or 0, row.similar_lists or 0)
