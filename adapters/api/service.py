"""The API channel's work: a platform's contacts and messages, through the contract.

A platform names its own conversation (or lets ctl name one); the conversation is the
contact's thread `api:<key id>:<conversation>`, so a platform only ever reaches its own
contacts, and its customer writing again after a contact closed opens the next contact of
the same conversation. The contact's address is the customer's identity as
`kind:value`: the agent sees who it is, and later messages are the same customer. A
message's id on the platform makes posting it twice a no-op.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.api.keys import VISIBLE, Platform
from ctl.channels.contract import Inbound, Received
from ctl.channels.service import ChannelService
from ctl.errors import BadRequest, NotFound
from ctl.store.models import IDENTITY_KINDS, Contact, new_id

_NAME = re.compile(r"[A-Za-z0-9._:@+-]{1,80}")
# What a platform may report about an agent's reply it was given.
REPORTED = ("delivered", "read", "failed")
_SHOWN = ("id", "seq", "direction", "text", "subject", "status", "status_reason", "at")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise BadRequest(f"{what} must be 1-80 characters of letters, digits and ._:@+-")
    return value


def _str(body: dict[str, Any], name: str, size: int, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not re.search(VISIBLE, value)) \
            or len(value) > size:
        raise BadRequest(f"field {name!r} must be a{' non-empty' if required else ''} "
                         f"string of at most {size} characters")
    return value


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise BadRequest(f"field {name!r} must be an object")
    return value


def view(m: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the platform sees it (no agent or customer ids)."""
    return {**{k: m[k] for k in _SHOWN},
            "attachments": [{"name": a.get("name"), "content_type": a.get("type"),
                             "size": a.get("size")} for a in m.get("attachments") or []]}


def thread(key_id: str, conversation: str) -> str:
    return f"api:{key_id}:{conversation}"


class ApiChannel:
    def __init__(self, channels: ChannelService) -> None:
        self._channels = channels

    async def open(self, p: Platform, body: dict[str, Any]) -> dict[str, Any]:
        """A customer's first (or next) message of a conversation: the contact opened
        (and routed) for it, or the open one it joins."""
        customer = _object(body, "customer")
        kind = _str(customer, "kind", 32, True)
        if kind not in IDENTITY_KINDS:
            raise BadRequest(f"customer.kind {str(kind)[:32]!r} is not an identity kind",
                             hint="one of " + ", ".join(sorted(IDENTITY_KINDS)))
        value = _str(customer, "value", 200, True)
        conversation = _name(body["conversation"], "conversation") \
            if body.get("conversation") is not None else new_id()
        got = await self._receive(p, conversation, f"{kind}:{value}", body,
                                  _str(customer, "name", 200), _str(body, "subject", 500),
                                  _str(body, "queue", 64))
        return {**got, "conversation": conversation}

    async def post(self, p: Platform, contact_id: str, body: dict[str, Any]
                   ) -> dict[str, Any]:
        """The customer's next message in the contact's conversation (the next contact
        of it if this one is over)."""
        contact = await self._own(p, contact_id)
        conversation = (contact.external_ref or "").split(":", 2)[2]
        address = (contact.attributes or {}).get("address", "")
        return {**await self._receive(p, conversation, address, body),
                "conversation": conversation}

    async def _receive(self, p: Platform, conversation: str, address: str,
                       body: dict[str, Any], name: str | None = None,
                       subject: str | None = None, queue: str | None = None
                       ) -> dict[str, Any]:
        message = _object(body, "message")
        ref = _name(message.get("id"), "message.id")
        kind, _, value = address.partition(":")
        got: Received = await self._channels.receive(Inbound(
            channel="api", identity=(kind, value), address=address,
            text=_str(message, "text", 20_000, True) or "",
            external_id=f"api:{p.key_id}:{ref}", thread=thread(p.key_id, conversation),
            name=name, subject=subject, queue=queue, meta={"platform": p.name}))
        return {"contact": got.contact_id, "customer": got.customer_id,
                "message": got.message_id, "seq": got.seq, "opened": got.opened,
                "duplicate": got.duplicate}

    async def messages(self, p: Platform, contact_id: str, after: int) -> dict[str, Any]:
        """The contact's messages after `after` (the platform polls for replies)."""
        contact = await self._own(p, contact_id)
        found = await self._channels.conversation(contact_id, after)
        return {"contact": contact.id, "state": contact.state,
                "messages": [view(m) for m in found]}

    async def report(self, p: Platform, message_id: str, body: dict[str, Any]) -> None:
        """The platform's word on an agent's reply: delivered, read or failed (why)."""
        status = body.get("status")
        if status not in REPORTED:
            raise BadRequest(f"status must be one of {', '.join(REPORTED)}")
        reason = _str(body, "reason", 500)
        # A reply's channel id names its key: another platform's message is not found.
        if not await self._channels.status("api", f"{p.key_id}:{message_id}", status, reason):
            raise NotFound(f"no reply {message_id[:40]!r} of yours")

    async def _own(self, p: Platform, contact_id: str) -> Contact:
        try:
            contact = await self._channels.contact(contact_id)
        except NotFound:
            contact = None
        if contact is None or contact.channel != "api" or not (
                contact.external_ref or "").startswith(thread(p.key_id, "")):
            raise NotFound(f"no contact {contact_id[:40]!r} of yours")
        return contact
