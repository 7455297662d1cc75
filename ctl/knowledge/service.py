"""The knowledge capability for the desk: articles, quick replies, a reply rendered for a
conversation, and suggestions from what the customer wrote or said."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ctl.agents.auth import Principal
from ctl.channels.service import _may_read
from ctl.errors import NotFound
from ctl.knowledge import demo, search, variables
from ctl.knowledge.articles import Articles
from ctl.knowledge.replies import QuickReplies
from ctl.store.db import Database
from ctl.store.models import (
    Agent,
    Article,
    Contact,
    ContactEvent,
    Customer,
    Identity,
    Message,
    QuickReply,
    Ticket,
    TicketContact,
)

_RECENT = 10  # the customer's messages a suggestion reads: the latest ones say what is wanted


class Knowledge:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.articles = Articles(db)
        self.replies = QuickReplies(db)

    async def render(self, who: Principal, reply_id: str, contact_id: str | None = None
                     ) -> dict[str, Any]:
        """The reply's text with its variables filled for `contact_id`'s conversation
        (without one, the agent's own variables only; the others are empty)."""
        reply = await self.replies.get(who, reply_id)
        values = await self._values(who, contact_id)
        return {"id": reply.id, "text": variables.render(reply.body, values)}

    async def _values(self, who: Principal, contact_id: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {g: dict.fromkeys(f) for g, f in variables.VARIABLES.items()}
        async with self._db.session(readonly=True) as s:
            agent = await s.get(Agent, who.agent_id)
            values["agent"] = {"name": agent.display_name if agent else who.username,
                               "username": who.username}
            if contact_id is None:
                return values
            contact = await _contact(s, who, contact_id)
            values["contact"] = {"id": contact.id, "channel": contact.channel}
            if contact.customer_id:
                values["customer"] = await _customer(s, contact.customer_id)
            ticket = await s.scalar(
                select(Ticket).join(TicketContact, TicketContact.ticket_id == Ticket.id)
                .where(TicketContact.contact_id == contact.id)
                .order_by(Ticket.created_at.desc()).limit(1))
            if ticket is not None:
                values["ticket"] = {"number": ticket.number, "subject": ticket.subject,
                                    "status": ticket.status}
        return values

    async def suggest(self, who: Principal, contact_id: str, limit: int = 5
                      ) -> dict[str, Any]:
        """Articles and quick replies for a conversation, from the customer's latest
        messages in it (or on any channel, when it has none yet), what they said to the
        IVR and call transcripts."""
        async with self._db.session(readonly=True) as s:
            contact = await _contact(s, who, contact_id)
            terms = await _customer_terms(s, contact)
        articles = await self.articles.find(terms, limit=limit) if terms else []
        replies = await self.replies.find(who, terms, limit=limit) if terms else []
        return {"contact_id": contact_id, "terms": terms, "articles": articles,
                "replies": replies}

    async def empty(self) -> bool:
        async with self._db.session(readonly=True) as s:
            articles = await s.scalar(select(func.count()).select_from(Article))
            team = await s.scalar(select(func.count()).select_from(QuickReply)
                                  .where(QuickReply.owner_id.is_(None)))
        return not articles and not team

    async def seed_demo(self) -> int:
        """The demo's articles and team replies (demo.py), into an empty knowledge base
        only: what admins wrote is never touched. The number of entries added."""
        if not await self.empty():
            return 0
        system = Principal("", "ctl", "admin")
        for a in demo.ARTICLES:
            await self.articles.create(a, actor="ctl")
        for r in demo.REPLIES:
            await self.replies.create(system, {**r, "scope": "team"})
        return len(demo.ARTICLES) + len(demo.REPLIES)


async def _contact(s: AsyncSession, who: Principal, contact_id: str) -> Contact:
    contact = await s.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    _may_read(who, contact)
    return contact


async def _customer(s: AsyncSession, customer_id: str) -> dict[str, Any]:
    customer = await s.get(Customer, customer_id)
    rows = await s.execute(select(Identity.kind, Identity.value)
                           .where(Identity.customer_id == customer_id)
                           .order_by(Identity.created_at))
    first: dict[str, str] = {}
    for kind, value in rows:
        first.setdefault(kind, value)
    return {"name": customer.display_name if customer else None,
            "tier": customer.tier if customer else None,
            "phone": first.get("phone"), "email": first.get("email")}


async def _customer_terms(s: AsyncSession, contact: Contact) -> list[str]:
    inbound = select(Message.text).where(Message.direction == "in") \
        .order_by(Message.created_at.desc()).limit(_RECENT)
    texts = list(await s.scalars(inbound.where(Message.contact_id == contact.id)))
    if not texts and contact.customer_id:
        texts = list(await s.scalars(inbound.where(Message.customer_id == contact.customer_id)))
    # What the caller said to the IVR ("speech") and the call's transcripts.
    events = await s.scalars(select(ContactEvent.data).where(
        ContactEvent.contact_id == contact.id,
        ContactEvent.kind.in_(("speech", "transcript"))))
    texts += [str(d.get("text") or "") for d in events]
    # A term counts once per message: a customer pasting one line ten times does not
    # outweigh everything else they wrote.
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(set(search.terms(text)))
    return [t for t, _ in counts.most_common(search.MAX_QUERY_TERMS)]
