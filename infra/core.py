"""The shared machinery of `infra/`: where things live, downloading, and the
life cycle of one local server process (start, wait until ready, stop).

Every server in `infra/servers/` is a `Server` subclass that says how to
install itself into the download cache, how to prepare its data directory,
which command runs it and how to tell that it is ready by speaking its real
protocol. This module does the rest the same way for all of them: pid files,
log files, port checks, clear errors with the tail of the log, never a hang.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Everything downloaded or built is cached outside the repository, so the
# second `up` is fast and works offline.
CACHE = Path(os.environ.get("ECOM_CACHE_DIR", Path.home() / ".cache" / "ecom"))
# Data, logs and pid files of the running stack: one git-ignored folder.
STACK = Path(os.environ.get("ECOM_STACK_DIR", REPO / ".stack"))
BIN = CACHE / "bin"

# The unprivileged account that servers refusing root (Elasticsearch) run as.
SERVICE_USER = "ecom"

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


class InfraError(RuntimeError):
    """A failure `infra` explains to the user; printed without a traceback."""


def log(msg: str) -> None:
    print(f"[infra] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Downloads and installs (all idempotent, all into CACHE)
# --------------------------------------------------------------------------


def download(url: str, dest: Path, *, sha256: str | None = None, timeout: float = 60) -> Path:
    """Fetch `url` to `dest` unless it is already there; atomic, with a clear error."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {url}")
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out, length=1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise InfraError(f"download refused or failed: {url}: {exc}") from exc
    if sha256:
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        if digest != sha256:
            tmp.unlink(missing_ok=True)
            raise InfraError(f"checksum mismatch for {url}: got {digest}, want {sha256}")
    tmp.rename(dest)
    return dest


def maven_artifact_url(coords: str, packaging: str = "jar") -> str:
    """`group:artifact:version` -> its URL on Maven Central."""
    group, artifact, version = coords.split(":")
    return (
        f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/"
        f"{artifact}-{version}.{packaging}"
    )


def maven_resolve(coords: str, dest: Path, *, exclusions: list[str] | None = None) -> Path:
    """Resolve `group:artifact:version` and all its runtime dependencies into
    `dest` (a folder of jars) with Maven, once. Returns `dest`."""
    marker = dest / ".complete"
    if marker.exists():
        return dest
    require_tool("mvn", "Maven is needed to fetch jars from Maven Central (apt-get install maven)")
    group, artifact, version = coords.split(":")
    excl = "".join(
        f"<exclusion><groupId>{e.split(':')[0]}</groupId><artifactId>{e.split(':')[1]}"
        f"</artifactId></exclusion>"
        for e in (exclusions or [])
    )
    pom = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ecom.infra</groupId><artifactId>fetch-{artifact}</artifactId><version>1</version>
  <dependencies><dependency>
    <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>
    <exclusions>{excl}</exclusions>
  </dependency></dependencies>
</project>"""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(pom)
        log(f"resolving {coords} and its dependencies from Maven Central")
        run(
            [
                "mvn", "-q", "-B", "-f", str(Path(tmp) / "pom.xml"),
                "dependency:copy-dependencies", f"-DoutputDirectory={dest}",
                "-DincludeScope=runtime",
            ],
            what=f"maven resolve of {coords}",
        )
    marker.touch()
    return dest


def go_install(module: str, binary: str, *, env: dict[str, str] | None = None) -> Path:
    """`go install module@version` into BIN, once. Returns the binary's path."""
    target = BIN / binary
    if target.exists():
        return target
    require_tool("go", "Go is needed to build tools from the Go module proxy")
    BIN.mkdir(parents=True, exist_ok=True)
    log(f"building {module} with go install")
    run(
        ["go", "install", module],
        what=f"go install {module}",
        env={**os.environ, "GOBIN": str(BIN), "CGO_ENABLED": "0", **(env or {})},
    )
    if not target.exists():
        raise InfraError(f"go install {module} did not produce {target}")
    return target


def apt_install(packages: list[str], *, binaries: list[str]) -> None:
    """Install Debian packages unless every binary in `binaries` is present.
    Package scripts are not allowed to start system services: we start our
    own instances on project ports."""
    if all(shutil.which(b) or Path(b).exists() for b in binaries):
        return
    if os.geteuid() != 0:
        raise InfraError(
            f"missing {', '.join(binaries)}; install the Debian packages "
            f"{' '.join(packages)} (needs root), then run again"
        )
    policy = Path("/usr/sbin/policy-rc.d")
    had_policy = policy.exists()
    if not had_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log(f"apt-get install {' '.join(packages)}")
        stamp = Path("/var/lib/apt/lists")
        if not any(stamp.glob("*Packages*")):
            run(["apt-get", "update", "-q"], what="apt-get update", env=env)
        try:
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                what="apt-get install", env=env)
        except InfraError:
            run(["apt-get", "update", "-q"], what="apt-get update", env=env)
            run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                what="apt-get install", env=env)
    finally:
        if not had_policy:
            policy.unlink(missing_ok=True)


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise InfraError(f"{name} not found: {hint}")
    return path


