import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TopItemsMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOP_ITEMS_METRIC_UNSPECIFIED: _ClassVar[TopItemsMetric]
    TOP_ITEMS_METRIC_UNITS: _ClassVar[TopItemsMetric]
    TOP_ITEMS_METRIC_REVENUE: _ClassVar[TopItemsMetric]
TOP_ITEMS_METRIC_UNSPECIFIED: TopItemsMetric
TOP_ITEMS_METRIC_UNITS: TopItemsMetric
TOP_ITEMS_METRIC_REVENUE: TopItemsMetric

class Window(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTopItemsRequest(_message.Message):
    __slots__ = ("window", "category", "metric", "limit")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    window: str
    category: str
    metric: str
    limit: int
    def __init__(self, window: _Optional[str] = ..., category: _Optional[str] = ..., metric: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class TopItem(_message.Message):
    __slots__ = ("item_id", "category", "units", "revenue")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    category: str
    units: int
    revenue: _money_pb2.Money
    def __init__(self, item_id: _Optional[str] = ..., category: _Optional[str] = ..., units: _Optional[int] = ..., revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetTopItemsResponse(_message.Message):
    __slots__ = ("window", "items", "as_of", "window_size")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    window: Window
    items: _containers.RepeatedCompositeFieldContainer[TopItem]
    as_of: _timestamp_pb2.Timestamp
    window_size: str
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., items: _Optional[_Iterable[_Union[TopItem, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_size: _Optional[str] = ...) -> None: ...

class GetCategoryRevenueRequest(_message.Message):
    __slots__ = ("window", "to")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    window: str
    to: str
    def __init__(self, window: _Optional[str] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class CategoryRevenue(_message.Message):
    __slots__ = ("window", "category", "net_revenue", "net_orders", "placed_revenue", "cancelled_revenue", "refunded_revenue")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    NET_REVENUE_FIELD_NUMBER: _ClassVar[int]
    NET_ORDERS_FIELD_NUMBER: _ClassVar[int]
    PLACED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_REVENUE_FIELD_NUMBER: _ClassVar[int]
    window: Window
    category: str
    net_revenue: _money_pb2.Money
    net_orders: int
    placed_revenue: _money_pb2.Money
    cancelled_revenue: _money_pb2.Money
    refunded_revenue: _money_pb2.Money
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., category: _Optional[str] = ..., net_revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., net_orders: _Optional[int] = ..., placed_revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cancelled_revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., refunded_revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetCategoryRevenueResponse(_message.Message):
    __slots__ = ("rows", "range", "as_of")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[CategoryRevenue]
    range: Window
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, rows: _Optional[_Iterable[_Union[CategoryRevenue, _Mapping]]] = ..., range: _Optional[_Union[Window, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetFunnelRequest(_message.Message):
    __slots__ = ("window", "to")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    window: str
    to: str
    def __init__(self, window: _Optional[str] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class FunnelStep(_message.Message):
    __slots__ = ("window", "searches", "cart_adds", "orders_created", "orders_placed")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    SEARCHES_FIELD_NUMBER: _ClassVar[int]
    CART_ADDS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_CREATED_FIELD_NUMBER: _ClassVar[int]
    ORDERS_PLACED_FIELD_NUMBER: _ClassVar[int]
    window: Window
    searches: int
    cart_adds: int
    orders_created: int
    orders_placed: int
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., searches: _Optional[int] = ..., cart_adds: _Optional[int] = ..., orders_created: _Optional[int] = ..., orders_placed: _Optional[int] = ...) -> None: ...

class GetFunnelResponse(_message.Message):
    __slots__ = ("windows", "range", "as_of")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[FunnelStep]
    range: Window
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, windows: _Optional[_Iterable[_Union[FunnelStep, _Mapping]]] = ..., range: _Optional[_Union[Window, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetZeroResultSearchesRequest(_message.Message):
    __slots__ = ("window", "limit")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    window: str
    limit: int
    def __init__(self, window: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ZeroResultSearch(_message.Message):
    __slots__ = ("query", "count")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    query: str
    count: int
    def __init__(self, query: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetZeroResultSearchesResponse(_message.Message):
    __slots__ = ("window", "searches", "as_of", "window_size")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    SEARCHES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    window: Window
    searches: _containers.RepeatedCompositeFieldContainer[ZeroResultSearch]
    as_of: _timestamp_pb2.Timestamp
    window_size: str
    def __init__(self, window: _Optional[_Union[Window, _Mapping]] = ..., searches: _Optional[_Iterable[_Union[ZeroResultSearch, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_size: _Optional[str] = ...) -> None: ...
