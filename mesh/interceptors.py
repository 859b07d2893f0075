"""The server interceptor every mesh service runs behind.

grpc.aio server interceptors only see the method name before the call, not
its outcome, so this one wraps the *handler* it gets back: the wrapper runs
inside the call's task, around the servicer method, and therefore sees the
request metadata, the exception (if any) and the final status. For each
call it:

* opens a :func:`mesh.context.call_scope`-style context: request id (from
  ``x-request-id`` or fresh), caller (from ``x-jwt-payload``), and absolute
  deadline, which :mod:`mesh.channels` propagates on outgoing calls;
* makes the caller the default user (``user_id`` empty or ``me``, see
  :func:`mesh.auth.apply_caller_defaults`) and applies the idempotency-key
  rules of :mod:`mesh.idempotency` to every request with a ``request_id``;
* maps exceptions to a status once: :class:`mesh.errors.DomainError` to its
  code with rich details, anything unexpected to INTERNAL with a generic
  message (the traceback goes to the server log only);
* echoes the request id in trailing metadata (also on errors);
* writes one JSON access-log line (logger ``ecom.access``): method, code,
  duration_ms, request_id, user_id, peer, and reason for domain errors.

Unary and streaming handlers are both covered; streaming handlers may be
async generators or coroutines that call ``context.write``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from mesh import metrics, tracing
from mesh.auth import apply_caller_defaults, caller_from_metadata
from mesh.context import REQUEST_ID_HEADER, CallContext, activate, new_request_id
from mesh.errors import DomainError, to_grpc_status, to_rpc_status
from mesh.idempotency import IDEMPOTENCY_KEY_HEADER, IdempotencyGuard, has_key_field

access_log = logging.getLogger("ecom.access")
log = logging.getLogger("mesh.interceptors")

# Infrastructure calls (probes every few seconds, grpcurl) log at DEBUG.
QUIET_METHOD_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]


def _metadata_value(metadata: Any, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


class _Call:
    """Book-keeping for one call: its context, outcome and access-log line."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.context = context
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.reason: str | None = None
        self.identity_error: DomainError | None = None
        self.span: Any = None
        metadata = context.invocation_metadata()
        self.metadata = metadata
        inbound_id = _metadata_value(metadata, REQUEST_ID_HEADER)
        request_id = (
            inbound_id if inbound_id and _VALID_REQUEST_ID.match(inbound_id) else new_request_id()
        )
        caller, raw_payload = None, None
        try:
            caller, raw_payload = caller_from_metadata(metadata)
        except DomainError as exc:
            self.identity_error = exc
        # Set up front so it also rides on a status the servicer sends itself
        # with context.abort(); later trailing metadata is merged with it.
        context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
        remaining = context.time_remaining()
        self.ctx = CallContext(
            request_id=request_id,
            method=method,
            caller=caller,
            jwt_payload=raw_payload,
            deadline=None if remaining is None else time.monotonic() + remaining,
        )

    def _echo_request_id(self, extra: tuple[tuple[str, str | bytes], ...] = ()) -> tuple[Any, ...]:
        existing = tuple(self.context.trailing_metadata() or ()) + extra
        if any(k == REQUEST_ID_HEADER for k, _ in existing):
            return existing
        merged = (*existing, (REQUEST_ID_HEADER, self.ctx.request_id))
        self.context.set_trailing_metadata(merged)
        return merged

    def succeeded(self) -> None:
        code = self.context.code()
        self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
        self._echo_request_id()

    async def failed(self, exc: BaseException) -> None:
        """Record ``exc`` and end the call with the right status. Always raises."""
        if isinstance(exc, grpc.aio.AbortError):
            # The servicer called context.abort itself; keep its status.
            code = self.context.code()
            self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
            raise exc
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            expired = self.ctx.remaining() == 0.0
            self.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
            raise exc
        if not isinstance(exc, Exception):
            self.code = grpc.StatusCode.UNKNOWN
            raise exc
        rich = to_rpc_status(exc, self.ctx.request_id)
        status = to_grpc_status(rich)
        self.code = status.code
        if isinstance(exc, DomainError):
            self.reason = exc.reason
        elif isinstance(exc, grpc.RpcError) and self.code != grpc.StatusCode.INTERNAL:
            log.warning(
                "downstream call failed in %s: %s",
                self.method,
                exc,
                extra={"request_id": self.ctx.request_id},
            )
        else:
            log.error(
                "unhandled error in %s",
                self.method,
                exc_info=exc,
                extra={"request_id": self.ctx.request_id},
            )
        trailing = self._echo_request_id(tuple(status.trailing_metadata))
        await self.context.abort(status.code, status.details, trailing)

    def log(self, policy: AccessLogPolicy | None = None) -> None:
        """Record the call: metrics, its span's status, the access-log line
        (unless ``policy`` leaves this call out)."""
        elapsed = time.perf_counter() - self.started
        metrics.observe_rpc(self.method, self.code.name, elapsed)
        tracing.end_server_span(self.span, self.code)
        if policy is not None and not policy.wants(self.code, elapsed):
            return
        level = logging.DEBUG if self.method.startswith(QUIET_METHOD_PREFIXES) else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "method": self.method,
            "code": self.code.name,
            "duration_ms": round(elapsed * 1000, 2),
            "request_id": self.ctx.request_id,
            "user_id": self.ctx.caller.user_id if self.ctx.caller else None,
            "peer": self.context.peer(),
        }
        if self.reason:
            fields["reason"] = self.reason
        access_log.log(level, "rpc", extra=fields)


