"""Use cases: read a list under the current model version, fall back to
popularity when there is none, hydrate the hits with one catalog BatchGet
(and their stock with one inventory BatchGetStock), filter what cannot be
bought, page; and train a new model on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from mesh import money
from mesh.errors import FailedPrecondition, Unavailable
from svc_recs import domain
from svc_recs.store import ALL, RecsStore

T = TypeVar("T")


@dataclass(frozen=True)
class Shown:
    """One recommendation as answered."""

    item_id: str
    score: float
    reason: str
    title: str
    price_paise: int | None
    image_url: str


@dataclass(frozen=True)
class Answer:
    items: list[Shown]
    next_page_token: str
    model_version: str
    generate_time: datetime | None
    fallback: bool
    source: str


@dataclass(frozen=True)
class Refreshed:
    """What RefreshRecommendations returns (the job's JSON line)."""

    model_version: str
    generate_time: datetime
    users: int
    items: int
    interactions: int
    user_lists: int
    category_lists: int
    similar_lists: int
    dropped_versions: int
    train_seconds: float


class CatalogClient:
    """Catalog over gRPC: one BatchGetItems per answer."""

    def __init__(self, stub: catalog_pb2_grpc.CatalogServiceStub, timeout: float) -> None:
        self.stub, self.timeout = stub, timeout

    async def items(self, ids: Sequence[str]) -> dict[str, catalog_pb2.Item] | None:
        """id -> Item for the ids the catalog knows; None when it is unreachable."""
        if not ids:
            return {}
        try:
            resp = await self.stub.BatchGetItems(
                catalog_pb2.BatchGetItemsRequest(item_ids=list(ids)), timeout=self.timeout)
        except grpc.aio.AioRpcError:
            return None
        return {i.item_id: i for i in resp.items}


class InventoryClient:
    """Inventory over gRPC: one BatchGetStock per answer."""

    def __init__(self, stub: inventory_pb2_grpc.InventoryServiceStub, timeout: float) -> None:
        self.stub, self.timeout = stub, timeout

    async def available(self, ids: Sequence[str]) -> dict[str, int] | None:
        """id -> units available over every warehouse; None when unreachable."""
        if not ids:
            return {}
        try:
            resp = await self.stub.BatchGetStock(
                inventory_pb2.BatchGetStockRequest(item_ids=list(ids)), timeout=self.timeout)
        except grpc.aio.AioRpcError:
            return None
        return {s.item_id: s.total_available for s in resp.items}


def _is_store_error(exc: BaseException) -> bool:
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable

    return isinstance(exc, DriverException | NoHostAvailable)


Trainer = Callable[[], Awaitable[dict[str, Any]]]


# The lake tables training reads its signals from (pipelines/recs.py).
SIGNAL_TABLES = ("orders_lifecycle", "cart_events")


def lake_has_signals(lake: str) -> bool:
    """False when a local (``file:``) lake holds none of the tables training
    reads, so a refresh can say so at once instead of starting Spark; a
    remote lake is assumed to have them."""
    parsed = urllib.parse.urlparse(lake)
    if parsed.scheme not in ("", "file"):
        return True
    root = Path(urllib.parse.unquote(parsed.path))
    return any((root / table / "_delta_log").is_dir() for table in SIGNAL_TABLES)


def subprocess_trainer(env: dict[str, str], timeout: float, lake: str = "") -> Trainer:
    """Runs ``python -m pipelines.recs --once`` (a Spark driver of its own,
    so the service process never hosts a JVM) and returns its JSON line.
    An empty local lake is FAILED_PRECONDITION without starting Spark."""

    async def train() -> dict[str, Any]:
        if lake and not lake_has_signals(lake):
            raise FailedPrecondition(
                f"the event lake at {lake} has no orders or cart events yet; the "
                "analytics job writes them as the shop is used",
                reason="LAKE_EMPTY")
        # Started by the subprocess module (vfork and exec), not by the
        # event loop: uvloop's spawn is a plain fork(), which runs gRPC's
        # fork handlers in a process with live gRPC threads, and the child
        # could abort before its exec ("Check failed: next_worker->state ==
        # KICKED"), failing the training with no output.
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.recs", "--once", "--wait", str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        try:
            out, err = await asyncio.to_thread(proc.communicate, timeout=timeout + 60)
        except (subprocess.TimeoutExpired, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            if isinstance(exc, subprocess.TimeoutExpired):
                raise Unavailable(f"training took longer than {timeout + 60:.0f} s",
                                  reason="TRAINING_FAILED") from None
            raise
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
        result = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 or "model_version" not in result:
            detail = result.get("error") or err.decode(errors="replace").strip()[-500:]
            raise Unavailable(f"training failed: {detail}", reason="TRAINING_FAILED")
        return dict(result)

    return train


class RecsService:
    """The four use cases."""

    def __init__(self, store: RecsStore, catalog: CatalogClient, inventory: InventoryClient,
                 trainer: Trainer, refresh_wait_seconds: float = 1200.0,
                 claim_poll_seconds: float = 1.0) -> None:
        self.store = store
        self.catalog = catalog
        self.inventory = inventory
        self.trainer = trainer
        # How long a keyed refresh waits for another copy training the same
        # key (and how long that copy's claim lives if it dies).
        self.refresh_wait_seconds = refresh_wait_seconds
        self.claim_poll_seconds = claim_poll_seconds

    async def _read(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except Exception as exc:
            if _is_store_error(exc):
                raise Unavailable("the recommendations store is unreachable",
                                  reason="STORE_UNAVAILABLE") from exc
            raise

    async def _version(self, token: str, scope: str) -> tuple[domain.Page | None,
                                                                str | None, datetime | None]:
        """(page, version, generate time): the token's version when paging,
        else the current one (None when no model was ever published)."""
        page = domain.decode_token(token, scope)
        if page is not None:
            at = await self._read(self.store.generate_time(page.version))
            if at is None:
                raise FailedPrecondition(
                    "the model this page_token belongs to was replaced; start again without it",
                    reason="MODEL_REPLACED")
            return page, page.version, at
        pointer = await self._read(self.store.pointer())
        if pointer is None:
            return None, None, None
        return None, pointer.model_version, pointer.generate_time

    async def _exclude(self, version: str, user_id: str | None) -> frozenset[str]:
        if not user_id:
            return frozenset()
        return await self._read(self.store.bought(version, user_id))

    async def list_user(self, user_id: str, size: int, token: str, category: str) -> Answer:
        user = domain.required_id("user_id", user_id)
        n = domain.page_size(size)
        cat = domain.category(category, required=False)
        scope = f"u:{user}:{cat}"
        page, version, at = await self._version(token, scope)
        if version is None:
            return Answer([], "", "", None, True, domain.POPULARITY)
        hits = await self._read(self.store.user_list(version, user))
        source = domain.PERSONAL
        if not hits and cat:
            hits = await self._read(self.store.category_list(version, cat))
            source = domain.CATEGORY_POPULARITY
        if not hits:
            hits = await self._read(self.store.category_list(version, ALL))
            source = domain.POPULARITY
        exclude = await self._exclude(version, user)
        return await self._answer(hits, exclude, page, version, at, n, scope, source,
                                  fallback=source != domain.PERSONAL)

    async def list_category(self, category: str, size: int, token: str,
                            caller: str | None) -> Answer:
        cat = domain.category(category, required=True)
        n = domain.page_size(size)
        scope = f"c:{cat}"
        page, version, at = await self._version(token, scope)
        if version is None:
            return Answer([], "", "", None, True, domain.POPULARITY)
        hits = await self._read(self.store.category_list(version, cat))
        source = domain.CATEGORY_POPULARITY
        if not hits:
            hits = await self._read(self.store.category_list(version, ALL))
            source = domain.POPULARITY
        exclude = await self._exclude(version, caller)
        return await self._answer(hits, exclude, page, version, at, n, scope, source,
                                  fallback=source != domain.CATEGORY_POPULARITY)

    async def list_similar(self, item_id: str, size: int, token: str,
                           caller: str | None) -> Answer:
        item = domain.required_id("item_id", item_id)
        n = domain.page_size(size)
        scope = f"i:{item}"
        page, version, at = await self._version(token, scope)
        if version is None:
            return Answer([], "", "", None, True, domain.POPULARITY)
        hits = await self._read(self.store.similar_list(version, item))
        source = domain.SIMILAR
        if not hits:
            hits = await self._read(self.store.category_list(version, ALL))
            source = domain.POPULARITY
        exclude = await self._exclude(version, caller) | {item}
        return await self._answer(hits, exclude, page, version, at, n, scope, source,
                                  fallback=source != domain.SIMILAR)

    async def _answer(self, stored: Sequence[Any], exclude: frozenset[str],
                      page: domain.Page | None, version: str, at: datetime | None, n: int,
                      scope: str, source: str, *, fallback: bool) -> Answer:
        hits = [domain.Hit(h.item_id, h.score) for h in stored]
        ids = list(dict.fromkeys(h.item_id for h in hits if h.item_id not in exclude))
        items, stock = await asyncio.gather(self.catalog.items(ids),
                                            self.inventory.available(ids))
        facts: dict[str, domain.Sellable] = {}
        for item_id in ids:
            if items is None:
                # Catalog down: shown unhydrated rather than not at all.
                facts[item_id] = domain.Sellable("", -1, "", True, True)
                continue
            it = items.get(item_id)
            if it is None:
                continue
            try:
                price = money.to_nanos(it.price) // 10_000_000
            except money.MoneyError:
                price = -1
            facts[item_id] = domain.Sellable(
                it.title, price, it.image_urls[0] if it.image_urls else "",
                it.state == catalog_pb2.ITEM_STATE_ACTIVE,
                # Inventory down: stock unknown, so it does not filter.
                True if stock is None else stock.get(item_id, 0) > 0)
        visible = domain.shown(hits, facts, exclude)
        start = page.offset if page else 0
        chunk = visible[start:start + n]
        token = (domain.encode_token(domain.Page(version, start + n), scope)
                 if start + n < len(visible) else "")
        reason = domain.REASONS[source]
        shown = [Shown(h.item_id, h.score, reason, facts[h.item_id].title,
                       facts[h.item_id].price_paise if facts[h.item_id].price_paise >= 0
                       else None, facts[h.item_id].image_url) for h in chunk]
        return Answer(shown, token, version, at, fallback, source)

    async def _refresh_once(self, caller: str, request_id: str) -> dict[str, Any]:
        """Train for a client's key once across every copy of the service:
        the copy that claims the key trains; a retry reaching another copy
        meanwhile waits for that answer instead of training again."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.refresh_wait_seconds
        ttl = int(self.refresh_wait_seconds) + 60
        while True:
            claimed, answer = await self._read(
                self.store.claim_refresh(caller, request_id, ttl))
            if answer:
                return dict(json.loads(answer))
            if claimed:
                break
            if loop.time() >= give_up:
                raise Unavailable(
                    f"a refresh with request_id {request_id!r} is still training; "
                    "retry with the same request_id for its answer",
                    reason="REFRESH_IN_PROGRESS")
            await asyncio.sleep(self.claim_poll_seconds)
        try:
            result = await self.trainer()
        except BaseException:
            # Failed calls are not remembered: a corrected retry trains.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.release_refresh(caller, request_id))
            raise
        await self._read(self.store.save_refresh(caller, request_id, json.dumps(result)))
        return result

    async def refresh(self, caller: str, request_id: str) -> Refreshed:
        """Train and publish now; a retry with the same key (not an
        automatic one) returns the first answer."""
        keyed = bool(request_id) and not request_id.startswith("auto-")
        result = await self._refresh_once(caller, request_id) if keyed else await self.trainer()
        try:
            at = datetime.fromisoformat(result["generate_time"])
        except (KeyError, ValueError):
            at = datetime.now(UTC)
        return Refreshed(
            str(result["model_version"]), at, int(result.get("users", 0)),
            int(result.get("items", 0)), int(result.get("interactions", 0)),
            int(result.get("user_lists", 0)), int(result.get("category_lists", 0)),
            int(result.get("similar_lists", 0)), int(result.get("dropped_versions", 0)),
            float(result.get("train_seconds", 0.0)))

