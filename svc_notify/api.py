"""The gRPC servicer of ecom.notifications.v1.NotificationService: checks
who may call, translates proto <-> rows, calls the use cases.

* SendNotification: internal (no end user, a service identity, or admin).
* ListUserNotifications: the user themself (`me` allowed) or an admin.
* ListNotifications, RetryNotification: admin.
"""

from __future__ import annotations

from typing import Any

from ecom.notifications.v1 import notifications_pb2 as pb
from ecom.notifications.v1 import notifications_pb2_grpc

from mesh import current_caller, require_admin, require_caller, require_owner_or_admin
from mesh.db import to_timestamp
from mesh.errors import FieldViolation, InvalidArgument, PermissionDenied
from mesh.idempotency import request_id_reused
from svc_notify import domain
from svc_notify.domain import Channel, Intent, Status
from svc_notify.service import NotifyService
from svc_notify.store import NotificationRow

SERVICE_ROLE = "service"
CHANNEL_TO_PROTO = {Channel.EMAIL: pb.CHANNEL_EMAIL, Channel.SMS: pb.CHANNEL_SMS}
CHANNEL_FROM_PROTO = {v: k for k, v in CHANNEL_TO_PROTO.items()}
STATUS_TO_PROTO = {
    Status.QUEUED: pb.NOTIFICATION_STATUS_QUEUED,
    # In flight is still "waiting for the channel" to a reader.
    Status.SENDING: pb.NOTIFICATION_STATUS_QUEUED,
    Status.SENT: pb.NOTIFICATION_STATUS_SENT,
    Status.DELIVERED: pb.NOTIFICATION_STATUS_DELIVERED,
    Status.FAILED: pb.NOTIFICATION_STATUS_FAILED,
    Status.SUPPRESSED: pb.NOTIFICATION_STATUS_SUPPRESSED,
}
STATUS_FROM_PROTO = {
    pb.NOTIFICATION_STATUS_QUEUED: Status.QUEUED,
    pb.NOTIFICATION_STATUS_SENT: Status.SENT,
    pb.NOTIFICATION_STATUS_DELIVERED: Status.DELIVERED,
    pb.NOTIFICATION_STATUS_FAILED: Status.FAILED,
    pb.NOTIFICATION_STATUS_SUPPRESSED: Status.SUPPRESSED,
}
MAX_ID = 128


def notification_proto(row: NotificationRow) -> pb.Notification:
    msg = pb.Notification(
        notification_id=row.notification_id, user_id=row.user_id,
        channel=CHANNEL_TO_PROTO[row.channel], template=row.template, subject=row.subject,
        body=row.body, recipient=row.recipient, status=STATUS_TO_PROTO[row.status],
        failure_reason=row.failure_reason, request_id=row.dedupe_key,
        order_id=row.order_id, attempts=row.attempts, source=row.source,
        create_time=to_timestamp(row.create_time),
    )
    if row.send_time is not None:
        msg.send_time.CopyFrom(to_timestamp(row.send_time))
    if row.deliver_time is not None:
        msg.deliver_time.CopyFrom(to_timestamp(row.deliver_time))
    if row.status == Status.QUEUED and row.attempts:
        msg.next_attempt_time.CopyFrom(to_timestamp(row.next_attempt_at))
    return msg


def require_internal() -> None:
    caller = current_caller()
    if caller is None or caller.is_admin or SERVICE_ROLE in caller.roles:
        return
    raise PermissionDenied("SendNotification is internal: call with a service identity",
                           reason="INTERNAL_ONLY")


def _page(size: int, field: str = "page_size") -> int:
    try:
        return domain.page_size(size)
    except ValueError as exc:
        raise InvalidArgument.for_field(field, str(exc)) from None


class NotificationApi(notifications_pb2_grpc.NotificationServiceServicer):
    """NotificationService over :mod:`svc_notify.service`."""

    def __init__(self, service: NotifyService) -> None:
        self.service = service

    async def SendNotification(
        self, request: pb.SendNotificationRequest, context: Any
    ) -> pb.Notification:
        require_internal()
        problems: list[FieldViolation] = []
        if not request.user_id:
            problems.append(FieldViolation("user_id", "is required"))
        elif len(request.user_id) > MAX_ID:
            problems.append(FieldViolation("user_id", f"at most {MAX_ID} characters"))
        channel = CHANNEL_FROM_PROTO.get(request.channel)
        if channel is None:
            problems.append(FieldViolation("channel", "must be CHANNEL_EMAIL or CHANNEL_SMS"))
        if request.template not in domain.TEMPLATE_KEYS:
            problems.append(FieldViolation(
                "template", "must be one of " + ", ".join(domain.TEMPLATE_KEYS)))
        if len(request.request_id) > MAX_ID:
            problems.append(FieldViolation("request_id", f"at most {MAX_ID} characters"))
        if len(request.recipient) > 254:
            problems.append(FieldViolation("recipient", "at most 254 characters"))
        params = dict(request.params)
        problems += [FieldViolation(f, d) for f, d in domain.validate_params(params)]
        if problems:
            raise InvalidArgument(violations=problems)
        assert channel is not None
        row = await self.service.send_now(Intent(
            user_id=request.user_id, template=request.template, context=params,
            dedupe_key=f"call/{request.request_id}", source="SendNotification",
            order_id=params.get("order_id", ""), channels=(channel,),
            recipient=request.recipient,
        ))
        if row.user_id != request.user_id or row.template != request.template:
            raise request_id_reused(request.request_id, "a different notification")
        return notification_proto(row)

    async def ListUserNotifications(
        self, request: pb.ListUserNotificationsRequest, context: Any
    ) -> pb.ListUserNotificationsResponse:
        user_id = request.user_id
        if user_id == "me":
            user_id = require_caller().user_id
        if not user_id:
            raise InvalidArgument.for_field("user_id", "is required")
        require_owner_or_admin(user_id)
        size = _page(request.page_size)
        channel = None
        if request.channel:
            channel = CHANNEL_FROM_PROTO.get(request.channel)
            if channel is None:
                raise InvalidArgument.for_field("channel", "is not a known channel")
        try:
            rows, token = await self.service.list_for_user(user_id, channel, size,
                                                           request.page_token)
        except ValueError:
            raise InvalidArgument.for_field("page_token", "is not a token from this API") \
                from None
        return pb.ListUserNotificationsResponse(
            notifications=[notification_proto(r) for r in rows], next_page_token=token)

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Any
    ) -> pb.ListNotificationsResponse:
        require_admin()
        size = _page(request.page_size)
        status = Status.FAILED
        if request.status:
            found = STATUS_FROM_PROTO.get(request.status)
            if found is None:
                raise InvalidArgument.for_field("status", "is not a known status")
            status = found
        try:
            rows, token = await self.service.list_by_status(status, size, request.page_token)
        except ValueError:
            raise InvalidArgument.for_field("page_token", "is not a token from this API") \
                from None
        return pb.ListNotificationsResponse(
            notifications=[notification_proto(r) for r in rows], next_page_token=token)

    async def RetryNotification(
        self, request: pb.RetryNotificationRequest, context: Any
    ) -> pb.Notification:
        require_admin()
        if not request.notification_id:
            raise InvalidArgument.for_field("notification_id", "is required")
        if len(request.notification_id) > MAX_ID:
            raise InvalidArgument.for_field("notification_id", f"at most {MAX_ID} characters")
        return notification_proto(await self.service.retry(request.notification_id))
