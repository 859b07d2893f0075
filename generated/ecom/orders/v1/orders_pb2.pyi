import datetime

from ecom.common.v1 import common_pb2 as _common_pb2
from ecom.payments.v1 import payments_pb2 as _payments_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.type import date_pb2 as _date_pb2
from google.type import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATE_UNSPECIFIED: _ClassVar[OrderState]
    ORDER_STATE_CREATED: _ClassVar[OrderState]
    ORDER_STATE_PLACED: _ClassVar[OrderState]
    ORDER_STATE_SHIPPED: _ClassVar[OrderState]
    ORDER_STATE_DELIVERED: _ClassVar[OrderState]
    ORDER_STATE_CANCELLED: _ClassVar[OrderState]

class CancelReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANCEL_REASON_UNSPECIFIED: _ClassVar[CancelReason]
    CANCEL_REASON_PAYMENT_DECLINED: _ClassVar[CancelReason]
    CANCEL_REASON_HOLD_EXPIRED: _ClassVar[CancelReason]
    CANCEL_REASON_USER_CANCELLED: _ClassVar[CancelReason]
    CANCEL_REASON_ADMIN_CANCELLED: _ClassVar[CancelReason]
    CANCEL_REASON_RECONCILED: _ClassVar[CancelReason]

class RepairKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPAIR_KIND_UNSPECIFIED: _ClassVar[RepairKind]
    REPAIR_KIND_EXPIRED_HOLD_CANCELLED: _ClassVar[RepairKind]
    REPAIR_KIND_ORPHAN_RESERVATION_RELEASED: _ClassVar[RepairKind]
    REPAIR_KIND_RESERVATION_COMMITTED: _ClassVar[RepairKind]
    REPAIR_KIND_PAYMENT_STATUS_APPLIED: _ClassVar[RepairKind]
    REPAIR_KIND_LATE_PAYMENT_REFUNDED: _ClassVar[RepairKind]
    REPAIR_KIND_FLAGGED: _ClassVar[RepairKind]
ORDER_STATE_UNSPECIFIED: OrderState
ORDER_STATE_CREATED: OrderState
ORDER_STATE_PLACED: OrderState
ORDER_STATE_SHIPPED: OrderState
ORDER_STATE_DELIVERED: OrderState
ORDER_STATE_CANCELLED: OrderState
CANCEL_REASON_UNSPECIFIED: CancelReason
CANCEL_REASON_PAYMENT_DECLINED: CancelReason
CANCEL_REASON_HOLD_EXPIRED: CancelReason
CANCEL_REASON_USER_CANCELLED: CancelReason
CANCEL_REASON_ADMIN_CANCELLED: CancelReason
CANCEL_REASON_RECONCILED: CancelReason
REPAIR_KIND_UNSPECIFIED: RepairKind
REPAIR_KIND_EXPIRED_HOLD_CANCELLED: RepairKind
REPAIR_KIND_ORPHAN_RESERVATION_RELEASED: RepairKind
REPAIR_KIND_RESERVATION_COMMITTED: RepairKind
REPAIR_KIND_PAYMENT_STATUS_APPLIED: RepairKind
REPAIR_KIND_LATE_PAYMENT_REFUNDED: RepairKind
REPAIR_KIND_FLAGGED: RepairKind

