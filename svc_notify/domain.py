"""Notification rules without I/O: which events notify whom, the templates,
the delivery state machine and the retry schedule.

States (stored as these strings)::

    QUEUED --claimed--> SENDING --channel accepted--> SENT --report--> DELIVERED
       ^                   |  \\--channel down, attempts left--> QUEUED (backoff)
       |                   \\--refused, or attempts used up--> FAILED
       \\------------------ admin retry ------------------------/
    SUPPRESSED: the user's preference turned the channel off; never sent.

A row is written (QUEUED) in the same transaction that records the event as
consumed, before anything is sent: it is the idempotency record, unique per
(dedupe key, channel). SENDING means "an attempt may be in flight": after a
crash the row is picked up again when its lease ends (see service.py for
how that is kept to one message per channel).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# An SMS is one 160-character GSM segment when it can be; Kannel concatenates
# up to three (sendsms-user max-messages) for anything longer.
SMS_MAX_CHARS = 459
MAX_PARAM_LENGTH = 2000
MAX_PARAMS = 50


class Channel(enum.StrEnum):
    """How a notification reaches the user (stored as these strings)."""

    EMAIL = "email"
    SMS = "sms"


class Status(enum.StrEnum):
    """Delivery state of one notification (see the module docstring)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


# States a delivery report may move a row out of. A report can arrive before
# the sender has recorded SENT (the fake SMSC answers within milliseconds).
REPORTABLE = frozenset({Status.QUEUED, Status.SENDING, Status.SENT})


class DeliveryReport(enum.IntEnum):
    """Kannel's dlr-url `%d` values."""

    DELIVERED = 1
    FAILED = 2
    BUFFERED = 4
    SMSC_ACCEPTED = 8
    SMSC_REJECTED = 16


