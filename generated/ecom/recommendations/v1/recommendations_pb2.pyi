import datetime

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

class Recommendation(_message.Message):
    __slots__ = ("item_id", "score", "reason", "title", "price", "image_url")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    reason: str
    title: str
    price: _money_pb2.Money
    image_url: str
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., reason: _Optional[str] = ..., title: _Optional[str] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., image_url: _Optional[str] = ...) -> None: ...

class ListUserRecommendationsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token", "category")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    category: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class ListUserRecommendationsResponse(_message.Message):
    __slots__ = ("recommendations", "next_page_token", "model_version", "generate_time", "fallback", "source")
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    next_page_token: str
    model_version: str
    generate_time: _timestamp_pb2.Timestamp
    fallback: bool
    source: str
    def __init__(self, recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., model_version: _Optional[str] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback: _Optional[bool] = ..., source: _Optional[str] = ...) -> None: ...

class ListCategoryRecommendationsRequest(_message.Message):
    __slots__ = ("category", "page_size", "page_token")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    category: str
    page_size: int
    page_token: str
    def __init__(self, category: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCategoryRecommendationsResponse(_message.Message):
    __slots__ = ("recommendations", "next_page_token", "model_version", "generate_time", "fallback", "source")
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    next_page_token: str
    model_version: str
    generate_time: _timestamp_pb2.Timestamp
    fallback: bool
    source: str
    def __init__(self, recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., model_version: _Optional[str] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback: _Optional[bool] = ..., source: _Optional[str] = ...) -> None: ...

class ListItemRecommendationsRequest(_message.Message):
    __slots__ = ("item_id", "page_size", "page_token")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    page_size: int
    page_token: str
    def __init__(self, item_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListItemRecommendationsResponse(_message.Message):
    __slots__ = ("recommendations", "next_page_token", "model_version", "generate_time", "fallback", "source")
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    next_page_token: str
    model_version: str
    generate_time: _timestamp_pb2.Timestamp
    fallback: bool
    source: str
    def __init__(self, recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., model_version: _Optional[str] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback: _Optional[bool] = ..., source: _Optional[str] = ...) -> None: ...

class RefreshRecommendationsRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class RefreshRecommendationsResponse(_message.Message):
    __slots__ = ("model_version", "generate_time", "users", "items", "interactions", "user_lists", "category_lists", "similar_lists", "dropped_versions", "train_seconds")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    USER_LISTS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_LISTS_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_LISTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    generate_time: _timestamp_pb2.Timestamp
    users: int
    items: int
    interactions: int
    user_lists: int
    category_lists: int
    similar_lists: int
    dropped_versions: int
    train_seconds: float
    def __init__(self, model_version: _Optional[str] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., users: _Optional[int] = ..., items: _Optional[int] = ..., interactions: _Optional[int] = ..., user_lists: _Optional[int] = ..., category_lists: _Optional[int] = ..., similar_lists: _Optional[int] = ..., dropped_versions: _Optional[int] = ..., train_seconds: _Optional[float] = ...) -> None: ...
