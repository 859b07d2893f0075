"""Use cases: indexing a batch of events, and serving one search page.

:class:`Indexer` applies catalog and stock events to the index: read the
items' documents, fold the events in (``domain.apply_*``, which drop stale
ones), write back only what changed, conditionally; a write that lost a race
is re-read and re-applied.

:class:`SearchService` runs a query, then asks serviceability once for the
whole page and records the query on ``search.queries`` without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ecom.common.v1 import common_pb2
from ecom.events.v1 import events_pb2
from elasticsearch import ApiError, TransportError

from mesh.errors import InvalidArgument, Unavailable
from svc_search import domain
from svc_search.store import SearchIndex, StoredDoc

log = logging.getLogger(__name__)

ESTIMATE_UNAVAILABLE = common_pb2.UNDELIVERABLE_REASON_ESTIMATE_UNAVAILABLE


# ---------------------------------------------------------------------------
# Indexing
# ---------------------------------------------------------------------------


def fold(doc: dict[str, Any], envelope: events_pb2.EventEnvelope) -> dict[str, Any] | None:
    """``doc`` after one event; None when the event changes nothing (stale,
    a replay, or a kind search does not index)."""
    kind = envelope.WhichOneof("payload")
    if kind == "item_upserted":
        item = envelope.item_upserted.item
        version = item.version or envelope.entity_version
        return domain.apply_upsert(doc, domain.catalog_fields(item), version)
    if kind == "item_deleted":
        return domain.apply_delete(doc, envelope.item_deleted.version or envelope.entity_version)
    if kind == "stock_changed":
        s = envelope.stock_changed
        return domain.apply_stock(doc, s.warehouse_id, s.available, s.item_total_available,
                                  envelope.entity_version)
    return None


def item_id_of(envelope: events_pb2.EventEnvelope) -> str | None:
    """The item an event is about, or None for events search ignores."""
    kind = envelope.WhichOneof("payload")
    if kind == "item_upserted":
        return envelope.item_upserted.item.item_id or envelope.entity_key
    if kind == "item_deleted":
        return envelope.item_deleted.item_id or envelope.entity_key
    if kind == "stock_changed":
        return envelope.stock_changed.item_id or envelope.entity_key
    return None


class Indexer:
    """Applies event batches to the index, idempotently and in version order."""

    def __init__(self, index: SearchIndex, *, max_attempts: int = 10) -> None:
        self.index = index
        self.max_attempts = max_attempts
        self.written = 0
        self.skipped = 0

    async def apply(self, envelopes: Sequence[events_pb2.EventEnvelope]) -> int:
        """Apply ``envelopes`` (in the given order per item); returns how many
        documents were written."""
        by_item: dict[str, list[events_pb2.EventEnvelope]] = {}
        for env in envelopes:
            item_id = item_id_of(env)
            if item_id:
                by_item.setdefault(item_id, []).append(env)
        pending = list(by_item)
        written = 0
        for _ in range(self.max_attempts):
            if not pending:
                return written
            stored = await self.index.get_many(pending)
            changes: list[tuple[str, StoredDoc]] = []
            for item_id in pending:
                current = stored[item_id]
                doc, changed = current.source, False
                for env in by_item[item_id]:
                    after = fold(doc, env)
                    if after is not None:
                        doc, changed = after, True
                if changed:
                    changes.append((item_id, StoredDoc(doc, current.seq_no,
                                                       current.primary_term)))
                else:
                    self.skipped += len(by_item[item_id])
            lost = await self.index.write_many(changes)
            written += len(changes) - len(lost)
            self.written += len(changes) - len(lost)
            pending = lost
        raise RuntimeError(f"{len(pending)} items kept losing write races: {pending[:5]}")


# ---------------------------------------------------------------------------
# Searching
# ---------------------------------------------------------------------------


@dataclass
class Hit:
    """One hit before it becomes a SearchHit."""

    item_id: str
    title: str
    brand: str
    category: str
    price_paise: int
    list_price_paise: int | None
    image_url: str
    score: float
    delivery: common_pb2.DeliveryEstimate = field(default_factory=common_pb2.DeliveryEstimate)


@dataclass
class SearchPage:
    """What one Search call answers."""

    hits: list[Hit]
    next_page_token: str
    total_size: int
    facets: list[tuple[str, list[tuple[str, int]]]]
    pincode: str
    serviceability_available: bool
    corrected_query: str


# (item ids, pincode) -> estimates by item id; raises when unreachable.
CheckServiceability = Callable[[Sequence[str], str], Awaitable[dict[str, common_pb2.
                                                                    DeliveryEstimate]]]
# The signed-in caller's default pincode, "" when unknown or anonymous.
DefaultPincode = Callable[[], Awaitable[str]]
# Fire-and-forget recording of a served query.
RecordQuery = Callable[[events_pb2.SearchQueryRecorded], None]


class SearchService:
    """Serves search pages from the index, annotated by serviceability."""

    def __init__(self, index: SearchIndex, *, check: CheckServiceability,
                 default_pincode: DefaultPincode, record: RecordQuery,
                 user_id: Callable[[], str] = lambda: "") -> None:
        self.index = index
        self.check = check
        self.default_pincode = default_pincode
        self.record = record
        self.user_id = user_id

    async def search(self, p: domain.SearchParams, page_token: str) -> SearchPage:
        """One page of hits for ``p`` after ``page_token``."""
        started = time.monotonic()
        search_after: list[Any] | None = None
        offset = 0
        if page_token:
            try:
                search_after, offset = domain.decode_cursor(page_token, p)
            except ValueError as exc:
                raise InvalidArgument.for_field("page_token", str(exc)) from exc
        body = domain.search_body(p, search_after, with_facets=True)
        pincode_task = asyncio.ensure_future(self._pincode(p.pincode))
        try:
            resp = await self.index.search(body)
        except (TransportError, ApiError) as exc:
            pincode_task.cancel()
            if isinstance(exc, ApiError) and exc.status_code == 400:
                log.warning("search rejected by the engine: %s", exc)
                raise InvalidArgument("the search engine rejected this query") from exc
            raise Unavailable("search is temporarily unavailable", retry_after=1) from exc
        raw_hits = resp["hits"]["hits"]
        more = len(raw_hits) > p.page_size
        raw_hits = raw_hits[: p.page_size]
        hits = [_hit(h) for h in raw_hits]
        next_token = ""
        if more and raw_hits:
            next_token = domain.encode_cursor(raw_hits[-1]["sort"], offset + len(raw_hits), p)
        pincode = await pincode_task
        available = await self._annotate(hits, pincode)
        if p.deliverable_only and pincode and available:
            hits = [h for h in hits if h.delivery.deliverable]
        total = int(resp["hits"]["total"]["value"])
        page = SearchPage(
            hits=hits, next_page_token=next_token, total_size=total,
            facets=domain.facets_from_aggs(resp.get("aggregations") or {}),
            pincode=pincode, serviceability_available=available,
            corrected_query=domain.corrected_query(p.query, resp.get("suggest")))
        self._record(p, page, offset, started)
        return page

    async def _pincode(self, given: str) -> str:
        if given:
            return given
        try:
            return await self.default_pincode()
        except Exception as exc:  # noqa: BLE001 - no estimate beats no search
            log.info("no default pincode for the caller: %s", exc)
            return ""

    async def _annotate(self, hits: list[Hit], pincode: str) -> bool:
        """Fill each hit's delivery estimate; False when serviceability could
        not be reached (hits then say ESTIMATE_UNAVAILABLE)."""
        unknown = common_pb2.DeliveryEstimate(pincode=pincode, reason=ESTIMATE_UNAVAILABLE)
        if not pincode or not hits:
            for h in hits:
                h.delivery = common_pb2.DeliveryEstimate(reason=ESTIMATE_UNAVAILABLE,
                                                         pincode=pincode)
            return True
        try:
            estimates = await self.check([h.item_id for h in hits], pincode)
        except Exception as exc:  # noqa: BLE001 - search stays up when serviceability is down
            log.warning("serviceability unavailable: %s", exc)
            for h in hits:
                h.delivery = common_pb2.DeliveryEstimate()
                h.delivery.CopyFrom(unknown)
            return False
        for h in hits:
            h.delivery = estimates.get(h.item_id) or unknown
        return True

    def _record(self, p: domain.SearchParams, page: SearchPage, offset: int,
                started: float) -> None:
        event = events_pb2.SearchQueryRecorded(
            user_id=self.user_id(), query=p.query, pincode=page.pincode, category=p.category,
            brands=list(p.brands), min_price=p.min_price, max_price=p.max_price,
            attribute_filters=list(p.attribute_filters), sort=_SORT_ENUM[p.sort],
            total_size=page.total_size, item_ids=[h.item_id for h in page.hits],
            page_number=offset // p.page_size if p.page_size else 0,
            latency_ms=int((time.monotonic() - started) * 1000))
        try:
            self.record(event)
        except Exception:  # noqa: BLE001 - analytics must never fail a search
            log.warning("could not record the search query", exc_info=True)


_SORT_ENUM = {"relevance": 1, "price_asc": 2, "price_desc": 3, "newest": 4}


def _hit(h: dict[str, Any]) -> Hit:
    s = h["_source"]
    return Hit(item_id=s["item_id"], title=s.get("title", ""), brand=s.get("brand", ""),
               category=s.get("category", ""), price_paise=int(s.get("price_paise") or 0),
               list_price_paise=s.get("list_price_paise"), image_url=s.get("image_url", ""),
               score=float(h.get("_score") or 0.0))