def java_home(min_major: int = 17) -> Path:
    """The JDK to run Java servers with (ECOM_JAVA_HOME, JAVA_HOME, or `java` on PATH)."""
    for cand in (os.environ.get("ECOM_JAVA_HOME"), os.environ.get("JAVA_HOME")):
        if cand and (Path(cand) / "bin" / "java").exists():
            home = Path(cand)
            break
    else:
        java = shutil.which("java")
        if not java:
            raise InfraError(
                f"Java {min_major}+ not found: install openjdk-{min_major}-jdk-headless"
            )
        home = Path(os.path.realpath(java)).parent.parent
    out = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True)
    text = out.stderr + out.stdout
    try:
        ver = text.split('"')[1]
        major = int(ver.split(".")[0]) if not ver.startswith("1.") else int(ver.split(".")[1])
    except (IndexError, ValueError) as exc:
        raise InfraError(f"cannot read the Java version from: {text.strip()}") from exc
    if major < min_major:
        raise InfraError(f"Java {min_major}+ needed, found {ver} at {home}")
    return home


def account_lock_file() -> Path:
    """The file whose flock serialises account creation between processes
    (two `make` runs, a test run, the stack's parallel starts)."""
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK):
        return run_lock / "ecom-accounts.lock"
    return CACHE / "accounts.lock"


# Threads of one process share the flock (it belongs to the open file), so
# they queue on this lock first.
_ACCOUNT_THREADS = threading.Lock()

# useradd exit codes (shadow-utils): 9 = the name is already used; 10 =
# cannot update the group file (another tool holds /etc/group's lock).
USERADD_NAME_IN_USE = 9
USERADD_GROUP_FILE_BUSY = 10
USERADD_ATTEMPTS = 20


def _account(name: str) -> tuple[int, int] | None:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def ensure_service_user(name: str = SERVICE_USER) -> tuple[int, int]:
    """(uid, gid) of the unprivileged account servers that refuse root run
    as, creating the account (and its group) once when running as root.
    Without root: the caller's own uid and gid.

    Safe for concurrent callers: the parallel server starts of `up`, two
    `make` runs at once, tests. Creation happens under a thread lock and an
    flock on `account_lock_file()`, and the account is looked up again once
    both are held, so exactly one `useradd` runs and every caller gets the
    ids of the account that exists."""
    found = _account(name)
    if found is not None:
        return found
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    lock_path = account_lock_file()
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with _ACCOUNT_THREADS, open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            found = _account(name)
            if found is None:
                _useradd(name)
                found = _account(name)
            if found is None:
                raise InfraError(f"useradd {name} succeeded but the account is not there")
            return found
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _useradd(name: str) -> None:
    """One `useradd --system` for `name`, into its own group (an existing
    group of that name, e.g. left by an earlier half-created account, is
    reused rather than refused). Tools outside our lock (another package's
    postinst, an admin) can hold the passwd/group file locks: retry then."""
    try:
        grp.getgrnam(name)
        group = ["--gid", name]
    except KeyError:
        group = ["--user-group"]
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
           *group, name]
    for attempt in range(USERADD_ATTEMPTS):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode in (0, USERADD_NAME_IN_USE):
            return
        busy = proc.returncode == USERADD_GROUP_FILE_BUSY or "lock" in proc.stderr.lower()
        if not busy or attempt == USERADD_ATTEMPTS - 1:
            raise InfraError(f"useradd {name} failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()}")
        time.sleep(0.1 * (attempt + 1))


def chown_tree(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for n in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, n), uid, gid)


def run(cmd: list[str], *, what: str, env: dict[str, str] | None = None,
        cwd: Path | None = None, timeout: float = 1800) -> str:
    """Run a command to completion; on failure raise with the tail of its output."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"{what} did not finish within {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise InfraError(f"{what}: {cmd[0]} not found") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise InfraError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def host_port(value: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `scheme://host:port/..` or `host` -> (host, port)."""
    v = value.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(",")[0]
    if ":" in v:
        h, p = v.rsplit(":", 1)
        return h, int(p)
    return v, default_port


# --------------------------------------------------------------------------
# One server
# --------------------------------------------------------------------------


@dataclass
class Status:
    name: str
    state: str  # running | stopped | external | dead
    pid: int | None
    port: int
    version: str
    healthy: bool
    detail: str = ""