def status_after_report(report: int) -> Status | None:
    """The state a delivery report moves an SMS to (None: no change)."""
    if report == DeliveryReport.DELIVERED:
        return Status.DELIVERED
    if report in (DeliveryReport.FAILED, DeliveryReport.SMSC_REJECTED):
        return Status.FAILED
    if report in (DeliveryReport.SMSC_ACCEPTED, DeliveryReport.BUFFERED):
        return Status.SENT
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts, and when to give up."""

    max_attempts: int = 8
    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def delay_after(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
        return float(min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1)))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


# --------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------

TEMPLATE_KEYS = (
    "order_placed", "order_cancelled", "order_shipped", "order_delivered",
    "payment_refunded", "welcome",
)

_HEADER = "Hi {{ name }},\n\n"
_LINES_TXT = (
    "{% for line in lines %}  {{ line.quantity }} x {{ line.title }}  {{ line.total }}\n"
    "{% endfor %}"
)
_LINES_HTML = (
    "<table>{% for line in lines %}<tr><td>{{ line.quantity }} x {{ line.title }}</td>"
    "<td>{{ line.total }}</td></tr>{% endfor %}</table>"
)
_FOOTER_TXT = "\n-- ecom"
_FOOTER_HTML = "<p>-- ecom</p>"

# Per template: subject, plain text, HTML, SMS. HTML is autoescaped (names,
# titles and notes come from users and suppliers); text and SMS are not
# markup, so nothing in them is interpreted.
_SOURCES: dict[str, tuple[str, str, str, str]] = {
    "order_placed": (
        "Your order {{ order_number }} is confirmed",
        _HEADER + "Thank you for your order {{ order_number }} (order id {{ order_id }}).\n\n"
        + _LINES_TXT + "\nTotal: {{ total }}\n"
        "{% if promised_date %}Arriving by {{ promised_date }}.\n{% endif %}" + _FOOTER_TXT,
        "<p>Hi {{ name }},</p><p>Thank you for your order <b>{{ order_number }}</b>"
        " (order id {{ order_id }}).</p>" + _LINES_HTML + "<p>Total: <b>{{ total }}</b></p>"
        "{% if promised_date %}<p>Arriving by {{ promised_date }}.</p>{% endif %}"
        + _FOOTER_HTML,
        "ecom: order {{ order_number }} confirmed, {{ total }}."
        "{% if promised_date %} Arriving by {{ promised_date }}.{% endif %}",
    ),
    "order_cancelled": (
        "Your order {{ order_number }} was cancelled",
        _HEADER + "Your order {{ order_number }} (order id {{ order_id }}) was cancelled: "
        "{{ reason }}.\n\n" + _LINES_TXT + "\nTotal: {{ total }}\n"
        "{% if refund %}Any amount paid is refunded to your payment method.\n{% endif %}"
        + _FOOTER_TXT,
        "<p>Hi {{ name }},</p><p>Your order <b>{{ order_number }}</b> (order id {{ order_id }})"
        " was cancelled: {{ reason }}.</p>" + _LINES_HTML + "<p>Total: {{ total }}</p>"
        "{% if refund %}<p>Any amount paid is refunded to your payment method.</p>{% endif %}"
        + _FOOTER_HTML,
        "ecom: order {{ order_number }} cancelled ({{ reason }}).",
    ),
    "order_shipped": (
        "Your order {{ order_number }} has shipped",
        _HEADER + "Your order {{ order_number }} (order id {{ order_id }}) has shipped"
        "{% if carrier %} with {{ carrier }}, tracking {{ tracking_number }}{% endif %}.\n\n"
        + _LINES_TXT + "\nTotal: {{ total }}\n"
        "{% if promised_date %}Arriving by {{ promised_date }}.\n{% endif %}" + _FOOTER_TXT,
        "<p>Hi {{ name }},</p><p>Your order <b>{{ order_number }}</b> (order id {{ order_id }})"
        " has shipped{% if carrier %} with {{ carrier }}, tracking {{ tracking_number }}"
        "{% endif %}.</p>" + _LINES_HTML + "<p>Total: {{ total }}</p>"
        "{% if promised_date %}<p>Arriving by {{ promised_date }}.</p>{% endif %}"
        + _FOOTER_HTML,
        "ecom: order {{ order_number }} shipped.{% if tracking_number %} Tracking "
        "{{ tracking_number }}.{% endif %}{% if promised_date %} Arriving by "
        "{{ promised_date }}.{% endif %}",
    ),
    "order_delivered": (
        "Your order {{ order_number }} was delivered",
        _HEADER + "Your order {{ order_number }} (order id {{ order_id }}) was delivered.\n\n"
        + _LINES_TXT + "\nTotal: {{ total }}\n" + _FOOTER_TXT,
        "<p>Hi {{ name }},</p><p>Your order <b>{{ order_number }}</b> (order id {{ order_id }})"
        " was delivered.</p>" + _LINES_HTML + "<p>Total: {{ total }}</p>" + _FOOTER_HTML,
        "ecom: order {{ order_number }} delivered.",
    ),
    "payment_refunded": (
        "Refund of {{ amount }} for order {{ order_number }}",
        _HEADER + "We refunded {{ amount }} for order {{ order_number }} (order id "
        "{{ order_id }}): {{ reason }}. It reaches your payment method in 5-7 days.\n"
        + _FOOTER_TXT,
        "<p>Hi {{ name }},</p><p>We refunded <b>{{ amount }}</b> for order "
        "<b>{{ order_number }}</b> (order id {{ order_id }}): {{ reason }}. It reaches your "
        "payment method in 5-7 days.</p>" + _FOOTER_HTML,
        "ecom: refund of {{ amount }} for order {{ order_number }} ({{ reason }}).",
    ),
    "welcome": (
        "Welcome to ecom",
        _HEADER + "Your ecom account is ready.\n" + _FOOTER_TXT,
        "<p>Hi {{ name }},</p><p>Your ecom account is ready.</p>" + _FOOTER_HTML,
        "ecom: welcome, {{ name }}.",
    ),
}

_PARTS = ("subject", "txt", "html", "sms")


def _environment() -> Environment:
    loader = DictLoader({
        f"{key}.{part}": src
        for key, sources in _SOURCES.items()
        for part, src in zip(_PARTS, sources, strict=True)
    })
    # Autoescape by the template name's extension: only `.html` is markup.
    return Environment(
        loader=loader, autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined, keep_trailing_newline=False,
    )


_ENV = _environment()


@dataclass(frozen=True)
class Rendered:
    """One template rendered for one recipient."""

    subject: str
    text: str
    html: str
    sms: str


class UnknownTemplate(ValueError):
    """The template key is not one we have."""


def _defaults(context: Mapping[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "name": "", "order_id": "", "order_number": "", "lines": [], "total": "",
        "promised_date": "", "reason": "", "refund": False, "carrier": "",
        "tracking_number": "", "amount": "",
    }
    ctx.update(context)
    if not ctx["name"]:
        ctx["name"] = "there"
    if ctx["order_id"] and not ctx["order_number"]:
        ctx["order_number"] = order_number(str(ctx["order_id"]))
    return ctx


def render(template: str, context: Mapping[str, Any]) -> Rendered:
    """Render every part of `template` with `context` (untrusted values are
    escaped in the HTML part). Raises UnknownTemplate."""
    if template not in _SOURCES:
        raise UnknownTemplate(template)
    ctx = _defaults(context)
    parts = {p: _ENV.get_template(f"{template}.{p}").render(ctx) for p in _PARTS}
    subject = " ".join(parts["subject"].split())  # no header injection by newline
    # GSM-7 has no rupee sign; "Rs." keeps the SMS in 160-character segments.
    sms = " ".join(parts["sms"].replace("₹", "Rs.").split())[:SMS_MAX_CHARS]
    return Rendered(subject=subject, text=parts["txt"], html=parts["html"], sms=sms)


def order_number(order_id: str) -> str:
    """The short number people read out: `ORD-` and the id's first 8 characters."""
    compact = re.sub(r"[^A-Za-z0-9]", "", order_id)
    return "ORD-" + compact[:8].upper()


