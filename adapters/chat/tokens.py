"""Visitor tokens: who the visitor said they are and their chat session, signed.

Stateless (HMAC-SHA256 with the controller's session key), so any controller sharing
that key can resume a visitor, and nothing is stored for visitors who never write.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field

from ctl.errors import Unauthorized


@dataclass(frozen=True)
class Visitor:
    session: str  # the chat session id: the conversation's thread is "chat:<session>"
    kind: str  # identity kind from the pre-chat form (email, phone)
    value: str  # normalised
    name: str
    also: list[list[str]] = field(default_factory=list)  # the form's other [kind, value]s

    @property
    def thread(self) -> str:
        return f"chat:{self.session}"


class Tokens:
    def __init__(self, key: str) -> None:
        self._key = hashlib.sha256(b"ctl-chat\0" + key.encode()).digest()

    def issue(self, visitor: Visitor) -> str:
        body = base64.urlsafe_b64encode(json.dumps(asdict(visitor)).encode()).decode()
        return f"{body}.{self._sign(body)}"

    def read(self, token: str) -> Visitor:
        body, _, sig = token.rpartition(".")
        if not body or not hmac.compare_digest(sig.encode(), self._sign(body).encode()):
            raise Unauthorized("this chat session token is not valid",
                               hint="start a new chat (the pre-chat form)")
        try:
            return Visitor(**json.loads(base64.urlsafe_b64decode(body)))
        except (ValueError, TypeError):
            raise Unauthorized("this chat session token is not valid") from None

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")
