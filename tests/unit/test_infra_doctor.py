"""`python -m infra.doctor` names the missing prerequisite and how to get it:
tools from a fake PATH, a project port held by a real listening socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import doctor
from infra.core import REPO
from infra.doctor import PortUse


def fake_tool(folder: Path, name: str, output: str, *, stderr: bool = False) -> None:
    script = folder / name
    script.write_text(f"#!/bin/sh\necho '{output}'{' >&2' if stderr else ''}\n")
    script.chmod(0o755)


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("ECOM_JAVA_HOME", raising=False)
    return folder


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A real socket listening on a free loopback port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def test_python_311_with_venv_is_wanted(fake_path: Path, tmp_path: Path) -> None:
    no_venv = tmp_path / "no-venv" / "bin" / "python"
    missing = doctor.check_python(str(fake_path), no_venv)
    assert not missing.ok and "python3.11-venv" in missing.fix
    fake_tool(fake_path, "python3", "3 9")
    assert not doctor.check_python(str(fake_path), no_venv).ok
    fake_tool(fake_path, "python3.11", "ModuleNotFoundError: No module named ensurepip")
    broken = doctor.check_python(str(fake_path), no_venv)
    assert not broken.ok and "venv" in broken.detail
    fake_tool(fake_path, "python3.11", "3 11")
    assert doctor.check_python(str(fake_path), no_venv).ok


def test_java_missing_too_old_and_present(fake_path: Path) -> None:
    missing = doctor.check_java(str(fake_path))
    assert not missing.ok and "no java" in missing.detail
    assert "openjdk-17-jdk-headless" in missing.fix

    fake_tool(fake_path, "java", 'openjdk version "11.0.21" 2023-10-17', stderr=True)
    old = doctor.check_java(str(fake_path))
    assert not old.ok and "Java 11" in old.detail

    fake_tool(fake_path, "java", 'openjdk version "17.0.15" 2025-04-15', stderr=True)
    assert doctor.check_java(str(fake_path)).ok


def test_go_version_is_checked(fake_path: Path) -> None:
    assert "go.dev/dl" in doctor.check_go(str(fake_path)).fix
    fake_tool(fake_path, "go", "go version go1.19.8 linux/amd64")
    old = doctor.check_go(str(fake_path))
    assert not old.ok and "1.19" in old.detail
    fake_tool(fake_path, "go", "go version go1.24.2 linux/amd64")
    assert doctor.check_go(str(fake_path)).ok


def test_npm_maven_and_apt(fake_path: Path) -> None:
    npm = doctor.check_tool("npm", "npm", "apt-get install -y npm", str(fake_path))
    assert (npm.ok, npm.fix) == (False, "apt-get install -y npm")
    fake_tool(fake_path, "mvn", "Apache Maven 3.8.7")
    assert doctor.check_tool("Maven", "mvn", "apt-get install -y maven", str(fake_path)).ok

    assert doctor.check_apt([], str(fake_path), is_root=False).ok
    no_apt = doctor.check_apt(["redis-server"], str(fake_path), is_root=True)
    assert not no_apt.ok and "apt-get" in no_apt.detail
    fake_tool(fake_path, "apt-get", "")
    fake_tool(fake_path, "dpkg", "")
    not_root = doctor.check_apt(["redis-server"], str(fake_path), is_root=False)
    assert not not_root.ok and "sudo apt-get install -y redis-server" in not_root.fix
    assert doctor.check_apt(["redis-server"], str(fake_path), is_root=True).ok


def test_disk_wants_free_space(tmp_path: Path) -> None:
    assert doctor.check_disk("disk", tmp_path / "not" / "yet", 1, "ECOM_STACK_DIR").ok
    full = doctor.check_disk("disk", tmp_path, 1 << 60, "ECOM_STACK_DIR")
    assert not full.ok and "ECOM_STACK_DIR" in full.fix


def test_a_port_taken_by_someone_else_is_named(
    listening: socket.socket, tmp_path: Path
) -> None:
    port = listening.getsockname()[1]
    pid_file = tmp_path / "mariadb.pid"
    use = PortUse(port, "mariadb", "ECOM_MYSQL_URL", (pid_file,))
    (finding,) = doctor.check_ports([use])
    assert not finding.ok
    assert f"127.0.0.1:{port}" in finding.detail
    assert f"pid {os.getpid()}" in finding.detail  # this test process holds it
    assert "ECOM_MYSQL_URL" in finding.fix

    # The same port held by the process the stack's pid file names is ours.
    pid_file.write_text(str(os.getpid()))
    (finding,) = doctor.check_ports([use])
    assert finding.ok


def test_free_ports_pass(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    listening.close()
    (finding,) = doctor.check_ports([PortUse(port, "svc_orders", "ECOM_ORDERS_ADDR")])
    assert finding.ok


def test_project_ports_cover_stack_services_and_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.stack import PORTS
    from mesh.config import SERVICE_PORTS

    monkeypatch.setenv("ECOM_ORDERS_ADDR", "127.0.0.1:61057")
    for var in ("ECOM_MYSQL_URL", "ECOM_REDIS_URL", "ECOM_KAFKA_BOOTSTRAP", "ECOM_ES_URL",
                "ECOM_CASSANDRA_HOSTS", "ECOM_MONGO_URL", "ECOM_EDGE_PORT",
                "ECOM_EDGE_ADMIN_PORT"):
        monkeypatch.delenv(var, raising=False)
    ports = {u.port: u for u in doctor.project_ports("up")}
    assert set(PORTS.values()) <= set(ports)
    assert {p for n, p in SERVICE_PORTS.items() if n != "orders"} <= set(ports)
    assert ports[61057].setting == "ECOM_ORDERS_ADDR"
    assert {8080, 19901, 19093, 19300, 17000} <= set(ports)
    # `make test` puts services and edges on free ports: datastores only.
    assert {u.port for u in doctor.project_ports("test")} == set(PORTS.values()) | {
        19093, 19300, 17000
    }


def test_exit_code_and_report_name_what_is_missing(tmp_path: Path) -> None:
    """The command itself, with an empty PATH and an empty download cache:
    non-zero, and each missing tool named with how to get it."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "ECOM_JAVA_HOME")}
    env.update(PATH=str(empty), ECOM_CACHE_DIR=str(tmp_path / "cache"),
               ECOM_STACK_DIR=str(tmp_path / "stack"))
    for var in ("ECOM_KAFKA_BOOTSTRAP", "ECOM_ES_URL", "ECOM_CASSANDRA_HOSTS"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "infra.doctor"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    missing = [line for line in proc.stdout.splitlines() if "MISSING" in line]
    for what in ("Java 17", "Go 1.24", "npm", "Maven"):
        assert any(what in line for line in missing), proc.stdout
    assert "openjdk-17-jdk-headless" in proc.stdout and "apt-get install -y maven" in proc.stdout
    assert "prerequisite(s) missing" in proc.stdout
