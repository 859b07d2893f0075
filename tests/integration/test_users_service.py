"""svc_users end to end: the real process against real MariaDB and Redis.

Run with ``ECOM_TEST_SERVERS=mariadb,redis``. Callers act as a user the way
the edge does, with an ``x-jwt-payload`` header.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from ecom.common.v1 import common_pb2
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mesh.auth import JWT_PAYLOAD_HEADER, Caller, encode_jwt_payload
from mesh.tokens import verify_token
from tests.conftest import RunningService, Services, Stack

pytestmark = pytest.mark.integration

ADMIN_EMAIL = "root@ecom.test"
ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture(scope="module")
def users_svc(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    key_file = tmp_path_factory.mktemp("jwt") / "signing-key.pem"
    svc = services.start(
        "users",
        ECOM_ADMIN_EMAIL=ADMIN_EMAIL,
        ECOM_ADMIN_PASSWORD=ADMIN_PASSWORD,
        ECOM_JWT_KEY_FILE=str(key_file),
    )
    yield svc


@pytest.fixture
async def stubs(
    users_svc: RunningService,
) -> AsyncIterator[tuple[users_pb2_grpc.UserServiceStub, users_pb2_grpc.AuthServiceStub]]:
    async with users_svc.channel() as ch:
        yield users_pb2_grpc.UserServiceStub(ch), users_pb2_grpc.AuthServiceStub(ch)


@pytest.fixture
async def redis_client(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(stack.env["ECOM_REDIS_URL"])
    yield r
    await r.aclose()


async def cached_profile(r: aioredis.Redis, key: str) -> str | None:
    """The cached profile JSON, None when absent or invalidated (tombstone)."""
    raw = await r.get(key)
    return None if raw is None or raw == b"-" else raw.decode()


def as_user(user_id: str, *roles: str) -> list[tuple[str, str]]:
    """Metadata the edge would send for this caller."""
    return [(JWT_PAYLOAD_HEADER, encode_jwt_payload(Caller(user_id, frozenset(roles))))]


def rid() -> str:
    return uuid.uuid4().hex


def email() -> str:
    return f"shopper-{uuid.uuid4().hex[:10]}@Example.COM"


async def sign_up(users: Any, mail: str | None = None, password: str = "correct horse") -> Any:
    return await users.CreateUser(
        users_pb2.CreateUserRequest(
            email=mail or email(),
            password=password,
            name="Asha Rao",
            phone="98450 12345",
            request_id=rid(),
        )
    )


def address(pincode: str = "560001", **kw: Any) -> common_pb2.Address:
    fields: dict[str, Any] = dict(
        name="Asha Rao",
        lines=["12 MG Road", "2nd floor"],
        city="Bengaluru",
        state="Karnataka",
        pincode=pincode,
        phone="+919845012345",
    )
    fields.update(kw)
    return common_pb2.Address(**fields)


def details(err: grpc.aio.AioRpcError) -> list[Any]:
    status = rpc_status.from_call(err)
    assert status is not None
    out: list[Any] = []
    for packed in status.details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if packed.Is(cls.DESCRIPTOR):
                msg = cls()
                packed.Unpack(msg)
                out.append(msg)
    return out


def violated_fields(err: grpc.aio.AioRpcError) -> list[str]:
    return [
        v.field
        for d in details(err)
        if isinstance(d, error_details_pb2.BadRequest)
        for v in d.field_violations
    ]


# -- sign-up, login, tokens -------------------------------------------------------


async def test_sign_up_login_and_verify_token_with_published_jwks(stubs: Any) -> None:
    users, auth = stubs
    mail = email()
    user = await sign_up(users, mail)
    assert user.user_id and user.email == mail.lower()
    assert user.role == users_pb2.ROLE_CUSTOMER
    assert user.phone == "+919845012345"
    assert "password" not in str(user).lower()

    login = await auth.Login(users_pb2.LoginRequest(email=mail.upper(), password="correct horse"))
    assert login.token_type == "Bearer" and login.user_id == user.user_id
    assert login.role == users_pb2.ROLE_CUSTOMER and login.expires_in_seconds == 3600

    jwks_resp = await auth.GetJwks(users_pb2.GetJwksRequest())
    jwks = {"keys": [{f.name: v for f, v in k.ListFields()} for k in jwks_resp.keys]}
    assert jwks["keys"][0]["alg"] == "RS256"
    claims = verify_token(jwks, login.access_token)
    assert claims["sub"] == user.user_id
    assert claims["roles"] == ["customer"]
    assert claims["exp"] == login.expire_time.seconds


async def test_sign_up_retry_with_same_request_id_returns_first_account(stubs: Any) -> None:
    users, _ = stubs
    req = users_pb2.CreateUserRequest(
        email=email(), password="correct horse", name="A", request_id=rid()
    )
    first = await users.CreateUser(req)
    again = await users.CreateUser(req)
    assert again.user_id == first.user_id
    req.password = "a different password"  # same key, not the same request
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await users.CreateUser(req)
    assert err.value.code() == grpc.StatusCode.ABORTED
    assert req.request_id in (err.value.details() or "")
    req.request_id = rid()  # a new key: the email is taken
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await users.CreateUser(req)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_duplicate_email_is_already_exists_case_insensitively(stubs: Any) -> None:
    users, _ = stubs
    mail = email()
    await sign_up(users, mail)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await sign_up(users, "  " + mail.swapcase() + " ")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_sign_up_validation_names_fields(stubs: Any) -> None:
    users, _ = stubs
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await users.CreateUser(
            users_pb2.CreateUserRequest(
                email="not-an-email", password="short", name="", phone="12345", request_id=rid()
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(violated_fields(err.value)) == ["email", "name", "password", "phone"]


async def test_wrong_password_and_unknown_email_are_indistinguishable(stubs: Any) -> None:
    users, auth = stubs
    mail = email()
    await sign_up(users, mail)
    errors = []
    for req in (
        users_pb2.LoginRequest(email=mail, password="wrong password"),
        users_pb2.LoginRequest(email=email(), password="correct horse"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await auth.Login(req)
        errors.append(err.value)
    wrong_password, unknown_email = errors
    assert wrong_password.code() == unknown_email.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong_password.details() == unknown_email.details() == "email or password is incorrect"
    reasons = [
        [d.reason for d in details(e) if isinstance(d, error_details_pb2.ErrorInfo)] for e in errors
    ]
    assert reasons[0] == reasons[1] == ["INVALID_CREDENTIALS"]


async def test_admin_bootstrapped_from_environment(stubs: Any) -> None:
    _, auth = stubs
    login = await auth.Login(users_pb2.LoginRequest(email=ADMIN_EMAIL, password=ADMIN_PASSWORD))
    assert login.role == users_pb2.ROLE_ADMIN
    jwks = await auth.GetJwks(users_pb2.GetJwksRequest())
    claims = verify_token(
        {"keys": [{f.name: v for f, v in k.ListFields()} for k in jwks.keys]},
        login.access_token,
    )
    assert claims["roles"] == ["admin"]


# -- authorization ----------------------------------------------------------------


async def test_customers_reach_only_themselves_admin_reaches_all(stubs: Any) -> None:
    users, _ = stubs
    alice = await sign_up(users)
    bob = await sign_up(users)
    me = await users.GetUser(
        users_pb2.GetUserRequest(user_id=alice.user_id), metadata=as_user(alice.user_id, "customer")
    )
    assert me.email == alice.email

    for call in (
        users.GetUser(
            users_pb2.GetUserRequest(user_id=bob.user_id),
            metadata=as_user(alice.user_id, "customer"),
        ),
        users.ListAddresses(
            users_pb2.ListAddressesRequest(user_id=bob.user_id),
            metadata=as_user(alice.user_id, "customer"),
        ),
        users.UpdateUser(
            users_pb2.UpdateUserRequest(
                user_id=bob.user_id, user=users_pb2.User(name="pwned"), request_id=rid()
            ),
            metadata=as_user(alice.user_id, "customer"),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await users.GetUser(users_pb2.GetUserRequest(user_id=bob.user_id))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    seen = await users.GetUser(
        users_pb2.GetUserRequest(user_id=bob.user_id), metadata=as_user("ops-1", "admin")
    )
    assert seen.email == bob.email
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await users.GetUser(
            users_pb2.GetUserRequest(user_id=str(uuid.uuid4())), metadata=as_user("ops", "admin")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


# -- profile cache ------------------------------------------------------------------


async def test_read_populates_cache_and_update_invalidates(
    stubs: Any, stack: Stack, redis_client: aioredis.Redis
) -> None:
    users, _ = stubs
    user = await sign_up(users)
    md = as_user(user.user_id, "customer")
    key = f"{stack.redis_prefix}users:profile:v1:{user.user_id}"
    assert await redis_client.exists(key) == 0

    await users.GetUser(users_pb2.GetUserRequest(user_id=user.user_id), metadata=md)
    assert await redis_client.exists(key) == 1
    assert 0 < await redis_client.ttl(key) <= 300

    # A cache hit really is served from Redis: plant a marker in the entry.
    raw = (await redis_client.get(key)).decode()
    await redis_client.set(key, raw.replace('"Asha Rao"', '"From Cache"'), keepttl=True)
    hit = await users.GetUser(users_pb2.GetUserRequest(user_id=user.user_id), metadata=md)
    assert hit.name == "From Cache"

    updated = await users.UpdateUser(
        users_pb2.UpdateUserRequest(
            user_id=user.user_id,
            user=users_pb2.User(name="Asha R."),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            request_id=rid(),
        ),
        metadata=md,
    )
    assert updated.name == "Asha R."
    assert await cached_profile(redis_client, key) is None  # invalidated
    fresh = await users.GetUser(users_pb2.GetUserRequest(user_id=user.user_id), metadata=md)
    assert fresh.name == "Asha R."

    # Address writes change the default address inside the profile: also invalidate.
    await users.CreateAddress(
        users_pb2.CreateAddressRequest(user_id=user.user_id, address=address(), request_id=rid()),
        metadata=md,
    )
    assert await cached_profile(redis_client, key) is None
    with_default = await users.GetUser(users_pb2.GetUserRequest(user_id=user.user_id), metadata=md)
    assert with_default.default_address.pincode == "560001"

    # The invalidation tombstone is short-lived; then reads fill the cache again.
    await asyncio.sleep(2.2)
    await users.GetUser(users_pb2.GetUserRequest(user_id=user.user_id), metadata=md)
    cached = await cached_profile(redis_client, key)
    assert cached is not None and "Asha R." in cached and "560001" in cached


async def test_reads_survive_redis_being_down(stubs: Any) -> None:
    from infra.stack import select

    users, _ = stubs
    user = await sign_up(users)
    md = as_user(user.user_id, "customer")
    (redis_server,) = select(["redis"])
    redis_server.stop()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        got = await users.GetUser(
            users_pb2.GetUserRequest(user_id=user.user_id), metadata=md, timeout=5
        )
        assert got.email == user.email
        updated = await users.UpdateUser(
            users_pb2.UpdateUserRequest(
                user_id=user.user_id, user=users_pb2.User(phone="7012345678"), request_id=rid()
            ),
            metadata=md,
            timeout=5,
        )
        assert updated.phone == "+917012345678"
        again = await users.GetUser(
            users_pb2.GetUserRequest(user_id=user.user_id), metadata=md, timeout=5
        )
        assert again.phone == "+917012345678"
        print(f"3 calls with Redis down took {loop.time() - started:.3f}s")
    finally:
        redis_server.start()
    # Back up: the cache is used again (and the profile is the current one).
    after = await users.GetUser(
        users_pb2.GetUserRequest(user_id=user.user_id), metadata=md, timeout=5
    )
    assert after.phone == "+917012345678"


# -- addresses ------------------------------------------------------------------------


async def test_bad_pincodes_name_the_field(stubs: Any) -> None:
    users, _ = stubs
    user = await sign_up(users)
    md = as_user(user.user_id, "customer")
    for pincode, reason in (
        ("56001", "INVALID_ARGUMENT"),
        ("012345", "INVALID_ARGUMENT"),
        ("999999", "UNKNOWN_PINCODE"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await users.CreateAddress(
                users_pb2.CreateAddressRequest(
                    user_id=user.user_id, address=address(pincode), request_id=rid()
                ),
                metadata=md,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, pincode
        assert violated_fields(err.value) == ["address.pincode"], pincode
        infos = [d for d in details(err.value) if isinstance(d, error_details_pb2.ErrorInfo)]
        assert infos[0].reason == reason
    listed = await users.ListAddresses(
        users_pb2.ListAddressesRequest(user_id=user.user_id), metadata=md
    )
    assert len(listed.addresses) == 0


async def test_exactly_one_default_through_adds_set_default_and_delete(stubs: Any) -> None:
    users, _ = stubs
    user = await sign_up(users)
    md = as_user(user.user_id, "customer")

    async def add(pincode: str, **kw: Any) -> common_pb2.Address:
        return await users.CreateAddress(
            users_pb2.CreateAddressRequest(
                user_id=user.user_id, address=address(pincode, **kw), request_id=rid()
            ),
            metadata=md,
        )

    async def listing() -> list[common_pb2.Address]:
        resp = await users.ListAddresses(
            users_pb2.ListAddressesRequest(user_id=user.user_id), metadata=md
        )
        return list(resp.addresses)

    first = await add("560001")
    assert first.is_default  # the first address becomes the default
    second = await add("110001", city="New Delhi", state="Delhi")
    third = await add("400001", city="Mumbai", state="Maharashtra")
    assert not second.is_default and not third.is_default
    addrs = await listing()
    assert [a.address_id for a in addrs] == [first.address_id, third.address_id, second.address_id]
    assert [a.is_default for a in addrs] == [True, False, False]

    made = await users.SetDefaultAddress(
        users_pb2.SetDefaultAddressRequest(
            user_id=user.user_id, address_id=second.address_id, request_id=rid()
        ),
        metadata=md,
    )
    assert made.is_default
    addrs = await listing()
    assert [a.address_id for a in addrs if a.is_default] == [second.address_id]
    assert addrs[0].address_id == second.address_id

    explicit = await add("600001", city="Chennai", state="Tamil Nadu", is_default=True)
    assert explicit.is_default
    assert [a.address_id for a in await listing() if a.is_default] == [explicit.address_id]

    profile = await users.GetUser(users_pb2.GetUserRequest(user_id=user.user_id), metadata=md)
    assert profile.default_address.address_id == explicit.address_id

    # Deleting the default hands it to the newest remaining address.
    deleted = await users.DeleteAddress(
        users_pb2.DeleteAddressRequest(
            user_id=user.user_id, address_id=explicit.address_id, request_id=rid()
        ),
        metadata=md,
    )
    assert deleted.default_address.address_id == third.address_id
    addrs = await listing()
    assert len(addrs) == 3 and sum(a.is_default for a in addrs) == 1

    got = await users.GetAddress(
        users_pb2.GetAddressRequest(user_id=user.user_id, address_id=third.address_id),
        metadata=md,
    )
    assert got.is_default and got.pincode == "400001"

    # Another user's address id is simply not found under this user.
    other = await sign_up(users)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await users.GetAddress(
            users_pb2.GetAddressRequest(user_id=other.user_id, address_id=third.address_id),
            metadata=as_user(other.user_id, "customer"),
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_concurrent_set_default_keeps_exactly_one(stubs: Any) -> None:
    users, _ = stubs
    user = await sign_up(users)
    md = as_user(user.user_id, "customer")
    ids = []
    for pin in ("560001", "110001", "400001", "600001"):
        made = await users.CreateAddress(
            users_pb2.CreateAddressRequest(
                user_id=user.user_id, address=address(pin), request_id=rid()
            ),
            metadata=md,
        )
        ids.append(made.address_id)
    await asyncio.gather(
        *(
            users.SetDefaultAddress(
                users_pb2.SetDefaultAddressRequest(
                    user_id=user.user_id, address_id=a, request_id=rid()
                ),
                metadata=md,
            )
            for a in ids * 3
        )
    )
    resp = await users.ListAddresses(
        users_pb2.ListAddressesRequest(user_id=user.user_id), metadata=md
    )
    assert sum(a.is_default for a in resp.addresses) == 1


async def test_create_address_retry_and_paging(stubs: Any) -> None:
    users, _ = stubs
    user = await sign_up(users)
    md = as_user(user.user_id, "customer")
    req = users_pb2.CreateAddressRequest(user_id=user.user_id, address=address(), request_id=rid())
    first = await users.CreateAddress(req, metadata=md)
    again = await users.CreateAddress(req, metadata=md)
    assert again.address_id == first.address_id
    await users.CreateAddress(
        users_pb2.CreateAddressRequest(
            user_id=user.user_id, address=address("110001"), request_id=rid()
        ),
        metadata=md,
    )
    page1 = await users.ListAddresses(
        users_pb2.ListAddressesRequest(user_id=user.user_id, page_size=1), metadata=md
    )
    assert len(page1.addresses) == 1 and page1.next_page_token
    page2 = await users.ListAddresses(
        users_pb2.ListAddressesRequest(
            user_id=user.user_id, page_size=1, page_token=page1.next_page_token
        ),
        metadata=md,
    )
    assert len(page2.addresses) == 1 and not page2.next_page_token
    assert page1.addresses[0].address_id != page2.addresses[0].address_id
