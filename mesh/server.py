"""Build, run and gracefully stop one service process.

A service's ``main.py`` builds a :class:`Service` (servicers, dependency
probes, background tasks, cleanup callbacks) and hands it to :func:`serve`::

    async def build() -> mesh.Service:
        settings = mesh.load_settings(CartSettings)
        mesh.configure_logging(settings.log_level, service="cart")
        engine = create_engine(settings)
        svc = mesh.Service("cart", settings)
        svc.add_servicer(CartApi(engine), cart_pb2_grpc.add_CartServiceServicer_to_server)
        svc.add_dependency("mariadb", lambda: ping(engine))
        svc.on_shutdown(engine.dispose)
        return svc

    if __name__ == "__main__":
        mesh.serve(build)

Every server gets ``grpc.health.v1`` (overall ``""`` and per service),
server reflection listing all its services (grpcurl ``list``/``describe``),
and the :class:`mesh.interceptors.MeshServerInterceptor`.

Shutdown on SIGTERM/SIGINT: health goes NOT_SERVING; the server stops
accepting calls and gives in-flight ones ``ECOM_SHUTDOWN_GRACE_SECONDS`` to
finish (then cancels them); background tasks are cancelled; cleanup
callbacks run last-registered first. The process then exits 0.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import SERVICE_NAME as HEALTH_SERVICE_NAME
from grpc_reflection.v1alpha import reflection

from mesh import metrics, tracing
from mesh.config import ConfigError, ServiceSettings, load_settings
from mesh.health import HealthMonitor, Probe
from mesh.idempotency import IdempotencyGuard, RedisFingerprints
from mesh.interceptors import AccessLogPolicy, MeshServerInterceptor

log = logging.getLogger("mesh.server")

AddToServer = Callable[[Any, Any], None]
Callback = Callable[[], Any]  # sync or async
BackgroundTask = Callable[[], Awaitable[None]]
F = TypeVar("F", bound=Callback)

# Servers allow clients' keepalive pings (mesh.channels pings every 30s) and
# refuse to share a port: with SO_REUSEPORT two instances would silently
# split traffic instead of the second one failing to start.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class StartupError(RuntimeError):
    """The service could not start (address in use, a startup hook failed)."""


class _RecordingServer:
    """Passes registrations to the real server and notes the service names,
    so callers only hand over the generated ``add_XServicer_to_server``."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self.names: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        for handler in handlers:
            service_name = getattr(handler, "service_name", None)
            if callable(service_name):
                self.names.append(service_name())
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: dict[str, Any]) -> None:
        self.names.append(service_name)
        self._server.add_registered_method_handlers(service_name, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class Service:
    """One gRPC server process: its servicers, dependencies and lifecycle.

    ``name`` picks the listen address ``ECOM_<NAME>_ADDR`` from ``settings``
    unless ``addr`` is given (``127.0.0.1:0`` binds an ephemeral port; read
    :attr:`port` after :meth:`start`).
    """

    def __init__(
        self,
        name: str,
        settings: ServiceSettings | None = None,
        *,
        addr: str | None = None,
        options: Sequence[tuple[str, Any]] = (),
        maximum_concurrent_rpcs: int | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or load_settings()
        self.addr = addr or self.settings.listen_addr_of(name)
        self.port: int | None = None
        # Where GET /metrics answers (None: not serving metrics).
        self.metrics_port: int | None = None
        self.server: grpc.aio.Server | None = None
        self.health = HealthMonitor(
            interval=self.settings.health_check_interval_seconds,
            timeout=self.settings.health_check_timeout_seconds,
        )
        self.service_names: list[str] = []
        self.exit_code = 0
        self._options = [*SERVER_OPTIONS, *options]
        self._max_rpcs = maximum_concurrent_rpcs
        self._servicers: list[tuple[Any, AddToServer, str | None]] = []
        self._startup: list[Callback] = []
        self._cleanup: list[Callback] = []
        self._background: list[tuple[str, BackgroundTask]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_requested = asyncio.Event()
        self._stopped = False

    # -- wiring ----------------------------------------------------------
    def add_servicer(
        self, servicer: Any, add_to_server: AddToServer, *, name: str | None = None
    ) -> Service:
        """Serve ``servicer`` via its generated ``add_XServicer_to_server``.
        The full service name is read from the registration unless ``name``
        is given."""
        self._servicers.append((servicer, add_to_server, name))
        return self

    def add_dependency(self, name: str, probe: Probe) -> Service:
        """Require ``name``: health is NOT_SERVING while ``probe()`` fails."""
        self.health.add_dependency(name, probe)
        return self

    def add_task(self, name: str, task: BackgroundTask) -> Service:
        """Run ``task()`` while serving (outbox relay, sweeper, consumer).
        It is cancelled at shutdown; if it crashes, the process shuts down
        with exit code 1 so the supervisor restarts it."""
        self._background.append((name, task))
        return self

    def on_startup(self, callback: F) -> F:
        """Run ``callback`` (sync or async) after binding, before serving."""
        self._startup.append(callback)
        return callback

    def on_shutdown(self, callback: F) -> F:
        """Run ``callback`` (sync or async) after the server has stopped.
        Callbacks run last-registered first; one failing does not stop the rest."""
        self._cleanup.append(callback)
        return callback

    def _idempotency_guard(self) -> IdempotencyGuard:
        """Key fingerprints in Redis, shared by every copy of the service."""
        store = RedisFingerprints(
            self.settings.redis_url, f"{self.settings.redis_prefix}{self.name}:"
        )
        self.on_shutdown(store.close)
        return IdempotencyGuard(store)

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        """Bind, register everything, probe dependencies once and start serving."""
        self.on_shutdown(tracing.setup(self.name, self.settings.otlp_endpoint))
        server = grpc.aio.server(
            interceptors=[
                MeshServerInterceptor(
                    self._idempotency_guard(),
                    AccessLogPolicy(
                        self.settings.access_log, self.settings.access_log_slow_ms
                    ),
                )
            ],
            options=self._options,
            maximum_concurrent_rpcs=self._max_rpcs,
        )
        self.server = server
        recorder = _RecordingServer(server)
        for servicer, add_to_server, name in self._servicers:
            before = len(recorder.names)
            add_to_server(servicer, recorder)
            found = recorder.names[before:]
            if name:
                found = [name]
            if not found:
                raise StartupError(f"cannot tell the service name of {servicer!r}; pass name=")
            self.service_names.extend(n for n in found if n not in self.service_names)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        reflection.enable_server_reflection(
            [*self.service_names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        try:
            port = server.add_insecure_port(self.addr)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {self.addr}: {exc}") from exc
        if not port:
            raise StartupError(f"cannot listen on {self.addr}")
        self.port = port
        exporter = metrics.serve_metrics(self._metrics_addr())
        if exporter is not None:
            self.metrics_port = exporter.port
            self.on_shutdown(exporter.close)
        for callback in self._startup:
            await _call(callback)
        await self.health.start(self.service_names)
        await server.start()
        for task_name, task in self._background:
            self._tasks.append(
                asyncio.create_task(self._supervise(task_name, task), name=task_name)
            )
        host = self.addr.rpartition(":")[0]
        log.info(
            "serving",
            extra={
                "addr": f"{host}:{port}",
                "metrics_port": self.metrics_port,
                "services": self.service_names,
                "healthy": self.health.serving,
            },
        )

    def _metrics_addr(self) -> str:
        try:
            return self.settings.metrics_addr_of(self.name)
        except KeyError:
            # A service outside the port table (a test's ad-hoc server).
            return f"{self.addr.rpartition(':')[0]}:0"

    async def _supervise(self, name: str, task: BackgroundTask) -> None:
        try:
            await task()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task crashed; shutting down", extra={"task": name})
            self.exit_code = 1
            self._stop_requested.set()

    def request_stop(self) -> None:
        """Ask :meth:`run` to shut down (what SIGTERM/SIGINT do)."""
        self._stop_requested.set()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown; ``grace`` defaults to ECOM_SHUTDOWN_GRACE_SECONDS."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        log.info("shutting down", extra={"grace_seconds": grace})
        await self.health.shutdown()
        if self.server is not None:
            # The server refuses new calls from the first step of stop();
            # "draining" is logged once that step has run, while calls in
            # flight get up to ``grace`` to finish.
            stopping = asyncio.ensure_future(self.server.stop(grace))
            await asyncio.sleep(0)
            log.info("draining", extra={"grace_seconds": grace})
            await stopping
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for callback in reversed(self._cleanup):
            try:
                await _call(callback)
            except Exception:
                log.exception("cleanup failed", extra={"callback": _name(callback)})
        log.info("stopped")

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT (or :meth:`request_stop`), stop.
        Returns the process exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            try:
                await self.start()
            except Exception:
                log.exception("startup failed")
                self.exit_code = 1
                return self.exit_code
            await self._stop_requested.wait()
        finally:
            await self.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return self.exit_code

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("signal received", extra={"signal": sig.name})
        self._stop_requested.set()


async def _call(callback: Callback) -> None:
    result = callback()
    if inspect.isawaitable(result):
        await result


def _name(callback: Callback) -> str:
    return getattr(callback, "__qualname__", repr(callback))


def serve(service: Service | Callable[[], Awaitable[Service]]) -> None:
    """Process entry point: run ``service`` (or an async factory building it
    inside the event loop, so pools bind to the right loop) and exit with
    its exit code: 0 after a clean shutdown, 1 when startup or a background
    task failed, 2 on invalid configuration."""

    async def main() -> int:
        try:
            svc = service if isinstance(service, Service) else await service()
        except ConfigError as exc:
            log.critical("%s", exc)
            return 2
        except Exception:
            log.exception("startup failed")
            return 1
        return await svc.run()

    sys.exit(run_loop(main()))


def run_loop(main: Awaitable[int]) -> int:
    """Run ``main`` on uvloop (ECOM_EVENT_LOOP=uvloop, the default) or on the
    standard asyncio loop (ECOM_EVENT_LOOP=asyncio, or uvloop missing)."""
    import os

    factory = None
    if os.environ.get("ECOM_EVENT_LOOP", "uvloop").lower() != "asyncio":
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            log.warning("uvloop not installed; using the asyncio event loop")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]
