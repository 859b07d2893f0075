"""The gRPC servicer: checks the caller and request shape, translates
protobuf to domain values, calls the use cases, translates back."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc

import mesh
from mesh.errors import FieldViolation, InvalidArgument
from svc_catalog import codec, domain
from svc_catalog.service import CatalogService, feed_errors

_FEED_STATES = {
    "validated": catalog_pb2.FEED_STATE_VALIDATED,
    "processing": catalog_pb2.FEED_STATE_PROCESSING,
    "completed": catalog_pb2.FEED_STATE_COMPLETED,
    "failed": catalog_pb2.FEED_STATE_FAILED,
}
_FEED_FORMATS = {"jsonl": catalog_pb2.FEED_FORMAT_JSONL, "csv": catalog_pb2.FEED_FORMAT_CSV}


def _require(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument.for_field(field, "is required")


class CatalogApi(catalog_pb2_grpc.CatalogServiceServicer):
    """ecom.catalog.v1.CatalogService over :class:`CatalogService`."""

    def __init__(self, service: CatalogService) -> None:
        self.service = service

    async def CreateItem(  # noqa: N802 - gRPC method name
        self, request: catalog_pb2.CreateItemRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.Item:
        mesh.require_admin()
        if not request.HasField("item"):
            raise InvalidArgument.for_field("item", "is required")
        violations = domain.validate_item_id(request.item_id) if request.item_id else []
        fields, money_problems = codec.fields_from_proto(request.item)
        problems = money_problems + [
            v for v in domain.validate_fields(fields)
            if v.field != "price" or not money_problems]
        violations += codec.prefixed(problems, "item")
        if violations:
            raise InvalidArgument(violations=violations)
        item, _ = await self.service.create_item(
            fields, item_id=request.item_id, request_id=request.request_id)
        return codec.item_to_proto(item)

    async def GetItem(  # noqa: N802
        self, request: catalog_pb2.GetItemRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.Item:
        _require(request.item_id, "item_id")
        return codec.item_to_proto(await self.service.get_item(request.item_id))

    async def BatchGetItems(  # noqa: N802
        self, request: catalog_pb2.BatchGetItemsRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.BatchGetItemsResponse:
        items, missing = await self.service.batch_get(list(request.item_ids))
        return catalog_pb2.BatchGetItemsResponse(
            items=[codec.item_to_proto(i) for i in items], missing_item_ids=missing)

    async def ListItems(  # noqa: N802
        self, request: catalog_pb2.ListItemsRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.ListItemsResponse:
        _require(request.category, "category")
        if not 0 <= request.page_size <= domain.MAX_PAGE_SIZE:
            raise InvalidArgument.for_field(
                "page_size", f"must be between 0 and {domain.MAX_PAGE_SIZE}")
        after = _decode_token(request.page_token, request.category, request.show_deleted)
        items, last = await self.service.list_items(
            request.category, after=after, page_size=request.page_size or
            domain.DEFAULT_PAGE_SIZE, show_deleted=request.show_deleted)
        return catalog_pb2.ListItemsResponse(
            items=[codec.item_to_proto(i) for i in items],
            next_page_token=_encode_token(last, request.category, request.show_deleted)
            if last else "")

    async def UpdateItem(  # noqa: N802
        self, request: catalog_pb2.UpdateItemRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.Item:
        mesh.require_admin()
        _require(request.item_id, "item_id")
        if request.expected_version < 0:
            raise InvalidArgument.for_field("expected_version", "must not be negative")
        paths = list(request.update_mask.paths) or _set_fields(request.item)
        if not paths:
            raise InvalidArgument.for_field("update_mask", "names no field to change")
        if bad := domain.validate_mask(paths):
            raise InvalidArgument(violations=bad)
        masked_price = "price" in paths
        given, money_problems = codec.fields_from_proto(request.item, require_price=masked_price)
        relevant = [v for v in money_problems
                    if v.field.split(".")[0] in paths]
        if relevant:
            raise InvalidArgument(violations=codec.prefixed(relevant, "item"))
        item = await self.service.update_item(
            request.item_id, given, paths, expected_version=request.expected_version,
            request_id=request.request_id)
        return codec.item_to_proto(item)

    async def DeleteItem(  # noqa: N802
        self, request: catalog_pb2.DeleteItemRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.Item:
        mesh.require_admin()
        _require(request.item_id, "item_id")
        item = await self.service.delete_item(
            request.item_id, expected_version=request.expected_version,
            request_id=request.request_id)
        return codec.item_to_proto(item)

    async def SubmitFeed(  # noqa: N802
        self, request: catalog_pb2.SubmitFeedRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.Feed:
        mesh.require_admin()
        violations: list[FieldViolation] = []
        if not domain.SUPPLIER_ID_RE.match(request.supplier_id):
            violations.append(FieldViolation(
                "supplier_id", "is required: 1-64 characters of letters, digits, ._-"))
        if request.format not in _FEED_FORMATS.values():
            violations.append(FieldViolation(
                "format", "must be FEED_FORMAT_JSONL or FEED_FORMAT_CSV"))
        if not request.content.strip():
            violations.append(FieldViolation("content", "is required"))
        if violations:
            raise InvalidArgument(violations=violations)
        feed_id = await self.service.submit_feed(
            request.supplier_id, request.format, request.content, dry_run=request.dry_run,
            request_id=request.request_id)
        return await self._feed(request.supplier_id, feed_id)

    async def GetFeed(  # noqa: N802
        self, request: catalog_pb2.GetFeedRequest, context: grpc.aio.ServicerContext
    ) -> catalog_pb2.Feed:
        mesh.require_admin()
        _require(request.supplier_id, "supplier_id")
        _require(request.feed_id, "feed_id")
        return await self._feed(request.supplier_id, request.feed_id)

    async def _feed(self, supplier_id: str, feed_id: str) -> catalog_pb2.Feed:
        doc, progress = await self.service.get_feed(supplier_id, feed_id)
        errors, truncated = feed_errors(doc, progress)
        out = catalog_pb2.Feed(
            feed_id=doc["_id"],
            supplier_id=doc["supplier_id"],
            format=_FEED_FORMATS.get(doc["format"], catalog_pb2.FEED_FORMAT_UNSPECIFIED),
            state=_FEED_STATES[doc["state"]],
            total_rows=doc["total_rows"],
            valid_rows=doc["valid_rows"],
            rejected_rows=doc["rejected_rows"],
            applied_rows=sum(c["applied"] for c in progress),
            failed_rows=sum(c["failed"] for c in progress),
            row_errors=[catalog_pb2.FeedRowError(line_number=e.line_number, sku=e.sku,
                                                 field=e.field, message=e.message)
                        for e in errors],
            row_errors_truncated=truncated,
            create_time=codec.ts(doc["create_time"]),
        )
        if doc.get("complete_time") is not None:
            out.complete_time.CopyFrom(codec.ts(doc["complete_time"]))
        return out


def _set_fields(item: catalog_pb2.Item) -> list[str]:
    """AIP-134: an empty mask means every mutable field set in ``item``."""
    paths = [f for f in ("title", "description", "category", "brand") if getattr(item, f)]
    paths += [f for f in ("price", "list_price", "attributes") if item.HasField(f)]
    if item.image_urls:
        paths.append("image_urls")
    return paths


def _encode_token(after: str, category: str, show_deleted: bool) -> str:
    raw = json.dumps({"a": after, "c": category, "d": show_deleted}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, category: str, show_deleted: bool) -> str:
    """The id to list after; the token must come from the same query."""
    if not token:
        return ""
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after, c, d = str(data["a"]), data["c"], data["d"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument.for_field("page_token", "is not a token this API issued") from None
    if c != category or d != show_deleted:
        raise InvalidArgument.for_field(
            "page_token", "belongs to a different category or show_deleted")
    return after
