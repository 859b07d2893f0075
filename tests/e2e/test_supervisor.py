"""``python -m infra.services``: up starts the services (two processes of
each) and the edge and waits until healthy; Envoy reaches both replicas; a
replica killed with -9 is restarted and counted while the other serves;
down stops exactly what up started. Runs in its own stack directory, ports
and name prefixes so it never touches a developer's ``make up``.

Needs MariaDB and Redis (svc_users): ECOM_TEST_SERVERS=mariadb,redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edge import registry
from infra.core import REPO, pid_alive
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.integration


def _run(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.services", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _state(stack_dir: Path) -> dict:
    return json.loads((stack_dir / "run" / "services.json").read_text())


def test_up_restart_down(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if not registry.process_named("users").present():
        pytest.skip("svc_users is not implemented yet")
    stack_dir = tmp_path / "stack"
    edge_port, edge_admin, users_metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ, **stack.env,
        "ECOM_STACK_DIR": str(stack_dir),
        "ECOM_SERVICES": "users",
        "ECOM_USERS_ADDR": f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}",
        "ECOM_REPLICAS": "2",
        "ECOM_EDGE_PORT": str(edge_port),
        "ECOM_EDGE_ADMIN_PORT": str(admin_port := edge_admin),
        "ECOM_WEB_ADDR": f"127.0.0.1:{free_port()}",
        "ECOM_USERS_METRICS_ADDR": f"127.0.0.1:{users_metrics},127.0.0.1:{free_port()}",
        "ECOM_DB_PREFIX": f"t_{stack.run_id}_sup_",
        "ECOM_REDIS_PREFIX": f"{stack.redis_prefix}sup:",
        "ECOM_HEALTH_CHECK_INTERVAL_SECONDS": "0.5",
    }
    up = _run(env, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "users" in up.stdout and "edge" in up.stdout
        state = _state(stack_dir)
        # The storefront's file server runs too once `make web` built web/dist
        # (make test does), and the edge serves the page at `/`.
        built = (REPO / "web" / "dist" / "index.html").is_file()
        assert set(state) == {"users.0", "users.1", "edge"} | ({"web"} if built else set())
        assert state["users.0"]["addr"] != state["users.1"]["addr"]
        assert httpx.get(f"http://127.0.0.1:{edge_port}/healthz").status_code == 200
        if built:
            page = httpx.get(f"http://127.0.0.1:{edge_port}/")
            assert page.status_code == 200 and "<title>ecom</title>" in page.text
        # Through the supervised edge both replicas answer (round robin):
        # Envoy counts requests per endpoint.
        for _ in range(6):
            resp = httpx.post(f"http://127.0.0.1:{edge_port}/v1/auth:login",
                              json={"email": "nobody@example.com", "password": "wrong-password"})
            assert resp.status_code == 401, resp.text
        clusters = httpx.get(f"http://127.0.0.1:{admin_port}/clusters").text
        for k in (0, 1):
            line = f"svc_users::{state[f'users.{k}']['addr']}::rq_total::"
            counts = [int(x.rpartition("::")[2]) for x in clusters.splitlines()
                      if x.startswith(line)]
            assert counts and counts[0] >= 1, (line, clusters)

        first_pid = state["users.1"]["pid"]
        os.killpg(first_pid, signal.SIGKILL)
        # The other replica keeps answering while this one is down. A write
        # already on the dead replica's connection is not retried (it may
        # have run), so only the first call may meet that reset; a new
        # connection to the dead port is refused and retried on the other.
        answers = [httpx.post(f"http://127.0.0.1:{edge_port}/v1/auth:login",
                              json={"email": "nobody@example.com",
                                    "password": "wrong-password"})
                   for _ in range(4)]
        codes = [r.status_code for r in answers]
        assert codes[0] in (401, 503) and codes[1:] == [401, 401, 401], \
            [(r.status_code, r.text) for r in answers]
        resp = answers[-1]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            users = _state(stack_dir)["users.1"]
            if users["restarts"] == 1 and users["pid"] and users["pid"] != first_pid:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"users.1 was not restarted: {_state(stack_dir)['users.1']}")
        assert users["last_exit"] == -signal.SIGKILL
        assert _state(stack_dir)["users.0"]["restarts"] == 0
        # status waits for nothing: poll until the restarted service serves.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = _run(env, "status", timeout=30)
            if st.returncode == 0:
                break
            time.sleep(0.5)
        assert st.returncode == 0, st.stdout + st.stderr
        assert "SERVING" in st.stdout and "live" in st.stdout
        # status lists where each one's metrics are scraped, and they answer.
        users_url = f"http://127.0.0.1:{users_metrics}/metrics"
        edge_url = f"http://127.0.0.1:{edge_admin}/stats/prometheus"
        assert users_url in st.stdout and edge_url in st.stdout, st.stdout
        assert "ecom_rpc_requests_total" in httpx.get(users_url, timeout=5).text
        assert "envoy_" in httpx.get(edge_url, timeout=5).text
        log = (stack_dir / "logs" / "supervisor.log").read_text()
        assert '"event": "died"' in log and '"event": "restarting"' in log
        pids = [c["pid"] for c in _state(stack_dir).values()]
    finally:
        down = _run(env, "down", timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (stack_dir / "run" / "supervisor.pid").exists()
    assert not any(pid_alive(p) for p in pids)