@dataclass
class Server:
    """A local server process managed by infra. Subclasses fill in the hooks."""

    name: str
    port: int
    # The environment variable that points at an external server; when it is
    # set, this server is not started and the services use the given one.
    env_var: str
    # Seconds `up` waits for readiness before giving up with the log tail.
    start_timeout: float = 120.0
    extra_ports: list[int] = field(default_factory=list)

    # -- hooks -------------------------------------------------------------
    def install(self) -> None:
        """Fetch or build what this server needs into CACHE (idempotent)."""

    def prepare(self) -> None:
        """Create config and initialise the data directory (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def run_as(self) -> tuple[int, int] | None:
        """(uid, gid) to drop to, for servers that refuse root."""
        return None

    def ready(self) -> bool:
        """True when the server answers its real protocol."""
        raise NotImplementedError

    def version(self) -> str:
        return "?"

    def after_ready(self) -> None:
        """One-off work once the server answers (create users, topics...)."""

    # -- derived paths -------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return STACK / self.name

    @property
    def log_file(self) -> Path:
        return STACK / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return STACK / "run" / f"{self.name}.pid"

    @property
    def url(self) -> str:
        """The address services use, e.g. for ECOM_* variables."""
        return f"127.0.0.1:{self.port}"

    def external(self) -> str | None:
        return os.environ.get(self.env_var) or None

    # -- life cycle ------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def status(self) -> Status:
        if self.external():
            healthy = safe_ready(self)
            return Status(self.name, "external", None, self.port, "external", healthy,
                          self.external() or "")
        pid = self.pid()
        if pid is None:
            state = "dead" if self.pid_file.exists() else "stopped"
            return Status(self.name, state, None, self.port, self.safe_version(), False)
        return Status(self.name, "running", pid, self.port, self.safe_version(),
                      safe_ready(self))

    def safe_version(self) -> str:
        try:
            return self.version()
        except Exception:  # noqa: BLE001 - status must always print
            return "?"

    def start(self) -> None:
        """Start unless already running; wait until ready or fail clearly."""
        if self.external():
            log(f"{self.name}: using external {self.env_var}={self.external()}")
            return
        if self.pid() is not None:
            self.wait_ready(None)
            return
        for p in [self.port, *self.extra_ports]:
            if port_open(p):
                raise InfraError(
                    f"{self.name}: port 127.0.0.1:{p} is already taken by another process; "
                    f"stop it, or point {self.env_var} at a running {self.name}"
                )
        self.install()
        for d in (self.data_dir, self.log_file.parent, self.pid_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.prepare()
        owner = self.run_as()
        if owner:
            chown_tree(self.data_dir, *owner)
        cmd = self.command()
        log(f"{self.name}: starting on 127.0.0.1:{self.port}")
        logf = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child
        preexec = None
        if owner and os.geteuid() == 0:
            uid, gid = owner

            def preexec() -> None:  # runs in the child before exec
                os.setgid(gid)
                os.setgroups([])
                os.setuid(uid)

        proc = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.environment(), cwd=self.data_dir, start_new_session=True,
            preexec_fn=preexec,
        )
        logf.close()
        self.pid_file.write_text(str(proc.pid))
        try:
            self.wait_ready(proc)
        except InfraError:
            # Never leave a half-started server behind.
            self.stop(timeout=10)
            raise
        self.after_ready()
        log(f"{self.name}: ready (pid {proc.pid})")

    def wait_ready(self, proc: subprocess.Popen[bytes] | None) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise InfraError(
                    f"{self.name} exited during start (code {proc.returncode}); "
                    f"last lines of {self.log_file}:\n{tail(self.log_file)}"
                )
            if proc is None and self.pid() is None:
                raise InfraError(f"{self.name} is not running; see {self.log_file}")
            if safe_ready(self):
                return
            time.sleep(0.5)
        raise InfraError(
            f"{self.name} not ready after {self.start_timeout:.0f}s; "
            f"last lines of {self.log_file}:\n{tail(self.log_file)}"
        )

    def stop(self, timeout: float = 60) -> None:
        """Stop exactly the process group we started (from the pid file)."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        log(f"{self.name}: stopping pid {pid}")
        # The whole family: the group leader and every descendant (JVM
        # launchers fork the real server), so nothing is left behind.
        family = [pid, *descendants(pid)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(pid_alive(p) for p in family):
            time.sleep(0.2)
        if any(pid_alive(p) for p in family):
            log(f"{self.name}: did not stop in {timeout:.0f}s, killing")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            for p in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            while any(pid_alive(p) for p in family):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)

    def reset(self) -> None:
        """Wipe this server's data (it must be stopped)."""
        if self.pid() is not None:
            raise InfraError(f"{self.name} is running; run `down` before `reset`")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)


def safe_ready(server: Server) -> bool:
    try:
        return bool(server.ready())
    except Exception:  # noqa: BLE001 - any failure to answer means "not ready"
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log file)"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().split(") ", 1)[1].split()[1])
            except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out
