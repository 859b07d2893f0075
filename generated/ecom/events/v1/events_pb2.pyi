import datetime

from ecom.catalog.v1 import catalog_pb2 as _catalog_pb2
from ecom.notifications.v1 import notifications_pb2 as _notifications_pb2
from ecom.orders.v1 import orders_pb2 as _orders_pb2
from ecom.payments.v1 import payments_pb2 as _payments_pb2
from ecom.search.v1 import search_pb2 as _search_pb2
from ecom.serviceability.v1 import serviceability_pb2 as _serviceability_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StockChangeReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOCK_CHANGE_REASON_UNSPECIFIED: _ClassVar[StockChangeReason]
    STOCK_CHANGE_REASON_SET: _ClassVar[StockChangeReason]
    STOCK_CHANGE_REASON_RESERVED: _ClassVar[StockChangeReason]
    STOCK_CHANGE_REASON_COMMITTED: _ClassVar[StockChangeReason]
    STOCK_CHANGE_REASON_RELEASED: _ClassVar[StockChangeReason]

class CartRemovalReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CART_REMOVAL_REASON_UNSPECIFIED: _ClassVar[CartRemovalReason]
    CART_REMOVAL_REASON_USER: _ClassVar[CartRemovalReason]
    CART_REMOVAL_REASON_ORDERED: _ClassVar[CartRemovalReason]

class InvalidationChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVALIDATION_CHANGE_UNSPECIFIED: _ClassVar[InvalidationChange]
    INVALIDATION_CHANGE_RAISED: _ClassVar[InvalidationChange]
    INVALIDATION_CHANGE_CLEARED: _ClassVar[InvalidationChange]
    INVALIDATION_CHANGE_MATRIX_REBUILT: _ClassVar[InvalidationChange]
STOCK_CHANGE_REASON_UNSPECIFIED: StockChangeReason
STOCK_CHANGE_REASON_SET: StockChangeReason
STOCK_CHANGE_REASON_RESERVED: StockChangeReason
STOCK_CHANGE_REASON_COMMITTED: StockChangeReason
STOCK_CHANGE_REASON_RELEASED: StockChangeReason
CART_REMOVAL_REASON_UNSPECIFIED: CartRemovalReason
CART_REMOVAL_REASON_USER: CartRemovalReason
CART_REMOVAL_REASON_ORDERED: CartRemovalReason
INVALIDATION_CHANGE_UNSPECIFIED: InvalidationChange
INVALIDATION_CHANGE_RAISED: InvalidationChange
INVALIDATION_CHANGE_CLEARED: InvalidationChange
INVALIDATION_CHANGE_MATRIX_REBUILT: InvalidationChange

