import datetime

from ecom.orders.v1 import orders_pb2 as _orders_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArchiveOrdersRequest(_message.Message):
    __slots__ = ("min_age", "max_orders", "dry_run", "request_id")
    MIN_AGE_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDERS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    min_age: _duration_pb2.Duration
    max_orders: int
    dry_run: bool
    request_id: str
    def __init__(self, min_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_orders: _Optional[int] = ..., dry_run: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class ArchiveOrdersResponse(_message.Message):
    __slots__ = ("archived_count", "archived_order_ids", "more_remaining")
    ARCHIVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    MORE_REMAINING_FIELD_NUMBER: _ClassVar[int]
    archived_count: int
    archived_order_ids: _containers.RepeatedScalarFieldContainer[str]
    more_remaining: bool
    def __init__(self, archived_count: _Optional[int] = ..., archived_order_ids: _Optional[_Iterable[str]] = ..., more_remaining: _Optional[bool] = ...) -> None: ...

class ListArchivedOrdersRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListArchivedOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_orders_pb2.Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[_orders_pb2.Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetArchivedOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ListSellerOrdersRequest(_message.Message):
    __slots__ = ("seller_id", "page_size", "page_token")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    page_size: int
    page_token: str
    def __init__(self, seller_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSellerOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_orders_pb2.Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[_orders_pb2.Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
