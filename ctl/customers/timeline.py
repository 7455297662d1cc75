"""The customer 360's timeline: every contact on every channel (with its IVR path,
recordings, transcripts and messages), every ticket, and messages outside any contact,
newest first, a page at a time.

The cursor is the last entry's (time, id): a page is the entries strictly older, so
pages never repeat or skip an entry however many arrive meanwhile. Each page costs one
query per source plus one for the page's events and one for its messages, whatever the
customer's history holds.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ctl.channels import store as messages_store
from ctl.errors import BadRequest, NotFound
from ctl.store.models import Agent, Contact, ContactEvent, Message, Queue, Ticket

MAX_PAGE = 100
MESSAGES_PER_CONTACT = 50  # the newest ones; the conversation itself has them all
TEXT_CHARS = 2000  # of each message (a pasted log in an email); `truncated` says so
# The events a timeline shows: the IVR's steps and what the caller did in them, the
# call's milestones (recordings), voicemails, transcripts.
_EVENT_KINDS = ("ivr", "ivr_left", "keys", "speech", "call", "voicemail", "transcript",
                "callback")
Cursor = tuple[datetime, str]


def encode(at: datetime, entry_id: str) -> str:
    raw = json.dumps([at.isoformat(), entry_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> Cursor:
    try:
        at, entry_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(entry_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("cursor: not a cursor this API gave out") from None


def _older(at: InstrumentedAttribute[datetime], ident: InstrumentedAttribute[str],
           cursor: Cursor | None) -> ColumnElement[bool]:
    if cursor is None:
        return true()
    return or_(at < cursor[0], and_(at == cursor[0], ident < cursor[1]))


async def page(s: AsyncSession, customer_id: str, cursor: str | None, limit: int
               ) -> dict[str, Any]:
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit: 1 to {MAX_PAGE}")
    after = decode(cursor) if cursor else None
    contacts = list(await s.scalars(
        select(Contact).where(Contact.customer_id == customer_id, Contact.channel != "task",
                              _older(Contact.created_at, Contact.id, after))
        .order_by(Contact.created_at.desc(), Contact.id.desc()).limit(limit + 1)))
    tickets = list(await s.scalars(
        select(Ticket).where(Ticket.customer_id == customer_id,
                             _older(Ticket.created_at, Ticket.id, after))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)))
    loose = list(await s.scalars(
        select(Message).where(Message.customer_id == customer_id, Message.contact_id.is_(None),
                              _older(Message.created_at, Message.id, after))
        .order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)))
    merged: list[tuple[datetime, str, Any]] = sorted(
        [(c.created_at, c.id, c) for c in contacts] + [(t.created_at, t.id, t) for t in tickets]
        + [(m.created_at, m.id, m) for m in loose], key=lambda e: (e[0], e[1]), reverse=True)
    more = len(merged) > limit
    merged = merged[:limit]
    shown = [e[2] for e in merged if isinstance(e[2], Contact)]
    details = await _details(s, shown)
    entries = []
    for _, _, row in merged:
        if isinstance(row, Contact):
            entries.append(details[row.id])
        elif isinstance(row, Ticket):
            entries.append({"kind": "ticket", "id": row.id, "at": row.created_at.isoformat(),
                            "number": row.number, "subject": row.subject,
                            "status": row.status, "priority": row.priority,
                            "channel": row.channel})
        else:
            entries.append({"kind": "message", "id": row.id, "at": row.created_at.isoformat(),
                            "channel": row.channel, "message": _short(messages_store.view(row))})
    last = merged[-1] if merged and more else None
    return {"entries": entries, "next": encode(last[0], last[1]) if last else None}


async def _details(s: AsyncSession, contacts: list[Contact]) -> dict[str, dict[str, Any]]:
    ids = [c.id for c in contacts]
    if not ids:
        return {}
    agent_ids = {c.agent_id for c in contacts if c.agent_id}
    queue_ids = {c.queue_id for c in contacts if c.queue_id}
    agents = dict((await s.execute(select(Agent.id, Agent.display_name)
                                   .where(Agent.id.in_(agent_ids)))).all()) \
        if agent_ids else {}
    queues = dict((await s.execute(select(Queue.id, Queue.name)
                                   .where(Queue.id.in_(queue_ids)))).all()) \
        if queue_ids else {}
    out: dict[str, dict[str, Any]] = {}
    for c in contacts:
        ended = c.closed_at
        out[c.id] = {
            "kind": "contact", "id": c.id, "at": c.created_at.isoformat(), "channel": c.channel,
            "state": c.state, "close_reason": c.close_reason,
            "closed_at": ended.isoformat() if ended else None,
            "seconds": round((ended - c.created_at).total_seconds()) if ended else None,
            "queue": queues.get(c.queue_id) if c.queue_id else None,
            "agent": {"id": c.agent_id, "name": agents.get(c.agent_id)} if c.agent_id else None,
            "subject": (c.attributes or {}).get("subject"),
            "ivr": [], "recordings": [], "transcripts": [], "messages": [],
            "messages_total": 0}
    events = await s.execute(
        select(ContactEvent.contact_id, ContactEvent.at, ContactEvent.kind, ContactEvent.data)
        .where(ContactEvent.contact_id.in_(ids), ContactEvent.kind.in_(_EVENT_KINDS))
        .order_by(ContactEvent.id))
    for contact_id, at, kind, data in events:
        _event(out[contact_id], at, kind, data or {})
    await _messages(s, ids, out)
    return out


def _event(entry: dict[str, Any], at: datetime, kind: str, data: dict[str, Any]) -> None:
    ivr: list[dict[str, Any]] = entry["ivr"]
    if kind == "ivr":
        ivr.append({"flow": data.get("flow"), "step": data.get("step"),
                    "verb": data.get("verb"), "at": at.isoformat()})
    elif kind == "ivr_left" and ivr:
        ivr[-1]["outcome"] = data.get("outcome")
    elif kind == "keys" and ivr:
        ivr[-1]["keys"] = str(ivr[-1].get("keys", "")) + str(data.get("keys") or "")
    elif kind == "speech" and ivr:
        ivr[-1]["heard"] = data.get("text")
        ivr[-1]["intent"] = data.get("intent")
    elif kind in ("call", "voicemail") and recording_name(data):
        name = recording_name(data)
        entry["recordings"].append({
            "name": name, "kind": "voicemail" if kind == "voicemail" else "call",
            "seconds": data.get("seconds"), "at": at.isoformat(),
            "url": f"/api/v1/contacts/{entry['id']}/recordings/{name}"})
    elif kind == "transcript":
        entry["transcripts"].append({"recording": data.get("recording"),
                                     "text": data.get("text") or "", "at": at.isoformat()})


def recording_name(data: dict[str, Any]) -> str | None:
    """The file name of a recording an event names (bridges: a name; voicemails: a
    path), never a path: only files of the recordings folder are served."""
    name = data.get("recording")
    if not isinstance(name, str) or not name.endswith(".wav"):
        return None
    return Path(name).name


async def _messages(s: AsyncSession, ids: list[str], out: dict[str, dict[str, Any]]) -> None:
    """The newest MESSAGES_PER_CONTACT of each contact, oldest first, and the counts."""
    counts = await s.execute(select(Message.contact_id, func.count())
                             .where(Message.contact_id.in_(ids)).group_by(Message.contact_id))
    for contact_id, n in counts:
        if contact_id is not None:
            out[contact_id]["messages_total"] = n
    rank = func.row_number().over(partition_by=Message.contact_id,
                                  order_by=Message.seq.desc()).label("rank")
    ranked = select(Message.id, rank).where(Message.contact_id.in_(ids)).subquery()
    rows = await s.scalars(select(Message).join(ranked, ranked.c.id == Message.id)
                           .where(ranked.c.rank <= MESSAGES_PER_CONTACT)
                           .order_by(Message.contact_id, Message.seq))
    for m in rows:
        if m.contact_id is not None:
            out[m.contact_id]["messages"].append(_short(messages_store.view(m)))


def _short(message: dict[str, Any]) -> dict[str, Any]:
    text = message["text"] or ""
    message["truncated"] = len(text) > TEXT_CHARS
    message["text"] = text[:TEXT_CHARS]
    return message


async def recording(s: AsyncSession, folder: Path, contact_id: str, name: str) -> Path:
    """The file of a recording the contact's history names (nothing else is served)."""
    events = await s.scalars(select(ContactEvent.data).where(
        ContactEvent.contact_id == contact_id, ContactEvent.kind.in_(("call", "voicemail"))))
    if name not in {recording_name(d or {}) for d in events}:
        raise NotFound(f"contact {contact_id} has no recording {name!r}")
    path = folder / name
    if not path.is_file():
        raise NotFound(f"recording {name} is not on this server (deleted or another node's)")
    return path
