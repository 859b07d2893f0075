"""Idempotency keys (AIP-155), once for every service.

Every mutation's request message carries an optional ``request_id``. The
REST edge also passes the conventional ``Idempotency-Key`` HTTP header
through as gRPC metadata. :class:`IdempotencyGuard`, run by the mesh server
interceptor around every unary call whose request has a top-level
``request_id`` string field, makes the rules the same everywhere:

* **No key** (neither field nor header): the call gets a fresh key of its
  own (``auto-<32 hex>``) and runs once, with no deduplication. Services
  therefore always see a ``request_id`` and keep one code path.
* **A key** (field or header; both must agree): services deduplicate on it
  (each in its own store, atomically with its effect), so a retry returns the
  first result.
* **The same key with a different request** (another body, another method,
  the same caller): ABORTED, reason ``REQUEST_ID_REUSED``, naming the key;
  never a silent second effect. The guard remembers a fingerprint of each
  successful request (sha256 of the method and the request with the key
  cleared) for :data:`DEFAULT_TTL_SECONDS` in Redis, shared by every copy of
  the service. A failed call is not remembered, so a corrected retry with
  the same key goes through (as with Stripe's keys).
* **Two concurrent calls with one key** in one process: the second waits for
  the first and returns its final answer, never an in-between state. Across
  processes the services' own stores serialise the effect.

Keys are scoped by caller: two users may pick the same key.

If Redis is unreachable, the reuse check degrades to this process's memory
(logged), and the services' own deduplication still prevents a second effect.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from google.protobuf.message import Message

from mesh import tracing
from mesh.errors import Conflict, FieldViolation, InvalidArgument

log = logging.getLogger("mesh.idempotency")

IDEMPOTENCY_KEY_HEADER = "idempotency-key"
KEY_FIELD = "request_id"
AUTO_KEY_PREFIX = "auto-"
REASON_REUSED = "REQUEST_ID_REUSED"
# How long a key's fingerprint is remembered (Stripe keeps keys 24 h; a week
# covers a client retrying after a long outage).
DEFAULT_TTL_SECONDS = 7 * 24 * 3600


def request_id_reused(key: str, detail: str = "") -> Conflict:
    """The error for a key reused with a different request (409 through the edge)."""
    message = f"request_id {key!r} was already used for a different request"
    if detail:
        message += f" ({detail})"
    return Conflict(
        message + "; use a new request_id for a new request",
        reason=REASON_REUSED,
        metadata={"request_id": key},
    )


def has_key_field(request: Any) -> bool:
    """True when ``request`` is a message with a top-level ``request_id`` string."""
    if not isinstance(request, Message):
        return False
    field = request.DESCRIPTOR.fields_by_name.get(KEY_FIELD)
    return field is not None and field.type == field.TYPE_STRING and not _repeated(field)


def _repeated(field: Any) -> bool:
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(field.label == field.LABEL_REPEATED)


def fresh_key() -> str:
    """A key for a call that brought none: unique, so nothing is deduplicated."""
    return AUTO_KEY_PREFIX + uuid.uuid4().hex


def fingerprint(method: str, request: Message) -> str:
    """What a request asked for, independent of its key."""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField(KEY_FIELD)
    digest = hashlib.sha256(method.encode())
    digest.update(b"\0")
    digest.update(copy.SerializeToString(deterministic=True))
    return digest.hexdigest()


class FingerprintStore(Protocol):
    """Where the fingerprints of keyed requests are remembered."""

    async def get(self, key: str) -> str | None: ...

    async def put_if_absent(self, key: str, value: str, ttl: int) -> str | None:
        """Store ``value`` unless ``key`` exists; return the value already there."""
        ...


class MemoryFingerprints:
    """A bounded, per-process store (tests, and the fallback when Redis is down)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._capacity = capacity

    async def get(self, key: str) -> str | None:
        found = self._items.get(key)
        if found is None:
            return None
        if found[1] < time.monotonic():
            self._items.pop(key, None)
            return None
        return found[0]

    async def put_if_absent(self, key: str, value: str, ttl: int) -> str | None:
        existing = await self.get(key)
        if existing is not None:
            return existing
        self._items[key] = (value, time.monotonic() + ttl)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return None


