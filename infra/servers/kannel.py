"""Kannel: the SMS gateway svc_notify sends SMS through locally.

From Debian's `kannel` and `kannel-extras` (1.4.5). Three processes under
one launcher (`python -m infra.servers.kannel run CONFIG`), which is what
`infra` starts and stops as the server `kannel`:

* bearerbox: the core; its admin HTTP port answers `status.txt`;
* fakesmsc (`/usr/lib/kannel/test/fakesmsc`, from kannel-extras): the test
  SMSC. It connects to bearerbox's `fake` SMSC port and prints every
  message it receives (to `.stack/logs/kannel.log`), acknowledging it, so
  Kannel reports delivery (DLR status 8, "delivered to SMSC");
* smsbox: the `sendsms` HTTP interface svc_notify calls, which also calls
  the `dlr-url` svc_notify passes with each message.

Every listener binds 127.0.0.1 (`admin-interface`, `smsbox-interface`,
`sendsms-interface`) except the fake SMSC port, which Kannel always binds on
every interface: `connect-allow-ip = 127.0.0.1` refuses anyone else.

The sendsms password is created once under `.stack/secrets/` and appears in
`ECOM_SMS_URL` (`python -m infra env`); `ECOM_SMS_URL` set in the
environment points svc_notify at a real gateway instead, and this server is
not started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from infra.core import STACK, Server, apt_install, chown_tree, ensure_service_user, port_open, run
from infra.stack import PORTS

PACKAGES = ["kannel", "kannel-extras"]
BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
SENDSMS_USER = "ecom"

CONFIG = """\
# Written by infra/servers/kannel.py on every start; edit that file instead.
group = core
admin-port = {admin_port}
admin-interface = 127.0.0.1
admin-password = {password}
status-password = {password}
admin-allow-ip = 127.0.0.1
smsbox-port = {smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{dir}/bearerbox.log"
log-level = 1
access-log = "{dir}/access.log"
store-type = file
store-location = "{dir}/kannel.store"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
host = 127.0.0.1
port = {fake_port}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{dir}/smsbox.log"
log-level = 1
# A delivery report whose dlr-url does not answer (svc_notify restarting)
# is tried again, so no report is lost to a crash.
http-request-retry = 30
http-queue-delay = 2

group = sendsms-user
username = {user}
password = {password}
user-allow-ip = 127.0.0.1
max-messages = 3
concatenation = true

# Incoming messages (none expected): answer nothing.
group = sms-service
keyword = default
catch-all = true
omit-empty = true
text = ""
"""


class Kannel(Server):
    def __init__(self) -> None:
        super().__init__(
            name="kannel", port=PORTS["kannel_sendsms"], env_var="ECOM_SMS_URL",
            start_timeout=30,
            extra_ports=[PORTS["kannel_admin"], PORTS["kannel_smsbox"], PORTS["kannel_fake"]],
        )

    @property
    def config_file(self) -> Path:
        return self.data_dir / "kannel.conf"

    @staticmethod
    def password() -> str:
        """The sendsms and admin password, created once."""
        path = STACK / "secrets" / "kannel-password"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(12))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def url(self) -> str:
        """The sendsms URL with its credentials (ECOM_SMS_URL)."""
        return (f"http://{SENDSMS_USER}:{self.password()}@127.0.0.1:{self.port}"
                "/cgi-bin/sendsms")

    def install(self) -> None:
        apt_install(PACKAGES, binaries=[BEARERBOX, SMSBOX, FAKESMSC])

    def prepare(self) -> None:
        self.config_file.write_text(CONFIG.format(
            admin_port=PORTS["kannel_admin"], smsbox_port=PORTS["kannel_smsbox"],
            fake_port=PORTS["kannel_fake"], sendsms_port=self.port, dir=self.data_dir,
            password=self.password(), user=SENDSMS_USER,
        ))
        self.config_file.chmod(0o600)
        # The launcher stays with the invoking user (it only supervises);
        # bearerbox, smsbox and fakesmsc drop to the unprivileged account,
        # which owns the config, the store and the logs.
        if os.geteuid() == 0:
            chown_tree(self.data_dir, *ensure_service_user())

    def command(self) -> list[str]:
        return [sys.executable, "-m", "infra.servers.kannel", "run", str(self.config_file),
                str(PORTS["kannel_admin"]), str(PORTS["kannel_fake"])]

    def environment(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parents[2])
        return {**os.environ, "PYTHONPATH": root}

    def _status(self) -> str:
        query = urllib.parse.urlencode({"password": self.password()})
        url = f"http://127.0.0.1:{PORTS['kannel_admin']}/status.txt?{query}"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode(errors="replace"))

    def ready(self) -> bool:
        if not port_open(self.port):
            return False
        status = self._status()
        # The fake SMSC connected and an smsbox attached.
        return "online" in status and "smsbox:" in status.replace("Box connections:", "")

    def version(self) -> str:
        if Path(BEARERBOX).exists():
            out = run([BEARERBOX, "--version"], what="bearerbox --version", timeout=10)
            for line in out.splitlines():
                if "version" in line.lower():
                    return "Kannel " + line.split("`")[-1].strip("'` .") if "`" in line else line
        return "?"


def _privilege_drop(config: str) -> Callable[[], None] | None:
    """Under root, the gateway processes run as the config's owner (the
    service account prepare() handed it to), never as root."""
    owner = os.stat(config)
    if os.geteuid() != 0 or owner.st_uid == 0:
        return None

    def drop() -> None:
        os.setgid(owner.st_gid)
        os.setgroups([])
        os.setuid(owner.st_uid)

    return drop


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    """Terminate in reverse start order; kill what does not stop in 10 s."""
    for c in reversed(children):
        if c.poll() is None:
            c.terminate()
    for c in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            c.wait(10)
        if c.poll() is None:
            c.kill()


def _first_exit(children: list[subprocess.Popen[bytes]], stopping: list[bool]) -> int:
    """Wait until a child exits (its code, 1 if it was 0) or a signal asks to
    stop (0)."""
    names = {c.pid: str(c.args[0]) if isinstance(c.args, list) else "?" for c in children}
    while not stopping:
        for c in children:
            if c.poll() is not None:
                print(f"kannel launcher: {names.get(c.pid, '?')} exited with {c.returncode}",
                      flush=True)
                return c.returncode or 1
        time.sleep(0.2)
    return 0


def _launch(config: str, admin_port: int, fake_port: int) -> int:
    """Run bearerbox, then fakesmsc and smsbox once bearerbox listens; stop
    them all when one exits or on SIGTERM (the exit code says which)."""
    children: list[subprocess.Popen[bytes]] = []
    stopping: list[bool] = []  # non-empty once a signal asked to stop

    def stop(*_: object) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    drop = _privilege_drop(config)

    def spawn(cmd: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, preexec_fn=drop)  # noqa: PLW1509 - no threads here

    children.append(spawn([BEARERBOX, "-v", "1", config]))
    deadline = time.monotonic() + 20
    while not (port_open(admin_port) and port_open(fake_port)):
        if time.monotonic() > deadline or children[0].poll() is not None or stopping:
            children[0].terminate()
            return 1
        time.sleep(0.2)
    # -m 0: send no mobile-originated messages, only receive and print.
    children.append(spawn(
        [FAKESMSC, "-H", "127.0.0.1", "-r", str(fake_port), "-m", "0", "-i", "0.1", "ack"]))
    children.append(spawn([SMSBOX, "-v", "1", config]))
    code = _first_exit(children, stopping)
    _stop_all(children)
    return code


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "run":
        sys.exit(_launch(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    print("usage: python -m infra.servers.kannel run CONFIG ADMIN_PORT FAKE_PORT",
          file=sys.stderr)
    sys.exit(2)
