from ecom.common.v1 import common_pb2 as _common_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.type import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sort(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SORT_UNSPECIFIED: _ClassVar[Sort]
    SORT_RELEVANCE: _ClassVar[Sort]
    SORT_PRICE_ASC: _ClassVar[Sort]
    SORT_PRICE_DESC: _ClassVar[Sort]
    SORT_NEWEST: _ClassVar[Sort]
SORT_UNSPECIFIED: Sort
SORT_RELEVANCE: Sort
SORT_PRICE_ASC: Sort
SORT_PRICE_DESC: Sort
SORT_NEWEST: Sort

class SearchRequest(_message.Message):
    __slots__ = ("query", "pincode", "category", "brands", "min_price", "max_price", "attribute_filters", "sort", "page_size", "page_token", "deliverable_only")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BRANDS_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FILTERS_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DELIVERABLE_ONLY_FIELD_NUMBER: _ClassVar[int]
    query: str
    pincode: str
    category: str
    brands: _containers.RepeatedScalarFieldContainer[str]
    min_price: int
    max_price: int
    attribute_filters: _containers.RepeatedScalarFieldContainer[str]
    sort: Sort
    page_size: int
    page_token: str
    deliverable_only: bool
    def __init__(self, query: _Optional[str] = ..., pincode: _Optional[str] = ..., category: _Optional[str] = ..., brands: _Optional[_Iterable[str]] = ..., min_price: _Optional[int] = ..., max_price: _Optional[int] = ..., attribute_filters: _Optional[_Iterable[str]] = ..., sort: _Optional[_Union[Sort, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., deliverable_only: _Optional[bool] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("item_id", "title", "brand", "category", "price", "list_price", "image_url", "score", "delivery")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    LIST_PRICE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    brand: str
    category: str
    price: _money_pb2.Money
    list_price: _money_pb2.Money
    image_url: str
    score: float
    delivery: _common_pb2.DeliveryEstimate
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., brand: _Optional[str] = ..., category: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., list_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., image_url: _Optional[str] = ..., score: _Optional[float] = ..., delivery: _Optional[_Union[_common_pb2.DeliveryEstimate, _Mapping]] = ...) -> None: ...

class FacetValue(_message.Message):
    __slots__ = ("value", "count")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    value: str
    count: int
    def __init__(self, value: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Facet(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[FacetValue]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[FacetValue, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "next_page_token", "total_size", "facets", "pincode", "serviceability_available", "corrected_query")
    HITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    FACETS_FIELD_NUMBER: _ClassVar[int]
    PINCODE_FIELD_NUMBER: _ClassVar[int]
    SERVICEABILITY_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_QUERY_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    next_page_token: str
    total_size: int
    facets: _containers.RepeatedCompositeFieldContainer[Facet]
    pincode: str
    serviceability_available: bool
    corrected_query: str
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., facets: _Optional[_Iterable[_Union[Facet, _Mapping]]] = ..., pincode: _Optional[str] = ..., serviceability_available: _Optional[bool] = ..., corrected_query: _Optional[str] = ...) -> None: ...
