"""Per-call context: who is calling, which request this is, and when it must end.

The server interceptor opens a :func:`call_scope` around every handler, so
anything running inside an RPC (servicer code, store code, outgoing calls
made through :mod:`mesh.channels`, log lines) can read it without it being
passed down by hand. Background jobs that call other services (sweepers,
consumers) open their own scope to name a caller and a request id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from mesh.identity import Caller, encode_jwt_payload

REQUEST_ID_HEADER = "x-request-id"


@dataclass(frozen=True)
class CallContext:
    """What mesh knows about the call being served (or the job being run).

    ``deadline`` is an absolute ``time.monotonic()`` value, or None when the
    caller set no deadline. ``jwt_payload`` is the raw ``x-jwt-payload``
    header as received, forwarded verbatim on outgoing calls.
    """

    request_id: str
    method: str = ""
    caller: Caller | None = None
    jwt_payload: str | None = None
    deadline: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())


_current: ContextVar[CallContext | None] = ContextVar("ecom_call", default=None)


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def current_call() -> CallContext | None:
    """The context of the call being served, or None outside any call."""
    return _current.get()


def current_request_id() -> str | None:
    """The request id of the current call, or None outside any call."""
    call = _current.get()
    return call.request_id if call else None


def remaining_time() -> float | None:
    """Seconds left on the inbound deadline, None when there is none."""
    call = _current.get()
    return call.remaining() if call else None


@contextmanager
def call_scope(
    *,
    request_id: str | None = None,
    caller: Caller | None = None,
    timeout: float | None = None,
    method: str = "",
    jwt_payload: str | None = None,
) -> Iterator[CallContext]:
    """Run a block as one call: outgoing calls made inside carry its request
    id, caller and remaining deadline. For background jobs that act on their
    own behalf (pass a ``caller`` with the roles they need)."""
    if jwt_payload is None and caller is not None:
        jwt_payload = encode_jwt_payload(caller)
    ctx = CallContext(
        request_id=request_id or new_request_id(),
        method=method,
        caller=caller,
        jwt_payload=jwt_payload,
        deadline=None if timeout is None else time.monotonic() + timeout,
    )
    with activate(ctx):
        yield ctx


@contextmanager
def activate(ctx: CallContext) -> Iterator[None]:
    """Make ``ctx`` the current call context for the duration of the block."""
    token = _current.set(ctx)
    try:
        yield
    finally:
        try:
            _current.reset(token)
        except ValueError:
            # Closed from another context (an async generator finalised by the
            # event loop); that context is gone with its task anyway.
            pass
