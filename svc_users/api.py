"""gRPC servicers for ecom.users.v1: UserService and AuthService.

Thin: translate protos to domain values, call :class:`UsersService`, and
translate back. Errors are mesh domain errors, mapped to status by mesh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from ecom.common.v1 import common_pb2
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from mesh import events
from mesh.errors import InvalidArgument
from svc_users.domain import MAX_ADDRESSES_PER_USER, Address, Role, User, validate_profile_change
from svc_users.service import UsersService

MAX_PAGE_SIZE = 50

_ROLE_TO_PROTO = {Role.CUSTOMER: users_pb2.ROLE_CUSTOMER, Role.ADMIN: users_pb2.ROLE_ADMIN}


def _ts(value: Any) -> timestamp_pb2.Timestamp:
    """An unset time is an empty Timestamp here (mesh.events otherwise)."""
    return events.timestamp(value) or timestamp_pb2.Timestamp()


def address_to_proto(address: Address) -> common_pb2.Address:
    """Domain address -> ecom.common.v1.Address."""
    return common_pb2.Address(
        address_id=address.address_id,
        name=address.name,
        lines=list(address.lines),
        landmark=address.landmark,
        city=address.city,
        state=address.state,
        pincode=address.pincode,
        phone=address.phone,
        is_default=address.is_default,
        create_time=_ts(address.create_time),
    )


def address_from_proto(msg: common_pb2.Address) -> Address:
    """ecom.common.v1.Address -> domain (output-only fields ignored)."""
    return Address(
        name=msg.name,
        lines=tuple(msg.lines),
        landmark=msg.landmark,
        city=msg.city,
        state=msg.state,
        pincode=msg.pincode,
        phone=msg.phone,
        is_default=msg.is_default,
    )


def user_to_proto(user: User) -> users_pb2.User:
    """Domain user -> ecom.users.v1.User (never a password or its hash)."""
    msg = users_pb2.User(
        user_id=user.user_id,
        email=user.email,
        name=user.name,
        phone=user.phone,
        role=_ROLE_TO_PROTO[user.role],
        create_time=_ts(user.create_time),
        update_time=_ts(user.update_time),
        notification_preferences=users_pb2.NotificationPreferences(
            sms_enabled=user.sms_notifications
        ),
    )
    if user.default_address is not None:
        msg.default_address.CopyFrom(address_to_proto(user.default_address))
    return msg


def _require(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    return value


def _page_hash(user_id: str) -> str:
    return hashlib.sha256(f"ListAddresses:{user_id}".encode()).hexdigest()[:16]


def encode_page_token(offset: int, user_id: str) -> str:
    """An opaque page token (PageCursor, base64url without padding)."""
    cursor = common_pb2.PageCursor(offset=offset, request_hash=_page_hash(user_id))
    return base64.urlsafe_b64encode(cursor.SerializeToString()).rstrip(b"=").decode()


def decode_page_token(token: str, user_id: str) -> int:
    """The offset a page token points at; INVALID_ARGUMENT when it is not ours."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = common_pb2.PageCursor.FromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        raise InvalidArgument.for_field("page_token", "is not a token this API issued") from None
    if cursor.request_hash != _page_hash(user_id) or cursor.offset < 0:
        raise InvalidArgument.for_field(
            "page_token", "belongs to a different request; start again without it"
        )
    return int(cursor.offset)


class UserApi(users_pb2_grpc.UserServiceServicer):
    """ecom.users.v1.UserService."""

    def __init__(self, service: UsersService) -> None:
        self.service = service

    async def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: Any
    ) -> users_pb2.User:
        user = await self.service.sign_up(
            request.email, request.password, request.name, request.phone, request.request_id
        )
        return user_to_proto(user)

    async def GetUser(self, request: users_pb2.GetUserRequest, context: Any) -> users_pb2.User:
        return user_to_proto(await self.service.get_user(_require(request.user_id, "user_id")))

    async def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: Any
    ) -> users_pb2.User:
        user_id = _require(request.user_id, "user_id")
        if not request.HasField("user"):
            raise InvalidArgument.for_field("user", "is required")
        prefs = request.user.notification_preferences
        change = validate_profile_change(
            list(request.update_mask.paths), request.user.name, request.user.phone,
            sms_enabled=(
                prefs.sms_enabled if request.user.HasField("notification_preferences") else None
            ),
        )
        return user_to_proto(await self.service.update_user(user_id, change))

    async def CreateAddress(
        self, request: users_pb2.CreateAddressRequest, context: Any
    ) -> common_pb2.Address:
        user_id = _require(request.user_id, "user_id")
        if not request.HasField("address"):
            raise InvalidArgument.for_field("address", "is required")
        saved = await self.service.create_address(
            user_id, address_from_proto(request.address), request.request_id
        )
        return address_to_proto(saved)

    async def ListAddresses(
        self, request: users_pb2.ListAddressesRequest, context: Any
    ) -> users_pb2.ListAddressesResponse:
        user_id = _require(request.user_id, "user_id")
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument.for_field("page_size", f"must be 0-{MAX_PAGE_SIZE}")
        size = request.page_size or MAX_ADDRESSES_PER_USER
        offset = decode_page_token(request.page_token, user_id)
        everything = await self.service.list_addresses(user_id)
        page = everything[offset : offset + size]
        more = offset + size < len(everything)
        return users_pb2.ListAddressesResponse(
            addresses=[address_to_proto(a) for a in page],
            next_page_token=encode_page_token(offset + size, user_id) if more else "",
        )

    async def GetAddress(
        self, request: users_pb2.GetAddressRequest, context: Any
    ) -> common_pb2.Address:
        found = await self.service.get_address(
            _require(request.user_id, "user_id"), _require(request.address_id, "address_id")
        )
        return address_to_proto(found)

    async def SetDefaultAddress(
        self, request: users_pb2.SetDefaultAddressRequest, context: Any
    ) -> common_pb2.Address:
        user_id = _require(request.user_id, "user_id")
        address_id = _require(request.address_id, "address_id")
        return address_to_proto(await self.service.set_default_address(user_id, address_id))

    async def DeleteAddress(
        self, request: users_pb2.DeleteAddressRequest, context: Any
    ) -> users_pb2.DeleteAddressResponse:
        user_id = _require(request.user_id, "user_id")
        address_id = _require(request.address_id, "address_id")
        default = await self.service.delete_address(user_id, address_id, request.request_id)
        response = users_pb2.DeleteAddressResponse()
        if default is not None:
            response.default_address.CopyFrom(address_to_proto(default))
        return response


class AuthApi(users_pb2_grpc.AuthServiceServicer):
    """ecom.users.v1.AuthService: login and the token-verification keys."""

    def __init__(self, service: UsersService) -> None:
        self.service = service

    async def Login(self, request: users_pb2.LoginRequest, context: Any) -> users_pb2.LoginResponse:
        result = await self.service.login(request.email, request.password)
        return users_pb2.LoginResponse(
            access_token=result.access_token,
            token_type="Bearer",
            expire_time=_ts(result.expire_time),
            expires_in_seconds=result.expires_in_seconds,
            user_id=result.user_id,
            role=_ROLE_TO_PROTO[result.role],
        )

    async def GetJwks(
        self, request: users_pb2.GetJwksRequest, context: Any
    ) -> users_pb2.GetJwksResponse:
        return users_pb2.GetJwksResponse(
            keys=[users_pb2.JsonWebKey(**key) for key in self.service.jwks()["keys"]]
        )
