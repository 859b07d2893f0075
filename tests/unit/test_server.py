"""Service lifecycle and dependency-driven health, in process."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from grpc_health.v1 import health_pb2, health_pb2_grpc

import mesh
from mesh.health import HealthMonitor
from mesh.server import StartupError

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _add_ping(servicer: Any, server: Any) -> None:
    async def ping(request: StringValue, context: Any) -> StringValue:
        return request

    handler = grpc.method_handlers_generic_handler(
        "test.v1.Ping",
        {
            "Ping": grpc.unary_unary_rpc_method_handler(
                ping, StringValue.FromString, StringValue.SerializeToString
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))


def _service(**settings: Any) -> mesh.Service:
    svc = mesh.Service("ping", mesh.load_settings(**settings), addr="127.0.0.1:0")
    svc.add_servicer(object(), _add_ping)
    return svc


async def test_probes_drive_health_both_ways() -> None:
    state = {"db": True}

    async def db() -> bool:
        return state["db"]

    async def cache() -> None:
        if not state.get("cache", True):
            raise ConnectionError("refused")

    async def hung() -> None:
        await asyncio.sleep(10)

    monitor = HealthMonitor(interval=60, timeout=0.05)
    monitor.add_dependency("db", db)
    monitor.add_dependency("cache", cache)
    await monitor.start(["test.v1.Ping"])
    assert monitor.serving

    state["db"] = False
    assert not await monitor.check_once()
    assert monitor.dependencies["db"].last_error == "probe returned False"
    state.update(db=True, cache=False)
    assert not await monitor.check_once()
    assert monitor.dependencies["cache"].last_error == "ConnectionError: refused"
    state["cache"] = True
    assert await monitor.check_once()

    monitor.add_dependency("hung", hung)
    assert not await monitor.check_once()
    assert "no answer" in (monitor.dependencies["hung"].last_error or "")
    await monitor.shutdown()


async def test_health_service_follows_dependencies_and_shutdown() -> None:
    up = asyncio.Event()
    up.set()

    async def dependency() -> bool:
        return up.is_set()

    svc = _service(health_check_interval_seconds=0.05)
    svc.add_dependency("thing", dependency)
    await svc.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status(name: str) -> int:
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
            return int(reply.status)

        async def wait_for(want: int) -> None:
            for _ in range(100):
                if await status("test.v1.Ping") == want and await status("") == want:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"health never became {want}")

        await wait_for(SERVING)
        up.clear()
        await wait_for(NOT_SERVING)
        up.set()
        await wait_for(SERVING)
        await svc.health.shutdown()
        assert await status("") == NOT_SERVING
    await svc.stop(grace=0)


async def test_cleanup_runs_in_reverse_even_when_one_fails() -> None:
    ran: list[str] = []
    svc = _service()

    async def close_pool() -> None:
        ran.append("pool")

    def broken() -> None:
        ran.append("broken")
        raise RuntimeError("cannot close")

    svc.on_startup(lambda: ran.append("startup"))
    svc.on_shutdown(close_pool)
    svc.on_shutdown(broken)
    svc.on_shutdown(lambda: ran.append("relay"))
    runner = asyncio.create_task(svc.run())
    while svc.port is None:
        await asyncio.sleep(0.01)
    svc.request_stop()
    assert await runner == 0
    assert ran == ["startup", "relay", "broken", "pool"]


async def test_crashed_background_task_stops_the_process_with_code_1() -> None:
    svc = _service()

    async def relay() -> None:
        raise RuntimeError("kafka gone")

    svc.add_task("outbox-relay", relay)
    assert await asyncio.wait_for(svc.run(), 5) == 1


async def test_port_in_use_fails_loudly() -> None:
    first = _service()
    await first.start()
    second = mesh.Service("ping", first.settings, addr=f"127.0.0.1:{first.port}")
    second.add_servicer(object(), _add_ping)
    with pytest.raises(StartupError, match="cannot listen"):
        await second.start()
    await first.stop(grace=0)


async def test_service_name_is_required_when_it_cannot_be_read() -> None:
    svc = mesh.Service("ping", mesh.load_settings(), addr="127.0.0.1:0")
    svc.add_servicer(object(), lambda servicer, server: None)
    with pytest.raises(StartupError, match="pass name="):
        await svc.start()
