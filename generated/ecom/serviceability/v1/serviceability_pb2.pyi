import datetime

from ecom.common.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.type import latlng_pb2 as _latlng_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WarehouseStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WAREHOUSE_STATUS_UNSPECIFIED: _ClassVar[WarehouseStatus]
    WAREHOUSE_STATUS_ACTIVE: _ClassVar[WarehouseStatus]
    WAREHOUSE_STATUS_CLOSED: _ClassVar[WarehouseStatus]

class DisruptionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISRUPTION_KIND_UNSPECIFIED: _ClassVar[DisruptionKind]
    DISRUPTION_KIND_WAREHOUSE_CLOSED: _ClassVar[DisruptionKind]
    DISRUPTION_KIND_CARRIER_OUTAGE: _ClassVar[DisruptionKind]
    DISRUPTION_KIND_PINCODE_BLOCKED: _ClassVar[DisruptionKind]
WAREHOUSE_STATUS_UNSPECIFIED: WarehouseStatus
WAREHOUSE_STATUS_ACTIVE: WarehouseStatus
WAREHOUSE_STATUS_CLOSED: WarehouseStatus
DISRUPTION_KIND_UNSPECIFIED: DisruptionKind
DISRUPTION_KIND_WAREHOUSE_CLOSED: DisruptionKind
DISRUPTION_KIND_CARRIER_OUTAGE: DisruptionKind
DISRUPTION_KIND_PINCODE_BLOCKED: DisruptionKind

class CheckServiceabilityRequest(_message.Message):
    __slots__ = ("item_id", "pincode", "quantity")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    pincode: str
    quantity: int
    def __init__(self, item_id: _Optional[str] = ..., pincode: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class ItemServiceability(_message.Message):
    __slots__ = ("item_id", "estimate")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    estimate: _common_pb2.DeliveryEstimate
    def __init__(self, item_id: _Optional[str] = ..., estimate: _Optional[_Union[_common_pb2.DeliveryEstimate, _Mapping]] = ...) -> None: ...

class ListRoutesRequest(_message.Message):
    __slots__ = ("pincode",)
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    pincode: str
    def __init__(self, pincode: _Optional[str] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("warehouse_id", "eta_days", "promised_date")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    ETA_DAYS_FIELD_NUMBER: _ClassVar[int]
    PROMISED_DATE_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    eta_days: int
    promised_date: _date_pb2.Date
    def __init__(self, warehouse_id: _Optional[str] = ..., eta_days: _Optional[int] = ..., promised_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ...) -> None: ...

class ListRoutesResponse(_message.Message):
    __slots__ = ("pincode", "routes")
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    pincode: str
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    def __init__(self, pincode: _Optional[str] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ...) -> None: ...

class BatchCheckServiceabilityRequest(_message.Message):
    __slots__ = ("item_ids", "pincode")
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    pincode: str
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ..., pincode: _Optional[str] = ...) -> None: ...

class BatchCheckServiceabilityResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemServiceability]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemServiceability, _Mapping]]] = ...) -> None: ...

class Warehouse(_message.Message):
    __slots__ = ("warehouse_id", "name", "city", "state", "pincode", "location", "cutoff_hour", "processing_days", "status")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_HOUR_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_DAYS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    name: str
    city: str
    state: str
    pincode: str
    location: _latlng_pb2.LatLng
    cutoff_hour: int
    processing_days: int
    status: WarehouseStatus
    def __init__(self, warehouse_id: _Optional[str] = ..., name: _Optional[str] = ..., city: _Optional[str] = ..., state: _Optional[str] = ..., pincode: _Optional[str] = ..., location: _Optional[_Union[_latlng_pb2.LatLng, _Mapping]] = ..., cutoff_hour: _Optional[int] = ..., processing_days: _Optional[int] = ..., status: _Optional[_Union[WarehouseStatus, str]] = ...) -> None: ...

class ListWarehousesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWarehousesResponse(_message.Message):
    __slots__ = ("warehouses", "next_page_token")
    WAREHOUSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    warehouses: _containers.RepeatedCompositeFieldContainer[Warehouse]
    next_page_token: str
    def __init__(self, warehouses: _Optional[_Iterable[_Union[Warehouse, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetWarehouseRequest(_message.Message):
    __slots__ = ("warehouse_id",)
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    def __init__(self, warehouse_id: _Optional[str] = ...) -> None: ...

class Disruption(_message.Message):
    __slots__ = ("disruption_id", "kind", "warehouse_id", "state", "pincodes", "note", "start_time", "end_time", "create_time", "clear_time")
    DISRUPTION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINCODES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CLEAR_TIME_FIELD_NUMBER: _ClassVar[int]
    disruption_id: str
    kind: DisruptionKind
    warehouse_id: str
    state: str
    pincodes: _containers.RepeatedScalarFieldContainer[str]
    note: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    clear_time: _timestamp_pb2.Timestamp
    def __init__(self, disruption_id: _Optional[str] = ..., kind: _Optional[_Union[DisruptionKind, str]] = ..., warehouse_id: _Optional[str] = ..., state: _Optional[str] = ..., pincodes: _Optional[_Iterable[str]] = ..., note: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clear_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateDisruptionRequest(_message.Message):
    __slots__ = ("disruption", "request_id")
    DISRUPTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    disruption: Disruption
    request_id: str
    def __init__(self, disruption: _Optional[_Union[Disruption, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListDisruptionsRequest(_message.Message):
    __slots__ = ("active_only", "page_size", "page_token")
    ACTIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    active_only: bool
    page_size: int
    page_token: str
    def __init__(self, active_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDisruptionsResponse(_message.Message):
    __slots__ = ("disruptions", "next_page_token")
    DISRUPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    disruptions: _containers.RepeatedCompositeFieldContainer[Disruption]
    next_page_token: str
    def __init__(self, disruptions: _Optional[_Iterable[_Union[Disruption, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ClearDisruptionRequest(_message.Message):
    __slots__ = ("disruption_id", "request_id")
    DISRUPTION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    disruption_id: str
    request_id: str
    def __init__(self, disruption_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...
