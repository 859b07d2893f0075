import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ItemState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ITEM_STATE_UNSPECIFIED: _ClassVar[ItemState]
    ITEM_STATE_ACTIVE: _ClassVar[ItemState]
    ITEM_STATE_DELETED: _ClassVar[ItemState]

class FeedFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEED_FORMAT_UNSPECIFIED: _ClassVar[FeedFormat]
    FEED_FORMAT_JSONL: _ClassVar[FeedFormat]
    FEED_FORMAT_CSV: _ClassVar[FeedFormat]

class FeedState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEED_STATE_UNSPECIFIED: _ClassVar[FeedState]
    FEED_STATE_VALIDATED: _ClassVar[FeedState]
    FEED_STATE_PROCESSING: _ClassVar[FeedState]
    FEED_STATE_COMPLETED: _ClassVar[FeedState]
    FEED_STATE_FAILED: _ClassVar[FeedState]
ITEM_STATE_UNSPECIFIED: ItemState
ITEM_STATE_ACTIVE: ItemState
ITEM_STATE_DELETED: ItemState
FEED_FORMAT_UNSPECIFIED: FeedFormat
FEED_FORMAT_JSONL: FeedFormat
FEED_FORMAT_CSV: FeedFormat
FEED_STATE_UNSPECIFIED: FeedState
FEED_STATE_VALIDATED: FeedState
FEED_STATE_PROCESSING: FeedState
FEED_STATE_COMPLETED: FeedState
FEED_STATE_FAILED: FeedState

class Item(_message.Message):
    __slots__ = ("item_id", "supplier_id", "sku", "title", "description", "category", "brand", "price", "list_price", "attributes", "image_urls", "state", "version", "create_time", "update_time", "delete_time")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    LIST_PRICE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URLS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    supplier_id: str
    sku: str
    title: str
    description: str
    category: str
    brand: str
    price: _money_pb2.Money
    list_price: _money_pb2.Money
    attributes: _struct_pb2.Struct
    image_urls: _containers.RepeatedScalarFieldContainer[str]
    state: ItemState
    version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    delete_time: _timestamp_pb2.Timestamp
    def __init__(self, item_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., sku: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., brand: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., list_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., image_urls: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[ItemState, str]] = ..., version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateItemRequest(_message.Message):
    __slots__ = ("item", "item_id", "request_id")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    item: Item
    item_id: str
    request_id: str
    def __init__(self, item: _Optional[_Union[Item, _Mapping]] = ..., item_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetItemRequest(_message.Message):
    __slots__ = ("item_id",)
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    def __init__(self, item_id: _Optional[str] = ...) -> None: ...

class BatchGetItemsRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetItemsResponse(_message.Message):
    __slots__ = ("items", "missing_item_ids")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MISSING_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    missing_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., missing_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListItemsRequest(_message.Message):
    __slots__ = ("category", "page_size", "page_token", "show_deleted")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHOW_DELETED_FIELD_NUMBER: _ClassVar[int]
    category: str
    page_size: int
    page_token: str
    show_deleted: bool
    def __init__(self, category: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., show_deleted: _Optional[bool] = ...) -> None: ...

class ListItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateItemRequest(_message.Message):
    __slots__ = ("item_id", "item", "update_mask", "expected_version", "request_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    item: Item
    update_mask: _field_mask_pb2.FieldMask
    expected_version: int
    request_id: str
    def __init__(self, item_id: _Optional[str] = ..., item: _Optional[_Union[Item, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteItemRequest(_message.Message):
    __slots__ = ("item_id", "expected_version", "request_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    expected_version: int
    request_id: str
    def __init__(self, item_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class FeedRowError(_message.Message):
    __slots__ = ("line_number", "sku", "field", "message")
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    line_number: int
    sku: str
    field: str
    message: str
    def __init__(self, line_number: _Optional[int] = ..., sku: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Feed(_message.Message):
    __slots__ = ("feed_id", "supplier_id", "format", "state", "total_rows", "valid_rows", "rejected_rows", "applied_rows", "failed_rows", "row_errors", "row_errors_truncated", "create_time", "complete_time")
    FEED_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    VALID_ROWS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_ROWS_FIELD_NUMBER: _ClassVar[int]
    FAILED_ROWS_FIELD_NUMBER: _ClassVar[int]
    ROW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    ROW_ERRORS_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    feed_id: str
    supplier_id: str
    format: FeedFormat
    state: FeedState
    total_rows: int
    valid_rows: int
    rejected_rows: int
    applied_rows: int
    failed_rows: int
    row_errors: _containers.RepeatedCompositeFieldContainer[FeedRowError]
    row_errors_truncated: bool
    create_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    def __init__(self, feed_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., format: _Optional[_Union[FeedFormat, str]] = ..., state: _Optional[_Union[FeedState, str]] = ..., total_rows: _Optional[int] = ..., valid_rows: _Optional[int] = ..., rejected_rows: _Optional[int] = ..., applied_rows: _Optional[int] = ..., failed_rows: _Optional[int] = ..., row_errors: _Optional[_Iterable[_Union[FeedRowError, _Mapping]]] = ..., row_errors_truncated: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitFeedRequest(_message.Message):
    __slots__ = ("supplier_id", "format", "content", "dry_run", "request_id")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    format: FeedFormat
    content: str
    dry_run: bool
    request_id: str
    def __init__(self, supplier_id: _Optional[str] = ..., format: _Optional[_Union[FeedFormat, str]] = ..., content: _Optional[str] = ..., dry_run: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetFeedRequest(_message.Message):
    __slots__ = ("supplier_id", "feed_id")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    FEED_ID_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    feed_id: str
    def __init__(self, supplier_id: _Optional[str] = ..., feed_id: _Optional[str] = ...) -> None: ...