class RedisFingerprints:
    """Fingerprints in Redis, shared by every copy of a service. Falls back to
    process memory while Redis cannot be reached."""

    def __init__(self, url: str, prefix: str = "") -> None:
        import redis.asyncio as redis

        self._redis = tracing.instrument_redis(redis.from_url(
            url, socket_connect_timeout=0.5, socket_timeout=0.5, decode_responses=True
        ))
        self._prefix = prefix + "idem:"
        self._fallback = MemoryFingerprints()
        self._warned_at = 0.0

    def _degraded(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("idempotency fingerprints fall back to memory: %s", exc)

    async def get(self, key: str) -> str | None:
        try:
            value = await self._redis.get(self._prefix + key)
        except Exception as exc:  # noqa: BLE001 - degrade, never fail the call
            self._degraded(exc)
            return await self._fallback.get(key)
        return value if isinstance(value, str) else None

    async def put_if_absent(self, key: str, value: str, ttl: int) -> str | None:
        try:
            previous = await self._redis.set(self._prefix + key, value, nx=True, ex=ttl, get=True)
        except Exception as exc:  # noqa: BLE001 - degrade, never fail the call
            self._degraded(exc)
            return await self._fallback.put_if_absent(key, value, ttl)
        return previous if isinstance(previous, str) else None

    async def close(self) -> None:
        await self._redis.aclose()


class IdempotencyGuard:
    """Resolves, checks and single-flights the idempotency key of each call."""

    def __init__(
        self, store: FingerprintStore | None = None, ttl: int = DEFAULT_TTL_SECONDS
    ) -> None:
        self.store: FingerprintStore = store or MemoryFingerprints()
        self.ttl = ttl
        self._inflight: dict[str, tuple[str, asyncio.Future[Any]]] = {}

    @staticmethod
    def resolve_key(request: Message, header: str | None) -> bool:
        """Put the call's key into ``request.request_id``; True when the client
        chose it (field or header), False when a fresh one was made up."""
        body = getattr(request, KEY_FIELD)
        header = (header or "").strip()
        if body and header and body != header:
            raise InvalidArgument(
                violations=[
                    FieldViolation(
                        KEY_FIELD,
                        f"is {body!r} but the Idempotency-Key header says {header!r}; "
                        "send one key, or the same key in both",
                    )
                ],
                reason="REQUEST_ID_MISMATCH",
            )
        if body:
            return True
        if header:
            setattr(request, KEY_FIELD, header)
            return True
        setattr(request, KEY_FIELD, fresh_key())
        return False

    async def _join_inflight(self, scope: str, fp: str, key: str) -> tuple[bool, Any]:
        """Wait for a concurrent call with the same key and request; (True,
        its answer), or (False, None) when none is running (any more)."""
        while True:
            inflight = self._inflight.get(scope)
            if inflight is None:
                return False, None
            other_fp, theirs = inflight
            if other_fp != fp:
                raise request_id_reused(key, "another request with this key is in progress")
            try:
                return True, await asyncio.shield(theirs)
            except asyncio.CancelledError:
                if theirs.cancelled():
                    # The first caller went away mid-call: run it ourselves
                    # (the service's own deduplication keeps it to one effect).
                    continue
                raise

    async def run(
        self,
        method: str,
        request: Message,
        header: str | None,
        caller_id: str | None,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """Run ``call`` under the key rules above."""
        if not self.resolve_key(request, header):
            return await call()
        key = getattr(request, KEY_FIELD)
        scope = f"{caller_id or '-'}:{key}"
        fp = fingerprint(method, request)
        known = await self.store.get(scope)
        if known is not None and known != fp:
            raise request_id_reused(key)
        joined, answer = await self._join_inflight(scope, fp, key)
        if joined:
            return answer
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[scope] = (fp, future)
        try:
            result = await call()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # read here, so no waiter means no warning
            raise
        finally:
            if self._inflight.get(scope, (None, None))[1] is future:
                del self._inflight[scope]
        previous = await self.store.put_if_absent(scope, fp, self.ttl)
        if previous is not None and previous != fp:
            reused = request_id_reused(key)
            future.set_exception(reused)
            future.exception()
            raise reused
        future.set_result(result)
        return result
