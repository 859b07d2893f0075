"""svc_tat's pincode fallback end to end: a CheckServiceability without a
pincode uses the signed-in caller's default address, read from the real
svc_users (on MariaDB), as the contract says.

The tat process runs with the same test clock and stand-in inventory as
tests/integration/test_tat_service.py, so the two modules share it; the
users-down case restarts it with ECOM_USERS_ADDR pointed where nothing
listens, and every test asks for the process it needs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
import pytest
from ecom.common.v1 import common_pb2
from ecom.serviceability.v1 import serviceability_pb2 as pb
from ecom.serviceability.v1 import serviceability_pb2_grpc
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mesh.auth import JWT_PAYLOAD_HEADER, Caller, encode_jwt_payload
from tests.conftest import UNREACHABLE_ADDR, RunningService, Services
from tests.integration.test_users_service import address, sign_up, violated_fields

pytestmark = pytest.mark.integration

MORNING = "2025-03-10T10:00:00+05:30"  # Monday, before every cutoff

BENGALURU = "560001"  # deliverable, WH-BLR close by
NON_DELIVERY = "380014"  # Ahmedabad Navjivan: only a non-delivery office
ITEM = "item-default-address"

Metadata = tuple[tuple[str, str], ...]
Tat: TypeAlias = serviceability_pb2_grpc.ServiceabilityServiceStub
Users: TypeAlias = users_pb2_grpc.UserServiceStub


def as_customer(user_id: str) -> Metadata:
    """The identity header the edge sends for a signed-in shopper."""
    return ((JWT_PAYLOAD_HEADER, encode_jwt_payload(Caller(user_id, frozenset({"customer"})))),)


def start_tat(services: Services, *, users_addr: str | None = None) -> RunningService:
    """svc_tat with the env test_tat_service.py uses (so the two modules share
    the process), pointed at ``users_addr`` instead of svc_users when given."""
    if users_addr is None:
        return services.start("tat", ECOM_TAT_CLOCK=MORNING,
                              ECOM_INVENTORY_ADDR=UNREACHABLE_ADDR)
    return services.start("tat", ECOM_TAT_CLOCK=MORNING, ECOM_INVENTORY_ADDR=UNREACHABLE_ADDR,
                          ECOM_USERS_ADDR=users_addr)


@pytest.fixture
async def users(services: Services) -> AsyncIterator[Users]:
    async with services.start("users").channel() as ch:
        yield users_pb2_grpc.UserServiceStub(ch)


@pytest.fixture
async def tat(services: Services, users: Users) -> AsyncIterator[Tat]:
    # Per test, not per module: the users-down test restarts tat with another env.
    async with start_tat(services).channel() as ch:
        yield serviceability_pb2_grpc.ServiceabilityServiceStub(ch)


async def shopper(users: Users, *pincodes: str) -> tuple[str, Metadata]:
    """A new customer with these addresses (the first one becomes the default)."""
    user = await sign_up(users)
    md = as_customer(user.user_id)
    for pincode in pincodes:
        await add_address(users, user.user_id, md, pincode)
    return user.user_id, md


async def add_address(users: Users, user_id: str, md: Metadata, pincode: str,
                      *, is_default: bool = False) -> common_pb2.Address:
    city = {BENGALURU: ("Bengaluru", "Karnataka"), NON_DELIVERY: ("Ahmedabad", "Gujarat")}
    town, state = city[pincode]
    return await users.CreateAddress(
        users_pb2.CreateAddressRequest(
            user_id=user_id, request_id=uuid.uuid4().hex,
            address=address(pincode, city=town, state=state, is_default=is_default)),
        metadata=md)


def retry_delay_seconds(err: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay the error carries, None without one."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for packed in status.details if status else ():
        info = error_details_pb2.RetryInfo()
        if packed.Unpack(info):
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


async def check(tat: Tat, md: Metadata = (), pincode: str = "") -> pb.ItemServiceability:
    return await tat.CheckServiceability(
        pb.CheckServiceabilityRequest(item_id=ITEM, pincode=pincode), metadata=md, timeout=10)


async def test_default_address_answers_like_its_pincode(tat: Tat, users: Users) -> None:
    _, md = await shopper(users, BENGALURU)
    implicit = await check(tat, md)
    explicit = await check(tat, md, pincode=BENGALURU)
    assert implicit == explicit
    assert implicit.estimate.pincode == BENGALURU
    assert implicit.estimate.deliverable and implicit.estimate.warehouse_id == "WH-BLR"
    # The explicit pincode wins over the default address.
    elsewhere = await check(tat, md, pincode=NON_DELIVERY)
    assert elsewhere.estimate.pincode == NON_DELIVERY and not elsewhere.estimate.deliverable


async def test_changing_the_default_address_changes_the_answer(tat: Tat, users: Users) -> None:
    user_id, md = await shopper(users, BENGALURU)
    assert (await check(tat, md)).estimate.deliverable

    moved = await add_address(users, user_id, md, NON_DELIVERY, is_default=True)
    assert moved.is_default
    now = await check(tat, md)
    assert now.estimate.pincode == NON_DELIVERY
    assert not now.estimate.deliverable
    assert now.estimate.reason == common_pb2.UNDELIVERABLE_REASON_NOT_SERVICEABLE

    listed = await users.ListAddresses(users_pb2.ListAddressesRequest(user_id=user_id),
                                       metadata=md)
    first = next(a for a in listed.addresses if a.pincode == BENGALURU)
    await users.SetDefaultAddress(users_pb2.SetDefaultAddressRequest(
        user_id=user_id, address_id=first.address_id, request_id=uuid.uuid4().hex), metadata=md)
    back = await check(tat, md)
    assert back.estimate.pincode == BENGALURU and back.estimate.deliverable


async def test_batch_check_still_requires_a_pincode(tat: Tat, users: Users) -> None:
    # The contract marks BatchCheckServiceabilityRequest.pincode REQUIRED: the
    # default-address fallback is CheckServiceability's alone.
    _, md = await shopper(users, BENGALURU)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tat.BatchCheckServiceability(
            pb.BatchCheckServiceabilityRequest(item_ids=[ITEM, "item-2"]), metadata=md, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(err.value) == ["pincode"]
    ok = await tat.BatchCheckServiceability(
        pb.BatchCheckServiceabilityRequest(item_ids=[ITEM, "item-2"], pincode=BENGALURU),
        metadata=md, timeout=10)
    assert [r.estimate.pincode for r in ok.results] == [BENGALURU, BENGALURU]


async def test_user_without_address_is_told_to_pass_a_pincode(tat: Tat, users: Users) -> None:
    _, md = await shopper(users)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await check(tat, md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(err.value) == ["pincode"]
    assert "default address" in (err.value.details() or "")


async def test_anonymous_caller_is_told_to_pass_a_pincode(tat: Tat) -> None:
    # CheckServiceability is public at the edge: no token means no identity
    # header, and the answer must say which field to fill, not "sign in".
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await check(tat)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(err.value) == ["pincode"]
    assert "not signed in" in (err.value.details() or "")
    assert (await check(tat, pincode=BENGALURU)).estimate.deliverable


async def test_users_down_is_unavailable_but_a_pincode_still_works(
        services: Services, users: Users) -> None:
    _, md = await shopper(users, BENGALURU)
    down = start_tat(services, users_addr=UNREACHABLE_ADDR)
    async with down.channel() as ch:
        tat = serviceability_pb2_grpc.ServiceabilityServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await check(tat, md)
        # UNAVAILABLE rather than the client's own DEADLINE_EXCEEDED: tat gave
        # up on users well inside the 10 s the call allowed.
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "pincode" in (err.value.details() or "")
        assert retry_delay_seconds(err.value) == 1
        with_pincode = await check(tat, md, pincode=BENGALURU)
        assert with_pincode.estimate.deliverable
        assert with_pincode.estimate.warehouse_id == "WH-BLR"
