"""The tickets API over HTTP, and departments routing tickets through the real engine
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
from sqlalchemy import select

from ctl.store.db import Database
from ctl.store.models import ContactEvent
from ctl.tickets.model import TicketView
from tests.integration.agent_api import Panel
from tests.integration.tickets_app import App, tickets_app
from tests.integration.tickets_db import ticket_db

__all__ = ["ticket_db", "tickets_app"]


async def states(db: Database, contact_id: str) -> list[tuple[str | None, str | None]]:
    async with db.session(readonly=True) as s:
        rows = await s.scalars(select(ContactEvent).where(ContactEvent.contact_id == contact_id)
                               .where(ContactEvent.kind == "state").order_by(ContactEvent.id))
        return [(e.to_state, e.reason) for e in rows]


def watch(app: App, **match: Any) -> asyncio.Future[TicketView]:
    """Resolves with the ticket once a change leaves it matching `match` (the routing
    listener changes tickets in a task of its own, after the event)."""
    done: asyncio.Future[TicketView] = asyncio.get_running_loop().create_future()

    async def hook(t: TicketView, what: str) -> None:
        if not done.done() and all(getattr(t, k) == v for k, v in match.items()):
            done.set_result(t)
            app.services.tickets.hooks.remove(hook)

    app.services.tickets.hooks.append(hook)
    return done


async def test_requests_need_a_login(tickets_app: App) -> None:
    anon = Panel(tickets_app.base, tickets_app.http)
    body = await anon.call("GET", "/api/v1/tickets", expect=401)
    assert body["error"] == "unauthorized"


async def test_create_change_and_read_back(tickets_app: App) -> None:
    alice = await tickets_app.panel("alice")
    t = await alice.call("POST", "/api/v1/tickets", {
        "subject": "Cannot log in", "description": "since Monday", "priority": "high",
        "customer": {"kind": "email", "value": "api-user@example.com"},
        "tags": ["login"], "fields": {"product": "router"}}, expect=201)
    assert (t["status"], t["priority"], t["version"], t["tags"]) == \
        ("new", "high", 1, ["login"])
    path = f"/api/v1/tickets/{t['number']}"
    stale = await alice.call("PATCH", path, {"subject": "x", "version": 7}, expect=409)
    assert stale["error"] == "conflict" and "version 1, not 7" in stale["message"]
    changed = await alice.call("PATCH", path, {"priority": "urgent", "version": 1})
    assert (changed["priority"], changed["version"]) == ("urgent", 2)
    bad = await alice.call("POST", path + "/status", {"status": "reopened"}, expect=409)
    assert bad["error"] == "invalid_transition" and "from new to reopened" in bad["message"]
    await alice.call("POST", path + "/status", {"status": "open"})
    await alice.call("POST", path + "/notes", {"body": "internal only"}, expect=201)
    await alice.call("POST", path + "/replies", {"body": "we are on it"}, expect=201)
    await alice.call("PATCH", path + "/fields", {"serial": "X1"})
    got = await alice.call("POST", path + "/tags", {"add": ["vip"], "remove": ["login"]})
    assert got["fields"] == {"product": "router", "serial": "X1"} and got["tags"] == ["vip"]
    everything = (await alice.call("GET", path + "/history"))["events"]
    assert [e["kind"] for e in everything] == ["created", "changed", "status", "note", "reply",
                                               "notify_skipped", "fields", "tags"]
    assert everything[5]["data"] == {"template": "reply",
                                     "reason": "no address for channel None"}
    assert everything[0]["actor"] == tickets_app.users["alice"]
    public = (await alice.call("GET", path + "/history?public=1"))["events"]
    assert [e["kind"] for e in public] == ["status", "reply"]
    missing = await alice.call("POST", "/api/v1/tickets", {"description": "x"}, expect=400)
    assert "subject" in missing["message"]
    doc = await Panel(tickets_app.base, tickets_app.http).call(
        "GET", "/api/v1/openapi/tickets.json")  # no login needed
    jsonschema.validate(got, doc["components"]["schemas"]["Ticket"])


async def test_search_filters(tickets_app: App) -> None:
    alice = await tickets_app.panel("alice")
    mine = await alice.call("POST", "/api/v1/tickets", {
        "subject": "Refund for order 555", "customer": {"kind": "email",
                                                        "value": "filter@example.com"}},
        expect=201)
    await alice.call("POST", "/api/v1/tickets", {"subject": "Unrelated"}, expect=201)
    found = await alice.call("GET", f"/api/v1/tickets?customer={mine['customer_id']}")
    assert [t["number"] for t in found["tickets"]] == [mine["number"]]
    found = await alice.call("GET", f"/api/v1/tickets?customer={mine['customer_id']}"
                                    "&status=active")
    assert [t["number"] for t in found["tickets"]] == [mine["number"]]
    await alice.call("POST", f"/api/v1/tickets/{mine['id']}/status", {"status": "closed"})
    found = await alice.call("GET", f"/api/v1/tickets?customer={mine['customer_id']}"
                                    "&status=active")
    assert found["tickets"] == []
    found = await alice.call("GET", "/api/v1/tickets?q=order%20555&status=new,closed")
    assert [t["number"] for t in found["tickets"]] == [mine["number"]]
    found = await alice.call("GET", "/api/v1/tickets?sla_state=none&limit=500")
    assert mine["number"] in [t["number"] for t in found["tickets"]]
    bad = await alice.call("GET", "/api/v1/tickets?sla_state=late", expect=400)
    assert "unknown SLA state" in bad["message"]


async def test_a_ticket_is_routed_and_transferred_across_departments(
        tickets_app: App, ticket_db: Database) -> None:
    alice, bob, sue = [await tickets_app.panel(n) for n in ("alice", "bob", "sue")]
    await alice.listen()
    await bob.listen()
    t = await sue.call("POST", "/api/v1/tickets", {"subject": "Line keeps dropping",
                                                   "department": "service"}, expect=201)
    first = t["task_contact_id"]
    assert t["department"] == "service" and t["contact_ids"] == [first]
    assert await states(ticket_db, first) == [("new", "created"), ("queued", "enqueued")]
    await alice.state("available")
    path = f"/api/v1/tickets/{t['id']}"
    # Customer service hands it to technical support: it waits in tech's queue for alice.
    moved = await sue.call("POST", path + "/transfer", {"department": "tech",
                                                        "reason": "needs a technician"})
    second = moved["task_contact_id"]
    assert moved["department"] == "tech" and second != first
    assert (await states(ticket_db, first))[-1] == ("closed", "transferred")
    offer = (await alice.next("offer", offer__contact_id=second))["offer"]
    assert (offer["channel"], offer["queue"]) == ("task", "tech")
    taken = watch(tickets_app, assignee_id=alice.agent_id, status="open")
    await alice.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    await alice.next("Assigned", contact_id=second)
    await asyncio.wait_for(taken, 10)  # an agent took it: assigned, being worked on
    # Technical support finds a billing problem: bob's department takes it over.
    await bob.state("available")
    moved = await alice.call("POST", path + "/transfer", {"department": "billing"})
    third = moved["task_contact_id"]
    await alice.next("Released", contact_id=second)  # alice is free again
    offer = (await bob.next("offer", offer__contact_id=third))["offer"]
    assert offer["queue"] == "billing"
    bobs = watch(tickets_app, assignee_id=bob.agent_id)
    await bob.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    assert (await asyncio.wait_for(bobs, 10)).status == "open"
    done = await bob.call("POST", path + "/status", {"status": "resolved"})
    assert (await states(ticket_db, third))[-1] == ("closed", "ticket_resolved")
    departments = [(e["data"].get("from"), e["data"]["to"]) for e in
                   (await bob.call("GET", path + "/history"))["events"]
                   if e["kind"] == "department"]
    assert departments == [(None, "service"), ("service", "tech"), ("tech", "billing")]
    assert set(done["contact_ids"]) == {first, second, third}
    unknown = await bob.call("POST", path + "/transfer", {"department": "legal"}, expect=404)
    assert "no department 'legal'" in unknown["message"]
    for p in (alice, bob):
        await p.state("offline")
        await p.close()
