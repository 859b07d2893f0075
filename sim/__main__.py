"""``python -m sim``: run the shopper simulator headless for a bounded number
of users and time against the REST edge, then print Locust's summary
(requests/s, failures, p50/p95/p99 per endpoint) and what the shoppers did.

This is what ``make simulate`` and the burst after ``make up`` run; it is a
thin wrapper over ``locust -f sim/locustfile.py --headless``, so anything
else Locust takes can follow ``--`` (``python -m sim -- --html report.html``).
The exit status is Locust's: 1 when any request failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "sim" / "locustfile.py"


def default_host() -> str:
    port = os.environ.get("ECOM_EDGE_PORT", "8080")
    return os.environ.get("ECOM_SIM_HOST", f"http://127.0.0.1:{port}")


def locust_command(users: int, spawn_rate: float, duration: str, host: str,
                   csv: str = "", extra: list[str] | None = None) -> list[str]:
    """The Locust command line for one bounded headless run."""
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
           "--users", str(users), "--spawn-rate", str(spawn_rate), "--run-time", duration,
           "--host", host, "--only-summary",
           # Let shoppers finish the step they are in when the time is up.
           "--stop-timeout", "20"]
    if csv:
        cmd += ["--csv", csv]
    return cmd + list(extra or [])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=int(os.environ.get("ECOM_SIM_USERS", "20")),
                   help="concurrent shoppers (ECOM_SIM_USERS, 20)")
    p.add_argument("--spawn-rate", type=float,
                   default=float(os.environ.get("ECOM_SIM_SPAWN_RATE", "2")),
                   help="shoppers started per second (ECOM_SIM_SPAWN_RATE, 2)")
    p.add_argument("--duration", default=os.environ.get("ECOM_SIM_DURATION", "60s"),
                   help="how long to run, e.g. 90s, 5m, 1h (ECOM_SIM_DURATION, 60s)")
    p.add_argument("--host", default=default_host(),
                   help="the REST edge (ECOM_SIM_HOST, http://127.0.0.1:$ECOM_EDGE_PORT)")
    p.add_argument("--csv", default=os.environ.get("ECOM_SIM_CSV", ""),
                   help="also write Locust's CSV stats with this prefix")
    args = p.parse_args(argv)
    if args.users < 1:
        p.error("--users must be at least 1")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    cmd = locust_command(args.users, args.spawn_rate, args.duration, args.host, args.csv, extra)
    print(f"sim: {args.users} shoppers for {args.duration} against {args.host}", flush=True)
    # exec: Locust's signals, output and exit status are the run's own.
    os.chdir(REPO)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
