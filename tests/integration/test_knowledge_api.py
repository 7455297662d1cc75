"""The knowledge API over HTTP on the whole app (SQLite and PostgreSQL): who may edit
articles and replies, variables refused at save time and filled for a conversation,
suggestions from what the customer wrote, and the demo seed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ctl.store.models import Agent
from tests.integration import channels_app
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, channel_settings, database, running


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("knowledge")
    async with database(request.param, data_dir) as url, \
            running(channel_settings(data_dir, url)) as a:
        yield a



async def login(app: App, http: aiohttp.ClientSession, role: str = "agent") -> Panel:
    return await channels_app.login(app, http, role, ("mail",))


async def take(sup: Panel, agent: Panel, name: str, text: str) -> str:
    """A customer writes on the API channel; `agent` accepts the offer. The contact."""
    await sup.call("POST", "/api/v1/messages", {
        "channel": "api", "customer": {"kind": "email", "value": f"{uuid.uuid4().hex[:6]}"
                                       "@example.org", "name": name},
        "text": text, "queue": "mail", "thread": uuid.uuid4().hex}, expect=201)
    offer = (await agent.next("offer"))["offer"]
    await agent.call("POST", f"/api/v1/offers/{offer['id']}/accept")
    return str(offer["contact_id"])


async def test_the_demo_is_seeded_and_searchable(app: App, http: aiohttp.ClientSession
                                                 ) -> None:
    agent = await login(app, http)
    zh = (await agent.call("GET", "/api/v1/knowledge/articles?q=退款"))["articles"]
    en = (await agent.call("GET", "/api/v1/knowledge/articles?q=refunds"))["articles"]
    assert zh[0]["title"] == "退款政策" and en[0]["title"] == "Refund policy"
    replies = (await agent.call("GET", "/api/v1/quick-replies"))["replies"]
    assert {(r["shortcut"], r["language"]) for r in replies} >= {
        ("/refund", "en"), ("/refund", "zh-CN"), ("/hello", "en")}
    assert await app.services.knowledge.seed_demo() == 0  # never twice
    anon = Panel(app.base, http)
    assert (await anon.call("GET", "/api/v1/knowledge/articles", expect=401))["error"] == \
        "unauthorized"


async def test_only_supervisors_edit_articles_and_agents_see_published_ones(
        app: App, http: aiohttp.ClientSession) -> None:
    agent, sup = await login(app, http), await login(app, http, "supervisor")
    draft = {"title": "Loyalty points", "body": "Points expire after a year.",
             "language": "en", "tags": ["loyalty"]}
    await agent.call("POST", "/api/v1/knowledge/articles", draft, expect=403)
    a = await sup.call("POST", "/api/v1/knowledge/articles", draft, expect=201)
    assert (a["status"], a["version"]) == ("draft", 1)
    path = f"/api/v1/knowledge/articles/{a['id']}"
    await agent.call("GET", path, expect=404)
    assert (await agent.call("GET", "/api/v1/knowledge/articles?q=points&drafts=1")
            )["articles"] == []
    found = await sup.call("GET", "/api/v1/knowledge/articles?q=points&drafts=1")
    assert [x["id"] for x in found["articles"]] == [a["id"]]
    await agent.call("PATCH", path, {"status": "published"}, expect=403)
    await sup.call("PATCH", path, {"status": "published", "version": 1})
    stale = await sup.call("PATCH", path, {"title": "x", "version": 1}, expect=409)
    assert "version 2, not 1" in stale["message"]
    assert (await agent.call("GET", path))["status"] == "published"
    bad = await sup.call("PATCH", path, {"language": "english"}, expect=400)
    assert "language 'english'" in bad["message"]
    versions = (await sup.call("GET", path + "/versions"))["versions"]
    assert [v["status"] for v in versions] == ["draft"]
    await agent.call("DELETE", path, expect=403)
    await sup.call("DELETE", path)
    await sup.call("GET", path, expect=404)


async def test_personal_and_team_replies(app: App, http: aiohttp.ClientSession) -> None:
    alice, bob = await login(app, http), await login(app, http)
    sup = await login(app, http, "supervisor")
    typo = await alice.call("POST", "/api/v1/quick-replies", {
        "title": "Hi", "shortcut": "/hi", "language": "en",
        "body": "Hi {{ customer.nmae }}"}, expect=400)
    assert "unknown variable customer.nmae" in typo["message"]
    assert "customer.name" in typo["message"]  # what there is instead
    mine = await alice.call("POST", "/api/v1/quick-replies", {
        "title": "Hi", "shortcut": "hi", "language": "en",
        "body": "Hi {{ customer.name }}, {{ agent.name }} here."}, expect=201)
    assert (mine["scope"], mine["shortcut"]) == ("personal", "/hi")
    await alice.call("POST", "/api/v1/quick-replies", {
        "title": "Again", "shortcut": "/hi", "language": "en", "body": "x"}, expect=409)
    team = {"scope": "team", "title": "Thanks", "shortcut": "/thanks", "language": "en",
            "body": "Thank you for waiting."}
    await alice.call("POST", "/api/v1/quick-replies", team, expect=403)
    t = await sup.call("POST", "/api/v1/quick-replies", team, expect=201)
    seen_by_bob = {r["id"] for r in (await bob.call("GET", "/api/v1/quick-replies"))["replies"]}
    assert t["id"] in seen_by_bob and mine["id"] not in seen_by_bob
    await bob.call("PATCH", f"/api/v1/quick-replies/{mine['id']}", {"title": "x"},
                   expect=404)
    await bob.call("POST", f"/api/v1/quick-replies/{mine['id']}/render", {}, expect=404)
    await alice.call("PATCH", f"/api/v1/quick-replies/{t['id']}", {"title": "x"},
                     expect=403)
    await sup.call("PATCH", f"/api/v1/quick-replies/{t['id']}",
                   {"body": "Thanks, {{ customer.name or 'friend' }}!"})
    found = (await alice.call("GET", "/api/v1/quick-replies?q=thanks"))["replies"]
    assert found[0]["id"] == t["id"]
    await alice.call("DELETE", f"/api/v1/quick-replies/{t['id']}", expect=403)
    await alice.call("DELETE", f"/api/v1/quick-replies/{mine['id']}")
    await sup.call("DELETE", f"/api/v1/quick-replies/{t['id']}")


async def test_rendered_for_a_conversation_and_suggested_from_it(
        app: App, http: aiohttp.ClientSession) -> None:
    sup, agent, other = (await login(app, http, "supervisor"), await login(app, http),
                         await login(app, http))
    await agent.listen()
    await agent.state("available")
    contact = await take(sup, agent, "Li Lei", "My order arrived broken, 我要退款 please")
    ticket = await agent.call("POST", "/api/v1/tickets", {
        "subject": "Broken on arrival", "contact_id": contact}, expect=201)
    reply = await agent.call("POST", "/api/v1/quick-replies", {
        "title": "Ticket", "shortcut": "/tk", "language": "en",
        "body": "Hi {{ customer.name }}, {{ agent.name }} here: ticket #{{ ticket.number }}"
                " ({{ contact.channel }})."}, expect=201)
    path = f"/api/v1/quick-replies/{reply['id']}/render"
    async with app.services.db.session(readonly=True) as s:
        name = (await s.get(Agent, agent.agent_id)).display_name  # type: ignore[union-attr]
    text = (await agent.call("POST", path, {"contact_id": contact}))["text"]
    assert text == f"Hi Li Lei, {name} here: ticket #{ticket['number']} (api)."
    assert (await agent.call("POST", path, {}))["text"] == f"Hi , {name} here: ticket # ()."
    await other.call("POST", "/api/v1/quick-replies", {
        "title": "x", "shortcut": "/x", "language": "en", "body": "{{ customer.name }}"},
        expect=201)
    mine = (await other.call("GET", "/api/v1/quick-replies?q=x"))["replies"][0]
    await other.call("POST", f"/api/v1/quick-replies/{mine['id']}/render",
                     {"contact_id": contact}, expect=403)  # not their conversation

    hints = await agent.call("GET", f"/api/v1/contacts/{contact}/suggestions")
    titles = [a["title"] for a in hints["articles"]]
    assert {"退款政策", "Refund policy"} <= set(titles[:3]), titles
    assert "退款" in hints["terms"] and "order" in hints["terms"]
    assert "/refund" in [r["shortcut"] for r in hints["replies"]]
    # What the caller said to the IVR, or a call's transcript, counts as well.
    await app.services.contacts.log(contact, "speech", {"text": "forgot my password"})
    hints = await agent.call("GET", f"/api/v1/contacts/{contact}/suggestions?limit=10")
    assert "Reset a password" in [a["title"] for a in hints["articles"]]
    await other.call("GET", f"/api/v1/contacts/{contact}/suggestions", expect=403)
    assert (await sup.call("GET", f"/api/v1/contacts/{contact}/suggestions"))["articles"]
    await agent.call("GET", "/api/v1/contacts/nope/suggestions", expect=404)
