"""The gRPC servicer of ``ecom.search.v1.SearchService``: proto in, domain
parameters to the service, proto out. Open to anonymous callers."""

from __future__ import annotations

import grpc
from ecom.search.v1 import search_pb2, search_pb2_grpc
from google.type import money_pb2

from mesh import money
from mesh.errors import InvalidArgument
from svc_search import domain
from svc_search.service import Hit, SearchPage, SearchService

_SORTS = {
    search_pb2.SORT_UNSPECIFIED: "relevance",
    search_pb2.SORT_RELEVANCE: "relevance",
    search_pb2.SORT_PRICE_ASC: "price_asc",
    search_pb2.SORT_PRICE_DESC: "price_desc",
    search_pb2.SORT_NEWEST: "newest",
}


def params_from_request(req: search_pb2.SearchRequest) -> domain.SearchParams:
    """Validate and normalise a request; INVALID_ARGUMENT names every bad field."""
    params, violations = domain.validate(
        query=req.query, pincode=req.pincode, category=req.category, brands=req.brands,
        min_price=req.min_price, max_price=req.max_price,
        attribute_filters=req.attribute_filters, sort=_SORTS.get(req.sort, "?"),
        page_size=req.page_size, deliverable_only=req.deliverable_only)
    if violations:
        raise InvalidArgument(violations=violations)
    return params


def _money(paise: int) -> money_pb2.Money:
    return money.from_paise(paise)


def hit_to_proto(h: Hit) -> search_pb2.SearchHit:
    """One hit on the wire."""
    out = search_pb2.SearchHit(
        item_id=h.item_id, title=h.title, brand=h.brand, category=h.category,
        price=_money(h.price_paise), image_url=h.image_url, score=h.score, delivery=h.delivery)
    if h.list_price_paise:
        out.list_price.CopyFrom(_money(h.list_price_paise))
    return out


def page_to_proto(page: SearchPage) -> search_pb2.SearchResponse:
    """A search page on the wire."""
    return search_pb2.SearchResponse(
        hits=[hit_to_proto(h) for h in page.hits],
        next_page_token=page.next_page_token,
        total_size=page.total_size,
        facets=[search_pb2.Facet(field=f, values=[search_pb2.FacetValue(value=v, count=c)
                                                  for v, c in values])
                for f, values in page.facets],
        pincode=page.pincode,
        serviceability_available=page.serviceability_available,
        corrected_query=page.corrected_query,
    )


class SearchApi(search_pb2_grpc.SearchServiceServicer):
    """Translates Search calls for :class:`SearchService`."""

    def __init__(self, service: SearchService) -> None:
        self.service = service

    async def Search(  # noqa: N802 - gRPC method name
        self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchResponse:
        """Full-text, filtered, faceted search with delivery estimates."""
        params = params_from_request(request)
        page = await self.service.search(params, request.page_token)
        return page_to_proto(page)
