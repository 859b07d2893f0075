"""``python -m infra.up_all``: what `make up` runs. Brings the whole system
up in three phases and says how long each took:

1. servers: the datastores (``python -m infra up``);
2. services: every ``svc_*`` and the Envoy edge, supervised
   (``python -m infra.services up``);
3. demo data: the demo catalog and its stock (``python -m infra.demo``).

Then, not a phase and never a reason to fail: a short burst of simulated
shoppers starts in the background (``sim/burst.py``), so reports and
recommendations have data a few minutes later.

Each phase is idempotent, so running it again on a warm machine only checks
and tops up. `make up` passes ``--since`` its own start, so the doctor and the
virtualenv before the phases show as "prerequisites" and count in the total.
A failing phase stops the run with its error and the time spent so far.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from infra.core import InfraError


def _servers() -> None:
    from infra import stack
    from infra.__main__ import print_status

    stack.up()
    print_status(None)


def _services() -> None:
    from infra import services

    services.up()
    services.status()


def _demo() -> None:
    from infra import demo

    if demo.main() != 0:
        raise InfraError("loading the demo data failed")


PHASES: list[tuple[str, Callable[[], None]]] = [
    ("servers", _servers),
    ("services", _services),
    ("demo data", _demo),
]


def banner(text: str) -> None:
    print(f"\n== make up: {text}", flush=True)


def run(phases: list[tuple[str, Callable[[], None]]], since: float | None = None) -> int:
    """Run the phases in order; print each one's duration and the total.
    `since` (a wall-clock time.time()) is when `make up` started: the time
    before the first phase (the doctor, the virtualenv) is shown as its own
    phase, "prerequisites", and counted in the total."""
    took: list[tuple[str, float]] = []
    if since is not None:
        took.append(("prerequisites", max(0.0, time.time() - since)))
    t0 = time.monotonic() - (took[0][1] if took else 0.0)
    for name, phase in phases:
        banner(f"{name} ...")
        started = time.monotonic()
        try:
            phase()
        except (InfraError, OSError) as exc:
            spent = time.monotonic() - started
            print(f"infra: {exc}", file=sys.stderr)
            banner(f"{name} FAILED after {spent:.1f}s (total {time.monotonic() - t0:.1f}s)")
            return 1
        took.append((name, time.monotonic() - started))
        banner(f"{name} done in {took[-1][1]:.1f}s")
    total = time.monotonic() - t0
    parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in took)
    banner(f"{parts}; total {total:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.up_all",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--since", type=float, default=None,
                   help="when `make up` started (seconds since the epoch), for the total")
    args = p.parse_args(argv)
    os.umask(0o022)
    code = run(PHASES, args.since)
    if code == 0:
        demo_traffic()
    return code


def demo_traffic() -> None:
    """Start the background burst of simulated shoppers; a problem with it
    is printed, never raised: the system is up either way."""
    try:
        import mesh
        from sim import burst

        line = burst.start(f"http://127.0.0.1:{mesh.load_settings().edge_port}")
    except Exception as exc:  # noqa: BLE001 - the burst is optional
        line = f"demo traffic: not started ({type(exc).__name__}: {exc})"
    banner(line)


if __name__ == "__main__":
    sys.exit(main())
