"""Free ports for the processes tests start, chosen outside the kernel's
ephemeral range.

A port from ``bind(("127.0.0.1", 0))`` lies in the ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 here), the range
every outgoing connection takes its local port from. Tests choose their
ports at session start and bind them minutes later, so a client socket
(to Kafka, MariaDB...) opened in between could take the port first, and the
service then failed with "address already in use". Ports below that range
are never handed out to outgoing connections; each one is still checked
free when chosen, and never handed out twice by one process.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Below the ephemeral range and above every fixed project port (servers
# 12025-19901, services 50051-51161 and 8080, 18088).
LOW, HIGH = 20000, 32000
_given: set[int] = set()
_rng = random.Random()


def _ephemeral() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on, outside the ephemeral
    range, not yet handed out by this process."""
    eph_low, eph_high = _ephemeral()
    for _ in range(2000):
        port = _rng.randrange(LOW, HIGH)
        if port in _given or eph_low <= port <= eph_high:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port between {LOW} and {HIGH}")
