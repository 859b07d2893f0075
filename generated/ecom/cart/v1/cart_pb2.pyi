import datetime

from ecom.common.v1 import common_pb2 as _common_pb2
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

class CartLine(_message.Message):
    __slots__ = ("item_id", "quantity", "title", "image_url", "unit_price", "line_total", "available", "delivery", "add_time")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    LINE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ADD_TIME_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    quantity: int
    title: str
    image_url: str
    unit_price: _money_pb2.Money
    line_total: _money_pb2.Money
    available: bool
    delivery: _common_pb2.DeliveryEstimate
    add_time: _timestamp_pb2.Timestamp
    def __init__(self, item_id: _Optional[str] = ..., quantity: _Optional[int] = ..., title: _Optional[str] = ..., image_url: _Optional[str] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., line_total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., available: _Optional[bool] = ..., delivery: _Optional[_Union[_common_pb2.DeliveryEstimate, _Mapping]] = ..., add_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Cart(_message.Message):
    __slots__ = ("user_id", "lines", "total", "item_count", "pincode", "priced", "all_deliverable", "update_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    PRICED_FIELD_NUMBER: _ClassVar[int]
    ALL_DELIVERABLE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    lines: _containers.RepeatedCompositeFieldContainer[CartLine]
    total: _money_pb2.Money
    item_count: int
    pincode: str
    priced: bool
    all_deliverable: bool
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[CartLine, _Mapping]]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., item_count: _Optional[int] = ..., pincode: _Optional[str] = ..., priced: _Optional[bool] = ..., all_deliverable: _Optional[bool] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetCartRequest(_message.Message):
    __slots__ = ("user_id", "pincode")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    pincode: str
    def __init__(self, user_id: _Optional[str] = ..., pincode: _Optional[str] = ...) -> None: ...

class AddCartItemRequest(_message.Message):
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

class UpdateCartItemRequest(_message.Message):
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

class RemoveCartItemRequest(_message.Message):
    __slots__ = ("user_id", "item_id", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchRemoveCartItemsRequest(_message.Message):
    __slots__ = ("user_id", "item_ids", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...