class AccessLogPolicy:
    """Which calls get an access-log line (``ECOM_ACCESS_LOG``): ``all``;
    ``errors``, the calls that failed or took longer than ``slow_ms``; or
    ``off``. Writing a JSON line per call costs a few percent of a busy
    service's CPU (see docs/observability.md); the metrics count every
    call regardless."""

    def __init__(self, mode: str = "all", slow_ms: float = 100.0) -> None:
        self.mode = mode
        self.slow_seconds = slow_ms / 1000

    def wants(self, code: grpc.StatusCode, elapsed: float) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "off":
            return False
        return code != grpc.StatusCode.OK or elapsed >= self.slow_seconds


def _wrap_call(
    behavior: Handler,
    method: str,
    guard: IdempotencyGuard | None = None,
    policy: AccessLogPolicy | None = None,
) -> Handler:
    """Wrap a handler that returns (or awaits) its result. With ``guard``, a
    unary request is first given its default user and idempotency key."""

    async def invoke(request: Any, context: grpc.aio.ServicerContext) -> Any:
        result = behavior(request, context)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        call = _Call(method, context)
        with activate(call.ctx), tracing.server_span(method, call.metadata) as call.span:
            try:
                if call.identity_error:
                    raise call.identity_error
                if guard is not None:
                    apply_caller_defaults(request)
                if guard is not None and has_key_field(request):
                    caller = call.ctx.caller
                    result = await guard.run(
                        method,
                        request,
                        _metadata_value(context.invocation_metadata(), IDEMPOTENCY_KEY_HEADER),
                        caller.user_id if caller else None,
                        lambda: invoke(request, context),
                    )
                else:
                    result = await invoke(request, context)
            except BaseException as exc:
                await call.failed(exc)
                raise  # unreachable: failed() always raises
            else:
                call.succeeded()
                return result
            finally:
                call.log(policy)

    return handler


def _wrap_generator(
    behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]],
    method: str,
    policy: AccessLogPolicy | None = None,
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    """Wrap a streaming handler written as an async generator."""

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        call = _Call(method, context)
        with activate(call.ctx), tracing.server_span(method, call.metadata) as call.span:
            try:
                if call.identity_error:
                    raise call.identity_error
                async for item in behavior(request, context):
                    yield item
            except BaseException as exc:
                await call.failed(exc)
            else:
                call.succeeded()
            finally:
                call.log(policy)

    return handler


def _wrap_streaming(behavior: Any, method: str, policy: AccessLogPolicy | None = None) -> Any:
    if inspect.isasyncgenfunction(behavior):
        return _wrap_generator(behavior, method, policy)
    return _wrap_call(behavior, method, policy=policy)


class MeshServerInterceptor(grpc.aio.ServerInterceptor):
    """Installs the call context, error mapping and access log on every
    method, and the default user and idempotency rules on unary ones."""

    def __init__(
        self, guard: IdempotencyGuard | None = None, access_log: AccessLogPolicy | None = None
    ) -> None:
        self.guard = guard or IdempotencyGuard()
        self.policy = access_log

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        deserialize, serialize = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_call(handler.unary_unary, method, self.guard, self.policy),
                deserialize,
                serialize,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_streaming(handler.unary_stream, method, self.policy), deserialize, serialize
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_call(handler.stream_unary, method, policy=self.policy),
                deserialize,
                serialize,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_streaming(handler.stream_stream, method, self.policy),
                deserialize,
                serialize,
            )
        return handler
