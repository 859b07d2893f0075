"""infra explains failures clearly and never hangs: a port already taken, a
server that exits during start, a server that never becomes ready, a
download refused, a missing tool."""

from __future__ import annotations

import shutil
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.core import InfraError, Server, descendants, download, pid_alive, port_open, require_tool
from tests.ports import free_port as _free_port


@dataclass
class ScriptServer(Server):
    """A stand-in server process: a shell script instead of a real server."""

    script: str = ""

    def command(self) -> list[str]:
        return ["sh", "-c", self.script]

    def ready(self) -> bool:
        return port_open(self.port)


def _server(port: int, script: str, timeout: float = 5) -> ScriptServer:
    return ScriptServer(name=f"unit-{uuid.uuid4().hex[:6]}", port=port,
                        env_var="ECOM_UNIT_TEST_UNSET", start_timeout=timeout, script=script)


def _cleanup(s: Server) -> None:
    s.stop(timeout=5)
    shutil.rmtree(s.data_dir, ignore_errors=True)
    s.log_file.unlink(missing_ok=True)


def test_port_taken_is_reported_with_the_port_and_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = _server(port, "sleep 30")
        with pytest.raises(InfraError, match=rf"port 127\.0\.0\.1:{port} is already taken.*"
                                             r"ECOM_UNIT_TEST_UNSET"):
            s.start()
        assert s.pid() is None


def test_server_exiting_during_start_shows_the_tail_of_its_log() -> None:
    s = _server(_free_port(), "echo 'fatal: bad config line 7'; exit 3")
    try:
        with pytest.raises(InfraError, match=r"exited during start \(code 3\)") as err:
            s.start()
        assert "fatal: bad config line 7" in str(err.value)
        assert not s.pid_file.exists()
    finally:
        _cleanup(s)


def test_server_never_ready_times_out_and_is_stopped() -> None:
    s = _server(_free_port(), "echo still warming up; sleep 60", timeout=1.5)
    try:
        with pytest.raises(InfraError, match="not ready after 2s") as err:
            s.start()
        assert "still warming up" in str(err.value)
        assert s.pid() is None, "a server that never got ready must not be left running"
    finally:
        _cleanup(s)


def test_download_refused_is_a_clear_error(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(InfraError, match="download refused or failed"):
        download(f"http://127.0.0.1:{port}/server.zip", tmp_path / "server.zip", timeout=5)
    assert not (tmp_path / "server.zip").exists()
    assert not list(tmp_path.iterdir())


def test_missing_tool_names_the_tool_and_the_fix() -> None:
    with pytest.raises(InfraError, match="no-such-tool-xyz not found: install it"):
        require_tool("no-such-tool-xyz", "install it")


def test_stop_ends_the_whole_process_group() -> None:
    port = _free_port()
    listener = (f"{sys.executable} -c 'import socket,time; s=socket.socket(); "
                f"s.bind((\"127.0.0.1\", {port})); s.listen(); time.sleep(60)'")
    s = _server(port, f"sleep 60 & {listener}")
    try:
        s.start()
        pid = s.pid()
        assert pid is not None
        family = [pid, *descendants(pid)]
        assert len(family) >= 2  # the listener (or the sh running it) and the background sleep
        s.stop(timeout=5)
        assert not any(pid_alive(p) for p in family)
        assert not port_open(port)
        assert not s.pid_file.exists()
    finally:
        _cleanup(s)
