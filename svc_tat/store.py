"""Persistence: the precomputed matrix and the disruptions, both in Redis.

Matrix layout (written by :mod:`pipelines.serviceability`):
``tat:current`` -> version; ``tat:v{n}:pins`` hash pincode -> packed row;
``tat:v{n}:meta`` hash with the warehouse column order. One ``HGET`` reads
a pincode. :class:`MatrixStore` keeps an in-process LRU of decoded rows for
the current version and drops it when the version changes.

Disruptions: ``tat:disruptions`` hash id -> serialized ``Disruption`` and
``tat:disruption_requests:{request_id}`` -> id for idempotent creates.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from ecom.serviceability.v1 import serviceability_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from mesh import events
from pipelines.serviceability import CURRENT_KEY, meta_key, rows_key
from svc_tat.domain import PinRow, decode_row

Key = Callable[[str], str]
_MISSING = object()


class MatrixNotReady(Exception):
    """No matrix version has been published yet."""


class MatrixStore:
    """Reads pincode rows of the current matrix version, LRU-cached."""

    def __init__(self, client: aioredis.Redis, key: Key, *, cache_size: int = 50_000) -> None:
        # Any: redis-py types every command as "Awaitable | value" for its
        # sync and async clients at once, which no await satisfies.
        self.client: Any = client
        self.key = key
        self.cache_size = cache_size
        self.version: int | None = None
        self.columns: tuple[str, ...] = ()
        self._cache: OrderedDict[str, PinRow | None] = OrderedDict()

    async def refresh_version(self) -> bool:
        """Re-read ``tat:current``; on a new version load its columns and drop
        the cache. Returns True when the version changed."""
        raw = await self.client.get(self.key(CURRENT_KEY))
        version = int(raw) if raw is not None else None
        if version == self.version:
            return False
        columns: tuple[str, ...] = ()
        if version is not None:
            meta = await self.client.hget(self.key(meta_key(version)), "columns")
            if meta is None:  # deleted between the two reads: a newer one exists
                return await self.refresh_version()
            columns = tuple(meta.decode().split(","))
        self.version, self.columns = version, columns
        self._cache.clear()
        return True

    async def row(self, pincode: str) -> PinRow | None:
        """The row for ``pincode``, None when the pincode does not exist."""
        cached = self._cache.get(pincode, _MISSING)
        if cached is not _MISSING:
            self._cache.move_to_end(pincode)
            return cached  # type: ignore[return-value]
        if self.version is None:
            await self.refresh_version()
            if self.version is None:
                raise MatrixNotReady("the serviceability matrix has not been built yet")
        version = self.version
        raw = await self.client.hget(self.key(rows_key(version)), pincode)
        if raw is None and not await self.client.exists(self.key(rows_key(version))):
            # Our version was replaced and deleted: follow the pointer once.
            await self.refresh_version()
            if self.version != version and self.version is not None:
                raw = await self.client.hget(self.key(rows_key(self.version)), pincode)
        value = decode_row(raw) if raw is not None else None
        self._cache[pincode] = value
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return value

    async def raw_get(self, pincode: str) -> bytes | None:
        """One uncached HGET (the benchmark's baseline)."""
        return await self.client.hget(self.key(rows_key(self.version or 0)), pincode)


def _ts(value: dt.datetime) -> Timestamp:
    ts = events.timestamp(value)
    assert ts is not None
    return ts


class DisruptionStore:
    """Disruptions as serialized protos in one Redis hash."""

    REQUEST_TTL_SECONDS = 24 * 3600

    def __init__(self, client: aioredis.Redis, key: Key) -> None:
        self.client: Any = client  # see MatrixStore
        self.key = key

    @property
    def _hash(self) -> str:
        return self.key("tat:disruptions")

    async def create(
        self, disruption: pb.Disruption, request_id: str, now: dt.datetime
    ) -> tuple[pb.Disruption, bool]:
        """Store a new disruption; a repeated ``request_id`` returns the first
        one. Returns (disruption, created)."""
        new_id = "dis-" + uuid.uuid4().hex[:12]
        req_key = self.key(f"tat:disruption_requests:{request_id}")
        claimed = await self.client.set(req_key, new_id, nx=True, ex=self.REQUEST_TTL_SECONDS)
        if not claimed:
            existing_id = (await self.client.get(req_key) or b"").decode()
            existing = await self.get(existing_id)
            if existing is not None:
                return existing, False
            await self.client.set(req_key, new_id, ex=self.REQUEST_TTL_SECONDS)
        stored = pb.Disruption()
        stored.CopyFrom(disruption)
        stored.disruption_id = new_id
        stored.create_time.CopyFrom(_ts(now))
        stored.ClearField("clear_time")
        await self.client.hset(self._hash, new_id, stored.SerializeToString())
        return stored, True

    async def get(self, disruption_id: str) -> pb.Disruption | None:
        """One disruption, None when unknown."""
        raw = await self.client.hget(self._hash, disruption_id)
        return pb.Disruption.FromString(raw) if raw is not None else None

    async def all(self) -> list[pb.Disruption]:
        """Every disruption, newest first (ties by id)."""
        raw = await self.client.hvals(self._hash)
        items = [pb.Disruption.FromString(v) for v in raw]
        items.sort(key=lambda d: (d.create_time.ToNanoseconds(), d.disruption_id), reverse=True)
        return items

    async def clear(self, disruption_id: str, now: dt.datetime) -> tuple[pb.Disruption, bool]:
        """Set ``clear_time`` once. Returns (disruption, changed); raises
        KeyError for an unknown id."""
        # WATCH/MULTI so two concurrent clears set one clear_time.
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._hash)
                    raw = await pipe.hget(self._hash, disruption_id)
                    if raw is None:
                        raise KeyError(disruption_id)
                    current = pb.Disruption.FromString(raw)
                    if current.HasField("clear_time"):
                        return current, False
                    current.clear_time.CopyFrom(_ts(now))
                    pipe.multi()
                    pipe.hset(self._hash, disruption_id, current.SerializeToString())
                    await pipe.execute()
                    return current, True
                except aioredis.WatchError:
                    continue
