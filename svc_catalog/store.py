"""Persistence on the MongoDB-wire server (FerretDB v1) through pymongo's
async client.

FerretDB v1 has no multi-document transactions, so every change that others
must hear about is one single-document update that carries its own outbox:
the event goes into the item's ``pending`` map (keyed by event id) in the
same update that changes the item, guarded by ``{_id, version: expected}``.
A relay publishes pending events and ``$unset``s exactly the published keys
(``$pull`` with a condition does not work on FerretDB v1; ``$unset`` of a
map key does).

FerretDB v1 answers a query from an index only for ``_id`` (a value or an
``$in``, and only with the patched build ``infra`` makes); any other filter
reads the whole collection, several seconds at 100,000 items. So every path
here looks documents up by ``_id``: items by id, a category's items through
``category_index``, an item by sku or by create request id through
``item_keys``. The relay finds pending events through ``pending_items``, a
small collection of item ids hinted by writers before and after the item
update that adds an event (see ``_hint`` and ``mark_published`` for why
that is safe with several catalog processes).

Several catalog processes share one database. Single-document updates are
atomic on the patched FerretDB (its fourth patch), so the compare-and-set on
``version`` is what serialises writers of one item; the store holds no lock
of its own. One process at a time relays events (``relay_lease``).

Collections:

* ``items``: one document per item; unique ``sku_key`` (supplier/sku, or
  the id for items without sku) and ``create_request_id`` (CreateItem
  retries). ``has_pending`` marks documents with events waiting; the relay
  reads it once at start to rebuild ``pending_items`` after an upgrade.
* ``pending_items``: ids of items whose ``pending`` map may hold events.
* ``category_index``: per category, 256 bucket documents
  (``<category>:<bucket>``, the bucket being the first byte of the item id's
  SHA-1) each holding ``ids: {item_id: true}``. A category lists in the order
  (bucket, item id): stable, and each page reads a few buckets by ``_id``
  plus its items by ``$in``. An item joins its category's bucket before the
  item is written, so the index never misses an item; an entry left behind
  by a category change is skipped on read (the item says its category).
  ``~built`` marks that items written before the index existed are in it.
* ``item_keys``: ``sku:<sku_key>`` and ``req:<create request id>`` -> the
  item id, written after the item; lookups verify the item and fall back to
  reading the collection only when a key is missing (a crash between the
  two writes).
* ``feeds``: one document per supplier feed (counts, validation errors).
* ``feed_chunks``: per chunk of up to 1,000 lines, whether its rows were
  published and the consumer's record of which lines were applied (its
  dedupe record and the source of the feed's counts). The feed document
  lists its chunk ids, so chunks are always read by id.
* ``feed_rows``: a chunk's valid rows as serialized events waiting to be
  published (the feed's outbox), removed once Kafka acknowledged them. Kept
  apart from ``feed_chunks`` so reading a feed's progress never decodes them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pymongo
from ecom.events.v1 import events_pb2
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mesh import tracing
from mesh.lease import DocumentLease
from svc_catalog import domain

MAX_REMEMBERED_REQUESTS = 20
CHUNK_LINES = 1_000
MAX_ROW_ERRORS = 1_000


def connect(url: str) -> AsyncMongoClient[dict[str, Any]]:
    """A client returning timezone-aware datetimes (its commands traced
    when tracing is on)."""
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5_000,
                            event_listeners=tracing.mongo_listeners())


def now() -> datetime:
    """The current time at BSON's millisecond precision, so what a write
    returns equals what a later read returns."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class PendingEvent:
    """An event waiting in a document for the relay."""

    event_id: str
    seq: int
    topic: str
    key: str
    event_type: str
    payload: bytes

    def as_doc(self) -> dict[str, Any]:
        return {"seq": self.seq, "topic": self.topic, "key": self.key,
                "type": self.event_type, "payload": self.payload}