class EventEnvelope(_message.Message):
    __slots__ = ("event_id", "event_type", "occurred_at", "entity_key", "entity_version", "producer", "request_id", "item_upserted", "item_deleted", "supplier_item_received", "stock_changed", "order_transitioned", "payment_succeeded", "payment_declined", "payment_timed_out", "payment_refunded", "cart_item_added", "cart_item_removed", "cart_item_quantity_changed", "wishlist_item_added", "wishlist_item_removed", "search_query_recorded", "serviceability_invalidated", "notification_requested")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    ENTITY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    ITEM_DELETED_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ITEM_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    STOCK_CHANGED_FIELD_NUMBER: _ClassVar[int]
    ORDER_TRANSITIONED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_DECLINED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_REFUNDED_FIELD_NUMBER: _ClassVar[int]
    CART_ITEM_ADDED_FIELD_NUMBER: _ClassVar[int]
    CART_ITEM_REMOVED_FIELD_NUMBER: _ClassVar[int]
    CART_ITEM_QUANTITY_CHANGED_FIELD_NUMBER: _ClassVar[int]
    WISHLIST_ITEM_ADDED_FIELD_NUMBER: _ClassVar[int]
    WISHLIST_ITEM_REMOVED_FIELD_NUMBER: _ClassVar[int]
    SEARCH_QUERY_RECORDED_FIELD_NUMBER: _ClassVar[int]
    SERVICEABILITY_INVALIDATED_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    occurred_at: _timestamp_pb2.Timestamp
    entity_key: str
    entity_version: int
    producer: str
    request_id: str
    item_upserted: ItemUpserted
    item_deleted: ItemDeleted
    supplier_item_received: SupplierItemReceived
    stock_changed: StockChanged
    order_transitioned: OrderTransitioned
    payment_succeeded: PaymentSucceeded
    payment_declined: PaymentDeclined
    payment_timed_out: PaymentTimedOut
    payment_refunded: PaymentRefunded
    cart_item_added: CartItemAdded
    cart_item_removed: CartItemRemoved
    cart_item_quantity_changed: CartItemQuantityChanged
    wishlist_item_added: WishlistItemAdded
    wishlist_item_removed: WishlistItemRemoved
    search_query_recorded: SearchQueryRecorded
    serviceability_invalidated: ServiceabilityInvalidated
    notification_requested: NotificationRequested
    def __init__(self, event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., entity_key: _Optional[str] = ..., entity_version: _Optional[int] = ..., producer: _Optional[str] = ..., request_id: _Optional[str] = ..., item_upserted: _Optional[_Union[ItemUpserted, _Mapping]] = ..., item_deleted: _Optional[_Union[ItemDeleted, _Mapping]] = ..., supplier_item_received: _Optional[_Union[SupplierItemReceived, _Mapping]] = ..., stock_changed: _Optional[_Union[StockChanged, _Mapping]] = ..., order_transitioned: _Optional[_Union[OrderTransitioned, _Mapping]] = ..., payment_succeeded: _Optional[_Union[PaymentSucceeded, _Mapping]] = ..., payment_declined: _Optional[_Union[PaymentDeclined, _Mapping]] = ..., payment_timed_out: _Optional[_Union[PaymentTimedOut, _Mapping]] = ..., payment_refunded: _Optional[_Union[PaymentRefunded, _Mapping]] = ..., cart_item_added: _Optional[_Union[CartItemAdded, _Mapping]] = ..., cart_item_removed: _Optional[_Union[CartItemRemoved, _Mapping]] = ..., cart_item_quantity_changed: _Optional[_Union[CartItemQuantityChanged, _Mapping]] = ..., wishlist_item_added: _Optional[_Union[WishlistItemAdded, _Mapping]] = ..., wishlist_item_removed: _Optional[_Union[WishlistItemRemoved, _Mapping]] = ..., search_query_recorded: _Optional[_Union[SearchQueryRecorded, _Mapping]] = ..., serviceability_invalidated: _Optional[_Union[ServiceabilityInvalidated, _Mapping]] = ..., notification_requested: _Optional[_Union[NotificationRequested, _Mapping]] = ...) -> None: ...

class ItemUpserted(_message.Message):
    __slots__ = ("item", "created", "feed_id")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    FEED_ID_FIELD_NUMBER: _ClassVar[int]
    item: _catalog_pb2.Item
    created: bool
    feed_id: str
    def __init__(self, item: _Optional[_Union[_catalog_pb2.Item, _Mapping]] = ..., created: _Optional[bool] = ..., feed_id: _Optional[str] = ...) -> None: ...

class ItemDeleted(_message.Message):
    __slots__ = ("item_id", "version", "delete_time")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    version: int
    delete_time: _timestamp_pb2.Timestamp
    def __init__(self, item_id: _Optional[str] = ..., version: _Optional[int] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SupplierItemReceived(_message.Message):
    __slots__ = ("feed_id", "supplier_id", "line_number", "item")
    FEED_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    feed_id: str
    supplier_id: str
    line_number: int
    item: _catalog_pb2.Item
    def __init__(self, feed_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., line_number: _Optional[int] = ..., item: _Optional[_Union[_catalog_pb2.Item, _Mapping]] = ...) -> None: ...

class StockChanged(_message.Message):
    __slots__ = ("item_id", "warehouse_id", "available", "reserved", "available_delta", "reason", "order_id", "item_total_available")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_TOTAL_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    warehouse_id: str
    available: int
    reserved: int
    available_delta: int
    reason: StockChangeReason
    order_id: str
    item_total_available: int
    def __init__(self, item_id: _Optional[str] = ..., warehouse_id: _Optional[str] = ..., available: _Optional[int] = ..., reserved: _Optional[int] = ..., available_delta: _Optional[int] = ..., reason: _Optional[_Union[StockChangeReason, str]] = ..., order_id: _Optional[str] = ..., item_total_available: _Optional[int] = ...) -> None: ...

class OrderTransitioned(_message.Message):
    __slots__ = ("order_id", "user_id", "from_state", "to_state", "cancel_reason", "order")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    user_id: str
    from_state: _orders_pb2.OrderState
    to_state: _orders_pb2.OrderState
    cancel_reason: _orders_pb2.CancelReason
    order: _orders_pb2.Order
    def __init__(self, order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., from_state: _Optional[_Union[_orders_pb2.OrderState, str]] = ..., to_state: _Optional[_Union[_orders_pb2.OrderState, str]] = ..., cancel_reason: _Optional[_Union[_orders_pb2.CancelReason, str]] = ..., order: _Optional[_Union[_orders_pb2.Order, _Mapping]] = ...) -> None: ...

class PaymentSucceeded(_message.Message):
    __slots__ = ("payment", "late")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    LATE_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    late: bool
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ..., late: _Optional[bool] = ...) -> None: ...

