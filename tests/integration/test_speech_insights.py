"""Supervisors see intent and sentiment per contact: customers' messages are analysed
after they are stored (in the worker, with the real embedding model), kept as `nlp`
contact events, pushed to supervisors and listed by the contact API. SQLite and
PostgreSQL, a real app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctl.ivr.flow import parse
from tests.integration import channels_app
from tests.integration.agent_api import Panel
from tests.integration.channels_app import App, channel_settings, database, running

# A spawned worker loads the model the first time: slow on a loaded machine.
FIRST = 120.0


@pytest.fixture(scope="module", params=["sqlite", "pg"])
async def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> AsyncIterator[App]:
    data_dir = tmp_path_factory.mktemp("nlp")
    async with database(request.param, data_dir) as url, \
            running(channel_settings(data_dir, url)) as a:
        yield a



async def login(app: App, http: aiohttp.ClientSession, role: str = "agent",
                queue: str = "mail") -> Panel:
    return await channels_app.login(app, http, role, (queue,))


async def post(sup: Panel, customer: str, text: str, **more: Any) -> dict[str, Any]:
    return await sup.call("POST", "/api/v1/messages", {
        "channel": "api", "customer": {"kind": "email", "value": customer}, "text": text,
        "thread": f"t-{customer}", "queue": "mail", **more}, expect=201)


async def test_messages_get_intent_and_sentiment(app: App, http: aiohttp.ClientSession
                                                 ) -> None:
    sup = await login(app, http, "supervisor")
    await sup.listen()
    customer = f"c{uuid.uuid4().hex[:6]}@example.org"
    # No word of any refund phrase: only the embedding model finds it.
    first = await post(sup, customer, "the lamp arrived smashed, please reimburse me",
                       subject="Order 42")
    contact = first["contact"]
    pushed = await sup.next("nlp", FIRST, contact_id=contact)
    assert (pushed["intent"], pushed["method"], pushed["source"]) == \
        ("refund", "embedding", "api")
    assert pushed["message_id"] == first["message"] and pushed["confidence"] >= 0.45
    # Chinese goes to the rules; a thank-you has no intent, so the contact's stays.
    second = await post(sup, customer, "谢谢\uff0c服务很好")
    pushed = await sup.next("nlp", 30, contact_id=contact, message_id=second["message"])
    assert (pushed["intent"], pushed["sentiment"]) == (None, "positive")

    got = await sup.call("GET", f"/api/v1/nlp?contacts={contact},nobody")
    insight = got["contacts"][contact]
    assert (insight["intent"], insight["sentiment"], insight["texts"]) == \
        ("refund", "positive", 2)
    assert "nobody" not in got["contacts"]
    one = await sup.call("GET", f"/api/v1/contacts/{contact}/nlp")
    assert one["insight"] == insight
    assert [t["message_id"] for t in one["texts"]] == [first["message"], second["message"]]
    assert "reimburse" in one["texts"][0]["keywords"]
    live = (await sup.call("GET", "/api/v1/nlp/open"))["contacts"]
    assert live[contact] == {**insight, "channel": "api", "state": "queued",
                             "agent_id": None}
    summary = await sup.call("GET", "/api/v1/nlp/summary?hours=1")
    assert summary["intents"]["refund"] >= 1 and summary["sentiments"]["positive"] >= 1

    # An agent reads the insight of contacts they hold, and never the supervisors' lists.
    agent = await login(app, http)
    await agent.call("GET", f"/api/v1/contacts/{contact}/nlp", expect=403)
    await agent.call("GET", f"/api/v1/nlp?contacts={contact}", expect=403)
    await agent.call("GET", "/api/v1/nlp/open", expect=403)
    bad = await sup.call("GET", "/api/v1/nlp", expect=400)
    assert "contacts" in bad["message"]
    await sup.call("GET", "/api/v1/nlp/summary?hours=soon", expect=400)
    await sup.close()


async def test_the_agent_holding_the_contact_sees_it(app: App, http: aiohttp.ClientSession
                                                     ) -> None:
    sup = await login(app, http, "supervisor")
    agent = await login(app, http, queue="general")  # a queue no other test waits in
    await agent.listen()
    await agent.state("available")
    customer = f"c{uuid.uuid4().hex[:6]}@example.org"
    first = await post(sup, customer, "hello", queue="general")
    offer = await agent.next("offer")
    assert offer["offer"]["contact_id"] == first["contact"]
    await agent.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")
    await agent.next("Assigned")
    second = await post(sup, customer, "I can't log in, the app says my password is wrong")
    pushed = await agent.next("nlp", FIRST, message_id=second["message"])
    assert (pushed["contact_id"], pushed["intent"]) == (first["contact"], "technical")
    mine = await agent.call("GET", f"/api/v1/contacts/{first['contact']}/nlp")
    assert mine["insight"]["intent"] == "technical" and len(mine["texts"]) == 2
    live = (await sup.call("GET", "/api/v1/nlp/open"))["contacts"][first["contact"]]
    assert (live["state"], live["agent_id"]) == ("assigned", agent.agent_id)
    await agent.close()


async def test_transcripts_are_analysed(app: App) -> None:
    """The post-call transcriber hands each transcript to the same analysis."""
    transcripts = app.services.transcripts
    assert transcripts is not None and transcripts.on_text == app.services.insights.on_text
    contact = await app.services.contacts.open("voice")
    transcripts.on_text(contact.id, "i want to cancel my subscription this is terrible",
                        {"source": "transcript", "recording": "r.wav"})
    await app.services.insights.idle.wait()
    found = (await app.services.insights.latest([contact.id]))[contact.id]
    assert (found["intent"], found["sentiment"]) == ("cancel", "negative")


async def test_messages_left_unanalysed_are_caught_up(app: App, http: aiohttp.ClientSession
                                                      ) -> None:
    """A process that stops with texts still queued loses them; the next leader queues
    open contacts' messages that have no analysis (once)."""
    sup = await login(app, http, "supervisor")
    insights = app.services.insights
    await insights.idle.wait()  # the other tests' texts are all stored
    app.services.channels.listeners.remove(insights.on_message)  # queued, then lost
    try:
        got = await post(sup, f"c{uuid.uuid4().hex[:6]}@example.org",
                         "my invoice shows the wrong amount")
    finally:
        app.services.channels.listeners.append(insights.on_message)
    assert got["contact"] not in await insights.latest([got["contact"]])
    assert await insights.catch_up() == 1
    await insights.idle.wait()
    found = (await insights.latest([got["contact"]]))[got["contact"]]
    assert (found["intent"], found["texts"]) == ("billing", 1)
    assert await insights.catch_up() == 0


