"""svc_tat's default-address fallback without servers: a stand-in for the
svc_users stub answers ListAddresses (the real one is exercised in
tests/integration/test_tat_default_address.py)."""

from __future__ import annotations

import grpc
import pytest
from ecom.common.v1 import common_pb2
from ecom.users.v1 import users_pb2

from mesh.auth import Caller
from mesh.errors import InvalidArgument, Unavailable
from svc_tat.service import DefaultAddressPincode

SHOPPER = Caller("u-42", frozenset({"customer"}))


class AddressBook:
    """Answers ListAddresses with fixed addresses, or fails with ``error``."""

    def __init__(self, *addresses: common_pb2.Address,
                 error: grpc.StatusCode | None = None) -> None:
        self.addresses, self.error = addresses, error
        self.asked: list[str] = []

    async def ListAddresses(
            self, request: users_pb2.ListAddressesRequest) -> users_pb2.ListAddressesResponse:
        self.asked.append(request.user_id)
        if self.error is not None:
            raise grpc.aio.AioRpcError(self.error, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details="users said no")
        return users_pb2.ListAddressesResponse(addresses=list(self.addresses))


def fallback(book: AddressBook) -> DefaultAddressPincode:
    return DefaultAddressPincode(book)  # type: ignore[arg-type]


async def test_the_default_address_gives_the_pincode() -> None:
    book = AddressBook(common_pb2.Address(pincode="110001"),
                       common_pb2.Address(pincode="560001", is_default=True))
    assert await fallback(book)(SHOPPER) == "560001"
    assert book.asked == ["u-42"]


async def test_no_default_address_names_the_pincode_field() -> None:
    with pytest.raises(InvalidArgument) as err:
        await fallback(AddressBook(common_pb2.Address(pincode="110001")))(SHOPPER)
    assert [v.field for v in err.value.violations] == ["pincode"]


async def test_anonymous_caller_names_the_pincode_field_without_asking_users() -> None:
    book = AddressBook()
    with pytest.raises(InvalidArgument) as err:
        await fallback(book)(None)
    assert [v.field for v in err.value.violations] == ["pincode"]
    assert book.asked == []


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.INTERNAL])
async def test_users_failing_is_unavailable_retry_in_a_second(code: grpc.StatusCode) -> None:
    with pytest.raises(Unavailable) as err:
        await fallback(AddressBook(error=code))(SHOPPER)
    assert err.value.retry_after == 1 and "pincode" in str(err.value)
