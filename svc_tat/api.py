"""The gRPC servicer: proto <-> domain, auth checks, then the service."""

from __future__ import annotations

import grpc
from ecom.common.v1 import common_pb2
from ecom.serviceability.v1 import serviceability_pb2 as pb
from ecom.serviceability.v1 import serviceability_pb2_grpc
from google.type import date_pb2, latlng_pb2

from mesh.auth import current_caller, require_admin
from mesh.errors import InvalidArgument
from svc_tat import domain
from svc_tat.service import DefaultPincode, ItemAnswer, TatService
from svc_tat.warehouses import WarehouseConfig

MAX_BATCH = 500


def _date(d: object) -> date_pb2.Date:
    return date_pb2.Date(year=d.year, month=d.month, day=d.day)  # type: ignore[attr-defined]


def estimate_of(answer: ItemAnswer) -> common_pb2.DeliveryEstimate:
    """The DeliveryEstimate for one item's verdict."""
    route = answer.verdict.route
    if route is None:
        return common_pb2.DeliveryEstimate(
            pincode=answer.pincode, deliverable=False, reason=int(answer.verdict.reason)
        )
    return common_pb2.DeliveryEstimate(
        pincode=answer.pincode,
        deliverable=True,
        eta_days=route.eta.days,
        promised_date=_date(route.eta.promised),
        warehouse_id=route.warehouse_id,
    )


def _item_ids(raw: list[str], field: str) -> list[str]:
    """Distinct, non-empty item ids in request order."""
    if not raw:
        raise InvalidArgument.for_field(field, "at least one item id is required")
    if len(raw) > MAX_BATCH:
        raise InvalidArgument.for_field(field, f"at most {MAX_BATCH} items per call")
    seen: dict[str, None] = {}
    for i, item in enumerate(raw):
        item = item.strip()
        if not item:
            raise InvalidArgument.for_field(f"{field}[{i}]", "must not be empty")
        seen.setdefault(item, None)
    return list(seen)


class ServiceabilityApi(serviceability_pb2_grpc.ServiceabilityServiceServicer):
    """ecom.serviceability.v1.ServiceabilityService."""

    def __init__(self, service: TatService, default_pincode: DefaultPincode) -> None:
        self.service = service
        self.default_pincode = default_pincode

    async def CheckServiceability(
        self, request: pb.CheckServiceabilityRequest, context: grpc.aio.ServicerContext
    ) -> pb.ItemServiceability:
        items = _item_ids([request.item_id], "item_id") if request.item_id.strip() else []
        if not items:
            raise InvalidArgument.for_field("item_id", "is required")
        if request.quantity < 0:
            raise InvalidArgument.for_field("quantity", "must be 0 or more")
        if request.pincode.strip():
            pincode = domain.validate_pincode(request.pincode)
        else:
            pincode = await self.default_pincode(current_caller())
        answers = await self.service.check(items, pincode, request.quantity or 1)
        return pb.ItemServiceability(item_id=items[0], estimate=estimate_of(answers[0]))

    async def BatchCheckServiceability(
        self, request: pb.BatchCheckServiceabilityRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchCheckServiceabilityResponse:
        items = _item_ids(list(request.item_ids), "item_ids")
        pincode = domain.validate_pincode(request.pincode)
        answers = await self.service.check(items, pincode)
        return pb.BatchCheckServiceabilityResponse(
            results=[pb.ItemServiceability(item_id=a.item_id, estimate=estimate_of(a))
                     for a in answers]
        )

    async def ListRoutes(
        self, request: pb.ListRoutesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRoutesResponse:
        pincode = domain.validate_pincode(request.pincode)
        routes = await self.service.routes(pincode)
        return pb.ListRoutesResponse(
            pincode=pincode,
            routes=[
                pb.Route(warehouse_id=r.warehouse_id, eta_days=r.eta.days,
                         promised_date=_date(r.eta.promised))
                for r in routes.live
            ],
        )

    def _warehouse(self, w: WarehouseConfig) -> pb.Warehouse:
        return pb.Warehouse(
            warehouse_id=w.warehouse_id,
            name=w.name,
            city=w.city,
            state=w.state,
            pincode=w.pincode,
            location=latlng_pb2.LatLng(latitude=w.latitude, longitude=w.longitude),
            cutoff_hour=w.cutoff_hour,
            processing_days=w.processing_days,
            status=(pb.WAREHOUSE_STATUS_ACTIVE if self.service.warehouse_status(w.warehouse_id)
                    else pb.WAREHOUSE_STATUS_CLOSED),
        )

    async def ListWarehouses(
        self, request: pb.ListWarehousesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWarehousesResponse:
        size = domain.page_size(request.page_size, default=100, maximum=1000)
        after = ""
        if request.page_token:
            cursor = common_pb2.PageCursor()
            try:
                cursor.ParseFromString(domain.decode_token(request.page_token))
            except Exception:  # noqa: BLE001 - any garbage is the client's error
                raise InvalidArgument.for_field(
                    "page_token", "is not a token this API issued") from None
            after = cursor.after_id
        page, more = self.service.list_warehouses(after, size)
        token = ""
        if more and page:
            token = domain.encode_token(
                common_pb2.PageCursor(after_id=page[-1].warehouse_id).SerializeToString())
        return pb.ListWarehousesResponse(
            warehouses=[self._warehouse(w) for w in page], next_page_token=token
        )

    async def GetWarehouse(
        self, request: pb.GetWarehouseRequest, context: grpc.aio.ServicerContext
    ) -> pb.Warehouse:
        if not request.warehouse_id.strip():
            raise InvalidArgument.for_field("warehouse_id", "is required")
        return self._warehouse(self.service.get_warehouse(request.warehouse_id.strip()))

    async def CreateDisruption(
        self, request: pb.CreateDisruptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Disruption:
        require_admin()
        if not request.HasField("disruption"):
            raise InvalidArgument.for_field("disruption", "is required")
        if request.disruption.kind == pb.DISRUPTION_KIND_UNSPECIFIED or (
            request.disruption.kind not in pb.DisruptionKind.values()
        ):
            raise InvalidArgument.for_field("disruption.kind", "must be a known kind")
        return await self.service.create_disruption(request.disruption, request.request_id)

    async def ListDisruptions(
        self, request: pb.ListDisruptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDisruptionsResponse:
        require_admin()
        size = domain.page_size(request.page_size, default=50, maximum=500)
        items = await self.service.list_disruptions(request.active_only)
        start = 0
        if request.page_token:
            cursor = common_pb2.PageCursor()
            try:
                cursor.ParseFromString(domain.decode_token(request.page_token))
            except Exception:  # noqa: BLE001
                raise InvalidArgument.for_field(
                    "page_token", "is not a token this API issued") from None
            key = (cursor.after_time.ToNanoseconds(), cursor.after_id)
            start = next(
                (i for i, d in enumerate(items)
                 if (d.create_time.ToNanoseconds(), d.disruption_id) < key),
                len(items),
            )
        page = items[start : start + size]
        token = ""
        if start + size < len(items) and page:
            last = page[-1]
            token = domain.encode_token(common_pb2.PageCursor(
                after_time=last.create_time, after_id=last.disruption_id).SerializeToString())
        return pb.ListDisruptionsResponse(disruptions=page, next_page_token=token)

    async def ClearDisruption(
        self, request: pb.ClearDisruptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Disruption:
        require_admin()
        if not request.disruption_id.strip():
            raise InvalidArgument.for_field("disruption_id", "is required")
        return await self.service.clear_disruption(
            request.disruption_id.strip(), request.request_id)
