import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UndeliverableReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNDELIVERABLE_REASON_UNSPECIFIED: _ClassVar[UndeliverableReason]
    UNDELIVERABLE_REASON_UNKNOWN_PINCODE: _ClassVar[UndeliverableReason]
    UNDELIVERABLE_REASON_NOT_SERVICEABLE: _ClassVar[UndeliverableReason]
    UNDELIVERABLE_REASON_OUT_OF_STOCK: _ClassVar[UndeliverableReason]
    UNDELIVERABLE_REASON_DISRUPTED: _ClassVar[UndeliverableReason]
    UNDELIVERABLE_REASON_ESTIMATE_UNAVAILABLE: _ClassVar[UndeliverableReason]
UNDELIVERABLE_REASON_UNSPECIFIED: UndeliverableReason
UNDELIVERABLE_REASON_UNKNOWN_PINCODE: UndeliverableReason
UNDELIVERABLE_REASON_NOT_SERVICEABLE: UndeliverableReason
UNDELIVERABLE_REASON_OUT_OF_STOCK: UndeliverableReason
UNDELIVERABLE_REASON_DISRUPTED: UndeliverableReason
UNDELIVERABLE_REASON_ESTIMATE_UNAVAILABLE: UndeliverableReason

class Address(_message.Message):
    __slots__ = ("address_id", "name", "lines", "landmark", "city", "state", "pincode", "phone", "is_default", "create_time")
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    LANDMARK_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    address_id: str
    name: str
    lines: _containers.RepeatedScalarFieldContainer[str]
    landmark: str
    city: str
    state: str
    pincode: str
    phone: str
    is_default: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, address_id: _Optional[str] = ..., name: _Optional[str] = ..., lines: _Optional[_Iterable[str]] = ..., landmark: _Optional[str] = ..., city: _Optional[str] = ..., state: _Optional[str] = ..., pincode: _Optional[str] = ..., phone: _Optional[str] = ..., is_default: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeliveryEstimate(_message.Message):
    __slots__ = ("pincode", "deliverable", "eta_days", "promised_date", "warehouse_id", "reason")
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    DELIVERABLE_FIELD_NUMBER: _ClassVar[int]
    ETA_DAYS_FIELD_NUMBER: _ClassVar[int]
    PROMISED_DATE_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    pincode: str
    deliverable: bool
    eta_days: int
    promised_date: _date_pb2.Date
    warehouse_id: str
    reason: UndeliverableReason
    def __init__(self, pincode: _Optional[str] = ..., deliverable: _Optional[bool] = ..., eta_days: _Optional[int] = ..., promised_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., warehouse_id: _Optional[str] = ..., reason: _Optional[_Union[UndeliverableReason, str]] = ...) -> None: ...

class PageCursor(_message.Message):
    __slots__ = ("after_time", "after_id", "offset", "search_after", "store_state", "request_hash")
    AFTER_TIME_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SEARCH_AFTER_FIELD_NUMBER: _ClassVar[int]
    STORE_STATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    after_time: _timestamp_pb2.Timestamp
    after_id: str
    offset: int
    search_after: _containers.RepeatedScalarFieldContainer[str]
    store_state: bytes
    request_hash: str
    def __init__(self, after_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after_id: _Optional[str] = ..., offset: _Optional[int] = ..., search_after: _Optional[_Iterable[str]] = ..., store_state: _Optional[bytes] = ..., request_hash: _Optional[str] = ...) -> None: ...