FLOW = """name: bank-%s
start: a
steps:
  a:
    listen:
      prompt: "How can I help?"
      intents:
        lost_card: {phrases: [block my card, my card was stolen], next: b}
    on: {no_match: b, no_input: b}
  b: {hangup: {}}
"""


async def test_published_flows_phrases_are_intents_of_text(
        app: App, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """A chat saying what a caller would say to a published flow gets the flow's intent:
    publishing hands the listen steps' phrases to the analysis, embedded at once."""
    sup = await login(app, http, "supervisor")
    await sup.listen()
    name = uuid.uuid4().hex[:6]
    insights = app.services.insights
    await insights.analyze(["hello"])  # the worker runs: a publish embeds at once
    await app.services.ivr.registry.publish([parse(FLOW % name, tmp_path / "bank.yaml")])
    assert insights.flows["lost_card"] == ["block my card", "my card was stolen"]
    assert insights.prepared is not None
    await insights.prepared
    # No word of either phrase: the embedding model finds the flow's example.
    got = await post(sup, f"c{name}@example.org", "someone took my debit card, freeze it")
    pushed = await sup.next("nlp", FIRST, contact_id=got["contact"])
    assert (pushed["intent"], pushed["method"]) == ("lost_card", "embedding")
    await sup.close()
