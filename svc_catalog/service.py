"""Catalog use cases: item writes with their events, reads, supplier feeds,
and applying a feed row. Raises mesh errors; knows nothing about gRPC."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ecom.catalog.v1 import catalog_pb2
from ecom.events.v1 import events_pb2
from pymongo.errors import DuplicateKeyError

from mesh.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from svc_catalog import codec, domain
from svc_catalog.store import (
    CHUNK_LINES,
    MAX_ROW_ERRORS,
    FeedDoc,
    ItemStore,
    VersionMismatch,
    feed_doc,
    item_from_doc,
    now,
    pending_event,
    sku_key,
)

FORMAT_NAMES = {catalog_pb2.FEED_FORMAT_JSONL: "jsonl", catalog_pb2.FEED_FORMAT_CSV: "csv"}



Outcomes = dict[tuple[str, int], domain.FeedRowError | None]
FirstRows = dict[str, tuple[events_pb2.EventEnvelope, domain.ItemFields]]


def _split_rows(
    envs: Sequence[events_pb2.EventEnvelope], outcomes: Outcomes
) -> tuple[FirstRows, list[events_pb2.EventEnvelope]]:
    """Valid rows by item id (the first row per item) and the later rows for
    an item seen earlier in the batch; invalid rows get their outcome."""
    first: FirstRows = {}
    later: list[events_pb2.EventEnvelope] = []
    for env in envs:
        row = env.supplier_item_received
        fields, problem = _row_fields(env)
        if problem is not None:
            outcomes[(row.feed_id, row.line_number)] = problem
            continue
        item_id = domain.supplier_item_id(row.supplier_id, row.item.sku)
        if item_id in first:
            later.append(env)
        else:
            first[item_id] = (env, fields)
    return first, later


class CatalogService:
    """The catalog's use cases over an :class:`ItemStore`."""

    def __init__(self, store: ItemStore) -> None:
        self.store = store

    # -- items ------------------------------------------------------------
    async def create_item(self, fields: domain.ItemFields, *, item_id: str,
                          request_id: str) -> tuple[domain.Item, bool]:
        """Create an item; returns it and whether this call created it (a
        retried request id returns the first result). Without an id, an item
        with a sku gets the id its supplier's feeds would give it, so feed
        rows find it by id."""
        if not item_id:
            item_id = (domain.supplier_item_id(fields.supplier_id, fields.sku) if fields.sku
                       else uuid.uuid4().hex)
        item = domain.new_item(item_id, fields, now())
        event = pending_event(codec.item_upserted(item, created=True, request_id=request_id),
                              codec.ITEMS_TOPIC)
        try:
            await self.store.insert_item(item, create_request_id=request_id, event=event)
        except DuplicateKeyError as exc:
            # A retry finds its first result here: looking the request id up
            # reads the whole collection, so only collisions pay for it.
            if (done := await self.store.get_by_create_request(request_id)) is not None:
                return item_from_doc(done), False
            key = str(exc.details or exc)
            if fields.sku and "sku_key" in key:
                raise AlreadyExists(
                    f"supplier {fields.supplier_id!r} already has an item with sku "
                    f"{fields.sku!r}", resource_type="ecom.catalog.v1.Item",
                    resource_name=fields.sku) from None
            raise AlreadyExists(f"item {item.item_id!r} already exists",
                                resource_type="ecom.catalog.v1.Item",
                                resource_name=item.item_id) from None
        return item, True

    async def get_item(self, item_id: str) -> domain.Item:
        """The item, deleted ones included; NOT_FOUND for unknown ids."""
        doc = await self.store.get_doc(item_id)
        if doc is None:
            raise NotFound(f"item {item_id!r} does not exist",
                           resource_type="ecom.catalog.v1.Item", resource_name=item_id)
        return item_from_doc(doc)

    async def batch_get(self, item_ids: Sequence[str]) -> tuple[list[domain.Item], list[str]]:
        """Items in first-request order and the ids that do not exist."""
        if not item_ids:
            raise InvalidArgument.for_field("item_ids", "give at least one item id")
        unique = list(dict.fromkeys(item_ids))
        if len(unique) > domain.MAX_BATCH_GET:
            raise InvalidArgument.for_field(
                "item_ids", f"at most {domain.MAX_BATCH_GET} ids per call, got {len(unique)}")
        found = await self.store.get_many(unique)
        return ([found[i] for i in unique if i in found],
                [i for i in unique if i not in found])

    async def list_items(self, category: str, *, after: str, page_size: int,
                         show_deleted: bool) -> tuple[list[domain.Item], str]:
        """One page of a category and the id to continue after ("" at the end)."""
        page = await self.store.list_category(category, after=after, limit=page_size + 1,
                                              show_deleted=show_deleted)
        if len(page) > page_size:
            return page[:page_size], page[page_size - 1].item_id
        return page, ""

    async def update_item(self, item_id: str, given: domain.ItemFields, paths: Sequence[str],
                          *, expected_version: int, request_id: str) -> domain.Item:
        """Apply the masked fields with optimistic concurrency."""
        while True:
            doc = await self._existing(item_id)
            current = item_from_doc(doc)
            if _seen(doc, request_id):
                return current
            if expected_version and current.version != expected_version:
                raise _stale(item_id, expected_version, current.version)
            if not current.active:
                raise FailedPrecondition(f"item {item_id!r} is deleted", reason="ITEM_DELETED")
            fields = domain.apply_mask(current.fields, given, paths)
            fields = replace(fields, attributes=domain.normalize_attributes(
                fields.category, fields.attributes))
            violations = domain.validate_fields(fields)
            if violations:
                raise InvalidArgument(
                    "the updated item is invalid",
                    violations=codec.prefixed(violations, "item"))
            updated = replace(current, fields=fields, version=current.version + 1,
                              update_time=now())
            event = pending_event(
                codec.item_upserted(updated, created=False, request_id=request_id),
                codec.ITEMS_TOPIC)
            try:
                await self.store.replace_item(updated, expected_version=current.version,
                                              request_id=request_id, event=event,
                                              remembered=doc.get("requests", []))
                return updated
            except VersionMismatch:
                if expected_version:
                    raise _stale(item_id, expected_version, None) from None
                # No version asked for: last writer wins, so read again.

    async def delete_item(self, item_id: str, *, expected_version: int,
                          request_id: str) -> domain.Item:
        """Soft delete; deleting a deleted item returns it unchanged."""
        while True:
            doc = await self._existing(item_id)
            current = item_from_doc(doc)
            if not current.active or _seen(doc, request_id):
                return current
            if expected_version and current.version != expected_version:
                raise _stale(item_id, expected_version, current.version)
            t = now()
            deleted = replace(current, state=domain.ItemState.DELETED,
                              version=current.version + 1, update_time=t, delete_time=t)
            event = pending_event(codec.item_deleted(deleted, request_id=request_id),
                                  codec.ITEMS_TOPIC)
            try:
                await self.store.replace_item(deleted, expected_version=current.version,
                                              request_id=request_id, event=event,
                                              remembered=doc.get("requests", []))
                return deleted
            except VersionMismatch:
                if expected_version:
                    raise _stale(item_id, expected_version, None) from None

    async def _existing(self, item_id: str) -> dict:  # type: ignore[type-arg]
        doc = await self.store.get_doc(item_id)
        if doc is None:
            raise NotFound(f"item {item_id!r} does not exist",
                           resource_type="ecom.catalog.v1.Item", resource_name=item_id)
        return doc

    # -- feeds ------------------------------------------------------------
    async def submit_feed(self, supplier_id: str, fmt: int, content: str, *,
                          dry_run: bool, request_id: str) -> str:
        """Validate a feed and queue its valid rows for Kafka; returns the
        feed id. A retried request id returns the first feed."""
        feed_id = domain.feed_id_for(supplier_id, request_id)
        if await self.store.get_feed(feed_id) is not None:
            return feed_id
        submitted = now()
        fmt_name = FORMAT_NAMES.get(fmt, "unspecified")
        try:
            # Parsing 100k rows takes seconds; keep the event loop serving.
            parsed = await asyncio.to_thread(codec.parse_feed, fmt, content, supplier_id)
        except codec.FeedRejected as exc:
            doc = FeedDoc(feed_id, supplier_id, request_id, fmt_name, "failed", 0, 0,
                          [domain.FeedRowError(0, "", "", str(exc))], submitted, submitted)
            await self.store.insert_feed(feed_doc(doc, relay_pending=False))
            return feed_id
        feed = FeedDoc(feed_id, supplier_id, request_id, fmt_name, "processing",
                       parsed.total_rows, len(parsed.valid), parsed.errors, submitted)
        if dry_run or not parsed.valid:
            feed.state = "validated" if dry_run else "failed"
            feed.complete_time = submitted
            await self.store.insert_feed(feed_doc(feed, relay_pending=False))
            return feed_id
        chunks = _chunks(feed_id, supplier_id, parsed.valid, submitted, request_id)
        await self.store.save_chunks(chunks)
        await self.store.insert_feed(feed_doc(feed, relay_pending=True,
                                                chunk_ids=[c["_id"] for c in chunks]))
        return feed_id

    async def get_feed(self, supplier_id: str, feed_id: str) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
        """The feed document and its chunks' progress."""
        doc = await self.store.get_feed(feed_id)
        if doc is None or doc["supplier_id"] != supplier_id:
            raise NotFound(f"feed {feed_id!r} of supplier {supplier_id!r} does not exist",
                           resource_type="ecom.catalog.v1.Feed", resource_name=feed_id)
        return doc, await self.store.chunk_progress(doc.get("chunk_ids", []))

    # -- the feed consumer ------------------------------------------------
    async def apply_feed_rows(
        self, envs: Sequence[events_pb2.EventEnvelope],
    ) -> tuple[dict[tuple[str, int], domain.FeedRowError | None],
               list[events_pb2.EventEnvelope]]:
        """Apply a batch of feed rows. Returns each row's outcome by (feed id,
        line) and the catalog.items events to publish before the batch may
        count as done.

        Feed rows carry no in-document outbox: their Kafka offsets are
        committed only after these events are acknowledged, and a row found
        already applied on redelivery yields its event again (same event id),
        so a crash anywhere in between loses no event. New items go in with
        one bulk insert, changes to existing items with one bulk update
        (each guarded by the version read); rows those could not settle, and
        later rows for an item seen earlier in the batch, are applied one by
        one in order."""
        outcomes: Outcomes = {}
        events: list[events_pb2.EventEnvelope] = []
        first, later = _split_rows(envs, outcomes)
        docs = await self.store.get_many_docs(list(first))
        one_by_one = await self._insert_new(first, docs, outcomes, events)
        one_by_one += await self._update_existing(first, docs, outcomes, events)
        for env in [*one_by_one, *later]:
            row = env.supplier_item_received
            outcome, event = await self.apply_feed_row(env)
            outcomes[(row.feed_id, row.line_number)] = outcome
            if event is not None:
                events.append(event)
        return outcomes, events

    async def _insert_new(
        self, first: FirstRows, docs: dict[str, Any], outcomes: Outcomes,
        events: list[events_pb2.EventEnvelope],
    ) -> list[events_pb2.EventEnvelope]:
        """Bulk-insert the batch's new items; the rows to apply one by one
        (an insert that lost a race)."""
        fresh = [(item_id, env, fields) for item_id, (env, fields) in first.items()
                 if item_id not in docs]
        items = [domain.new_item(item_id, fields, now(), feed_stamp=_row_stamp(env))
                 for item_id, env, fields in fresh]
        taken = await self.store.insert_items(
            items, [f"feed:{env.event_id}" for _, env, _ in fresh])
        one_by_one = [env for i, (_, env, _) in enumerate(fresh) if i in taken]
        for i, (item, (_, env, _)) in enumerate(zip(items, fresh, strict=True)):
            if i not in taken:
                row = env.supplier_item_received
                outcomes[(row.feed_id, row.line_number)] = None
                events.append(_feed_item_event(item, env))
        return one_by_one

    async def _update_existing(
        self, first: FirstRows, docs: dict[str, Any], outcomes: Outcomes,
        events: list[events_pb2.EventEnvelope],
    ) -> list[events_pb2.EventEnvelope]:
        """Bulk-update the batch's existing items (guarded by the version
        read); the rows to apply one by one."""
        one_by_one: list[events_pb2.EventEnvelope] = []
        writes: list[tuple[events_pb2.EventEnvelope, domain.Item, bool]] = []
        for item_id, (env, fields) in first.items():
            doc = docs.get(item_id)
            row = env.supplier_item_received
            if doc is None:
                continue
            if doc.get("sku_key") != sku_key(row.supplier_id, row.item.sku, ""):
                one_by_one.append(env)  # the id belongs to another item
                continue
            decision = _decide(item_from_doc(doc), fields, env)
            if isinstance(decision, _Write):
                writes.append((env, decision.item, decision.changed))
            else:
                outcomes[(row.feed_id, row.line_number)] = decision.outcome
                if decision.event is not None:
                    events.append(decision.event)
        missed = await self.store.write_feed_changes([(item, ch) for _, item, ch in writes])
        for i, (env, item, changed) in enumerate(writes):
            if i in missed:
                one_by_one.append(env)  # changed since it was read: start over
                continue
            row = env.supplier_item_received
            outcomes[(row.feed_id, row.line_number)] = None
            if changed:
                events.append(_feed_item_event(item, env))
        return one_by_one

    async def apply_feed_row(
        self, env: events_pb2.EventEnvelope,
    ) -> tuple[domain.FeedRowError | None, events_pb2.EventEnvelope | None]:
        """Create or update the item a feed row names, alone. Returns None
        when the row is applied (or was already), an error when it cannot
        be, and the catalog.items event to publish."""
        row = env.supplier_item_received
        line, sku = row.line_number, row.item.sku
        fields, problem = _row_fields(env)
        if problem is not None:
            return problem, None
        stamp = _row_stamp(env)
        key = sku_key(row.supplier_id, sku, "")
        item_id = domain.supplier_item_id(row.supplier_id, sku)
        thorough = False  # look the sku up by reading the collection
        for _ in range(10):
            doc: dict | None  # type: ignore[type-arg]
            if thorough:
                doc = await self.store.get_by_sku_key(key)
            else:
                doc = await self.store.get_doc(item_id)
            if doc is not None and doc.get("sku_key") != key:
                thorough = True  # the id is taken by another item
                continue
            if doc is None:
                if thorough:
                    return domain.FeedRowError(
                        line, sku, "sku", f"item id {item_id} is taken by another item"), None
                item = domain.new_item(item_id, fields, now(), feed_stamp=stamp)
                try:
                    await self.store.insert_item(item, create_request_id=f"feed:{env.event_id}",
                                                 event=None)
                    return None, _feed_item_event(item, env)
                except DuplicateKeyError:
                    # The sku exists under another id (created with an
                    # explicit id), or the item appeared concurrently.
                    thorough = True
                    continue
            decision = _decide(item_from_doc(doc), fields, env)
            if not isinstance(decision, _Write):
                return decision.outcome, decision.event
            if await self.store.write_feed_changes([(decision.item, decision.changed)]):
                continue  # changed since it was read
            return None, (_feed_item_event(decision.item, env) if decision.changed else None)
        return domain.FeedRowError(line, sku, "", "the item kept changing; not applied"), None

    async def record_feed_outcomes(
        self, feed_id: str, outcomes: dict[int, domain.FeedRowError | None]
    ) -> None:
        """Count applied/failed lines once each and complete the feed when
        every valid row is accounted for."""
        by_chunk: dict[int, dict[int, domain.FeedRowError | None]] = {}
        for line, outcome in outcomes.items():
            by_chunk.setdefault(chunk_seq(line), {})[line] = outcome
        for seq, group in sorted(by_chunk.items()):
            await self.store.record_outcomes(chunk_id(feed_id, seq), group)
        feed = await self.store.get_feed(feed_id)
        progress = await self.store.chunk_progress(feed.get("chunk_ids", []) if feed else [])
        if progress and all(c["applied"] + c["failed"] >= c["rows"] for c in progress):
            await self.store.complete_feed(feed_id, now())


