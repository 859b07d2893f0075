"""The server interceptor, on a real in-process grpc.aio server (ephemeral port).

Uses generic handlers over ``google.protobuf.StringValue`` so no contract has
to be compiled: the methods interpret the request text as a command.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.wrappers_pb2 import StringValue
from google.rpc import error_details_pb2
from grpc_status import rpc_status

import mesh
from mesh.auth import Caller, encode_jwt_payload
from mesh.channels import open_channel
from mesh.errors import InvalidArgument, error_details
from mesh.logging import JsonFormatter

SECRET = "SELECT password_hash FROM users -- secret"
SERVICE = "test.v1.Probe"
ALICE = Caller("u-alice", frozenset({"customer"}))
CHANNEL_DEFAULT_TIMEOUT = 7.0
# gRPC rounds the grpc-timeout header up, so a server can see a few ms more
# than the client asked for.
SLACK = 0.05


class Probe:
    """Test servicer; ``loopback`` is a mesh channel back to this server."""

    loopback: grpc.aio.Channel | None = None

    def _unary(self, path: str) -> Any:
        assert self.loopback is not None
        return self.loopback.unary_unary(
            f"/{SERVICE}/{path}", StringValue.SerializeToString, StringValue.FromString
        )

    async def echo(self, request: StringValue, context: grpc.aio.ServicerContext) -> StringValue:
        command = request.value
        if command == "bad":
            raise InvalidArgument.for_field("value", "must not be 'bad'")
        if command == "boom":
            raise RuntimeError(SECRET)
        if command == "abort":
            await context.abort(grpc.StatusCode.NOT_FOUND, "gone")
        if command == "whoami":
            call = mesh.current_call()
            assert call is not None
            caller = call.caller
            return StringValue(
                value=json.dumps(
                    {
                        "user_id": caller.user_id if caller else None,
                        "roles": sorted(caller.roles) if caller else [],
                        "request_id": call.request_id,
                        "remaining": mesh.remaining_time(),
                    }
                )
            )
        if command == "hop":
            return await self._unary("Echo")(StringValue(value="whoami"))
        if command == "dead-downstream":
            dead = open_channel("127.0.0.1:1", default_timeout=2)
            try:
                await dead.unary_unary(f"/{SERVICE}/Echo")(b"")
            finally:
                await dead.close()
        return StringValue(value=command)

    async def count(
        self, request: StringValue, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[StringValue]:
        if request.value == "fail":
            yield StringValue(value="0")
            raise InvalidArgument.for_field("value", "cannot count to 'fail'")
        for i in range(int(request.value)):
            yield StringValue(value=str(i))

    async def collect(
        self, requests: AsyncIterator[StringValue], context: grpc.aio.ServicerContext
    ) -> StringValue:
        parts = [r.value async for r in requests]
        if "boom" in parts:
            raise RuntimeError(SECRET)
        return StringValue(value=",".join(parts))


def _add(servicer: Probe, server: Any) -> None:
    ser, de = StringValue.SerializeToString, StringValue.FromString
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(servicer.echo, de, ser),
            "Count": grpc.unary_stream_rpc_method_handler(servicer.count, de, ser),
            "Collect": grpc.stream_unary_rpc_method_handler(servicer.collect, de, ser),
        },
    )
    server.add_generic_rpc_handlers((handler,))


@pytest_asyncio.fixture(scope="module")
async def server() -> AsyncIterator[mesh.Service]:
    settings = mesh.load_settings(call_timeout_seconds=CHANNEL_DEFAULT_TIMEOUT)
    probe = Probe()
    svc = mesh.Service("probe", settings, addr="127.0.0.1:0")
    svc.add_servicer(probe, _add)
    await svc.start()
    probe.loopback = open_channel(f"127.0.0.1:{svc.port}", default_timeout=CHANNEL_DEFAULT_TIMEOUT)
    yield svc
    await probe.loopback.close()
    await svc.stop(grace=0)


@pytest_asyncio.fixture(scope="module")
async def channel(server: mesh.Service) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="ecom.access")
    return caplog


def echo(channel: grpc.aio.Channel) -> Any:
    return channel.unary_unary(
        f"/{SERVICE}/Echo", StringValue.SerializeToString, StringValue.FromString
    )


async def access_lines(caplog: pytest.LogCaptureFixture, count: int = 1) -> list[dict[str, Any]]:
    """Access-log records rendered exactly as the JSON formatter writes them,
    once there are ``count`` of them. The line is written as the call ends on
    the server; when the call ends with an abort, the client can hold the
    status a moment before that, so this waits (up to 5 s) for the lines."""
    fmt = JsonFormatter("probe")
    for _ in range(500):
        records = [r for r in caplog.records if r.name == "ecom.access"]
        if len(records) >= count:
            break
        await asyncio.sleep(0.01)
    return [json.loads(fmt.format(r)) for r in records]


def trailing(metadata: Any) -> dict[str, Any]:
    return {k: v for k, v in metadata or ()}


async def test_access_log_line_and_request_id_echo(channel, access) -> None:  # type: ignore[no-untyped-def]
    call = echo(channel)(
        StringValue(value="hello"),
        metadata=(("x-request-id", "req-abc-1"), ("x-jwt-payload", encode_jwt_payload(ALICE))),
    )
    assert (await call).value == "hello"
    assert trailing(await call.trailing_metadata())["x-request-id"] == "req-abc-1"
    [line] = await access_lines(access)
    assert line["msg"] == "rpc"
    assert line["method"] == f"/{SERVICE}/Echo"
    assert line["code"] == "OK"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["request_id"] == "req-abc-1"
    assert line["user_id"] == "u-alice"
    assert line["service"] == "probe" and line["level"] == "INFO"


async def test_request_id_is_generated_when_missing_or_unsafe(channel, access) -> None:  # type: ignore[no-untyped-def]
    plain = echo(channel)(StringValue(value="x"))
    await plain
    generated = trailing(await plain.trailing_metadata())["x-request-id"]
    assert len(generated) == 32

    unsafe = echo(channel)(StringValue(value="x"), metadata=(("x-request-id", "has spaces " * 20),))
    await unsafe
    replaced = trailing(await unsafe.trailing_metadata())["x-request-id"]
    assert len(replaced) == 32 and " " not in replaced
    assert [line["request_id"] for line in await access_lines(access, 2)] == [generated, replaced]


async def test_invalid_argument_has_decodable_field_violation(channel, access) -> None:  # type: ignore[no-untyped-def]
    call = echo(channel)(StringValue(value="bad"), metadata=(("x-request-id", "req-bad"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "value: must not be 'bad'"
    status = await rpc_status.aio.from_call(call)
    assert status is not None
    details = error_details(status)
    [bad] = [d for d in details if isinstance(d, error_details_pb2.BadRequest)]
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("value", "must not be 'bad'")
    ]
    [info] = [d for d in details if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info.reason == "INVALID_ARGUMENT" and info.domain == "ecom.dev"
    assert trailing(await call.trailing_metadata())["x-request-id"] == "req-bad"
    [line] = await access_lines(access)
    assert line["code"] == "INVALID_ARGUMENT" and line["reason"] == "INVALID_ARGUMENT"


async def test_unexpected_exception_is_internal_without_its_text(channel, access) -> None:  # type: ignore[no-untyped-def]
    call = echo(channel)(StringValue(value="boom"), metadata=(("x-request-id", "req-boom"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    err = caught.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details() == "internal error (request id req-boom)"
    everything_sent = repr(err.details()) + repr(await call.trailing_metadata())
    assert "SELECT" not in everything_sent and "password" not in everything_sent
    # The server log keeps the full story under the same request id.
    [logged] = [r for r in access.records if r.name == "mesh.interceptors"]
    server_line = json.loads(JsonFormatter().format(logged))
    assert server_line["request_id"] == "req-boom"
    assert SECRET in server_line["exc"]
    assert (await access_lines(access))[0]["code"] == "INTERNAL"


async def test_servicer_abort_keeps_its_status_and_gets_request_id(channel, access) -> None:  # type: ignore[no-untyped-def]
    call = echo(channel)(StringValue(value="abort"), metadata=(("x-request-id", "req-ab"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert trailing(await call.trailing_metadata())["x-request-id"] == "req-ab"
    assert (await access_lines(access))[0]["code"] == "NOT_FOUND"


async def test_downstream_unavailable_is_passed_on(channel, access) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await echo(channel)(StringValue(value="dead-downstream"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "a dependency is unavailable"
    assert (await access_lines(access))[-1]["code"] == "UNAVAILABLE"


async def test_caller_identity_and_malformed_identity(channel, access) -> None:  # type: ignore[no-untyped-def]
    me = await echo(channel)(
        StringValue(value="whoami"), metadata=(("x-jwt-payload", encode_jwt_payload(ALICE)),)
    )
    assert json.loads(me.value)["user_id"] == "u-alice"
    anonymous = await echo(channel)(StringValue(value="whoami"))
    assert json.loads(anonymous.value)["user_id"] is None
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await echo(channel)(StringValue(value="whoami"), metadata=(("x-jwt-payload", "!!"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await access_lines(access, 3))[-1]["code"] == "UNAUTHENTICATED"


async def test_deadline_request_id_and_caller_propagate_downstream(channel) -> None:  # type: ignore[no-untyped-def]
    outer = await echo(channel)(
        StringValue(value="hop"),
        timeout=2.0,
        metadata=(("x-request-id", "req-hop"), ("x-jwt-payload", encode_jwt_payload(ALICE))),
    )
    inner = json.loads(outer.value)
    assert 0 < inner["remaining"] <= 2.0 + SLACK
    assert inner["request_id"] == "req-hop"
    assert (inner["user_id"], inner["roles"]) == ("u-alice", ["customer"])


async def test_without_inbound_deadline_the_channel_default_applies(channel) -> None:  # type: ignore[no-untyped-def]
    direct = json.loads((await echo(channel)(StringValue(value="whoami"))).value)
    assert direct["remaining"] is None
    inner = json.loads((await echo(channel)(StringValue(value="hop"))).value)
    assert CHANNEL_DEFAULT_TIMEOUT - 1 < inner["remaining"] <= CHANNEL_DEFAULT_TIMEOUT + SLACK


async def test_server_streaming_ok_and_error_mid_stream(channel, access) -> None:  # type: ignore[no-untyped-def]
    count = channel.unary_stream(
        f"/{SERVICE}/Count", StringValue.SerializeToString, StringValue.FromString
    )
    assert [m.value async for m in count(StringValue(value="3"))] == ["0", "1", "2"]
    call = count(StringValue(value="fail"))
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for message in call:
            received.append(message.value)
    assert received == ["0"]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = await rpc_status.aio.from_call(call)
    assert status is not None
    assert any(isinstance(d, error_details_pb2.BadRequest) for d in error_details(status))
    assert [line["code"] for line in await access_lines(access, 2)] == ["OK", "INVALID_ARGUMENT"]


async def test_client_streaming(channel, access) -> None:  # type: ignore[no-untyped-def]
    collect = channel.stream_unary(
        f"/{SERVICE}/Collect", StringValue.SerializeToString, StringValue.FromString
    )
    ok = await collect(iter([StringValue(value="a"), StringValue(value="b")]))
    assert ok.value == "a,b"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(iter([StringValue(value="boom")]))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in (caught.value.details() or "")


async def test_health_and_reflection_are_registered(server: mesh.Service, channel) -> None:  # type: ignore[no-untyped-def]
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert server.service_names == [SERVICE]