def pending_event(env: events_pb2.EventEnvelope, topic: str) -> PendingEvent:
    """Wrap an envelope for the item's pending map."""
    return PendingEvent(env.event_id, env.entity_version, topic, env.entity_key,
                        env.event_type, env.SerializeToString())


class VersionMismatch(Exception):
    """The item changed since it was read (or does not exist)."""


class ItemStore:
    """Items, feeds and feed chunks in one database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.items = db["items"]
        self.pending_items = db["pending_items"]
        self.feeds = db["feeds"]
        self.chunks = db["feed_chunks"]
        self.chunk_rows = db["feed_rows"]
        self.leases = db["leases"]
        self.category_index = db["category_index"]
        self.item_keys = db["item_keys"]

    async def create_indexes(self) -> None:
        """Idempotent; run at start-up."""
        await self.items.create_index([("sku_key", pymongo.ASCENDING)], unique=True)
        await self.items.create_index([("create_request_id", pymongo.ASCENDING)], unique=True)

    async def build_lookup_indexes(self) -> int:
        """Put items written before ``category_index`` and ``item_keys``
        existed into them: one read of the whole collection, once per
        database (two processes doing it at once write the same entries).
        Returns how many items it indexed (0 when already built)."""
        if await self.category_index.find_one({"_id": BUILT_MARK}) is not None:
            return 0
        docs = [d async for d in self.items.find({}, {"category": 1, "sku_key": 1,
                                                        "create_request_id": 1})]
        entries = [(d["_id"], d["category"]) for d in docs]
        # One update per bucket document, a few thousand keys at a time.
        for start in range(0, len(entries), 20_000):
            await self._add_to_categories(entries[start:start + 20_000])
        for start in range(0, len(docs), 5_000):
            await self._insert_keys(docs[start:start + 5_000])
        await self.category_index.update_one({"_id": BUILT_MARK}, {"$set": {"at": now()}},
                                              upsert=True)
        return len(docs)

    async def _add_to_categories(self, entries: Sequence[tuple[str, str]]) -> None:
        """Add (item id, category) entries, one upsert per bucket touched."""
        by_bucket: dict[str, dict[str, bool]] = {}
        for item_id, category in entries:
            by_bucket.setdefault(bucket_key(category, item_id), {})[f"ids.{item_id}"] = True
        ops = [pymongo.UpdateOne({"_id": key}, {"$set": fields}, upsert=True)
               for key, fields in sorted(by_bucket.items())]
        if ops:
            await self.category_index.bulk_write(ops, ordered=False)

    async def _remove_from_category(self, item_id: str, category: str) -> None:
        await self.category_index.update_one({"_id": bucket_key(category, item_id)},
                                             {"$unset": {f"ids.{item_id}": ""}})

    async def _write_keys(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """``item_keys`` entries of stored item documents (overwriting)."""
        ops = [pymongo.UpdateOne({"_id": key}, {"$set": {"item_id": item_id}}, upsert=True)
               for key, item_id in _keys_of(docs)]
        if ops:
            await self.item_keys.bulk_write(ops, ordered=False)

    async def _insert_keys(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """``item_keys`` entries of new items: one bulk insert (fast); a key
        that exists already (a stale one) is overwritten one by one."""
        keys = list(_keys_of(docs))
        if not keys:
            return
        try:
            await self.item_keys.insert_many([{"_id": k, "item_id": i} for k, i in keys],
                                             ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            for e in errors:
                key, item_id = keys[int(e["index"])]
                await self.item_keys.update_one({"_id": key}, {"$set": {"item_id": item_id}},
                                                upsert=True)

    async def ping(self) -> None:
        """Health probe."""
        await self.db.command("ping")

    # -- items ------------------------------------------------------------
    async def insert_item(self, item: domain.Item, *, create_request_id: str,
                          event: PendingEvent | None) -> None:
        """Insert a new item with its creation event; DuplicateKeyError when
        the id, (supplier, sku) or request id is taken."""
        doc = item_to_doc(item)
        doc["create_request_id"] = create_request_id
        doc["requests"] = []
        doc["pending"] = {event.event_id: event.as_doc()} if event else {}
        doc["has_pending"] = event is not None
        if event is not None:
            await self._hint(item.item_id)
        await self._add_to_categories([(item.item_id, item.fields.category)])
        await self.items.insert_one(doc)
        await self._write_keys([doc])
        if event is not None:
            await self._hint(item.item_id)  # see _hint: once before, once after

    async def insert_items(self, items: Sequence[domain.Item],
                           create_request_ids: Sequence[str]) -> set[int]:
        """Bulk insert without pending events: the caller publishes the
        items' events itself (demo loader, feed applier). Returns the
        positions that were not inserted (id, sku or request id taken)."""
        docs = []
        for item, request_id in zip(items, create_request_ids, strict=True):
            doc = item_to_doc(item)
            doc["create_request_id"] = request_id
            doc["requests"] = []
            doc["pending"] = {}
            doc["has_pending"] = False
            docs.append(doc)
        if not docs:
            return set()
        await self._add_to_categories([(d["_id"], d["category"]) for d in docs])
        taken: set[int] = set()
        try:
            await self.items.insert_many(docs, ordered=False)
        except pymongo.errors.BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            taken = {int(e["index"]) for e in exc.details["writeErrors"]}
        await self._insert_keys(d for n, d in enumerate(docs) if n not in taken)
        return taken

    async def replace_item(self, item: domain.Item, *, expected_version: int,
                           request_id: str, event: PendingEvent | None,
                           remembered: Sequence[Mapping[str, Any]] = (),
                           old_category: str = "") -> None:
        """Write ``item`` over the stored one if it is still at
        ``expected_version``; the event joins the pending map atomically.
        Raises VersionMismatch otherwise. ``old_category``, when the item
        moves, is the category whose index entry goes once it moved."""
        moved = bool(old_category) and old_category != item.fields.category
        if moved:
            await self._add_to_categories([(item.item_id, item.fields.category)])
        doc = item_to_doc(item)
        del doc["_id"]
        # FerretDB v1 rejects nested arrays, hence {id, version} documents.
        requests = [dict(r) for r in remembered]
        if request_id:
            requests = [*requests, {"id": request_id, "version": item.version}][
                -MAX_REMEMBERED_REQUESTS:]
        doc["requests"] = requests
        if event is not None:
            doc[f"pending.{event.event_id}"] = event.as_doc()
            doc["has_pending"] = True
            await self._hint(item.item_id)
        res = await self.items.update_one(
            {"_id": item.item_id, "version": expected_version}, {"$set": doc})
        if res.matched_count != 1:
            raise VersionMismatch(item.item_id)
        if event is not None:
            await self._hint(item.item_id)  # see _hint: once before, once after
        if moved:
            await self._unindex_if_moved(item.item_id, old_category)

    async def write_feed_changes(self, changes: Sequence[tuple[domain.Item, bool]],
                                 old_categories: Mapping[str, str] | None = None) -> set[int]:
        """Store what feed rows did to existing items, in one bulk write: an
        item changed by its row (``True``) replaces the stored one if that is
        still at ``version - 1``; an unchanged one (``False``) only records
        the row's stamp if still at ``version``. No pending events: the feed
        applier publishes these itself. Returns the positions that did not
        apply (the item moved on since it was read)."""
        if not changes:
            return set()
        # A feed row may move an item to another category: index it there
        # first (an entry in the old one is skipped on read). Items whose
        # category is known not to change (``old_categories``) are skipped.
        await self._add_to_categories([
            (item.item_id, item.fields.category) for item, changed in changes
            if changed and (old_categories is None
                            or old_categories.get(item.item_id) != item.fields.category)])
        ops = []
        for item, changed in changes:
            if changed:
                doc = item_to_doc(item)
                del doc["_id"]
                ops.append(pymongo.UpdateOne(
                    {"_id": item.item_id, "version": item.version - 1}, {"$set": doc}))
            else:
                ops.append(pymongo.UpdateOne({"_id": item.item_id, "version": item.version},
                                             {"$set": {"feed_stamp": item.feed_stamp}}))
        res = await self.items.bulk_write(ops, ordered=False)
        if res.matched_count == len(ops):
            return set()
        # Which ones missed: those not stored as this write left them (each
        # write carries a new feed stamp, a changed one a new update time).
        stored = await self.get_many_docs([item.item_id for item, _ in changes])
        return {n for n, (item, _) in enumerate(changes)
                if (got := stored.get(item.item_id)) is None
                or (got["version"], got.get("feed_stamp"), got["update_time"])
                != (item.version, item.feed_stamp, item.update_time)}

    async def get_doc(self, item_id: str) -> dict[str, Any] | None:
        return await self.items.find_one({"_id": item_id}, {"pending": 0})

    async def get_by_sku_key(self, sku_key: str) -> dict[str, Any] | None:
        return await self._by_key(f"sku:{sku_key}", "sku_key", sku_key)

    async def get_by_create_request(self, request_id: str) -> dict[str, Any] | None:
        return await self._by_key(f"req:{request_id}", "create_request_id", request_id)

    async def _by_key(self, key: str, field_name: str, value: str) -> dict[str, Any] | None:
        """The item whose ``field_name`` is ``value``, through ``item_keys``;
        reads the collection only when the key is missing or stale (a crash
        between an item's insert and its key)."""
        entry = await self.item_keys.find_one({"_id": key})
        if entry is not None:
            doc = await self.get_doc(entry["item_id"])
            if doc is not None and doc.get(field_name) == value:
                return doc
        doc = await self.items.find_one({field_name: value}, {"pending": 0})
        if doc is not None:
            await self._write_keys([doc])  # repaired for next time
        return doc

    async def _unindex_if_moved(self, item_id: str, old_category: str) -> None:
        """Drop the old category's entry, unless the item moved back
        meanwhile (then its entry is re-added)."""
        await self._remove_from_category(item_id, old_category)
        doc = await self.items.find_one({"_id": item_id}, {"category": 1})
        if doc is not None and doc.get("category") == old_category:
            await self._add_to_categories([(item_id, old_category)])

    async def get_many_docs(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Documents by id (missing ids absent), in one ``$in`` query per
        1,000 ids: the patched FerretDB reads those from the ``_id`` index
        (about 50 ms for 500 ids at 100,000 items)."""
        ids = list(dict.fromkeys(item_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 1000):
            async for doc in self.items.find({"_id": {"$in": ids[start:start + 1000]}},
                                             {"pending": 0}):
                found[doc["_id"]] = doc
        return found

    async def get_many(self, item_ids: Sequence[str]) -> dict[str, domain.Item]:
        """Items by id (missing ids absent)."""
        return {i: item_from_doc(d) for i, d in (await self.get_many_docs(item_ids)).items()}

    async def list_category(self, category: str, *, after: str, limit: int,
                            show_deleted: bool) -> list[domain.Item]:
        """Up to ``limit`` items of one category in index order (bucket, id),
        starting after the item ``after``; reads buckets and items by ``_id``."""
        page: list[domain.Item] = []
        first = bucket_of(after) if after else 0
        for start in range(first, BUCKETS, BUCKETS_PER_READ):
            keys = [bucket_key(category, "", b) for b in range(start, min(start + BUCKETS_PER_READ,
                                                                            BUCKETS))]
            found = {d["_id"]: d async for d in self.category_index.find({"_id": {"$in": keys}})}
            candidates: list[str] = []
            for key in keys:
                ids = sorted((found.get(key) or {}).get("ids") or {})
                if after and key == bucket_key(category, after):
                    ids = [i for i in ids if i > after]
                candidates += ids
            while candidates and len(page) < limit:
                # Ask for a few more than missing: some may be deleted or moved.
                want = max(limit - len(page), 20) + 10
                chunk, candidates = candidates[:want], candidates[want:]
                docs = await self.get_many_docs(chunk)
                for item_id in chunk:
                    doc = docs.get(item_id)
                    if doc is None or doc.get("category") != category:
                        continue  # never written, or moved to another category
                    if not show_deleted and doc["state"] != domain.ItemState.ACTIVE.value:
                        continue
                    page.append(item_from_doc(doc))
                    if len(page) == limit:
                        break
            if len(page) >= limit:
                break
        return page

    # -- the item outbox --------------------------------------------------
    async def _hint(self, item_id: str) -> None:
        """Point the relay at an item, with a fresh token.

        A writer hints before its item update (a crash after it leaves a
        hint, never an event without one) and again after it. The relay
        drops a hint only if its token is still the one it read before
        looking at the item (``mark_published``), so a hint renewed by a
        writer in between survives; with several catalog processes that is
        what keeps an event from being left without a hint."""
        await self.pending_items.update_one(
            {"_id": item_id}, {"$set": {"hinted_at": now(), "token": uuid.uuid4().hex}},
            upsert=True)

    async def rebuild_hints(self) -> int:
        """Hint every item still flagged ``has_pending`` (one read of the
        whole collection: run once at start). Returns how many."""
        ids = [d["_id"] async for d in self.items.find({"has_pending": True}, {"_id": 1})]
        for item_id in ids:
            await self._hint(item_id)
        return len(ids)

    async def docs_with_pending(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` hinted items with their ``pending`` maps; a hinted
        item that is gone comes back as ``{_id, pending: {}}`` so the relay
        drops its hint."""
        hints = {d["_id"]: d.get("token") or ""
                 async for d in self.pending_items.find({}, {"_id": 1, "token": 1}).limit(limit)}
        if not hints:
            return []
        found = {d["_id"]: d async for d in self.items.find(
            {"_id": {"$in": list(hints)}}, {"pending": 1, "version": 1})}
        return [{**found.get(i, {"_id": i, "pending": {}}), "hint_token": token}
                for i, token in hints.items()]

    async def mark_published(self, item_id: str, event_ids: Iterable[str],
                             hint_token: str) -> None:
        """Drop published events; when the map is then empty, clear the flag
        and the hint. Writers may add events meanwhile (from this process or
        another): the flag is cleared only at the version seen empty, and
        the hint only if no writer renewed it since ``hint_token`` was read
        (see ``_hint``)."""
        unset = {f"pending.{e}": "" for e in event_ids}
        if unset:
            await self.items.update_one({"_id": item_id}, {"$unset": unset})
        doc = await self.items.find_one({"_id": item_id}, {"pending": 1, "version": 1})
        if doc is not None and doc.get("pending"):
            return
        if doc is not None:
            res = await self.items.update_one({"_id": item_id, "version": doc["version"]},
                                              {"$set": {"has_pending": False}})
            if res.matched_count != 1:
                return  # a writer moved the item on: its event keeps the hint
        await self.pending_items.delete_one(
            {"_id": item_id, "token": hint_token} if hint_token
            else {"_id": item_id, "token": {"$exists": False}})  # a hint from before tokens

    def relay_lease(self, *, ttl: float = 10.0) -> DocumentLease:
        """The lease that lets one catalog process at a time relay events,
        which keeps each item's events in version order on Kafka."""
        return DocumentLease(self.leases, "event-relay", ttl=ttl)

    # -- feeds ------------------------------------------------------------
    async def get_feed(self, feed_id: str) -> dict[str, Any] | None:
        return await self.feeds.find_one({"_id": feed_id})

    async def save_chunks(self, chunks: Sequence[dict[str, Any]]) -> None:
        """Write a feed's chunks, each with its rows (replacing any left by a
        crashed attempt). A chunk dict carries its rows under ``events``."""
        for chunk in chunks:
            progress = {k: v for k, v in chunk.items() if k != "events"}
            await self.chunk_rows.replace_one(
                {"_id": chunk["_id"]}, {"_id": chunk["_id"], "events": chunk["events"]},
                upsert=True)
            await self.chunks.replace_one({"_id": chunk["_id"]}, progress, upsert=True)

    async def insert_feed(self, doc: dict[str, Any]) -> bool:
        """The feed document is the commit point of a submission: chunks
        without it are never published. False when it already exists."""
        try:
            await self.feeds.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def feeds_to_relay(self) -> list[dict[str, Any]]:
        """Feeds whose rows are not all published: ``{_id, chunk_ids}``."""
        cursor = self.feeds.find({"relay_pending": True}, {"_id": 1, "chunk_ids": 1})
        return [d async for d in cursor]

    async def unpublished_rows(self, chunk_id: str) -> list[bytes] | None:
        """A chunk's serialized rows, or None once they are published."""
        chunk = await self.chunks.find_one({"_id": chunk_id}, {"published": 1})
        if chunk is None or chunk.get("published"):
            return None
        rows = await self.chunk_rows.find_one({"_id": chunk_id})
        return [bytes(r) for r in rows["events"]] if rows is not None else None

    async def mark_chunk_published(self, chunk_id: str) -> None:
        await self.chunks.update_one({"_id": chunk_id}, {"$set": {"published": True}})
        await self.chunk_rows.delete_one({"_id": chunk_id})

    async def mark_feed_relayed(self, feed_id: str) -> None:
        await self.feeds.update_one({"_id": feed_id}, {"$set": {"relay_pending": False}})

    async def chunk_progress(self, chunk_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The consumer's counts and errors of each chunk."""
        if not chunk_ids:
            return []
        cursor = self.chunks.find({"_id": {"$in": list(chunk_ids)}},
                                  {"rows": 1, "applied": 1, "failed": 1, "errors": 1})
        return [d async for d in cursor]

    async def record_outcomes(self, chunk_id: str,
                              outcomes: Mapping[int, domain.FeedRowError | None]) -> bool:
        """Count each line of ``outcomes`` once (None = applied, an error =
        failed). Lines already recorded are skipped, so a redelivered batch
        counts nothing twice. Returns True when the chunk is now complete."""
        for _ in range(20):
            chunk = await self.chunks.find_one(
                {"_id": chunk_id}, {"done": 1, "version": 1, "rows": 1, "applied": 1,
                                    "failed": 1})
            if chunk is None:
                return False
            done = set(chunk.get("done", []))
            new = {ln: o for ln, o in outcomes.items() if ln not in done}
            if not new:
                return bool(chunk["applied"] + chunk["failed"] >= chunk["rows"])
            errors = [{"line": e.line_number, "sku": e.sku, "field": e.field,
                       "message": e.message} for e in new.values() if e is not None]
            applied = sum(1 for e in new.values() if e is None)
            update: dict[str, Any] = {
                "$set": {"done": sorted(done | set(new))},
                "$inc": {"version": 1, "applied": applied, "failed": len(errors)},
            }
            if errors:
                update["$push"] = {"errors": {"$each": errors}}
            res = await self.chunks.update_one(
                {"_id": chunk_id, "version": chunk["version"]}, update)
            if res.matched_count == 1:
                return bool(chunk["applied"] + applied + chunk["failed"] + len(errors)
                            >= chunk["rows"])
        raise RuntimeError(f"feed chunk {chunk_id} kept changing under the consumer")

    async def complete_feed(self, feed_id: str, when: datetime) -> None:
        await self.feeds.update_one(
            {"_id": feed_id, "state": "processing"},
            {"$set": {"state": "completed", "complete_time": when}})


# --------------------------------------------------------------------------
# Documents <-> domain
# --------------------------------------------------------------------------


def _keys_of(docs: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
    for d in docs:
        if d.get("sku_key"):
            yield f"sku:{d['sku_key']}", d["_id"]
        if d.get("create_request_id"):
            yield f"req:{d['create_request_id']}", d["_id"]


BUCKETS = 256
BUCKETS_PER_READ = 16
BUILT_MARK = "~built"


def bucket_of(item_id: str) -> int:
    """An item's bucket in its category's index: spreads any id scheme
    (uuids, supplier-derived, chosen by hand) evenly over the buckets."""
    return hashlib.sha1(item_id.encode()).digest()[0]


def bucket_key(category: str, item_id: str, bucket: int | None = None) -> str:
    """The ``category_index`` document of an item (or of a bucket number)."""
    return f"{category}:{bucket_of(item_id) if bucket is None else bucket:02x}"


def sku_key(supplier_id: str, sku: str, item_id: str) -> str:
    """Unique per (supplier, sku); items without sku are unique by id."""
    return f"sku:{supplier_id}/{sku}" if sku else f"id:{item_id}"


def item_to_doc(item: domain.Item) -> dict[str, Any]:
    f = item.fields
    return {
        "_id": item.item_id,
        "supplier_id": f.supplier_id,
        "sku": f.sku,
        "sku_key": sku_key(f.supplier_id, f.sku, item.item_id),
        "title": f.title,
        "description": f.description,
        "category": f.category,
        "brand": f.brand,
        "price_paise": f.price_paise,
        "list_price_paise": f.list_price_paise,
        "attributes": dict(f.attributes),
        "image_urls": list(f.image_urls),
        "state": item.state.value,
        "version": item.version,
        "create_time": item.create_time,
        "update_time": item.update_time,
        "delete_time": item.delete_time,
        "feed_stamp": item.feed_stamp,
    }


def item_from_doc(doc: Mapping[str, Any]) -> domain.Item:
    return domain.Item(
        item_id=doc["_id"],
        fields=domain.ItemFields(
            title=doc["title"],
            description=doc.get("description", ""),
            category=doc["category"],
            brand=doc.get("brand", ""),
            price_paise=int(doc["price_paise"]),
            list_price_paise=(None if doc.get("list_price_paise") is None
                              else int(doc["list_price_paise"])),
            attributes=dict(doc.get("attributes") or {}),
            image_urls=tuple(doc.get("image_urls") or ()),
            supplier_id=doc.get("supplier_id", ""),
            sku=doc.get("sku", ""),
        ),
        state=domain.ItemState(doc["state"]),
        version=int(doc["version"]),
        create_time=doc["create_time"],
        update_time=doc["update_time"],
        delete_time=doc.get("delete_time"),
        feed_stamp=doc.get("feed_stamp", ""),
    )


@dataclass
class FeedDoc:
    """What a feed document holds (see ``feed_doc``)."""

    feed_id: str
    supplier_id: str
    request_id: str
    format: str
    state: str
    total_rows: int
    valid_rows: int
    row_errors: list[domain.FeedRowError] = field(default_factory=list)
    create_time: datetime = field(default_factory=now)
    complete_time: datetime | None = None


def feed_doc(f: FeedDoc, *, relay_pending: bool,
             chunk_ids: Sequence[str] = ()) -> dict[str, Any]:
    errors = f.row_errors[:MAX_ROW_ERRORS]
    return {
        "_id": f.feed_id,
        "supplier_id": f.supplier_id,
        "request_id": f.request_id,
        "format": f.format,
        "state": f.state,
        "total_rows": f.total_rows,
        "valid_rows": f.valid_rows,
        "rejected_rows": f.total_rows - f.valid_rows,
        "row_errors": [{"line": e.line_number, "sku": e.sku, "field": e.field,
                        "message": e.message} for e in errors],
        "row_errors_truncated": len(f.row_errors) > MAX_ROW_ERRORS,
        "create_time": f.create_time,
        "complete_time": f.complete_time,
        "relay_pending": relay_pending,
        "chunk_ids": list(chunk_ids),
    }
