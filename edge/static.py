"""``python -m edge.static``: the small file server behind the edge's ``/``
route, serving the built storefront (``web/dist``, made by ``make web``).

Standard library only. GET and HEAD of files under the folder; no directory
listings, no dot-files, no paths outside it. ``index.html`` is never cached
(a new build is picked up at once); ``assets/`` files carry a content hash
in their names, so they are cached for a year. Every answer carries a
Content-Security-Policy that allows scripts, styles, images and API calls
from the same origin only: even if some API text slipped into the page as
markup, no script of another origin (or inline) could run.

Listens on ``ECOM_WEB_ADDR`` (default 127.0.0.1:18088) unless ``--addr``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edge.config import EdgeSettings

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "web" / "dist"

CSP = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' https: data:; "
    # Chart.js sizes its canvases through inline style attributes.
    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


class StorefrontHandler(SimpleHTTPRequestHandler):
    """Serves files of one folder with the headers a SPA build wants."""

    server_version = "ecom-web"
    sys_version = ""

    def send_head(self):  # type: ignore[no-untyped-def]
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        parts = [p for p in path.split("/") if p]
        if any(p.startswith(".") for p in parts):
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return None
        if Path(self.translate_path(self.path)).is_dir() and path not in ("", "/"):
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return None
        return super().send_head()

    def list_directory(self, path):  # type: ignore[no-untyped-def]
        self.send_error(HTTPStatus.NOT_FOUND, "not found")
        return None

    def end_headers(self) -> None:
        path = self.path.split("?", 1)[0]
        immutable = path.startswith("/assets/")
        self.send_header("Cache-Control", "public, max-age=31536000, immutable" if immutable
                         else "no-cache")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        # One JSON line per request (the edge's access log has the rest).
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "client": self.address_string(),
                "request": format % args}
        sys.stdout.write(json.dumps(line) + "\n")


def serve(addr: str, directory: Path) -> ThreadingHTTPServer:
    """A server for ``directory`` on ``addr`` (not started)."""
    if not (directory / "index.html").is_file():
        raise SystemExit(f"{directory}/index.html is missing: build the storefront with `make web`")
    host, _, port = addr.rpartition(":")
    handler = partial(StorefrontHandler, directory=str(directory))
    server = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
    server.daemon_threads = True
    return server


def _stop(*_: object) -> None:
    # SIGTERM (the supervisor, the tests) ends serve_forever like Ctrl-C.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.static", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", default=None, help="host:port (default ECOM_WEB_ADDR)")
    p.add_argument("--dir", default=str(DIST), help="the built storefront (default web/dist)")
    args = p.parse_args(argv)
    addr = args.addr or EdgeSettings().web_addr
    server = serve(addr, Path(args.dir))
    print(json.dumps({"event": "serving", "addr": addr, "dir": args.dir}), flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