def _row_fields(env: events_pb2.EventEnvelope) -> tuple[domain.ItemFields,
                                                       domain.FeedRowError | None]:
    """A feed row's item fields, or the first reason it cannot be applied
    (the rules may have changed since the feed was validated)."""
    row = env.supplier_item_received
    fields, problems = codec.fields_from_proto(row.item)
    problems += domain.validate_fields(fields)
    if problems:
        return fields, domain.FeedRowError(row.line_number, row.item.sku,
                                           domain.feed_field(problems[0].field),
                                           problems[0].description)
    return fields, None


@dataclass(frozen=True)
class _Settled:
    """A feed row that needs no write: its outcome and the event to send."""

    outcome: domain.FeedRowError | None
    event: events_pb2.EventEnvelope | None = None


@dataclass(frozen=True)
class _Write:
    """A feed row's write: ``item`` as it must be stored if still at version
    ``item.version - 1`` (changed) or ``item.version`` (only the stamp)."""

    item: domain.Item
    changed: bool


def _decide(current: domain.Item, fields: domain.ItemFields,
            env: events_pb2.EventEnvelope) -> _Settled | _Write:
    """What a feed row does to the stored item it names."""
    row = env.supplier_item_received
    line, sku, stamp = row.line_number, row.item.sku, _row_stamp(env)
    if current.feed_stamp == stamp:
        # This very row was applied before (a redelivery): its event may not
        # have reached Kafka, so it goes out again.
        return _Settled(None, _feed_item_event(current, env))
    if current.feed_stamp > stamp:
        return _Settled(domain.FeedRowError(
            line, sku, "", "a newer feed row for this sku was applied already"))
    if not current.active:
        return _Settled(domain.FeedRowError(line, sku, "", f"item {current.item_id} is deleted"))
    if domain.same_content(current.fields, fields):
        return _Write(replace(current, feed_stamp=stamp), changed=False)
    return _Write(replace(current, fields=replace(
        fields, supplier_id=current.fields.supplier_id, sku=current.fields.sku),
        version=current.version + 1, update_time=now(), feed_stamp=stamp), changed=True)