class OrderLine(_message.Message):
    __slots__ = ("item_id", "quantity", "title", "unit_price", "line_total", "warehouse_id", "promised_date", "seller_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    LINE_TOTAL_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    PROMISED_DATE_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    quantity: int
    title: str
    unit_price: _money_pb2.Money
    line_total: _money_pb2.Money
    warehouse_id: str
    promised_date: _date_pb2.Date
    seller_id: str
    def __init__(self, item_id: _Optional[str] = ..., quantity: _Optional[int] = ..., title: _Optional[str] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., line_total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., warehouse_id: _Optional[str] = ..., promised_date: _Optional[_Union[_date_pb2.Date, _Mapping]] = ..., seller_id: _Optional[str] = ...) -> None: ...

class OrderPayment(_message.Message):
    __slots__ = ("payment_id", "status", "decline_code", "refunded_amount")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DECLINE_CODE_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    status: _payments_pb2.PaymentStatus
    decline_code: str
    refunded_amount: _money_pb2.Money
    def __init__(self, payment_id: _Optional[str] = ..., status: _Optional[_Union[_payments_pb2.PaymentStatus, str]] = ..., decline_code: _Optional[str] = ..., refunded_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class Shipment(_message.Message):
    __slots__ = ("carrier", "tracking_number")
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    carrier: str
    tracking_number: str
    def __init__(self, carrier: _Optional[str] = ..., tracking_number: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "user_id", "state", "lines", "shipping_address", "total", "item_count", "payment", "cancel_reason", "cancel_note", "shipment", "from_cart", "archived", "request_id", "expires_at", "create_time", "update_time", "place_time", "ship_time", "deliver_time", "cancel_time")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SHIPPING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    CANCEL_NOTE_FIELD_NUMBER: _ClassVar[int]
    SHIPMENT_FIELD_NUMBER: _ClassVar[int]
    FROM_CART_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PLACE_TIME_FIELD_NUMBER: _ClassVar[int]
    SHIP_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVER_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TIME_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    user_id: str
    state: OrderState
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    shipping_address: _common_pb2.Address
    total: _money_pb2.Money
    item_count: int
    payment: OrderPayment
    cancel_reason: CancelReason
    cancel_note: str
    shipment: Shipment
    from_cart: bool
    archived: bool
    request_id: str
    expires_at: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    place_time: _timestamp_pb2.Timestamp
    ship_time: _timestamp_pb2.Timestamp
    deliver_time: _timestamp_pb2.Timestamp
    cancel_time: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., state: _Optional[_Union[OrderState, str]] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., shipping_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., item_count: _Optional[int] = ..., payment: _Optional[_Union[OrderPayment, _Mapping]] = ..., cancel_reason: _Optional[_Union[CancelReason, str]] = ..., cancel_note: _Optional[str] = ..., shipment: _Optional[_Union[Shipment, _Mapping]] = ..., from_cart: _Optional[bool] = ..., archived: _Optional[bool] = ..., request_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., place_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ship_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deliver_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LineItem(_message.Message):
    __slots__ = ("item_id", "quantity")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    quantity: int
    def __init__(self, item_id: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class CreateOrderRequest(_message.Message):
    __slots__ = ("request_id", "user_id", "lines", "from_cart", "address_id", "shipping_address")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    FROM_CART_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    SHIPPING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    user_id: str
    lines: _containers.RepeatedCompositeFieldContainer[LineItem]
    from_cart: bool
    address_id: str
    shipping_address: _common_pb2.Address
    def __init__(self, request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ..., from_cart: _Optional[bool] = ..., address_id: _Optional[str] = ..., shipping_address: _Optional[_Union[_common_pb2.Address, _Mapping]] = ...) -> None: ...

class PayOrderRequest(_message.Message):
    __slots__ = ("order_id", "payment_token", "request_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    payment_token: str
    request_id: str
    def __init__(self, order_id: _Optional[str] = ..., payment_token: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id", "note", "request_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    note: str
    request_id: str
    def __init__(self, order_id: _Optional[str] = ..., note: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ShipOrderRequest(_message.Message):
    __slots__ = ("order_id", "shipment", "request_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SHIPMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    shipment: Shipment
    request_id: str
    def __init__(self, order_id: _Optional[str] = ..., shipment: _Optional[_Union[Shipment, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeliverOrderRequest(_message.Message):
    __slots__ = ("order_id", "request_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    request_id: str
    def __init__(self, order_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListUserOrdersRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUserOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token", "archive_unavailable")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    next_page_token: str
    archive_unavailable: bool
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., archive_unavailable: _Optional[bool] = ...) -> None: ...

class Repair(_message.Message):
    __slots__ = ("order_id", "kind", "from_state", "to_state", "detail")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    kind: RepairKind
    from_state: OrderState
    to_state: OrderState
    detail: str
    def __init__(self, order_id: _Optional[str] = ..., kind: _Optional[_Union[RepairKind, str]] = ..., from_state: _Optional[_Union[OrderState, str]] = ..., to_state: _Optional[_Union[OrderState, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ReconcileOrdersRequest(_message.Message):
    __slots__ = ("dry_run", "max_repairs", "request_id")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_REPAIRS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    max_repairs: int
    request_id: str
    def __init__(self, dry_run: _Optional[bool] = ..., max_repairs: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReconcileOrdersResponse(_message.Message):
    __slots__ = ("repairs", "orders_checked", "reservations_checked", "payments_checked", "dry_run", "truncated")
    REPAIRS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    PAYMENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    repairs: _containers.RepeatedCompositeFieldContainer[Repair]
    orders_checked: int
    reservations_checked: int
    payments_checked: int
    dry_run: bool
    truncated: bool
    def __init__(self, repairs: _Optional[_Iterable[_Union[Repair, _Mapping]]] = ..., orders_checked: _Optional[int] = ..., reservations_checked: _Optional[int] = ..., payments_checked: _Optional[int] = ..., dry_run: _Optional[bool] = ..., truncated: _Optional[bool] = ...) -> None: ...
