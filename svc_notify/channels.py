"""The delivery channels behind one interface: email over SMTP (Mailpit
locally, any relay by `ECOM_SMTP_URL`) and SMS through Kannel's smsbox
`sendsms` HTTP interface (`ECOM_SMS_URL`).

`send` returns when the provider has accepted the message, raises
`ChannelDown` when the provider could not be reached or answered with a
temporary error (the attempt is retried with backoff), and `ChannelRefused`
when it refused this message for good (the notification fails at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
import ssl
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Protocol

import httpx

from svc_notify.domain import Channel


class ChannelDown(Exception):
    """The provider is unreachable or answered with a temporary error."""


class ChannelRefused(Exception):
    """The provider refused this message; sending it again will not help."""


@dataclass(frozen=True)
class Outgoing:
    """One message, as a channel sends it."""

    notification_id: str
    message_id: str
    recipient: str
    subject: str
    text: str
    html: str | None
    order_id: str
    user_name: str = ""


class DeliveryChannel(Protocol):
    """What every channel offers the dispatcher."""

    channel: Channel

    async def send(self, message: Outgoing) -> str:
        """Hand `message` to the provider; the provider's reference."""
        ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------
# Email
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    tls: bool  # smtps:// (implicit TLS)
    starttls: bool  # ?starttls=1
    username: str
    password: str


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:pass@]host:port[?starttls=1]` or `smtps://...`."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"ECOM_SMTP_URL must be smtp://host:port or smtps://..., got {url!r}")
    query = urllib.parse.parse_qs(parts.query)
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if parts.scheme == "smtps" else 25),
        tls=parts.scheme == "smtps",
        starttls=query.get("starttls", ["0"])[0] in ("1", "true"),
        username=urllib.parse.unquote(parts.username or ""),
        password=urllib.parse.unquote(parts.password or ""),
    )


def build_email(message: Outgoing, sender: str) -> EmailMessage:
    """Plain text with an HTML alternative; the notification's stable
    Message-ID, and headers naming the order and the notification."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = formataddr((message.user_name, message.recipient))
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message.message_id
    mail["X-Ecom-Notification-Id"] = message.notification_id
    if message.order_id:
        mail["X-Ecom-Order-Id"] = message.order_id
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


class EmailChannel:
    """SMTP with a small pool of open connections (one per concurrent send)."""

    channel = Channel.EMAIL

    def __init__(self, url: str, sender: str, *, timeout: float = 10.0) -> None:
        self.target = parse_smtp_url(url)
        self.sender = sender
        self.timeout = timeout
        self._idle: list[smtplib.SMTP] = []

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        conn: smtplib.SMTP
        if t.tls:
            conn = smtplib.SMTP_SSL(t.host, t.port, timeout=self.timeout,
                                    context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
            if t.starttls:
                conn.starttls(context=ssl.create_default_context())
        if t.username:
            conn.login(t.username, t.password)
        return conn

    def _send_blocking(self, mail: EmailMessage) -> None:
        conn = self._idle.pop() if self._idle else None
        for fresh in (False, True):
            if conn is None or fresh:
                conn = self._connect()
            try:
                conn.send_message(mail)
            except smtplib.SMTPServerDisconnected:
                # An idle pooled connection the server closed: one new one.
                if fresh:
                    raise
                conn = None
                continue
            except BaseException:
                _quietly_close(conn)
                raise
            self._idle.append(conn)
            return

    async def send(self, message: Outgoing) -> str:
        mail = build_email(message, self.sender)
        try:
            await asyncio.to_thread(self._send_blocking, mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= c < 500 for c in codes):
                raise ChannelDown(f"SMTP recipient deferred: {exc.recipients}") from exc
            raise ChannelRefused(f"SMTP refused the recipient: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            text = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if 500 <= exc.smtp_code < 600:
                raise ChannelRefused(text) from exc
            raise ChannelDown(text) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelDown(f"SMTP server unreachable: {exc}") from exc
        return message.message_id

    async def close(self) -> None:
        while self._idle:
            _quietly_close(self._idle.pop())


def _quietly_close(conn: smtplib.SMTP | None) -> None:
    if conn is None:
        return
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


# --------------------------------------------------------------------------
# SMS
# --------------------------------------------------------------------------


def dlr_signature(secret: bytes, notification_id: str) -> str:
    """What the delivery-report URL carries so reports cannot be forged."""
    return hmac.new(secret, notification_id.encode(), hashlib.sha256).hexdigest()[:32]


class SmsChannel:
    """Kannel smsbox `sendsms`, asking for delivery reports to `dlr_url`.

    `sms_url` is `http://user:password@host:port/cgi-bin/sendsms` (Kannel's
    sendsms user in the URL's userinfo)."""

    channel = Channel.SMS

    def __init__(self, sms_url: str, dlr_url: str, secret: bytes, *, sender: str = "ECOM",
                 timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(sms_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("ECOM_SMS_URL must be http://user:password@host:port/cgi-bin/sendsms")
        self.username = urllib.parse.unquote(parts.username or "")
        self.password = urllib.parse.unquote(parts.password or "")
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.endpoint = urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path or "/cgi-bin/sendsms", "", ""))
        self.dlr_url = dlr_url
        self.secret = secret
        self.sender = sender
        self.client = httpx.AsyncClient(timeout=timeout)

    def report_url(self, notification_id: str) -> str:
        """The dlr-url for one message; Kannel fills in `%d` (the report type)."""
        query = urllib.parse.urlencode({
            "id": notification_id, "sig": dlr_signature(self.secret, notification_id)})
        return f"{self.dlr_url}?{query}&type=%d"

    async def send(self, message: Outgoing) -> str:
        params = {
            "username": self.username, "password": self.password, "from": self.sender,
            "to": message.recipient, "text": message.text, "charset": "UTF-8",
            "coding": "0" if message.text.isascii() else "2",
            # 1 delivered + 2 failed + 8 accepted by the SMSC + 16 rejected.
            "dlr-mask": "27", "dlr-url": self.report_url(message.notification_id),
        }
        try:
            resp = await self.client.get(self.endpoint, params=params)
        except httpx.HTTPError as exc:
            raise ChannelDown(f"SMS gateway unreachable: {exc}") from exc
        if resp.status_code in (200, 202):
            return message.notification_id
        text = f"SMS gateway {resp.status_code}: {resp.text.strip()[:200]}"
        if resp.status_code >= 500 or resp.status_code in (408, 429, 503):
            raise ChannelDown(text)
        raise ChannelRefused(text)

    async def close(self) -> None:
        await self.client.aclose()
