"""``python -m infra.doctor`` (also ``python -m infra doctor``, ``make doctor``):
before anything long starts, say which prerequisite is missing and how to
get it. `make up` and `make test` run it first.

It checks, in about a second and without installing anything:

* Python 3.11 (and its ``venv`` module, which Debian ships apart) for the
  project's virtualenv;
* Java 17+ for Kafka, Elasticsearch and Cassandra (unless all three are
  external: their ``ECOM_*`` variables set);
* npm (Node.js 20.19+), which builds the storefront (`make web`);
* Go 1.24+ and Maven, each only while something it builds or fetches is
  not in the download cache yet;
* apt-get and dpkg, and root, while a Debian package infra installs
  (MariaDB, Redis, Chromium for the browser tests) is missing;
* free disk where the download cache and the stack's data live;
* the project's ports: the datastores' (``infra/stack.py`` PORTS and their
  second ports), the services' (``mesh/config.py`` SERVICE_PORTS, or
  ``ECOM_<SVC>_ADDR``) and the edge's (``ECOM_EDGE_PORT``, admin
  ``ECOM_EDGE_ADMIN_PORT``). A port held by this stack's own processes (pid
  files under the stack folder) is fine; one held by anything else is named
  with the process holding it.

Exit status 0 when nothing is missing, 1 otherwise. It uses the standard
library only, so it runs with the system Python before the virtualenv
exists. ``--for test`` checks only what `make test` needs (test runs put
services and edges on free ports).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from infra.core import BIN, CACHE, REPO, STACK, descendants, pid_alive

GIB = 1 << 30
# Free space wanted before a first install (JDK servers' jars, Go builds,
# npm, Spark jars) and for the servers' data and logs.
CACHE_FREE_COLD = 4 * GIB
CACHE_FREE_WARM = GIB // 2
STACK_FREE = 2 * GIB
MIN_PYTHON = (3, 11)
MIN_JAVA = 17
MIN_GO = (1, 24)

APT_FIX = "apt-get install -y"


@dataclass(frozen=True)
class Finding:
    """One prerequisite: present or not, what was seen, how to get it."""

    what: str
    ok: bool
    detail: str
    fix: str = ""


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------


def _version_output(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(could not run: {exc})"
    return proc.stdout + proc.stderr


def check_python(path: str | None = None, venv: Path = REPO / ".venv" / "bin" / "python",
                 ) -> Finding:
    """Python 3.11+ with the venv module, as `make venv` will use it (or the
    project's virtualenv, once built)."""
    what = "Python 3.11"
    fix = f"{APT_FIX} python3.11 python3.11-venv (Debian 12), or install 3.11 with pyenv"
    if venv.exists():
        return Finding(what, True, f"virtualenv {venv.parent.parent}")
    for name in ("python3.11", "python3"):
        exe = shutil.which(name, path=path)
        if not exe:
            continue
        out = _version_output(
            [exe, "-c", "import sys, ensurepip, venv; print(*sys.version_info[:2])"])
        m = re.fullmatch(r"(\d+) (\d+)\s*", out)
        if not m:
            if "ensurepip" in out or "venv" in out:
                return Finding(what, False, f"{exe} has no venv/ensurepip module", fix)
            continue
        version = (int(m.group(1)), int(m.group(2)))
        if version >= MIN_PYTHON:
            return Finding(what, True, f"{exe} ({version[0]}.{version[1]})")
    return Finding(what, False, "no python3.11 (or python3 >= 3.11) on PATH", fix)


def _java_major(text: str) -> int | None:
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_java(path: str | None = None) -> Finding:
    """Java 17+: ECOM_JAVA_HOME, JAVA_HOME or `java` on PATH (as infra uses it)."""
    what = f"Java {MIN_JAVA}"
    fix = f"{APT_FIX} openjdk-{MIN_JAVA}-jdk-headless (or point ECOM_JAVA_HOME at a JDK 17+)"
    java = None
    for home in (os.environ.get("ECOM_JAVA_HOME"), os.environ.get("JAVA_HOME")):
        if home and (Path(home) / "bin" / "java").exists():
            java = str(Path(home) / "bin" / "java")
            break
    java = java or shutil.which("java", path=path)
    if not java:
        return Finding(what, False, "no java on PATH, JAVA_HOME or ECOM_JAVA_HOME", fix)
    major = _java_major(_version_output([java, "-version"]))
    if major is None:
        return Finding(what, False, f"cannot read the version of {java}", fix)
    if major < MIN_JAVA:
        return Finding(what, False, f"{java} is Java {major}", fix)
    return Finding(what, True, f"{java} (Java {major})")


def check_go(path: str | None = None) -> Finding:
    what = "Go 1.24"
    fix = ("install Go 1.24+ from https://go.dev/dl/ (Debian 12's golang is too old) "
           "and put its bin/ on PATH")
    go = shutil.which("go", path=path)
    if not go:
        return Finding(what, False, "no go on PATH", fix)
    m = re.search(r"go(\d+)\.(\d+)", _version_output([go, "version"]))
    if not m:
        return Finding(what, False, f"cannot read the version of {go}", fix)
    version = (int(m.group(1)), int(m.group(2)))
    if version < MIN_GO:
        return Finding(what, False, f"{go} is Go {version[0]}.{version[1]}", fix)
    return Finding(what, True, f"{go} (Go {version[0]}.{version[1]})")


def check_tool(what: str, name: str, fix: str, path: str | None = None) -> Finding:
    found = shutil.which(name, path=path)
    return Finding(what, bool(found), found or f"no {name} on PATH", "" if found else fix)


def check_apt(missing_packages: list[str], path: str | None = None,
              is_root: bool | None = None) -> Finding:
    """apt-get, dpkg and root, needed only while some package is missing."""
    what = "apt/dpkg and root"
    if not missing_packages:
        return Finding(what, True, "the Debian packages infra uses are installed")
    is_root = os.geteuid() == 0 if is_root is None else is_root
    pkgs = " ".join(missing_packages)
    absent = [t for t in ("apt-get", "dpkg") if not shutil.which(t, path=path)]
    if absent:
        return Finding(what, False, f"packages {pkgs} are missing and {', '.join(absent)} "
                       "is not on PATH", f"install {pkgs} with this system's package manager")
    if not is_root:
        return Finding(what, False, f"packages {pkgs} are missing and installing them needs "
                       "root", f"sudo {APT_FIX} {pkgs}, then run again")
    return Finding(what, True, f"will apt-get install {pkgs}")


# --------------------------------------------------------------------------
# What the cache still lacks (a tool is needed only to fill it)
# --------------------------------------------------------------------------


def missing_apt_packages() -> list[str]:
    from infra.servers import mariadb, redis

    out: list[str] = []
    if not (Path(mariadb.MARIADBD).exists() and Path(mariadb.INSTALL_DB).exists()):
        out += mariadb.PACKAGES
    if not Path(redis.REDIS_SERVER).exists():
        out += redis.PACKAGES
    # The storefront's browser tests drive Debian's chromium (infra.tools).
    if not Path("/usr/bin/chromium").exists():
        out.append("chromium")
    return out


def go_needed() -> bool:
    return not ((BIN / "grpcurl").exists() and (BIN / "grpc-health-probe").exists()
                and any(BIN.glob("ferretdb-*")))


def maven_needed() -> bool:
    from infra.servers.cassandra import Cassandra
    from infra.servers.kafka import Kafka

    markers = [Kafka().home / "lib" / ".complete", Cassandra().cached_lib / ".complete"]
    spark = any((CACHE / "spark-jars").glob("*/.complete"))
    return not (spark and all(m.exists() for m in markers))


def java_needed() -> bool:
    return not all(os.environ.get(v) for v in
                   ("ECOM_KAFKA_BOOTSTRAP", "ECOM_ES_URL", "ECOM_CASSANDRA_HOSTS"))


# --------------------------------------------------------------------------
# Disk
# --------------------------------------------------------------------------


def check_disk(what: str, folder: Path, need: int, setting: str) -> Finding:
    """Free space on the file system that holds (or will hold) `folder`."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    detail = f"{free / GIB:.1f} GiB free at {probe} (wants {need / GIB:.1f} GiB)"
    if free >= need:
        return Finding(what, True, detail)
    return Finding(what, False, detail, f"free space there, or point {setting} at a larger disk")


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PortUse:
    """A project port: whose it is and what to set to use something else."""

    port: int
    owner: str  # "mariadb", "svc_orders", "edge"...
    setting: str  # the ECOM_* variable that moves or replaces it
    pid_files: tuple[Path, ...] = ()


def _literal(path: Path, name: str) -> object:
    """The literal assigned to `name` at the top of a Python file (read, not
    imported: mesh/ needs the virtualenv, the doctor must not)."""
    for node in ast.parse(path.read_text()).body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == name and value is not None:
            return ast.literal_eval(value)
    raise LookupError(f"{name} not found in {path}")


def _port_of(value: str | None, default: int) -> int:
    if not value:
        return default
    m = re.search(r":(\d+)\s*$", value)
    return int(m.group(1)) if m else default


def _replica_ports(value: str | None, default: int, replicas: int) -> list[int]:
    """The ports of a service's replicas: a list given in ECOM_<SVC>_ADDR, or
    its one port and one 100 higher per further replica (infra.services)."""
    if value and "," in value:
        return [_port_of(v, default) for v in value.split(",") if v.strip()]
    base = _port_of(value, default)
    return [base + 100 * k for k in range(replicas)]


def project_ports(scope: str = "up") -> list[PortUse]:
    """Every port `make up` (scope "up") or `make test` ("test") listens on."""
    from infra import stack

    run = STACK / "run"
    uses: list[PortUse] = []
    for server in stack.all_servers():
        if server.external():
            continue
        for port in [server.port, *server.extra_ports]:
            uses.append(PortUse(port, server.name, server.env_var, (server.pid_file,)))
    if scope == "test":
        return uses
    supervisor = (run / "supervisor.pid",)
    service_ports = _literal(REPO / "mesh" / "config.py", "SERVICE_PORTS")
    assert isinstance(service_ports, dict)
    try:
        replicas = max(1, int(os.environ.get("ECOM_REPLICAS") or 2))
    except ValueError:
        replicas = 2
    for name, port in service_ports.items():
        var = f"ECOM_{name.upper()}_ADDR"
        for k, replica_port in enumerate(_replica_ports(os.environ.get(var), port, replicas)):
            label = f"svc_{name}" if k == 0 else f"svc_{name} replica {k}"
            uses.append(PortUse(replica_port, label, var, supervisor))
    uses.append(PortUse(int(os.environ.get("ECOM_EDGE_PORT") or 8080), "edge",
                        "ECOM_EDGE_PORT", supervisor))
    uses.append(PortUse(int(os.environ.get("ECOM_EDGE_ADMIN_PORT") or 19901), "edge admin",
                        "ECOM_EDGE_ADMIN_PORT", supervisor))
    uses.append(PortUse(_port_of(os.environ.get("ECOM_WEB_ADDR"), 18088), "storefront files",
                        "ECOM_WEB_ADDR", supervisor))
    return uses


def listening_inodes(ports: set[int]) -> dict[int, set[str]]:
    """port -> socket inodes listening on it (any local address), from
    /proc/net/tcp and tcp6."""
    out: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A = LISTEN
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in ports:
                out.setdefault(port, set()).add(fields[9])
    return out


def socket_owners(inodes: set[str]) -> dict[str, set[int]]:
    """socket inode -> pids holding it (processes we may not inspect are
    left out)."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    out: dict[str, set[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link in wanted:
                out.setdefault(wanted[link], set()).add(int(proc.name))
    return out


def _ours(pid_files: Iterable[Path]) -> set[int]:
    """Live pids recorded in `pid_files`, with all their descendants."""
    pids: set[int] = set()
    for f in pid_files:
        try:
            pid = int(f.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid_alive(pid):
            pids |= {pid, *descendants(pid)}
    return pids


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(p.decode(errors="replace") for p in raw.split(b"\0") if p)
    return " ".join(text.split())[:80]


def check_ports(uses: list[PortUse]) -> list[Finding]:
    """One finding per port someone else holds; one ok finding otherwise."""
    taken = listening_inodes({u.port for u in uses})
    owners = socket_owners(set().union(*taken.values())) if taken else {}
    problems: list[Finding] = []
    for use in uses:
        if use.port not in taken:
            continue
        holders = set().union(*(owners.get(i, set()) for i in taken[use.port]))
        ours = _ours(use.pid_files)
        if holders & ours or (not holders and ours):
            continue  # this stack's own process
        who = ", ".join(f"pid {p} ({_cmdline(p)})" for p in sorted(holders)) or "another process"
        problems.append(Finding(
            f"port {use.port}", False,
            f"{use.owner}'s port 127.0.0.1:{use.port} is taken by {who}",
            f"stop that process, or set {use.setting} to "
            + ("use that server" if use.setting.endswith(("_URL", "_BOOTSTRAP", "_HOSTS"))
               else "another port"),
        ))
    if not problems:
        problems.append(Finding("ports", True, f"{len(uses)} project ports free or ours"))
    return problems


# --------------------------------------------------------------------------
# All together
# --------------------------------------------------------------------------


def run_checks(scope: str = "up", path: str | None = None,
               ports: list[PortUse] | None = None) -> list[Finding]:
    """Every finding, in the order a user would fix them."""
    findings = [check_python(path)]
    findings.append(check_java(path) if java_needed() else Finding(
        f"Java {MIN_JAVA}", True, "not needed: Kafka, Elasticsearch and Cassandra are external"))
    findings.append(check_go(path) if go_needed() else Finding(
        "Go 1.24", True, f"not needed now: what it builds is in {BIN}"))
    # npm builds the storefront (`make web`, before `make up` and `make test`)
    # as well as fetching buf, so it is always needed.
    findings.append(check_tool("npm", "npm", f"{APT_FIX} npm", path))
    findings.append(check_tool("Maven", "mvn", f"{APT_FIX} maven", path) if maven_needed()
                    else Finding("Maven", True, f"not needed now: the jars are in {CACHE}"))
    findings.append(check_apt(missing_apt_packages(), path))
    cold = not BIN.exists()
    findings.append(check_disk("disk (download cache)", CACHE,
                               CACHE_FREE_COLD if cold else CACHE_FREE_WARM, "ECOM_CACHE_DIR"))
    findings.append(check_disk("disk (stack data)", STACK, STACK_FREE, "ECOM_STACK_DIR"))
    findings += check_ports(project_ports(scope) if ports is None else ports)
    return findings


def report(findings: list[Finding], out=sys.stdout) -> bool:  # type: ignore[no-untyped-def]
    """Print one line per finding (and the fix under a missing one); True
    when nothing is missing."""
    for f in findings:
        print(f"  {'ok     ' if f.ok else 'MISSING'}  {f.what}: {f.detail}", file=out)
        if not f.ok and f.fix:
            print(f"           -> {f.fix}", file=out)
    missing = [f for f in findings if not f.ok]
    if missing:
        print(f"doctor: {len(missing)} prerequisite(s) missing; fix them and run again",
              file=out)
    return not missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.doctor", description=__doc__.split("\n\n")[0])
    p.add_argument("--for", dest="scope", choices=["up", "test"], default="up",
                   help="what is about to run (test: datastore ports only)")
    args = p.parse_args(argv)
    print(f"doctor: prerequisites for `make {args.scope}`")
    return 0 if report(run_checks(args.scope)) else 1


if __name__ == "__main__":
    sys.exit(main())
