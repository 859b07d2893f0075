"""``grpc.health.v1`` status driven by dependency probes.

A service declares what it cannot work without as named async probes
(``"mariadb"`` -> ``SELECT 1``). A probe passes when it returns anything but
``False`` within the timeout; it fails when it raises, times out or returns
``False``. A background task runs all probes every interval; while any
fails, the overall status (``""``) and every registered service are
NOT_SERVING, so Envoy and grpc-health-probe route around the instance; when
all pass again they go back to SERVING. Transitions are logged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

log = logging.getLogger("mesh.health")

Probe = Callable[[], Awaitable[object]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Dependency:
    """One required dependency and what its last probe said."""

    name: str
    probe: Probe
    healthy: bool | None = None
    last_error: str | None = None


class HealthMonitor:
    """Owns the health servicer and the dependency poller of one server."""

    def __init__(self, *, interval: float, timeout: float) -> None:
        self.servicer = health_aio.HealthServicer()
        self.interval = interval
        self.timeout = timeout
        self.dependencies: dict[str, Dependency] = {}
        self._services: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._serving: bool | None = None

    def add_dependency(self, name: str, probe: Probe) -> None:
        if name in self.dependencies:
            raise ValueError(f"dependency {name!r} is already registered")
        self.dependencies[name] = Dependency(name, probe)

    @property
    def serving(self) -> bool:
        """True when every dependency passed its last probe."""
        return bool(self._serving)

    async def start(self, services: Iterable[str]) -> None:
        """Probe once (so the first answer is accurate), then keep polling."""
        self._services = ["", *services]
        await self.check_once()
        if self.dependencies:
            self._task = asyncio.create_task(self._poll(), name="health-poller")

    async def check_once(self) -> bool:
        """Run every probe concurrently, update statuses; True if all passed."""
        deps = list(self.dependencies.values())
        results = await asyncio.gather(*(self._probe(d) for d in deps))
        for dep, error in zip(deps, results, strict=True):
            healthy = error is None
            if healthy != dep.healthy:
                if healthy:
                    log.info("dependency up", extra={"dependency": dep.name})
                else:
                    log.warning("dependency down", extra={"dependency": dep.name, "error": error})
            dep.healthy, dep.last_error = healthy, error
        serving = all(d.healthy for d in deps)
        if serving != self._serving:
            self._serving = serving
            status = SERVING if serving else NOT_SERVING
            for name in self._services:
                await self.servicer.set(name, status)
        return serving

    async def _probe(self, dep: Dependency) -> str | None:
        try:
            result = await asyncio.wait_for(dep.probe(), self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g}s"
        except Exception as exc:  # a probe failing in any way means "down"
            return f"{type(exc).__name__}: {exc}"
        return "probe returned False" if result is False else None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except Exception:  # never let the poller die silently
                log.exception("health poll failed")

    async def shutdown(self) -> None:
        """Stop polling and report NOT_SERVING for everything, for good."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.servicer.enter_graceful_shutdown()
