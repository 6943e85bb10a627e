"""A real SMTP server on 127.0.0.1 (aiosmtpd in a thread): plain, STARTTLS or implicit TLS,
optional AUTH, and queues of replies to refuse with."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.servers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    """Address -> replies to RCPT TO with (in turn) before accepting it."""
    data_replies: list[str] = field(default_factory=list)
    """Replies to DATA with (in turn) before accepting messages."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        with self.lock:
            queued = self.rcpt_replies.get(address)
            if queued:
                return queued.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self.lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                                          session.ssl is not None
                                          or server.transport.get_extra_info("ssl_object") is not None, login))
        return "250 2.0.0 Message accepted for delivery"


class SMTPServer:
    """``mode``: ``plain`` (no TLS), ``starttls`` (offers and requires STARTTLS) or ``implicit``
    (TLS from the first byte). ``users``: AUTH user -> password, required when given."""

    def __init__(self, mode: str = "plain", *, cert_context: ssl.SSLContext | None = None,
                 users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.handler = Handler()
        self.port = port or free_port()
        kwargs: dict = {}
        if mode == "starttls":
            kwargs.update(tls_context=cert_context, require_starttls=True)
        elif mode == "implicit":
            kwargs.update(ssl_context=cert_context)
        if users is not None:
            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = (isinstance(auth_data, LoginPassword)
                      and users.get(auth_data.login.decode()) == auth_data.password.decode())
                return AuthResult(success=ok, handled=False, auth_data=auth_data)
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=mode == "starttls")
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     server_hostname="vulnwatch-test-smtp", **kwargs)
        self.controller.start()

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def stop(self) -> None:
        self.controller.stop()
