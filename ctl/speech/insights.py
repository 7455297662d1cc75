"""Intent and sentiment per contact, for supervisors: every inbound message and every
call transcript analysed in the background and kept as an `nlp` contact event.

Nothing waits on it: the channel service stores and routes a message first, then tells
`on_text`, which only queues the text. One task per process drains the queue in batches
into a worker process of its own (the embedding model is CPU work that must neither
hold the event loop nor compete with live recognitions for threads), then writes one
event per text and pushes it to supervisors' websockets and the agent holding the
contact. A contact's insight is read from those events: the latest intent found and
the latest message's sentiment.

Published IVR flows' phrases join the intent examples (intent.py: precedence): the IVR
tells `use_flows` after each publish, and the worker embeds the examples then, once,
rather than while the next customer's text waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ctl.channels.contract import Inbound, Received
from ctl.contacts.service import ContactService, logged
from ctl.contacts.states import FINAL
from ctl.speech.embed import ModelMissing
from ctl.speech.intent import DEFAULT_INTENTS, IntentModel
from ctl.speech.nlp import tokens
from ctl.speech.sentiment import sentiment
from ctl.speech.worker import Worker
from ctl.store.db import Database
from ctl.store.models import Contact, ContactEvent, Message, utcnow

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
_BATCH = 32
_BACKLOG = 10_000  # beyond this texts are dropped (logged): insight is not worth memory
_TEXT_CHARS = 2_000  # an email's first part says what it is about; the model reads 256 tokens

_model: IntentModel | None = None


def _model_of(intents: dict[str, list[str]], flows: dict[str, list[str]]) -> IntentModel:
    global _model
    if _model is None or (_model.intents, _model.given_flows) != (intents, flows):
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
        threadpool_limits(1)  # one core of two: calls and the other worker need the rest
        _model = IntentModel(intents, embedding=_model is None or _model.embedding,
                             flows=flows)
    return _model


def _rules_alone(e: ModelMissing, intents: dict[str, list[str]],
                 flows: dict[str, list[str]]) -> IntentModel:
    global _model  # a broken install: rules and sentiment still work
    log.error("intents by rules alone: %s", e)
    _model = IntentModel(intents, embedding=False, flows=flows)
    return _model


def prepare(intents: dict[str, list[str]], flows: dict[str, list[str]]) -> int:
    """The model for these examples, embedded now (runs in the worker process); the
    number of examples."""
    try:
        return _model_of(intents, flows).prepare()
    except ModelMissing as e:
        return _rules_alone(e, intents, flows).prepare()


def analyze(texts: list[str], intents: dict[str, list[str]],
            flows: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Intent, sentiment and keywords of each text (runs in the worker process)."""
    flows = flows or {}
    try:
        found = _model_of(intents, flows).classify(texts)
    except ModelMissing as e:
        found = _rules_alone(e, intents, flows).classify(texts)
    out = []
    for text, intent in zip(texts, found, strict=True):
        label, score = sentiment(text)
        out.append({**intent.as_dict(), "sentiment": label, "score": score,
                    "keywords": terms(text)})
    return out


def terms(text: str, top: int = 8) -> list[str]:
    """The text's content terms, in order, once each (what "frequent issues" counts)."""
    seen: dict[str, None] = {}
    for t in tokens(text):
        if len(t) > 2 or not t.isascii():
            seen.setdefault(t)
    return list(seen)[:top]


