"""The gRPC servicer of ecom.recommendations.v1.RecommendationService.

Who may call what: a user's own list needs that user's token (or an
`admin`); category and similar-item lists are public (a signed-in caller's
already-bought items are left out of them too); a refresh is for admins.
"""

from __future__ import annotations

from typing import Any

from ecom.recommendations.v1 import recommendations_pb2 as pb
from ecom.recommendations.v1 import recommendations_pb2_grpc as pb_grpc

from mesh import current_caller, money, require_admin, require_owner_or_admin
from mesh.db import to_timestamp
from mesh.errors import InvalidArgument
from svc_recs.service import Answer, RecsService


def _fill(out: Any, answer: Answer) -> Any:
    for s in answer.items:
        rec = out.recommendations.add(item_id=s.item_id, score=s.score, reason=s.reason,
                                      title=s.title, image_url=s.image_url)
        if s.price_paise is not None:
            rec.price.CopyFrom(money.from_paise(s.price_paise))
    out.next_page_token = answer.next_page_token
    out.model_version = answer.model_version
    out.fallback = answer.fallback
    out.source = answer.source
    if answer.generate_time is not None:
        out.generate_time.CopyFrom(to_timestamp(answer.generate_time))
    return out


def _caller_id() -> str | None:
    caller = current_caller()
    return caller.user_id if caller is not None else None


class RecsApi(pb_grpc.RecommendationServiceServicer):
    """RecommendationService over :class:`svc_recs.service.RecsService`."""

    def __init__(self, service: RecsService) -> None:
        self.service = service

    async def ListUserRecommendations(  # noqa: N802
        self, request: pb.ListUserRecommendationsRequest, context: Any
    ) -> pb.ListUserRecommendationsResponse:
        if not request.user_id:
            raise InvalidArgument.for_field("user_id", "is required")
        require_owner_or_admin(request.user_id)
        answer = await self.service.list_user(request.user_id, request.page_size,
                                              request.page_token, request.category)
        return _fill(pb.ListUserRecommendationsResponse(), answer)

    async def ListCategoryRecommendations(  # noqa: N802
        self, request: pb.ListCategoryRecommendationsRequest, context: Any
    ) -> pb.ListCategoryRecommendationsResponse:
        answer = await self.service.list_category(request.category, request.page_size,
                                                  request.page_token, _caller_id())
        return _fill(pb.ListCategoryRecommendationsResponse(), answer)

    async def ListItemRecommendations(  # noqa: N802
        self, request: pb.ListItemRecommendationsRequest, context: Any
    ) -> pb.ListItemRecommendationsResponse:
        answer = await self.service.list_similar(request.item_id, request.page_size,
                                                 request.page_token, _caller_id())
        return _fill(pb.ListItemRecommendationsResponse(), answer)

    async def RefreshRecommendations(  # noqa: N802
        self, request: pb.RefreshRecommendationsRequest, context: Any
    ) -> pb.RefreshRecommendationsResponse:
        admin = require_admin()
        r = await self.service.refresh(admin.user_id, request.request_id)
        return pb.RefreshRecommendationsResponse(
            model_version=r.model_version, generate_time=to_timestamp(r.generate_time),
            users=r.users, items=r.items, interactions=r.interactions, user_lists=r.user_lists,
            category_lists=r.category_lists, similar_lists=r.similar_lists,
            dropped_versions=r.dropped_versions, train_seconds=r.train_seconds)