def _row_stamp(env: events_pb2.EventEnvelope) -> str:
    return domain.feed_stamp(codec.from_ts(env.occurred_at),
                             env.supplier_item_received.line_number)


def _feed_item_event(item: domain.Item, env: events_pb2.EventEnvelope) -> events_pb2.EventEnvelope:
    """The catalog.items event for ``item`` as a feed row left it."""
    out = codec.item_upserted(item, created=item.version == 1, request_id=env.request_id,
                              feed_id=env.supplier_item_received.feed_id)
    out.event_id = domain.feed_item_event_id(env.event_id, item.version)
    return out


def _seen(doc: dict, request_id: str) -> bool:  # type: ignore[type-arg]
    return bool(request_id) and any(r.get("id") == request_id for r in doc.get("requests", []))


def _stale(item_id: str, expected: int, actual: int | None) -> Conflict:
    at = f" (it is at version {actual})" if actual is not None else ""
    return Conflict(
        f"item {item_id!r} is no longer at version {expected}{at}; read it again",
        reason="VERSION_MISMATCH", metadata={"item_id": item_id})


def chunk_seq(line: int) -> int:
    """Which chunk a feed line belongs to: chunks are fixed line ranges, so
    the consumer finds a row's chunk from its line number alone."""
    return (line - 1) // CHUNK_LINES


