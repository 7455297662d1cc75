"""The channel adapter contract: what an adapter hands in, and what it is handed to send.

An adapter turns its protocol into `Inbound` and gives it to `ChannelService.receive()`
(identify the customer, find or open the conversation, persist, route or deliver). For
outbound it registers a `Sender` with `Outbound`; it reports delivery with
`Outbound.status()`. Adapters never touch SQL or routing themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ctl.errors import CtlError

# Where a message stands; "failed" carries the reason (bounce, gateway error...).
STATUSES = frozenset({"received", "queued", "sent", "delivered", "read", "failed"})


class ChannelError(CtlError):
    """A channel refused or could not take a message; the message names which and why."""

    status = 400
    code = "channel"


class UnknownChannel(ChannelError):
    status = 404
    code = "unknown_channel"


class DeliveryFailed(ChannelError):
    status = 502
    code = "delivery_failed"


class Rejected(ChannelError):
    """Bad inbound input (too large, wrong type, bad signature...): refused with a reason."""

    status = 422
    code = "rejected"


class TooLarge(Rejected):
    status = 413
    code = "too_large"


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a customer, as the adapter understood it."""

    channel: str
    identity: tuple[str, str]  # (kind, raw value): who the customer is (IDENTITY_KINDS)
    address: str  # where replies go on this channel (email address, chat session, phone)
    text: str
    name: str | None = None  # display name, kept for a new customer
    subject: str | None = None
    external_id: str | None = None  # the channel's id of this message: deduplicates
    thread: str | None = None  # the channel's conversation key (chat session, thread root)
    refs: tuple[str, ...] = ()  # external ids this message answers (email References)
    attachments: tuple[Attachment, ...] = ()
    queue: str | None = None  # None: the channel's queue from settings
    meta: dict[str, Any] = field(default_factory=dict)
    # Other identities the customer gave (a chat form's phone beside its email), linked
    # to the same customer when nobody has them yet; unusable ones are ignored.
    also: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Received:
    message_id: str
    contact_id: str
    customer_id: str
    seq: int
    opened: bool  # a new contact was opened (and routed) for it
    duplicate: bool  # already stored earlier (same external id): nothing was done


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a Sender is asked to deliver."""

    message_id: str  # ours (the adapter may build the channel's id from it)
    channel: str
    to: str
    text: str
    subject: str | None = None
    thread: str | None = None
    refs: tuple[str, ...] = ()  # external ids of earlier messages of the thread, oldest first
    attachments: tuple[Attachment, ...] = ()
    contact_id: str | None = None
    seq: int = 0  # its place among the contact's messages


class Sender(Protocol):
    async def send(self, out: Outgoing) -> str | None:
        """Deliver `out`; return the channel's id for it (None if it has none).
        Raise ChannelError (or any exception) when the channel refused it."""
        ...
