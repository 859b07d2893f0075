"""svc_notify without servers: templates and escaping, which events notify
whom (and under which dedupe key), backoff, delivery reports, emails as
built for SMTP, page tokens."""

from __future__ import annotations

from datetime import datetime

import pytest
from ecom.orders.v1 import orders_pb2 as opb
from hypothesis import given
from hypothesis import strategies as st

from svc_notify import domain
from svc_notify.channels import Outgoing, build_email, dlr_signature, parse_smtp_url
from svc_notify.consumers import intents_of
from svc_notify.domain import Channel, RetryPolicy, Status
from svc_notify.store import decode_token, encode_token
from svc_users.domain import validate_profile_change
from tests.integration.notify_support import order, refunded, transition


def test_html_escapes_untrusted_values_and_text_keeps_them() -> None:
    r = domain.render("order_placed", {
        "name": "<script>x</script>", "order_id": "o-1",
        "lines": [{"title": "<b>Phone</b>", "quantity": 1, "total": "₹1.00"}],
        "total": "₹1.00"})
    assert "<script>" not in r.html and "&lt;script&gt;x&lt;/script&gt;" in r.html
    assert "&lt;b&gt;Phone&lt;/b&gt;" in r.html
    assert "Hi <script>x</script>," in r.text  # plain text is not markup
    assert r.subject == "Your order ORD-O1 is confirmed"
    assert "Rs.1.00" in r.sms and "₹" not in r.sms


def test_subject_cannot_carry_a_header_break() -> None:
    r = domain.render("payment_refunded", {"order_id": "a\r\nBcc: x@evil", "amount": "₹1"})
    assert "\n" not in r.subject and "\r" not in r.subject


def test_unknown_template() -> None:
    with pytest.raises(domain.UnknownTemplate):
        domain.render("nope", {})


def test_order_events_map_to_templates_with_fact_keys() -> None:
    o = order("u-1")
    (placed,) = intents_of(transition(o, opb.ORDER_STATE_PLACED))
    assert placed.template == "order_placed"
    assert placed.dedupe_key == f"order/{o.order_id}/order_placed"
    assert placed.context["promised_date"] == "Tue, 8 Dec 2026"
    assert placed.context["total"] == "₹2,599.00"
    assert placed.channels == (Channel.EMAIL, Channel.SMS)
    # The same fact under another event id has the same key.
    (again,) = intents_of(transition(o, opb.ORDER_STATE_PLACED))
    assert again.dedupe_key == placed.dedupe_key
    assert intents_of(transition(o, opb.ORDER_STATE_CREATED, 0)) == []
    (cancelled,) = intents_of(transition(
        o, opb.ORDER_STATE_CANCELLED, opb.ORDER_STATE_PLACED,
        cancel_reason=opb.CANCEL_REASON_USER_CANCELLED))
    assert cancelled.context["reason"] == "you cancelled it" and cancelled.context["refund"]
    (refund,) = intents_of(refunded(o, "late_payment_after_expiry", refund_id="r-9"))
    assert refund.dedupe_key == "refund/r-9"
    assert refund.context["reason"] == "the payment arrived after the order had expired"


@given(st.integers(min_value=1, max_value=60))
def test_backoff_grows_and_is_capped(attempts: int) -> None:
    p = RetryPolicy(max_attempts=8, base_seconds=1, cap_seconds=30)
    assert p.delay_after(attempts) <= 30
    assert p.delay_after(attempts + 1) >= p.delay_after(attempts)
    assert p.exhausted(attempts) == (attempts >= 8)


def test_delivery_reports() -> None:
    assert domain.status_after_report(1) == Status.DELIVERED
    assert domain.status_after_report(8) == Status.SENT
    assert domain.status_after_report(16) == Status.FAILED
    assert domain.status_after_report(2) == Status.FAILED
    assert domain.status_after_report(3) is None


def test_email_carries_the_stable_message_id_and_both_parts() -> None:
    mail = build_email(Outgoing("n-1", "<n-1@notify.ecom.local>", "a@b.c", "Hi", "text",
                                "<p>html</p>", "o-1"), "ecom <orders@ecom.local>")
    assert mail["Message-ID"] == "<n-1@notify.ecom.local>"
    assert mail["X-Ecom-Order-Id"] == "o-1"
    assert {p.get_content_type() for p in mail.iter_parts()} == {"text/plain", "text/html"}


def test_smtp_url() -> None:
    t = parse_smtp_url("smtps://u%40x:p@mail.example:2465?starttls=0")
    assert (t.host, t.port, t.tls, t.username, t.password) == ("mail.example", 2465, True,
                                                               "u@x", "p")
    with pytest.raises(ValueError):
        parse_smtp_url("http://x")


def test_dlr_signature_depends_on_secret_and_id() -> None:
    assert dlr_signature(b"k", "n-1") != dlr_signature(b"k", "n-2")
    assert dlr_signature(b"k", "n-1") != dlr_signature(b"j", "n-1")


def test_page_token_round_trip_and_garbage() -> None:
    when = datetime(2026, 11, 30, 21, 0, 0, 123456)
    assert decode_token(encode_token(when, "n-1")) == (when, "n-1")
    with pytest.raises(ValueError):
        decode_token("garbage")


def test_params_are_checked() -> None:
    assert domain.validate_params({"order_id": "x"}) == []
    assert domain.validate_params({"Bad-Key": "x"})[0][0] == "params[Bad-Key]"
    assert domain.validate_params({"k": "x" * 5000})[0][0] == "params[k]"


def test_profile_change_sms_preference() -> None:
    masked = validate_profile_change(["notification_preferences"], "", "", sms_enabled=False)
    assert masked.sms_notifications is False and masked.name is None
    unmasked = validate_profile_change([], "", "", sms_enabled=True)
    assert unmasked.sms_notifications is True
    assert validate_profile_change(["name"], "Asha", "").sms_notifications is None
