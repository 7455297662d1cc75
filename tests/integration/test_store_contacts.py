"""Contacts in storage, on SQLite and PostgreSQL: states, events, held log lines,
optimistic locking and concurrent moves."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from ctl.contacts.service import ContactService, logged
from ctl.contacts.states import FINAL, ContactState
from ctl.errors import InvalidTransition, NotFound
from ctl.store.db import Database
from ctl.store.models import Contact, Customer


async def _count(db: Database, stmt: Any) -> int:
    async with db.session(readonly=True) as s:
        return int(await s.scalar(stmt) or 0)


async def test_contact_lifecycle(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("voice", external_ref="life.1", node="n1", attributes={"did": "100"})
    assert (c.state, c.version, c.closed_at) == ("new", 1, None)
    path = ["ivr", "queued", "offered", "queued", "offered", "assigned", "wrapup"]
    for to in path:
        c = await svc.transition(c.id, to, f"to-{to}")
    await svc.transition(c.id, "closed", "done", {"by": "agent"})

    got = await svc.get(c.id)
    assert (got.state, got.close_reason, got.version) == ("closed", "done", 9)
    assert got.attributes == {"did": "100"} and got.node == "n1"
    assert got.closed_at is not None and got.closed_at.utcoffset() == timedelta(0)
    assert got.created_at.utcoffset() == timedelta(0) and got.closed_at >= got.created_at
    events = await svc.events(c.id)
    states = ["new", *path, "closed"]
    assert [(e.from_state, e.to_state) for e in events] == list(
        zip([None, *states[:-1]], states, strict=True)
    )
    assert events[0].reason == "created" and events[-1].data == {"by": "agent"}
    assert all(e.kind == "state" for e in events)


async def test_finish_is_idempotent(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("chat")
    first = await svc.finish(c.id, "abandoned", "customer_left")
    again = await svc.finish(c.id, "closed", "sweep", {"x": 1})
    assert (first.state, again.state, again.close_reason) == ("abandoned",) * 2 + ("customer_left",)
    assert len(await svc.events(c.id)) == 2
    with pytest.raises(ValueError, match="final"):
        await svc.finish(c.id, "queued", "nope")


async def test_invalid_transition_writes_nothing(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("email")
    with pytest.raises(InvalidTransition, match="from new to wrapup"):
        await svc.transition(c.id, "wrapup", "skip")
    got = await svc.get(c.id)
    assert (got.state, got.version, got.updated_at) == ("new", 1, c.updated_at)
    assert len(await svc.events(c.id)) == 1


async def test_unknown_contact_is_not_found(store: Database) -> None:
    svc = ContactService(store)
    for call in (svc.get("nope"), svc.transition("nope", "ivr", "x"),
                 svc.finish("nope", "closed", "x"), svc.log("nope", "ivr", {})):
        with pytest.raises(NotFound):
            await call


async def test_log_external_ref_and_unfinished(store: Database) -> None:
    svc = ContactService(store)
    old = await svc.open("voice", external_ref="ref.9")
    await svc.finish(old.id, "closed", "hangup")
    live = await svc.open("voice", external_ref="ref.9")
    chat = await svc.open("chat", external_ref="ref.9")
    found = await svc.by_external_ref("voice", "ref.9")
    assert found is not None and found.id == live.id
    assert await svc.by_external_ref("voice", "ref.404") is None

    await svc.log(live.id, "ivr", {"menu": "main", "digit": "1"})
    last = (await svc.events(live.id))[-1]
    assert (last.kind, last.to_state, last.data) == ("ivr", None, {"menu": "main", "digit": "1"})
    with pytest.raises(ValueError):
        await svc.log(live.id, "state", {})

    assert chat.id in {c.id for c in await svc.unfinished("chat")}
    voice = {c.id for c in await svc.unfinished("voice")}
    assert live.id in voice and old.id not in voice and chat.id not in voice
    await svc.finish(live.id, "closed", "hangup")
    found = await svc.by_external_ref("voice", "ref.9")
    assert found is not None and found.id == live.id  # all final: the newest


async def test_log_each_writes_several_contacts_at_once(store: Database) -> None:
    svc = ContactService(store)
    a, b = await svc.open("chat"), await svc.open("email")
    holders = await svc.log_each([(a.id, logged("nlp", {"n": 1})), ("gone", logged("nlp", {})),
                                  (b.id, logged("nlp", {"n": 2})), (a.id, logged("nlp", {"n": 3}))])
    assert holders == {a.id: None, b.id: None}
    assert [e.data for e in await svc.events(a.id) if e.kind == "nlp"] == [{"n": 1}, {"n": 3}]
    assert [e.data for e in await svc.events(b.id) if e.kind == "nlp"] == [{"n": 2}]
    assert await svc.log_each([]) == {}


async def test_optimistic_locking(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("chat")
    async with store.session() as s:
        stale = await s.get(Contact, c.id)
        assert stale is not None
        await s.commit()  # the row stays loaded at version 1
        await svc.transition(c.id, "queued", "another node")
        stale.priority = 5
        with pytest.raises(StaleDataError):
            await s.commit()
    got = await svc.get(c.id)
    assert (got.state, got.priority, got.version) == ("queued", 0, 2)


async def test_concurrent_transitions_have_one_winner(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("voice")
    await svc.transition(c.id, "ivr", "flow")
    targets = ["closed", "abandoned"] * 4
    results = await asyncio.gather(
        *(svc.transition(c.id, to, "race") for to in targets), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Contact)]
    assert len(winners) == 1, results
    assert all(isinstance(r, InvalidTransition) for r in results if r not in winners)
    finals = [e for e in await svc.events(c.id) if e.to_state in FINAL]
    assert len(finals) == 1 and finals[0].to_state == winners[0].state

    again = await asyncio.gather(*(svc.finish(c.id, "closed", "sweep") for _ in range(5)))
    assert {r.state for r in again} == {winners[0].state}
    assert len(await svc.events(c.id)) == 3


async def test_concurrent_finishes_close_once(store: Database) -> None:
    """finish() is Core statements with its own version check: racing finishes (on
    PostgreSQL side by side) write one final state, and each returns that state."""
    svc = ContactService(store)
    c = await svc.open("voice", then=(ContactState.IVR, "flow", None))
    results = await asyncio.gather(*(svc.finish(
        c.id, to, "race", logged=[logged("call", {"n": i})])
        for i, to in enumerate(["closed", "abandoned"] * 4)))
    events = await svc.events(c.id)
    finals = [e for e in events if e.to_state in FINAL]
    assert len(finals) == 1 and {r.state for r in results} == {finals[0].to_state}
    assert sorted(e.data["n"] for e in events if e.kind == "call") == list(range(8))
    got = await svc.get(c.id)
    assert (got.state, got.version, got.close_reason) == (finals[0].to_state, 2, "race")


async def test_open_with_its_customer_and_first_move_in_one_transaction(
        store: Database) -> None:
    svc = ContactService(store)
    before = await _count(store, select(func.count()).select_from(Customer))
    # Callers with a new number at once: one customer, whoever creates it (on PostgreSQL
    # the losers hit the unique identity and retry their whole transaction).
    opened = await asyncio.gather(*(svc.open(
        "voice", identity=("phone", "+12025550177"), external_ref=f"one.{i}",
        then=(ContactState.IVR, "flow_started", {"flow": "demo"})) for i in range(8)))
    assert await _count(store, select(func.count()).select_from(Customer)) == before + 1
    assert len({c.customer_id for c in opened}) == 1 and opened[0].customer_id is not None
    for c in opened:
        got = await svc.get(c.id)
        assert (got.state, got.version, got.customer_id) == ("ivr", 1, c.customer_id)
        events = await svc.events(c.id)
        assert [(e.from_state, e.to_state, e.reason) for e in events] == [
            (None, "new", "created"), ("new", "ivr", "flow_started")]
        assert events[1].data == {"flow": "demo"}
    with pytest.raises(InvalidTransition):  # the first move is checked before any write
        await svc.open("voice", then=(ContactState.WRAPUP, "skip", None))


async def test_held_log_lines_are_written_before_the_state_change(store: Database) -> None:
    svc = ContactService(store)
    c = await svc.open("voice", then=(ContactState.IVR, "flow_started", None))
    held = [logged("call", {"action": "answered"}), logged("prompt", {"state": "done"})]
    await svc.log_many(c.id, [logged("call", {"action": "early"})])
    await svc.finish(c.id, "closed", "completed", logged=held)
    events = await svc.events(c.id)
    assert [(e.kind, e.to_state or e.data.get("action") or e.data.get("state"))
            for e in events] == [("state", "new"), ("state", "ivr"), ("call", "early"),
                                 ("call", "answered"), ("prompt", "done"),
                                 ("state", "closed")]
    assert events[3].at == held[0][2]  # when it happened, not when it was written
    # Already final: the lines are still kept, the state is not touched.
    await svc.finish(c.id, "abandoned", "late", logged=[logged("call", {"action": "late"})])
    events = await svc.events(c.id)
    assert events[-1].data == {"action": "late"} and (await svc.get(c.id)).state == "closed"
    with pytest.raises(ValueError):
        logged("state", {})

