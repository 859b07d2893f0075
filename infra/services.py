"""``python -m infra.services up | down | status``: run our own services and
the Envoy edge as supervised background processes.

``up`` writes the edge configuration (``python -m edge config``), then starts
a small supervisor daemon (pid file ``.stack/run/supervisor.pid``, log
``.stack/logs/supervisor.log``) that runs every implemented ``svc_<name>``
(``python -m svc_<name>.main``, log ``.stack/logs/svc_<name>.log``), the
storefront's file server once ``web/dist`` is built (``python -m
edge.static``, log ``.stack/logs/web.log``) and Envoy (log
``.stack/logs/edge.log``, JSON access log included). A child that dies
is restarted with exponential back-off (1 s doubling to 30 s, reset after a
minute of uptime); each restart is logged and counted. ``up`` returns once
every service answers its gRPC health check with SERVING and the edge answers
``GET /healthz``, or fails with the tail of the culprit's log.

Every service runs as ``ECOM_REPLICAS`` processes (default 2): replica N
(``ECOM_REPLICA_INDEX=N``) listens on the Nth address of ``ECOM_<SVC>_ADDR``,
which lists one address per replica (given, or made from the service's
address by adding 100 to the port for each further replica). Callers
balance across the list (``mesh.channels``) and Envoy has one endpoint per
replica. Each replica is a child of its own (``catalog.0``, ``catalog.1``),
restarted on its own; with one replica the child is named after the service.

``down`` stops the supervisor, which stops exactly the children it started
(SIGTERM to each process group, SIGKILL after a grace period). ``status``
prints each child with pid, address, health and restarts.

The datastores are not started here: ``python -m infra up`` does that (the
services point at them through ``python -m infra env``'s variables).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from infra.core import REPO, STACK, InfraError, log, pid_alive, tail

RUN = STACK / "run"
LOGS = STACK / "logs"
SUPERVISOR_PID = RUN / "supervisor.pid"
STATE_FILE = RUN / "services.json"
EDGE_CONFIG = STACK / "edge" / "envoy.yaml"
EDGE = "edge"
SERVICES_ENV = "ECOM_SERVICES"
# The streaming analytics job (pipelines/analytics.py), supervised like a
# service when the whole system runs or ECOM_SERVICES names `analytics`;
# ECOM_ANALYTICS_JOB=0 leaves it out.
ANALYTICS_JOB = "analytics-job"
ANALYTICS_JOB_ENV = "ECOM_ANALYTICS_JOB"
# The storefront's file server (edge.static), supervised once `make web` has
# built web/dist; the edge routes `/` to it.
WEB = "web"
WEB_DIST = REPO / "web" / "dist"

REPLICAS_ENV = "ECOM_REPLICAS"
DEFAULT_REPLICAS = 2
# Replica N of a service given one address listens N * this above its port.
REPLICA_PORT_STEP = 100
# The recommendations training (pipelines/recs.py --every), supervised when
# `recs` runs; ECOM_RECS_JOB=0 leaves it out. Period: ECOM_RECS_INTERVAL_SECONDS.
RECS_JOB = "recs-job"
RECS_JOB_ENV = "ECOM_RECS_JOB"
JOBS = (ANALYTICS_JOB, RECS_JOB)

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
# A child that stayed up this long is considered healthy again: its next
# crash restarts after the initial back-off.
STABLE_AFTER = 60.0
STOP_GRACE = 15.0


@dataclass
class ChildState:
    """What the supervisor knows about one child (persisted for ``status``)."""

    name: str
    addr: str
    command: list[str]
    log: str
    pid: int | None = None
    restarts: int = 0
    last_exit: int | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    history: list[str] = field(default_factory=list)
    # Extra environment of this child (its replica index).
    env: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# what to run
# ---------------------------------------------------------------------------


def replicas() -> int:
    """How many processes of each service to run (``ECOM_REPLICAS``)."""
    raw = os.environ.get(REPLICAS_ENV, str(DEFAULT_REPLICAS))
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise InfraError(f"{REPLICAS_ENV} must be a whole number of at least 1, got {raw!r}")
    return n


def replica_addresses(addr: str, n: int) -> str:
    """``addr`` as a list of ``n`` replica addresses: a list given already
    is kept (its length wins); one address gains ports 100 apart."""
    from mesh.config import split_addrs

    given = split_addrs(addr)
    if len(given) > 1 or n == 1:
        return ",".join(given)
    host, _, port = given[0].rpartition(":")
    return ",".join(f"{host}:{int(port) + k * REPLICA_PORT_STEP}" for k in range(n))


def _environment() -> dict[str, str]:
    """The children's environment: the stack's servers and, for every
    service, the list of its replicas' addresses."""
    from edge import registry
    from infra import stack
    from mesh.config import ServiceSettings

    env = {**os.environ, **stack.env(), "PYTHONUNBUFFERED": "1"}
    n = replicas()
    settings = ServiceSettings()
    for p in registry.PROCESSES:
        env[f"ECOM_{p.name.upper()}_ADDR"] = replica_addresses(settings.addr_of(p.name), n)
    # svc_notify's HTTP endpoint for SMS delivery reports: one per replica too.
    env["ECOM_NOTIFY_DLR_ADDR"] = replica_addresses(
        os.environ.get("ECOM_NOTIFY_DLR_ADDR", "127.0.0.1:50070"), n)
    return env


