"""Email sink: SMTP, a multipart/alternative message (plain text + HTML) per event or per digest.

The content is the chat messages': a subject naming the image and the change
(``[vulnwatch] team/app:1.4 — findings changed: 2 new, 1 fixed``), the image (registry,
repository, digest, scanner; for a rebuild the previous digest and the moved tags), the counts
per severity with deltas, then the new, fixed and changed findings most severe first, each
linked, each list cut at ``max_listed`` with "…and N more". A digest lists the most severe
images in detail, then one line per image when the message would grow past
``max_payload_bytes`` (default 1 MiB), then "…and N more images". Everything that comes from
an event is escaped in the HTML part, and only ``http(s)`` links are made links.

Connection (standard library ``smtplib`` / ``ssl``): ``tls: starttls`` (refused if the server
does not offer STARTTLS), ``implicit`` (SMTPS) or ``none`` (only with ``insecure``); the
server's certificate is verified against the system's CAs or ``ca_file`` unless
``verify_tls`` is off; AUTH when a ``username`` is set. One SMTP transaction per message,
every recipient in ``To:``.

Failures (:class:`~vulnwatch.notify.interface.DeliveryError`): connection refused, timeouts,
a dropped connection and SMTP 4xx replies are retryable; 5xx replies, a certificate that does
not verify, a failed TLS handshake and a server without STARTTLS or AUTH are permanent (the
delivery is dead-lettered at once). Recipients refused while others accepted the message are
logged, not retried (a retry would mail the others twice). The ``Message-ID`` derives from the
event id, so a message sent twice (at-least-once delivery) is recognisable as the same one.
The password is never logged and never in an error.
"""

from __future__ import annotations

import email.policy
import email.quoprimime
import email.utils
import html
import logging
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from ..diff import KIND_LABELS
from ..logs import redact, reveal
from ..model import Event, EventKind, Finding, FindingChange
from ..net import tls_verify_error
from ._payload import (DEFAULT_MAX_PAYLOAD_BYTES, priority_text, rescore_parts, change_text, count_parts, cut_subject, digest_order,
                       first_listed, reason_labels, reason_text)
from .interface import DeliveryError, Notifier
from ._payload import digest_id

log = logging.getLogger(__name__)

TlsMode = Literal["starttls", "implicit", "none"]
SMTP_PORTS = {"starttls": 587, "implicit": 465, "none": 25}
SUBJECT_MAX = 200
MIN_MESSAGE_BYTES = 16 * 1024
FULL_LISTS_HINT = "Lists show the most severe findings; the state store keeps every finding of {}."

_SEV_COLOR = {"CRITICAL": "#b60205", "HIGH": "#d93f0b", "MEDIUM": "#b08800", "LOW": "#1d76db",
              "NEGLIGIBLE": "#6a737d", "UNKNOWN": "#6a737d"}


# --- content --------------------------------------------------------------------------------

def headline(event: Event, limit: int = 150) -> str:
    return cut_subject(event.subject, f" — {KIND_LABELS[EventKind(event.kind)]}", limit)


def subject(events: Sequence[Event]) -> str:
    """``[vulnwatch] repo:tag — kind: 2 new, 1 fixed`` or ``[vulnwatch] digest: …``."""
    if len(events) == 1:
        e = events[0]
        suffix = f" — {KIND_LABELS[EventKind(e.kind)]}: {change_text(e)}"
        return "[vulnwatch] " + cut_subject(e.subject, suffix, SUBJECT_MAX - 12)
    added = sum(len(e.added) for e in events)
    fixed = sum(len(e.fixed) for e in events)
    return f"[vulnwatch] digest: {len(events)} images changed, {added} new findings, {fixed} fixed"


def _counts(event: Event) -> str:
    parts = [f"{name} {n}" + (f" ({delta:+d})" if delta is not None else "") for name, n, delta in count_parts(event)]
    return " · ".join(parts) if parts else "no findings"


