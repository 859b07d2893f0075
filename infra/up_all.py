"""``python -m infra.up_all``: what `make up` runs. Brings the whole system
up in three phases and says how long each took:

1. servers: the datastores (``python -m infra up``);
2. services: every ``svc_*`` and the Envoy edge, supervised
   (``python -m infra.services up``);
3. demo data: the demo catalog and its stock (``python -m infra.demo``).

Each phase is idempotent, so running it again on a warm machine only checks
and tops up. A failing phase stops the run with its error and the time
spent so far.
"""

from __future__ import annotations

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


def run(phases: list[tuple[str, Callable[[], None]]]) -> int:
    """Run the phases in order; print each one's duration and the total."""
    took: list[tuple[str, float]] = []
    t0 = time.monotonic()
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


def main() -> int:
    os.umask(0o022)
    return run(PHASES)


if __name__ == "__main__":
    sys.exit(main())