def selected_processes() -> list:  # list[edge.registry.ServiceProcess]
    """Every implemented service, or only those named in ECOM_SERVICES
    (comma-separated, e.g. ``users,catalog``) to run part of the system."""
    from edge import registry

    wanted = [n.strip() for n in os.environ.get(SERVICES_ENV, "").split(",") if n.strip()]
    if not wanted:
        return registry.present_processes()
    chosen = [registry.process_named(n) for n in wanted]
    missing = [p.name for p in chosen if not p.present()]
    if missing:
        raise InfraError(f"{SERVICES_ENV} names unimplemented services: {', '.join(missing)}")
    return chosen


def planned_children() -> list[ChildState]:
    """The selected services, then the edge."""
    from edge import config
    from infra import tools
    from mesh.config import split_addrs

    settings = config.EdgeSettings()
    env = _environment()
    children = []
    for p in selected_processes():
        addrs = split_addrs(env[f"ECOM_{p.name.upper()}_ADDR"])
        for k, addr in enumerate(addrs):
            name = p.name if len(addrs) == 1 else f"{p.name}.{k}"
            children.append(ChildState(
                name=name,
                addr=addr,
                command=[sys.executable, "-m", f"{p.package}.main"],
                log=str(LOGS / (f"{p.package}.log" if len(addrs) == 1
                                else f"{p.package}.{k}.log")),
                env={"ECOM_REPLICA_INDEX": str(k)},
            ))
    names = {p.name for p in selected_processes()}
    wanted = os.environ.get(ANALYTICS_JOB_ENV, "1") not in ("0", "false", "no")
    if wanted and "analytics" in names:
        children.append(ChildState(
            name=ANALYTICS_JOB, addr="-",
            command=[sys.executable, "-m", "pipelines.analytics"],
            log=str(LOGS / "analytics-job.log"),
        ))
    if (WEB_DIST / "index.html").is_file():
        children.append(ChildState(
            name=WEB, addr=settings.web_addr,
            command=[sys.executable, "-m", "edge.static", "--addr", settings.web_addr,
                     "--dir", str(WEB_DIST)],
            log=str(LOGS / "web.log"),
        ))
    if os.environ.get(RECS_JOB_ENV, "1") not in ("0", "false", "no") and "recs" in names:
        children.append(ChildState(
            name=RECS_JOB, addr="-",
            command=[sys.executable, "-m", "pipelines.recs", "--every", "0"],
            log=str(LOGS / "recs-job.log"),
        ))
    children.append(
        ChildState(
            name=EDGE,
            addr=f"{settings.edge_host}:{settings.edge_port}",
            # --base-id: Envoy's shared-memory name; per port so two stacks
            # (or a test's Envoy) can run side by side.
            command=[str(tools.envoy()), "-c", str(EDGE_CONFIG), "--log-level", "warn",
                     "--base-id", str(settings.edge_port)],
            log=str(LOGS / "edge.log"),
        )
    )
    return children


