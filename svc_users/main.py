"""svc_users process: ``python -m svc_users.main`` (listens on ECOM_USERS_ADDR)."""

from __future__ import annotations

import asyncio

from ecom.users.v1 import users_pb2_grpc
from pydantic import Field

import mesh
from mesh import tokens
from mesh.db import make_engine
from svc_users import store
from svc_users.api import AuthApi, UserApi
from svc_users.service import Passwords, UsersService


class UsersSettings(mesh.ServiceSettings):
    """svc_users knobs (ECOM_ prefix). The admin defaults are for local
    development only; set both variables anywhere else."""

    admin_email: str = "admin@ecom.local"
    admin_password: str = "ecom-admin-local"
    jwt_key_file: str = ""  # empty: <stack dir>/secrets/jwt-signing-key.pem
    jwt_ttl_seconds: int = Field(default=3600, gt=0)
    profile_cache_ttl_seconds: int = Field(default=300, gt=0)
    redis_timeout_seconds: float = Field(default=0.25, gt=0)


async def build() -> mesh.Service:
    """Wire MariaDB, Redis, the signing key and both servicers."""
    settings = mesh.load_settings(UsersSettings)
    mesh.configure_logging(settings.log_level, service="users")
    database = settings.database("users")
    engine = await make_engine(settings.mysql_url, database)
    await store.migrate(engine, database)
    key = await asyncio.to_thread(
        tokens.load_or_create_signing_key, tokens.signing_key_path(settings)
    )
    await asyncio.to_thread(store.warm_pincode_directory)
    redis = store.redis_client(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds)
    cache = store.ProfileCache(
        redis, settings.redis_key, ttl_seconds=settings.profile_cache_ttl_seconds
    )
    service = UsersService(
        store.UserStore(engine),
        cache,
        Passwords(),
        key,
        token_ttl_seconds=settings.jwt_ttl_seconds,
        pincode_known=store.pincode_known,
    )
    await service.bootstrap_admin(settings.admin_email, settings.admin_password)

    svc = mesh.Service("users", settings)
    svc.add_servicer(UserApi(service), users_pb2_grpc.add_UserServiceServicer_to_server)
    svc.add_servicer(AuthApi(service), users_pb2_grpc.add_AuthServiceServicer_to_server)
    # Redis is deliberately not a dependency: reads fall back to MariaDB.
    svc.add_dependency("mariadb", lambda: store.ping(engine))
    svc.on_shutdown(engine.dispose)
    svc.on_shutdown(redis.aclose)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