def chunk_id(feed_id: str, seq: int) -> str:
    return f"{feed_id}:{seq:05d}"


def _chunks(feed_id: str, supplier_id: str, valid: list[tuple[int, domain.ItemFields]],
            submitted: datetime, request_id: str) -> list[dict]:  # type: ignore[type-arg]
    grouped: dict[int, list[bytes]] = {}
    for line, fields in valid:
        env = codec.supplier_item_received(feed_id, supplier_id, line, fields, submitted,
                                           request_id)
        grouped.setdefault(chunk_seq(line), []).append(env.SerializeToString())
    return [{"_id": chunk_id(feed_id, seq), "feed_id": feed_id, "seq": seq,
             "rows": len(events), "events": events, "published": False, "done": [],
             "applied": 0, "failed": 0, "errors": [], "version": 0}
            for seq, events in sorted(grouped.items())]


def feed_errors(doc: dict, progress: list[dict]) -> tuple[list[domain.FeedRowError], bool]:  # type: ignore[type-arg]
    """Validation errors and consumer failures, in line order, capped."""
    errors = [domain.FeedRowError(e["line"], e["sku"], e["field"], e["message"])
              for e in doc.get("row_errors", [])]
    for c in progress:
        errors += [domain.FeedRowError(e["line"], e["sku"], e["field"], e["message"])
                   for e in c.get("errors", [])]
    errors.sort(key=lambda e: e.line_number)
    truncated = bool(doc.get("row_errors_truncated")) or len(errors) > MAX_ROW_ERRORS
    return errors[:MAX_ROW_ERRORS], truncated


__all__ = ["CatalogService", "chunk_id", "chunk_seq", "feed_errors"]
