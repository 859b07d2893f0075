"""Fixtures for end-to-end tests: a real Envoy built by ``edge.config`` in
front of real service processes, reached over HTTP as a client would.

Each Envoy listens on free ports and routes to the addresses the test's
services run on (``services.addr(name)``), so runs never collide with
``make up`` or with each other.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge import config, registry
from infra import tools
from infra.core import REPO, STACK, tail
from mesh import tokens
from tests.ports import free_port


@dataclass
class Edge:
    """One running Envoy."""

    url: str
    admin_url: str
    config_file: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_edge(
    name: str,
    addresses: dict[str, str],
    processes: Sequence[registry.ServiceProcess],
    *,
    rate_limit_per_minute: int = 10_000,
    timeout: float = 30,
    web_addr: str | None = None,
    otlp_endpoint: str = "",
) -> Edge:
    """Generate a config for ``processes`` at ``addresses`` (and, with
    ``web_addr``, the storefront's file server at ``/``) and run Envoy on it;
    wait until it answers /healthz and every cluster is healthy."""
    out_dir = STACK / "edge" / f"test-{name}-{os.getpid()}"
    port, admin = free_port(), free_port()
    settings = config.EdgeSettings(
        edge_port=port, edge_admin_port=admin, edge_rate_limit_per_minute=rate_limit_per_minute,
        edge_health_check_interval_seconds=1.0, otlp_endpoint=otlp_endpoint,
    )
    opts = config.options_from_settings(
        settings, out_dir=out_dir, addresses=addresses, processes=processes, web_addr=web_addr
    )
    cfg = config.write_config(opts, out_dir / "envoy.yaml")
    log = out_dir / "envoy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(tools.envoy()), "-c", str(cfg), "--log-level", "warn",
             "--base-id", str(port)],  # own shared-memory id: several Envoys side by side
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )
    edge = Edge(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", cfg, log, proc)
    deadline = time.monotonic() + timeout
    wanted = {p.cluster for p in processes} | ({config.WEB_CLUSTER} if web_addr else set())
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"envoy exited with {proc.returncode}:\n{tail(log)}")
        try:
            live = httpx.get(f"{edge.url}/healthz", timeout=1).status_code == 200
            clusters = httpx.get(f"{edge.admin_url}/clusters", timeout=1).text
            healthy = {
                line.split("::", 1)[0]
                for line in clusters.splitlines()
                if line.endswith("::health_flags::healthy")
            }
            if live and wanted <= healthy:
                return edge
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    edge.stop()
    raise RuntimeError(f"envoy not ready after {timeout}s:\n{tail(log)}")


@pytest.fixture(scope="session")
def edge_factory() -> Iterator[Callable[..., Edge]]:
    """Start Envoys on demand; all stop at the end of the session."""
    started: list[Edge] = []

    def make(*args: object, **kwargs: object) -> Edge:
        edge = start_edge(*args, **kwargs)  # type: ignore[arg-type]
        started.append(edge)
        return edge

    yield make
    for edge in started:
        edge.stop()


@pytest.fixture(scope="session")
def signing_key():  # type: ignore[no-untyped-def]
    """The key svc_users signs with (the same default path as the services)."""
    return tokens.load_or_create_signing_key(tokens.signing_key_path(config.EdgeSettings()))


@pytest.fixture(scope="session")
def stub_users(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """tests/e2e/stub_users.py as a process on a free port; yields its address."""
    addr = f"127.0.0.1:{free_port()}"
    log = STACK / "logs" / f"test-{stack.run_id}-stub-users.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ECOM_USERS_ADDR": addr, "ECOM_HEALTH_CHECK_INTERVAL_SECONDS": "0.5",
           "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.stub_users"], stdout=out,
            stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True,
        )
    try:
        _wait_port(addr, proc, log)
        yield addr
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_port(addr: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stub exited with {proc.returncode}:\n{tail(log)}")
        with socket.socket() as s:
            if s.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"stub not listening after {timeout}s:\n{tail(log)}")


@pytest.fixture(scope="session")
def users_edge(services, edge_factory) -> Edge:  # type: ignore[no-untyped-def]
    """Envoy in front of the real svc_users."""
    services.start("users")
    return edge_factory("users", {"users": services.addr("users")},
                        [registry.process_named("users")])