class PaymentDeclined(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ...) -> None: ...

class PaymentTimedOut(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ...) -> None: ...

class PaymentRefunded(_message.Message):
    __slots__ = ("payment", "refund")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    REFUND_FIELD_NUMBER: _ClassVar[int]
    payment: _payments_pb2.Payment
    refund: _payments_pb2.Refund
    def __init__(self, payment: _Optional[_Union[_payments_pb2.Payment, _Mapping]] = ..., refund: _Optional[_Union[_payments_pb2.Refund, _Mapping]] = ...) -> None: ...

class CartItemAdded(_message.Message):
    __slots__ = ("user_id", "item_id", "quantity", "line_quantity")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    LINE_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    quantity: int
    line_quantity: int
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., quantity: _Optional[int] = ..., line_quantity: _Optional[int] = ...) -> None: ...

class CartItemRemoved(_message.Message):
    __slots__ = ("user_id", "item_id", "quantity", "reason")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    quantity: int
    reason: CartRemovalReason
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., quantity: _Optional[int] = ..., reason: _Optional[_Union[CartRemovalReason, str]] = ...) -> None: ...

class CartItemQuantityChanged(_message.Message):
    __slots__ = ("user_id", "item_id", "old_quantity", "new_quantity")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    NEW_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    old_quantity: int
    new_quantity: int
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., old_quantity: _Optional[int] = ..., new_quantity: _Optional[int] = ...) -> None: ...

class WishlistItemAdded(_message.Message):
    __slots__ = ("user_id", "item_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class WishlistItemRemoved(_message.Message):
    __slots__ = ("user_id", "item_id", "moved_to_cart")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    MOVED_TO_CART_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    item_id: str
    moved_to_cart: bool
    def __init__(self, user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., moved_to_cart: _Optional[bool] = ...) -> None: ...

class SearchQueryRecorded(_message.Message):
    __slots__ = ("user_id", "query", "pincode", "category", "brands", "min_price", "max_price", "attribute_filters", "sort", "total_size", "item_ids", "page_number", "latency_ms")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BRANDS_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FILTERS_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    query: str
    pincode: str
    category: str
    brands: _containers.RepeatedScalarFieldContainer[str]
    min_price: int
    max_price: int
    attribute_filters: _containers.RepeatedScalarFieldContainer[str]
    sort: _search_pb2.Sort
    total_size: int
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    page_number: int
    latency_ms: int
    def __init__(self, user_id: _Optional[str] = ..., query: _Optional[str] = ..., pincode: _Optional[str] = ..., category: _Optional[str] = ..., brands: _Optional[_Iterable[str]] = ..., min_price: _Optional[int] = ..., max_price: _Optional[int] = ..., attribute_filters: _Optional[_Iterable[str]] = ..., sort: _Optional[_Union[_search_pb2.Sort, str]] = ..., total_size: _Optional[int] = ..., item_ids: _Optional[_Iterable[str]] = ..., page_number: _Optional[int] = ..., latency_ms: _Optional[int] = ...) -> None: ...

class ServiceabilityInvalidated(_message.Message):
    __slots__ = ("change", "disruption")
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    DISRUPTION_FIELD_NUMBER: _ClassVar[int]
    change: InvalidationChange
    disruption: _serviceability_pb2.Disruption
    def __init__(self, change: _Optional[_Union[InvalidationChange, str]] = ..., disruption: _Optional[_Union[_serviceability_pb2.Disruption, _Mapping]] = ...) -> None: ...

class NotificationRequested(_message.Message):
    __slots__ = ("user_id", "channel", "template", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    channel: _notifications_pb2.Channel
    template: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, user_id: _Optional[str] = ..., channel: _Optional[_Union[_notifications_pb2.Channel, str]] = ..., template: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...
