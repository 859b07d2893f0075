"""`python -m infra up | down | status | logs NAME | reset | env | install | doctor`

Starts, checks and stops the real servers ecom needs as local processes,
without containers. See README.md for ports and measurements."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from infra import stack, tools
from infra.core import InfraError, rss_bytes, tail


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in [
        ("up", "install what is missing, start every server, wait until ready"),
        ("down", "stop the servers this stack started (pid files), nothing else"),
        ("status", "each server with pid, port, version and health"),
        ("reset", "wipe the data of stopped servers"),
        ("install", "download and build everything, start nothing"),
    ]:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("names", nargs="*", help="only these servers")
    lp = sub.add_parser("logs", help="the last lines of a server's log")
    lp.add_argument("name")
    lp.add_argument("-n", type=int, default=60)
    sub.add_parser("env", help="print ECOM_* exports for the local stack")
    dp = sub.add_parser("doctor", help="which prerequisite is missing, and how to get it")
    dp.add_argument("--for", dest="scope", choices=["up", "test"], default="up")
    args = p.parse_args(argv)
    if args.cmd == "doctor":
        from infra import doctor

        return doctor.main(["--for", args.scope])

    try:
        return _COMMANDS[args.cmd](args)
    except InfraError as exc:
        print(f"infra: {exc}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    stack.up(args.names)
    print(f"stack up in {time.monotonic() - t0:.1f}s")
    print_status(args.names)
    return 0


def _down(args: argparse.Namespace) -> int:
    stack.down(args.names)
    return 0


def _status(args: argparse.Namespace) -> int:
    return 0 if print_status(args.names) else 1


def _reset(args: argparse.Namespace) -> int:
    for s in stack.select(args.names):
        s.reset()
    return 0


def _install(args: argparse.Namespace) -> int:
    if not args.names:
        tools.install_all()
    for s in stack.select(args.names):
        s.install()
    return 0


def _logs(args: argparse.Namespace) -> int:
    (server,) = stack.select([args.name])
    print(tail(server.log_file, args.n))
    return 0


def _env(args: argparse.Namespace) -> int:
    for k, v in stack.env().items():
        print(f"export {k}={v}")
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "up": _up,
    "down": _down,
    "status": _status,
    "reset": _reset,
    "install": _install,
    "logs": _logs,
    "env": _env,
}


def print_status(names: list[str] | None) -> bool:
    rows = [s.status() for s in stack.select(names)]
    total = 0
    print(f"{'server':<14}{'state':<10}{'pid':>8}{'port':>7}  {'health':<8}{'rss MiB':>8}  version")
    for r in rows:
        rss = rss_bytes(r.pid) if r.pid else 0
        total += rss
        print(f"{r.name:<14}{r.state:<10}{r.pid or '-':>8}{r.port:>7}  "
              f"{'ok' if r.healthy else 'DOWN':<8}{rss / 2**20:>8.0f}  {r.version}")
    print(f"total resident memory: {total / 2**20:.0f} MiB")
    if not names:
        from infra.services import analytics_job_lines

        for line in analytics_job_lines():
            print(line)
    return all(r.healthy for r in rows)


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
