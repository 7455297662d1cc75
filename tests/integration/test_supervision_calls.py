"""A supervisor listens, whispers and barges into a live call on the real Asterisk, and
takes over a chat, through the supervisor API of a real `ctl serve`.

Everyone has ears: the agent's, the supervisor's and the customer's handsets are
MediaPhones (SIP UAS counting loud RTP frames); the customer's handset calls in over SIP
(harness.Caller.dial_in). Only one party makes a sound at a
time, so what each phone hears says who hears whom. "Does not hear" is measured over the
very time another phone heard the same sound: no sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ctl.asterisk.process import AsteriskProcess
from ctl.store.db import Database
from tests.integration import sip
from tests.integration.agent_api import Panel
from tests.integration.harness import Caller, CtlProcess, eventually, free_port
from tests.integration.media_phone import MediaPhone
from tests.integration.test_voice_queue import QUEUE_NUMBER, agent_env, contact_of, events_of


class Person:
    def __init__(self, username: str, phone: MediaPhone, panel: Panel) -> None:
        self.username, self.phone, self.panel = username, phone, panel


@pytest.fixture
async def people(asterisk: AsteriskProcess, ast_env: dict[str, str], backend: dict[str, str],
                 ctl: CtlProcess, http: aiohttp.ClientSession
                 ) -> AsyncIterator[dict[str, Person]]:
    """agent (queue general), sup (supervisor), customer (a handset, in no queue)."""
    env = agent_env(ast_env, backend)
    out: dict[str, Person] = {}
    for role in ("agent", "sup", "customer"):
        username = f"s{uuid.uuid4().hex[:8]}"
        password = await sip.add_agent(env, username, role.title(),
                                       str(6000000 + uuid.uuid4().int % 1000000))
        if role == "agent":
            await sip.ctl_command(env, "agents", "set", username, "--queue", "general",
                                  "--capacity", "voice=1", "--capacity", "chat=2")
        if role == "sup":
            await sip.ctl_command(env, "agents", "set", username, "--role", "supervisor",
                                  "--capacity", "chat=2")
        port = free_port(socket.SOCK_DGRAM)
        endpoint = f"agent-{username}"
        (await sip.run("uac_register.xml", "-key", "caller", endpoint, "-au", endpoint,
                       "-ap", password, f"127.0.0.1:{asterisk.cfg.sip_port}", "-i",
                       "127.0.0.1", "-p", str(port))).check()
        panel = await Panel(f"http://127.0.0.1:{ctl.port}", http).login(username, password)
        out[role] = Person(username, await MediaPhone(port).open(), panel)
    yield out
    for person in out.values():
        await person.panel.close()
        await person.phone.close()


def marked(*phones: MediaPhone) -> None:
    for phone in phones:
        phone.mark()


async def hush(*phones: MediaPhone, ears: tuple[MediaPhone, ...]) -> None:
    """Stop `phones` talking and wait until what they said has reached every ear."""
    for phone in phones:
        phone.talking = False
    for ear in ears:
        await ear.quiet()


async def test_supervisor_listens_whispers_barges_and_stops(
        asterisk: AsteriskProcess, ctl: CtlProcess, db: Database, caller: Caller,
        people: dict[str, Person]) -> None:
    agent, sup, customer = people["agent"], people["sup"], people["customer"]
    await sup.panel.listen()
    await agent.panel.state("available")
    theirs = await caller.dial_in(customer.phone.host, customer.phone.port, QUEUE_NUMBER)
    try:
        async with caller.explains_audio():
            contact = (await contact_of(db, theirs, states=("assigned",))).id
            path = f"/api/v1/contacts/{contact}/monitor"

            # The call itself: the agent hears the customer.
            customer.phone.talking = True
            await agent.phone.hears()
            await hush(customer.phone, ears=(agent.phone,))

            # Listen: the supervisor hears both sides, and nobody hears the supervisor.
            await sup.panel.call("POST", path, {"mode": "listen"})
            await sup.panel.next("monitor", 20, monitor__state="active")
            marked(sup.phone)
            customer.phone.talking = True
            await sup.phone.hears()
            await hush(customer.phone, ears=(agent.phone, sup.phone))
            sup.phone.talking = agent.phone.talking = True
            marked(sup.phone, customer.phone, agent.phone)
            await customer.phone.hears()  # the agent, while the supervisor spoke all along
            assert agent.phone.loud == 0, \
                f"the agent heard a listening supervisor ({agent.phone.loud})"
            await hush(agent.phone, sup.phone, ears=(customer.phone, sup.phone))

            # Whisper: the agent hears the supervisor, the customer does not.
            await sup.panel.call("POST", path, {"mode": "whisper"})
            await sup.panel.next("monitor", monitor__mode="whisper")
            marked(agent.phone, customer.phone)
            sup.phone.talking = True
            await agent.phone.hears()
            assert customer.phone.loud == 0, f"the customer heard a whisper ({customer.phone.loud})"
            await hush(sup.phone, ears=(agent.phone,))

            # Barge: both hear the supervisor, who still hears them.
            await sup.panel.call("POST", path, {"mode": "barge"})
            await sup.panel.next("monitor", monitor__mode="barge")
            marked(agent.phone, customer.phone)
            sup.phone.talking = True
            await agent.phone.hears()
            await customer.phone.hears()
            await hush(sup.phone, ears=(agent.phone, customer.phone))
            marked(sup.phone)
            customer.phone.talking = True
            await sup.phone.hears()
            await hush(customer.phone, ears=(agent.phone, sup.phone))

            # Stop: the supervisor's phone is hung up; the call goes on, then ends as usual.
            overview = await sup.panel.call("GET", "/api/v1/supervision")
            assert [m["contact_id"] for m in overview["monitors"]] == [contact]
            await sup.panel.call("DELETE", path)
            await asyncio.wait_for(sup.phone.ended.wait(), 20)
            marked(agent.phone)
            customer.phone.talking = True
            await agent.phone.hears()
            customer.phone.talking = False
            await agent.phone.hangup()
            closed = await contact_of(db, theirs)
            assert (closed.state, closed.close_reason) == ("closed", "completed")
            monitor = [(e.data["action"], e.data["mode"], e.data.get("reason"))
                       for e in await events_of(db, contact) if e.kind == "monitor"]
            assert monitor == [("started", "listen", None), ("mode", "whisper", None),
                               ("mode", "barge", None), ("ended", "barge", "stopped")], monitor
            assert all(e.data["supervisor"] == sup.panel.agent_id and
                       e.data["agent"] == agent.panel.agent_id
                       for e in await events_of(db, contact) if e.kind == "monitor")
            await agent.panel.state("offline")

            async def clean() -> bool:
                return not [c for c in await caller.ari.channels()
                            if c["name"].startswith(("Snoop/", f"PJSIP/agent-{sup.username}"))]

            await eventually(clean, 10, "no snoop or supervisor channel left behind")
    finally:  # whatever failed, no call of ours outlives the test
        with contextlib.suppress(Exception):
            await caller.ari.hangup(theirs)


async def test_monitor_refuses_what_is_not_a_live_call(
        ctl: CtlProcess, people: dict[str, Person]) -> None:
    sup, agent = people["sup"], people["agent"]
    body = await sup.panel.call("POST", "/api/v1/contacts/nope/monitor", {"mode": "listen"},
                                expect=409)
    assert "not a call with an agent" in body["message"]
    await sup.panel.call("POST", "/api/v1/contacts/nope/monitor", {"mode": "spy"}, expect=400)
    await agent.panel.call("POST", "/api/v1/contacts/nope/monitor", {"mode": "listen"},
                           expect=403)


async def test_supervisor_takes_over_a_chat(
        ctl: CtlProcess, db: Database, people: dict[str, Person]) -> None:
    agent, sup = people["agent"], people["sup"]
    await sup.panel.call("PUT", "/api/v1/me/state", {"state": "away", "reason": "meeting"})
    await agent.panel.listen()
    await agent.panel.state("available")
    contact = (await sup.panel.call("POST", "/api/v1/contacts", {
        "channel": "chat", "queue": "general"}, expect=201))["id"]
    offer = await agent.panel.next("offer", offer__contact_id=contact)
    await agent.panel.call("POST", f"/api/v1/offers/{offer['offer']['id']}/accept")

    await sup.panel.call("POST", f"/api/v1/contacts/{contact}/takeover")
    told = await agent.panel.next("TakenOver", contact_id=contact)
    assert told["by"] == sup.panel.agent_id
    assert not (await agent.panel.call("GET", "/api/v1/me"))["contacts"]
    mine = (await sup.panel.call("GET", "/api/v1/me"))["contacts"]
    assert [c["id"] for c in mine] == [contact]
    event = next(e for e in await events_of(db, contact) if e.kind == "takeover")
    assert event.data == {"agent": agent.panel.agent_id, "by": sup.panel.agent_id}
    # The agent may not act on it any more; the supervisor finishes it.
    await agent.panel.call("POST", f"/api/v1/contacts/{contact}/complete", expect=403)
    await sup.panel.call("POST", f"/api/v1/contacts/{contact}/complete")
    await agent.panel.state("offline")
