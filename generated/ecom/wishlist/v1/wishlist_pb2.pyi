import datetime

from ecom.cart.v1 import cart_pb2 as _cart_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WishlistItem(_message.Message):
    __slots__ = ("item_id", "title", "image_url", "price", "available", "add_time")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ADD_TIME_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    image_url: str
    price: _money_pb2.Money
    available: bool
    add_time: _timestamp_pb2.Timestamp
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., image_url: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., available: _Optional[bool] = ..., add_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Wishlist(_message.Message):
    __slots__ = ("user_id", "items", "update_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    items: _containers.RepeatedCompositeFieldContainer[WishlistItem]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[WishlistItem, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetWishlistRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class AddWishlistItemRequest(_message.Message):
    __slots__ = ("user_id", "item_id", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RemoveWishlistItemRequest(_message.Message):
    __slots__ = ("user_id", "item_id", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class MoveWishlistItemToCartRequest(_message.Message):
    __slots__ = ("user_id", "item_id", "quantity", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    quantity: int
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., quantity: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class MoveWishlistItemToCartResponse(_message.Message):
    __slots__ = ("wishlist", "cart")
    WISHLIST_FIELD_NUMBER: _ClassVar[int]
    CART_FIELD_NUMBER: _ClassVar[int]
    wishlist: Wishlist
    cart: _cart_pb2.Cart
    def __init__(self, wishlist: _Optional[_Union[Wishlist, _Mapping]] = ..., cart: _Optional[_Union[_cart_pb2.Cart, _Mapping]] = ...) -> None: ...
