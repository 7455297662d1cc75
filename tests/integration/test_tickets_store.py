"""Tickets on real SQLite and PostgreSQL: numbering, history, state machine, locking, search."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctl.contacts.service import ContactService
from ctl.customers.service import CustomerService
from ctl.errors import BadRequest, Conflict, InvalidTransition, NotFound
from ctl.store.db import Database
from ctl.tickets.rules import load
from ctl.tickets.search import Filters
from ctl.tickets.service import TicketService
from tests.integration.tickets_db import ticket_db

__all__ = ["ticket_db"]


@pytest.fixture
def tickets(ticket_db: Database) -> TicketService:
    return TicketService(ticket_db)


async def test_the_ivr_contract_creates_a_numbered_ticket(tickets: TicketService,
                                                          ticket_db: Database) -> None:
    customer = await CustomerService(ticket_db).identify("phone", "+15550100001")
    contact = await ContactService(ticket_db).open("voice", customer_id=customer)
    a = await tickets.create(subject="Voicemail from +15550100001", contact_id=contact.id,
                             attachments=["/var/spool/vm/1.wav"], source="ivr",
                             priority="high", category="voicemail")
    b = await tickets.create(subject="second")
    assert b.number == a.number + 1
    assert (a.status, a.customer_id, a.channel, a.contact_ids) == \
        ("new", customer, "voice", [contact.id])
    assert a.attachments == ["/var/spool/vm/1.wav"] and a.version == 1
    assert (await tickets.get(f"#{a.number}")).id == a.id
    assert (await tickets.get(a.id)).number == a.number
    [created] = await tickets.history(a.id)
    assert created["kind"] == "created" and created["data"]["source"] == "ivr"


async def test_bad_input_is_refused_with_the_reason(tickets: TicketService) -> None:
    with pytest.raises(BadRequest, match="subject"):
        await tickets.create(subject="  ")
    with pytest.raises(BadRequest, match="unknown priority 'asap'"):
        await tickets.create(subject="x", priority="asap")
    with pytest.raises(NotFound, match="no contact nope"):
        await tickets.create(subject="x", contact_id="nope")
    t = await tickets.create(subject="x")
    with pytest.raises(BadRequest, match="cannot update status"):
        await tickets.update(t.id, {"status": "closed"})
    with pytest.raises(NotFound):
        await tickets.get("#999999")


async def test_lifecycle_and_audit_history(tickets: TicketService) -> None:
    t = await tickets.create(subject="Router broken", description="no lights")
    await tickets.move(t.id, "open", actor="alice")
    await tickets.note(t.id, "customer sounded upset", actor="alice")
    replied = await tickets.note(t.id, "We are on it", public=True, actor="alice")
    assert replied.first_response_at is not None
    await tickets.move(t.id, "resolved", reason="replaced", actor="alice")
    with pytest.raises(InvalidTransition, match="from resolved to open") as e:
        await tickets.move(t.id, "open")
    assert e.value.hint == "from resolved it may go to closed, reopened"
    back = await tickets.customer_reply(t.id, "still broken")
    assert back.status == "reopened" and back.resolved_at is None
    await tickets.update(t.id, {"priority": "urgent"}, actor="bob")
    await tickets.move(t.id, "closed", actor="bob")
    with pytest.raises(InvalidTransition, match="closed tickets are final"):
        await tickets.move(t.id, "reopened")
    with pytest.raises(InvalidTransition, match="a reply cannot reopen it"):
        await tickets.customer_reply(t.id, "hello?")
    kinds = [(e["kind"], e["data"].get("to")) for e in await tickets.history(t.id)]
    assert kinds == [("created", None), ("status", "open"), ("note", None), ("reply", None),
                     ("status", "resolved"), ("customer_reply", None), ("status", "reopened"),
                     ("changed", None), ("status", "closed")]
    public = [e["kind"] for e in await tickets.history(t.id, public_only=True)]
    assert "note" not in public and "reply" in public and "customer_reply" in public
    changed = next(e for e in await tickets.history(t.id) if e["kind"] == "changed")
    assert changed["data"]["changes"] == {"priority": {"from": "normal", "to": "urgent"}}
    assert changed["actor"] == "bob"


async def test_a_stale_version_is_a_conflict(tickets: TicketService) -> None:
    t = await tickets.create(subject="locking")
    await tickets.update(t.id, {"subject": "locking 2"}, version=t.version)
    with pytest.raises(Conflict, match="not 1"):
        await tickets.update(t.id, {"subject": "lost write"}, version=t.version)
    assert (await tickets.get(t.id)).subject == "locking 2"


async def test_concurrent_changes_all_land(tickets: TicketService) -> None:
    t = await tickets.create(subject="busy")
    n = 12
    await asyncio.gather(*[tickets.tag(t.id, add=[f"t{i}"]) for i in range(n)],
                         *[tickets.set_fields(t.id, {f"f{i}": i}) for i in range(n)],
                         *[tickets.note(t.id, f"note {i}") for i in range(n)])
    got = await tickets.get(t.id)
    assert got.tags == sorted(f"t{i}" for i in range(n))
    assert got.fields == {f"f{i}": i for i in range(n)}
    assert got.version == 1 + 3 * n
    assert len(await tickets.history(t.id)) == 1 + 3 * n


async def test_concurrent_updates_from_one_version_one_wins(tickets: TicketService) -> None:
    t = await tickets.create(subject="race")
    results = await asyncio.gather(
        *[tickets.update(t.id, {"subject": f"by {i}"}, version=t.version) for i in range(6)],
        return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert (await tickets.get(t.id)).subject == won[0].subject


async def test_search_filters(tickets: TicketService, ticket_db: Database) -> None:
    customer = await CustomerService(ticket_db).identify("email", "searcher@example.com")
    a = await tickets.create(subject="Invoice 100% wrong", customer_id=customer,
                             department="billing", tags=["vip"])
    b = await tickets.create(subject="Line down", description="the invoice is fine",
                             department="tech")
    await tickets.move(b.id, "pending_customer")
    numbers = lambda ts: [t.number for t in ts]  # noqa: E731
    assert numbers(await tickets.search(Filters(customer_id=customer))) == [a.number]
    assert numbers(await tickets.search(Filters(text="100%"))) == [a.number]
    found = await tickets.search(Filters(text="INVOICE", limit=500))
    assert {a.number, b.number} <= set(numbers(found))
    assert numbers(await tickets.search(Filters(status=["pending_customer"], department="tech",
                                                text="invoice"))) == [b.number]
    assert numbers(await tickets.search(Filters(tag="vip", customer_id=customer))) == [a.number]
    with pytest.raises(InvalidTransition, match="unknown ticket status"):
        await tickets.search(Filters(status=["done"]))
    with pytest.raises(BadRequest, match="unknown filter"):
        Filters.from_query({"colour": "red"})


async def test_two_controllers_creating_at_once_never_share_a_number(
        tickets: TicketService, ticket_db: Database) -> None:
    other = TicketService(ticket_db)  # a second controller on the same database
    made = await asyncio.gather(*[(tickets if i % 2 else other).create(subject=f"n{i}")
                                  for i in range(40)])
    numbers = [t.number for t in made]
    assert len(set(numbers)) == 40
    mine = [t.number for i, t in enumerate(made) if i % 2]
    assert mine == sorted(mine)  # one controller hands its numbers out in order


async def test_the_sla_sweep_query_never_misses_a_ticket_that_worsens(
        ticket_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "tickets.yaml"
    path.write_text("timezone: Asia/Shanghai\nbusiness_hours: {mon-fri: '09:00-18:00'}\n"
                    "holidays: [2026-12-02]\nsla:\n"
                    "  high: {first_response: 1h, resolution: 4h, warn_at: 0.5}\n"
                    "  normal: {resolution: 10h}\n", encoding="utf-8")
    cfg = load(path, [])
    now = [datetime(2026, 11, 27, 8, 0, tzinfo=UTC)]
    svc = TicketService(ticket_db, config=cfg, clock=lambda: now[0])
    rnd = random.Random(7)
    made = set()
    for i in range(40):
        now[0] += timedelta(minutes=rnd.randrange(10, 300))
        t = await svc.create(subject=f"clock {i}", priority=rnd.choice(["high", "normal",
                                                                         "low"]))
        if rnd.random() < 0.5:
            t = await svc.note(t.id, "answer", public=True)
        made.add(t.id)
    rank = {"none": 0, "ok": 1, "warning": 2, "breached": 3}
    now[0] = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # from the first creation on
    for _ in range(100):
        now[0] += timedelta(minutes=rnd.randrange(10, 120))
        candidates = {t.id for t in await svc.running_clocks(now[0], limit=1000)}
        for t in await svc.search(Filters(limit=500)):
            if t.id not in made:
                continue
            state = cfg.sla.state(priority=t.priority, created_at=t.created_at, now=now[0],
                                  response_due=t.response_due,
                                  resolution_due=t.resolution_due,
                                  responded=t.first_response_at is not None, resolved=False)
            if rank[state] > rank[t.sla_state]:
                assert t.id in candidates, (t, state, now[0])
                await svc.mark_sla(t.id, state)
