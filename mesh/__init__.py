"""mesh: the runtime every ecom service uses.

Import what a ``main.py`` or servicer needs from here::

    import mesh
    from mesh.errors import InvalidArgument, NotFound

See :mod:`mesh.server` for the service lifecycle, :mod:`mesh.errors` for the
error model, :mod:`mesh.auth` for the caller and its trust model, and
:mod:`mesh.channels` for calling other services.
"""

from mesh.auth import (
    Caller,
    current_caller,
    require_admin,
    require_caller,
    require_owner_or_admin,
)
from mesh.channels import Channels, RetryPolicy, open_channel
from mesh.config import SERVICE_PORTS, ConfigError, ServiceSettings, load_settings
from mesh.context import call_scope, current_call, current_request_id, remaining_time
from mesh.logging import configure_logging
from mesh.server import Service, StartupError, serve

__all__ = [
    "SERVICE_PORTS",
    "Caller",
    "Channels",
    "ConfigError",
    "RetryPolicy",
    "Service",
    "ServiceSettings",
    "StartupError",
    "call_scope",
    "configure_logging",
    "current_call",
    "current_caller",
    "current_request_id",
    "load_settings",
    "open_channel",
    "remaining_time",
    "require_admin",
    "require_caller",
    "require_owner_or_admin",
    "serve",
]