def _fixed_text(f: Finding) -> str:
    if f.fixed_versions:
        return ", ".join(f.fixed_versions)
    return "no fix yet" if not f.fixable else "fix available"


def _changed_text(c: FindingChange) -> str:
    a, b = c.before, c.after
    parts = [f"{a.severity.name} → {b.severity.name}" if "severity" in c.what else b.severity.name]
    if "cvss_score" in c.what:
        parts.append(f"CVSS {a.cvss_score if a.cvss_score is not None else '?'} → "
                     f"{b.cvss_score if b.cvss_score is not None else '?'}")
    if "fix_available" in c.what:
        parts.append(f"fix: {_fixed_text(b)}" if b.fixable else "fix withdrawn")
    parts += rescore_parts(c)
    return ", ".join(parts)


def _row(name: str, x: Any) -> tuple[str, str, str, str, str]:
    """(severity, id, link, package version, detail) of one listed entry."""
    if name == "changed":
        f = x.after
        return f.severity.name, f.vulnerability_id, f.link, f"{f.package_name} {f.package_version}", _changed_text(x)
    if name == "fixed":
        return (x.severity.name, x.vulnerability_id, x.link, f"{x.package_name} {x.package_version}",
                f"was {x.severity.name}")
    return (x.severity.name, x.vulnerability_id, x.link, f"{x.package_name} {x.package_version}",
            f"→ {_fixed_text(x)}{priority_text(x)}")


def _safe_link(url: str) -> str | None:
    return url if url.lower().startswith(("https://", "http://")) else None


def _e(text: str) -> str:
    return html.escape(text, quote=True)


_LISTS = (("added", "New findings"), ("fixed", "Fixed"), ("changed", "Changed"))


