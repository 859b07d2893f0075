"""Mailpit: the SMTP server svc_notify sends email to locally, with an HTTP
API (`/api/v1/messages`, `/api/v1/search`) that tests read mail back from.

Built once with `go install github.com/axllent/mailpit@v1.33.1` from the Go
module proxy (about 5 minutes cold on 2 cores). Both listeners are given
explicit loopback addresses because Mailpit binds every interface by
default, and `--disable-version-check` keeps it off the network. The web
UI's built assets are not in the module zip, so only the API is served.

`--ignore-duplicate-ids` makes Mailpit drop a message whose Message-ID it
already holds, as receiving mail systems do: svc_notify gives each
notification a stable Message-ID, so a resend after a crash between the
SMTP hand-over and the database update never shows twice.

`ECOM_SMTP_URL` (``smtp://host:port``) points svc_notify at a real relay
instead; then this server is not started.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from infra.core import BIN, STACK, Server, go_install, port_open, run
from infra.stack import PORTS

MODULE = "github.com/axllent/mailpit"
VERSION = "v1.33.1"


class Mailpit(Server):
    """One Mailpit process. ``name``/ports may differ from the stack's for a
    private instance (a test that stops and starts its own mail server)."""

    def __init__(self, name: str = "mailpit", smtp_port: int | None = None,
                 http_port: int | None = None, stack_dir: Path | None = None,
                 env_var: str = "ECOM_SMTP_URL") -> None:
        super().__init__(name=name, port=smtp_port or PORTS["mailpit"],
                         env_var=env_var, start_timeout=30,
                         extra_ports=[http_port or PORTS["mailpit_http"]])
        self.http_port = http_port or PORTS["mailpit_http"]
        self._stack_dir = stack_dir

    @property
    def data_dir(self) -> Path:
        return (self._stack_dir or STACK) / self.name

    @property
    def binary(self) -> Path:
        return BIN / "mailpit"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API (tests read mail back through it)."""
        return f"http://127.0.0.1:{self.http_port}"

    def install(self) -> None:
        go_install(f"{MODULE}@{VERSION}", "mailpit")

    def command(self) -> list[str]:
        return [
            str(self.binary),
            "--smtp", f"127.0.0.1:{self.port}",
            "--listen", f"127.0.0.1:{self.http_port}",
            "--database", str(self.data_dir / "mailpit.db"),
            "--disable-version-check",
            "--ignore-duplicate-ids",
            # The default prunes beyond 500 messages, fewer than one test
            # run sends; keep 100,000 (the oldest go first).
            "--max", "100000",
        ]

    def ready(self) -> bool:
        if not port_open(self.port):
            return False
        with urllib.request.urlopen(f"{self.api_url}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)

    def version(self) -> str:
        if self.pid() is not None:
            with urllib.request.urlopen(f"{self.api_url}/api/v1/info", timeout=2) as resp:
                reported = json.loads(resp.read())["Version"]
                # go install leaves the version unset ("dev"); we built VERSION.
                return f"Mailpit {VERSION if reported == 'dev' else reported}"
        if not self.binary.exists():
            return "?"
        return run([str(self.binary), "version"], what="mailpit version").split("\n")[0].strip()
