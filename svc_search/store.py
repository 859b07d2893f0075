"""Elasticsearch persistence: the versioned item index behind its alias, the
optimistic read-modify-write the indexer uses, and searches.

The alias (``settings.index("items")``) is the only name readers and writers
use; the physical index is ``<alias>-v<N>``. When ``domain.SCHEMA_VERSION``
moves past the schema of the index behind the alias, :meth:`SearchIndex.ensure`
builds the new index by scroll + bulk from the old one (the build has no
``_reindex``) and swaps the alias in one atomic ``_aliases`` call, so
searches never see a missing or half-filled index. The indexer starts only
after :meth:`ensure` returns, so no write lands in the old index during the
copy (another running instance could; its events are re-read from Kafka
only if they are redelivered, so roll instances one at a time).

Copies of the service starting together rebuild once: the copy that takes
the rebuild lease (a document in ``<alias>-lease``, created with
``op_type=create``, renewed as the copy goes, taken over by compare-and-set
only once it has expired) builds; the others wait for the alias to move.

Writes are conditional on the ``_seq_no``/``_primary_term`` read (or
``op_type=create`` for a new document): two writers racing on one item
(the catalog and the stock consumer) never lose each other's change; the
loser re-reads and re-applies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from elastic_transport import AiohttpHttpNode
from elasticsearch import AsyncElasticsearch, BadRequestError, NotFoundError
from elasticsearch.helpers import async_scan

from mesh.lease import IndexLease
from svc_search import domain

log = logging.getLogger(__name__)


def connect(url: str, *, timeout: float, connections: int = 64) -> AsyncElasticsearch:
    """An async client with short timeouts and no retries: a dead cluster
    must turn into UNAVAILABLE within about ``timeout`` seconds.

    ``connections`` per node: with the client's default of 10, the 11th
    concurrent search waits for a free connection, and aiohttp counts that
    wait inside the request's timeout (32 concurrent clients in the
    benchmark timed out as UNAVAILABLE)."""
    # aiohttp, not httpx: the same search costs about a third of the client
    # CPU (3.8 ms -> 1.3 ms per faceted page, docs/observability.md).
    return AsyncElasticsearch(url, node_class=AiohttpHttpNode, request_timeout=timeout,
                              connections_per_node=connections,
                              max_retries=0, retry_on_timeout=False)


@dataclass(frozen=True)
class StoredDoc:
    """A document as read, with what a conditional write needs."""

    source: dict[str, Any]
    seq_no: int | None  # None: not in the index yet
    primary_term: int | None


class SearchIndex:
    """The item index, addressed through its alias."""

    def __init__(self, client: AsyncElasticsearch, alias: str, *,
                 refresh_interval: str = "1s", shards: int = 1, replicas: int = 0,
                 lease_seconds: float = 120.0, lease_poll_seconds: float = 1.0) -> None:
        self.client = client
        self.alias = alias
        self.refresh_interval = refresh_interval
        self.shards = shards
        self.replicas = replicas
        # One rebuild at a time across copies; it renews the lease as it
        # copies, and a copy that died frees it after lease_seconds.
        self.lease = IndexLease(client, f"{alias}-lease", "rebuild", ttl=lease_seconds)
        self.lease_poll_seconds = lease_poll_seconds

    def physical(self, version: int) -> str:
        """``<alias>-v<version>``."""
        return f"{self.alias}-v{version}"

    async def ping(self) -> bool:
        """Health probe (``GET /`` answers 405 in this build)."""
        resp = await self.client.cluster.health()
        return bool(resp["status"] in ("green", "yellow"))

    async def current(self) -> tuple[str, int] | None:
        """(physical index, its schema version) behind the alias, or None."""
        try:
            resp = await self.client.indices.get_alias(name=self.alias)
        except NotFoundError:
            return None
        [index] = list(resp.body)
        mapping = await self.client.indices.get_mapping(index=index)
        meta = mapping.body[index]["mappings"].get("_meta") or {}
        return index, int(meta.get("schema_version", 0))

    async def create(self, index: str) -> None:
        """Create a physical index with the current mappings."""
        await self.client.indices.create(
            index=index, mappings=domain.MAPPINGS,
            settings={"number_of_shards": self.shards, "number_of_replicas": self.replicas,
                      "refresh_interval": self.refresh_interval})

    async def ensure(self) -> str:
        """Make the alias point at an index of the current schema, creating
        or rebuilding it as needed; returns the physical index name."""
        while True:
            found = await self.current()
            if found is None:
                index = self.physical(domain.SCHEMA_VERSION)
                if not await self.client.indices.exists(index=index):
                    await self.create(index)
                await self.client.indices.update_aliases(
                    actions=[{"add": {"index": index, "alias": self.alias}}])
                return index
            index, version = found
            if version >= domain.SCHEMA_VERSION:
                return index
            if await self._take_lease():
                try:
                    # Under the lease, look again: a copy may just have finished.
                    found = await self.current()
                    if found is not None and found[1] >= domain.SCHEMA_VERSION:
                        return found[0]
                    old = found[0] if found is not None else index
                    return await self.rebuild(old, self.physical(domain.SCHEMA_VERSION))
                finally:
                    await self.lease.release()
            log.info("another copy is rebuilding the search index; waiting",
                     extra={"alias": self.alias})
            await asyncio.sleep(self.lease_poll_seconds)

    async def _take_lease(self) -> bool:
        try:
            await self.client.indices.create(
                index=self.lease.index,
                settings={"number_of_shards": 1, "number_of_replicas": self.replicas})
        except BadRequestError as exc:
            if "resource_already_exists" not in str(exc):
                raise
        return await self.lease.acquire()

    async def _renew_lease(self) -> None:
        if not await self.lease.acquire():
            raise RuntimeError("lost the search rebuild lease to another copy")

    async def rebuild(self, old: str, new: str, *, batch: int = 500) -> str:
        """Copy every document of ``old`` into a fresh ``new`` (scroll + bulk)
        and swap the alias atomically; returns ``new``. The old index is
        kept for roll-back; delete it by hand once happy. Run under the
        rebuild lease (see :meth:`ensure`); renews it as it goes."""
        if await self.client.indices.exists(index=new):
            # A rebuild that died half-way: start it again from scratch.
            await self.client.indices.delete(index=new)
        await self.create(new)
        # A scroll sees only refreshed documents: without this the writes of
        # the last refresh interval would be left behind.
        await self.client.indices.refresh(index=old)
        copied = 0
        chunk: list[dict[str, Any]] = []
        async for hit in async_scan(self.client, index=old, query={"query": {"match_all": {}}},
                                    size=batch, scroll="2m"):
            chunk.append({"index": {"_index": new, "_id": hit["_id"]}})
            chunk.append(hit["_source"])
            if len(chunk) >= 2 * batch:
                await self._bulk(chunk)
                copied += len(chunk) // 2
                chunk = []
                await self._renew_lease()
        if chunk:
            await self._bulk(chunk)
            copied += len(chunk) // 2
        await self.client.indices.refresh(index=new)
        await self._renew_lease()
        await self.client.indices.update_aliases(actions=[
            {"remove": {"index": old, "alias": self.alias}},
            {"add": {"index": new, "alias": self.alias}},
        ])
        log.info("search index rebuilt", extra={"from": old, "to": new, "docs": copied})
        return new

    async def _bulk(self, operations: list[dict[str, Any]]) -> None:
        resp = await self.client.options(request_timeout=60).bulk(operations=operations)
        if resp["errors"]:
            first = next(i for i in resp["items"] if "error" in next(iter(i.values())))
            raise RuntimeError(f"bulk copy failed: {first}")

    async def get_many(self, item_ids: Sequence[str]) -> dict[str, StoredDoc]:
        """The stored documents of ``item_ids`` (absent ids map to an empty
        document with no sequence number)."""
        resp = await self.client.mget(index=self.alias, ids=list(item_ids), realtime=True)
        out: dict[str, StoredDoc] = {}
        for d in resp["docs"]:
            if d.get("found"):
                out[d["_id"]] = StoredDoc(d["_source"], d["_seq_no"], d["_primary_term"])
            else:
                out[d["_id"]] = StoredDoc(domain.empty_doc(d["_id"]), None, None)
        return out

    async def write_many(self, docs: Iterable[tuple[str, StoredDoc]]) -> list[str]:
        """Write each document if nobody changed it since it was read;
        returns the ids that lost the race (to re-read and re-apply)."""
        ops: list[dict[str, Any]] = []
        ids: list[str] = []
        for item_id, doc in docs:
            if doc.seq_no is None:
                ops.append({"create": {"_index": self.alias, "_id": item_id}})
            else:
                ops.append({"index": {"_index": self.alias, "_id": item_id,
                                      "if_seq_no": doc.seq_no,
                                      "if_primary_term": doc.primary_term}})
            ops.append(doc.source)
            ids.append(item_id)
        if not ops:
            return []
        resp = await self.client.bulk(operations=ops)
        conflicts: list[str] = []
        for item_id, result in zip(ids, resp["items"], strict=True):
            outcome = next(iter(result.values()))
            if outcome.get("status") == 409:
                conflicts.append(item_id)
            elif "error" in outcome:
                raise RuntimeError(f"indexing {item_id} failed: {outcome['error']}")
        return conflicts

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run one search against the alias."""
        resp = await self.client.search(index=self.alias, body=body)
        return dict(resp.body)

    async def refresh(self) -> None:
        """Make every write searchable now (tests and benchmarks)."""
        await self.client.indices.refresh(index=self.alias)