def write_edge_config() -> Path:
    """``python -m edge config`` into .stack/edge/envoy.yaml (as a child, so
    a broken generator reports like any other command)."""
    names = ",".join(p.name for p in selected_processes())
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "config", "--out", str(EDGE_CONFIG), "--services", names],
        cwd=REPO, env=_environment(), capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise InfraError(f"python -m edge config failed:\n{proc.stderr[-3000:]}")
    return EDGE_CONFIG


# ---------------------------------------------------------------------------
# the supervisor daemon
# ---------------------------------------------------------------------------


class Supervisor:
    """Runs the children, restarts the ones that die, stops them all on SIGTERM."""

    def __init__(self, children: list[ChildState]) -> None:
        self.children = {c.name: c for c in children}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.env = _environment()

    def event(self, what: str, **fields: object) -> None:
        # One JSON line per event: `status` and humans read the same log.
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "event": what, **fields}
        print(json.dumps(line), flush=True)

    def save(self) -> None:
        tmp = STATE_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: asdict(c) for n, c in self.children.items()}, indent=1))
        os.replace(tmp, STATE_FILE)

    def spawn(self, child: ChildState) -> None:
        with open(child.log, "ab") as out:
            proc = subprocess.Popen(
                child.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO, env={**self.env, **child.env}, start_new_session=True,
            )
        self.procs[child.name] = proc
        child.pid, child.started_at = proc.pid, time.time()
        self.event("started", service=child.name, pid=proc.pid, restarts=child.restarts)
        self.save()

    def check(self) -> None:
        now = time.time()
        for name, child in self.children.items():
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                if now - child.started_at > STABLE_AFTER:
                    child.backoff = BACKOFF_START
                continue
            if proc is not None:
                # It died: schedule a restart after the back-off.
                child.last_exit, child.pid = proc.returncode, None
                del self.procs[name]
                child.next_start = now + child.backoff
                note = (f"{time.strftime('%H:%M:%S')} exited with {proc.returncode}, "
                        f"restarting in {child.backoff:.0f}s")
                child.history = [*child.history[-9:], note]
                self.event("died", service=name, exit_code=proc.returncode,
                           restart_in_seconds=child.backoff, log_tail=tail(Path(child.log), 5))
                child.backoff = min(child.backoff * 2, BACKOFF_MAX)
                self.save()
            elif now >= child.next_start:
                if child.started_at:
                    child.restarts += 1
                    self.event("restarting", service=name, restarts=child.restarts)
                self.spawn(child)

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.event("stopping", service=name, pid=proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for child in self.children.values():
            child.pid = None
        self.save()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        self.event("supervisor started", pid=os.getpid(), services=list(self.children))
        while not self.stopping:
            self.check()
            time.sleep(0.5)
        self.stop_all()
        self.event("supervisor stopped")
        STATE_FILE.unlink(missing_ok=True)
        return 0


def supervisor_pid() -> int | None:
    try:
        pid = int(SUPERVISOR_PID.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def read_state() -> dict[str, ChildState]:
    try:
        raw = json.loads(STATE_FILE.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {n: ChildState(**c) for n, c in raw.items()}


# ---------------------------------------------------------------------------
# health
# ---------------------------------------------------------------------------


def grpc_serving(addr: str, timeout: float = 1.0) -> bool:
    """True when ``addr`` answers grpc.health.v1 Check("") with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(addr) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


def edge_live(addr: str, timeout: float = 1.0) -> bool:
    """True when the edge answers ``GET /healthz`` with 200."""
    import httpx

    try:
        return httpx.get(f"http://{addr}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def web_serving(addr: str, timeout: float = 1.0) -> bool:
    """True when the storefront's file server answers ``GET /`` with 200."""
    import httpx

    try:
        return httpx.get(f"http://{addr}/", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def healthy(child: ChildState) -> bool:
    if child.name in JOBS:
        # A Spark job has no health endpoint; it is up while its process is
        # (its progress, lag included, is in `status`).
        return child.pid is not None and pid_alive(child.pid)
    if child.name == WEB:
        return web_serving(child.addr)
    return edge_live(child.addr) if child.name == EDGE else grpc_serving(child.addr)


def analytics_job_lines() -> list[str]:
    """The streaming job's last progress (from its progress file) for status."""
    from pipelines.analytics import AnalyticsSettings

    try:
        settings = AnalyticsSettings()
        data = json.loads(settings.progress_file.read_text())
    except (FileNotFoundError, ValueError):
        return ["analytics job: no progress yet"]
    lag = ", ".join(f"{t} {n}" for t, n in sorted((data.get("lag") or {}).items())) or "-"
    pid = data.get("pid")
    state = data.get("state") if isinstance(pid, int) and pid_alive(pid) else "not running"
    return [
        f"analytics job: {state} (pid {pid}, progress of {data.get('updated')}), last batch "
        f"{data.get('last_batch_id', '-')} at {data.get('last_batch_time', '-')}, "
        f"{data.get('input_rows_per_second', 0)} input rows/s, "
        f"{data.get('processed_rows_per_second', 0)} processed rows/s",
        f"  lag per topic: {lag}",
        f"  watermark {data.get('watermark', '-')}, dropped late {data.get('dropped_late', 0)},"
        f" quarantined {data.get('quarantined', 0)}, duplicates {data.get('duplicates', 0)}"
        f" (trigger every {data.get('trigger_seconds', '-')} s, late bound"
        f" {data.get('late_seconds', '-')} s)",
    ]


# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------


def up(timeout: float = 180.0) -> None:
    """Start the supervisor (unless running) and wait until everything is healthy."""
    for d in (RUN, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    if supervisor_pid() is None:
        write_edge_config()
        sup_log = open(LOGS / "supervisor.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "infra.services", "_supervise"],
            stdout=sup_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=REPO, env=_environment(), start_new_session=True,
        )
        sup_log.close()
        SUPERVISOR_PID.write_text(str(proc.pid))
        log(f"supervisor started (pid {proc.pid}), logs in {LOGS}")
    deadline = time.monotonic() + timeout
    waiting: list[ChildState] = []
    while time.monotonic() < deadline:
        if supervisor_pid() is None:
            raise InfraError(f"the supervisor exited; see {LOGS / 'supervisor.log'}:\n"
                             f"{tail(LOGS / 'supervisor.log')}")
        state = read_state()
        waiting = [c for c in state.values() if not healthy(c)]
        if state and not waiting:
            log("every service is SERVING and the edge is live")
            return
        time.sleep(1.0)
    culprits = "\n\n".join(
        f"{c.name} ({c.addr}) not healthy; last lines of {c.log}:\n{tail(Path(c.log), 20)}"
        for c in waiting)
    raise InfraError(f"not healthy after {timeout:.0f}s:\n{culprits}")


def down() -> None:
    """Stop the supervisor and with it every child it started (and the
    burst of simulated shoppers `make up` started, if it still runs)."""
    try:
        from sim import burst
    except ImportError:
        pass
    else:
        burst.stop()
    pid = supervisor_pid()
    if pid is None:
        # A supervisor killed with -9 leaves its children: stop those the
        # state file names, if they are still the processes we started.
        for child in read_state().values():
            if child.pid and pid_alive(child.pid) and _is_ours(child):
                log(f"{child.name}: stopping orphan pid {child.pid}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        SUPERVISOR_PID.unlink(missing_ok=True)
        STATE_FILE.unlink(missing_ok=True)
        return
    log(f"stopping supervisor pid {pid}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE + 10
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        raise InfraError(f"supervisor pid {pid} did not stop; see {LOGS / 'supervisor.log'}")
    SUPERVISOR_PID.unlink(missing_ok=True)


def _is_ours(child: ChildState) -> bool:
    try:
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    return [c.decode() for c in cmdline if c] == child.command


def metrics_url(child: ChildState) -> str:
    """Where Prometheus scrapes ``child``: a service's metrics port, the
    edge's admin ``/stats/prometheus``; ``-`` for the Spark job."""
    from edge import config
    from mesh.config import METRICS_PORT_OFFSET

    settings = config.EdgeSettings()
    if child.name == EDGE:
        return f"http://127.0.0.1:{settings.edge_admin_port}/stats/prometheus"
    service, _, replica = child.name.partition(".")
    if child.name == WEB or not hasattr(settings, f"{service}_addr"):
        return "-"  # the Spark jobs, the storefront's file server
    if os.environ.get(f"ECOM_{service.upper()}_METRICS_ADDR"):
        addr = settings.metrics_addr_of(service, int(replica) if replica else 0)
    else:
        # The replica's own gRPC address, port 1000 higher.
        host, _, port = child.addr.rpartition(":")
        addr = f"{host}:{int(port) + METRICS_PORT_OFFSET}"
    return "-" if addr == "off" else f"http://{addr}/metrics"


def scrape_config() -> str:
    """A Prometheus ``scrape_configs`` entry for every planned child."""
    lines = ["scrape_configs:"]
    for child in planned_children():
        url = metrics_url(child)
        if url == "-":
            continue
        rest = url.split("://", 1)[1]
        target, _, path = rest.partition("/")
        lines += [f"  - job_name: {child.name}", f"    metrics_path: /{path}",
                  "    static_configs:", f"      - targets: ['{target}']"]
    return "\n".join(lines) + "\n"


def status() -> bool:
    """Print each child; True when all are healthy."""
    pid = supervisor_pid()
    print(f"supervisor: {'running, pid ' + str(pid) if pid else 'not running'}")
    state = read_state()
    if not state:
        return False
    ok = True
    print(f"{'service':<12}{'pid':>8}  {'addr':<22}{'health':<10}{'restarts':>8}  "
          f"{'last exit':<10}metrics")
    for c in state.values():
        good = c.pid is not None and healthy(c)
        ok &= good
        health = ("live" if c.name in (EDGE, WEB) else "SERVING") if good else "DOWN"
        print(f"{c.name:<12}{c.pid or '-':>8}  {c.addr:<22}{health:<10}{c.restarts:>8}  "
              f"{'-' if c.last_exit is None else c.last_exit!s:<10}{metrics_url(c)}")
        for note in c.history[-3:]:
            print(f"{'':<12}  {note}")
    if ANALYTICS_JOB in state:
        for line in analytics_job_lines():
            print(line)
    for line in _demo_traffic_lines():
        print(line)
    return ok


def _demo_traffic_lines() -> list[str]:
    """The simulated shoppers `make up` starts (sim/burst.py), if any."""
    try:
        from sim import burst
    except ImportError:
        return []
    return burst.status_lines()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.services", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    upp = sub.add_parser("up", help="start every service and the edge, wait until healthy")
    upp.add_argument("--timeout", type=float, default=180.0)
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="pid, address, health and restarts of each")
    sub.add_parser("scrape-config", help="a Prometheus scrape config for every service")
    sub.add_parser("_supervise", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        if args.cmd == "up":
            up(args.timeout)
            status()
        elif args.cmd == "down":
            down()
        elif args.cmd == "status":
            return 0 if status() else 1
        elif args.cmd == "scrape-config":
            print(scrape_config(), end="")
        elif args.cmd == "_supervise":
            return Supervisor(planned_children()).run()
    except InfraError as exc:
        print(f"infra.services: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
