"""The streaming analytics job under the supervisor (what `make up` does):
started with svc_analytics, restarted after kill -9, resuming from its
checkpoint, and its progress (last batch, rates, lag per topic) in
`python -m infra.services status`.

Needs Kafka and Cassandra: ECOM_TEST_SERVERS=kafka,cassandra. Starts a Spark
JVM twice (about a minute each on a busy 2-core machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.core import REPO, pid_alive
from infra.services import ANALYTICS_JOB
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.integration


def _run(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.services", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def test_the_job_is_supervised_restarted_and_reported(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack_dir = tmp_path / "stack"
    progress = stack_dir / "run" / "analytics-progress.json"
    env = {
        **os.environ, **stack.env,
        "ECOM_STACK_DIR": str(stack_dir),
        "ECOM_SERVICES": "analytics",
        "ECOM_ANALYTICS_ADDR": f"127.0.0.1:{free_port()}",
        # One process of the service: this test is about the job beside it
        # (test_supervisor covers replicas).
        "ECOM_REPLICAS": "1",
        "ECOM_EDGE_PORT": str(free_port()),
        "ECOM_EDGE_ADMIN_PORT": str(free_port()),
        "ECOM_WEB_ADDR": f"127.0.0.1:{free_port()}",
        "ECOM_TOPIC_PREFIX": f"{stack.topic_prefix}sup.",
        "ECOM_KEYSPACE_PREFIX": f"{stack.db_prefix}sup_",
        "ECOM_ANALYTICS_TRIGGER_SECONDS": "2",
        "ECOM_HEALTH_CHECK_INTERVAL_SECONDS": "0.5",
    }
    env.pop("ECOM_ANALYTICS_JOB", None)
    up = _run(env, "up")
    pids: list[int] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((stack_dir / "run" / "services.json").read_text())
        # (and the storefront's file server once `make web` built web/dist)
        web = {"web"} if (REPO / "web" / "dist" / "index.html").is_file() else set()
        assert set(state) == {"analytics", ANALYTICS_JOB, "edge"} | web
        first = state[ANALYTICS_JOB]["pid"]

        def running(pid: int) -> bool:
            try:
                data = json.loads(progress.read_text())
            except (FileNotFoundError, ValueError):
                return False
            return bool(data.get("pid") == pid and data.get("state") == "running")

        _wait(lambda: running(first), 300, "the job's first progress")
        os.killpg(first, signal.SIGKILL)

        def restarted() -> int | None:
            job = json.loads((stack_dir / "run" / "services.json").read_text())[ANALYTICS_JOB]
            if job["restarts"] >= 1 and job["pid"] and job["pid"] != first:
                return int(job["pid"])
            return None

        second = _wait(restarted, 60, "the job's restart")
        _wait(lambda: running(second), 300, "the restarted job's progress")
        st = _run(env, "status", timeout=60)
        assert "analytics job: running" in st.stdout, st.stdout + st.stderr
        assert "lag per topic:" in st.stdout
        pids = [second, json.loads((stack_dir / "run" / "services.json").read_text())
                ["analytics"]["pid"]]
    finally:
        down = _run(env, "down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(pid_alive(p) for p in pids)
