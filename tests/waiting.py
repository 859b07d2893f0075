"""The one way tests wait for a state: poll a probe until it answers
something truthy, and fail with an AssertionError that names the state
waited for and the last answer seen. The timeout is a bound on waiting,
never the thing asserted (a slow machine waits longer, it does not fail a
test that would pass)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _timed_out(what: str, timeout: float, last: object) -> AssertionError:
    return AssertionError(f"never reached: {what} (waited {timeout:g}s; last seen: {last!r})")


def wait_until(
    probe: Callable[[], T | None], what: str, *, timeout: float = 30.0, interval: float = 0.25
) -> T:
    """Call ``probe`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, last)
        time.sleep(interval)


async def wait_until_async(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
) -> T:
    """Await ``probe`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, last)
        await asyncio.sleep(interval)
