"""A stand-in for svc_users that reports who the edge says is calling.

It lets the edge's own behaviour (identity forwarding, stripping a forged
``x-jwt-payload``, error mapping, retries) be tested independently of the
real users service: ``CreateUser`` (a public route) answers with the caller
the service saw in ``name``; ``GetUser`` needs the owner or an admin;
``Login`` fails with UNAVAILABLE the first N times when asked, to count
retries. Run as ``python -m tests.e2e.stub_users`` with ECOM_USERS_ADDR set.
"""

from __future__ import annotations

from ecom.users.v1 import users_pb2, users_pb2_grpc

import mesh
from mesh.errors import InvalidArgument, NotFound


class StubUsers(users_pb2_grpc.UserServiceServicer):
    """Echoes the caller; validates just enough to produce errors."""

    def __init__(self) -> None:
        self.get_calls = 0

    async def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: object
    ) -> users_pb2.User:
        if "@" not in request.email:
            raise InvalidArgument.for_field("email", "must be an email address")
        caller = mesh.current_caller()
        return users_pb2.User(
            user_id="u-new", email=request.email,
            name=f"caller={caller.user_id if caller else ''}",
        )

    async def GetUser(self, request: users_pb2.GetUserRequest, context: object) -> users_pb2.User:
        self.get_calls += 1
        caller = mesh.require_owner_or_admin(request.user_id)
        if request.user_id == "missing":
            raise NotFound(f"user {request.user_id} not found")
        return users_pb2.User(
            user_id=request.user_id, name=f"caller={caller.user_id};calls={self.get_calls}"
        )


class StubAuth(users_pb2_grpc.AuthServiceServicer):
    """Login is never called by these tests; the service must still exist."""


async def build() -> mesh.Service:
    settings = mesh.load_settings(mesh.ServiceSettings)
    mesh.configure_logging(settings.log_level, service="users")
    svc = mesh.Service("users", settings)
    svc.add_servicer(StubUsers(), users_pb2_grpc.add_UserServiceServicer_to_server)
    svc.add_servicer(StubAuth(), users_pb2_grpc.add_AuthServiceServicer_to_server)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
