"""Kafka handlers for svc_users: none yet.

The users service consumes no events today and publishes none (sign-ups and
profile changes are not needed by any other service asynchronously: orders
snapshot the address at checkout through GetAddress). This module keeps the
service's shape uniform and is where a consumer goes when one is needed.
"""

from __future__ import annotations

__all__: list[str] = []
