"""The short burst of demo traffic `make up` starts once the demo data is in:
a few simulated shoppers for a bounded time, in the background, so the
reports (and the recommender's training data) are not empty a few minutes
after start.

It never fails or slows `make up`: the burst is a detached process
(``python -m sim``) whose output goes to ``.stack/logs/sim-burst.log`` and
whose pid is in ``.stack/run/sim-burst.pid``; ``make status`` says whether it
is still running and how it ended, ``make down`` stops it if it is.

Knobs: ``ECOM_SIM_BURST`` (1; 0 leaves it out), ``ECOM_SIM_BURST_USERS`` (8),
``ECOM_SIM_BURST_DURATION`` (120s); the shoppers' own ``ECOM_SIM_*`` knobs
apply too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.core import REPO, STACK, pid_alive

PID_FILE = STACK / "run" / "sim-burst.pid"
LOG_FILE = STACK / "logs" / "sim-burst.log"


def wanted() -> bool:
    return os.environ.get("ECOM_SIM_BURST", "1") not in ("0", "false", "no")


def command(edge_url: str) -> list[str]:
    users = os.environ.get("ECOM_SIM_BURST_USERS", "8")
    duration = os.environ.get("ECOM_SIM_BURST_DURATION", "120s")
    return [sys.executable, "-m", "sim", "--users", users, "--spawn-rate", "2",
            "--duration", duration, "--host", edge_url,
            "--csv", str(STACK / "sim" / "burst")]


def running_pid() -> int | None:
    """The burst's pid while it runs (and is still our `python -m sim`)."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None
    # `python -m sim` execs Locust: either command line is ours.
    args = [c.decode(errors="replace") for c in cmdline if c]
    ours = ("sim" in args and "-m" in args) or any(a.endswith("sim/locustfile.py") for a in args)
    return pid if ours else None


def start(edge_url: str) -> str:
    """Start the burst in the background; returns a line saying what
    happened (started, already running, turned off)."""
    if not wanted():
        return "demo traffic: off (ECOM_SIM_BURST=0)"
    pid = running_pid()
    if pid is not None:
        return f"demo traffic: already running (pid {pid}), log {LOG_FILE}"
    for d in (PID_FILE.parent, LOG_FILE.parent):
        d.mkdir(parents=True, exist_ok=True)
    cmd = command(edge_url)
    with open(LOG_FILE, "ab") as out:
        out.write(f"\n== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                start_new_session=True)
    PID_FILE.write_text(str(proc.pid))
    return (f"demo traffic: {cmd[cmd.index('--users') + 1]} simulated shoppers for "
            f"{cmd[cmd.index('--duration') + 1]} in the background (pid {proc.pid}), "
            f"log {LOG_FILE}")


def status_lines() -> list[str]:
    """For `make status`: running or how the last burst ended."""
    pid = running_pid()
    if pid is not None:
        return [f"demo traffic: running (pid {pid}), log {LOG_FILE}"]
    if not LOG_FILE.exists():
        return ["demo traffic: not run yet"]
    summary = [line for line in LOG_FILE.read_text(errors="replace").splitlines()
               if line.startswith("shoppers:")]
    last = summary[-1] if summary else "no summary (see the log)"
    return [f"demo traffic: finished, {last}; log {LOG_FILE}"]


def stop(grace: float = 20.0) -> None:
    """Stop a running burst (its own process group), e.g. on `make down`."""
    pid = running_pid()
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
