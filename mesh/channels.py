"""Channels to other services, with keepalive, retries and context propagation.

Every outgoing call made through these channels carries the current call's
``x-request-id`` and ``x-jwt-payload`` (so the downstream service logs the
same request id and authorises the same end user) and a deadline: the
caller's explicit timeout, else the channel default, but never beyond what
is left of the inbound deadline.

Retries (gRPC's own, configured through the service config) apply only to
methods the caller names as idempotent, only on UNAVAILABLE, with a few
attempts and exponential backoff. Other methods still get gRPC's
transparent retry of calls that never left the client, which is safe.

Usage in ``main.py``::

    channels = mesh.Channels(settings)
    svc.on_shutdown(channels.close)
    inventory = InventoryServiceStub(channels.get(
        "inventory", idempotent=["ecom.inventory.v1.InventoryService/GetStock"]))
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from mesh import tracing
from mesh.auth import JWT_PAYLOAD_HEADER
from mesh.config import ServiceSettings, grpc_target
from mesh.context import REQUEST_ID_HEADER, current_call

# Ping every 30s (also when idle) so a dead peer or a silently dropped
# connection is noticed in seconds rather than at the next call's deadline.
CLIENT_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 1),
    # gRPC's reconnect backoff grows to two minutes by default: a service
    # would treat a peer that restarted in a second as down for that long.
    # Peers here are close by, so retry connecting within two seconds.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC retry policy for idempotent methods (A6 service config)."""

    max_attempts: int = 4
    initial_backoff_seconds: float = 0.1
    max_backoff_seconds: float = 2.0
    backoff_multiplier: float = 2.0
    retryable_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def as_config(self) -> dict[str, Any]:
        return {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff_seconds:g}s",
            "maxBackoff": f"{self.max_backoff_seconds:g}s",
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": list(self.retryable_codes),
        }


def _method_name(name: str) -> dict[str, str]:
    """``pkg.Service/Method`` -> one method; ``pkg.Service`` -> all its methods."""
    service, _, method = name.lstrip("/").partition("/")
    return {"service": service, "method": method} if method else {"service": service}


def service_config(idempotent: Iterable[str] = (), retry: RetryPolicy | None = None) -> str:
    """The JSON service config: round-robin over resolved addresses, and
    ``retry`` for the ``idempotent`` methods only."""
    config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
    names = [_method_name(n) for n in idempotent]
    if names:
        config["methodConfig"] = [
            {"name": names, "retryPolicy": (retry or RetryPolicy()).as_config()}
        ]
        # Stop retrying when most calls fail: retries must not amplify an outage.
        config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    return json.dumps(config)


class PropagatingInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds request id, caller and the propagated deadline to each call."""

    def __init__(self, default_timeout: float | None) -> None:
        self.default_timeout = default_timeout

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        call = current_call()
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        timeout = details.timeout if details.timeout is not None else self.default_timeout
        if call is not None:
            if REQUEST_ID_HEADER not in metadata:
                metadata.add(REQUEST_ID_HEADER, call.request_id)
            if call.jwt_payload and JWT_PAYLOAD_HEADER not in metadata:
                metadata.add(JWT_PAYLOAD_HEADER, call.jwt_payload)
            remaining = call.remaining()
            if remaining is not None:
                timeout = remaining if timeout is None else min(timeout, remaining)
        tracing.inject_metadata(metadata)
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(details), request_iterator)

    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(details), request_iterator)


def open_channel(
    target: str,
    *,
    idempotent: Iterable[str] = (),
    retry: RetryPolicy | None = None,
    default_timeout: float | None = 5.0,
    options: Iterable[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An insecure (private network) channel to ``target`` with mesh defaults.
    ``target`` may list several replicas (``h1:p1,h2:p2``): calls are then
    balanced round-robin across those that are up."""
    return grpc.aio.insecure_channel(
        grpc_target(target),
        options=[
            *CLIENT_OPTIONS,
            ("grpc.service_config", service_config(idempotent, retry)),
            *options,
        ],
        interceptors=[PropagatingInterceptor(default_timeout)],
    )


class Channels:
    """One shared channel per downstream service, addressed by service name
    (``ECOM_<SVC>_ADDR``). Close them all at shutdown."""

    def __init__(self, settings: ServiceSettings, *, retry: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.retry = retry
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._idempotent: dict[str, frozenset[str]] = {}

    def get(self, service: str, *, idempotent: Iterable[str] = ()) -> grpc.aio.Channel:
        """The channel to ``service``; the first call fixes its idempotent
        methods (a later call naming different ones is a wiring bug)."""
        wanted = frozenset(idempotent)
        if service in self._channels:
            if wanted and wanted != self._idempotent[service]:
                raise ValueError(
                    f"channel to {service!r} already open with other idempotent methods"
                )
        else:
            self._idempotent[service] = wanted
            self._channels[service] = open_channel(
                self.settings.addr_of(service),
                idempotent=wanted,
                retry=self.retry,
                default_timeout=self.settings.call_timeout_seconds,
            )
        return self._channels[service]

    async def close(self) -> None:
        """Close every channel (an ``on_shutdown`` callback)."""
        channels, self._channels = list(self._channels.values()), {}
        self._idempotent.clear()
        for channel in channels:
            await channel.close()