# --------------------------------------------------------------------------
# Events -> notifications
# --------------------------------------------------------------------------

CANCEL_REASONS = {
    1: "the payment was declined",
    2: "no payment arrived before the hold expired",
    3: "you cancelled it",
    4: "it was cancelled by our team",
    5: "it was cancelled while reconciling payments",
}
REFUND_REASONS = {
    "order_cancelled": "your order was cancelled",
    "late_payment_after_expiry": "the payment arrived after the order had expired",
    "admin": "refunded by our team",
}
ORDER_TEMPLATES = {2: "order_placed", 3: "order_shipped", 4: "order_delivered",
                   5: "order_cancelled"}  # ecom.orders.v1.OrderState values


@dataclass(frozen=True)
class Intent:
    """Someone should be told something: one per event, fanned out over channels.

    `dedupe_key` names the fact, not the message: an order reaches each state
    once, a refund happens once, so the same fact published twice (even with
    different event ids) still makes one notification per channel."""

    user_id: str
    template: str
    context: dict[str, Any]
    dedupe_key: str
    source: str
    order_id: str = ""
    channels: tuple[Channel, ...] = (Channel.EMAIL, Channel.SMS)
    recipient: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def format_date(year: int, month: int, day: int) -> str:
    """`Tue, 8 Dec 2026`, or empty for an unset date."""
    if not year:
        return ""
    d = date(year, month, day)
    return f"{d:%a}, {d.day} {d:%b %Y}"


def validate_params(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """(field, problem) for template parameters that are too many or too long."""
    problems = []
    if len(params) > MAX_PARAMS:
        problems.append(("params", f"at most {MAX_PARAMS} parameters"))
    for k, v in params.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,63}", k):
            problems.append((f"params[{k[:64]}]", "keys are lowercase identifiers"))
        elif len(v) > MAX_PARAM_LENGTH:
            problems.append((f"params[{k}]", f"at most {MAX_PARAM_LENGTH} characters"))
    return problems


def page_size(requested: int) -> int:
    """A page size within bounds (0 means the default); ValueError when negative."""
    if requested < 0:
        raise ValueError("must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)
