"""Outgoing channels: retries only for idempotent methods, Channels registry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.wrappers_pb2 import StringValue

import mesh
from mesh.channels import RetryPolicy, open_channel, service_config
from mesh.errors import Unavailable

SERVICE = "test.v1.Flaky"
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_seconds=0.01, max_backoff_seconds=0.02)


def test_service_config_retries_only_named_methods() -> None:
    config = json.loads(
        service_config([f"/{SERVICE}/Get", "test.v1.ReadOnly"], RetryPolicy(max_attempts=4))
    )
    [method] = config["methodConfig"]
    assert method["name"] == [
        {"service": SERVICE, "method": "Get"},
        {"service": "test.v1.ReadOnly"},
    ]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert method["retryPolicy"]["maxAttempts"] == 4
    assert "methodConfig" not in json.loads(service_config([]))


class Flaky:
    """Fails with UNAVAILABLE until it has been called ``failures + 1`` times."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, request: StringValue, context: Any) -> StringValue:
        self.calls += 1
        if self.calls <= int(request.value):
            raise Unavailable("warming up")
        return StringValue(value=str(self.calls))


@pytest_asyncio.fixture(scope="module")
async def flaky() -> AsyncIterator[tuple[Flaky, int]]:
    servicer = Flaky()

    def add(s: Flaky, server: Any) -> None:
        method = grpc.unary_unary_rpc_method_handler(
            s.call, StringValue.FromString, StringValue.SerializeToString
        )
        handlers = {"Get": method, "Create": method}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    svc = mesh.Service("flaky", mesh.load_settings(), addr="127.0.0.1:0")
    svc.add_servicer(servicer, add)
    await svc.start()
    assert svc.port is not None
    yield servicer, svc.port
    await svc.stop(grace=0)


def _method(channel: grpc.aio.Channel, name: str) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/{name}", StringValue.SerializeToString, StringValue.FromString
    )


async def test_idempotent_method_is_retried_on_unavailable(flaky: tuple[Flaky, int]) -> None:
    servicer, port = flaky
    servicer.calls = 0
    channel = open_channel(f"127.0.0.1:{port}", idempotent=[f"{SERVICE}/Get"], retry=FAST_RETRY)
    try:
        reply = await _method(channel, "Get")(StringValue(value="2"))
        assert reply.value == "3"  # two failures, then success on the third attempt
    finally:
        await channel.close()


async def test_other_methods_are_not_retried(flaky: tuple[Flaky, int]) -> None:
    servicer, port = flaky
    servicer.calls = 0
    channel = open_channel(f"127.0.0.1:{port}", idempotent=[f"{SERVICE}/Get"], retry=FAST_RETRY)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _method(channel, "Create")(StringValue(value="1"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert servicer.calls == 1
    finally:
        await channel.close()


async def test_channels_registry_reuses_and_closes() -> None:
    channels = mesh.Channels(mesh.load_settings())
    with pytest.raises(KeyError):
        channels.get("nowhere")
    first = channels.get("catalog", idempotent=["ecom.catalog.v1.ItemService/GetItem"])
    assert channels.get("catalog") is first
    with pytest.raises(ValueError, match="other idempotent methods"):
        channels.get("catalog", idempotent=["ecom.catalog.v1.ItemService/DeleteItem"])
    await channels.close()
