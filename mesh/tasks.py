"""Periodic background jobs of a service (``Service.add_task``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``job`` every ``seconds`` forever, logging (not raising) failures:
    a failed round (a store briefly down) is retried at the next one."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed round must not kill the service
            log.exception("periodic job failed", extra={"job": name})