class _Doc:
    """The text and HTML parts, written side by side, with their size as sent counted on the way
    (quoted-printable), so that a message never grows past its budget."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.html: list[str] = []
        self.size = 0

    @staticmethod
    def cost(text: str, markup: str) -> int:
        # quoted-printable length, plus a soft line break per 75 characters
        n = sum(email.quoprimime.body_length(s.encode("utf-8")) + 2 for s in (text, markup))
        return n + n // 75 * 3

    def add(self, text: str, markup: str) -> None:
        self.text.append(text)
        self.html.append(markup)
        self.size += self.cost(text, markup)


def _event_parts(event: Event, max_listed: int, *, digest: bool) -> tuple[str, str]:
    """One image in detail, as (text, HTML)."""
    img = event.image
    facts = [("Registry", img.registry), ("Repository", img.repository), ("Tags", ", ".join(img.tags) or "(none)"),
             ("Digest", img.digest), ("Scanner", event.scanner)]
    if event.kind == EventKind.REBUILD and event.previous_digest:
        moved = ", ".join(event.moved_tags) or ", ".join(img.tags)
        facts.append(("Rebuilt from", event.previous_digest + (f" ({moved} moved)" if moved else "")))
    facts += [("Counts", _counts(event)), ("Change", change_text(event))]
    if event.reasons:
        facts.append(("Why", reason_text(event)))
    text = [headline(event), "=" * min(len(headline(event)), 72) if not digest else "-" * 40]
    text += [f"{k + ':':<14}{v}" for k, v in facts]
    tag = "h3" if digest else "h2"
    markup = [f"<{tag} style=\"margin:16px 0 4px\">{_e(headline(event))}</{tag}>",
              "<table style=\"border-collapse:collapse\">"]
    markup += [f"<tr><th style=\"text-align:left;padding:0 12px 0 0\">{_e(k)}</th><td>{_e(v)}</td></tr>"
               for k, v in facts]
    markup.append("</table>")
    for name, title in _LISTS:
        total = len(getattr(event, name))
        if not total:
            continue
        rows = [_row(name, x) for x in first_listed(event, name, max_listed)]
        text += ["", f"{title} ({total})"]
        text += [f"  {sev:<10} {vid:<20} {pkg}  {detail}" + (f"  {url}" if _safe_link(url) else "")
                 for sev, vid, url, pkg, detail in rows]
        markup.append(f"<h4 style=\"margin:12px 0 4px\">{_e(title)} ({total})</h4>"
                      "<table style=\"border-collapse:collapse\">")
        for sev, vid, url, pkg, detail in rows:
            ident = f"<a href=\"{_e(url)}\">{_e(vid)}</a>" if _safe_link(url) else _e(vid)
            markup.append(f"<tr><td style=\"color:{_SEV_COLOR.get(sev, '#000')};font-weight:bold;padding:0 8px 0 0\">"
                          f"{_e(sev)}</td><td style=\"padding:0 8px 0 0\">{ident}</td>"
                          f"<td style=\"padding:0 8px 0 0\">{_e(pkg)}</td><td>{_e(detail)}</td></tr>")
        markup.append("</table>")
        if total > len(rows):
            text.append(f"  …and {total - len(rows)} more")
            markup.append(f"<p style=\"margin:4px 0\"><em>…and {total - len(rows)} more</em></p>")
    return "\n".join(text) + "\n", "\n".join(markup) + "\n"


def _image_line(event: Event) -> tuple[str, str]:
    why = f" · {reason_labels(event)}" if event.reasons else ""
    text = f"  {headline(event, 100)} · {_counts(event)} · {change_text(event)}{why} ({event.image.registry})"
    return text + "\n", (f"<li>{_e(headline(event, 100))} · {_e(_counts(event))} · {_e(change_text(event))}"
                         f"{_e(why)}</li>\n")


def _bodies(events: Sequence[Event], max_listed: int, budget: int, ident: str) -> tuple[str, str]:
    """Text and HTML of the message, within ``budget`` bytes as sent (an estimate, checked after)."""
    doc = _Doc()
    if len(events) == 1:
        t, h = _event_parts(events[0], max_listed, digest=False)
        doc.add(t, h)
    else:
        added = sum(len(e.added) for e in events)
        fixed = sum(len(e.fixed) for e in events)
        title = f"vulnwatch digest: {len(events)} images changed"
        summary = f"{added} new findings, {fixed} fixed across {len(events)} images"
        doc.add(f"{title}\n{summary}\n", f"<h2>{_e(title)}</h2>\n<p>{_e(summary)}</p>\n")
        ordered = digest_order(events)
        lines = [_image_line(e) for e in ordered]
        tail = [0] * (len(lines) + 1)
        for i in range(len(lines) - 1, -1, -1):
            tail[i] = tail[i + 1] + _Doc.cost(*lines[i])
        shown = 0
        for i, e in enumerate(ordered):
            t, h = _event_parts(e, max_listed, digest=True)
            if doc.size + _Doc.cost(t, h) + tail[i + 1] + 400 > budget:
                break
            doc.add("\n" + t, h)
            shown += 1
        if shown < len(ordered):
            doc.add("\nOther images:\n", "<h3>Other images</h3>\n<ul>\n")
            for t, h in lines[shown:]:
                if doc.size + _Doc.cost(t, h) + 400 > budget:
                    break
                doc.add(t, h)
                shown += 1
            doc.add("", "</ul>\n")
        if shown < len(events):
            more = f"…and {len(events) - shown} more images"
            doc.add(f"\n{more}\n", f"<p><em>{_e(more)}</em></p>\n")
    hint = FULL_LISTS_HINT.format(f"event {ident}" if len(events) == 1 else
                                  "each of these events (vulnwatch events lists them)")
    doc.add(f"\n-- \n{hint}\n", f"<hr><p style=\"color:#6a737d\">{_e(hint)}</p>\n")
    text = "".join(doc.text)
    markup = ("<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif;font-size:14px\">\n"
              + "".join(doc.html) + "</body></html>\n")
    return text, markup


# --- the notifier ---------------------------------------------------------------------------

def _addr(value: str) -> str:
    return email.utils.parseaddr(value)[1]


class EmailNotifier(Notifier):
    """Sends each event (or digest) as one email to every recipient. ``repr`` shows only the name."""

    def __init__(self, name: str, *, host: str, sender: str, recipients: Sequence[str], port: int | None = None,
                 tls: TlsMode = "starttls", insecure: bool = False, username: str | None = None,
                 password: str | None = None, ca_file: str | Path | None = None, verify_tls: bool = True,
                 timeout: float = 10.0, max_listed: int = 25,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES["email"],
                 local_hostname: str | None = None) -> None:
        who = f"email sink {name!r}"
        if tls not in SMTP_PORTS:
            raise ValueError(f"{who}: tls must be one of {', '.join(SMTP_PORTS)}")
        if tls == "none" and not insecure:
            raise ValueError(f"{who}: tls none sends mail in clear; set insecure to allow it")
        if not recipients:
            raise ValueError(f"{who}: give at least one recipient")
        if max_payload_bytes < MIN_MESSAGE_BYTES:
            raise ValueError(f"{who}: max_payload_bytes must be at least {MIN_MESSAGE_BYTES}")
        if bool(username) != (password is not None):
            raise ValueError(f"{who}: give both username and password, or neither")
        self.name = name
        self.host = host
        self.port = port or SMTP_PORTS[tls]
        self.tls = tls
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username
        self._password = password
        self.ca_file = Path(ca_file) if ca_file else None
        self.verify_tls = verify_tls
        self.timeout = timeout
        self.max_listed = max_listed
        self.max_payload_bytes = max_payload_bytes
        self.local_hostname = local_hostname
        self._who = who

    @classmethod
    def from_config(cls, sink: Any) -> "EmailNotifier":
        return cls(sink.name, host=sink.host, port=sink.smtp_port, tls=sink.tls, insecure=sink.insecure,
                   username=sink.username, password=reveal(sink.password), sender=sink.from_,
                   recipients=list(sink.to), ca_file=sink.ca_file, verify_tls=sink.verify_tls,
                   timeout=sink.timeout.total_seconds(), max_listed=sink.max_listed,
                   max_payload_bytes=sink.max_payload_bytes)

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r})"

    # --- the message ---
    def message(self, events: Sequence[Event]) -> EmailMessage:
        """The message :meth:`send` would send for ``events``, within ``max_payload_bytes``."""
        budget = self.max_payload_bytes - 2048  # headers and MIME boundaries
        listed = self.max_listed
        while True:
            msg = self._build(events, listed, budget)
            if len(msg.as_bytes()) <= self.max_payload_bytes or (listed == 1 and budget < 4096):
                return msg
            listed, budget = max(1, listed // 2), int(budget * 0.8)  # the estimate was off: shrink

    def _build(self, events: Sequence[Event], listed: int, budget: int) -> EmailMessage:
        ident = events[0].id if len(events) == 1 else digest_id(events)
        text, markup = _bodies(events, listed, budget, ident)
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["Subject"] = subject(events).replace("\r", " ").replace("\n", " ")
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = email.utils.format_datetime(max(e.occurred_at for e in events))
        domain = _addr(self.sender).rpartition("@")[2] or "vulnwatch.invalid"
        msg["Message-ID"] = f"<{ident}@{domain}>"
        msg["X-Vulnwatch-Event"] = ident
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        msg.add_alternative(markup, subtype="html", charset="utf-8", cte="quoted-printable")
        return msg

    # --- SMTP ---
    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if not self.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _error(self, text: str, *, retryable: bool) -> DeliveryError:
        return DeliveryError(f"{self._who}: {redact(text, self._password)}", retryable=retryable)

    def _reply_error(self, what: str, code: int, reply: bytes | str) -> DeliveryError:
        reply_text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        reply_text = " ".join(reply_text.split())[:200]
        if 400 <= code < 500:
            return self._error(f"{what}: SMTP {code} {reply_text} (temporary, will retry)", retryable=True)
        return self._error(f"{what}: SMTP {code} {reply_text}; the server refused it (retrying will not help)",
                           retryable=False)

    def send(self, events: Sequence[Event]) -> None:
        if not events:
            return
        msg = self.message(events)
        envelope_to = [_addr(r) for r in self.recipients]
        try:
            refused = self._transaction(msg, envelope_to)
        except DeliveryError:
            raise
        except smtplib.SMTPRecipientsRefused as e:
            codes = {code for code, _ in e.recipients.values()}
            first_code, first_reply = next(iter(e.recipients.values()))
            raise self._reply_error(f"every recipient refused ({len(e.recipients)})",
                                    first_code if all(400 <= c < 500 for c in codes) else max(codes),
                                    first_reply) from None
        except smtplib.SMTPNotSupportedError as e:
            raise self._error(f"the server does not support what this sink needs ({e})", retryable=False) from None
        except smtplib.SMTPResponseException as e:
            step = {smtplib.SMTPSenderRefused: "sender refused", smtplib.SMTPDataError: "message refused",
                    smtplib.SMTPAuthenticationError: "authentication failed", smtplib.SMTPConnectError:
                    "connection refused by the server", smtplib.SMTPHeloError: "EHLO refused"}.get(type(e), "error")
            raise self._reply_error(step, e.smtp_code, e.smtp_error) from None
        except smtplib.SMTPServerDisconnected as e:
            raise self._error(f"the server closed the connection ({e})", retryable=True) from None
        except (socket.timeout, TimeoutError):
            raise self._error(f"timed out talking to {self.host}:{self.port}", retryable=True) from None
        except ssl.SSLError as e:
            bad = tls_verify_error(e)
            if bad is not None:
                reason = bad.verify_message or bad.reason or "failed"
                raise self._error(f"TLS certificate verification failed ({reason}) for {self.host}:{self.port}; "
                                  "set ca_file to the CA that signed the server's certificate, or "
                                  "verify_tls: false for a test server", retryable=False) from None
            raise self._error(f"TLS handshake with {self.host}:{self.port} failed ({e.reason or e}); check that "
                              f"the port speaks tls: {self.tls}", retryable=False) from None
        except ConnectionRefusedError:
            raise self._error(f"could not connect to {self.host}:{self.port} (connection refused)",
                              retryable=True) from None
        except OSError as e:
            raise self._error(f"could not connect to {self.host}:{self.port} ({type(e).__name__}: {e})",
                              retryable=True) from None
        except smtplib.SMTPException as e:
            raise self._error(f"SMTP error ({type(e).__name__}: {e})", retryable=True) from None
        if refused:
            log.warning("email sink %r: delivered, but the server refused %s", self.name,
                        ", ".join(f"{addr} ({code})" for addr, (code, _) in sorted(refused.items())))
        log.debug("email sink %r: a message about %d event(s) accepted for %d recipient(s)", self.name,
                  len(events), len(envelope_to) - len(refused))

    def _transaction(self, msg: EmailMessage, envelope_to: list[str]) -> dict:
        ctx = self._tls_context() if self.tls != "none" else None
        if self.tls == "implicit":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.local_hostname,
                                                  timeout=self.timeout, context=ctx)
        else:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if self.tls == "starttls":
                if not smtp.has_extn("starttls"):
                    raise self._error(f"{self.host}:{self.port} does not offer STARTTLS (tls: starttls); use "
                                      "tls: implicit for an SMTPS port", retryable=False)
                smtp.starttls(context=ctx)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self._password or "")
            return smtp.send_message(msg, from_addr=_addr(self.sender), to_addrs=envelope_to)