class Insights:
    def __init__(self, db: Database, contacts: ContactService, publish: Publish,
                 intents: dict[str, list[str]] | None = None) -> None:
        self.db, self.contacts, self.publish = db, contacts, publish
        self.intents = intents or DEFAULT_INTENTS
        self.flows: dict[str, list[str]] = {}  # published flows' intent -> phrases
        self.prepared: asyncio.Task[None] | None = None  # the latest use_flows' embedding
        self._queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue(_BACKLOG)
        self._task: asyncio.Task[None] | None = None
        # Its own (live recognitions must not wait behind it), and nice: at 500 chat
        # messages a second the analysis took a core the messages' own path needed.
        self._worker = Worker(nice=10)
        self.idle = asyncio.Event()  # set when every queued text is stored (for tests)
        self.idle.set()

    def on_message(self, msg: Inbound, got: Received) -> None:
        """ChannelService listener: a customer's stored message."""
        self._message(got.contact_id, got.message_id, msg.channel, msg.subject, msg.text)

    def _message(self, contact_id: str, message_id: str, channel: str, subject: str | None,
                 text: str) -> None:
        self.on_text(contact_id, f"{subject}\n{text}" if subject else text,
                     {"source": channel, "message_id": message_id})

    def on_text(self, contact_id: str, text: str, source: dict[str, Any]) -> None:
        """Queue a customer's text of a contact for analysis; returns at once."""
        if not text.strip():
            return
        try:
            self._queue.put_nowait((contact_id, text[:_TEXT_CHARS], source))
        except asyncio.QueueFull:
            log.warning("nlp backlog full: contact %s not analysed", contact_id)
            return
        self.idle.clear()
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="nlp")

    def use_flows(self, phrases: dict[str, list[str]]) -> None:
        """The published flows' phrases per intent, from now on; embedded in the worker
        in the background (a publish does not wait on it). Before the first text the
        worker is not started: that text loads the model and embeds them in one go (a
        controller that only takes calls never holds the model)."""
        if phrases == self.flows:
            return
        self.flows = phrases
        if self._worker.started:
            self.prepared = asyncio.create_task(self._prepare(phrases), name="nlp-flows")

    async def _prepare(self, phrases: dict[str, list[str]]) -> None:
        try:
            n = await self._worker.run(prepare, self.intents, phrases)
        except Exception:  # the next text embeds them instead
            log.exception("embedding the flows' intent phrases failed")
            return
        log.info("intent examples: %d with the published flows' phrases", n)

    async def stop(self) -> None:
        if self.prepared is not None:
            self.prepared.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.prepared
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._worker.close()

    async def analyze(self, texts: list[str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._worker.run(analyze, texts, self.intents,
                                                             self.flows)
        return found

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._store(batch)
            except Exception:
                log.exception("analysing %d texts failed", len(batch))
            if self._queue.empty():
                self.idle.set()

    async def _store(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        found = await self.analyze([text for _, text, _ in batch])
        done = [(contact_id, {**data, **source})
                for (contact_id, _, source), data in zip(batch, found, strict=True)]
        # One transaction for the batch: a busy chat sends texts as fast as messages.
        holders = await self.contacts.log_each([(c, logged("nlp", d)) for c, d in done])
        for contact_id, data in done:
            if contact_id not in holders:
                log.warning("nlp of contact %s not stored: no such contact", contact_id)
                continue
            pushed = {"type": "nlp", "contact_id": contact_id, **data}
            self.publish("supervisor", pushed)
            if holders[contact_id]:  # the agent in the conversation sees it too
                self.publish(f"agent:{holders[contact_id]}", pushed)

    async def catch_up(self) -> int:
        """Queue the customers' messages of open contacts that have no analysis (those
        queued in a process that stopped before storing it); the number queued. The
        leader runs it when it starts leading."""
        async with self.db.session(readonly=True) as s:
            rows = (await s.execute(
                select(Message.id, Message.contact_id, Message.channel, Message.subject,
                       Message.text)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Contact.state.not_in([f.value for f in FINAL]), Message.direction == "in")
                .order_by(Message.contact_id, Message.seq))).all()
            ids = {r.contact_id for r in rows}
            done = {d.get("message_id") for d in (await s.scalars(
                select(ContactEvent.data).where(ContactEvent.contact_id.in_(ids),
                                                ContactEvent.kind == "nlp"))).all()} \
                if ids else set()
        missing = [r for r in rows if r.id not in done]
        for r in missing:
            self._message(r.contact_id, r.id, r.channel, r.subject, r.text)
        return len(missing)

    # --- reading ------------------------------------------------------------------------

    async def latest(self, contact_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each contact's insight (contacts never analysed are left out)."""
        if not contact_ids:
            return {}
        async with self.db.session(readonly=True) as s:
            rows = (await s.execute(
                select(ContactEvent.contact_id, ContactEvent.at, ContactEvent.data)
                .where(ContactEvent.contact_id.in_(contact_ids), ContactEvent.kind == "nlp")
                .order_by(ContactEvent.id))).all()
        out: dict[str, dict[str, Any]] = {}
        for contact_id, at, data in rows:
            now = out.setdefault(contact_id, {"intent": None, "confidence": 0.0,
                                              "texts": 0})
            if data.get("intent"):
                now.update(intent=data["intent"], confidence=data.get("confidence"))
            now.update(sentiment=data.get("sentiment"), score=data.get("score"),
                       keywords=data.get("keywords", []), at=at.isoformat(),
                       texts=now["texts"] + 1)
        return out

    async def of_open_contacts(self) -> dict[str, dict[str, Any]]:
        """The insight of every open contact that has one, with its channel, state and
        agent: what a supervisor's live view lists."""
        async with self.db.session(readonly=True) as s:
            rows = (await s.execute(
                select(Contact.id, Contact.channel, Contact.state, Contact.agent_id)
                .where(Contact.state.not_in([f.value for f in FINAL]),
                       Contact.id.in_(select(ContactEvent.contact_id)
                                      .where(ContactEvent.kind == "nlp"))))).all()
        found = await self.latest([r.id for r in rows])
        return {r.id: {"channel": r.channel, "state": r.state, "agent_id": r.agent_id,
                       **found[r.id]} for r in rows if r.id in found}

    async def events(self, contact_id: str) -> list[dict[str, Any]]:
        async with self.db.session(readonly=True) as s:
            rows = (await s.execute(
                select(ContactEvent.at, ContactEvent.data)
                .where(ContactEvent.contact_id == contact_id, ContactEvent.kind == "nlp")
                .order_by(ContactEvent.id))).all()
        return [{**data, "at": at.isoformat()} for at, data in rows]

    async def summary(self, hours: float, top: int = 20) -> dict[str, Any]:
        """Intents, sentiments and frequent keywords of the texts of the last `hours`."""
        since = utcnow() - timedelta(hours=hours)
        async with self.db.session(readonly=True) as s:
            rows = (await s.scalars(
                select(ContactEvent.data)
                .where(ContactEvent.kind == "nlp", ContactEvent.at >= since))).all()
        intents: Counter[str] = Counter(d.get("intent") or "none" for d in rows)
        moods: Counter[str] = Counter(d.get("sentiment") or "neutral" for d in rows)
        words: Counter[str] = Counter(k for d in rows for k in set(d.get("keywords", [])))
        return {"texts": len(rows), "hours": hours, "intents": dict(intents.most_common()),
                "sentiments": dict(moods),
                "keywords": [[w, n] for w, n in words.most_common(top) if n > 1]}
